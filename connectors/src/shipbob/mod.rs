//! ShipBob (a 3PL): the pure pieces so far — inbound webhook verification ([`webhook`]).

pub mod webhook;
