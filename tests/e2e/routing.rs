//! `quartermaster route` on instances generated here, every plan re-checked by a checker written
//! from the formats' rules (not the solver's code): each customer once, capacity, windows (arrive,
//! wait, start by the due date), back at the depot by its due date, and the distance it states.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A node as the checker reads it: number, x, y, demand, ready, due, service.
type Row = (u64, f64, f64, i64, i64, i64, i64);

/// A Solomon-layout instance of `n` customers from a little LCG (no solver code involved).
fn solomon(n: usize, seed: u64, capacity: i64) -> String {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = |m: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut text = format!(
        "GEN{seed}\n\nVEHICLE\nNUMBER     CAPACITY\n  {n}         {capacity}\n\nCUSTOMER\nCUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME\n\n    0      50         50          0          0       1000          0\n"
    );
    for c in 1..=n {
        let (x, y) = (next(101), next(101));
        let ready = next(700) as i64;
        let width = 60 + next(200) as i64;
        let demand = 1 + next(30);
        text.push_str(&format!("{c:5} {x:8} {y:10} {demand:10} {ready:10} {:10} {:10}\n", ready + width, 10));
    }
    text
}

fn rows(text: &str) -> (i64, Vec<Row>) {
    let lines: Vec<&str> = text.lines().collect();
    let fleet = lines.iter().position(|l| l.trim_start().starts_with("NUMBER")).expect("NUMBER") + 1;
    let capacity: i64 = lines[fleet].split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("capacity");
    let rows = lines
        .iter()
        .filter_map(|l| {
            let v: Vec<f64> = l.split_whitespace().map(|f| f.parse::<f64>()).collect::<Result<_, _>>().ok()?;
            (v.len() == 7).then(|| (v[0] as u64, v[1], v[2], v[3] as i64, v[4] as i64, v[5] as i64, v[6] as i64))
        })
        .collect();
    (capacity, rows)
}

/// Checks a printed plan against the instance (Solomon layout, DIMACS one-decimal truncation, in
/// tenths); returns the distance it recomputed.
fn check(text: &str, plan: &Value) -> f64 {
    let (capacity, rows) = rows(text);
    let depot = rows[0];
    let tenth = |a: &Row, b: &Row| ((a.1 - b.1).hypot(a.2 - b.2) * 10.0 + 1e-9).floor() as i64;
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    let routes = plan["routes"].as_array().expect("routes");
    assert_eq!(plan["vehicles"].as_u64(), Some(routes.len() as u64));
    for route in routes {
        let stops: Vec<Row> = route
            .as_array()
            .expect("a route")
            .iter()
            .map(|c| {
                let n = c.as_u64().expect("a customer number");
                assert!(n != 0 && seen.insert(n), "customer {n} is visited twice or is the depot");
                *rows.iter().find(|r| r.0 == n).expect("a customer of the file")
            })
            .collect();
        assert!(!stops.is_empty(), "an empty route is listed");
        let load: i64 = stops.iter().map(|s| s.3).sum();
        assert!(load <= capacity, "a route carries {load} > {capacity}");
        let (mut at, mut time) = (depot, 0);
        for s in stops {
            time += tenth(&at, &s);
            time = time.max(s.4 * 10);
            assert!(time <= s.5 * 10, "customer {} starts at {time} after its due date {}", s.0, s.5 * 10);
            total += tenth(&at, &s);
            time += s.6 * 10;
            at = s;
        }
        time += tenth(&at, &depot);
        total += tenth(&at, &depot);
        assert!(time <= depot.5 * 10, "back at {time}, after the depot closes");
    }
    let unassigned = plan["unassigned"].as_array().map_or(0, Vec::len);
    assert_eq!(seen.len() + unassigned, rows.len() - 1, "every customer once, or listed as unassigned");
    let stated = plan["distance"].as_f64().expect("distance");
    let recomputed = total as f64 / 10.0;
    assert!((stated - recomputed).abs() < 1e-6, "states {stated}, drives {recomputed}");
    recomputed
}

