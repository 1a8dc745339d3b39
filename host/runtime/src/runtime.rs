//! The engine, the linker and the loaded plugins.
//!
//! One [`Runtime`] per process: a wasmtime engine with epoch interruption (a ticker thread
//! advances the epoch every [`TICK`]), a linker holding WASI and the `bulkhost:plugin` imports,
//! and an on-disk compilation cache keyed by content, so a restart does not recompile. A
//! [`Plugin`] is a compiled component with its `InstancePre`; every invocation instantiates it
//! afresh in its own store with its own limits, so one invocation's failure touches nothing
//! else.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bulkhost_core::Snapshot;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use crate::bindings::types::{DatasetInfo, Param, ParamError};
use crate::bindings::{DatasetGenerator, DatasetGeneratorPre, generator};
use crate::error::{LoadError, RunError};
use crate::grants::Grants;
use crate::host::{Invocation, RecordSink};
use crate::limits::Limits;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(10);

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    engine: Engine,
    linker: Linker<Invocation>,
    limits: Limits,
    _ticker: Ticker,
}

/// The plugin host. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// An engine with the given limits; compiled components are cached in `cache_dir`.
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> Result<Self, RunError> {
        let host = |e: wasmtime::Error| RunError::Host(format!("{e:#}"));
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        if let Some(dir) = cache_dir {
            // wasmtime's cache takes absolute directories only.
            let dir = std::path::absolute(dir).map_err(|e| RunError::Host(e.to_string()))?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(wasmtime::Cache::new(cache).map_err(host)?));
        }
        let engine = Engine::new(&config).map_err(host)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(host)?;
        DatasetGenerator::add_to_linker::<Invocation, HasSelf<Invocation>>(&mut linker, |s| s)
            .map_err(host)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bulkhost-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RunError::Host(e.to_string()))?
        };
        Ok(Runtime {
            shared: Arc::new(Shared {
                engine,
                linker,
                limits,
                _ticker: Ticker {
                    stop,
                    thread: Some(thread),
                },
            }),
        })
    }

    /// The limits every invocation runs under.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Compiles (or fetches from the cache) a component, checks it against the contract and
    /// asks it which data sets it provides; its invocations get `grants`.
    pub fn load(&self, name: &str, wasm: &[u8], grants: Grants) -> Result<Plugin, LoadError> {
        let component = Component::new(&self.shared.engine, wasm).map_err(|e| {
            LoadError::Invalid(
                format!("{e:#}")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;
        let pre = self
            .shared
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        let pre =
            DatasetGeneratorPre::new(pre).map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        let mut plugin = Plugin {
            name: name.into(),
            hash: content_hash(wasm),
            pre,
            datasets: Vec::new(),
            grants: Arc::new(grants),
            shared: self.shared.clone(),
        };
        let datasets = plugin
            .call(None, None, |instance, store| instance.call_describe(store))
            .map_err(LoadError::Describe)?;
        let mut names = std::collections::HashSet::new();
        if let Some(twice) = datasets.iter().find(|d| !names.insert(d.name.clone())) {
            return Err(LoadError::Duplicate(twice.name.clone()));
        }
        plugin.datasets = datasets;
        Ok(plugin)
    }
}

/// The SHA-256 of a component's bytes, hex: its identity in the registry and in job records.
pub fn content_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// What a generation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    /// Records accepted by the sink.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A loaded component. Cheap to clone; jobs keep the clone they started with, so replacing a
/// plugin never disturbs a running generation.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    hash: String,
    pre: DatasetGeneratorPre<Invocation>,
    datasets: Vec<DatasetInfo>,
    grants: Arc<Grants>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn params(given: &[(String, String)]) -> Vec<Param> {
    given
        .iter()
        .map(|(name, value)| Param {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

impl Plugin {
    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of its bytes, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The data sets it provides.
    pub fn datasets(&self) -> &[DatasetInfo] {
        &self.datasets
    }

    /// Instantiates the component afresh and asks which data sets it provides: the fixed cost
    /// every invocation pays before its real work.
    pub fn describe(&self) -> Result<Vec<DatasetInfo>, RunError> {
        self.call(None, None, |instance, store| instance.call_describe(store))
    }

    /// Asks the plugin whether it accepts these parameters; an empty list accepts them.
    pub fn validate(
        &self,
        dataset: &str,
        given: &[(String, String)],
    ) -> Result<Vec<ParamError>, RunError> {
        let params = params(given);
        self.call(None, None, |instance, store| {
            instance.call_validate(store, dataset, &params)
        })
    }

    /// Runs a generation: the plugin reads the tenant's documents from `snapshot` and its
    /// records go to `sink`, under the runtime's limits.
    pub fn generate(
        &self,
        snapshot: Snapshot,
        sink: Box<dyn RecordSink>,
        dataset: &str,
        given: &[(String, String)],
    ) -> Result<Generated, RunError> {
        let params = params(given);
        let mut generated = Generated {
            records: 0,
            bytes: 0,
        };
        let outcome = self.call(Some(snapshot), Some(sink), |instance, store| {
            let result = instance.call_generate(&mut *store, dataset, &params);
            let data = store.data();
            generated = Generated {
                records: data.emitted_records,
                bytes: data.emitted_bytes,
            };
            result
        })?;
        match outcome {
            Ok(()) => Ok(generated),
            Err(generator::GenerateError::InvalidParams(errors)) => Err(RunError::InvalidParams(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.name, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            Err(generator::GenerateError::Failed(message)) => Err(RunError::Failed(message)),
        }
    }

    /// Instantiates the component in a fresh store with the runtime's limits, calls `f` on its
    /// `generator` export, and turns a trap into the limit or failure that caused it.
    fn call<R>(
        &self,
        snapshot: Option<Snapshot>,
        sink: Option<Box<dyn RecordSink>>,
        f: impl FnOnce(&generator::Guest, &mut Store<Invocation>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        let limits = self.shared.limits;
        let invocation = Invocation::new(self.name.clone(), &self.grants, limits, snapshot, sink)
            .map_err(RunError::Host)?;
        let mut store = Store::new(&self.shared.engine, invocation);
        store.limiter(|s| &mut s.limiter);
        let ticks = limits.deadline.as_millis() / TICK.as_millis() + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| f(instance.bulkhost_plugin_generator(), &mut store));
        let data = store.data();
        let failure = match result {
            Ok(out) if data.sink_failure.is_none() && !data.output_exceeded => return Ok(out),
            Ok(_) => None,
            Err(e) => Some(e),
        };
        Err(if data.limiter.exceeded {
            RunError::Memory(limits.memory_bytes)
        } else if data.output_exceeded {
            RunError::Output(limits.output_bytes)
        } else if let Some(crate::host::SinkError::Storage(why)) = &data.sink_failure {
            RunError::Host(why.clone())
        } else if data.sink_failure.is_some() {
            RunError::Failed("cancelled".into())
        } else {
            match failure {
                Some(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                    RunError::Timeout(limits.deadline)
                }
                Some(e) => {
                    let stderr = data.stderr_tail();
                    RunError::Trap(if stderr.is_empty() {
                        e.root_cause().to_string()
                    } else {
                        format!("{}; it wrote: {stderr}", e.root_cause())
                    })
                }
                None => RunError::Failed("the plugin stopped".into()),
            }
        })
    }
}
