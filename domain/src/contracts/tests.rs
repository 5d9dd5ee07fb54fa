use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::*;

const DOC: &str = r#"{
  "terms": {
    "currency": "USD",
    "items": [
      { "sku": "TEE-M", "unit_price": "4.00", "price_breaks": [{ "min_quantity": 100, "unit_price": "3.50" }],
        "moq": 24, "pack_size": 12 },
      { "sku": "MUG", "unit_price": "2.10" }
    ],
    "lead_time_days": 10,
    "payment_terms": "net 30",
    "late_penalty": { "percent_per_day": "1", "max_percent": "5" },
    "valid_from": "2026-12-01",
    "valid_to": "2027-11-30"
  },
  "rules": [
    { "id": "reorder", "when": { "stock_below": { "sku": "TEE-M", "location": "WH", "units": 40 } },
      "then": { "issue_po": { "sku": "TEE-M", "location": "WH", "quantity": { "order_up_to": 150 } } } },
    { "id": "nudge", "when": { "po_unacknowledged": { "hours": 24 } }, "then": { "send_reminder": {} } },
    { "id": "escalate", "when": { "rule_fired": { "rule": "nudge", "hours": 24 } },
      "then": { "escalate": { "email": "buyer@shop.example" } } },
    { "id": "late", "when": { "shipment_late": { "days": 1 } }, "then": { "apply_late_penalty": {} } }
  ]
}"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

fn state(now: DateTime<Utc>, available: i64) -> State {
    let mut stock = BTreeMap::new();
    stock.insert(
        ("TEE-M".to_owned(), "WH".to_owned()),
        Position { available, on_order: 0, daily_demand: Decimal::new(5, 0), stockout_on: None },
    );
    State { now, stock, purchase_orders: vec![], approved_lines: vec![], fired: BTreeMap::new() }
}

fn ids() -> impl Iterator<Item = Uuid> {
    (1..).map(|n: u128| Uuid::from_u128(n))
}

#[test]
fn a_document_reads_and_its_rules_fire_in_order() {
    let doc = parse(DOC).expect("valid");
    let s = state(at("2026-12-05T09:00:00Z"), 30);
    let fired = evaluate(&doc, &s);
    // 150 − 30 = 120 units: whole packs of 12, the 100-unit break's price.
    assert_eq!(
        fired,
        vec![Fired {
            rule: "reorder".into(),
            subject: Subject::Slot { sku: "TEE-M".into(), location: "WH".into() },
            effect: Effect::IssuePo {
                sku: "TEE-M".into(),
                location: "WH".into(),
                quantity: 120,
                unit_price: Decimal::new(350, 2),
                value: Decimal::new(42000, 2),
                due_on: NaiveDate::from_ymd_opt(2026, 12, 15).expect("date"),
            },
        }]
    );
}

#[test]
fn an_unacknowledged_order_is_reminded_once_then_escalated_once() {
    let doc = parse(DOC).expect("valid");
    let mut s = state(at("2026-12-05T09:00:00Z"), 30);
    let mut id = ids();
    let first = evaluate(&doc, &s);
    s.record(&first, &mut id);
    assert_eq!(s.purchase_orders.len(), 1);
    let po = s.purchase_orders[0].id;
    // The stock stays low, the order stays open: nothing new.
    assert_eq!(evaluate(&doc, &s), vec![]);
    s.now += Duration::hours(25);
    let second = evaluate(&doc, &s);
    assert_eq!(second.iter().map(|f| f.effect.clone()).collect::<Vec<_>>(), vec![Effect::Remind { po }]);
    s.record(&second, &mut id);
    assert_eq!(evaluate(&doc, &s), vec![]);
    s.now += Duration::hours(24);
    let third = evaluate(&doc, &s);
    assert_eq!(
        third.iter().map(|f| f.effect.clone()).collect::<Vec<_>>(),
        vec![Effect::Escalate { email: "buyer@shop.example".into(), subject: Subject::Po { id: po } }]
    );
    s.record(&third, &mut id);
    assert_eq!(evaluate(&doc, &s), vec![]);
}

#[test]
fn a_late_order_is_penalised_by_the_days_late_up_to_the_cap() {
    let doc = parse(DOC).expect("valid");
    let mut s = state(at("2026-12-05T09:00:00Z"), 30);
    let first = evaluate(&doc, &s);
    s.record(&first, &mut ids());
    s.purchase_orders[0].status = PoStatus::Acknowledged;
    let po = s.purchase_orders[0].id;
    // Due on the 15th; on the 18th it is 3 days late: 3 % of 420.00.
    s.now = at("2026-12-18T09:00:00Z");
    let fired = evaluate(&doc, &s);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].effect, Effect::Penalty { po, days_late: 3, amount: Decimal::new(1260, 2) });
    // Ten days late would be 10 %: the cap is 5 %.
    let mut later = s.clone();
    later.now = at("2026-12-25T09:00:00Z");
    assert_eq!(evaluate(&doc, &later)[0].effect, Effect::Penalty { po, days_late: 10, amount: Decimal::new(2100, 2) });
    // Applied once.
    s.record(&fired, &mut ids());
    s.now = at("2026-12-25T09:00:00Z");
    assert_eq!(evaluate(&doc, &s), vec![]);
}

