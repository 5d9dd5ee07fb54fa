//! The sync engine: a connector's resources (locations, catalog, inventory, orders) read page by page
//! from the provider through the capability traits of `qm_connectors::source`, and applied as
//! upserts keyed by the provider's ids (`external_refs`, beside ours).
//!
//! A run is a row (`sync_runs`) and a chain of `connector.sync` jobs. Each page is fetched
//! outside any transaction, then applied in one transaction that also moves the run's
//! checkpoint (`position`: resource, cursor, provider location), so a run killed at any point
//! goes on from the last page it committed, and a page is never applied twice by the same run.
//! Applying is idempotent on its own as well (a record carries its provider version, and an
//! older version than the one stored changes nothing), so a page applied again by a later run
//! changes nothing. A job works for a bounded time and then queues its continuation in the same
//! transaction as its last checkpoint.
//!
//! A record that cannot be read or applied is a problem of the run (kept with its provider id and
//! the reason), never a failure of the page. A provider refusing the credentials pauses the
//! connector; rate limits and transient failures retry the job later; anything else fails the
//! run with its reason.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qm_connectors::ProviderError;
use qm_connectors::shopify::client::{Client, ClientConfig, ShopLimits, TenantLimits};
use qm_connectors::shopify::throttle::{Bucket, ThrottleStatus};
use qm_connectors::source::{
    Batch, ExternalLevel, ExternalLocation, ExternalOrder, ExternalProduct, ExternalVariant, Problem,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, sea_query::OnConflict};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::db::entities::{
    Dec, connector, external_ref, job, location, product, stock_level, sync_cursor, sync_run, variant,
};
use crate::db::{Scoped, TxMode, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::services::connectors::{self as installed, open_credentials, settings_of};
use crate::state::AppState;

pub mod bulk;
pub mod export;
pub mod inbound;
pub mod orders;
pub mod prices;
pub mod provider;

pub use provider::Provider;

pub const SYNC: &str = "connector.sync";
/// Every resource, in the order a run takes them (inventory needs the locations and the catalog).
pub const RESOURCES: [&str; 4] = ["locations", "catalog", "inventory", "orders"];
/// How long one job works before it hands over to its continuation (at most a third of the
/// worker's lease, which cuts a job off at nine tenths of it).
const SLICE: Duration = Duration::from_secs(20);
/// The longest a call waits for the provider's rate limit inside a job (likewise bounded by the
/// lease); longer, the job retries at the time the provider said.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// `limit`, or a third of the worker lease when that is shorter.
fn within_lease(state: &AppState, limit: Duration) -> Duration {
    limit.min(Duration::from_secs(state.config.worker_lease_seconds.max(3)) / 3)
}
/// Problems kept on a run (all are counted).
const KEEP_PROBLEMS: usize = 100;
/// An incremental sync asks for changes since a little before the last one's newest change: a
/// record saved in the same second as that change is not missed.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(60);

/// Applies one stored inbound webhook.
pub const WEBHOOK: &str = "connector.webhook";

/// The periodic incremental sync of one connector.
pub const RECONCILE: &str = "connector.reconcile";
/// A stock change of ours sent to a provider.
pub const PUSH: &str = "connector.push";

pub fn register(r: Registry) -> Registry {
    r.with(SYNC, SyncJob)
        .with(WEBHOOK, WebhookJob)
        .with(RECONCILE, ReconcileJob)
        .with(PUSH, PushJob)
        .with(orders::FULFILL, orders::FulfillJob)
        .with(export::EXPORT, export::ExportJob)
        .with(export::RETURN_EXPORT, export::ReturnJob)
        .with(inbound::RECEIVING_EXPORT, inbound::ReceivingJob)
        .with(inbound::RECEIVING_CANCEL, inbound::ReceivingCancelJob)
        .with(prices::PRICE, prices::PriceJob)
}

/// The UUID at `key` of a job's payload.
fn payload_id(job: &crate::db::entities::job::Model, key: &str) -> Result<Uuid, JobError> {
    job.payload[key]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .ok_or_else(|| JobError::Permanent(format!("the payload has no {key}")))
}

/// Queues sending `movement` (a stock change made here: an adjustment, a receipt, a transfer) to
/// every active connector that links its location and variant and takes stock there, in the
/// change's transaction. The movement's id is the provider's idempotency key, so a retried push
/// changes the shop once. Changes read from a provider (`sync`) are not sent back; those read from
/// a location's stock master go on to its followers ([`queue_mirror`]).
///
/// At a location with a stock master, a follower is not sent the delta but kept equal to our
/// level (which follows the master): the push sets it to our on hand as it is when the push runs,
/// so pushes running in any order leave it at the latest level.
pub async fn queue_push(s: &Scoped, movement: &crate::db::entities::stock_movement::Model) -> Result<(), DbErr> {
    queue_push_except(s, movement, &[]).await
}

/// [`queue_push`], but not to connectors `except` (a shipment of an order NetSuite fulfils itself
/// moves its stock there already).
pub async fn queue_push_except(
    s: &Scoped,
    movement: &crate::db::entities::stock_movement::Model,
    except: &[Uuid],
) -> Result<(), DbErr> {
    if movement.kind == "sync" {
        return Ok(());
    }
    queue_to(s, movement, except).await
}

/// Sends a change read from connector `master`, the stock master of the movement's location, on
/// to the location's followers (never back to the master).
async fn queue_mirror(
    s: &Scoped,
    movement: &crate::db::entities::stock_movement::Model,
    master: Uuid,
) -> Result<(), DbErr> {
    queue_to(s, movement, &[master]).await
}

async fn queue_to(
    s: &Scoped,
    movement: &crate::db::entities::stock_movement::Model,
    except: &[Uuid],
) -> Result<(), DbErr> {
    if movement.delta_on_hand == 0 {
        return Ok(());
    }
    let linked = |kind: &'static str, local: Uuid| {
        repo::find::<external_ref::Entity>(s)
            .filter(external_ref::Column::LocalId.eq(local))
            .filter(external_ref::Column::Kind.eq(kind))
    };
    let locations = linked("location", movement.location_id).all(&s.tx).await?;
    if locations.is_empty() {
        return Ok(());
    }
    let items = linked("inventory_item", movement.variant_id).all(&s.tx).await?;
    // A count sets the store's on hand, compare-and-swap from what it had as last read here.
    let count = match movement.kind.as_str() {
        "count" => {
            let on_hand = crate::services::stock::level(s, movement.variant_id, movement.location_id).await?.on_hand;
            Some(SetOnHand { expected: on_hand - movement.delta_on_hand, on_hand, round: 0 })
        }
        _ => None,
    };
    let active: HashMap<Uuid, connector::Model> = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Id.is_in(locations.iter().map(|l| l.connector_id).collect::<Vec<_>>()))
        .filter(connector::Column::Status.eq("active"))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mastered = active.values().any(|c| {
        settings_of(c).location_mapping.iter().any(|l| l.location_id == movement.location_id && l.stock_master(&c.kind))
    });
    let takes = |l: &external_ref::Model| {
        !except.contains(&l.connector_id)
            && active.get(&l.connector_id).is_some_and(|c| provider::takes_stock(c, &l.external_id))
    };
    for location in locations.iter().filter(|l| takes(l)) {
        let Some(item) = items.iter().find(|i| i.connector_id == location.connector_id) else { continue };
        let mut payload = json!({
            "connector_id": location.connector_id,
            "key": movement.id,
            "item": item.external_id,
            "location": location.external_id,
            "delta": movement.delta_on_hand,
            "reference": format!("quartermaster://stock-movement/{}", movement.id),
        });
        if mastered {
            payload["mirror"] = json!({ "variant_id": movement.variant_id, "location_id": movement.location_id });
        } else if let Some(set) = &count {
            payload["set"] = json!(set);
        }
        let mut job = NewJob::new(PUSH, payload);
        job.dedup_key = Some(format!("{PUSH}:{}:{}", location.connector_id, movement.id));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

struct PushJob;

/// A count sent to a store: on hand becomes `on_hand` if the store has `expected`. When it has
/// something else, the store's stock moved since (a sale shipped, a delivery received) and the
/// count is recomputed to keep that movement: `on_hand + (now - expected)`, as of the next
/// round. Each round is stored in the job before it is sent and sent with its own idempotency
/// key, so a retry after a lost answer repeats that round instead of recomputing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SetOnHand {
    expected: i64,
    on_hand: i64,
    round: u32,
}

/// Rounds of re-read and recompute one run of a push job tries before it retries later.
const SET_ROUNDS: u32 = 5;

/// Sends a count to the store (see [`SetOnHand`]).
async fn push_count(
    state: &AppState,
    job: &job::Model,
    client: &Provider,
    (key, item, location, reference): (&str, &str, &str, &str),
    mut set: SetOnHand,
) -> Result<(), SliceError> {
    let first = set.round;
    loop {
        let round_key = format!("{key}-{}", set.round);
        match client.stock_sink()?.set(&round_key, item, location, set.expected, set.on_hand, reference).await {
            Err(ProviderError::Stale(why)) if set.round < first + SET_ROUNDS => {
                let Some(now) = client.inventory()?.level(item, location).await? else {
                    return Err(ProviderError::Permanent(format!("the item is no longer stocked there ({why})")).into());
                };
                tracing::info!(job = %job.id, expected = set.expected, found = now.on_hand, "the store's stock moved; recomputing the count");
                set = SetOnHand {
                    expected: now.on_hand,
                    on_hand: set.on_hand + (now.on_hand - set.expected),
                    round: set.round + 1,
                };
                store_set(state, job, set).await?;
            }
            Err(ProviderError::Stale(why)) => {
                return Err(ProviderError::Transient(format!("the store's stock keeps moving: {why}")).into());
            }
            other => return Ok(other?),
        }
    }
}

#[async_trait::async_trait]
impl Handler for PushJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let p = &job.payload;
        let connector_id = payload_id(job, "connector_id")?;
        let (Some(key), Some(item), Some(location), Some(delta), Some(reference)) = (
            p["key"].as_str(),
            p["item"].as_str(),
            p["location"].as_str(),
            p["delta"].as_i64(),
            p["reference"].as_str(),
        ) else {
            return Err(JobError::Permanent(format!("bad payload {p}")));
        };
        let (_, client) = push_client(state, job.tenant_id, connector_id).await?;
        if let Some(m) = p.get("mirror") {
            let ours = |k: &str| m[k].as_str().and_then(|v| v.parse::<Uuid>().ok());
            let (Some(variant), Some(our_location)) = (ours("variant_id"), ours("location_id")) else {
                return Err(JobError::Permanent(format!("bad payload {p}")));
            };
            return match push_mirror(state, job, &client, (key, item, location, reference), (variant, our_location))
                .await
            {
                Ok(()) => Ok(()),
                Err(SliceError::Db(e)) => Err(e.into()),
                Err(SliceError::Provider(e)) => push_failed(state, job, connector_id, e).await,
            };
        }
        let set = match p.get("set") {
            Some(set) => Some(
                serde_json::from_value::<SetOnHand>(set.clone())
                    .map_err(|e| JobError::Permanent(format!("bad payload {p}: {e}")))?,
            ),
            None => match as_set(state, job, &client, item, location, delta).await {
                Ok(set) => set,
                Err(SliceError::Db(e)) => return Err(e.into()),
                Err(SliceError::Provider(e)) => return push_failed(state, job, connector_id, e).await,
            },
        };
        let sent = match set {
            Some(set) => match push_count(state, job, &client, (key, item, location, reference), set).await {
                Err(SliceError::Db(e)) => return Err(e.into()),
                Err(SliceError::Provider(e)) => Err(e),
                Ok(()) => Ok(()),
            },
            None => async { client.stock_sink()?.adjust(key, item, location, delta, reference).await }.await,
        };
        match sent {
            Ok(()) => {
                tracing::info!(connector = %connector_id, key, delta, "stock change sent to the shop");
                Ok(())
            }
            Err(e) => push_failed(state, job, connector_id, e).await,
        }
    }
}

