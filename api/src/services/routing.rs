//! Route plans: a day's deliveries from one location planned onto vehicles over road durations
//! and distances (`routing::roads`), by the solver in `qm_domain::routing`.
//!
//! `run` records a queued plan and its `route_plan.run` job; the job reads the stops (the
//! location's unshipped orders of the day, or the shipments named), asks for the matrices outside
//! any transaction, solves on a blocking thread, and in one transaction stores routes and stops,
//! marks the plan ready and emits `route_plan.ready`. `reoptimise` records a re-plan of a ready
//! plan with changes (stops cancelled, orders added, routes started or broken down): started
//! routes are copied as they are, the rest is planned again, and the plan it changes becomes
//! `superseded` when the re-plan is ready.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use qm_domain::routing::problem::{Client, Matrix, Problem, VehicleType};
use qm_domain::routing::search::{self, Options};
use qm_domain::routing::solution::{Route, Unserved, schedule, why_unassigned};
use qm_integrations::osrm::Point;
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{Dec, order, order_line, route_plan, route_plan_route, route_plan_stop, shipment};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::events;
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::graphql::types::gid;
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::routing::Limit;
use crate::services::{lookup, runs};
use crate::state::AppState;

pub const RUN: &str = "route_plan.run";

pub fn register(r: Registry) -> Registry {
    r.with(RUN, RunJob)
}

/// One vehicle of the fleet a plan may use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vehicle {
    pub name: String,
    /// Units it carries.
    pub capacity: i64,
    /// When it may leave and must be back (UTC, on the plan's date).
    pub shift_start: NaiveTime,
    pub shift_end: NaiveTime,
    pub cost_per_km: Decimal,
    /// What using it at all costs.
    pub fixed_cost: Decimal,
    /// Grams of CO2 per kilometre driven.
    pub co2_g_per_km: f64,
}

/// What a plan was asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub vehicles: Vec<Vehicle>,
    /// Plan these shipments; `None`: the location's unshipped orders of the day.
    pub shipment_ids: Option<Vec<Uuid>>,
    /// Minutes at each stop (an order's `shipTo.serviceMinutes` wins).
    pub service_minutes: f64,
    pub time_limit_seconds: f64,
    pub seed: u64,
}

/// The late changes a re-plan makes to its base plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// Orders no longer to deliver.
    pub cancelled_order_ids: Vec<Uuid>,
    /// Orders to deliver as well (an urgent order).
    pub added_order_ids: Vec<Uuid>,
    /// Routes on the road: kept exactly as they are.
    pub started_route_ids: Vec<Uuid>,
    /// Routes whose vehicle is out of service: stops it had not reached by `asOf` are planned
    /// again on the other vehicles.
    pub broken_down_route_ids: Vec<Uuid>,
    /// When the changes take effect: vehicles not yet on the road leave no earlier.
    pub as_of: DateTime<Utc>,
}

/// Why a stop is left out of a plan (stored snake case; `UnassignedReason` in GraphQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The order's `shipTo` has no latitude and longitude.
    NoCoordinates,
    /// No road reaches it (too far from any road, or no route to or from the depot).
    Unreachable,
    /// Its load exceeds every vehicle's capacity.
    Capacity,
    /// No vehicle can reach it within its delivery windows and be back within its shift.
    TimeWindow,
    /// It fits a vehicle on its own, but the fleet has no room left.
    NoVehicle,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoCoordinates => "no_coordinates",
            Reason::Unreachable => "unreachable",
            Reason::Capacity => "capacity",
            Reason::TimeWindow => "time_window",
            Reason::NoVehicle => "no_vehicle",
        }
    }
}

/// The most a plan may search: well inside a job's run time (0.9 of the worker lease, 60 s by
/// default), with room for the matrices. The job also keeps it under half the lease.
pub const MAX_TIME_LIMIT_SECONDS: f64 = 30.0;

/// The most vehicles and stops one plan takes (a day of a large depot; the matrices of 2,000
/// stops are 64 MB).
const MAX_VEHICLES: usize = 500;
const MAX_STOPS: usize = 2_000;

/// Dates a plan may be for (times on them stay far inside what the clock arithmetic holds).
fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN)
}
fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 30).unwrap_or(NaiveDate::MAX)
}

fn invalid(field: &[&str], message: impl Into<String>) -> Vec<UserError> {
    vec![UserError::invalid(field, message)]
}

