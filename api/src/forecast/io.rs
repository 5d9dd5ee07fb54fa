//! Reading demand history and future covariates from CSV, writing forecasts to CSV.
//!
//! Input is long format `series_id,date,quantity[,covariates…]` (the future file has no
//! `quantity`). Extra columns whose every non-empty value is a number are numeric covariates;
//! the others are categorical. A numeric column named `stockout` marks censored periods (1).
//! Every problem names the file, line and column.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}:{line}:{column}: {message}")]
    At { file: String, line: u64, column: String, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

pub use qm_domain::forecast::Freq;

/// One covariate value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Category(String),
    Missing,
}

/// One series: consecutive periods from `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub id: String,
    pub start: NaiveDate,
    pub quantity: Vec<f64>,
    /// Per covariate (in [`History::covariates`] order), one value per period.
    pub covariates: Vec<Vec<Value>>,
    /// Periods whose demand was not observed (a `stockout` column of 1).
    pub censored: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub freq: Freq,
    pub covariates: Vec<String>,
    pub series: Vec<Series>,
}

struct Row {
    line: u64,
    date: NaiveDate,
    quantity: f64,
    extras: Vec<String>,
}

pub(crate) fn at(file: &str, line: u64, column: &str, message: impl Into<String>) -> InputError {
    InputError::At { file: file.to_owned(), line, column: column.to_owned(), message: message.into() }
}

/// An ISO date (YYYY-MM-DD, surrounding spaces ignored); the message shows the field as given.
pub(crate) fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| format!("{raw:?} is not a date (YYYY-MM-DD)"))
}

/// A quantity: a finite number, 0 or more.
pub(crate) fn parse_quantity(raw: &str) -> Result<f64, String> {
    let q: f64 = raw.parse().map_err(|_| format!("{raw:?} is not a number"))?;
    if !q.is_finite() || q < 0.0 {
        return Err(format!("{raw} is negative or not finite"));
    }
    Ok(q)
}

/// Reads rows grouped by series (sorted by id, then date), checking the fixed columns.
/// The extra column names, and the rows of each series.
type Rows = (Vec<String>, BTreeMap<String, Vec<Row>>);

/// An open CSV file: its name as messages show it, the reader past the header, the header's
/// names (trimmed).
pub(crate) type Opened = (String, csv::Reader<std::fs::File>, Vec<String>);

/// Opens a CSV file with a header (rows may differ in length: callers check and name the line).
pub(crate) fn open_csv(path: &Path) -> Result<Opened, InputError> {
    let file = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_path(path).map_err(|e| match e
        .into_kind()
    {
        csv::ErrorKind::Io(source) => InputError::Io { file: file.clone(), source },
        other => InputError::File { file: file.clone(), message: format!("{other:?}") },
    })?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| InputError::File { file: file.clone(), message: format!("unreadable header: {e}") })?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    Ok((file, reader, header))
}

fn read_rows(path: &Path, with_quantity: bool) -> Result<Rows, InputError> {
    let (file, mut reader, header) = open_csv(path)?;
    let fixed: &[&str] = if with_quantity { &["series_id", "date", "quantity"] } else { &["series_id", "date"] };
    for (i, name) in fixed.iter().enumerate() {
        if header.get(i).map(String::as_str) != Some(*name) {
            return Err(at(
                &file,
                1,
                &(i + 1).to_string(),
                format!("expected column {} to be `{name}`; the header must start with {}", i + 1, fixed.join(",")),
            ));
        }
    }
    let extras: Vec<String> = header[fixed.len()..].to_vec();
    let mut groups: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            at(&file, line, "-", format!("unreadable row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(at(&file, line, "-", format!("{} fields where the header has {}", record.len(), header.len())));
        }
        let id = record[0].trim();
        if id.is_empty() {
            return Err(at(&file, line, "series_id", "empty series_id"));
        }
        let date = parse_date(&record[1]).map_err(|m| at(&file, line, "date", m))?;
        let quantity = if with_quantity {
            parse_quantity(record[2].trim()).map_err(|m| at(&file, line, "quantity", m))?
        } else {
            0.0
        };
        let extras = record.iter().skip(fixed.len()).map(|v| v.trim().to_owned()).collect();
        groups.entry(id.to_owned()).or_default().push(Row { line, date, quantity, extras });
    }
    if groups.is_empty() {
        return Err(InputError::File { file, message: "no rows".into() });
    }
    for rows in groups.values_mut() {
        rows.sort_by_key(|r| (r.date, r.line));
    }
    Ok((extras, groups))
}