/// Sets a follower's on hand to ours (`variant` at `our_location`) as it is now, compare-and-swap
/// from the follower's own as read just before, each round with its own key; a retry after a lost
/// answer reads the level already set and sends nothing.
async fn push_mirror(
    state: &AppState,
    job: &job::Model,
    client: &Provider,
    (key, item, location, reference): (&str, &str, &str, &str),
    (variant, our_location): (Uuid, Uuid),
) -> Result<(), SliceError> {
    let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
    let target = crate::services::stock::level(&s, variant, our_location).await?.on_hand;
    s.commit().await?;
    for round in 0..SET_ROUNDS {
        let now = client.inventory()?.level(item, location).await?.map_or(0, |l| l.on_hand);
        if now == target {
            return Ok(());
        }
        match client.stock_sink()?.set(&format!("{key}-m{round}"), item, location, now, target, reference).await {
            Err(ProviderError::Stale(why)) => {
                tracing::info!(job = %job.id, %why, "the follower's stock moved; reading it again")
            }
            other => return Ok(other?),
        }
    }
    Err(ProviderError::Transient("the follower's stock keeps moving".into()).into())
}

/// A delta for a provider whose stock changes take no idempotency key, as a compare-and-swap
/// set from the level it has now: stored in the job before anything is sent, so a retry after a
/// lost answer repeats the same set (which finds it done) instead of adding the delta again.
/// `None` for a provider that takes keyed deltas.
async fn as_set(
    state: &AppState,
    job: &job::Model,
    client: &Provider,
    item: &str,
    location: &str,
    delta: i64,
) -> Result<Option<SetOnHand>, SliceError> {
    if client.stock_sink()?.keyed() {
        return Ok(None);
    }
    let now = client.inventory()?.level(item, location).await?.map_or(0, |l| l.on_hand);
    let set = SetOnHand { expected: now, on_hand: now + delta, round: 0 };
    store_set(state, job, set).await?;
    Ok(Some(set))
}

/// Stores the set a push job sends next in its payload (committed before it is sent).
async fn store_set(state: &AppState, job: &job::Model, set: SetOnHand) -> Result<(), DbErr> {
    let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
    let mut payload = job.payload.clone();
    payload["set"] = json!(set);
    job::Entity::update_many()
        .col_expr(job::Column::Payload, payload.into())
        .filter(job::Column::TenantId.eq(s.tenant()))
        .filter(job::Column::Id.eq(job.id))
        .exec(&s.tx)
        .await?;
    s.commit().await
}

/// The connector a push goes through and its client, if it is active (a paused or uninstalled
/// one sends nothing) and its credentials open.
async fn push_client(state: &AppState, tenant: Uuid, id: Uuid) -> Result<(connector::Model, Provider), JobError> {
    let s = state.db.scoped(tenant, TxMode::Read).await?;
    let c = repo::find::<connector::Entity>(&s).filter(connector::Column::Id.eq(id)).one(&s.tx).await?;
    s.commit().await?;
    let c = c
        .filter(|c| c.status == "active")
        .ok_or_else(|| JobError::Permanent("the connector is paused or uninstalled; the change was not sent".into()))?;
    let client = state.providers.client(state, &c).ok_or_else(|| JobError::Permanent(NO_CREDENTIALS.into()))?;
    Ok((c, client))
}

/// A push job's outcome for a provider error: retried while that may help; refused credentials
/// pause the connector; anything else fails the push for good (dead-lettered with the reason).
async fn push_failed(
    state: &AppState,
    job: &crate::db::entities::job::Model,
    connector_id: Uuid,
    e: ProviderError,
) -> Result<(), JobError> {
    let last_attempt = job.attempts + 1 >= job.max_attempts;
    match e {
        e if e.is_retryable() && !last_attempt => on_provider_error(e, false, |_| async { Ok(()) }).await,
        ProviderError::Unauthorized(m) => {
            let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
            pause_refused(&s, connector_id, &m).await?;
            s.commit().await?;
            Err(JobError::Permanent(format!("credentials refused: {m}")))
        }
        e => Err(JobError::Permanent(e.to_string())),
    }
}

/// Schedules connector `id`'s periodic incremental sync (installing it again replaces the schedule).
pub async fn schedule_reconciliation(s: &Scoped, id: Uuid, every: Duration) -> Result<(), DbErr> {
    let first = repo::now() + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::hours(1));
    jobs::schedule(s, &format!("{RECONCILE}:{id}"), RECONCILE, json!({ "connector_id": id }), every, first).await
}

struct ReconcileJob;

#[async_trait::async_trait]
impl Handler for ReconcileJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let id = payload_id(job, "connector_id")?;
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        // A paused or uninstalled connector is skipped (its schedule stays for when it resumes);
        // a run already queued or running is enough.
        if let Err(e) = request(&s, id, &[], false, "schedule").await? {
            tracing::debug!(connector = %id, reason = ?e, "no reconciliation sync");
        }
        s.commit().await?;
        // A 3PL's shipments, returns and receipts that no webhook brought (one lost, or never
        // subscribed) are read.
        match poll_3pl(state, job.tenant_id, id).await {
            Ok(()) => Ok(()),
            Err(SliceError::Db(e)) => Err(e.into()),
            Err(SliceError::Provider(e)) => {
                tracing::warn!(connector = %id, error = %e, "the 3PL's shipments were not read; the next reconciliation tries again");
                Ok(())
            }
        }
    }
}

/// Open orders (and returns, purchase orders) of a 3PL read at most per reconciliation.
const POLL_ORDERS: u64 = 200;

/// What a reconciliation reads of connector `id`, if it is an active 3PL, that its webhooks would
/// have brought: the shipments of open orders sent to it and, from ShipBob, its returns and
/// receiving orders; all within one slice, through one client.
async fn poll_3pl(state: &AppState, tenant: Uuid, id: Uuid) -> Result<(), SliceError> {
    let s = state.db.scoped(tenant, TxMode::Read).await?;
    let c = repo::find::<connector::Entity>(&s).filter(connector::Column::Id.eq(id)).one(&s.tx).await?;
    s.commit().await?;
    let Some(c) = c.filter(|c| c.status == "active" && provider::is_3pl(&c.kind)) else { return Ok(()) };
    let Some(client) = state.providers.client(state, &c) else { return Ok(()) };
    let until = Instant::now() + within_lease(state, SLICE);
    poll_shipments(state, &c, &client, until).await?;
    if let Provider::ShipBob(sb) = &client {
        poll_returns(state, &c, sb, until).await?;
        poll_receiving(state, &c, sb, until).await?;
    }
    Ok(())
}

/// Reads the shipments of the open orders sent to 3PL `c` (the oldest first) and applies the new
/// ones as its webhooks would (`orders::from_3pl`), until `until`.
async fn poll_shipments(
    state: &AppState,
    c: &connector::Model,
    client: &Provider,
    until: Instant,
) -> Result<(), SliceError> {
    use crate::db::entities::order;
    use sea_orm::QuerySelect as _;
    let s = state.db.scoped(c.tenant_id, TxMode::Read).await?;
    // Open orders sent to it, by order id, a page of open orders at a time.
    let mut sent: Vec<external_ref::Model> = Vec::new();
    let mut after = Uuid::nil();
    while (sent.len() as u64) < POLL_ORDERS {
        let page: Vec<Uuid> = repo::find::<order::Entity>(&s)
            .filter(order::Column::Status.eq("reserved"))
            .filter(order::Column::Id.gt(after))
            .order_by_asc(order::Column::Id)
            .limit(500)
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        let Some(last) = page.last().copied() else { break };
        after = last;
        sent.extend(
            refs_of(&s, c.id, export::EXPORTED_ORDER)
                .filter(external_ref::Column::LocalId.is_in(page))
                .all(&s.tx)
                .await?,
        );
    }
    s.commit().await?;
    for r in sent.into_iter().take(POLL_ORDERS as usize) {
        if Instant::now() >= until {
            break;
        }
        let shipments = client.shipment_source()?.shipments(&r.external_id).await?;
        if shipments.is_empty() {
            continue;
        }
        let s = state.db.scoped(c.tenant_id, TxMode::Write).await?;
        let outcome = orders::from_3pl(&s, c, &r.external_id, &shipments).await?;
        log_problems(&format!("poll:{}", r.external_id), &outcome.problems);
        s.commit().await?;
    }
    Ok(())
}

/// Reads ShipBob's returns announced from here whose units are not back yet (at most
/// [`POLL_ORDERS`], the oldest first) and applies them as its webhooks would
/// (`orders::return_from_3pl`), until `until`.
async fn poll_returns(
    state: &AppState,
    c: &connector::Model,
    client: &qm_connectors::shipbob::client::Client,
    until: Instant,
) -> Result<(), SliceError> {
    use crate::db::entities::return_;
    use sea_orm::QuerySelect as _;
    let s = state.db.scoped(c.tenant_id, TxMode::Read).await?;
    let open: Vec<Uuid> = repo::find::<return_::Entity>(&s)
        .filter(return_::Column::Status.is_in(["requested", "open"]))
        .order_by_asc(return_::Column::Id)
        .limit(POLL_ORDERS * 5)
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let announced = announced(&s, c.id, export::EXPORTED_RETURN, open).await?;
    s.commit().await?;
    for r in announced {
        if Instant::now() >= until {
            break;
        }
        let Some(ext) = client.return_of(&r.external_id).await? else { continue };
        let s = state.db.scoped(c.tenant_id, TxMode::Write).await?;
        if orders::return_from_3pl(&s, c, &ext).await?
            && let Err(e) = request(&s, c.id, &["inventory".to_owned()], false, "schedule").await?
        {
            tracing::debug!(connector = %c.id, reason = ?e, "no inventory sync");
        }
        s.commit().await?;
    }
    Ok(())
}

/// Reads ShipBob's receiving orders announced from here for purchase orders still open (at most
/// [`POLL_ORDERS`]) and receives here what its warehouse received (`inbound::received_at_3pl`),
/// until `until`.
async fn poll_receiving(
    state: &AppState,
    c: &connector::Model,
    client: &qm_connectors::shipbob::client::Client,
    until: Instant,
) -> Result<(), SliceError> {
    use crate::db::entities::purchase_order;
    use qm_connectors::source::InboundSink as _;
    use sea_orm::QuerySelect as _;
    let s = state.db.scoped(c.tenant_id, TxMode::Read).await?;
    let open: Vec<Uuid> = repo::find::<purchase_order::Entity>(&s)
        .filter(purchase_order::Column::Status.is_in(crate::services::replenish::RECEIVABLE_PO))
        .order_by_asc(purchase_order::Column::Id)
        .limit(POLL_ORDERS * 5)
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let announced = announced(&s, c.id, inbound::EXPORTED_RECEIVING, open).await?;
    s.commit().await?;
    for r in announced {
        if Instant::now() >= until {
            break;
        }
        let Some(status) = client.inbound(&r.external_id).await? else { continue };
        let s = state.db.scoped(c.tenant_id, TxMode::Write).await?;
        inbound::received_at_3pl(&s, c, &status).await?;
        s.commit().await?;
    }
    Ok(())
}

