//! Managing alert rules and acknowledging alerts.

use qm_domain::Role;
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DbErr};
use uuid::Uuid;

use super::stock::retrying;
use crate::alerts::RuleKind;
use crate::auth::{Principal, format_roles};
use crate::db::entities::{Dec, alert, alert_rule};
use crate::db::{Db, repo};
use crate::graphql::errors::{Outcome, UserError};
use crate::services::lookup;

pub struct RuleUpsert {
    /// `Some(None)`: an ID was given but did not parse.
    pub id: Option<Option<Uuid>>,
    pub name: String,
    pub kind: RuleKind,
    pub sku: Option<String>,
    pub location_id: Option<Option<Uuid>>,
    pub threshold: Option<i64>,
    pub days_of_cover: Option<Decimal>,
    pub recipient_roles: Vec<Role>,
    pub enabled: bool,
}

fn validate(req: &RuleUpsert) -> Vec<UserError> {
    let mut errors = Vec::new();
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(UserError::invalid(&["input", "name"], "name must be 1 to 200 characters"));
    }
    match req.kind {
        RuleKind::StockBelow => match req.threshold {
            Some(t) if (0..=1_000_000_000).contains(&t) => {}
            _ => errors.push(UserError::invalid(
                &["input", "threshold"],
                "a STOCK_BELOW rule needs a threshold of 0 or more units",
            )),
        },
        RuleKind::DaysOfCoverBelow => match req.days_of_cover {
            Some(d) if d > Decimal::ZERO && d <= Decimal::from(3650) => {}
            _ => errors.push(UserError::invalid(
                &["input", "daysOfCover"],
                "a DAYS_OF_COVER_BELOW rule needs daysOfCover above 0 and at most 3650",
            )),
        },
        RuleKind::WebhookEndpointDisabled
        | RuleKind::StockoutPredicted
        | RuleKind::SyncFailed
        | RuleKind::ReturnRateHigh => {}
    }
    if req.kind != RuleKind::StockBelow && req.threshold.is_some() {
        errors.push(UserError::invalid(&["input", "threshold"], "threshold applies to STOCK_BELOW rules only"));
    }
    if req.kind != RuleKind::DaysOfCoverBelow && req.days_of_cover.is_some() {
        errors.push(UserError::invalid(
            &["input", "daysOfCover"],
            "daysOfCover applies to DAYS_OF_COVER_BELOW rules only",
        ));
    }
    if !req.kind.is_stock() && (req.sku.is_some() || req.location_id.is_some()) {
        errors.push(UserError::invalid(&["input", "sku"], "sku and locationId apply to stock rules only"));
    }
    if req.recipient_roles.is_empty() {
        errors.push(UserError::invalid(&["input", "recipientRoles"], "name at least one role to e-mail"));
    }
    if let Some(r) = req.recipient_roles.iter().find(|r| matches!(r, Role::Supplier | Role::Integration)) {
        errors.push(UserError::invalid(&["input", "recipientRoles"], format!("{r} principals receive no e-mail")));
    }
    errors
}

/// Creates a rule, or changes the one `id` names. A rule's kind never changes.
pub async fn upsert_rule(db: &Db, p: &Principal, req: &RuleUpsert) -> Result<Outcome<alert_rule::Model>, DbErr> {
    let errors = validate(req);
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    retrying!(db, p, |s| {
        if let Some(sku) = &req.sku
            && lookup::variant_by_sku(s, sku).await?.is_none()
        {
            return Ok(Err(vec![UserError::not_found(&["input", "sku"], "sku")]));
        }
        let location_id = match req.location_id {
            None => None,
            Some(id) => match id {
                Some(id) if lookup::location(s, id).await?.is_some() => Some(id),
                _ => return Ok(Err(vec![UserError::not_found(&["input", "locationId"], "location")])),
            },
        };
        let now = repo::now();
        let mut roles = req.recipient_roles.clone();
        roles.dedup();
        let existing = match req.id {
            None => None,
            Some(id) => {
                let found = match id {
                    Some(id) => lookup::alert_rule(s, id).await?,
                    None => None,
                };
                let Some(found) = found else {
                    return Ok(Err(vec![UserError::not_found(&["input", "id"], "alert rule")]));
                };
                Some(found)
            }
        };
        if let Some(e) = &existing
            && e.kind != req.kind.as_str()
        {
            return Ok(Err(vec![UserError::invalid(
                &["input", "kind"],
                "a rule's kind cannot change; create a new rule",
            )]));
        }
        let mut am = match existing {
            Some(e) => e.into(),
            None => alert_rule::ActiveModel {
                tenant_id: Set(s.tenant()),
                id: Set(Uuid::now_v7()),
                kind: Set(req.kind.as_str().to_owned()),
                created_at: Set(now),
                ..Default::default()
            },
        };
        am.name = Set(req.name.trim().to_owned());
        am.sku = Set(req.sku.clone());
        am.location_id = Set(location_id);
        am.threshold = Set(req.threshold);
        am.days_of_cover = Set(req.days_of_cover.map(Dec));
        am.recipient_roles = Set(format_roles(&roles));
        am.enabled = Set(req.enabled);
        am.updated_at = Set(now);
        let saved = if am.id.is_unchanged() { am.update(&s.tx).await? } else { am.insert(&s.tx).await? };
        Ok(Ok(saved))
    })
}

/// Acknowledges an alert; acknowledging again changes nothing.
pub async fn acknowledge(db: &Db, p: &Principal, id: Option<Uuid>) -> Result<Outcome<alert::Model>, DbErr> {
    retrying!(db, p, |s| {
        let found = match id {
            Some(id) => lookup::alert(s, id).await?,
            None => None,
        };
        let Some(a) = found else {
            return Ok(Err(vec![UserError::not_found(&["input", "id"], "alert")]));
        };
        if a.status == "acknowledged" {
            return Ok(Ok(a));
        }
        let mut am: alert::ActiveModel = a.into();
        am.status = Set("acknowledged".into());
        am.acknowledged_at = Set(Some(repo::now()));
        am.acknowledged_by = Set(Some(p.subject.clone()));
        Ok(Ok(am.update(&s.tx).await?))
    })
}
