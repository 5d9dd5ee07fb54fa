//! Application state shared by every request.

use std::sync::Arc;

use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use qm_integrations::email::Mailer;
use qm_integrations::webhooks::Deliverer;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub jwt: Arc<JwtKeys>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub webhooks: Arc<Deliverer>,
    /// `None` when no SMTP server is configured.
    pub mailer: Option<Arc<Mailer>>,
    /// Parsed forecast models of completed runs.
    pub forecast_models: Arc<crate::services::forecast::ModelCache>,
    /// Seals and opens connector credentials.
    pub sealer: Arc<qm_integrations::sealing::Sealer>,
    /// Provider clients and the per-shop rate limits they share.
    pub providers: Arc<crate::services::sync::Providers>,
    /// Road durations and distances for route plans (OSRM or great-circle), cached per tenant.
    pub roads: Arc<crate::routing::roads::Roads>,
}