/// The providers' clients and the per-shop limits they share, for the whole process.
pub struct Providers {
    http: reqwest::Client,
    limits: Mutex<HashMap<Uuid, Arc<ShopLimits>>>,
    /// Per NetSuite connector: its requests in flight and recent refusals.
    /// (Kept with the concurrency they were made for: a changed configuration makes new ones.)
    netsuite: Mutex<HashMap<Uuid, (usize, Arc<qm_connectors::netsuite::client::Limits>)>>,
    /// Per ShipBob connector: its requests in flight.
    shipbob: Mutex<HashMap<Uuid, Arc<qm_connectors::shipbob::client::Limits>>>,
    /// Per ShipStation connector: its V1 and V2 keys' rate windows.
    shipstation: Mutex<HashMap<Uuid, [Arc<qm_connectors::shipstation::Limits>; 2]>>,
    /// Per tenant, what it may do across its connectors.
    tenants: Mutex<HashMap<Uuid, Arc<TenantLimits>>>,
    /// Calls in flight to one shop at most.
    pub concurrency: usize,
    /// Calls in flight for one tenant at most, across its connectors (per process).
    pub tenant_concurrency: usize,
    /// Calls a second for one tenant at most, across its connectors (per process).
    pub tenant_rate: u32,
    /// Whether a `baseUrl` may reach loopback, private and link-local addresses.
    allow_private: bool,
}

impl Providers {
    /// Providers' clients never follow redirects and, unless `allow_private`, never connect to
    /// loopback, private or link-local addresses (a `baseUrl` is an admin's input: SSRF).
    pub fn new(allow_private: bool, tenant_concurrency: usize, tenant_rate: u32) -> Result<Self, reqwest::Error> {
        let http = qm_integrations::net::guarded_client(allow_private)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Providers {
            http,
            limits: Mutex::default(),
            netsuite: Mutex::default(),
            shipbob: Mutex::default(),
            shipstation: Mutex::default(),
            tenants: Mutex::default(),
            concurrency: 2,
            tenant_concurrency: tenant_concurrency.max(1),
            tenant_rate: tenant_rate.max(1),
            allow_private,
        })
    }

    /// Checks a `baseUrl` before it is stored (the client checks the resolved address again).
    pub fn check_base_url(&self, url: &str) -> Result<(), String> {
        qm_integrations::net::check_url(url, self.allow_private).map(drop)
    }

    /// The limits of connector `c`'s shop (one bucket and one call cap per connector, under its
    /// tenant's limits).
    fn limits(&self, c: &connector::Model) -> Arc<ShopLimits> {
        let tenant = {
            let mut all = self.tenants.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (cap, rate) = (self.tenant_concurrency, self.tenant_rate);
            all.entry(c.tenant_id).or_insert_with(|| Arc::new(TenantLimits::new(cap, rate))).clone()
        };
        let mut all = self.limits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.entry(c.id).or_insert_with(|| Arc::new(ShopLimits::new(self.concurrency, tenant))).clone()
    }

    /// A client of the connector's provider, or `None` when its credentials are gone or do not
    /// open (or it is of a kind this version does not know).
    pub fn client(&self, state: &AppState, c: &connector::Model) -> Option<Provider> {
        match c.kind.as_str() {
            installed::SHOPIFY => self.shopify(state, c).map(Provider::Shopify),
            installed::NETSUITE => self.netsuite(state, c).map(Provider::NetSuite),
            installed::SHIPBOB => self.shipbob(state, c).map(Provider::ShipBob),
            installed::SHIPSTATION => self.shipstation(state, c).map(Provider::ShipStation),
            _ => None,
        }
    }

    fn shopify(&self, state: &AppState, c: &connector::Model) -> Option<Client> {
        let (token, _) = open_credentials(&state.sealer, c)?;
        let settings = settings_of(c);
        let mut config = ClientConfig::new(&c.external_account, &token, &settings.api_version);
        config.base_url = settings.base_url;
        config.max_wait = within_lease(state, MAX_WAIT);
        Some(Client::new(self.http.clone(), config, self.limits(c)))
    }

    /// A ShipStation account's clients (V2 with a V2 key) with the connector's own rate windows.
    fn shipstation(&self, state: &AppState, c: &connector::Model) -> Option<provider::ShipStation> {
        use qm_connectors::shipstation::{v1, v2};
        let secrets = installed::open_shipstation(&state.sealer, c)?;
        let settings = settings_of(c);
        let [v1_limits, v2_limits] = {
            let mut all = self.shipstation.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.entry(c.id).or_default().clone()
        };
        let mut config = v1::Config::new(&secrets.api_key, &secrets.api_secret);
        config.base_url.clone_from(&settings.base_url);
        config.max_wait = within_lease(state, MAX_WAIT);
        let v2 = secrets.v2_api_key.map(|key| {
            let locations = settings
                .location_mapping
                .iter()
                .filter_map(|l| Some((l.provider_location_id.clone(), l.inventory_location_id.clone()?)))
                .collect();
            let mut config = v2::Config::new(&key, locations);
            config.base_url.clone_from(&settings.base_url);
            config.max_wait = within_lease(state, MAX_WAIT);
            v2::Client::new(self.http.clone(), config, v2_limits)
        });
        Some(provider::ShipStation { v1: v1::Client::new(self.http.clone(), config, v1_limits), v2 })
    }

    /// A ShipBob client with the connector's own limits.
    fn shipbob(&self, state: &AppState, c: &connector::Model) -> Option<qm_connectors::shipbob::client::Client> {
        use qm_connectors::shipbob::client;
        let (token, _) = open_credentials(&state.sealer, c)?;
        let settings = settings_of(c);
        let sb = settings.shipbob?;
        let mut config = client::Config::new(&token);
        config.base_url = settings.base_url;
        config.channel_id = Some(sb.channel_id);
        config.shipping_method = sb.shipping_method;
        config.max_wait = within_lease(state, MAX_WAIT);
        let limits = {
            let mut all = self.shipbob.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.entry(c.id).or_insert_with(|| Arc::new(client::Limits::new(self.concurrency))).clone()
        };
        Some(client::Client::new(self.http.clone(), config, limits))
    }

    /// A NetSuite client with the connector's own limits: one installation's throttling or
    /// refused logins never hold up another's.
    fn netsuite(&self, state: &AppState, c: &connector::Model) -> Option<qm_connectors::netsuite::client::Client> {
        use qm_connectors::netsuite::{client, oauth2, tba};
        let (auth, _) = installed::open_netsuite(&state.sealer, c)?;
        let settings = settings_of(c);
        let n = settings.netsuite?;
        let auth = match auth {
            installed::NetSuiteAuth::Tba(t) => client::Auth::Tba(tba::Credentials {
                account: c.external_account.clone(),
                consumer_key: t.consumer_key,
                consumer_secret: t.consumer_secret,
                token_id: t.token_id,
                token_secret: t.token_secret,
            }),
            installed::NetSuiteAuth::ClientCredentials(cc) => {
                client::Auth::ClientCredentials(oauth2::ClientCredentials {
                    client_id: cc.client_id,
                    certificate_id: cc.certificate_id,
                    private_key: cc.private_key,
                })
            }
        };
        let mut config = client::Config::new(&c.external_account, auth, n.time_zone.parse().ok()?, &n.currency);
        config.base_url = settings.base_url;
        config.date_style = n.date_style;
        config.max_wait = within_lease(state, MAX_WAIT);
        config.adjustment_account = n.adjustment_account_id;
        config.subsidiary = n.subsidiary_id;
        config.order_customer = n.order_customer_id;
        let limits = {
            let mut all = self.netsuite.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = || (n.concurrency, Arc::new(client::Limits::new(n.concurrency)));
            let entry = all.entry(c.id).or_insert_with(fresh);
            if entry.0 != n.concurrency {
                *entry = fresh();
            }
            entry.1.clone()
        };
        Some(client::Client::new(self.http.clone(), config, limits))
    }
}

const NO_CREDENTIALS: &str = "the connector's credentials do not open with the configured keys";

/// Where a run is: the resources finished, and within the current one the cursor of the next
/// page (for inventory, of which provider location), and the newest change seen so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    #[serde(default)]
    pub done: Vec<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Inventory: the provider location being read.
    #[serde(default)]
    pub location: Option<String>,
    /// The newest provider `updated_at` applied in the current resource.
    #[serde(default)]
    pub newest: Option<DateTime<Utc>>,
    /// Pages committed so far (all resources).
    #[serde(default)]
    pub pages: u64,
    /// A bulk import of the catalog and stock under way.
    #[serde(default)]
    pub bulk: Option<bulk::BulkState>,
    /// The catalog is read page by page (no bulk import, or what one missed).
    #[serde(default)]
    pub paged: bool,
}

/// The provider's rate-limit bucket as last known: `available` of `maximum` points at
/// `observed_at`, refilling at `restore_rate` a second. Stored on the connector with each sync
/// checkpoint (`connectors.throttle`), so every replica shows the same state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttle {
    pub available: f64,
    pub maximum: f64,
    pub restore_rate: f64,
    pub observed_at: DateTime<Utc>,
}

impl Throttle {
    fn of(client: &Provider) -> Option<Self> {
        client.shopify()?.throttle().map(|(s, at)| Throttle {
            available: s.currently_available,
            maximum: s.maximum_available,
            restore_rate: s.restore_rate,
            observed_at: at,
        })
    }

    /// What the connector stored, if a call has answered.
    pub fn stored(c: &connector::Model) -> Option<Self> {
        serde_json::from_value(c.throttle.clone()?).ok()
    }

    /// The points available at `now`: refilled since it was observed, never above the maximum.
    pub fn available_at(&self, now: DateTime<Utc>) -> f64 {
        let mut bucket = Bucket::default();
        let status = ThrottleStatus {
            maximum_available: self.maximum,
            currently_available: self.available,
            restore_rate: self.restore_rate,
        };
        bucket.observe(status, self.observed_at);
        bucket.now(now).map_or(self.available, |s| s.currently_available)
    }
}

/// Stores what `client` last saw of the provider's bucket on connector `id` (nothing before its
/// first answer); part of each checkpoint (`save_run`).
async fn save_throttle(s: &Scoped, id: Uuid, client: &Provider) -> Result<(), DbErr> {
    let Some(t) = Throttle::of(client) else { return Ok(()) };
    connector::Entity::update_many()
        .col_expr(connector::Column::Throttle, Some(json!(t)).into())
        .filter(connector::Column::TenantId.eq(s.tenant()))
        .filter(connector::Column::Id.eq(id))
        .exec(&s.tx)
        .await?;
    Ok(())
}

/// Per resource: records applied, records already up to date, problems.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub applied: u64,
    pub unchanged: u64,
    pub problems: u64,
}

pub type Counts = std::collections::BTreeMap<String, Count>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProblem {
    pub resource: String,
    pub external_id: String,
    pub message: String,
}

pub fn position_of(r: &sync_run::Model) -> Position {
    serde_json::from_value(r.position.clone()).unwrap_or_default()
}

