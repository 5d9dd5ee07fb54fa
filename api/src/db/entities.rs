//! sea-orm entities, one module per table. They are persistence types only: GraphQL has its own.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm::DeriveValueType;

/// A decimal stored as canonical text, exact on SQLite and PostgreSQL alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DeriveValueType)]
#[sea_orm(value_type = "String")]
pub struct Dec(pub Decimal);

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

impl FromStr for Dec {
    type Err = rust_decimal::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::from_str_exact(s).map(Dec)
    }
}

/// An entity whose rows belong to one tenant.
pub trait TenantOwned: sea_orm::EntityTrait {
    fn tenant_column() -> Self::Column;
}

/// A tenant-owned table: `tenant_id` leads the primary key.
macro_rules! tenant_entity {
    ($module:ident, $table:literal, { $($body:tt)* }) => {
        pub mod $module {
            #[allow(unused_imports)]
            use super::Dec;
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub tenant_id: Uuid,
                $($body)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}

            impl super::TenantOwned for Entity {
                fn tenant_column() -> Column {
                    Column::TenantId
                }
            }
        }
    };
}

pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub slug: String,
        pub name: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

tenant_entity!(user, "users", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: String,
    pub created_at: DateTimeUtc,
});

tenant_entity!(api_key, "api_keys", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub roles: String,
    pub supplier_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
});

tenant_entity!(location, "locations", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The volume the location holds (the unit of `variant.unit_volume`).
    pub capacity_volume: Option<f64>,
});

tenant_entity!(product, "products", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub title: String,
    pub handle: String,
    pub category: String,
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(variant, "variants", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub sku: String,
    pub title: String,
    pub price: Dec,
    pub currency: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The volume of one unit (for location capacity).
    pub unit_volume: Option<f64>,
});

tenant_entity!(supplier, "suppliers", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub lead_time_mean_days: Dec,
    pub lead_time_std_days: Dec,
    pub currency: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Fixed cost of each line ordered (handling and receiving one SKU's delivery).
    pub order_line_cost: Dec,
    /// Most a replenishment plan may spend with this supplier.
    pub plan_budget: Option<Dec>,
    /// Most units a replenishment plan may order from this supplier.
    pub plan_capacity_units: Option<i32>,
});

tenant_entity!(supplier_item, "supplier_items", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub supplier_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub variant_id: Uuid,
    pub lead_time_mean_days: Dec,
    pub lead_time_std_days: Dec,
    pub moq: i32,
    pub pack_size: i32,
    pub unit_cost: Dec,
    pub currency: String,
    pub updated_at: DateTimeUtc,
    /// All-units price breaks above the first unit: `[{"min_qty": 100, "unit_cost": "9.50"}, …]`.
    pub price_breaks: Json,
});

tenant_entity!(stock_level, "stock_levels", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub variant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub location_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    pub inbound: i64,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(ledger_head, "ledger_heads", {
    pub seq: i64,
    pub hash: String,
});

tenant_entity!(stock_movement, "stock_movements", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub id: Uuid,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub kind: String,
    pub delta_on_hand: i64,
    pub delta_reserved: i64,
    pub reason: String,
    pub reference: String,
    pub idempotency_key: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub prev_hash: String,
    pub hash: String,
});

tenant_entity!(order, "orders", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub external_id: String,
    pub location_id: Uuid,
    pub status: String,
    pub ship_to: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(order_line, "order_lines", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub variant_id: Uuid,
    pub quantity: i32,
    pub line_no: i32,
});

