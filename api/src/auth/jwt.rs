//! JWTs with one pinned algorithm: HS256 for the embedded default, RS256, ES256 or EdDSA with a
//! configured public key for deployments where another service mints tokens.
//!
//! `exp`, `nbf`, `iss`, `aud` and `sub` are required and checked with 30 s of leeway; `tid` must be a UUID.

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qm_domain::Role;
use rand::Rng;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AuthError;
use crate::config::{JwtAlgorithm, JwtConfig};

const SECRET_FILE: &str = "jwt-secret";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tid: Uuid,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Supplier the token speaks for (supplier role only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<Uuid>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// Verified claims, reduced to what the server uses.
#[derive(Debug, Deserialize)]
pub struct Verified {
    pub sub: String,
    pub tid: Uuid,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub supplier: Option<Uuid>,
}

pub struct JwtKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_seconds: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Reads the HS256 secret from the data directory, creating it (mode 0600) on first start.
fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<String> {
    load_or_create_private(data_dir, SECRET_FILE, |s| s.len() >= 32, || hex::encode(rand::rng().random::<[u8; 48]>()))
}

/// The trimmed content of the secret file `file` in `data_dir` when `usable` accepts it;
/// otherwise a new one from `generate`, written there readable by its owner only.
pub(crate) fn load_or_create_private(
    data_dir: &Path,
    file: &str,
    usable: impl Fn(&str) -> bool,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let s = existing.trim();
        if usable(s) {
            return Ok(s.to_owned());
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = generate();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

/// Writes a secret file readable by its owner only (mode 0600 on Unix).
#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

impl JwtKeys {
    pub fn from_config(cfg: &JwtConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let (algorithm, decoding, encoding) = match cfg.algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = match &cfg.secret {
                    Some(s) => s.expose_secret().to_owned(),
                    None => load_or_create_secret(data_dir)?,
                };
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                    Some(EncodingKey::from_secret(secret.as_bytes())),
                )
            }
            asymmetric => {
                let public = cfg.public_key_pem.as_deref().context("QM_JWT_PUBLIC_KEY is required")?.as_bytes();
                let private = cfg.private_key_pem.as_ref().map(|p| p.expose_secret().as_bytes().to_vec());
                match asymmetric {
                    JwtAlgorithm::Rs256 => (
                        Algorithm::RS256,
                        DecodingKey::from_rsa_pem(public).context("QM_JWT_PUBLIC_KEY: not an RSA public key")?,
                        private
                            .map(|p| EncodingKey::from_rsa_pem(&p))
                            .transpose()
                            .context("QM_JWT_PRIVATE_KEY: not an RSA private key")?,
                    ),
                    JwtAlgorithm::Es256 => (
                        Algorithm::ES256,
                        DecodingKey::from_ec_pem(public).context("QM_JWT_PUBLIC_KEY: not an EC public key")?,
                        private
                            .map(|p| EncodingKey::from_ec_pem(&p))
                            .transpose()
                            .context("QM_JWT_PRIVATE_KEY: not an EC private key")?,
                    ),
                    _ => (
                        Algorithm::EdDSA,
                        DecodingKey::from_ed_pem(public).context("QM_JWT_PUBLIC_KEY: not an Ed25519 public key")?,
                        private
                            .map(|p| EncodingKey::from_ed_pem(&p))
                            .transpose()
                            .context("QM_JWT_PRIVATE_KEY: not an Ed25519 private key")?,
                    ),
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_issuer(&[cfg.issuer.as_str()]);
        validation.set_audience(&[cfg.audience.as_str()]);
        Ok(Self {
            algorithm,
            decoding,
            encoding,
            validation,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl_seconds: cfg.ttl_seconds,
        })
    }

    /// True when this server holds a key to mint tokens with.
    pub fn can_mint(&self) -> bool {
        self.encoding.is_some()
    }

    /// Mints a token for `subject` in `tenant` with `roles`, valid from `now` for the configured lifetime.
    pub fn mint(
        &self,
        tenant: Uuid,
        subject: &str,
        roles: &[Role],
        supplier: Option<Uuid>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<String> {
        let key = self.encoding.as_ref().context("no private key configured to mint tokens (QM_JWT_PRIVATE_KEY)")?;
        let iat = now.timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            tid: tenant,
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            supplier,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            nbf: iat,
            exp: iat + self.ttl_seconds,
            jti: Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).context("signing token")
    }

    /// Verifies signature, algorithm and registered claims, and parses the roles.
    pub fn verify(&self, token: &str) -> Result<(Verified, Vec<Role>), AuthError> {
        let data = jsonwebtoken::decode::<Verified>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let roles = data
            .claims
            .roles
            .iter()
            .map(|r| Role::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        Ok((data.claims, roles))
    }
}
