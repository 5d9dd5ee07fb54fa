//! Inbound stock at a 3PL's warehouse: a purchase order issued for a location a ShipBob connector
//! maps is announced to ShipBob as a receiving order (`connector.receiving_export`, linked
//! `exported_receiving`), and what ShipBob's warehouse received is read back (its `receiving.*`
//! webhooks, and the reconciliation) into receipts of the purchase order here, each state of the
//! receiving order once.

use std::collections::HashMap;

use qm_connectors::source::{InboundOrder, InboundStatus, ItemUnits};
use sea_orm::{ColumnTrait, DbErr, QueryFilter};
use uuid::Uuid;

use super::{Applier, payload_id, push_client, push_failed};
use crate::db::entities::{connector, external_ref, job, purchase_order, purchase_order_line};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError};
use crate::jobs::{self, NewJob};
use crate::services::connectors::settings_of;
use crate::state::AppState;

pub const RECEIVING_EXPORT: &str = "connector.receiving_export";
/// Withdraws the 3PL's receiving order of a purchase order cancelled here.
pub const RECEIVING_CANCEL: &str = "connector.receiving_cancel";
/// The link of a purchase order of ours to the 3PL's receiving order for it.
pub const EXPORTED_RECEIVING: &str = "exported_receiving";

/// Queues announcing purchase order `po` to each active connector whose warehouse it is for and
/// that receives inbound stock itself (ShipBob), in the issuing transaction.
pub async fn queue_receiving(s: &Scoped, po: &purchase_order::Model) -> Result<(), DbErr> {
    let connectors = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Kind.eq(crate::services::connectors::SHIPBOB))
        .filter(connector::Column::Status.eq("active"))
        .all(&s.tx)
        .await?;
    for c in
        connectors.iter().filter(|c| settings_of(c).location_mapping.iter().any(|l| l.location_id == po.location_id))
    {
        let mut job =
            NewJob::new(RECEIVING_EXPORT, serde_json::json!({ "connector_id": c.id, "purchase_order_id": po.id }));
        job.dedup_key = Some(format!("{RECEIVING_EXPORT}:{}:{}", c.id, po.id));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

/// Queues withdrawing the receiving order each connector was told of for purchase order `po`,
/// cancelled here, in the cancelling transaction.
pub async fn queue_cancel(s: &Scoped, po: &purchase_order::Model) -> Result<(), DbErr> {
    let links = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::Kind.eq(EXPORTED_RECEIVING))
        .filter(external_ref::Column::LocalId.eq(po.id))
        .all(&s.tx)
        .await?;
    for l in links {
        let mut job = NewJob::new(
            RECEIVING_CANCEL,
            serde_json::json!({ "connector_id": l.connector_id, "purchase_order_id": po.id }),
        );
        job.dedup_key = Some(format!("{RECEIVING_CANCEL}:{}:{}", l.connector_id, po.id));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

/// The link connector `connector_id` keeps of its receiving order for purchase order `po_id`.
async fn receiving_link(s: &Scoped, connector_id: Uuid, po_id: Uuid) -> Result<Option<external_ref::Model>, DbErr> {
    super::refs_of(s, connector_id, EXPORTED_RECEIVING).filter(external_ref::Column::LocalId.eq(po_id)).one(&s.tx).await
}

/// The receiving order for purchase order `po` as connector `c` takes it, or why not.
async fn inbound_order(
    s: &Scoped,
    c: &connector::Model,
    po: purchase_order::Model,
) -> Result<Result<InboundOrder, String>, DbErr> {
    let Some(centre) = settings_of(c)
        .location_mapping
        .into_iter()
        .find(|l| l.location_id == po.location_id)
        .map(|l| l.provider_location_id)
    else {
        return Ok(Err("the purchase order's location is not one of the connector's warehouses".into()));
    };
    let lines = crate::services::replenish::po_lines(s, po.id).await?;
    let items = inventory_items(s, c.id, &lines).await?;
    let mut out: Vec<ItemUnits> = Vec::with_capacity(lines.len());
    for l in &lines {
        let Some(item) = items.get(&l.variant_id) else {
            return Ok(Err(format!("line {} is of a variant the 3PL does not stock (sync its catalog)", l.id)));
        };
        match out.iter_mut().find(|x| x.inventory_item_id == *item) {
            Some(x) => x.quantity += i64::from(l.quantity),
            None => out.push(ItemUnits { inventory_item_id: item.clone(), quantity: i64::from(l.quantity) }),
        }
    }
    let expected_at =
        po.promised_on.or(po.expected_on).and_then(|d| d.and_hms_opt(0, 0, 0)).map_or_else(repo::now, |t| t.and_utc());
    Ok(Ok(InboundOrder { reference: po.number, location_id: centre, expected_at, items: out }))
}

/// The connector's stock item of each variant of `lines`.
async fn inventory_items(
    s: &Scoped,
    connector_id: Uuid,
    lines: &[purchase_order_line::Model],
) -> Result<HashMap<Uuid, String>, DbErr> {
    Ok(repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::ConnectorId.eq(connector_id))
        .filter(external_ref::Column::Kind.eq("inventory_item"))
        .filter(external_ref::Column::LocalId.is_in(lines.iter().map(|l| l.variant_id).collect::<Vec<_>>()))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|r| (r.local_id, r.external_id))
        .collect())
}