pub fn counts_of(r: &sync_run::Model) -> Counts {
    serde_json::from_value(r.counts.clone()).unwrap_or_default()
}

pub fn problems_of(r: &sync_run::Model) -> Vec<RunProblem> {
    serde_json::from_value(r.problems.clone()).unwrap_or_default()
}

pub fn resources_of(r: &sync_run::Model) -> Vec<String> {
    serde_json::from_value(r.resources.clone()).unwrap_or_default()
}

/// Queues a sync of `resources` (all when empty) of connector `id`, or returns the run already
/// queued or running for it (one run per connector at a time).
pub async fn request(
    s: &Scoped,
    id: Uuid,
    resources: &[String],
    full: bool,
    trigger: &str,
) -> Result<Outcome<sync_run::Model>, DbErr> {
    let Some(c) = repo::find::<connector::Entity>(s).filter(connector::Column::Id.eq(id)).one(&s.tx).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "connectorId"], "connector")]));
    };
    if c.status != "active" {
        return Ok(Err(vec![UserError::new(
            &["input", "connectorId"],
            UserErrorCode::InvalidState,
            format!("the connector is {}: resume it first", c.status),
        )]));
    }
    let active = repo::find::<sync_run::Entity>(s)
        .filter(sync_run::Column::ConnectorId.eq(id))
        .filter(sync_run::Column::Status.is_in(["queued", "running"]))
        .one(&s.tx)
        .await?;
    if let Some(run) = active {
        return Ok(Ok(run));
    }
    // In the engine's order, each once; a resource needs the ones before it only for its first run.
    let wanted: Vec<String> = provider::resources(&c)
        .iter()
        .filter(|r| resources.is_empty() || resources.iter().any(|w| w == *r))
        .map(|r| (*r).to_owned())
        .collect();
    let now = repo::now();
    let run = sync_run::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        connector_id: id,
        resources: json!(wanted),
        full_sync: full,
        trigger: trigger.to_owned(),
        status: "queued".into(),
        position: json!(Position::default()),
        counts: json!({}),
        problems: json!([]),
        problem_count: 0,
        error: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    sync_run::Entity::insert(sync_run::ActiveModel::from(run.clone())).exec_without_returning(&s.tx).await?;
    jobs::enqueue(s, job_for(run.id, 0)).await?;
    Ok(Ok(run))
}

fn job_for(run: Uuid, slice: u64) -> NewJob {
    let mut job = NewJob::new(SYNC, json!({ "run_id": run }));
    // One job per slice of a run: a slice queued twice (a retried commit) runs once.
    job.dedup_key = Some(format!("{SYNC}:{run}:{slice}"));
    job
}

pub async fn run_by_id(s: &Scoped, id: Uuid) -> Result<Option<sync_run::Model>, DbErr> {
    repo::find::<sync_run::Entity>(s).filter(sync_run::Column::Id.eq(id)).one(&s.tx).await
}

pub async fn cursors(s: &Scoped, connector_id: Uuid) -> Result<Vec<sync_cursor::Model>, DbErr> {
    repo::find::<sync_cursor::Entity>(s)
        .filter(sync_cursor::Column::ConnectorId.eq(connector_id))
        .order_by_asc(sync_cursor::Column::Resource)
        .all(&s.tx)
        .await
}

struct SyncJob;

#[async_trait::async_trait]
impl Handler for SyncJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let run_id = payload_id(job, "run_id")?;
        let last_attempt = job.attempts + 1 >= job.max_attempts;
        match sync_slice(state, job.tenant_id, run_id).await {
            Ok(()) => Ok(()),
            Err(SliceError::Provider(e)) => {
                if e.is_retryable() && !last_attempt {
                    let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
                    note_error(&s, run_id, &e.to_string()).await?;
                    s.commit().await?;
                }
                on_provider_error(e, last_attempt, |e| async move {
                    let paused = matches!(e, ProviderError::Unauthorized(_));
                    let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
                    fail(&s, run_id, &e.to_string(), paused).await?;
                    s.commit().await
                })
                .await
            }
            Err(SliceError::Db(e)) if last_attempt => {
                let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
                fail(&s, run_id, &format!("database: {e}"), false).await?;
                s.commit().await?;
                Err(e.into())
            }
            Err(SliceError::Db(e)) => Err(e.into()),
        }
    }

    /// A slice that will not run again (its lease expired on its last attempt, or it timed out)
    /// fails its run, unless the run goes on in a later slice this one queued before it died: a
    /// run left running would hold its connector's syncs for good (one run at a time).
    async fn dead(&self, state: &AppState, job: &crate::db::entities::job::Model, error: &str) -> Result<(), JobError> {
        let run_id = payload_id(job, "run_id")?;
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        let active = run_by_id(&s, run_id).await?.is_some_and(|r| r.status == "queued" || r.status == "running");
        if !active {
            return Ok(());
        }
        let later = repo::find::<job::Entity>(&s)
            .filter(job::Column::Kind.eq(SYNC))
            .filter(job::Column::DedupKey.starts_with(format!("{SYNC}:{run_id}:")))
            .filter(job::Column::Status.is_in(["ready", "running"]))
            .filter(job::Column::Id.ne(job.id))
            .one(&s.tx)
            .await?;
        if later.is_none() {
            fail(&s, run_id, &format!("its job failed: {error}"), false).await?;
        }
        s.commit().await?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum SliceError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The job's outcome for a provider error: retried later while retrying may help (the last
/// attempt and lasting errors call `give_up`, which records the failure).
async fn on_provider_error<F, Fut>(e: ProviderError, last_attempt: bool, give_up: F) -> Result<(), JobError>
where
    F: FnOnce(ProviderError) -> Fut,
    Fut: std::future::Future<Output = Result<(), DbErr>>,
{
    if e.is_retryable() && !last_attempt {
        return Err(match e {
            ProviderError::RateLimited { retry_after } => JobError::RetryAt(
                e.to_string(),
                Utc::now() + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::seconds(60)),
            ),
            _ => JobError::Retry(e.to_string()),
        });
    }
    give_up(e).await?;
    Ok(())
}

/// Works on run `run_id` for up to [`SLICE`], committing page by page.
async fn sync_slice(state: &AppState, tenant: Uuid, run_id: Uuid) -> Result<(), SliceError> {
    let started = Instant::now();
    let s = state.db.scoped(tenant, TxMode::Read).await?;
    let Some(run) = run_by_id(&s, run_id).await? else { return Ok(()) };
    let c = repo::find::<connector::Entity>(&s).filter(connector::Column::Id.eq(run.connector_id)).one(&s.tx).await?;
    s.commit().await?;
    if !matches!(run.status.as_str(), "queued" | "running") {
        return Ok(());
    }
    let client = match c.filter(|c| c.status == "active") {
        None => Err("the connector is paused or uninstalled"),
        Some(c) => state.providers.client(state, &c).map(|client| (c, client)).ok_or(NO_CREDENTIALS),
    };
    let (c, client) = match client {
        Ok(found) => found,
        Err(why) => {
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            fail(&s, run_id, why, false).await?;
            return Ok(s.commit().await?);
        }
    };
    if run.status == "queued" {
        let s = state.db.scoped(tenant, TxMode::Write).await?;
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::Status, "running".into())
            .col_expr(sync_run::Column::StartedAt, Some(repo::now()).into())
            .filter(sync_run::Column::TenantId.eq(s.tenant()))
            .filter(sync_run::Column::Id.eq(run_id))
            .exec(&s.tx)
            .await?;
        s.commit().await?;
    }
    let resources = resources_of(&run);
    let mut pos = position_of(&run);
    let ctx = Applier { connector: &c, full: run.full_sync };
    // Where the current resource (and provider location) reads from, read once, not per page.
    let mut since: Option<(String, Option<DateTime<Utc>>)> = None;
    let mut location_since: Option<(String, Option<DateTime<Utc>>)> = None;
    // The bulk import's file, while this slice reads it.
    let mut reading: Option<bulk::Reading> = None;
    loop {
        let Some(resource) = resources.iter().find(|r| !pos.done.contains(r)).cloned() else {
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            finish(&s, run_id, &pos).await?;
            return Ok(s.commit().await?);
        };
        if pos.resource.as_deref() != Some(resource.as_str()) {
            pos = Position { resource: Some(resource.clone()), cursor: None, location: None, newest: None, ..pos };
        }
        // Where this page reads from, looked up in one short read when the resource or the
        // provider location changes (not on every page, and never during a provider call).
        let new_resource = since.as_ref().is_none_or(|(r, _)| *r != resource);
        let new_location = resource == "inventory"
            && (pos.location.is_none() || location_since.as_ref().map(|(at, _)| at) != pos.location.as_ref());
        if new_resource || new_location {
            let r = state.db.scoped(tenant, TxMode::Read).await?;
            if new_resource {
                let from = if run.full_sync { None } else { since_of(&r, c.id, &resource).await? };
                since = Some((resource.clone(), from));
            }
            if new_location {
                if pos.location.is_none() {
                    pos.location = next_location(&r, c.id, None).await?;
                }
                if let Some(l) = &pos.location {
                    let from = match since.as_ref().and_then(|(_, t)| *t) {
                        Some(_) if linked_since_last_sync(&r, c.id, l).await? => {
                            tracing::debug!(location = %l, "a newly linked location is read whole");
                            None
                        }
                        other => other,
                    };
                    location_since = Some((l.clone(), from));
                }
            }
            r.commit().await?;
        }
        let since_resource = since.as_ref().and_then(|(_, t)| *t);
        if let Some(shop) = client.shopify()
            && resource == "catalog"
            && since_resource.is_none()
            && pos.cursor.is_none()
        {
            let cx = bulk::Slice {
                state,
                tenant,
                run: &run,
                resources: &resources,
                connector: &c,
                client: &client,
                shop,
                started,
            };
            match bulk::step(&cx, &mut pos, &mut reading).await? {
                bulk::Next::Pages => {}
                bulk::Next::Again => continue,
                bulk::Next::Stop => return Ok(()),
            }
        }
        let continue_after = started.elapsed() >= within_lease(state, SLICE);
        let step = match resource.as_str() {
            "locations" => {
                let batch = client.locations().locations(pos.cursor.as_deref()).await?;
                Step::Locations(batch)
            }
            "catalog" => Step::Catalog(client.catalog().variants(since_resource, pos.cursor.as_deref()).await?),
            "orders" => Step::Orders(client.orders()?.orders(since_resource, pos.cursor.as_deref()).await?),
            "inventory" => match pos.location.clone() {
                Some(l) => {
                    let from = location_since.as_ref().and_then(|(_, t)| *t);
                    let batch = client.inventory()?.levels(&l, from, pos.cursor.as_deref()).await?;
                    Step::Inventory(l, batch)
                }
                None => Step::Inventory(String::new(), Batch::default()),
            },
            other => return Err(ProviderError::Permanent(format!("unknown resource {other}")).into()),
        };
        let s = state.db.scoped(tenant, TxMode::Write).await?;
        let Some(current) = owned(&s, run_id, &pos).await? else { return Ok(()) };
        let mut counts = counts_of(&current);
        let mut problems = problems_of(&current);
        let mut problem_count = current.problem_count;
        let (read_problems, mut outcome, next, next_location_from) = match step {
            Step::Locations(b) => (b.problems, ctx.locations(&s, &b.records).await?, b.next, None),
            Step::Catalog(b) => (b.problems, ctx.catalog(&s, &b.records).await?, b.next, None),
            Step::Orders(b) => (b.problems, ctx.orders(&s, &b.records).await?, b.next, None),
            Step::Inventory(l, b) if l.is_empty() => (b.problems, Applied::default(), None, None),
            Step::Inventory(l, b) => (b.problems, ctx.inventory(&s, &l, &b.records).await?, b.next, Some(l)),
        };
        outcome.problems.splice(0..0, read_problems);
        pos.newest = pos.newest.max(outcome.newest);
        tally(&mut counts, &mut problems, &mut problem_count, &resource, outcome);
        pos.pages += 1;
        match (next, next_location_from) {
            (Some(cursor), location) => {
                pos.cursor = Some(cursor);
                pos.location = location;
            }
            (None, Some(l)) => {
                // This provider location is done: the next one, or the end of inventory.
                pos.cursor = None;
                pos.location = next_location(&s, c.id, Some(&l)).await?;
                if pos.location.is_none() {
                    complete_resource(&s, c.id, &resource, run_id, pos.newest).await?;
                    pos.done.push(resource.clone());
                }
            }
            (None, None) => {
                complete_resource(&s, c.id, &resource, run_id, pos.newest).await?;
                pos.done.push(resource.clone());
            }
        }
        save_run(&s, run_id, (c.id, &client), &pos, &counts, &problems, problem_count).await?;
        let more = resources.iter().any(|r| !pos.done.contains(r));
        if more && continue_after {
            jobs::enqueue(&s, job_for(run_id, pos.pages)).await?;
            s.commit().await?;
            return Ok(());
        }
        s.commit().await?;
    }
}

