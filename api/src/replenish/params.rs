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
use std::str::FromStr;

use qm_domain::replenish::ServiceTarget;
use rust_decimal::Decimal;
use toml::Spanned;

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

#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}:{line}: {key}: {message}")]
    Key { file: String, line: usize, key: String, message: String },
    #[error("{file}: {message}")]
    Series { file: String, message: String },
}

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
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Io { file: file.clone(), source })?;
    parse(&text, &file)
}

type Table = BTreeMap<String, Spanned<toml::Value>>;

#[derive(serde::Deserialize)]
struct SeriesTables {
    #[serde(default)]
    series: BTreeMap<String, Table>,
}

pub fn parse(text: &str, file: &str) -> Result<Params, ParamsError> {
    let syntax = |e: toml::de::Error| ParamsError::Syntax { file: file.to_owned(), message: e.to_string() };
    let top: Table = toml::from_str(text).map_err(syntax)?;
    let line = |span: std::ops::Range<usize>| text[..span.start.min(text.len())].matches('\n').count() + 1;
    let mut defaults = SeriesParams::default();
    for (key, value) in &top {
        if key == "series" {
            if !value.get_ref().is_table() {
                return Err(ParamsError::Key {
                    file: file.to_owned(),
                    line: line(value.span()),
                    key: key.clone(),
                    message: "must be a table of [series.\"ID\"] tables".into(),
                });
            }
            continue;
        }
        apply(&mut defaults, key, value.get_ref()).map_err(|message| ParamsError::Key {
            file: file.to_owned(),
            line: line(value.span()),
            key: key.clone(),
            message,
        })?;
    }
    let tables: SeriesTables = toml::from_str(text).map_err(syntax)?;
    let mut series = BTreeMap::new();
    for (id, table) in tables.series {
        let mut p = defaults.clone();
        for (key, value) in &table {
            apply(&mut p, key, value.get_ref()).map_err(|message| ParamsError::Key {
                file: file.to_owned(),
                line: line(value.span()),
                key: format!("series.{id:?}.{key}"),
                message,
            })?;
        }
        series.insert(id, p);
    }
    Ok(Params { file: file.to_owned(), defaults, series })
}

/// A value as an error message shows it.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

fn number(v: &toml::Value) -> Result<f64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) if f.is_finite() => Ok(*f),
        other => Err(format!("must be a number, got {}", shown(other))),
    }
}

fn whole(v: &toml::Value) -> Result<i64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i),
        other => Err(format!("must be a whole number, got {}", shown(other))),
    }
}

fn decimal(v: &toml::Value) -> Result<Decimal, String> {
    let d = match v {
        toml::Value::Integer(i) => Decimal::from(*i),
        toml::Value::Float(f) if f.is_finite() => Decimal::from_str(&f.to_string()).map_err(|e| e.to_string())?,
        toml::Value::String(s) => Decimal::from_str(s.trim()).map_err(|_| format!("{s:?} is not a decimal number"))?,
        other => return Err(format!("must be a decimal number, got {}", shown(other))),
    };
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("must be 0 or more, got {d}"));
    }
    Ok(d)
}

fn at_least(v: f64, min: f64) -> Result<f64, String> {
    if v >= min { Ok(v) } else { Err(format!("must be {min} or more, got {v}")) }
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
