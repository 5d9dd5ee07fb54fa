//! Approved prices sent to the stores (`connector.price`).
//!
//! Approving a price recommendation sets the variant's price here and queues one job per store
//! and product (Shopify sets the prices of one product's variants in one call). The job sends a
//! price only while it is still the variant's price here and its recommendation the latest one
//! approved: a retry that comes after a newer approval, or after the price was changed again,
//! sends nothing stale. Setting the same price twice changes nothing in the store, so a retry
//! after a lost answer is safe.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, DbErr, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{payload_id, push_client, push_failed};
use crate::db::entities::{connector, external_ref, job, variant};
use crate::db::{Scoped, TxMode, repo};
use crate::jobs::worker::{Handler, JobError};
use crate::jobs::{self, NewJob};
use crate::state::AppState;

pub const PRICE: &str = "connector.price";

/// One variant's price in a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sent {
    recommendation_id: Uuid,
    variant_id: Uuid,
    /// The store's id of the variant.
    variant: String,
    price: Decimal,
}

/// Queues sending approved prices (`(recommendation, variant, product, price)`) to every active
/// connector linking the variant, in the approval's transaction.
pub async fn queue_prices(s: &Scoped, approved: &[(Uuid, Uuid, Uuid, Decimal)]) -> Result<(), DbErr> {
    if approved.is_empty() {
        return Ok(());
    }
    let refs = |kind: &'static str, ids: Vec<Uuid>| {
        repo::find::<external_ref::Entity>(s)
            .filter(external_ref::Column::Kind.eq(kind))
            .filter(external_ref::Column::LocalId.is_in(ids))
    };
    let variant_refs = refs("variant", approved.iter().map(|a| a.1).collect()).all(&s.tx).await?;
    if variant_refs.is_empty() {
        return Ok(());
    }
    let product_refs = refs("product", approved.iter().map(|a| a.2).collect()).all(&s.tx).await?;
    let active: HashSet<Uuid> = repo::find::<connector::Entity>(s)
        .filter(connector::Column::Status.eq("active"))
        .all(&s.tx)
        .await?
        .into_iter()
        .filter(|c| super::provider::takes(&c.kind, "prices"))
        .map(|c| c.id)
        .collect();
    let product_of: HashMap<(Uuid, Uuid), &str> =
        product_refs.iter().map(|r| ((r.connector_id, r.local_id), r.external_id.as_str())).collect();
    // Per connector and store product, its variants' prices.
    let mut jobs_of: BTreeMap<(Uuid, String), Vec<Sent>> = BTreeMap::new();
    for (recommendation_id, variant_id, product_id, price) in approved {
        for r in variant_refs.iter().filter(|r| r.local_id == *variant_id && active.contains(&r.connector_id)) {
            let Some(product) = product_of.get(&(r.connector_id, *product_id)) else { continue };
            jobs_of.entry((r.connector_id, (*product).to_owned())).or_default().push(Sent {
                recommendation_id: *recommendation_id,
                variant_id: *variant_id,
                variant: r.external_id.clone(),
                price: *price,
            });
        }
    }
    for ((connector_id, product), prices) in jobs_of {
        let first = prices.iter().map(|p| p.recommendation_id).min().unwrap_or_default();
        let mut job = NewJob::new(
            PRICE,
            serde_json::json!({ "connector_id": connector_id, "product": product, "prices": prices }),
        );
        job.dedup_key = Some(format!("{PRICE}:{connector_id}:{product}:{first}"));
        jobs::enqueue(s, job).await?;
    }
    Ok(())
}

pub(super) struct PriceJob;

#[async_trait::async_trait]
impl Handler for PriceJob {
    async fn run(&self, state: &AppState, j: &job::Model) -> Result<(), JobError> {
        let p = &j.payload;
        let connector_id = payload_id(j, "connector_id")?;
        let (Some(product), Ok(prices)) =
            (p["product"].as_str(), serde_json::from_value::<Vec<Sent>>(p["prices"].clone()))
        else {
            return Err(JobError::Permanent(format!("bad payload {p}")));
        };
        // Only what is still the price here and the latest approval.
        let s = state.db.scoped(j.tenant_id, TxMode::Read).await?;
        let ids: Vec<Uuid> = prices.iter().map(|x| x.variant_id).collect();
        let latest = crate::services::pricing::latest_approved(&s, &ids).await?;
        let current: HashMap<Uuid, Decimal> = repo::find::<variant::Entity>(&s)
            .filter(variant::Column::Id.is_in(ids))
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|v| (v.id, v.price.0))
            .collect();
        s.commit().await?;
        let send: Vec<(String, Decimal)> = prices
            .iter()
            .filter(|x| {
                latest.get(&x.variant_id) == Some(&x.recommendation_id) && current.get(&x.variant_id) == Some(&x.price)
            })
            .map(|x| (x.variant.clone(), x.price))
            .collect();
        if send.is_empty() {
            tracing::info!(connector = %connector_id, product, "prices changed again since approval; nothing sent");
            return Ok(());
        }
        let (_, client) = push_client(state, j.tenant_id, connector_id).await?;
        match async { client.price_sink()?.set_prices(product, &send).await }.await {
            Ok(()) => {
                tracing::info!(connector = %connector_id, product, variants = send.len(), "prices sent to the store");
                Ok(())
            }
            Err(e) => push_failed(state, j, connector_id, e).await,
        }
    }
}
