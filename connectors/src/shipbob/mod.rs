//! ShipBob (a 3PL): a client of its dated API reading fulfilment centres, products, stock per
//! centre and shipments, and sending orders ([`client`]); inbound webhook verification
//! ([`webhook`]). Not yet: returns, receiving orders (WROs).

pub mod client;
pub mod webhook;
