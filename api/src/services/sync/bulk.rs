//! A full read of the catalog and stock through a Shopify bulk operation
//! (`qm_connectors::shopify::import`), as one step of a run: start the operation, wait for it
//! (a job polls while its slice lasts, then hands over to a continuation scheduled a little
//! later), then read the result file a page of variants at a time, each page applied (variants,
//! then their levels at every linked location) in one transaction with the run's checkpoint: the
//! operation, its URL and the byte offset after the last group applied. A run that stops anywhere
//! goes on from there; a page applied again by a later run changes nothing (provider versions).
//!
//! When the operation fails, what it wrote (`partialDataUrl`) is applied and the rest read page
//! by page; a result whose URL has expired is asked for again; another bulk query running on the
//! shop makes the job retry later.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qm_connectors::ProviderError;
use qm_connectors::shopify::bulk::Resume;
use qm_connectors::shopify::client::Client;
use qm_connectors::shopify::import::{self, Download, Started};
use qm_connectors::source::{ExternalLevel, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Applied, Applier, Position, SYNC, SliceError, complete_resource, counts_of, job_for, owned, problems_of, refs_of,
    save_run, tally, within_lease,
};
use crate::db::entities::{connector, sync_run};
use crate::db::{Scoped, TxMode};
use crate::jobs::{self, NewJob};
use crate::services::connectors::{BULK_IMPORT_FROM, BulkImport, settings_of};
use crate::state::AppState;

/// Where a bulk import is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkState {
    /// The operation's id (`gid://shopify/BulkOperation/…`).
    pub operation: String,
    pub currency: String,
    /// The result file, once the operation is done.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The file is what a failed operation wrote: the rest is read page by page after it.
    #[serde(default)]
    pub partial: bool,
    /// The byte offset after the last group applied, and the lines before it.
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub lines: usize,
    /// The newest level change applied (the catalog's is the position's `newest`).
    #[serde(default)]
    pub levels_newest: Option<DateTime<Utc>>,
    /// Continuations that waited for the operation (each one job).
    #[serde(default)]
    pub waits: u32,
}

/// What the run does after a bulk step.
pub(super) enum Next {
    /// Read the catalog page by page.
    Pages,
    /// Go on (the position moved).
    Again,
    /// This slice is over (a continuation is queued).
    Stop,
}

/// The result file being read by this slice.
pub(super) struct Reading {
    url: String,
    offset: u64,
    download: Download,
}

/// The variants applied per transaction (each with its levels at every location).
const PAGE_VARIANTS: usize = 250;
/// Between polls of a running operation.
const POLL: Duration = Duration::from_secs(1);
/// A result URL older than this is asked for again without trying it (Shopify keeps it 7 days).
const URL_MARGIN: chrono::Duration = chrono::Duration::hours(1);

/// The run being worked on.
pub(super) struct Slice<'a> {
    pub state: &'a AppState,
    pub tenant: Uuid,
    pub run: &'a sync_run::Model,
    pub resources: &'a [String],
    pub connector: &'a connector::Model,
    pub client: &'a super::Provider,
    /// The client's Shopify side (bulk operations are Shopify's).
    pub shop: &'a Client,
    pub started: Instant,
}

impl Slice<'_> {
    fn over(&self) -> bool {
        self.started.elapsed() >= within_lease(self.state, super::SLICE)
    }

    fn wants(&self, resource: &str) -> bool {
        self.resources.iter().any(|r| r == resource)
    }

    /// Stores `pos` (moved on from `before`) with `problems` of the catalog, if this slice still
    /// owns the run; `None` when another worker moved it on.
    async fn save(&self, before: &Position, pos: &Position, notes: Vec<Problem>) -> Result<Option<Scoped>, SliceError> {
        let s = self.state.db.scoped(self.tenant, TxMode::Write).await?;
        let Some(current) = owned(&s, self.run.id, before).await? else { return Ok(None) };
        let (mut counts, mut problems, mut count) = (counts_of(&current), problems_of(&current), current.problem_count);
        if !notes.is_empty() {
            tally(&mut counts, &mut problems, &mut count, "catalog", Applied { problems: notes, ..Applied::default() });
        }
        save_run(&s, self.run.id, (self.connector.id, self.client), pos, &counts, &problems, count).await?;
        Ok(Some(s))
    }
}

/// One step of a full catalog read: `Pages` when it is not (or no longer) a bulk import.
pub(super) async fn step(
    cx: &Slice<'_>,
    pos: &mut Position,
    reading: &mut Option<Reading>,
) -> Result<Next, SliceError> {
    match pos.bulk.clone() {
        None => start(cx, pos).await,
        Some(b) if b.url.is_none() => wait(cx, pos, b).await,
        Some(b) => read(cx, pos, b, reading).await,
    }
}