/// Checks a fleet: at least one vehicle, distinct names, sensible numbers.
fn check_vehicles(vehicles: &[Vehicle]) -> Result<(), Vec<UserError>> {
    if vehicles.is_empty() {
        return Err(invalid(&["input", "vehicles"], "at least one vehicle is needed"));
    }
    if vehicles.len() > MAX_VEHICLES {
        return Err(invalid(&["input", "vehicles"], format!("at most {MAX_VEHICLES} vehicles")));
    }
    let mut names = HashSet::new();
    for (i, v) in vehicles.iter().enumerate() {
        let at = i.to_string();
        let field = |f: &'static str| vec!["input", "vehicles", at.as_str(), f];
        if v.name.trim().is_empty() || v.name.chars().count() > 200 || !names.insert(v.name.clone()) {
            return Err(invalid(&field("name"), "each vehicle needs a name of its own"));
        }
        if v.capacity <= 0 {
            return Err(invalid(&field("capacity"), "must be positive"));
        }
        if v.shift_end <= v.shift_start {
            return Err(invalid(&field("shiftEnd"), "must be after shiftStart"));
        }
        if !(Decimal::ZERO..=Decimal::from(10_000)).contains(&v.cost_per_km) {
            return Err(invalid(&field("costPerKm"), "must be between 0 and 10000"));
        }
        if !(Decimal::ZERO..=Decimal::from(1_000_000)).contains(&v.fixed_cost) {
            return Err(invalid(&field("fixedCost"), "must be between 0 and 1000000"));
        }
        if !(v.co2_g_per_km.is_finite() && (0.0..=100_000.0).contains(&v.co2_g_per_km)) {
            return Err(invalid(&field("co2GramsPerKm"), "must be between 0 and 100000"));
        }
    }
    Ok(())
}

/// Drops repeated ids, keeping the first of each (a list naming one twice means it once).
fn dedup(ids: &mut Vec<Uuid>) {
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(*id));
}

/// Queues a plan of `date`'s deliveries from `location_id`.
pub async fn run(
    db: &Db,
    p: &Principal,
    location_id: Option<Uuid>,
    date: NaiveDate,
    mut request: Request,
) -> Result<Outcome<route_plan::Model>, DbErr> {
    if let Some(ids) = &mut request.shipment_ids {
        dedup(ids);
    }
    if let Err(e) = check_vehicles(&request.vehicles) {
        return Ok(Err(e));
    }
    if !(request.service_minutes.is_finite() && (0.0..=600.0).contains(&request.service_minutes)) {
        return Ok(Err(invalid(&["input", "serviceMinutes"], "must be between 0 and 600")));
    }
    if !(date >= first_day() && date <= last_day()) {
        return Ok(Err(invalid(&["input", "date"], "must be between 2000-01-01 and 9999-12-30")));
    }
    if request.shipment_ids.as_ref().is_some_and(|ids| ids.len() > MAX_STOPS) {
        return Ok(Err(invalid(&["input", "shipmentIds"], format!("at most {MAX_STOPS} shipments"))));
    }
    if !(0.0..=MAX_TIME_LIMIT_SECONDS).contains(&request.time_limit_seconds) {
        return Ok(Err(invalid(
            &["input", "timeLimitSeconds"],
            format!("must be between 0 and {MAX_TIME_LIMIT_SECONDS}"),
        )));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let location = match location_id {
        Some(id) => lookup::location(&s, id).await?,
        None => None,
    };
    let Some(location) = location else {
        return Ok(Err(vec![UserError::not_found(&["input", "locationId"], "location")]));
    };
    if location.latitude.is_none() || location.longitude.is_none() {
        return Ok(Err(invalid(&["input", "locationId"], "the location has no latitude and longitude to start from")));
    }
    if let Some(ids) = &request.shipment_ids {
        let found: HashMap<Uuid, shipment::Model> =
            repo::find_in::<shipment::Entity, _>(&s, shipment::Column::Id, ids.clone(), "uuid", &[])
                .await?
                .into_iter()
                .map(|sh| (sh.id, sh))
                .collect();
        for (i, id) in ids.iter().enumerate() {
            let at = i.to_string();
            match found.get(id) {
                None => return Ok(Err(vec![UserError::not_found(&["input", "shipmentIds", &at], "shipment")])),
                Some(sh) if sh.location_id != location.id => {
                    return Ok(Err(invalid(
                        &["input", "shipmentIds", &at],
                        "the shipment leaves from another location",
                    )));
                }
                Some(_) => {}
            }
        }
    }
    let plan = queue(&s, p, location.id, date, &request, None, None).await?;
    s.commit().await?;
    Ok(Ok(plan))
}

/// Queues a re-plan of ready plan `plan_id` with `changes`.
pub async fn reoptimise(
    db: &Db,
    p: &Principal,
    plan_id: Option<Uuid>,
    mut changes: Changes,
) -> Result<Outcome<route_plan::Model>, DbErr> {
    for list in [
        &mut changes.cancelled_order_ids,
        &mut changes.added_order_ids,
        &mut changes.started_route_ids,
        &mut changes.broken_down_route_ids,
    ] {
        dedup(list);
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let Some(base) = plan_by_id(&s, plan_id).await? else {
        return Ok(Err(vec![UserError::not_found(&["id"], "route plan")]));
    };
    if base.status != "ready" {
        return Ok(Err(vec![UserError::new(
            &["id"],
            UserErrorCode::InvalidState,
            format!("only a ready plan can be re-planned (this one is {})", base.status),
        )]));
    }
    let routes: HashSet<Uuid> = routes_of(&s, base.id).await?.into_iter().map(|r| r.id).collect();
    for (list, name) in
        [(&changes.started_route_ids, "startedRouteIds"), (&changes.broken_down_route_ids, "brokenDownRouteIds")]
    {
        if let Some(i) = list.iter().position(|id| !routes.contains(id)) {
            return Ok(Err(vec![UserError::not_found(&["changes", name, &i.to_string()], "route of this plan")]));
        }
    }
    let stops: HashSet<Uuid> = stops_of(&s, base.id).await?.into_iter().map(|st| st.order_id).collect();
    if let Some(i) = changes.cancelled_order_ids.iter().position(|id| !stops.contains(id)) {
        return Ok(Err(vec![UserError::not_found(
            &["changes", "cancelledOrderIds", &i.to_string()],
            "stop of this plan",
        )]));
    }
    let added =
        repo::find_in::<order::Entity, _>(&s, order::Column::Id, changes.added_order_ids.clone(), "uuid", &[]).await?;
    let added: HashMap<Uuid, order::Model> = added.into_iter().map(|o| (o.id, o)).collect();
    for (i, id) in changes.added_order_ids.iter().enumerate() {
        let at = ["changes", "addedOrderIds", &i.to_string()];
        match added.get(id) {
            None => return Ok(Err(vec![UserError::not_found(&at, "order")])),
            Some(o) if o.location_id != base.location_id => {
                return Ok(Err(invalid(&at, "the order ships from another location")));
            }
            Some(o) if o.status != "reserved" => {
                return Ok(Err(invalid(&at, format!("the order is {}, not waiting to ship", o.status))));
            }
            Some(_) if stops.contains(id) => return Ok(Err(invalid(&at, "the order is already a stop of this plan"))),
            Some(_) => {}
        }
    }
    let request: Request =
        serde_json::from_value(base.request.clone()).map_err(|e| DbErr::Custom(format!("stored plan request: {e}")))?;
    let plan = queue(&s, p, base.location_id, base.date, &request, Some(base.id), Some(&changes)).await?;
    s.commit().await?;
    Ok(Ok(plan))
}

async fn queue(
    s: &Scoped,
    p: &Principal,
    location_id: Uuid,
    date: NaiveDate,
    request: &Request,
    base: Option<Uuid>,
    changes: Option<&Changes>,
) -> Result<route_plan::Model, DbErr> {
    let to_json = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| DbErr::Custom(e.to_string()));
    let plan = route_plan::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        location_id,
        date,
        status: "queued".into(),
        request: to_json(serde_json::to_value(request))?,
        base_plan_id: base,
        changes: changes.map(serde_json::to_value).transpose().map_err(|e| DbErr::Custom(e.to_string()))?,
        matrix_source: None,
        distance_m: 0.0,
        duration_s: 0.0,
        co2_kg: 0.0,
        cost: None,
        routes_total: 0,
        unassigned_total: 0,
        error: None,
        requested_by: p.subject.clone(),
        created_at: repo::now(),
        started_at: None,
        finished_at: None,
    };
    route_plan::Entity::insert(route_plan::ActiveModel::from(plan.clone())).exec_without_returning(&s.tx).await?;
    jobs::enqueue(s, NewJob::new(RUN, json!({ "plan_id": plan.id }))).await?;
    Ok(plan)
}

