//! Orders sent on (`connector.order_export`): an order made here, or an open one placed in a
//! connected store, becomes a sales order in each active NetSuite connector that has a customer
//! configured for them, and an order to ship at the 3PL (ShipBob) whose warehouse it is allocated
//! to; never in the connector it came from. The order's id is the provider's idempotency key
//! (NetSuite's external id, ShipBob's reference id), so a retry, or sending it again, never makes
//! a second one. The provider's order and its lines are linked to ours (`exported_order`,
//! `exported_line`): shipments made here later go to an ERP as item fulfilments
//! (`orders::queue_fulfillment`), and a 3PL's shipments come back through them
//! (`orders::from_3pl`).

use std::collections::HashMap;

use qm_connectors::source::{ItemUnits, OutboundLine, OutboundOrder, OutboundReturn, ShippedLine};
use sea_orm::{ColumnTrait, DbErr, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{Applier, payload_id, push_client, push_failed};
use crate::db::entities::{connector, external_ref, job, order, order_line, return_, return_line, variant};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError};
use crate::jobs::{self, NewJob};
use crate::services::connectors::{NETSUITE, SHIPBOB, SHIPSTATION, settings_of};
use crate::state::AppState;

pub const EXPORT: &str = "connector.order_export";
/// The link of an order of ours to the provider's copy of it.
pub const EXPORTED_ORDER: &str = "exported_order";
/// The link of an order line of ours to the provider's line (`extra`: the order), as
/// `{provider order}:{provider line}` (line numbers repeat across orders; see [`provider_line`]).
pub const EXPORTED_LINE: &str = "exported_line";

/// The provider's line of an [`EXPORTED_LINE`] link.
pub fn provider_line(link: &str) -> &str {
    link.rsplit(':').next().unwrap_or_default()
}
pub const RETURN_EXPORT: &str = "connector.return_export";
/// The link of a return of ours to the provider's authorisation of it.
pub const EXPORTED_RETURN: &str = "exported_return";
/// The link of a return of ours to the provider's receipt of it.
pub const RECEIVED_RETURN: &str = "received_return";

/// Queues sending order `order_id` to each connector that keeps the order book (a NetSuite
/// account with an order customer) and to the 3PL whose warehouse ships it (a ShipBob connector
/// linked to the order's location), but never to `source` (where it came from), in the order's
/// transaction.
pub async fn queue_export(s: &Scoped, order_id: Uuid, source: Option<Uuid>) -> Result<(), DbErr> {
    let candidates = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Kind.is_in([NETSUITE, SHIPBOB, SHIPSTATION]))
        .filter(connector::Column::Status.eq("active"))
        .all(&s.tx)
        .await?;
    if candidates.is_empty() {
        return Ok(());
    }
    let Some(o) = repo::find::<order::Entity>(s).filter(order::Column::Id.eq(order_id)).one(&s.tx).await? else {
        return Ok(());
    };
    let warehouses: Vec<Uuid> = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::Kind.eq("location"))
        .filter(external_ref::Column::LocalId.eq(o.location_id))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|r| r.connector_id)
        .collect();
    for c in candidates.into_iter().filter(|c| Some(c.id) != source) {
        let wanted = match c.kind.as_str() {
            NETSUITE => settings_of(&c).netsuite.is_some_and(|n| n.order_customer_id.is_some()),
            _ => warehouses.contains(&c.id),
        };
        if !wanted {
            continue;
        }
        let mut job = NewJob::new(EXPORT, serde_json::json!({ "connector_id": c.id, "order_id": order_id }));
        job.dedup_key = Some(format!("{EXPORT}:{}:{order_id}", c.id));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

/// The connectors order `order_id` was sent to.
pub async fn exported_to(s: &Scoped, order_id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let refs = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::Kind.eq(EXPORTED_ORDER))
        .filter(external_ref::Column::LocalId.eq(order_id))
        .all(&s.tx)
        .await?;
    Ok(refs.into_iter().map(|r| r.connector_id).collect())
}

pub(super) struct ExportJob;

