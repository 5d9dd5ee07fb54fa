//! When a stock alert rule fires.
//!
//! A rule fires on the change that crosses its line, not on every change below it: stock that
//! drops from 12 to 9 against "at or below 10" fires once; 9 to 8 does not fire again; stock that
//! recovers above the line and drops again fires again. Days of cover is available stock divided
//! by average daily demand; with no demand, cover is unbounded and the rule cannot fire.

use rust_decimal::Decimal;

/// What a stock rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockCondition {
    /// Available units at or below this many.
    AvailableAtOrBelow(i64),
    /// Days of cover at or below this many.
    DaysOfCoverAtOrBelow(Decimal),
}

/// Days of cover of `available` units at `daily_demand` units a day; `None` when demand is zero
/// or negative (cover is unbounded).
pub fn days_of_cover(available: i64, daily_demand: Decimal) -> Option<Decimal> {
    if daily_demand <= Decimal::ZERO {
        return None;
    }
    Some((Decimal::from(available.max(0)) / daily_demand).round_dp(2))
}

impl StockCondition {
    /// True when `available` meets the condition.
    pub fn holds(self, available: i64, daily_demand: Decimal) -> bool {
        match self {
            StockCondition::AvailableAtOrBelow(n) => available <= n,
            StockCondition::DaysOfCoverAtOrBelow(days) => {
                days_of_cover(available, daily_demand).is_some_and(|c| c <= days)
            }
        }
    }

    /// True when a change of `delta` available units, ending at `available`, crossed into the
    /// condition (it holds now and did not hold before).
    pub fn crossed(self, available: i64, delta: i64, daily_demand: Decimal) -> bool {
        let before = available.saturating_sub(delta);
        self.holds(available, daily_demand) && !self.holds(before, daily_demand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn a_threshold_fires_once_when_crossed() {
        let c = StockCondition::AvailableAtOrBelow(10);
        assert!(c.crossed(9, -3, Decimal::ZERO), "12 -> 9 crosses");
        assert!(c.crossed(10, -1, Decimal::ZERO), "11 -> 10 reaches the line");
        assert!(!c.crossed(8, -1, Decimal::ZERO), "9 -> 8 is already below");
        assert!(!c.crossed(15, 5, Decimal::ZERO), "rising stock never fires");
        assert!(!c.crossed(11, -1, Decimal::ZERO), "12 -> 11 is still above");
    }

    #[test]
    fn days_of_cover_uses_daily_demand() {
        assert_eq!(days_of_cover(30, dec!(4)), Some(dec!(7.5)));
        assert_eq!(days_of_cover(-3, dec!(4)), Some(dec!(0)));
        assert_eq!(days_of_cover(30, Decimal::ZERO), None);
        let c = StockCondition::DaysOfCoverAtOrBelow(dec!(7));
        assert!(c.crossed(28, -4, dec!(4)), "8 days -> 7 days crosses");
        assert!(!c.crossed(24, -4, dec!(4)), "7 -> 6 days is already below");
        assert!(!c.crossed(0, -10, Decimal::ZERO), "without demand cover is unbounded");
    }
}
