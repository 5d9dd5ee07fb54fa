//! Stock changes: adjustments and transfers. Each is one transaction that changes stock levels with
//! guarded single-statement updates and appends hash-chained movements; an idempotency key makes a
//! retried request return the first result instead of applying twice.

use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{stock_level, stock_movement, transfer};
use crate::db::{Db, Scoped, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::services::lookup;

pub const MAX_UNITS: i64 = 1_000_000_000;

pub struct AdjustRequest {
    pub sku: String,
    /// `None` when the given ID did not parse: it is then simply not found.
    pub location_id: Option<Uuid>,
    pub delta: i64,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

pub struct Adjusted {
    pub movement: stock_movement::Model,
    pub level: stock_level::Model,
}

pub fn check_key(key: Option<&str>, field: &[&str]) -> Result<(), UserError> {
    match key {
        Some(k) if k.is_empty() || k.len() > 200 => {
            Err(UserError::invalid(field, "idempotency key must be 1 to 200 characters"))
        }
        _ => Ok(()),
    }
}

pub async fn level(s: &Scoped, variant_id: Uuid, location_id: Uuid) -> Result<stock_level::Model, DbErr> {
    repo::find::<stock_level::Entity>(s)
        .filter(stock_level::Column::VariantId.eq(variant_id))
        .filter(stock_level::Column::LocationId.eq(location_id))
        .one(&s.tx)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("stock level".into()))
}

/// Runs `$body` (an expression using `$s: &Scoped`) in a write transaction and commits it when it
/// succeeds. User errors roll the whole transaction back, so nothing partial is written. On a
/// unique-key race (a concurrent request with the same idempotency key or external id) it runs
/// once more, and then finds the winner's result.
macro_rules! retrying {
    ($db:expr, $p:expr, |$s:ident| $body:expr) => {{
        let mut round = 0;
        loop {
            let scoped = $db.scoped($p.tenant_id, $crate::db::TxMode::Write).await?;
            let outcome: Result<_, sea_orm::DbErr> = async {
                let $s = &scoped;
                $body
            }
            .await;
            let done = match outcome {
                Ok(Ok(v)) => scoped.commit().await.map(|()| Ok(v)),
                other => other,
            };
            match done {
                Err(e) if round == 0 && $crate::db::is_unique_violation(&e) => round += 1,
                other => break other,
            }
        }
    }};
}
pub(crate) use retrying;

#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn adjust(db: &Db, p: &Principal, req: &AdjustRequest) -> Result<Outcome<Adjusted>, DbErr> {
    if req.delta == 0 {
        return Ok(Err(vec![UserError::invalid(&["input", "delta"], "delta must not be zero")]));
    }
    if req.delta.abs() > MAX_UNITS {
        return Ok(Err(vec![UserError::invalid(&["input", "delta"], "delta is too large")]));
    }
    if let Err(e) = check_reason_and_key(&req.reason, req.idempotency_key.as_deref()) {
        return Ok(Err(vec![e]));
    }
    retrying!(db, p, |s| adjust_in(s, req).await)
}

/// A change's free-text reason and idempotency key, as every stock change takes them.
fn check_reason_and_key(reason: &str, key: Option<&str>) -> Result<(), UserError> {
    if reason.chars().count() > 200 {
        return Err(UserError::invalid(&["input", "reason"], "reason is at most 200 characters"));
    }
    check_key(key, &["input", "idempotencyKey"])
}

/// What an earlier request with idempotency `key` did, if there was one: its movement with the
/// level as it is now, or the error of a key reused for a change that is not `same`.
async fn replay(
    s: &Scoped,
    key: Option<&str>,
    same: impl Fn(&stock_movement::Model) -> bool,
) -> Result<Option<Outcome<Adjusted>>, DbErr> {
    let Some(key) = key else { return Ok(None) };
    let previous = repo::find::<stock_movement::Entity>(s)
        .filter(stock_movement::Column::IdempotencyKey.eq(key))
        .one(&s.tx)
        .await?;
    let Some(m) = previous else { return Ok(None) };
    if !same(&m) {
        return Ok(Some(Err(vec![UserError::new(
            &["input", "idempotencyKey"],
            UserErrorCode::IdempotencyKeyReused,
            "this idempotency key was used for a different change",
        )])));
    }
    let level = level(s, m.variant_id, m.location_id).await?;
    Ok(Some(Ok(Adjusted { movement: m, level })))
}

