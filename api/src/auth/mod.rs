//! Authentication: who is calling, for which tenant, with which roles.
//!
//! A bearer credential is one of three things: the platform operator's token (only `tenantCreate`),
//! an API key (`sk_…`, stored hashed) or a JWT with a pinned algorithm. All yield a [`Principal`].

pub mod api_key;
pub mod jwt;

use qm_domain::Role;
use uuid::Uuid;

/// Why a credential was refused. Every variant answers HTTP 401 `UNAUTHENTICATED`; the detail is logged only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed authorization header")]
    Malformed,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("unknown, revoked or expired api key")]
    UnknownApiKey,
    #[error("unknown tenant")]
    UnknownTenant,
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Jwt,
    ApiKey,
}

/// An authenticated caller inside one tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub subject: String,
    pub roles: Vec<Role>,
    /// For the supplier role: the supplier whose purchase orders it may see.
    pub supplier_id: Option<Uuid>,
    pub kind: CredentialKind,
}

impl Principal {
    pub fn has(&self, check: impl Fn(Role) -> bool) -> bool {
        self.roles.iter().any(|r| check(*r))
    }
}

/// What a request carries once its credential has been checked.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The platform operator: may only create tenants.
    Platform,
    Tenant(Principal),
}

/// Parses a comma-separated role list as stored in the database.
pub fn parse_roles(raw: &str) -> Result<Vec<Role>, qm_domain::TypeError> {
    raw.split(',').filter(|s| !s.is_empty()).map(Role::parse).collect()
}

/// Formats roles for storage.
pub fn format_roles(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

/// Constant-time equality for secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Turns an `Authorization` header into a caller, or says why not.
pub async fn authenticate(state: &crate::state::AppState, header: Option<&str>) -> Result<Caller, AuthError> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use secrecy::ExposeSecret;

    use crate::db::entities::{api_key as key_e, tenant};

    let header = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = token.trim();
    if token.is_empty() || token.len() > 8192 {
        return Err(AuthError::Malformed);
    }
    if let Some(platform) = &state.config.platform_token
        && constant_time_eq(platform.expose_secret().as_bytes(), token.as_bytes())
    {
        return Ok(Caller::Platform);
    }
    if api_key::looks_like_key(token) {
        let hash = api_key::hash(token);
        let tx = state.db.api_key_lookup(&hash).await?;
        let key = key_e::Entity::find().filter(key_e::Column::KeyHash.eq(hash.as_str())).one(&tx).await?;
        tx.commit().await?;
        let key = key.ok_or(AuthError::UnknownApiKey)?;
        let now = chrono::Utc::now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::UnknownApiKey);
        }
        let roles = parse_roles(&key.roles).map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        // Record use at most once a minute, off the request path.
        if key.last_used_at.is_none_or(|at| now - at > chrono::Duration::seconds(60)) {
            let db = state.db.clone();
            let (tenant_id, id) = (key.tenant_id, key.id);
            tokio::spawn(async move {
                if let Err(e) = touch_api_key(&db, tenant_id, id).await {
                    tracing::warn!(error = %e, "recording api key use failed");
                }
            });
        }
        return Ok(Caller::Tenant(Principal {
            tenant_id: key.tenant_id,
            subject: format!("api_key:{}", key.id),
            roles,
            supplier_id: key.supplier_id,
            kind: CredentialKind::ApiKey,
        }));
    }
    let (claims, roles) = state.jwt.verify(token)?;
    let exists = tenant::Entity::find_by_id(claims.tid).one(state.db.conn()).await?.is_some();
    if !exists {
        return Err(AuthError::UnknownTenant);
    }
    Ok(Caller::Tenant(Principal {
        tenant_id: claims.tid,
        subject: claims.sub,
        roles,
        supplier_id: claims.supplier,
        kind: CredentialKind::Jwt,
    }))
}

async fn touch_api_key(db: &crate::db::Db, tenant: Uuid, id: Uuid) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    use crate::db::entities::api_key as key_e;

    let s = db.scoped(tenant, crate::db::TxMode::Write).await?;
    key_e::Entity::update_many()
        .col_expr(key_e::Column::LastUsedAt, Expr::value(crate::db::repo::now()))
        .filter(key_e::Column::TenantId.eq(s.tenant()))
        .filter(key_e::Column::Id.eq(id))
        .exec(&s.tx)
        .await?;
    s.commit().await
}
