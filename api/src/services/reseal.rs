//! `quartermaster reseal`: every stored secret sealed again with the current sealing key (the first
//! of `QM_CONNECTOR_KEYS`), so an older key can leave the configuration after a rotation.
//!
//! The secrets: connector credentials, webhook endpoints' signing secrets (the current one and the
//! previous one while it still signs; a secret an earlier version stored in the clear is sealed
//! too; a previous one past its expiry, never read again, is cleared) and the tenants' contract
//! signing keys. Each tenant's rows change in one transaction, and a row is replaced only while
//! it still holds the value read, so a run beside serving processes overwrites nothing they wrote
//! meanwhile; a run stopped half way is finished by the next, and a second run has nothing to do.
//! A value that does not open (sealed with a key that is not configured, or altered) is reported
//! and left as it is: nothing is lost.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use qm_integrations::sealing::{SealError, Sealer};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::db::entities::{TenantOwned, connector, contract_key, tenant, webhook_endpoint};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::services::connectors;
use crate::services::contracts::ledger;
use crate::webhooks;

/// The kinds of stored secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ConnectorCredentials,
    WebhookSecret,
    WebhookPreviousSecret,
    ContractSigningKey,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConnectorCredentials => "connector credentials",
            Kind::WebhookSecret => "webhook endpoint secrets",
            Kind::WebhookPreviousSecret => "webhook endpoint previous secrets",
            Kind::ContractSigningKey => "contract signing keys",
        }
    }
}

/// Values of one kind: sealed again (or, in a dry run, to be), already under the current key, and
/// cleared as never read again (webhook endpoints' previous secrets past their expiry).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub resealed: usize,
    pub current: usize,
    pub cleared: usize,
}

/// A value that does not open, left as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Unopened {
    pub tenant: Uuid,
    pub kind: Kind,
    /// The connector's or the endpoint's id (the tenant's, for its signing key).
    pub id: Uuid,
    pub error: SealError,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub tenants: usize,
    pub counts: BTreeMap<Kind, Counts>,
    pub unopened: Vec<Unopened>,
}

impl Report {
    /// A line per kind, then a line per value that does not open.
    pub fn render(&self, dry_run: bool) -> String {
        let (done, cleared) = if dry_run { ("to seal again", "to clear") } else { ("sealed again", "cleared") };
        let mut out = String::new();
        for (kind, c) in &self.counts {
            let _ = write!(out, "{}: {} {done}, {} already current", kind.as_str(), c.resealed, c.current);
            if c.cleared > 0 {
                let _ = write!(out, ", {} expired and {cleared}", c.cleared);
            }
            out.push('\n');
        }
        for u in &self.unopened {
            let _ = writeln!(out, "tenant {}: {} of {} left as it is: {}", u.tenant, u.kind.as_str(), u.id, u.error);
        }
        let _ = writeln!(out, "{} tenants, {} values that do not open", self.tenants, self.unopened.len());
        out
    }

    /// Counts `a` for `kind`, and gives the value to store when there is one to store.
    fn settle(&mut self, tenant: Uuid, kind: Kind, id: Uuid, a: Again, dry_run: bool) -> Option<String> {
        let c = self.counts.entry(kind).or_default();
        match a {
            Again::Current => c.current += 1,
            Again::Sealed(new) => {
                c.resealed += 1;
                return (!dry_run).then_some(new);
            }
            Again::Unopened(error) => self.unopened.push(Unopened { tenant, kind, id, error }),
        }
        None
    }
}

/// A stored value sealed again, if it needs it.
enum Again {
    Current,
    Sealed(String),
    Unopened(SealError),
}

/// `stored` under the current key: `open` reads it (the clear value), `seal` seals that again.
/// A value already under the current key is opened too, so one that would not open (altered, or
/// copied from another row) is reported rather than counted as current.
fn again(
    sealer: &Sealer,
    stored: &str,
    open: impl FnOnce() -> Result<Vec<u8>, SealError>,
    seal: impl FnOnce(&[u8]) -> String,
) -> Again {
    match open() {
        Ok(_) if sealer.is_current(stored) => Again::Current,
        Ok(plain) => Again::Sealed(seal(&plain)),
        Err(e) => Again::Unopened(e),
    }
}

/// Seals every tenant's stored secrets again with the current key; with `dry_run`, only counts
/// what it would seal again (and finds what does not open).
pub async fn run(db: &Db, sealer: &Sealer, dry_run: bool) -> Result<Report, DbErr> {
    let tenants: Vec<Uuid> = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let kinds =
        [Kind::ConnectorCredentials, Kind::WebhookSecret, Kind::WebhookPreviousSecret, Kind::ContractSigningKey];
    let counts = kinds.into_iter().map(|k| (k, Counts::default())).collect();
    let mut report = Report { tenants: tenants.len(), counts, unopened: Vec::new() };
    for id in tenants {
        let s = db.scoped(id, TxMode::Write).await?;
        tenant_secrets(&s, sealer, dry_run, &mut report).await?;
        s.commit().await?;
    }
    Ok(report)
}

