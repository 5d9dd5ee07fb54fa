//! The contract ledger: every contract event of a tenant on a hash chain, with checkpoints of
//! the chain's head signed with the tenant's Ed25519 key.
//!
//! An event's hash covers its fields, a canonical serialisation of its data (object keys sorted,
//! no whitespace) and the previous event's hash, so altering, removing or reordering an event
//! breaks the chain at it; a checkpoint binds a sequence number and the head hash there under
//! the tenant's signature, so a chain rewritten from some event on no longer matches the heads
//! the supplier saw signed. [`Export`] is the file a supplier verifies with the public key alone.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ledger::{GENESIS_HASH, Link, Verification, hash_parts, verify_links};

/// The export format's name and version.
pub const FORMAT: &str = "qm.contract-ledger.v1";

/// One event of a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub id: Uuid,
    pub contract_id: Uuid,
    /// `created`, `accepted`, `triggered`, `po_issued`, `acknowledged`, `shipped`, `received`,
    /// `penalty_applied`, `cancelled`…
    pub kind: String,
    /// Microseconds since the Unix epoch, UTC.
    pub occurred_at_micros: i64,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
    /// Another party's event in an export for one supplier: only its place in the chain
    /// (`seq`, `prev_hash`, `hash`) is given; its contents are withheld (`contract_id` nil,
    /// `kind` "redacted", `data` null), so its hash is taken as stated, and the events around it
    /// still chain through it to the signed head.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

/// `value` as canonical JSON: object keys sorted, no whitespace, strings as JSON writes them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of an event of `tenant` chained to `prev_hash`.
pub fn hash_event(
    tenant: Uuid,
    (seq, id, contract_id): (i64, Uuid, Uuid),
    kind: &str,
    occurred_at_micros: i64,
    data: &Value,
    prev_hash: &str,
) -> String {
    hash_parts(
        "qm.contract-event.v1",
        &[
            &tenant.to_string(),
            &seq.to_string(),
            &id.to_string(),
            &contract_id.to_string(),
            kind,
            &occurred_at_micros.to_string(),
            &canonical_json(data),
        ],
        prev_hash,
    )
}

impl Event {
    /// The next event after `prev` (`None`: the first), hashed.
    pub fn chained(
        tenant: Uuid,
        prev: Option<(i64, &str)>,
        (id, contract_id): (Uuid, Uuid),
        kind: &str,
        occurred_at_micros: i64,
        data: Value,
    ) -> Event {
        let (seq, prev_hash) = prev.map_or((1, GENESIS_HASH), |(s, h)| (s + 1, h));
        let hash = hash_event(tenant, (seq, id, contract_id), kind, occurred_at_micros, &data, prev_hash);
        Event {
            seq,
            id,
            contract_id,
            kind: kind.to_owned(),
            occurred_at_micros,
            data,
            prev_hash: prev_hash.to_owned(),
            hash,
            redacted: false,
        }
    }

    /// The event as another party sees it: its place in the chain only.
    pub fn redact(&self) -> Event {
        Event {
            seq: self.seq,
            id: self.id,
            contract_id: Uuid::nil(),
            kind: "redacted".into(),
            occurred_at_micros: 0,
            data: Value::Null,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
            redacted: true,
        }
    }
}

/// An event of one tenant's chain, for [`verify_links`].
struct OfTenant<'a>(Uuid, &'a Event);

impl Link for OfTenant<'_> {
    fn seq(&self) -> i64 {
        self.1.seq
    }
    fn id(&self) -> Uuid {
        self.1.id
    }
    fn prev_hash(&self) -> &str {
        &self.1.prev_hash
    }
    fn hash(&self) -> &str {
        &self.1.hash
    }
    fn computed_hash(&self) -> String {
        let e = self.1;
        if e.redacted {
            return e.hash.clone();
        }
        hash_event(self.0, (e.seq, e.id, e.contract_id), &e.kind, e.occurred_at_micros, &e.data, &e.prev_hash)
    }
}

/// The chain's head at `seq`, signed by the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub head_hash: String,
    pub signed_at_micros: i64,
    /// Hex Ed25519 signature of [`checkpoint_message`].
    pub signature: String,
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(tenant: Uuid, seq: i64, head_hash: &str, signed_at_micros: i64) -> Vec<u8> {
    format!("{FORMAT}|checkpoint|{tenant}|{seq}|{head_hash}|{signed_at_micros}").into_bytes()
}