#[test]
fn no_order_outside_the_contracts_dates() {
    let doc = parse(DOC).expect("valid");
    assert_eq!(evaluate(&doc, &state(at("2026-11-30T23:00:00Z"), 0)), vec![]);
    assert_eq!(evaluate(&doc, &state(at("2027-12-01T00:00:00Z"), 0)), vec![]);
    assert_eq!(evaluate(&doc, &state(at("2027-11-30T23:59:59Z"), 0)).len(), 1);
}

#[test]
fn an_approved_plan_line_is_ordered_once_in_the_terms() {
    let mut doc = parse(DOC).expect("valid");
    doc.rules = vec![Rule {
        id: "plan".into(),
        when: Condition::PlanLineApproved { sku: None },
        then: Action::IssuePo { sku: "MUG".into(), location: "WH".into(), quantity: Quantity::FromPlan },
    }];
    validate(&doc).expect("valid");
    let mut s = state(at("2026-12-05T09:00:00Z"), 100);
    s.approved_lines.push(ApprovedLine {
        id: Uuid::from_u128(77),
        sku: "MUG".into(),
        location: "WH".into(),
        quantity: 7,
    });
    // A line for another SKU is not this rule's to order.
    s.approved_lines.push(ApprovedLine {
        id: Uuid::from_u128(78),
        sku: "TEE-M".into(),
        location: "WH".into(),
        quantity: 50,
    });
    let fired = evaluate(&doc, &s);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(matches!(fired[0].effect, Effect::IssuePo { quantity: 7, .. }), "{fired:?}");
    s.record(&fired, &mut ids());
    s.purchase_orders[0].status = PoStatus::Received;
    assert_eq!(evaluate(&doc, &s), vec![], "a line is ordered once, even after its order closed");
}

fn problems(json: &str) -> Vec<(String, String)> {
    parse(json).expect_err("invalid").into_iter().map(|e| (e.path, e.message)).collect()
}

