//! The operator's configuration: one type, [`Config`], whose every key has a default.
//!
//! [`load`] layers it, lowest first: the defaults, a TOML file, `BULKHOST_*` environment
//! variables (`BULKHOST_SECTION__KEY`, and `…_FILE` naming a file that holds the value, for
//! secrets), then flags. [`Config::check`] refuses values the server cannot run with, naming the
//! key, and [`redacted`] renders the effective configuration without its secrets for
//! `bulkhost config check`.

mod check;
mod layers;
mod redact;

pub use check::Invalid;
pub use layers::{ConfigError, DatabaseFlags, Flags, load};
pub use redact::redacted;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bulkhost_core::{Quotas, Schemas, TenantConfig};
use serde::{Deserialize, Serialize};

/// The bundled collection schemas (Datawiz's stock-taking documents and what they reference).
/// Files in `schema_dirs` add collections or replace these by name.
const BUNDLED_SCHEMAS: [(&str, &str); 4] = [
    ("shops.json", include_str!("../../schemas/shops.json")),
    ("products.json", include_str!("../../schemas/products.json")),
    ("cashiers.json", include_str!("../../schemas/cashiers.json")),
    (
        "stock-taking-documents.json",
        include_str!("../../schemas/stock-taking-documents.json"),
    ),
];

/// Everything an operator can set. Each key has a default, so an empty file is a working
/// configuration; sizes are in the unit their name says, durations in seconds or milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of this host's files: the embedded database (without `[database] url`) and
    /// the compiled plugin cache.
    pub data: PathBuf,
    /// Directories of extra collection schemas (`*.json`).
    pub schema_dirs: Vec<PathBuf>,
    /// The externally visible base URL used in `url`, `next` and `previous` links; by default
    /// they are built from the request's `Host` header.
    pub public_url: Option<String>,
    /// The largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long issued API tokens stay valid, in seconds.
    pub token_ttl_secs: u64,
    /// How long change records are kept, in seconds; 0 keeps them forever.
    pub change_retention_secs: u64,
    /// How often expired change records, exports, batches and tokens are dropped, in seconds.
    pub maintenance_interval_secs: u64,
    /// Log as JSON lines instead of text.
    pub log_json: bool,
    /// The PostgreSQL database several hosts share, instead of the embedded file.
    pub database: DatabaseConfig,
    /// The plugin host: where components live and what an invocation may use.
    pub plugins: PluginConfig,
    /// Bulk export requests (Winfra XXL).
    pub exports: ExportConfig,
    /// Batches (LogiCommerce).
    pub batches: BatchConfig,
    /// Webhook deliveries.
    pub webhooks: WebhookConfig,
    /// The SMTP relay batch notices are mailed through.
    pub mail: MailConfig,
    /// The operator's API.
    pub admin: AdminConfig,
    /// What slow and stalled clients may hold.
    pub http: HttpLimits,
    /// What password checks may cost.
    pub auth: AuthLimits,
    /// How much of the deployment each tenant may take.
    pub quotas: Quotas,
    /// The tenants and their users.
    pub tenants: Vec<TenantConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("data"),
            schema_dirs: Vec::new(),
            public_url: None,
            max_body_bytes: 32 << 20,
            token_ttl_secs: 12 * 3600,
            change_retention_secs: 90 * 24 * 3600,
            maintenance_interval_secs: 3600,
            log_json: false,
            database: DatabaseConfig::default(),
            plugins: PluginConfig::default(),
            exports: ExportConfig::default(),
            batches: BatchConfig::default(),
            webhooks: WebhookConfig::default(),
            mail: MailConfig::default(),
            admin: AdminConfig::default(),
            http: HttpLimits::default(),
            auth: AuthLimits::default(),
            quotas: Quotas::default(),
            tenants: Vec::new(),
        }
    }
}

impl Config {
    /// What one plugin invocation may use, and how many may run at once: every plugin call
    /// the gates let through, each export and batch worker, and a load per compilation turn,
    /// so no invocation waits for a slot of the instance pool.
    pub fn plugin_limits(&self) -> bulkhost_runtime::Limits {
        bulkhost_runtime::Limits {
            invocations: self.plugins.calls_at_once
                + self.exports.workers
                + self.batches.workers
                + self.plugins.compile_concurrency,
            ..self.plugins.limits()
        }
    }

