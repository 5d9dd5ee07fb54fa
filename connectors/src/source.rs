//! What a connector can do, as capability traits over provider-neutral records. The sync engine
//! (in `api/`) drives them page by page: each call takes the cursor the previous page returned
//! (the engine stores it as its checkpoint) and answers with the records it could read, the
//! per-record problems of those it could not (one bad record never fails the page), and the
//! cursor of the next page.
//!
//! Ids are the provider's, kept as the exact strings it sent; money is a decimal; times are UTC.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::ProviderError;

/// One page of records.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<T> {
    pub records: Vec<T>,
    pub problems: Vec<Problem>,
    /// The cursor to ask for next; `None` after the last page.
    pub next: Option<String>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch { records: Vec::new(), problems: Vec::new(), next: None }
    }
}

/// A record that could not be read or applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub external_id: String,
    pub message: String,
}

impl Problem {
    pub fn new(external_id: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { external_id: external_id.into(), message: message.into() }
    }
}

/// A stock location of the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalLocation {
    pub id: String,
    pub name: String,
    pub active: bool,
}

/// A variant (SKU) with the product it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalVariant {
    pub id: String,
    pub sku: String,
    pub title: String,
    pub barcode: Option<String>,
    pub price: Decimal,
    /// The shop's currency, ISO 4217.
    pub currency: String,
    /// The provider's stock-keeping item behind the variant (Shopify's inventory item).
    pub inventory_item_id: Option<String>,
    pub product: ExternalProduct,
    /// When the provider last changed the variant or its product.
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalProduct {
    pub id: String,
    pub handle: String,
    pub title: String,
    /// `active`, `draft` or `archived`.
    pub status: String,
    pub category: String,
}

/// The stock of one item at one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalLevel {
    pub id: String,
    pub inventory_item_id: String,
    pub location_id: String,
    pub on_hand: i64,
    pub available: i64,
    pub committed: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A customer order as the store holds it now.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalOrder {
    pub id: String,
    /// What the merchant calls it (`#1001`).
    pub name: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The provider location expected to ship what is still unfulfilled (Shopify: the open
    /// fulfilment order's assigned location), else the one that shipped last.
    pub location_id: Option<String>,
    pub currency: String,
    pub total: Option<Decimal>,
    pub lines: Vec<ExternalOrderLine>,
    pub fulfillments: Vec<ExternalFulfillment>,
    /// The returns customers started, with what they send back.
    pub returns: Vec<ExternalReturn>,
}

/// A return of some of an order's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalReturn {
    pub id: String,
    pub name: String,
    /// `requested`, `open`, `closed` (received and processed), `declined`, `canceled`.
    pub status: String,
    pub lines: Vec<ExternalReturnLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalReturnLine {
    pub id: String,
    /// The order line it returns (`None` for an item the order did not ship, such as an exchange).
    pub line_id: Option<String>,
    pub quantity: i64,
    /// The customer's reason (`defective`, `size_too_small`, …).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalOrderLine {
    pub id: String,
    /// `None` for a line that is not a stocked variant (a custom item, a deleted variant).
    pub variant_id: Option<String>,
    pub sku: Option<String>,
    /// Ordered, after removals by order edits.
    pub quantity: i64,
    /// Still to ship.
    pub unfulfilled: i64,
}

/// A shipment the store made (or was told about) for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalFulfillment {
    pub id: String,
    /// `success`, `cancelled`, `error`, `failure`, `open`, `pending`.
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub location_id: Option<String>,
    pub tracking: Vec<Tracking>,
    /// What it holds, by the provider's variant (a 3PL's shipments say; a store's fulfilments
    /// carried with their order leave it empty).
    pub items: Vec<ShippedItem>,
}

/// Units of one provider variant in a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedItem {
    pub variant_id: String,
    pub quantity: i64,
}

/// Where a shipment can be followed: the carrier, its number, the carrier's tracking page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    pub company: Option<String>,
    pub number: Option<String>,
    pub url: Option<String>,
}

/// Where the provider keeps stock.
#[async_trait::async_trait]
pub trait LocationSource: Send + Sync {
    async fn locations(&self, cursor: Option<&str>) -> Result<Batch<ExternalLocation>, ProviderError>;
}

