//! `quartermaster allocate`: orders allocated to shipping locations offline from JSON, and bad
//! input refused with where it is wrong.

use serde_json::{Value, json};

fn batch() -> Value {
    let bands = json!([
        { "max_km": 100, "parcel": "5.00", "unit": "0.20" },
        { "max_km": 1000, "parcel": "8.00", "unit": "0.40" },
        { "max_km": 5000, "parcel": "12.00", "unit": "0.60" }
    ]);
    json!({
        "orders": [
            { "id": "O1", "lines": [{ "sku": "TEE", "quantity": 2 }, { "sku": "MUG", "quantity": 1 }], "lat": 40.74, "lon": -73.99 },
            { "id": "O2", "lines": [{ "sku": "TEE", "quantity": 1 }], "lat": 34.05, "lon": -118.24 },
            { "id": "O3", "lines": [{ "sku": "CAP", "quantity": 1 }], "lat": 34.05, "lon": -118.24 }
        ],
        "sites": [
            { "id": "NJ-DC", "lat": 40.73, "lon": -74.17, "handling_per_parcel": "1.00", "handling_per_unit": "0.10",
              "bands": bands, "stock": { "TEE": 10, "MUG": 4 } },
            { "id": "LA-STORE", "lat": 34.05, "lon": -118.25, "store": true, "ship_from_store": true,
              "handling_per_parcel": "2.00", "bands": bands, "stock": { "TEE": 3 },
              "protect": { "TEE": { "demand": 0.5, "stockout_cost": "20" } } }
        ],
        "split_cost": "4.00",
        "unfilled_cost": "100"
    })
}

fn run(input: &Value) -> (i32, Value, String) {
    let dir = tempfile::tempdir().expect("dir");
    let (inp, out) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&inp, input.to_string()).expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .arg("allocate")
        .arg("--input")
        .arg(&inp)
        .arg("--output")
        .arg(&out)
        .output()
        .expect("runs");
    let plan = std::fs::read_to_string(&out).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), plan, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn orders_ship_from_the_cheapest_locations_with_stock() {
    let (code, plan, err) = run(&batch());
    assert_eq!(code, 0, "{err}");
    assert_eq!(plan["method"], "milp");
    let o = |i: usize| plan["orders"][i].clone();
    assert_eq!(o(0)["lines"], json!(["NJ-DC", "NJ-DC"]), "{plan}");
    assert_eq!(o(0)["parcels"], 1);
    // The Los Angeles store ships its neighbour's order: a short trip beats a cross-country one.
    assert_eq!(o(1)["lines"], json!(["LA-STORE"]), "{plan}");
    // Nobody has caps: unfilled, at its cost.
    assert_eq!(o(2)["lines"], json!([null]));
    assert_eq!(o(2)["unfilled"], "100");
}

#[test]
fn bad_input_exits_2_naming_where() {
    let mut b = batch();
    b["orders"][1]["lines"][0]["quantity"] = json!(-1);
    let (code, plan, err) = run(&b);
    assert_eq!((code, plan), (2, Value::Null), "{err}");
    assert!(err.contains("orders[1].lines[0].quantity"), "{err}");
    let mut b = batch();
    b["orders"][0]["pinned"] = json!("NOWHERE");
    let (code, _, err) = run(&b);
    assert_eq!(code, 2);
    assert!(err.contains("orders[0]: pinned to NOWHERE"), "{err}");
}
