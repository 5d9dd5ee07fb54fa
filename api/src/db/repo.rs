//! Repository helpers. Every query starts from [`find`], which is already filtered to the tenant of
//! the [`Scoped`] transaction it runs on (svix's `secure_find`).

use chrono::{DateTime, SubsecRound, Utc};
use qm_domain::ledger;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value};
use uuid::Uuid;

use super::Scoped;
use super::entities::{TenantOwned, ledger_head, stock_level, stock_movement};

/// A select over `E` limited to the transaction's tenant.
pub fn find<E: TenantOwned>(s: &Scoped) -> Select<E> {
    E::find().filter(E::tenant_column().eq(s.tenant()))
}

/// Rows of `E` (the transaction's tenant's) whose `column` is one of `values` and whose `also`
/// columns equal their values. On PostgreSQL this is one index probe per value (`unnest` and
/// `LATERAL`, the array cast to `pg_type`): with `IN (…)` the planner of a table without
/// statistics (a first import filling it, or a server without autovacuum) may read every row of
/// the tenant for each lookup, making each page slower than the last. `IN (…)` on SQLite.
pub async fn find_in<E, V>(
    s: &Scoped,
    column: E::Column,
    values: Vec<V>,
    pg_type: &str,
    also: &[(E::Column, Value)],
) -> Result<Vec<E::Model>, DbErr>
where
    E: TenantOwned,
    V: Into<Value>,
    Vec<V>: Into<Value>,
{
    use sea_orm::IdenStatic;
    if values.is_empty() {
        return Ok(Vec::new());
    }
    if !s.is_postgres() {
        let mut q = find::<E>(s).filter(column.is_in(values));
        for (c, v) in also {
            q = q.filter(c.eq(v.clone()));
        }
        return q.all(&s.tx).await;
    }
    let mut sql = format!(
        "SELECT t.* FROM unnest($1::{pg_type}[]) AS x(v) CROSS JOIN LATERAL (SELECT * FROM {} WHERE {} = $2 AND {} = x.v",
        E::default().table_name(),
        E::tenant_column().as_str(),
        column.as_str()
    );
    let mut params: Vec<Value> = vec![values.into(), s.tenant().into()];
    for (n, (c, v)) in also.iter().enumerate() {
        sql.push_str(&format!(" AND {} = ${}", c.as_str(), n + 3));
        params.push(v.clone());
    }
    // OFFSET 0 keeps the subquery a per-value probe: pulled up into a plain join, a planner
    // without statistics may put the table outside and scan its tenant's rows per value.
    sql.push_str(" OFFSET 0) t");
    E::find()
        .from_raw_sql(sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, params))
        .all(&s.tx)
        .await
}

/// Keyset pagination arguments, already validated.
#[derive(Debug, Clone)]
pub struct PageArgs<K> {
    pub after: Option<K>,
    pub before: Option<K>,
    pub limit: u64,
    /// `last:` was given: take the page from the end.
    pub backward: bool,
}

/// One page of rows and whether more lie on either side.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
}

/// Loads one page of `select` ordered by the single key column `key`.
pub async fn page<E, K>(
    s: &Scoped,
    select: Select<E>,
    key: E::Column,
    args: &PageArgs<K>,
) -> Result<Page<E::Model>, DbErr>
where
    E: EntityTrait,
    K: Into<Value> + Clone,
{
    let mut q = select;
    if let Some(a) = &args.after {
        q = q.filter(key.gt(a.clone()));
    }
    if let Some(b) = &args.before {
        q = q.filter(key.lt(b.clone()));
    }
    q = if args.backward { q.order_by_desc(key) } else { q.order_by_asc(key) };
    let mut rows = q.limit(args.limit + 1).all(&s.tx).await?;
    let more = rows.len() as u64 > args.limit;
    rows.truncate(args.limit as usize);
    Ok(if args.backward {
        rows.reverse();
        Page { rows, has_next: args.before.is_some(), has_previous: more }
    } else {
        Page { rows, has_next: more, has_previous: args.after.is_some() }
    })
}

/// Timestamps are stored with microsecond precision, as PostgreSQL keeps them.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Makes sure a stock level row exists for a variant at a location.
pub async fn ensure_stock_level(s: &Scoped, variant_id: Uuid, location_id: Uuid) -> Result<(), DbErr> {
    ensure_stock_levels(s, location_id, &[variant_id]).await.map(|_| ())
}

