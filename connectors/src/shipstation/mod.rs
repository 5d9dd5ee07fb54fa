//! ShipStation (the shipping layer many stores use): a V1 client reading warehouses, products
//! and shipments and sending orders ([`v1`]), with V1's thin webhooks followed safely. Not yet:
//! V2 inventory and its RSA-signed webhooks.

pub mod v1;
