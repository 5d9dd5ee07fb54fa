//! Periods and the calendar features every forecast of them shares.

use chrono::{Datelike, Months, NaiveDate};

/// The period of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
}

impl Freq {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "D" | "d" => Some(Freq::Daily),
            "W" | "w" => Some(Freq::Weekly),
            "M" | "m" => Some(Freq::Monthly),
            _ => None,
        }
    }

    /// The usual season length: a week of days, a year of weeks or months.
    pub fn default_season(self) -> usize {
        match self {
            Freq::Daily => 7,
            Freq::Weekly => 52,
            Freq::Monthly => 12,
        }
    }

    pub fn next(self, d: NaiveDate) -> Option<NaiveDate> {
        match self {
            Freq::Daily => d.succ_opt(),
            Freq::Weekly => d.checked_add_days(chrono::Days::new(7)),
            Freq::Monthly => d.checked_add_months(Months::new(1)),
        }
    }

    /// The period between two consecutive dates, if they are one period apart.
    pub fn infer(a: NaiveDate, b: NaiveDate) -> Option<Self> {
        match (b - a).num_days() {
            1 => Some(Freq::Daily),
            7 => Some(Freq::Weekly),
            28..=31 if a.day() == b.day() => Some(Freq::Monthly),
            _ => None,
        }
    }
}

/// Calendar features of a period's date: day of week (daily), month (monthly), and the time of
/// year (daily and weekly).
pub fn features(freq: Freq, d: NaiveDate) -> Vec<f64> {
    let mut out = Vec::new();
    match freq {
        Freq::Daily => out.extend((0..7).map(|i| f64::from(u8::from(d.weekday().num_days_from_monday() == i)))),
        Freq::Monthly => out.extend((1..=12).map(|m| f64::from(u8::from(d.month() == m)))),
        Freq::Weekly => {}
    }
    if freq != Freq::Monthly {
        let angle = std::f64::consts::TAU * f64::from(d.ordinal0()) / 365.25;
        out.push(angle.sin());
        out.push(angle.cos());
    }
    out
}