/// Commits `pos`, moved on from `before`, with notes on the catalog.
async fn commit(cx: &Slice<'_>, before: &Position, pos: &Position, notes: Vec<Problem>) -> Result<Next, SliceError> {
    match cx.save(before, pos, notes).await? {
        Some(s) => {
            s.commit().await?;
            Ok(Next::Again)
        }
        None => Ok(Next::Stop),
    }
}

/// Starts the operation when the installation and the shop's size call for one.
async fn start(cx: &Slice<'_>, pos: &mut Position) -> Result<Next, SliceError> {
    let mode = settings_of(cx.connector).bulk_import;
    if pos.paged || mode == BulkImport::Never {
        return Ok(Next::Pages);
    }
    let size = cx.shop.shop_size().await?;
    if mode == BulkImport::Auto && size.variants < BULK_IMPORT_FROM {
        pos.paged = true;
        return Ok(Next::Pages);
    }
    let op = match cx.shop.start_import().await? {
        Started::Started(op) => op,
        Started::Busy(why) => {
            tracing::info!(run = %cx.run.id, why, "another bulk query runs on the shop; trying again later");
            return Err(ProviderError::RateLimited { retry_after: BUSY }.into());
        }
    };
    tracing::info!(run = %cx.run.id, operation = %op.id, variants = size.variants, "bulk import started");
    let before = pos.clone();
    pos.bulk = Some(BulkState {
        operation: op.id,
        currency: size.currency,
        url: None,
        completed_at: None,
        partial: false,
        offset: 0,
        lines: 0,
        levels_newest: None,
        waits: 0,
    });
    commit(cx, &before, pos, vec![]).await
}

/// How long to wait when another bulk query runs on the shop.
const BUSY: Duration = Duration::from_secs(30);

/// Polls the operation while the slice lasts; then a continuation polls on a little later.
async fn wait(cx: &Slice<'_>, pos: &mut Position, mut b: BulkState) -> Result<Next, SliceError> {
    loop {
        let op = cx.shop.bulk_operation(&b.operation).await?;
        let before = pos.clone();
        let Some(op) = op else {
            tracing::warn!(operation = %b.operation, "the shop no longer knows the bulk import; starting again");
            pos.bulk = None;
            return commit(cx, &before, pos, vec![]).await;
        };
        if op.is_running() {
            if !cx.over() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            b.waits += 1;
            pos.bulk = Some(b.clone());
            let Some(s) = cx.save(&before, pos, vec![]).await? else { return Ok(Next::Stop) };
            let mut job = NewJob::new(SYNC, serde_json::json!({ "run_id": cx.run.id }));
            job.dedup_key = Some(format!("{SYNC}:{}:{}:wait{}", cx.run.id, pos.pages, b.waits));
            job.run_at = Some(Utc::now() + chrono::Duration::seconds(2));
            jobs::enqueue(&s, job).await?;
            s.commit().await?;
            return Ok(Next::Stop);
        }
        let mut notes = vec![];
        b.completed_at = Some(op.completed_at.unwrap_or_else(Utc::now));
        if op.status == "COMPLETED" {
            tracing::info!(operation = %op.id, objects = op.object_count, "bulk import written; reading it");
            // An operation that found nothing has no file: an empty one.
            b.url = Some(op.url.unwrap_or_default());
            pos.bulk = Some(b);
        } else {
            let code = op.error_code.unwrap_or(op.status);
            if let Some(url) = op.partial_data_url {
                notes.push(Problem::new(
                    &op.id,
                    format!("the bulk import ended {code}: what it wrote is applied, the rest is read page by page"),
                ));
                (b.url, b.partial) = (Some(url), true);
                pos.bulk = Some(b);
            } else {
                notes.push(Problem::new(
                    &op.id,
                    format!("the bulk import ended {code}: the catalog is read page by page"),
                ));
                pos.bulk = None;
                pos.paged = true;
            }
        }
        return commit(cx, &before, pos, notes).await;
    }
}