pub async fn plan_by_id(s: &Scoped, id: Option<Uuid>) -> Result<Option<route_plan::Model>, DbErr> {
    let Some(id) = id else { return Ok(None) };
    runs::by_id::<route_plan::Entity>(s, id).await
}

pub async fn routes_of(s: &Scoped, plan: Uuid) -> Result<Vec<route_plan_route::Model>, DbErr> {
    repo::find::<route_plan_route::Entity>(s)
        .filter(route_plan_route::Column::PlanId.eq(plan))
        .order_by_asc(route_plan_route::Column::Seq)
        .all(&s.tx)
        .await
}

pub async fn stops_of(s: &Scoped, plan: Uuid) -> Result<Vec<route_plan_stop::Model>, DbErr> {
    repo::find::<route_plan_stop::Entity>(s)
        .filter(route_plan_stop::Column::PlanId.eq(plan))
        .order_by_asc(route_plan_stop::Column::Seq)
        .order_by_asc(route_plan_stop::Column::Id)
        .all(&s.tx)
        .await
}

/// A stop to plan: an order (and the shipment carrying it), where and when it takes delivery.
#[derive(Debug, Clone)]
struct Stop {
    order_id: Uuid,
    shipment_id: Option<Uuid>,
    point: Option<Point>,
    demand: i64,
    /// Seconds at the stop.
    service_s: f64,
    windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Where an order takes delivery, read from its `shipTo`: `latitude`, `longitude`, optional
/// `deliveryWindows: [{"from": RFC 3339, "to": RFC 3339}]` and `serviceMinutes`.
fn stop_of(o: &order::Model, shipment_id: Option<Uuid>, demand: i64, service_minutes: f64) -> Stop {
    let ship_to = o.ship_to.as_ref();
    let num = |k: &str| ship_to.and_then(|s| s.get(k)).and_then(serde_json::Value::as_f64);
    let point = match (num("latitude"), num("longitude")) {
        (Some(lat), Some(lon)) => Some(Point::new(lat, lon)).filter(Point::is_valid),
        _ => None,
    };
    let time = |w: &serde_json::Value, k: &str| {
        w.get(k)
            .and_then(serde_json::Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
    };
    let windows = ship_to
        .and_then(|s| s.get("deliveryWindows"))
        .and_then(serde_json::Value::as_array)
        .map(|ws| ws.iter().filter_map(|w| Some((time(w, "from")?, time(w, "to")?))).filter(|(a, b)| a <= b).collect())
        .unwrap_or_default();
    let service = num("serviceMinutes").filter(|m| m.is_finite() && *m >= 0.0).unwrap_or(service_minutes);
    Stop { order_id: o.id, shipment_id, point, demand, service_s: service * 60.0, windows }
}

/// Units on each order.
async fn demands(s: &Scoped, orders: &[Uuid]) -> Result<HashMap<Uuid, i64>, DbErr> {
    let mut out = HashMap::new();
    for l in
        repo::find_in::<order_line::Entity, _>(s, order_line::Column::OrderId, orders.to_vec(), "uuid", &[]).await?
    {
        *out.entry(l.order_id).or_insert(0) += i64::from(l.quantity);
    }
    Ok(out)
}

/// The stops of a new plan: the shipments asked for, or the location's unshipped orders placed
/// by the end of the day.
async fn stops_for(s: &Scoped, plan: &route_plan::Model, request: &Request) -> Result<Vec<Stop>, DbErr> {
    let (orders, shipment_of): (Vec<order::Model>, HashMap<Uuid, Uuid>) = match &request.shipment_ids {
        Some(ids) => {
            let shipments =
                repo::find_in::<shipment::Entity, _>(s, shipment::Column::Id, ids.clone(), "uuid", &[]).await?;
            let shipment_of: HashMap<Uuid, Uuid> = shipments.iter().map(|sh| (sh.order_id, sh.id)).collect();
            let ids: Vec<Uuid> = shipments.iter().map(|sh| sh.order_id).collect();
            (repo::find_in::<order::Entity, _>(s, order::Column::Id, ids, "uuid", &[]).await?, shipment_of)
        }
        None => {
            let end = plan.date.succ_opt().unwrap_or(plan.date).and_time(NaiveTime::MIN).and_utc();
            let orders = repo::find::<order::Entity>(s)
                .filter(order::Column::LocationId.eq(plan.location_id))
                .filter(order::Column::Status.eq("reserved"))
                .filter(order::Column::CreatedAt.lt(end))
                .order_by_asc(order::Column::CreatedAt)
                .order_by_asc(order::Column::Id)
                .all(&s.tx)
                .await?;
            (orders, HashMap::new())
        }
    };
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let demand = demands(s, &ids).await?;
    Ok(orders
        .iter()
        .map(|o| {
            stop_of(
                o,
                shipment_of.get(&o.id).copied(),
                demand.get(&o.id).copied().unwrap_or(0),
                request.service_minutes,
            )
        })
        .collect())
}

/// A started route of the base plan: whole, or (broken down) with the stops it served.
struct Kept {
    route: route_plan_route::Model,
    stops: Vec<route_plan_stop::Model>,
    whole: bool,
}

/// What a plan's job reads before it plans.
struct Gathered {
    plan: route_plan::Model,
    request: Request,
    depot: Point,
    stops: Vec<Stop>,
    /// Vehicles the search may use (not on a kept route, not broken down).
    free: Vec<Vehicle>,
    /// Routes copied from the base plan, with their stops.
    kept: Vec<Kept>,
    /// Vehicles leave no earlier than this.
    not_before: DateTime<Utc>,
}

async fn gather(s: &Scoped, plan: route_plan::Model) -> Result<Result<Gathered, String>, DbErr> {
    let request: Request =
        serde_json::from_value(plan.request.clone()).map_err(|e| DbErr::Custom(format!("stored plan request: {e}")))?;
    let Some(location) = lookup::location(s, plan.location_id).await? else {
        return Ok(Err("the location no longer exists".into()));
    };
    let (Some(lat), Some(lon)) = (location.latitude, location.longitude) else {
        return Ok(Err("the location has no latitude and longitude to start from".into()));
    };
    let day_start = plan.date.and_time(NaiveTime::MIN).and_utc();
    let (Some(base_id), Some(changes)) = (plan.base_plan_id, plan.changes.clone()) else {
        let stops = stops_for(s, &plan, &request).await?;
        if stops.len() > MAX_STOPS {
            let n = stops.len();
            return Ok(Err(format!(
                "{n} stops, more than the {MAX_STOPS} one plan takes: plan them in parts with shipmentIds"
            )));
        }
        let free = request.vehicles.clone();
        return Ok(Ok(Gathered {
            plan,
            request,
            depot: Point::new(lat, lon),
            stops,
            free,
            kept: vec![],
            not_before: day_start,
        }));
    };
    let changes: Changes =
        serde_json::from_value(changes).map_err(|e| DbErr::Custom(format!("stored plan changes: {e}")))?;
    let routes = routes_of(s, base_id).await?;
    let base_stops = stops_of(s, base_id).await?;
    let cancelled: HashSet<Uuid> = changes.cancelled_order_ids.iter().copied().collect();
    let broken: HashSet<Uuid> = changes.broken_down_route_ids.iter().copied().collect();
    let started: HashSet<Uuid> = routes
        .iter()
        .filter(|r| r.status == "started" || changes.started_route_ids.contains(&r.id))
        .map(|r| r.id)
        .collect();
    let mut kept = Vec::new();
    let mut replan: Vec<route_plan_stop::Model> = Vec::new();
    for r in &routes {
        let on: Vec<route_plan_stop::Model> =
            base_stops.iter().filter(|st| st.route_id == Some(r.id)).cloned().collect();
        match (started.contains(&r.id), broken.contains(&r.id)) {
            (true, false) => kept.push(Kept { route: r.clone(), stops: on, whole: true }),
            (true, true) => {
                // Delivered before the breakdown: kept on the route; the rest goes to others.
                let (done, rest): (Vec<_>, Vec<_>) =
                    on.into_iter().partition(|st| st.arrival_at.is_some_and(|a| a <= changes.as_of));
                replan.extend(rest);
                if !done.is_empty() {
                    kept.push(Kept { route: r.clone(), stops: done, whole: false });
                }
            }
            (false, _) => replan.extend(on),
        }
    }
    replan.extend(base_stops.iter().filter(|st| st.route_id.is_none()).cloned());
    let busy: HashSet<&str> = routes
        .iter()
        .filter(|r| started.contains(&r.id) || broken.contains(&r.id))
        .map(|r| r.vehicle.as_str())
        .collect();
    let free: Vec<Vehicle> = request.vehicles.iter().filter(|v| !busy.contains(v.name.as_str())).cloned().collect();
    // Stops to plan again, read afresh from their orders (an address may have changed), and the
    // orders added.
    let mut ids: Vec<Uuid> = replan.iter().map(|st| st.order_id).filter(|id| !cancelled.contains(id)).collect();
    ids.extend(changes.added_order_ids.iter().filter(|id| !cancelled.contains(id)));
    let shipment_of: HashMap<Uuid, Uuid> =
        replan.iter().filter_map(|st| Some((st.order_id, st.shipment_id?))).collect();
    let orders = repo::find_in::<order::Entity, _>(s, order::Column::Id, ids.clone(), "uuid", &[]).await?;
    let demand = demands(s, &ids).await?;
    let by_id: HashMap<Uuid, &order::Model> = orders.iter().map(|o| (o.id, o)).collect();
    let stops = ids
        .iter()
        .filter_map(|id| by_id.get(id))
        .filter(|o| o.status != "cancelled")
        .map(|o| {
            stop_of(
                o,
                shipment_of.get(&o.id).copied(),
                demand.get(&o.id).copied().unwrap_or(0),
                request.service_minutes,
            )
        })
        .collect();
    Ok(Ok(Gathered {
        plan,
        request,
        depot: Point::new(lat, lon),
        stops,
        free,
        kept,
        not_before: changes.as_of.max(day_start),
    }))
}

/// A stop as planned.
struct Placed {
    stop: usize,
    arrival: DateTime<Utc>,
    start: DateTime<Utc>,
    departure: DateTime<Utc>,
    travel_m: f64,
    travel_s: f64,
}

/// A route as planned.
struct Planned {
    vehicle: Vehicle,
    load: i64,
    departure: DateTime<Utc>,
    back: DateTime<Utc>,
    distance_m: f64,
    driving_s: f64,
    stops: Vec<Placed>,
}

/// A plan as computed, before it is stored.
struct Computed {
    source: &'static str,
    routes: Vec<Planned>,
    unassigned: Vec<(usize, Reason, String)>,
}

/// Matrices are integers in tenths of a metre and of a second, so OSRM's figures (one decimal)
/// are kept exactly.
const SCALE: f64 = 10.0;
/// A leg the road network has no route for (between two stops both reachable from the depot).
const NO_ROAD: i64 = 1_000_000_000;

fn compute(g: &Gathered, m: &crate::routing::roads::Matrices, max_snap_m: f64, limit: Duration) -> Computed {
    let table = &m.table;
    let mut unassigned: Vec<(usize, Reason, String)> = Vec::new();
    // Row of each stop with coordinates in the matrices (row 0 is the depot).
    let mut row_of: HashMap<usize, usize> = HashMap::new();
    let mut next_row = 1;
    for (i, st) in g.stops.iter().enumerate() {
        if st.point.is_some() {
            row_of.insert(i, next_row);
            next_row += 1;
        } else {
            unassigned.push((i, Reason::NoCoordinates, "the order's shipTo has no latitude and longitude".into()));
        }
    }
    let mut clients = Vec::new();
    let mut client_stop = Vec::new();
    let origin = g.plan.date.and_time(NaiveTime::MIN).and_utc();
    let ticks = |t: DateTime<Utc>| ((t - origin).num_milliseconds() as f64 / 1000.0 * SCALE).round() as i64;
    for (i, st) in g.stops.iter().enumerate() {
        let Some(&row) = row_of.get(&i) else { continue };
        let snapped = table.snapped.get(row).copied().unwrap_or(0.0);
        if snapped > max_snap_m {
            unassigned.push((i, Reason::Unreachable, format!("the nearest road is {snapped:.0} m away")));
            continue;
        }
        if table.durations[0][row].is_none() || table.durations[row][0].is_none() {
            unassigned.push((i, Reason::Unreachable, "no road route between the location and this stop".into()));
            continue;
        }
        let mut windows: Vec<(i64, i64)> = st.windows.iter().map(|(a, b)| (ticks(*a), ticks(*b))).collect();
        windows.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for w in windows {
            match merged.last_mut() {
                Some(last) if w.0 <= last.1 => last.1 = last.1.max(w.1),
                _ => merged.push(w),
            }
        }
        clients.push(Client {
            location: row,
            demand: st.demand,
            service: (st.service_s * SCALE).round() as i64,
            windows: merged,
            penalty: None,
        });
        client_stop.push(i);
    }
    let n = next_row;
    let cell = |t: &Vec<Vec<Option<f64>>>, i: usize, j: usize| t[i][j].map_or(NO_ROAD, |v| (v * SCALE).round() as i64);
    let vehicles: Vec<VehicleType> = g
        .free
        .iter()
        .map(|v| {
            let at = |t: NaiveTime| ticks(g.plan.date.and_time(t).and_utc());
            let start = at(v.shift_start).max(ticks(g.not_before));
            VehicleType {
                count: 1,
                capacity: v.capacity,
                depot: 0,
                shift: (start, at(v.shift_end).max(start)),
                // Cents per kilometre × tenths of a metre; the fixed cost on the same scale.
                fixed_cost: cents(v.fixed_cost).saturating_mul(10_000),
                unit_cost: cents(v.cost_per_km),
            }
        })
        .collect();
    let problem = Problem {
        distance: Matrix::from_fn(n, |i, j| cell(&table.distances, i, j)),
        duration: Matrix::from_fn(n, |i, j| cell(&table.durations, i, j)),
        clients,
        vehicle_types: vehicles,
    };
    let mut routes = Vec::new();
    if problem.clients.is_empty() {
        return Computed { source: m.source.as_str(), routes, unassigned };
    }
    if problem.vehicle_types.is_empty() {
        for &stop in &client_stop {
            unassigned.push((stop, Reason::NoVehicle, "no vehicle is left to serve it".into()));
        }
        return Computed { source: m.source.as_str(), routes, unassigned };
    }
    if let Err(e) = problem.validate() {
        for &stop in &client_stop {
            unassigned.push((stop, Reason::TimeWindow, format!("cannot be planned: {e}")));
        }
        return Computed { source: m.source.as_str(), routes, unassigned };
    }
    let solution =
        search::solve(&problem, Options { seed: g.request.seed, ..Options::default() }, &mut Limit::new(limit, None));
    let time = |t: i64| origin + chrono::Duration::milliseconds((t as f64 / SCALE * 1000.0).round() as i64);
    for r in solution.routes.iter().filter(|r| !r.visits.is_empty()) {
        let Ok(sched) = schedule(&problem, r) else {
            // Every plan the search holds is feasible; should one not be, its stops are not lost.
            for &c in &r.visits {
                unassigned.push((client_stop[c], Reason::NoVehicle, "no feasible route was found for it".into()));
            }
            continue;
        };
        routes.push(planned(g, table, &problem, r, &sched, &client_stop, time));
    }
    for &c in &solution.unassigned {
        let (reason, message) = match why_unassigned(&problem, c) {
            Unserved::Capacity => (Reason::Capacity, "its load exceeds every vehicle's capacity"),
            Unserved::TimeWindow => {
                (Reason::TimeWindow, "no vehicle reaches it within its delivery windows and its shift")
            }
            Unserved::Optional | Unserved::NoRoom => (Reason::NoVehicle, "the fleet has no room left for it"),
        };
        unassigned.push((client_stop[c], reason, message.into()));
    }
    unassigned.sort_by_key(|(i, _, _)| *i);
    Computed { source: m.source.as_str(), routes, unassigned }
}

fn cents(d: Decimal) -> i64 {
    (d * Decimal::ONE_HUNDRED).round().try_into().unwrap_or(i64::MAX)
}

fn planned(
    g: &Gathered,
    table: &qm_integrations::osrm::Table,
    p: &Problem,
    r: &Route,
    sched: &qm_domain::routing::solution::Schedule,
    client_stop: &[usize],
    time: impl Fn(i64) -> DateTime<Utc>,
) -> Planned {
    let leg = |t: &Vec<Vec<Option<f64>>>, i: usize, j: usize| t[i][j].unwrap_or(0.0);
    let mut at = 0;
    let mut clock = sched.departure;
    let (mut distance_m, mut driving_s) = (0.0, 0.0);
    let mut stops = Vec::with_capacity(r.visits.len());
    for (k, &c) in r.visits.iter().enumerate() {
        let client = &p.clients[c];
        let to = client.location;
        let arrival = clock + p.duration.get(at, to);
        let (m, s) = (leg(&table.distances, at, to), leg(&table.durations, at, to));
        distance_m += m;
        driving_s += s;
        stops.push(Placed {
            stop: client_stop[c],
            arrival: time(arrival),
            start: time(sched.starts[k]),
            departure: time(sched.starts[k] + client.service),
            travel_m: m,
            travel_s: s,
        });
        clock = sched.starts[k] + client.service;
        at = to;
    }
    distance_m += leg(&table.distances, at, 0);
    driving_s += leg(&table.durations, at, 0);
    Planned {
        vehicle: g.free[r.vehicle_type].clone(),
        load: sched.load,
        departure: time(sched.departure),
        back: time(sched.back),
        distance_m,
        driving_s,
        stops,
    }
}

fn co2_kg(distance_m: f64, g_per_km: f64) -> f64 {
    distance_m / 1000.0 * g_per_km / 1000.0
}

fn route_cost(v: &Vehicle, distance_m: f64) -> Decimal {
    let km = Decimal::from_f64_retain(distance_m / 1000.0).unwrap_or_default();
    (v.cost_per_km * km + v.fixed_cost).round_dp(2)
}

#[derive(Deserialize)]
struct RunPayload {
    plan_id: Uuid,
}

struct RunJob;

#[async_trait::async_trait]
impl Handler for RunJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let payload: RunPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad {RUN} payload: {e}")))?;
        let Some(plan) = runs::begin::<route_plan::Entity>(&state.db, job.tenant_id, payload.plan_id).await? else {
            return Ok(());
        };
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let gathered = gather(&s, plan.clone()).await?;
        s.commit().await?;
        let g = match gathered {
            Ok(g) => g,
            Err(e) => return fail(state, job.tenant_id, plan.id, &e).await,
        };
        let points: Vec<Point> = std::iter::once(g.depot).chain(g.stops.iter().filter_map(|st| st.point)).collect();
        let matrices = match state.roads.matrices(job.tenant_id, &points).await {
            Ok(m) => m,
            Err(e) if e.is_transient() => return Err(JobError::Retry(e.to_string())),
            Err(e) => return fail(state, job.tenant_id, plan.id, &e.to_string()).await,
        };
        if matrices.table.snapped[0] > state.roads.max_snap_m {
            let e = format!("the location is {:.0} m from the nearest road", matrices.table.snapped[0]);
            return fail(state, job.tenant_id, plan.id, &e).await;
        }
        let max_snap = state.roads.max_snap_m;
        let lease = state.config.worker_lease_seconds as f64;
        let limit = Duration::from_secs_f64(g.request.time_limit_seconds.min(lease / 2.0));
        let span = tracing::Span::current();
        let (g, computed) = tokio::task::spawn_blocking(move || {
            let c = span.in_scope(|| compute(&g, &matrices, max_snap, limit));
            (g, c)
        })
        .await
        .map_err(|e| JobError::Retry(format!("route planning task: {e}")))?;
        store(state, job.tenant_id, &g, &computed).await?;
        Ok(())
    }