fn route(instance: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args(["route", "--format", "solomon", "--rounding", "trunc1", "--output", "-", "--instance"])
        .arg(instance)
        .args(extra)
        .output()
        .expect("runs")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn every_plan_the_command_prints_is_feasible_and_drives_what_it_says() {
    let dir = tempfile::tempdir().expect("dir");
    for seed in 1..=4 {
        let text = solomon(40, seed, 120);
        let path = write(dir.path(), &format!("gen{seed}.txt"), &text);
        // A time limit far beyond what 4,000 iterations take, so the count decides (a busy
        // machine stops early otherwise, and the plans would differ).
        let out = route(&path, &["--time-limit", "600", "--iterations", "4000", "--seed", "7"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(plan["unassigned"], serde_json::json!([]), "every generated customer is servable alone");
        check(&text, &plan);
        // The same seed and iterations give the same plan.
        let again = route(&path, &["--time-limit", "600", "--iterations", "4000", "--seed", "7"]);
        assert_eq!(again.stdout, out.stdout);
        // Two threads: also feasible, and no longer than one thread's plan (thread 0 is it).
        let out2 = route(&path, &["--time-limit", "600", "--iterations", "4000", "--seed", "7", "--threads", "2"]);
        assert!(out2.status.success(), "{}", String::from_utf8_lossy(&out2.stderr));
        let plan2: Value = serde_json::from_slice(&out2.stdout).expect("JSON");
        assert!(check(&text, &plan2) <= check(&text, &plan) + 1e-6, "{plan2} vs {plan}");
    }
}

#[test]
fn the_search_improves_on_its_first_plan() {
    let dir = tempfile::tempdir().expect("dir");
    let text = solomon(60, 11, 100);
    let path = write(dir.path(), "gen.txt", &text);
    let distance = |iterations: &str| {
        let out = route(&path, &["--time-limit", "600", "--iterations", iterations]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        check(&text, &serde_json::from_slice(&out.stdout).expect("JSON"))
    };
    let first = distance("1");
    let searched = distance("8000");
    assert!(searched < first * 0.95, "{searched} is not 5 % shorter than the first plan's {first}");
}

#[test]
fn bad_instances_are_refused_with_where_and_why_and_an_unreachable_customer_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let good = solomon(5, 3, 100);
    let negative = good.replacen("GEN3", "NEG", 1);
    let line = negative.lines().nth(11).expect("customer 2").to_owned();
    let mut fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    fields[3] = "-4".into();
    let negative = negative.replace(&line, &fields.join(" "));
    let out = route(&write(dir.path(), "neg.txt", &negative), &["--time-limit", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("customer 2 has a negative demand"));

    let garbled = good.replacen("    0      50", "    0      5O", 1);
    let out = route(&write(dir.path(), "garbled.txt", &garbled), &["--time-limit", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 10: \"5O\" is not a number"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = route(&write(dir.path(), "ok.txt", &good), &["--time-limit", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--time-limit"));

    // A customer whose window closes before any vehicle can reach it is left out, not a crash.
    let late = good.clone() + "    6      99         99         5          0          10         10\n";
    let out = route(&write(dir.path(), "late.txt", &late), &["--time-limit", "1", "--iterations", "500"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["unassigned"], serde_json::json!([6]));
    check(&late, &plan);
}

#[test]
fn sol_lines_follow_the_cvrplib_layout() {
    let dir = tempfile::tempdir().expect("dir");
    let text = solomon(8, 5, 200);
    let path = write(dir.path(), "s.txt", &text);
    let json = dir.path().join("plan.json");
    let out = Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args([
            "route",
            "--format",
            "solomon",
            "--rounding",
            "trunc1",
            "--time-limit",
            "1",
            "--iterations",
            "300",
            "--sol",
        ])
        .args(["--instance".as_ref(), path.as_os_str(), "--output".as_ref(), json.as_os_str()])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("written")).expect("JSON");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), plan["vehicles"].as_u64().expect("vehicles") as usize + 1);
    for (k, r) in plan["routes"].as_array().expect("routes").iter().enumerate() {
        let stops: Vec<String> = r.as_array().expect("route").iter().map(|c| c.to_string()).collect();
        assert_eq!(lines[k], format!("Route #{}: {}", k + 1, stops.join(" ")));
    }
    assert_eq!(lines.last().copied(), Some(format!("Cost {}", plan["distance"]).as_str()));
}
