//! Settings files in TOML with defaults at the top level and `[series."ID"]` tables overriding any
//! of them for one series, as the offline commands read them (`replenish-sim --params`,
//! `pricing --policy`). Every problem names the file, the line and the key.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;
use toml::Spanned;

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

/// The file's name as messages show it, and its text.
pub fn read(path: &Path) -> Result<(String, String), ParamsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Io { file: file.clone(), source })?;
    Ok((file, text))
}

type Table = BTreeMap<String, Spanned<toml::Value>>;

#[derive(serde::Deserialize)]
struct SeriesTables {
    #[serde(default)]
    series: BTreeMap<String, Table>,
}

/// Parses `text` as defaults at the top level and `[series."ID"]` tables overriding them, each
/// key set through `apply`, which says what is wrong with a value. The defaults and each series'
/// settings.
pub fn parse<P: Clone>(
    text: &str,
    file: &str,
    mut defaults: P,
    apply: impl Fn(&mut P, &str, &toml::Value) -> Result<(), String>,
) -> Result<(P, BTreeMap<String, P>), ParamsError> {
    let syntax = |e: toml::de::Error| ParamsError::Syntax { file: file.to_owned(), message: e.to_string() };
    let top: Table = toml::from_str(text).map_err(syntax)?;
    let line = |span: std::ops::Range<usize>| text[..span.start.min(text.len())].matches('\n').count() + 1;
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
    Ok((defaults, series))
}

/// A value as an error message shows it.
pub fn shown(v: &toml::Value) -> String {
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

pub fn number(v: &toml::Value) -> Result<f64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) if f.is_finite() => Ok(*f),
        other => Err(format!("must be a number, got {}", shown(other))),
    }
}

pub fn whole(v: &toml::Value) -> Result<i64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i),
        other => Err(format!("must be a whole number, got {}", shown(other))),
    }
}

pub fn decimal(v: &toml::Value) -> Result<Decimal, String> {
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

pub fn at_least(v: f64, min: f64) -> Result<f64, String> {
    if v >= min { Ok(v) } else { Err(format!("must be {min} or more, got {v}")) }
}