/// The run as stored, if this slice still owns it: its position is still `pos` (another worker
/// moves a run on when a lease expired while this one still worked; this slice then stops).
async fn owned(s: &Scoped, run_id: Uuid, pos: &Position) -> Result<Option<sync_run::Model>, DbErr> {
    let Some(current) = run_by_id(s, run_id).await? else { return Ok(None) };
    let stored = position_of(&current);
    if stored.pages != pos.pages || stored.bulk != pos.bulk || current.status != "running" {
        tracing::warn!(run = %run_id, "the run moved on elsewhere; this slice stops");
        return Ok(None);
    }
    Ok(Some(current))
}

/// Adds what a page did to `resource` to the run's counts and kept problems.
fn tally(
    counts: &mut Counts,
    problems: &mut Vec<RunProblem>,
    problem_count: &mut i64,
    resource: &str,
    outcome: Applied,
) {
    let count = counts.entry(resource.to_owned()).or_default();
    count.applied += outcome.applied;
    count.unchanged += outcome.unchanged;
    count.problems += outcome.problems.len() as u64;
    *problem_count += outcome.problems.len() as i64;
    for p in outcome.problems {
        if problems.len() < KEEP_PROBLEMS {
            problems.push(RunProblem { resource: resource.to_owned(), external_id: p.external_id, message: p.message });
        }
    }
}

/// Stores the run's checkpoint with its counts and problems, and beside it what `client` last saw
/// of the provider's bucket on `connector` (shown on `Connector.throttle`).
async fn save_run(
    s: &Scoped,
    run_id: Uuid,
    (connector, client): (Uuid, &Provider),
    pos: &Position,
    counts: &Counts,
    problems: &[RunProblem],
    problem_count: i64,
) -> Result<(), DbErr> {
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Position, json!(pos).into())
        .col_expr(sync_run::Column::Counts, json!(counts).into())
        .col_expr(sync_run::Column::Problems, json!(problems).into())
        .col_expr(sync_run::Column::ProblemCount, problem_count.into())
        .filter(sync_run::Column::TenantId.eq(s.tenant()))
        .filter(sync_run::Column::Id.eq(run_id))
        .exec(&s.tx)
        .await?;
    save_throttle(s, connector, client).await
}

enum Step {
    Locations(Batch<ExternalLocation>),
    Catalog(Batch<ExternalVariant>),
    Inventory(String, Batch<ExternalLevel>),
    Orders(Batch<ExternalOrder>),
}

/// What applying one page did.
#[derive(Debug, Default)]
struct Applied {
    applied: u64,
    unchanged: u64,
    problems: Vec<Problem>,
    newest: Option<DateTime<Utc>>,
}

/// The next provider location (in id order) after `after` that is linked to one of ours.
async fn next_location(s: &Scoped, connector: Uuid, after: Option<&str>) -> Result<Option<String>, DbErr> {
    let mut q = refs_of(s, connector, "location");
    if let Some(a) = after {
        q = q.filter(external_ref::Column::ExternalId.gt(a));
    }
    Ok(q.order_by_asc(external_ref::Column::ExternalId).one(&s.tx).await?.map(|r| r.external_id))
}

/// The links of `kind` the connector holds for any of the `open` records here, at most
/// [`POLL_ORDERS`]: what a reconciliation polls the provider for.
async fn announced(
    s: &Scoped,
    connector: Uuid,
    kind: &str,
    open: Vec<Uuid>,
) -> Result<Vec<external_ref::Model>, DbErr> {
    use sea_orm::QuerySelect as _;
    refs_of(s, connector, kind).filter(external_ref::Column::LocalId.is_in(open)).limit(POLL_ORDERS).all(&s.tx).await
}

fn refs_of(s: &Scoped, connector: Uuid, kind: &str) -> sea_orm::Select<external_ref::Entity> {
    repo::find::<external_ref::Entity>(s)
        .filter(external_ref::Column::ConnectorId.eq(connector))
        .filter(external_ref::Column::Kind.eq(kind))
}

/// Whether provider location `location` was linked after the inventory last synced completely:
/// its levels are then read whole, however old their last change (an incremental read would
/// leave out every level that did not change since the last sync).
async fn linked_since_last_sync(s: &Scoped, connector: Uuid, location: &str) -> Result<bool, DbErr> {
    let cursor = cursor_of(s, connector, "inventory").await?;
    let link =
        refs_of(s, connector, "location").filter(external_ref::Column::ExternalId.eq(location)).one(&s.tx).await?;
    Ok(match (cursor.and_then(|c| c.last_synced_at), link) {
        (Some(synced), Some(link)) => link.updated_at > synced,
        (None, _) => true,
        (_, None) => false,
    })
}

/// Where an incremental sync of `resource` starts: a little before the newest change the last
/// completed sync saw; `None` (everything) before the first.
async fn since_of(s: &Scoped, connector: Uuid, resource: &str) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(cursor_of(s, connector, resource).await?.and_then(|c| c.since).map(|t| t - OVERLAP))
}

/// The cursor of one resource of a connector.
async fn cursor_of(s: &Scoped, connector: Uuid, resource: &str) -> Result<Option<sync_cursor::Model>, DbErr> {
    repo::find::<sync_cursor::Entity>(s)
        .filter(sync_cursor::Column::ConnectorId.eq(connector))
        .filter(sync_cursor::Column::Resource.eq(resource))
        .one(&s.tx)
        .await
}

async fn complete_resource(
    s: &Scoped,
    connector: Uuid,
    resource: &str,
    run: Uuid,
    newest: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let now = repo::now();
    let existing = cursor_of(s, connector, resource).await?;
    let since = existing.as_ref().and_then(|e| e.since).max(newest);
    let row = sync_cursor::Model {
        tenant_id: s.tenant(),
        connector_id: connector,
        resource: resource.to_owned(),
        since,
        last_synced_at: Some(now),
        last_run_id: Some(run),
        last_error: None,
        error_count: existing.as_ref().map_or(0, |e| e.error_count),
        updated_at: now,
    };
    upsert_cursor(s, row).await
}

async fn upsert_cursor(s: &Scoped, row: sync_cursor::Model) -> Result<(), DbErr> {
    use sync_cursor::Column as C;
    sync_cursor::Entity::insert(sync_cursor::ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([C::TenantId, C::ConnectorId, C::Resource])
                .update_columns([C::Since, C::LastSyncedAt, C::LastRunId, C::LastError, C::ErrorCount, C::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&s.tx)
        .await?;
    Ok(())
}

/// Records a failed attempt on the run's current resource (the run goes on after the retry).
async fn note_error(s: &Scoped, run_id: Uuid, error: &str) -> Result<(), DbErr> {
    let Some(run) = run_by_id(s, run_id).await? else { return Ok(()) };
    let resource = position_of(&run).resource.unwrap_or_else(|| "locations".into());
    let existing = cursor_of(s, run.connector_id, &resource).await?;
    let row = sync_cursor::Model {
        tenant_id: s.tenant(),
        connector_id: run.connector_id,
        resource,
        since: existing.as_ref().and_then(|e| e.since),
        last_synced_at: existing.as_ref().and_then(|e| e.last_synced_at),
        last_run_id: existing.as_ref().and_then(|e| e.last_run_id),
        last_error: Some(error.chars().take(500).collect()),
        error_count: existing.as_ref().map_or(0, |e| e.error_count) + 1,
        updated_at: repo::now(),
    };
    upsert_cursor(s, row).await?;
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Error, Some(error.chars().take(500).collect::<String>()).into())
        .filter(sync_run::Column::TenantId.eq(s.tenant()))
        .filter(sync_run::Column::Id.eq(run_id))
        .exec(&s.tx)
        .await?;
    Ok(())
}

async fn finish(s: &Scoped, run_id: Uuid, pos: &Position) -> Result<(), DbErr> {
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, "completed".into())
        .col_expr(sync_run::Column::Position, json!(pos).into())
        .col_expr(sync_run::Column::Error, Option::<String>::None.into())
        .col_expr(sync_run::Column::FinishedAt, Some(repo::now()).into())
        .filter(sync_run::Column::TenantId.eq(s.tenant()))
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::Status.is_in(["queued", "running"]))
        .exec(&s.tx)
        .await?;
    tracing::info!(run = %run_id, "sync completed");
    Ok(())
}

/// Pauses a connector whose credentials the provider refused (that tenant's only), with the reason.
async fn pause_refused(s: &Scoped, connector_id: Uuid, refusal: &str) -> Result<(), DbErr> {
    let reason = format!("the provider refused the credentials: {}", refusal.chars().take(200).collect::<String>());
    if installed::set_active(s, connector_id, false, Some(reason)).await?.is_ok() {
        tracing::warn!(connector = %connector_id, "connector paused: credentials refused");
    }
    Ok(())
}

/// Fails the run with `error`; when the provider refused the credentials, pauses the connector
/// too (only this tenant's).
async fn fail(s: &Scoped, run_id: Uuid, error: &str, pause: bool) -> Result<(), DbErr> {
    note_error(s, run_id, error).await?;
    let Some(run) = run_by_id(s, run_id).await? else { return Ok(()) };
    let updated = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, "failed".into())
        .col_expr(sync_run::Column::Error, Some(error.chars().take(500).collect::<String>()).into())
        .col_expr(sync_run::Column::FinishedAt, Some(repo::now()).into())
        .filter(sync_run::Column::TenantId.eq(s.tenant()))
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::Status.is_in(["queued", "running"]))
        .exec(&s.tx)
        .await?;
    if updated.rows_affected == 0 {
        // Already finished (a retried failure): announced then.
        return Ok(());
    }
    if pause {
        pause_refused(s, run.connector_id, error).await?;
    }
    announce_failure(s, &run, error, pause).await?;
    tracing::warn!(run = %run_id, error, "sync failed");
    Ok(())
}

