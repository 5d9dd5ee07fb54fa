use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn bands() -> Vec<Band> {
    vec![
        Band { max_km: 100.0, parcel: dec("5"), unit: dec("0.20") },
        Band { max_km: 1000.0, parcel: dec("8"), unit: dec("0.40") },
        Band { max_km: 5000.0, parcel: dec("12"), unit: dec("0.60") },
    ]
}

fn site(id: &str, lat: f64, lon: f64, stock: &[(&str, u32)]) -> Site {
    Site {
        id: id.into(),
        lat,
        lon,
        store: false,
        ship_from_store: false,
        handling_per_parcel: dec("1"),
        handling_per_unit: dec("0.10"),
        bands: bands(),
        stock: stock.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        protect: BTreeMap::new(),
    }
}

fn order(id: &str, lines: &[(&str, u32)], lat: f64, lon: f64) -> Order {
    Order {
        id: id.into(),
        lines: lines.iter().map(|(s, q)| Line { sku: (*s).into(), quantity: *q }).collect(),
        lat,
        lon,
        pinned: None,
    }
}

fn problem(orders: Vec<Order>, sites: Vec<Site>) -> Problem {
    Problem { orders, sites, split_cost: dec("4"), unfilled_cost: dec("100") }
}

fn ids(a: &Allocation) -> Vec<Option<&str>> {
    a.lines.iter().map(|l| l.as_deref()).collect()
}

