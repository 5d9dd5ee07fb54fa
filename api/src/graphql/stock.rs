//! Stock levels, the movement ledger and stock changes.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use sea_orm::{ColumnTrait, Condition, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::catalog::opt_gid;
use super::pagination::{Window, connection};
use super::types::{LedgerProblem, LedgerVerification, StockLevel, StockMovement, gid, parse_gid};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{ledger_head, stock_level, stock_movement};
use crate::db::repo::{self, Page};
use crate::services::{lookup, stock};

#[derive(Default)]
pub struct StockQuery;

#[Object]
impl StockQuery {
    /// Stock per variant and location, optionally for one location and/or one SKU.
    /// An unknown location or SKU gives an empty list.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn stock_levels(
        &self,
        ctx: &Context<'_>,
        location_id: Option<ID>,
        sku: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, StockLevel>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<(Uuid, Uuid)>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<stock_level::Entity>(&s);
        let mut empty = false;
        if let Some(loc) = opt_gid(location_id.as_ref(), "Location") {
            match loc {
                Some(l) => q = q.filter(stock_level::Column::LocationId.eq(l)),
                None => empty = true,
            }
        }
        if let Some(sku) = &sku {
            match lookup::variant_by_sku(&s, sku).await? {
                Some(v) => q = q.filter(stock_level::Column::VariantId.eq(v.id)),
                None => empty = true,
            }
        }
        let key = |(v, l): &(Uuid, Uuid), greater: bool| {
            let (vc, lc) = (stock_level::Column::VariantId, stock_level::Column::LocationId);
            if greater {
                Condition::any().add(vc.gt(*v)).add(Condition::all().add(vc.eq(*v)).add(lc.gt(*l)))
            } else {
                Condition::any().add(vc.lt(*v)).add(Condition::all().add(vc.eq(*v)).add(lc.lt(*l)))
            }
        };
        if let Some(a) = &args.after {
            q = q.filter(key(a, true));
        }
        if let Some(b) = &args.before {
            q = q.filter(key(b, false));
        }
        q = if args.backward {
            q.order_by_desc(stock_level::Column::VariantId).order_by_desc(stock_level::Column::LocationId)
        } else {
            q.order_by_asc(stock_level::Column::VariantId).order_by_asc(stock_level::Column::LocationId)
        };
        let mut rows = if empty { vec![] } else { q.limit(args.limit + 1).all(&s.tx).await? };
        s.commit().await?;
        let more = rows.len() as u64 > args.limit;
        rows.truncate(args.limit as usize);
        let page = if args.backward {
            rows.reverse();
            Page { rows, has_next: args.before.is_some(), has_previous: more }
        } else {
            Page { rows, has_next: more, has_previous: args.after.is_some() }
        };
        Ok(connection(page, |m| (m.variant_id, m.location_id), StockLevel))
    }

    /// The stock ledger, oldest first, optionally for one variant and/or location.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn stock_movements(
        &self,
        ctx: &Context<'_>,
        variant_id: Option<ID>,
        location_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, StockMovement>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<i64>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<stock_movement::Entity>(&s);
        let v = opt_gid(variant_id.as_ref(), "Variant");
        let l = opt_gid(location_id.as_ref(), "Location");
        if matches!(v, Some(None)) || matches!(l, Some(None)) {
            s.commit().await?;
            return Ok(Connection::new(false, false));
        }
        if let Some(Some(v)) = v {
            q = q.filter(stock_movement::Column::VariantId.eq(v));
        }
        if let Some(Some(l)) = l {
            q = q.filter(stock_movement::Column::LocationId.eq(l));
        }
        let page = repo::page(&s, q, stock_movement::Column::Seq, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.seq, StockMovement))
    }

    /// Recomputes the tenant's hash-chained stock ledger and reports the first broken link.
    async fn ledger_verify(&self, ctx: &Context<'_>) -> Result<LedgerVerification, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let v = repo::verify_ledger(&s).await?;
        let head = repo::find::<ledger_head::Entity>(&s).one(&s.tx).await?;
        s.commit().await?;
        let mut out = LedgerVerification {
            ok: v.first_broken.is_none(),
            checked: i64::try_from(v.checked).unwrap_or(i64::MAX),
            head_hash: v.head_hash.clone(),
            first_broken_seq: v.first_broken.as_ref().map(|b| b.seq),
            first_broken_movement_id: v.first_broken.as_ref().map(|b| gid("StockMovement", b.id)),
            problem: v.first_broken.as_ref().map(|b| match b.problem {
                qm_domain::ledger::LinkProblem::SequenceGap => LedgerProblem::SequenceGap,
                qm_domain::ledger::LinkProblem::PrevHashMismatch => LedgerProblem::PrevHashMismatch,
                qm_domain::ledger::LinkProblem::HashMismatch => LedgerProblem::HashMismatch,
            }),
        };
        if out.ok
            && let Some(h) = head
            && (h.seq != out.checked || h.hash != v.head_hash)
        {
            out.ok = false;
            out.first_broken_seq = Some(out.checked + 1);
            out.problem = Some(LedgerProblem::HeadMismatch);
        }
        Ok(out)
    }
}