/// The catalog: variants with their products, all of them or those changed since `since`.
#[async_trait::async_trait]
pub trait CatalogSource: Send + Sync {
    async fn variants(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError>;

    /// The variants of one product as they are now (after a webhook said it changed).
    async fn product_variants(
        &self,
        product_id: &str,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError>;
}

/// Stock levels at one of the provider's locations, all or those changed since `since`.
#[async_trait::async_trait]
pub trait InventorySource: Send + Sync {
    async fn levels(
        &self,
        location_id: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalLevel>, ProviderError>;

    /// One item's level at one location as it is now; `None` when the item is not stocked there.
    async fn level(&self, inventory_item_id: &str, location_id: &str) -> Result<Option<ExternalLevel>, ProviderError>;
}

/// Stock changes made on our side, sent to the provider.
#[async_trait::async_trait]
pub trait InventorySink: Send + Sync {
    /// Changes the item's stock at the location by `delta`. `key` makes it idempotent: sending
    /// the same key again (a retry after a lost answer) does not change it twice.
    async fn adjust(
        &self,
        key: &str,
        inventory_item_id: &str,
        location_id: &str,
        delta: i64,
        reference: &str,
    ) -> Result<(), ProviderError>;

    /// Whether [`InventorySink::adjust`] is idempotent by its key. A provider without an
    /// idempotency key (ShipStation's inventory) says no: a delta for it is sent as a
    /// compare-and-swap [`InventorySink::set`] from the level read before the first attempt, which
    /// a retry after a lost answer finds already done.
    fn keyed(&self) -> bool {
        true
    }

    /// Sets the item's on-hand stock at the location to `on_hand` if it is `expected` now
    /// (compare-and-swap): [`ProviderError::Stale`] when it is not, nothing written. `key` makes it
    /// idempotent, as for [`InventorySink::adjust`].
    async fn set(
        &self,
        key: &str,
        inventory_item_id: &str,
        location_id: &str,
        expected: i64,
        on_hand: i64,
        reference: &str,
    ) -> Result<(), ProviderError>;
}

/// Prices set on our side (approved price recommendations), sent to the provider.
#[async_trait::async_trait]
pub trait PriceSink: Send + Sync {
    /// Sets the prices of variants of one product: `(variant id, price)` in the provider's ids.
    /// Setting the same prices again changes nothing, so a retry is safe. A variant the provider
    /// does not have (or not under that product) is [`ProviderError::Permanent`], nothing set.
    async fn set_prices(&self, product_id: &str, prices: &[(String, Decimal)]) -> Result<(), ProviderError>;
}

/// Customer orders, all of them or those changed since `since`, with their fulfilments.
#[async_trait::async_trait]
pub trait OrderSource: Send + Sync {
    async fn orders(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalOrder>, ProviderError>;

    /// One order as it is now (after a webhook said it changed); `None` when the store has none
    /// by that id (deleted).
    async fn order(&self, order_id: &str) -> Result<Option<ExternalOrder>, ProviderError>;
}

/// The shipments the provider made of one order (a store's fulfilments, a 3PL's shipments) with
/// their tracking, as they are now; none when it has no such order. A store's orders carry
/// theirs as well ([`ExternalOrder::fulfillments`]); a 3PL serves them on their own.
#[async_trait::async_trait]
pub trait ShipmentSource: Send + Sync {
    async fn shipments(&self, order_id: &str) -> Result<Vec<ExternalFulfillment>, ProviderError>;
}

/// The returns of one order with their lines, as they are now; none when it has no such order.
#[async_trait::async_trait]
pub trait ReturnSource: Send + Sync {
    async fn returns(&self, order_id: &str) -> Result<Vec<ExternalReturn>, ProviderError>;
}

/// A line of an order shipped here, for the provider: the provider's line id and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedLine {
    pub line_id: String,
    pub quantity: i64,
}

/// Shipments made on our side (by us or a 3PL) of orders the provider holds, sent to it.
#[async_trait::async_trait]
pub trait ShipmentSink: Send + Sync {
    /// Tells the provider that `lines` of order `order_id` shipped with `tracking`; returns the
    /// provider's id of the shipment. Quantities the provider no longer has open are left out
    /// (partial quantities are respected). Safe to repeat: a shipment the provider already has
    /// (an attempt whose answer was lost) is found by its tracking number, not made again.
    async fn ship(&self, order_id: &str, lines: &[ShippedLine], tracking: &Tracking) -> Result<String, ProviderError>;
}

/// An order of ours (made here or mirrored from a store) sent to a system that keeps the order
/// book (an ERP) or ships it (a 3PL).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundOrder {
    /// Our id for it, the provider's idempotency key: sending it again changes that order.
    pub key: String,
    /// What the merchant calls it (`#1001`).
    pub number: String,
    pub created_at: DateTime<Utc>,
    /// The provider location it ships from, if it has one.
    pub location_id: Option<String>,
    pub lines: Vec<OutboundLine>,
    /// Where it goes, as our order holds it (`name`, `address1`, `city`, `postalCode`,
    /// `country`, …), when it says.
    pub ship_to: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboundLine {
    /// The provider's item.
    pub item_id: String,
    pub sku: String,
    pub quantity: i64,
    pub price: Decimal,
}

/// The provider's ids of an order it was sent: its own, and its line ids in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedOrder {
    pub id: String,
    pub line_ids: Vec<String>,
}

/// Orders sent to the provider.
#[async_trait::async_trait]
pub trait OrderSink: Send + Sync {
    /// Creates the order, or updates the one made by an earlier send of the same key: never two.
    async fn export(&self, order: &OutboundOrder) -> Result<ExportedOrder, ProviderError>;
}

/// A return of some of an order's units, for the provider: our id for it (its idempotency key),
/// the provider's order lines with how many come back (an ERP), and how many of each of the
/// provider's stock items come back (a 3PL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundReturn {
    pub key: String,
    pub lines: Vec<ShippedLine>,
    pub items: Vec<ItemUnits>,
}

/// Units of one of the provider's stock items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUnits {
    pub inventory_item_id: String,
    pub quantity: i64,
}

