//! NetSuite (SuiteTalk REST web services and SuiteQL): the pure pieces so far — Token-Based
//! Authentication headers ([`tba`]), SuiteQL's value formats ([`suiteql`]) and the signed
//! messages of our User Event script ([`inbound`]).

pub mod inbound;
pub mod suiteql;
pub mod tba;
