//! Webhook endpoints and their deliveries. Owners and admins only.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{gid, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx, write_tx};
use crate::db::entities::{webhook_attempt, webhook_endpoint, webhook_message};
use crate::db::{Scoped, repo};
use crate::webhooks as hooks;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookEndpointStatus {
    Active,
    Disabled,
}

stored_names!(WebhookEndpointStatus, "webhook endpoint status" {
    Active => "active",
    Disabled => "disabled",
});

#[derive(Clone)]
pub struct WebhookEndpoint(pub webhook_endpoint::Model);

#[Object]
impl WebhookEndpoint {
    pub async fn id(&self) -> ID {
        gid("WebhookEndpoint", self.0.id)
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Subscribed event types; empty means every type. `stock.*` matches a family.
    async fn event_types(&self) -> Vec<String> {
        self.0.event_types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }
    async fn status(&self) -> Result<WebhookEndpointStatus, ApiError> {
        WebhookEndpointStatus::stored(&self.0.status)
    }
    /// Since when deliveries have been failing without a success; null when healthy.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }
    /// Until when the previous secret still signs (after `webhookSecretRotate`).
    async fn previous_secret_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.previous_secret_expires_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The supplier whose receiver this is (sent only that supplier's events).
    async fn supplier_id(&self) -> Option<ID> {
        self.0.supplier_id.map(|id| gid("Supplier", id))
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookMessageStatus {
    Pending,
    Delivered,
    Failed,
}

stored_names!(WebhookMessageStatus, "webhook message status" {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

#[derive(SimpleObject)]
pub struct WebhookAttempt {
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub response_excerpt: String,
    pub error: Option<String>,
    pub attempted_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct WebhookMessage(pub webhook_message::Model);

#[Object]
impl WebhookMessage {
    pub async fn id(&self) -> ID {
        gid("WebhookMessage", self.0.id)
    }
    /// The `webhook-id` header: the same on every retry.
    async fn webhook_id(&self) -> String {
        hooks::message_header_id(self.0.id)
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The exact JSON body sent.
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn status(&self) -> Result<WebhookMessageStatus, ApiError> {
        WebhookMessageStatus::stored(&self.0.status)
    }
    async fn attempt_count(&self) -> i32 {
        self.0.attempts
    }
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Every attempt, oldest first.
    #[graphql(complexity = "5 * child_complexity")]
    async fn attempts(&self, ctx: &Context<'_>) -> Result<Vec<WebhookAttempt>, ApiError> {
        let p = ctx.admin()?;
        let s = read_tx(ctx, p).await?;
        let rows = repo::find::<webhook_attempt::Entity>(&s)
            .filter(webhook_attempt::Column::MessageId.eq(self.0.id))
            .order_by_asc(webhook_attempt::Column::AttemptedAt)
            .all(&s.tx)
            .await?;
        s.commit().await?;
        Ok(rows
            .into_iter()
            .map(|a| WebhookAttempt {
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                response_excerpt: a.response_excerpt,
                error: a.error,
                attempted_at: a.attempted_at,
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct WebhookEventType {
    pub name: String,
    pub version: i32,
    pub description: String,
}

async fn endpoint(s: &Scoped, id: Option<Uuid>) -> Result<Option<webhook_endpoint::Model>, ApiError> {
    match id {
        Some(id) => Ok(crate::services::lookup::webhook_endpoint(s, id).await?),
        None => Ok(None),
    }
}

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, WebhookEndpoint>, ApiError> {
        let p = ctx.admin()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page =
            repo::page(&s, repo::find::<webhook_endpoint::Entity>(&s), webhook_endpoint::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, WebhookEndpoint))
    }

    /// Messages sent (or to be sent) to one endpoint, oldest first, with their attempts.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        status: Option<WebhookMessageStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, WebhookMessage>, ApiError> {
        let p = ctx.admin()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&endpoint_id, "WebhookEndpoint")).await? else {
            s.commit().await?;
            return Ok(Connection::new(false, false));
        };
        let mut q = repo::find::<webhook_message::Entity>(&s).filter(webhook_message::Column::EndpointId.eq(ep.id));
        if let Some(st) = status {
            q = q.filter(webhook_message::Column::Status.eq(st.as_str()));
        }
        let page = repo::page(&s, q, webhook_message::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, WebhookMessage))
    }

    /// The event catalogue: every type a webhook can subscribe to, with its payload version.
    async fn webhook_event_types(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEventType>, ApiError> {
        ctx.principal()?;
        Ok(crate::events::CATALOGUE
            .iter()
            .map(|(n, v, d)| WebhookEventType { name: (*n).into(), version: *v, description: (*d).into() })
            .collect())
    }
}

#[derive(InputObject)]
pub struct WebhookEndpointCreateInput {
    pub url: String,
    /// Event types to receive (see `webhookEventTypes`); `stock.*` matches a family; empty: all.
    #[graphql(default)]
    pub event_types: Vec<String>,
    #[graphql(default)]
    pub description: String,
    /// A supplier's receiver: it is sent only events about that supplier (its contracts and
    /// purchase orders), whatever `eventTypes` says.
    pub supplier_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct WebhookEndpointCreatePayload {
    pub endpoint: Option<WebhookEndpoint>,
    /// The signing secret (`whsec_…`), shown only this once.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct WebhookEndpointUpdateInput {
    pub id: ID,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct WebhookEndpointIdInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct WebhookEndpointPayload {
    pub endpoint: Option<WebhookEndpoint>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct WebhookSecretRotatePayload {
    pub endpoint: Option<WebhookEndpoint>,
    /// The new secret, shown only this once. The old one keeps signing for 24 hours.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct WebhookEndpointDeletePayload {
    pub deleted_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct WebhookMessageResendInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct WebhookMessagePayload {
    pub message: Option<WebhookMessage>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct WebhookEndpointRecoverInput {
    pub endpoint_id: ID,
    /// Resend every failed message created at or after this time.
    pub since: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct WebhookEndpointRecoverPayload {
    pub endpoint: Option<WebhookEndpoint>,
    pub resent: i32,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct WebhookTestSendInput {
    pub endpoint_id: ID,
}

fn check_types(types: &[String]) -> Result<String, UserError> {
    for t in types {
        if !crate::events::is_known_pattern(t) {
            return Err(UserError::invalid(&["input", "eventTypes"], format!("unknown event type {t:?}")));
        }
    }
    Ok(types.join(","))
}

fn not_found(field: &str) -> Vec<UserError> {
    vec![UserError::not_found(&["input", field], "webhook endpoint")]
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Registers a receiver. Its `whsec_` secret is returned once.
    async fn webhook_endpoint_create(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointCreateInput,
    ) -> Result<WebhookEndpointCreatePayload, ApiError> {
        let p = ctx.admin()?;
        let fail = |e: UserError| WebhookEndpointCreatePayload { endpoint: None, secret: None, user_errors: vec![e] };
        if let Err(e) = ctx.state().webhooks.check_url(&input.url) {
            return Ok(fail(UserError::invalid(&["input", "url"], e)));
        }
        let types = match check_types(&input.event_types) {
            Ok(t) => t,
            Err(e) => return Ok(fail(e)),
        };
        if input.description.chars().count() > 500 {
            return Ok(fail(UserError::invalid(&["input", "description"], "at most 500 characters")));
        }
        let s = write_tx(ctx, p).await?;
        let supplier_id = match &input.supplier_id {
            None => None,
            Some(id) => match parse_gid(id, "Supplier") {
                Some(id) if crate::services::lookup::supplier(&s, id).await?.is_some() => Some(id),
                _ => return Ok(fail(UserError::not_found(&["input", "supplierId"], "supplier"))),
            },
        };
        let secret = qm_integrations::webhooks::generate_secret();
        let now = repo::now();
        let id = Uuid::now_v7();
        let m = webhook_endpoint::Model {
            tenant_id: p.tenant_id,
            id,
            url: input.url,
            description: input.description,
            event_types: types,
            secret: hooks::seal_secret(&ctx.state().sealer, p.tenant_id, id, &secret),
            previous_secret: None,
            previous_secret_expires_at: None,
            status: "active".into(),
            failing_since: None,
            created_at: now,
            updated_at: now,
            supplier_id,
        };
        webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel::from(m.clone()))
            .exec_without_returning(&s.tx)
            .await?;
        s.commit().await?;
        Ok(WebhookEndpointCreatePayload {
            endpoint: Some(WebhookEndpoint(m)),
            secret: Some(secret),
            user_errors: vec![],
        })
    }

    async fn webhook_endpoint_update(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointUpdateInput,
    ) -> Result<WebhookEndpointPayload, ApiError> {
        let p = ctx.admin()?;
        let fail = |e: Vec<UserError>| WebhookEndpointPayload { endpoint: None, user_errors: e };
        if let Some(url) = &input.url
            && let Err(e) = ctx.state().webhooks.check_url(url)
        {
            return Ok(fail(vec![UserError::invalid(&["input", "url"], e)]));
        }
        let types = match input.event_types.as_deref().map(check_types).transpose() {
            Ok(t) => t,
            Err(e) => return Ok(fail(vec![e])),
        };
        let s = write_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&input.id, "WebhookEndpoint")).await? else {
            return Ok(fail(not_found("id")));
        };
        let mut am: webhook_endpoint::ActiveModel = ep.into();
        if let Some(url) = input.url {
            am.url = sea_orm::ActiveValue::Set(url);
        }
        if let Some(t) = types {
            am.event_types = sea_orm::ActiveValue::Set(t);
        }
        if let Some(d) = input.description {
            am.description = sea_orm::ActiveValue::Set(d.chars().take(500).collect());
        }
        am.updated_at = sea_orm::ActiveValue::Set(repo::now());
        let m = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
        s.commit().await?;
        Ok(WebhookEndpointPayload { endpoint: Some(WebhookEndpoint(m)), user_errors: vec![] })
    }

    /// Issues a new secret; for 24 hours deliveries carry signatures with both.
    async fn webhook_secret_rotate(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointIdInput,
    ) -> Result<WebhookSecretRotatePayload, ApiError> {
        let p = ctx.admin()?;
        let s = write_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&input.id, "WebhookEndpoint")).await? else {
            return Ok(WebhookSecretRotatePayload { endpoint: None, secret: None, user_errors: not_found("id") });
        };
        let secret = qm_integrations::webhooks::generate_secret();
        let mut am: webhook_endpoint::ActiveModel = ep.clone().into();
        am.previous_secret = sea_orm::ActiveValue::Set(Some(ep.secret));
        am.previous_secret_expires_at = sea_orm::ActiveValue::Set(Some(repo::now() + hooks::ROTATION_OVERLAP));
        am.secret = sea_orm::ActiveValue::Set(hooks::seal_secret(&ctx.state().sealer, ep.tenant_id, ep.id, &secret));
        am.updated_at = sea_orm::ActiveValue::Set(repo::now());
        let m = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
        s.commit().await?;
        Ok(WebhookSecretRotatePayload { endpoint: Some(WebhookEndpoint(m)), secret: Some(secret), user_errors: vec![] })
    }

    /// Stops deliveries to an endpoint; messages wait as failed until `webhookEndpointRecover`.
    async fn webhook_endpoint_disable(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointIdInput,
    ) -> Result<WebhookEndpointPayload, ApiError> {
        let p = ctx.admin()?;
        let s = write_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&input.id, "WebhookEndpoint")).await? else {
            return Ok(WebhookEndpointPayload { endpoint: None, user_errors: not_found("id") });
        };
        let mut am: webhook_endpoint::ActiveModel = ep.into();
        am.status = sea_orm::ActiveValue::Set("disabled".into());
        am.updated_at = sea_orm::ActiveValue::Set(repo::now());
        let m = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
        s.commit().await?;
        Ok(WebhookEndpointPayload { endpoint: Some(WebhookEndpoint(m)), user_errors: vec![] })
    }

    async fn webhook_endpoint_delete(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointIdInput,
    ) -> Result<WebhookEndpointDeletePayload, ApiError> {
        let p = ctx.admin()?;
        let s = write_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&input.id, "WebhookEndpoint")).await? else {
            return Ok(WebhookEndpointDeletePayload { deleted_id: None, user_errors: not_found("id") });
        };
        webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::TenantId.eq(s.tenant()))
            .filter(webhook_endpoint::Column::Id.eq(ep.id))
            .exec(&s.tx)
            .await?;
        s.commit().await?;
        Ok(WebhookEndpointDeletePayload { deleted_id: Some(gid("WebhookEndpoint", ep.id)), user_errors: vec![] })
    }

    /// Sends a message again from the start of the retry schedule.
    async fn webhook_message_resend(
        &self,
        ctx: &Context<'_>,
        input: WebhookMessageResendInput,
    ) -> Result<WebhookMessagePayload, ApiError> {
        let p = ctx.admin()?;
        let s = write_tx(ctx, p).await?;
        let id = parse_gid(&input.id, "WebhookMessage");
        let found = match id {
            Some(id) => hooks::resend(&s, id).await?,
            None => false,
        };
        if !found {
            return Ok(WebhookMessagePayload {
                message: None,
                user_errors: vec![UserError::not_found(&["input", "id"], "webhook message")],
            });
        }
        let m = repo::find::<webhook_message::Entity>(&s).filter(webhook_message::Column::Id.eq(id)).one(&s.tx).await?;
        s.commit().await?;
        Ok(WebhookMessagePayload { message: m.map(WebhookMessage), user_errors: vec![] })
    }

    /// Re-enables an endpoint and resends every message that failed since `since`.
    async fn webhook_endpoint_recover(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointRecoverInput,
    ) -> Result<WebhookEndpointRecoverPayload, ApiError> {
        let p = ctx.admin()?;
        let s = write_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&input.endpoint_id, "WebhookEndpoint")).await? else {
            return Ok(WebhookEndpointRecoverPayload {
                endpoint: None,
                resent: 0,
                user_errors: not_found("endpointId"),
            });
        };
        webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Status, Expr::value("active"))
            .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(repo::now()))
            .filter(webhook_endpoint::Column::TenantId.eq(s.tenant()))
            .filter(webhook_endpoint::Column::Id.eq(ep.id))
            .exec(&s.tx)
            .await?;
        let failed = repo::find::<webhook_message::Entity>(&s)
            .filter(webhook_message::Column::EndpointId.eq(ep.id))
            .filter(webhook_message::Column::Status.eq("failed"))
            .filter(webhook_message::Column::CreatedAt.gte(input.since))
            .all(&s.tx)
            .await?;
        for m in &failed {
            hooks::resend(&s, m.id).await?;
        }
        let ep = endpoint(&s, Some(ep.id)).await?;
        s.commit().await?;
        Ok(WebhookEndpointRecoverPayload {
            endpoint: ep.map(WebhookEndpoint),
            resent: i32::try_from(failed.len()).unwrap_or(i32::MAX),
            user_errors: vec![],
        })
    }

    /// Sends a `webhook.test` message to one endpoint.
    async fn webhook_test_send(
        &self,
        ctx: &Context<'_>,
        input: WebhookTestSendInput,
    ) -> Result<WebhookMessagePayload, ApiError> {
        let p = ctx.admin()?;
        let s = write_tx(ctx, p).await?;
        let Some(ep) = endpoint(&s, parse_gid(&input.endpoint_id, "WebhookEndpoint")).await? else {
            return Ok(WebhookMessagePayload { message: None, user_errors: not_found("endpointId") });
        };
        let now = repo::now();
        let body =
            hooks::body("webhook.test", now, &serde_json::json!({ "endpointId": gid("WebhookEndpoint", ep.id).0 }));
        let id = hooks::create_message(&s, ep.id, None, "webhook.test", body).await?;
        let m = match id {
            Some(id) => {
                repo::find::<webhook_message::Entity>(&s).filter(webhook_message::Column::Id.eq(id)).one(&s.tx).await?
            }
            None => None,
        };
        s.commit().await?;
        Ok(WebhookMessagePayload { message: m.map(WebhookMessage), user_errors: vec![] })
    }
}