/// Returns recorded with the provider: in an ERP's books, authorised against the order, then
/// received; at a 3PL, announced to the warehouse, which reports the units' arrival itself
/// ([`ReturnSink::receives_itself`]). Both steps are safe to repeat: a step the provider already
/// has is found, not made again.
#[async_trait::async_trait]
pub trait ReturnSink: Send + Sync {
    /// Authorises the return against order `order_id` (a 3PL: the order it shipped); the
    /// provider's id of it. An ERP numbers its lines 1, 2, … in the order given.
    async fn authorize(&self, order_id: &str, ret: &OutboundReturn) -> Result<String, ProviderError>;

    /// Whether the provider receives the units itself and says so (a 3PL's warehouse), rather
    /// than being told with [`ReturnSink::receive`].
    fn receives_itself(&self) -> bool {
        false
    }

    /// Records the units of authorisation `authorization_id` as received; the receipt's id.
    async fn receive(&self, authorization_id: &str, ret: &OutboundReturn) -> Result<String, ProviderError>;
}

/// Goods on their way to one of the provider's warehouses (a purchase order of ours), for it to
/// expect: our reference (its idempotency key), the warehouse, when they should arrive, and the
/// units by the provider's stock item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOrder {
    pub reference: String,
    pub location_id: String,
    pub expected_at: DateTime<Utc>,
    pub items: Vec<ItemUnits>,
}

/// An inbound order as the provider has it now: its status (lower case) and the units received
/// so far by stock item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundStatus {
    pub id: String,
    pub status: String,
    pub received: Vec<ItemUnits>,
}

/// Inbound stock a 3PL's warehouse receives (ShipBob's receiving orders): announced from here, its
/// receipt read back.
#[async_trait::async_trait]
pub trait InboundSink: Send + Sync {
    /// Announces the goods; the provider's id of the inbound order. Safe to repeat: an order an
    /// earlier attempt made is found by its reference, not made again.
    async fn expect(&self, order: &InboundOrder) -> Result<String, ProviderError>;

    /// Inbound order `id` as it is now; `None` when the provider has none.
    async fn inbound(&self, id: &str) -> Result<Option<InboundStatus>, ProviderError>;

    /// Withdraws inbound order `id`: the goods will not come. Safe to repeat, and done when the
    /// provider has no such order; one the warehouse has begun to receive cannot be withdrawn
    /// (`Permanent`, with the provider's reason).
    async fn cancel(&self, id: &str) -> Result<(), ProviderError>;
}
