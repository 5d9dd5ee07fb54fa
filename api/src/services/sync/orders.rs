//! Orders from the store, mirrored: each order's unshipped quantities reserve stock at the
//! location that ships them, its fulfilments become shipments with tracking, and a cancelled
//! order releases what it held.
//!
//! The store owns these orders: it ships them and it counts their stock, so on-hand at its
//! locations keeps coming from its inventory levels (a shipment here moves no on-hand, or the
//! level read after it would count it twice). What the mirror adds is what the store commits:
//! reservations, so available here is what the store can still sell, and the plans see demand
//! that is promised but not yet shipped. Our own `orderCancel` refuses these orders (they are
//! cancelled in the store); `orderFulfill` ships one here (or for a 3PL) and queues the shipment
//! to the store (`connector.fulfill`: `fulfillmentCreate` with the tracking), whose fulfilment is
//! then linked to our shipment. While that is pending, syncs leave the order alone (the store
//! still shows it open); once sent, the store's newer version is read as usual.

use std::collections::{HashMap, HashSet};

use qm_connectors::source::{ExternalOrder, Problem};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use qm_connectors::source::{ShippedLine, Tracking};

use super::{Applied, Applier, payload_id, push_client, push_failed, stale, store_name};
use crate::db::entities::{
    external_ref, job, order, order_line, reservation, return_, return_line, shipment, shipment_event,
};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError};
use crate::jobs::{self, NewJob};
use crate::services::lookup;
use crate::services::orders::{LineRequest, order_payload, shipment_payload};
use crate::state::AppState;

const PLACED: &str = "order placed in the connected store";
const SHIPPED: &str = "shipped by the connected store";
const CANCELLED: &str = "order cancelled in the connected store";

/// What the store's order says one of our lines should hold.
struct Wanted<'a> {
    line_id: &'a str,
    variant_id: Uuid,
    sku: String,
    quantity: i64,
    /// Units to keep reserved: what is still to ship, nothing once cancelled.
    reserve: i64,
}

/// The provider ids an order page names, looked up in one go per kind.
struct Known {
    orders: HashMap<String, external_ref::Model>,
    lines: HashMap<String, external_ref::Model>,
    fulfillments: HashMap<String, external_ref::Model>,
    returns: HashMap<String, external_ref::Model>,
    variants: HashMap<String, Uuid>,
    skus: HashMap<Uuid, String>,
    locations: HashMap<String, Uuid>,
}