pub(super) struct ReceivingJob;

#[async_trait::async_trait]
impl Handler for ReceivingJob {
    async fn run(&self, state: &AppState, j: &job::Model) -> Result<(), JobError> {
        let connector_id = payload_id(j, "connector_id")?;
        let po_id = payload_id(j, "purchase_order_id")?;
        let (c, client) = push_client(state, j.tenant_id, connector_id).await?;
        let s = state.db.scoped(j.tenant_id, TxMode::Read).await?;
        // Announced already (a repeated job), or cancelled or rejected before it was: nothing to
        // send.
        let order = match receiving_link(&s, connector_id, po_id).await? {
            Some(_) => None,
            None => match crate::services::replenish::purchase_order(&s, po_id).await? {
                None => Some(Err("the purchase order no longer exists".to_owned())),
                Some(po) if !crate::services::replenish::RECEIVABLE_PO.contains(&po.status.as_str()) => None,
                Some(po) => Some(inbound_order(&s, &c, po).await?),
            },
        };
        s.commit().await?;
        let Some(order) = order else { return Ok(()) };
        let order = order.map_err(JobError::Permanent)?;
        let sent = async { client.inbound_sink()?.expect(&order).await }.await;
        match sent {
            Ok(id) => {
                let ctx = Applier { connector: &c, full: false };
                let s = state.db.scoped(j.tenant_id, TxMode::Write).await?;
                ctx.link_all(&s, vec![ctx.row(EXPORTED_RECEIVING, &id, po_id, None, None)]).await?;
                // Cancelled while it was being announced: withdrawn at once.
                if let Some(po) = crate::services::replenish::purchase_order(&s, po_id).await?
                    && po.status == "cancelled"
                {
                    queue_cancel(&s, &po).await?;
                }
                s.commit().await?;
                tracing::info!(connector = %connector_id, purchase_order = %po_id, receiving = %id, "inbound stock announced");
                Ok(())
            }
            Err(e) => push_failed(state, j, connector_id, e).await,
        }
    }
}

pub(super) struct ReceivingCancelJob;

#[async_trait::async_trait]
impl Handler for ReceivingCancelJob {
    async fn run(&self, state: &AppState, j: &job::Model) -> Result<(), JobError> {
        let connector_id = payload_id(j, "connector_id")?;
        let po_id = payload_id(j, "purchase_order_id")?;
        let (_, client) = push_client(state, j.tenant_id, connector_id).await?;
        let s = state.db.scoped(j.tenant_id, TxMode::Read).await?;
        let linked = receiving_link(&s, connector_id, po_id).await?;
        s.commit().await?;
        let Some(link) = linked else { return Ok(()) };
        match async { client.inbound_sink()?.cancel(&link.external_id).await }.await {
            Ok(()) => {
                tracing::info!(connector = %connector_id, purchase_order = %po_id, receiving = %link.external_id, "inbound stock withdrawn");
                Ok(())
            }
            Err(e) => push_failed(state, j, connector_id, e).await,
        }
    }
}

/// What the 3PL's warehouse received of a receiving order announced from here, received here
/// too: each line of the purchase order gets the units the warehouse counted beyond what it has
/// received already. A state of the receiving order applies once (its counts are the receipt's
/// idempotency key). Whether anything was received.
pub(super) async fn received_at_3pl(s: &Scoped, c: &connector::Model, status: &InboundStatus) -> Result<bool, DbErr> {
    let Some(link) = super::refs_of(s, c.id, EXPORTED_RECEIVING)
        .filter(external_ref::Column::ExternalId.eq(status.id.as_str()))
        .one(&s.tx)
        .await?
    else {
        return Ok(false);
    };
    let Some(po) = crate::services::replenish::purchase_order(s, link.local_id).await? else { return Ok(false) };
    if !crate::services::replenish::RECEIVABLE_PO.contains(&po.status.as_str()) {
        return Ok(false);
    }
    let lines = crate::services::replenish::po_lines(s, po.id).await?;
    let items = inventory_items(s, c.id, &lines).await?;
    let mut counted: HashMap<String, i64> =
        status.received.iter().map(|i| (i.inventory_item_id.clone(), i.quantity)).collect();
    let mut receive = Vec::new();
    for l in &lines {
        let Some(left) = items.get(&l.variant_id).and_then(|i| counted.get_mut(i)) else { continue };
        // The warehouse counts per item; lines of one item take it in line order.
        let counted_here = (*left).min(i64::from(l.quantity));
        *left -= counted_here;
        let new = counted_here - i64::from(l.received_quantity);
        if new > 0 {
            receive.push((Some(l.id), new));
        }
    }
    if receive.is_empty() {
        return Ok(false);
    }
    let total: i64 = status.received.iter().map(|i| i.quantity).sum();
    let req = crate::services::replenish::ReceiveRequest {
        purchase_order_id: Some(po.id),
        lines: receive,
        idempotency_key: Some(format!("wro-{}-{total}", status.id)),
        by: c.kind.clone(),
    };
    match crate::services::replenish::receive_in(s, &req).await? {
        Ok(_) => Ok(true),
        Err(e) => {
            tracing::warn!(connector = %c.id, receiving = %status.id, errors = ?e, "the warehouse's receipt was not applied");
            Ok(false)
        }
    }
}
