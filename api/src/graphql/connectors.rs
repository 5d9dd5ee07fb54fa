//! Connectors to the merchant's other systems (Shopify first). Owners and admins only; the
//! credentials given are sealed at rest and never returned.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{Location, gid, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx, write_tx};
use crate::db::entities::{connector, sync_cursor, sync_run};
use crate::db::repo;
use crate::services::connectors::{self as service, ConfigInput};
use crate::services::{lookup, sync};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectorKind {
    Shopify,
    /// A NetSuite account (SuiteTalk REST and SuiteQL, token-based authentication).
    #[graphql(name = "NETSUITE")]
    NetSuite,
    /// A ShipBob merchant (a 3PL: ships orders from its warehouses and owns their stock).
    #[graphql(name = "SHIPBOB")]
    ShipBob,
    /// A ShipStation account (V1): ships orders from its warehouses.
    #[graphql(name = "SHIPSTATION")]
    ShipStation,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectorStatus {
    Active,
    Paused,
    Uninstalled,
}

stored_names!(ConnectorStatus, "connector status" {
    Active => "active",
    Paused => "paused",
    Uninstalled => "uninstalled",
});

#[derive(Clone)]
pub struct Connector(pub connector::Model);

/// A provider location and the location of ours its stock and orders belong to.
pub struct LocationMapping {
    link: service::LocationLink,
    kind: String,
}

#[Object]
impl LocationMapping {
    /// The provider's location id (named for Shopify, the first provider; any provider's).
    async fn shopify_location_id(&self) -> &str {
        &self.link.provider_location_id
    }
    /// The provider's location id: a Shopify global id, a NetSuite internal id.
    async fn provider_location_id(&self) -> &str {
        &self.link.provider_location_id
    }
    /// Whether the provider is the location's stock master (given, or its kind's default).
    async fn stock_master(&self) -> bool {
        self.link.stock_master(&self.kind)
    }
    /// ShipStation: the V2 inventory location holding the warehouse's stock.
    async fn inventory_location_id(&self) -> Option<&str> {
        self.link.inventory_location_id.as_deref()
    }
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let found = lookup::location(&s, self.link.location_id).await?;
        s.commit().await?;
        Ok(found.map(Location))
    }
}

impl ConnectorKind {
    /// The kind of a stored connector.
    fn of(kind: &str) -> ConnectorKind {
        match kind {
            service::NETSUITE => ConnectorKind::NetSuite,
            service::SHIPBOB => ConnectorKind::ShipBob,
            service::SHIPSTATION => ConnectorKind::ShipStation,
            _ => ConnectorKind::Shopify,
        }
    }
}

#[Object]
impl Connector {
    pub async fn id(&self) -> ID {
        gid("Connector", self.0.id)
    }
    async fn kind(&self) -> ConnectorKind {
        ConnectorKind::of(&self.0.kind)
    }
    /// The provider account: the shop's domain, the NetSuite account id (`1234567_SB1`).
    async fn account(&self) -> &str {
        &self.0.external_account
    }
    /// How a NetSuite account is read and written (null for other kinds).
    async fn netsuite(&self) -> Option<NetSuiteSettings> {
        service::settings_of(&self.0).netsuite.map(NetSuiteSettings)
    }
    /// How orders go to ShipBob (null for other kinds).
    async fn shipbob(&self) -> Option<ShipBobSettings> {
        service::settings_of(&self.0)
            .shipbob
            .map(|s| ShipBobSettings { channel_id: s.channel_id, shipping_method: s.shipping_method })
    }
    /// How a ShipStation account is reached beyond V1 (null for other kinds).
    async fn shipstation(&self) -> Option<ShipStationSettings> {
        service::settings_of(&self.0).shipstation.map(|x| ShipStationSettings {
            v2: x.v2,
            webhook_key_ids: x
                .webhook_public_keys
                .and_then(|k| qm_connectors::shipstation::webhook::PublicKeys::parse(&k).ok())
                .map(|k| k.ids())
                .unwrap_or_default(),
        })
    }
    async fn status(&self) -> Result<ConnectorStatus, ApiError> {
        ConnectorStatus::stored(&self.0.status)
    }
    /// Why it is paused (given with `connectorPause`, or the provider's refusal).
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    async fn shop_domain(&self) -> &str {
        &self.0.external_account
    }
    async fn api_version(&self) -> String {
        service::settings_of(&self.0).api_version
    }
    /// Where the provider's API is reached instead of its public address; null: the public one.
    async fn base_url(&self) -> Option<String> {
        service::settings_of(&self.0).base_url
    }
    async fn bulk_import(&self) -> BulkImport {
        service::settings_of(&self.0).bulk_import.into()
    }
    async fn location_mapping(&self) -> Vec<LocationMapping> {
        service::settings_of(&self.0)
            .location_mapping
            .into_iter()
            .map(|link| LocationMapping { link, kind: self.0.kind.clone() })
            .collect()
    }
    /// Whether credentials are stored (they are never shown).
    async fn has_credentials(&self) -> bool {
        !self.0.credentials.is_empty()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Per resource: when it last synced completely, from which provider change on the next
    /// incremental sync reads, and the last error with how many there were.
    async fn sync_state(&self, ctx: &Context<'_>) -> Result<Vec<SyncResourceState>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let all = sync::cursors(&s, self.0.id).await?;
        s.commit().await?;
        Ok(all.into_iter().filter_map(SyncResourceState::of).collect())
    }
    /// The provider's rate limit as last seen by a sync (null before the first call answered):
    /// how many cost points the shop's bucket held, of how many, refilling how fast.
    async fn throttle(&self) -> Option<ConnectorThrottle> {
        sync::Throttle::stored(&self.0).map(ConnectorThrottle)
    }
    /// The newest sync run of this connector.
    async fn last_sync_run(&self, ctx: &Context<'_>) -> Result<Option<SyncRun>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let found = repo::find::<sync_run::Entity>(&s)
            .filter(sync_run::Column::ConnectorId.eq(self.0.id))
            .order_by_desc(sync_run::Column::Id)
            .one(&s.tx)
            .await?;
        s.commit().await?;
        Ok(found.map(SyncRun))
    }
}

/// What a sync reads from the provider.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncResource {
    /// The provider's locations, linked to ours (mapped, or created as `shopify-{id}`).
    Locations,
    /// Products and variants (SKU, title, price).
    Catalog,
    /// On-hand stock per variant and location.
    Inventory,
    /// Customer orders: their unshipped lines reserve stock at the location that ships them;
    /// their fulfilments become shipments with tracking.
    Orders,
}

