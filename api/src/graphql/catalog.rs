//! Locations, products, variants and suppliers.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{Condition, QueryFilter};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{Location, LocationKind, Product, Supplier, Variant, parse_gid};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{location, product, supplier};
use crate::db::repo;
use crate::services::{catalog, lookup};

/// Parses an optional global ID: `None` if absent, `Some(None)` if given but not ours.
pub fn opt_gid(id: Option<&ID>, kind: &str) -> Option<Option<Uuid>> {
    id.map(|id| parse_gid(id, kind))
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Warehouses and stores, ordered by creation.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn locations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Location>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<location::Entity>(&s), location::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Location))
    }

    /// Products, ordered by creation. `query` matches a case-insensitive substring of title, handle or category.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Product>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        if query.as_ref().is_some_and(|q| q.chars().count() > 200) {
            return Err(ApiError::BadUserInput("query is at most 200 characters".into()));
        }
        let s = read_tx(ctx, p).await?;
        let mut select = repo::find::<product::Entity>(&s);
        if let Some(q) = query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            // Case-insensitive substring on both backends; the user's % and _ match literally.
            use sea_orm::sea_query::ExprTrait as _;
            let escaped: String = q
                .to_lowercase()
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            let pattern = format!("%{escaped}%");
            let like = |col: product::Column| {
                Expr::expr(Func::lower(Expr::col(col))).like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            select = select.filter(
                Condition::any()
                    .add(like(product::Column::Title))
                    .add(like(product::Column::Handle))
                    .add(like(product::Column::Category)),
            );
        }
        let page = repo::page(&s, select, product::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Product))
    }

    /// A variant by global ID; `null` when it does not exist in your tenant.
    async fn variant(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Variant>, ApiError> {
        let p = ctx.reader()?;
        let Some(id) = parse_gid(&id, "Variant") else { return Ok(None) };
        let s = read_tx(ctx, p).await?;
        let v = lookup::variant(&s, id).await?;
        s.commit().await?;
        Ok(v.map(Variant))
    }

    /// A variant by SKU; `null` when no variant has it.
    async fn variant_by_sku(&self, ctx: &Context<'_>, sku: String) -> Result<Option<Variant>, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let v = lookup::variant_by_sku(&s, &sku).await?;
        s.commit().await?;
        Ok(v.map(Variant))
    }

    /// Suppliers, ordered by creation.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn suppliers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Supplier>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<supplier::Entity>(&s), supplier::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Supplier))
    }
}

#[derive(InputObject)]
pub struct LocationUpsertInput {
    /// Update this location; without it the location with the same code is updated or a new one created.
    pub id: Option<ID>,
    pub code: String,
    pub name: String,
    pub kind: LocationKind,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The volume the location holds (in the unit of the variants' `unitVolume`); replenishment
    /// plans deliver no more than the room left. None: no limit.
    pub capacity_volume: Option<f64>,
}

#[derive(SimpleObject)]
pub struct LocationUpsertPayload {
    pub location: Option<Location>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct VariantInput {
    pub sku: String,
    pub title: String,
    pub price: Decimal,
    pub currency_code: String,
    /// The volume of one unit, for locations' `capacityVolume` (none: takes no room).
    pub unit_volume: Option<f64>,
}

#[derive(InputObject)]
pub struct ProductUpsertInput {
    pub id: Option<ID>,
    pub handle: String,
    pub title: String,
    pub category: Option<String>,
    /// active (default), draft or archived.
    pub status: Option<String>,
    /// Variants to create or update, matched by SKU. Variants not listed are left alone.
    pub variants: Vec<VariantInput>,
}

#[derive(SimpleObject)]
pub struct ProductUpsertPayload {
    pub product: Option<Product>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct SupplierItemInput {
    pub sku: String,
    pub unit_cost: Decimal,
    pub moq: Option<i32>,
    pub pack_size: Option<i32>,
    pub lead_time_mean_days: Option<Decimal>,
    pub lead_time_std_dev_days: Option<Decimal>,
    /// All-units price breaks above the first unit, ascending by quantity (replaces the item's breaks).
    #[graphql(default)]
    pub price_breaks: Vec<PriceBreakInput>,
}

/// From `minQuantity` units in one order on, every unit costs `unitCost`.
#[derive(InputObject)]
pub struct PriceBreakInput {
    pub min_quantity: i32,
    pub unit_cost: Decimal,
}

#[derive(InputObject)]
pub struct SupplierUpsertInput {
    pub id: Option<ID>,
    pub name: String,
    pub email: Option<String>,
    pub lead_time_mean_days: Decimal,
    pub lead_time_std_dev_days: Decimal,
    pub currency_code: String,
    #[graphql(default)]
    pub items: Vec<SupplierItemInput>,
    /// Fixed cost of each line ordered (handling and receiving one SKU's delivery; 0 when not given).
    pub order_line_cost: Option<Decimal>,
    /// Most a replenishment plan may spend with this supplier (none when not given).
    pub plan_budget: Option<Decimal>,
    /// Most units a replenishment plan may order from this supplier (none when not given).
    pub plan_capacity_units: Option<i32>,
}

#[derive(SimpleObject)]
pub struct SupplierUpsertPayload {
    pub supplier: Option<Supplier>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    async fn location_upsert(
        &self,
        ctx: &Context<'_>,
        input: LocationUpsertInput,
    ) -> Result<LocationUpsertPayload, ApiError> {
        let p = ctx.operator()?;
        let req = catalog::LocationUpsert {
            id: opt_gid(input.id.as_ref(), "Location"),
            code: input.code,
            name: input.name,
            kind: input.kind.as_str(),
            latitude: input.latitude,
            longitude: input.longitude,
            capacity_volume: input.capacity_volume,
        };
        Ok(match catalog::upsert_location(ctx.db(), p, &req).await? {
            Ok(m) => LocationUpsertPayload { location: Some(Location(m)), user_errors: vec![] },
            Err(user_errors) => LocationUpsertPayload { location: None, user_errors },
        })
    }