#[derive(InputObject)]
pub struct StockAdjustInput {
    pub sku: String,
    pub location_id: ID,
    /// Units to add (positive) or remove (negative); never zero.
    pub delta: i32,
    pub reason: Option<String>,
    /// Repeating a request with the same key returns the first result and changes nothing.
    pub idempotency_key: Option<String>,
}

#[derive(SimpleObject)]
pub struct StockAdjustPayload {
    pub stock_level: Option<StockLevel>,
    pub movement: Option<StockMovement>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct StockCountInput {
    pub sku: String,
    pub location_id: ID,
    /// The units counted there: on hand becomes this.
    pub on_hand: i32,
    pub reason: Option<String>,
    /// Repeating a request with the same key returns the first result and changes nothing.
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct StockTransferInput {
    pub sku: String,
    pub from_location_id: ID,
    pub to_location_id: ID,
    pub quantity: i32,
    pub idempotency_key: Option<String>,
}

#[derive(SimpleObject)]
pub struct StockTransferPayload {
    pub transfer_id: Option<ID>,
    pub from: Option<StockLevel>,
    pub to: Option<StockLevel>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Adds or removes units at a location, recording a movement in the ledger.
    async fn stock_adjust(&self, ctx: &Context<'_>, input: StockAdjustInput) -> Result<StockAdjustPayload, ApiError> {
        let p = ctx.operator()?;
        let req = stock::AdjustRequest {
            sku: input.sku,
            location_id: parse_gid(&input.location_id, "Location"),
            delta: i64::from(input.delta),
            reason: input.reason.unwrap_or_default(),
            idempotency_key: input.idempotency_key,
        };
        Ok(match stock::adjust(ctx.db(), p, &req).await? {
            Ok(a) => StockAdjustPayload {
                stock_level: Some(StockLevel(a.level)),
                movement: Some(StockMovement(a.movement)),
                user_errors: vec![],
            },
            Err(user_errors) => StockAdjustPayload { stock_level: None, movement: None, user_errors },
        })
    }

    /// Records a physical count: on hand at the location becomes `onHand`, the difference a
    /// `count` movement in the ledger (none when the count matches). At a location linked to a
    /// store, the store's on hand is set too, compare-and-swap: if the store's stock moved since
    /// it was last read, the change is recomputed from the store's new quantity, never written
    /// over it.
    async fn stock_count(&self, ctx: &Context<'_>, input: StockCountInput) -> Result<StockAdjustPayload, ApiError> {
        let p = ctx.operator()?;
        let req = stock::CountRequest {
            sku: input.sku,
            location_id: parse_gid(&input.location_id, "Location"),
            on_hand: i64::from(input.on_hand),
            reason: input.reason.unwrap_or_default(),
            idempotency_key: input.idempotency_key,
        };
        Ok(match stock::count(ctx.db(), p, &req).await? {
            Ok(c) => StockAdjustPayload {
                stock_level: Some(StockLevel(c.level)),
                movement: c.movement.map(StockMovement),
                user_errors: vec![],
            },
            Err(user_errors) => StockAdjustPayload { stock_level: None, movement: None, user_errors },
        })
    }

    /// Moves units between two locations at once (two movements, one transaction).
    async fn stock_transfer(
        &self,
        ctx: &Context<'_>,
        input: StockTransferInput,
    ) -> Result<StockTransferPayload, ApiError> {
        let p = ctx.operator()?;
        let req = stock::TransferRequest {
            sku: input.sku,
            from_location_id: parse_gid(&input.from_location_id, "Location"),
            to_location_id: parse_gid(&input.to_location_id, "Location"),
            quantity: i64::from(input.quantity),
            idempotency_key: input.idempotency_key,
        };
        Ok(match stock::transfer(ctx.db(), p, &req).await? {
            Ok(t) => StockTransferPayload {
                transfer_id: Some(gid("Transfer", t.transfer.id)),
                from: Some(StockLevel(t.from)),
                to: Some(StockLevel(t.to)),
                user_errors: vec![],
            },
            Err(user_errors) => StockTransferPayload { transfer_id: None, from: None, to: None, user_errors },
        })
    }
}