impl SyncResource {
    fn as_str(self) -> &'static str {
        match self {
            SyncResource::Locations => "locations",
            SyncResource::Catalog => "catalog",
            SyncResource::Inventory => "inventory",
            SyncResource::Orders => "orders",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [SyncResource::Locations, SyncResource::Catalog, SyncResource::Inventory, SyncResource::Orders]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncRunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

stored_names!(SyncRunStatus, "sync run status" {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

/// A provider's cost bucket (Shopify's calculated query cost): `available` of `maximum` points
/// when observed, refilling at `restoreRate` points a second; a query waits until the bucket
/// holds its cost.
pub struct ConnectorThrottle(sync::Throttle);

#[Object]
impl ConnectorThrottle {
    /// Points the bucket held when observed.
    async fn available(&self) -> f64 {
        self.0.available
    }
    /// Points the bucket holds at most.
    async fn maximum(&self) -> f64 {
        self.0.maximum
    }
    /// Points it regains a second.
    async fn restore_rate(&self) -> f64 {
        self.0.restore_rate
    }
    async fn observed_at(&self) -> DateTime<Utc> {
        self.0.observed_at
    }
    /// Points it holds now, estimated: refilled since it was observed (other clients of the shop
    /// may have spent some).
    async fn available_now(&self) -> f64 {
        self.0.available_at(Utc::now())
    }
}

#[derive(SimpleObject)]
pub struct SyncResourceState {
    pub resource: SyncResource,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The newest provider change seen; the next incremental sync reads from shortly before it.
    pub since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub error_count: i64,
}

impl SyncResourceState {
    fn of(c: sync_cursor::Model) -> Option<Self> {
        Some(SyncResourceState {
            resource: SyncResource::parse(&c.resource)?,
            last_synced_at: c.last_synced_at,
            since: c.since,
            last_error: c.last_error,
            error_count: c.error_count,
        })
    }
}

#[derive(SimpleObject)]
pub struct SyncCount {
    pub resource: SyncResource,
    /// Records created or changed.
    pub applied: u64,
    /// Records read that were already as the provider has them.
    pub unchanged: u64,
    pub problems: u64,
}

/// A record that was not applied, and why.
#[derive(SimpleObject)]
pub struct SyncProblem {
    pub resource: SyncResource,
    /// The provider's id of the record.
    pub external_id: String,
    pub message: String,
}

pub struct SyncRun(pub sync_run::Model);

#[Object]
impl SyncRun {
    pub async fn id(&self) -> ID {
        gid("SyncRun", self.0.id)
    }
    async fn connector(&self, ctx: &Context<'_>) -> Result<Option<Connector>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let found = repo::find::<connector::Entity>(&s)
            .filter(connector::Column::Id.eq(self.0.connector_id))
            .one(&s.tx)
            .await?;
        s.commit().await?;
        Ok(found.map(Connector))
    }
    async fn resources(&self) -> Vec<SyncResource> {
        sync::resources_of(&self.0).iter().filter_map(|r| SyncResource::parse(r)).collect()
    }
    /// Everything was read (true), or only what changed since the last sync.
    async fn full(&self) -> bool {
        self.0.full_sync
    }
    /// `manual`, `schedule` or `webhook`.
    async fn trigger(&self) -> &str {
        &self.0.trigger
    }
    async fn status(&self) -> Result<SyncRunStatus, ApiError> {
        SyncRunStatus::stored(&self.0.status)
    }
    /// Per resource, what the run applied so far.
    async fn counts(&self) -> Vec<SyncCount> {
        sync::counts_of(&self.0)
            .into_iter()
            .filter_map(|(r, c)| {
                Some(SyncCount {
                    resource: SyncResource::parse(&r)?,
                    applied: c.applied,
                    unchanged: c.unchanged,
                    problems: c.problems,
                })
            })
            .collect()
    }
    /// The first 100 problems (all are counted in `problemCount`).
    async fn problems(&self) -> Vec<SyncProblem> {
        sync::problems_of(&self.0)
            .into_iter()
            .filter_map(|p| {
                Some(SyncProblem {
                    resource: SyncResource::parse(&p.resource)?,
                    external_id: p.external_id,
                    message: p.message,
                })
            })
            .collect()
    }
    async fn problem_count(&self) -> i64 {
        self.0.problem_count
    }
    /// Pages committed: a run that is stopped goes on from the last one.
    async fn pages(&self) -> u64 {
        sync::position_of(&self.0).pages
    }
    /// Why the run failed, or the last error it is retrying after.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(InputObject)]
pub struct SyncRunInput {
    pub connector_id: ID,
    /// What to sync; all resources when absent or empty.
    #[graphql(default)]
    pub resources: Vec<SyncResource>,
    /// Read everything instead of only what changed since the last sync (a reconciliation).
    #[graphql(default)]
    pub full: bool,
}

#[derive(SimpleObject)]
pub struct SyncRunPayload {
    /// The run queued, or the one already queued or running for the connector.
    pub sync_run: Option<SyncRun>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct LocationMappingInput {
    /// `gid://shopify/Location/…`
    pub shopify_location_id: String,
    pub location_id: ID,
    /// Whether this provider is the location's stock master: its levels are the truth there
    /// (another connector's levels for the location are not applied) and stock changed here is
    /// not sent to it. At most one connector is a location's master. Default: no.
    pub stock_master: Option<bool>,
}

#[derive(InputObject)]
pub struct ConnectorConfigInput {
    /// `example-shop.myshopify.com`
    pub shop_domain: String,
    /// The Admin API access token (`shpat_…`); sealed at rest, never returned.
    pub access_token: String,
    /// The Admin API version to pin, e.g. `2026-01`.
    pub api_version: String,
    /// The app's client secret that signs Shopify's webhooks; sealed at rest, never returned.
    pub webhook_secret: String,
    #[graphql(default)]
    pub location_mapping: Vec<LocationMappingInput>,
    /// Reach the API here instead of the shop's public address (a mock, a staging proxy).
    pub base_url: Option<String>,
    /// How a full read of the catalog and stock goes; `AUTO` when omitted.
    pub bulk_import: Option<BulkImport>,
}

/// How a full read of the catalog and stock (the first sync, or one with `full: true`) goes.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum BulkImport {
    /// Through a bulk operation when the shop has 1,000 variants or more, else page by page.
    Auto,
    /// Always through a bulk operation: Shopify writes every variant with its stock levels to a
    /// file that is read as a stream; it does not draw on the rate budget.
    Always,
    /// Always page by page.
    Never,
}

impl From<BulkImport> for service::BulkImport {
    fn from(b: BulkImport) -> Self {
        match b {
            BulkImport::Auto => service::BulkImport::Auto,
            BulkImport::Always => service::BulkImport::Always,
            BulkImport::Never => service::BulkImport::Never,
        }
    }
}

impl From<service::BulkImport> for BulkImport {
    fn from(b: service::BulkImport) -> Self {
        match b {
            service::BulkImport::Auto => BulkImport::Auto,
            service::BulkImport::Always => BulkImport::Always,
            service::BulkImport::Never => BulkImport::Never,
        }
    }
}

#[derive(InputObject)]
pub struct ConnectorInstallInput {
    pub kind: ConnectorKind,
    /// A Shopify store's configuration (kind `SHOPIFY`).
    pub config: Option<ConnectorConfigInput>,
    /// A NetSuite account's configuration (kind `NETSUITE`).
    pub netsuite: Option<NetSuiteConfigInput>,
    /// A ShipBob merchant's configuration (kind `SHIPBOB`).
    pub shipbob: Option<ShipBobConfigInput>,
    /// A ShipStation account's configuration (kind `SHIPSTATION`).
    pub shipstation: Option<ShipStationConfigInput>,
}

#[derive(InputObject)]
pub struct ShipStationLocationMappingInput {
    /// The ShipStation warehouse's id (`GET /warehouses`).
    pub shipstation_warehouse_id: String,
    pub location_id: ID,
    /// The V2 inventory location (`GET /v2/inventory_locations`) that holds the warehouse's
    /// stock: its levels are read, and stock changed here is set there (needs `v2ApiKey`).
    pub inventory_location_id: Option<String>,
    /// Whether this provider is the location's stock master: its levels are the truth there
    /// (another connector's levels for the location are not applied) and stock changed here is
    /// not sent to it. At most one connector is a location's master. Default: no.
    pub stock_master: Option<bool>,
}

#[derive(InputObject)]
pub struct ShipStationConfigInput {
    /// The V1 API key and secret (ShipStation: Settings > Account > API Settings); sealed, never
    /// returned.
    pub api_key: String,
    pub api_secret: String,
    /// A random token of 24 characters or more: the V1 webhooks' target URL is
    /// `…/webhooks/shipstation/{connector id}?token={webhookToken}` (V1 webhooks are unsigned);
    /// sealed, never returned.
    pub webhook_token: String,
    /// Which of our locations each ShipStation warehouse is: orders allocated there are sent to
    /// ShipStation.
    #[graphql(default)]
    pub location_mapping: Vec<ShipStationLocationMappingInput>,
    /// The V2 API key (a key of its own: ShipStation API Settings, V2): stock of the warehouses
    /// given an `inventoryLocationId` is read and set through V2. Sealed, never returned.
    pub v2_api_key: Option<String>,
    /// The public keys V2 webhooks are verified with: ShipStation's published JWKS document
    /// (`{"keys": [...]}`), or one RSA public key in PEM. Without them V2 webhooks are refused;
    /// their target URL is `…/webhooks/shipstation/{connector id}`.
    pub webhook_public_keys: Option<String>,
    /// Reach both APIs here instead of ShipStation's (a mock).
    pub base_url: Option<String>,
}

#[derive(InputObject)]
pub struct ShipBobLocationMappingInput {
    /// The ShipBob fulfilment centre's id (`GET /location`).
    pub shipbob_location_id: String,
    pub location_id: ID,
    /// Whether this provider is the location's stock master: its levels are the truth there
    /// (another connector's levels for the location are not applied) and stock changed here is
    /// not sent to it. At most one connector is a location's master. Default: yes (ShipBob owns its warehouses' stock).
    pub stock_master: Option<bool>,
}

#[derive(InputObject)]
pub struct ShipBobConfigInput {
    /// A personal access token (ShipBob: Integrations > API Tokens); sealed at rest, never returned.
    pub access_token: String,
    /// The webhook subscription's `whsec_…` secret; sealed, never returned.
    pub webhook_secret: String,
    /// The channel orders are sent in (`GET /channel`).
    pub channel_id: String,
    #[graphql(default_with = "String::from(\"Standard\")")]
    pub shipping_method: String,
    /// Which of our locations each fulfilment centre is: orders allocated there are sent to
    /// ShipBob, and its stock there is ShipBob's.
    #[graphql(default)]
    pub location_mapping: Vec<ShipBobLocationMappingInput>,
    /// Reach the API here instead of ShipBob's (the sandbox, a mock).
    pub base_url: Option<String>,
}

/// How a ShipStation account is reached beyond V1.
#[derive(SimpleObject)]
pub struct ShipStationSettings {
    /// Whether a V2 API key is stored (stock read and set through V2).
    pub v2: bool,
    /// The ids of the keys V2 webhooks are verified with (`*` for a PEM key, which verifies any
    /// id); empty: V2 webhooks are refused.
    pub webhook_key_ids: Vec<String>,
}

/// How orders go to ShipBob.
#[derive(SimpleObject)]
pub struct ShipBobSettings {
    pub channel_id: String,
    pub shipping_method: String,
}

/// The integration user's date format in NetSuite (Home > Set Preferences > Date Format), which
/// SuiteQL writes dates in.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "service::DateStyle")]
pub enum NetSuiteDateStyle {
    /// `1/15/2026`
    MonthFirst,
    /// `15/1/2026`
    DayFirst,
}

#[derive(InputObject)]
pub struct NetSuiteLocationMappingInput {
    /// The NetSuite location's internal id.
    pub netsuite_location_id: String,
    pub location_id: ID,
    /// Whether this provider is the location's stock master: its levels are the truth there
    /// (another connector's levels for the location are not applied) and stock changed here is
    /// not sent to it. At most one connector is a location's master. Default: no.
    pub stock_master: Option<bool>,
}

#[derive(InputObject)]
pub struct NetSuiteConfigInput {
    /// `1234567`, or `1234567_SB1` for a sandbox (either spelling).
    pub account_id: String,
    /// Token-based authentication: the integration record's consumer key and secret; sealed at
    /// rest, never returned. Give these four, or `clientCredentials`.
    pub consumer_key: Option<String>,
    pub consumer_secret: Option<String>,
    /// Token-based authentication: the access token's id and secret; sealed, never returned.
    pub token_id: Option<String>,
    pub token_secret: Option<String>,
    /// OAuth 2.0 client credentials (machine to machine), instead of token-based authentication.
    pub client_credentials: Option<NetSuiteClientCredentialsInput>,
    /// The secret the User Event script signs its messages with; sealed, never returned.
    pub webhook_secret: String,
    /// The account's time zone (IANA, e.g. `America/Los_Angeles`).
    pub time_zone: String,
    #[graphql(default_with = "NetSuiteDateStyle::MonthFirst")]
    pub date_style: NetSuiteDateStyle,
    /// The account's base currency, ISO 4217.
    pub currency: String,
    /// Requests in flight to the account at most; the account's concurrency limit is shared with
    /// its other integrations.
    #[graphql(default = 2)]
    pub concurrency: i32,
    /// The account stock adjustments post to; without it stock changed here is not sent.
    pub adjustment_account_id: Option<String>,
    /// The subsidiary of those adjustments (OneWorld accounts).
    pub subsidiary_id: Option<String>,
    /// The customer (internal id) orders are entered for when sent to NetSuite: orders made here
    /// and open orders placed in connected stores. Without it no order is sent.
    pub order_customer_id: Option<String>,
    #[graphql(default)]
    pub location_mapping: Vec<NetSuiteLocationMappingInput>,
    /// Reach the API here instead of the account's public address (a mock, a proxy).
    pub base_url: Option<String>,
}

/// NetSuite's OAuth 2.0 client credentials (Setup > Integration > OAuth 2.0 Client Credentials
/// (M2M) Setup): sealed at rest, never returned.
#[derive(InputObject)]
pub struct NetSuiteClientCredentialsInput {
    /// The integration record's client id.
    pub client_id: String,
    /// The id NetSuite gave the certificate mapped to the integration and its role.
    pub certificate_id: String,
    /// The certificate's private key, PEM: RSA (assertions signed PS256) or EC P-256 (ES256).
    pub private_key: String,
}

/// How a NetSuite connector authenticates.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "service::NetSuiteAuthentication")]
pub enum NetSuiteAuthentication {
    /// Token-based authentication (OAuth 1.0a, HMAC-SHA256).
    TokenBased,
    /// OAuth 2.0 client credentials: a bearer token taken with a signed assertion.
    ClientCredentials,
}

/// How a NetSuite account is read and written.
pub struct NetSuiteSettings(service::NetSuiteSettings);

#[Object]
impl NetSuiteSettings {
    async fn authentication(&self) -> NetSuiteAuthentication {
        self.0.authentication.into()
    }
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    async fn date_style(&self) -> NetSuiteDateStyle {
        self.0.date_style.into()
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn concurrency(&self) -> i32 {
        i32::try_from(self.0.concurrency).unwrap_or(i32::MAX)
    }
    async fn adjustment_account_id(&self) -> Option<&str> {
        self.0.adjustment_account_id.as_deref()
    }
    async fn subsidiary_id(&self) -> Option<&str> {
        self.0.subsidiary_id.as_deref()
    }
    async fn order_customer_id(&self) -> Option<&str> {
        self.0.order_customer_id.as_deref()
    }
}

#[derive(InputObject)]
pub struct ConnectorConfigUpdateInput {
    /// Must be the connector's own shop when given.
    pub shop_domain: Option<String>,
    pub access_token: Option<String>,
    pub api_version: Option<String>,
    pub webhook_secret: Option<String>,
    /// Replaces the whole mapping when given.
    pub location_mapping: Option<Vec<LocationMappingInput>>,
    /// `null` removes the override; absent leaves it.
    pub base_url: MaybeUndefined<String>,
    pub bulk_import: Option<BulkImport>,
}

#[derive(InputObject)]
pub struct ConnectorUpdateInput {
    pub id: ID,
    /// A Shopify connector's changes (what is left out stays).
    pub config: Option<ConnectorConfigUpdateInput>,
    /// A NetSuite connector's whole configuration, as at install (secrets included: they are
    /// never shown, so none is kept by leaving it out); the account does not change.
    pub netsuite: Option<NetSuiteConfigInput>,
    /// A ShipBob connector's whole configuration, as at install; the channel does not change.
    pub shipbob: Option<ShipBobConfigInput>,
    /// A ShipStation connector's whole configuration, as at install; the API key does not change.
    pub shipstation: Option<ShipStationConfigInput>,
}

#[derive(InputObject)]
pub struct ConnectorPauseInput {
    pub id: ID,
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct ConnectorIdInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct ConnectorPayload {
    pub connector: Option<Connector>,
    pub user_errors: Vec<UserError>,
}

fn mapping(m: Vec<LocationMappingInput>) -> Vec<service::Mapped> {
    m.into_iter().map(|l| mapped(l.shopify_location_id, &l.location_id, l.stock_master)).collect()
}

/// A mapping entry of any provider.
fn mapped(provider_location_id: String, location_id: &ID, stock_master: Option<bool>) -> service::Mapped {
    service::Mapped {
        provider_location_id,
        location_id: parse_gid(location_id, "Location"),
        stock_master,
        inventory_location_id: None,
    }
}

/// The configuration of a NetSuite, ShipBob or ShipStation connector as given (for `kind`, with
/// only its own input), or the problems.
enum ProviderInput {
    NetSuite(service::NetSuiteInput),
    ShipBob(service::ShipBobInput),
    ShipStation(service::ShipStationInput),
}

fn provider_input(
    kind: ConnectorKind,
    config: bool,
    netsuite: Option<NetSuiteConfigInput>,
    shipbob: Option<ShipBobConfigInput>,
    shipstation: Option<ShipStationConfigInput>,
) -> Result<ProviderInput, Vec<UserError>> {
    Ok(match (kind, config, netsuite, shipbob, shipstation) {
        (ConnectorKind::NetSuite, false, Some(n), None, None) => {
            let tba = [n.consumer_key, n.consumer_secret, n.token_id, n.token_secret];
            let auth = match (tba, n.client_credentials) {
                ([Some(consumer_key), Some(consumer_secret), Some(token_id), Some(token_secret)], None) => {
                    service::NetSuiteAuth::Tba(service::TbaSecrets {
                        consumer_key,
                        consumer_secret,
                        token_id,
                        token_secret,
                    })
                }
                ([None, None, None, None], Some(cc)) => {
                    service::NetSuiteAuth::ClientCredentials(service::ClientCredentialsSecrets {
                        client_id: cc.client_id,
                        certificate_id: cc.certificate_id,
                        private_key: cc.private_key,
                    })
                }
                _ => {
                    return Err(vec![UserError::invalid(
                        &["input", "netsuite", "clientCredentials"],
                        "give token-based authentication (consumerKey, consumerSecret, tokenId and tokenSecret) or clientCredentials",
                    )]);
                }
            };
            ProviderInput::NetSuite(service::NetSuiteInput {
                account_id: n.account_id,
                auth,
                webhook_secret: n.webhook_secret,
                settings: service::NetSuiteSettings {
                    time_zone: n.time_zone,
                    date_style: n.date_style.into(),
                    currency: n.currency,
                    concurrency: usize::try_from(n.concurrency).unwrap_or(0),
                    adjustment_account_id: n.adjustment_account_id,
                    subsidiary_id: n.subsidiary_id,
                    order_customer_id: n.order_customer_id,
                    authentication: service::NetSuiteAuthentication::default(),
                },
                base_url: n.base_url,
                location_mapping: n
                    .location_mapping
                    .into_iter()
                    .map(|l| mapped(l.netsuite_location_id, &l.location_id, l.stock_master))
                    .collect(),
            })
        }
        (ConnectorKind::ShipStation, false, None, None, Some(x)) => {
            ProviderInput::ShipStation(service::ShipStationInput {
                api_key: x.api_key,
                api_secret: x.api_secret,
                webhook_token: x.webhook_token,
                v2_api_key: x.v2_api_key,
                webhook_public_keys: x.webhook_public_keys,
                base_url: x.base_url,
                location_mapping: x
                    .location_mapping
                    .into_iter()
                    .map(|l| service::Mapped {
                        inventory_location_id: l.inventory_location_id,
                        ..mapped(l.shipstation_warehouse_id, &l.location_id, l.stock_master)
                    })
                    .collect(),
            })
        }
        (ConnectorKind::ShipBob, false, None, Some(b), None) => ProviderInput::ShipBob(service::ShipBobInput {
            token: b.access_token,
            webhook_secret: b.webhook_secret,
            settings: service::ShipBobSettings { channel_id: b.channel_id, shipping_method: b.shipping_method },
            base_url: b.base_url,
            location_mapping: b
                .location_mapping
                .into_iter()
                .map(|l| mapped(l.shipbob_location_id, &l.location_id, l.stock_master))
                .collect(),
        }),
        (kind, ..) => {
            let name = match kind {
                ConnectorKind::NetSuite => "netsuite",
                ConnectorKind::ShipBob => "shipbob",
                ConnectorKind::ShipStation => "shipstation",
                ConnectorKind::Shopify => "config",
            };
            return Err(vec![UserError::invalid(
                &["input", name],
                format!("a {} connector is configured with {name} (and nothing else)", name.to_uppercase()),
            )]);
        }
    })
}

/// Installs a provider connector, or replaces connector `replacing`'s configuration.
async fn configure(
    s: &crate::db::Scoped,
    state: &crate::state::AppState,
    input: ProviderInput,
    replacing: Option<Uuid>,
) -> Result<Result<connector::Model, Vec<UserError>>, sea_orm::DbErr> {
    let (sealer, providers) = (&state.sealer, &state.providers);
    match input {
        ProviderInput::NetSuite(i) => service::install_netsuite(s, sealer, providers, replacing, i).await,
        ProviderInput::ShipBob(i) => service::install_shipbob(s, sealer, providers, replacing, i).await,
        ProviderInput::ShipStation(i) => service::install_shipstation(s, sealer, providers, replacing, i).await,
    }
}

fn payload(outcome: Result<connector::Model, Vec<UserError>>) -> ConnectorPayload {
    match outcome {
        Ok(c) => ConnectorPayload { connector: Some(Connector(c)), user_errors: vec![] },
        Err(user_errors) => ConnectorPayload { connector: None, user_errors },
    }
}

fn not_found() -> ConnectorPayload {
    payload(Err(vec![UserError::not_found(&["input", "id"], "connector")]))
}

#[derive(Default)]
pub struct ConnectorsQuery;

#[Object]
impl ConnectorsQuery {
    /// Every connector of the tenant, including uninstalled ones, oldest first. Owners and admins.
    async fn connectors(&self, ctx: &Context<'_>) -> Result<Vec<Connector>, ApiError> {
        let p = ctx.admin()?;
        let s = read_tx(ctx, p).await?;
        let all = service::list(&s).await?;
        s.commit().await?;
        Ok(all.into_iter().map(Connector).collect())
    }

    /// Sync runs, oldest first (`last: n` for the newest), of one connector or all. Owners and admins.
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        connector_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, SyncRun>, ApiError> {
        let p = ctx.admin()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<sync_run::Entity>(&s);
        if let Some(id) = connector_id {
            // An id of no connector of this tenant lists nothing.
            q = q.filter(sync_run::Column::ConnectorId.eq(parse_gid(&id, "Connector").unwrap_or(Uuid::nil())));
        }
        let page = repo::page(&s, q, sync_run::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, SyncRun))
    }
}

#[derive(Default)]
pub struct ConnectorsMutation;

#[Object]
impl ConnectorsMutation {
    /// Syncs a connector's resources from the provider as background jobs: only what changed
    /// since the last sync, or everything with `full`. One run per connector at a time: while one
    /// is queued or running, that one is returned.
    async fn sync_run(&self, ctx: &Context<'_>, input: SyncRunInput) -> Result<SyncRunPayload, ApiError> {
        let p = ctx.admin()?;
        let Some(id) = parse_gid(&input.connector_id, "Connector") else {
            return Ok(SyncRunPayload {
                sync_run: None,
                user_errors: vec![UserError::not_found(&["input", "connectorId"], "connector")],
            });
        };
        if let Some(busy) = super::queue_full(ctx, p).await? {
            return Ok(SyncRunPayload { sync_run: None, user_errors: vec![busy] });
        }
        let resources: Vec<String> = input.resources.iter().map(|r| r.as_str().to_owned()).collect();
        let s = write_tx(ctx, p).await?;
        let outcome = sync::request(&s, id, &resources, input.full, "manual").await?;
        s.commit().await?;
        Ok(match outcome {
            Ok(run) => SyncRunPayload { sync_run: Some(SyncRun(run)), user_errors: vec![] },
            Err(user_errors) => SyncRunPayload { sync_run: None, user_errors },
        })
    }

    /// Connects a store. The credentials are sealed at rest and never returned.
    async fn connector_install(
        &self,
        ctx: &Context<'_>,
        input: ConnectorInstallInput,
    ) -> Result<ConnectorPayload, ApiError> {
        let p = ctx.admin()?;
        let (state, s) = (ctx.state(), write_tx(ctx, p).await?);
        let outcome = match (input.kind, input.config, input.netsuite, input.shipbob, input.shipstation) {
            (ConnectorKind::Shopify, Some(c), None, None, None) => {
                let config = ConfigInput {
                    shop_domain: Some(c.shop_domain),
                    access_token: Some(c.access_token),
                    webhook_secret: Some(c.webhook_secret),
                    api_version: Some(c.api_version),
                    base_url: Some(c.base_url),
                    location_mapping: Some(mapping(c.location_mapping)),
                    bulk_import: c.bulk_import.map(Into::into),
                };
                service::install(&s, &state.sealer, &state.providers, config).await?
            }
            (
                kind @ (ConnectorKind::NetSuite | ConnectorKind::ShipBob | ConnectorKind::ShipStation),
                config,
                n,
                b,
                x,
            ) => match provider_input(kind, config.is_some(), n, b, x) {
                Ok(input) => configure(&s, state, input, None).await?,
                Err(e) => Err(e),
            },
            (ConnectorKind::Shopify, ..) => Err(vec![UserError::invalid(
                &["input", "config"],
                "a SHOPIFY connector is configured with config (and nothing else)",
            )]),
        };
        if let Ok(c) = &outcome {
            let every = std::time::Duration::from_secs(ctx.state().config.connector_sync_interval_seconds);
            sync::schedule_reconciliation(&s, c.id, every).await?;
            s.commit().await?;
        }
        Ok(payload(outcome))
    }

    /// Changes a connector's version, base URL, location mapping or credentials.
    async fn connector_update(
        &self,
        ctx: &Context<'_>,
        input: ConnectorUpdateInput,
    ) -> Result<ConnectorPayload, ApiError> {
        let p = ctx.admin()?;
        let Some(id) = parse_gid(&input.id, "Connector") else { return Ok(not_found()) };
        let s = write_tx(ctx, p).await?;
        let found = match service::live(&s, id).await? {
            Ok(c) => c,
            Err(e) => return Ok(payload(Err(e))),
        };
        let kind = ConnectorKind::of(&found.kind);
        if let kind @ (ConnectorKind::NetSuite | ConnectorKind::ShipBob | ConnectorKind::ShipStation) = kind {
            // Another provider's whole configuration, in place: same id, links, history.
            let outcome =
                match provider_input(kind, input.config.is_some(), input.netsuite, input.shipbob, input.shipstation) {
                    Ok(given) => configure(&s, ctx.state(), given, Some(id)).await?,
                    Err(e) => Err(e),
                };
            if outcome.is_ok() {
                s.commit().await?;
            }
            return Ok(payload(outcome));
        }
        let Some(c) = input.config else {
            return Ok(payload(Err(vec![UserError::invalid(
                &["input", "config"],
                "a SHOPIFY connector is changed with config",
            )])));
        };
        let config = ConfigInput {
            shop_domain: c.shop_domain,
            access_token: c.access_token,
            webhook_secret: c.webhook_secret,
            api_version: c.api_version,
            base_url: match c.base_url {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
            location_mapping: c.location_mapping.map(mapping),
            bulk_import: c.bulk_import.map(Into::into),
        };
        let outcome = service::update(&s, &ctx.state().sealer, &ctx.state().providers, id, config).await?;
        if outcome.is_ok() {
            s.commit().await?;
        }
        Ok(payload(outcome))
    }

    /// Stops syncing a connector until `connectorResume`; its settings and credentials stay.
    async fn connector_pause(
        &self,
        ctx: &Context<'_>,
        input: ConnectorPauseInput,
    ) -> Result<ConnectorPayload, ApiError> {
        let p = ctx.admin()?;
        let Some(id) = parse_gid(&input.id, "Connector") else { return Ok(not_found()) };
        let s = write_tx(ctx, p).await?;
        let outcome = service::set_active(&s, id, false, input.reason).await?;
        s.commit().await?;
        Ok(payload(outcome))
    }

    /// Syncs a paused connector again.
    async fn connector_resume(&self, ctx: &Context<'_>, input: ConnectorIdInput) -> Result<ConnectorPayload, ApiError> {
        let p = ctx.admin()?;
        let Some(id) = parse_gid(&input.id, "Connector") else { return Ok(not_found()) };
        let s = write_tx(ctx, p).await?;
        let outcome = service::set_active(&s, id, true, None).await?;
        s.commit().await?;
        Ok(payload(outcome))
    }

    /// Disconnects a store: its credentials are erased; the connector stays listed as UNINSTALLED
    /// and the shop can be connected again.
    async fn connector_uninstall(
        &self,
        ctx: &Context<'_>,
        input: ConnectorIdInput,
    ) -> Result<ConnectorPayload, ApiError> {
        let p = ctx.admin()?;
        let Some(id) = parse_gid(&input.id, "Connector") else { return Ok(not_found()) };
        let s = write_tx(ctx, p).await?;
        let outcome = service::uninstall(&s, id).await?;
        s.commit().await?;
        Ok(payload(outcome))
    }
}
