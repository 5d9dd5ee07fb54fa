//! Tenancy and access: `me`, `node`, users, API keys, and the platform's `tenantCreate`.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::pagination::Window;
use super::types::{ApiKey, CredentialKind, Node, Role, Tenant, User, Viewer, parse_any_gid, parse_gid};
use super::{ApiError, CtxExt, UserError, UserErrorCode, read_tx, write_tx};
use crate::auth::{self, Caller, api_key};
use crate::db::entities::{api_key as api_key_e, tenant, user};
use crate::db::{is_unique_violation, repo};
use crate::services::lookup;

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The authenticated caller and its tenant.
    async fn me(&self, ctx: &Context<'_>) -> Result<Viewer, ApiError> {
        let p = ctx.principal()?;
        let t = tenant::Entity::find_by_id(p.tenant_id).one(ctx.db().conn()).await?.ok_or(ApiError::Unauthenticated)?;
        Ok(Viewer {
            tenant: Tenant(t),
            subject: p.subject.clone(),
            roles: p.roles.iter().copied().map(Role::from).collect(),
            credential: match p.kind {
                auth::CredentialKind::Jwt => CredentialKind::Jwt,
                auth::CredentialKind::ApiKey => CredentialKind::ApiKey,
            },
        })
    }

    /// Any object by its global ID; `null` when it does not exist in your tenant.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>, ApiError> {
        let p = ctx.principal()?;
        let Some((kind, uuid)) = parse_any_gid(&id) else { return Ok(None) };
        let s = read_tx(ctx, p).await?;
        let node = lookup::node(&s, p, kind, uuid).await?;
        s.commit().await?;
        Ok(node)
    }

    /// Several objects by global ID, in the order asked; `null` for each that does not exist.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>, ApiError> {
        let p = ctx.principal()?;
        if ids.len() > super::pagination::MAX_PAGE as usize {
            return Err(ApiError::BadUserInput("at most 250 ids at once".into()));
        }
        let s = read_tx(ctx, p).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(match parse_any_gid(&id) {
                Some((kind, uuid)) => lookup::node(&s, p, kind, uuid).await?,
                None => None,
            });
        }
        s.commit().await?;
        Ok(out)
    }

    /// People who may sign in to this tenant. Owners and admins only.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<async_graphql::connection::Connection<String, User>, ApiError> {
        let p = ctx.admin()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<user::Entity>(&s), user::Column::Id, &args).await?;
        s.commit().await?;
        Ok(super::pagination::connection(page, |m| m.id, User))
    }

    /// API keys of this tenant, including revoked ones. Owners and admins only.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<async_graphql::connection::Connection<String, ApiKey>, ApiError> {
        let p = ctx.admin()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<api_key_e::Entity>(&s), api_key_e::Column::Id, &args).await?;
        s.commit().await?;
        Ok(super::pagination::connection(page, |m| m.id, ApiKey))
    }
}

#[derive(InputObject)]
pub struct TenantCreateInput {
    /// URL-safe name: lower-case letters, digits and dashes, 2 to 40 characters.
    pub slug: String,
    pub name: String,
    pub owner_email: String,
    pub owner_name: Option<String>,
}