/// The order as the connector's provider knows its items and locations: lines in their order.
async fn outbound(
    s: &Scoped,
    connector_id: Uuid,
    order_id: Uuid,
) -> Result<Result<(OutboundOrder, Vec<Uuid>), String>, DbErr> {
    let Some(o) = repo::find::<order::Entity>(s).filter(order::Column::Id.eq(order_id)).one(&s.tx).await? else {
        return Ok(Err("the order no longer exists".into()));
    };
    let lines = repo::find::<order_line::Entity>(s)
        .filter(order_line::Column::OrderId.eq(order_id))
        .order_by_asc(order_line::Column::LineNo)
        .all(&s.tx)
        .await?;
    let variant_ids: Vec<Uuid> = lines.iter().map(|l| l.variant_id).collect();
    let variants: HashMap<Uuid, variant::Model> = repo::find::<variant::Entity>(s)
        .filter(variant::Column::Id.is_in(variant_ids.clone()))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|v| (v.id, v))
        .collect();
    let refs = |kind: &'static str, ids: Vec<Uuid>| {
        repo::find::<external_ref::Entity>(s)
            .filter(external_ref::Column::ConnectorId.eq(connector_id))
            .filter(external_ref::Column::Kind.eq(kind))
            .filter(external_ref::Column::LocalId.is_in(ids))
    };
    let items: HashMap<Uuid, String> =
        refs("variant", variant_ids).all(&s.tx).await?.into_iter().map(|r| (r.local_id, r.external_id)).collect();
    let location = refs("location", vec![o.location_id]).one(&s.tx).await?.map(|r| r.external_id);
    let mut out = Vec::with_capacity(lines.len());
    for l in &lines {
        let v = variants.get(&l.variant_id);
        let Some(item) = items.get(&l.variant_id) else {
            let sku = v.map_or("?", |v| v.sku.as_str());
            return Ok(Err(format!("{sku} is not an item of the connected account: sync its catalog first")));
        };
        out.push(OutboundLine {
            item_id: item.clone(),
            sku: v.map(|v| v.sku.clone()).unwrap_or_default(),
            quantity: i64::from(l.quantity),
            price: v.map(|v| v.price.0).unwrap_or_default(),
        });
    }
    let order = OutboundOrder {
        key: o.id.to_string(),
        number: o.external_id.clone(),
        created_at: o.created_at,
        location_id: location,
        lines: out,
        ship_to: o.ship_to.clone(),
    };
    Ok(Ok((order, lines.iter().map(|l| l.id).collect())))
}

#[async_trait::async_trait]
impl Handler for ExportJob {
    async fn run(&self, state: &AppState, j: &job::Model) -> Result<(), JobError> {
        let connector_id = payload_id(j, "connector_id")?;
        let order_id = payload_id(j, "order_id")?;
        let s = state.db.scoped(j.tenant_id, TxMode::Read).await?;
        let found = outbound(&s, connector_id, order_id).await?;
        s.commit().await?;
        let (order, line_ids) = found.map_err(JobError::Permanent)?;
        let (c, client) = push_client(state, j.tenant_id, connector_id).await?;
        let sent = async { client.order_sink()?.export(&order).await }.await;
        match sent {
            Ok(exported) => {
                let s = state.db.scoped(j.tenant_id, TxMode::Write).await?;
                let ctx = Applier { connector: &c, full: false };
                let mut links = vec![ctx.row(EXPORTED_ORDER, &exported.id, order_id, None, None)];
                for (line, provider_line) in line_ids.iter().zip(&exported.line_ids) {
                    let key = format!("{}:{provider_line}", exported.id);
                    links.push(ctx.row(EXPORTED_LINE, &key, *line, None, Some(order_id)));
                }
                ctx.link_all(&s, links).await?;
                s.commit().await?;
                tracing::info!(connector = %connector_id, order = %order_id, sales_order = %exported.id, "order sent");
                Ok(())
            }
            Err(e) => push_failed(state, j, connector_id, e).await,
        }
    }
}

