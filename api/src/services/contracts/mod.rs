//! Supplier contracts: versions proposed by the tenant, accepted by the supplier and activated
//! by the tenant; every step an event on the tenant's contract ledger (`ledger`). What the rules
//! do is `evaluate`; what suppliers do (acknowledge, reject, ship) is `supplier`.
//!
//! Who sees what: a supplier's principal (role SUPPLIER with its supplier) sees its own
//! supplier's contracts and purchase orders and nothing else; tenant readers see all.

pub mod evaluate;
pub mod ledger;
pub mod supplier;

use qm_domain::Role;
use qm_domain::contracts::ledger::canonical_json;
use qm_domain::contracts::{self as domain, Document, Reference};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{contract, contract_version, location};
use crate::db::{Scoped, TxMode, repo};
use crate::graphql::types::gid;
use crate::graphql::{UserError, UserErrorCode, errors::Outcome};
use crate::state::AppState;
use ledger::Entry;

/// The most versions one contract keeps.
const MAX_VERSIONS: i32 = 1000;

/// The supplier a principal is confined to: `None` for tenant readers (they see every
/// supplier's), `Some(id)` for a supplier's key (nil when it names none: it sees nothing).
pub fn confined_to(p: &Principal) -> Option<Uuid> {
    if p.has(Role::can_read) { None } else { Some(p.supplier_id.unwrap_or(Uuid::nil())) }
}

/// A contract the principal may see.
pub async fn visible(s: &Scoped, p: &Principal, id: Option<Uuid>) -> Result<Option<contract::Model>, DbErr> {
    let Some(id) = id else { return Ok(None) };
    let c = repo::find::<contract::Entity>(s).filter(contract::Column::Id.eq(id)).one(&s.tx).await?;
    Ok(c.filter(|c| confined_to(p).is_none_or(|sup| sup == c.supplier_id)))
}

pub async fn versions(s: &Scoped, contract_id: Uuid) -> Result<Vec<contract_version::Model>, DbErr> {
    repo::find::<contract_version::Entity>(s)
        .filter(contract_version::Column::ContractId.eq(contract_id))
        .order_by_asc(contract_version::Column::Version)
        .all(&s.tx)
        .await
}

pub async fn version(s: &Scoped, contract_id: Uuid, version: i32) -> Result<Option<contract_version::Model>, DbErr> {
    repo::find::<contract_version::Entity>(s)
        .filter(contract_version::Column::ContractId.eq(contract_id))
        .filter(contract_version::Column::Version.eq(version))
        .one(&s.tx)
        .await
}

