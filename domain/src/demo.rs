//! A deterministic demo tenant: locations, suppliers, a catalog, stock and two years of daily demand.
//!
//! The demand has a trend, weekly and yearly seasonality, promotions with price cuts and the lift they
//! cause, stock-outs that censor sales, and a share of slow, intermittent items, so every engine has
//! something realistic to chew on. The same seed always gives the same data set.

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

/// How big a demo to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoParams {
    pub seed: u64,
    /// The last day with demand (usually yesterday).
    pub end: NaiveDate,
    /// Days of history ending at `end`.
    pub days: u32,
    pub products: usize,
}

impl DemoParams {
    /// The full demo: about 60 products with about 200 variants and two years of history.
    pub fn full(seed: u64, end: NaiveDate) -> Self {
        Self { seed, end, days: 730, products: 60 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationKind {
    Warehouse,
    Store,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::Warehouse => "warehouse",
            LocationKind::Store => "store",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoLocation {
    pub code: &'static str,
    pub name: &'static str,
    pub kind: LocationKind,
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoSupplier {
    pub name: &'static str,
    pub email: &'static str,
    pub lead_time_mean_days: Decimal,
    pub lead_time_std_days: Decimal,
    pub currency: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoProduct {
    pub title: String,
    pub handle: String,
    pub category: &'static str,
    pub variants: Vec<DemoVariant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoVariant {
    pub sku: String,
    pub title: String,
    pub price: Decimal,
    pub unit_cost: Decimal,
    /// Index into [`DemoDataset::suppliers`].
    pub supplier: usize,
    pub moq: i32,
    pub pack_size: i32,
    /// Mean units a day across the chain, before seasonality; below 0.3 the item is intermittent.
    pub base_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoStock {
    pub product: usize,
    pub variant: usize,
    pub location: usize,
    pub on_hand: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoDemand {
    pub product: usize,
    pub variant: usize,
    pub location: usize,
    pub day: NaiveDate,
    pub units: i32,
    pub price: Decimal,
    pub promo: bool,
    pub stockout: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoDataset {
    pub locations: Vec<DemoLocation>,
    pub suppliers: Vec<DemoSupplier>,
    pub products: Vec<DemoProduct>,
    pub stock: Vec<DemoStock>,
    pub demand: Vec<DemoDemand>,
}

impl DemoDataset {
    pub fn variant_count(&self) -> usize {
        self.products.iter().map(|p| p.variants.len()).sum()
    }
}

const CATEGORIES: [(&str, &[&str], f64); 6] = [
    ("Apparel", &["Tee", "Hoodie", "Jacket", "Cap", "Sweater", "Shorts"], 0.0),
    ("Outdoor", &["Tent", "Backpack", "Bottle", "Lantern", "Stove"], 0.45),
    ("Home", &["Mug", "Candle", "Blanket", "Pillow", "Vase"], 0.9),
    ("Kitchen", &["Knife", "Pan", "Grinder", "Kettle", "Board"], 0.85),
    ("Garden", &["Trowel", "Planter", "Hose", "Gloves", "Seeds"], 0.35),
    ("Toys", &["Puzzle", "Kite", "Blocks", "Robot", "Plush"], 0.95),
];
const ADJECTIVES: [&str; 12] = [
    "Classic", "Alpine", "Urban", "Coastal", "Nordic", "Summit", "Harbor", "Prairie", "Canyon", "Meadow", "Granite",
    "Willow",
];
const COLOURS: [&str; 6] = ["Black", "White", "Navy", "Olive", "Sand", "Red"];
const SIZES: [&str; 4] = ["S", "M", "L", "XL"];

fn locations() -> Vec<DemoLocation> {
    vec![
        DemoLocation {
            code: "WH-EAST",
            name: "East Warehouse",
            kind: LocationKind::Warehouse,
            latitude: 40.7357,
            longitude: -74.1724,
        },
        DemoLocation {
            code: "WH-WEST",
            name: "West Warehouse",
            kind: LocationKind::Warehouse,
            latitude: 34.0522,
            longitude: -118.2437,
        },
        DemoLocation {
            code: "STORE-NYC",
            name: "Manhattan Store",
            kind: LocationKind::Store,
            latitude: 40.7411,
            longitude: -73.9897,
        },
    ]
}

fn suppliers() -> Vec<DemoSupplier> {
    vec![
        DemoSupplier {
            name: "Northwind Textiles",
            email: "orders@northwind.example",
            lead_time_mean_days: Decimal::new(210, 1),
            lead_time_std_days: Decimal::new(45, 1),
            currency: "USD",
        },
        DemoSupplier {
            name: "Acme Outdoor Supply",
            email: "po@acme-outdoor.example",
            lead_time_mean_days: Decimal::new(90, 1),
            lead_time_std_days: Decimal::new(20, 1),
            currency: "USD",
        },
        DemoSupplier {
            name: "Globex Homeware",
            email: "sales@globex.example",
            lead_time_mean_days: Decimal::new(350, 1),
            lead_time_std_days: Decimal::new(80, 1),
            currency: "EUR",
        },
    ]
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

/// Builds the demo data set for `params`. Deterministic: the same params give the same data.
pub fn generate(params: &DemoParams) -> DemoDataset {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let locations = locations();
    let suppliers = suppliers();
    let location_share = [0.45, 0.35, 0.20];

    let mut products = Vec::with_capacity(params.products);
    for p in 0..params.products {
        let (category, nouns, _) = CATEGORIES[p % CATEGORIES.len()];
        let noun = nouns[(p / CATEGORIES.len()) % nouns.len()];
        let adjective = ADJECTIVES[(p * 7 + p / CATEGORIES.len()) % ADJECTIVES.len()];
        let title = format!("{adjective} {noun}");
        let handle = format!("{}-{}", title.to_lowercase().replace(' ', "-"), p + 1);
        let supplier = p % suppliers.len();
        let list_cents: i64 = rng.random_range(8..=180) * 100 - 1;
        let sized = category == "Apparel";
        // Between two and five variants: about 200 over 60 products.
        let n_variants = rng.random_range(2..=5usize);
        let intermittent = rng.random::<f64>() < 0.2;
        let mut variants = Vec::with_capacity(n_variants);
        for v in 0..n_variants {
            let option = if sized {
                format!("{} / {}", COLOURS[(p + v / SIZES.len()) % COLOURS.len()], SIZES[v % SIZES.len()])
            } else {
                COLOURS[(p + v) % COLOURS.len()].to_owned()
            };
            let sku =
                format!("{}-{:03}-{}", &category[..3].to_uppercase(), p + 1, option.replace(" / ", "-").to_uppercase());
            let base_rate = if intermittent {
                rng.random_range(0.03..0.3)
            } else {
                rng.random_range(0.8..14.0) / (1.0 + v as f64 * 0.3)
            };
            let margin = rng.random_range(0.35..0.65);
            let cost = ((list_cents as f64) * (1.0 - margin)).round() as i64;
            variants.push(DemoVariant {
                sku,
                title: option,
                price: cents(list_cents),
                unit_cost: cents(cost),
                supplier,
                moq: [1, 6, 12, 24][rng.random_range(0..4)],
                pack_size: [1, 1, 6, 12][rng.random_range(0..4)],
                base_rate,
            });
        }
        products.push(DemoProduct { title, handle, category, variants });
    }

    let start = params.end - Duration::days(i64::from(params.days.max(1)) - 1);
    let mut demand = Vec::with_capacity(
        products.iter().map(|p| p.variants.len()).sum::<usize>() * locations.len() * params.days as usize,
    );
    let mut stock = Vec::new();
    for (pi, product) in products.iter().enumerate() {
        let phase = CATEGORIES[pi % CATEGORIES.len()].2;
        let trend_per_year = rng.random_range(-0.15..0.35);
        // Promotions: a few windows a year, shared by the product's variants.
        let mut promos: Vec<(i64, i64, f64)> = Vec::new();
        let mut d = rng.random_range(10..60i64);
        while d < i64::from(params.days) {
            let len = rng.random_range(3..=10i64);
            let discount = [0.1, 0.15, 0.2, 0.3][rng.random_range(0..4)];
            promos.push((d, d + len, discount));
            d += len + rng.random_range(45..120i64);
        }
        for (vi, variant) in product.variants.iter().enumerate() {
            for (li, share) in location_share.iter().enumerate() {
                let mut stockout_left = 0i64;
                for day_idx in 0..i64::from(params.days) {
                    let day = start + Duration::days(day_idx);
                    let t = day_idx as f64 / 365.0;
                    let weekday = day.weekday().num_days_from_monday();
                    let weekly = [0.85, 0.9, 0.95, 1.0, 1.1, 1.35, 1.25][weekday as usize];
                    let doy = f64::from(day.ordinal0()) / 365.25;
                    let yearly = 1.0 + 0.35 * (2.0 * std::f64::consts::PI * (doy - phase)).cos();
                    let promo = promos.iter().find(|(s, e, _)| day_idx >= *s && day_idx < *e);
                    let (price, lift) = match promo {
                        Some((_, _, discount)) => {
                            let list = variant.price;
                            let off = (list * Decimal::from_f64_retain(*discount).unwrap_or_default()).round_dp(2);
                            // Elasticity around -2.2: a 20 % cut sells about 50 % more.
                            (list - off, (1.0 - discount).powf(-2.2))
                        }
                        None => (variant.price, 1.0),
                    };
                    let mean = variant.base_rate * share * weekly * yearly * lift * (1.0 + trend_per_year * t);
                    if stockout_left == 0 && rng.random::<f64>() < 0.004 {
                        stockout_left = rng.random_range(2..=9);
                    }
                    let stockout = stockout_left > 0;
                    if stockout {
                        stockout_left -= 1;
                    }
                    let units = if stockout { 0 } else { crate::sampling::poisson(&mut rng, mean.max(0.0)) };
                    demand.push(DemoDemand {
                        product: pi,
                        variant: vi,
                        location: li,
                        day,
                        units,
                        price,
                        promo: promo.is_some(),
                        stockout,
                    });
                }
                let cover_days = rng.random_range(5.0..45.0);
                let on_hand = (variant.base_rate * share * cover_days).round() as i64;
                stock.push(DemoStock { product: pi, variant: vi, location: li, on_hand });
            }
        }
    }

    DemoDataset { locations, suppliers, products, stock, demand }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> DemoParams {
        DemoParams { seed, end: NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date"), days: 120, products: 12 }
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        assert_eq!(generate(&small(7)), generate(&small(7)));
        assert_ne!(generate(&small(7)).demand, generate(&small(8)).demand);
    }

    #[test]
    fn the_full_demo_has_the_promised_shape() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date");
        let d = generate(&DemoParams::full(42, end));
        assert_eq!(d.locations.len(), 3);
        assert_eq!(d.locations.iter().filter(|l| l.kind == LocationKind::Warehouse).count(), 2);
        assert_eq!(d.suppliers.len(), 3);
        assert_eq!(d.products.len(), 60);
        let variants = d.variant_count();
        assert!((150..=250).contains(&variants), "{variants} variants");
        assert_eq!(d.demand.len(), variants * 3 * 730);
        assert_eq!(d.demand.last().map(|r| r.day), Some(end));
        let skus: std::collections::HashSet<_> =
            d.products.iter().flat_map(|p| p.variants.iter().map(|v| v.sku.clone())).collect();
        assert_eq!(skus.len(), variants, "skus are unique");
    }

    #[test]
    fn demand_shows_promotions_intermittency_and_weekly_seasonality() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date");
        let d = generate(&DemoParams::full(42, end));
        let promo: Vec<_> = d.demand.iter().filter(|r| r.promo).collect();
        assert!(!promo.is_empty());
        assert!(promo.iter().all(|r| r.price < d.products[r.product].variants[r.variant].price));
        let intermittent = d.products.iter().flat_map(|p| &p.variants).filter(|v| v.base_rate < 0.3).count();
        assert!(intermittent > 5, "{intermittent} intermittent variants");
        let by_weekday = |wd: u32| -> i64 {
            d.demand.iter().filter(|r| r.day.weekday().num_days_from_monday() == wd).map(|r| i64::from(r.units)).sum()
        };
        assert!(by_weekday(5) > by_weekday(0), "saturdays sell more than mondays");
        assert!(d.demand.iter().any(|r| r.stockout && r.units == 0));
    }
}