#[derive(SimpleObject)]
pub struct TenantCreatePayload {
    pub tenant: Option<Tenant>,
    pub owner: Option<User>,
    /// An owner API key for the new tenant, shown only this once.
    pub owner_token: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct UserInviteInput {
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<Role>,
}

#[derive(SimpleObject)]
pub struct UserInvitePayload {
    pub user: Option<User>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ApiKeyCreateInput {
    pub name: String,
    pub roles: Vec<Role>,
    /// Required with the SUPPLIER role: the supplier whose purchase orders the key may see.
    pub supplier_id: Option<ID>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct ApiKeyCreatePayload {
    pub api_key: Option<ApiKey>,
    /// The key itself, shown only this once. Send it as `Authorization: Bearer <key>`.
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ApiKeyRevokeInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct ApiKeyRevokePayload {
    pub api_key: Option<ApiKey>,
    pub user_errors: Vec<UserError>,
}

fn valid_email(e: &str) -> bool {
    let e = e.trim();
    e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
        && !e.chars().any(char::is_whitespace)
}

fn valid_slug(s: &str) -> bool {
    (2..=40).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

fn name_ok(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 200
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Creates a tenant with its first owner. Platform operator only (the `QM_PLATFORM_TOKEN` bearer).
    async fn tenant_create(
        &self,
        ctx: &Context<'_>,
        input: TenantCreateInput,
    ) -> Result<TenantCreatePayload, ApiError> {
        if !matches!(ctx.caller()?, Caller::Platform) {
            return Err(ApiError::Forbidden);
        }
        let fail =
            |e: UserError| TenantCreatePayload { tenant: None, owner: None, owner_token: None, user_errors: vec![e] };
        if !valid_slug(&input.slug) {
            return Ok(fail(UserError::invalid(
                &["input", "slug"],
                "slug must be 2 to 40 lower-case letters, digits or dashes",
            )));
        }
        if !name_ok(&input.name) {
            return Ok(fail(UserError::invalid(&["input", "name"], "name must not be blank")));
        }
        if !valid_email(&input.owner_email) {
            return Ok(fail(UserError::invalid(&["input", "ownerEmail"], "not an e-mail address")));
        }
        let created = crate::services::tenants::create(
            ctx.db(),
            &input.slug,
            input.name.trim(),
            input.owner_email.trim(),
            input.owner_name.as_deref().unwrap_or("Owner"),
        )
        .await;
        match created {
            Ok(Some(c)) => Ok(TenantCreatePayload {
                tenant: Some(Tenant(c.tenant)),
                owner: Some(User(c.owner)),
                owner_token: Some(c.owner_key),
                user_errors: vec![],
            }),
            Ok(None) => Ok(fail(UserError::new(&["input", "slug"], UserErrorCode::Taken, "slug is taken"))),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// Adds a person to the tenant with the given roles. Owners and admins only.
    async fn user_invite(&self, ctx: &Context<'_>, input: UserInviteInput) -> Result<UserInvitePayload, ApiError> {
        let p = ctx.admin()?;
        let fail = |e: UserError| UserInvitePayload { user: None, user_errors: vec![e] };
        if !valid_email(&input.email) {
            return Ok(fail(UserError::invalid(&["input", "email"], "not an e-mail address")));
        }
        if input.roles.is_empty() {
            return Ok(fail(UserError::invalid(&["input", "roles"], "give at least one role")));
        }
        let roles: Vec<qm_domain::Role> = input.roles.iter().map(|r| (*r).into()).collect();
        if roles.contains(&qm_domain::Role::Owner) && !p.roles.contains(&qm_domain::Role::Owner) {
            return Ok(fail(UserError::invalid(&["input", "roles"], "only an owner can invite an owner")));
        }
        let s = write_tx(ctx, p).await?;
        let model = user::Model {
            tenant_id: s.tenant(),
            id: Uuid::now_v7(),
            email: input.email.trim().to_lowercase(),
            name: input.name.unwrap_or_default(),
            roles: auth::format_roles(&roles),
            created_at: repo::now(),
        };
        match user::Entity::insert(user::ActiveModel::from(model.clone())).exec_without_returning(&s.tx).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Ok(fail(UserError::new(
                    &["input", "email"],
                    UserErrorCode::Taken,
                    "a user with this e-mail exists",
                )));
            }
            Err(e) => return Err(e.into()),
        }
        s.commit().await?;
        Ok(UserInvitePayload { user: Some(User(model)), user_errors: vec![] })
    }

    /// Creates an API key for a machine client. The secret is returned once. Owners and admins only.
    async fn api_key_create(
        &self,
        ctx: &Context<'_>,
        input: ApiKeyCreateInput,
    ) -> Result<ApiKeyCreatePayload, ApiError> {
        let p = ctx.admin()?;
        let fail = |e: UserError| ApiKeyCreatePayload { api_key: None, secret: None, user_errors: vec![e] };
        if !name_ok(&input.name) {
            return Ok(fail(UserError::invalid(&["input", "name"], "name must not be blank")));
        }
        if input.roles.is_empty() {
            return Ok(fail(UserError::invalid(&["input", "roles"], "give at least one role")));
        }
        let roles: Vec<qm_domain::Role> = input.roles.iter().map(|r| (*r).into()).collect();
        if roles.contains(&qm_domain::Role::Owner) && !p.roles.contains(&qm_domain::Role::Owner) {
            return Ok(fail(UserError::invalid(&["input", "roles"], "only an owner can create an owner key")));
        }
        if let Some(at) = input.expires_at
            && at <= Utc::now()
        {
            return Ok(fail(UserError::invalid(&["input", "expiresAt"], "expiry must be in the future")));
        }
        let s = write_tx(ctx, p).await?;
        let supplier_id = match &input.supplier_id {
            None => None,
            Some(id) => {
                let found = match parse_gid(id, "Supplier") {
                    Some(uuid) => lookup::supplier(&s, uuid).await?,
                    None => None,
                };
                match found {
                    Some(sup) => Some(sup.id),
                    None => return Ok(fail(UserError::not_found(&["input", "supplierId"], "supplier"))),
                }
            }
        };
        if roles.contains(&qm_domain::Role::Supplier) && supplier_id.is_none() {
            return Ok(fail(UserError::invalid(&["input", "supplierId"], "a supplier key needs a supplierId")));
        }
        let key = api_key::generate();
        let model = api_key_e::Model {
            tenant_id: s.tenant(),
            id: Uuid::now_v7(),
            name: input.name.trim().to_owned(),
            prefix: key.prefix,
            key_hash: key.hash,
            roles: auth::format_roles(&roles),
            supplier_id,
            created_at: repo::now(),
            expires_at: input.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        api_key_e::Entity::insert(api_key_e::ActiveModel::from(model.clone())).exec_without_returning(&s.tx).await?;
        s.commit().await?;
        Ok(ApiKeyCreatePayload { api_key: Some(ApiKey(model)), secret: Some(key.secret), user_errors: vec![] })
    }

    /// Revokes an API key at once; requests with it then answer 401. Owners and admins only.
    async fn api_key_revoke(
        &self,
        ctx: &Context<'_>,
        input: ApiKeyRevokeInput,
    ) -> Result<ApiKeyRevokePayload, ApiError> {
        let p = ctx.admin()?;
        let not_found = || ApiKeyRevokePayload {
            api_key: None,
            user_errors: vec![UserError::not_found(&["input", "id"], "api key")],
        };
        let Some(id) = parse_gid(&input.id, "ApiKey") else { return Ok(not_found()) };
        let s = write_tx(ctx, p).await?;
        let Some(existing) =
            repo::find::<api_key_e::Entity>(&s).filter(api_key_e::Column::Id.eq(id)).one(&s.tx).await?
        else {
            return Ok(not_found());
        };
        let model = if existing.revoked_at.is_some() {
            existing
        } else {
            let mut am: api_key_e::ActiveModel = existing.into();
            am.revoked_at = Set(Some(repo::now()));
            sea_orm::ActiveModelTrait::update(am, &s.tx).await?
        };
        s.commit().await?;
        Ok(ApiKeyRevokePayload { api_key: Some(ApiKey(model)), user_errors: vec![] })
    }
}