/// The SHA-256 (hex) of a document's canonical JSON (as a version stores it): what both sides
/// agreed to.
pub fn document_hash(canonical: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

fn at_path(path: &str) -> Vec<String> {
    let mut field = vec!["input".to_owned(), "document".to_owned()];
    field.extend(domain::path_parts(path));
    field
}

fn document_errors(errors: Vec<domain::RuleError>) -> Vec<UserError> {
    errors
        .into_iter()
        .map(|e| UserError {
            field: Some(at_path(&e.path)),
            message: if e.path.is_empty() { e.message } else { format!("{}: {}", e.path, e.message) },
            code: UserErrorCode::Invalid,
        })
        .collect()
}

/// Reads a document and checks it, then checks that every SKU and location it names exists.
pub async fn check_document(s: &Scoped, raw: &Value) -> Result<Outcome<Document>, DbErr> {
    let doc = match domain::parse(&raw.to_string()) {
        Ok(d) => d,
        Err(e) => return Ok(Err(document_errors(e))),
    };
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (path, r) in doc.references() {
        let exists = match seen.get(&r) {
            Some(e) => *e,
            None => {
                let e = match &r {
                    Reference::Sku(sku) => crate::services::lookup::variant_by_sku(s, sku).await?.is_some(),
                    Reference::Location(code) => location_by_code(s, code).await?.is_some(),
                };
                seen.insert(r.clone(), e);
                e
            }
        };
        if !exists {
            let message = match &r {
                Reference::Sku(sku) => format!("{path}: no variant has the SKU {sku}"),
                Reference::Location(code) => format!("{path}: no location has the code {code}"),
            };
            errors.push(UserError { field: Some(at_path(&path)), message, code: UserErrorCode::NotFound });
        }
    }
    Ok(if errors.is_empty() { Ok(doc) } else { Err(errors) })
}

pub async fn location_by_code(s: &Scoped, code: &str) -> Result<Option<location::Model>, DbErr> {
    repo::find::<location::Entity>(s).filter(location::Column::Code.eq(code)).one(&s.tx).await
}

pub struct CreateRequest {
    /// A new version of this contract; `None`: a new contract.
    pub contract_id: Option<Option<Uuid>>,
    pub supplier_id: Option<Option<Uuid>>,
    pub name: Option<String>,
    pub document: Value,
}

fn supplier_data(c: &contract::Model) -> Value {
    json!({ "contractId": gid("Contract", c.id).0, "supplierId": gid("Supplier", c.supplier_id).0, "name": c.name })
}

/// Proposes a contract (version 1) or a new version of one: the supplier accepts it, then the
/// tenant activates it. `created` goes on the ledger with the document; `contract.proposed` to
/// the supplier.
pub async fn create(
    state: &AppState,
    p: &Principal,
    req: CreateRequest,
) -> Result<Outcome<(contract::Model, contract_version::Model)>, DbErr> {
    let s = state.db.scoped(p.tenant_id, TxMode::Write).await?;
    let existing = match req.contract_id {
        None => None,
        Some(id) => match visible(&s, p, id).await? {
            Some(c) => Some(c),
            None => return Ok(Err(vec![UserError::not_found(&["input", "contractId"], "contract")])),
        },
    };
    let doc = match check_document(&s, &req.document).await? {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let now = repo::now();
    let (c, number) = match existing {
        Some(c) => {
            let last = versions(&s, c.id).await?.last().map_or(0, |v| v.version);
            if last >= MAX_VERSIONS {
                return Ok(Err(vec![UserError::invalid(
                    &["input", "contractId"],
                    "this contract has too many versions",
                )]));
            }
            (c, last + 1)
        }
        None => {
            let supplier_id = match req.supplier_id {
                Some(Some(id)) if crate::services::lookup::supplier(&s, id).await?.is_some() => id,
                Some(_) => return Ok(Err(vec![UserError::not_found(&["input", "supplierId"], "supplier")])),
                None => {
                    return Ok(Err(vec![UserError::invalid(
                        &["input", "supplierId"],
                        "a new contract names its supplier",
                    )]));
                }
            };
            let name = req.name.as_deref().map(str::trim).unwrap_or_default().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                return Ok(Err(vec![UserError::invalid(&["input", "name"], "a name of 1 to 200 characters")]));
            }
            let c = contract::Model {
                tenant_id: s.tenant(),
                id: Uuid::now_v7(),
                supplier_id,
                name,
                status: "proposed".into(),
                active_version: None,
                created_at: now,
                updated_at: now,
            };
            contract::Entity::insert(contract::ActiveModel::from(c.clone())).exec_without_returning(&s.tx).await?;
            (c, 1)
        }
    };
    // The document as read (defaults filled in), so what is stored is what is evaluated.
    let agreed = serde_json::to_value(&doc).map_err(|e| DbErr::Custom(e.to_string()))?;
    let v = contract_version::Model {
        tenant_id: s.tenant(),
        contract_id: c.id,
        version: number,
        document: canonical_json(&agreed),
        status: "proposed".into(),
        created_by: p.subject.clone(),
        created_at: now,
        accepted_by: None,
        accepted_at: None,
        activated_at: None,
    };
    contract_version::Entity::insert(contract_version::ActiveModel::from(v.clone()))
        .exec_without_returning(&s.tx)
        .await?;
    ledger::ensure_key(&s, &state.sealer).await?;
    let mut data = supplier_data(&c);
    data["version"] = json!(number);
    data["documentHash"] = json!(document_hash(&v.document));
    data["by"] = json!(p.subject);
    let mut entry = data.clone();
    entry["document"] = agreed;
    ledger::append(&s, vec![Entry::new(c.id, "created", entry)]).await?;
    crate::events::emit(&s, "contract.proposed", data).await?;
    s.commit().await?;
    Ok(Ok((c, v)))
}

fn version_field(which: Option<i32>) -> &'static [&'static str] {
    if which.is_some() { &["input", "version"] } else { &["input", "contractId"] }
}