/// Emits `sync.failed` and raises the tenant's `SYNC_FAILED` alerts, in the failing transaction.
async fn announce_failure(s: &Scoped, run: &sync_run::Model, error: &str, paused: bool) -> Result<(), DbErr> {
    use crate::graphql::types::gid;
    let c = repo::find::<connector::Entity>(s).filter(connector::Column::Id.eq(run.connector_id)).one(&s.tx).await?;
    let (shop, provider) = c.map_or_else(Default::default, |c| (c.external_account, c.kind));
    // The payload the event catalogue fixed for version 1, and what else a consumer needs.
    let data = json!({
        "connectorId": gid("Connector", run.connector_id).0,
        "provider": provider,
        "resource": position_of(run).resource,
        "error": error,
        // A failed run is not retried by itself; the next scheduled sync runs as usual.
        "retryAt": null,
        "syncRunId": gid("SyncRun", run.id).0,
        "shop": shop,
        "connectorPaused": paused,
    });
    crate::events::emit(s, "sync.failed", data).await?;
    crate::alerts::raise(s, crate::alerts::RuleKind::SyncFailed, || crate::alerts::Raised {
        subject: format!("Sync of {shop} failed"),
        lines: vec![
            format!("The sync run {} failed: {error}", gid("SyncRun", run.id).0),
            if paused {
                "The connector is paused until an admin gives it working credentials and resumes it.".to_owned()
            } else {
                "The next sync tries again.".to_owned()
            },
        ],
        variant_id: None,
        location_id: None,
    })
    .await?;
    Ok(())
}

/// Applies pages of one connector's records.
struct Applier<'a> {
    connector: &'a connector::Model,
    full: bool,
}

/// Whether a stored version makes a record at `version` stale (the same or older).
fn stale(stored: Option<DateTime<Utc>>, version: Option<DateTime<Utc>>) -> bool {
    matches!((stored, version), (Some(s), Some(v)) if v <= s)
}

/// The products a catalog page touches: read in bulk, each brought up to date or created once.
struct PageProducts {
    /// Provider product id → ours.
    refs: HashMap<String, Uuid>,
    models: HashMap<Uuid, product::Model>,
    by_handle: HashMap<String, Uuid>,
    /// Provider products already brought up to date by an earlier variant of the page.
    fresh: HashSet<String>,
    /// New products, inserted before the page's variants.
    created: Vec<product::Model>,
}

impl PageProducts {
    async fn load(a: &Applier<'_>, s: &Scoped, records: &[ExternalVariant]) -> Result<Self, DbErr> {
        let refs: HashMap<String, Uuid> = a
            .refs(s, "product", records.iter().map(|v| v.product.id.clone()))
            .await?
            .into_iter()
            .map(|(k, r)| (k, r.local_id))
            .collect();
        let mut page = PageProducts {
            refs,
            models: HashMap::new(),
            by_handle: HashMap::new(),
            fresh: HashSet::new(),
            created: vec![],
        };
        let ids: Vec<Uuid> = page.refs.values().copied().collect();
        let handles: Vec<String> = records.iter().map(|v| v.product.handle.clone()).collect();
        for found in [
            repo::find_in::<product::Entity, _>(s, product::Column::Id, ids, "uuid", &[]).await?,
            repo::find_in::<product::Entity, _>(s, product::Column::Handle, handles, "text", &[]).await?,
        ] {
            for p in found {
                page.by_handle.insert(p.handle.clone(), p.id);
                page.models.insert(p.id, p);
            }
        }
        Ok(page)
    }

    /// Ours for provider product `p` (linked, else the one with its handle), updated to the
    /// provider's title, status and category, or created; `None` when its handle is not usable.
    async fn resolve(
        &mut self,
        a: &Applier<'_>,
        s: &Scoped,
        p: &ExternalProduct,
        now: DateTime<Utc>,
        links: &mut Vec<external_ref::Model>,
    ) -> Result<Option<Uuid>, DbErr> {
        let found = self.refs.get(&p.id).copied().or_else(|| self.by_handle.get(&p.handle).copied());
        if let Some(id) = found
            && self.fresh.contains(&p.id)
        {
            return Ok(Some(id));
        }
        let title =
            if p.title.trim().is_empty() { p.handle.clone() } else { p.title.trim().chars().take(255).collect() };
        let id = match found.and_then(|id| self.models.get_mut(&id)) {
            Some(e) => {
                if e.title != title || e.status != p.status || e.category != p.category {
                    let mut am: product::ActiveModel = e.clone().into();
                    am.title = Set(title.clone());
                    am.status = Set(p.status.clone());
                    am.category = Set(p.category.clone());
                    am.updated_at = Set(now);
                    sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
                    (e.title, e.status, e.category) = (title, p.status.clone(), p.category.clone());
                }
                e.id
            }
            None if !crate::services::catalog::is_handle(&p.handle) => return Ok(None),
            None => {
                let m = product::Model {
                    tenant_id: s.tenant(),
                    id: Uuid::now_v7(),
                    title,
                    handle: p.handle.clone(),
                    category: p.category.clone(),
                    status: p.status.clone(),
                    created_at: now,
                    updated_at: now,
                };
                self.by_handle.insert(m.handle.clone(), m.id);
                self.models.insert(m.id, m.clone());
                let id = m.id;
                self.created.push(m);
                id
            }
        };
        if self.refs.get(&p.id) != Some(&id) {
            links.push(a.row("product", &p.id, id, None, None));
            self.refs.insert(p.id.clone(), id);
        }
        self.fresh.insert(p.id.clone());
        Ok(Some(id))
    }
}

