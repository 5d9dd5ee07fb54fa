//! Alert rules and the alert history.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::catalog::opt_gid;
use super::pagination::{Window, connection};
use super::types::{Role, gid, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::alerts::RuleKind;
use crate::db::entities::{alert, alert_rule};
use crate::db::repo;
use crate::services::alerts as service;

/// What an alert rule watches.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AlertRuleKind {
    /// Available stock (on hand minus reserved) at or below `threshold` units.
    StockBelow,
    /// Days of cover (available stock over the average daily demand of the last 28 days) at or
    /// below `daysOfCover`.
    DaysOfCoverBelow,
    /// A webhook endpoint was disabled (after 5 days of failures or a 410 answer).
    WebhookEndpointDisabled,
    /// A forecast run projects that stock (available plus dated inbound, minus the forecast)
    /// runs out before an order placed now could arrive (the shortest supplier lead time).
    StockoutPredicted,
    /// A connector's sync run failed (refused credentials, API version drift, a provider error).
    SyncFailed,
    /// A SKU's return rate is significantly above the rest of its category (checked with each
    /// returns plan run over the last 90 days: exact binomial test, Bonferroni-corrected).
    ReturnRateHigh,
}

impl From<AlertRuleKind> for RuleKind {
    fn from(k: AlertRuleKind) -> Self {
        match k {
            AlertRuleKind::StockBelow => RuleKind::StockBelow,
            AlertRuleKind::DaysOfCoverBelow => RuleKind::DaysOfCoverBelow,
            AlertRuleKind::WebhookEndpointDisabled => RuleKind::WebhookEndpointDisabled,
            AlertRuleKind::StockoutPredicted => RuleKind::StockoutPredicted,
            AlertRuleKind::SyncFailed => RuleKind::SyncFailed,
            AlertRuleKind::ReturnRateHigh => RuleKind::ReturnRateHigh,
        }
    }
}

impl From<RuleKind> for AlertRuleKind {
    fn from(k: RuleKind) -> Self {
        match k {
            RuleKind::StockBelow => AlertRuleKind::StockBelow,
            RuleKind::DaysOfCoverBelow => AlertRuleKind::DaysOfCoverBelow,
            RuleKind::WebhookEndpointDisabled => AlertRuleKind::WebhookEndpointDisabled,
            RuleKind::StockoutPredicted => AlertRuleKind::StockoutPredicted,
            RuleKind::SyncFailed => AlertRuleKind::SyncFailed,
            RuleKind::ReturnRateHigh => AlertRuleKind::ReturnRateHigh,
        }
    }
}

