//! The offline pricing CLI: recommendations from history and stock files, and precise errors for
//! bad input (file, line, column; exit code 2).

use std::path::{Path, PathBuf};

use qm_api::pricing::cli::{HEADER, PricingArgs, run};
use rust_decimal::Decimal;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// Thirteen months of daily history: `tee` and `hat` sell 100 a day at 10.00 with elasticity −2.5 and a
/// weekend lift, their regular price moving monthly between 11 and 14; `mug` never changed price.
fn history_csv() -> String {
    let mut s = String::from("series_id,date,quantity,price,promo,stockout\n");
    let start = chrono::NaiveDate::from_ymd_opt(2025, 1, 6).expect("date");
    for id in ["tee", "hat"] {
        for d in 0..365u64 {
            let date = start + chrono::Days::new(d);
            let price = [12.0, 13.0, 11.0, 14.0][(d as usize / 30) % 4];
            let weekend = if d % 7 >= 5 { 1.4 } else { 1.0 };
            let q = (100.0 * weekend * (price / 10.0f64).powf(-2.5)).round();
            s.push_str(&format!("{id},{date},{q},{price:.2},0,0\n"));
        }
        // The last month at 12.00 (the current price).
        for d in 365..395u64 {
            let date = start + chrono::Days::new(d);
            let weekend = if d % 7 >= 5 { 1.4 } else { 1.0 };
            let q = (100.0 * weekend * 1.2f64.powf(-2.5)).round();
            s.push_str(&format!("{id},{date},{q},12.00,0,0\n"));
        }
    }
    for d in 0..395u64 {
        let date = start + chrono::Days::new(d);
        s.push_str(&format!("mug,{date},{},8.00,0,0\n", 20 + d % 3));
    }
    s
}

const STOCK: &str = "series_id,on_hand,inbound,unit_cost,salvage_value,season_end,category\n\
tee,5000,1000,6.00,,,apparel\n\
hat,5000,0,6.00,,,apparel\n\
mug,400,0,3.00,,,kitchen\n";

const POLICY: &str = "min_margin = 0.1\nmax_change_per_step = 0.1\nprice_ending = 0.99\n\n[series.\"hat\"]\nmin_advertised_price = 10.50\nmax_change_per_step = 0.15\n";

fn args(dir: &Path, history: &str, stock: &str, policy: Option<&str>) -> PricingArgs {
    PricingArgs {
        history: write(dir, "h.csv", history),
        stock: write(dir, "s.csv", stock),
        policy: policy.map(|p| write(dir, "p.toml", p)),
        horizon: 28,
        output: dir.join("out.csv"),
    }
}

#[test]
fn history_and_stock_become_price_recommendations() {
    let dir = tempfile::tempdir().expect("dir");
    let a = args(dir.path(), &history_csv(), STOCK, Some(POLICY));
    let rows = run(&a).expect("runs");
    let text = std::fs::read_to_string(&a.output).expect("output");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    assert_eq!(lines.count(), 3);
    let row = |id: &str| rows.iter().find(|r| r.series_id == id).expect(id).clone();

    // The optimum is 6 × 2.5 / 1.5 = 10.00; one 10 % step from 12.00 reaches 10.80, and 10.99 is
    // the lowest .99 price within it.
    let tee = row("tee");
    assert_eq!(tee.current_price, Decimal::new(1200, 2));
    assert_eq!(tee.recommended_price, Decimal::new(1099, 2));
    assert_eq!(tee.reason, "max_change_per_step");
    let e = tee.elasticity.expect("elasticity");
    assert!((e + 2.5).abs() < 0.05, "{e}");
    assert!(tee.elasticity_se.expect("se") < 0.1);
    // 28 days at 12.00: 100 × 1.2^−2.5 × (5 + 2 × 1.4) per week.
    let per_week = 100.0 * 1.2f64.powf(-2.5) * 7.8;
    assert!((tee.expected_units_current - 4.0 * per_week).abs() < 0.02 * 4.0 * per_week, "{tee:?}");
    assert!(tee.expected_units_recommended > tee.expected_units_current);
    assert!(tee.expected_profit_recommended > tee.expected_profit_current);

    // The same SKU with a minimum advertised price of 10.50 and steps of 15 % (to 10.20).
    let hat = row("hat");
    assert_eq!((hat.recommended_price, hat.reason.as_str()), (Decimal::new(1099, 2), "min_advertised_price"));

    // No price variation: no number, and the price stays.
    let mug = row("mug");
    assert_eq!((mug.elasticity, mug.recommended_price), (None, Decimal::new(800, 2)));
    assert!(mug.reason.starts_with("low_confidence: too little price variation"), "{}", mug.reason);
    assert_eq!(mug.expected_profit_current, mug.expected_profit_recommended);
    assert!(text.contains("mug,8.00,8.00,,,"), "{text}");
}