impl Applier<'_> {
    async fn known(&self, s: &Scoped, records: &[ExternalOrder]) -> Result<Known, DbErr> {
        // Ids collected before any await: the futures stay `Send`.
        let order_ids: Vec<String> = records.iter().map(|o| o.id.clone()).collect();
        let line_ids: Vec<String> = records.iter().flat_map(|o| o.lines.iter().map(|l| l.id.clone())).collect();
        let variant_ids: Vec<String> =
            records.iter().flat_map(|o| o.lines.iter().filter_map(|l| l.variant_id.clone())).collect();
        let fulfillment_ids: Vec<String> =
            records.iter().flat_map(|o| o.fulfillments.iter().map(|f| f.id.clone())).collect();
        let return_ids: Vec<String> = records.iter().flat_map(|o| o.returns.iter().map(|r| r.id.clone())).collect();
        let mut location_ids: Vec<String> = records.iter().filter_map(|o| o.location_id.clone()).collect();
        location_ids.extend(records.iter().flat_map(|o| o.fulfillments.iter().filter_map(|f| f.location_id.clone())));
        let variants: HashMap<String, Uuid> =
            self.refs(s, "variant", variant_ids).await?.into_iter().map(|(k, r)| (k, r.local_id)).collect();
        let ids: Vec<Uuid> = variants.values().copied().collect::<HashSet<_>>().into_iter().collect();
        let skus = lookup::skus(s, &ids).await?;
        Ok(Known {
            orders: self.refs(s, "order", order_ids).await?,
            lines: self.refs(s, "order_line", line_ids).await?,
            fulfillments: self.refs(s, "fulfillment", fulfillment_ids).await?,
            returns: self.refs(s, "return", return_ids).await?,
            locations: self
                .refs(s, "location", location_ids)
                .await?
                .into_iter()
                .map(|(k, r)| (k, r.local_id))
                .collect(),
            variants,
            skus,
        })
    }

    /// Mirrors a page of orders; an order no newer than the version applied changes nothing.
    pub(super) async fn orders(&self, s: &Scoped, records: &[ExternalOrder]) -> Result<Applied, DbErr> {
        let mut out = Applied::default();
        let known = self.known(s, records).await?;
        let sending = shipments_being_sent(s).await?;
        for o in records {
            out.newest = out.newest.max(o.updated_at);
            if known.orders.get(&o.id).is_some_and(|r| sending.contains(&r.local_id)) {
                // Read again once the shipment made here has reached the store.
                out.unchanged += 1;
                continue;
            }
            if !self.full && known.orders.get(&o.id).is_some_and(|r| stale(r.version, o.updated_at)) {
                out.unchanged += 1;
                continue;
            }
            let (changed, problems) = self.order(s, o, &known).await?;
            if changed {
                out.applied += 1;
            } else if problems.is_empty() {
                out.unchanged += 1;
            }
            out.problems.extend(problems);
        }
        Ok(out)
    }

    /// Applies one order: whether anything changed, and its problems.
    async fn order(&self, s: &Scoped, o: &ExternalOrder, known: &Known) -> Result<(bool, Vec<Problem>), DbErr> {
        let mut problems = Vec::new();
        let existing = match known.orders.get(&o.id) {
            Some(r) => lookup::order(s, r.local_id).await?,
            None => None,
        };
        let named = o.location_id.as_ref().and_then(|l| known.locations.get(l)).copied();
        if named.is_none()
            && existing.is_none()
            && let Some(l) = &o.location_id
        {
            return Ok((
                false,
                vec![Problem::new(&o.id, format!("its location {l} is not linked: sync locations first"))],
            ));
        }
        let cancelled = o.cancelled_at.is_some();
        let mut wanted = Vec::with_capacity(o.lines.len());
        for l in &o.lines {
            // A custom item or a deleted variant holds no stock here.
            let Some(provider_variant) = &l.variant_id else { continue };
            let Some(variant_id) = known.variants.get(provider_variant).copied() else {
                problems.push(Problem::new(
                    &o.id,
                    format!("line {} is variant {provider_variant}, not in the synced catalog", l.id),
                ));
                continue;
            };
            wanted.push(Wanted {
                line_id: &l.id,
                variant_id,
                sku: known.skus.get(&variant_id).cloned().unwrap_or_default(),
                quantity: l.quantity.min(crate::services::stock::MAX_UNITS),
                reserve: if cancelled { 0 } else { l.unfulfilled.min(crate::services::stock::MAX_UNITS) },
            });
        }
        let shipped = !cancelled && !wanted.is_empty() && wanted.iter().all(|w| w.reserve == 0);
        // Where the lines ship from: the location the store names, else ours: where the order
        // already is, or (a new order) where allocation puts each line still to ship.
        let mut allocated: Option<crate::services::allocation::Chosen> = None;
        let location_id = match named.or(existing.as_ref().map(|e| e.location_id)) {
            Some(l) => l,
            None => {
                let open: Vec<crate::services::allocation::Wanted> = wanted
                    .iter()
                    .filter(|w| w.reserve > 0)
                    .map(|w| crate::services::allocation::Wanted { variant_id: w.variant_id, quantity: w.reserve })
                    .collect();
                let chosen = if open.is_empty() {
                    None
                } else {
                    crate::services::allocation::choose(s, &open, None, &HashMap::new()).await?
                };
                match chosen {
                    Some(c) => {
                        let first = c.locations[0];
                        allocated = Some(c);
                        first
                    }
                    None => {
                        let message = if open.is_empty() {
                            "the store names no location for it".to_owned()
                        } else {
                            "the store names no location for it and no location has the stock for every line".to_owned()
                        };
                        return Ok((false, vec![Problem::new(&o.id, message)]));
                    }
                }
            }
        };
        // Each line still to ship, by our line id once known: where allocation put it.
        let mut allocated_at: HashMap<&str, Uuid> = HashMap::new();
        if let Some(c) = &allocated {
            for (w, at) in wanted.iter().filter(|w| w.reserve > 0).zip(&c.locations) {
                allocated_at.insert(w.line_id, *at);
            }
        }

        let (status, reason) = if cancelled {
            ("cancelled", CANCELLED)
        } else if shipped {
            ("fulfilled", SHIPPED)
        } else {
            ("reserved", PLACED)
        };
        let now = repo::now();
        let (ours, created) = match existing {
            Some(e) => (e, false),
            None => {
                let external_id = store_name(&self.connector.kind, &o.id, 255);
                let adopted = repo::find::<order::Entity>(s)
                    .filter(order::Column::ExternalId.eq(external_id.as_str()))
                    .one(&s.tx)
                    .await?;
                match adopted {
                    Some(a) => (a, false),
                    None => {
                        let m = order::Model {
                            tenant_id: s.tenant(),
                            id: Uuid::now_v7(),
                            external_id,
                            location_id,
                            status: status.to_owned(),
                            ship_to: None,
                            created_at: o.created_at.unwrap_or(now),
                            updated_at: now,
                        };
                        order::Entity::insert(order::ActiveModel::from(m.clone()))
                            .exec_without_returning(&s.tx)
                            .await?;
                        (m, true)
                    }
                }
            }
        };
        let mut changed = created;
        let reservations: HashMap<Uuid, reservation::Model> = repo::find::<reservation::Entity>(s)
            .filter(reservation::Column::OrderId.eq(ours.id))
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|r| (r.order_line_id, r))
            .collect();
        let mut lines = repo::find::<order_line::Entity>(s)
            .filter(order_line::Column::OrderId.eq(ours.id))
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|l| (l.id, l))
            .collect::<HashMap<_, _>>();
        let mut links = Vec::new();
        let reference = ours.id.to_string();
        let mut line_ids = Vec::with_capacity(wanted.len());
        for w in &wanted {
            let quantity = i32::try_from(w.quantity).unwrap_or(i32::MAX);
            let line_id = match known.lines.get(w.line_id).map(|r| r.local_id).filter(|id| lines.contains_key(id)) {
                Some(id) => {
                    if lines.get(&id).is_some_and(|l| l.quantity != quantity) {
                        order_line::Entity::update_many()
                            .col_expr(order_line::Column::Quantity, quantity.into())
                            .filter(order_line::Column::TenantId.eq(s.tenant()))
                            .filter(order_line::Column::Id.eq(id))
                            .exec(&s.tx)
                            .await?;
                        changed = true;
                    }
                    id
                }
                None => {
                    let m = order_line::Model {
                        tenant_id: s.tenant(),
                        id: Uuid::now_v7(),
                        order_id: ours.id,
                        variant_id: w.variant_id,
                        quantity,
                        // After every line the order already has (new ones join `lines` below).
                        line_no: i32::try_from(lines.len()).unwrap_or(i32::MAX),
                    };
                    order_line::Entity::insert(order_line::ActiveModel::from(m.clone()))
                        .exec_without_returning(&s.tx)
                        .await?;
                    links.push(self.row("order_line", w.line_id, m.id, None, Some(ours.id)));
                    lines.insert(m.id, m.clone());
                    changed = true;
                    m.id
                }
            };
            line_ids.push(line_id);
            // Release what the line holds where it no longer ships from, then hold what it should.
            let held = reservations.get(&line_id);
            // Only an active reservation holds stock (one consumed by a shipment made here does not).
            let (was_at, mut holding) = held.map_or((location_id, 0), |r| {
                (r.location_id, if r.status == "active" { i64::from(r.quantity) } else { 0 })
            });
            // The store's location wins; without one a line stays where it was allocated.
            let at = match named {
                Some(l) => l,
                None => allocated_at.get(w.line_id).copied().or(held.map(|r| r.location_id)).unwrap_or(location_id),
            };
            if was_at != at && holding > 0 {
                self.hold(s, w, was_at, -holding, &reference, reason).await?;
                holding = 0;
            }
            let mut target = w.reserve;
            if target != holding && !self.hold(s, w, at, target - holding, &reference, reason).await? {
                problems.push(Problem::new(
                    &o.id,
                    format!(
                        "{} of {} cannot be reserved: the store sold more than is available here",
                        target - holding,
                        w.sku
                    ),
                ));
                target = holding;
            }
            let state = if target > 0 {
                "active"
            } else if cancelled {
                "released"
            } else {
                "consumed"
            };
            let held_now = i32::try_from(target).unwrap_or(i32::MAX);
            match held {
                Some(r) if r.quantity == held_now && r.status == state && r.location_id == at => {}
                Some(r) => {
                    reservation::Entity::update_many()
                        .col_expr(reservation::Column::Quantity, held_now.into())
                        .col_expr(reservation::Column::Status, state.into())
                        .col_expr(reservation::Column::LocationId, at.into())
                        .col_expr(reservation::Column::UpdatedAt, now.into())
                        .filter(reservation::Column::TenantId.eq(s.tenant()))
                        .filter(reservation::Column::Id.eq(r.id))
                        .exec(&s.tx)
                        .await?;
                    changed = true;
                }
                None => {
                    reservation::Entity::insert(reservation::ActiveModel {
                        tenant_id: Set(s.tenant()),
                        id: Set(Uuid::now_v7()),
                        order_id: Set(ours.id),
                        order_line_id: Set(line_id),
                        variant_id: Set(w.variant_id),
                        location_id: Set(at),
                        quantity: Set(held_now),
                        status: Set(state.into()),
                        created_at: Set(now),
                        updated_at: Set(now),
                    })
                    .exec_without_returning(&s.tx)
                    .await?;
                    changed = true;
                }
            }
        }
        if ours.status != status || ours.location_id != location_id {
            order::Entity::update_many()
                .col_expr(order::Column::Status, status.into())
                .col_expr(order::Column::LocationId, location_id.into())
                .col_expr(order::Column::UpdatedAt, now.into())
                .filter(order::Column::TenantId.eq(s.tenant()))
                .filter(order::Column::Id.eq(ours.id))
                .exec(&s.tx)
                .await?;
            changed = true;
        }
        let ours = order::Model { status: status.to_owned(), location_id, ..ours };
        changed |= self.shipments(s, o, &ours, known, &mut links).await?;
        changed |= self.returns(s, o, &ours, &lines, known, &mut links).await?;
        if created {
            let lines: Vec<LineRequest> =
                wanted.iter().map(|w| LineRequest { sku: w.sku.clone(), quantity: w.quantity }).collect();
            crate::events::emit(s, "order.created", order_payload(&ours, &lines)).await?;
            // An open order placed in a store goes to the order book too (not back to its source).
            if !matches!(status, "cancelled" | "fulfilled") {
                super::export::queue_export(s, ours.id, Some(self.connector.id)).await?;
            }
        }
        if let Some(c) = &allocated {
            let allocated_lines: Vec<order_line::Model> = wanted
                .iter()
                .zip(&line_ids)
                .filter(|(w, _)| w.reserve > 0)
                .filter_map(|(_, id)| lines.get(id).cloned())
                .collect();
            let skus = wanted.iter().map(|w| (w.variant_id, w.sku.clone())).collect();
            crate::services::allocation::record(s, &ours, &allocated_lines, c, &skus).await?;
        }
        if !created && changed && matches!(status, "cancelled" | "fulfilled") {
            let kind = if cancelled { "order.cancelled" } else { "order.fulfilled" };
            crate::events::emit(s, kind, order_payload(&ours, &[])).await?;
        }
        // An order applied in part is read again in full by the next sync that sees it.
        let version = if problems.is_empty() { o.updated_at } else { None };
        links.push(self.row("order", &o.id, ours.id, version, None));
        self.link_all(s, links).await?;
        Ok((changed, problems))
    }

    /// Changes what `w`'s line holds at `location` by `delta` (guarded: false when available
    /// stock cannot cover it), records it in the ledger and announces it.
    async fn hold(
        &self,
        s: &Scoped,
        w: &Wanted<'_>,
        location: Uuid,
        delta: i64,
        reference: &str,
        reason: &str,
    ) -> Result<bool, DbErr> {
        repo::ensure_stock_levels(s, location, &[w.variant_id]).await?;
        if !repo::change_stock(s, w.variant_id, location, 0, delta).await? {
            return Ok(false);
        }
        let kind = if delta > 0 { "reserve" } else { "release" };
        repo::append_movement(
            s,
            repo::NewMovement {
                variant_id: w.variant_id,
                location_id: location,
                kind,
                delta_on_hand: 0,
                delta_reserved: delta,
                reason,
                reference,
                idempotency_key: None,
            },
        )
        .await?;
        let level = crate::services::stock::level(s, w.variant_id, location).await?;
        crate::services::stock::announce_change(s, &w.sku, &level, -delta, kind, reason).await?;
        Ok(true)
    }

    /// The order's fulfilments as shipments: new ones recorded, cancellations and tracking
    /// changes carried over. Whether anything changed.
    async fn shipments(
        &self,
        s: &Scoped,
        o: &ExternalOrder,
        ours: &order::Model,
        known: &Known,
        links: &mut Vec<external_ref::Model>,
    ) -> Result<bool, DbErr> {
        let mut changed = false;
        let now = repo::now();
        for f in &o.fulfillments {
            let status = match f.status.as_str() {
                "cancelled" | "error" | "failure" => "cancelled",
                _ => "shipped",
            };
            let tracking = f.tracking.first();
            let carrier = tracking.and_then(|t| t.company.clone());
            let number = tracking.and_then(|t| t.number.clone());
            let url = tracking.and_then(|t| t.url.clone());
            let existing = match known.fulfillments.get(&f.id) {
                Some(r) => {
                    repo::find::<shipment::Entity>(s).filter(shipment::Column::Id.eq(r.local_id)).one(&s.tx).await?
                }
                None => None,
            };
            let (sh, description) = match existing {
                Some(e)
                    if e.status == status
                        && e.carrier == carrier
                        && e.tracking_number == number
                        && e.tracking_url == url =>
                {
                    continue;
                }
                Some(e) => {
                    shipment::Entity::update_many()
                        .col_expr(shipment::Column::Status, status.into())
                        .col_expr(shipment::Column::Carrier, carrier.clone().into())
                        .col_expr(shipment::Column::TrackingNumber, number.clone().into())
                        .col_expr(shipment::Column::TrackingUrl, url.clone().into())
                        .col_expr(shipment::Column::UpdatedAt, now.into())
                        .filter(shipment::Column::TenantId.eq(s.tenant()))
                        .filter(shipment::Column::Id.eq(e.id))
                        .exec(&s.tx)
                        .await?;
                    let what = if e.status != status { "cancelled in the connected store" } else { "tracking updated" };
                    (
                        shipment::Model {
                            status: status.into(),
                            carrier,
                            tracking_number: number,
                            tracking_url: url,
                            updated_at: now,
                            ..e
                        },
                        what,
                    )
                }
                None if status == "cancelled" => continue,
                None => {
                    let location_id = f
                        .location_id
                        .as_ref()
                        .and_then(|l| known.locations.get(l))
                        .copied()
                        .unwrap_or(ours.location_id);
                    let m = shipment::Model {
                        tenant_id: s.tenant(),
                        id: Uuid::now_v7(),
                        order_id: ours.id,
                        location_id,
                        status: status.into(),
                        carrier,
                        tracking_number: number,
                        tracking_url: url,
                        created_at: f.created_at.unwrap_or(now),
                        updated_at: now,
                    };
                    shipment::Entity::insert(shipment::ActiveModel::from(m.clone()))
                        .exec_without_returning(&s.tx)
                        .await?;
                    links.push(self.row("fulfillment", &f.id, m.id, None, Some(ours.id)));
                    (m, SHIPPED)
                }
            };
            shipment_event::Entity::insert(shipment_event::ActiveModel {
                tenant_id: Set(s.tenant()),
                id: Set(Uuid::now_v7()),
                shipment_id: Set(sh.id),
                status: Set(sh.status.clone()),
                description: Set(description.into()),
                occurred_at: Set(now),
            })
            .exec_without_returning(&s.tx)
            .await?;
            crate::events::emit(s, "shipment.updated", shipment_payload(&sh, description)).await?;
            changed = true;
        }
        Ok(changed)
    }
}

