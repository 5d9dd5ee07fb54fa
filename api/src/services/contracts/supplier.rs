//! What suppliers do with the purchase orders sent to them: acknowledge with a promised date,
//! reject, announce a shipment (advance shipping notice). A supplier's key acts on its own
//! supplier's orders only; the tenant's operators may record the same on a supplier's behalf.
//! Each is an event (`purchase_order.acknowledged`, `.rejected`, `.shipped`) and, for an order a
//! contract issued, a ledger event; so is its receipt.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use super::ledger::{self, Entry};
use crate::auth::Principal;
use crate::db::entities::{purchase_order, purchase_order_shipment};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::graphql::types::gid;
use crate::graphql::{UserError, UserErrorCode, errors::Outcome};
use crate::services::replenish::{self, RECEIVABLE_PO};

/// The most units one shipment notice line carries.
const MAX_UNITS: i64 = 1_000_000_000;

/// A purchase order `p` may act on (a supplier's key: its own supplier's only).
pub async fn visible_po(s: &Scoped, p: &Principal, id: Option<Uuid>) -> Result<Option<purchase_order::Model>, DbErr> {
    let Some(id) = id else { return Ok(None) };
    let po = replenish::purchase_order(s, id).await?;
    Ok(po.filter(|po| super::confined_to(p).is_none_or(|sup| sup == po.supplier_id)))
}

pub(crate) fn po_data(po: &purchase_order::Model, by: &str) -> Value {
    json!({
        "purchaseOrderId": gid("PurchaseOrder", po.id).0,
        "number": po.number,
        "supplierId": gid("Supplier", po.supplier_id).0,
        "contractId": po.contract_id.map(|c| gid("Contract", c).0),
        "by": by,
    })
}

/// Emits `event_type` and, for a contract's order, appends `kind` to the ledger.
pub(crate) async fn record(
    s: &Scoped,
    po: &purchase_order::Model,
    event_type: &str,
    kind: &'static str,
    data: Value,
) -> Result<(), DbErr> {
    if let Some(c) = po.contract_id {
        ledger::append(s, vec![Entry::new(c, kind, data.clone())]).await?;
    }
    crate::events::emit(s, event_type, data).await?;
    Ok(())
}

/// The supplier confirms an issued order and the date it will arrive. Acknowledging again with
/// the same date changes nothing; a new date is recorded as a new acknowledgement.
pub async fn acknowledge(
    db: &Db,
    p: &Principal,
    id: Option<Uuid>,
    promised_on: NaiveDate,
) -> Result<Outcome<purchase_order::Model>, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    ledger::serialise(&s).await?;
    let Some(po) = visible_po(&s, p, id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "id"], "purchase order")]));
    };
    let today = repo::now().date_naive();
    if promised_on < today {
        return Ok(Err(vec![UserError::invalid(&["input", "promisedOn"], "the promised date is in the past")]));
    }
    match po.status.as_str() {
        "issued" => {}
        "acknowledged" if po.promised_on == Some(promised_on) => {
            s.commit().await?;
            return Ok(Ok(po));
        }
        "acknowledged" => {}
        other => {
            return Ok(Err(vec![UserError::new(
                &["input", "id"],
                UserErrorCode::InvalidState,
                format!("a {other} purchase order cannot be acknowledged"),
            )]));
        }
    }
    let now = repo::now();
    let mut am: purchase_order::ActiveModel = po.into();
    am.status = Set("acknowledged".into());
    am.promised_on = Set(Some(promised_on));
    am.acknowledged_at = Set(Some(now));
    am.updated_at = Set(now);
    let po = am.update(&s.tx).await?;
    let mut data = po_data(&po, &p.subject);
    data["promisedOn"] = json!(promised_on);
    record(&s, &po, "purchase_order.acknowledged", "acknowledged", data).await?;
    s.commit().await?;
    Ok(Ok(po))
}

/// The supplier declines an order it has not shipped. Rejecting a rejected order changes nothing.
pub async fn reject(
    db: &Db,
    p: &Principal,
    id: Option<Uuid>,
    reason: &str,
) -> Result<Outcome<purchase_order::Model>, DbErr> {
    let reason = match replenish::status_reason(reason) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    ledger::serialise(&s).await?;
    let Some(po) = visible_po(&s, p, id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "id"], "purchase order")]));
    };
    match po.status.as_str() {
        "issued" | "acknowledged" => {}
        "rejected" => {
            s.commit().await?;
            return Ok(Ok(po));
        }
        other => {
            return Ok(Err(vec![UserError::new(
                &["input", "id"],
                UserErrorCode::InvalidState,
                format!("a {other} purchase order cannot be rejected"),
            )]));
        }
    }
    let now = repo::now();
    let mut am: purchase_order::ActiveModel = po.into();
    am.status = Set("rejected".into());
    am.status_reason = Set(Some(reason.to_owned()));
    am.updated_at = Set(now);
    let po = am.update(&s.tx).await?;
    let mut data = po_data(&po, &p.subject);
    data["reason"] = json!(reason);
    record(&s, &po, "purchase_order.rejected", "rejected", data).await?;
    s.commit().await?;
    Ok(Ok(po))
}

pub struct ShipmentNotice {
    pub purchase_order_id: Option<Uuid>,
    /// Line (`None` when its ID did not parse) and units shipped.
    pub lines: Vec<(Option<Uuid>, i64)>,
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at: Option<DateTime<Utc>>,
    pub expected_on: Option<NaiveDate>,
}

