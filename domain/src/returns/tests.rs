use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rust_decimal::Decimal;

use super::*;

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn terms() -> BTreeMap<Disposition, Terms> {
    let t = |rate: &str, yield_rate: Option<&str>, grades: &[Grade]| Terms {
        recovery_rate: dec(rate),
        yield_rate: yield_rate.map(dec),
        grades: grades.to_vec(),
    };
    BTreeMap::from([
        (Disposition::RestockNew, t("1", None, &[Grade::A])),
        (Disposition::OpenBox, t("0.8", None, &[Grade::A, Grade::B])),
        (Disposition::Refurbish, t("0.9", Some("0.8"), &[Grade::B, Grade::C])),
        (Disposition::ReturnToVendor, t("0", None, &[])),
        (Disposition::Liquidate, t("0.15", None, &[])),
        (Disposition::Recycle, t("0", None, &[])),
    ])
}

fn location(id: &str, lat: f64, lon: f64, capacity: u32, all: bool) -> Location {
    let mut dispositions = BTreeMap::from([(Disposition::Liquidate, dec("0.50")), (Disposition::Recycle, dec("0.30"))]);
    if all {
        dispositions.insert(Disposition::RestockNew, dec("1.00"));
        dispositions.insert(Disposition::OpenBox, dec("1.50"));
        dispositions.insert(Disposition::Refurbish, dec("6.00"));
        dispositions.insert(Disposition::ReturnToVendor, dec("0.80"));
    }
    Location { id: id.into(), lat, lon, capacity, dispositions }
}

fn item(id: usize, value: &str, grade: Grade, lat: f64, lon: f64) -> Item {
    Item {
        id: format!("R{id}"),
        sku: format!("SKU-{}", id % 3),
        value: dec(value),
        grade,
        reason: "size".into(),
        lat,
        lon,
        vendor_credit: None,
        restock_bonus: BTreeMap::new(),
    }
}

fn problem(items: Vec<Item>, locations: Vec<Location>) -> Problem {
    Problem { items, locations, dispositions: terms(), transport_cost_per_km: dec("0.002"), hold_cost: dec("1") }
}

/// The best objective by dynamic programming over every capacity state: exhaustive.
fn exhaustive(p: &Problem) -> Decimal {
    let opts = options(p);
    let caps: Vec<u32> = p.locations.iter().map(|l| l.capacity).collect();
    fn go(
        i: usize,
        left: &mut Vec<u32>,
        opts: &[Vec<Candidate>],
        hold: Decimal,
        memo: &mut HashMap<(usize, Vec<u32>), Decimal>,
    ) -> Decimal {
        if i == opts.len() {
            return Decimal::ZERO;
        }
        if let Some(v) = memo.get(&(i, left.clone())) {
            return *v;
        }
        let mut best = -hold + go(i + 1, left, opts, hold, memo);
        for o in &opts[i] {
            if left[o.location] > 0 {
                left[o.location] -= 1;
                best = best.max(o.net + go(i + 1, left, opts, hold, memo));
                left[o.location] += 1;
            }
        }
        memo.insert((i, left.clone()), best);
        best
    }
    go(0, &mut caps.clone(), &opts, p.hold_cost, &mut HashMap::new())
}

fn check_plan(p: &Problem, plan: &Plan) {
    assert_eq!(plan.decisions.len(), p.items.len(), "one decision per item");
    for (d, it) in plan.decisions.iter().zip(&p.items) {
        assert_eq!(d.item, it.id);
        assert_eq!(d.disposition.is_some(), d.location.is_some());
    }
    for l in &p.locations {
        let used = plan.decisions.iter().filter(|d| d.location.as_deref() == Some(l.id.as_str())).count();
        assert!(used <= l.capacity as usize, "{} processes {used} > {}", l.id, l.capacity);
    }
    for d in &plan.decisions {
        if let (Some(disp), Some(loc)) = (d.disposition, &d.location) {
            let l = p.locations.iter().find(|l| &l.id == loc).expect("location");
            assert!(l.dispositions.contains_key(&disp), "{loc} does not {disp:?}");
            let it = p.items.iter().find(|i| i.id == d.item).expect("item");
            let t = &p.dispositions[&disp];
            assert!(t.grades.is_empty() || t.grades.contains(&it.grade), "{disp:?} on grade {:?}", it.grade);
        }
    }
    let total: Decimal = plan.decisions.iter().map(|d| d.net).sum();
    assert_eq!(total, plan.objective);
    assert!(plan.bound >= plan.objective, "bound {} < objective {}", plan.bound, plan.objective);
}