impl Applier<'_> {
    /// The order's returns: new ones recorded with their lines, status changes carried over
    /// (`return.received` once one closes: its items arrived). Stock is not moved here: what the
    /// store restocks comes in with its levels, and a refund without a return restocks nothing.
    async fn returns(
        &self,
        s: &Scoped,
        o: &ExternalOrder,
        ours: &order::Model,
        lines: &HashMap<Uuid, order_line::Model>,
        known: &Known,
        links: &mut Vec<external_ref::Model>,
    ) -> Result<bool, DbErr> {
        let mut changed = false;
        let now = repo::now();
        for r in &o.returns {
            let status = match r.status.as_str() {
                "canceled" => "cancelled",
                s @ ("requested" | "open" | "closed" | "declined") => s,
                _ => "open",
            };
            let existing = match known.returns.get(&r.id) {
                Some(link) => {
                    repo::find::<return_::Entity>(s).filter(return_::Column::Id.eq(link.local_id)).one(&s.tx).await?
                }
                None => None,
            };
            let (ret, was) = match existing {
                // A return a 3PL's warehouse received stays received until the store closes it.
                Some(e) if e.status == status || (e.status == "received" && matches!(status, "requested" | "open")) => {
                    continue;
                }
                Some(e) => {
                    return_::Entity::update_many()
                        .col_expr(return_::Column::Status, status.into())
                        .col_expr(return_::Column::UpdatedAt, now.into())
                        .filter(return_::Column::TenantId.eq(s.tenant()))
                        .filter(return_::Column::Id.eq(e.id))
                        .exec(&s.tx)
                        .await?;
                    let was = e.status.clone();
                    (return_::Model { status: status.into(), updated_at: now, ..e }, Some(was))
                }
                None => {
                    let m = return_::Model {
                        tenant_id: s.tenant(),
                        id: Uuid::now_v7(),
                        order_id: ours.id,
                        status: status.into(),
                        reason: r.lines.iter().find_map(|l| l.reason.clone()).unwrap_or_else(|| "unknown".into()),
                        created_at: now,
                        updated_at: now,
                    };
                    return_::Entity::insert(return_::ActiveModel::from(m.clone()))
                        .exec_without_returning(&s.tx)
                        .await?;
                    let rows: Vec<return_line::ActiveModel> = r
                        .lines
                        .iter()
                        .filter_map(|l| {
                            let line = lines.get(&known.lines.get(l.line_id.as_deref()?)?.local_id)?;
                            Some(return_line::ActiveModel::from(return_line::Model {
                                tenant_id: s.tenant(),
                                id: Uuid::now_v7(),
                                return_id: m.id,
                                variant_id: line.variant_id,
                                quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
                                condition: "unknown".into(),
                            }))
                        })
                        .collect();
                    if !rows.is_empty() {
                        return_line::Entity::insert_many(rows).exec_without_returning(&s.tx).await?;
                    }
                    links.push(self.row("return", &r.id, m.id, None, Some(ours.id)));
                    // Into the order books the order went to: an authorisation now (with its
                    // receipt, below, when it arrives closed).
                    if m.status != "closed" {
                        super::export::queue_return(s, m.id, ours.id, "created").await?;
                    }
                    (m, None)
                }
            };
            // Received once: closed in the store, unless a 3PL's warehouse said so first.
            if ret.status == "closed" && !matches!(was.as_deref(), Some("closed" | "received")) {
                announce_received(s, &ret, ours).await?;
            }
            changed = true;
        }
        Ok(changed)
    }
}