impl Applier<'_> {
    async fn refs(
        &self,
        s: &Scoped,
        kind: &str,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<HashMap<String, external_ref::Model>, DbErr> {
        let ids: Vec<String> = ids.into_iter().collect::<HashSet<_>>().into_iter().collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        use external_ref::Column as C;
        let also = [(C::ConnectorId, self.connector.id.into()), (C::Kind, kind.into())];
        let found = repo::find_in::<external_ref::Entity, _>(s, C::ExternalId, ids, "text", &also).await?;
        Ok(found.into_iter().map(|r| (r.external_id.clone(), r)).collect())
    }

    fn row(
        &self,
        kind: &str,
        external_id: &str,
        local_id: Uuid,
        version: Option<DateTime<Utc>>,
        extra: Option<Uuid>,
    ) -> external_ref::Model {
        external_ref::Model {
            tenant_id: self.connector.tenant_id,
            connector_id: self.connector.id,
            kind: kind.to_owned(),
            external_id: external_id.to_owned(),
            local_id,
            version,
            extra,
            updated_at: repo::now(),
        }
    }

    /// Whether this connector is the stock master of location `location_id` of ours: what it
    /// reads there goes on to the location's followers.
    fn masters(&self, location_id: Uuid) -> bool {
        let kind = &self.connector.kind;
        settings_of(self.connector)
            .location_mapping
            .iter()
            .any(|l| l.location_id == location_id && l.stock_master(kind))
    }

    /// Whether another active connector is the stock master of location `location_id` of ours
    /// (its mapping says so, or its kind does by default: a ShipBob warehouse): that system's
    /// levels are the truth there, and this connector's levels for it are not applied (they
    /// would undo each other).
    async fn stock_kept_elsewhere(&self, s: &Scoped, location_id: Uuid) -> Result<bool, DbErr> {
        let others = repo::find::<connector::Entity>(s)
            .filter(connector::Column::Id.ne(self.connector.id))
            .filter(connector::Column::Status.eq("active"))
            .all(&s.tx)
            .await?;
        Ok(others.iter().any(|o| {
            settings_of(o).location_mapping.iter().any(|l| l.location_id == location_id && l.stock_master(&o.kind))
        }))
    }

    /// Stores the links (provider id → ours, with the version applied), replacing older ones.
    async fn link_all(&self, s: &Scoped, rows: Vec<external_ref::Model>) -> Result<(), DbErr> {
        use external_ref::Column as C;
        // One row per key: a later row of the page wins (Postgres refuses to update a row twice).
        let mut unique: HashMap<(String, String), external_ref::Model> = HashMap::new();
        for r in rows {
            unique.insert((r.kind.clone(), r.external_id.clone()), r);
        }
        let rows: Vec<_> = unique.into_values().collect();
        for chunk in rows.chunks(500) {
            external_ref::Entity::insert_many(chunk.iter().cloned().map(external_ref::ActiveModel::from))
                .on_conflict(
                    OnConflict::columns([C::TenantId, C::ConnectorId, C::Kind, C::ExternalId])
                        .update_columns([C::LocalId, C::Version, C::Extra, C::UpdatedAt])
                        .to_owned(),
                )
                .exec_without_returning(&s.tx)
                .await?;
        }
        Ok(())
    }

    /// Links each provider location to ours: the one the installation maps it to, else one
    /// created for it (code `shopify-{id}`). Inactive unmapped locations are left out.
    async fn locations(&self, s: &Scoped, records: &[ExternalLocation]) -> Result<Applied, DbErr> {
        let mut out = Applied::default();
        let known = self.refs(s, "location", records.iter().map(|l| l.id.clone())).await?;
        let mapping = settings_of(self.connector).location_mapping;
        for l in records {
            let mapped = mapping.iter().find(|m| m.provider_location_id == l.id).map(|m| m.location_id);
            if known.get(&l.id).is_some_and(|r| Some(r.local_id) == mapped || mapped.is_none()) {
                out.unchanged += 1;
                continue;
            }
            let local = match mapped {
                Some(id) => id,
                None if !l.active => {
                    out.unchanged += 1;
                    continue;
                }
                None => {
                    let code = store_name(&self.connector.kind, &l.id, 64);
                    let existing = repo::find::<location::Entity>(s)
                        .filter(location::Column::Code.eq(code.as_str()))
                        .one(&s.tx)
                        .await?;
                    match existing {
                        Some(e) => e.id,
                        None => {
                            let now = repo::now();
                            let m = location::Model {
                                tenant_id: s.tenant(),
                                id: Uuid::now_v7(),
                                code,
                                name: l.name.chars().take(200).collect(),
                                kind: "store".into(),
                                latitude: None,
                                longitude: None,
                                created_at: now,
                                updated_at: now,
                                capacity_volume: None,
                            };
                            location::Entity::insert(location::ActiveModel::from(m.clone()))
                                .exec_without_returning(&s.tx)
                                .await?;
                            m.id
                        }
                    }
                }
            };
            self.link_all(s, vec![self.row("location", &l.id, local, None, None)]).await?;
            out.applied += 1;
        }
        Ok(out)
    }

    /// Upserts each variant and its product by the provider's ids; a variant of ours with the
    /// same SKU and no provider link yet is linked, not duplicated, and a SKU another provider
    /// variant already holds is a problem. The rows a page may touch are read in bulk and new
    /// ones inserted in bulk; only changed rows are updated one by one.
    async fn catalog(&self, s: &Scoped, records: &[ExternalVariant]) -> Result<Applied, DbErr> {
        let mut out = Applied::default();
        let variant_refs = self.refs(s, "variant", records.iter().map(|v| v.id.clone())).await?;
        let mut products = PageProducts::load(self, s, records).await?;
        let mut variants: HashMap<Uuid, variant::Model> = HashMap::new();
        let mut by_sku: HashMap<String, Uuid> = HashMap::new();
        let ids: Vec<Uuid> = variant_refs.values().map(|r| r.local_id).collect();
        let skus: Vec<String> = records.iter().map(|v| v.sku.clone()).collect();
        for found in [
            repo::find_in::<variant::Entity, _>(s, variant::Column::Id, ids, "uuid", &[]).await?,
            repo::find_in::<variant::Entity, _>(s, variant::Column::Sku, skus, "text", &[]).await?,
        ] {
            for v in found {
                by_sku.insert(v.sku.clone(), v.id);
                variants.insert(v.id, v);
            }
        }
        // Which provider variant holds each of our variants already (a SKU can be taken).
        let also = [
            (external_ref::Column::ConnectorId, self.connector.id.into()),
            (external_ref::Column::Kind, "variant".into()),
        ];
        let ours: Vec<Uuid> = variants.keys().copied().collect();
        let mut holder: HashMap<Uuid, String> =
            repo::find_in::<external_ref::Entity, _>(s, external_ref::Column::LocalId, ours, "uuid", &also)
                .await?
                .into_iter()
                .map(|r| (r.local_id, r.external_id))
                .collect();
        let now = repo::now();
        let (mut new_variants, mut links) = (Vec::new(), Vec::new());
        let mut variant_updates: Vec<variant::ActiveModel> = Vec::new();
        for v in records {
            out.newest = out.newest.max(v.updated_at);
            let known = variant_refs.get(&v.id);
            if !self.full && known.is_some_and(|r| stale(r.version, v.updated_at)) {
                out.unchanged += 1;
                continue;
            }
            if qm_domain::Sku::parse(&v.sku).is_err() {
                out.problems.push(Problem::new(
                    &v.id,
                    format!("SKU {:?} is not usable: 1 to 64 characters without spaces", v.sku),
                ));
                continue;
            }
            if qm_domain::Money::parse(v.price, &v.currency).is_err() {
                out.problems
                    .push(Problem::new(&v.id, format!("price {} {} is not a valid amount", v.price, v.currency)));
                continue;
            }
            // The variant of ours it is: linked, else the one with its SKU unless another holds it.
            let linked = known.and_then(|r| variants.get(&r.local_id)).map(|m| m.id);
            let same_sku = by_sku.get(&v.sku).copied();
            if let Some(other) = same_sku.filter(|o| Some(*o) != linked)
                && (linked.is_some() || holder.get(&other).is_some_and(|h| *h != v.id))
            {
                let message = match holder.get(&other) {
                    Some(h) => format!("SKU {} is also on {h}: SKUs must be unique to sync stock by them", v.sku),
                    None => format!("its SKU changed to {}, which another variant already has", v.sku),
                };
                out.problems.push(Problem::new(&v.id, message));
                continue;
            }
            // A 3PL links to our variant with its SKU and leaves it (and its product) as it is.
            if !provider::owns_catalog(&self.connector.kind)
                && let Some(id) = linked.or(same_sku)
            {
                holder.insert(id, v.id.clone());
                links.push(self.row("variant", &v.id, id, v.updated_at, None));
                if let Some(item) = &v.inventory_item_id {
                    links.push(self.row("inventory_item", item, id, None, None));
                }
                out.applied += 1;
                continue;
            }
            let Some(product_id) = products.resolve(self, s, &v.product, now, &mut links).await? else {
                out.problems.push(Problem::new(&v.id, format!("product handle {:?} is not usable", v.product.handle)));
                continue;
            };
            let title =
                if v.title.trim().is_empty() { v.sku.clone() } else { v.title.trim().chars().take(255).collect() };
            let variant_id = match linked.or(same_sku).and_then(|id| variants.get_mut(&id)) {
                Some(e) => {
                    if e.sku != v.sku
                        || e.title != title
                        || e.price.0 != v.price
                        || e.currency != v.currency
                        || e.product_id != product_id
                    {
                        let mut am: variant::ActiveModel = e.clone().into();
                        am.sku = Set(v.sku.clone());
                        am.title = Set(title.clone());
                        am.price = Set(Dec(v.price));
                        am.currency = Set(v.currency.clone());
                        am.product_id = Set(product_id);
                        am.updated_at = Set(now);
                        // After the page's new products exist (it may have moved to one).
                        variant_updates.push(am);
                        by_sku.remove(&e.sku);
                        by_sku.insert(v.sku.clone(), e.id);
                        (e.sku, e.title, e.price, e.currency, e.product_id) =
                            (v.sku.clone(), title, Dec(v.price), v.currency.clone(), product_id);
                    }
                    e.id
                }
                None => {
                    let m = variant::Model {
                        tenant_id: s.tenant(),
                        id: Uuid::now_v7(),
                        product_id,
                        sku: v.sku.clone(),
                        title,
                        price: Dec(v.price),
                        currency: v.currency.clone(),
                        created_at: now,
                        updated_at: now,
                        unit_volume: None,
                    };
                    by_sku.insert(m.sku.clone(), m.id);
                    variants.insert(m.id, m.clone());
                    let id = m.id;
                    new_variants.push(m);
                    id
                }
            };
            holder.insert(variant_id, v.id.clone());
            links.push(self.row("variant", &v.id, variant_id, v.updated_at, None));
            if let Some(item) = &v.inventory_item_id {
                links.push(self.row("inventory_item", item, variant_id, None, None));
            }
            out.applied += 1;
        }
        for chunk in products.created.chunks(500) {
            product::Entity::insert_many(chunk.iter().cloned().map(product::ActiveModel::from))
                .exec_without_returning(&s.tx)
                .await?;
        }
        for am in variant_updates {
            sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
        }
        for chunk in new_variants.chunks(500) {
            variant::Entity::insert_many(chunk.iter().cloned().map(variant::ActiveModel::from))
                .exec_without_returning(&s.tx)
                .await?;
        }
        self.link_all(s, links).await?;
        Ok(out)
    }

    /// Sets each level's on-hand stock to the provider's, through the ledger (a `sync` movement
    /// of the difference); a level no newer than the one applied last changes nothing. A page is
    /// a few statements plus one guarded update per changed level: the levels, variants and links
    /// are read and written in bulk, the movements appended to the chain together.
    async fn inventory(
        &self,
        s: &Scoped,
        provider_location: &str,
        records: &[ExternalLevel],
    ) -> Result<Applied, DbErr> {
        let mut out = Applied::default();
        let Some(location) = self.refs(s, "location", [provider_location.to_owned()]).await?.remove(provider_location)
        else {
            out.problems.push(Problem::new(provider_location, "the location is not linked: sync locations first"));
            return Ok(out);
        };
        let location_id = location.local_id;
        if self.stock_kept_elsewhere(s, location_id).await? {
            out.unchanged += records.len() as u64;
            return Ok(out);
        }
        let items = self.refs(s, "inventory_item", records.iter().map(|l| l.inventory_item_id.clone())).await?;
        let known = self.refs(s, "inventory_level", records.iter().map(|l| l.id.clone())).await?;
        let variant_ids: Vec<Uuid> = items.values().map(|r| r.local_id).collect::<HashSet<_>>().into_iter().collect();
        let mut levels: HashMap<Uuid, stock_level::Model> = HashMap::new();
        for chunk in variant_ids.chunks(500) {
            let at = [(stock_level::Column::LocationId, location_id.into())];
            for l in
                repo::find_in::<stock_level::Entity, _>(s, stock_level::Column::VariantId, chunk.to_vec(), "uuid", &at)
                    .await?
            {
                levels.insert(l.variant_id, l);
            }
        }
        let skus = crate::services::lookup::skus(s, &variant_ids).await?;
        let mut links = Vec::new();
        let mut changes: Vec<(Uuid, i64, &str)> = Vec::new();
        let mut missing = Vec::new();
        for l in records {
            out.newest = out.newest.max(l.updated_at);
            let Some(variant_id) = items.get(&l.inventory_item_id).map(|r| r.local_id).filter(|v| skus.contains_key(v))
            else {
                out.problems.push(Problem::new(
                    &l.id,
                    "its inventory item is not in the synced catalog (a variant without SKU?)",
                ));
                continue;
            };
            if !self.full && known.get(&l.id).is_some_and(|r| stale(r.version, l.updated_at)) {
                out.unchanged += 1;
                continue;
            }
            if !(0..=crate::services::stock::MAX_UNITS).contains(&l.on_hand) {
                out.problems.push(Problem::new(&l.id, format!("on hand {} is out of range", l.on_hand)));
                continue;
            }
            let (on_hand, reserved) = levels.get(&variant_id).map_or((0, 0), |x| (x.on_hand, x.reserved));
            if l.on_hand < reserved {
                out.problems.push(Problem::new(
                    &l.id,
                    format!("on hand {} is below the {reserved} units reserved here by open orders", l.on_hand),
                ));
                continue;
            }
            if !levels.contains_key(&variant_id) {
                missing.push(variant_id);
            }
            links.push(self.row("inventory_level", &l.id, variant_id, l.updated_at, Some(location_id)));
            let delta = l.on_hand - on_hand;
            if delta == 0 {
                out.unchanged += 1;
            } else {
                changes.push((variant_id, delta, l.id.as_str()));
            }
        }
        let now = repo::now();
        let fresh = repo::ensure_stock_levels(s, location_id, &missing).await?;
        for row in fresh {
            levels.insert(row.variant_id, row);
        }
        let mut movements = Vec::with_capacity(changes.len());
        let mut changed = Vec::with_capacity(changes.len());
        for (variant_id, delta, reference) in changes {
            // Guarded like every stock change: a reservation made since the read fails it.
            if !repo::change_stock(s, variant_id, location_id, delta, 0).await? {
                out.problems.push(Problem::new(reference, "a reservation made meanwhile leaves too little on hand"));
                continue;
            }
            movements.push(repo::NewMovement {
                variant_id,
                location_id,
                kind: "sync",
                delta_on_hand: delta,
                delta_reserved: 0,
                reason: SYNC_REASON,
                reference,
                idempotency_key: None,
            });
            changed.push((variant_id, delta));
        }
        let appended = repo::append_movements(s, &movements).await?;
        if self.masters(location_id) {
            for m in &appended {
                queue_mirror(s, m, self.connector.id).await?;
            }
        }
        for (variant_id, delta) in changed {
            let Some(level) = levels.get_mut(&variant_id) else { continue };
            level.on_hand += delta;
            level.updated_at = now;
            let sku = skus.get(&variant_id).map_or("", String::as_str);
            crate::services::stock::announce_change(s, sku, level, delta, "sync", SYNC_REASON).await?;
            out.applied += 1;
        }
        self.link_all(s, links).await?;
        Ok(out)
    }
}

/// What we call a record made for a provider's (`shopify-{number}` from a Shopify global id,
/// `netsuite-{id}`), at most `max` characters: a location's code, an order's external id.
fn store_name(kind: &str, provider_id: &str, max: usize) -> String {
    let number = provider_id.rsplit('/').next().unwrap_or(provider_id);
    format!("{kind}-{number}").chars().take(max).collect()
}

/// The reason on every `sync` movement.
const SYNC_REASON: &str = "stock level read from the connected store";

/// Queues the application of a stored webhook, in the transaction that stored it (once per
/// delivery id, however often it is delivered).
pub async fn queue_webhook(s: &Scoped, connector_id: Uuid, webhook_id: &str) -> Result<(), DbErr> {
    let mut job = NewJob::new(WEBHOOK, json!({ "connector_id": connector_id, "webhook_id": webhook_id }));
    job.dedup_key = Some(format!("{WEBHOOK}:{connector_id}:{webhook_id}"));
    jobs::enqueue(s, job).await?;
    Ok(())
}