/// Queues recording return `return_id` with each system its order was sent to (NetSuite: a
/// return authorisation, and an item receipt once its units are back; ShipBob: a return its
/// warehouse expects, against the shipment the units went out in), in the return's transaction;
/// `why` tells apart the moments it is queued at (created, received).
pub async fn queue_return(s: &Scoped, return_id: Uuid, order_id: Uuid, why: &str) -> Result<(), DbErr> {
    let books = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::Kind.eq(EXPORTED_ORDER))
        .filter(external_ref::Column::LocalId.eq(order_id))
        .all(&s.tx)
        .await?;
    let kinds: HashMap<Uuid, String> = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Id.is_in(books.iter().map(|b| b.connector_id).collect::<Vec<_>>()))
        .filter(connector::Column::Status.eq("active"))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|c| (c.id, c.kind))
        .collect();
    for b in books.iter().filter(|b| kinds.get(&b.connector_id).is_some_and(|k| k == NETSUITE || k == SHIPBOB)) {
        let payload = serde_json::json!({ "connector_id": b.connector_id, "return_id": return_id });
        let mut job = NewJob::new(RETURN_EXPORT, payload);
        job.dedup_key = Some(format!("{RETURN_EXPORT}:{}:{return_id}:{why}", b.connector_id));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

/// What a return job needs: the order's provider id, the return for the provider, whether its
/// units are back (a store's return closed, or ours graded on inspection), and what is linked.
struct ReturnState {
    order: String,
    ret: OutboundReturn,
    received: bool,
    authorization: Option<String>,
    receipt: bool,
}

/// A return for a 3PL: the units by the 3PL's stock item.
async fn for_3pl(
    s: &Scoped,
    connector_id: Uuid,
    lines: &[return_line::Model],
) -> Result<Result<OutboundReturn, String>, DbErr> {
    let variants: Vec<Uuid> = lines.iter().map(|l| l.variant_id).collect();
    let items: HashMap<Uuid, String> = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::ConnectorId.eq(connector_id))
        .filter(external_ref::Column::Kind.eq("inventory_item"))
        .filter(external_ref::Column::LocalId.is_in(variants))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|r| (r.local_id, r.external_id))
        .collect();
    let mut out: Vec<ItemUnits> = Vec::with_capacity(lines.len());
    for l in lines {
        let Some(item) = items.get(&l.variant_id) else {
            return Ok(Err(format!("return line {} is of a variant the 3PL does not stock", l.id)));
        };
        match out.iter_mut().find(|x| x.inventory_item_id == *item) {
            Some(x) => x.quantity += i64::from(l.quantity),
            None => out.push(ItemUnits { inventory_item_id: item.clone(), quantity: i64::from(l.quantity) }),
        }
    }
    Ok(Ok(OutboundReturn { items: out, ..OutboundReturn::default() }))
}