    async fn product_upsert(
        &self,
        ctx: &Context<'_>,
        input: ProductUpsertInput,
    ) -> Result<ProductUpsertPayload, ApiError> {
        let p = ctx.operator()?;
        let status = input.status.unwrap_or_else(|| "active".into());
        if !["active", "draft", "archived"].contains(&status.as_str()) {
            return Ok(ProductUpsertPayload {
                product: None,
                user_errors: vec![UserError::invalid(&["input", "status"], "status must be active, draft or archived")],
            });
        }
        let req = catalog::ProductUpsert {
            id: opt_gid(input.id.as_ref(), "Product"),
            handle: input.handle,
            title: input.title,
            category: input.category.unwrap_or_default(),
            status,
            variants: input
                .variants
                .into_iter()
                .map(|v| catalog::VariantUpsert {
                    sku: v.sku,
                    title: v.title,
                    price: v.price,
                    currency: v.currency_code,
                    unit_volume: v.unit_volume,
                })
                .collect(),
        };
        Ok(match catalog::upsert_product(ctx.db(), p, &req).await? {
            Ok(m) => ProductUpsertPayload { product: Some(Product(m)), user_errors: vec![] },
            Err(user_errors) => ProductUpsertPayload { product: None, user_errors },
        })
    }

    async fn supplier_upsert(
        &self,
        ctx: &Context<'_>,
        input: SupplierUpsertInput,
    ) -> Result<SupplierUpsertPayload, ApiError> {
        let p = ctx.operator()?;
        let req = catalog::SupplierUpsert {
            id: opt_gid(input.id.as_ref(), "Supplier"),
            name: input.name,
            email: input.email,
            lead_time_mean_days: input.lead_time_mean_days,
            lead_time_std_days: input.lead_time_std_dev_days,
            currency: input.currency_code,
            items: input
                .items
                .into_iter()
                .map(|i| catalog::SupplierItemUpsert {
                    sku: i.sku,
                    unit_cost: i.unit_cost,
                    moq: i.moq.unwrap_or(1),
                    pack_size: i.pack_size.unwrap_or(1),
                    lead_time_mean_days: i.lead_time_mean_days,
                    lead_time_std_days: i.lead_time_std_dev_days,
                    price_breaks: i
                        .price_breaks
                        .into_iter()
                        .map(|b| catalog::PriceBreak { min_qty: b.min_quantity, unit_cost: b.unit_cost })
                        .collect(),
                })
                .collect(),
            order_line_cost: input.order_line_cost.unwrap_or_default(),
            plan_budget: input.plan_budget,
            plan_capacity_units: input.plan_capacity_units,
        };
        Ok(match catalog::upsert_supplier(ctx.db(), p, &req).await? {
            Ok(m) => SupplierUpsertPayload { supplier: Some(Supplier(m)), user_errors: vec![] },
            Err(user_errors) => SupplierUpsertPayload { supplier: None, user_errors },
        })
    }
}