fn kind_of(raw: &str) -> Result<AlertRuleKind, ApiError> {
    RuleKind::parse(raw).map(AlertRuleKind::from).ok_or_else(|| ApiError::internal(format!("unknown rule kind {raw}")))
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AlertStatus {
    Open,
    Acknowledged,
}

stored_names!(AlertStatus, "alert status" {
    Open => "open",
    Acknowledged => "acknowledged",
});

/// When to alert, and whom to e-mail. Stock rules fire on the change that crosses the line
/// (once per crossing), for every SKU and location unless narrowed by `sku` and `locationId`.
pub struct AlertRule(pub alert_rule::Model);

#[Object]
impl AlertRule {
    async fn id(&self) -> ID {
        gid("AlertRule", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> Result<AlertRuleKind, ApiError> {
        kind_of(&self.0.kind)
    }
    /// Only this SKU (stock rules).
    async fn sku(&self) -> Option<&str> {
        self.0.sku.as_deref()
    }
    /// Only this location (stock rules).
    async fn location_id(&self) -> Option<ID> {
        self.0.location_id.map(|id| gid("Location", id))
    }
    /// Units, for STOCK_BELOW.
    async fn threshold(&self) -> Option<i64> {
        self.0.threshold
    }
    /// Days, for DAYS_OF_COVER_BELOW.
    async fn days_of_cover(&self) -> Option<Decimal> {
        self.0.days_of_cover.map(|d| d.0.normalize())
    }
    /// Users holding any of these roles are e-mailed.
    async fn recipient_roles(&self) -> Vec<Role> {
        crate::auth::parse_roles(&self.0.recipient_roles).unwrap_or_default().into_iter().map(Role::from).collect()
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// An alert that fired.
pub struct Alert(pub alert::Model);

#[Object]
impl Alert {
    async fn id(&self) -> ID {
        gid("Alert", self.0.id)
    }
    /// The rule that fired.
    async fn rule_id(&self) -> Option<ID> {
        self.0.rule_id.map(|id| gid("AlertRule", id))
    }
    async fn kind(&self) -> Result<AlertRuleKind, ApiError> {
        kind_of(&self.0.kind)
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The lines of detail the e-mail carries.
    async fn details(&self) -> Vec<String> {
        crate::alerts::lines_of(&self.0)
    }
    async fn variant_id(&self) -> Option<ID> {
        self.0.variant_id.map(|id| gid("Variant", id))
    }
    async fn location_id(&self) -> Option<ID> {
        self.0.location_id.map(|id| gid("Location", id))
    }
    async fn status(&self) -> Result<AlertStatus, ApiError> {
        AlertStatus::stored(&self.0.status)
    }
    async fn fired_at(&self) -> DateTime<Utc> {
        self.0.fired_at
    }
    /// When the e-mail (or digest) for it was queued; null until then.
    async fn notified_at(&self) -> Option<DateTime<Utc>> {
        self.0.notified_at
    }
    async fn acknowledged_at(&self) -> Option<DateTime<Utc>> {
        self.0.acknowledged_at
    }
    /// The subject (user or key) that acknowledged it.
    async fn acknowledged_by(&self) -> Option<&str> {
        self.0.acknowledged_by.as_deref()
    }
}

#[derive(Default)]
pub struct AlertsQuery;

#[Object]
impl AlertsQuery {
    /// The tenant's alert rules, oldest first.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn alert_rules(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, AlertRule>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<alert_rule::Entity>(&s), alert_rule::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, AlertRule))
    }

    /// The alert history, oldest first (`last: n` for the newest), optionally with one status.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        status: Option<AlertStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Alert>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<alert::Entity>(&s);
        if let Some(st) = status {
            q = q.filter(alert::Column::Status.eq(st.as_str()));
        }
        let page = repo::page(&s, q, alert::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Alert))
    }
}

#[derive(InputObject)]
pub struct AlertRuleUpsertInput {
    /// The rule to change; without it a new rule is created.
    pub id: Option<ID>,
    pub name: String,
    /// Fixed when the rule is created.
    pub kind: AlertRuleKind,
    /// Stock rules: only this SKU.
    pub sku: Option<String>,
    /// Stock rules: only this location.
    pub location_id: Option<ID>,
    /// STOCK_BELOW: fire when available stock falls to this many units or fewer.
    pub threshold: Option<i32>,
    /// DAYS_OF_COVER_BELOW: fire when days of cover fall to this many or fewer.
    pub days_of_cover: Option<Decimal>,
    /// E-mail users holding any of these roles (OWNER, ADMIN, PLANNER, VIEWER).
    pub recipient_roles: Vec<Role>,
    #[graphql(default = true)]
    pub enabled: bool,
}

#[derive(SimpleObject)]
pub struct AlertRuleUpsertPayload {
    pub alert_rule: Option<AlertRule>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct AlertAcknowledgeInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct AlertAcknowledgePayload {
    pub alert: Option<Alert>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct AlertsMutation;

#[Object]
impl AlertsMutation {
    /// Creates or changes an alert rule. Needs a role that may operate (owner, admin, planner, integration).
    async fn alert_rule_upsert(
        &self,
        ctx: &Context<'_>,
        input: AlertRuleUpsertInput,
    ) -> Result<AlertRuleUpsertPayload, ApiError> {
        let p = ctx.operator()?;
        let req = service::RuleUpsert {
            id: opt_gid(input.id.as_ref(), "AlertRule"),
            name: input.name,
            kind: input.kind.into(),
            sku: input.sku,
            location_id: opt_gid(input.location_id.as_ref(), "Location"),
            threshold: input.threshold.map(i64::from),
            days_of_cover: input.days_of_cover,
            recipient_roles: input.recipient_roles.into_iter().map(Into::into).collect(),
            enabled: input.enabled,
        };
        Ok(match service::upsert_rule(ctx.db(), p, &req).await? {
            Ok(m) => AlertRuleUpsertPayload { alert_rule: Some(AlertRule(m)), user_errors: vec![] },
            Err(user_errors) => AlertRuleUpsertPayload { alert_rule: None, user_errors },
        })
    }

    /// Marks an alert as seen. Acknowledging again changes nothing.
    async fn alert_acknowledge(
        &self,
        ctx: &Context<'_>,
        input: AlertAcknowledgeInput,
    ) -> Result<AlertAcknowledgePayload, ApiError> {
        let p = ctx.operator()?;
        Ok(match service::acknowledge(ctx.db(), p, parse_gid(&input.id, "Alert")).await? {
            Ok(m) => AlertAcknowledgePayload { alert: Some(Alert(m)), user_errors: vec![] },
            Err(user_errors) => AlertAcknowledgePayload { alert: None, user_errors },
        })
    }
}