    /// How long issued API tokens stay valid.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// How long change records are kept; `None` keeps them forever.
    pub fn change_retention(&self) -> Option<Duration> {
        (self.change_retention_secs > 0).then(|| Duration::from_secs(self.change_retention_secs))
    }

    /// How often expired records are dropped.
    pub fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.maintenance_interval_secs)
    }

    /// The directory of deployed plugins: `[plugins] dir`, or `plugins` in the data directory.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins
            .dir
            .clone()
            .unwrap_or_else(|| self.data.join("plugins"))
    }
}

/// The `[database]` table: the PostgreSQL database several hosts share. Without a `url`, the
/// host keeps everything in the embedded file of its data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A `postgres://` URL (`--database`).
    pub url: Option<String>,
    /// The most connections this host opens.
    pub pool_size: usize,
    /// How long a request waits for a connection before it is answered 503.
    pub wait_ms: u64,
    /// Whether to apply pending schema migrations at start (`--migrate`).
    pub migrate: bool,
    /// How long a host holds claimed work (an export run, a batch, a webhook delivery)
    /// without renewing its claim; a host that dies loses its work to another after this.
    pub lease_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            pool_size: 16,
            wait_ms: 5000,
            migrate: false,
            lease_secs: 30,
        }
    }
}

impl DatabaseConfig {
    /// The shared database, if one is configured.
    pub fn database(&self) -> Option<crate::serve::Database> {
        let url = self.url.as_deref()?;
        Some(crate::serve::Database {
            options: bulkhost_postgres::Options {
                pool_size: self.pool_size,
                wait: Duration::from_millis(self.wait_ms),
                ..bulkhost_postgres::Options::new(url)
            },
            migrate: self.migrate,
        })
    }

    /// How long claimed work is held without a renewal.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// The `[http]` table: what one tenant's slow or stalled clients may hold, so that they never
/// become another tenant's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// A response whose client stops reading for this long is cut off.
    pub write_timeout_secs: u64,
    /// Responses a tenant may have streaming at once (downloads, ABRA listings, attachment
    /// files); more answer 429.
    pub streams_per_tenant: usize,
    /// Responses all tenants together may have streaming at once: each holds a little memory
    /// while its client reads.
    pub streams_at_once: usize,
    /// Change-feed long-polls (`wait=`) a tenant may hold at once; more answer 429.
    pub long_polls_per_tenant: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            write_timeout_secs: 30,
            streams_per_tenant: 16,
            streams_at_once: 1024,
            long_polls_per_tenant: 16,
        }
    }
}

/// The `[auth]` table: what checking passwords may cost. Argon2 is slow by design, so a flood
/// of made-up credentials must not take every core, nor lock a user's own sign-in out for
/// long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthLimits {
    /// Argon2 checks that run at once; 0 means half the cores (at least one).
    pub hash_concurrency: usize,
    /// How long a sign-in may wait for its turn at a check before it is answered 429.
    pub hash_wait_ms: u64,
    /// Password checks per user name and minute (and a burst of as many).
    pub checks_per_user_per_minute: u32,
    /// Password checks per client address and minute (and a burst of as many).
    pub checks_per_address_per_minute: u32,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            hash_concurrency: 0,
            hash_wait_ms: 2000,
            checks_per_user_per_minute: 10,
            checks_per_address_per_minute: 60,
        }
    }
}

impl AuthLimits {
    /// The Argon2 checks that run at once.
    pub fn hash_permits(&self) -> usize {
        match self.hash_concurrency {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .max(1),
            n => n,
        }
    }
}