/// Whether an order of ours mirrors a store's (and so changes only there).
pub async fn is_mirrored(s: &Scoped, order_id: Uuid) -> Result<bool, DbErr> {
    let found = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::LocalId.eq(order_id))
        .filter(external_ref::Column::Kind.eq("order"))
        .one(&s.tx)
        .await?;
    Ok(found.is_some())
}

/// The channel each of `order_ids` came through: the connector's kind (`shopify`, ...) for an
/// order mirrored from a store; orders made here through the API are absent.
pub async fn channels(s: &Scoped, order_ids: &[Uuid]) -> Result<HashMap<Uuid, String>, DbErr> {
    use crate::db::entities::connector;
    let mut refs = Vec::new();
    for chunk in order_ids.chunks(500) {
        let kind = [(external_ref::Column::Kind, "order".into())];
        refs.extend(
            repo::find_in::<external_ref::Entity, _>(s, external_ref::Column::LocalId, chunk.to_vec(), "uuid", &kind)
                .await?,
        );
    }
    let connectors: HashMap<Uuid, String> =
        repo::find::<connector::Entity>(s).all(&s.tx).await?.into_iter().map(|c| (c.id, c.kind)).collect();
    Ok(refs
        .into_iter()
        .map(|r| (r.local_id, connectors.get(&r.connector_id).cloned().unwrap_or_else(|| "store".into())))
        .collect())
}

