//! Replenishment parameters for the offline simulation, in TOML: defaults at the top level, and
//! `[series."ID"]` tables overriding any of them for one series. Lead times and the review period
//! are in periods of the data; `holding_cost_rate` is a share of the unit cost per year.
//!
//! ```toml
//! service_level_kind = "fill_rate"   # or "cycle"
//! target_service_level = 0.95
//! lead_time_mean = 7
//! lead_time_sd = 2.1
//! review_period = 1
//! moq = 0
//! pack_size = 1
//! unit_cost = "4.20"
//! holding_cost_rate = 0.25
//! order_cost = 30
//! seed = 42
//!
//! [series."FOODS_1@CA_1"]
//! pack_size = 12
//! ```
//!
//! Every problem names the file, the line and the key.

use std::collections::BTreeMap;
use std::path::Path;

use qm_domain::replenish::ServiceTarget;
use rust_decimal::Decimal;

pub use crate::layered::ParamsError;
use crate::layered::{self, at_least, decimal, number, shown, whole};

/// The keys a table may hold.
pub const KEYS: [&str; 11] = [
    "service_level_kind",
    "target_service_level",
    "lead_time_mean",
    "lead_time_sd",
    "review_period",
    "moq",
    "pack_size",
    "unit_cost",
    "holding_cost_rate",
    "order_cost",
    "seed",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    FillRate,
    Cycle,
}

/// The parameters of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesParams {
    pub service_level_kind: ServiceKind,
    pub target_service_level: f64,
    /// Required: set at the top level or for every series.
    pub lead_time_mean: Option<f64>,
    pub lead_time_sd: f64,
    pub review_period: usize,
    pub moq: i64,
    pub pack_size: i64,
    pub unit_cost: Decimal,
    pub holding_cost_rate: Decimal,
    pub order_cost: Decimal,
    pub seed: u64,
}

impl Default for SeriesParams {
    fn default() -> Self {
        Self {
            service_level_kind: ServiceKind::FillRate,
            target_service_level: 0.95,
            lead_time_mean: None,
            lead_time_sd: 0.0,
            review_period: 1,
            moq: 0,
            pack_size: 1,
            unit_cost: Decimal::ONE,
            holding_cost_rate: Decimal::new(25, 2),
            order_cost: Decimal::ZERO,
            seed: 0,
        }
    }
}

impl SeriesParams {
    pub fn target(&self) -> ServiceTarget {
        match self.service_level_kind {
            ServiceKind::FillRate => ServiceTarget::FillRate(self.target_service_level),
            ServiceKind::Cycle => ServiceTarget::Cycle(self.target_service_level),
        }
    }
}

/// Parsed parameters: the defaults and the per-series overrides applied on top of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub file: String,
    pub defaults: SeriesParams,
    pub series: BTreeMap<String, SeriesParams>,
}

impl Params {
    /// The parameters of series `id`; an error when it has no lead time.
    pub fn for_series(&self, id: &str) -> Result<(&SeriesParams, f64), ParamsError> {
        let p = self.series.get(id).unwrap_or(&self.defaults);
        let lead = p.lead_time_mean.ok_or_else(|| ParamsError::Series {
            file: self.file.clone(),
            message: format!(
                "lead_time_mean is missing for series {id:?}: set it at the top level or in [series.{id:?}]"
            ),
        })?;
        Ok((p, lead))
    }

    /// Series named in `[series."…"]` tables that are not among `known`.
    pub fn check_series<'a>(&self, known: impl IntoIterator<Item = &'a str>) -> Result<(), ParamsError> {
        let known: std::collections::BTreeSet<&str> = known.into_iter().collect();
        match self.series.keys().find(|id| !known.contains(id.as_str())) {
            Some(id) => Err(ParamsError::Series {
                file: self.file.clone(),
                message: format!("[series.{id:?}]: no series with this id in the history"),
            }),
            None => Ok(()),
        }
    }
}

pub fn load(path: &Path) -> Result<Params, ParamsError> {
    let (file, text) = layered::read(path)?;
    parse(&text, &file)
}

pub fn parse(text: &str, file: &str) -> Result<Params, ParamsError> {
    let (defaults, series) = layered::parse(text, file, SeriesParams::default(), apply)?;
    Ok(Params { file: file.to_owned(), defaults, series })
}

