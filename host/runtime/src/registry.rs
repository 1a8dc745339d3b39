//! Which plugins provide which data sets, kept in step with a plugins directory.
//!
//! The directory is the source of truth: `*.wasm` files at its top level serve every tenant,
//! files under `tenants/{tenant}/` serve that tenant only (a tenant's own data set of the same
//! name shadows the operator's for that tenant). [`Registry::sync`] compares the directory
//! with what is loaded — by size and modification time first, by content hash before
//! compiling — and loads, replaces or drops plugins accordingly; the server calls it at start
//! and every few seconds, so a dropped-in component is offered without a restart. Callers get
//! [`Plugin`] clones: a generation keeps running on the version it started with, whatever
//! happens to the file meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use crate::bindings::endpoint::EndpointInfo;
use crate::bindings::types::DatasetInfo;
use crate::error::LoadError;
use crate::grants::Grants;
use crate::plugin::Plugin;
use crate::runtime::Runtime;

/// The subdirectory of per-tenant plugins.
pub const TENANTS_DIR: &str = "tenants";

/// Who a plugin serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every tenant (the operator's plugins).
    Global,
    /// One tenant's own extensions.
    Tenant(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

struct Loaded {
    stamp: Stamp,
    plugin: Plugin,
}

/// Why an upload was not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The name is not usable as a file name.
    #[error("plugin names use 1 to 64 letters, digits, `-` and `_`, not `{0}`")]
    Name(String),
    /// The component was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Writing it failed.
    #[error("storing the plugin failed: {0}")]
    Io(String),
}

/// What one [`Registry::sync`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Files loaded for the first time.
    pub loaded: Vec<PathBuf>,
    /// Files whose content changed and was reloaded.
    pub replaced: Vec<PathBuf>,
    /// Files that disappeared.
    pub removed: Vec<PathBuf>,
    /// Files that could not be loaded, with the reason; a previous version stays offered.
    pub failed: Vec<(PathBuf, String)>,
}

/// The loaded plugins, by file.
pub struct Registry {
    runtime: Runtime,
    dir: PathBuf,
    loaded: RwLock<BTreeMap<(Scope, PathBuf), Loaded>>,
    /// Files that failed to load, by the stamp they had, so they are retried only once
    /// they change.
    failed: RwLock<BTreeMap<(Scope, PathBuf), Stamp>>,
    /// The operator's grants, by the name of the operator's plugin they go to.
    grants: BTreeMap<String, Grants>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    files
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

impl Registry {
    /// A registry over `dir` whose operator plugins get `grants` by name; nothing is loaded
    /// until the first [`Registry::sync`].
    pub fn new(
        runtime: Runtime,
        dir: impl Into<PathBuf>,
        grants: BTreeMap<String, Grants>,
    ) -> Self {
        Registry {
            runtime,
            dir: dir.into(),
            loaded: RwLock::default(),
            failed: RwLock::default(),
            grants,
        }
    }

    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a plugin of `scope` named `name` lives.
    pub fn path_of(&self, scope: &Scope, name: &str) -> PathBuf {
        match scope {
            Scope::Global => self.dir.join(format!("{name}.wasm")),
            Scope::Tenant(tenant) => self
                .dir
                .join(TENANTS_DIR)
                .join(tenant)
                .join(format!("{name}.wasm")),
        }
    }

    fn files(&self) -> Vec<(Scope, PathBuf)> {
        let mut files: Vec<(Scope, PathBuf)> = wasm_files(&self.dir)
            .into_iter()
            .map(|p| (Scope::Global, p))
            .collect();
        let tenants = std::fs::read_dir(self.dir.join(TENANTS_DIR))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir());
        for tenant in tenants {
            let name = tenant.file_name().to_string_lossy().into_owned();
            files.extend(
                wasm_files(&tenant.path())
                    .into_iter()
                    .map(|p| (Scope::Tenant(name.clone()), p)),
            );
        }
        files
    }

