//! Installed connectors (Shopify first): their settings in the clear, their credentials sealed
//! with the configured keys (`connector_keys`) and bound to the tenant and connector, so a sealed
//! value copied to another row does not open. Credentials never leave through the API.
//!
//! Inbound webhooks ([`receive_webhook`]) are verified against the connector's sealed secret,
//! stored once per delivery id, and applied by a `connector.webhook` job queued with them
//! (`services::sync`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;
use qm_connectors::shopify::gid::Gid;
use qm_integrations::sealing::Sealer;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::entities::{connector, connector_webhook};
use crate::db::{Scoped, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::services::lookup;
use crate::services::sync::Providers;

/// The key file kept in the data directory when no keys are configured.
const KEY_FILE: &str = "connector-keys";

/// The sealer from `connector_keys`, or from a key generated once and kept in the data directory.
pub fn sealer(configured: Option<&SecretString>, data_dir: &Path) -> anyhow::Result<Sealer> {
    if let Some(keys) = configured {
        return Ok(Sealer::parse(keys.expose_secret())?);
    }
    // An existing key file is used as it is: one that does not read is an error, never replaced
    // (what it sealed would be lost).
    let spec = crate::auth::jwt::load_or_create_private(
        data_dir,
        KEY_FILE,
        |_| true,
        || {
            use base64::Engine as _;
            use rand::Rng as _;
            let key: [u8; 32] = rand::rng().random();
            format!("local-1:{}", base64::engine::general_purpose::STANDARD.encode(key))
        },
    )?;
    Sealer::parse(&spec).with_context(|| format!("reading {}", data_dir.join(KEY_FILE).display()))
}

pub const SHOPIFY: &str = "shopify";
pub const NETSUITE: &str = "netsuite";
pub const SHIPBOB: &str = "shipbob";
pub const SHIPSTATION: &str = "shipstation";

/// Settings kept in the clear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub api_version: String,
    /// Where the provider's API is reached instead of its public address (a mock, a staging proxy).
    pub base_url: Option<String>,
    pub location_mapping: Vec<LocationLink>,
    /// How a full read of the catalog and stock goes: through a bulk operation or page by page.
    #[serde(default)]
    pub bulk_import: BulkImport,
    /// A NetSuite account's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netsuite: Option<NetSuiteSettings>,
    /// A ShipBob merchant's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipbob: Option<ShipBobSettings>,
    /// A ShipStation account's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipstation: Option<ShipStationSettings>,
}

/// How a ShipStation account is reached beyond V1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipStationSettings {
    /// Whether a V2 API key is stored: stock is read from (and, where ShipStation is not the
    /// stock master, sent to) the inventory locations of the mapped warehouses.
    #[serde(default)]
    pub v2: bool,
    /// The public keys V2 webhooks are verified with (ShipStation's JWKS, or one PEM key); none:
    /// V2 webhooks are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_public_keys: Option<String>,
}

/// How orders go to ShipBob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipBobSettings {
    /// The channel orders are sent in (`GET /channel`).
    pub channel_id: String,
    /// The shipping method orders are sent with.
    pub shipping_method: String,
}

/// How a NetSuite account is read and written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetSuiteSettings {
    /// The account's time zone (IANA), in which SuiteQL writes and compares dates.
    pub time_zone: String,
    /// The integration user's date format.
    pub date_style: DateStyle,
    /// The account's base currency (ISO 4217).
    pub currency: String,
    /// Requests in flight to the account at most (its concurrency limit is shared with every
    /// other integration of the account).
    pub concurrency: usize,
    /// The account stock adjustments post to; none: stock changed here is not sent.
    pub adjustment_account_id: Option<String>,
    pub subsidiary_id: Option<String>,
    /// The customer orders sent to NetSuite are entered for; none: orders are not sent.
    #[serde(default)]
    pub order_customer_id: Option<String>,
    /// How requests are authenticated (the secrets are sealed with the credentials).
    #[serde(default)]
    pub authentication: NetSuiteAuthentication,
}

/// How a NetSuite connector authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetSuiteAuthentication {
    /// Token-Based Authentication (OAuth 1.0a).
    #[default]
    TokenBased,
    /// OAuth 2.0 client credentials (machine to machine).
    ClientCredentials,
}

pub use qm_connectors::netsuite::suiteql::DateStyle;

/// Whether a full read of the catalog and stock (the first sync, a `full` one) goes through a
/// bulk operation, which reads a large shop many times faster than pages and does not draw on
/// the rate budget, or page by page, which has no start-up delay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkImport {
    /// Bulk from [`BULK_IMPORT_FROM`] variants on.
    #[default]
    Auto,
    Always,
    Never,
}

/// Where `Auto` switches to a bulk import: below this many variants pages take seconds.
pub const BULK_IMPORT_FROM: u64 = 1_000;

/// A provider location and the location of ours it feeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationLink {
    pub provider_location_id: String,
    pub location_id: Uuid,
    /// Whether the provider is the location's stock master; `None`: its kind's default (see
    /// [`LocationLink::stock_master`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_master: Option<bool>,
    /// ShipStation: the V2 inventory location that holds the warehouse's stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_location_id: Option<String>,
}

impl LocationLink {
    /// Whether a connector of `kind` is the stock master of the location: its levels are the
    /// truth there, so another connector's levels for it are not applied and stock changed here
    /// is not sent to it (it counts its own). By default a ShipBob warehouse's master is ShipBob
    /// (it owns the warehouse's stock and takes no writes); any other provider follows.
    pub fn stock_master(&self, kind: &str) -> bool {
        self.stock_master.unwrap_or(kind == SHIPBOB)
    }
}

