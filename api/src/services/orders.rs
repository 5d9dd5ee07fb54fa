//! Orders: reserve on create, release on cancel, consume on fulfil. Each is one transaction; the
//! guarded stock update makes concurrent orders unable to reserve more than is available, and the
//! external id (create) or the order's state (cancel, fulfil) makes a retry return the first result.

use std::collections::{BTreeMap, HashMap};

use qm_connectors::source::Tracking;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::stock::{MAX_UNITS, retrying};
use crate::auth::Principal;
use crate::db::entities::{order, order_line, reservation, shipment, shipment_event};
use crate::db::{Db, Scoped, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::services::{allocation, lookup};

pub struct LineRequest {
    pub sku: String,
    pub quantity: i64,
}

pub struct CreateRequest {
    pub external_id: String,
    /// `Some(None)`: an ID was given but did not parse (not found).
    pub location_id: Option<Option<Uuid>>,
    pub lines: Vec<LineRequest>,
    pub ship_to: Option<serde_json::Value>,
}

#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn create(db: &Db, p: &Principal, req: &CreateRequest) -> Result<Outcome<order::Model>, DbErr> {
    let ext = req.external_id.trim();
    if ext.is_empty() || ext.len() > 255 {
        return Ok(Err(vec![UserError::invalid(&["input", "externalId"], "externalId must be 1 to 255 characters")]));
    }
    if req.lines.is_empty() || req.lines.len() > 250 {
        return Ok(Err(vec![UserError::invalid(&["input", "lines"], "an order has 1 to 250 lines")]));
    }
    let mut errors = Vec::new();
    for (i, l) in req.lines.iter().enumerate() {
        if l.quantity <= 0 || l.quantity > MAX_UNITS {
            errors
                .push(UserError::invalid(&["input", "lines", &i.to_string(), "quantity"], "quantity must be positive"));
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    retrying!(db, p, |s| create_in(s, req, ext).await)
}

async fn create_in(s: &Scoped, req: &CreateRequest, ext: &str) -> Result<Outcome<order::Model>, DbErr> {
    if let Some(existing) = repo::find::<order::Entity>(s).filter(order::Column::ExternalId.eq(ext)).one(&s.tx).await? {
        return Ok(Ok(existing));
    }
    // Resolve SKUs.
    let mut line_variants = Vec::with_capacity(req.lines.len());
    let mut errors = Vec::new();
    for (i, l) in req.lines.iter().enumerate() {
        match lookup::variant_by_sku(s, &l.sku).await? {
            Some(v) => line_variants.push(v.id),
            None => errors.push(UserError::not_found(&["input", "lines", &i.to_string(), "sku"], "sku")),
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    // Where each line ships from: the location asked for, else the allocation's choice.
    let (at, chosen) = match req.location_id {
        Some(given) => {
            let found = match given {
                Some(id) => lookup::location(s, id).await?,
                None => None,
            };
            match found {
                Some(l) => (vec![l.id; req.lines.len()], None),
                None => return Ok(Err(vec![UserError::not_found(&["input", "locationId"], "location")])),
            }
        }
        None => {
            let lines: Vec<allocation::Wanted> = req
                .lines
                .iter()
                .zip(&line_variants)
                .map(|(l, v)| allocation::Wanted { variant_id: *v, quantity: l.quantity })
                .collect();
            match allocation::choose(s, &lines, req.ship_to.as_ref(), &HashMap::new()).await? {
                Some(c) => (c.locations.clone(), Some(c)),
                None => {
                    return Ok(Err(vec![UserError::new(
                        &["input", "lines"],
                        UserErrorCode::InsufficientStock,
                        "no location has enough available stock for every line",
                    )]));
                }
            }
        }
    };
    // Reserve per variant and location, in key order so concurrent orders lock rows alike.
    let mut wanted: BTreeMap<(Uuid, Uuid), i64> = BTreeMap::new();
    for ((l, v), loc) in req.lines.iter().zip(&line_variants).zip(&at) {
        *wanted.entry((*v, *loc)).or_default() += l.quantity;
    }
    for ((variant_id, location_id), qty) in &wanted {
        repo::ensure_stock_level(s, *variant_id, *location_id).await?;
        if !repo::change_stock(s, *variant_id, *location_id, 0, *qty).await? {
            let line = line_variants.iter().position(|v| v == variant_id).unwrap_or(0);
            return Ok(Err(vec![UserError::new(
                &["input", "lines", &line.to_string(), "quantity"],
                UserErrorCode::InsufficientStock,
                "not enough available stock",
            )]));
        }
    }
    let now = repo::now();
    let o = order::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        external_id: ext.to_owned(),
        location_id: at[0],
        status: "reserved".into(),
        ship_to: req.ship_to.clone(),
        created_at: now,
        updated_at: now,
    };
    order::Entity::insert(order::ActiveModel::from(o.clone())).exec_without_returning(&s.tx).await?;
    let reference = o.id.to_string();
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, ((l, variant_id), location_id)) in req.lines.iter().zip(&line_variants).zip(&at).enumerate() {
        let line = order_line::Model {
            tenant_id: s.tenant(),
            id: Uuid::now_v7(),
            order_id: o.id,
            variant_id: *variant_id,
            quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
            line_no: i32::try_from(i).unwrap_or(i32::MAX),
        };
        order_line::Entity::insert(order_line::ActiveModel::from(line.clone())).exec_without_returning(&s.tx).await?;
        reservation::Entity::insert(reservation::ActiveModel {
            tenant_id: Set(s.tenant()),
            id: Set(Uuid::now_v7()),
            order_id: Set(o.id),
            order_line_id: Set(line.id),
            variant_id: Set(*variant_id),
            location_id: Set(*location_id),
            quantity: Set(line.quantity),
            status: Set("active".into()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&s.tx)
        .await?;
        repo::append_movement(
            s,
            repo::NewMovement {
                variant_id: *variant_id,
                location_id: *location_id,
                kind: "reserve",
                delta_on_hand: 0,
                delta_reserved: l.quantity,
                reason: "order",
                reference: &reference,
                idempotency_key: None,
            },
        )
        .await?;
        lines.push(line);
    }
    for ((variant_id, location_id), qty) in &wanted {
        let level = super::stock::level(s, *variant_id, *location_id).await?;
        let sku =
            req.lines.iter().zip(&line_variants).find(|(_, v)| *v == variant_id).map_or("", |(l, _)| l.sku.as_str());
        super::stock::announce_change(s, sku, &level, -qty, "reserve", "order").await?;
    }
    crate::events::emit(s, "order.created", order_payload(&o, &req.lines)).await?;
    crate::services::sync::export::queue_export(s, o.id, None).await?;
    if let Some(c) = &chosen {
        let skus = line_variants.iter().zip(&req.lines).map(|(v, l)| (*v, l.sku.clone())).collect();
        allocation::record(s, &o, &lines, c, &skus).await?;
    }
    Ok(Ok(o))
}

/// Announces the level a reservation's release or consumption left behind.
async fn announce_reservation_change(
    s: &Scoped,
    r: &reservation::Model,
    delta_available: i64,
    kind: &str,
    reason: &str,
) -> Result<(), DbErr> {
    let level = super::stock::level(s, r.variant_id, r.location_id).await?;
    let sku = super::lookup::variant(s, r.variant_id).await?.map(|v| v.sku).unwrap_or_default();
    super::stock::announce_change(s, &sku, &level, delta_available, kind, reason).await
}

/// The `shipment.updated` payload: the shipment as it is now and what just happened to it.
pub(crate) fn shipment_payload(sh: &shipment::Model, description: &str) -> serde_json::Value {
    use crate::graphql::types::gid;
    serde_json::json!({
        "shipmentId": gid("Shipment", sh.id).0,
        "orderId": gid("Order", sh.order_id).0,
        "locationId": gid("Location", sh.location_id).0,
        "status": sh.status,
        "carrier": sh.carrier,
        "trackingNumber": sh.tracking_number,
        "trackingUrl": sh.tracking_url,
        "description": description,
        "updatedAt": sh.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

pub(crate) fn order_payload(o: &order::Model, lines: &[LineRequest]) -> serde_json::Value {
    use crate::graphql::types::gid;
    serde_json::json!({
        "orderId": gid("Order", o.id).0,
        "externalId": o.external_id,
        "locationId": gid("Location", o.location_id).0,
        "status": o.status,
        "lines": lines.iter().map(|l| serde_json::json!({ "sku": l.sku, "quantity": l.quantity })).collect::<Vec<_>>(),
    })
}

async fn locked_order(s: &Scoped, id: Option<Uuid>) -> Result<Option<order::Model>, DbErr> {
    match id {
        Some(id) => repo::find::<order::Entity>(s).filter(order::Column::Id.eq(id)).lock_exclusive().one(&s.tx).await,
        None => Ok(None),
    }
}

/// The refusal to change an order mirrored from a connected store here (it changes there).
async fn mirrored(s: &Scoped, o: &order::Model) -> Result<Option<Vec<UserError>>, DbErr> {
    let mirrored = crate::services::sync::orders::is_mirrored(s, o.id).await?;
    Ok(mirrored.then(|| {
        vec![UserError::new(
            &["input", "id"],
            UserErrorCode::InvalidState,
            "the order is mirrored from the connected store: cancel it there",
        )]
    }))
}

async fn active_reservations(s: &Scoped, order_id: Uuid) -> Result<Vec<reservation::Model>, DbErr> {
    repo::find::<reservation::Entity>(s)
        .filter(reservation::Column::OrderId.eq(order_id))
        .filter(reservation::Column::Status.eq("active"))
        .all(&s.tx)
        .await
}

async fn set_reservation_status(s: &Scoped, r: &reservation::Model, status: &str) -> Result<(), DbErr> {
    reservation::Entity::update_many()
        .col_expr(reservation::Column::Status, sea_orm::sea_query::Expr::value(status))
        .col_expr(reservation::Column::UpdatedAt, sea_orm::sea_query::Expr::value(repo::now()))
        .filter(reservation::Column::TenantId.eq(s.tenant()))
        .filter(reservation::Column::Id.eq(r.id))
        .exec(&s.tx)
        .await?;
    Ok(())
}

async fn set_order_status(s: &Scoped, o: order::Model, status: &str) -> Result<order::Model, DbErr> {
    let now = repo::now();
    order::Entity::update_many()
        .col_expr(order::Column::Status, sea_orm::sea_query::Expr::value(status))
        .col_expr(order::Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(order::Column::TenantId.eq(s.tenant()))
        .filter(order::Column::Id.eq(o.id))
        .exec(&s.tx)
        .await?;
    Ok(order::Model { status: status.to_owned(), updated_at: now, ..o })
}

/// Cancels an order and releases its reservations. Cancelling a cancelled order changes nothing.
#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn cancel(db: &Db, p: &Principal, id: Option<Uuid>) -> Result<Outcome<order::Model>, DbErr> {
    retrying!(db, p, |s| {
        let Some(o) = locked_order(s, id).await? else {
            return Ok(Err(vec![UserError::not_found(&["input", "id"], "order")]));
        };
        if let Some(refused) = mirrored(s, &o).await? {
            return Ok(Err(refused));
        }
        match o.status.as_str() {
            "cancelled" => return Ok(Ok(o)),
            "fulfilled" => {
                return Ok(Err(vec![UserError::new(
                    &["input", "id"],
                    UserErrorCode::InvalidState,
                    "a fulfilled order cannot be cancelled",
                )]));
            }
            _ => {}
        }
        let reference = o.id.to_string();
        for r in active_reservations(s, o.id).await? {
            let q = i64::from(r.quantity);
            if !repo::change_stock(s, r.variant_id, r.location_id, 0, -q).await? {
                return Err(DbErr::Custom(format!("reservation {} exceeds reserved stock", r.id)));
            }
            set_reservation_status(s, &r, "released").await?;
            repo::append_movement(
                s,
                repo::NewMovement {
                    variant_id: r.variant_id,
                    location_id: r.location_id,
                    kind: "release",
                    delta_on_hand: 0,
                    delta_reserved: -q,
                    reason: "order cancelled",
                    reference: &reference,
                    idempotency_key: None,
                },
            )
            .await?;
            announce_reservation_change(s, &r, q, "release", "order cancelled").await?;
        }
        let o = set_order_status(s, o, "cancelled").await?;
        crate::events::emit(s, "order.cancelled", order_payload(&o, &[])).await?;
        Ok(Ok(o))
    })
}

pub struct Fulfilled {
    pub order: order::Model,
    /// The parcel from the order's location (the one with the tracking given).
    pub shipment: shipment::Model,
    /// Every parcel, one per location the order ships from (an allocation may split it).
    pub shipments: Vec<shipment::Model>,
}

/// Ships `lines` (`(order line, units)`) of order `order_id` from `location_id`, as a 3PL reports
/// a shipment it made: part of an order, or one of several parcels. Each line's reservation gives
/// up the units shipped (what is left stays reserved) and on-hand drops with it, one shipment
/// from `location_id` with the tracking is made, the order is `fulfilled` once nothing is left to ship, and
/// the shipment goes on to the store the order came from and the systems it was sent to. Why not,
/// when a line has fewer units left to ship or the order is not open.
pub async fn ship_lines(
    s: &Scoped,
    order_id: Uuid,
    lines: &[(Uuid, i64)],
    location_id: Uuid,
    tracking: &Tracking,
) -> Result<Result<shipment::Model, String>, DbErr> {
    let Some(o) = locked_order(s, Some(order_id)).await? else { return Ok(Err("no such order".into())) };
    if o.status != "reserved" {
        return Ok(Err(format!("the order is {}", o.status)));
    }
    let from_store = crate::services::sync::orders::is_mirrored(s, o.id).await?;
    let elsewhere = crate::services::sync::export::exported_to(s, o.id).await?;
    let reservations = active_reservations(s, o.id).await?;
    let reference = o.id.to_string();
    for (line, q) in lines {
        let left = reservations.iter().find(|r| r.order_line_id == *line).map_or(0, |r| i64::from(r.quantity));
        if *q <= 0 || *q > left {
            return Ok(Err(format!("line {line} has {left} units left to ship, not {q}")));
        }
    }
    for (line, q) in lines {
        let Some(r) = reservations.iter().find(|r| r.order_line_id == *line) else { continue };
        // The units leave where they were reserved, even when the 3PL sent them from another of
        // its centres: its stock is its own, and the next read of its levels puts each centre
        // right.
        let push = (!from_store).then_some(elsewhere.as_slice());
        ship_reserved(s, r, *q, &reference, "shipped by the 3PL", push).await?;
    }
    let sh = insert_shipment(s, o.id, location_id, tracking, "shipped by the 3PL").await?;
    crate::services::sync::orders::queue_fulfillment(s, o.id, &sh, lines).await?;
    crate::events::emit(s, "shipment.updated", shipment_payload(&sh, "shipped by the 3PL")).await?;
    if active_reservations(s, o.id).await?.is_empty() {
        let order = set_order_status(s, o, "fulfilled").await?;
        announce_fulfilled(s, &order, &sh).await?;
    }
    Ok(Ok(sh))
}

/// Ships `q` units of reservation `r`, all of it or part (what is left stays reserved): on-hand
/// and reserved drop where it is, with a `ship` movement sent on to the connectors linked there
/// but `push` (none: `None`, for a store's own order, whose store counts the shipment itself).
async fn ship_reserved(
    s: &Scoped,
    r: &reservation::Model,
    q: i64,
    reference: &str,
    reason: &str,
    push: Option<&[Uuid]>,
) -> Result<(), DbErr> {
    if !repo::change_stock(s, r.variant_id, r.location_id, -q, -q).await? {
        return Err(DbErr::Custom(format!("shipping {q} of reservation {} exceeds stock", r.id)));
    }
    let left = i64::from(r.quantity) - q;
    if left <= 0 {
        set_reservation_status(s, r, "consumed").await?;
    } else {
        reservation::Entity::update_many()
            .col_expr(reservation::Column::Quantity, sea_orm::sea_query::Expr::value(i32::try_from(left).unwrap_or(0)))
            .col_expr(reservation::Column::UpdatedAt, sea_orm::sea_query::Expr::value(repo::now()))
            .filter(reservation::Column::TenantId.eq(s.tenant()))
            .filter(reservation::Column::Id.eq(r.id))
            .exec(&s.tx)
            .await?;
    }
    let movement = repo::append_movement(
        s,
        repo::NewMovement {
            variant_id: r.variant_id,
            location_id: r.location_id,
            kind: "ship",
            delta_on_hand: -q,
            delta_reserved: -q,
            reason,
            reference,
            idempotency_key: None,
        },
    )
    .await?;
    if let Some(except) = push {
        crate::services::sync::queue_push_except(s, &movement, except).await?;
    }
    announce_reservation_change(s, r, 0, "ship", reason).await
}

/// A shipment of order `order_id` from `location_id`, shipped now, with its first event.
async fn insert_shipment(
    s: &Scoped,
    order_id: Uuid,
    location_id: Uuid,
    tracking: &Tracking,
    description: &str,
) -> Result<shipment::Model, DbErr> {
    let now = repo::now();
    let sh = shipment::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        order_id,
        location_id,
        status: "shipped".into(),
        carrier: tracking.company.clone(),
        tracking_number: tracking.number.clone(),
        tracking_url: tracking.url.clone(),
        created_at: now,
        updated_at: now,
    };
    shipment::Entity::insert(shipment::ActiveModel::from(sh.clone())).exec_without_returning(&s.tx).await?;
    shipment_event::Entity::insert(shipment_event::ActiveModel {
        tenant_id: Set(s.tenant()),
        id: Set(Uuid::now_v7()),
        shipment_id: Set(sh.id),
        status: Set("shipped".into()),
        description: Set(description.into()),
        occurred_at: Set(now),
    })
    .exec_without_returning(&s.tx)
    .await?;
    Ok(sh)
}

/// `order.fulfilled`, with the parcel that carries the tracking.
async fn announce_fulfilled(s: &Scoped, order: &order::Model, sh: &shipment::Model) -> Result<(), DbErr> {
    let mut data = order_payload(order, &[]);
    data["shipmentId"] = crate::graphql::types::gid("Shipment", sh.id).0.into();
    data["carrier"] = sh.carrier.clone().into();
    data["trackingNumber"] = sh.tracking_number.clone().into();
    data["trackingUrl"] = sh.tracking_url.clone().into();
    crate::events::emit(s, "order.fulfilled", data).await.map(drop)
}

/// Ships an order: consumes its reservations and creates a shipment. Fulfilling again returns the
/// same shipment.
#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn fulfill(
    db: &Db,
    p: &Principal,
    id: Option<Uuid>,
    tracking: Tracking,
) -> Result<Outcome<Fulfilled>, DbErr> {
    retrying!(db, p, |s| {
        let Some(o) = locked_order(s, id).await? else {
            return Ok(Err(vec![UserError::not_found(&["input", "id"], "order")]));
        };
        let from_store = crate::services::sync::orders::is_mirrored(s, o.id).await?;
        match o.status.as_str() {
            "fulfilled" => {
                let shipments = repo::find::<shipment::Entity>(s)
                    .filter(shipment::Column::OrderId.eq(o.id))
                    .order_by_asc(shipment::Column::Id)
                    .all(&s.tx)
                    .await?;
                let first = shipments
                    .iter()
                    .find(|sh| sh.location_id == o.location_id)
                    .or(shipments.first())
                    .cloned()
                    .ok_or_else(|| DbErr::RecordNotFound("shipment of fulfilled order".into()))?;
                return Ok(Ok(Fulfilled { order: o, shipment: first, shipments }));
            }
            "cancelled" => {
                return Ok(Err(vec![UserError::new(
                    &["input", "id"],
                    UserErrorCode::InvalidState,
                    "a cancelled order cannot be fulfilled",
                )]));
            }
            _ => {}
        }
        let reference = o.id.to_string();
        let reservations = active_reservations(s, o.id).await?;
        // Where the order was sent as a sales order the shipment arrives as an item fulfilment,
        // which moves that system's stock itself.
        let fulfilled_elsewhere = crate::services::sync::export::exported_to(s, o.id).await?;
        let shipped: Vec<(Uuid, i64)> = reservations.iter().map(|r| (r.order_line_id, i64::from(r.quantity))).collect();
        let reservations_at: Vec<Uuid> = reservations.iter().map(|r| r.location_id).collect();
        // An order of ours shipped from a store's location: the store's stock drops too. (A
        // store's own order reaches it as a fulfilment instead, below.)
        let push = (!from_store).then_some(fulfilled_elsewhere.as_slice());
        for r in &reservations {
            ship_reserved(s, r, i64::from(r.quantity), &reference, "order fulfilled", push).await?;
        }
        // One parcel per location, the order's own first; the tracking given is that parcel's.
        let mut from: Vec<Uuid> = vec![o.location_id];
        for r in &reservations_at {
            if !from.contains(r) {
                from.push(*r);
            }
        }
        let mut shipments = Vec::with_capacity(from.len());
        for (i, location_id) in from.into_iter().enumerate() {
            let parcel = match i {
                0 => tracking.clone(),
                _ => Tracking { company: tracking.company.clone(), number: None, url: None },
            };
            shipments.push(insert_shipment(s, o.id, location_id, &parcel, "shipped from location").await?);
        }
        let sh = shipments[0].clone();
        crate::services::sync::orders::queue_fulfillment(s, o.id, &sh, &shipped).await?;
        let order = set_order_status(s, o, "fulfilled").await?;
        announce_fulfilled(s, &order, &sh).await?;
        for sh in &shipments {
            crate::events::emit(s, "shipment.updated", shipment_payload(sh, "shipped from location")).await?;
        }
        Ok(Ok(Fulfilled { order, shipment: sh, shipments }))
    })
}
