"""The forecasting peers for bench-forecast: statsforecast on the same training file.

Usage: python forecast_peers.py TRAIN.csv HORIZON FREQ SEASON OUT.csv
Writes series_id,date,model,forecast for AutoETS, TSB, IMAPA and SeasonalNaive, and prints one
line per model: "cpu <model> <seconds>" (process CPU time of fit + predict).
"""

import sys
import time

import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import IMAPA, TSB, AutoETS, SeasonalNaive


def main() -> None:
    train, horizon, freq, season, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    df = pd.read_csv(train, usecols=["series_id", "date", "quantity"], parse_dates=["date"])
    df = df.rename(columns={"series_id": "unique_id", "date": "ds", "quantity": "y"})
    pandas_freq = {"D": "D", "W": "W-MON", "M": "MS"}[freq]
    # As the data README says: weekly sets are too short for seasonal ETS.
    ets_season = 1 if freq == "W" else season
    models = {
        "AutoETS": AutoETS(season_length=ets_season),
        "TSB": TSB(alpha_d=0.1, alpha_p=0.1),
        "IMAPA": IMAPA(),
        "SeasonalNaive": SeasonalNaive(season_length=season),
    }
    frames = []
    for name, model in models.items():
        started = time.process_time()
        sf = StatsForecast(models=[model], freq=pandas_freq, n_jobs=1)
        fc = sf.forecast(df=df, h=horizon)
        print(f"cpu {name} {time.process_time() - started:.2f}", flush=True)
        col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
        fc = fc.reset_index() if "unique_id" not in fc.columns else fc
        frames.append(pd.DataFrame({
            "series_id": fc["unique_id"],
            "date": pd.to_datetime(fc["ds"]).dt.strftime("%Y-%m-%d"),
            "model": name,
            "forecast": fc[col].clip(lower=0),
        }))
    pd.concat(frames).to_csv(out, index=False)


if __name__ == "__main__":
    main()