/// One entry of a location mapping as given: the provider's location, ours, and the options.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    pub provider_location_id: String,
    /// `None`: not one of ours (an unreadable id).
    pub location_id: Option<Uuid>,
    pub stock_master: Option<bool>,
    pub inventory_location_id: Option<String>,
}

/// What is sealed: Shopify's access token, or NetSuite's token-based authentication secrets, and
/// the secret inbound messages are signed with.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    #[serde(default)]
    access_token: String,
    webhook_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tba: Option<TbaSecrets>,
    /// NetSuite's OAuth 2.0 client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_credentials: Option<ClientCredentialsSecrets>,
    /// ShipStation's API secret (its key is `access_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_secret: Option<String>,
    /// ShipStation's V2 API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v2_api_key: Option<String>,
}

/// NetSuite's OAuth 2.0 client credentials: the integration's client id, the id of the
/// certificate mapped to it, and the certificate's private key (PEM).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentialsSecrets {
    pub client_id: String,
    pub certificate_id: String,
    pub private_key: String,
}

/// How a NetSuite connector signs in, with its secrets.
pub enum NetSuiteAuth {
    Tba(TbaSecrets),
    ClientCredentials(ClientCredentialsSecrets),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TbaSecrets {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token_id: String,
    pub token_secret: String,
}

/// A change to a connector's configuration: `None` leaves a value as it is.
#[derive(Debug, Default)]
pub struct ConfigInput {
    pub shop_domain: Option<String>,
    pub access_token: Option<String>,
    pub webhook_secret: Option<String>,
    pub api_version: Option<String>,
    /// `Some(None)` removes the override.
    pub base_url: Option<Option<String>>,
    pub location_mapping: Option<Vec<Mapped>>,
    pub bulk_import: Option<BulkImport>,
}

pub fn settings_of(c: &connector::Model) -> Settings {
    serde_json::from_value(c.settings.clone()).unwrap_or_default()
}

/// What a connector's sealed credentials are bound to: they open in its row only.
pub(crate) fn credentials_owner(tenant: Uuid, id: Uuid) -> Vec<u8> {
    format!("connector:{tenant}:{id}").into_bytes()
}

fn open(sealer: &Sealer, c: &connector::Model) -> Option<Credentials> {
    if c.credentials.is_empty() {
        return None;
    }
    let raw = sealer.open(&c.credentials, &credentials_owner(c.tenant_id, c.id)).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Opens a connector's credentials (for the sync engine): the access token and the webhook
/// secret; `None` once uninstalled.
pub fn open_credentials(sealer: &Sealer, c: &connector::Model) -> Option<(String, String)> {
    open(sealer, c).map(|creds| (creds.access_token, creds.webhook_secret))
}

/// A ShipStation connector's secrets.
pub struct ShipStationSecrets {
    pub api_key: String,
    pub api_secret: String,
    pub webhook_token: String,
    pub v2_api_key: Option<String>,
}

/// Opens a ShipStation connector's secrets; `None` once uninstalled.
pub fn open_shipstation(sealer: &Sealer, c: &connector::Model) -> Option<ShipStationSecrets> {
    let creds = open(sealer, c)?;
    Some(ShipStationSecrets {
        api_key: creds.access_token,
        api_secret: creds.api_secret?,
        webhook_token: creds.webhook_secret,
        v2_api_key: creds.v2_api_key,
    })
}

/// Opens a NetSuite connector's token-based authentication secrets and the secret its User Event
/// script signs with; `None` once uninstalled.
pub fn open_netsuite(sealer: &Sealer, c: &connector::Model) -> Option<(NetSuiteAuth, String)> {
    let creds = open(sealer, c)?;
    let auth = match (creds.tba, creds.client_credentials) {
        (Some(t), _) => NetSuiteAuth::Tba(t),
        (None, Some(cc)) => NetSuiteAuth::ClientCredentials(cc),
        (None, None) => return None,
    };
    Some((auth, creds.webhook_secret))
}

fn is_shop_domain(d: &str) -> bool {
    d.strip_suffix(".myshopify.com").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    })
}

/// `YYYY-MM` with a quarterly month, as Shopify names its versions.
fn is_api_version(v: &str) -> bool {
    matches!(v.split_once('-'), Some((y, m)) if y.len() == 4 && y.chars().all(|c| c.is_ascii_digit()) && ["01", "04", "07", "10"].contains(&m))
}