/// Sends a shipment made here of a mirrored order to its store.
pub const FULFILL: &str = "connector.fulfill";

/// Queues sending shipment `sh` of order `order_id` (`(our line, quantity)`) to the store the
/// order came from and to each system it was sent to (`export`), in the shipment's transaction.
pub async fn queue_fulfillment(
    s: &Scoped,
    order_id: Uuid,
    sh: &shipment::Model,
    lines: &[(Uuid, i64)],
) -> Result<(), DbErr> {
    use crate::db::entities::connector;
    let refs = |kind: &'static str| repo::find::<external_ref::Entity>(s).filter(external_ref::Column::Kind.eq(kind));
    // The store the order came from, and the systems it was sent to (an ERP's sales order).
    let mut targets = refs("order").filter(external_ref::Column::LocalId.eq(order_id)).all(&s.tx).await?;
    targets.extend(
        refs(super::export::EXPORTED_ORDER).filter(external_ref::Column::LocalId.eq(order_id)).all(&s.tx).await?,
    );
    if targets.is_empty() {
        return Ok(());
    }
    let kinds: HashMap<Uuid, String> = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Id.is_in(targets.iter().map(|t| t.connector_id).collect::<Vec<_>>()))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|c| (c.id, c.kind))
        .collect();
    let line_ids: Vec<Uuid> = lines.iter().map(|(l, _)| *l).collect();
    for order_ref in targets {
        if !kinds.get(&order_ref.connector_id).is_some_and(|k| super::provider::takes(k, "shipments")) {
            continue;
        }
        let line_kind = if order_ref.kind == "order" { "order_line" } else { super::export::EXPORTED_LINE };
        let line_refs: HashMap<Uuid, String> = refs(line_kind)
            .filter(external_ref::Column::ConnectorId.eq(order_ref.connector_id))
            .filter(external_ref::Column::LocalId.is_in(line_ids.clone()))
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|r| {
                let id = match line_kind {
                    super::export::EXPORTED_LINE => super::export::provider_line(&r.external_id).to_owned(),
                    _ => r.external_id,
                };
                (r.local_id, id)
            })
            .collect();
        let shipped: Vec<serde_json::Value> = lines
            .iter()
            .filter_map(|(l, q)| Some(serde_json::json!({ "line": line_refs.get(l)?, "quantity": q })))
            .collect();
        let mut job = NewJob::new(
            FULFILL,
            serde_json::json!({
                "connector_id": order_ref.connector_id,
                "order": order_ref.external_id,
                "order_id": order_id,
                "shipment_id": sh.id,
                "lines": shipped,
                "carrier": sh.carrier,
                "tracking_number": sh.tracking_number,
                "tracking_url": sh.tracking_url,
            }),
        );
        job.dedup_key = Some(format!("{FULFILL}:{}:{order_id}:{}", order_ref.connector_id, sh.id));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