/// Applies the next page of the result file.
async fn read(
    cx: &Slice<'_>,
    pos: &mut Position,
    mut b: BulkState,
    reading: &mut Option<Reading>,
) -> Result<Next, SliceError> {
    let before = pos.clone();
    let url = b.url.clone().unwrap_or_default();
    if b.completed_at.is_some_and(|t| t + import::URL_LIFETIME - URL_MARGIN < Utc::now()) {
        tracing::info!(operation = %b.operation, "the bulk import's file has expired; starting it again");
        pos.bulk = None;
        *reading = None;
        return commit(cx, &before, pos, vec![]).await;
    }
    let continue_after = cx.over();
    let (mut variants, mut levels) = (Vec::new(), Vec::<ExternalLevel>::new());
    let (mut catalog_problems, mut level_problems) = (Vec::new(), Vec::new());
    let mut end = url.is_empty();
    if !end {
        let fresh = reading.as_ref().is_none_or(|r| r.url != url || r.offset != b.offset);
        if fresh {
            let timeout = Duration::from_secs(cx.state.config.worker_lease_seconds.max(3));
            let at = Resume { offset: b.offset, lines: b.lines };
            let Some(download) = cx.shop.download(&url, at, timeout).await? else {
                tracing::info!(operation = %b.operation, "the bulk import's file is gone; starting it again");
                pos.bulk = None;
                *reading = None;
                return commit(cx, &before, pos, vec![]).await;
            };
            *reading = Some(Reading { url, offset: b.offset, download });
        }
        let Some(r) = reading.as_mut() else { return Ok(Next::Again) };
        let mut groups = 0;
        while groups < PAGE_VARIANTS {
            match r.download.next().await {
                Ok(None) => {
                    end = true;
                    break;
                }
                Ok(Some(Err(e))) => catalog_problems.push(Problem::new(format!("line {}", e.line()), e.to_string())),
                Ok(Some(Ok(g))) => {
                    groups += 1;
                    let (variant, its_levels) = import::import_record(&g, &b.currency);
                    match variant {
                        Ok(v) => variants.push(v),
                        Err(p) => catalog_problems.push(p),
                    }
                    for l in its_levels {
                        match l {
                            Ok(l) => levels.push(l),
                            Err(p) => level_problems.push(p),
                        }
                    }
                    (b.offset, b.lines, r.offset) = (g.next.offset, g.next.lines, g.next.offset);
                }
                Err(e) => {
                    *reading = None;
                    return Err(e.into());
                }
            }
        }
        end = end || r.download.at_end();
    }
    let s = cx.state.db.scoped(cx.tenant, TxMode::Write).await?;
    let Some(current) = owned(&s, cx.run.id, &before).await? else {
        *reading = None;
        return Ok(Next::Stop);
    };
    let (mut counts, mut problems, mut count) = (counts_of(&current), problems_of(&current), current.problem_count);
    let ctx = Applier { connector: cx.connector, full: cx.run.full_sync };
    let mut catalog = ctx.catalog(&s, &variants).await?;
    catalog.problems.splice(0..0, catalog_problems);
    pos.newest = pos.newest.max(catalog.newest);
    tally(&mut counts, &mut problems, &mut count, "catalog", catalog);
    if cx.wants("inventory") {
        // Levels at the linked locations, a location at a time; the others are not mirrored.
        let mut by_location: HashMap<String, Vec<ExternalLevel>> = refs_of(&s, cx.connector.id, "location")
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|r| (r.external_id, Vec::new()))
            .collect();
        for l in levels {
            if let Some(at) = by_location.get_mut(&l.location_id) {
                at.push(l);
            }
        }
        let mut out = Applied { problems: level_problems, ..Applied::default() };
        let mut locations: Vec<_> = by_location.into_iter().filter(|(_, l)| !l.is_empty()).collect();
        locations.sort_by(|a, b| a.0.cmp(&b.0));
        for (location, records) in locations {
            let a = ctx.inventory(&s, &location, &records).await?;
            (out.applied, out.unchanged, out.newest) =
                (out.applied + a.applied, out.unchanged + a.unchanged, out.newest.max(a.newest));
            out.problems.extend(a.problems);
        }
        b.levels_newest = b.levels_newest.max(out.newest);
        tally(&mut counts, &mut problems, &mut count, "inventory", out);
    }
    pos.pages += 1;
    pos.bulk = Some(b.clone());
    if end {
        *reading = None;
        pos.bulk = None;
        if b.partial {
            pos.paged = true;
        } else {
            for (resource, newest) in [("catalog", pos.newest), ("inventory", b.levels_newest)] {
                if cx.wants(resource) {
                    complete_resource(&s, cx.connector.id, resource, cx.run.id, newest).await?;
                    pos.done.push(resource.to_owned());
                }
            }
        }
    }
    save_run(&s, cx.run.id, (cx.connector.id, cx.client), pos, &counts, &problems, count).await?;
    if continue_after && cx.resources.iter().any(|r| !pos.done.contains(r)) {
        jobs::enqueue(&s, job_for(cx.run.id, pos.pages)).await?;
        s.commit().await?;
        *reading = None;
        return Ok(Next::Stop);
    }
    s.commit().await?;
    Ok(Next::Again)
}