/// Makes sure stock level rows exist for `variants` at `location` (in bulk); returns the empty
/// rows it meant to create for those that had none (as inserted unless a concurrent writer won).
pub async fn ensure_stock_levels(
    s: &Scoped,
    location_id: Uuid,
    variants: &[Uuid],
) -> Result<Vec<stock_level::Model>, DbErr> {
    let at = now();
    let rows: Vec<stock_level::Model> = variants
        .iter()
        .map(|v| stock_level::Model {
            tenant_id: s.tenant(),
            variant_id: *v,
            location_id,
            on_hand: 0,
            reserved: 0,
            inbound: 0,
            updated_at: at,
        })
        .collect();
    for chunk in rows.chunks(500) {
        stock_level::Entity::insert_many(chunk.iter().cloned().map(stock_level::ActiveModel::from))
            .on_conflict(
                OnConflict::columns([
                    stock_level::Column::TenantId,
                    stock_level::Column::VariantId,
                    stock_level::Column::LocationId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&s.tx)
            .await?;
    }
    Ok(rows)
}

/// Applies a change to a stock level only if afterwards `on_hand - reserved >= 0` and
/// `reserved >= 0`. Returns false (and changes nothing) otherwise. One statement, so concurrent
/// callers cannot both pass the check.
pub async fn change_stock(
    s: &Scoped,
    variant_id: Uuid,
    location_id: Uuid,
    delta_on_hand: i64,
    delta_reserved: i64,
) -> Result<bool, DbErr> {
    use stock_level::Column as C;
    let res = stock_level::Entity::update_many()
        .col_expr(C::OnHand, Expr::col(C::OnHand).add(delta_on_hand))
        .col_expr(C::Reserved, Expr::col(C::Reserved).add(delta_reserved))
        .col_expr(C::UpdatedAt, Expr::value(now()))
        .filter(C::TenantId.eq(s.tenant()))
        .filter(C::VariantId.eq(variant_id))
        .filter(C::LocationId.eq(location_id))
        .filter(Expr::col(C::OnHand).sub(Expr::col(C::Reserved)).add(delta_on_hand - delta_reserved).gte(0))
        .filter(Expr::col(C::Reserved).add(delta_reserved).gte(0))
        .exec(&s.tx)
        .await?;
    Ok(res.rows_affected == 1)
}

/// A stock change to record in the ledger.
#[derive(Debug, Clone)]
pub struct NewMovement<'a> {
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub kind: &'a str,
    pub delta_on_hand: i64,
    pub delta_reserved: i64,
    pub reason: &'a str,
    pub reference: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// Creates a tenant's ledger head (genesis). Called once, when the tenant is created.
pub async fn init_ledger(s: &Scoped) -> Result<(), DbErr> {
    ledger_head::Entity::insert(ledger_head::ActiveModel {
        tenant_id: Set(s.tenant()),
        seq: Set(0),
        hash: Set(ledger::GENESIS_HASH.to_owned()),
    })
    .exec_without_returning(&s.tx)
    .await?;
    Ok(())
}

/// Appends a movement to the tenant's hash chain. The head row is locked (`FOR UPDATE` on
/// PostgreSQL; SQLite writers are serialised), so sequence numbers never collide.
pub async fn append_movement(s: &Scoped, m: NewMovement<'_>) -> Result<stock_movement::Model, DbErr> {
    let mut appended = append_movements(s, std::slice::from_ref(&m)).await?;
    appended.pop().ok_or_else(|| DbErr::Custom("no movement appended".into()))
}

/// Appends `ms` to the chain in order, in three statements however many there are (a sync page
/// brings hundreds): the head is locked and moved once.
pub async fn append_movements(s: &Scoped, ms: &[NewMovement<'_>]) -> Result<Vec<stock_movement::Model>, DbErr> {
    if ms.is_empty() {
        return Ok(Vec::new());
    }
    let head = find::<ledger_head::Entity>(s)
        .lock_exclusive()
        .one(&s.tx)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("ledger head of tenant".into()))?;
    let occurred_at = now();
    let (mut seq, mut prev) = (head.seq, head.hash);
    let mut models = Vec::with_capacity(ms.len());
    for m in ms {
        let id = Uuid::now_v7();
        seq += 1;
        let fields = ledger::MovementFields {
            tenant_id: s.tenant(),
            seq,
            id,
            variant_id: m.variant_id,
            location_id: m.location_id,
            kind: m.kind,
            delta_on_hand: m.delta_on_hand,
            delta_reserved: m.delta_reserved,
            reason: m.reason,
            reference: m.reference,
            occurred_at_micros: occurred_at.timestamp_micros(),
        };
        let hash = ledger::hash_movement(&fields, &prev);
        models.push(stock_movement::Model {
            tenant_id: s.tenant(),
            seq,
            id,
            variant_id: m.variant_id,
            location_id: m.location_id,
            kind: m.kind.to_owned(),
            delta_on_hand: m.delta_on_hand,
            delta_reserved: m.delta_reserved,
            reason: m.reason.to_owned(),
            reference: m.reference.to_owned(),
            idempotency_key: m.idempotency_key.map(str::to_owned),
            occurred_at,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    // Chunks keep each statement under SQLite's bound-parameter limit.
    for chunk in models.chunks(500) {
        stock_movement::Entity::insert_many(chunk.iter().cloned().map(stock_movement::ActiveModel::from))
            .exec_without_returning(&s.tx)
            .await?;
    }
    ledger_head::Entity::update_many()
        .col_expr(ledger_head::Column::Seq, Expr::value(seq))
        .col_expr(ledger_head::Column::Hash, Expr::value(prev))
        .filter(ledger_head::Column::TenantId.eq(s.tenant()))
        .exec(&s.tx)
        .await?;
    Ok(models)
}

/// Recomputes the tenant's whole chain, in batches, and reports the first broken link.
pub async fn verify_ledger(s: &Scoped) -> Result<ledger::Verification, DbErr> {
    let mut rows = Vec::new();
    let mut after = 0i64;
    loop {
        let batch = find::<stock_movement::Entity>(s)
            .filter(stock_movement::Column::Seq.gt(after))
            .order_by_asc(stock_movement::Column::Seq)
            .limit(5000)
            .all(&s.tx)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        rows.extend(batch);
    }
    let verification = ledger::verify(rows.iter().map(|m| ledger::ChainedMovement {
        fields: ledger::MovementFields {
            tenant_id: m.tenant_id,
            seq: m.seq,
            id: m.id,
            variant_id: m.variant_id,
            location_id: m.location_id,
            kind: &m.kind,
            delta_on_hand: m.delta_on_hand,
            delta_reserved: m.delta_reserved,
            reason: &m.reason,
            reference: &m.reference,
            occurred_at_micros: m.occurred_at.timestamp_micros(),
        },
        prev_hash: &m.prev_hash,
        hash: &m.hash,
    }));
    Ok(verification)
}