/// Our orders with a shipment on its way to their store.
async fn shipments_being_sent(s: &Scoped) -> Result<HashSet<Uuid>, DbErr> {
    let pending = repo::find::<job::Entity>(s)
        .filter(job::Column::Kind.eq(FULFILL))
        .filter(job::Column::Status.is_in(["ready", "running"]))
        .all(&s.tx)
        .await?;
    Ok(pending.iter().filter_map(|j| j.payload["order_id"].as_str()?.parse().ok()).collect())
}

pub(super) struct FulfillJob;

#[async_trait::async_trait]
impl Handler for FulfillJob {
    async fn run(&self, state: &AppState, j: &job::Model) -> Result<(), JobError> {
        let p = &j.payload;
        let connector_id = payload_id(j, "connector_id")?;
        let order_id = payload_id(j, "order_id")?;
        let shipment_id = payload_id(j, "shipment_id")?;
        let Some(order) = p["order"].as_str() else { return Err(JobError::Permanent(format!("bad payload {p}"))) };
        let lines: Vec<ShippedLine> = p["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                Some(ShippedLine { line_id: l["line"].as_str()?.to_owned(), quantity: l["quantity"].as_i64()? })
            })
            .collect();
        let text = |k: &str| p[k].as_str().map(str::to_owned);
        let tracking =
            Tracking { company: text("carrier"), number: text("tracking_number"), url: text("tracking_url") };
        let (c, client) = push_client(state, j.tenant_id, connector_id).await?;
        match async { client.shipment_sink()?.ship(order, &lines, &tracking).await }.await {
            Ok(fulfillment) => {
                let s = state.db.scoped(j.tenant_id, TxMode::Write).await?;
                let ctx = Applier { connector: &c, full: false };
                ctx.link_all(&s, vec![ctx.row("fulfillment", &fulfillment, shipment_id, None, Some(order_id))]).await?;
                s.commit().await?;
                tracing::info!(connector = %connector_id, order, %fulfillment, "shipment sent to the store");
                Ok(())
            }
            Err(e) => push_failed(state, j, connector_id, e).await,
        }
    }
}