/// An advance shipping notice: what left the supplier, with carrier and tracking. Notifying the
/// same tracking number for the same order again returns the first notice.
pub async fn notify_shipment(
    db: &Db,
    p: &Principal,
    n: &ShipmentNotice,
) -> Result<Outcome<(purchase_order::Model, purchase_order_shipment::Model)>, DbErr> {
    let carrier = n.carrier.trim();
    let tracking = n.tracking_number.trim();
    if carrier.is_empty() || carrier.chars().count() > 100 {
        return Ok(Err(vec![UserError::invalid(&["input", "carrier"], "a carrier of 1 to 100 characters")]));
    }
    if tracking.is_empty() || tracking.chars().count() > 100 {
        return Ok(Err(vec![UserError::invalid(
            &["input", "trackingNumber"],
            "a tracking number of 1 to 100 characters",
        )]));
    }
    if n.lines.is_empty() {
        return Ok(Err(vec![UserError::invalid(&["input", "lines"], "a notice ships at least one line")]));
    }
    for (i, (_, q)) in n.lines.iter().enumerate() {
        if *q <= 0 || *q > MAX_UNITS {
            return Ok(Err(vec![UserError::invalid(
                &["input", "lines", &i.to_string(), "quantity"],
                "quantity must be positive",
            )]));
        }
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    ledger::serialise(&s).await?;
    let Some(po) = visible_po(&s, p, n.purchase_order_id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "purchaseOrderId"], "purchase order")]));
    };
    let previous = repo::find::<purchase_order_shipment::Entity>(&s)
        .filter(purchase_order_shipment::Column::PurchaseOrderId.eq(po.id))
        .filter(purchase_order_shipment::Column::TrackingNumber.eq(tracking))
        .one(&s.tx)
        .await?;
    if let Some(first) = previous {
        s.commit().await?;
        return Ok(Ok((po, first)));
    }
    if !RECEIVABLE_PO.contains(&po.status.as_str()) {
        return Ok(Err(vec![UserError::new(
            &["input", "purchaseOrderId"],
            UserErrorCode::InvalidState,
            format!("a {} purchase order cannot be shipped", po.status),
        )]));
    }
    let lines = replenish::po_lines(&s, po.id).await?;
    let mut out = Vec::new();
    for (i, (id, q)) in n.lines.iter().enumerate() {
        let Some(line) = id.and_then(|id| lines.iter().find(|l| l.id == id)) else {
            return Ok(Err(vec![UserError::not_found(
                &["input", "lines", &i.to_string(), "lineId"],
                "purchase order line",
            )]));
        };
        let open = i64::from(line.quantity - line.received_quantity);
        if *q > open {
            return Ok(Err(vec![UserError::invalid(
                &["input", "lines", &i.to_string(), "quantity"],
                format!("only {open} units of this line are still open"),
            )]));
        }
        out.push(json!({ "lineId": gid("PurchaseOrderLine", line.id).0, "quantity": q }));
    }
    let now = repo::now();
    let notice = purchase_order_shipment::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        purchase_order_id: po.id,
        carrier: carrier.to_owned(),
        tracking_number: tracking.to_owned(),
        lines: json!(out),
        shipped_at: n.shipped_at.unwrap_or(now),
        expected_on: n.expected_on,
        created_by: p.subject.clone(),
        created_at: now,
    };
    purchase_order_shipment::Entity::insert(purchase_order_shipment::ActiveModel::from(notice.clone()))
        .exec_without_returning(&s.tx)
        .await?;
    let po = if matches!(po.status.as_str(), "issued" | "acknowledged") {
        let mut am: purchase_order::ActiveModel = po.into();
        am.status = Set("shipped".into());
        am.updated_at = Set(now);
        am.update(&s.tx).await?
    } else {
        po
    };
    let mut data = po_data(&po, &p.subject);
    data["shipmentId"] = json!(gid("PurchaseOrderShipment", notice.id).0);
    data["carrier"] = json!(notice.carrier);
    data["trackingNumber"] = json!(notice.tracking_number);
    data["expectedOn"] = json!(notice.expected_on);
    data["lines"] = notice.lines.clone();
    record(&s, &po, "purchase_order.shipped", "shipped", data).await?;
    s.commit().await?;
    Ok(Ok((po, notice)))
}

/// The advance shipping notices of a purchase order, oldest first.
pub async fn shipments(s: &Scoped, po: Uuid) -> Result<Vec<purchase_order_shipment::Model>, DbErr> {
    repo::find::<purchase_order_shipment::Entity>(s)
        .filter(purchase_order_shipment::Column::PurchaseOrderId.eq(po))
        .order_by_asc(purchase_order_shipment::Column::Id)
        .all(&s.tx)
        .await
}

/// After goods were received against `po`: for a contract's order, `received` on the ledger
/// (inside the receipt's transaction).
pub async fn received(s: &Scoped, po: &purchase_order::Model, lines: &[(Option<Uuid>, i64)]) -> Result<(), DbErr> {
    let Some(c) = po.contract_id else { return Ok(()) };
    let mut data = po_data(po, "receipt");
    data["status"] = json!(po.status);
    data["lines"] = json!(
        lines
            .iter()
            .filter_map(|(id, q)| id.map(|id| json!({ "lineId": gid("PurchaseOrderLine", id).0, "quantity": q })))
            .collect::<Vec<_>>()
    );
    ledger::append(s, vec![Entry::new(c, "received", data)]).await?;
    Ok(())
}
