//! The tenant's contract ledger in the database: appending events to the hash chain (the head
//! row locked, so sequence numbers never collide), signing checkpoints of its head with the
//! tenant's Ed25519 key (a job after every append), exporting it and checking it.
//!
//! The signing key is made on first use; its secret is sealed with the connector encryption key
//! (AES-GCM, bound to the tenant), its public key is published through `contractSigningKey`.

use qm_domain::contracts::ledger::{self as chain, Checkpoint, Event, Export};
use qm_domain::ledger::GENESIS_HASH;
use qm_integrations::sealing::Sealer;
use rand::RngCore;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::entities::{contract_checkpoint, contract_event, contract_key, contract_ledger_head, job};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::state::AppState;

/// Signs a checkpoint of the chain's head.
pub const CHECKPOINT: &str = "contracts.checkpoint";

pub fn register(r: Registry) -> Registry {
    r.with(CHECKPOINT, CheckpointJob)
}

/// An event to append: which contract, what happened, the details.
#[derive(Debug, Clone)]
pub struct Entry {
    pub contract_id: Uuid,
    pub kind: &'static str,
    pub data: Value,
}

impl Entry {
    pub fn new(contract_id: Uuid, kind: &'static str, data: Value) -> Self {
        Self { contract_id, kind, data }
    }
}

/// What the tenant's sealed contract signing key is bound to.
pub fn key_owner(tenant: Uuid) -> Vec<u8> {
    format!("contract-signing-key:{tenant}").into_bytes()
}

/// The tenant's public key (hex), making the key pair on first use.
pub async fn ensure_key(s: &Scoped, sealer: &Sealer) -> Result<String, DbErr> {
    Ok(key(s, sealer).await?.public_key)
}

/// The tenant's key row, made on first use.
async fn key(s: &Scoped, sealer: &Sealer) -> Result<contract_key::Model, DbErr> {
    if let Some(k) = repo::find::<contract_key::Entity>(s).one(&s.tx).await? {
        return Ok(k);
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let row = contract_key::Model {
        tenant_id: s.tenant(),
        public_key: chain::public_key(&secret),
        sealed_secret: sealer.seal(&secret, &key_owner(s.tenant())),
        created_at: repo::now(),
    };
    contract_key::Entity::insert(contract_key::ActiveModel::from(row))
        .on_conflict(OnConflict::column(contract_key::Column::TenantId).do_nothing().to_owned())
        .exec_without_returning(&s.tx)
        .await?;
    // Another transaction may have made it first: the stored one is the key.
    repo::find::<contract_key::Entity>(s)
        .one(&s.tx)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("contract signing key".into()))
}

/// The tenant's public key (hex), if it has one yet.
pub async fn public_key(s: &Scoped) -> Result<Option<String>, DbErr> {
    Ok(repo::find::<contract_key::Entity>(s).one(&s.tx).await?.map(|k| k.public_key))
}

async fn secret(s: &Scoped, sealer: &Sealer) -> Result<[u8; 32], DbErr> {
    let k = key(s, sealer).await?;
    let raw = sealer
        .open(&k.sealed_secret, &key_owner(s.tenant()))
        .map_err(|e| DbErr::Custom(format!("contract signing key cannot be opened: {e}")))?;
    raw.try_into().map_err(|_| DbErr::Custom("contract signing key is not 32 bytes".into()))
}

/// Locks the chain's head (making it at genesis on first use) and returns it.
async fn lock_head(s: &Scoped) -> Result<(i64, String), DbErr> {
    contract_ledger_head::Entity::insert(contract_ledger_head::ActiveModel::from(contract_ledger_head::Model {
        tenant_id: s.tenant(),
        seq: 0,
        hash: GENESIS_HASH.to_owned(),
    }))
    .on_conflict(OnConflict::column(contract_ledger_head::Column::TenantId).do_nothing().to_owned())
    .exec_without_returning(&s.tx)
    .await?;
    let head = repo::find::<contract_ledger_head::Entity>(s)
        .lock_exclusive()
        .one(&s.tx)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("contract ledger head".into()))?;
    Ok((head.seq, head.hash))
}

/// Takes the chain's head lock for the rest of the transaction: evaluations and supplier
/// actions of one tenant then happen one after the other.
pub async fn serialise(s: &Scoped) -> Result<(), DbErr> {
    lock_head(s).await.map(|_| ())
}

/// Appends `entries` to the chain in order, inside the caller's transaction, and queues the
/// signing of a checkpoint at the new head.
pub async fn append(s: &Scoped, entries: Vec<Entry>) -> Result<Vec<Event>, DbErr> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let (seq, hash) = lock_head(s).await?;
    let at = repo::now().timestamp_micros();
    let mut out: Vec<Event> = Vec::with_capacity(entries.len());
    for e in entries {
        let prev = out.last().map_or((seq, hash.as_str()), |l| (l.seq, l.hash.as_str()));
        let prev = if prev.0 == 0 { None } else { Some(prev) };
        let ev = Event::chained(s.tenant(), prev, (Uuid::now_v7(), e.contract_id), e.kind, at, e.data);
        out.push(ev);
    }
    for chunk in out.chunks(200) {
        contract_event::Entity::insert_many(chunk.iter().map(|e| {
            contract_event::ActiveModel::from(contract_event::Model {
                tenant_id: s.tenant(),
                seq: e.seq,
                id: e.id,
                contract_id: e.contract_id,
                kind: e.kind.clone(),
                occurred_at_micros: e.occurred_at_micros,
                data: chain::canonical_json(&e.data),
                prev_hash: e.prev_hash.clone(),
                hash: e.hash.clone(),
            })
        }))
        .exec_without_returning(&s.tx)
        .await?;
    }
    if let Some(last) = out.last() {
        contract_ledger_head::Entity::update_many()
            .col_expr(contract_ledger_head::Column::Seq, Expr::value(last.seq))
            .col_expr(contract_ledger_head::Column::Hash, Expr::value(last.hash.clone()))
            .filter(contract_ledger_head::Column::TenantId.eq(s.tenant()))
            .exec(&s.tx)
            .await?;
        let mut job = NewJob::new(CHECKPOINT, json!({}));
        job.dedup_key = Some(format!("{CHECKPOINT}:{}", last.seq));
        jobs::enqueue(s, job).await?;
    }
    Ok(out)
}