/// The `[plugins]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugins directory (default: `plugins` inside the data directory); top-level
    /// `*.wasm` serve every tenant, `tenants/{tenant}/*.wasm` one tenant.
    pub dir: Option<PathBuf>,
    /// How often the directory and the uploads are checked for added, replaced or removed
    /// components, in milliseconds.
    pub sync_interval_ms: u64,
    /// Wall time one generation may run, in seconds.
    pub deadline_secs: u64,
    /// Wall time of `describe`, `validate` and one endpoint call, in seconds.
    pub call_deadline_secs: u64,
    /// Memory all memories and tables of one invocation may take together, in MiB.
    pub memory_mib: usize,
    /// Output one generation may emit, in MiB.
    pub output_mib: u64,
    /// Core instances one invocation may create.
    pub max_instances: usize,
    /// Linear memories one invocation may create.
    pub max_memories: usize,
    /// Tables one invocation may create.
    pub max_tables: usize,
    /// Components compiled at once (by default, one per core).
    pub compile_concurrency: usize,
    /// How long loading a component may wait for its turn and compile, in seconds.
    pub compile_timeout_secs: u64,
    /// The largest component the operator may upload, in MiB.
    pub max_upload_mib: usize,
    /// The largest component a tenant may upload, in MiB.
    pub tenant_max_upload_mib: usize,
    /// Plugin calls a tenant may have running at once (endpoint calls, validations, uploads).
    pub calls_per_tenant: usize,
    /// Plugin calls all tenants together may have running at once: each holds a thread.
    pub calls_at_once: usize,
    /// `[plugins.grants.NAME]`: what the operator's plugin `NAME` (its file name without
    /// `.wasm`) may reach beyond the tenant's documents. Tenants' extensions get nothing.
    pub grants: BTreeMap<String, GrantConfig>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        let limits = bulkhost_runtime::Limits::default();
        let compilation = bulkhost_runtime::Compilation::default();
        PluginConfig {
            dir: None,
            sync_interval_ms: 2000,
            deadline_secs: limits.deadline.as_secs(),
            call_deadline_secs: limits.call_deadline.as_secs(),
            memory_mib: limits.memory_bytes >> 20,
            output_mib: limits.output_bytes >> 20,
            max_instances: limits.instances,
            max_memories: limits.memories,
            max_tables: limits.tables,
            compile_concurrency: compilation.concurrency,
            compile_timeout_secs: compilation.timeout.as_secs(),
            max_upload_mib: 64,
            tenant_max_upload_mib: 32,
            calls_per_tenant: 4,
            calls_at_once: 64,
            grants: BTreeMap::new(),
        }
    }
}

impl PluginConfig {
    /// How often the plugins are checked for changes.
    pub fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.sync_interval_ms)
    }

    /// What one invocation may use; how many may run at once is [`Config::plugin_limits`]'s.
    pub fn limits(&self) -> bulkhost_runtime::Limits {
        bulkhost_runtime::Limits {
            deadline: Duration::from_secs(self.deadline_secs),
            call_deadline: Duration::from_secs(self.call_deadline_secs),
            memory_bytes: self.memory_mib << 20,
            output_bytes: self.output_mib << 20,
            instances: self.max_instances,
            memories: self.max_memories,
            tables: self.max_tables,
            ..bulkhost_runtime::Limits::default()
        }
    }

    /// What compiling components may cost.
    pub fn compilation(&self) -> bulkhost_runtime::Compilation {
        bulkhost_runtime::Compilation {
            concurrency: self.compile_concurrency,
            timeout: Duration::from_secs(self.compile_timeout_secs),
        }
    }

    /// The largest component the operator may upload, in bytes.
    pub fn upload_bytes(&self) -> usize {
        self.max_upload_mib << 20
    }

    /// The largest component a tenant may upload, in bytes.
    pub fn tenant_upload_bytes(&self) -> usize {
        self.tenant_max_upload_mib << 20
    }

    /// What each operator plugin is granted, by name.
    pub fn grants(&self) -> BTreeMap<String, bulkhost_runtime::Grants> {
        self.grants
            .iter()
            .map(|(name, grant)| {
                let grants = bulkhost_runtime::Grants {
                    read_dirs: grant.read_dirs.clone(),
                    connect: grant.connect.clone(),
                };
                (name.clone(), grants)
            })
            .collect()
    }
}

/// One `[plugins.grants.NAME]` table.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrantConfig {
    /// Directories the plugin may read, each at the same path inside the sandbox; relative
    /// paths in the file are taken from the file's directory.
    pub read_dirs: Vec<PathBuf>,
    /// `ip:port` addresses the plugin may open TCP connections to.
    pub connect: Vec<SocketAddr>,
}

/// The `[admin]` table.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// SHA-256 (hex) of the bearer tokens that may use `/admin/` (`bulkhost admin-token`
    /// makes one); without any, the operator's API is closed.
    pub token_sha256: Vec<String>,
}

