//! NetSuite (SuiteTalk REST web services and SuiteQL): Token-Based Authentication headers
//! ([`tba`]) or OAuth 2.0 client credentials ([`oauth2`]), SuiteQL's value formats ([`suiteql`]),
//! the client reading locations, items, stock and sales orders and writing adjustments, sales
//! orders, fulfilments and returns ([`client`]), and the signed messages of our User Event script
//! ([`inbound`]).

pub mod client;
pub mod inbound;
pub mod oauth2;
pub mod suiteql;
pub mod tba;
