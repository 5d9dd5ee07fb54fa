//! GraphQL subscriptions: live stock and events of the caller's tenant, over graphql-ws
//! (graphql-transport-ws, and the legacy graphql-ws protocol) on GET /graphql.

use std::sync::Arc;

use async_graphql::{Context, ID, Json, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::types::{gid, parse_gid};
use super::{ApiError, CtxExt};
use crate::live::{self, Update};

/// A stock level right after it changed.
#[derive(SimpleObject)]
pub struct StockChange {
    pub sku: String,
    pub variant_id: ID,
    pub location_id: ID,
    pub on_hand: i64,
    pub reserved: i64,
    /// On hand minus reserved.
    pub available: i64,
    /// The change in available stock.
    pub delta: i64,
    /// adjust, transfer_in, transfer_out, reserve, release or ship.
    pub kind: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

impl From<&live::StockChange> for StockChange {
    fn from(c: &live::StockChange) -> Self {
        Self {
            sku: c.sku.clone(),
            variant_id: gid("Variant", c.variant_id),
            location_id: gid("Location", c.location_id),
            on_hand: c.on_hand,
            reserved: c.reserved,
            available: c.on_hand - c.reserved,
            delta: c.delta,
            kind: c.kind.clone(),
            reason: c.reason.clone(),
            changed_at: c.at,
        }
    }
}

/// An event from the catalogue (`webhookEventTypes`), with the same data a webhook carries.
#[derive(SimpleObject)]
pub struct Event {
    pub id: ID,
    #[graphql(name = "type")]
    pub event_type: String,
    pub version: i32,
    pub occurred_at: DateTime<Utc>,
    pub data: Json<serde_json::Value>,
}

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every stock level change of the tenant, optionally only at one location and/or for one SKU.
    /// Requires a role that may read stock.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        location_id: Option<ID>,
        sku: Option<String>,
    ) -> Result<impl Stream<Item = StockChange> + use<>, ApiError> {
        let tenant = ctx.reader()?.tenant_id;
        // An ID that is not a location's can match nothing (like a missing one elsewhere).
        let location = location_id.map(|id| parse_gid(&id, "Location").unwrap_or(Uuid::nil()));
        let rx = ctx.db().subscribe_live().await;
        Ok(updates(rx, tenant).filter_map(move |update| {
            let out = match &update {
                Update::Stock(c)
                    if location.is_none_or(|l| l == c.location_id) && sku.as_ref().is_none_or(|s| *s == c.sku) =>
                {
                    Some(StockChange::from(c))
                }
                _ => None,
            };
            std::future::ready(out)
        }))
    }

    /// Every event of the tenant, or those of the given types (`stock.out`, or a family: `stock.*`).
    /// Requires a role that may read stock and orders.
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = Event> + use<>, ApiError> {
        let tenant = ctx.reader()?.tenant_id;
        let types = types.unwrap_or_default();
        if let Some(bad) = types.iter().find(|t| !crate::events::is_known_pattern(t)) {
            return Err(ApiError::BadUserInput(format!("unknown event type {bad:?}")));
        }
        let rx = ctx.db().subscribe_live().await;
        Ok(updates(rx, tenant).filter_map(move |update| {
            let out = match &update {
                Update::Event(e) if crate::events::matches(types.iter().map(String::as_str), &e.event_type) => {
                    Some(Event {
                        id: gid("Event", e.id),
                        event_type: e.event_type.clone(),
                        version: e.version,
                        occurred_at: e.occurred_at,
                        data: Json(e.data.clone()),
                    })
                }
                _ => None,
            };
            std::future::ready(out)
        }))
    }
}

/// The updates of one tenant, from a receiver of every tenant's. A subscriber that falls more
/// than the bus capacity behind skips what it missed (logged); it never sees another tenant's.
fn updates(rx: broadcast::Receiver<Arc<live::Message>>, tenant: Uuid) -> impl Stream<Item = Update> {
    futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) if m.tenant_id == tenant => return Some((m.update.clone(), rx)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, %tenant, "subscriber fell behind; skipping live updates");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
