//! Demand forecasting: classification, per-series methods, model choice by rolling-origin
//! backtest, quantiles, and the accuracy metrics used to judge all of it. Pure and deterministic.

pub mod calendar;
pub mod classify;
pub mod engine;
pub mod global;
pub mod methods;
pub mod metrics;
pub mod panel;
pub mod supply;

pub use calendar::Freq;
pub use classify::DemandClass;
pub use engine::{Config, Model, SeriesForecast, forecast_series, forecast_series_as, impute_censored};
pub use global::Panel;
pub use panel::{
    Blend, Holdout, PanelForecast, PanelModel, apply, fit_panel, forecast_before_holdout, forecast_one, forecast_panel,
    holdout, locals,
};
pub use supply::{first_stockout, lead_time_quantile, sd_from_band};
