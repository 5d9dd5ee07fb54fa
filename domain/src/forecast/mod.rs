//! Demand forecasting: classification, per-series methods, model choice by rolling-origin
//! backtest, quantiles, and the accuracy metrics used to judge all of it. Pure and deterministic.

pub mod classify;
pub mod engine;
pub mod global;
pub mod methods;
pub mod metrics;
pub mod panel;

pub use classify::DemandClass;
pub use engine::{Config, Model, SeriesForecast, forecast_series, impute_censored};
pub use global::Panel;
pub use panel::{Blend, PanelForecast, forecast_panel};
