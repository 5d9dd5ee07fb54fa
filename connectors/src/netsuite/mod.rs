//! NetSuite (SuiteTalk REST web services and SuiteQL): Token-Based Authentication headers
//! ([`tba`]), SuiteQL's value formats ([`suiteql`]), a SuiteQL client reading locations, items,
//! stock per location and sales orders ([`client`]), and the signed messages of our User Event script
//! ([`inbound`]). Not yet: fulfilments, returns and stock pushed back, OAuth 2.0, and the sync
//! engine driving this client.

pub mod client;
pub mod inbound;
pub mod suiteql;
pub mod tba;
