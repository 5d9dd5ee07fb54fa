//! The files of `quartermaster pricing`: daily history, stock and the policy in, recommendations
//! out. Columns are found by their header names (optional ones may be absent); every problem
//! names the file, the line and the column.
//!
//! - history: `series_id,date,quantity,price[,promo][,stockout]`, dates ascending per series
//!   (days without a row are days without data); `promo` and `stockout` are 0/1 (or
//!   true/false).
//! - stock: `series_id,on_hand,inbound,unit_cost[,salvage_value][,season_end][,category]`, one row
//!   per series of the history; `category` lets sparse SKUs borrow from similar ones.
//! - policy (TOML): `min_margin`, `max_change_per_step`, `price_ending`, `min_advertised_price`,
//!   `min_expected_gain` at the top level, and `[series."ID"]` tables overriding them for one SKU.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use qm_domain::pricing::{Day, Guardrails};
use rust_decimal::Decimal;

use crate::forecast::io::{InputError, at, open_csv, parse_date, parse_quantity};
use crate::layered::{self, ParamsError, decimal, shown};

/// One series' history.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub id: String,
    pub days: Vec<Day>,
}

/// One row of the stock file.
#[derive(Debug, Clone, PartialEq)]
pub struct Stock {
    pub on_hand: f64,
    pub inbound: f64,
    pub unit_cost: Decimal,
    pub salvage_value: Option<Decimal>,
    pub season_end: Option<NaiveDate>,
    pub category: Option<String>,
}

/// A CSV file's reader with its header: the index of each column by name.
struct Table {
    file: String,
    reader: csv::Reader<std::fs::File>,
    columns: HashMap<String, usize>,
    width: usize,
}

impl Table {
    fn open(path: &Path, required: &[&str]) -> Result<Self, InputError> {
        let (file, reader, header) = open_csv(path)?;
        let columns: HashMap<String, usize> = header.iter().enumerate().map(|(i, h)| (h.clone(), i)).collect();
        if let Some(missing) = required.iter().find(|c| !columns.contains_key(**c)) {
            return Err(at(
                &file,
                1,
                missing,
                format!("missing column `{missing}`; the header needs {}", required.join(",")),
            ));
        }
        Ok(Self { file, reader, columns, width: header.len() })
    }

    /// Each row with its line number, checked for its field count.
    fn rows(&mut self) -> impl Iterator<Item = Result<(u64, csv::StringRecord), InputError>> + '_ {
        let (file, width) = (self.file.clone(), self.width);
        self.reader.records().map(move |r| {
            let record = r.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                at(&file, line, "-", format!("unreadable row: {e}"))
            })?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != width {
                return Err(at(&file, line, "-", format!("{} fields where the header has {width}", record.len())));
            }
            Ok((line, record))
        })
    }
}

/// One field of a row, by column name.
struct Field<'a> {
    file: &'a str,
    line: u64,
    columns: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Field<'_> {
    fn raw(&self, column: &str) -> Option<&str> {
        self.columns.get(column).and_then(|i| self.record.get(*i)).map(str::trim)
    }

    fn error(&self, column: &str, message: impl Into<String>) -> InputError {
        at(self.file, self.line, column, message)
    }

    fn text(&self, column: &str) -> Result<String, InputError> {
        match self.raw(column) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(self.error(column, "empty")),
        }
    }

    fn number(&self, column: &str) -> Result<f64, InputError> {
        parse_quantity(self.raw(column).unwrap_or_default()).map_err(|m| self.error(column, m))
    }

    fn money(&self, column: &str) -> Result<Decimal, InputError> {
        let raw = self.raw(column).unwrap_or_default();
        let v = Decimal::from_str(raw).map_err(|_| self.error(column, format!("{raw:?} is not a number")))?;
        if v.is_sign_negative() && !v.is_zero() {
            return Err(self.error(column, format!("{raw} is negative")));
        }
        Ok(v)
    }

    fn optional_money(&self, column: &str) -> Result<Option<Decimal>, InputError> {
        match self.raw(column) {
            None | Some("") => Ok(None),
            Some(_) => self.money(column).map(Some),
        }
    }

    fn date(&self, column: &str) -> Result<NaiveDate, InputError> {
        parse_date(self.raw(column).unwrap_or_default()).map_err(|m| self.error(column, m))
    }

    fn flag(&self, column: &str) -> Result<bool, InputError> {
        match self.raw(column) {
            None | Some("") | Some("0") | Some("false") => Ok(false),
            Some("1") | Some("true") => Ok(true),
            Some(other) => Err(self.error(column, format!("{other:?} is not 0 or 1"))),
        }
    }
}