/// A 3PL's shipments of its order `order_id` (an order of ours sent to it): each one not seen
/// before becomes a shipment of ours of the lines it holds (`orders::ship_lines`: split and
/// partial shipments as they come), linked (`3pl_shipment`) so it is applied once, and goes on
/// to the store and the order book. A shipment that cannot be applied (units not on the order, or
/// more than are left) is a problem, the others still apply.
pub(super) async fn from_3pl(
    s: &Scoped,
    c: &crate::db::entities::connector::Model,
    order_id: &str,
    shipments: &[qm_connectors::source::ExternalFulfillment],
) -> Result<Applied, DbErr> {
    use super::export::{EXPORTED_LINE, EXPORTED_ORDER};
    let ctx = Applier { connector: c, full: false };
    let mut out = Applied::default();
    let Some(ours) = ctx.refs(s, EXPORTED_ORDER, [order_id.to_owned()]).await?.remove(order_id) else {
        out.problems.push(Problem::new(order_id, "not an order sent from here"));
        return Ok(out);
    };
    use sea_orm::QuerySelect as _;
    // The order's row lock first: two deliveries about one order (each reading its shipments)
    // apply one after the other, the second seeing what the first linked.
    let Some(o) =
        repo::find::<order::Entity>(s).filter(order::Column::Id.eq(ours.local_id)).lock_exclusive().one(&s.tx).await?
    else {
        return Ok(out);
    };
    let known = ctx.refs(s, "3pl_shipment", shipments.iter().map(|f| f.id.clone())).await?;
    let prefix = format!("{order_id}:");
    let line_of: HashMap<String, Uuid> = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::ConnectorId.eq(c.id))
        .filter(external_ref::Column::Kind.eq(EXPORTED_LINE))
        .filter(external_ref::Column::Extra.eq(ours.local_id))
        .all(&s.tx)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.external_id.strip_prefix(&prefix)?.to_owned(), r.local_id)))
        .collect();
    let centres = ctx.refs(s, "location", shipments.iter().filter_map(|f| f.location_id.clone())).await?;
    for f in shipments.iter().filter(|f| !known.contains_key(&f.id) && f.status != "cancelled") {
        let mut lines = Vec::with_capacity(f.items.len());
        for i in &f.items {
            match line_of.get(&i.variant_id) {
                Some(line) => lines.push((*line, i.quantity)),
                None => out.problems.push(Problem::new(&f.id, format!("variant {} is not on the order", i.variant_id))),
            }
        }
        if lines.is_empty() {
            continue;
        }
        let from = f.location_id.as_ref().and_then(|l| centres.get(l)).map_or(o.location_id, |r| r.local_id);
        let tracking = f.tracking.first().cloned().unwrap_or(Tracking { company: None, number: None, url: None });
        match crate::services::orders::ship_lines(s, o.id, &lines, from, &tracking).await? {
            Ok(sh) => {
                ctx.link_all(s, vec![ctx.row("3pl_shipment", &f.id, sh.id, f.created_at, Some(o.id))]).await?;
                out.applied += 1;
            }
            Err(why) => out.problems.push(Problem::new(&f.id, why)),
        }
    }
    Ok(out)
}

/// Where a carrier's tracking status code (ShipStation's: `AC` accepted, `IT` in transit, `AT`
/// delivery attempted, `DE` delivered, `EX` exception) takes a shipment; `None`: no change
/// (`NY` not yet in the carrier's system, `UN` unknown).
pub fn tracking_status(code: &str) -> Option<&'static str> {
    match code {
        "AC" | "IT" | "AT" => Some("in_transit"),
        "DE" => Some("delivered"),
        "EX" => Some("exception"),
        _ => None,
    }
}