    async fn dead(&self, state: &AppState, job: &crate::db::entities::job::Model, error: &str) -> Result<(), JobError> {
        if let Ok(payload) = serde_json::from_value::<RunPayload>(job.payload.clone()) {
            runs::job_died::<route_plan::Entity>(&state.db, job.tenant_id, payload.plan_id, error).await?;
        }
        Ok(())
    }
}

async fn fail(state: &AppState, tenant: Uuid, plan: Uuid, error: &str) -> Result<(), JobError> {
    let s = state.db.scoped(tenant, TxMode::Write).await?;
    runs::fail::<route_plan::Entity>(&s, plan, error).await?;
    s.commit().await?;
    tracing::warn!(%plan, error, "route plan failed");
    Ok(())
}

/// A stop of plan `plan` with nothing planned yet (no route, no times, no reason).
fn stop_row(tenant: Uuid, plan: Uuid, st: &Stop) -> route_plan_stop::Model {
    route_plan_stop::Model {
        tenant_id: tenant,
        id: Uuid::now_v7(),
        plan_id: plan,
        route_id: None,
        seq: 0,
        order_id: st.order_id,
        shipment_id: st.shipment_id,
        latitude: st.point.map(|p| p.lat),
        longitude: st.point.map(|p| p.lon),
        demand: i32::try_from(st.demand).unwrap_or(i32::MAX),
        arrival_at: None,
        service_start_at: None,
        departure_at: None,
        travel_distance_m: None,
        travel_duration_s: None,
        reason: None,
        message: None,
    }
}

