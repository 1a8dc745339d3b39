//! Which plugins provide which data sets, kept in step with a plugins directory.
//!
//! The directory is the source of truth: `*.wasm` files at its top level serve every tenant,
//! files under `tenants/{tenant}/` serve that tenant only (a tenant's own data set of the same
//! name shadows the operator's for that tenant). [`Registry::sync`] compares the directory
//! with what is loaded — by size and modification time first, by content hash before
//! compiling — and loads, replaces or drops plugins accordingly; the server calls it at start
//! and every few seconds, so a dropped-in component is offered without a restart. New and
//! changed files load side by side, as many at once as components may compile, and each load
//! is bounded (compilation and `describe` have deadlines), so no component can hold the others
//! up for long. Callers get [`Plugin`] clones: a generation keeps running on the version it
//! started with, whatever happens to the file meanwhile.
//!
//! A name becomes a path in one place, [`PluginName`]: whatever a caller sends, in whatever
//! encoding, nothing outside the caller's own plugins can be named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
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

/// How much a tenant's own plugins may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginQuota {
    /// Plugins at most.
    pub count: u64,
    /// Their bytes together at most.
    pub bytes: u64,
}

/// Why an upload was not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The name is not usable as a file name.
    #[error("plugin names use 1 to 64 letters, digits, `-` and `_`, not `{0}`")]
    Name(String),
    /// Installing it would pass the tenant's quota of plugins.
    #[error(
        "the tenant's plugins may number {} and take {} MiB together; this one does not fit",
        .0.count,
        .0.bytes >> 20
    )]
    Quota(PluginQuota),
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

/// What loading one file came to: the plugin, nothing when its content is unchanged, or why
/// it was refused.
type Loading = Result<Option<Plugin>, LoadError>;

/// Which plugins a sync looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    All,
    Operator,
}