/// The variant with `sku` and the location `id`, or the user error naming what is not found.
async fn variant_at(
    s: &Scoped,
    variant: Option<crate::db::entities::variant::Model>,
    id: Option<Uuid>,
) -> Result<Result<(crate::db::entities::variant::Model, crate::db::entities::location::Model), Vec<UserError>>, DbErr>
{
    let Some(variant) = variant else {
        return Ok(Err(vec![UserError::not_found(&["input", "sku"], "sku")]));
    };
    let location = match id {
        Some(id) => lookup::location(s, id).await?,
        None => None,
    };
    let Some(location) = location else {
        return Ok(Err(vec![UserError::not_found(&["input", "locationId"], "location")]));
    };
    Ok(Ok((variant, location)))
}

async fn adjust_in(s: &Scoped, req: &AdjustRequest) -> Result<Outcome<Adjusted>, DbErr> {
    let variant = lookup::variant_by_sku(s, &req.sku).await?;
    let same = |m: &stock_movement::Model| {
        m.kind == "adjust"
            && Some(m.variant_id) == variant.as_ref().map(|v| v.id)
            && Some(m.location_id) == req.location_id
            && m.delta_on_hand == req.delta
    };
    if let Some(earlier) = replay(s, req.idempotency_key.as_deref(), same).await? {
        return Ok(earlier);
    }
    let (variant, location) = match variant_at(s, variant, req.location_id).await? {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    let reason = if req.reason.is_empty() { "adjustment" } else { req.reason.as_str() };
    let change = OnHandChange {
        sku: &variant.sku,
        variant_id: variant.id,
        location_id: location.id,
        delta: req.delta,
        kind: "adjust",
        reason,
        reference: "",
        idempotency_key: req.idempotency_key.as_deref(),
    };
    let Some(Adjusted { movement, level }) = change_on_hand(s, change).await? else {
        return Ok(Err(vec![UserError::new(
            &["input", "delta"],
            UserErrorCode::InsufficientStock,
            "not enough available stock for this reduction",
        )]));
    };
    Ok(Ok(Adjusted { movement, level }))
}

/// A physical count of one SKU at one location: on hand becomes `on_hand`.
pub struct CountRequest {
    pub sku: String,
    /// `None` when the given ID did not parse: it is then simply not found.
    pub location_id: Option<Uuid>,
    pub on_hand: i64,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

/// A count's outcome: the level, and the movement when the count differed from it.
pub struct Counted {
    pub movement: Option<stock_movement::Model>,
    pub level: stock_level::Model,
}

/// Sets on hand at a location to what was counted there, recording the difference as a `count`
/// movement (none when there is none). A location linked to a store sets the store's on hand
/// the same way, compare-and-swap (see `services::sync`).
#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn count(db: &Db, p: &Principal, req: &CountRequest) -> Result<Outcome<Counted>, DbErr> {
    if !(0..=MAX_UNITS).contains(&req.on_hand) {
        return Ok(Err(vec![UserError::invalid(&["input", "onHand"], "on hand is 0 to 1,000,000,000 units")]));
    }
    if let Err(e) = check_reason_and_key(&req.reason, req.idempotency_key.as_deref()) {
        return Ok(Err(vec![e]));
    }
    retrying!(db, p, |s| count_in(s, req).await)
}

async fn count_in(s: &Scoped, req: &CountRequest) -> Result<Outcome<Counted>, DbErr> {
    let variant = lookup::variant_by_sku(s, &req.sku).await?;
    // The count's movement says what was counted, so a repeat is known by it.
    let counted = format!("counted {}", req.on_hand);
    let same = |m: &stock_movement::Model| {
        m.kind == "count"
            && Some(m.variant_id) == variant.as_ref().map(|v| v.id)
            && Some(m.location_id) == req.location_id
            && m.reference == counted
    };
    if let Some(earlier) = replay(s, req.idempotency_key.as_deref(), same).await? {
        return Ok(earlier.map(|a| Counted { movement: Some(a.movement), level: a.level }));
    }
    let (variant, location) = match variant_at(s, variant, req.location_id).await? {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    repo::ensure_stock_level(s, variant.id, location.id).await?;
    // Locked, so the difference is taken from the level no other change is moving.
    let current = repo::find::<stock_level::Entity>(s)
        .filter(stock_level::Column::VariantId.eq(variant.id))
        .filter(stock_level::Column::LocationId.eq(location.id))
        .lock_exclusive()
        .one(&s.tx)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("stock level".into()))?;
    let delta = req.on_hand - current.on_hand;
    if delta == 0 {
        return Ok(Ok(Counted { movement: None, level: current }));
    }
    let reason = if req.reason.is_empty() { "stock count" } else { req.reason.as_str() };
    let change = OnHandChange {
        sku: &variant.sku,
        variant_id: variant.id,
        location_id: location.id,
        delta,
        kind: "count",
        reason,
        reference: &counted,
        idempotency_key: req.idempotency_key.as_deref(),
    };
    let Some(Adjusted { movement, level }) = change_on_hand(s, change).await? else {
        return Ok(Err(vec![UserError::new(
            &["input", "onHand"],
            UserErrorCode::InsufficientStock,
            "the count is below what open orders reserve here",
        )]));
    };
    Ok(Ok(Counted { movement: Some(movement), level }))
}

/// A change of on-hand stock at one location.
pub struct OnHandChange<'a> {
    pub sku: &'a str,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub delta: i64,
    /// The ledger movement's kind (`adjust`, `count`, `receipt`, `transfer_out`, `transfer_in`), reason,
    /// reference and idempotency key.
    pub kind: &'a str,
    pub reason: &'a str,
    pub reference: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// Applies `c` in the caller's transaction: the guarded level update, its ledger movement and its
/// announcement. `None`, with nothing written, when it would take available stock below zero.
pub async fn change_on_hand(s: &Scoped, c: OnHandChange<'_>) -> Result<Option<Adjusted>, DbErr> {
    repo::ensure_stock_level(s, c.variant_id, c.location_id).await?;
    if !repo::change_stock(s, c.variant_id, c.location_id, c.delta, 0).await? {
        return Ok(None);
    }
    let movement = repo::append_movement(
        s,
        repo::NewMovement {
            variant_id: c.variant_id,
            location_id: c.location_id,
            kind: c.kind,
            delta_on_hand: c.delta,
            delta_reserved: 0,
            reason: c.reason,
            reference: c.reference,
            idempotency_key: c.idempotency_key,
        },
    )
    .await?;
    let level = level(s, c.variant_id, c.location_id).await?;
    announce_change(s, c.sku, &level, c.delta, c.kind, c.reason).await?;
    crate::services::sync::queue_push(s, &movement).await?;
    Ok(Some(Adjusted { movement, level }))
}

/// Tells subscribers about a changed level, emits `stock.adjusted` for adjustments, counts and transfers,
/// `stock.out` when the change used up the last available unit, and fires the stock alert rules it
/// trips (`stock.low`). Runs in the change's own
/// transaction (the outbox), so a rolled-back change announces nothing.
pub async fn announce_change(
    s: &Scoped,
    sku: &str,
    level: &stock_level::Model,
    delta_available: i64,
    kind: &str,
    reason: &str,
) -> Result<(), DbErr> {
    use crate::graphql::types::gid;
    s.publish(crate::live::Update::Stock(crate::live::StockChange {
        sku: sku.to_owned(),
        variant_id: level.variant_id,
        location_id: level.location_id,
        on_hand: level.on_hand,
        reserved: level.reserved,
        delta: delta_available,
        kind: kind.to_owned(),
        reason: reason.to_owned(),
        at: level.updated_at,
    }));
    let data = serde_json::json!({
        "sku": sku,
        "variantId": gid("Variant", level.variant_id).0,
        "locationId": gid("Location", level.location_id).0,
        "onHand": level.on_hand,
        "reserved": level.reserved,
        "available": level.on_hand - level.reserved,
        "delta": delta_available,
        "kind": kind,
        "reason": reason,
    });
    if kind == "adjust" || kind == "count" || kind.starts_with("transfer") {
        crate::events::emit(s, "stock.adjusted", data.clone()).await?;
    }
    if level.on_hand - level.reserved == 0 && delta_available < 0 {
        crate::events::emit(s, "stock.out", data).await?;
    }
    crate::alerts::check_stock(s, sku, level, delta_available).await?;
    if delta_available < 0 {
        crate::services::contracts::evaluate::after_change(s).await?;
    }
    Ok(())
}

pub struct TransferRequest {
    pub sku: String,
    pub from_location_id: Option<Uuid>,
    pub to_location_id: Option<Uuid>,
    pub quantity: i64,
    pub idempotency_key: Option<String>,
}

pub struct Transferred {
    pub transfer: transfer::Model,
    pub from: stock_level::Model,
    pub to: stock_level::Model,
}

#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn transfer(db: &Db, p: &Principal, req: &TransferRequest) -> Result<Outcome<Transferred>, DbErr> {
    if req.quantity <= 0 || req.quantity > MAX_UNITS {
        return Ok(Err(vec![UserError::invalid(&["input", "quantity"], "quantity must be positive")]));
    }
    if let Err(e) = check_key(req.idempotency_key.as_deref(), &["input", "idempotencyKey"]) {
        return Ok(Err(vec![e]));
    }
    retrying!(db, p, |s| transfer_in(s, req).await)
}