tenant_entity!(reservation, "reservations", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub order_line_id: Uuid,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub quantity: i32,
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(shipment, "shipments", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub location_id: Uuid,
    pub status: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// The carrier's tracking page.
    pub tracking_url: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(shipment_event, "shipment_events", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub shipment_id: Uuid,
    pub status: String,
    pub description: String,
    pub occurred_at: DateTimeUtc,
});

tenant_entity!(return_, "returns", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: String,
    pub reason: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(return_line, "return_lines", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub return_id: Uuid,
    pub variant_id: Uuid,
    pub quantity: i32,
    pub condition: String,
});

tenant_entity!(purchase_order, "purchase_orders", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub number: String,
    pub supplier_id: Uuid,
    pub location_id: Uuid,
    pub status: String,
    pub currency: String,
    pub expected_on: Option<Date>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub issued_at: Option<DateTimeUtc>,
    /// The supplier contract that issued it.
    pub contract_id: Option<Uuid>,
    /// The delivery date the supplier promised when acknowledging.
    pub promised_on: Option<Date>,
    pub acknowledged_at: Option<DateTimeUtc>,
    /// A late-delivery penalty applied under its contract.
    pub penalty_amount: Option<Dec>,
    /// Why it was rejected or cancelled.
    pub status_reason: Option<String>,
});

tenant_entity!(purchase_order_line, "purchase_order_lines", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub purchase_order_id: Uuid,
    pub variant_id: Uuid,
    pub quantity: i32,
    pub received_quantity: i32,
    pub unit_cost: Dec,
});

tenant_entity!(transfer, "transfers", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub variant_id: Uuid,
    pub from_location_id: Uuid,
    pub to_location_id: Uuid,
    pub quantity: i32,
    /// `completed` (moved at once by `stockTransfer`), or from a plan `draft`, `in_transit`,
    /// `received`, `cancelled`.
    pub status: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTimeUtc,
    pub shipped_at: Option<DateTimeUtc>,
    pub received_at: Option<DateTimeUtc>,
    /// Why it was cancelled.
    pub status_reason: Option<String>,
    /// The run whose approved plan made it; none for one moved at once.
    pub replenishment_run_id: Option<Uuid>,
});

tenant_entity!(replenishment_run, "replenishment_runs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub requested_by: String,
    pub forecast_run_id: Option<Uuid>,
    /// `milp` or `greedy`.
    pub method: Option<String>,
    pub cost: Option<Dec>,
    pub objective: Option<Dec>,
    pub lower_bound: Option<f64>,
    pub lines_total: i32,
    pub series_total: i32,
    pub short_total: i32,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// How the policy's spread was calibrated: `{days, series, bias, factor, achieved, target}`.
    pub calibration: Option<Json>,
});

tenant_entity!(replenishment_settings, "replenishment_settings", {
    /// `fill_rate` or `cycle`.
    pub service_level_kind: String,
    pub target_service_level: f64,
    pub class_a_target: Option<f64>,
    pub class_b_target: Option<f64>,
    pub class_c_target: Option<f64>,
    pub transfer_unit_cost: Dec,
    pub updated_at: DateTimeUtc,
    /// The most one plan spends across all suppliers; `None`: no limit.
    pub plan_budget: Option<Dec>,
});

tenant_entity!(replenishment_sku_target, "replenishment_sku_targets", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub variant_id: Uuid,
    pub target_service_level: f64,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(replenishment_lane, "replenishment_lanes", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub from_location_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub to_location_id: Uuid,
    pub unit_cost: Dec,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(replenishment_line, "replenishment_lines", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub run_id: Uuid,
    /// `buy` or `transfer`.
    pub kind: String,
    pub variant_id: Uuid,
    pub sku: String,
    pub location_id: Uuid,
    pub supplier_id: Option<Uuid>,
    pub from_location_id: Option<Uuid>,
    pub quantity: i32,
    pub unit_cost: Dec,
    pub cost: Dec,
    pub currency: String,
    pub expected_service_level: f64,
    pub reason: String,
    pub explanation: Json,
    /// `proposed` or `approved`.
    pub status: String,
    pub purchase_order_id: Option<Uuid>,
    pub transfer_id: Option<Uuid>,
    pub approved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
});

tenant_entity!(daily_demand, "daily_demand", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub variant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub location_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    pub units: i32,
    pub price: Dec,
    pub promo: bool,
    pub stockout: bool,
});

tenant_entity!(event, "events", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_type: String,
    pub version: i32,
    pub payload: Json,
    pub occurred_at: DateTimeUtc,
});