fn check_sequence(file: &str, id: &str, rows: &[Row], freq: Freq) -> Result<(), InputError> {
    for w in rows.windows(2) {
        if w[1].date == w[0].date {
            return Err(at(
                file,
                w[1].line,
                "date",
                format!("series {id}: {} appears twice (line {})", w[1].date, w[0].line),
            ));
        }
        let expected = freq.next(w[0].date);
        if expected != Some(w[1].date) {
            let e = expected.map_or_else(|| "-".into(), |d| d.to_string());
            return Err(at(
                file,
                w[1].line,
                "date",
                format!("series {id}: gap or misaligned date: expected {e} after {}, found {}", w[0].date, w[1].date),
            ));
        }
    }
    Ok(())
}

/// Which extra columns are numeric: every non-empty value parses as a number.
fn numeric_columns(extras: &[String], groups: &BTreeMap<String, Vec<Row>>) -> Vec<bool> {
    (0..extras.len())
        .map(|c| groups.values().flatten().all(|r| r.extras[c].is_empty() || r.extras[c].parse::<f64>().is_ok()))
        .collect()
}

fn value(raw: &str, numeric: bool) -> Value {
    if raw.is_empty() {
        Value::Missing
    } else if numeric {
        raw.parse().map_or(Value::Missing, Value::Number)
    } else {
        Value::Category(raw.to_owned())
    }
}

/// Reads and checks a history file. `freq` is inferred from the first series when not given.
pub fn read_history(path: &Path, freq: Option<Freq>) -> Result<History, InputError> {
    let file = path.display().to_string();
    let (extras, groups) = read_rows(path, true)?;
    let freq = match freq {
        Some(f) => f,
        None => {
            let rows = groups.values().find(|r| r.len() >= 2).ok_or_else(|| InputError::File {
                file: file.clone(),
                message: "cannot infer the frequency from single-period series; pass --freq".into(),
            })?;
            Freq::infer(rows[0].date, rows[1].date).ok_or_else(|| {
                at(&file, rows[1].line, "date", "cannot infer the frequency (1, 7 days or a month); pass --freq")
            })?
        }
    };
    let numeric = numeric_columns(&extras, &groups);
    let stockout = extras.iter().position(|e| e == STOCKOUT).filter(|c| numeric[*c]);
    let mut series = Vec::with_capacity(groups.len());
    for (id, rows) in &groups {
        check_sequence(&file, id, rows, freq)?;
        series.push(Series {
            id: id.clone(),
            start: rows[0].date,
            quantity: rows.iter().map(|r| r.quantity).collect(),
            covariates: (0..extras.len())
                .map(|c| rows.iter().map(|r| value(&r.extras[c], numeric[c])).collect())
                .collect(),
            censored: rows
                .iter()
                .map(|r| stockout.is_some_and(|c| r.extras[c].parse::<f64>().is_ok_and(|v| v >= 0.5)))
                .collect(),
        });
    }
    Ok(History { freq, covariates: extras, series })
}

/// The column that marks censored periods: what the stock did, not a covariate known in advance.
pub const STOCKOUT: &str = "stockout";

/// Future covariates: per series, the values for each forecast period.
#[derive(Debug, Clone, PartialEq)]
pub struct Future {
    pub covariates: Vec<String>,
    pub series: BTreeMap<String, Vec<Vec<Value>>>,
}