/// The public key (hex) of a tenant's 32-byte signing key.
pub fn public_key(secret: &[u8; 32]) -> String {
    hex::encode(SigningKey::from_bytes(secret).verifying_key().to_bytes())
}

/// Signs the head `head_hash` at `seq`.
pub fn sign_checkpoint(
    secret: &[u8; 32],
    tenant: Uuid,
    seq: i64,
    head_hash: &str,
    signed_at_micros: i64,
) -> Checkpoint {
    let signature = SigningKey::from_bytes(secret).sign(&checkpoint_message(tenant, seq, head_hash, signed_at_micros));
    Checkpoint { seq, head_hash: head_hash.to_owned(), signed_at_micros, signature: hex::encode(signature.to_bytes()) }
}

/// Why a checkpoint does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointProblem {
    /// Not signed by the key given (or not a signature at all).
    BadSignature,
    /// The chain's hash at its sequence number is not the one signed.
    HeadMismatch,
    /// It names an event the chain does not have.
    BeyondChain,
}

/// What checking a ledger found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerVerification {
    pub chain: Verification,
    pub checkpoints_checked: usize,
    /// The first checkpoint that does not hold.
    pub bad_checkpoint: Option<(i64, CheckpointProblem)>,
}

impl LedgerVerification {
    pub fn ok(&self) -> bool {
        self.chain.first_broken.is_none() && self.bad_checkpoint.is_none()
    }
}

/// Why a public key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the public key must be 64 hex digits of an Ed25519 key")]
pub struct BadPublicKey;

/// Checks a tenant's events (in sequence order from 1) and its checkpoints against
/// `public_key` (hex).
pub fn verify(
    tenant: Uuid,
    events: &[Event],
    checkpoints: &[Checkpoint],
    public_key: &str,
) -> Result<LedgerVerification, BadPublicKey> {
    let bytes: [u8; 32] = hex::decode(public_key).ok().and_then(|b| b.try_into().ok()).ok_or(BadPublicKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| BadPublicKey)?;
    let chain = verify_links(events.iter().map(|e| OfTenant(tenant, e)));
    let mut bad_checkpoint = None;
    for c in checkpoints {
        let signature = hex::decode(&c.signature).ok().and_then(|b| <[u8; 64]>::try_from(b).ok());
        let signed = signature.is_some_and(|s| {
            key.verify(&checkpoint_message(tenant, c.seq, &c.head_hash, c.signed_at_micros), &Signature::from_bytes(&s))
                .is_ok()
        });
        let problem = if !signed {
            Some(CheckpointProblem::BadSignature)
        } else {
            match usize::try_from(c.seq - 1).ok().and_then(|i| events.get(i)) {
                None => Some(CheckpointProblem::BeyondChain),
                Some(e) if e.seq != c.seq || e.hash != c.head_hash => Some(CheckpointProblem::HeadMismatch),
                Some(_) => None,
            }
        };
        if let Some(p) = problem {
            bad_checkpoint = Some((c.seq, p));
            break;
        }
    }
    Ok(LedgerVerification { chain, checkpoints_checked: checkpoints.len(), bad_checkpoint })
}