fn at(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// Checks `input`; the values it fixes, or the problems, each naming its field.
async fn check(
    s: &Scoped,
    providers: &Providers,
    input: &ConfigInput,
    installing: bool,
) -> Result<Outcome<Option<Vec<LocationLink>>>, DbErr> {
    let field = |name: &str| vec!["input".to_owned(), "config".to_owned(), name.to_owned()];
    let mut errors = Vec::new();
    let mut invalid = |name: &str, message: &str| errors.push(UserError::invalid(&at(&field(name)), message));
    match &input.shop_domain {
        Some(d) if !is_shop_domain(d) => invalid("shopDomain", "a shop domain is like example-shop.myshopify.com"),
        None if installing => invalid("shopDomain", "required"),
        _ => {}
    }
    for (name, value) in [("accessToken", &input.access_token), ("webhookSecret", &input.webhook_secret)] {
        match value {
            Some(v) if v.trim().is_empty() || v.len() > 1024 => invalid(name, "must be 1 to 1024 characters"),
            None if installing => invalid(name, "required"),
            _ => {}
        }
    }
    match &input.api_version {
        Some(v) if !is_api_version(v) => {
            invalid("apiVersion", "a Shopify API version is like 2026-01 (YYYY-01/04/07/10)")
        }
        None if installing => invalid("apiVersion", "required"),
        _ => {}
    }
    if let Some(Some(u)) = &input.base_url
        && let Err(e) = providers.check_base_url(u)
    {
        invalid("baseUrl", &e);
    }
    let mut links = None;
    if let Some(mapping) = &input.location_mapping {
        links = Some(provider_links(s, mapping, &field, &SHOPIFY_LOCATION, &mut errors).await?);
    }
    Ok(if errors.is_empty() { Ok(links) } else { Err(errors) })
}

/// Installs a Shopify connector (or installs again one that was uninstalled).
pub async fn install(
    s: &Scoped,
    sealer: &Sealer,
    providers: &Providers,
    input: ConfigInput,
) -> Result<Outcome<connector::Model>, DbErr> {
    let links = match check(s, providers, &input, true).await? {
        Ok(links) => links,
        Err(e) => return Ok(Err(e)),
    };
    let (Some(shop), Some(token), Some(secret), Some(version)) =
        (input.shop_domain, input.access_token, input.webhook_secret, input.api_version)
    else {
        return Ok(Err(vec![UserError::invalid(&["input", "config"], "incomplete")]));
    };
    let settings = Settings {
        api_version: version,
        base_url: input.base_url.flatten(),
        location_mapping: links.unwrap_or_default(),
        bulk_import: input.bulk_import.unwrap_or_default(),
        netsuite: None,
        shipbob: None,
        shipstation: None,
    };
    let creds = Credentials { access_token: token, webhook_secret: secret, ..Credentials::default() };
    save_install(s, sealer, SHOPIFY, shop, settings, &creds, &["input", "config", "shopDomain"], None).await
}

/// Stores an installed connector of `kind` for `account` (again, if it was uninstalled): `TAKEN`
/// at `field` while another connector of the tenant has the account. `replacing`: the live
/// connector whose configuration this replaces (`connectorUpdate`), which must have the account;
/// it keeps its id, status, links and history.
#[allow(clippy::too_many_arguments)]
async fn save_install(
    s: &Scoped,
    sealer: &Sealer,
    kind: &str,
    account: String,
    settings: Settings,
    creds: &Credentials,
    field: &[&str],
    replacing: Option<Uuid>,
) -> Result<Outcome<connector::Model>, DbErr> {
    let existing = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Kind.eq(kind))
        .filter(connector::Column::ExternalAccount.eq(account.as_str()))
        .one(&s.tx)
        .await?;
    let live = existing.as_ref().filter(|c| c.status != "uninstalled");
    match (live, replacing) {
        (Some(c), Some(id)) if c.id == id => {}
        (Some(_), _) => return Ok(Err(taken(field, &account))),
        (None, Some(_)) => {
            return Ok(Err(vec![UserError::invalid(
                field,
                "the account of a connector does not change: install a connector for the other account",
            )]));
        }
        (None, None) => {}
    }
    let id = existing.as_ref().map_or_else(Uuid::now_v7, |c| c.id);
    let conflicts = master_conflicts(s, id, kind, &settings.location_mapping, field).await?;
    if !conflicts.is_empty() {
        return Ok(Err(conflicts));
    }
    let now = repo::now();
    let sealed = seal_credentials(sealer, s.tenant(), id, creds);
    let row = connector::Model {
        tenant_id: s.tenant(),
        id,
        kind: kind.to_owned(),
        // A new configuration leaves a paused connector paused.
        status: live.map_or_else(|| "active".to_owned(), |c| c.status.clone()),
        // What the account's bucket was still is.
        throttle: existing.as_ref().and_then(|c| c.throttle.clone()),
        external_account: account,
        settings: serde_json::json!(settings),
        credentials: sealed,
        status_reason: live.and_then(|c| c.status_reason.clone()),
        created_at: existing.as_ref().map_or(now, |c| c.created_at),
        updated_at: now,
    };
    // Every column set: a model turned into an active model is all unchanged, and would write
    // nothing over the existing row.
    let am = sea_orm::ActiveModelTrait::reset_all(connector::ActiveModel::from(row.clone()));
    if existing.is_some() {
        connector::Entity::update(am).exec(&s.tx).await?;
    } else {
        match connector::Entity::insert(am).exec_without_returning(&s.tx).await {
            // Installed by a concurrent request between the check and the insert.
            Err(e) if crate::db::is_unique_violation(&e) => return Ok(Err(taken(field, &row.external_account))),
            other => {
                other?;
            }
        }
    }
    tracing::info!(connector = %id, kind, account = %row.external_account, replaced = replacing.is_some(), "connector installed");
    Ok(Ok(row))
}

/// How a provider names its locations in a location mapping: the input field and what it takes.
struct MappedId {
    field: &'static str,
    valid: fn(&str) -> bool,
    message: &'static str,
}

const SHOPIFY_LOCATION: MappedId = MappedId {
    field: "shopifyLocationId",
    valid: |id| id.parse::<Gid>().is_ok_and(|g| g.kind == "Location"),
    message: "a Shopify location id is like gid://shopify/Location/1234",
};

/// A NetSuite, ShipBob or ShipStation location id (digits), in the input field `field`.
const fn numeric_location(field: &'static str) -> MappedId {
    MappedId { field, valid: |id| id.parse::<u64>().is_ok(), message: "a location id (digits)" }
}

