//! Webhook endpoints, fan-out and delivery jobs.
//!
//! `webhook.fanout` turns one event into one message per subscribed, active endpoint (unique per
//! endpoint and event, so a re-run adds nothing). `webhook.deliver` sends one message, records the
//! attempt, and reschedules itself on Svix's schedule until delivered or out of attempts. The
//! message id (`webhook-id`) is the same on every retry, so receivers can de-duplicate.
//!
//! Endpoint secrets are stored sealed with the connector encryption key (as connector
//! credentials are), bound to their endpoint: a database dump or backup holds them only sealed.

use chrono::{Duration as ChronoDuration, Utc};
use qm_integrations::retry::{WEBHOOK_SCHEDULE, webhook_delay};
use qm_integrations::sealing::{SealError, Sealer};
use qm_integrations::webhooks::{Outcome, Outgoing, Report, SECRET_PREFIX};
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::db::entities::{event, webhook_attempt, webhook_endpoint, webhook_message};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::state::AppState;

pub const FANOUT: &str = "webhook.fanout";
pub const DELIVER: &str = "webhook.deliver";
/// An endpoint failing continuously for this long is disabled.
pub const DISABLE_AFTER: ChronoDuration = ChronoDuration::days(5);
/// After a rotation the previous secret keeps signing for this long.
pub const ROTATION_OVERLAP: ChronoDuration = ChronoDuration::hours(24);

pub fn register(r: Registry) -> Registry {
    r.with(FANOUT, Fanout).with(DELIVER, Deliver)
}

/// What a sealed endpoint secret is bound to: it opens in this endpoint's row only.
fn secret_owner(tenant: Uuid, endpoint: Uuid) -> Vec<u8> {
    format!("webhook-endpoint:{tenant}:{endpoint}").into_bytes()
}

/// An endpoint's signing secret as stored: sealed.
pub fn seal_secret(sealer: &Sealer, tenant: Uuid, endpoint: Uuid, secret: &str) -> String {
    sealer.seal(secret.as_bytes(), &secret_owner(tenant, endpoint))
}

/// An endpoint's signing secret from its stored form. Versions before sealing stored it in the
/// clear (`whsec_…`): such a value is used as it is until the secret is rotated.
pub fn open_secret(sealer: &Sealer, tenant: Uuid, endpoint: Uuid, stored: &str) -> Result<String, SealError> {
    if stored.starts_with(SECRET_PREFIX) {
        return Ok(stored.to_owned());
    }
    let plain = sealer.open(stored, &secret_owner(tenant, endpoint))?;
    String::from_utf8(plain).map_err(|_| SealError::Malformed)
}

/// The `webhook-id` of a message.
pub fn message_header_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// True when the endpoint subscribes to `event_type` (an empty list means every type).
pub fn subscribes(endpoint: &webhook_endpoint::Model, event_type: &str) -> bool {
    crate::events::matches(endpoint.event_types.split(',').filter(|t| !t.is_empty()), event_type)
}

/// True when the endpoint may be sent an event with `data`: a supplier's endpoint only the events
/// that name its supplier (`supplierId`), a tenant's every one.
pub fn may_see(endpoint: &webhook_endpoint::Model, data: &serde_json::Value) -> bool {
    endpoint.supplier_id.is_none_or(|id| {
        data.get("supplierId").and_then(|v| v.as_str()) == Some(crate::graphql::types::gid("Supplier", id).0.as_str())
    })
}

/// The exact bytes sent for an event.
pub fn body(event_type: &str, occurred_at: chrono::DateTime<Utc>, data: &serde_json::Value) -> String {
    json!({ "type": event_type, "timestamp": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "data": data })
        .to_string()
}

/// Queues a message for delivery (inside the caller's transaction). `round` distinguishes resends.
pub async fn queue_message(s: &Scoped, message_id: Uuid, round: i64) -> Result<(), DbErr> {
    let mut job = NewJob::new(DELIVER, json!({ "message_id": message_id }));
    job.max_attempts = WEBHOOK_SCHEDULE.len() as i32 + 1;
    job.dedup_key = Some(format!("deliver:{message_id}:{round}"));
    jobs::enqueue(s, job).await?;
    Ok(())
}