#[test]
fn bad_documents_are_refused_with_the_path_of_the_offending_element() {
    // Unknown field and wrong type: from reading.
    let unknown = DOC.replace(r#""units": 40"#, r#""units": 40, "unit": 3"#);
    let p = problems(&unknown);
    assert_eq!(p[0].0, "rules[0].when.stock_below.unit", "{p:?}");
    assert!(p[0].1.contains("unknown field `unit`"), "{p:?}");
    let wrong = DOC.replace(r#""hours": 24 } }, "then": { "send"#, r#""hours": "a day" } }, "then": { "send"#);
    let p = problems(&wrong);
    assert_eq!(p[0].0, "rules[1].when.po_unacknowledged.hours", "{p:?}");
    assert!(p[0].1.contains("invalid type"), "{p:?}");
    // A SKU the terms do not cover.
    let uncovered = DOC.replace(r#""stock_below": { "sku": "TEE-M""#, r#""stock_below": { "sku": "HAT""#);
    assert_eq!(
        problems(&uncovered),
        vec![("rules[0].when.stock_below.sku".into(), "HAT is not covered by the contract's terms".into())]
    );
    // Rules following each other in a cycle.
    let cyclic = DOC.replace(
        r#""id": "nudge", "when": { "po_unacknowledged": { "hours": 24 } }"#,
        r#""id": "nudge", "when": { "any": [{ "po_unacknowledged": { "hours": 24 } }, { "rule_fired": { "rule": "escalate" } }] }"#,
    );
    let p = problems(&cyclic);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "rules[1].when");
    assert_eq!(p[0].1, "rules follow each other in a cycle: nudge → escalate → nudge");
    // Several problems at once, each with its place.
    let many = DOC
        .replace(r#""moq": 24"#, r#""moq": 0"#)
        .replace(r#""valid_to": "2027-11-30""#, r#""valid_to": "2026-01-01""#)
        .replace(r#""rule": "nudge""#, r#""rule": "nope""#);
    let paths: Vec<String> = problems(&many).into_iter().map(|p| p.0).collect();
    assert_eq!(paths, ["terms.valid_to", "terms.items[0].moq", "rules[2].when.rule_fired.rule"]);
    // An action on a purchase order needs a condition about one.
    let misplaced = DOC.replace(r#""then": { "send_reminder": {} }"#, r#""then": { "cancel": {} }"#).replace(
        r#""when": { "po_unacknowledged": { "hours": 24 } }"#,
        r#""when": { "date": { "on": "2027-01-01" } }"#,
    );
    assert_eq!(problems(&misplaced)[0].0, "rules[1].then.cancel");
}

fn arb_doc() -> impl Strategy<Value = Document> {
    (1u32..50, 1u32..24, 1u32..400, 200u32..900, 1u32..30, 0usize..3).prop_map(
        |(moq, pack, break_at, level, lead, quantity_kind)| {
            let mut doc = parse(DOC).expect("valid");
            doc.terms.items[0].moq = moq;
            doc.terms.items[0].pack_size = pack;
            doc.terms.items[0].price_breaks =
                vec![PriceBreak { min_quantity: break_at, unit_price: Decimal::new(350, 2) }];
            doc.terms.lead_time_days = lead;
            doc.rules[0].then = Action::IssuePo {
                sku: "TEE-M".into(),
                location: "WH".into(),
                quantity: match quantity_kind {
                    0 => Quantity::OrderUpTo(level),
                    1 => Quantity::Fixed(level / 10),
                    _ => Quantity::CoverDays(level / 20),
                },
            };
            doc
        },
    )
}

fn arb_state() -> impl Strategy<Value = State> {
    (0i64..400, 0i64..3 * 24 * 400, 0i64..200, 0u32..20, proptest::bool::ANY).prop_map(
        |(available, minutes, on_order, demand, open_po)| {
            let now = at("2026-11-20T00:00:00Z") + Duration::minutes(minutes * 10);
            let mut s = state(now, available);
            if let Some(p) = s.stock.get_mut(&("TEE-M".to_owned(), "WH".to_owned())) {
                p.on_order = on_order;
                p.daily_demand = Decimal::from(demand);
            }
            if open_po {
                s.purchase_orders.push(PurchaseOrder {
                    id: Uuid::from_u128(9),
                    sku: "TEE-M".into(),
                    location: "WH".into(),
                    quantity: 24,
                    value: Decimal::new(9600, 2),
                    status: PoStatus::Issued,
                    issued_at: now - Duration::hours(30),
                    due_on: now.date_naive() - Duration::days(2),
                });
            }
            s
        },
    )
}

proptest! {
    #[test]
    fn evaluation_is_deterministic(doc in arb_doc(), s in arb_state()) {
        prop_assert_eq!(evaluate(&doc, &s), evaluate(&doc, &s.clone()));
    }

    #[test]
    fn an_order_is_always_within_the_terms(doc in arb_doc(), s in arb_state()) {
        let item = &doc.terms.items[0];
        for f in evaluate(&doc, &s) {
            if let Effect::IssuePo { quantity, unit_price, value, .. } = f.effect {
                prop_assert!(doc.terms.valid_on(s.now.date_naive()));
                prop_assert!(quantity >= item.moq);
                prop_assert_eq!(quantity % item.pack_size, 0);
                let expected = if quantity >= item.price_breaks[0].min_quantity { item.price_breaks[0].unit_price } else { item.unit_price };
                prop_assert_eq!(unit_price, expected);
                prop_assert_eq!(value, unit_price * Decimal::from(quantity));
                prop_assert!(!s.purchase_orders.iter().any(|p| p.status.is_open()), "no second order while one is open");
            }
        }
    }

    #[test]
    fn evaluating_again_after_recording_does_nothing_new(doc in arb_doc(), s in arb_state()) {
        let mut s = s;
        let fired = evaluate(&doc, &s);
        s.record(&fired, &mut ids());
        prop_assert_eq!(evaluate(&doc, &s), vec![]);
    }
}

#[test]
fn a_document_names_its_skus_and_locations_with_their_paths() {
    let doc = parse(DOC).expect("valid");
    let refs = doc.references();
    assert_eq!(refs[0], ("terms.items[0].sku".to_owned(), Reference::Sku("TEE-M".into())));
    assert!(refs.contains(&("rules[0].when.stock_below.location".to_owned(), Reference::Location("WH".into()))));
    assert!(refs.contains(&("rules[0].then.issue_po.location".to_owned(), Reference::Location("WH".into()))));
    assert_eq!(doc.slots().into_iter().collect::<Vec<_>>(), vec![("TEE-M".to_owned(), "WH".to_owned())]);
    assert_eq!(
        path_parts("rules[1].when.all[0].stock_below.sku"),
        ["rules", "1", "when", "all", "0", "stock_below", "sku"]
    );
}