#[test]
fn the_nearest_site_ships_unless_a_store_may_not() {
    let mut store = site("STORE", 40.75, -73.99, &[("TEE", 5)]);
    store.store = true;
    let p = problem(
        vec![order("O1", &[("TEE", 1)], 40.74, -73.99)],
        vec![store.clone(), site("DC", 39.95, -75.17, &[("TEE", 50)])],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    assert_eq!(ids(&plan.allocations[0]), [Some("DC")], "a store ships online orders only when allowed");
    let mut p = p;
    p.sites[0].ship_from_store = true;
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    assert_eq!(ids(&plan.allocations[0]), [Some("STORE")]);
    p.orders[0].pinned = Some("DC".into());
    assert_eq!(ids(&solve(&p, &SolveOptions::default()).expect("plan").allocations[0]), [Some("DC")]);
}

#[test]
fn one_parcel_from_a_farther_site_beats_a_split() {
    let p = problem(
        vec![order("O1", &[("TEE", 1), ("MUG", 1)], 40.74, -73.99)],
        vec![site("NEAR", 40.75, -73.99, &[("TEE", 5)]), site("FAR", 39.95, -75.17, &[("TEE", 5), ("MUG", 5)])],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    assert_eq!(ids(&plan.allocations[0]), [Some("FAR"), Some("FAR")]);
    assert_eq!(plan.allocations[0].parcels, 1);
}

#[test]
fn a_site_whose_stock_is_needed_is_spared() {
    let mut near = site("NEAR", 40.75, -73.99, &[("TEE", 2)]);
    near.protect.insert("TEE".into(), Protection { demand: 3.0, stockout_cost: dec("30") });
    let p = problem(
        vec![order("O1", &[("TEE", 1)], 40.74, -73.99)],
        vec![near, site("FAR", 39.95, -75.17, &[("TEE", 40)])],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    assert_eq!(ids(&plan.allocations[0]), [Some("FAR")], "{plan:?}");
}

#[test]
fn a_line_no_site_can_ship_is_unfilled_and_stock_is_shared_in_order() {
    let p = problem(
        vec![order("O1", &[("TEE", 3)], 40.74, -73.99), order("O2", &[("TEE", 3), ("CAP", 1)], 40.74, -73.99)],
        vec![site("DC", 40.07, -74.70, &[("TEE", 4)])],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    let filled: u32 = plan
        .allocations
        .iter()
        .zip(&p.orders)
        .flat_map(|(a, o)| a.lines.iter().zip(&o.lines).filter(|(s, _)| s.is_some()).map(|(_, l)| l.quantity))
        .sum();
    assert_eq!(filled, 3, "4 TEEs cannot fill two lines of 3");
    assert_eq!(plan.allocations[1].lines[1], None);
    assert!(plan.allocations[1].unfilled >= dec("100"));
}

#[test]
fn an_order_left_unfilled_pays_no_split() {
    // The two A go to one order or the other: unfilling the two-parcel order's A is cheaper
    // than unfilling the other order (found by the property test below).
    let p = problem(
        vec![order("O0", &[("C", 1), ("A", 2)], 40.0, -74.0), order("O1", &[("A", 2)], 40.0, -74.0)],
        vec![site("S0", 40.0, -74.0, &[("A", 2)]), site("S1", 40.0, -74.0, &[("C", 1)])],
    );
    let plan = solve(&p, &SolveOptions::default()).expect("plan");
    assert_eq!(plan.cost, dec("212.90"), "{plan:?}");
    assert_eq!(ids(&plan.allocations[1]), [Some("S0")]);
}

#[test]
fn bad_input_is_named() {
    let mut p = problem(vec![order("O1", &[("TEE", 0)], 0.0, 0.0)], vec![site("DC", 0.0, 0.0, &[])]);
    assert!(matches!(solve(&p, &SolveOptions::default()), Err(AllocationError::Order(0, _))));
    p.orders[0].lines[0].quantity = 1;
    p.orders[0].pinned = Some("NOWHERE".into());
    assert!(matches!(solve(&p, &SolveOptions::default()), Err(AllocationError::Order(0, _))));
    p.orders[0].pinned = None;
    p.sites.push(site("DC", 1.0, 1.0, &[]));
    assert!(matches!(solve(&p, &SolveOptions::default()), Err(AllocationError::Site(1, _))));
}

/// The cheapest of every way to ship every line (or not), in order: exhaustive.
fn exhaustive(p: &Problem) -> Decimal {
    let lines: Vec<(usize, usize)> =
        p.orders.iter().enumerate().flat_map(|(o, ord)| (0..ord.lines.len()).map(move |l| (o, l))).collect();
    let options = p.sites.len() + 1;
    let mut best: Option<Decimal> = None;
    let total = options.pow(lines.len() as u32);
    for code in 0..total {
        let mut c = code;
        let mut choices: Vec<Vec<Option<usize>>> = p.orders.iter().map(|o| vec![None; o.lines.len()]).collect();
        for &(o, l) in &lines {
            let k = c % options;
            c /= options;
            choices[o][l] = (k > 0).then(|| k - 1);
        }
        if let Ok(plan) = score(p, &choices) {
            best = Some(best.map_or(plan.cost, |b: Decimal| b.min(plan.cost)));
        }
    }
    best.expect("leaving everything unfilled is always possible")
}

fn check_stock(p: &Problem, plan: &Plan) {
    let mut used: BTreeMap<(String, String), u32> = BTreeMap::new();
    for (a, o) in plan.allocations.iter().zip(&p.orders) {
        assert_eq!(a.lines.len(), o.lines.len());
        for (s, l) in a.lines.iter().zip(&o.lines) {
            if let Some(s) = s {
                *used.entry((s.clone(), l.sku.clone())).or_default() += l.quantity;
            }
        }
    }
    for ((s, sku), u) in used {
        let site = p.sites.iter().find(|x| x.id == s).expect("site");
        assert!(u <= site.stock.get(&sku).copied().unwrap_or(0), "{s} ships {u} × {sku}");
        assert!(site.ships_online(), "{s} may not ship");
    }
}

fn batch(orders: usize, sites: usize) -> impl Strategy<Value = Problem> {
    let line = (0usize..3, 1u32..3);
    let ord = (proptest::collection::vec(line, 1..=2), -0.5f64..0.5, -0.5f64..0.5);
    let st = (
        proptest::collection::vec(0u32..4, 3),
        -0.5f64..0.5,
        -0.5f64..0.5,
        proptest::option::of(0.0f64..3.0),
        any::<bool>(),
    );
    (proptest::collection::vec(ord, 1..=orders), proptest::collection::vec(st, 1..=sites)).prop_map(|(os, ss)| {
        let skus = ["A", "B", "C"];
        let orders = os
            .into_iter()
            .enumerate()
            .map(|(i, (ls, la, lo))| {
                let lines: Vec<(&str, u32)> = ls.into_iter().map(|(k, q)| (skus[k], q)).collect();
                order(&format!("O{i}"), &lines, 40.0 + la, -74.0 + lo)
            })
            .collect();
        let sites = ss
            .into_iter()
            .enumerate()
            .map(|(i, (stock, la, lo, demand, store))| {
                let stock: Vec<(&str, u32)> = skus.iter().copied().zip(stock).collect();
                let mut s = site(&format!("S{i}"), 40.0 + la, -74.0 + lo, &stock);
                s.store = store && i > 0;
                if let Some(d) = demand {
                    s.protect.insert("A".into(), Protection { demand: d, stockout_cost: dec("9") });
                }
                s
            })
            .collect();
        problem(orders, sites)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocations_use_only_available_stock_and_the_milp_is_optimal(p in batch(3, 3)) {
        let exact = solve(&p, &SolveOptions::default()).expect("plan");
        let quick = greedy(&p, &SolveOptions::default()).expect("greedy");
        check_stock(&p, &exact);
        check_stock(&p, &quick);
        prop_assert!(exact.cost <= quick.cost, "milp {} > greedy {}", exact.cost, quick.cost);
        let best = exhaustive(&p);
        prop_assert!((exact.cost - best).abs() < dec("0.01"), "milp {} vs exhaustive {}", exact.cost, best);
        let bound = lower_bound(&p).expect("valid").expect("solved");
        prop_assert!(bound <= best + dec("0.01"), "the bound {} is above the optimum {}", bound, best);
    }
}
