//! Route plans (issue 7): a day's deliveries from one location planned onto vehicles.
//!
//! `route_plans`: one planning (or re-planning) of a location's day, with what was asked
//! (vehicles, shipments, settings), the plan's totals once ready, and the plan it re-plans.
//! `route_plan_routes`: one vehicle's tour with its times and totals; `route_plan_stops`: the
//! stops of a plan, in sequence on their route, or unassigned (no route) with the reason.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["route_plans", "route_plan_routes", "route_plan_stops"];

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
fn opt_uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().null().to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}
fn opt_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}
fn real(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().not_null().default(0.0).to_owned()
}
fn opt_real(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().null().to_owned()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().default(0).to_owned()
}

fn table(name: &'static str, columns: Vec<ColumnDef>, key: &[&'static str]) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists().col(uuid("tenant_id"));
    for mut c in columns {
        t.col(&mut c);
    }
    let mut pk = Index::create();
    pk.col("tenant_id");
    for k in key {
        pk.col(*k);
    }
    t.primary_key(&mut pk);
    t.to_owned()
}

fn plans() -> TableCreateStatement {
    table(
        "route_plans",
        vec![
            uuid("id"),
            uuid("location_id"),
            ColumnDef::new("date").date().not_null().to_owned(),
            // queued, running, ready, failed or superseded (a re-plan of it is ready).
            text("status"),
            // What was asked: vehicles, shipment ids, service minutes, time limit, seed.
            ColumnDef::new("request").json().not_null().to_owned(),
            // A re-plan: the plan it changes and the changes.
            opt_uuid("base_plan_id"),
            ColumnDef::new("changes").json().null().to_owned(),
            // osrm or haversine.
            opt_text("matrix_source"),
            real("distance_m"),
            real("duration_s"),
            real("co2_kg"),
            // Canonical decimal text.
            opt_text("cost"),
            int("routes_total"),
            int("unassigned_total"),
            opt_text("error"),
            text("requested_by"),
            ts("created_at"),
            opt_ts("started_at"),
            opt_ts("finished_at"),
        ],
        &["id"],
    )
}

fn routes() -> TableCreateStatement {
    table(
        "route_plan_routes",
        vec![
            uuid("id"),
            uuid("plan_id"),
            // Its place in the plan's list of vehicles.
            int("seq"),
            text("vehicle"),
            // planned or started (on the road: a re-plan keeps it as it is).
            text("status"),
            int("capacity"),
            int("load"),
            ts("departure_at"),
            ts("return_at"),
            real("distance_m"),
            real("duration_s"),
            real("driving_s"),
            real("co2_kg"),
            text("cost"),
        ],
        &["id"],
    )
}

fn stops() -> TableCreateStatement {
    table(
        "route_plan_stops",
        vec![
            uuid("id"),
            uuid("plan_id"),
            // Null: unassigned (see `reason`).
            opt_uuid("route_id"),
            int("seq"),
            uuid("order_id"),
            opt_uuid("shipment_id"),
            opt_real("latitude"),
            opt_real("longitude"),
            int("demand"),
            opt_ts("arrival_at"),
            opt_ts("service_start_at"),
            opt_ts("departure_at"),
            opt_real("travel_distance_m"),
            opt_real("travel_duration_s"),
            opt_text("reason"),
            opt_text("message"),
        ],
        &["id"],
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(plans()).await?;
        manager.create_table(routes()).await?;
        manager.create_table(stops()).await?;
        for mut index in [
            Index::create()
                .name("ix_route_plans_location_date")
                .table("route_plans")
                .col("tenant_id")
                .col("location_id")
                .col("date")
                .to_owned(),
            Index::create()
                .name("ix_route_plan_routes_plan")
                .table("route_plan_routes")
                .col("tenant_id")
                .col("plan_id")
                .to_owned(),
            Index::create()
                .name("ix_route_plan_stops_plan")
                .table("route_plan_stops")
                .col("tenant_id")
                .col("plan_id")
                .to_owned(),
        ] {
            manager.create_index(index.if_not_exists().to_owned()).await?;
        }
        crate::enable_row_level_security(manager, TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["route_plan_stops", "route_plan_routes", "route_plans"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
