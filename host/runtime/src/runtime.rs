//! The engine, the linker and the loaded plugins.
//!
//! One [`Runtime`] per process: a wasmtime engine with epoch interruption (a ticker thread
//! advances the epoch every [`TICK`]) whose invocations run as async calls, so one blocked in
//! a WASI call (a sleep, a poll) ends at its deadline like one spinning in wasm; one linker per
//! plugin world holding WASI and exactly the `bulkhost:plugin` imports that world grants; and
//! an on-disk compilation cache keyed by content, so a restart does not recompile. Compilations
//! take turns ([`Compilation`]): a flood of uploads cannot take every core or unbounded memory,
//! and one that cannot finish in time is refused. Loading tells the kinds apart by what the
//! component exports and links it against its world's imports only, so a data set plugin that
//! imports `writes` is refused at load.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use crate::bindings::{endpoint, generator};
use crate::error::{LoadError, RunError};
use crate::grants::Grants;
use crate::host::{Imports, Invocation, linker};
use crate::limits::{Compilation, Limits};
use crate::outcome::{Outcome, Outcomes};
use crate::plugin::{Kind, Plugin};

/// The export a data set plugin provides.
const GENERATOR: &str = "bulkhost:plugin/generator@0.1.0";
/// The export a batch endpoint plugin provides.
const ENDPOINT: &str = "bulkhost:plugin/endpoint@0.1.0";

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

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    /// WASI, `documents`, `sink` and `log`: the `dataset-generator` world.
    generator_linker: Linker<Invocation>,
    /// WASI, `documents`, `writes` and `log`: the `batch-endpoint` world.
    endpoint_linker: Linker<Invocation>,
    pub(crate) limits: Limits,
    compilation: Compilation,
    turns: Arc<Turns>,
    /// The invocations that may run at once: one per slot of the instance pool.
    pub(crate) slots: Arc<Turns>,
    /// How every invocation of every plugin ended.
    pub(crate) outcomes: Outcomes,
    _ticker: Ticker,
}

/// A counting semaphore: the compilations that may run at once (a compile thread holds its
/// turn until it ends, even when nobody waits for its result any more), or the invocations.
#[derive(Debug)]
pub(crate) struct Turns {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One turn, given back when dropped.
pub(crate) struct Turn(Arc<Turns>);

impl Turns {
    /// Waits for a turn until `until`.
    pub(crate) fn take(self: &Arc<Self>, until: Instant) -> Option<Turn> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            let left = until.checked_duration_since(Instant::now())?;
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        Some(Turn(self.clone()))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
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
            .field("compilation", &self.shared.compilation)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// An engine with the given limits; compiled components are cached in `cache_dir`.
    pub fn new(
        limits: Limits,
        compilation: Compilation,
        cache_dir: Option<&Path>,
    ) -> Result<Self, RunError> {
        let host = |e: wasmtime::Error| RunError::Host(format!("{e:#}"));
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(limits.pool()));
        if let Some(dir) = cache_dir {
            // wasmtime's cache takes absolute directories only.
            let dir = std::path::absolute(dir).map_err(|e| RunError::Host(e.to_string()))?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(wasmtime::Cache::new(cache).map_err(host)?));
        }
        let engine = Engine::new(&config).map_err(host)?;
        let generator_linker = linker(&engine, Imports::Generator).map_err(host)?;
        let endpoint_linker = linker(&engine, Imports::Endpoint).map_err(host)?;
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
                generator_linker,
                endpoint_linker,
                limits,
                compilation,
                turns: Arc::new(Turns {
                    free: Mutex::new(compilation.concurrency.max(1)),
                    freed: Condvar::new(),
                }),
                slots: Arc::new(Turns {
                    free: Mutex::new(limits.invocations.max(1)),
                    freed: Condvar::new(),
                }),
                outcomes: Outcomes::default(),
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

    /// Invocations of every plugin since the runtime started, by how they ended.
    pub fn invocations(&self) -> [(Outcome, u64); Outcome::ALL.len()] {
        self.shared.outcomes.counts()
    }

