//! Shopify, on the Admin GraphQL API (see ARCHITECTURE.md, "Connectors").
//!
//! - [`webhook`]: verifying an inbound webhook (base64 HMAC-SHA256 over the raw body) and
//!   reading its headers.
//! - [`throttle`]: the calculated-cost leaky bucket: how long to wait before sending a query, and
//!   what a THROTTLED or over-cost answer means.
//! - [`bulk`]: a bulk operation's JSONL result, streamed one top-level object at a time.
//! - [`import`]: the initial import through a bulk operation (start, poll, download from any
//!   group boundary).
//! - [`fulfillment`]: shipments made here sent to the shop (`fulfillmentCreate` on the open
//!   fulfilment orders, found again by tracking number when repeated).
//! - [`gid`]: global ids (`gid://shopify/ProductVariant/…`), parsed losslessly.
//! - [`page`]: one page of a Relay connection and the cursor of the next.
//! - [`client`]: the Admin GraphQL client (budgeting, waiting, retrying, smaller pages when a
//!   query costs too much) and the capability traits it implements.

pub mod bulk;
pub mod client;
pub mod fulfillment;
pub mod gid;
pub mod import;
pub mod page;
pub mod throttle;
pub mod webhook;