#[test]
fn grade_a_is_restocked_near_and_broken_items_are_liquidated() {
    let p = problem(
        vec![item(1, "40", Grade::A, 40.7, -74.0), item(2, "40", Grade::D, 40.7, -74.0)],
        vec![location("NYC", 40.71, -74.01, 10, true), location("LA", 34.05, -118.24, 10, true)],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    check_plan(&p, &plan);
    assert_eq!(plan.method, Method::Milp);
    assert_eq!(
        (plan.decisions[0].disposition, plan.decisions[0].location.as_deref()),
        (Some(Disposition::RestockNew), Some("NYC"))
    );
    // 40 × 0.15 = 6.00 − 0.50 beats recycling; New York is nearer.
    assert_eq!(plan.decisions[1].disposition, Some(Disposition::Liquidate));
    assert_eq!(plan.decisions[1].location.as_deref(), Some("NYC"));
}

#[test]
fn capacity_sends_the_less_valuable_items_elsewhere_or_holds_them() {
    // One slot near, none far: the item worth more takes it, the other waits.
    let p = problem(
        vec![item(1, "20", Grade::A, 40.7, -74.0), item(2, "90", Grade::A, 40.7, -74.0)],
        vec![location("NYC", 40.71, -74.01, 1, true)],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    check_plan(&p, &plan);
    assert_eq!(plan.decisions[0].disposition, None, "held");
    assert_eq!(plan.decisions[0].net, dec("-1"));
    assert_eq!(plan.decisions[1].disposition, Some(Disposition::RestockNew));
}

#[test]
fn the_vendors_credit_and_the_restock_bonus_count() {
    let mut a = item(1, "30", Grade::C, 40.7, -74.0);
    a.vendor_credit = Some(dec("25"));
    let mut b = item(2, "30", Grade::A, 40.7, -74.0);
    // LA needs the SKU: restocking there is worth the trip.
    b.restock_bonus.insert("LA".into(), dec("20"));
    let p = problem(vec![a, b], vec![location("NYC", 40.71, -74.01, 5, true), location("LA", 34.05, -118.24, 5, true)]);
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    assert_eq!(plan.decisions[0].disposition, Some(Disposition::ReturnToVendor));
    assert_eq!(plan.decisions[0].expected_recovery, dec("25"));
    assert_eq!(
        (plan.decisions[1].disposition, plan.decisions[1].location.as_deref()),
        (Some(Disposition::RestockNew), Some("LA"))
    );
}

#[test]
fn given_decisions_are_scored_and_refused_when_impossible() {
    let p = problem(
        vec![item(1, "40", Grade::A, 40.7, -74.0), item(2, "40", Grade::D, 40.7, -74.0)],
        vec![location("NYC", 40.71, -74.01, 1, true)],
    );
    let plan = score(&p, &[Some((0, Disposition::RestockNew)), None]).expect("scored");
    check_plan(&p, &plan);
    assert_eq!(plan.method, Method::Given);
    assert_eq!(plan.decisions[1].net, dec("-1"));
    assert_eq!(plan.objective, solve(&p, &SolveOptions::default()).expect("plan").objective);
    assert!(matches!(
        score(&p, &[Some((0, Disposition::RestockNew)), Some((0, Disposition::Liquidate))]),
        Err(ReturnsError::Location(0, _))
    ));
    assert!(
        matches!(score(&p, &[None, Some((0, Disposition::RestockNew))]), Err(ReturnsError::Item(1, _))),
        "grade D is not restocked"
    );
}

#[test]
fn bad_input_is_named() {
    let mut p = problem(vec![item(1, "-3", Grade::A, 0.0, 0.0)], vec![location("X", 0.0, 0.0, 1, true)]);
    assert_eq!(
        solve(&p, &SolveOptions::default()),
        Err(ReturnsError::Item(0, "value and vendor_credit are 0 or more".into()))
    );
    p.items[0].value = dec("3");
    p.items.push(p.items[0].clone());
    assert!(matches!(solve(&p, &SolveOptions::default()), Err(ReturnsError::Item(1, _))));
    p.items.pop();
    p.dispositions.get_mut(&Disposition::OpenBox).expect("terms").recovery_rate = dec("1.5");
    assert!(matches!(solve(&p, &SolveOptions::default()), Err(ReturnsError::Terms("open_box", _))));
}

/// A small random batch: up to `n` items, up to `l` locations with small capacities.
fn batch(n: usize, l: usize) -> impl Strategy<Value = Problem> {
    let it = (1u32..200, 0usize..4, -0.5f64..0.5, -0.5f64..0.5, proptest::option::of(0u32..60));
    let loc = (0u32..5, -0.5f64..0.5, -0.5f64..0.5, any::<bool>());
    (proptest::collection::vec(it, 1..=n), proptest::collection::vec(loc, 1..=l)).prop_map(|(items, locs)| {
        let grades = [Grade::A, Grade::B, Grade::C, Grade::D];
        let items = items
            .into_iter()
            .enumerate()
            .map(|(i, (v, g, la, lo, credit))| {
                let mut it = item(i, &v.to_string(), grades[g], 40.0 + la, -74.0 + lo);
                it.vendor_credit = credit.map(Decimal::from);
                it
            })
            .collect();
        let locations = locs
            .into_iter()
            .enumerate()
            .map(|(i, (cap, la, lo, all))| location(&format!("L{i}"), 40.0 + la, -74.0 + lo, cap, all || i == 0))
            .collect();
        let mut p = problem(items, locations);
        p.transport_cost_per_km = dec("0.05");
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_respect_capacity_give_each_item_one_outcome_and_the_milp_is_optimal(p in batch(8, 3)) {
        let exact = solve(&p, &SolveOptions::default()).expect("plan");
        let quick = greedy(&p).expect("greedy");
        check_plan(&p, &exact);
        check_plan(&p, &quick);
        prop_assert_eq!(exact.method, Method::Milp);
        prop_assert!(exact.objective >= quick.objective, "milp {} < greedy {}", exact.objective, quick.objective);
        prop_assert_eq!(exact.objective, exhaustive(&p));
        prop_assert!(quick.bound >= exhaustive(&p), "the bound {} is below the optimum", quick.bound);
    }
}

#[test]
fn thirty_items_at_four_locations_match_the_exhaustive_search() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..5 {
        let p = batch(30, 4).new_tree(&mut runner).expect("case").current();
        let plan = solve(&p, &SolveOptions::default()).expect("plan");
        check_plan(&p, &plan);
        assert_eq!(plan.method, Method::Milp);
        assert_eq!(plan.objective, exhaustive(&p), "{} items, {} locations", p.items.len(), p.locations.len());
    }
}
