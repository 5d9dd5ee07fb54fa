//! Creating tenants: the tenant row, its ledger head, its first owner and the owner's API key.

use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::auth::{api_key, format_roles};
use crate::db::entities::{api_key as api_key_e, tenant, user};
use crate::db::{Db, Scoped, TxMode, repo};

pub struct Created {
    pub tenant: tenant::Model,
    pub owner: user::Model,
    /// The owner's API key, in clear: shown once.
    pub owner_key: String,
}

pub async fn find_by_slug(db: &Db, slug: &str) -> Result<Option<tenant::Model>, DbErr> {
    tenant::Entity::find().filter(tenant::Column::Slug.eq(slug)).one(db.conn()).await
}

async fn find_by_slug_in(s: &Scoped, slug: &str) -> Result<Option<tenant::Model>, DbErr> {
    tenant::Entity::find().filter(tenant::Column::Slug.eq(slug)).one(&s.tx).await
}

/// Creates a tenant. `Ok(None)` when the slug is taken.
pub async fn create(
    db: &Db,
    slug: &str,
    name: &str,
    owner_email: &str,
    owner_name: &str,
) -> Result<Option<Created>, DbErr> {
    let id = Uuid::now_v7();
    let s = db.scoped(id, TxMode::Write).await?;
    let created = match create_in(&s, slug, name, owner_email, owner_name).await {
        Err(e) if crate::db::is_unique_violation(&e) => return Ok(None),
        other => other?,
    };
    if created.is_some() {
        match s.commit().await {
            Err(e) if crate::db::is_unique_violation(&e) => return Ok(None),
            other => other?,
        }
    }
    Ok(created)
}

/// Creates the tenant of `s` inside that transaction; the caller commits.
pub async fn create_in(
    s: &Scoped,
    slug: &str,
    name: &str,
    owner_email: &str,
    owner_name: &str,
) -> Result<Option<Created>, DbErr> {
    let id = s.tenant();
    let now = repo::now();
    let t = tenant::Model { id, slug: slug.to_owned(), name: name.to_owned(), created_at: now };
    if find_by_slug_in(s, slug).await?.is_some() {
        return Ok(None);
    }
    tenant::Entity::insert(tenant::ActiveModel::from(t.clone())).exec_without_returning(&s.tx).await?;
    repo::init_ledger(s).await?;
    crate::alerts::create_default_rules(s).await?;
    crate::services::forecast::schedule_nightly(s).await?;
    let owner = user::Model {
        tenant_id: id,
        id: Uuid::now_v7(),
        email: owner_email.to_lowercase(),
        name: owner_name.to_owned(),
        roles: format_roles(&[qm_domain::Role::Owner]),
        created_at: now,
    };
    user::Entity::insert(user::ActiveModel::from(owner.clone())).exec_without_returning(&s.tx).await?;
    let key = api_key::generate();
    api_key_e::Entity::insert(api_key_e::ActiveModel {
        tenant_id: Set(id),
        id: Set(Uuid::now_v7()),
        name: Set(format!("owner key of {owner_email}")),
        prefix: Set(key.prefix),
        key_hash: Set(key.hash),
        roles: Set(format_roles(&[qm_domain::Role::Owner])),
        supplier_id: Set(None),
        created_at: Set(now),
        expires_at: Set(None),
        last_used_at: Set(None),
        revoked_at: Set(None),
    })
    .exec_without_returning(&s.tx)
    .await?;
    Ok(Some(Created { tenant: t, owner, owner_key: key.secret }))
}