    /// How many components may compile at once.
    pub fn compile_concurrency(&self) -> usize {
        self.shared.compilation.concurrency.max(1)
    }

    /// Compiles (or fetches from the cache) a component, checks it against the contract of
    /// the world it exports and asks it what it provides; its invocations get `grants`.
    pub fn load(&self, name: &str, wasm: &[u8], grants: Grants) -> Result<Plugin, LoadError> {
        let component = self.compile(wasm)?;
        let contract = |e: wasmtime::Error| LoadError::Contract(format!("{e:#}"));
        let exports = |export: &str| component.get_export_index(None, export).is_some();
        let kind = match (exports(GENERATOR), exports(ENDPOINT)) {
            (true, false) => {
                let pre = self
                    .shared
                    .generator_linker
                    .instantiate_pre(&component)
                    .map_err(contract)?;
                let indices = generator::GuestIndices::new(&pre).map_err(contract)?;
                Kind::Generator { pre, indices }
            }
            (false, true) => {
                let pre = self
                    .shared
                    .endpoint_linker
                    .instantiate_pre(&component)
                    .map_err(contract)?;
                let indices = endpoint::GuestIndices::new(&pre).map_err(contract)?;
                Kind::Endpoint { pre, indices }
            }
            (true, true) => {
                return Err(LoadError::Contract(format!(
                    "a component exports either `{GENERATOR}` or `{ENDPOINT}`, not both"
                )));
            }
            (false, false) => {
                let found: Vec<String> = component
                    .component_type()
                    .exports(&self.shared.engine)
                    .map(|(name, _)| format!("`{name}`"))
                    .collect();
                return Err(LoadError::Contract(format!(
                    "the component exports neither `{GENERATOR}` (world dataset-generator) nor \
                     `{ENDPOINT}` (world batch-endpoint), but {}",
                    if found.is_empty() {
                        "nothing".to_string()
                    } else {
                        found.join(", ")
                    }
                )));
            }
        };
        Plugin::describe_new(
            name.into(),
            content_hash(wasm),
            kind,
            Arc::new(grants),
            self.shared.clone(),
        )
    }
}

impl Runtime {
    /// The names a component imports and exports, as it declares them: what `bulkhost plugin
    /// check` shows beside a contract mismatch, so its author sees what the host was offered.
    pub fn interfaces(&self, wasm: &[u8]) -> Result<Interfaces, LoadError> {
        let ty = self.compile(wasm)?.component_type();
        let engine = &self.shared.engine;
        Ok(Interfaces {
            imports: ty
                .imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        })
    }
}

/// What a component imports and exports, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    /// Its imports (`bulkhost:plugin/documents@0.1.0`, `wasi:io/streams@0.2.0`, ...).
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
}

impl Runtime {
    /// Compiles `wasm` in a thread of its own once a turn is free, waiting for both at most
    /// the compilation timeout. A compilation that outlives the wait keeps its turn until it
    /// ends, so abandoned work still counts against the concurrency.
    fn compile(&self, wasm: &[u8]) -> Result<Component, LoadError> {
        let timeout = self.shared.compilation.timeout;
        let until = Instant::now() + timeout;
        let turn = self
            .shared
            .turns
            .take(until)
            .ok_or(LoadError::CompileTimeout(timeout))?;
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let (engine, bytes) = (self.shared.engine.clone(), wasm.to_vec());
        std::thread::Builder::new()
            .name("bulkhost-compile".into())
            .spawn(move || {
                let _turn = turn;
                let _abandoned = done.send(Component::new(&engine, &bytes));
            })
            .map_err(|e| LoadError::Invalid(format!("no thread to compile in: {e}")))?;
        let left = until.saturating_duration_since(Instant::now());
        match result.recv_timeout(left) {
            Ok(compiled) => compiled.map_err(|e| {
                LoadError::Invalid(
                    format!("{e:#}")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(LoadError::CompileTimeout(timeout))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(LoadError::Invalid(
                "the compiler stopped without an answer".into(),
            )),
        }
    }
}

/// The SHA-256 of a component's bytes, hex: its identity in the registry and in job records.
pub fn content_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}