/// A tenant's contract ledger as exported for suppliers: verifiable with the public key alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// [`FORMAT`].
    pub format: String,
    pub tenant_id: Uuid,
    /// Hex Ed25519 public key the checkpoints are signed with (check it against the one the
    /// tenant published: the file alone does not prove whose it is).
    pub public_key: String,
    pub events: Vec<Event>,
    pub checkpoints: Vec<Checkpoint>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    fn tenant() -> Uuid {
        Uuid::from_u128(42)
    }

    fn chain(n: i64) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        for i in 1..=n {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            out.push(Event::chained(
                tenant(),
                prev,
                (Uuid::from_u128(1000 + i as u128), Uuid::from_u128(5)),
                if i == 1 { "created" } else { "po_issued" },
                1_800_000_000_000_000 + i,
                json!({ "quantity": i * 12, "sku": "TEE-M", "nested": { "b": 1, "a": [1, 2] } }),
            ));
        }
        out
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({ "b": 1, "a": { "d": [1, { "z": 1, "y": "é\"" }], "c": null } });
        assert_eq!(canonical_json(&a), r#"{"a":{"c":null,"d":[1,{"y":"é\"","z":1}]},"b":1}"#);
    }

    #[test]
    fn an_untouched_ledger_verifies_with_its_checkpoints() {
        let events = chain(5);
        let cps = vec![
            sign_checkpoint(&SECRET, tenant(), 3, &events[2].hash, 10),
            sign_checkpoint(&SECRET, tenant(), 5, &events[4].hash, 20),
        ];
        let v = verify(tenant(), &events, &cps, &public_key(&SECRET)).expect("key");
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.chain.checked, v.checkpoints_checked), (5, 2));
    }

    #[test]
    fn altered_data_names_the_event() {
        let mut events = chain(5);
        events[2].data["quantity"] = json!(999);
        let v = verify(tenant(), &events, &[], &public_key(&SECRET)).expect("key");
        let broken = v.chain.first_broken.expect("detected");
        assert_eq!((broken.seq, broken.id), (3, events[2].id));
    }

    #[test]
    fn a_chain_rewritten_from_an_event_on_fails_the_signed_head() {
        let events = chain(4);
        let cps = vec![sign_checkpoint(&SECRET, tenant(), 4, &events[3].hash, 10)];
        // Rewrite event 2 and re-hash everything after it: the chain holds, the checkpoint not.
        let mut forged: Vec<Event> = events[..1].to_vec();
        for e in &events[1..] {
            let mut data = e.data.clone();
            if e.seq == 2 {
                data["quantity"] = json!(1);
            }
            let prev = forged.last().map(|p| (p.seq, p.hash.as_str()));
            forged.push(Event::chained(tenant(), prev, (e.id, e.contract_id), &e.kind, e.occurred_at_micros, data));
        }
        let v = verify(tenant(), &forged, &cps, &public_key(&SECRET)).expect("key");
        assert_eq!(v.chain.first_broken, None);
        assert_eq!(v.bad_checkpoint, Some((4, CheckpointProblem::HeadMismatch)));
    }

    #[test]
    fn another_key_or_a_missing_event_fails_the_checkpoint() {
        let events = chain(3);
        let cps = vec![sign_checkpoint(&SECRET, tenant(), 3, &events[2].hash, 10)];
        let other = public_key(&[9; 32]);
        let v = verify(tenant(), &events, &cps, &other).expect("key");
        assert_eq!(v.bad_checkpoint, Some((3, CheckpointProblem::BadSignature)));
        let v = verify(tenant(), &events[..2], &cps, &public_key(&SECRET)).expect("key");
        assert_eq!(v.bad_checkpoint, Some((3, CheckpointProblem::BeyondChain)));
        // Another tenant's chain under the same events does not verify either.
        let v = verify(Uuid::from_u128(43), &events, &[], &public_key(&SECRET)).expect("key");
        assert!(!v.ok());
        assert_eq!(verify(tenant(), &events, &[], "abc"), Err(BadPublicKey));
    }

    #[test]
    fn a_redacted_event_chains_by_its_hash_and_the_events_around_it_still_verify() {
        let mut events = chain(5);
        let cps = vec![sign_checkpoint(&SECRET, tenant(), 5, &events[4].hash, 10)];
        events[1] = events[1].redact();
        events[3] = events[3].redact();
        let v = verify(tenant(), &events, &cps, &public_key(&SECRET)).expect("key");
        assert!(v.ok(), "{v:?}");
        // A shown event altered next to a redacted one is still found.
        events[2].data["quantity"] = json!(1);
        let v = verify(tenant(), &events, &cps, &public_key(&SECRET)).expect("key");
        assert_eq!(v.chain.first_broken.map(|b| b.seq), Some(3));
        // A redacted event's stated hash cannot be swapped: the next event chains to the real one.
        let mut events = chain(3);
        events[0] = events[0].redact();
        events[0].hash = "f".repeat(64);
        let v = verify(tenant(), &events, &[], &public_key(&SECRET)).expect("key");
        assert_eq!(v.chain.first_broken.map(|b| b.seq), Some(2));
        // Redaction survives the export's JSON; full events carry no `redacted` key.
        let text = serde_json::to_string(&chain(1)[0]).expect("json");
        assert!(!text.contains("redacted"), "{text}");
    }

    #[test]
    fn an_export_round_trips_through_json() {
        let events = chain(2);
        let e = Export {
            format: FORMAT.into(),
            tenant_id: tenant(),
            public_key: public_key(&SECRET),
            checkpoints: vec![sign_checkpoint(&SECRET, tenant(), 2, &events[1].hash, 10)],
            events,
        };
        let back: Export = serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("read");
        assert_eq!(back, e);
        assert!(verify(back.tenant_id, &back.events, &back.checkpoints, &back.public_key).expect("key").ok());
    }
}