/// Creates a message for `endpoint` and queues it; returns `None` if it existed already.
pub async fn create_message(
    s: &Scoped,
    endpoint_id: Uuid,
    event_id: Option<Uuid>,
    event_type: &str,
    body: String,
) -> Result<Option<Uuid>, DbErr> {
    let now = repo::now();
    let id = Uuid::now_v7();
    let inserted = webhook_message::Entity::insert(webhook_message::ActiveModel::from(webhook_message::Model {
        tenant_id: s.tenant(),
        id,
        endpoint_id,
        event_id,
        event_type: event_type.to_owned(),
        body,
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: Some(now),
        created_at: now,
        updated_at: now,
    }))
    .on_conflict(
        OnConflict::columns([
            webhook_message::Column::TenantId,
            webhook_message::Column::EndpointId,
            webhook_message::Column::EventId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&s.tx)
    .await?;
    if inserted == 0 {
        return Ok(None);
    }
    queue_message(s, id, 0).await?;
    Ok(Some(id))
}

fn payload_id(job: &crate::db::entities::job::Model, key: &str) -> Result<Uuid, JobError> {
    job.payload
        .get(key)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::Permanent(format!("job payload lacks {key}")))
}

struct Fanout;

#[async_trait::async_trait]
impl Handler for Fanout {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let event_id = payload_id(job, "event_id")?;
        // Read first: most events of most tenants have no subscriber, and then nothing is written.
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let Some(ev) = repo::find::<event::Entity>(&s).filter(event::Column::Id.eq(event_id)).one(&s.tx).await? else {
            return Err(JobError::Permanent("event not found".into()));
        };
        let endpoints: Vec<_> = repo::find::<webhook_endpoint::Entity>(&s)
            .filter(webhook_endpoint::Column::Status.eq("active"))
            .all(&s.tx)
            .await?
            .into_iter()
            .filter(|e| subscribes(e, &ev.event_type) && may_see(e, &ev.payload))
            .collect();
        s.commit().await?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let text = body(&ev.event_type, ev.occurred_at, &ev.payload);
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        for ep in &endpoints {
            create_message(&s, ep.id, Some(ev.id), &ev.event_type, text.clone()).await?;
        }
        s.commit().await?;
        Ok(())
    }
}

struct Deliver;