/// A carrier's tracking update for `number`, reported by 3PL connector `c`: each shipment of ours
/// with that tracking number, of an order sent to `c`, takes the new status with an event
/// (`shipment.updated`). A delivered or cancelled shipment stays so (a late update of an earlier
/// scan changes nothing). How many shipments changed.
pub(super) async fn tracked(
    s: &Scoped,
    c: &crate::db::entities::connector::Model,
    number: &str,
    code: &str,
    description: &str,
) -> Result<u64, DbErr> {
    use super::export::EXPORTED_ORDER;
    let Some(status) = tracking_status(code) else { return Ok(0) };
    // The parcels with that number (a few), then those of orders sent to this connector.
    let parcels =
        repo::find::<shipment::Entity>(s).filter(shipment::Column::TrackingNumber.eq(number)).all(&s.tx).await?;
    let sent: HashSet<Uuid> = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::ConnectorId.eq(c.id))
        .filter(external_ref::Column::Kind.eq(EXPORTED_ORDER))
        .filter(external_ref::Column::LocalId.is_in(parcels.iter().map(|p| p.order_id).collect::<Vec<_>>()))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|r| r.local_id)
        .collect();
    let shipments = parcels.into_iter().filter(|p| sent.contains(&p.order_id));
    let mut changed = 0;
    for sh in shipments {
        if sh.status == status || sh.status == "delivered" || sh.status == "cancelled" {
            continue;
        }
        let now = repo::now();
        let updated = shipment::Entity::update_many()
            .col_expr(shipment::Column::Status, status.into())
            .col_expr(shipment::Column::UpdatedAt, now.into())
            .filter(shipment::Column::TenantId.eq(s.tenant()))
            .filter(shipment::Column::Id.eq(sh.id))
            .filter(shipment::Column::Status.eq(sh.status.clone()))
            .exec(&s.tx)
            .await?;
        if updated.rows_affected == 0 {
            continue;
        }
        shipment_event::Entity::insert(shipment_event::ActiveModel {
            tenant_id: Set(s.tenant()),
            id: Set(Uuid::now_v7()),
            shipment_id: Set(sh.id),
            status: Set(status.into()),
            description: Set(description.into()),
            occurred_at: Set(now),
        })
        .exec_without_returning(&s.tx)
        .await?;
        let sh = shipment::Model { status: status.into(), updated_at: now, ..sh };
        crate::events::emit(s, "shipment.updated", shipment_payload(&sh, description)).await?;
        changed += 1;
    }
    Ok(changed)
}

/// `return.received` for return `ret` of order `order` (its units are back; the dispositions are
/// decided elsewhere: not known here), and the receipt queued for the order books it went to.
async fn announce_received(s: &Scoped, ret: &return_::Model, order: &order::Model) -> Result<(), DbErr> {
    let items =
        repo::find::<return_line::Entity>(s).filter(return_line::Column::ReturnId.eq(ret.id)).all(&s.tx).await?;
    let ids: Vec<Uuid> = items.iter().map(|l| l.variant_id).collect();
    let skus = lookup::skus(s, &ids).await?;
    let data = serde_json::json!({
        "returnId": crate::graphql::types::gid("Return", ret.id).0,
        "orderId": crate::graphql::types::gid("Order", order.id).0,
        "locationId": crate::graphql::types::gid("Location", order.location_id).0,
        "lines": items.iter().map(|l| serde_json::json!({
            "sku": skus.get(&l.variant_id), "quantity": l.quantity, "disposition": null,
        })).collect::<Vec<_>>(),
    });
    crate::events::emit(s, "return.received", data).await?;
    super::export::queue_return(s, ret.id, order.id, "received").await
}

/// A 3PL's return `ext` (one announced to it from here, linked `exported_return`) as it is now:
/// once its warehouse completed it, our return is `received` (unless the store closed it
/// already) with `return.received`, and the receipt goes to the order books. Whether it changed.
pub(super) async fn return_from_3pl(
    s: &Scoped,
    c: &crate::db::entities::connector::Model,
    ext: &qm_connectors::source::ExternalReturn,
) -> Result<bool, DbErr> {
    use super::export::EXPORTED_RETURN;
    use sea_orm::QuerySelect as _;
    if ext.status != "completed" {
        return Ok(false);
    }
    let Some(link) = repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::ConnectorId.eq(c.id))
        .filter(external_ref::Column::Kind.eq(EXPORTED_RETURN))
        .filter(external_ref::Column::ExternalId.eq(ext.id.as_str()))
        .one(&s.tx)
        .await?
    else {
        return Ok(false);
    };
    // Locked: deliveries about one return apply one after the other.
    let Some(ret) = repo::find::<return_::Entity>(s)
        .filter(return_::Column::Id.eq(link.local_id))
        .lock_exclusive()
        .one(&s.tx)
        .await?
    else {
        return Ok(false);
    };
    if !matches!(ret.status.as_str(), "requested" | "open") {
        return Ok(false);
    }
    let Some(order) = repo::find::<order::Entity>(s).filter(order::Column::Id.eq(ret.order_id)).one(&s.tx).await?
    else {
        return Ok(false);
    };
    let now = repo::now();
    return_::Entity::update_many()
        .col_expr(return_::Column::Status, "received".into())
        .col_expr(return_::Column::UpdatedAt, now.into())
        .filter(return_::Column::TenantId.eq(s.tenant()))
        .filter(return_::Column::Id.eq(ret.id))
        .exec(&s.tx)
        .await?;
    let ret = return_::Model { status: "received".into(), updated_at: now, ..ret };
    announce_received(s, &ret, &order).await?;
    Ok(true)
}
