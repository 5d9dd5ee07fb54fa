//! Configuration: the only module that reads the environment.
//!
//! Layers, later wins: the embedded `config.default.toml` (which documents every key), an optional
//! TOML file named by `QM_CONFIG`, then `QM_<KEY>` environment variables. The result is validated
//! once; an invalid value fails start-up with the key's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::SecretString;

const DEFAULTS: &str = include_str!("../config.default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    pub secret: Option<SecretString>,
    pub public_key_pem: Option<String>,
    pub private_key_pem: Option<SecretString>,
    pub issuer: String,
    pub audience: String,
    pub ttl_seconds: i64,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub migration_database_url: Option<String>,
    pub database_app_role: Option<String>,
    pub platform_token: Option<SecretString>,
    pub jwt: JwtConfig,
    pub log_format: LogFormat,
    pub demo: bool,
    pub demo_seed: u64,
    pub limits: Limits,
    /// Connections each process keeps to PostgreSQL at most.
    pub database_max_connections: u32,
    /// Whether `serve` and `worker` apply pending migrations when they start.
    pub migrate_on_start: bool,
    pub worker_concurrency: usize,
    pub worker_lease_seconds: u64,
    /// How long a stopping worker lets running jobs finish before handing them back.
    pub worker_shutdown_seconds: u64,
    /// Where `quartermaster worker` serves /healthz, /readyz and /metrics; `None`: nowhere.
    pub worker_listen: Option<String>,
    /// Finished jobs older than this many days are deleted; 0 keeps them.
    pub job_retention_days: u32,
    /// On-demand runs are refused while a tenant has this many jobs waiting.
    pub tenant_queue_limit: u64,
    /// How often each active connector runs an incremental sync that catches what webhooks missed.
    pub connector_sync_interval_seconds: u64,
    /// Whether a connector's `baseUrl` may reach loopback, private and link-local addresses.
    pub connector_allow_private: bool,
    /// Provider calls one tenant may have in flight at once, across its connectors (per process).
    pub connector_tenant_concurrency: usize,
    /// Provider calls one tenant may make a second, across its connectors (per process).
    pub connector_tenant_rate: u32,
    /// An OSRM server for road durations and distances; `None`: great-circle distances.
    pub osrm_url: Option<String>,
    pub osrm_profile: String,
    pub osrm_table_limit: usize,
    pub osrm_timeout_seconds: u64,
    pub osrm_max_snap_meters: f64,
    pub routing_speed_kmh: f64,
    pub routing_time_limit_seconds: f64,
    pub webhook_timeout_seconds: u64,
    pub webhook_allow_private: bool,
    pub webhook_retry_scale: f64,
    pub smtp_url: Option<SecretString>,
    pub email_from: String,
    /// `id:base64,…`, the sealing key first; `None`: a generated key kept in the data directory.
    pub connector_keys: Option<SecretString>,
}

type Raw = BTreeMap<String, String>;

fn flatten(text: &str, origin: &str, into: &mut Raw, known: Option<&Raw>) -> anyhow::Result<()> {
    let table: toml::Table = toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
    for (k, v) in table {
        if let Some(known) = known
            && !known.contains_key(&k)
        {
            bail!("{origin}: unknown key {k:?}");
        }
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => bail!("{origin}: {k} must be a string, number or boolean"),
        };
        into.insert(k, s);
    }
    Ok(())
}

impl Config {
    /// Loads the configuration from the defaults, `QM_CONFIG` and `QM_*` variables.
    pub fn load() -> anyhow::Result<Self> {
        Self::from_sources(std::env::vars())
    }

    /// Builds the configuration from the given environment (name, value) pairs.
    pub fn from_sources(env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut raw = Raw::new();
        flatten(DEFAULTS, "config.default.toml", &mut raw, None)?;
        let defaults = raw.clone();
        let env: BTreeMap<String, String> = env.into_iter().collect();
        if let Some(path) = env.get("QM_CONFIG").filter(|p| !p.is_empty()) {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading QM_CONFIG file {path}"))?;
            flatten(&text, path, &mut raw, Some(&defaults))?;
        }
        for key in defaults.keys() {
            if let Some(v) = env.get(&format!("QM_{}", key.to_uppercase())) {
                raw.insert(key.clone(), v.clone());
            }
        }
        Self::validate(&raw)
    }

    /// The configuration tests start from: defaults only, data in `data_dir`.
    pub fn for_tests(data_dir: &Path) -> Self {
        let mut c = Self::from_sources(Vec::new()).expect("the embedded defaults are valid");
        c.data_dir = data_dir.to_owned();
        c.demo = false;
        c.listen = "127.0.0.1:0".into();
        // Test receivers and mock providers listen on loopback.
        c.webhook_allow_private = true;
        c.connector_allow_private = true;
        c
    }