    /// Brings the loaded plugins in line with the directory.
    pub fn sync(&self) -> SyncReport {
        let mut report = SyncReport::default();
        let present = self.files();
        self.failed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| present.contains(key));
        let stale: Vec<(Scope, PathBuf)> = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            loaded
                .keys()
                .filter(|k| !present.contains(k))
                .cloned()
                .collect()
        };
        if !stale.is_empty() {
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            for key in stale {
                loaded.remove(&key);
                report.removed.push(key.1);
            }
        }
        for (scope, path) in present {
            let Some(stamp) = stamp(&path) else { continue };
            let key = (scope.clone(), path.clone());
            let previous = {
                let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
                loaded
                    .get(&key)
                    .map(|l| (l.stamp.clone(), l.plugin.hash().to_string()))
            };
            let known_bad = self
                .failed
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                == Some(&stamp);
            if known_bad || previous.as_ref().is_some_and(|(s, _)| *s == stamp) {
                continue;
            }
            self.failed
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            match self.load_file(&scope, &path, previous.as_ref().map(|(_, h)| h.as_str())) {
                Ok(Some(plugin)) => {
                    self.loaded
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, Loaded { stamp, plugin });
                    if previous.is_some() {
                        report.replaced.push(path);
                    } else {
                        report.loaded.push(path);
                    }
                }
                Ok(None) => {
                    if let Some(l) = self
                        .loaded
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&key)
                    {
                        l.stamp = stamp;
                    }
                }
                Err(e) => {
                    self.failed
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, stamp);
                    report.failed.push((path, e.to_string()));
                }
            }
        }
        report
    }

    /// Loads `path` unless its content hash is `unchanged`; refuses data set names another
    /// plugin of the same scope already provides.
    fn load_file(
        &self,
        scope: &Scope,
        path: &Path,
        unchanged: Option<&str>,
    ) -> Result<Option<Plugin>, LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError::Invalid(e.to_string()))?;
        if unchanged.is_some_and(|hash| hash == crate::runtime::content_hash(&bytes)) {
            return Ok(None);
        }
        self.load_checked(scope, path, &bytes).map(Some)
    }

    /// Compiles `bytes` as the plugin at `path` and refuses data set names another plugin of
    /// the same scope already provides.
    fn load_checked(&self, scope: &Scope, path: &Path, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let grants = match scope {
            Scope::Global => self.grants.get(&name).cloned().unwrap_or_default(),
            Scope::Tenant(_) => Grants::default(),
        };
        let plugin = self.runtime.load(&name, bytes, grants)?;
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        for ((other_scope, other_path), other) in loaded.iter() {
            if other_scope != scope || other_path == path {
                continue;
            }
            if let Some(d) = plugin
                .datasets()
                .iter()
                .find(|d| other.plugin.datasets().iter().any(|o| o.name == d.name))
            {
                return Err(LoadError::Duplicate(d.name.clone()));
            }
            if let Some(e) = plugin.endpoints().iter().find(|e| {
                other
                    .plugin
                    .endpoints()
                    .iter()
                    .any(|o| o.method == e.method && o.path == e.path)
            }) {
                return Err(LoadError::Endpoint(format!(
                    "{} {} is already served by {}",
                    e.method,
                    e.path,
                    other.plugin.name()
                )));
            }
        }
        Ok(plugin)
    }

    /// Installs an uploaded component as `name` in `scope`: it is checked completely (contract,
    /// `describe`, data set names) before anything is written, then written atomically into
    /// the directory, where it survives restarts, and offered at once.
    pub fn install(&self, scope: Scope, name: &str, bytes: &[u8]) -> Result<Plugin, InstallError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InstallError::Name(name.to_string()));
        }
        let path = self.path_of(&scope, name);
        let plugin = self.load_checked(&scope, &path, bytes)?;
        let io = |e: std::io::Error| InstallError::Io(e.to_string());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let staging = path.with_extension("wasm.upload");
        std::fs::write(&staging, bytes).map_err(io)?;
        std::fs::rename(&staging, &path).map_err(io)?;
        let stamp = stamp(&path).ok_or_else(|| InstallError::Io("the file vanished".into()))?;
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (scope, path),
                Loaded {
                    stamp,
                    plugin: plugin.clone(),
                },
            );
        Ok(plugin)
    }

    /// Removes the plugin `name` of `scope`; answers whether there was one.
    pub fn uninstall(&self, scope: Scope, name: &str) -> Result<bool, InstallError> {
        let path = self.path_of(&scope, name);
        let existed = self
            .loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(scope, path.clone()))
            .is_some();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(existed),
            Err(e) => Err(InstallError::Io(e.to_string())),
        }
    }

    /// The plugins of `scope`: (name, content hash, data set names).
    pub fn plugins(&self, scope: &Scope) -> Vec<(String, String, Vec<String>)> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|(_, l)| {
                (
                    l.plugin.name().to_string(),
                    l.plugin.hash().to_string(),
                    l.plugin.datasets().iter().map(|d| d.name.clone()).collect(),
                )
            })
            .collect()
    }

    /// The plugin that provides `dataset` to `tenant`, and the data set's description.
    pub fn find(&self, tenant: &str, dataset: &str) -> Option<(Plugin, DatasetInfo)> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let own = Scope::Tenant(tenant.to_string());
        let lookup = |wanted: &Scope| {
            loaded
                .iter()
                .filter(|((scope, _), _)| scope == wanted)
                .find_map(|(_, l)| {
                    l.plugin
                        .datasets()
                        .iter()
                        .find(|d| d.name == dataset)
                        .map(|d| (l.plugin.clone(), d.clone()))
                })
        };
        lookup(&own).or_else(|| lookup(&Scope::Global))
    }

    /// Every batch endpoint `tenant` can call, with the plugin serving it: the operator's and
    /// the tenant's own, an own endpoint hiding the operator's with the same method and path.
    pub fn endpoints(&self, tenant: &str) -> Vec<(EndpointInfo, Plugin)> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let own = Scope::Tenant(tenant.to_string());
        let mut out: BTreeMap<(String, String), (EndpointInfo, Plugin)> = BTreeMap::new();
        for scope in [Scope::Global, own] {
            for ((s, _), l) in loaded.iter() {
                if *s == scope {
                    for e in l.plugin.endpoints() {
                        out.insert(
                            (e.path.clone(), e.method.clone()),
                            (e.clone(), l.plugin.clone()),
                        );
                    }
                }
            }
        }
        out.into_values().collect()
    }

    /// Every data set `tenant` can request, by name.
    pub fn datasets(&self, tenant: &str) -> BTreeMap<String, DatasetInfo> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let own = Scope::Tenant(tenant.to_string());
        let mut out = BTreeMap::new();
        for scope in [Scope::Global, own] {
            for ((s, _), l) in loaded.iter() {
                if *s == scope {
                    for d in l.plugin.datasets() {
                        out.insert(d.name.clone(), d.clone());
                    }
                }
            }
        }
        out
    }
}