/// Reads the history: series in id order, each day's row checked, dates strictly ascending.
pub fn read_history(path: &Path) -> Result<Vec<Series>, InputError> {
    let mut table = Table::open(path, &["series_id", "date", "quantity", "price"])?;
    let (file, columns) = (table.file.clone(), table.columns.clone());
    let mut series: BTreeMap<String, (Vec<Day>, u64)> = BTreeMap::new();
    for row in table.rows() {
        let (line, record) = row?;
        let f = Field { file: &file, line, columns: &columns, record: &record };
        let id = f.text("series_id")?;
        let date = f.date("date")?;
        let quantity = f.number("quantity")?;
        let price = f.money("price")?;
        if price.is_zero() {
            return Err(f.error("price", "0 is not a price"));
        }
        let day = Day { date, quantity, price, promo: f.flag("promo")?, stockout: f.flag("stockout")? };
        let (days, last_line) = series.entry(id.clone()).or_default();
        if let Some(prev) = days.last()
            && prev.date >= date
        {
            return Err(f.error(
                "date",
                format!("series {id}: {date} is not after {} (line {last_line}); dates must ascend", prev.date),
            ));
        }
        days.push(day);
        *last_line = line;
    }
    if series.is_empty() {
        return Err(InputError::File { file, message: "no rows".into() });
    }
    Ok(series.into_iter().map(|(id, (days, _))| Series { id, days }).collect())
}

/// Whether `id` is a series of `known` (in id order, as [`read_history`] returns them).
fn knows(known: &[Series], id: &str) -> bool {
    known.binary_search_by(|s| s.id.as_str().cmp(id)).is_ok()
}

/// Reads the stock file; every series must be one of `known`, and each appear once.
pub fn read_stock(path: &Path, known: &[Series]) -> Result<BTreeMap<String, Stock>, InputError> {
    let mut table = Table::open(path, &["series_id", "on_hand", "inbound", "unit_cost"])?;
    let (file, columns) = (table.file.clone(), table.columns.clone());
    let mut out: BTreeMap<String, Stock> = BTreeMap::new();
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for row in table.rows() {
        let (line, record) = row?;
        let f = Field { file: &file, line, columns: &columns, record: &record };
        let id = f.text("series_id")?;
        if !knows(known, &id) {
            return Err(f.error("series_id", format!("series {id} is not in the history")));
        }
        if let Some(first) = lines.get(&id) {
            return Err(f.error("series_id", format!("series {id} appears twice (line {first})")));
        }
        let season_end = match f.raw("season_end") {
            None | Some("") => None,
            Some(_) => Some(f.date("season_end")?),
        };
        let stock = Stock {
            on_hand: f.number("on_hand")?,
            inbound: f.number("inbound")?,
            unit_cost: f.money("unit_cost")?,
            salvage_value: f.optional_money("salvage_value")?,
            season_end,
            category: f.raw("category").filter(|c| !c.is_empty()).map(str::to_owned),
        };
        lines.insert(id.clone(), line);
        out.insert(id, stock);
    }
    if let Some(missing) = known.iter().find(|s| !out.contains_key(&s.id)) {
        return Err(InputError::File { file, message: format!("no row for series {} of the history", missing.id) });
    }
    Ok(out)
}

/// The policy keys.
pub const POLICY_KEYS: [&str; 5] =
    ["min_margin", "max_change_per_step", "price_ending", "min_advertised_price", "min_expected_gain"];

/// The guardrails: defaults and per-series overrides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub defaults: Guardrails,
    pub series: BTreeMap<String, Guardrails>,
}

impl Policy {
    pub fn for_series(&self, id: &str) -> &Guardrails {
        self.series.get(id).unwrap_or(&self.defaults)
    }
}

fn apply(g: &mut Guardrails, key: &str, v: &toml::Value) -> Result<(), String> {
    match key {
        "min_margin" => g.min_margin = decimal(v)?,
        "max_change_per_step" => {
            let d = decimal(v)?;
            if d.is_zero() || d > Decimal::ONE {
                return Err(format!("must be above 0 and at most 1 (a fraction of the price), got {}", shown(v)));
            }
            g.max_change_per_step = d;
        }
        "price_ending" => {
            let d = decimal(v)?;
            if d >= Decimal::ONE {
                return Err(format!("must be below 1 (e.g. 0.99), got {}", shown(v)));
            }
            g.price_ending = Some(d);
        }
        "min_advertised_price" => g.min_advertised_price = Some(decimal(v)?),
        "min_expected_gain" => g.min_expected_gain = decimal(v)?,
        other => return Err(format!("unknown key {other:?}; the keys are {}", POLICY_KEYS.join(", "))),
    }
    Ok(())
}

/// Reads the policy; `[series."ID"]` tables must name series of the history.
pub fn read_policy(path: &Path, known: &[Series]) -> Result<Policy, ParamsError> {
    let (file, text) = layered::read(path)?;
    let (defaults, series) = layered::parse(&text, &file, Guardrails::default(), apply)?;
    if let Some(id) = series.keys().find(|id| !knows(known, id)) {
        return Err(ParamsError::Series {
            file,
            message: format!("[series.{id:?}]: no series with this id in the history"),
        });
    }
    Ok(Policy { defaults, series })
}
