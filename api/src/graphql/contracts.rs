//! Supplier contracts: the tenant proposes and activates, the supplier accepts; purchase orders
//! the rules issue, what the supplier does with them, and the ledger of every step.
//!
//! A supplier's API key (role SUPPLIER) reaches `contracts`, `contract`, `contractVersions`,
//! `contractEvents`, `contractSigningKey` and `purchaseOrders` for its own supplier only, and the
//! mutations `contractAccept`, `purchaseOrderAcknowledge`, `purchaseOrderReject`, `shipmentNotify`.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::replenish::PurchaseOrderPayload;
use super::types::{PurchaseOrder, Supplier, filter_gid, gid, loaders, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx, write_tx};
use crate::db::entities::{contract, contract_event, contract_version, purchase_order_shipment};
use crate::db::repo;
use crate::services::contracts::{self as service, evaluate, ledger, supplier};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContractStatus {
    /// No version active yet.
    Proposed,
    Active,
    Ended,
}

stored_names!(ContractStatus, "contract status" {
    Proposed => "proposed",
    Active => "active",
    Ended => "ended",
});

#[derive(Clone)]
pub struct Contract(pub contract::Model);

#[Object]
impl Contract {
    pub async fn id(&self) -> ID {
        gid("Contract", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn status(&self) -> Result<ContractStatus, ApiError> {
        ContractStatus::stored(&self.0.status)
    }
    /// The version whose rules are in force.
    async fn active_version(&self) -> Option<i32> {
        self.0.active_version
    }
    async fn supplier(&self, ctx: &Context<'_>) -> Result<Option<Supplier>, ApiError> {
        Ok(loaders(ctx)?.supplier.load_one(self.0.supplier_id).await?.map(Supplier))
    }
    /// Every version, oldest first.
    #[graphql(complexity = "10 * child_complexity")]
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<ContractVersion>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let rows = service::versions(&s, self.0.id).await?;
        s.commit().await?;
        Ok(rows.into_iter().map(ContractVersion).collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContractVersionStatus {
    /// Awaiting the supplier's acceptance.
    Proposed,
    /// Accepted by the supplier; the tenant activates it.
    Accepted,
    Active,
    /// A later version became active.
    Superseded,
    Withdrawn,
}

stored_names!(ContractVersionStatus, "contract version status" {
    Proposed => "proposed",
    Accepted => "accepted",
    Active => "active",
    Superseded => "superseded",
    Withdrawn => "withdrawn",
});

pub struct ContractVersion(pub contract_version::Model);

#[Object]
impl ContractVersion {
    async fn contract_id(&self) -> ID {
        gid("Contract", self.0.contract_id)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn status(&self) -> Result<ContractVersionStatus, ApiError> {
        ContractVersionStatus::stored(&self.0.status)
    }
    /// Terms and rules as agreed (defaults filled in).
    async fn document(&self) -> Json<Value> {
        Json(serde_json::from_str(&self.0.document).unwrap_or(Value::Null))
    }
    /// SHA-256 of the document's canonical JSON, as the ledger records it.
    async fn document_hash(&self) -> String {
        service::document_hash(&self.0.document)
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn accepted_by(&self) -> Option<&str> {
        self.0.accepted_by.as_deref()
    }
    async fn accepted_at(&self) -> Option<DateTime<Utc>> {
        self.0.accepted_at
    }
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.activated_at
    }
}

/// One event of the tenant's contract ledger.
pub struct ContractEvent(pub contract_event::Model);

#[Object]
impl ContractEvent {
    /// Position in the tenant's chain, from 1.
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn contract_id(&self) -> ID {
        gid("Contract", self.0.contract_id)
    }
    /// `created`, `accepted`, `activated`, `triggered`, `po_issued`, `acknowledged`, `rejected`,
    /// `shipped`, `received`, `reminder_sent`, `escalated`, `penalty_applied`, `cancelled`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn occurred_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0.occurred_at_micros)
    }
    async fn data(&self) -> Json<Value> {
        Json(ledger::event_of(&self.0).data)
    }
    async fn prev_hash(&self) -> &str {
        &self.0.prev_hash
    }
    async fn hash(&self) -> &str {
        &self.0.hash
    }
}

/// An advance shipping notice.
pub struct PurchaseOrderShipment(pub purchase_order_shipment::Model);

#[Object]
impl PurchaseOrderShipment {
    async fn id(&self) -> ID {
        gid("PurchaseOrderShipment", self.0.id)
    }
    async fn carrier(&self) -> &str {
        &self.0.carrier
    }
    async fn tracking_number(&self) -> &str {
        &self.0.tracking_number
    }
    /// `[{lineId, quantity}]`.
    async fn lines(&self) -> Json<Value> {
        Json(self.0.lines.clone())
    }
    async fn shipped_at(&self) -> DateTime<Utc> {
        self.0.shipped_at
    }
    async fn expected_on(&self) -> Option<NaiveDate> {
        self.0.expected_on
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
}

/// The key the tenant signs its contract ledger's checkpoints with.
#[derive(SimpleObject)]
pub struct ContractSigningKey {
    /// `Ed25519`.
    pub algorithm: String,
    /// 64 hex digits.
    pub public_key: String,
    /// The export format the key verifies (`qm.contract-ledger.v1`).
    pub format: String,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContractLedgerProblem {
    /// An event is missing or out of order before it.
    SequenceGap,
    /// It does not chain to the event before it.
    PrevHashMismatch,
    /// Its contents do not match its hash: it was altered.
    HashMismatch,
    /// A checkpoint's signature is not the tenant's key's.
    BadSignature,
    /// The chain's head at a checkpoint is not the one signed: rewritten.
    HeadMismatch,
    /// A checkpoint names an event the chain no longer has.
    BeyondChain,
}

#[derive(SimpleObject)]
pub struct ContractLedgerVerification {
    pub valid: bool,
    pub events_checked: i64,
    pub checkpoints_checked: i32,
    pub head_hash: String,
    /// The first event that does not hold (by sequence number), and why.
    pub broken_seq: Option<i64>,
    pub broken_event_id: Option<ID>,
    pub broken_contract_id: Option<ID>,
    pub problem: Option<ContractLedgerProblem>,
    /// A sentence saying what was found.
    pub summary: String,
}

/// One thing a simulated rule did on a past day.
#[derive(SimpleObject)]
pub struct SimulatedAction {
    pub on: NaiveDate,
    pub rule: String,
    /// `issue_po`, `send_reminder`, `escalate`, `apply_late_penalty`, `cancel`.
    pub action: String,
    /// `SIM-n` for a purchase order the replay issued.
    pub purchase_order_number: Option<String>,
    pub sku: Option<String>,
    pub location_code: Option<String>,
    pub quantity: Option<i32>,
    pub unit_price: Option<Decimal>,
    pub value: Option<Decimal>,
    pub due_on: Option<NaiveDate>,
    /// The whole effect, as the ledger would record it.
    pub effect: Json<Value>,
}

#[derive(SimpleObject)]
pub struct ContractSimulation {
    pub contract_id: ID,
    pub version: i32,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub actions: Vec<SimulatedAction>,
    pub purchase_orders_total: i32,
    pub units_ordered: i64,
    pub value_ordered: Decimal,
}

#[derive(Default)]
pub struct ContractsQuery;

#[Object]
impl ContractsQuery {
    /// Contracts, oldest first; a supplier's key sees its own supplier's only.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn contracts(
        &self,
        ctx: &Context<'_>,
        supplier_id: Option<ID>,
        status: Option<ContractStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Contract>, ApiError> {
        let p = ctx.principal()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<contract::Entity>(&s);
        if let Some(sup) = service::confined_to(p) {
            q = q.filter(contract::Column::SupplierId.eq(sup));
        }
        q = filter_gid(q, contract::Column::SupplierId, supplier_id.as_ref(), "Supplier");
        if let Some(st) = status {
            q = q.filter(contract::Column::Status.eq(st.as_str()));
        }
        let page = repo::page(&s, q, contract::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Contract))
    }

    async fn contract(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Contract>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let c = service::visible(&s, p, parse_gid(&id, "Contract")).await?;
        s.commit().await?;
        Ok(c.map(Contract))
    }

    /// A contract's versions, oldest first (null for a contract the caller cannot see).
    async fn contract_versions(
        &self,
        ctx: &Context<'_>,
        contract_id: ID,
    ) -> Result<Option<Vec<ContractVersion>>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let rows = match service::visible(&s, p, parse_gid(&contract_id, "Contract")).await? {
            Some(c) => Some(service::versions(&s, c.id).await?),
            None => None,
        };
        s.commit().await?;
        Ok(rows.map(|r| r.into_iter().map(ContractVersion).collect()))
    }

    /// Ledger events in chain order: one contract's, or (tenant readers only) every contract's.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn contract_events(
        &self,
        ctx: &Context<'_>,
        contract_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ContractEvent>, ApiError> {
        let p = ctx.principal()?;
        let args = Window::new(first, after, last, before).args::<i64>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<contract_event::Entity>(&s);
        match contract_id {
            Some(id) => {
                let c = service::visible(&s, p, parse_gid(&id, "Contract")).await?;
                q = q.filter(contract_event::Column::ContractId.eq(c.map_or(Uuid::nil(), |c| c.id)));
            }
            None if service::confined_to(p).is_some() => {
                return Err(ApiError::BadUserInput("a supplier reads one contract's events: pass contractId".into()));
            }
            None => {}
        }
        let page = repo::page(&s, q, contract_event::Column::Seq, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.seq, ContractEvent))
    }

    /// The public key the tenant signs its contract ledger with (null before its first contract).
    async fn contract_signing_key(&self, ctx: &Context<'_>) -> Result<Option<ContractSigningKey>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let key = ledger::public_key(&s).await?;
        s.commit().await?;
        Ok(key.map(|public_key| ContractSigningKey {
            algorithm: "Ed25519".into(),
            public_key,
            format: qm_domain::contracts::ledger::FORMAT.into(),
        }))
    }

    /// The contract ledger in the export format (`qm.contract-ledger.v1`): every event and
    /// signed checkpoint, verifiable offline with `quartermaster contract-ledger-verify` and the
    /// public key alone. A supplier's key gets its own contracts' events in full and every other
    /// event redacted to its place in the chain. Null before the first contract.
    async fn contract_ledger_export(&self, ctx: &Context<'_>) -> Result<Option<Json<Value>>, ApiError> {
        let p = ctx.principal()?;
        let s = read_tx(ctx, p).await?;
        let e = match service::confined_to(p) {
            None => ledger::export(&s).await?,
            Some(supplier) => ledger::export_for_supplier(&s, supplier).await?,
        };
        s.commit().await?;
        e.map(|e| serde_json::to_value(e).map(Json).map_err(ApiError::internal)).transpose()
    }

    /// Recomputes the contract ledger's hash chain and checks every signed checkpoint.
    async fn contract_ledger_verify(&self, ctx: &Context<'_>) -> Result<ContractLedgerVerification, ApiError> {
        use qm_domain::contracts::ledger::CheckpointProblem;
        use qm_domain::ledger::LinkProblem;
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let export = ledger::export(&s).await?;
        s.commit().await?;
        let Some(export) = export else {
            return Ok(ContractLedgerVerification {
                valid: true,
                events_checked: 0,
                checkpoints_checked: 0,
                head_hash: qm_domain::ledger::GENESIS_HASH.into(),
                broken_seq: None,
                broken_event_id: None,
                broken_contract_id: None,
                problem: None,
                summary: "no contract events yet".into(),
            });
        };
        let v = qm_domain::contracts::ledger::verify(
            export.tenant_id,
            &export.events,
            &export.checkpoints,
            &export.public_key,
        )
        .map_err(ApiError::internal)?;
        let summary = crate::contracts::verify::describe(&export, &v);
        let broken = v.chain.first_broken.as_ref();
        let (broken_seq, problem) = match (broken, v.bad_checkpoint) {
            (Some(b), _) => (
                Some(b.seq),
                Some(match b.problem {
                    LinkProblem::SequenceGap => ContractLedgerProblem::SequenceGap,
                    LinkProblem::PrevHashMismatch => ContractLedgerProblem::PrevHashMismatch,
                    LinkProblem::HashMismatch => ContractLedgerProblem::HashMismatch,
                }),
            ),
            (None, Some((seq, c))) => (
                Some(seq),
                Some(match c {
                    CheckpointProblem::BadSignature => ContractLedgerProblem::BadSignature,
                    CheckpointProblem::HeadMismatch => ContractLedgerProblem::HeadMismatch,
                    CheckpointProblem::BeyondChain => ContractLedgerProblem::BeyondChain,
                }),
            ),
            (None, None) => (None, None),
        };
        let broken_event = broken.and_then(|b| export.events.iter().find(|e| e.id == b.id));
        Ok(ContractLedgerVerification {
            valid: v.ok(),
            events_checked: i64::try_from(v.chain.checked).unwrap_or(i64::MAX),
            checkpoints_checked: i32::try_from(v.checkpoints_checked).unwrap_or(i32::MAX),
            head_hash: v.chain.head_hash.clone(),
            broken_seq,
            broken_event_id: broken.map(|b| ID(b.id.to_string())),
            broken_contract_id: broken_event.map(|e| gid("Contract", e.contract_id)),
            problem,
            summary,
        })
    }

    /// What the contract's rules (its active version, or `version`) would have done each day
    /// from `from` to `to` (at most 366 days, not after today) on the recorded demand: the
    /// purchase orders they would have issued and every other action. Writes nothing. Null for a
    /// contract the caller cannot see.
    async fn contract_simulate(
        &self,
        ctx: &Context<'_>,
        contract_id: ID,
        from: NaiveDate,
        to: NaiveDate,
        version: Option<i32>,
    ) -> Result<Option<ContractSimulation>, ApiError> {
        use qm_domain::contracts::Effect;
        let p = ctx.reader()?;
        if to < from {
            return Err(ApiError::BadUserInput("\"to\" is before \"from\"".into()));
        }
        if (to - from).num_days() >= evaluate::MAX_SIMULATED_DAYS {
            return Err(ApiError::BadUserInput(format!("simulate at most {} days", evaluate::MAX_SIMULATED_DAYS)));
        }
        if to > repo::now().date_naive() {
            return Err(ApiError::BadUserInput("\"to\" is in the future: simulate past days".into()));
        }
        let s = read_tx(ctx, p).await?;
        let Some(c) = service::visible(&s, p, parse_gid(&contract_id, "Contract")).await? else {
            return Ok(None);
        };
        let number = version.or(c.active_version).or(service::versions(&s, c.id).await?.last().map(|v| v.version));
        let found = match number {
            Some(n) => service::version(&s, c.id, n).await?,
            None => None,
        };
        let Some(v) = found else {
            return Err(ApiError::BadUserInput("contract version not found".into()));
        };
        let doc = qm_domain::contracts::parse(&v.document)
            .map_err(|e| ApiError::internal(format!("stored contract document: {e:?}")))?;
        let done = evaluate::simulate(&s, &doc, (from, to)).await?;
        s.commit().await?;
        let mut out = ContractSimulation {
            contract_id: gid("Contract", c.id),
            version: v.version,
            from,
            to,
            actions: Vec::new(),
            purchase_orders_total: 0,
            units_ordered: 0,
            value_ordered: Decimal::ZERO,
        };
        for a in done {
            let effect = serde_json::to_value(&a.fired.effect).unwrap_or(Value::Null);
            let mut row = SimulatedAction {
                on: a.on,
                rule: a.fired.rule.clone(),
                action: effect["kind"].as_str().unwrap_or_default().to_owned(),
                purchase_order_number: a.purchase_order,
                sku: None,
                location_code: None,
                quantity: None,
                unit_price: None,
                value: None,
                due_on: None,
                effect: Json(effect),
            };
            if let Effect::IssuePo { sku, location, quantity, unit_price, value, due_on } = a.fired.effect {
                row.action = "issue_po".into();
                out.purchase_orders_total += 1;
                out.units_ordered += i64::from(quantity);
                out.value_ordered += value;
                row.sku = Some(sku);
                row.location_code = Some(location);
                row.quantity = Some(i32::try_from(quantity).unwrap_or(i32::MAX));
                row.unit_price = Some(unit_price);
                row.value = Some(value);
                row.due_on = Some(due_on);
            }
            out.actions.push(row);
        }
        Ok(Some(out))
    }
}

#[derive(InputObject)]
pub struct ContractCreateInput {
    /// Propose a new version of this contract (the supplier accepts it, then it is activated).
    pub contract_id: Option<ID>,
    /// The supplier of a new contract.
    pub supplier_id: Option<ID>,
    /// A new contract's name.
    pub name: Option<String>,
    /// Terms and rules (README "Supplier contracts"); errors name the offending element's path.
    pub document: Json<Value>,
}

#[derive(SimpleObject)]
pub struct ContractPayload {
    pub contract: Option<Contract>,
    pub contract_version: Option<ContractVersion>,
    pub user_errors: Vec<UserError>,
}

impl ContractPayload {
    fn of(outcome: crate::graphql::errors::Outcome<(contract::Model, contract_version::Model)>) -> Self {
        match outcome {
            Ok((c, v)) => {
                Self { contract: Some(Contract(c)), contract_version: Some(ContractVersion(v)), user_errors: vec![] }
            }
            Err(user_errors) => Self { contract: None, contract_version: None, user_errors },
        }
    }
}

#[derive(InputObject)]
pub struct ContractVersionInput {
    pub contract_id: ID,
    /// Without it: the latest version awaiting this step.
    pub version: Option<i32>,
}

#[derive(InputObject)]
pub struct PurchaseOrderAcknowledgeInput {
    pub id: ID,
    /// The delivery date the supplier promises (today or later).
    pub promised_on: NaiveDate,
}

#[derive(InputObject)]
pub struct PurchaseOrderRejectInput {
    pub id: ID,
    pub reason: String,
}

#[derive(InputObject)]
pub struct ShipmentNotifyLineInput {
    pub line_id: ID,
    pub quantity: i32,
}

#[derive(InputObject)]
pub struct ShipmentNotifyInput {
    pub purchase_order_id: ID,
    pub lines: Vec<ShipmentNotifyLineInput>,
    pub carrier: String,
    /// Notifying the same tracking number for the same order again returns the first notice.
    pub tracking_number: String,
    /// Default: now.
    pub shipped_at: Option<DateTime<Utc>>,
    pub expected_on: Option<NaiveDate>,
}

#[derive(SimpleObject)]
pub struct ShipmentNotifyPayload {
    pub purchase_order: Option<PurchaseOrder>,
    pub shipment: Option<PurchaseOrderShipment>,
    pub user_errors: Vec<UserError>,
}

/// A rule that fired.
#[derive(SimpleObject)]
pub struct ContractFiring {
    pub contract_id: ID,
    pub version: i32,
    pub rule: String,
    pub action: String,
    pub purchase_order_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct ContractEvaluatePayload {
    /// What fired now (empty when nothing had to).
    pub fired: Vec<ContractFiring>,
}

fn po_payload(
    outcome: crate::graphql::errors::Outcome<crate::db::entities::purchase_order::Model>,
) -> PurchaseOrderPayload {
    match outcome {
        Ok(po) => PurchaseOrderPayload { purchase_order: Some(PurchaseOrder(po)), user_errors: vec![] },
        Err(user_errors) => PurchaseOrderPayload { purchase_order: None, user_errors },
    }
}

#[derive(Default)]
pub struct ContractsMutation;

#[Object]
impl ContractsMutation {
    /// Proposes a contract to a supplier, or a new version of one (`contractId`). It takes
    /// effect once the supplier accepts (`contractAccept`) and the tenant activates it.
    async fn contract_create(
        &self,
        ctx: &Context<'_>,
        input: ContractCreateInput,
    ) -> Result<ContractPayload, ApiError> {
        let p = ctx.operator()?;
        let req = service::CreateRequest {
            contract_id: input.contract_id.as_ref().map(|id| parse_gid(id, "Contract")),
            supplier_id: input.supplier_id.as_ref().map(|id| parse_gid(id, "Supplier")),
            name: input.name,
            document: input.document.0,
        };
        Ok(ContractPayload::of(service::create(ctx.state(), p, req).await?))
    }

    /// The supplier accepts a proposed version (with the supplier's API key).
    async fn contract_accept(
        &self,
        ctx: &Context<'_>,
        input: ContractVersionInput,
    ) -> Result<ContractPayload, ApiError> {
        let p = ctx.principal()?;
        if ctx.supplier().is_err() {
            // A user error, not FORBIDDEN: the tenant's own users may ask, and are told who accepts.
            return Ok(ContractPayload::of(Err(vec![UserError::new(
                &["input", "contractId"],
                super::UserErrorCode::InvalidState,
                "only the supplier accepts a contract: use the supplier's API key",
            )])));
        }
        Ok(ContractPayload::of(
            service::accept(ctx.db(), p, parse_gid(&input.contract_id, "Contract"), input.version).await?,
        ))
    }

    /// Puts a version the supplier accepted into force; the version before it is superseded.
    async fn contract_activate(
        &self,
        ctx: &Context<'_>,
        input: ContractVersionInput,
    ) -> Result<ContractPayload, ApiError> {
        let p = ctx.operator()?;
        Ok(ContractPayload::of(
            service::activate(ctx.db(), p, parse_gid(&input.contract_id, "Contract"), input.version).await?,
        ))
    }

    /// Evaluates the active contracts now (they are also evaluated after stock falls, forecast
    /// runs and plan approvals, and hourly) and returns what fired.
    async fn contract_evaluate(&self, ctx: &Context<'_>) -> Result<ContractEvaluatePayload, ApiError> {
        let p = ctx.operator()?;
        let s = write_tx(ctx, p).await?;
        let applied = evaluate::run(&s).await?;
        s.commit().await?;
        Ok(ContractEvaluatePayload {
            fired: applied
                .into_iter()
                .map(|a| ContractFiring {
                    contract_id: gid("Contract", a.contract_id),
                    version: a.version,
                    rule: a.fired.rule,
                    action: serde_json::to_value(&a.fired.effect)
                        .ok()
                        .and_then(|v| v["kind"].as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    purchase_order_id: a.purchase_order_id.map(|id| gid("PurchaseOrder", id)),
                })
                .collect(),
        })
    }

    /// The supplier confirms a purchase order and the date it will arrive.
    async fn purchase_order_acknowledge(
        &self,
        ctx: &Context<'_>,
        input: PurchaseOrderAcknowledgeInput,
    ) -> Result<PurchaseOrderPayload, ApiError> {
        let p = ctx.supplier_or_operator()?;
        Ok(po_payload(
            supplier::acknowledge(ctx.db(), p, parse_gid(&input.id, "PurchaseOrder"), input.promised_on).await?,
        ))
    }

    /// The supplier declines a purchase order it has not shipped.
    async fn purchase_order_reject(
        &self,
        ctx: &Context<'_>,
        input: PurchaseOrderRejectInput,
    ) -> Result<PurchaseOrderPayload, ApiError> {
        let p = ctx.supplier_or_operator()?;
        Ok(po_payload(supplier::reject(ctx.db(), p, parse_gid(&input.id, "PurchaseOrder"), &input.reason).await?))
    }

    /// An advance shipping notice: quantities per line, carrier and tracking number.
    async fn shipment_notify(
        &self,
        ctx: &Context<'_>,
        input: ShipmentNotifyInput,
    ) -> Result<ShipmentNotifyPayload, ApiError> {
        let p = ctx.supplier_or_operator()?;
        let n = supplier::ShipmentNotice {
            purchase_order_id: parse_gid(&input.purchase_order_id, "PurchaseOrder"),
            lines: input
                .lines
                .iter()
                .map(|l| (parse_gid(&l.line_id, "PurchaseOrderLine"), i64::from(l.quantity)))
                .collect(),
            carrier: input.carrier,
            tracking_number: input.tracking_number,
            shipped_at: input.shipped_at,
            expected_on: input.expected_on,
        };
        Ok(match supplier::notify_shipment(ctx.db(), p, &n).await? {
            Ok((po, sh)) => ShipmentNotifyPayload {
                purchase_order: Some(PurchaseOrder(po)),
                shipment: Some(PurchaseOrderShipment(sh)),
                user_errors: vec![],
            },
            Err(user_errors) => ShipmentNotifyPayload { purchase_order: None, shipment: None, user_errors },
        })
    }
}