#[async_trait::async_trait]
impl Handler for Deliver {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let message_id = payload_id(job, "message_id")?;
        // Read what to send; no transaction stays open while the receiver is called.
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let msg = repo::find::<webhook_message::Entity>(&s)
            .filter(webhook_message::Column::Id.eq(message_id))
            .one(&s.tx)
            .await?;
        let Some(msg) = msg else { return Err(JobError::Permanent("message not found".into())) };
        let ep = repo::find::<webhook_endpoint::Entity>(&s)
            .filter(webhook_endpoint::Column::Id.eq(msg.endpoint_id))
            .one(&s.tx)
            .await?;
        s.commit().await?;
        if msg.status == "delivered" {
            return Ok(());
        }
        let Some(ep) = ep else { return Err(JobError::Permanent("endpoint deleted".into())) };
        if ep.status != "active" {
            // Kept as failed; webhookEndpointRecover resends it once the endpoint is enabled.
            mark_message(state, &msg, "failed", None).await?;
            return Err(JobError::Permanent("endpoint is disabled".into()));
        }
        let now = Utc::now();
        // A secret that does not open is most likely a key missing from this process's
        // configuration. Without the current one nothing goes out (unsigned or signed with the
        // old one alone): the attempt fails like one the receiver failed (recorded with why, the
        // endpoint failing, retried on the schedule, and once out of attempts failed and resent
        // by webhookEndpointRecover when the keys are mended). The previous one only helps
        // receivers that have not switched yet: without it the message goes out signed with the
        // current secret, and such a receiver's answer decides the attempt.
        let report = match open_secret(&state.sealer, ep.tenant_id, ep.id, &ep.secret) {
            Ok(current) => {
                let mut secrets = vec![current];
                if let (Some(prev), Some(until)) = (&ep.previous_secret, ep.previous_secret_expires_at)
                    && until > now
                {
                    match open_secret(&state.sealer, ep.tenant_id, ep.id, prev) {
                        Ok(previous) => secrets.push(previous),
                        Err(e) => tracing::warn!(
                            endpoint = %ep.id,
                            error = %e,
                            "the endpoint's previous signing secret does not open; signing with the current one alone (check QM_CONNECTOR_KEYS)"
                        ),
                    }
                }
                let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
                let header_id = message_header_id(msg.id);
                state
                    .webhooks
                    .deliver(&Outgoing {
                        url: &ep.url,
                        msg_id: &header_id,
                        timestamp: now.timestamp(),
                        body: msg.body.as_bytes(),
                        secrets: &secrets,
                    })
                    .await
            }
            Err(e) => Report::not_sent(format!(
                "not sent: the endpoint's signing secret does not open ({e}); check QM_CONNECTOR_KEYS"
            )),
        };
        let attempts = record_attempt(state, &msg, &report).await?;
        match report.outcome {
            Outcome::Delivered => {
                mark_message(state, &msg, "delivered", None).await?;
                set_failing(state, &ep, false).await?;
                Ok(())
            }
            Outcome::Refused => {
                mark_message(state, &msg, "failed", None).await?;
                Err(JobError::Permanent(report.error.unwrap_or_else(|| "refused".into())))
            }
            Outcome::Gone => {
                mark_message(state, &msg, "failed", None).await?;
                disable_endpoint(state, &ep, "the receiver answered 410 Gone").await?;
                Err(JobError::Permanent("410 Gone: endpoint disabled".into()))
            }
            Outcome::Failed => {
                let failing_since = set_failing(state, &ep, true).await?;
                let reason = report.error.clone().unwrap_or_else(|| format!("HTTP {}", report.status.unwrap_or(0)));
                if failing_since.is_some_and(|since| now - since >= DISABLE_AFTER) {
                    mark_message(state, &msg, "failed", None).await?;
                    disable_endpoint(state, &ep, "failing for 5 days").await?;
                    return Err(JobError::Permanent(format!("{reason}; endpoint disabled")));
                }
                let jitter = rand::rng().random::<f64>();
                match webhook_delay(attempts, jitter, report.retry_after) {
                    Some(delay) => {
                        let delay = delay.mul_f64(state.config.webhook_retry_scale);
                        let at = now + ChronoDuration::from_std(delay).unwrap_or(ChronoDuration::seconds(5));
                        mark_message(state, &msg, "pending", Some(at)).await?;
                        Err(JobError::RetryAt(reason, at))
                    }
                    None => {
                        mark_message(state, &msg, "failed", None).await?;
                        Err(JobError::Permanent(format!("{reason}; out of attempts")))
                    }
                }
            }
        }
    }

    /// A delivery job that will not run again while its message still waits (its lease expired on
    /// its last attempt, or the database failed it that often) leaves the message failed, so
    /// `webhookEndpointRecover` resends it; a pending message would wait for good.
    async fn dead(
        &self,
        state: &AppState,
        job: &crate::db::entities::job::Model,
        _error: &str,
    ) -> Result<(), JobError> {
        let message_id = payload_id(job, "message_id")?;
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        set_status(&s, message_id, "failed", None)
            .filter(webhook_message::Column::Status.eq("pending"))
            .exec(&s.tx)
            .await?;
        s.commit().await?;
        Ok(())
    }
}

/// Records one attempt and returns how many attempts the message has had.
async fn record_attempt(
    state: &AppState,
    msg: &webhook_message::Model,
    report: &qm_integrations::webhooks::Report,
) -> Result<u32, DbErr> {
    let s = state.db.scoped(msg.tenant_id, TxMode::Write).await?;
    webhook_attempt::Entity::insert(webhook_attempt::ActiveModel::from(webhook_attempt::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        message_id: msg.id,
        endpoint_id: msg.endpoint_id,
        status_code: report.status.map(i32::from),
        latency_ms: i32::try_from(report.latency.as_millis()).unwrap_or(i32::MAX),
        response_excerpt: report.excerpt.chars().take(1024).collect(),
        error: report.error.as_ref().map(|e| e.chars().take(1024).collect()),
        attempted_at: repo::now(),
    }))
    .exec_without_returning(&s.tx)
    .await?;
    webhook_message::Entity::update_many()
        .col_expr(webhook_message::Column::Attempts, Expr::col(webhook_message::Column::Attempts).add(1))
        .col_expr(webhook_message::Column::UpdatedAt, Expr::value(repo::now()))
        .filter(webhook_message::Column::TenantId.eq(s.tenant()))
        .filter(webhook_message::Column::Id.eq(msg.id))
        .exec(&s.tx)
        .await?;
    s.commit().await?;
    // Only this message's delivery job counts its attempts, so the new count is known.
    Ok(u32::try_from(msg.attempts + 1).unwrap_or(1))
}

