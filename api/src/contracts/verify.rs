//! `quartermaster contract-ledger-verify`: checks an exported contract ledger with the tenant's
//! public key alone, offline, no database: every event's link in the hash chain and every signed
//! checkpoint of the chain's head.

use std::path::PathBuf;

use qm_domain::contracts::ledger::{self, CheckpointProblem, Export, LedgerVerification};
use qm_domain::ledger::LinkProblem;

/// The arguments of `quartermaster contract-ledger-verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The exported ledger (`contractLedgerExport`, format qm.contract-ledger.v1).
    #[arg(long)]
    pub file: PathBuf,
    /// The tenant's Ed25519 public key, 64 hex digits, as the tenant published it (the key in
    /// the file must be this one).
    #[arg(long)]
    pub public_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: not a contract ledger export: {message}")]
    Format { file: String, message: String },
    #[error("{0}")]
    Key(String),
}

/// The outcome for a readable file: the check's findings.
pub fn run(args: &VerifyArgs) -> Result<(Export, LedgerVerification), VerifyError> {
    let file = args.file.display().to_string();
    let text =
        std::fs::read_to_string(&args.file).map_err(|source| VerifyError::Read { file: file.clone(), source })?;
    let export: Export =
        serde_json::from_str(&text).map_err(|e| VerifyError::Format { file: file.clone(), message: e.to_string() })?;
    if export.format != ledger::FORMAT {
        return Err(VerifyError::Format {
            file,
            message: format!("format {:?}, expected {:?}", export.format, ledger::FORMAT),
        });
    }
    let given = args.public_key.trim().to_ascii_lowercase();
    if export.public_key.to_ascii_lowercase() != given {
        return Err(VerifyError::Key(format!(
            "the file names the public key {}, not the one given: it was not exported by the tenant whose key you hold",
            export.public_key
        )));
    }
    let v = ledger::verify(export.tenant_id, &export.events, &export.checkpoints, &given)
        .map_err(|e| VerifyError::Key(e.to_string()))?;
    Ok((export, v))
}

/// One line saying what the check found.
pub fn describe(export: &Export, v: &LedgerVerification) -> String {
    if let Some(b) = &v.chain.first_broken {
        let why = match b.problem {
            LinkProblem::SequenceGap => "an event is missing or out of order before it",
            LinkProblem::PrevHashMismatch => "it does not chain to the event before it",
            LinkProblem::HashMismatch => "its contents do not match its hash (altered)",
        };
        return format!("BROKEN at event {} ({}): {why}", b.seq, b.id);
    }
    if let Some((seq, p)) = v.bad_checkpoint {
        let why = match p {
            CheckpointProblem::BadSignature => "its signature is not the key's",
            CheckpointProblem::HeadMismatch => "the chain's head there is not the one signed (rewritten)",
            CheckpointProblem::BeyondChain => "the chain ends before it (events removed)",
        };
        return format!("BROKEN at the checkpoint of event {seq}: {why}");
    }
    let redacted = export.events.iter().filter(|e| e.redacted).count();
    let withheld = if redacted == 0 { String::new() } else { format!(" ({redacted} of other parties, redacted)") };
    format!(
        "OK: {} events{withheld} of tenant {} chain to head {}; {} signed checkpoints hold",
        v.chain.checked, export.tenant_id, v.chain.head_hash, v.checkpoints_checked
    )
}