/// The `[webhooks]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The Standard Webhooks signing secret, `whsec_` and base64; when absent one is generated
    /// and kept in the database, so that every host signs with it.
    pub secret: Option<String>,
    /// Whether webhooks may target loopback, private, link-local and other non-public
    /// addresses (off: they are refused).
    pub allow_private: bool,
    /// The first retry waits this long, each next one twice as long (at most an hour), in
    /// milliseconds.
    pub retry_base_ms: u64,
    /// Deliveries attempted before giving up.
    pub max_attempts: u32,
    /// Deliveries (webhooks and mails) in flight at once.
    pub concurrency: usize,
    /// Deliveries of one tenant in flight at once.
    pub per_tenant: usize,
    /// How long resolving a receiver's name may take, in milliseconds.
    pub dns_timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            allow_private: false,
            retry_base_ms: 5000,
            max_attempts: 12,
            concurrency: 16,
            per_tenant: 2,
            dns_timeout_ms: 5000,
        }
    }
}

impl WebhookConfig {
    /// The wait before the first retry.
    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }

    /// How long resolving a receiver's name may take.
    pub fn dns_timeout(&self) -> Duration {
        Duration::from_millis(self.dns_timeout_ms)
    }
}

/// The `[mail]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The relay as a URL: `smtp://host:25` (plain, or STARTTLS with `?tls=required`),
    /// `smtps://user:password@host:465`. Without it no mail is sent.
    pub relay: Option<String>,
    /// The sender address.
    pub from: String,
    /// Mails one tenant's batches may send per hour; more wait for the next hour.
    pub per_tenant_per_hour: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            relay: None,
            from: "bulkhost@localhost".into(),
            per_tenant_per_hour: 60,
        }
    }
}

/// The `[exports]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Data set runs generated at once.
    pub workers: usize,
    /// How long requests and their data are kept, in seconds (Winfra XXL: 12 hours).
    pub ttl_secs: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            workers: 2,
            ttl_secs: 12 * 3600,
        }
    }
}

impl ExportConfig {
    /// How long requests and their data are kept.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }
}

/// The `[batches]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// The most a batch's operations may weigh together (LogiCommerce: 100).
    pub max_load_score: u32,
    /// Load scores that replace the defaults, by `"METHOD /path/{template}"`, for built-in
    /// routes and plugin endpoints alike.
    pub load_scores: BTreeMap<String, u32>,
    /// Batches (of different tenants) run at once.
    pub workers: usize,
    /// How long a finished batch's status is kept, in seconds (LogiCommerce: 1 hour).
    pub status_ttl_secs: u64,
    /// How long its JSONL results are kept, in seconds (LogiCommerce: 24 hours).
    pub results_ttl_secs: u64,
    /// The most operations one batch may hold.
    pub max_operations: usize,
    /// How long one operation may run, in seconds.
    pub operation_timeout_secs: u64,
    /// How long a whole batch may run, in seconds; the operations left then fail.
    pub timeout_secs: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_load_score: 100,
            load_scores: BTreeMap::new(),
            workers: 2,
            status_ttl_secs: 3600,
            results_ttl_secs: 24 * 3600,
            max_operations: 1000,
            operation_timeout_secs: 60,
            timeout_secs: 3600,
        }
    }
}

impl BatchConfig {
    /// How long a finished batch's status is kept.
    pub fn status_ttl(&self) -> Duration {
        Duration::from_secs(self.status_ttl_secs)
    }

    /// How long a finished batch's responses are kept.
    pub fn results_ttl(&self) -> Duration {
        Duration::from_secs(self.results_ttl_secs)
    }

    /// How long one operation may run.
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_secs(self.operation_timeout_secs)
    }

    /// How long a whole batch may run.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The bundled schemas followed by those of `dirs`, later ones replacing earlier ones.
pub fn load_schemas(dirs: &[PathBuf]) -> anyhow::Result<Schemas> {
    let mut sources: Vec<(String, String)> = BUNDLED_SCHEMAS
        .iter()
        .map(|(name, text)| (format!("bundled {name}"), text.to_string()))
        .collect();
    for dir in dirs {
        sources.extend(
            Schemas::read_dir(dir)
                .with_context(|| format!("reading schemas in {}", dir.display()))?,
        );
    }
    Ok(Schemas::from_sources(
        sources
            .iter()
            .map(|(origin, text)| (origin.clone(), text.as_str())),
    )?)
}
