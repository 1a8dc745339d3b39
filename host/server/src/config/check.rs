//! What a configuration must hold for the server to run: each refusal names its key, so an
//! operator finds the line to change.

use super::Config;

/// A value the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {problem}")]
pub struct Invalid {
    /// The key, dotted as in `plugins.memory_mib`.
    pub key: String,
    /// What is wrong with its value.
    pub problem: String,
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Every value the server cannot run with; empty when the configuration is good.
    ///
    /// Counts, sizes and intervals that would stop the server doing its work (no workers, no
    /// memory for a plugin, a maintenance loop that never waits) must be at least 1; addresses,
    /// URLs, hashes, secrets and directories must be what their keys say. Tenants and their
    /// users are checked where they are made ([`bulkhost_core::Tenants::new`]), which knows
    /// whether development mode lets plain passwords in.
    pub fn check(&self) -> Vec<Invalid> {
        let (p, b, w, h, d) = (
            &self.plugins,
            &self.batches,
            &self.webhooks,
            &self.http,
            &self.database,
        );
        let at_least: [(&str, u64, u64); 32] = [
            ("max_body_bytes", self.max_body_bytes as u64, 1),
            (
                "maintenance_interval_secs",
                self.maintenance_interval_secs,
                1,
            ),
            ("database.pool_size", d.pool_size as u64, 1),
            ("database.wait_ms", d.wait_ms, 1),
            ("database.lease_secs", d.lease_secs, 1),
            ("plugins.sync_interval_ms", p.sync_interval_ms, 100),
            ("plugins.deadline_secs", p.deadline_secs, 1),
            ("plugins.call_deadline_secs", p.call_deadline_secs, 1),
            ("plugins.memory_mib", p.memory_mib as u64, 1),
            ("plugins.max_instances", p.max_instances as u64, 1),
            ("plugins.max_memories", p.max_memories as u64, 1),
            ("plugins.max_tables", p.max_tables as u64, 1),
            ("plugins.output_mib", p.output_mib, 1),
            (
                "plugins.compile_concurrency",
                p.compile_concurrency as u64,
                1,
            ),
            ("plugins.compile_timeout_secs", p.compile_timeout_secs, 1),
            ("plugins.calls_per_tenant", p.calls_per_tenant as u64, 1),
            ("plugins.calls_at_once", p.calls_at_once as u64, 1),
            ("exports.workers", self.exports.workers as u64, 1),
            ("batches.max_load_score", u64::from(b.max_load_score), 1),
            ("batches.workers", b.workers as u64, 1),
            ("batches.max_operations", b.max_operations as u64, 1),
            (
                "batches.operation_timeout_secs",
                b.operation_timeout_secs,
                1,
            ),
            ("batches.timeout_secs", b.timeout_secs, 1),
            ("webhooks.max_attempts", u64::from(w.max_attempts), 1),
            ("webhooks.concurrency", w.concurrency as u64, 1),
            ("webhooks.per_tenant", w.per_tenant as u64, 1),
            ("webhooks.dns_timeout_ms", w.dns_timeout_ms, 1),
            (
                "mail.per_tenant_per_hour",
                u64::from(self.mail.per_tenant_per_hour),
                1,
            ),
            ("http.write_timeout_secs", h.write_timeout_secs, 1),
            ("http.streams_per_tenant", h.streams_per_tenant as u64, 1),
            ("http.streams_at_once", h.streams_at_once as u64, 1),
            (
                "http.long_polls_per_tenant",
                h.long_polls_per_tenant as u64,
                1,
            ),
        ];
        let mut found: Vec<Invalid> = at_least
            .into_iter()
            .filter(|(_, value, least)| value < least)
            .map(|(key, _, least)| invalid(key, format!("must be at least {least}")))
            .collect();
        found.extend(self.check_addresses());
        found.extend(self.check_plugins());
        found.extend(self.check_secrets());
        found
    }

    fn check_addresses(&self) -> Vec<Invalid> {
        let mut found = Vec::new();
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            found.push(invalid("public_url", "must be an http:// or https:// URL"));
        }
        if let Some(url) = &self.database.url
            && let Err(e) = bulkhost_postgres::Options::check_url(url)
        {
            found.push(invalid("database.url", e.to_string()));
        }
        if let Some(relay) = &self.mail.relay
            && !(relay.starts_with("smtp://") || relay.starts_with("smtps://"))
        {
            found.push(invalid("mail.relay", "must be an smtp:// or smtps:// URL"));
        }
        if let Err(e) = self.mail.from.parse::<lettre::message::Mailbox>() {
            found.push(invalid("mail.from", format!("is not a mail address: {e}")));
        }
        found
    }

    fn check_plugins(&self) -> Vec<Invalid> {
        let mut found = Vec::new();
        for (name, grant) in &self.plugins.grants {
            if let Err(e) = bulkhost_runtime::PluginName::parse(name) {
                found.push(invalid(format!("plugins.grants.{name}"), e.to_string()));
            }
            if let Some(dir) = grant.read_dirs.iter().find(|d| !d.is_dir()) {
                found.push(invalid(
                    format!("plugins.grants.{name}.read_dirs"),
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        found
    }

    fn check_secrets(&self) -> Vec<Invalid> {
        let mut found = Vec::new();
        if let Some(secret) = &self.webhooks.secret
            && let Err(e) = crate::webhooks::Signer::from_secret(secret)
        {
            found.push(invalid("webhooks.secret", e.to_string()));
        }
        let hex_digest = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if self.admin.token_sha256.iter().any(|h| !hex_digest(h)) {
            found.push(invalid(
                "admin.token_sha256",
                "each must be a SHA-256 in hex (64 digits), as `bulkhost admin-token` prints",
            ));
        }
        found
    }
}
