//! `quartermaster returns-plan`: a day's returns planned offline from JSON, and bad input
//! refused with where it is wrong.

use serde_json::{Value, json};

fn batch() -> Value {
    json!({
        "items": [
            { "id": "R1", "sku": "TEE-M", "value": "40.00", "grade": "A", "reason": "size", "lat": 40.70, "lon": -74.00 },
            { "id": "R2", "sku": "TEE-M", "value": "40.00", "grade": "C", "reason": "damaged", "lat": 40.70, "lon": -74.00,
              "vendor_credit": "22.00" },
            { "id": "R3", "sku": "MUG", "value": "12.00", "grade": "D", "reason": "broken", "lat": 34.00, "lon": -118.20 },
            { "id": "R4", "sku": "MUG", "value": "12.00", "grade": "A", "reason": "unwanted", "lat": 34.00, "lon": -118.20 }
        ],
        "locations": [
            { "id": "NJ-RETURNS", "lat": 40.73, "lon": -74.17, "capacity": 2,
              "dispositions": { "restock_new": "1.00", "open_box": "1.50", "return_to_vendor": "0.80", "liquidate": "0.50", "recycle": "0.30" } },
            { "id": "LA-RETURNS", "lat": 34.05, "lon": -118.24, "capacity": 1,
              "dispositions": { "restock_new": "1.20", "liquidate": "0.40", "recycle": "0.30" } }
        ],
        "dispositions": {
            "restock_new": { "recovery_rate": "1", "grades": ["A"] },
            "open_box": { "recovery_rate": "0.8", "grades": ["A", "B"] },
            "return_to_vendor": {},
            "liquidate": { "recovery_rate": "0.15" },
            "recycle": {}
        },
        "transport_cost_per_km": "0.002",
        "hold_cost": "1.00"
    })
}

fn run(input: &Value, extra: &[&str]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().expect("dir");
    let (inp, out) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&inp, input.to_string()).expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .arg("returns-plan")
        .arg("--input")
        .arg(&inp)
        .arg("--output")
        .arg(&out)
        .args(extra)
        .output()
        .expect("runs");
    let plan = std::fs::read_to_string(&out).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), plan, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_batch_is_planned_within_capacity_and_better_than_greedy_or_equal() {
    let (code, plan, err) = run(&batch(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(plan["method"], "milp");
    let by_id =
        |id: &str| plan["items"].as_array().expect("items").iter().find(|i| i["id"] == id).expect("item").clone();
    // Grade A near New Jersey is restocked there; the damaged one goes back to its vendor;
    // Los Angeles has room for one: the sellable mug, and the broken one waits or recycles.
    assert_eq!(
        (by_id("R1")["disposition"].clone(), by_id("R1")["location"].clone()),
        (json!("restock_new"), json!("NJ-RETURNS"))
    );
    assert_eq!(by_id("R2")["disposition"], "return_to_vendor");
    assert_eq!(
        (by_id("R4")["disposition"].clone(), by_id("R4")["location"].clone()),
        (json!("restock_new"), json!("LA-RETURNS"))
    );
    let at = |loc: &str| plan["items"].as_array().expect("items").iter().filter(|i| i["location"] == loc).count();
    assert!(at("NJ-RETURNS") <= 2 && at("LA-RETURNS") <= 1, "{plan}");
    let objective: f64 = plan["objective"].as_str().expect("objective").parse().expect("number");
    let (code, greedy, _) = run(&batch(), &["--greedy"]);
    assert_eq!(code, 0);
    assert_eq!(greedy["method"], "greedy");
    let g: f64 = greedy["objective"].as_str().expect("objective").parse().expect("number");
    assert!(objective >= g, "{objective} < greedy {g}");
    let bound: f64 = greedy["bound"].as_str().expect("bound").parse().expect("number");
    assert!(bound >= objective - 1e-6, "the greedy plan's bound {bound} is below the optimum {objective}");
}

#[test]
fn bad_input_exits_2_naming_where() {
    let mut b = batch();
    b["items"][2]["grade"] = json!("E");
    let (code, plan, err) = run(&b, &[]);
    assert_eq!((code, plan), (2, Value::Null), "{err}");
    assert!(err.contains("items[2].grade"), "{err}");
    let mut b = batch();
    b["dispositions"]["liquidate"]["recovery_rate"] = json!("1.5");
    let (code, _, err) = run(&b, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("dispositions.liquidate: recovery_rate is between 0 and 1"), "{err}");
    let mut b = batch();
    b["locations"][0]["speed"] = json!(3);
    let (code, _, err) = run(&b, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("locations[0]") && err.contains("speed"), "{err}");
}
