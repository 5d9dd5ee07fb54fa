//! The GraphQL API: schema, request context, errors, global IDs, pagination and limits.
//!
//! Conventions (API_CONVENTIONS.md): mutations are `<noun><Verb>(input:)` returning a payload with
//! `userErrors`; IDs are opaque `gid://quartermaster/<Type>/<uuid>`; lists are Relay connections
//! of at most 250 a page; every top-level error carries `extensions.code`.

pub mod admin;
pub mod alerts;
pub mod catalog;
pub mod connectors;
pub mod contracts;
pub mod errors;
pub mod forecast;
pub mod limits;
pub mod live;
pub mod loaders;
pub mod orders;
pub mod pagination;
pub mod pricing;
pub mod replenish;
pub mod returns;
pub mod routing;
pub mod stock;
pub mod types;
pub mod webhooks;

use async_graphql::{Context, MergedObject, Schema, SchemaBuilder};
use qm_domain::Role;

use crate::auth::{Caller, Principal};
use crate::config::Limits;
use crate::db::{Db, Scoped, TxMode};
use crate::state::AppState;
pub use errors::{ApiError, UserError, UserErrorCode};

#[derive(MergedObject, Default)]
pub struct Query(
    admin::AdminQuery,
    alerts::AlertsQuery,
    catalog::CatalogQuery,
    connectors::ConnectorsQuery,
    contracts::ContractsQuery,
    forecast::ForecastQuery,
    pricing::PricingQuery,
    replenish::ReplenishmentQuery,
    returns::ReturnsQuery,
    routing::RoutingQuery,
    stock::StockQuery,
    orders::OrdersQuery,
    webhooks::WebhooksQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    admin::AdminMutation,
    alerts::AlertsMutation,
    catalog::CatalogMutation,
    connectors::ConnectorsMutation,
    contracts::ContractsMutation,
    forecast::ForecastMutation,
    pricing::PricingMutation,
    replenish::ReplenishmentMutation,
    returns::ReturnsMutation,
    routing::RoutingMutation,
    stock::StockMutation,
    orders::OrdersMutation,
    webhooks::WebhooksMutation,
);

pub type QmSchema = Schema<Query, Mutation, live::Subscription>;

fn builder(limits: &Limits) -> SchemaBuilder<Query, Mutation, live::Subscription> {
    Schema::build(Query::default(), Mutation::default(), live::Subscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(20)
        .disable_suggestions()
        .extension(limits::AliasLimit(limits.max_aliases))
        .extension(limits::ErrorCodes)
        .register_output_type::<types::Node>()
}

/// Builds the schema with the application state as schema data.
pub fn schema(state: AppState) -> QmSchema {
    let limits = state.config.limits.clone();
    builder(&limits).data(state).finish()
}

/// The schema's SDL, as committed in `api/schema.graphql`.
pub fn sdl() -> String {
    let limits = crate::config::Config::for_tests(std::path::Path::new(".")).limits;
    builder(&limits).finish().sdl()
}

/// Per-request data put on every GraphQL request by the HTTP layer.
#[derive(Clone)]
pub struct RequestData {
    pub caller: Caller,
    pub request_id: String,
}

/// What resolvers need from the context.
pub trait CtxExt {
    fn state(&self) -> &AppState;
    fn db(&self) -> &Db {
        &self.state().db
    }
    fn caller(&self) -> Result<&Caller, ApiError>;
    /// Any authenticated tenant principal.
    fn principal(&self) -> Result<&Principal, ApiError> {
        match self.caller()? {
            Caller::Tenant(p) => Ok(p),
            Caller::Platform => Err(ApiError::Forbidden),
        }
    }
    /// A principal allowed to read the tenant's data.
    fn reader(&self) -> Result<&Principal, ApiError> {
        self.principal().and_then(|p| if p.has(Role::can_read) { Ok(p) } else { Err(ApiError::Forbidden) })
    }
    /// A principal allowed to change stock, orders and the catalog.
    fn operator(&self) -> Result<&Principal, ApiError> {
        self.principal().and_then(|p| if p.has(Role::can_operate) { Ok(p) } else { Err(ApiError::Forbidden) })
    }
    /// A supplier's key: the SUPPLIER role with the supplier it speaks for.
    fn supplier(&self) -> Result<&Principal, ApiError> {
        self.principal().and_then(|p| {
            if p.supplier_id.is_some() && p.has(|r| r == Role::Supplier) { Ok(p) } else { Err(ApiError::Forbidden) }
        })
    }
    /// A supplier's key, or an operator recording what a supplier did.
    fn supplier_or_operator(&self) -> Result<&Principal, ApiError> {
        self.supplier().or_else(|_| self.operator())
    }
    /// A principal allowed to manage users and keys.
    fn admin(&self) -> Result<&Principal, ApiError> {
        self.principal().and_then(|p| if p.has(Role::can_administer) { Ok(p) } else { Err(ApiError::Forbidden) })
    }
}

impl CtxExt for Context<'_> {
    fn state(&self) -> &AppState {
        self.data_unchecked::<AppState>()
    }
    fn caller(&self) -> Result<&Caller, ApiError> {
        self.data_opt::<RequestData>().map(|r| &r.caller).ok_or(ApiError::Unauthenticated)
    }
}

/// Opens a read transaction for `p`'s tenant.
pub async fn read_tx(ctx: &Context<'_>, p: &Principal) -> Result<Scoped, ApiError> {
    Ok(ctx.db().scoped(p.tenant_id, TxMode::Read).await?)
}

/// Backpressure: work asked for on demand (a forecast, replenishment, pricing or sync run, a route
/// plan) is refused with `BUSY` while `p`'s tenant already has `QM_TENANT_QUEUE_LIMIT` jobs waiting
/// to run. What a change causes (events, deliveries, pushes) is never refused: it is enqueued in
/// the change's own transaction.
pub async fn queue_full(ctx: &Context<'_>, p: &Principal) -> Result<Option<errors::UserError>, ApiError> {
    let limit = ctx.state().config.tenant_queue_limit;
    let s = read_tx(ctx, p).await?;
    let waiting = crate::jobs::waiting(&s, limit).await?;
    s.commit().await?;
    Ok((waiting >= limit).then(|| {
        errors::UserError::new(
            &["input"],
            errors::UserErrorCode::Busy,
            format!("{waiting} or more jobs of this tenant are waiting to run; try again when they have run"),
        )
    }))
}

/// Opens a write transaction for `p`'s tenant.
pub async fn write_tx(ctx: &Context<'_>, p: &Principal) -> Result<Scoped, ApiError> {
    Ok(ctx.db().scoped(p.tenant_id, TxMode::Write).await?)
}
