//! The client of one connector's provider, whichever it is. The engine reads and writes through
//! the capability traits of `qm_connectors::source`; what only one provider has (Shopify's bulk
//! operations and cost bucket) is reached through [`Provider::shopify`].

use qm_connectors::ProviderError;
use qm_connectors::source::{
    CatalogSource, InventorySink, InventorySource, LocationSource, OrderSink, OrderSource, PriceSink, ShipmentSink,
};
use qm_connectors::{netsuite, shopify};

use crate::db::entities::connector;
use crate::services::connectors::{NETSUITE, SHOPIFY, settings_of};

pub enum Provider {
    Shopify(shopify::client::Client),
    NetSuite(netsuite::client::Client),
}

impl Provider {
    pub fn locations(&self) -> &dyn LocationSource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
        }
    }

    pub fn catalog(&self) -> &dyn CatalogSource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
        }
    }

    pub fn inventory(&self) -> &dyn InventorySource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
        }
    }

    pub fn orders(&self) -> &dyn OrderSource {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
        }
    }

    pub fn stock_sink(&self) -> &dyn InventorySink {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
        }
    }

    /// Where approved prices go; an ERP is the master of its own prices and takes none.
    pub fn price_sink(&self) -> Result<&dyn PriceSink, ProviderError> {
        match self {
            Provider::Shopify(c) => Ok(c),
            Provider::NetSuite(_) => Err(ProviderError::Permanent(not_taken(NETSUITE, "prices"))),
        }
    }

    /// Where shipments made here are reported: a store's fulfilments, an ERP's item fulfilments.
    pub fn shipment_sink(&self) -> &dyn ShipmentSink {
        match self {
            Provider::Shopify(c) => c,
            Provider::NetSuite(c) => c,
        }
    }

    /// Where orders are sent: an ERP's order book. A store takes none (it has its own).
    pub fn order_sink(&self) -> Result<&dyn OrderSink, ProviderError> {
        match self {
            Provider::Shopify(_) => Err(ProviderError::Permanent(not_taken(SHOPIFY, "orders"))),
            Provider::NetSuite(c) => Ok(c),
        }
    }

    /// The Shopify client, for what only Shopify has.
    pub fn shopify(&self) -> Option<&shopify::client::Client> {
        match self {
            Provider::Shopify(c) => Some(c),
            Provider::NetSuite(_) => None,
        }
    }
}

fn not_taken(kind: &str, what: &str) -> String {
    format!("a {kind} connector is not sent {what} by this version")
}

/// Whether a connector of `kind` is sent `what` (`prices`, `orders`): jobs are queued only for
/// those that are.
pub fn takes(kind: &str, what: &str) -> bool {
    match what {
        "prices" => kind == SHOPIFY,
        "orders" => kind == NETSUITE,
        _ => true,
    }
}

/// Whether stock changed here is sent to connector `c`: a NetSuite account only with an account
/// for the adjustments configured.
pub fn takes_stock(c: &connector::Model) -> bool {
    c.kind != NETSUITE || settings_of(c).netsuite.is_some_and(|n| n.adjustment_account_id.is_some())
}