/// The links of a location mapping, the problems in `errors` at
/// `{field}.locationMapping.{i}.{id field|locationId|inventoryLocationId}`.
async fn provider_links(
    s: &Scoped,
    mapping: &[Mapped],
    field: &(dyn Fn(&str) -> Vec<String> + Sync),
    id: &MappedId,
    errors: &mut Vec<UserError>,
) -> Result<Vec<LocationLink>, DbErr> {
    let mut links = Vec::with_capacity(mapping.len());
    let mut seen = BTreeSet::new();
    for (i, m) in mapping.iter().enumerate() {
        let path = |leaf: &str| {
            let mut p = field("locationMapping");
            p.extend([i.to_string(), leaf.to_owned()]);
            p
        };
        let provider = &m.provider_location_id;
        if !(id.valid)(provider) {
            errors.push(UserError::invalid(&at(&path(id.field)), id.message));
        } else if !seen.insert(provider.clone()) {
            errors.push(UserError::invalid(&at(&path(id.field)), "mapped twice"));
        }
        if let Some(l) = &m.inventory_location_id
            && (l.is_empty() || l.len() > 100 || l.chars().any(char::is_whitespace))
        {
            errors.push(UserError::invalid(&at(&path("inventoryLocationId")), "1 to 100 characters without spaces"));
        }
        match m.location_id {
            Some(id) if lookup::location(s, id).await?.is_some() => links.push(LocationLink {
                provider_location_id: provider.clone(),
                location_id: id,
                stock_master: m.stock_master,
                inventory_location_id: m.inventory_location_id.clone(),
            }),
            _ => errors.push(UserError::not_found(&at(&path("locationId")), "location")),
        }
    }
    Ok(links)
}

/// The problems of a mapping that makes connector `id` (of `kind`) the stock master of a
/// location another active connector is already the master of, at `{field}.locationMapping.{i}`.
async fn master_conflicts(
    s: &Scoped,
    id: Uuid,
    kind: &str,
    links: &[LocationLink],
    field: &[&str],
) -> Result<Vec<UserError>, DbErr> {
    if !links.iter().any(|l| l.stock_master(kind)) {
        return Ok(Vec::new());
    }
    let others = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Id.ne(id))
        .filter(connector::Column::Status.ne("uninstalled"))
        .all(&s.tx)
        .await?;
    let mut errors = Vec::new();
    for (i, l) in links.iter().enumerate().filter(|(_, l)| l.stock_master(kind)) {
        let master = others.iter().find(|o| {
            settings_of(o).location_mapping.iter().any(|m| m.location_id == l.location_id && m.stock_master(&o.kind))
        });
        if let Some(o) = master {
            let mut path: Vec<String> = field[..field.len() - 1].iter().map(|f| (*f).to_owned()).collect();
            path.extend(["locationMapping".to_owned(), i.to_string(), "stockMaster".to_owned()]);
            errors.push(UserError::new(
                &at(&path),
                UserErrorCode::Taken,
                format!("the location's stock master is already the {} connector {}", o.kind, o.external_account),
            ));
        }
    }
    Ok(errors)
}

/// A ShipBob merchant to connect.
pub struct ShipBobInput {
    /// A personal access token.
    pub token: String,
    /// The subscription's `whsec_` secret that signs ShipBob's webhooks.
    pub webhook_secret: String,
    pub settings: ShipBobSettings,
    pub base_url: Option<String>,
    pub location_mapping: Vec<Mapped>,
}

/// Installs a ShipBob connector (or installs again one that was uninstalled); the account is the
/// channel.
pub async fn install_shipbob(
    s: &Scoped,
    sealer: &Sealer,
    providers: &Providers,
    replacing: Option<Uuid>,
    input: ShipBobInput,
) -> Result<Outcome<connector::Model>, DbErr> {
    let field = |name: &str| vec!["input".to_owned(), "shipbob".to_owned(), name.to_owned()];
    let mut errors = Vec::new();
    if input.token.trim().is_empty() || input.token.len() > 4096 {
        errors.push(UserError::invalid(&at(&field("accessToken")), "must be 1 to 4096 characters"));
    }
    if qm_integrations::webhooks::sign(&[input.webhook_secret.as_str()], "check", 0, b"").is_err() {
        errors
            .push(UserError::invalid(&at(&field("webhookSecret")), "a ShipBob webhook secret is like whsec_<base64>"));
    }
    if input.settings.channel_id.parse::<u64>().is_err() {
        errors.push(UserError::invalid(&at(&field("channelId")), "a ShipBob channel id (digits, from GET /channel)"));
    }
    let method = input.settings.shipping_method.trim();
    if method.is_empty() || method.len() > 100 {
        errors.push(UserError::invalid(&at(&field("shippingMethod")), "must be 1 to 100 characters"));
    }
    if let Some(u) = &input.base_url
        && let Err(e) = providers.check_base_url(u)
    {
        errors.push(UserError::invalid(&at(&field("baseUrl")), &e));
    }
    let links =
        provider_links(s, &input.location_mapping, &field, &numeric_location("shipbobLocationId"), &mut errors).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let account = input.settings.channel_id.clone();
    let settings = Settings {
        api_version: qm_connectors::shipbob::client::API_VERSION.to_owned(),
        base_url: input.base_url,
        location_mapping: links,
        bulk_import: BulkImport::Never,
        netsuite: None,
        shipbob: Some(input.settings),
        shipstation: None,
    };
    let creds =
        Credentials { access_token: input.token, webhook_secret: input.webhook_secret, ..Credentials::default() };
    save_install(s, sealer, SHIPBOB, account, settings, &creds, &["input", "shipbob", "channelId"], replacing).await
}

/// A ShipStation account to connect.
pub struct ShipStationInput {
    pub api_key: String,
    pub api_secret: String,
    /// The token in the webhook target URL (V1 webhooks are unsigned).
    pub webhook_token: String,
    /// The V2 API key: stock is read and set through V2.
    pub v2_api_key: Option<String>,
    /// The keys V2 webhooks are verified with: a JWKS or a PEM key.
    pub webhook_public_keys: Option<String>,
    pub base_url: Option<String>,
    pub location_mapping: Vec<Mapped>,
}

