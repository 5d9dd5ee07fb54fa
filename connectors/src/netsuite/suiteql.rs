//! SuiteQL's value formats. Every column comes back as a string: numbers (`"10"`, `"12.5"`),
//! booleans (`"T"`/`"F"`), and dates in the user's preferred format and the account's time zone
//! (`"1/15/2026"`, `"1/15/2026 10:04 am"`), unless the query formats them with
//! `TO_CHAR(col, 'YYYY-MM-DD"T"HH24:MI:SS')`, as ours do. Columns are lower case.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::Value;

/// The date format of the integration user's preferences: `M/D/YYYY` or `D/M/YYYY`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DateStyle {
    #[default]
    MonthFirst,
    DayFirst,
}

/// What `TO_CHAR` should make of a date column so [`instant`] reads it in any account.
pub const DATE_FORMAT: &str = "YYYY-MM-DD\"T\"HH24:MI:SS";

/// `"T"`/`"F"` (or JSON booleans).
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "T" | "t" | "true" => Some(true),
            "F" | "f" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A number written as a string (or a JSON number), exactly.
pub fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// A whole number written as a string (or a JSON number).
pub fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A date column in the account's time zone `zone`: our `TO_CHAR` format, or the user's style
/// with or without a time (`1/15/2026`, `1/15/2026 10:04 am`, `1/15/2026 10:04:05 pm`); a date
/// alone is its midnight there.
pub fn instant(s: &str, zone: Tz, style: DateStyle) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return crate::time::in_zone(n, zone);
    }
    let (date, time) = s.split_once(' ').map_or((s, None), |(d, t)| (d, Some(t.trim())));
    let mut parts = date.split('/');
    let (a, b, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (m, d) = match style {
        DateStyle::MonthFirst => (a, b),
        DateStyle::DayFirst => (b, a),
    };
    let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let time = match time {
        None => NaiveTime::MIN,
        Some(t) => {
            let upper = t.to_uppercase();
            ["%I:%M:%S %p", "%I:%M %p", "%H:%M:%S", "%H:%M"]
                .iter()
                .find_map(|f| NaiveTime::parse_from_str(&upper, f).ok())?
        }
    };
    crate::time::in_zone(date.and_time(time), zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_become_numbers_and_booleans_exactly() {
        assert_eq!(boolean(&json!("T")), Some(true));
        assert_eq!(boolean(&json!("F")), Some(false));
        assert_eq!(boolean(&json!(true)), Some(true));
        assert_eq!(boolean(&json!("yes")), None);
        assert_eq!(decimal(&json!("199.00")), Some(Decimal::new(19900, 2)));
        assert_eq!(
            decimal(&json!("0.1")).map(|d| d + Decimal::new(2, 1)),
            Some(Decimal::new(3, 1)),
            "exact, not binary"
        );
        assert_eq!(decimal(&json!(12)), Some(Decimal::from(12)));
        assert_eq!(decimal(&json!("12,5")), None);
        assert_eq!(integer(&json!("10")), Some(10));
        assert_eq!(integer(&json!(null)), None);
    }

    #[test]
    fn dates_read_in_the_accounts_zone_and_the_users_style() {
        let la = chrono_tz::America::Los_Angeles;
        let midnight = "2026-01-15T08:00:00Z".parse::<DateTime<Utc>>().expect("utc");
        assert_eq!(instant("1/15/2026", la, DateStyle::MonthFirst), Some(midnight));
        assert_eq!(instant("15/1/2026", la, DateStyle::DayFirst), Some(midnight));
        assert_eq!(instant("1/15/2026 12:00 am", la, DateStyle::MonthFirst), Some(midnight));
        assert_eq!(
            instant("1/15/2026 1:30 pm", la, DateStyle::MonthFirst),
            Some("2026-01-15T21:30:00Z".parse().expect("utc"))
        );
        assert_eq!(instant("2026-01-15T00:00:00", la, DateStyle::DayFirst), Some(midnight), "ours, whatever the style");
        assert_eq!(instant("13/15/2026", la, DateStyle::MonthFirst), None);
        assert_eq!(instant("1/15/2026 25:00", la, DateStyle::MonthFirst), None);
        assert_eq!(instant("1/15", la, DateStyle::MonthFirst), None);
    }
}
