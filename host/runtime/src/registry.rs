//! Which plugins provide which data sets, kept in step with the plugins directory and the
//! components uploaded through the API.
//!
//! Plugins come from two sources. The operator deploys files: `*.wasm` at the top of the
//! plugins directory serve every tenant, files under `tenants/{tenant}/` serve that tenant
//! only. Uploads, the operator's and the tenants', are kept in the store
//! ([`bulkhost_core::Components`]), which every host of a deployment shares, so a plugin
//! uploaded through one host is served by all of them. A tenant's own data set of the same
//! name as the operator's shadows it for that tenant; a stored component hides a file of its
//! scope and name.
//!
//! [`Registry::sync`] compares both sources with what is loaded — files by size and
//! modification time, then by content hash before compiling; stored components by content
//! hash — and loads, replaces or drops plugins accordingly; the server calls it at start and
//! every few seconds, so a dropped-in or uploaded component is offered without a restart. New
//! and changed plugins load side by side, as many at once as components may compile, and each
//! load is bounded (compilation and `describe` have deadlines), so no component can hold the
//! others up for long. Callers get [`Plugin`] clones: a generation keeps running on the version
//! it started with, whatever happens to its source meanwhile.
//!
//! A name becomes a path in one place, [`PluginName`]: whatever a caller sends, in whatever
//! encoding, nothing outside the caller's own plugins can be named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

pub use bulkhost_core::Scope;
use bulkhost_core::{Store, StoredComponent};

use crate::bindings::endpoint::EndpointInfo;
use crate::bindings::types::DatasetInfo;
use crate::error::LoadError;
use crate::grants::Grants;
use crate::plugin::Plugin;
use crate::runtime::Runtime;

/// The subdirectory of per-tenant plugins.
pub const TENANTS_DIR: &str = "tenants";

/// Where a plugin comes from, and what tells that it is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A file of the plugins directory, by its size and modification time.
    File {
        path: PathBuf,
        len: u64,
        modified: Option<SystemTime>,
    },
    /// A component kept in the store, by its content hash.
    Stored { sha256: String },
}

impl Origin {
    fn of_file(path: PathBuf) -> Option<Origin> {
        let meta = std::fs::metadata(&path).ok()?;
        Some(Origin::File {
            len: meta.len(),
            modified: meta.modified().ok(),
            path,
        })
    }

    /// How reports name the plugin.
    fn label(&self, (scope, name): &Key) -> String {
        match self {
            Origin::File { path, .. } => path.display().to_string(),
            Origin::Stored { .. } => match scope {
                Scope::Global => format!("uploaded {name}"),
                Scope::Tenant(tenant) => format!("uploaded {tenant}/{name}"),
            },
        }
    }
}

/// A plugin by its scope and name.
type Key = (Scope, String);

struct Loaded {
    origin: Origin,
    plugin: Plugin,
}

/// A plugin's name as it may become a file name: 1 to 64 ASCII letters, digits, `-` and `_`.
/// Nothing else (no `.`, `/`, `\`, `%`, NUL or control character) passes, so a name can only
/// ever name a file directly inside its scope's directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginName(String);