/// Installs a ShipStation connector (or installs again one that was uninstalled); the account
/// is the API key.
pub async fn install_shipstation(
    s: &Scoped,
    sealer: &Sealer,
    providers: &Providers,
    replacing: Option<Uuid>,
    input: ShipStationInput,
) -> Result<Outcome<connector::Model>, DbErr> {
    let field = |name: &str| vec!["input".to_owned(), "shipstation".to_owned(), name.to_owned()];
    let mut errors = Vec::new();
    let values = [
        ("apiKey", Some(&input.api_key), 1),
        ("apiSecret", Some(&input.api_secret), 1),
        ("webhookToken", Some(&input.webhook_token), 24),
        ("v2ApiKey", input.v2_api_key.as_ref(), 1),
    ];
    for (name, v, min) in values {
        if let Some(v) = v
            && (v.trim().len() < min || v.len() > 256 || v.chars().any(char::is_whitespace))
        {
            errors.push(UserError::invalid(&at(&field(name)), format!("{min} to 256 characters without spaces")));
        }
    }
    if let Some(keys) = &input.webhook_public_keys
        && let Err(e) = qm_connectors::shipstation::webhook::PublicKeys::parse(keys)
    {
        errors.push(UserError::invalid(&at(&field("webhookPublicKeys")), e));
    }
    if let Some(u) = &input.base_url
        && let Err(e) = providers.check_base_url(u)
    {
        errors.push(UserError::invalid(&at(&field("baseUrl")), &e));
    }
    let links =
        provider_links(s, &input.location_mapping, &field, &numeric_location("shipstationWarehouseId"), &mut errors)
            .await?;
    if input.v2_api_key.is_none() {
        for (i, m) in input.location_mapping.iter().enumerate() {
            if m.inventory_location_id.is_some() {
                let mut path = field("locationMapping");
                path.extend([i.to_string(), "inventoryLocationId".to_owned()]);
                errors.push(UserError::invalid(&at(&path), "stock is read through V2: give v2ApiKey too"));
            }
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let settings = Settings {
        api_version: "v1".to_owned(),
        base_url: input.base_url,
        location_mapping: links,
        bulk_import: BulkImport::Never,
        netsuite: None,
        shipbob: None,
        shipstation: Some(ShipStationSettings {
            v2: input.v2_api_key.is_some(),
            webhook_public_keys: input.webhook_public_keys,
        }),
    };
    let creds = Credentials {
        access_token: input.api_key.clone(),
        webhook_secret: input.webhook_token,
        api_secret: Some(input.api_secret),
        v2_api_key: input.v2_api_key,
        ..Credentials::default()
    };
    let field = ["input", "shipstation", "apiKey"];
    save_install(s, sealer, SHIPSTATION, input.api_key, settings, &creds, &field, replacing).await
}

/// A NetSuite account to connect.
pub struct NetSuiteInput {
    pub account_id: String,
    pub auth: NetSuiteAuth,
    pub webhook_secret: String,
    pub settings: NetSuiteSettings,
    pub base_url: Option<String>,
    pub location_mapping: Vec<Mapped>,
}

/// Installs a NetSuite connector (or installs again one that was uninstalled).
pub async fn install_netsuite(
    s: &Scoped,
    sealer: &Sealer,
    providers: &Providers,
    replacing: Option<Uuid>,
    input: NetSuiteInput,
) -> Result<Outcome<connector::Model>, DbErr> {
    let field = |name: &str| vec!["input".to_owned(), "netsuite".to_owned(), name.to_owned()];
    let mut errors = Vec::new();
    // A name with a dot is a field of a nested input (`clientCredentials.clientId`).
    let mut invalid = |name: &str, message: &str| {
        let path: Vec<String> = ["input", "netsuite"].into_iter().chain(name.split('.')).map(str::to_owned).collect();
        errors.push(UserError::invalid(&at(&path), message));
    };
    let account = qm_connectors::netsuite::tba::realm(&input.account_id);
    if account.is_empty() || account.len() > 64 || !account.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        invalid("accountId", "a NetSuite account id is like 1234567 or 1234567_SB1");
    }
    let mut secrets = vec![("webhookSecret", &input.webhook_secret)];
    match &input.auth {
        NetSuiteAuth::Tba(t) => secrets.extend([
            ("consumerKey", &t.consumer_key),
            ("consumerSecret", &t.consumer_secret),
            ("tokenId", &t.token_id),
            ("tokenSecret", &t.token_secret),
        ]),
        NetSuiteAuth::ClientCredentials(cc) => {
            secrets.extend([
                ("clientCredentials.clientId", &cc.client_id),
                ("clientCredentials.certificateId", &cc.certificate_id),
            ]);
            if let Err(e) = qm_connectors::netsuite::oauth2::signing_key(&cc.private_key) {
                invalid("clientCredentials.privateKey", &e);
            }
        }
    }
    for (name, v) in secrets {
        if v.trim().is_empty() || v.len() > 1024 {
            invalid(name, "must be 1 to 1024 characters");
        }
    }
    let n = &input.settings;
    if n.time_zone.parse::<chrono_tz::Tz>().is_err() {
        invalid("timeZone", "an IANA time zone, like America/Los_Angeles");
    }
    if n.currency.len() != 3 || !n.currency.chars().all(|c| c.is_ascii_uppercase()) {
        invalid("currency", "an ISO 4217 code, like USD");
    }
    if !(1..=50).contains(&n.concurrency) {
        invalid("concurrency", "from 1 to 50 requests at once");
    }
    let ids = [
        ("adjustmentAccountId", &n.adjustment_account_id),
        ("subsidiaryId", &n.subsidiary_id),
        ("orderCustomerId", &n.order_customer_id),
    ];
    for (name, v) in ids {
        if v.as_ref().is_some_and(|v| v.parse::<u64>().is_err()) {
            invalid(name, "a NetSuite internal id (digits)");
        }
    }
    if let Some(u) = &input.base_url
        && let Err(e) = providers.check_base_url(u)
    {
        invalid("baseUrl", &e);
    }
    let links =
        provider_links(s, &input.location_mapping, &field, &numeric_location("netsuiteLocationId"), &mut errors)
            .await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let (tba, client_credentials, authentication) = match input.auth {
        NetSuiteAuth::Tba(t) => (Some(t), None, NetSuiteAuthentication::TokenBased),
        NetSuiteAuth::ClientCredentials(cc) => (None, Some(cc), NetSuiteAuthentication::ClientCredentials),
    };
    let settings = Settings {
        api_version: String::new(),
        base_url: input.base_url,
        location_mapping: links,
        bulk_import: BulkImport::Never,
        netsuite: Some(NetSuiteSettings { authentication, ..input.settings }),
        shipbob: None,
        shipstation: None,
    };
    let creds = Credentials {
        access_token: String::new(),
        webhook_secret: input.webhook_secret,
        tba,
        client_credentials,
        ..Credentials::default()
    };
    save_install(s, sealer, NETSUITE, account, settings, &creds, &["input", "netsuite", "accountId"], replacing).await
}

fn taken(field: &[&str], account: &str) -> Vec<UserError> {
    vec![UserError::new(field, UserErrorCode::Taken, format!("{account} is already connected"))]
}

fn seal(sealer: &Sealer, tenant: Uuid, id: Uuid, access_token: String, webhook_secret: String) -> String {
    seal_credentials(sealer, tenant, id, &Credentials { access_token, webhook_secret, ..Credentials::default() })
}

fn seal_credentials(sealer: &Sealer, tenant: Uuid, id: Uuid, creds: &Credentials) -> String {
    let plain = serde_json::to_vec(creds).unwrap_or_default();
    sealer.seal(&plain, &credentials_owner(tenant, id))
}

/// Connector `id` unless it is uninstalled, or the problem at `input.id`.
pub async fn live(s: &Scoped, id: Uuid) -> Result<Outcome<connector::Model>, DbErr> {
    let found = repo::find::<connector::Entity>(s).filter(connector::Column::Id.eq(id)).one(&s.tx).await?;
    Ok(match found {
        Some(c) if c.status != "uninstalled" => Ok(c),
        Some(_) => {
            Err(vec![UserError::new(&["input", "id"], UserErrorCode::InvalidState, "the connector is uninstalled")])
        }
        None => Err(vec![UserError::not_found(&["input", "id"], "connector")]),
    })
}

/// Changes a connector's settings or credentials (the shop stays: install another for another).
pub async fn update(
    s: &Scoped,
    sealer: &Sealer,
    providers: &Providers,
    id: Uuid,
    input: ConfigInput,
) -> Result<Outcome<connector::Model>, DbErr> {
    let c = match live(s, id).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    if c.kind != SHOPIFY {
        return Ok(Err(vec![UserError::new(
            &["input", "id"],
            UserErrorCode::InvalidState,
            format!("a {} connector is changed with its whole configuration ({}, not config)", c.kind, c.kind),
        )]));
    }
    if input.shop_domain.as_ref().is_some_and(|d| *d != c.external_account) {
        return Ok(Err(vec![UserError::invalid(
            &["input", "config", "shopDomain"],
            "the shop of a connector does not change: install a connector for the other shop",
        )]));
    }
    let links = match check(s, providers, &input, false).await? {
        Ok(links) => links,
        Err(e) => return Ok(Err(e)),
    };
    let mut settings = settings_of(&c);
    if let Some(v) = input.api_version {
        settings.api_version = v;
    }
    if let Some(u) = input.base_url {
        settings.base_url = u;
    }
    if let Some(l) = links {
        let conflicts = master_conflicts(s, c.id, &c.kind, &l, &["input", "config", "locationMapping"]).await?;
        if !conflicts.is_empty() {
            return Ok(Err(conflicts));
        }
        settings.location_mapping = l;
    }
    if let Some(b) = input.bulk_import {
        settings.bulk_import = b;
    }
    let mut am: connector::ActiveModel = c.clone().into();
    if input.access_token.is_some() || input.webhook_secret.is_some() {
        let (token, secret) = match (input.access_token, input.webhook_secret, open_credentials(sealer, &c)) {
            (Some(t), Some(w), _) => (t, w),
            (t, w, Some((stored_t, stored_w))) => (t.unwrap_or(stored_t), w.unwrap_or(stored_w)),
            _ => {
                return Ok(Err(vec![UserError::new(
                    &["input", "config"],
                    UserErrorCode::InvalidState,
                    "the stored credentials do not open with the configured keys: give accessToken and webhookSecret together",
                )]));
            }
        };
        am.credentials = Set(seal(sealer, c.tenant_id, c.id, token, secret));
    }
    am.settings = Set(serde_json::json!(settings));
    am.updated_at = Set(repo::now());
    let updated = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    Ok(Ok(updated))
}

/// Pauses (`active = false`, with a reason) or resumes a connector.
pub async fn set_active(
    s: &Scoped,
    id: Uuid,
    active: bool,
    reason: Option<String>,
) -> Result<Outcome<connector::Model>, DbErr> {
    let c = match live(s, id).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let mut am: connector::ActiveModel = c.into();
    am.status = Set(if active { "active" } else { "paused" }.to_owned());
    am.status_reason = Set(if active { None } else { reason.filter(|r| !r.trim().is_empty()) });
    am.updated_at = Set(repo::now());
    Ok(Ok(sea_orm::ActiveModelTrait::update(am, &s.tx).await?))
}

/// Uninstalls a connector: its credentials are erased; the row stays for its history.
pub async fn uninstall(s: &Scoped, id: Uuid) -> Result<Outcome<connector::Model>, DbErr> {
    let c = match live(s, id).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let mut am: connector::ActiveModel = c.into();
    am.status = Set("uninstalled".to_owned());
    am.credentials = Set(String::new());
    am.status_reason = Set(None);
    am.updated_at = Set(repo::now());
    Ok(Ok(sea_orm::ActiveModelTrait::update(am, &s.tx).await?))
}

/// What became of an inbound webhook.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored for the sync engine.
    New,
    /// A retry (or a concurrent copy) of a delivery already stored: nothing changed.
    Duplicate,
}

