//! Alert rules, the alert history, and alert e-mails.
//!
//! A rule fires inside the transaction of the change that trips it: the alert row, its event
//! (`stock.low` for stock rules) and a digest job commit together with the change. The digest job
//! runs at the end of the current minute and sends each recipient one e-mail for everything that
//! fired meanwhile (one alert: that alert's own e-mail; several: a digest), through `email.send`
//! jobs that retry like any job. Recipients are the tenant's users holding a role the rule names.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use qm_domain::Role;
use qm_domain::alerts::StockCondition;
use qm_integrations::email::{Email, escape_html};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::auth::parse_roles;
use crate::db::entities::{alert, alert_rule, daily_demand, job, stock_level, tenant, user};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::state::AppState;

pub const SEND: &str = "email.send";
pub const DIGEST: &str = "alerts.digest";
/// Alerts that fire within the same window go out in one e-mail per recipient.
pub const DIGEST_WINDOW_SECONDS: i64 = 60;
/// Days of demand history behind "days of cover".
pub const COVER_DEMAND_DAYS: i64 = 28;
/// At most this many alerts per digest run; the rest go in the next run.
const DIGEST_BATCH: u64 = 500;

pub fn register(r: Registry) -> Registry {
    r.with(SEND, Send).with(DIGEST, Digest)
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Available stock at or below `threshold` units.
    StockBelow,
    /// Days of cover (available over average daily demand) at or below `days_of_cover`.
    DaysOfCoverBelow,
    /// A webhook endpoint was disabled.
    WebhookEndpointDisabled,
    /// The forecast says stock runs out before an order placed now could arrive.
    StockoutPredicted,
    /// A connector's sync run failed.
    SyncFailed,
    /// A SKU is returned significantly more often than the rest of its category.
    ReturnRateHigh,
}

impl RuleKind {
    pub const ALL: [RuleKind; 6] = [
        RuleKind::StockBelow,
        RuleKind::DaysOfCoverBelow,
        RuleKind::WebhookEndpointDisabled,
        RuleKind::StockoutPredicted,
        RuleKind::SyncFailed,
        RuleKind::ReturnRateHigh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::StockBelow => "stock_below",
            RuleKind::DaysOfCoverBelow => "days_of_cover_below",
            RuleKind::WebhookEndpointDisabled => "webhook_endpoint_disabled",
            RuleKind::StockoutPredicted => "stockout_predicted",
            RuleKind::SyncFailed => "sync_failed",
            RuleKind::ReturnRateHigh => "return_rate_high",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    pub fn is_stock(self) -> bool {
        matches!(self, RuleKind::StockBelow | RuleKind::DaysOfCoverBelow)
    }
}

/// The rules every new tenant starts with: a disabled webhook endpoint, a failed connector sync
/// and an anomalous return rate alert owners and admins.
pub async fn create_default_rules(s: &Scoped) -> Result<(), DbErr> {
    let admins = [Role::Owner, Role::Admin];
    insert_rule(s, "Webhook endpoint disabled", RuleKind::WebhookEndpointDisabled, None, &admins).await?;
    insert_rule(s, "Connector sync failed", RuleKind::SyncFailed, None, &admins).await?;
    insert_rule(s, "Return rate anomalously high", RuleKind::ReturnRateHigh, None, &[Role::Owner, Role::Admin]).await?;
    Ok(())
}

/// Inserts an enabled rule for every SKU and location.
pub async fn insert_rule(
    s: &Scoped,
    name: &str,
    kind: RuleKind,
    condition: Option<StockCondition>,
    roles: &[Role],
) -> Result<alert_rule::Model, DbErr> {
    let now = repo::now();
    let (threshold, days_of_cover) = match condition {
        Some(StockCondition::AvailableAtOrBelow(n)) => (Some(n), None),
        Some(StockCondition::DaysOfCoverAtOrBelow(d)) => (None, Some(crate::db::entities::Dec(d))),
        None => (None, None),
    };
    let model = alert_rule::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        name: name.to_owned(),
        kind: kind.as_str().into(),
        sku: None,
        location_id: None,
        threshold,
        days_of_cover,
        recipient_roles: crate::auth::format_roles(roles),
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    alert_rule::Entity::insert(alert_rule::ActiveModel::from(model.clone())).exec_without_returning(&s.tx).await?;
    Ok(model)
}

/// An alert as it is recorded and e-mailed.
pub struct Raised {
    pub subject: String,
    pub lines: Vec<String>,
    pub variant_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
}

/// Records an alert of `rule` and schedules the digest that e-mails it, in the caller's transaction.
async fn record(s: &Scoped, rule: &alert_rule::Model, raised: Raised) -> Result<alert::Model, DbErr> {
    let now = repo::now();
    let model = alert::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        rule_id: Some(rule.id),
        kind: rule.kind.clone(),
        subject: raised.subject,
        details: json!({ "lines": raised.lines }),
        variant_id: raised.variant_id,
        location_id: raised.location_id,
        status: "open".into(),
        fired_at: now,
        notified_at: None,
        acknowledged_at: None,
        acknowledged_by: None,
    };
    alert::Entity::insert(alert::ActiveModel::from(model.clone())).exec_without_returning(&s.tx).await?;
    let bucket = now.timestamp().div_euclid(DIGEST_WINDOW_SECONDS);
    let mut job = NewJob::new(DIGEST, json!({}));
    job.run_at = chrono::DateTime::from_timestamp((bucket + 1) * DIGEST_WINDOW_SECONDS, 0);
    job.dedup_key = Some(format!("{DIGEST}:{bucket}"));
    jobs::enqueue(s, job).await?;
    Ok(model)
}

