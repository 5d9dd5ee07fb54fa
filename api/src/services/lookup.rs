//! Finding single objects for `node(id:)` and for inputs that name other objects.

use qm_domain::Role;
use sea_orm::{ColumnTrait, DbErr, QueryFilter};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{
    TenantOwned, alert, alert_rule, api_key, connector, location, order, price_recommendation, pricing_run, product,
    purchase_order, replenishment_line, replenishment_run, return_, shipment, stock_movement, supplier, sync_run,
    transfer, user, variant, webhook_endpoint, webhook_message,
};
use crate::db::{Scoped, repo};
use crate::graphql::types::{self, Node};

async fn by_id<E: TenantOwned>(s: &Scoped, column: E::Column, id: Uuid) -> Result<Option<E::Model>, DbErr> {
    repo::find::<E>(s).filter(column.eq(id)).one(&s.tx).await
}

pub async fn alert_rule(s: &Scoped, id: Uuid) -> Result<Option<alert_rule::Model>, DbErr> {
    by_id::<alert_rule::Entity>(s, alert_rule::Column::Id, id).await
}

pub async fn alert(s: &Scoped, id: Uuid) -> Result<Option<alert::Model>, DbErr> {
    by_id::<alert::Entity>(s, alert::Column::Id, id).await
}

pub async fn location(s: &Scoped, id: Uuid) -> Result<Option<location::Model>, DbErr> {
    by_id::<location::Entity>(s, location::Column::Id, id).await
}

/// The scope key of a policy for the tenant (`None`: empty) or a location (its id), or
/// `NOT_FOUND` on `input.locationId` for an ID that is not one of the tenant's locations.
pub async fn location_scope(
    s: &Scoped,
    location: Option<Option<Uuid>>,
) -> Result<Result<String, crate::graphql::errors::UserError>, DbErr> {
    Ok(match location {
        None => Ok(String::new()),
        Some(Some(id)) if self::location(s, id).await?.is_some() => Ok(id.to_string()),
        Some(_) => Err(crate::graphql::errors::UserError::not_found(&["input", "locationId"], "location")),
    })
}

pub async fn supplier(s: &Scoped, id: Uuid) -> Result<Option<supplier::Model>, DbErr> {
    by_id::<supplier::Entity>(s, supplier::Column::Id, id).await
}

pub async fn order(s: &Scoped, id: Uuid) -> Result<Option<order::Model>, DbErr> {
    by_id::<order::Entity>(s, order::Column::Id, id).await
}

pub async fn variant(s: &Scoped, id: Uuid) -> Result<Option<variant::Model>, DbErr> {
    by_id::<variant::Entity>(s, variant::Column::Id, id).await
}

pub async fn webhook_endpoint(s: &Scoped, id: Uuid) -> Result<Option<webhook_endpoint::Model>, DbErr> {
    by_id::<webhook_endpoint::Entity>(s, webhook_endpoint::Column::Id, id).await
}

pub async fn variant_by_sku(s: &Scoped, sku: &str) -> Result<Option<variant::Model>, DbErr> {
    repo::find::<variant::Entity>(s).filter(variant::Column::Sku.eq(sku)).one(&s.tx).await
}

/// The SKUs of `ids` (those that exist), in statements of at most 500 ids.
pub async fn skus(s: &Scoped, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, String>, DbErr> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        for v in repo::find_in::<variant::Entity, _>(s, variant::Column::Id, chunk.to_vec(), "uuid", &[]).await? {
            out.insert(v.id, v.sku);
        }
    }
    Ok(out)
}