tenant_entity!(job, "jobs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub payload: Json,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub dedup_key: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(job_schedule, "job_schedules", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub kind: String,
    pub payload: Json,
    pub interval_seconds: i32,
    pub next_run_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(connector, "connectors", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `shopify`.
    pub kind: String,
    /// `active`, `paused` or `uninstalled`.
    pub status: String,
    /// The shop domain (Shopify).
    pub external_account: String,
    pub settings: Json,
    /// Sealed (see `qm_integrations::sealing`); empty once uninstalled.
    pub credentials: String,
    pub status_reason: Option<String>,
    /// The provider's rate-limit bucket as last observed (see `services::sync::Throttle`).
    pub throttle: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(connector_webhook, "connector_webhooks", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connector_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub webhook_id: String,
    pub topic: String,
    pub triggered_at: Option<DateTimeUtc>,
    pub body: String,
    /// `received`, `applied` or `ignored`.
    pub status: String,
    pub received_at: DateTimeUtc,
});

tenant_entity!(sync_run, "sync_runs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connector_id: Uuid,
    /// The resources, in the order they run.
    pub resources: Json,
    pub full_sync: bool,
    /// `manual`, `schedule` or `webhook`.
    pub trigger: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    /// The checkpoint (see `services::sync::Position`).
    pub position: Json,
    /// Per resource: `{"applied", "unchanged", "problems"}`.
    pub counts: Json,
    /// The first problems, `[{"resource", "externalId", "message"}]`.
    pub problems: Json,
    pub problem_count: i64,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
});

tenant_entity!(sync_cursor, "sync_cursors", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connector_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub resource: String,
    pub since: Option<DateTimeUtc>,
    pub last_synced_at: Option<DateTimeUtc>,
    pub last_run_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub error_count: i64,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(external_ref, "external_refs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connector_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub local_id: Uuid,
    pub version: Option<DateTimeUtc>,
    pub extra: Option<Uuid>,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(webhook_endpoint, "webhook_endpoints", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    pub status: String,
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// A supplier's endpoint: sent only the events about that supplier.
    pub supplier_id: Option<Uuid>,
});

tenant_entity!(webhook_message, "webhook_messages", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Option<Uuid>,
    pub event_type: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(webhook_attempt, "webhook_attempts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub message_id: Uuid,
    pub endpoint_id: Uuid,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub response_excerpt: String,
    pub error: Option<String>,
    pub attempted_at: DateTimeUtc,
});

tenant_entity!(alert_rule, "alert_rules", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    /// `stock_below`, `days_of_cover_below` or `webhook_endpoint_disabled`.
    pub kind: String,
    pub sku: Option<String>,
    pub location_id: Option<Uuid>,
    pub threshold: Option<i64>,
    pub days_of_cover: Option<Dec>,
    /// Comma-separated roles whose users are e-mailed.
    pub recipient_roles: String,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(alert, "alerts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub rule_id: Option<Uuid>,
    pub kind: String,
    pub subject: String,
    /// Lines of detail, as e-mailed: `{"lines": [..], ...}`.
    pub details: Json,
    pub variant_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
    /// `open` or `acknowledged`.
    pub status: String,
    pub fired_at: DateTimeUtc,
    pub notified_at: Option<DateTimeUtc>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by: Option<String>,
});

tenant_entity!(forecast_run, "forecast_runs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub horizon: i32,
    pub season: i32,
    pub series_total: i32,
    pub requested_by: String,
    /// The fitted `qm_domain::forecast::PanelModel`.
    pub model: Option<Json>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
});

tenant_entity!(forecast, "forecasts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub variant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub location_id: Uuid,
    pub run_id: Uuid,
    pub sku: String,
    pub model: String,
    pub demand_class: String,
    pub reason: String,
    pub first_day: Date,
    /// `{"point": [..], "quantiles": {"0.1": [..], ..}}`
    pub forecast: Json,
    /// `qm_domain::forecast::Holdout`.
    pub holdout: Option<Json>,
    /// `[["ses", 1.2], ..]`: every candidate with its backtest mean squared error, best first.
    pub candidates: Json,
    pub stockout_on: Option<Date>,
    pub created_at: DateTimeUtc,
});

