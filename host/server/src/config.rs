//! The operator's configuration: a TOML file, overridden by `BULKHOST_*` variables and flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bulkhost_core::{Quotas, Schemas, TenantConfig};
use serde::Deserialize;

/// The bundled collection schemas (Datawiz's stock-taking documents and what they reference).
/// Files in `schema_dirs` add collections or replace these by name.
const BUNDLED_SCHEMAS: [(&str, &str); 4] = [
    ("shops.json", include_str!("../schemas/shops.json")),
    ("products.json", include_str!("../schemas/products.json")),
    ("cashiers.json", include_str!("../schemas/cashiers.json")),
    (
        "stock-taking-documents.json",
        include_str!("../schemas/stock-taking-documents.json"),
    ),
];

/// The configuration file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Directory of the redb file.
    pub data: Option<PathBuf>,
    /// Directories of extra collection schemas (`*.json`), relative to the config file.
    #[serde(default)]
    pub schema_dirs: Vec<PathBuf>,
    /// The externally visible base URL used in `url`, `next` and `previous` links; by default
    /// they are built from the request's `Host` header.
    pub public_url: Option<String>,
    /// The largest accepted request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// How long issued API tokens stay valid, in seconds.
    pub token_ttl_secs: Option<u64>,
    /// How long change records are kept, in seconds; 0 keeps them forever.
    pub change_retention_secs: Option<u64>,
    /// How often expired change records are dropped, in seconds.
    pub maintenance_interval_secs: Option<u64>,
    /// The plugin host: where components live and what an invocation may use.
    #[serde(default)]
    pub plugins: PluginConfig,
    /// Bulk export requests (Winfra XXL).
    #[serde(default)]
    pub exports: ExportConfig,
    /// Batches (LogiCommerce).
    #[serde(default)]
    pub batches: BatchConfig,
    /// Webhook deliveries.
    #[serde(default)]
    pub webhooks: WebhookConfig,
    /// The SMTP relay batch notices are mailed through.
    #[serde(default)]
    pub mail: MailConfig,
    /// The operator's API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The PostgreSQL database several hosts share, instead of the embedded file.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// What slow and stalled clients may hold.
    #[serde(default)]
    pub http: HttpLimits,
    /// What password checks may cost.
    #[serde(default)]
    pub auth: AuthLimits,
    /// How much of the deployment each tenant may take.
    #[serde(default)]
    pub quotas: Quotas,
    /// The tenants and their users.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

/// The `[database]` table: the PostgreSQL database several hosts share. Without a `url`, the
/// host keeps everything in the embedded file of its data directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A `postgres://` URL (`BULKHOST_DATABASE`, `--database`).
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
                pool_size: self.pool_size.max(1),
                wait: Duration::from_millis(self.wait_ms.max(1)),
                ..bulkhost_postgres::Options::new(url)
            },
            migrate: self.migrate,
        })
    }
}

/// The `[http]` table: what one tenant's slow or stalled clients may hold, so that they never
/// become another tenant's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugins directory (default: `plugins` inside the data directory); top-level
    /// `*.wasm` serve every tenant, `tenants/{tenant}/*.wasm` one tenant.
    pub dir: Option<PathBuf>,
    /// How often the directory is checked for added, replaced or removed components.
    pub sync_interval_ms: Option<u64>,
    /// Wall time one generation may run, in seconds.
    pub deadline_secs: Option<u64>,
    /// Wall time of `describe`, `validate` and one endpoint call, in seconds.
    pub call_deadline_secs: Option<u64>,
    /// Memory all memories and tables of one invocation may take together, in MiB.
    pub memory_mib: Option<usize>,
    /// Output one generation may emit, in MiB.
    pub output_mib: Option<u64>,
    /// Core instances one invocation may create.
    pub max_instances: Option<usize>,
    /// Linear memories one invocation may create.
    pub max_memories: Option<usize>,
    /// Tables one invocation may create.
    pub max_tables: Option<usize>,
    /// Components compiled at once (default: one per core).
    pub compile_concurrency: Option<usize>,
    /// How long loading a component may wait for its turn and compile, in seconds.
    pub compile_timeout_secs: Option<u64>,
    /// The largest component the operator may upload, in MiB.
    pub max_upload_mib: Option<usize>,
    /// The largest component a tenant may upload, in MiB.
    pub tenant_max_upload_mib: Option<usize>,
    /// Plugin calls a tenant may have running at once (endpoint calls, validations, uploads).
    pub calls_per_tenant: Option<usize>,
    /// Plugin calls all tenants together may have running at once: each holds a thread.
    pub calls_at_once: Option<usize>,
    /// `[plugins.grants.NAME]`: what the operator's plugin `NAME` (its file name without
    /// `.wasm`) may reach beyond the tenant's documents. Tenants' extensions get nothing.
    #[serde(default)]
    pub grants: BTreeMap<String, GrantConfig>,
}

