//! Secrets at rest (connector access tokens, webhook secrets): AES-256-GCM with a random 96-bit
//! nonce, under one of several named keys so keys can be rotated. The first key seals; every key
//! opens, and [`Sealer::is_current`] tells which stored values to seal again. Associated data
//! binds a sealed value to where it is stored (tenant and connector), so a value copied to
//! another row does not open.
//!
//! Stored form: `v1:{key id}:{base64(nonce ‖ ciphertext ‖ tag)}`.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no sealing key is configured")]
    NoKeys,
    #[error("sealing key {0:?}: give it as id:base64 of 32 bytes (id of letters, digits, - or _)")]
    BadKey(String),
    #[error("sealing key id {0:?} is given twice")]
    DuplicateKey(String),
    #[error("the value was sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("not a sealed value")]
    Malformed,
    #[error("the sealed value does not open: altered, or stored under another owner")]
    Tampered,
}

/// The configured keys; the first seals.
pub struct Sealer {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Sealer {
    /// Keys by id, the sealing key first.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> Result<Self, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKeys);
        }
        let mut out: Vec<(String, Aes256Gcm)> = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            if !valid_id(&id) {
                return Err(SealError::BadKey(id));
            }
            if out.iter().any(|(have, _)| *have == id) {
                return Err(SealError::DuplicateKey(id));
            }
            out.push((id, Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))));
        }
        Ok(Sealer { keys: out })
    }

    /// Keys written `id:base64,id:base64,…` (as configuration holds them), the sealing key first.
    pub fn parse(spec: &str) -> Result<Self, SealError> {
        let keys = spec
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|entry| {
                let bad = || SealError::BadKey(entry.split(':').next().unwrap_or_default().to_owned());
                let (id, b64) = entry.split_once(':').ok_or_else(bad)?;
                let bytes = STANDARD.decode(b64.trim()).map_err(|_| bad())?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
                Ok((id.trim().to_owned(), key))
            })
            .collect::<Result<Vec<_>, SealError>>()?;
        Sealer::new(keys)
    }

    /// Seals `plaintext` for the owner named by `aad` with the current key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{VERSION}:{id}:{}", STANDARD.encode(bytes))
    }

    /// Opens a value [`Sealer::seal`] made for the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let (id, bytes) = split(sealed)?;
        let cipher = self.cipher(id)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        cipher.decrypt(&Nonce::from(nonce), Payload { msg: body, aad }).map_err(|_| SealError::Tampered)
    }

    /// Whether `sealed` is under the current key (otherwise open it and seal it again).
    pub fn is_current(&self, sealed: &str) -> bool {
        split(sealed).is_ok_and(|(id, _)| id == self.keys[0].0)
    }

    fn cipher(&self, id: &str) -> Result<&Aes256Gcm, SealError> {
        self.keys
            .iter()
            .find(|(have, _)| have == id)
            .map(|(_, c)| c)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))
    }
}

fn split(sealed: &str) -> Result<(&str, Vec<u8>), SealError> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(id), Some(b64)) if valid_id(id) => {
            Ok((id, STANDARD.decode(b64).map_err(|_| SealError::Malformed)?))
        }
        _ => Err(SealError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_owner_and_never_shows_in_clear() {
        let s = Sealer::parse(&format!("k2:{}", key(2))).expect("keys");
        let token = b"shpat_0123456789abcdef";
        let sealed = s.seal(token, b"tenant-a/connector-1");
        assert!(sealed.starts_with("v1:k2:"), "{sealed}");
        assert!(!sealed.contains("shpat"));
        assert_eq!(s.open(&sealed, b"tenant-a/connector-1").expect("opens"), token);
        // Same secret, new nonce: never the same text twice.
        assert_ne!(s.seal(token, b"tenant-a/connector-1"), sealed);
        // Copied to another tenant's row, or altered: refused.
        assert_eq!(s.open(&sealed, b"tenant-b/connector-1"), Err(SealError::Tampered));
        let mut bytes = STANDARD.decode(&sealed["v1:k2:".len()..]).expect("b64");
        bytes[20] ^= 1;
        let altered = format!("v1:k2:{}", STANDARD.encode(bytes));
        assert_eq!(s.open(&altered, b"tenant-a/connector-1"), Err(SealError::Tampered));
        assert_eq!(s.open("shpat_plain", b"x"), Err(SealError::Malformed));
        assert_eq!(s.open("v1:k2:AAAA", b"x"), Err(SealError::Malformed));
    }

    #[test]
    fn keys_rotate_old_values_still_open_and_are_flagged_for_resealing() {
        let old = Sealer::parse(&format!("k1:{}", key(1))).expect("keys");
        let sealed = old.seal(b"secret", b"owner");
        let rotated = Sealer::parse(&format!("k2:{}, k1:{}", key(2), key(1))).expect("keys");
        assert_eq!(rotated.open(&sealed, b"owner").expect("opens"), b"secret");
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal(b"secret", b"owner")));
        let dropped = Sealer::parse(&format!("k2:{}", key(2))).expect("keys");
        assert_eq!(dropped.open(&sealed, b"owner"), Err(SealError::UnknownKey("k1".into())));
    }

    #[test]
    fn bad_key_configuration_is_refused() {
        assert_eq!(Sealer::parse("").map(|_| ()), Err(SealError::NoKeys));
        assert_eq!(Sealer::parse("k1:c2hvcnQ=").map(|_| ()), Err(SealError::BadKey("k1".into())));
        assert_eq!(Sealer::parse("nocolon").map(|_| ()), Err(SealError::BadKey("nocolon".into())));
        let twice = format!("k1:{},k1:{}", key(1), key(2));
        assert_eq!(Sealer::parse(&twice).map(|_| ()), Err(SealError::DuplicateKey("k1".into())));
        assert_eq!(Sealer::parse(&format!("bad id:{}", key(1))).map(|_| ()), Err(SealError::BadKey("bad id".into())));
        // The keys never print.
        let s = Sealer::parse(&format!("k1:{}", key(7))).expect("keys");
        assert_eq!(format!("{s:?}"), r#"Sealer { key_ids: ["k1"] }"#);
    }
}
