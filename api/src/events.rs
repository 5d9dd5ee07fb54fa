//! The event outbox: an event is written in the transaction that makes the change, with a job
//! that fans it out to the tenant's webhook endpoints. Rolled-back changes emit nothing.

use sea_orm::{DbErr, EntityTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::db::entities::event;
use crate::db::{Scoped, repo};
use crate::jobs::{self, NewJob};
use crate::live::{LiveEvent, Update};

/// Every event type with its current version. Payloads change only by adding fields; a breaking
/// change gets a new version.
pub const CATALOGUE: &[(&str, i32, &str)] = &[
    ("stock.adjusted", 1, "a stock level changed through stockAdjust or stockTransfer"),
    ("stock.out", 1, "available stock of a variant at a location reached zero"),
    ("stock.low", 1, "a stock alert rule fired: available stock or days of cover fell to its threshold"),
    ("stock.out_predicted", 1, "a forecast run projects stock running out before an order placed now could arrive"),
    ("order.created", 1, "an order was created and its stock reserved"),
    ("order.cancelled", 1, "an order was cancelled and its reservations released"),
    ("order.fulfilled", 1, "an order was shipped"),
    ("order.allocated", 1, "an order was allocated (or re-allocated): the location of each line and the cost"),
    ("shipment.updated", 1, "a shipment was created or its status changed"),
    ("return.received", 1, "a returned item arrived (a store's return closed after its items were received)"),
    (
        "return.disposition_decided",
        1,
        "a returned line's disposition was approved: what becomes of it and where it goes",
    ),
    ("endpoint.disabled", 1, "a webhook endpoint was disabled after failing for 5 days or answering 410"),
    ("purchase_order.issued", 1, "a purchase order was issued to its supplier"),
    ("purchase_order.acknowledged", 1, "the supplier acknowledged a purchase order with the date it promises"),
    ("purchase_order.rejected", 1, "the supplier rejected a purchase order"),
    ("purchase_order.shipped", 1, "the supplier sent an advance shipping notice (carrier, tracking, quantities)"),
    (
        "purchase_order.received",
        1,
        "goods were received against a purchase order, in part or in full (the lines and units of this receipt)",
    ),
    ("purchase_order.reminder", 1, "a contract's rule reminded the supplier of a purchase order"),
    ("purchase_order.penalty_applied", 1, "a contract's rule applied its late-delivery penalty to a purchase order"),
    (
        "purchase_order.cancelled",
        1,
        "a purchase order sent to its supplier was cancelled (purchaseOrderCancel, or a contract's rule)",
    ),
    ("contract.proposed", 1, "a contract or a new version of one awaits the supplier's acceptance"),
    ("contract.accepted", 1, "the supplier accepted a contract version"),
    ("contract.activated", 1, "a contract version the supplier accepted became the contract's rules"),
    ("contract.triggered", 1, "a contract's rule fired (the action and the purchase order it concerns)"),
    ("transfer.created", 1, "approving a replenishment plan created a transfer between locations"),
    ("transfer.shipped", 1, "a transfer's units left its source (transferShip)"),
    ("transfer.received", 1, "a transfer's units arrived at its destination (transferReceive)"),
    ("transfer.cancelled", 1, "a draft transfer between locations was cancelled (transferCancel)"),
    ("price.recommended", 1, "a pricing run proposed a new price for a variant (awaiting approval)"),
    ("price.changed", 1, "an approved price recommendation changed a variant's price"),
    ("route_plan.ready", 1, "a route plan (or a re-plan of one) is ready: routes, stops, ETAs, unassigned stops"),
    ("sync.failed", 1, "a connector's sync run failed (refused credentials, API version drift, a provider error)"),
    ("webhook.test", 1, "sent by webhookTestSend"),
];

pub fn version_of(event_type: &str) -> Option<i32> {
    CATALOGUE.iter().find(|(t, _, _)| *t == event_type).map(|(_, v, _)| *v)
}

/// True when `pattern` names a catalogue type (`stock.out`) or a family of them (`stock.*`).
pub fn is_known_pattern(pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => CATALOGUE.iter().any(|(t, _, _)| t.starts_with(prefix)),
        Some(_) => false,
        None => version_of(pattern).is_some(),
    }
}

/// True when `event_type` matches one of `patterns`; no patterns means every type.
pub fn matches<'a>(patterns: impl IntoIterator<Item = &'a str>, event_type: &str) -> bool {
    let mut any = false;
    for p in patterns {
        any = true;
        let hit = match p.strip_suffix('*') {
            Some(prefix) => prefix.ends_with('.') && event_type.starts_with(prefix),
            None => p == event_type,
        };
        if hit {
            return true;
        }
    }
    !any
}

/// Records an event and enqueues its fan-out, inside the caller's transaction.
pub async fn emit(s: &Scoped, event_type: &str, data: Value) -> Result<Uuid, DbErr> {
    let version = version_of(event_type).ok_or_else(|| DbErr::Custom(format!("unknown event type {event_type}")))?;
    let id = Uuid::now_v7();
    let occurred_at = repo::now();
    event::Entity::insert(event::ActiveModel::from(event::Model {
        tenant_id: s.tenant(),
        id,
        event_type: event_type.to_owned(),
        version,
        payload: data.clone(),
        occurred_at,
    }))
    .exec_without_returning(&s.tx)
    .await?;
    s.publish(Update::Event(LiveEvent { id, event_type: event_type.to_owned(), version, occurred_at, data }));
    let mut job = NewJob::new(crate::webhooks::FANOUT, serde_json::json!({ "event_id": id }));
    job.dedup_key = Some(format!("fanout:{id}"));
    jobs::enqueue(s, job).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_types_and_families() {
        assert!(matches([], "stock.out"));
        assert!(matches(["stock.out"], "stock.out"));
        assert!(matches(["order.created", "stock.*"], "stock.adjusted"));
        assert!(!matches(["stock.*"], "stockpile.x"));
        assert!(!matches(["stock.out"], "stock.adjusted"));
        assert!(is_known_pattern("stock.*"));
        assert!(is_known_pattern("webhook.test"));
        assert!(!is_known_pattern("stock*"));
        assert!(!is_known_pattern("nope.*"));
        assert!(!is_known_pattern("stock.nope"));
    }
}