tenant_entity!(forecast_override, "forecast_overrides", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub variant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub location_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    pub quantity: f64,
    pub note: String,
    pub set_by: String,
    pub set_at: DateTimeUtc,
});

tenant_entity!(route_plan, "route_plans", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub location_id: Uuid,
    pub date: Date,
    /// `queued`, `running`, `ready`, `failed` or `superseded`.
    pub status: String,
    /// `services::routing::Request`.
    pub request: Json,
    pub base_plan_id: Option<Uuid>,
    /// `services::routing::Changes` of a re-plan.
    pub changes: Option<Json>,
    /// `osrm` or `haversine`.
    pub matrix_source: Option<String>,
    pub distance_m: f64,
    pub duration_s: f64,
    pub co2_kg: f64,
    pub cost: Option<Dec>,
    pub routes_total: i32,
    pub unassigned_total: i32,
    pub error: Option<String>,
    pub requested_by: String,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
});

tenant_entity!(route_plan_route, "route_plan_routes", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub plan_id: Uuid,
    pub seq: i32,
    pub vehicle: String,
    /// `planned` or `started`.
    pub status: String,
    pub capacity: i32,
    pub load: i32,
    pub departure_at: DateTimeUtc,
    pub return_at: DateTimeUtc,
    pub distance_m: f64,
    pub duration_s: f64,
    pub driving_s: f64,
    pub co2_kg: f64,
    pub cost: Dec,
});

tenant_entity!(route_plan_stop, "route_plan_stops", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub plan_id: Uuid,
    pub route_id: Option<Uuid>,
    pub seq: i32,
    pub order_id: Uuid,
    pub shipment_id: Option<Uuid>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub demand: i32,
    pub arrival_at: Option<DateTimeUtc>,
    pub service_start_at: Option<DateTimeUtc>,
    pub departure_at: Option<DateTimeUtc>,
    pub travel_distance_m: Option<f64>,
    pub travel_duration_s: Option<f64>,
    /// Why an unassigned stop is left out (`UnassignedReason` in GraphQL, snake case).
    pub reason: Option<String>,
    pub message: Option<String>,
});

tenant_entity!(pricing_policy, "pricing_policies", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `tenant`, `category` or `variant`.
    pub scope: String,
    /// The category's name or the variant's id; empty for the tenant.
    pub scope_key: String,
    pub min_margin: Option<Dec>,
    pub max_change_per_step: Option<Dec>,
    pub price_ending: Option<Dec>,
    pub min_advertised_price: Option<Dec>,
    pub min_expected_gain: Option<Dec>,
    pub season_end: Option<Date>,
    pub salvage_value: Option<Dec>,
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(pricing_run, "pricing_runs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub requested_by: String,
    pub forecast_run_id: Option<Uuid>,
    pub horizon_days: i32,
    pub skus_total: i32,
    pub proposed_total: i32,
    pub held_total: i32,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
});

tenant_entity!(price_recommendation, "price_recommendations", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub run_id: Uuid,
    pub variant_id: Uuid,
    pub sku: String,
    /// `proposed`, `held`, `approved`, `rejected` or `superseded`.
    pub status: String,
    pub current_price: Dec,
    pub recommended_price: Dec,
    pub currency: String,
    pub unit_cost: Option<Dec>,
    pub elasticity: Option<f64>,
    pub elasticity_se: Option<f64>,
    /// `high`, `medium` or `low`.
    pub confidence: String,
    pub expected_units_current: f64,
    pub expected_units_recommended: f64,
    pub expected_profit_current: Dec,
    pub expected_profit_recommended: Dec,
    /// `qm_domain::pricing::Binding` in snake case, or `no_unit_cost`.
    pub binding: String,
    pub reason: String,
    pub explanation: Json,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
});