async fn return_state(
    s: &Scoped,
    connector: &connector::Model,
    return_id: Uuid,
) -> Result<Result<ReturnState, String>, DbErr> {
    let connector_id = connector.id;
    let Some(r) = repo::find::<return_::Entity>(s).filter(return_::Column::Id.eq(return_id)).one(&s.tx).await? else {
        return Ok(Err("the return no longer exists".into()));
    };
    let refs = |kind: &'static str| {
        repo::find::<external_ref::Entity>(s)
            .filter(external_ref::Column::ConnectorId.eq(connector_id))
            .filter(external_ref::Column::Kind.eq(kind))
    };
    let Some(order) = refs(EXPORTED_ORDER).filter(external_ref::Column::LocalId.eq(r.order_id)).one(&s.tx).await?
    else {
        return Ok(Err("the order was not sent to this connector".into()));
    };
    let lines = repo::find::<return_line::Entity>(s).filter(return_line::Column::ReturnId.eq(r.id)).all(&s.tx).await?;
    let order_lines = repo::find::<order_line::Entity>(s)
        .filter(order_line::Column::OrderId.eq(r.order_id))
        .order_by_asc(order_line::Column::LineNo)
        .all(&s.tx)
        .await?;
    let provider_line: HashMap<Uuid, String> = refs(EXPORTED_LINE)
        .filter(external_ref::Column::Extra.eq(r.order_id))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|x| (x.local_id, provider_line(&x.external_id).to_owned()))
        .collect();
    let ret = if super::provider::is_3pl(&connector.kind) {
        match for_3pl(s, connector_id, &lines).await? {
            Ok(ret) => OutboundReturn { key: r.id.to_string(), ..ret },
            Err(e) => return Ok(Err(e)),
        }
    } else {
        let mut out = Vec::with_capacity(lines.len());
        for l in &lines {
            let line = order_lines.iter().find(|o| o.variant_id == l.variant_id).and_then(|o| provider_line.get(&o.id));
            let Some(line) = line else { return Ok(Err(format!("return line {} is on no line sent", l.id))) };
            match out.iter_mut().find(|x: &&mut ShippedLine| x.line_id == *line) {
                Some(x) => x.quantity += i64::from(l.quantity),
                None => out.push(ShippedLine { line_id: line.clone(), quantity: i64::from(l.quantity) }),
            }
        }
        OutboundReturn { key: r.id.to_string(), lines: out, ..OutboundReturn::default() }
    };
    let linked = |kind: &'static str| refs(kind).filter(external_ref::Column::LocalId.eq(r.id)).one(&s.tx);
    let authorization = linked(EXPORTED_RETURN).await?.map(|x| x.external_id);
    let receipt = linked(RECEIVED_RETURN).await?.is_some();
    let mirrored = crate::services::sync::orders::is_mirrored(s, r.order_id).await?;
    // Back: received at a 3PL's warehouse, closed in the store, or ours graded on inspection.
    let received = r.status == "received"
        || match mirrored {
            true => r.status == "closed",
            false => !lines.is_empty() && lines.iter().all(|l| l.condition != "unknown"),
        };
    Ok(Ok(ReturnState { order: order.external_id, ret, received, authorization, receipt }))
}

pub(super) struct ReturnJob;

#[async_trait::async_trait]
impl Handler for ReturnJob {
    async fn run(&self, state: &AppState, j: &job::Model) -> Result<(), JobError> {
        let connector_id = payload_id(j, "connector_id")?;
        let return_id = payload_id(j, "return_id")?;
        let (c, client) = push_client(state, j.tenant_id, connector_id).await?;
        let s = state.db.scoped(j.tenant_id, TxMode::Read).await?;
        let found = return_state(&s, &c, return_id).await?;
        s.commit().await?;
        let st = found.map_err(JobError::Permanent)?;
        // A 3PL receives the units itself: announcing the return is all it is sent.
        let done_with =
            st.receipt || (st.authorization.is_some() && (!st.received || super::provider::is_3pl(&c.kind)));
        if done_with {
            return Ok(());
        }
        let ctx = Applier { connector: &c, full: false };
        let sink = match client.return_sink() {
            Ok(sink) => sink,
            Err(e) => return push_failed(state, j, connector_id, e).await,
        };
        let authorization = match st.authorization {
            Some(a) => a,
            None => match sink.authorize(&st.order, &st.ret).await {
                Ok(a) => {
                    let s = state.db.scoped(j.tenant_id, TxMode::Write).await?;
                    ctx.link_all(&s, vec![ctx.row(EXPORTED_RETURN, &a, return_id, None, None)]).await?;
                    s.commit().await?;
                    tracing::info!(connector = %connector_id, %return_id, authorization = %a, "return authorised");
                    a
                }
                Err(e) => return push_failed(state, j, connector_id, e).await,
            },
        };
        if !st.received || sink.receives_itself() {
            return Ok(());
        }
        match sink.receive(&authorization, &st.ret).await {
            Ok(receipt) => {
                let s = state.db.scoped(j.tenant_id, TxMode::Write).await?;
                ctx.link_all(&s, vec![ctx.row(RECEIVED_RETURN, &receipt, return_id, None, None)]).await?;
                s.commit().await?;
                tracing::info!(connector = %connector_id, %return_id, %receipt, "return received");
                Ok(())
            }
            Err(e) => push_failed(state, j, connector_id, e).await,
        }
    }
}
