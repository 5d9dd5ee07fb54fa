//! The offline forecast CLI: its file formats, and precise errors for bad input.

use std::path::{Path, PathBuf};

use qm_api::forecast::cli::{ForecastArgs, run};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn args(input: PathBuf, output: PathBuf, horizon: usize) -> ForecastArgs {
    ForecastArgs { input, horizon, freq: None, season: None, quantiles: vec![0.1, 0.5, 0.9], future: None, output }
}

/// Two weekly-patterned daily series over eight weeks.
fn history() -> String {
    let mut s = String::from("series_id,date,quantity,price\n");
    for (id, base) in [("b", 20.0), ("a", 10.0)] {
        for d in 0..56 {
            let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date") + chrono::Days::new(d);
            let q = if d % 7 >= 5 { base * 2.0 } else { base };
            s.push_str(&format!("{id},{date},{q},9.99\n"));
        }
    }
    s
}

#[test]
fn a_history_file_becomes_a_forecast_file() {
    let dir = tempfile::tempdir().expect("dir");
    let input = write(dir.path(), "h.csv", &history());
    let output = dir.path().join("f.csv");
    let summary = run(&args(input, output.clone(), 14)).expect("forecast");
    assert_eq!((summary.series, summary.rows), (2, 28));
    let text = std::fs::read_to_string(&output).expect("output");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("series_id,date,forecast,q0.1,q0.5,q0.9,model"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 28);
    // Sorted by series, dates continue the history (2026-01-05 + 56 days = 2026-03-02, a Monday).
    assert_eq!((rows[0][0], rows[0][1]), ("a", "2026-03-02"));
    assert_eq!((rows[14][0], rows[27][1]), ("b", "2026-03-15"));
    for r in &rows {
        let nums: Vec<f64> = r[2..6].iter().map(|v| v.parse().expect("number")).collect();
        assert!(nums.iter().all(|v| v.is_finite() && *v >= 0.0), "{r:?}");
        assert!(nums[1] <= nums[2] && nums[2] <= nums[3], "quantiles ordered: {r:?}");
    }
    // The weekly pattern carries over: the weekend (rows 5 and 6: Sat, Sun) doubles.
    let f = |i: usize| rows[i][2].parse::<f64>().expect("number");
    assert!((f(5) / f(0) - 2.0).abs() < 0.05, "{:?}", &rows[..7]);
}

#[test]
fn bad_input_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().expect("dir");
    let good = history();
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing column", good.replace("quantity", "qty"), "h.csv:1:3: expected column 3 to be `quantity`"),
        ("bad number", good.replacen("2026-01-07,10,", "2026-01-07,ten,", 1), ":quantity: \"ten\" is not a number"),
        ("negative", good.replacen("2026-01-07,10,", "2026-01-07,-1,", 1), ":quantity: -1 is negative"),
        ("bad date", good.replacen("2026-01-07", "2026-13-07", 1), ":date: \"2026-13-07\" is not a date"),
        (
            "duplicate date",
            good.replacen("a,2026-01-07,", "a,2026-01-06,", 1),
            ":date: series a: 2026-01-06 appears twice",
        ),
        (
            "gap",
            good.lines().filter(|l| !l.starts_with("a,2026-01-08")).map(|l| format!("{l}\n")).collect(),
            ":date: series a: gap or misaligned date: expected 2026-01-08 after 2026-01-07, found 2026-01-09",
        ),
        ("ragged row", good.replacen(",9.99\n", ",9.99,extra\n", 1), "fields where the header has 4"),
        ("empty", "series_id,date,quantity\n".into(), "h.csv: no rows"),
    ];
    for (what, text, expected) in cases {
        let input = write(dir.path(), "h.csv", &text);
        let err = run(&args(input, dir.path().join("f.csv"), 7)).expect_err(what).to_string();
        assert!(err.contains(expected), "{what}: {err}");
    }
    // Lines are the file's own: header, 56 rows of b, then a's third day on line 60.
    let input = write(dir.path(), "h.csv", &good.replacen("a,2026-01-07,10,", "a,2026-01-07,x,", 1));
    let err = run(&args(input, dir.path().join("f.csv"), 7)).expect_err("bad").to_string();
    assert!(err.contains("h.csv:60:quantity"), "{err}");
    // Arguments are checked too.
    let input = write(dir.path(), "h.csv", &good);
    let mut a = args(input.clone(), dir.path().join("f.csv"), 0);
    assert!(run(&a).expect_err("horizon").to_string().contains("--horizon"));
    a.horizon = 7;
    a.quantiles = vec![0.5, 1.0];
    assert!(run(&a).expect_err("quantile").to_string().contains("--quantiles"));
    // A future file must cover every forecast date with the history's covariate columns.
    let mut a = args(input, dir.path().join("f.csv"), 2);
    a.future = Some(write(dir.path(), "fut.csv", "series_id,date,price\na,2026-03-02,9.5\n"));
    let err = run(&a).expect_err("short future").to_string();
    assert!(err.contains("series a: no row for forecast date 2026-03-03"), "{err}");
}