fn apply(p: &mut SeriesParams, key: &str, v: &toml::Value) -> Result<(), String> {
    match key {
        "service_level_kind" => {
            p.service_level_kind = match v.as_str() {
                Some("fill_rate") => ServiceKind::FillRate,
                Some("cycle") => ServiceKind::Cycle,
                _ => return Err(format!("must be \"fill_rate\" or \"cycle\", got {}", shown(v))),
            }
        }
        "target_service_level" => {
            let t = number(v)?;
            if !(t > 0.0 && t < 1.0) {
                return Err(format!("must be strictly between 0 and 1 (e.g. 0.95), got {t}"));
            }
            p.target_service_level = t;
        }
        "lead_time_mean" => p.lead_time_mean = Some(at_least(number(v)?, 0.0)?),
        "lead_time_sd" => p.lead_time_sd = at_least(number(v)?, 0.0)?,
        "review_period" => {
            let r = whole(v)?;
            p.review_period =
                usize::try_from(r).ok().filter(|r| *r >= 1).ok_or(format!("must be 1 or more, got {r}"))?;
        }
        "moq" => p.moq = at_least(whole(v)? as f64, 0.0)? as i64,
        "pack_size" => p.pack_size = at_least(whole(v)? as f64, 1.0)? as i64,
        "unit_cost" => p.unit_cost = decimal(v)?,
        "holding_cost_rate" => p.holding_cost_rate = decimal(v)?,
        "order_cost" => p.order_cost = decimal(v)?,
        "seed" => {
            let s = whole(v)?;
            p.seed = u64::try_from(s).map_err(|_| format!("must be 0 or more, got {s}"))?;
        }
        other => return Err(format!("unknown key {other:?}; the keys are {}", KEYS.join(", "))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_per_series_overrides() {
        let p = parse(
            "lead_time_mean = 7\nlead_time_sd = 2.1\nunit_cost = \"4.20\"\n\n[series.\"A\"]\npack_size = 12\nservice_level_kind = \"cycle\"\n",
            "p.toml",
        )
        .expect("valid");
        assert_eq!(p.defaults.lead_time_mean, Some(7.0));
        assert_eq!(p.defaults.unit_cost, Decimal::new(420, 2));
        let (a, lead) = p.for_series("A").expect("A");
        assert_eq!((a.pack_size, lead, a.lead_time_sd), (12, 7.0, 2.1));
        assert_eq!(a.target(), ServiceTarget::Cycle(0.95));
        let (b, _) = p.for_series("B").expect("defaults");
        assert_eq!((b.pack_size, b.target()), (1, ServiceTarget::FillRate(0.95)));
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = parse("lead_time_mean = 7\n\n[series.\"A\"]\nlead_time_sd = -1\n", "p.toml").unwrap_err();
        assert_eq!(e.to_string(), "p.toml:4: series.\"A\".lead_time_sd: must be 0 or more, got -1");
        let e = parse("target_service_level = 95\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:1: target_service_level: must be strictly between 0 and 1"), "{e}");
        let e = parse("lead_time_mean = 1\nleadtime = 3\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: leadtime: unknown key"), "{e}");
        let e = parse("review_period = 1.5\n", "p.toml").unwrap_err();
        assert_eq!(e.to_string(), "p.toml:1: review_period: must be a whole number, got 1.5");
        let e = parse("unit_cost = \"abc\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().contains("unit_cost: \"abc\" is not a decimal number"), "{e}");
        let e = parse("lead_time_mean = \n", "p.toml").unwrap_err();
        assert!(matches!(e, ParamsError::Syntax { .. }), "{e}");
    }

    #[test]
    fn a_missing_lead_time_or_an_unknown_series_is_an_error() {
        let p = parse("[series.\"A\"]\nlead_time_mean = 2\n", "p.toml").expect("valid");
        assert!(p.for_series("A").is_ok());
        let e = p.for_series("B").unwrap_err();
        assert!(e.to_string().contains("lead_time_mean is missing for series \"B\""), "{e}");
        let e = p.check_series(["B"]).unwrap_err();
        assert!(e.to_string().contains("[series.\"A\"]: no series with this id"), "{e}");
    }
}
