//! NetSuite (SuiteTalk REST web services and SuiteQL): the pure pieces so far — Token-Based
//! Authentication headers ([`tba`]) and SuiteQL's value formats ([`suiteql`]).

pub mod suiteql;
pub mod tba;