async fn transfer_in(s: &Scoped, req: &TransferRequest) -> Result<Outcome<Transferred>, DbErr> {
    if let Some(key) = &req.idempotency_key {
        let previous = repo::find::<transfer::Entity>(s)
            .filter(transfer::Column::IdempotencyKey.eq(key.as_str()))
            .one(&s.tx)
            .await?;
        if let Some(t) = previous {
            let variant = lookup::variant_by_sku(s, &req.sku).await?;
            let same = Some(t.variant_id) == variant.map(|v| v.id)
                && Some(t.from_location_id) == req.from_location_id
                && Some(t.to_location_id) == req.to_location_id
                && i64::from(t.quantity) == req.quantity;
            if !same {
                return Ok(Err(vec![UserError::new(
                    &["input", "idempotencyKey"],
                    UserErrorCode::IdempotencyKeyReused,
                    "this idempotency key was used for a different transfer",
                )]));
            }
            let from = level(s, t.variant_id, t.from_location_id).await?;
            let to = level(s, t.variant_id, t.to_location_id).await?;
            return Ok(Ok(Transferred { transfer: t, from, to }));
        }
    }
    let Some(variant) = lookup::variant_by_sku(s, &req.sku).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "sku"], "sku")]));
    };
    let from = match req.from_location_id {
        Some(id) => lookup::location(s, id).await?,
        None => None,
    };
    let Some(from) = from else {
        return Ok(Err(vec![UserError::not_found(&["input", "fromLocationId"], "location")]));
    };
    let to = match req.to_location_id {
        Some(id) => lookup::location(s, id).await?,
        None => None,
    };
    let Some(to) = to else {
        return Ok(Err(vec![UserError::not_found(&["input", "toLocationId"], "location")]));
    };
    if from.id == to.id {
        return Ok(Err(vec![UserError::invalid(&["input", "toLocationId"], "source and destination are the same")]));
    }
    repo::ensure_stock_level(s, variant.id, from.id).await?;
    repo::ensure_stock_level(s, variant.id, to.id).await?;
    // Lock rows in a fixed order so concurrent opposite transfers cannot deadlock.
    let mut steps = [(from.id, -req.quantity), (to.id, req.quantity)];
    steps.sort_by_key(|(loc, _)| *loc);
    for (loc, delta) in steps {
        if !repo::change_stock(s, variant.id, loc, delta, 0).await? {
            return Ok(Err(vec![UserError::new(
                &["input", "quantity"],
                UserErrorCode::InsufficientStock,
                "not enough available stock at the source",
            )]));
        }
    }
    let t = transfer::Model {
        tenant_id: s.tenant(),
        id: uuid::Uuid::now_v7(),
        variant_id: variant.id,
        from_location_id: from.id,
        to_location_id: to.id,
        quantity: i32::try_from(req.quantity).unwrap_or(i32::MAX),
        status: "completed".into(),
        idempotency_key: req.idempotency_key.clone(),
        created_at: repo::now(),
        shipped_at: Some(repo::now()),
        received_at: Some(repo::now()),
        status_reason: None,
        replenishment_run_id: None,
    };
    transfer::Entity::insert(transfer::ActiveModel {
        tenant_id: Set(s.tenant()),
        ..transfer::ActiveModel::from(t.clone())
    })
    .exec_without_returning(&s.tx)
    .await?;
    let reference = t.id.to_string();
    for (loc, kind, delta) in [(from.id, "transfer_out", -req.quantity), (to.id, "transfer_in", req.quantity)] {
        repo::append_movement(
            s,
            repo::NewMovement {
                variant_id: variant.id,
                location_id: loc,
                kind,
                delta_on_hand: delta,
                delta_reserved: 0,
                reason: "transfer",
                reference: &reference,
                idempotency_key: None,
            },
        )
        .await?;
    }
    let from = level(s, variant.id, from.id).await?;
    let to = level(s, variant.id, to.id).await?;
    announce_change(s, &variant.sku, &from, -req.quantity, "transfer_out", "transfer").await?;
    announce_change(s, &variant.sku, &to, req.quantity, "transfer_in", "transfer").await?;
    Ok(Ok(Transferred { transfer: t, from, to }))
}
