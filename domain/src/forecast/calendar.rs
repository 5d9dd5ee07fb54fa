//! Periods and the calendar features every forecast of them shares.

use chrono::{Datelike, Months, NaiveDate, Weekday};

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

    /// The usual planning horizon: four weeks of days (the service's nightly forecast), eight
    /// weeks, six months. Forecasts made for replenishment look at least this far ahead, so the
    /// choice between models is judged on enough held-out periods.
    pub const fn planning_horizon(self) -> usize {
        match self {
            Freq::Daily => 28,
            Freq::Weekly => 8,
            Freq::Monthly => 6,
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

/// The retail events that move demand in the same week every year (United States dates):
/// Valentine's Day, Easter, Mother's Day, Memorial Day, Father's Day, Independence Day, Labor
/// Day, Halloween, Thanksgiving, Black Friday, Christmas Eve, Christmas and New Year's Eve.
pub const EVENTS: [&str; 13] = [
    "valentines_day",
    "easter",
    "mothers_day",
    "memorial_day",
    "fathers_day",
    "independence_day",
    "labor_day",
    "halloween",
    "thanksgiving",
    "black_friday",
    "christmas_eve",
    "christmas",
    "new_years_eve",
];

/// The `n`-th (1-based) `weekday` of a month, or with `n` = 0 its last.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    if n == 0 {
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        }?;
        let last = next.pred_opt()?;
        let back = (7 + last.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
        return last.checked_sub_days(chrono::Days::new(u64::from(back)));
    }
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// Easter Sunday (the anonymous Gregorian computus).
fn easter(year: i32) -> Option<NaiveDate> {
    let (a, b, c) = (year % 19, year / 100, year % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The dates of [`EVENTS`] in `year`, in that order.
pub fn event_dates(year: i32) -> [Option<NaiveDate>; 13] {
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    let thanksgiving = nth_weekday(year, 11, Weekday::Thu, 4);
    [
        ymd(2, 14),
        easter(year),
        nth_weekday(year, 5, Weekday::Sun, 2),
        nth_weekday(year, 5, Weekday::Mon, 0),
        nth_weekday(year, 6, Weekday::Sun, 3),
        ymd(7, 4),
        nth_weekday(year, 9, Weekday::Mon, 1),
        ymd(10, 31),
        thanksgiving,
        thanksgiving.and_then(|d| d.succ_opt()),
        ymd(12, 24),
        ymd(12, 25),
        ymd(12, 31),
    ]
}

/// Years whose event dates are worked out once and kept ([`event_dates`] for the rest).
const KEPT_YEARS: std::ops::RangeInclusive<i32> = 1950..=2150;

/// [`event_dates`], from a table made on first use for the years most histories fall in.
fn event_dates_kept(year: i32) -> [Option<NaiveDate>; 13] {
    static TABLE: std::sync::OnceLock<Vec<[Option<NaiveDate>; 13]>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| KEPT_YEARS.map(event_dates).collect());
    usize::try_from(year - KEPT_YEARS.start())
        .ok()
        .and_then(|i| table.get(i))
        .copied()
        .unwrap_or_else(|| event_dates(year))
}

/// Whether each of [`EVENTS`] falls in the `days` days from `d`.
fn events_within(d: NaiveDate, days: u64) -> impl Iterator<Item = f64> {
    let end = d.checked_add_days(chrono::Days::new(days)).unwrap_or(NaiveDate::MAX);
    let (this, next) = (event_dates_kept(d.year()), event_dates_kept(d.year() + 1));
    (0..EVENTS.len())
        .map(move |i| f64::from(u8::from([this[i], next[i]].iter().flatten().any(|e| *e >= d && *e < end))))
}

/// Calendar features of a period's date: day of week (daily), month (monthly), and which retail
/// [`EVENTS`] fall in the period (daily and weekly). No smooth time-of-year curve: a few years of
/// history fit one badly, and the global model's same-season lags carry the yearly pattern.
pub fn features(freq: Freq, d: NaiveDate) -> Vec<f64> {
    let mut out = Vec::new();
    match freq {
        Freq::Daily => {
            out.extend((0..7).map(|i| f64::from(u8::from(d.weekday().num_days_from_monday() == i))));
            out.extend(events_within(d, 1));
        }
        Freq::Weekly => out.extend(events_within(d, 7)),
        Freq::Monthly => out.extend((1..=12).map(|m| f64::from(u8::from(d.month() == m)))),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn event_dates_by_hand() {
        let e = event_dates(2000);
        let at = |name: &str| e[EVENTS.iter().position(|n| *n == name).expect("event")];
        assert_eq!(at("easter"), Some(date(2000, 4, 23)));
        assert_eq!(at("mothers_day"), Some(date(2000, 5, 14)));
        assert_eq!(at("memorial_day"), Some(date(2000, 5, 29)));
        assert_eq!(at("fathers_day"), Some(date(2000, 6, 18)));
        assert_eq!(at("labor_day"), Some(date(2000, 9, 4)));
        assert_eq!(at("thanksgiving"), Some(date(2000, 11, 23)));
        assert_eq!(at("black_friday"), Some(date(2000, 11, 24)));
        assert_eq!(easter(2024), Some(date(2024, 3, 31)));
        assert_eq!(easter(2025), Some(date(2025, 4, 20)));
        assert_eq!(nth_weekday(2026, 5, Weekday::Mon, 0), Some(date(2026, 5, 25)));
    }

    #[test]
    fn kept_event_dates_are_the_worked_out_ones_inside_and_outside_the_table() {
        for year in [1, 1949, 1950, 2000, 2026, 2150, 2151, 9999] {
            assert_eq!(event_dates_kept(year), event_dates(year), "{year}");
        }
    }

    #[test]
    fn a_week_holds_the_events_that_fall_in_it() {
        let on =
            |f: Vec<f64>| -> Vec<&str> { EVENTS.iter().zip(f).filter(|(_, v)| *v == 1.0).map(|(n, _)| *n).collect() };
        // The week of Monday 8 May 2000 holds Mother's Day (Sunday 14 May).
        assert_eq!(on(features(Freq::Weekly, date(2000, 5, 8))), ["mothers_day"]);
        assert!(on(features(Freq::Weekly, date(2000, 5, 1))).is_empty());
        // New Year's Eve of the next year, seen from the last week of December.
        assert_eq!(on(features(Freq::Weekly, date(1999, 12, 27))), ["new_years_eve"]);
        // A day: its weekday, then its events.
        let f = features(Freq::Daily, date(2000, 12, 25));
        assert_eq!((f.len(), f[0]), (7 + EVENTS.len(), 1.0), "a Monday");
        assert_eq!(on(f[7..].to_vec()), ["christmas"]);
        assert_eq!(features(Freq::Monthly, date(2000, 3, 1)).len(), 12);
    }
}
