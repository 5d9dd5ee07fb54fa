//! The life of an engine's run, the same for forecasts, replenishment plans, pricing runs and
//! route plans: `queued` when asked for, `running` once its job starts, then `completed` (route
//! plans: `ready`) or `failed` with its error. One forecast, replenishment or pricing run at a time
//! per tenant ([`active`]; route plans are each asked for on their own): asking again returns the
//! run already queued or running, unless it was asked for [`STALE_AFTER_HOURS`] ago or more (its
//! jobs died), which fails it so that it cannot block every later one.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, QueryFilter, QueryOrder, Select, UpdateMany};
use uuid::Uuid;

use crate::db::entities::{TenantOwned, forecast_run, pricing_run, replenishment_run, route_plan};
use crate::db::{Db, Scoped, TxMode, repo};

/// A run still queued or running this long after it was asked for is taken as failed.
pub const STALE_AFTER_HOURS: i64 = 2;
/// The statuses of a run not yet finished.
pub const ACTIVE: [&str; 2] = ["queued", "running"];

/// A table of runs: the columns every run has.
pub trait RunTable: TenantOwned {
    const ID: Self::Column;
    const STATUS: Self::Column;
    const CREATED_AT: Self::Column;
    const STARTED_AT: Self::Column;
    const FINISHED_AT: Self::Column;
    const ERROR: Self::Column;
    fn id(run: &Self::Model) -> Uuid;
    fn status(run: &Self::Model) -> &str;
    fn created_at(run: &Self::Model) -> chrono::DateTime<chrono::Utc>;
}

macro_rules! run_table {
    ($($module:ident),*) => {$(
        impl RunTable for $module::Entity {
            const ID: $module::Column = $module::Column::Id;
            const STATUS: $module::Column = $module::Column::Status;
            const CREATED_AT: $module::Column = $module::Column::CreatedAt;
            const STARTED_AT: $module::Column = $module::Column::StartedAt;
            const FINISHED_AT: $module::Column = $module::Column::FinishedAt;
            const ERROR: $module::Column = $module::Column::Error;
            fn id(run: &$module::Model) -> Uuid {
                run.id
            }
            fn status(run: &$module::Model) -> &str {
                &run.status
            }
            fn created_at(run: &$module::Model) -> chrono::DateTime<chrono::Utc> {
                run.created_at
            }
        }
    )*};
}

run_table!(forecast_run, pricing_run, replenishment_run, route_plan);

/// The tenant's run `id`.
pub async fn by_id<E: RunTable>(s: &Scoped, id: Uuid) -> Result<Option<E::Model>, DbErr> {
    repo::find::<E>(s).filter(E::ID.eq(id)).one(&s.tx).await
}

/// The tenant's completed runs, the latest first.
pub fn completed<E: RunTable>(s: &Scoped) -> Select<E> {
    repo::find::<E>(s).filter(E::STATUS.eq("completed")).order_by_desc(E::CREATED_AT)
}

/// The tenant's latest completed run.
pub async fn latest_completed<E: RunTable>(s: &Scoped) -> Result<Option<E::Model>, DbErr> {
    completed::<E>(s).one(&s.tx).await
}

/// The run already queued or running (the latest), failing any asked for too long ago: a new one
/// is to be queued when this returns none.
pub async fn active<E: RunTable>(s: &Scoped) -> Result<Option<E::Model>, DbErr> {
    let runs = repo::find::<E>(s).filter(E::STATUS.is_in(ACTIVE)).order_by_desc(E::CREATED_AT).all(&s.tx).await?;
    let stale_before = repo::now() - chrono::Duration::hours(STALE_AFTER_HOURS);
    let mut found = None;
    for run in runs {
        if E::created_at(&run) >= stale_before {
            found = found.or(Some(run));
        } else {
            fail::<E>(s, E::id(&run), &format!("did not finish within {STALE_AFTER_HOURS} hours")).await?;
        }
    }
    Ok(found)
}

/// An update of run `id` (the tenant's).
fn update<E: RunTable>(s: &Scoped, id: Uuid) -> UpdateMany<E> {
    E::update_many().filter(E::tenant_column().eq(s.tenant())).filter(E::ID.eq(id))
}

/// The run a job was queued for, marked running (in a transaction of its own): none when it is
/// gone or has finished, and the job has nothing to do.
pub async fn begin<E: RunTable>(db: &Db, tenant: Uuid, id: Uuid) -> Result<Option<E::Model>, DbErr> {
    let s = db.scoped(tenant, TxMode::Write).await?;
    let run = by_id::<E>(&s, id).await?.filter(|r| ACTIVE.contains(&E::status(r)));
    if run.is_some() {
        start::<E>(&s, id).await?;
    }
    s.commit().await?;
    Ok(run)
}

/// Marks run `id` running, from now, unless it has finished (failed as stale meanwhile, say).
pub async fn start<E: RunTable>(s: &Scoped, id: Uuid) -> Result<(), DbErr> {
    update::<E>(s, id)
        .filter(E::STATUS.is_in(ACTIVE))
        .col_expr(E::STATUS, Expr::value("running"))
        .col_expr(E::STARTED_AT, Expr::value(repo::now()))
        .exec(&s.tx)
        .await?;
    Ok(())
}

/// Fails run `id` with `error`, unless it has finished (a run completed by an earlier attempt
/// stays completed).
pub async fn fail<E: RunTable>(s: &Scoped, id: Uuid, error: &str) -> Result<(), DbErr> {
    update::<E>(s, id)
        .filter(E::STATUS.is_in(ACTIVE))
        .col_expr(E::STATUS, Expr::value("failed"))
        .col_expr(E::ERROR, Expr::value(error))
        .col_expr(E::FINISHED_AT, Expr::value(repo::now()))
        .exec(&s.tx)
        .await?;
    Ok(())
}

/// Fails run `id` because its job was dead-lettered with `error` (`Handler::dead`), in a
/// transaction of its own.
pub async fn job_died<E: RunTable>(db: &Db, tenant: Uuid, id: Uuid, error: &str) -> Result<(), DbErr> {
    let s = db.scoped(tenant, TxMode::Write).await?;
    fail::<E>(&s, id, &format!("its job failed: {error}")).await?;
    s.commit().await
}

/// The update that completes run `id` as `status` (`completed`, or a route plan's `ready`), to
/// which the caller adds the run's figures. Only a running run completes: one failed as stale
/// meanwhile stays failed, the update changes no row, and a caller storing the run's results in
/// the same transaction drops it rather than keep results of a failed run.
pub fn finishing<E: RunTable>(s: &Scoped, id: Uuid, status: &str) -> UpdateMany<E> {
    update::<E>(s, id)
        .filter(E::STATUS.eq("running"))
        .col_expr(E::STATUS, Expr::value(status))
        .col_expr(E::FINISHED_AT, Expr::value(repo::now()))
}
