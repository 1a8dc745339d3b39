//! Tenants and their users, as the operator declares them in the configuration.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::quota::{QuotaOverrides, Quotas};
use crate::{Error, Result};

/// One tenant (a company, ABRA Flexi's `firma`; Winfra XXL's `domain`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name, used in `/c/{firma}/...` paths and as the token flow's `domain`.
    pub name: String,
    /// Whether the change feed records changes until someone disables it.
    #[serde(default = "enabled")]
    pub changes_enabled: bool,
    /// Who may sign in for this tenant.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// This tenant's own quotas, replacing the deployment's where given.
    #[serde(default)]
    pub quotas: QuotaOverrides,
}

fn enabled() -> bool {
    true
}

/// A user of a tenant, for HTTP Basic authentication and the token flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The login name; unique across all tenants, so it names exactly one tenant.
    pub name: String,
    /// An Argon2 PHC string (`bulkhost hash-password` prints one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A plain-text password, accepted only in development mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A user's credential as the host keeps it.
#[derive(Debug, Clone)]
pub(crate) enum Secret {
    Hash(String),
    Plain(String),
}

/// The declared tenants and a user index over them.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    tenants: Vec<TenantConfig>,
    users: HashMap<String, (usize, Secret)>,
    quotas: Quotas,
}

/// Why a tenant name is refused, if it is: a name becomes part of URLs (`/c/{firma}/`) and of
/// the path of the tenant's plugins directory, so it may hold no path separator, no control
/// character and no `?` or `#`, and may not be `.` or `..`.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("names a directory")
    } else if name.contains(['/', '\\', '?', '#']) {
        Some("holds `/`, `\\`, `?` or `#`")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    }
}

impl Tenants {
    /// Checks the declarations: unique tenant and user names, one credential per user, and
    /// plain-text passwords only when `allow_plain` (the development mode) is on.
    pub fn new(tenants: Vec<TenantConfig>, allow_plain: bool) -> Result<Self> {
        let bad = |reason: String| Error::Schema {
            name: "configuration".into(),
            reason,
        };
        let mut users = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, t) in tenants.iter().enumerate() {
            if let Some(problem) = name_problem(&t.name) {
                return Err(bad(format!(
                    "tenant name `{}` {problem}",
                    t.name.escape_default()
                )));
            }
            if !names.insert(&t.name) {
                return Err(bad(format!("tenant `{}` is declared twice", t.name)));
            }
            for u in &t.users {
                let secret = match (&u.password_hash, &u.password) {
                    (Some(h), None) => {
                        argon2::PasswordHash::new(h).map_err(|e| {
                            bad(format!(
                                "user `{}`: password_hash is not a PHC string: {e}",
                                u.name
                            ))
                        })?;
                        Secret::Hash(h.clone())
                    }
                    (None, Some(p)) if allow_plain => Secret::Plain(p.clone()),
                    (None, Some(_)) => {
                        return Err(bad(format!(
                            "user `{}`: plain-text passwords need development mode (--dev); use password_hash",
                            u.name
                        )));
                    }
                    _ => {
                        return Err(bad(format!(
                            "user `{}` needs exactly one of password_hash or password",
                            u.name
                        )));
                    }
                };
                if users.insert(u.name.clone(), (i, secret)).is_some() {
                    return Err(bad(format!("user `{}` is declared twice", u.name)));
                }
            }
        }
        Ok(Tenants {
            tenants,
            users,
            quotas: Quotas::default(),
        })
    }

    /// The same tenants with `defaults` as the quotas of every tenant that does not name its
    /// own.
    pub fn with_quotas(mut self, defaults: Quotas) -> Self {
        self.quotas = defaults;
        self
    }

    /// The quotas of the tenant `name`: its own overrides over the deployment's.
    pub fn quotas(&self, name: &str) -> Quotas {
        self.get(name)
            .map_or(self.quotas, |t| t.quotas.over(self.quotas))
    }

    /// The tenant of that name.
    pub fn get(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// All tenants.
    pub fn iter(&self) -> impl Iterator<Item = &TenantConfig> {
        self.tenants.iter()
    }

    /// The tenant a user belongs to, with the user's credential.
    pub(crate) fn user(&self, name: &str) -> Option<(&TenantConfig, &Secret)> {
        self.users
            .get(name)
            .map(|(i, secret)| (&self.tenants[*i], secret))
    }
}
