//! The client of one connector's provider, whichever it is. The engine reads and writes through
//! the capability traits of `qm_connectors::source`; what only one provider has (Shopify's bulk
//! operations and cost bucket) is reached through [`Provider::shopify`].

use qm_connectors::ProviderError;
use qm_connectors::source::{
    CatalogSource, InboundSink, InventorySink, InventorySource, LocationSource, OrderSink, OrderSource, PriceSink,
    ReturnSink, ShipmentSink, ShipmentSource,
};
use qm_connectors::{netsuite, shipbob, shipstation, shopify};

use crate::db::entities::connector;
use crate::services::connectors::{NETSUITE, SHIPBOB, SHIPSTATION, SHOPIFY, settings_of};

pub enum Provider {
    Shopify(shopify::client::Client),
    NetSuite(netsuite::client::Client),
    ShipBob(shipbob::client::Client),
    ShipStation(ShipStation),
}

/// A ShipStation account's clients: V1 always, V2 (stock) when a V2 key is configured.
pub struct ShipStation {
    pub v1: shipstation::v1::Client,
    pub v2: Option<shipstation::v2::Client>,
}

impl Provider {
    /// The connector kind this client speaks for.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::Shopify(_) => SHOPIFY,
            Provider::NetSuite(_) => NETSUITE,
            Provider::ShipBob(_) => SHIPBOB,
            Provider::ShipStation(_) => SHIPSTATION,
        }
    }

    pub fn locations(&self) -> &dyn LocationSource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
            Provider::ShipBob(c) => c,
            Provider::ShipStation(c) => &c.v1,
        }
    }

    pub fn catalog(&self) -> &dyn CatalogSource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
            Provider::ShipBob(c) => c,
            Provider::ShipStation(c) => &c.v1,
        }
    }

    pub fn inventory(&self) -> Result<&dyn InventorySource, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(c) => Ok(c),
            Provider::ShipBob(c) => Ok(c),
            Provider::ShipStation(ShipStation { v2: Some(c), .. }) => Ok(c),
            _ => Err(ProviderError::Permanent(not_read(self.kind(), "stock without a V2 key"))),
        }
    }

    /// Orders placed with the provider (a 3PL has none of its own: it ships ours).
    pub fn orders(&self) -> Result<&dyn OrderSource, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_read(self.kind(), "orders"))),
        }
    }

    /// Where stock changed here goes; ShipBob owns its warehouses' stock and takes none.
    pub fn stock_sink(&self) -> Result<&dyn InventorySink, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(c) => Ok(c),
            Provider::ShipStation(ShipStation { v2: Some(c), .. }) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "stock"))),
        }
    }

    /// Where returns of orders sent to an ERP are recorded, or to a 3PL announced.
    pub fn return_sink(&self) -> Result<&dyn ReturnSink, ProviderError> {
        match self {
            Provider::NetSuite(c) => Ok(c),
            Provider::ShipBob(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "returns"))),
        }
    }

    /// Where inbound stock for a 3PL's warehouse is announced (ShipBob's receiving orders).
    pub fn inbound_sink(&self) -> Result<&dyn InboundSink, ProviderError> {
        match self {
            Provider::ShipBob(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "inbound stock"))),
        }
    }

    /// The shipments a 3PL made of an order sent to it.
    pub fn shipment_source(&self) -> Result<&dyn ShipmentSource, ProviderError> {
        match self {
            Provider::ShipBob(c) => Ok(c),
            Provider::ShipStation(c) => Ok(&c.v1),
            _ => Err(ProviderError::Permanent(not_read(self.kind(), "shipments on their own"))),
        }
    }

    /// Where approved prices go; an ERP is the master of its own prices and takes none.
    pub fn price_sink(&self) -> Result<&dyn PriceSink, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "prices"))),
        }
    }

    /// Where shipments made here are reported: a store's fulfilments, an ERP's item fulfilments.
    pub fn shipment_sink(&self) -> Result<&dyn ShipmentSink, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "shipments"))),
        }
    }

    /// Where orders are sent: an ERP's order book. A store takes none (it has its own).
    pub fn order_sink(&self) -> Result<&dyn OrderSink, ProviderError> {
        match self {
            Provider::NetSuite(c) => Ok(c),
            Provider::ShipBob(c) => Ok(c),
            Provider::ShipStation(c) => Ok(&c.v1),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "orders"))),
        }
    }

    /// The Shopify client, for what only Shopify has.
    pub fn shopify(&self) -> Option<&shopify::client::Client> {
        match self {
            Provider::Shopify(c) => Some(c),
            _ => None,
        }
    }
}

fn not_taken(kind: &str, what: &str) -> String {
    format!("a {kind} connector is not sent {what}")
}

fn not_read(kind: &str, what: &str) -> String {
    format!("a {kind} connector has no {what} to read")
}

/// Whether a connector of `kind` is sent `what` (`prices`, `shipments`): jobs are queued only for
/// those that are. (Orders: see `export::queue_export`.)
pub fn takes(kind: &str, what: &str) -> bool {
    match what {
        "prices" => kind == SHOPIFY,
        "shipments" => !is_3pl(kind),
        _ => true,
    }
}

/// Whether stock changed here at provider location `location` is sent to connector `c`: never to
/// the location's stock master (it counts its own), nor to ShipBob (it takes no stock writes);
/// to NetSuite only with an account for the adjustments configured, to ShipStation only through
/// V2 into the warehouse's inventory location.
pub fn takes_stock(c: &connector::Model, location: &str) -> bool {
    let settings = settings_of(c);
    let link = settings.location_mapping.iter().find(|l| l.provider_location_id == location);
    if link.is_some_and(|l| l.stock_master(&c.kind)) {
        return false;
    }
    match c.kind.as_str() {
        NETSUITE => settings.netsuite.is_some_and(|n| n.adjustment_account_id.is_some()),
        SHIPSTATION => {
            settings.shipstation.is_some_and(|x| x.v2) && link.is_some_and(|l| l.inventory_location_id.is_some())
        }
        SHIPBOB => false,
        _ => true,
    }
}

/// The resources a sync of connector `c` reads, in the engine's order.
pub fn resources(c: &connector::Model) -> &'static [&'static str] {
    match c.kind.as_str() {
        SHIPBOB => &["locations", "catalog", "inventory"],
        SHIPSTATION if settings_of(c).shipstation.is_some_and(|x| x.v2) => &["locations", "catalog", "inventory"],
        SHIPSTATION => &["locations", "catalog"],
        _ => &super::RESOURCES,
    }
}

/// Whether a connector of `kind` ships orders from warehouses of its own (a 3PL, a shipping
/// platform): orders allocated there are sent to it, and its shipments come back.
pub fn is_3pl(kind: &str) -> bool {
    matches!(kind, SHIPBOB | SHIPSTATION)
}

/// Whether a connector of `kind` owns the catalog records it shares with ours (a store, an ERP),
/// or only links to them by SKU (a 3PL: it never changes a title or a price of ours).
pub fn owns_catalog(kind: &str) -> bool {
    !is_3pl(kind)
}
