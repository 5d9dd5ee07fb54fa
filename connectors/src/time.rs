//! Providers' ways of writing an instant, read into UTC.
//!
//! Shopify writes RFC 3339 with an offset (`2026-01-15T10:04:05-05:00`), ShipBob RFC 3339 with
//! seven fractional digits (`2026-01-15T15:04:05.1234567+00:00`), ShipStation's V1 API local
//! Pacific time without an offset (`2026-01-15T07:04:05.0000000`), and SuiteQL the account's
//! time zone in the user's date format (see [`crate::netsuite::suiteql::instant`]).

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The zone ShipStation's V1 API writes its dates in.
pub const SHIPSTATION_V1_ZONE: Tz = chrono_tz::America::Los_Angeles;

/// RFC 3339 with an offset or `Z`, any number of fractional digits.
pub fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.to_utc())
}

/// A local date-time in `zone` (`2026-01-15T07:04:05`, `2026-01-15 07:04:05.0000000`). An hour
/// that occurs twice (the autumn change) is read as its first occurrence; one skipped (the spring
/// change) as the moment an hour later, which is what the clock then showed.
pub fn local(s: &str, zone: Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    in_zone(naive, zone)
}

/// `naive` read as a wall-clock time in `zone`.
pub fn in_zone(naive: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| zone.from_local_datetime(&(naive + Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netsuite::suiteql::{self, DateStyle};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("instant").to_utc()
    }

    #[test]
    fn one_instant_in_every_providers_format_is_the_same_utc_time() {
        let want = utc("2026-01-15T15:04:05Z");
        // Shopify: an offset.
        assert_eq!(rfc3339("2026-01-15T10:04:05-05:00"), Some(want));
        // ShipBob: seven fractional digits (here zeros, so the instant is exact).
        assert_eq!(rfc3339("2026-01-15T15:04:05.0000000+00:00"), Some(want));
        // ShipStation V1: Pacific wall-clock time (PST, UTC-8, in January).
        assert_eq!(local("2026-01-15T07:04:05.0000000", SHIPSTATION_V1_ZONE), Some(want));
        // NetSuite SuiteQL: the account's zone, in the format we ask for and in the user's.
        let ny = chrono_tz::America::New_York;
        assert_eq!(suiteql::instant("2026-01-15T10:04:05", ny, DateStyle::MonthFirst), Some(want));
        assert_eq!(suiteql::instant("1/15/2026 10:04:05 am", ny, DateStyle::MonthFirst), Some(want));
        assert_eq!(suiteql::instant("15/1/2026 10:04:05 am", ny, DateStyle::DayFirst), Some(want));
        // Fractions beyond nanoseconds' need are kept exactly as far as they go.
        assert_eq!(rfc3339("2026-01-15T15:04:05.1234567+00:00").map(|t| t.timestamp_subsec_nanos()), Some(123_456_700));
    }

    #[test]
    fn summer_time_and_its_changes_are_read_as_the_clock_showed_them() {
        // PDT (UTC-7) in July.
        assert_eq!(local("2026-07-01T05:00:00", SHIPSTATION_V1_ZONE), Some(utc("2026-07-01T12:00:00Z")));
        // 1:30 occurs twice on 2026-11-01 in Los Angeles: the first (PDT).
        assert_eq!(local("2026-11-01T01:30:00", SHIPSTATION_V1_ZONE), Some(utc("2026-11-01T08:30:00Z")));
        // 2:30 does not occur on 2026-03-08: read as 3:30 PDT.
        assert_eq!(local("2026-03-08T02:30:00", SHIPSTATION_V1_ZONE), Some(utc("2026-03-08T10:30:00Z")));
        assert_eq!(local("yesterday", SHIPSTATION_V1_ZONE), None);
        assert_eq!(rfc3339("2026-01-15T15:04:05"), None, "no offset: not RFC 3339");
    }
}
