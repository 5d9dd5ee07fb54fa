//! E-mail over SMTP with lettre: text and HTML alternatives in one message.
//!
//! The transport comes from a URL: `smtp://host:25` (plain, for local relays), `smtp://host:587?tls=required`
//! (STARTTLS) or `smtps://user:pass@host:465` (TLS), as lettre's `from_url` reads them.

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("invalid SMTP URL: {0}")]
    BadUrl(String),
    #[error("invalid address {0:?}")]
    BadAddress(String),
    #[error("building the message: {0}")]
    Build(String),
    /// The server refused or could not be reached: retry later.
    #[error("sending failed: {0}")]
    Transient(String),
    /// The server refused the message permanently (5xx).
    #[error("refused by the server: {0}")]
    Permanent(String),
}

impl EmailError {
    pub fn should_retry(&self) -> bool {
        matches!(self, EmailError::Transient(_))
    }
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub smtp_url: String,
    pub from: String,
}

/// One e-mail: both parts are always sent (multipart/alternative).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub fn new(config: &EmailConfig) -> Result<Self, EmailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| EmailError::BadUrl(e.to_string()))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from = config.from.parse().map_err(|_| EmailError::BadAddress(config.from.clone()))?;
        Ok(Self { from, transport })
    }

    /// Builds the MIME message (exposed for tests and previews).
    pub fn message(&self, email: &Email) -> Result<Message, EmailError> {
        let to: Mailbox = email.to.parse().map_err(|_| EmailError::BadAddress(email.to.clone()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.text.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(email.html.clone())),
            )
            .map_err(|e| EmailError::Build(e.to_string()))
    }

    pub async fn send(&self, email: &Email) -> Result<(), EmailError> {
        let message = self.message(email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(EmailError::Permanent(e.to_string())),
            Err(e) => Err(EmailError::Transient(e.to_string())),
        }
    }
}

/// Escapes text for HTML bodies.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_both_parts_and_refuse_bad_addresses() {
        let m = Mailer::new(&EmailConfig {
            smtp_url: "smtp://127.0.0.1:2525".into(),
            from: "QM <alerts@qm.example>".into(),
        })
        .expect("mailer");
        let email = Email {
            to: "ann@acme.example".into(),
            subject: "Stock low".into(),
            text: "hello".into(),
            html: "<p>hello</p>".into(),
        };
        let raw = String::from_utf8(m.message(&email).expect("message").formatted()).expect("utf8");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("Subject: Stock low"));
        assert!(matches!(m.message(&Email { to: "not an address".into(), ..email }), Err(EmailError::BadAddress(_))));
        assert!(Mailer::new(&EmailConfig { smtp_url: "gopher://x".into(), from: "a@b.c".into() }).is_err());
        assert_eq!(escape_html("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
