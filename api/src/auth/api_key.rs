//! API keys for machine clients: `sk_live_<43 base62 characters>` (256 random bits).
//! Only the SHA-256 hash is stored; the key is shown once, at creation.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "sk_";

/// A fresh key and the parts of it that are stored.
pub struct NewKey {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate() -> NewKey {
    let body: String = rand::rng().sample_iter(Alphanumeric).take(43).map(char::from).collect();
    let secret = format!("{PREFIX}live_{body}");
    NewKey { prefix: secret[..12].to_owned(), hash: hash(&secret), secret }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_stored_only_as_hashes() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), "sk_live_".len() + 43);
        assert_eq!(a.hash, hash(&a.secret));
        assert!(!a.hash.contains(&a.secret[8..]));
        assert!(a.secret.starts_with(&a.prefix));
    }
}