/// The supplier (`p` is its key) accepts a proposed version (`accepted` on the ledger, `contract.accepted`).
/// Accepting an accepted or active version changes nothing.
pub async fn accept(
    db: &crate::db::Db,
    p: &Principal,
    contract_id: Option<Uuid>,
    number: Option<i32>,
) -> Result<Outcome<(contract::Model, contract_version::Model)>, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    ledger::serialise(&s).await?;
    let Some(c) = visible(&s, p, contract_id).await?.filter(|c| Some(c.supplier_id) == p.supplier_id) else {
        return Ok(Err(vec![UserError::not_found(&["input", "contractId"], "contract")]));
    };
    let v = pick_version(&s, &c, number, "proposed").await?;
    let Some(v) = v else {
        return Ok(Err(vec![UserError::not_found(version_field(number), "proposed contract version")]));
    };
    match v.status.as_str() {
        "proposed" => {}
        "accepted" | "active" => {
            s.commit().await?;
            return Ok(Ok((c, v)));
        }
        other => {
            return Ok(Err(vec![UserError::new(
                version_field(number),
                UserErrorCode::InvalidState,
                format!("a {other} version cannot be accepted"),
            )]));
        }
    }
    let now = repo::now();
    contract_version::Entity::update_many()
        .col_expr(contract_version::Column::Status, Expr::value("accepted"))
        .col_expr(contract_version::Column::AcceptedBy, Expr::value(p.subject.clone()))
        .col_expr(contract_version::Column::AcceptedAt, Expr::value(now))
        .filter(contract_version::Column::TenantId.eq(s.tenant()))
        .filter(contract_version::Column::ContractId.eq(c.id))
        .filter(contract_version::Column::Version.eq(v.version))
        .exec(&s.tx)
        .await?;
    let mut data = supplier_data(&c);
    data["version"] = json!(v.version);
    data["documentHash"] = json!(document_hash(&v.document));
    data["by"] = json!(p.subject);
    ledger::append(&s, vec![Entry::new(c.id, "accepted", data.clone())]).await?;
    crate::events::emit(&s, "contract.accepted", data).await?;
    let v = version(&s, c.id, v.version).await?.ok_or_else(|| DbErr::RecordNotFound("contract version".into()))?;
    s.commit().await?;
    Ok(Ok((c, v)))
}

/// The version asked for, or the latest in `status`.
async fn pick_version(
    s: &Scoped,
    c: &contract::Model,
    number: Option<i32>,
    status: &str,
) -> Result<Option<contract_version::Model>, DbErr> {
    Ok(match number {
        Some(n) => version(s, c.id, n).await?,
        None => versions(s, c.id).await?.into_iter().rev().find(|v| v.status == status),
    })
}

/// The tenant activates a version the supplier accepted: it becomes the contract's rules (the
/// active one before it is superseded), `activated` on the ledger, and the rules are evaluated.
pub async fn activate(
    db: &crate::db::Db,
    p: &Principal,
    contract_id: Option<Uuid>,
    number: Option<i32>,
) -> Result<Outcome<(contract::Model, contract_version::Model)>, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    ledger::serialise(&s).await?;
    let Some(c) = visible(&s, p, contract_id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "contractId"], "contract")]));
    };
    let Some(v) = pick_version(&s, &c, number, "accepted").await? else {
        return Ok(Err(vec![UserError::not_found(version_field(number), "accepted contract version")]));
    };
    match v.status.as_str() {
        "accepted" => {}
        "active" => {
            s.commit().await?;
            return Ok(Ok((c, v)));
        }
        "proposed" => {
            return Ok(Err(vec![UserError::new(
                version_field(number),
                UserErrorCode::InvalidState,
                "the supplier has not accepted this version yet",
            )]));
        }
        other => {
            return Ok(Err(vec![UserError::new(
                version_field(number),
                UserErrorCode::InvalidState,
                format!("a {other} version cannot be activated"),
            )]));
        }
    }
    let now = repo::now();
    contract_version::Entity::update_many()
        .col_expr(contract_version::Column::Status, Expr::value("superseded"))
        .filter(contract_version::Column::TenantId.eq(s.tenant()))
        .filter(contract_version::Column::ContractId.eq(c.id))
        .filter(contract_version::Column::Status.eq("active"))
        .exec(&s.tx)
        .await?;
    contract_version::Entity::update_many()
        .col_expr(contract_version::Column::Status, Expr::value("active"))
        .col_expr(contract_version::Column::ActivatedAt, Expr::value(now))
        .filter(contract_version::Column::TenantId.eq(s.tenant()))
        .filter(contract_version::Column::ContractId.eq(c.id))
        .filter(contract_version::Column::Version.eq(v.version))
        .exec(&s.tx)
        .await?;
    contract::Entity::update_many()
        .col_expr(contract::Column::Status, Expr::value("active"))
        .col_expr(contract::Column::ActiveVersion, Expr::value(v.version))
        .col_expr(contract::Column::UpdatedAt, Expr::value(now))
        .filter(contract::Column::TenantId.eq(s.tenant()))
        .filter(contract::Column::Id.eq(c.id))
        .exec(&s.tx)
        .await?;
    let mut data = supplier_data(&c);
    data["version"] = json!(v.version);
    data["by"] = json!(p.subject);
    ledger::append(&s, vec![Entry::new(c.id, "activated", data.clone())]).await?;
    crate::events::emit(&s, "contract.activated", data).await?;
    evaluate::queue(&s).await?;
    evaluate::schedule_hourly(&s).await?;
    let c = visible(&s, p, Some(c.id)).await?.ok_or_else(|| DbErr::RecordNotFound("contract".into()))?;
    let v = version(&s, c.id, v.version).await?.ok_or_else(|| DbErr::RecordNotFound("contract version".into()))?;
    s.commit().await?;
    Ok(Ok((c, v)))
}