async fn tenant_secrets(s: &Scoped, sealer: &Sealer, dry_run: bool, report: &mut Report) -> Result<(), DbErr> {
    let tenant = s.tenant();

    for c in repo::find::<connector::Entity>(s).order_by_asc(connector::Column::Id).all(&s.tx).await? {
        // An uninstalled connector keeps no credentials.
        if c.credentials.is_empty() {
            continue;
        }
        let owner = connectors::credentials_owner(tenant, c.id);
        let a = again(sealer, &c.credentials, || sealer.open(&c.credentials, &owner), |p| sealer.seal(p, &owner));
        if let Some(new) = report.settle(tenant, Kind::ConnectorCredentials, c.id, a, dry_run) {
            let row = Some((connector::Column::Id, c.id));
            swap::<connector::Entity>(s, row, connector::Column::Credentials, &c.credentials, new).await?;
        }
    }

    for e in repo::find::<webhook_endpoint::Entity>(s).order_by_asc(webhook_endpoint::Column::Id).all(&s.tx).await? {
        let endpoint_again = |stored: &str| {
            again(
                sealer,
                stored,
                || webhooks::open_secret(sealer, tenant, e.id, stored).map(String::into_bytes),
                |p| webhooks::seal_secret(sealer, tenant, e.id, &String::from_utf8_lossy(p)),
            )
        };
        let row = Some((webhook_endpoint::Column::Id, e.id));
        if let Some(new) = report.settle(tenant, Kind::WebhookSecret, e.id, endpoint_again(&e.secret), dry_run) {
            swap::<webhook_endpoint::Entity>(s, row, webhook_endpoint::Column::Secret, &e.secret, new).await?;
        }
        // A previous secret signs until it expires; after that it is never read again, so it is
        // cleared rather than left under a key that is about to go.
        let Some(previous) = &e.previous_secret else { continue };
        if e.previous_secret_expires_at.is_some_and(|t| t > repo::now()) {
            let a = endpoint_again(previous);
            if let Some(new) = report.settle(tenant, Kind::WebhookPreviousSecret, e.id, a, dry_run) {
                swap::<webhook_endpoint::Entity>(s, row, webhook_endpoint::Column::PreviousSecret, previous, new)
                    .await?;
            }
        } else {
            report.counts.entry(Kind::WebhookPreviousSecret).or_default().cleared += 1;
            if !dry_run {
                webhook_endpoint::Entity::update_many()
                    .filter(webhook_endpoint::Column::TenantId.eq(tenant))
                    .filter(webhook_endpoint::Column::Id.eq(e.id))
                    .filter(webhook_endpoint::Column::PreviousSecret.eq(previous.as_str()))
                    .col_expr(webhook_endpoint::Column::PreviousSecret, Expr::value(Option::<String>::None))
                    .col_expr(
                        webhook_endpoint::Column::PreviousSecretExpiresAt,
                        Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
                    )
                    .exec(&s.tx)
                    .await?;
            }
        }
    }

    if let Some(k) = repo::find::<contract_key::Entity>(s).one(&s.tx).await? {
        let aad = ledger::key_owner(tenant);
        let a = again(sealer, &k.sealed_secret, || sealer.open(&k.sealed_secret, &aad), |p| sealer.seal(p, &aad));
        if let Some(new) = report.settle(tenant, Kind::ContractSigningKey, tenant, a, dry_run) {
            // One key per tenant: the tenant is its row.
            swap::<contract_key::Entity>(s, None, contract_key::Column::SealedSecret, &k.sealed_secret, new).await?;
        }
    }
    Ok(())
}

/// Sets `column` of the tenant's row of `E` (the one whose `row` column holds the id, when given)
/// to `new`, if it still holds `old`: a value changed since it was read is someone else's to keep.
async fn swap<E: TenantOwned>(
    s: &Scoped,
    row: Option<(E::Column, Uuid)>,
    column: E::Column,
    old: &str,
    new: String,
) -> Result<(), DbErr> {
    let mut q = E::update_many().filter(E::tenant_column().eq(s.tenant())).filter(column.eq(old));
    if let Some((id_column, id)) = row {
        q = q.filter(id_column.eq(id));
    }
    q.col_expr(column, Expr::value(new)).exec(&s.tx).await?;
    Ok(())
}