/// Writes `bytes` as `path` through a fresh temporary file beside it: written, synced, renamed
/// into place, and the directory synced, so the file is either the old one or all of the new.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut staging = tempfile::Builder::new()
        .prefix(".upload-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut staging, bytes)?;
    staging.as_file().sync_all()?;
    staging.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
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
    fn path_of(&self, scope: &Scope, name: &PluginName) -> PathBuf {
        self.scope_dir(scope)
            .join(format!("{}.wasm", name.as_str()))
    }

    /// The directory of a scope's plugins.
    fn scope_dir(&self, scope: &Scope) -> PathBuf {
        match scope {
            Scope::Global => self.dir.clone(),
            Scope::Tenant(tenant) => self.dir.join(TENANTS_DIR).join(tenant),
        }
    }

    fn files(&self, which: Which) -> Vec<(Scope, PathBuf)> {
        let mut files: Vec<(Scope, PathBuf)> = wasm_files(&self.dir)
            .into_iter()
            .map(|p| (Scope::Global, p))
            .collect();
        if which == Which::Operator {
            return files;
        }
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
        self.sync_files(Which::All)
    }

    /// Brings the operator's plugins in line with the directory, leaving tenants' alone: what
    /// a start waits for, while tenants' plugins load in the background.
    pub fn sync_operator(&self) -> SyncReport {
        self.sync_files(Which::Operator)
    }

    fn sync_files(&self, which: Which) -> SyncReport {
        let mut report = SyncReport::default();
        let present = self.files(which);
        let in_view = |scope: &Scope| which == Which::All || *scope == Scope::Global;
        self.failed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| !in_view(&key.0) || present.contains(key));
        {
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            let stale: Vec<(Scope, PathBuf)> = loaded
                .keys()
                .filter(|k| in_view(&k.0) && !present.contains(k))
                .cloned()
                .collect();
            for key in stale {
                loaded.remove(&key);
                report.removed.push(key.1);
            }
        }
        let mut pending = Vec::new();
        for (scope, path) in present {
            let Some(stamp) = stamp(&path) else { continue };
            let key = (scope, path);
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
            pending.push((key, stamp, previous.map(|(_, hash)| hash)));
        }
        let outcomes = self.load_all(&pending);
        for ((key, stamp, previous), outcome) in pending.into_iter().zip(outcomes) {
            let outcome = outcome.and_then(|plugin| match plugin {
                Some(plugin) => self.admit(&key, stamp.clone(), plugin).map(Some),
                None => Ok(None),
            });
            match outcome {
                Ok(Some(())) if previous.is_some() => report.replaced.push(key.1),
                Ok(Some(())) => report.loaded.push(key.1),
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
                        .insert(key.clone(), stamp);
                    report.failed.push((key.1, e.to_string()));
                }
            }
        }
        report
    }

    /// Loads each pending file (unless its content is unchanged), as many at once as
    /// components may compile; answers in the same order.
    fn load_all(&self, pending: &[((Scope, PathBuf), Stamp, Option<String>)]) -> Vec<Loading> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let outcomes: Vec<Mutex<Option<Loading>>> =
            pending.iter().map(|_| Mutex::new(None)).collect();
        let workers = self.runtime.compile_concurrency().min(pending.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(((scope, path), _, unchanged)) = pending.get(i) else {
                            break;
                        };
                        let outcome = self.load_file(scope, path, unchanged.as_deref());
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

    /// Loads `path` unless its content hash is `unchanged`.
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
        self.compile(scope, path, &bytes).map(Some)
    }

    /// Compiles `bytes` as the plugin at `path`, with the operator's grants when it is one of
    /// the operator's own.
    fn compile(&self, scope: &Scope, path: &Path, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let grants = match scope {
            Scope::Global => self.grants.get(&name).cloned().unwrap_or_default(),
            Scope::Tenant(_) => Grants::default(),
        };
        self.runtime.load(&name, bytes, grants)
    }

    /// Offers `plugin` as the file `key` unless another plugin of its scope already provides
    /// one of its data sets or endpoints; the check and the insertion hold one lock, so two
    /// plugins loaded side by side cannot both claim a name.
    fn admit(&self, key: &(Scope, PathBuf), stamp: Stamp, plugin: Plugin) -> Result<(), LoadError> {
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        for ((other_scope, other_path), other) in loaded.iter() {
            if *other_scope != key.0 || *other_path == key.1 {
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
        loaded.insert(key.clone(), Loaded { stamp, plugin });
        Ok(())
    }

    /// Installs an uploaded component as `name` in `scope`: it is checked completely (name,
    /// quota, contract, `describe`, data set names) before anything is written, then written
    /// to a fresh temporary file, synced, renamed into place and the directory synced, so a
    /// crash leaves the old plugin or the new one, never a torn file; it is offered at once.
    pub fn install(
        &self,
        scope: Scope,
        name: &str,
        bytes: &[u8],
        quota: Option<PluginQuota>,
    ) -> Result<Plugin, InstallError> {
        let name = PluginName::parse(name)?;
        let path = self.path_of(&scope, &name);
        if let Some(quota) = quota {
            let others: Vec<u64> = wasm_files(&self.scope_dir(&scope))
                .iter()
                .filter(|p| **p != path)
                .filter_map(|p| stamp(p).map(|s| s.len))
                .collect();
            let total = others.iter().sum::<u64>() + bytes.len() as u64;
            if others.len() as u64 >= quota.count || total > quota.bytes {
                return Err(InstallError::Quota(quota));
            }
        }
        let plugin = self.compile(&scope, &path, bytes)?;
        let key = (scope, path);
        write_durably(&key.1, bytes).map_err(|e| InstallError::Io(e.to_string()))?;
        let stamp = stamp(&key.1).ok_or_else(|| InstallError::Io("the file vanished".into()))?;
        if let Err(e) = self.admit(&key, stamp, plugin.clone()) {
            let _ = std::fs::remove_file(&key.1);
            return Err(e.into());
        }
        Ok(plugin)
    }

    /// Removes the plugin `name` of `scope`; answers whether there was one.
    pub fn uninstall(&self, scope: Scope, name: &str) -> Result<bool, InstallError> {
        let name = PluginName::parse(name)?;
        let path = self.path_of(&scope, &name);
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