tenant_entity!(contract, "contracts", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub supplier_id: Uuid,
    pub name: String,
    /// `proposed` (no version active yet), `active` or `ended`.
    pub status: String,
    pub active_version: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(contract_version, "contract_versions", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contract_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    /// The document as agreed (JSON text).
    pub document: String,
    /// `proposed`, `accepted`, `active`, `superseded` or `withdrawn`.
    pub status: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTimeUtc>,
    pub activated_at: Option<DateTimeUtc>,
});

tenant_entity!(contract_event, "contract_events", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub id: Uuid,
    pub contract_id: Uuid,
    pub kind: String,
    pub occurred_at_micros: i64,
    /// Canonical JSON text.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
});

tenant_entity!(contract_ledger_head, "contract_ledger_heads", {
    pub seq: i64,
    pub hash: String,
});

tenant_entity!(contract_checkpoint, "contract_checkpoints", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub head_hash: String,
    pub signed_at_micros: i64,
    pub signature: String,
});

tenant_entity!(contract_key, "contract_keys", {
    pub public_key: String,
    pub sealed_secret: String,
    pub created_at: DateTimeUtc,
});

tenant_entity!(contract_fired, "contract_fired", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contract_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub rule_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject_key: String,
    pub version: i32,
    pub fired_at: DateTimeUtc,
});

tenant_entity!(purchase_order_shipment, "purchase_order_shipments", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub purchase_order_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
    /// `[{"lineId": uuid, "quantity": n}]`
    pub lines: Json,
    pub shipped_at: DateTimeUtc,
    pub expected_on: Option<Date>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
});

tenant_entity!(allocation_policy, "allocation_policies", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Empty for the tenant, else the location's id.
    pub scope_key: String,
    pub pinned_location_id: Option<Uuid>,
    pub split_cost: Option<Dec>,
    pub stockout_share: Option<Dec>,
    pub handling_per_parcel: Option<Dec>,
    pub handling_per_unit: Option<Dec>,
    pub ship_from_store: Option<bool>,
    /// `[{maxKm, parcel, unit}]`, nearest first.
    pub bands: Option<Json>,
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(order_allocation, "order_allocations", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    /// `exact`, `milp`, `greedy` or `pinned`.
    pub method: String,
    pub parcels: i32,
    pub shipping: Dec,
    pub handling: Dec,
    pub split: Dec,
    pub stockout_risk: Dec,
    pub cost: Dec,
    pub from_store: bool,
    /// `[{lineId, locationId}]`.
    pub lines: Json,
    pub allocated_at: DateTimeUtc,
});

tenant_entity!(returns_policy, "returns_policies", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Empty for the tenant, else the location's id.
    pub scope_key: String,
    pub capacity: Option<i32>,
    /// `{disposition: processing cost per item}`.
    pub processing: Option<Json>,
    /// `{disposition: {recoveryRate, yield, grades}}`.
    pub terms: Option<Json>,
    pub transport_cost_per_km: Option<Dec>,
    pub hold_cost: Option<Dec>,
    pub restock_cover_days: Option<Dec>,
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
});

tenant_entity!(returns_run, "returns_runs", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub requested_by: String,
    /// `milp` or `greedy`.
    pub method: String,
    pub items_total: i32,
    pub held_total: i32,
    pub ungraded_total: i32,
    pub objective: Dec,
    pub bound: Dec,
    pub gap: f64,
    pub created_at: DateTimeUtc,
});

tenant_entity!(return_disposition, "return_dispositions", {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub run_id: Uuid,
    pub return_id: Uuid,
    pub return_line_id: Uuid,
    pub variant_id: Uuid,
    pub sku: String,
    pub quantity: i32,
    pub grade: String,
    /// `restock_new`, `open_box`, `refurbish`, `return_to_vendor`, `liquidate`, `recycle`;
    /// `None`: held for another day.
    pub disposition: Option<String>,
    pub location_id: Option<Uuid>,
    /// `proposed`, `held`, `approved`, `rejected` or `superseded`.
    pub status: String,
    pub expected_recovery: Dec,
    pub processing_cost: Dec,
    pub transport_cost: Dec,
    pub net: Dec,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
});