struct WebhookJob;

#[async_trait::async_trait]
impl Handler for WebhookJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let connector_id = payload_id(job, "connector_id")?;
        let webhook_id = job.payload["webhook_id"]
            .as_str()
            .ok_or_else(|| JobError::Permanent("payload has no webhook_id".into()))?
            .to_owned();
        let last_attempt = job.attempts + 1 >= job.max_attempts;
        let tenant = job.tenant_id;
        match apply_webhook(state, tenant, connector_id, &webhook_id).await {
            Ok(()) => Ok(()),
            Err(SliceError::Db(e)) => Err(e.into()),
            Err(SliceError::Provider(e)) => {
                on_provider_error(e, last_attempt, |e| async move {
                    let s = state.db.scoped(tenant, TxMode::Write).await?;
                    mark_webhook(&s, connector_id, &webhook_id, "failed").await?;
                    if let ProviderError::Unauthorized(m) = &e {
                        pause_refused(&s, connector_id, m).await?;
                    }
                    s.commit().await?;
                    tracing::warn!(connector = %connector_id, webhook = %webhook_id, error = %e, "webhook not applied");
                    Ok(())
                })
                .await
            }
        }
    }
}

async fn mark_webhook(s: &Scoped, connector_id: Uuid, webhook_id: &str, status: &str) -> Result<(), DbErr> {
    use crate::db::entities::connector_webhook as w;
    w::Entity::update_many()
        .col_expr(w::Column::Status, status.into())
        .filter(w::Column::TenantId.eq(s.tenant()))
        .filter(w::Column::ConnectorId.eq(connector_id))
        .filter(w::Column::WebhookId.eq(webhook_id))
        .exec(&s.tx)
        .await?;
    Ok(())
}

/// What a stored webhook says changed.
enum About {
    Level {
        inventory_item_id: String,
        location_id: String,
    },
    Product {
        product_id: String,
    },
    Order {
        order_id: String,
    },
    /// A 3PL's shipments of an order sent to it.
    Shipments {
        order_id: String,
    },
    /// A batch of ShipStation shipments, named by a V1 webhook.
    ShipNotify {
        resource_url: String,
    },
    /// A return announced to a 3PL changed there (ShipBob's `return.*` topics).
    Return {
        return_id: String,
    },
    /// Inbound stock at a 3PL's warehouse changed (ShipBob's `receiving.*` topics).
    Receiving {
        id: String,
    },
    /// A carrier's scan of a parcel (ShipStation V2's tracking events).
    Tracking {
        number: String,
        code: String,
        description: String,
    },
    /// Stock moved in ways the message does not spell out: an incremental inventory sync reads it.
    Stock,
    /// Nothing this version syncs (or applied on receipt).
    Nothing,
}

impl About {
    /// What a delivery to connector `c` is about, or why it is not understood.
    fn of(c: &connector::Model, topic: &str, body: &[u8]) -> Result<About, String> {
        use qm_connectors::shopify::webhook::{Subject, subject};
        if c.kind == installed::SHIPSTATION {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let data = &v["data"];
            return Ok(match (topic, v["resource_url"].as_str(), data["tracking_number"].as_str()) {
                ("SHIP_NOTIFY" | "ITEM_SHIP_NOTIFY", Some(url), _) => {
                    About::ShipNotify { resource_url: url.to_owned() }
                }
                (t, _, Some(number)) if t.contains("TRACK") => About::Tracking {
                    number: number.to_owned(),
                    code: data["status_code"].as_str().unwrap_or_default().to_owned(),
                    description: data["status_description"]
                        .as_str()
                        .or(data["carrier_status_description"].as_str())
                        .unwrap_or("tracking update")
                        .to_owned(),
                },
                _ => About::Nothing,
            });
        }
        if c.kind == installed::SHIPBOB {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            // A receiving topic names the receiving order, read back whole.
            if topic.starts_with("receiving.") || topic.starts_with("wro.") {
                let id = v["receiving_order_id"].as_u64().or_else(|| v["id"].as_u64());
                return Ok(id.map_or(About::Nothing, |id| About::Receiving { id: id.to_string() }));
            }
            // A return topic names the return, read back whole.
            if topic.starts_with("return.") {
                let id = v["return_id"].as_u64().or_else(|| v["id"].as_u64()).or_else(|| v["return"]["id"].as_u64());
                return Ok(id.map_or(About::Nothing, |id| About::Return { return_id: id.to_string() }));
            }
            // Every order and shipment topic names the order; its shipments are read back whole.
            if !topic.starts_with("order.") {
                return Ok(About::Nothing);
            }
            let order = v["order_id"].as_u64().or_else(|| v["shipment"]["order_id"].as_u64());
            return Ok(match order {
                Some(id) => About::Shipments { order_id: id.to_string() },
                None => About::Nothing,
            });
        }
        if c.kind == installed::NETSUITE {
            let change: qm_connectors::netsuite::inbound::Change =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            return Ok(match change.kind.as_str() {
                "item" => About::Product { product_id: change.id },
                "sales_order" => About::Order { order_id: change.id },
                "inventory" | "item_fulfillment" | "item_receipt" => About::Stock,
                _ => About::Nothing,
            });
        }
        Ok(match subject(topic, body).map_err(|e| e.to_string())? {
            Subject::Level { inventory_item_id, location_id } => About::Level { inventory_item_id, location_id },
            Subject::Product { product_id } => About::Product { product_id },
            Subject::Order { order_id } => About::Order { order_id },
            Subject::Uninstalled | Subject::Other => About::Nothing,
        })
    }
}

/// Applies a stored webhook: reads the record it names back from the provider (its current
/// state: a delivery that arrives late or twice cannot roll anything back) and applies it as a
/// sync page would, version-checked.
async fn apply_webhook(state: &AppState, tenant: Uuid, connector_id: Uuid, webhook_id: &str) -> Result<(), SliceError> {
    use crate::db::entities::connector_webhook as w;
    let s = state.db.scoped(tenant, TxMode::Read).await?;
    let row = repo::find::<w::Entity>(&s)
        .filter(w::Column::ConnectorId.eq(connector_id))
        .filter(w::Column::WebhookId.eq(webhook_id))
        .one(&s.tx)
        .await?;
    let c = repo::find::<connector::Entity>(&s).filter(connector::Column::Id.eq(connector_id)).one(&s.tx).await?;
    s.commit().await?;
    let (Some(row), Some(c)) = (row, c) else { return Ok(()) };
    if row.status != "received" {
        return Ok(());
    }
    let about = match About::of(&c, &row.topic, row.body.as_bytes()) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(webhook = webhook_id, error = %e, "webhook body not understood");
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            mark_webhook(&s, connector_id, webhook_id, "ignored").await?;
            return Ok(s.commit().await?);
        }
    };
    if matches!(about, About::Nothing) || c.status != "active" {
        // Uninstalled was applied on receipt; other topics are not synced by this version; a
        // paused connector's deliveries are caught up by the next sync after it resumes.
        let s = state.db.scoped(tenant, TxMode::Write).await?;
        mark_webhook(&s, connector_id, webhook_id, "ignored").await?;
        return Ok(s.commit().await?);
    }
    let Some(client) = state.providers.client(state, &c) else {
        return Err(ProviderError::Unauthorized(NO_CREDENTIALS.into()).into());
    };
    let applier = Applier { connector: &c, full: false };
    match about {
        About::Level { inventory_item_id, location_id } => {
            let level = client.inventory()?.level(&inventory_item_id, &location_id).await?;
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            let known = applier.refs(&s, "location", [location_id.clone()]).await?.contains_key(&location_id);
            if let (Some(level), true) = (level, known) {
                let outcome = applier.inventory(&s, &location_id, &[level]).await?;
                log_problems(webhook_id, &outcome.problems);
            }
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Product { product_id } => {
            let mut cursor: Option<String> = None;
            loop {
                let batch = client.catalog().product_variants(&product_id, cursor.as_deref()).await?;
                let s = state.db.scoped(tenant, TxMode::Write).await?;
                let outcome = applier.catalog(&s, &batch.records).await?;
                log_problems(webhook_id, &batch.problems);
                log_problems(webhook_id, &outcome.problems);
                if batch.next.is_none() {
                    mark_webhook(&s, connector_id, webhook_id, "applied").await?;
                }
                s.commit().await?;
                match batch.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        About::Order { order_id } => {
            let order = client.orders()?.order(&order_id).await?;
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            if let Some(order) = order {
                let outcome = applier.orders(&s, &[order]).await?;
                log_problems(webhook_id, &outcome.problems);
            }
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Shipments { order_id } => {
            let shipments = client.shipment_source()?.shipments(&order_id).await?;
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            let outcome = orders::from_3pl(&s, &c, &order_id, &shipments).await?;
            log_problems(webhook_id, &outcome.problems);
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::ShipNotify { resource_url } => {
            let Provider::ShipStation(ss) = &client else { return Ok(()) };
            let batch = ss.v1.resource(&resource_url).await?;
            let mut by_order: std::collections::BTreeMap<String, Vec<_>> = std::collections::BTreeMap::new();
            for raw in batch["shipments"].as_array().into_iter().flatten() {
                let order = raw["orderId"].as_u64().map(|o| o.to_string());
                if let (Some(order), Some(sh)) = (order, qm_connectors::shipstation::v1::shipment_of(raw)) {
                    by_order.entry(order).or_default().push(sh);
                }
            }
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            for (order, shipments) in by_order {
                let outcome = orders::from_3pl(&s, &c, &order, &shipments).await?;
                log_problems(webhook_id, &outcome.problems);
            }
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Return { return_id } => {
            let Provider::ShipBob(sb) = &client else { return Ok(()) };
            let found = sb.return_of(&return_id).await?;
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            let changed = match &found {
                Some(ext) => orders::return_from_3pl(&s, &c, ext).await?,
                None => false,
            };
            // Restocked units show in the warehouse's levels.
            if changed && let Err(e) = request(&s, connector_id, &["inventory".to_owned()], false, "webhook").await? {
                tracing::debug!(connector = %connector_id, reason = ?e, "no inventory sync");
            }
            tracing::info!(connector = %connector_id, %return_id, changed, "3PL return applied");
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Receiving { id } => {
            let found = client.inbound_sink()?.inbound(&id).await?;
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            let received = match &found {
                Some(status) => inbound::received_at_3pl(&s, &c, status).await?,
                None => false,
            };
            tracing::info!(connector = %connector_id, receiving = %id, received, "3PL receiving order applied");
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Tracking { number, code, description } => {
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            let changed = orders::tracked(&s, &c, &number, &code, &description).await?;
            tracing::info!(connector = %connector_id, tracking = %number, code = %code, changed, "tracking update applied");
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Stock => {
            let s = state.db.scoped(tenant, TxMode::Write).await?;
            if let Err(e) = request(&s, connector_id, &["inventory".to_owned()], false, "webhook").await? {
                tracing::debug!(connector = %connector_id, reason = ?e, "no inventory sync");
            }
            mark_webhook(&s, connector_id, webhook_id, "applied").await?;
            s.commit().await?;
        }
        About::Nothing => {}
    }
    Ok(())
}

fn log_problems(webhook_id: &str, problems: &[Problem]) {
    for p in problems {
        tracing::warn!(webhook = webhook_id, record = %p.external_id, problem = %p.message, "webhook record not applied");
    }
}