/// Raises an alert for every enabled rule of `kind` (a kind without further conditions).
pub async fn raise(s: &Scoped, kind: RuleKind, make: impl Fn() -> Raised) -> Result<usize, DbErr> {
    let rules = repo::find::<alert_rule::Entity>(s)
        .filter(alert_rule::Column::Kind.eq(kind.as_str()))
        .filter(alert_rule::Column::Enabled.eq(true))
        .all(&s.tx)
        .await?;
    for rule in &rules {
        record(s, rule, make()).await?;
    }
    Ok(rules.len())
}

/// Average daily demand of a variant at a location over the last [`COVER_DEMAND_DAYS`] days.
pub async fn daily_demand(s: &Scoped, variant_id: Uuid, location_id: Uuid) -> Result<Decimal, DbErr> {
    let today = repo::now().date_naive();
    let rows: Vec<i32> = repo::find::<daily_demand::Entity>(s)
        .select_only()
        .column(daily_demand::Column::Units)
        .filter(daily_demand::Column::VariantId.eq(variant_id))
        .filter(daily_demand::Column::LocationId.eq(location_id))
        .filter(daily_demand::Column::Day.gte(today - Duration::days(COVER_DEMAND_DAYS)))
        .filter(daily_demand::Column::Day.lt(today))
        .into_tuple()
        .all(&s.tx)
        .await?;
    let total: i64 = rows.iter().map(|u| i64::from(*u)).sum();
    Ok(Decimal::from(total) / Decimal::from(COVER_DEMAND_DAYS))
}

fn condition(rule: &alert_rule::Model) -> Option<StockCondition> {
    match RuleKind::parse(&rule.kind)? {
        RuleKind::StockBelow => rule.threshold.map(StockCondition::AvailableAtOrBelow),
        RuleKind::DaysOfCoverBelow => rule.days_of_cover.map(|d| StockCondition::DaysOfCoverAtOrBelow(d.0)),
        RuleKind::WebhookEndpointDisabled
        | RuleKind::StockoutPredicted
        | RuleKind::SyncFailed
        | RuleKind::ReturnRateHigh => None,
    }
}