impl PluginName {
    /// Checks a name as a caller gave it (already percent-decoded).
    pub fn parse(name: &str) -> Result<Self, InstallError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(PluginName(name.to_string()))
        } else {
            Err(InstallError::Name(name.escape_default().to_string()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an upload was not installed or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The name is not usable as a file name.
    #[error("plugin names use 1 to 64 letters, digits, `-` and `_`, not `{0}`")]
    Name(String),
    /// Installing it would pass the tenant's quota of plugins; the message names the quota.
    #[error("{0}")]
    Quota(String),
    /// The component was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Storing or removing it failed.
    #[error("storing the plugin failed: {0}")]
    Storage(#[source] bulkhost_core::Error),
}

impl From<bulkhost_core::Error> for InstallError {
    fn from(e: bulkhost_core::Error) -> Self {
        match e {
            bulkhost_core::Error::QuotaExceeded(why) => InstallError::Quota(why),
            other => InstallError::Storage(other),
        }
    }
}

/// What one [`Registry::sync`] changed, each plugin named by its file or as uploaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Plugins loaded for the first time.
    pub loaded: Vec<String>,
    /// Plugins whose content changed and was reloaded.
    pub replaced: Vec<String>,
    /// Plugins that disappeared.
    pub removed: Vec<String>,
    /// Plugins that could not be loaded, with the reason; a previous version stays offered.
    pub failed: Vec<(String, String)>,
}

/// The loaded plugins, by scope and name.
pub struct Registry {
    runtime: Runtime,
    dir: PathBuf,
    store: Store,
    loaded: RwLock<BTreeMap<Key, Loaded>>,
    /// Plugins that failed to load, by the origin they had, so they are retried only once
    /// they change.
    failed: RwLock<BTreeMap<Key, Origin>>,
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

/// What loading one plugin came to: the plugin, nothing when its content is unchanged, or why
/// it was refused.
type Loading = Result<Option<Plugin>, LoadError>;

/// A plugin to load: its key, its origin, and the hash of the version loaded now, if any.
type Pending = (Key, Origin, Option<String>);

/// Which plugins a sync looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    All,
    Operator,
}

impl Which {
    fn covers(self, scope: &Scope) -> bool {
        self == Which::All || *scope == Scope::Global
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

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

impl Registry {
    /// A registry over the files of `dir` and the components of `store`, whose operator
    /// plugins get `grants` by name; nothing is loaded until the first [`Registry::sync`].
    pub fn new(
        runtime: Runtime,
        dir: impl Into<PathBuf>,
        grants: BTreeMap<String, Grants>,
        store: Store,
    ) -> Self {
        Registry {
            runtime,
            dir: dir.into(),
            store,
            loaded: RwLock::default(),
            failed: RwLock::default(),
            grants,
        }
    }

    /// The runtime the plugins run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a file of `scope` named `name` lives.
    fn path_of(&self, scope: &Scope, name: &PluginName) -> PathBuf {
        let dir = match scope {
            Scope::Global => self.dir.clone(),
            Scope::Tenant(tenant) => self.dir.join(TENANTS_DIR).join(tenant),
        };
        dir.join(format!("{}.wasm", name.as_str()))
    }

    /// The deployed files `which` covers, by key.
    fn files(&self, which: Which) -> BTreeMap<Key, Origin> {
        let mut files: Vec<(Scope, PathBuf)> = wasm_files(&self.dir)
            .into_iter()
            .map(|p| (Scope::Global, p))
            .collect();
        if which == Which::All {
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
        }
        files
            .into_iter()
            .filter_map(|(scope, path)| Some(((scope, stem(&path)), Origin::of_file(path)?)))
            .collect()
    }

    /// Everything `which` covers, by key: the files, and over them the stored components.
    /// When the store cannot be read, the stored plugins loaded now stay as they are.
    fn present(&self, which: Which, report: &mut SyncReport) -> BTreeMap<Key, Origin> {
        let mut present = self.files(which);
        match self.store.components().list() {
            Ok(stored) => present.extend(
                stored
                    .into_iter()
                    .filter(|c| which.covers(&c.scope))
                    .map(|c| ((c.scope, c.name), Origin::Stored { sha256: c.sha256 })),
            ),
            Err(e) => {
                report
                    .failed
                    .push(("uploaded plugins".into(), e.to_string()));
                let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
                present.extend(
                    loaded
                        .iter()
                        .filter(|(k, l)| {
                            which.covers(&k.0) && matches!(l.origin, Origin::Stored { .. })
                        })
                        .map(|(k, l)| (k.clone(), l.origin.clone())),
                );
            }
        }
        present
    }

    /// Brings the loaded plugins in line with the directory and the store.
    pub fn sync(&self) -> SyncReport {
        self.sync_plugins(Which::All)
    }

    /// Brings the operator's plugins in line with the directory and the store, leaving
    /// tenants' alone: what a start waits for, while tenants' plugins load in the background.
    pub fn sync_operator(&self) -> SyncReport {
        self.sync_plugins(Which::Operator)
    }

    fn sync_plugins(&self, which: Which) -> SyncReport {
        let mut report = SyncReport::default();
        let present = self.present(which, &mut report);
        self.failed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| !which.covers(&key.0) || present.contains_key(key));
        {
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            let stale: Vec<Key> = loaded
                .keys()
                .filter(|k| which.covers(&k.0) && !present.contains_key(*k))
                .cloned()
                .collect();
            for key in stale {
                if let Some(gone) = loaded.remove(&key) {
                    report.removed.push(gone.origin.label(&key));
                }
            }
        }
        let mut pending: Vec<Pending> = Vec::new();
        for (key, origin) in present {
            let previous = {
                let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
                loaded
                    .get(&key)
                    .map(|l| (l.origin.clone(), l.plugin.hash().to_string()))
            };
            let known_bad = self
                .failed
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                == Some(&origin);
            if known_bad || previous.as_ref().is_some_and(|(o, _)| *o == origin) {
                continue;
            }
            pending.push((key, origin, previous.map(|(_, hash)| hash)));
        }
        let outcomes = self.load_all(&pending);
        for ((key, origin, previous), outcome) in pending.into_iter().zip(outcomes) {
            let label = origin.label(&key);
            let outcome = outcome.and_then(|plugin| match plugin {
                Some(plugin) => self.admit(&key, origin.clone(), plugin).map(Some),
                None => Ok(None),
            });
            match outcome {
                Ok(Some(())) if previous.is_some() => report.replaced.push(label),
                Ok(Some(())) => report.loaded.push(label),
                Ok(None) => {
                    if let Some(l) = self
                        .loaded
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&key)
                    {
                        l.origin = origin;
                    }
                }
                Err(e) => {
                    self.failed
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, origin);
                    report.failed.push((label, e.to_string()));
                }
            }
        }
        report
    }

    /// Loads each pending plugin (unless its content is unchanged), as many at once as
    /// components may compile; answers in the same order.
    fn load_all(&self, pending: &[Pending]) -> Vec<Loading> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let outcomes: Vec<Mutex<Option<Loading>>> =
            pending.iter().map(|_| Mutex::new(None)).collect();
        let workers = self.runtime.compile_concurrency().min(pending.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((key, origin, unchanged)) = pending.get(i) else {
                            break;
                        };
                        let outcome = self.load(key, origin, unchanged.as_deref());
                        *outcomes[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                    }
                });
            }
        });
        outcomes
            .into_iter()
            .map(|o| {
                o.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err(LoadError::Invalid("the load did not run".into())))
            })
            .collect()
    }

    /// Loads the plugin `key` from `origin` unless its content hash is `unchanged`.
    fn load(&self, key: &Key, origin: &Origin, unchanged: Option<&str>) -> Loading {
        let bytes = match origin {
            Origin::File { path, .. } => {
                std::fs::read(path).map_err(|e| LoadError::Invalid(e.to_string()))?
            }
            Origin::Stored { .. } => self
                .store
                .components()
                .bytes(&key.0, &key.1)
                .map_err(|e| LoadError::Invalid(e.to_string()))?
                .ok_or_else(|| LoadError::Invalid("the upload was removed meanwhile".into()))?,
        };
        if unchanged.is_some_and(|hash| hash == crate::runtime::content_hash(&bytes)) {
            return Ok(None);
        }
        self.compile(key, &bytes).map(Some)
    }

    /// Compiles `bytes` as the plugin `key`, with the operator's grants when it is one of the
    /// operator's own.
    fn compile(&self, (scope, name): &Key, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let grants = match scope {
            Scope::Global => self.grants.get(name).cloned().unwrap_or_default(),
            Scope::Tenant(_) => Grants::default(),
        };
        self.runtime.load(name, bytes, grants)
    }

    /// Fails when another plugin of `key`'s scope already provides one of `plugin`'s data
    /// sets or endpoints.
    fn check_names(
        loaded: &BTreeMap<Key, Loaded>,
        key: &Key,
        plugin: &Plugin,
    ) -> Result<(), LoadError> {
        for ((other_scope, other_name), other) in loaded.iter() {
            if *other_scope != key.0 || *other_name == key.1 {
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
        Ok(())
    }

    /// Offers `plugin` as `key` unless another plugin of its scope already provides one of its
    /// data sets or endpoints; the check and the insertion hold one lock, so two plugins loaded
    /// side by side cannot both claim a name.
    fn admit(&self, key: &Key, origin: Origin, plugin: Plugin) -> Result<(), LoadError> {
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        Self::check_names(&loaded, key, &plugin)?;
        loaded.insert(key.clone(), Loaded { origin, plugin });
        Ok(())
    }

    /// Installs an uploaded component as `name` in `scope`: it is checked completely (name,
    /// contract, `describe`, data set and endpoint names) before it is stored, and the store
    /// checks a tenant's plugin quotas in the same transaction that stores it. It replaces a
    /// deployed file of its scope and name, and is offered at once here and by every other
    /// host at its next sync.
    pub fn install(&self, scope: Scope, name: &str, bytes: &[u8]) -> Result<Plugin, InstallError> {
        let name = PluginName::parse(name)?;
        let key = (scope, name.as_str().to_string());
        let plugin = self.compile(&key, bytes)?;
        Self::check_names(
            &self.loaded.read().unwrap_or_else(|e| e.into_inner()),
            &key,
            &plugin,
        )?;
        let component = StoredComponent {
            scope: key.0.clone(),
            name: key.1.clone(),
            sha256: plugin.hash().to_string(),
            len: bytes.len() as u64,
        };
        self.store.components().put(&component, bytes)?;
        self.remove_file(&key.0, &name)?;
        let origin = Origin::Stored {
            sha256: component.sha256,
        };
        if let Err(e) = self.admit(&key, origin, plugin.clone()) {
            self.store.components().remove(&key.0, &key.1)?;
            return Err(e.into());
        }
        Ok(plugin)
    }

    /// Removes the deployed file of `scope` named `name`; answers whether there was one.
    fn remove_file(&self, scope: &Scope, name: &PluginName) -> Result<bool, InstallError> {
        let path = self.path_of(scope, name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(InstallError::Storage(bulkhost_core::Error::Io {
                path: path.display().to_string(),
                source,
            })),
        }
    }

    /// Removes the plugin `name` of `scope`, uploaded or deployed as a file; answers whether
    /// there was one.
    pub fn uninstall(&self, scope: Scope, name: &str) -> Result<bool, InstallError> {
        let name = PluginName::parse(name)?;
        let stored = self.store.components().remove(&scope, name.as_str())?;
        let file = self.remove_file(&scope, &name)?;
        let loaded = self
            .loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(scope, name.as_str().to_string()))
            .is_some();
        Ok(stored || file || loaded)
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
