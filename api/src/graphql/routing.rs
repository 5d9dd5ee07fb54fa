//! Route plans: a day's deliveries from a location planned onto vehicles, and re-plans after
//! late changes.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{Location, Order, Shipment, filter_gid, gid, loaders, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{route_plan, route_plan_route, route_plan_stop};
use crate::db::repo;
use crate::services::routing as service;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RoutePlanStatus {
    Queued,
    Running,
    Ready,
    Failed,
    /// A re-plan of it is ready.
    Superseded,
}

stored_names!(RoutePlanStatus, "route plan status" {
    Queued => "queued",
    Running => "running",
    Ready => "ready",
    Failed => "failed",
    Superseded => "superseded",
});

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum MatrixSource {
    /// Road durations and distances from the configured OSRM server.
    Osrm,
    /// Great-circle distances at `routing_speed_kmh` (no OSRM configured).
    Haversine,
}

/// A day's deliveries from one location, planned onto vehicles.
#[derive(Clone)]
pub struct RoutePlan(pub route_plan::Model);

#[Object]
impl RoutePlan {
    pub async fn id(&self) -> ID {
        gid("RoutePlan", self.0.id)
    }
    async fn status(&self) -> Result<RoutePlanStatus, ApiError> {
        RoutePlanStatus::stored(&self.0.status)
    }
    /// Where the vehicles start and end.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        Ok(loaders(ctx)?.location.load_one(self.0.location_id).await?.map(Location))
    }
    async fn date(&self) -> NaiveDate {
        self.0.date
    }
    /// Where the durations and distances came from (set once the plan is ready).
    async fn matrix_source(&self) -> Option<MatrixSource> {
        match self.0.matrix_source.as_deref() {
            Some("osrm") => Some(MatrixSource::Osrm),
            Some("haversine") => Some(MatrixSource::Haversine),
            _ => None,
        }
    }
    /// Metres driven by every route.
    async fn distance(&self) -> f64 {
        self.0.distance_m
    }
    /// Seconds from departure to return, summed over the routes.
    async fn duration(&self) -> f64 {
        self.0.duration_s
    }
    /// Estimated kilograms of CO2 of every route (distance × each vehicle's emission factor).
    async fn co2_kg(&self) -> f64 {
        self.0.co2_kg
    }
    /// What the routes cost (per kilometre and per vehicle used).
    async fn cost(&self) -> Option<Decimal> {
        self.0.cost.map(|c| c.0)
    }
    /// Why a FAILED plan failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The plan this one re-plans.
    async fn base_plan_id(&self) -> Option<ID> {
        self.0.base_plan_id.map(|id| gid("RoutePlan", id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// The vehicles' tours, in the order of the fleet given (started routes kept by a re-plan
    /// first).
    #[graphql(complexity = "10 * child_complexity")]
    async fn routes(&self, ctx: &Context<'_>) -> Result<Vec<RoutePlanRoute>, ApiError> {
        let mut routes = loaders(ctx)?.routes_of_route_plan.load_one(self.0.id).await?.unwrap_or_default();
        routes.sort_by_key(|r| r.seq);
        Ok(routes.into_iter().map(RoutePlanRoute).collect())
    }
    /// Stops no route serves, each with the reason.
    #[graphql(complexity = "10 * child_complexity")]
    async fn unassigned(&self, ctx: &Context<'_>) -> Result<Vec<UnassignedStop>, ApiError> {
        let stops = loaders(ctx)?.stops_of_route_plan.load_one(self.0.id).await?.unwrap_or_default();
        let mut out: Vec<route_plan_stop::Model> = stops.into_iter().filter(|s| s.route_id.is_none()).collect();
        out.sort_by_key(|s| s.id);
        Ok(out.into_iter().map(UnassignedStop).collect())
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RouteStatus {
    Planned,
    /// On the road: a re-plan keeps it as it is.
    Started,
}

stored_names!(RouteStatus, "route status" {
    Planned => "planned",
    Started => "started",
});

/// One vehicle's tour from the location and back.
#[derive(Clone)]
pub struct RoutePlanRoute(pub route_plan_route::Model);

#[Object]
impl RoutePlanRoute {
    pub async fn id(&self) -> ID {
        gid("RoutePlanRoute", self.0.id)
    }
    /// The vehicle's name, as given in the fleet.
    async fn vehicle(&self) -> &str {
        &self.0.vehicle
    }
    async fn status(&self) -> Result<RouteStatus, ApiError> {
        RouteStatus::stored(&self.0.status)
    }
    /// Units carried, and what the vehicle carries.
    async fn load(&self) -> i32 {
        self.0.load
    }
    async fn capacity(&self) -> i32 {
        self.0.capacity
    }
    async fn departure_at(&self) -> DateTime<Utc> {
        self.0.departure_at
    }
    async fn return_at(&self) -> DateTime<Utc> {
        self.0.return_at
    }
    /// Metres driven.
    async fn distance(&self) -> f64 {
        self.0.distance_m
    }
    /// Seconds from departure to return (driving, service and waiting).
    async fn duration(&self) -> f64 {
        self.0.duration_s
    }
    /// Seconds of driving alone.
    async fn driving_duration(&self) -> f64 {
        self.0.driving_s
    }
    /// Estimated kilograms of CO2 (distance × the vehicle's emission factor).
    async fn co2_kg(&self) -> f64 {
        self.0.co2_kg
    }
    async fn cost(&self) -> Decimal {
        self.0.cost.0
    }
    /// The stops in the order they are served.
    #[graphql(complexity = "10 * child_complexity")]
    async fn stops(&self, ctx: &Context<'_>) -> Result<Vec<RoutePlanStop>, ApiError> {
        let stops = loaders(ctx)?.stops_of_route_plan.load_one(self.0.plan_id).await?.unwrap_or_default();
        let mut out: Vec<route_plan_stop::Model> =
            stops.into_iter().filter(|s| s.route_id == Some(self.0.id)).collect();
        out.sort_by_key(|s| s.seq);
        Ok(out.into_iter().map(RoutePlanStop).collect())
    }
}

/// A delivery on a route.
#[derive(Clone)]
pub struct RoutePlanStop(pub route_plan_stop::Model);

#[Object]
impl RoutePlanStop {
    /// 1 for the first stop of the route.
    async fn sequence(&self) -> i32 {
        self.0.seq
    }
    async fn order_id(&self) -> ID {
        gid("Order", self.0.order_id)
    }
    async fn order(&self, ctx: &Context<'_>) -> Result<Option<Order>, ApiError> {
        Ok(loaders(ctx)?.order.load_one(self.0.order_id).await?.map(Order))
    }
    /// The shipment delivered, when the plan was asked for shipments.
    async fn shipment_id(&self) -> Option<ID> {
        self.0.shipment_id.map(|id| gid("Shipment", id))
    }
    async fn shipment(&self, ctx: &Context<'_>) -> Result<Option<Shipment>, ApiError> {
        let Some(id) = self.0.shipment_id else { return Ok(None) };
        let shipments = loaders(ctx)?.shipments_of_order.load_one(self.0.order_id).await?.unwrap_or_default();
        Ok(shipments.into_iter().find(|s| s.id == id).map(Shipment))
    }
    async fn latitude(&self) -> Option<f64> {
        self.0.latitude
    }
    async fn longitude(&self) -> Option<f64> {
        self.0.longitude
    }
    /// Units delivered.
    async fn load(&self) -> i32 {
        self.0.demand
    }
    /// The estimated time of arrival.
    async fn arrival_at(&self) -> Option<DateTime<Utc>> {
        self.0.arrival_at
    }
    /// When service starts (later than arrival when the vehicle waits for a delivery window).
    async fn service_start_at(&self) -> Option<DateTime<Utc>> {
        self.0.service_start_at
    }
    async fn departure_at(&self) -> Option<DateTime<Utc>> {
        self.0.departure_at
    }
    /// Metres and seconds driven from the previous stop (or the location).
    async fn travel_distance(&self) -> Option<f64> {
        self.0.travel_distance_m
    }
    async fn travel_duration(&self) -> Option<f64> {
        self.0.travel_duration_s
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnassignedReason {
    /// The order's `shipTo` has no `latitude` and `longitude`.
    NoCoordinates,
    /// No road reaches it: too far from any road, or no route to or from the location.
    Unreachable,
    /// Its load exceeds every vehicle's capacity.
    Capacity,
    /// No vehicle reaches it within its delivery windows and is back within its shift.
    TimeWindow,
    /// It fits a vehicle on its own, but the fleet has no room left for it.
    NoVehicle,
}

/// A stop no route serves.
#[derive(Clone)]
pub struct UnassignedStop(pub route_plan_stop::Model);

#[Object]
impl UnassignedStop {
    async fn order_id(&self) -> ID {
        gid("Order", self.0.order_id)
    }
    async fn order(&self, ctx: &Context<'_>) -> Result<Option<Order>, ApiError> {
        Ok(loaders(ctx)?.order.load_one(self.0.order_id).await?.map(Order))
    }
    async fn shipment_id(&self) -> Option<ID> {
        self.0.shipment_id.map(|id| gid("Shipment", id))
    }
    async fn load(&self) -> i32 {
        self.0.demand
    }
    async fn reason(&self) -> UnassignedReason {
        match self.0.reason.as_deref() {
            Some("no_coordinates") => UnassignedReason::NoCoordinates,
            Some("unreachable") => UnassignedReason::Unreachable,
            Some("capacity") => UnassignedReason::Capacity,
            Some("time_window") => UnassignedReason::TimeWindow,
            _ => UnassignedReason::NoVehicle,
        }
    }
    /// The reason in a sentence.
    async fn message(&self) -> &str {
        self.0.message.as_deref().unwrap_or_default()
    }
}

#[derive(Default)]
pub struct RoutingQuery;

#[Object]
impl RoutingQuery {
    /// Route plans, oldest first (`last: 10` for the latest), of one location or date if given.
    #[allow(clippy::too_many_arguments)]
    async fn route_plans(
        &self,
        ctx: &Context<'_>,
        location_id: Option<ID>,
        date: Option<NaiveDate>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, RoutePlan>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<route_plan::Entity>(&s);
        q = filter_gid(q, route_plan::Column::LocationId, location_id.as_ref(), "Location");
        if let Some(d) = date {
            q = q.filter(route_plan::Column::Date.eq(d));
        }
        let page = repo::page(&s, q, route_plan::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, RoutePlan))
    }

    /// A route plan by its ID; null when there is none.
    async fn route_plan(&self, ctx: &Context<'_>, id: ID) -> Result<Option<RoutePlan>, ApiError> {
        let p = ctx.reader()?;
        let Some(id) = parse_gid(&id, "RoutePlan") else { return Ok(None) };
        let s = read_tx(ctx, p).await?;
        let plan = service::plan_by_id(&s, Some(id)).await?;
        s.commit().await?;
        Ok(plan.map(RoutePlan))
    }
}

/// One vehicle of the fleet.
#[derive(InputObject)]
pub struct RouteVehicleInput {
    /// Unique within the plan (a registration or a driver's name).
    pub name: String,
    /// Units it carries.
    pub capacity: i32,
    /// When it may leave the location (UTC, default 08:00:00).
    pub shift_start: Option<NaiveTime>,
    /// When it must be back (UTC, default 20:00:00).
    pub shift_end: Option<NaiveTime>,
    /// Default 1.
    pub cost_per_km: Option<Decimal>,
    /// What using the vehicle at all costs (default 0).
    pub fixed_cost: Option<Decimal>,
    /// Grams of CO2 per kilometre (default 200, a diesel delivery van).
    pub co2_grams_per_km: Option<f64>,
}

#[derive(InputObject)]
pub struct RoutePlanRunInput {
    /// The location the vehicles start from and return to (it needs a latitude and longitude).
    pub location_id: ID,
    /// The day planned (shifts and delivery windows are on this date, UTC).
    pub date: NaiveDate,
    pub vehicles: Vec<RouteVehicleInput>,
    /// Plan these shipments of the location; absent: the location's unshipped orders placed by
    /// the end of `date`. A stop's place is its order's `shipTo` (`latitude`, `longitude`,
    /// optional `deliveryWindows: [{from, to}]` and `serviceMinutes`).
    pub shipment_ids: Option<Vec<ID>>,
    /// Minutes spent at each stop (default 5).
    pub service_minutes: Option<f64>,
    /// How long the solver searches (default `routing_time_limit_seconds`; at most 30). 0: the
    /// construction alone, a feasible plan in milliseconds for interactive use.
    pub time_limit_seconds: Option<f64>,
    /// The solver's seed (default 0).
    pub seed: Option<i32>,
}

/// Late changes to a ready plan.
#[derive(InputObject)]
pub struct RoutePlanChangesInput {
    /// Orders no longer to deliver (one on a started route stays there: started routes are
    /// kept exactly as they are).
    #[graphql(default)]
    pub cancelled_order_ids: Vec<ID>,
    /// Orders to deliver as well (an urgent order): unshipped orders of the plan's location.
    #[graphql(default)]
    pub added_order_ids: Vec<ID>,
    /// Routes now on the road; routes started before stay started. Started routes are kept
    /// exactly as they are.
    #[graphql(default)]
    pub started_route_ids: Vec<ID>,
    /// Routes whose vehicle is out of service: the vehicle is left out, and the stops it had not
    /// reached by `asOf` are planned onto the other vehicles.
    #[graphql(default)]
    pub broken_down_route_ids: Vec<ID>,
    /// When the changes take effect (default now): no vehicle not yet on the road leaves
    /// earlier.
    pub as_of: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct RoutePlanPayload {
    /// The plan queued: it turns READY (`route_plan.ready`) or FAILED.
    pub route_plan: Option<RoutePlan>,
    pub user_errors: Vec<UserError>,
}

impl From<crate::graphql::errors::Outcome<route_plan::Model>> for RoutePlanPayload {
    fn from(outcome: crate::graphql::errors::Outcome<route_plan::Model>) -> Self {
        match outcome {
            Ok(p) => Self { route_plan: Some(RoutePlan(p)), user_errors: vec![] },
            Err(user_errors) => Self { route_plan: None, user_errors },
        }
    }
}

/// IDs of `kind`; one that is not such an ID becomes the nil UUID, which nothing has, so the
/// service reports it as not found at its index.
fn ids(list: &[ID], kind: &str) -> Vec<Uuid> {
    list.iter().map(|id| parse_gid(id, kind).unwrap_or_default()).collect()
}

#[derive(Default)]
pub struct RoutingMutation;

#[Object]
impl RoutingMutation {
    /// Plans a day's deliveries from a location as a job: the plan is QUEUED, then READY with
    /// its routes (or FAILED), announced by `route_plan.ready`.
    async fn route_plan_run(&self, ctx: &Context<'_>, input: RoutePlanRunInput) -> Result<RoutePlanPayload, ApiError> {
        let p = ctx.operator()?;
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
        let vehicles = input
            .vehicles
            .into_iter()
            .map(|v| service::Vehicle {
                name: v.name,
                capacity: i64::from(v.capacity),
                shift_start: v.shift_start.unwrap_or(hm(8, 0)),
                shift_end: v.shift_end.unwrap_or(hm(20, 0)),
                cost_per_km: v.cost_per_km.unwrap_or(Decimal::ONE),
                fixed_cost: v.fixed_cost.unwrap_or(Decimal::ZERO),
                co2_g_per_km: v.co2_grams_per_km.unwrap_or(200.0),
            })
            .collect();
        let request = service::Request {
            vehicles,
            shipment_ids: input.shipment_ids.map(|l| ids(&l, "Shipment")),
            service_minutes: input.service_minutes.unwrap_or(5.0),
            time_limit_seconds: input
                .time_limit_seconds
                .unwrap_or(ctx.state().config.routing_time_limit_seconds.min(service::MAX_TIME_LIMIT_SECONDS)),
            seed: input.seed.map_or(0, |s| u64::from(s.unsigned_abs())),
        };
        let location = parse_gid(&input.location_id, "Location");
        if let Some(busy) = super::queue_full(ctx, p).await? {
            return Ok(Err(vec![busy]).into());
        }
        Ok(service::run(ctx.db(), p, location, input.date, request).await?.into())
    }

    /// Re-plans a ready plan after late changes (a cancelled stop, an urgent order, a vehicle
    /// breakdown) as a new plan: started routes are kept exactly as they are, the rest is
    /// planned again; the old plan turns SUPERSEDED when the new one is ready.
    async fn route_plan_reoptimise(
        &self,
        ctx: &Context<'_>,
        id: ID,
        changes: RoutePlanChangesInput,
    ) -> Result<RoutePlanPayload, ApiError> {
        let p = ctx.operator()?;
        let changes = service::Changes {
            cancelled_order_ids: ids(&changes.cancelled_order_ids, "Order"),
            added_order_ids: ids(&changes.added_order_ids, "Order"),
            started_route_ids: ids(&changes.started_route_ids, "RoutePlanRoute"),
            broken_down_route_ids: ids(&changes.broken_down_route_ids, "RoutePlanRoute"),
            as_of: changes.as_of.unwrap_or_else(repo::now),
        };
        if let Some(busy) = super::queue_full(ctx, p).await? {
            return Ok(Err(vec![busy]).into());
        }
        Ok(service::reoptimise(ctx.db(), p, parse_gid(&id, "RoutePlan"), changes).await?.into())
    }
}