/// One `[plugins.grants.NAME]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// Directories the plugin may read, each at the same path inside the sandbox; relative
    /// paths are taken from the configuration file's directory.
    #[serde(default)]
    pub read_dirs: Vec<PathBuf>,
    /// `ip:port` addresses the plugin may open TCP connections to.
    #[serde(default)]
    pub connect: Vec<SocketAddr>,
}

/// The `[admin]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// SHA-256 (hex) of the bearer tokens that may use `/admin/` (`bulkhost admin-token`
    /// makes one); without any, the operator's API is closed.
    #[serde(default)]
    pub token_sha256: Vec<String>,
}

/// The `[webhooks]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The Standard Webhooks signing secret, `whsec_` and base64; when absent one is generated
    /// and kept in the database, so that every host signs with it.
    pub secret: Option<String>,
    /// Whether webhooks may target loopback, private, link-local and other non-public
    /// addresses (off: they are refused).
    pub allow_private: Option<bool>,
    /// The first retry waits this long, each next one twice as long (at most an hour).
    pub retry_base_ms: Option<u64>,
    /// Deliveries attempted before giving up.
    pub max_attempts: Option<u32>,
    /// Deliveries (webhooks and mails) in flight at once.
    pub concurrency: Option<usize>,
    /// Deliveries of one tenant in flight at once.
    pub per_tenant: Option<usize>,
    /// How long resolving a receiver's name may take, in milliseconds.
    pub dns_timeout_ms: Option<u64>,
}

/// The `[mail]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The relay as a URL: `smtp://host:25` (plain, or STARTTLS with `?tls=required`),
    /// `smtps://user:password@host:465`. Without it no mail is sent.
    pub relay: Option<String>,
    /// The sender address (default `bulkhost@localhost`).
    pub from: Option<String>,
    /// Mails one tenant's batches may send per hour; more wait for the next hour.
    pub per_tenant_per_hour: Option<u32>,
}

/// The mail settings of a deployment that has a relay.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// See [`MailConfig::relay`].
    pub relay: String,
    /// See [`MailConfig::from`].
    pub from: String,
    /// See [`MailConfig::per_tenant_per_hour`].
    pub per_tenant_per_hour: u32,
}

/// The `[exports]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Data set runs generated at once.
    pub workers: Option<usize>,
    /// How long requests and their data are kept, in seconds (Winfra XXL: 12 hours).
    pub ttl_secs: Option<u64>,
}

/// The `[batches]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// The most a batch's operations may weigh together (LogiCommerce: 100).
    pub max_load_score: Option<u32>,
    /// Load scores that replace the defaults, by `"METHOD /path/{template}"`, for built-in
    /// routes and plugin endpoints alike.
    #[serde(default)]
    pub load_scores: BTreeMap<String, u32>,
    /// Batches (of different tenants) run at once.
    pub workers: Option<usize>,
    /// How long a finished batch's status is kept, in seconds (LogiCommerce: 1 hour).
    pub status_ttl_secs: Option<u64>,
    /// How long its JSONL results are kept, in seconds (LogiCommerce: 24 hours).
    pub results_ttl_secs: Option<u64>,
    /// The most operations one batch may hold.
    pub max_operations: Option<usize>,
    /// How long one operation may run, in seconds.
    pub operation_timeout_secs: Option<u64>,
    /// How long a whole batch may run, in seconds; the operations left then fail.
    pub timeout_secs: Option<u64>,
}