/// Stores a computed plan in one transaction: routes, stops, totals, `ready`, the base plan
/// superseded, `route_plan.ready`. A plan no longer running (stored by an earlier attempt) is
/// left alone.
async fn store(state: &AppState, tenant: Uuid, g: &Gathered, c: &Computed) -> Result<(), JobError> {
    let s = state.db.scoped(tenant, TxMode::Write).await?;
    let Some(plan) = plan_by_id(&s, Some(g.plan.id)).await?.filter(|p| runs::ACTIVE.contains(&p.status.as_str()))
    else {
        s.commit().await?;
        return Ok(());
    };
    let mut routes = Vec::new();
    let mut stops = Vec::new();
    let (mut distance, mut duration, mut co2, mut cost) = (0.0, 0.0, 0.0, Decimal::ZERO);
    // Kept routes first, in the base plan's order, then the new ones.
    for Kept { route: r, stops: kept, whole } in &g.kept {
        let id = Uuid::now_v7();
        // A broken-down route keeps only what it delivered, and ends at its last stop.
        let (d, driving, back) = if *whole {
            (r.distance_m, r.driving_s, r.return_at)
        } else {
            let (d, t) = kept.iter().fold((0.0, 0.0), |(d, t), st| {
                (d + st.travel_distance_m.unwrap_or(0.0), t + st.travel_duration_s.unwrap_or(0.0))
            });
            (d, t, kept.last().and_then(|st| st.departure_at).unwrap_or(r.departure_at))
        };
        let vehicle = g.request.vehicles.iter().find(|v| v.name == r.vehicle);
        let route_co2 = vehicle.map_or(r.co2_kg, |v| co2_kg(d, v.co2_g_per_km));
        let route_cost = vehicle.map_or(r.cost.0, |v| route_cost(v, d));
        routes.push(route_plan_route::Model {
            tenant_id: tenant,
            id,
            plan_id: plan.id,
            seq: routes.len() as i32,
            vehicle: r.vehicle.clone(),
            status: "started".into(),
            capacity: r.capacity,
            load: kept.iter().map(|st| st.demand).sum(),
            departure_at: r.departure_at,
            return_at: back,
            distance_m: d,
            duration_s: (back - r.departure_at).num_milliseconds() as f64 / 1000.0,
            driving_s: driving,
            co2_kg: route_co2,
            cost: Dec(route_cost),
        });
        for st in kept {
            stops.push(route_plan_stop::Model {
                id: Uuid::now_v7(),
                plan_id: plan.id,
                route_id: Some(id),
                ..st.clone()
            });
        }
    }
    for r in &c.routes {
        let id = Uuid::now_v7();
        routes.push(route_plan_route::Model {
            tenant_id: tenant,
            id,
            plan_id: plan.id,
            seq: routes.len() as i32,
            vehicle: r.vehicle.name.clone(),
            status: "planned".into(),
            capacity: i32::try_from(r.vehicle.capacity).unwrap_or(i32::MAX),
            load: i32::try_from(r.load).unwrap_or(i32::MAX),
            departure_at: r.departure,
            return_at: r.back,
            distance_m: r.distance_m,
            duration_s: (r.back - r.departure).num_milliseconds() as f64 / 1000.0,
            driving_s: r.driving_s,
            co2_kg: co2_kg(r.distance_m, r.vehicle.co2_g_per_km),
            cost: Dec(route_cost(&r.vehicle, r.distance_m)),
        });
        for (k, p) in r.stops.iter().enumerate() {
            stops.push(route_plan_stop::Model {
                route_id: Some(id),
                seq: k as i32 + 1,
                arrival_at: Some(p.arrival),
                service_start_at: Some(p.start),
                departure_at: Some(p.departure),
                travel_distance_m: Some(p.travel_m),
                travel_duration_s: Some(p.travel_s),
                ..stop_row(tenant, plan.id, &g.stops[p.stop])
            });
        }
    }
    for (i, reason, message) in &c.unassigned {
        let st = &g.stops[*i];
        stops.push(route_plan_stop::Model {
            reason: Some(reason.as_str().into()),
            message: Some(message.clone()),
            ..stop_row(tenant, plan.id, st)
        });
    }
    for r in &routes {
        distance += r.distance_m;
        duration += r.duration_s;
        co2 += r.co2_kg;
        cost += r.cost.0;
    }
    for chunk in routes.chunks(200) {
        route_plan_route::Entity::insert_many(chunk.iter().cloned().map(route_plan_route::ActiveModel::from))
            .exec_without_returning(&s.tx)
            .await?;
    }
    for chunk in stops.chunks(200) {
        route_plan_stop::Entity::insert_many(chunk.iter().cloned().map(route_plan_stop::ActiveModel::from))
            .exec_without_returning(&s.tx)
            .await?;
    }
    let unassigned = c.unassigned.len();
    runs::finishing::<route_plan::Entity>(&s, plan.id, "ready")
        .col_expr(route_plan::Column::MatrixSource, Expr::value(c.source))
        .col_expr(route_plan::Column::DistanceM, Expr::value(distance))
        .col_expr(route_plan::Column::DurationS, Expr::value(duration))
        .col_expr(route_plan::Column::Co2Kg, Expr::value(co2))
        .col_expr(route_plan::Column::Cost, Expr::value(Dec(cost).to_string()))
        .col_expr(route_plan::Column::RoutesTotal, Expr::value(routes.len() as i32))
        .col_expr(route_plan::Column::UnassignedTotal, Expr::value(unassigned as i32))
        .exec(&s.tx)
        .await?;
    if let Some(base) = plan.base_plan_id {
        route_plan::Entity::update_many()
            .filter(route_plan::Column::TenantId.eq(s.tenant()))
            .filter(route_plan::Column::Id.eq(base))
            .filter(route_plan::Column::Status.eq("ready"))
            .col_expr(route_plan::Column::Status, Expr::value("superseded"))
            .exec(&s.tx)
            .await?;
    }
    events::emit(
        &s,
        "route_plan.ready",
        json!({
            "planId": gid("RoutePlan", plan.id).0,
            "locationId": gid("Location", plan.location_id).0,
            "date": plan.date,
            "basePlanId": plan.base_plan_id.map(|id| gid("RoutePlan", id).0),
            "routes": routes.len(),
            "unassigned": unassigned,
            "distanceMeters": distance,
            "co2Kg": co2,
        }),
    )
    .await?;
    s.commit().await?;
    tracing::info!(plan = %plan.id, routes = routes.len(), unassigned, source = c.source, "route plan ready");
    Ok(())
}
