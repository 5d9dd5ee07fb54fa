//! DataLoaders, created per request (never in schema data) so their caches cannot cross tenants.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::ApiError;
use crate::db::entities::{
    TenantOwned, forecast, location, order, order_allocation, order_line, product, purchase_order, purchase_order_line,
    replenishment_line, return_line, route_plan_route, route_plan_stop, shipment, shipment_event, stock_level,
    supplier, supplier_item, transfer, variant,
};
use crate::db::{Db, TxMode, repo};

/// Loads rows of `E` by a UUID column (usually `id`).
pub struct ById<E: EntityTrait> {
    db: Db,
    tenant: Uuid,
    column: E::Column,
    key: fn(&E::Model) -> Uuid,
}

/// Loads the rows of `E` that point at each parent through a UUID column.
pub struct ByParent<E: EntityTrait> {
    db: Db,
    tenant: Uuid,
    column: E::Column,
    key: fn(&E::Model) -> Uuid,
}

async fn fetch<E>(db: &Db, tenant: Uuid, column: E::Column, keys: &[Uuid]) -> Result<Vec<E::Model>, ApiError>
where
    E: TenantOwned,
{
    let s = db.scoped(tenant, TxMode::Read).await?;
    let rows = repo::find::<E>(&s).filter(column.is_in(keys.iter().copied())).all(&s.tx).await?;
    s.commit().await?;
    Ok(rows)
}

impl<E> Loader<Uuid> for ById<E>
where
    E: TenantOwned + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
    E::Column: Send + Sync,
{
    type Value = E::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, E::Model>, ApiError> {
        let rows = fetch::<E>(&self.db, self.tenant, self.column, keys).await?;
        Ok(rows.into_iter().map(|m| ((self.key)(&m), m)).collect())
    }
}

impl<E> Loader<Uuid> for ByParent<E>
where
    E: TenantOwned + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
    E::Column: Send + Sync,
{
    type Value = Vec<E::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<E::Model>>, ApiError> {
        let rows = fetch::<E>(&self.db, self.tenant, self.column, keys).await?;
        let mut out: HashMap<Uuid, Vec<E::Model>> = HashMap::new();
        for m in rows {
            out.entry((self.key)(&m)).or_default().push(m);
        }
        Ok(out)
    }
}

/// Counts the forecasts each forecast run has stored (`ForecastRun.seriesDone`), for every run
/// a request lists in one grouped query.
pub struct ForecastsOfRun {
    db: Db,
    tenant: Uuid,
}

impl Loader<Uuid> for ForecastsOfRun {
    type Value = u64;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, u64>, ApiError> {
        use forecast::Column as C;
        let s = self.db.scoped(self.tenant, TxMode::Read).await?;
        let rows: Vec<(Uuid, i64)> = repo::find::<forecast::Entity>(&s)
            .select_only()
            .column(C::RunId)
            .column_as(Expr::expr(Func::count(Expr::col(C::VariantId))), "n")
            .filter(C::RunId.is_in(keys.iter().copied()))
            .group_by(C::RunId)
            .into_tuple()
            .all(&s.tx)
            .await?;
        s.commit().await?;
        Ok(rows.into_iter().map(|(run, n)| (run, u64::try_from(n).unwrap_or(0))).collect())
    }
}

/// Every loader a request may use.
pub struct Loaders {
    pub product: DataLoader<ById<product::Entity>>,
    pub variant: DataLoader<ById<variant::Entity>>,
    pub location: DataLoader<ById<location::Entity>>,
    pub supplier: DataLoader<ById<supplier::Entity>>,
    pub order: DataLoader<ById<order::Entity>>,
    pub purchase_order: DataLoader<ById<purchase_order::Entity>>,
    pub transfer: DataLoader<ById<transfer::Entity>>,
    pub allocation_of_order: DataLoader<ById<order_allocation::Entity>>,
    pub variants_of_product: DataLoader<ByParent<variant::Entity>>,
    pub stock_of_variant: DataLoader<ByParent<stock_level::Entity>>,
    pub lines_of_order: DataLoader<ByParent<order_line::Entity>>,
    pub shipments_of_order: DataLoader<ByParent<shipment::Entity>>,
    pub events_of_shipment: DataLoader<ByParent<shipment_event::Entity>>,
    pub lines_of_return: DataLoader<ByParent<return_line::Entity>>,
    pub lines_of_purchase_order: DataLoader<ByParent<purchase_order_line::Entity>>,
    pub lines_of_replenishment_run: DataLoader<ByParent<replenishment_line::Entity>>,
    pub forecasts_of_run: DataLoader<ForecastsOfRun>,
    pub items_of_supplier: DataLoader<ByParent<supplier_item::Entity>>,
    pub routes_of_route_plan: DataLoader<ByParent<route_plan_route::Entity>>,
    pub stops_of_route_plan: DataLoader<ByParent<route_plan_stop::Entity>>,
}

impl Loaders {
    pub fn new(db: &Db, tenant: Uuid) -> Self {
        macro_rules! by_id {
            ($e:ident) => {
                DataLoader::new(
                    ById::<$e::Entity> { db: db.clone(), tenant, column: $e::Column::Id, key: |m| m.id },
                    tokio::spawn,
                )
            };
        }
        macro_rules! by_parent {
            ($e:ident, $col:ident, $field:ident) => {
                DataLoader::new(
                    ByParent::<$e::Entity> { db: db.clone(), tenant, column: $e::Column::$col, key: |m| m.$field },
                    tokio::spawn,
                )
            };
        }
        Self {
            product: by_id!(product),
            variant: by_id!(variant),
            location: by_id!(location),
            supplier: by_id!(supplier),
            order: by_id!(order),
            purchase_order: by_id!(purchase_order),
            transfer: by_id!(transfer),
            allocation_of_order: DataLoader::new(
                ById::<order_allocation::Entity> {
                    db: db.clone(),
                    tenant,
                    column: order_allocation::Column::OrderId,
                    key: |m| m.order_id,
                },
                tokio::spawn,
            ),
            variants_of_product: by_parent!(variant, ProductId, product_id),
            stock_of_variant: by_parent!(stock_level, VariantId, variant_id),
            lines_of_order: by_parent!(order_line, OrderId, order_id),
            shipments_of_order: by_parent!(shipment, OrderId, order_id),
            events_of_shipment: by_parent!(shipment_event, ShipmentId, shipment_id),
            lines_of_return: by_parent!(return_line, ReturnId, return_id),
            lines_of_purchase_order: by_parent!(purchase_order_line, PurchaseOrderId, purchase_order_id),
            lines_of_replenishment_run: by_parent!(replenishment_line, RunId, run_id),
            forecasts_of_run: DataLoader::new(ForecastsOfRun { db: db.clone(), tenant }, tokio::spawn),
            items_of_supplier: by_parent!(supplier_item, SupplierId, supplier_id),
            routes_of_route_plan: by_parent!(route_plan_route, PlanId, plan_id),
            stops_of_route_plan: by_parent!(route_plan_stop, PlanId, plan_id),
        }
    }
}
