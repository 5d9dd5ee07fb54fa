//! Supplier contracts: the exported ledger checked with `quartermaster contract-ledger-verify`
//! and the public key alone.

use qm_domain::contracts::ledger::{self, Event, Export};
use serde_json::json;
use uuid::Uuid;

const SECRET: [u8; 32] = [3; 32];

fn export() -> Export {
    let tenant = Uuid::now_v7();
    let contract = Uuid::now_v7();
    let mut events: Vec<Event> = Vec::new();
    for (i, kind) in ["created", "accepted", "triggered", "po_issued", "acknowledged"].iter().enumerate() {
        let prev = events.last().map(|e| (e.seq, e.hash.as_str()));
        events.push(Event::chained(
            tenant,
            prev,
            (Uuid::now_v7(), contract),
            kind,
            1_800_000_000_000_000 + i as i64,
            json!({ "sku": "TEE-M", "quantity": 120 }),
        ));
    }
    let checkpoints = vec![
        ledger::sign_checkpoint(&SECRET, tenant, 2, &events[1].hash, 1),
        ledger::sign_checkpoint(&SECRET, tenant, 5, &events[4].hash, 2),
    ];
    Export {
        format: ledger::FORMAT.into(),
        tenant_id: tenant,
        public_key: ledger::public_key(&SECRET),
        events,
        checkpoints,
    }
}

fn verify(e: &Export, key: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ledger.json");
    std::fs::write(&path, serde_json::to_vec(e).expect("json")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args(["contract-ledger-verify", "--public-key", key, "--file"])
        .arg(&path)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_exported_ledger_verifies_with_the_public_key_alone_and_an_altered_event_is_named() {
    let e = export();
    let key = ledger::public_key(&SECRET);
    let (code, out, _) = verify(&e, &key);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 5 events"), "{out}");
    assert!(out.contains("2 signed checkpoints hold"), "{out}");

    let mut altered = e.clone();
    altered.events[3].data["quantity"] = json!(1200);
    let (code, out, _) = verify(&altered, &key);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        format!("BROKEN at event 4 ({}): its contents do not match its hash (altered)", e.events[3].id)
    );

    // Rewritten from event 3 on and re-hashed: the chain holds, the signed head does not.
    let mut forged = e.clone();
    forged.events.truncate(2);
    for old in &e.events[2..] {
        let prev = forged.events.last().map(|p| (p.seq, p.hash.as_str()));
        let mut data = old.data.clone();
        data["quantity"] = json!(1);
        let next =
            Event::chained(e.tenant_id, prev, (old.id, old.contract_id), &old.kind, old.occurred_at_micros, data);
        forged.events.push(next);
    }
    let (code, out, _) = verify(&forged, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint of event 5"), "{out}");

    // Another key than the file's, a key that is not one, a file that is not an export: exit 2.
    let (code, _, err) = verify(&e, &ledger::public_key(&[4; 32]));
    assert_eq!(code, 2);
    assert!(err.contains("not the one given"), "{err}");
    let mut keyless = e.clone();
    keyless.public_key = "xyz".into();
    let (code, _, err) = verify(&keyless, "xyz");
    assert_eq!(code, 2);
    assert!(err.contains("64 hex digits"), "{err}");
    let mut other = e.clone();
    other.format = "something-else".into();
    let (code, _, err) = verify(&other, &key);
    assert_eq!(code, 2);
    assert!(err.contains("not a contract ledger export"), "{err}");
}
