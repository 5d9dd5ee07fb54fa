//! Newtypes that hold their invariants: a value you hold is already valid.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A decimal as a float for arithmetic that needs one (regressions, expected values); 0 if it
/// does not fit, which a decimal of money or quantity always does.
pub fn as_f64(d: Decimal) -> f64 {
    rust_decimal::prelude::ToPrimitive::to_f64(&d).unwrap_or(0.0)
}

/// An amount of money as people read it: with its cents (`53.60`, `3432.00`), and more decimals
/// only when it has them (`0.125`).
pub fn amount_text(d: Decimal) -> String {
    let mut a = d.normalize();
    if a.scale() < 2 {
        a.rescale(2);
    }
    a.to_string()
}

/// Why a raw value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("sku must be 1 to 64 printable characters without spaces")]
    InvalidSku,
    #[error("quantity must be positive")]
    NonPositiveQty,
    #[error("quantity must not be zero")]
    ZeroDelta,
    #[error("currency must be a three-letter ISO 4217 code")]
    InvalidCurrency,
    #[error("amount must not be negative")]
    NegativeAmount,
    #[error("unknown role {0:?}")]
    UnknownRole(String),
}

/// A stock-keeping unit code, unique per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU: 1..=64 visible ASCII or Unicode characters, no whitespace or control characters.
    pub fn parse(raw: &str) -> Result<Self, TypeError> {
        let ok =
            !raw.is_empty() && raw.chars().count() <= 64 && raw.chars().all(|c| !c.is_whitespace() && !c.is_control());
        if ok { Ok(Self(raw.to_owned())) } else { Err(TypeError::InvalidSku) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = TypeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Sku> for String {
    fn from(value: Sku) -> Self {
        value.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A strictly positive whole number of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Qty(i64);

impl Qty {
    pub fn parse(raw: i64) -> Result<Self, TypeError> {
        if raw > 0 { Ok(Self(raw)) } else { Err(TypeError::NonPositiveQty) }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A non-zero signed change in units, as in a stock adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta(i64);

impl Delta {
    pub fn parse(raw: i64) -> Result<Self, TypeError> {
        if raw != 0 { Ok(Self(raw)) } else { Err(TypeError::ZeroDelta) }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An amount of money in one currency. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

/// A three-letter ISO 4217 currency code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, TypeError> {
        if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TypeError::InvalidCurrency)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = TypeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

impl Money {
    pub fn parse(amount: Decimal, currency: &str) -> Result<Self, TypeError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(TypeError::NegativeAmount);
        }
        Ok(Self { amount, currency: Currency::parse(currency)? })
    }
}

/// What a principal may do inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Planner,
    Viewer,
    Supplier,
    Integration,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Owner, Role::Admin, Role::Planner, Role::Viewer, Role::Supplier, Role::Integration];

    pub fn parse(raw: &str) -> Result<Self, TypeError> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw).ok_or_else(|| TypeError::UnknownRole(raw.to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Planner => "planner",
            Role::Viewer => "viewer",
            Role::Supplier => "supplier",
            Role::Integration => "integration",
        }
    }

    /// May read the tenant's catalog, stock, orders and plans.
    pub fn can_read(self) -> bool {
        !matches!(self, Role::Supplier)
    }

    /// May change stock, orders, catalog and suppliers.
    pub fn can_operate(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Planner | Role::Integration)
    }

    /// May manage users and API keys.
    pub fn can_administer(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_shows_its_cents_and_no_more_than_it_has() {
        let text = |s: &str| amount_text(s.parse::<Decimal>().expect("a decimal"));
        assert_eq!(
            (text("53.6"), text("3432"), text("12.300"), text("0.125"), text("0")),
            ("53.60".into(), "3432.00".into(), "12.30".into(), "0.125".into(), "0.00".into())
        );
    }

    #[test]
    fn sku_refuses_blank_and_whitespace() {
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("A B").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
        assert_eq!(Sku::parse("TEE-RED-M").map(|s| s.to_string()), Ok("TEE-RED-M".to_owned()));
    }

    #[test]
    fn quantities_must_be_positive() {
        assert!(Qty::parse(0).is_err());
        assert!(Qty::parse(-3).is_err());
        assert_eq!(Qty::parse(2).map(Qty::get), Ok(2));
        assert!(Delta::parse(0).is_err());
        assert_eq!(Delta::parse(-2).map(Delta::get), Ok(-2));
    }

    #[test]
    fn money_needs_an_iso_currency_and_no_negative_amount() {
        assert!(Money::parse(Decimal::new(100, 2), "usd").is_err());
        assert!(Money::parse(Decimal::new(-1, 0), "USD").is_err());
        assert!(Money::parse(Decimal::new(1999, 2), "EUR").is_ok());
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert!(Role::parse("root").is_err());
        assert!(!Role::Viewer.can_operate());
        assert!(!Role::Supplier.can_read());
    }
}