/// Why an inbound webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// No such connector, or one that is uninstalled (it has no secret to check against).
    #[error("no such connector")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] qm_connectors::shopify::webhook::WebhookError),
    #[error(transparent)]
    NetSuite(#[from] qm_connectors::netsuite::inbound::InboundError),
    #[error(transparent)]
    Webhook(#[from] qm_integrations::webhooks::WebhookError),
    #[error(transparent)]
    ShipStation(#[from] qm_connectors::shipstation::webhook::Refused),
    /// A message signed for this connector about another NetSuite account.
    #[error("the message is about account {0}, not this connector's")]
    OtherAccount(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Receives a Shopify webhook for connector `id`: verifies the signature over the raw `body`
/// with the connector's webhook secret, stores the delivery once per `X-Shopify-Webhook-Id`
/// (three deliveries of one id, even at once, make one row), and pauses the connector on
/// `app/uninstalled`. Quick: the work itself is left to the sync engine.
pub async fn receive_webhook<'a>(
    db: &crate::db::Db,
    sealer: &Sealer,
    id: Uuid,
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Received, InboundError> {
    let c = installed(db, id, SHOPIFY).await?;
    let Some((_, secret)) = open_credentials(sealer, &c) else { return Err(InboundError::NotFound) };
    let delivery = qm_connectors::shopify::webhook::receive(secret.as_bytes(), body, header)?;
    let s = db.scoped(c.tenant_id, crate::db::TxMode::Write).await?;
    let row = delivery_row(&c, delivery.webhook_id.clone(), delivery.topic.clone(), delivery.triggered_at, body);
    if store_delivery(&s, row).await? == Received::Duplicate {
        s.commit().await?;
        return Ok(Received::Duplicate);
    }
    if delivery.topic == "app/uninstalled" && c.status == "active" {
        let mut am: connector::ActiveModel = c.into();
        am.status = Set("paused".to_owned());
        am.status_reason = Set(Some("the app was uninstalled from the shop".to_owned()));
        am.updated_at = Set(repo::now());
        sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    }
    s.commit().await?;
    tracing::info!(connector = %id, topic = %delivery.topic, webhook = %delivery.webhook_id, "webhook received");
    Ok(Received::New)
}

/// Receives a message of connector `id`'s NetSuite User Event script: verifies its signature
/// over the raw `body` and its timestamp (a replay more than five minutes later is refused),
/// stores it once per `X-QM-Event-Id` and queues applying it. Quick: the record is read back
/// from NetSuite by the job.
pub async fn receive_netsuite<'a>(
    db: &crate::db::Db,
    sealer: &Sealer,
    id: Uuid,
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Received, InboundError> {
    let c = installed(db, id, NETSUITE).await?;
    let Some((_, secret)) = open_netsuite(sealer, &c) else { return Err(InboundError::NotFound) };
    let now = chrono::Utc::now().timestamp();
    let message = qm_connectors::netsuite::inbound::verify(secret.as_bytes(), &header, body, now)?;
    let about = qm_connectors::netsuite::tba::realm(&message.change.account);
    if about != c.external_account {
        return Err(InboundError::OtherAccount(message.change.account));
    }
    let s = db.scoped(c.tenant_id, crate::db::TxMode::Write).await?;
    let row = delivery_row(
        &c,
        message.event_id.clone(),
        message.change.kind.clone(),
        chrono::DateTime::from_timestamp(message.timestamp, 0),
        body,
    );
    let received = store_delivery(&s, row).await?;
    s.commit().await?;
    tracing::info!(connector = %id, kind = %message.change.kind, record = %message.change.id, event = %message.event_id, ?received, "NetSuite change received");
    Ok(received)
}

/// Receives a ShipBob webhook for connector `id`: verifies it as Standard Webhooks (the
/// subscription's `whsec_` secret over `{webhook-id}.{webhook-timestamp}.{raw body}`; a timestamp
/// more than five minutes off is refused), stores it once per `webhook-id` (ShipBob retries for a
/// day and does not keep order), and queues applying it.
pub async fn receive_shipbob<'a>(
    db: &crate::db::Db,
    sealer: &Sealer,
    id: Uuid,
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Received, InboundError> {
    let c = installed(db, id, SHIPBOB).await?;
    let Some((_, secret)) = open_credentials(sealer, &c) else { return Err(InboundError::NotFound) };
    let now = chrono::Utc::now().timestamp();
    let delivery = qm_connectors::shipbob::webhook::verify(&secret, &header, body, now)?;
    let s = db.scoped(c.tenant_id, crate::db::TxMode::Write).await?;
    let row = delivery_row(
        &c,
        delivery.id.clone(),
        delivery.topic.clone(),
        chrono::DateTime::from_timestamp(delivery.timestamp, 0),
        body,
    );
    let received = store_delivery(&s, row).await?;
    s.commit().await?;
    tracing::info!(connector = %id, topic = %delivery.topic, webhook = %delivery.id, ?received, "ShipBob webhook received");
    Ok(received)
}

/// Receives a ShipStation webhook for connector `id`, stored once and applied by the sync engine.
/// - V2 (the `x-shipengine-*` headers): verified against the connector's configured public keys
///   (none configured: 404, as for a missing header); a tracking event is stored once per
///   tracking number and status, another once per resource.
/// - V1: unsigned, so accepted only with the connector's token in the URL (compared in constant
///   time); stored once per resource (V1 names no delivery id: the resource type and URL are the
///   key) and applied by fetching the resource from ShipStation.
pub async fn receive_shipstation<'h>(
    db: &crate::db::Db,
    sealer: &Sealer,
    id: Uuid,
    token: Option<&str>,
    body: &[u8],
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<Received, InboundError> {
    use qm_connectors::shipstation::webhook::{self as v2, Refused};
    use qm_integrations::webhooks::WebhookError;
    use sha2::Digest as _;
    let c = installed(db, id, SHIPSTATION).await?;
    let Some(secrets) = open_shipstation(sealer, &c) else { return Err(InboundError::NotFound) };
    let signed =
        v2::Headers { key_id: header(v2::KEY_ID), signature: header(v2::SIGNATURE), timestamp: header(v2::TIMESTAMP) };
    let is_v2 = signed.key_id.is_some() || signed.signature.is_some() || signed.timestamp.is_some();
    if is_v2 {
        let keys = settings_of(&c).shipstation.and_then(|x| x.webhook_public_keys);
        let keys = keys.and_then(|k| v2::PublicKeys::parse(&k).ok()).ok_or(Refused::Missing)?;
        v2::verify(&keys, &signed, body, repo::now())?;
    } else if !crate::auth::constant_time_eq(token.unwrap_or_default().as_bytes(), secrets.webhook_token.as_bytes()) {
        return Err(InboundError::Webhook(WebhookError::BadSignature));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| InboundError::Webhook(WebhookError::BadHeaders))?;
    let Some(kind) = v["resource_type"].as_str() else {
        return Err(InboundError::Webhook(WebhookError::BadHeaders));
    };
    let identity = match (v["resource_url"].as_str(), v["data"]["tracking_number"].as_str()) {
        (_, Some(number)) if is_v2 => {
            format!("track|{number}|{}", v["data"]["status_code"].as_str().unwrap_or_default())
        }
        (Some(url), _) => format!("{kind}|{url}"),
        (None, _) => return Err(InboundError::Webhook(WebhookError::BadHeaders)),
    };
    let key = sha2::Sha256::digest(identity.as_bytes());
    let at = signed.timestamp.and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok()).map(|t| t.to_utc());
    let s = db.scoped(c.tenant_id, crate::db::TxMode::Write).await?;
    let row = delivery_row(&c, key.iter().map(|b| format!("{b:02x}")).collect(), kind.to_owned(), at, body);
    let received = store_delivery(&s, row).await?;
    s.commit().await?;
    tracing::info!(connector = %id, kind, v2 = is_v2, ?received, "ShipStation webhook received");
    Ok(received)
}

/// Connector `id` of `kind` that can receive (not uninstalled), found before the tenant is known.
async fn installed(db: &crate::db::Db, id: Uuid, kind: &str) -> Result<connector::Model, InboundError> {
    let tx = db.connector_lookup(id).await?;
    let found = connector::Entity::find().filter(connector::Column::Id.eq(id)).one(&tx).await?;
    tx.commit().await?;
    found.filter(|c| c.status != "uninstalled" && c.kind == kind).ok_or(InboundError::NotFound)
}

/// A delivery to store, as received.
fn delivery_row(
    c: &connector::Model,
    webhook_id: String,
    topic: String,
    triggered_at: Option<chrono::DateTime<chrono::Utc>>,
    body: &[u8],
) -> connector_webhook::Model {
    connector_webhook::Model {
        tenant_id: c.tenant_id,
        connector_id: c.id,
        webhook_id,
        topic,
        triggered_at,
        body: String::from_utf8_lossy(body).into_owned(),
        status: "received".to_owned(),
        received_at: repo::now(),
    }
}

/// Stores a delivery once per id (three deliveries of one id, even at once, make one row) and
/// queues applying it with the first.
async fn store_delivery(s: &Scoped, row: connector_webhook::Model) -> Result<Received, DbErr> {
    let (connector_id, webhook_id) = (row.connector_id, row.webhook_id.clone());
    let inserted = connector_webhook::Entity::insert(connector_webhook::ActiveModel::from(row))
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                connector_webhook::Column::TenantId,
                connector_webhook::Column::ConnectorId,
                connector_webhook::Column::WebhookId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&s.tx)
        .await?;
    if inserted == 0 {
        return Ok(Received::Duplicate);
    }
    crate::services::sync::queue_webhook(s, connector_id, &webhook_id).await?;
    Ok(Received::New)
}

/// Every connector of the tenant, oldest first.
pub async fn list(s: &Scoped) -> Result<Vec<connector::Model>, DbErr> {
    repo::find::<connector::Entity>(s).order_by_asc(connector::Column::CreatedAt).all(&s.tx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_domains_and_versions() {
        assert!(is_shop_domain("example-shop.myshopify.com"));
        for bad in ["example.com", ".myshopify.com", "Ex.myshopify.com", "-a.myshopify.com", "a b.myshopify.com"] {
            assert!(!is_shop_domain(bad), "{bad}");
        }
        assert!(is_api_version("2026-01") && is_api_version("2025-10"));
        for bad in ["2026-02", "26-01", "2026-1", "latest", ""] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }
}