#[test]
fn scarce_stock_raises_the_price_and_excess_before_the_season_end_lowers_it() {
    let dir = tempfile::tempdir().expect("dir");
    // Four weeks at 12.00 sell about 2,075 units: 600 is scarce; 20,000 with the season ending
    // in four weeks and a salvage value of 1.00 is far too many.
    let stock = "series_id,on_hand,inbound,unit_cost,salvage_value,season_end\n\
tee,500,100,6.00,,\n\
hat,20000,0,6.00,1.00,2026-03-03\n\
mug,400,0,3.00,,\n";
    let policy = "max_change_per_step = 0.25\n";
    let rows = run(&args(dir.path(), &history_csv(), stock, Some(policy))).expect("runs");
    let tee = &rows[2];
    assert_eq!(tee.series_id, "tee");
    assert!(tee.recommended_price > tee.current_price, "{tee:?}");
    assert!(tee.expected_units_recommended <= 600.0 + 1e-6);
    let hat = &rows[0];
    assert_eq!(hat.series_id, "hat");
    assert!(hat.recommended_price < tee.current_price, "{hat:?}");
    assert!(hat.expected_units_recommended > hat.expected_units_current);
}

#[test]
fn bad_input_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().expect("dir");
    let ok = history_csv();
    let err = |history: &str, stock: &str, policy: Option<&str>| {
        let e = run(&args(dir.path(), history, stock, policy)).expect_err("refused");
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    };
    let e = err("series_id,date,quantity\ntee,2025-01-06,3\n", STOCK, None);
    assert!(
        e.ends_with("h.csv:1:price: missing column `price`; the header needs series_id,date,quantity,price"),
        "{e}"
    );
    let e = err("series_id,date,quantity,price\ntee,2025-01-06,3,10\ntee,2025-01-07,3,-1\n", STOCK, None);
    assert!(e.ends_with("h.csv:3:price: -1 is negative"), "{e}");
    let e = err("series_id,date,quantity,price\ntee,2025-01-06,three,10\n", STOCK, None);
    assert!(e.ends_with("h.csv:2:quantity: \"three\" is not a number"), "{e}");
    let e = err("series_id,date,quantity,price\ntee,2025-01-07,3,10\ntee,2025-01-06,3,10\n", STOCK, None);
    assert!(
        e.ends_with("h.csv:3:date: series tee: 2025-01-06 is not after 2025-01-07 (line 2); dates must ascend"),
        "{e}"
    );
    let e = err("series_id,date,quantity,price\ntee,06/01/2025,3,10\n", STOCK, None);
    assert!(e.ends_with("h.csv:2:date: \"06/01/2025\" is not a date (YYYY-MM-DD)"), "{e}");
    let e = err(&ok, &format!("{STOCK}zzz,1,0,1.00,,,\n"), None);
    assert!(e.ends_with("s.csv:5:series_id: series zzz is not in the history"), "{e}");
    let e = err(&ok, "series_id,on_hand,inbound,unit_cost\ntee,5,0,6\nhat,5,0,abc\n", None);
    assert!(e.ends_with("s.csv:3:unit_cost: \"abc\" is not a number"), "{e}");
    let e = err(&ok, "series_id,on_hand,inbound,unit_cost\ntee,5,0,6\n", None);
    assert!(e.ends_with("s.csv: no row for series hat of the history"), "{e}");
    let e = err(&ok, STOCK, Some("max_change_per_step = 1.5\n"));
    assert!(
        e.ends_with("p.toml:1: max_change_per_step: must be above 0 and at most 1 (a fraction of the price), got 1.5"),
        "{e}"
    );
    let e = err(&ok, STOCK, Some("[series.\"shoe\"]\nmin_margin = 0.2\n"));
    assert!(e.ends_with("p.toml: [series.\"shoe\"]: no series with this id in the history"), "{e}");
    assert!(!dir.path().join("out.csv").exists(), "nothing written on bad input");
}

/// Runs `quartermaster pricing` on the files, output to standard output.
fn cli(history: &Path, stock: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args(["pricing", "--horizon", "28", "--output", "-", "--history"])
        .arg(history)
        .arg("--stock")
        .arg(stock)
        .output()
        .expect("runs")
}

#[test]
fn the_command_line_exits_with_2_and_the_message() {
    let dir = tempfile::tempdir().expect("dir");
    let history = write(dir.path(), "h.csv", "series_id,date,quantity,price\ntee,2025-01-06,3,ten\n");
    let stock = write(dir.path(), "s.csv", STOCK);
    let out = cli(&history, &stock);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("h.csv:2:price: \"ten\" is not a number"), "{stderr}");
    let history = write(dir.path(), "h.csv", &history_csv());
    let out = cli(&history, &stock);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().next(), Some(HEADER));
    assert!(stdout.lines().any(|l| l.starts_with("tee,12.00,")), "{stdout}");
}