async fn mark_message(
    state: &AppState,
    msg: &webhook_message::Model,
    status: &str,
    next: Option<chrono::DateTime<Utc>>,
) -> Result<(), DbErr> {
    let s = state.db.scoped(msg.tenant_id, TxMode::Write).await?;
    set_status(&s, msg.id, status, next).exec(&s.tx).await?;
    s.commit().await
}

/// The update that sets message `id`'s status and next attempt (the transaction's tenant's).
fn set_status(
    s: &Scoped,
    id: Uuid,
    status: &str,
    next: Option<chrono::DateTime<Utc>>,
) -> sea_orm::UpdateMany<webhook_message::Entity> {
    webhook_message::Entity::update_many()
        .col_expr(webhook_message::Column::Status, Expr::value(status))
        .col_expr(webhook_message::Column::NextAttemptAt, Expr::value(next))
        .col_expr(webhook_message::Column::UpdatedAt, Expr::value(repo::now()))
        .filter(webhook_message::Column::TenantId.eq(s.tenant()))
        .filter(webhook_message::Column::Id.eq(id))
}

/// Sets or clears the endpoint's failing-since time; returns it.
async fn set_failing(
    state: &AppState,
    ep: &webhook_endpoint::Model,
    failing: bool,
) -> Result<Option<chrono::DateTime<Utc>>, DbErr> {
    let since = if failing { Some(ep.failing_since.unwrap_or_else(repo::now)) } else { None };
    if since == ep.failing_since {
        return Ok(since);
    }
    let s = state.db.scoped(ep.tenant_id, TxMode::Write).await?;
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(since))
        .filter(webhook_endpoint::Column::TenantId.eq(s.tenant()))
        .filter(webhook_endpoint::Column::Id.eq(ep.id))
        .exec(&s.tx)
        .await?;
    s.commit().await?;
    Ok(since)
}

/// Disables an endpoint and emits `endpoint.disabled` in the same transaction.
pub async fn disable_endpoint(state: &AppState, ep: &webhook_endpoint::Model, reason: &str) -> Result<(), DbErr> {
    let s = state.db.scoped(ep.tenant_id, TxMode::Write).await?;
    let changed = webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Status, Expr::value("disabled"))
        .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(repo::now()))
        .filter(webhook_endpoint::Column::TenantId.eq(s.tenant()))
        .filter(webhook_endpoint::Column::Id.eq(ep.id))
        .filter(webhook_endpoint::Column::Status.eq("active"))
        .exec(&s.tx)
        .await?;
    if changed.rows_affected == 1 {
        let id = crate::graphql::types::gid("WebhookEndpoint", ep.id);
        crate::events::emit(&s, "endpoint.disabled", json!({ "endpointId": id.0, "url": ep.url, "reason": reason }))
            .await?;
        crate::alerts::raise(&s, crate::alerts::RuleKind::WebhookEndpointDisabled, || crate::alerts::Raised {
            subject: "A webhook endpoint was disabled".into(),
            lines: vec![
                format!("Endpoint: {}", ep.url),
                format!("Reason: {reason}"),
                "Deliveries to it are paused. Fix the receiver, then run webhookEndpointRecover to resend what failed."
                    .into(),
            ],
            variant_id: None,
            location_id: None,
        })
        .await?;
        tracing::warn!(endpoint = %ep.id, reason, "webhook endpoint disabled");
    }
    s.commit().await
}

/// Resends a message (from the start of the schedule). Returns false if it does not exist.
pub async fn resend(s: &Scoped, message_id: Uuid) -> Result<bool, DbErr> {
    let Some(msg) =
        repo::find::<webhook_message::Entity>(s).filter(webhook_message::Column::Id.eq(message_id)).one(&s.tx).await?
    else {
        return Ok(false);
    };
    webhook_message::Entity::update_many()
        .col_expr(webhook_message::Column::Status, Expr::value("pending"))
        .col_expr(webhook_message::Column::Attempts, Expr::value(0))
        .col_expr(webhook_message::Column::NextAttemptAt, Expr::value(Some(repo::now())))
        .col_expr(webhook_message::Column::UpdatedAt, Expr::value(repo::now()))
        .filter(webhook_message::Column::TenantId.eq(s.tenant()))
        .filter(webhook_message::Column::Id.eq(msg.id))
        .exec(&s.tx)
        .await?;
    queue_message(s, msg.id, Utc::now().timestamp_micros()).await?;
    Ok(true)
}