    fn validate(raw: &Raw) -> anyhow::Result<Self> {
        let get = |k: &str| raw.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
        let opt = |k: &str| Some(get(k)).filter(|s| !s.is_empty());
        let num = |k: &str| -> anyhow::Result<i64> {
            get(k).parse::<i64>().with_context(|| format!("{k} (QM_{}) must be an integer", k.to_uppercase()))
        };
        let positive = |k: &str| -> anyhow::Result<usize> {
            let n = num(k)?;
            usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{k} (QM_{}) must be positive", k.to_uppercase()))
        };
        let positive_float = |k: &str| -> anyhow::Result<f64> {
            get(k)
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0)
                .with_context(|| format!("{k} (QM_{}) must be a positive number", k.to_uppercase()))
        };
        let boolean = |k: &str| -> anyhow::Result<bool> {
            match get(k).to_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => bail!("{k} (QM_{}) must be true or false, not {other:?}", k.to_uppercase()),
            }
        };
        let pem = |k: &str| -> anyhow::Result<Option<String>> {
            match opt(k) {
                None => Ok(None),
                Some(v) if v.contains("-----BEGIN") => Ok(Some(v)),
                Some(path) => std::fs::read_to_string(&path)
                    .map(Some)
                    .with_context(|| format!("{k} (QM_{}): reading {path}", k.to_uppercase())),
            }
        };

        let algorithm = match get("jwt_algorithm").as_str() {
            "HS256" => JwtAlgorithm::Hs256,
            "RS256" => JwtAlgorithm::Rs256,
            "ES256" => JwtAlgorithm::Es256,
            "EdDSA" => JwtAlgorithm::EdDsa,
            other => bail!("jwt_algorithm (QM_JWT_ALGORITHM) must be HS256, RS256, ES256 or EdDSA, not {other:?}"),
        };
        let public_key_pem = pem("jwt_public_key")?;
        if algorithm != JwtAlgorithm::Hs256 && public_key_pem.is_none() {
            bail!("jwt_public_key (QM_JWT_PUBLIC_KEY) is required with jwt_algorithm {:?}", get("jwt_algorithm"));
        }
        let secret = opt("jwt_secret");
        if let Some(s) = &secret
            && s.len() < 32
        {
            bail!("jwt_secret (QM_JWT_SECRET) must be at least 32 characters");
        }
        let ttl_seconds = num("jwt_ttl_seconds")?;
        if ttl_seconds <= 0 {
            bail!("jwt_ttl_seconds (QM_JWT_TTL_SECONDS) must be positive");
        }
        let log_format = match get("log_format").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => bail!("log_format (QM_LOG_FORMAT) must be pretty or json, not {other:?}"),
        };
        let database_url = opt("database_url");
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:"))
        {
            bail!("database_url (QM_DATABASE_URL) must start with postgres://, postgresql:// or sqlite:");
        }
        let role = opt("database_app_role");
        if let Some(r) = &role
            && !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!("database_app_role (QM_DATABASE_APP_ROLE) must be a plain identifier");
        }
        Ok(Self {
            listen: get("listen"),
            data_dir: PathBuf::from(get("data_dir")),
            database_url,
            migration_database_url: opt("migration_database_url"),
            database_app_role: role,
            platform_token: opt("platform_token").map(SecretString::from),
            jwt: JwtConfig {
                algorithm,
                secret: secret.map(SecretString::from),
                public_key_pem,
                private_key_pem: pem("jwt_private_key")?.map(SecretString::from),
                issuer: get("jwt_issuer"),
                audience: get("jwt_audience"),
                ttl_seconds,
            },
            log_format,
            demo: boolean("demo")?,
            demo_seed: u64::try_from(num("demo_seed")?).context("demo_seed (QM_DEMO_SEED) must not be negative")?,
            limits: Limits {
                max_body_bytes: positive("max_body_bytes")?,
                max_depth: positive("max_depth")?,
                max_complexity: positive("max_complexity")?,
                max_aliases: positive("max_aliases")?,
            },
            database_max_connections: u32::try_from(positive("database_max_connections")?)
                .context("database_max_connections (QM_DATABASE_MAX_CONNECTIONS) is too large")?,
            migrate_on_start: boolean("migrate_on_start")?,
            worker_concurrency: positive("worker_concurrency")?,
            worker_lease_seconds: positive("worker_lease_seconds")? as u64,
            worker_shutdown_seconds: u64::try_from(num("worker_shutdown_seconds")?)
                .context("worker_shutdown_seconds (QM_WORKER_SHUTDOWN_SECONDS) must not be negative")?,
            worker_listen: opt("worker_listen"),
            job_retention_days: u32::try_from(num("job_retention_days")?)
                .context("job_retention_days (QM_JOB_RETENTION_DAYS) must be between 0 and 4294967295")?,
            tenant_queue_limit: positive("tenant_queue_limit")? as u64,
            connector_sync_interval_seconds: positive("connector_sync_interval_seconds")? as u64,
            connector_allow_private: boolean("connector_allow_private")?,
            connector_tenant_concurrency: positive("connector_tenant_concurrency")?,
            connector_tenant_rate: u32::try_from(positive("connector_tenant_rate")?)
                .context("connector_tenant_rate (QM_CONNECTOR_TENANT_RATE) is too large")?,
            osrm_url: opt("osrm_url"),
            osrm_profile: get("osrm_profile"),
            osrm_table_limit: positive("osrm_table_limit")?,
            osrm_timeout_seconds: positive("osrm_timeout_seconds")? as u64,
            osrm_max_snap_meters: positive_float("osrm_max_snap_meters")?,
            routing_speed_kmh: positive_float("routing_speed_kmh")?,
            routing_time_limit_seconds: positive_float("routing_time_limit_seconds")?,
            webhook_timeout_seconds: positive("webhook_timeout_seconds")? as u64,
            webhook_allow_private: boolean("webhook_allow_private")?,
            webhook_retry_scale: get("webhook_retry_scale")
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1.0)
                .context("webhook_retry_scale (QM_WEBHOOK_RETRY_SCALE) must be a number in (0, 1]")?,
            smtp_url: opt("smtp_url").map(SecretString::from),
            email_from: get("email_from"),
            connector_keys: opt("connector_keys").map(SecretString::from),
        })
    }

    /// The database the server uses: the configured URL or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("quartermaster.db").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_single_binary() {
        let c = Config::from_sources(env(&[])).expect("defaults load");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.jwt.algorithm, JwtAlgorithm::Hs256);
        assert!(c.effective_database_url().starts_with("sqlite://"));
        assert!(c.platform_token.is_none());
    }

    #[test]
    fn environment_overrides_and_errors_name_the_key() {
        let c = Config::from_sources(env(&[("QM_LISTEN", "0.0.0.0:9000"), ("QM_LOG_FORMAT", "json")]))
            .expect("valid overrides");
        assert_eq!((c.listen.as_str(), c.log_format), ("0.0.0.0:9000", LogFormat::Json));
        let err = Config::from_sources(env(&[("QM_JWT_ALGORITHM", "none")])).expect_err("refused");
        assert!(err.to_string().contains("QM_JWT_ALGORITHM"), "{err}");
        let err = Config::from_sources(env(&[("QM_JWT_ALGORITHM", "RS256")])).expect_err("needs a key");
        assert!(err.to_string().contains("QM_JWT_PUBLIC_KEY"), "{err}");
    }

    #[test]
    fn scale_out_settings_have_defaults_and_checked_values() {
        let c = Config::from_sources(env(&[])).expect("defaults load");
        assert_eq!((c.database_max_connections, c.migrate_on_start), (32, true));
        assert_eq!((c.worker_shutdown_seconds, c.worker_listen.as_deref(), c.job_retention_days), (20, None, 7));
        assert_eq!(c.tenant_queue_limit, 10_000);
        let c = Config::from_sources(env(&[
            ("QM_DATABASE_MAX_CONNECTIONS", "10"),
            ("QM_MIGRATE_ON_START", "false"),
            ("QM_WORKER_SHUTDOWN_SECONDS", "0"),
            ("QM_WORKER_LISTEN", "0.0.0.0:9090"),
            ("QM_JOB_RETENTION_DAYS", "0"),
        ]))
        .expect("valid");
        assert_eq!((c.database_max_connections, c.migrate_on_start), (10, false));
        assert_eq!(
            (c.worker_shutdown_seconds, c.worker_listen.as_deref(), c.job_retention_days),
            (0, Some("0.0.0.0:9090"), 0)
        );
        for (key, value) in [
            ("QM_DATABASE_MAX_CONNECTIONS", "0"),
            ("QM_WORKER_SHUTDOWN_SECONDS", "-1"),
            ("QM_JOB_RETENTION_DAYS", "-7"),
            ("QM_MIGRATE_ON_START", "maybe"),
            ("QM_TENANT_QUEUE_LIMIT", "0"),
        ] {
            let err = Config::from_sources(env(&[(key, value)])).expect_err("refused");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn a_config_file_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("qm-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("qm.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:7000\"\ndemo = false\n").expect("write");
        let path = file.display().to_string();
        let c = Config::from_sources(env(&[("QM_CONFIG", &path)])).expect("file loads");
        assert_eq!((c.listen.as_str(), c.demo), ("127.0.0.1:7000", false));
        let c = Config::from_sources(env(&[("QM_CONFIG", &path), ("QM_LISTEN", "127.0.0.1:7001")])).expect("env");
        assert_eq!(c.listen, "127.0.0.1:7001");
        std::fs::write(&file, "lisen = 1\n").expect("write");
        assert!(Config::from_sources(env(&[("QM_CONFIG", &path)])).is_err(), "unknown keys are refused");
    }
}
