//! The client of one connector's provider, whichever it is. The engine reads and writes through
//! the capability traits of `qm_connectors::source`; what only one provider has (Shopify's bulk
//! operations and cost bucket) is reached through [`Provider::shopify`].

use qm_connectors::ProviderError;
use qm_connectors::source::{
    CatalogSource, InventorySink, InventorySource, LocationSource, OrderSink, OrderSource, PriceSink, ReturnSink,
    ShipmentSink, ShipmentSource,
};
use qm_connectors::{netsuite, shipbob, shipstation, shopify};

use crate::db::entities::connector;
use crate::services::connectors::{NETSUITE, SHIPBOB, SHIPSTATION, SHOPIFY, settings_of};

pub enum Provider {
    Shopify(shopify::client::Client),
    NetSuite(netsuite::client::Client),
    ShipBob(shipbob::client::Client),
    ShipStation(shipstation::v1::Client),
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
            Provider::ShipStation(c) => c,
        }
    }

    pub fn catalog(&self) -> &dyn CatalogSource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
            Provider::ShipBob(c) => c,
            Provider::ShipStation(c) => c,
        }
    }

    pub fn inventory(&self) -> Result<&dyn InventorySource, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(c) => Ok(c),
            Provider::ShipBob(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_read(self.kind(), "stock (V1)"))),
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

    /// Where stock changed here goes; a 3PL owns its warehouses' stock and takes none.
    pub fn stock_sink(&self) -> Result<&dyn InventorySink, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "stock"))),
        }
    }

    /// Where returns of orders sent to an ERP are recorded.
    pub fn return_sink(&self) -> Result<&dyn ReturnSink, ProviderError> {
        match self {
            Provider::NetSuite(c) => Ok(c),
            _ => Err(ProviderError::Permanent(not_taken(self.kind(), "returns"))),
        }
    }

    /// The shipments a 3PL made of an order sent to it.
    pub fn shipment_source(&self) -> Result<&dyn ShipmentSource, ProviderError> {
        match self {
            Provider::ShipBob(c) => Ok(c),
            Provider::ShipStation(c) => Ok(c),
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
            Provider::ShipStation(c) => Ok(c),
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

/// Whether stock changed here is sent to connector `c`: a NetSuite account only with an account
/// for the adjustments configured; a 3PL never (its warehouses' stock is its own).
pub fn takes_stock(c: &connector::Model) -> bool {
    match c.kind.as_str() {
        NETSUITE => settings_of(c).netsuite.is_some_and(|n| n.adjustment_account_id.is_some()),
        SHIPBOB | SHIPSTATION => false,
        _ => true,
    }
}

/// The resources a sync of a connector of `kind` reads, in the engine's order.
pub fn resources(kind: &str) -> &'static [&'static str] {
    match kind {
        SHIPBOB => &["locations", "catalog", "inventory"],
        SHIPSTATION => &["locations", "catalog"],
        _ => &super::RESOURCES,
    }
}

/// Whether a connector of `kind` ships orders from warehouses of its own (a 3PL, a shipping
/// platform): orders allocated there are sent to it, and its shipments come back.
pub fn is_3pl(kind: &str) -> bool {
    matches!(kind, SHIPBOB | SHIPSTATION)
}

/// Whether a connector of `kind` is the stock master of the warehouses it is mapped to (ShipBob;
/// ShipStation's V1 reads no stock).
pub fn keeps_stock(kind: &str) -> bool {
    kind == SHIPBOB
}

/// Whether a connector of `kind` owns the catalog records it shares with ours (a store, an ERP),
/// or only links to them by SKU (a 3PL: it never changes a title or a price of ours).
pub fn owns_catalog(kind: &str) -> bool {
    !is_3pl(kind)
}