/// Fires the stock rules that a change of `delta` available units, leaving `level`, tripped:
/// records the alert and emits `stock.low`. Only decreases can trip a rule.
pub async fn check_stock(s: &Scoped, sku: &str, level: &stock_level::Model, delta: i64) -> Result<(), DbErr> {
    if delta >= 0 {
        return Ok(());
    }
    let kinds = [RuleKind::StockBelow.as_str(), RuleKind::DaysOfCoverBelow.as_str()];
    let rules = repo::find::<alert_rule::Entity>(s)
        .filter(alert_rule::Column::Kind.is_in(kinds))
        .filter(alert_rule::Column::Enabled.eq(true))
        .filter(Condition::any().add(alert_rule::Column::Sku.is_null()).add(alert_rule::Column::Sku.eq(sku)))
        .filter(
            Condition::any()
                .add(alert_rule::Column::LocationId.is_null())
                .add(alert_rule::Column::LocationId.eq(level.location_id)),
        )
        .order_by_asc(alert_rule::Column::Id)
        .all(&s.tx)
        .await?;
    if rules.is_empty() {
        return Ok(());
    }
    let available = level.on_hand - level.reserved;
    let needs_demand = rules.iter().any(|r| r.kind == RuleKind::DaysOfCoverBelow.as_str());
    let demand = if needs_demand { daily_demand(s, level.variant_id, level.location_id).await? } else { Decimal::ZERO };
    let mut place: Option<String> = None;
    for rule in &rules {
        let Some(cond) = condition(rule) else { continue };
        if !cond.crossed(available, delta, demand) {
            continue;
        }
        if place.is_none() {
            let loc = crate::services::lookup::location(s, level.location_id).await?;
            place = Some(loc.map_or_else(|| "an unknown location".to_owned(), |l| format!("{} ({})", l.name, l.code)));
        }
        let place = place.as_deref().unwrap_or_default();
        let cover = qm_domain::alerts::days_of_cover(available, demand);
        let mut lines = vec![
            format!("SKU: {sku}"),
            format!("Location: {place}"),
            format!("Available: {available} (on hand {}, reserved {})", level.on_hand, level.reserved),
        ];
        let (rule_line, threshold, days) = match cond {
            StockCondition::AvailableAtOrBelow(n) => (format!("at or below {n} units"), Some(n), None),
            StockCondition::DaysOfCoverAtOrBelow(d) => (format!("at or below {d} days of cover"), None, Some(d)),
        };
        if let Some(c) = cover {
            lines.push(format!("Days of cover: {c} at {} a day (last {COVER_DEMAND_DAYS} days)", demand.round_dp(2)));
        }
        lines.push(format!("Rule: {} ({rule_line})", rule.name));
        let raised = Raised {
            subject: format!("Low stock: {sku} at {place}"),
            lines,
            variant_id: Some(level.variant_id),
            location_id: Some(level.location_id),
        };
        let a = record(s, rule, raised).await?;
        use crate::graphql::types::gid;
        let data = json!({
            "alertId": gid("Alert", a.id).0,
            "ruleId": gid("AlertRule", rule.id).0,
            "sku": sku,
            "variantId": gid("Variant", level.variant_id).0,
            "locationId": gid("Location", level.location_id).0,
            "onHand": level.on_hand,
            "reserved": level.reserved,
            "available": available,
            "threshold": threshold,
            "daysOfCoverThreshold": days.map(|d| d.to_string()),
            "daysOfCover": cover.map(|c| c.to_string()),
        });
        crate::events::emit(s, "stock.low", data).await?;
    }
    Ok(())
}

/// An e-mail's content before it is addressed.
struct Message {
    subject: String,
    sections: Vec<(String, Vec<String>)>,
}

impl Message {
    fn single(a: &alert::Model) -> Self {
        Self { subject: a.subject.clone(), sections: vec![(String::new(), lines_of(a))] }
    }

    fn digest(alerts: &[&alert::Model]) -> Self {
        Self {
            subject: format!("{} alerts", alerts.len()),
            sections: alerts.iter().map(|a| (a.subject.clone(), lines_of(a))).collect(),
        }
    }

    fn render(&self, to: &str, tenant_name: &str) -> Email {
        let mut text = format!("{}\n", self.subject);
        let mut html = format!("<!doctype html><html><body><h2>{}</h2>", escape_html(&self.subject));
        for (heading, lines) in &self.sections {
            text.push('\n');
            if !heading.is_empty() {
                text.push_str(&format!("{heading}\n"));
                html.push_str(&format!("<h3>{}</h3>", escape_html(heading)));
            }
            for l in lines {
                text.push_str(&format!("{}{l}\n", if heading.is_empty() { "" } else { "  " }));
            }
            let items: String = lines.iter().map(|l| format!("<li>{}</li>", escape_html(l))).collect();
            html.push_str(&format!("<ul>{items}</ul>"));
        }
        text.push_str(&format!("\n-- \nQuartermaster alerts for {tenant_name}\n"));
        html.push_str(&format!(
            "<p style=\"color:#666\">Quartermaster alerts for {}</p></body></html>",
            escape_html(tenant_name)
        ));
        Email { to: to.to_owned(), subject: format!("[Quartermaster] {}", self.subject), text, html }
    }
}