/// A stored event as the chain sees it: its data parsed back from the stored text (text that is
/// not JSON stays a string, so it cannot match its hash).
pub fn event_of(m: &contract_event::Model) -> Event {
    Event {
        seq: m.seq,
        id: m.id,
        contract_id: m.contract_id,
        kind: m.kind.clone(),
        occurred_at_micros: m.occurred_at_micros,
        data: serde_json::from_str(&m.data).unwrap_or_else(|_| Value::String(m.data.clone())),
        prev_hash: m.prev_hash.clone(),
        hash: m.hash.clone(),
        redacted: false,
    }
}

/// Every event of the tenant's chain, in order (in batches).
pub async fn events(s: &Scoped) -> Result<Vec<Event>, DbErr> {
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let batch = repo::find::<contract_event::Entity>(s)
            .filter(contract_event::Column::Seq.gt(after))
            .order_by_asc(contract_event::Column::Seq)
            .limit(5000)
            .all(&s.tx)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        out.extend(batch.iter().map(event_of));
    }
    Ok(out)
}

pub async fn checkpoints(s: &Scoped) -> Result<Vec<Checkpoint>, DbErr> {
    Ok(repo::find::<contract_checkpoint::Entity>(s)
        .order_by_asc(contract_checkpoint::Column::Seq)
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|c| Checkpoint {
            seq: c.seq,
            head_hash: c.head_hash,
            signed_at_micros: c.signed_at_micros,
            signature: c.signature,
        })
        .collect())
}

/// The whole ledger as a supplier verifies it (`qm.contract-ledger.v1`); `None` before the
/// tenant has a signing key (no contract yet).
pub async fn export(s: &Scoped) -> Result<Option<Export>, DbErr> {
    let Some(public_key) = public_key(s).await? else { return Ok(None) };
    Ok(Some(Export {
        format: chain::FORMAT.to_owned(),
        tenant_id: s.tenant(),
        public_key,
        events: events(s).await?,
        checkpoints: checkpoints(s).await?,
    }))
}

/// The ledger as one supplier may see it: its own contracts' events in full, every other event
/// redacted to its place in the chain, so the supplier verifies its events up to the signed head
/// without learning anything of other suppliers' contracts.
pub async fn export_for_supplier(s: &Scoped, supplier_id: Uuid) -> Result<Option<Export>, DbErr> {
    use crate::db::entities::contract;
    let Some(mut e) = export(s).await? else { return Ok(None) };
    let own: std::collections::HashSet<Uuid> = repo::find::<contract::Entity>(s)
        .filter(contract::Column::SupplierId.eq(supplier_id))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    for ev in &mut e.events {
        if !own.contains(&ev.contract_id) {
            *ev = ev.redact();
        }
    }
    Ok(Some(e))
}

/// Signs the chain's head unless it is signed already.
pub async fn sign_head(s: &Scoped, sealer: &Sealer) -> Result<Option<Checkpoint>, DbErr> {
    let Some(head) = repo::find::<contract_ledger_head::Entity>(s).one(&s.tx).await? else { return Ok(None) };
    if head.seq == 0 {
        return Ok(None);
    }
    let done = repo::find::<contract_checkpoint::Entity>(s)
        .filter(contract_checkpoint::Column::Seq.eq(head.seq))
        .one(&s.tx)
        .await?;
    if done.is_some() {
        return Ok(None);
    }
    let secret = secret(s, sealer).await?;
    let c = chain::sign_checkpoint(&secret, s.tenant(), head.seq, &head.hash, repo::now().timestamp_micros());
    contract_checkpoint::Entity::insert(contract_checkpoint::ActiveModel::from(contract_checkpoint::Model {
        tenant_id: s.tenant(),
        seq: c.seq,
        head_hash: c.head_hash.clone(),
        signed_at_micros: c.signed_at_micros,
        signature: c.signature.clone(),
    }))
    .on_conflict(
        OnConflict::columns([contract_checkpoint::Column::TenantId, contract_checkpoint::Column::Seq])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&s.tx)
    .await?;
    Ok(Some(c))
}

struct CheckpointJob;

#[async_trait::async_trait]
impl Handler for CheckpointJob {
    async fn run(&self, state: &AppState, job: &job::Model) -> Result<(), JobError> {
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        // The head read under its lock: an append racing this job waits, then queues its own.
        serialise(&s).await?;
        sign_head(&s, &state.sealer).await?;
        s.commit().await?;
        Ok(())
    }
}
