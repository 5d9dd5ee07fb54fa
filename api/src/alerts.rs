//! Alert e-mails: built from text and HTML templates, sent by `email.send` jobs enqueued in the
//! transaction that raises the alert, retried through the job system.

use qm_domain::Role;
use qm_integrations::email::{Email, escape_html};
use sea_orm::{DbErr, EntityTrait};
use serde_json::json;

use crate::auth::parse_roles;
use crate::db::entities::{job, user};
use crate::db::{Scoped, repo};
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::state::AppState;

pub const SEND: &str = "email.send";

pub fn register(r: Registry) -> Registry {
    r.with(SEND, Send)
}

/// An alert rendered for e-mail.
pub struct Alert {
    pub subject: String,
    pub lines: Vec<String>,
}

impl Alert {
    fn render(&self, to: &str, tenant_name: &str) -> Email {
        let text =
            format!("{}\n\n{}\n\n-- \nQuartermaster alerts for {tenant_name}\n", self.subject, self.lines.join("\n"));
        let items: String = self.lines.iter().map(|l| format!("<li>{}</li>", escape_html(l))).collect();
        let html = format!(
            "<!doctype html><html><body><h2>{}</h2><ul>{items}</ul><p style=\"color:#666\">Quartermaster alerts for {}</p></body></html>",
            escape_html(&self.subject),
            escape_html(tenant_name)
        );
        Email { to: to.to_owned(), subject: format!("[Quartermaster] {}", self.subject), text, html }
    }
}

/// Queues the alert for every owner and admin of the tenant of `s`, in that transaction.
pub async fn notify_admins(s: &Scoped, alert: &Alert) -> Result<usize, DbErr> {
    let tenant = crate::db::entities::tenant::Entity::find_by_id(s.tenant()).one(&s.tx).await?;
    let tenant_name = tenant.map(|t| t.name).unwrap_or_default();
    let users = repo::find::<user::Entity>(s).all(&s.tx).await?;
    let mut queued = 0;
    for u in users {
        let admin = parse_roles(&u.roles).unwrap_or_default().iter().any(|r| Role::can_administer(*r));
        if admin {
            let email = alert.render(&u.email, &tenant_name);
            jobs::enqueue(s, NewJob::new(SEND, json!(email))).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

struct Send;

#[async_trait::async_trait]
impl Handler for Send {
    async fn run(&self, state: &AppState, job: &job::Model) -> Result<(), JobError> {
        let email: Email = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad e-mail job: {e}")))?;
        let Some(mailer) = &state.mailer else {
            return Err(JobError::Permanent("e-mail is not configured (QM_SMTP_URL)".into()));
        };
        mailer.send(&email).await.map_err(|e| {
            if e.should_retry() { JobError::Retry(e.to_string()) } else { JobError::Permanent(e.to_string()) }
        })
    }
}
