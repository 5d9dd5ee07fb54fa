//! Orders, shipments, returns and purchase orders.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use qm_connectors::source::Tracking;
use qm_domain::Role;
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::catalog::opt_gid;
use super::pagination::{Window, connection};
use super::types::{Order, OrderStatus, PurchaseOrder, PurchaseOrderStatus, Return, Shipment, filter_gid, parse_gid};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{order, purchase_order, return_, shipment};
use crate::db::repo;
use crate::services::orders;

#[derive(Default)]
pub struct OrdersQuery;

#[Object]
impl OrdersQuery {
    /// Orders, oldest first, optionally with one status.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        status: Option<OrderStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Order>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<order::Entity>(&s);
        if let Some(st) = status {
            q = q.filter(order::Column::Status.eq(st.as_str()));
        }
        let page = repo::page(&s, q, order::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Order))
    }

    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn shipments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Shipment>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<shipment::Entity>(&s), shipment::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Shipment))
    }

    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn returns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Return>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<return_::Entity>(&s), return_::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Return))
    }

    /// Purchase orders, oldest first: with `status`, those in it (`DRAFT`: approved from a plan,
    /// awaiting `purchaseOrderIssue`); with `supplierId`, one
    /// supplier's; with `locationId`, those delivering there. A supplier's key sees only its own
    /// supplier's.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn purchase_orders(
        &self,
        ctx: &Context<'_>,
        status: Option<PurchaseOrderStatus>,
        supplier_id: Option<ID>,
        location_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, PurchaseOrder>, ApiError> {
        let p = ctx.principal()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<purchase_order::Entity>(&s);
        if !p.has(Role::can_read) {
            // Supplier principals: their own supplier only; without one, nothing.
            q = q.filter(purchase_order::Column::SupplierId.eq(p.supplier_id.unwrap_or(Uuid::nil())));
        }
        if let Some(st) = status {
            q = q.filter(purchase_order::Column::Status.eq(st.as_str()));
        }
        q = filter_gid(q, purchase_order::Column::SupplierId, supplier_id.as_ref(), "Supplier");
        q = filter_gid(q, purchase_order::Column::LocationId, location_id.as_ref(), "Location");
        let page = repo::page(&s, q, purchase_order::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, PurchaseOrder))
    }
}

#[derive(InputObject)]
pub struct OrderLineInput {
    pub sku: String,
    pub quantity: i32,
}

#[derive(InputObject)]
pub struct OrderCreateInput {
    /// The order's id in the source system; creating the same externalId again returns the first order.
    pub external_id: String,
    /// Where to reserve. Without it, the first location that can fill the whole order is used.
    pub location_id: Option<ID>,
    pub lines: Vec<OrderLineInput>,
    /// Free-form delivery address.
    pub ship_to: Option<Json<serde_json::Value>>,
}

#[derive(SimpleObject)]
pub struct OrderCreatePayload {
    pub order: Option<Order>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct OrderCancelInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct OrderCancelPayload {
    pub order: Option<Order>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct OrderFulfillInput {
    pub id: ID,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// The carrier's tracking page, an `http` or `https` URL.
    pub tracking_url: Option<String>,
}

#[derive(SimpleObject)]
pub struct OrderFulfillPayload {
    pub order: Option<Order>,
    /// The parcel from the order's location, with the tracking given.
    pub shipment: Option<Shipment>,
    /// Every parcel: one per location the order ships from (an allocation may split it).
    pub shipments: Vec<Shipment>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct OrdersMutation;

#[Object]
impl OrdersMutation {
    /// Creates an order and reserves its stock atomically: all lines or nothing (`INSUFFICIENT_STOCK`).
    async fn order_create(&self, ctx: &Context<'_>, input: OrderCreateInput) -> Result<OrderCreatePayload, ApiError> {
        let p = ctx.operator()?;
        let req = orders::CreateRequest {
            external_id: input.external_id,
            location_id: opt_gid(input.location_id.as_ref(), "Location"),
            lines: input
                .lines
                .into_iter()
                .map(|l| orders::LineRequest { sku: l.sku, quantity: i64::from(l.quantity) })
                .collect(),
            ship_to: input.ship_to.map(|j| j.0),
        };
        Ok(match orders::create(ctx.db(), p, &req).await? {
            Ok(o) => OrderCreatePayload { order: Some(Order(o)), user_errors: vec![] },
            Err(user_errors) => OrderCreatePayload { order: None, user_errors },
        })
    }

    /// Cancels an order and releases its reserved stock.
    async fn order_cancel(&self, ctx: &Context<'_>, input: OrderCancelInput) -> Result<OrderCancelPayload, ApiError> {
        let p = ctx.operator()?;
        Ok(match orders::cancel(ctx.db(), p, parse_gid(&input.id, "Order")).await? {
            Ok(o) => OrderCancelPayload { order: Some(Order(o)), user_errors: vec![] },
            Err(user_errors) => OrderCancelPayload { order: None, user_errors },
        })
    }

    /// Ships an order: consumes its reservations and creates a shipment. An order mirrored from
    /// a connected store (shipped here or by a 3PL) is also sent to the store as a fulfilment
    /// with the carrier and tracking number, in the background.
    async fn order_fulfill(
        &self,
        ctx: &Context<'_>,
        input: OrderFulfillInput,
    ) -> Result<OrderFulfillPayload, ApiError> {
        let p = ctx.operator()?;
        let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.chars().count() > 100);
        let refuse = |field: &[&str], message: &str| {
            Ok(OrderFulfillPayload {
                order: None,
                shipment: None,
                shipments: vec![],
                user_errors: vec![UserError::invalid(field, message)],
            })
        };
        if too_long(&input.carrier) || too_long(&input.tracking_number) {
            return refuse(&["input"], "carrier and tracking number are at most 100 characters");
        }
        if let Some(url) = &input.tracking_url
            && !is_tracking_url(url)
        {
            return refuse(
                &["input", "trackingUrl"],
                "the tracking URL is an http or https URL of at most 2,000 characters",
            );
        }
        let tracking = Tracking { company: input.carrier, number: input.tracking_number, url: input.tracking_url };
        Ok(match orders::fulfill(ctx.db(), p, parse_gid(&input.id, "Order"), tracking).await? {
            Ok(f) => OrderFulfillPayload {
                order: Some(Order(f.order)),
                shipment: Some(Shipment(f.shipment)),
                shipments: f.shipments.into_iter().map(Shipment).collect(),
                user_errors: vec![],
            },
            Err(user_errors) => OrderFulfillPayload { order: None, shipment: None, shipments: vec![], user_errors },
        })
    }
}

/// A carrier's tracking page as a store accepts it: a web address (the rule every stored URL
/// follows; a carrier's page may be anywhere) of at most 2,000 characters.
fn is_tracking_url(raw: &str) -> bool {
    raw.chars().count() <= 2000 && qm_integrations::net::check_url(raw, true).is_ok()
}