/// Reads a future-covariates file and checks it against `history`: the same covariate columns,
/// and for every series one row for each of the `horizon` periods after its history. The
/// `stockout` column records what the stock did, which nobody knows ahead: the file may leave it
/// out (the forecast periods then have it missing), and the model never reads it.
pub fn read_future(path: &Path, history: &History, horizon: usize) -> Result<Future, InputError> {
    let file = path.display().to_string();
    let (extras, groups) = read_rows(path, false)?;
    let known = |columns: &[String]| columns.iter().filter(|c| *c != STOCKOUT).cloned().collect::<Vec<_>>();
    let wanted = known(&history.covariates);
    if known(&extras) != wanted {
        return Err(InputError::File {
            file,
            message: format!("covariate columns {extras:?} differ from the history's {wanted:?}"),
        });
    }
    // Where each of the history's covariates is in this file (the stockout column may be absent;
    // the forecast's features never read it).
    let columns: Vec<Option<usize>> = history.covariates.iter().map(|c| extras.iter().position(|e| e == c)).collect();
    let numeric = numeric_columns(&extras, &groups);
    let mut out = BTreeMap::new();
    for s in &history.series {
        let rows = groups
            .get(&s.id)
            .ok_or_else(|| InputError::File { file: file.clone(), message: format!("no rows for series {}", s.id) })?;
        let mut expected = s.start;
        for _ in 0..s.quantity.len() {
            expected = history.freq.next(expected).unwrap_or(expected);
        }
        let wanted: Vec<NaiveDate> =
            std::iter::successors(Some(expected), |d| history.freq.next(*d)).take(horizon).collect();
        let mut values = Vec::with_capacity(horizon);
        for d in &wanted {
            let row = rows.iter().find(|r| r.date == *d).ok_or_else(|| InputError::File {
                file: file.clone(),
                message: format!("series {}: no row for forecast date {d}", s.id),
            })?;
            values.push(
                columns.iter().map(|c| c.map_or(Value::Missing, |c| value(&row.extras[c], numeric[c]))).collect(),
            );
        }
        out.insert(s.id.clone(), values);
    }
    Ok(Future { covariates: history.covariates.clone(), series: out })
}

/// One forecast row.
pub struct OutRow<'a> {
    pub series_id: &'a str,
    pub date: NaiveDate,
    pub forecast: f64,
    pub quantiles: Vec<f64>,
    pub model: &'a str,
}

/// A number for CSV output: up to four decimals, no trailing zeros.
pub fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" { "0".into() } else { s.to_owned() }
}

/// Writes `series_id,date,forecast[,q…],model`.
pub fn write_forecasts<'a>(
    out: impl Write,
    levels: &[f64],
    rows: impl IntoIterator<Item = OutRow<'a>>,
) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(out);
    let mut header = String::from("series_id,date,forecast");
    for l in levels {
        header.push_str(&format!(",q{l}"));
    }
    header.push_str(",model\n");
    w.write_all(header.as_bytes())?;
    for r in rows {
        let mut line = format!("{},{},{}", csv_field(r.series_id), r.date, num(r.forecast));
        for q in &r.quantiles {
            line.push(',');
            line.push_str(&num(*q));
        }
        line.push(',');
        line.push_str(r.model);
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}

/// A CSV field, quoted when it needs to be.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// Reads a forecast file written by [`write_forecasts`] back: (series_id, date) → forecast and
/// quantiles. For benchmarks and tests.
/// (series_id, date) → (forecast, quantiles).
pub type Forecasts = BTreeMap<(String, NaiveDate), (f64, Vec<f64>)>;

pub fn read_forecasts(path: &Path) -> Result<Forecasts, InputError> {
    let file = path.display().to_string();
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| InputError::File { file: file.clone(), message: e.to_string() })?;
    let mut out = BTreeMap::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| InputError::File { file: file.clone(), message: e.to_string() })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() < 4 {
            return Err(at(&file, line, "-", "expected series_id,date,forecast,…,model"));
        }
        let date = NaiveDate::parse_from_str(&rec[1], "%Y-%m-%d").map_err(|_| at(&file, line, "date", "bad date"))?;
        let nums: Result<Vec<f64>, _> = (2..rec.len() - 1).map(|i| rec[i].parse::<f64>()).collect();
        let nums = nums.map_err(|_| at(&file, line, "forecast", "bad number"))?;
        out.insert((rec[0].to_owned(), date), (nums[0], nums[1..].to_vec()));
    }
    Ok(out)
}