#[test]
fn the_command_line_exits_non_zero_with_the_message() {
    let dir = tempfile::tempdir().expect("dir");
    let input = write(dir.path(), "h.csv", "series_id,date,quantity\na,2026-01-01,1\na,2026-01-01,2\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args(["forecast", "--horizon", "3", "--freq", "D", "--output", "-", "--input"])
        .arg(&input)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("h.csv:3:date: series a: 2026-01-01 appears twice (line 2)"), "{stderr}");
    let input =
        write(dir.path(), "ok.csv", "series_id,date,quantity\na,2026-01-01,1\na,2026-02-01,3\na,2026-03-01,2\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args(["forecast", "--horizon", "2", "--quantiles", "0.5", "--output", "-", "--input"])
        .arg(&input)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "series_id,date,forecast,q0.5,model");
    assert!(lines[1].starts_with("a,2026-04-01,") && lines[2].starts_with("a,2026-05-01,"), "{stdout}");
}

/// The `stockout` column records what the stock did, which nobody knows for the days ahead: a
/// future file needs only the covariates known in advance, and a stockout column given there
/// changes nothing.
#[test]
fn a_future_file_needs_no_stockout_column() {
    let dir = tempfile::tempdir().expect("dir");
    let mut text = String::from("series_id,date,quantity,price,stockout\n");
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date");
    for (id, base) in [("a", 10.0), ("b", 20.0)] {
        for d in 0..56 {
            let date = start + chrono::Days::new(d);
            let out = id == "a" && d % 9 == 4;
            let q = if out {
                0.0
            } else if d % 7 >= 5 {
                base * 2.0
            } else {
                base
            };
            text.push_str(&format!("{id},{date},{q},9.99,{}\n", u8::from(out)));
        }
    }
    let input = write(dir.path(), "h.csv", &text);
    let future = |with_stockout: bool| {
        let mut f =
            String::from(if with_stockout { "series_id,date,price,stockout\n" } else { "series_id,date,price\n" });
        for id in ["a", "b"] {
            for d in 56..63 {
                let date = start + chrono::Days::new(d);
                f.push_str(&format!("{id},{date},9.99{}\n", if with_stockout { ",1" } else { "" }));
            }
        }
        f
    };
    let forecast = |name: &str, future_text: String| {
        let mut a = args(input.clone(), dir.path().join(format!("{name}.out.csv")), 7);
        a.future = Some(write(dir.path(), name, &future_text));
        run(&a).map(|_| std::fs::read_to_string(&a.output).expect("output"))
    };
    let without = forecast("plain.csv", future(false)).expect("a future file without the stockout column");
    assert_eq!(without.lines().count(), 15, "{without}");
    let with = forecast("stockout.csv", future(true)).expect("a future file with it");
    assert_eq!(with, without, "the stockout column of the days ahead is not read");
    // The days out of stock are imputed, not read as no demand: a's weekdays stay near 10.
    let monday: f64 =
        without.lines().nth(1).and_then(|l| l.split(',').nth(2)).and_then(|v| v.parse().ok()).expect("row");
    assert!((monday - 10.0).abs() < 1.5, "{without}");
    // Any other column must still match the history's.
    let err = forecast("promo.csv", future(false).replace(",price", ",promo")).expect_err("wrong column").to_string();
    assert!(err.contains(r#"differ from the history's ["price"]"#), "{err}");
}