/// The batch settings, defaults filled in.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// See [`BatchConfig::max_load_score`].
    pub max_load_score: u32,
    /// See [`BatchConfig::load_scores`].
    pub load_scores: BTreeMap<String, u32>,
    /// See [`BatchConfig::workers`].
    pub workers: usize,
    /// See [`BatchConfig::status_ttl_secs`].
    pub status_ttl: Duration,
    /// See [`BatchConfig::results_ttl_secs`].
    pub results_ttl: Duration,
    /// See [`BatchConfig::max_operations`].
    pub max_operations: usize,
    /// See [`BatchConfig::operation_timeout_secs`].
    pub operation_timeout: Duration,
    /// See [`BatchConfig::timeout_secs`].
    pub timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_load_score: 100,
            load_scores: BTreeMap::new(),
            workers: 2,
            status_ttl: Duration::from_secs(3600),
            results_ttl: Duration::from_secs(24 * 3600),
            max_operations: 1000,
            operation_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// Settings the HTTP surfaces read at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// See [`FileConfig::public_url`].
    pub public_url: Option<String>,
    /// See [`FileConfig::max_body_bytes`].
    pub max_body_bytes: usize,
    /// See [`FileConfig::token_ttl_secs`].
    pub token_ttl: Duration,
    /// See [`FileConfig::change_retention_secs`]; `None` keeps changes forever.
    pub change_retention: Option<Duration>,
    /// See [`FileConfig::maintenance_interval_secs`].
    pub maintenance_interval: Duration,
    /// See [`PluginConfig::dir`]; `None` means `plugins` inside the data directory.
    pub plugins_dir: Option<PathBuf>,
    /// See [`PluginConfig::sync_interval_ms`].
    pub plugin_sync_interval: Duration,
    /// What one plugin invocation may use.
    pub plugin_limits: bulkhost_runtime::Limits,
    /// What compiling components may cost.
    pub plugin_compilation: bulkhost_runtime::Compilation,
    /// See [`PluginConfig::max_upload_mib`], in bytes.
    pub plugin_upload_bytes: usize,
    /// See [`PluginConfig::tenant_max_upload_mib`], in bytes.
    pub tenant_plugin_upload_bytes: usize,
    /// See [`PluginConfig::calls_per_tenant`].
    pub plugin_calls_per_tenant: usize,
    /// See [`PluginConfig::calls_at_once`].
    pub plugin_calls: usize,
    /// See [`PluginConfig::grants`].
    pub plugin_grants: BTreeMap<String, bulkhost_runtime::Grants>,
    /// See [`BatchConfig`].
    pub batch: BatchSettings,
    /// See [`ExportConfig::workers`].
    pub export_workers: usize,
    /// See [`ExportConfig::ttl_secs`].
    pub export_ttl: Duration,
    /// See [`WebhookConfig::secret`].
    pub webhook_secret: Option<String>,
    /// See [`WebhookConfig::allow_private`].
    pub webhook_allow_private: bool,
    /// See [`WebhookConfig::retry_base_ms`].
    pub webhook_retry_base: Duration,
    /// See [`WebhookConfig::max_attempts`].
    pub webhook_max_attempts: u32,
    /// See [`WebhookConfig::concurrency`].
    pub webhook_concurrency: usize,
    /// See [`WebhookConfig::per_tenant`].
    pub webhook_per_tenant: usize,
    /// See [`WebhookConfig::dns_timeout_ms`].
    pub dns_timeout: Duration,
    /// See [`MailConfig`]; `None` without a relay.
    pub mail: Option<MailSettings>,
    /// See [`AdminConfig::token_sha256`], lower-case.
    pub admin_token_sha256: Vec<String>,
    /// See [`HttpLimits`].
    pub http: HttpLimits,
    /// See [`AuthLimits`].
    pub auth: AuthLimits,
    /// See [`DatabaseConfig::lease_secs`].
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public_url: None,
            max_body_bytes: 32 * 1024 * 1024,
            token_ttl: Duration::from_secs(12 * 3600),
            change_retention: Some(Duration::from_secs(90 * 24 * 3600)),
            maintenance_interval: Duration::from_secs(3600),
            plugins_dir: None,
            plugin_sync_interval: Duration::from_secs(2),
            plugin_limits: bulkhost_runtime::Limits::default(),
            plugin_compilation: bulkhost_runtime::Compilation::default(),
            plugin_upload_bytes: 64 << 20,
            tenant_plugin_upload_bytes: 16 << 20,
            plugin_calls_per_tenant: 4,
            plugin_calls: 64,
            plugin_grants: BTreeMap::new(),
            batch: BatchSettings::default(),
            export_workers: 2,
            export_ttl: Duration::from_secs(12 * 3600),
            webhook_secret: None,
            webhook_allow_private: false,
            webhook_retry_base: Duration::from_secs(5),
            webhook_max_attempts: 12,
            webhook_concurrency: 16,
            webhook_per_tenant: 2,
            dns_timeout: Duration::from_secs(5),
            mail: None,
            admin_token_sha256: Vec::new(),
            http: HttpLimits::default(),
            auth: AuthLimits::default(),
            lease: Duration::from_secs(30),
        }
    }
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration {}", path.display()))?;
        let mut config: FileConfig = toml::from_str(&text)
            .with_context(|| format!("parsing configuration {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in config
            .schema_dirs
            .iter_mut()
            .chain(config.plugins.dir.as_mut())
            .chain(
                config
                    .plugins
                    .grants
                    .values_mut()
                    .flat_map(|g| g.read_dirs.iter_mut()),
            )
        {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        for (plugin, grant) in &config.plugins.grants {
            if let Some(dir) = grant.read_dirs.iter().find(|d| !d.is_dir()) {
                anyhow::bail!(
                    "plugins.grants.{plugin}.read_dirs: {} is not a directory",
                    dir.display()
                );
            }
        }
        Ok(config)
    }

    /// The run-time settings, with defaults for what the file leaves out.
    pub fn settings(&self) -> Settings {
        let defaults = Settings::default();
        Settings {
            public_url: self
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            max_body_bytes: self.max_body_bytes.unwrap_or(defaults.max_body_bytes),
            token_ttl: self
                .token_ttl_secs
                .map_or(defaults.token_ttl, Duration::from_secs),
            change_retention: match self.change_retention_secs {
                Some(0) => None,
                Some(secs) => Some(Duration::from_secs(secs)),
                None => defaults.change_retention,
            },
            maintenance_interval: self
                .maintenance_interval_secs
                .map_or(defaults.maintenance_interval, |s| {
                    Duration::from_secs(s.max(1))
                }),
            plugins_dir: self.plugins.dir.clone(),
            plugin_sync_interval: self
                .plugins
                .sync_interval_ms
                .map_or(defaults.plugin_sync_interval, |ms| {
                    Duration::from_millis(ms.max(100))
                }),
            plugin_limits: {
                let d = defaults.plugin_limits;
                let p = &self.plugins;
                bulkhost_runtime::Limits {
                    deadline: p.deadline_secs.map_or(d.deadline, Duration::from_secs),
                    call_deadline: p
                        .call_deadline_secs
                        .map_or(d.call_deadline, Duration::from_secs),
                    memory_bytes: p.memory_mib.map_or(d.memory_bytes, |m| m << 20),
                    output_bytes: p.output_mib.map_or(d.output_bytes, |m| m << 20),
                    instances: p.max_instances.unwrap_or(d.instances),
                    memories: p.max_memories.unwrap_or(d.memories),
                    tables: p.max_tables.unwrap_or(d.tables),
                }
            },
            plugin_compilation: bulkhost_runtime::Compilation {
                concurrency: self
                    .plugins
                    .compile_concurrency
                    .map_or(defaults.plugin_compilation.concurrency, |n| n.max(1)),
                timeout: self
                    .plugins
                    .compile_timeout_secs
                    .map_or(defaults.plugin_compilation.timeout, Duration::from_secs),
            },
            plugin_upload_bytes: self
                .plugins
                .max_upload_mib
                .map_or(defaults.plugin_upload_bytes, |m| m << 20),
            tenant_plugin_upload_bytes: self
                .plugins
                .tenant_max_upload_mib
                .map_or(defaults.tenant_plugin_upload_bytes, |m| m << 20),
            plugin_calls_per_tenant: self
                .plugins
                .calls_per_tenant
                .map_or(defaults.plugin_calls_per_tenant, |n| n.max(1)),
            plugin_calls: self
                .plugins
                .calls_at_once
                .map_or(defaults.plugin_calls, |n| n.max(1)),
            plugin_grants: self
                .plugins
                .grants
                .iter()
                .map(|(name, grant)| {
                    let grants = bulkhost_runtime::Grants {
                        read_dirs: grant.read_dirs.clone(),
                        connect: grant.connect.clone(),
                    };
                    (name.clone(), grants)
                })
                .collect(),
            batch: {
                let d = BatchSettings::default();
                BatchSettings {
                    max_load_score: self.batches.max_load_score.unwrap_or(d.max_load_score),
                    load_scores: self.batches.load_scores.clone(),
                    workers: self.batches.workers.map_or(d.workers, |n| n.max(1)),
                    status_ttl: self
                        .batches
                        .status_ttl_secs
                        .map_or(d.status_ttl, Duration::from_secs),
                    results_ttl: self
                        .batches
                        .results_ttl_secs
                        .map_or(d.results_ttl, Duration::from_secs),
                    max_operations: self
                        .batches
                        .max_operations
                        .map_or(d.max_operations, |n| n.max(1)),
                    operation_timeout: self
                        .batches
                        .operation_timeout_secs
                        .map_or(d.operation_timeout, |s| Duration::from_secs(s.max(1))),
                    timeout: self
                        .batches
                        .timeout_secs
                        .map_or(d.timeout, |s| Duration::from_secs(s.max(1))),
                }
            },
            export_workers: self
                .exports
                .workers
                .map_or(defaults.export_workers, |n| n.max(1)),
            export_ttl: self
                .exports
                .ttl_secs
                .map_or(defaults.export_ttl, Duration::from_secs),
            webhook_secret: self.webhooks.secret.clone(),
            webhook_allow_private: self.webhooks.allow_private.unwrap_or(false),
            webhook_retry_base: self
                .webhooks
                .retry_base_ms
                .map_or(defaults.webhook_retry_base, Duration::from_millis),
            webhook_max_attempts: self
                .webhooks
                .max_attempts
                .unwrap_or(defaults.webhook_max_attempts),
            webhook_concurrency: self
                .webhooks
                .concurrency
                .map_or(defaults.webhook_concurrency, |n| n.max(1)),
            webhook_per_tenant: self
                .webhooks
                .per_tenant
                .map_or(defaults.webhook_per_tenant, |n| n.max(1)),
            dns_timeout: self
                .webhooks
                .dns_timeout_ms
                .map_or(defaults.dns_timeout, Duration::from_millis),
            mail: self.mail.relay.as_ref().map(|relay| MailSettings {
                relay: relay.clone(),
                from: self
                    .mail
                    .from
                    .clone()
                    .unwrap_or_else(|| "bulkhost@localhost".into()),
                per_tenant_per_hour: self.mail.per_tenant_per_hour.unwrap_or(60).max(1),
            }),
            admin_token_sha256: self
                .admin
                .token_sha256
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            http: self.http,
            auth: self.auth,
            lease: Duration::from_secs(self.database.lease_secs.max(1)),
        }
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