/// The lines of detail an alert carries (as e-mailed and shown in the API).
pub fn lines_of(a: &alert::Model) -> Vec<String> {
    a.details["lines"]
        .as_array()
        .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// E-mails every alert not yet e-mailed: one message per recipient.
struct Digest;

#[async_trait::async_trait]
impl Handler for Digest {
    async fn run(&self, state: &AppState, job: &job::Model) -> Result<(), JobError> {
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        let pending = repo::find::<alert::Entity>(&s)
            .filter(alert::Column::NotifiedAt.is_null())
            .order_by_asc(alert::Column::Id)
            .limit(DIGEST_BATCH)
            .all(&s.tx)
            .await?;
        if pending.is_empty() {
            s.commit().await?;
            return Ok(());
        }
        let rules: HashMap<Uuid, alert_rule::Model> =
            repo::find::<alert_rule::Entity>(&s).all(&s.tx).await?.into_iter().map(|r| (r.id, r)).collect();
        let users = repo::find::<user::Entity>(&s).all(&s.tx).await?;
        let tenant_name = tenant::Entity::find_by_id(s.tenant()).one(&s.tx).await?.map(|t| t.name).unwrap_or_default();
        let mut inbox: BTreeMap<String, Vec<&alert::Model>> = BTreeMap::new();
        for a in &pending {
            // A deleted rule's alerts still reach owners and admins.
            let roles = a.rule_id.and_then(|id| rules.get(&id)).map_or_else(
                || vec![Role::Owner, Role::Admin],
                |r| parse_roles(&r.recipient_roles).unwrap_or_default(),
            );
            for u in &users {
                if parse_roles(&u.roles).unwrap_or_default().iter().any(|r| roles.contains(r)) {
                    inbox.entry(u.email.clone()).or_default().push(a);
                }
            }
        }
        if state.mailer.is_none() {
            tracing::debug!("no SMTP server configured: alerts are recorded, not e-mailed");
            inbox.clear();
        }
        for (to, alerts) in &inbox {
            let message = if alerts.len() == 1 { Message::single(alerts[0]) } else { Message::digest(alerts) };
            let mut send = NewJob::new(SEND, json!(message.render(to, &tenant_name)));
            send.dedup_key = Some(format!("{SEND}:{}:{to}", job.id));
            jobs::enqueue(&s, send).await?;
        }
        let ids: Vec<Uuid> = pending.iter().map(|a| a.id).collect();
        alert::Entity::update_many()
            .col_expr(alert::Column::NotifiedAt, Expr::value(repo::now()))
            .filter(alert::Column::TenantId.eq(s.tenant()))
            .filter(alert::Column::Id.is_in(ids))
            .exec(&s.tx)
            .await?;
        if pending.len() as u64 == DIGEST_BATCH {
            let mut more = NewJob::new(DIGEST, json!({}));
            more.dedup_key = Some(format!("{DIGEST}:more:{}", job.id));
            jobs::enqueue(&s, more).await?;
        }
        s.commit().await?;
        tracing::info!(alerts = pending.len(), recipients = inbox.len(), "alert e-mails queued");
        Ok(())
    }
}

struct Send;

#[async_trait::async_trait]
impl Handler for Send {
    async fn run(&self, state: &AppState, job: &job::Model) -> Result<(), JobError> {
        let email: Email = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad e-mail job: {e}")))?;
        let Some(mailer) = &state.mailer else {
            return Err(JobError::Permanent("e-mail is not configured (QM_SMTP_URL)".into()));
        };
        mailer.send(&email).await.map_err(|e| {
            if e.should_retry() { JobError::Retry(e.to_string()) } else { JobError::Permanent(e.to_string()) }
        })
    }
}
