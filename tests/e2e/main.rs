//! End-to-end tests: the real application on a random port, over HTTP.
//! Runs on SQLite, and on PostgreSQL too when `QM_TEST_DATABASE_URL` is set.

mod alerts;
mod allocation;
mod auth;
mod bad_input;
mod connectors;
mod contract_service;
mod contracts;
mod forecast;
mod forecast_service;
mod jobs;
mod netsuite;
mod netsuite_connector;
mod ops;
mod orders;
mod pricing;
mod pricing_service;
mod processes;
mod replenish;
mod replenish_sim;
mod returns;
mod returns_service;
mod round_trips;
mod route_plans;
mod routing;
mod scale;
mod schema;
mod shipbob;
mod shipstation;
mod stock;
mod subscriptions;
mod sync;
mod tenancy;
mod tidy;
mod webhook_faults;
mod webhooks;