/// Resolves a global ID's parts to an object the principal may see, or `None`.
pub async fn node(s: &Scoped, p: &Principal, kind: &str, id: Uuid) -> Result<Option<Node>, DbErr> {
    if !p.has(Role::can_read) {
        // A supplier sees only its own purchase orders and contracts.
        return Ok(match kind {
            "PurchaseOrder" => by_id::<purchase_order::Entity>(s, purchase_order::Column::Id, id)
                .await?
                .filter(|po| Some(po.supplier_id) == p.supplier_id)
                .map(|m| Node::PurchaseOrder(types::PurchaseOrder(m))),
            "Contract" => crate::services::contracts::visible(s, p, Some(id))
                .await?
                .map(|c| Node::Contract(crate::graphql::contracts::Contract(c))),
            _ => None,
        });
    }
    let admin = p.has(Role::can_administer);
    Ok(match kind {
        "Location" => location(s, id).await?.map(|m| Node::Location(types::Location(m))),
        "Product" => {
            by_id::<product::Entity>(s, product::Column::Id, id).await?.map(|m| Node::Product(types::Product(m)))
        }
        "Variant" => variant(s, id).await?.map(|m| Node::Variant(types::Variant(m))),
        "Supplier" => supplier(s, id).await?.map(|m| Node::Supplier(types::Supplier(m))),
        "StockMovement" => by_id::<stock_movement::Entity>(s, stock_movement::Column::Id, id)
            .await?
            .map(|m| Node::StockMovement(types::StockMovement(m))),
        "Order" => order(s, id).await?.map(|m| Node::Order(types::Order(m))),
        "Shipment" => {
            by_id::<shipment::Entity>(s, shipment::Column::Id, id).await?.map(|m| Node::Shipment(types::Shipment(m)))
        }
        "Return" => by_id::<return_::Entity>(s, return_::Column::Id, id).await?.map(|m| Node::Return(types::Return(m))),
        "PurchaseOrder" => by_id::<purchase_order::Entity>(s, purchase_order::Column::Id, id)
            .await?
            .map(|m| Node::PurchaseOrder(types::PurchaseOrder(m))),
        "User" if admin => by_id::<user::Entity>(s, user::Column::Id, id).await?.map(|m| Node::User(types::User(m))),
        "WebhookEndpoint" if admin => {
            webhook_endpoint(s, id).await?.map(|m| Node::WebhookEndpoint(crate::graphql::webhooks::WebhookEndpoint(m)))
        }
        "WebhookMessage" if admin => by_id::<webhook_message::Entity>(s, webhook_message::Column::Id, id)
            .await?
            .map(|m| Node::WebhookMessage(crate::graphql::webhooks::WebhookMessage(m))),
        "ReplenishmentRun" => by_id::<replenishment_run::Entity>(s, replenishment_run::Column::Id, id)
            .await?
            .map(|m| Node::ReplenishmentRun(crate::graphql::replenish::ReplenishmentRun(m))),
        "ReplenishmentLine" => by_id::<replenishment_line::Entity>(s, replenishment_line::Column::Id, id)
            .await?
            .map(|m| Node::ReplenishmentLine(crate::graphql::replenish::ReplenishmentLine(m))),
        "Transfer" => by_id::<transfer::Entity>(s, transfer::Column::Id, id)
            .await?
            .map(|m| Node::Transfer(crate::graphql::replenish::Transfer(m))),
        "PricingRun" => by_id::<pricing_run::Entity>(s, pricing_run::Column::Id, id)
            .await?
            .map(|m| Node::PricingRun(crate::graphql::pricing::PricingRun(m))),
        "PriceRecommendation" => by_id::<price_recommendation::Entity>(s, price_recommendation::Column::Id, id)
            .await?
            .map(|m| Node::PriceRecommendation(crate::graphql::pricing::PriceRecommendation(m))),
        "Connector" if admin => by_id::<connector::Entity>(s, connector::Column::Id, id)
            .await?
            .map(|m| Node::Connector(crate::graphql::connectors::Connector(m))),
        "SyncRun" if admin => by_id::<sync_run::Entity>(s, sync_run::Column::Id, id)
            .await?
            .map(|m| Node::SyncRun(crate::graphql::connectors::SyncRun(m))),
        "Contract" => crate::services::contracts::visible(s, p, Some(id))
            .await?
            .map(|c| Node::Contract(crate::graphql::contracts::Contract(c))),
        "ReturnsRun" => crate::services::returns::run_by_id(s, id)
            .await?
            .map(|m| Node::ReturnsRun(crate::graphql::returns::ReturnsRun(m))),
        "ReturnDisposition" => crate::services::returns::disposition_by_id(s, id)
            .await?
            .map(|m| Node::ReturnDisposition(crate::graphql::returns::ReturnDisposition(m))),
        "ApiKey" if admin => {
            by_id::<api_key::Entity>(s, api_key::Column::Id, id).await?.map(|m| Node::ApiKey(types::ApiKey(m)))
        }
        _ => None,
    })
}
