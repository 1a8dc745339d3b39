//! A loaded component and its invocations: each one instantiates the component afresh in its
//! own store under the runtime's limits, so one invocation's failure touches nothing else.

use std::sync::Arc;
use std::time::Duration;

use bulkhost_core::Snapshot;
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, Trap};

use crate::bindings::endpoint::{self, EndpointInfo, Request, Response};
use crate::bindings::generator;
use crate::bindings::types::{DatasetInfo, Param, ParamError};
use crate::error::{LoadError, RunError};
use crate::grants::Grants;
use crate::host::sink::{RecordSink, SinkError};
use crate::host::writes::DocumentWriter;
use crate::host::{Access, Invocation};
use crate::limits::Limits;
use crate::outcome::Outcome;
use crate::runtime::{Shared, TICK};

/// What a generation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    /// Records accepted by the sink.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The methods an endpoint may declare.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// What a component is, by the world it was built against.
#[derive(Clone)]
pub(crate) enum Kind {
    /// `dataset-generator`: bulk export data sets.
    Generator {
        pre: InstancePre<Invocation>,
        indices: generator::GuestIndices,
    },
    /// `batch-endpoint`: endpoints for batches.
    Endpoint {
        pre: InstancePre<Invocation>,
        indices: endpoint::GuestIndices,
    },
}

/// A loaded component. Cheap to clone; jobs keep the clone they started with, so replacing a
/// plugin never disturbs a running invocation. An invocation blocks the thread that makes it
/// until it ends: make it on a thread of its own or the blocking pool, never in an async task.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    hash: String,
    kind: Kind,
    datasets: Vec<DatasetInfo>,
    endpoints: Vec<EndpointInfo>,
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

/// Refuses endpoint declarations the batch surface could not route.
fn check_endpoints(endpoints: &[EndpointInfo]) -> Result<(), LoadError> {
    let mut seen = std::collections::HashSet::new();
    for e in endpoints {
        let problem = if !METHODS.contains(&e.method.as_str()) {
            format!("the method is not one of {}", METHODS.join(", "))
        } else if !e.path.starts_with("/v1/")
            || e.path.starts_with("/v1/batch")
            || e.path.contains('?')
        {
            "a path starts with `/v1/`, is not under `/v1/batch` and has no query string"
                .to_string()
        } else if !seen.insert((e.method.as_str(), e.path.as_str())) {
            "it is declared twice".to_string()
        } else {
            continue;
        };
        return Err(LoadError::Endpoint(format!(
            "{} {}: {problem}",
            e.method, e.path
        )));
    }
    Ok(())
}

impl Plugin {
    /// Asks a freshly compiled component what it provides and keeps the answer.
    pub(crate) fn describe_new(
        name: Arc<str>,
        hash: String,
        kind: Kind,
        grants: Arc<Grants>,
        shared: Arc<Shared>,
    ) -> Result<Plugin, LoadError> {
        let mut plugin = Plugin {
            name,
            hash,
            kind,
            datasets: Vec::new(),
            endpoints: Vec::new(),
            grants,
            shared,
        };
        match plugin.kind {
            Kind::Generator { .. } => {
                plugin.datasets = plugin.describe().map_err(LoadError::Describe)?;
                let mut names = std::collections::HashSet::new();
                if let Some(twice) = plugin.datasets.iter().find(|d| !names.insert(&d.name)) {
                    return Err(LoadError::Duplicate(twice.name.clone()));
                }
            }
            Kind::Endpoint { .. } => {
                let deadline = plugin.shared.limits.call_deadline;
                let described =
                    plugin.call_endpoint(Access::default(), deadline, async |guest, store| {
                        guest.call_describe(store).await
                    });
                let mut endpoints = plugin.counted(described).map_err(LoadError::Describe)?;
                check_endpoints(&endpoints)?;
                for e in &mut endpoints {
                    e.load_score = e.load_score.max(1);
                }
                plugin.endpoints = endpoints;
            }
        }
        Ok(plugin)
    }

    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of its bytes, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The data sets it provides; none for an endpoint plugin.
    pub fn datasets(&self) -> &[DatasetInfo] {
        &self.datasets
    }

    /// The batch endpoints it serves, each weighing at least 1; none for a data set plugin.
    pub fn endpoints(&self) -> &[EndpointInfo] {
        &self.endpoints
    }

    /// Instantiates the component afresh and asks which data sets it provides: the fixed cost
    /// every invocation pays before its real work.
    pub fn describe(&self) -> Result<Vec<DatasetInfo>, RunError> {
        let deadline = self.shared.limits.call_deadline;
        self.counted(
            self.call_generator(Access::default(), deadline, async |guest, store| {
                guest.call_describe(store).await
            }),
        )
    }

    /// Asks the plugin whether it accepts these parameters; an empty list accepts them.
    pub fn validate(
        &self,
        dataset: &str,
        given: &[(String, String)],
    ) -> Result<Vec<ParamError>, RunError> {
        let params = params(given);
        let deadline = self.shared.limits.call_deadline;
        self.counted(
            self.call_generator(Access::default(), deadline, async |guest, store| {
                guest.call_validate(store, dataset, &params).await
            }),
        )
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
        let access = Access {
            documents: Some(snapshot),
            sink: Some(sink),
            writer: None,
        };
        let deadline = self.shared.limits.deadline;
        let outcome = self.call_generator(access, deadline, async |guest, store| {
            let result = guest.call_generate(&mut *store, dataset, &params).await;
            let sink = &store.data().sink;
            generated = Generated {
                records: sink.records,
                bytes: sink.bytes,
            };
            result
        });
        self.counted(outcome.and_then(|answered| {
            match answered {
                Ok(()) => Ok(generated),
                Err(generator::GenerateError::InvalidParams(errors)) => {
                    Err(RunError::InvalidParams(
                        errors
                            .iter()
                            .map(|e| format!("{}: {}", e.name, e.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ))
                }
                Err(generator::GenerateError::Failed(message)) => Err(RunError::Failed(message)),
            }
        }))
    }

    /// Serves one call of a batch endpoint: the plugin reads the tenant's documents from
    /// `snapshot` and writes through `writer`, for at most `budget` and never longer than the
    /// runtime's call deadline.
    pub fn handle(
        &self,
        snapshot: Snapshot,
        writer: Box<dyn DocumentWriter>,
        request: &Request,
        budget: Duration,
    ) -> Result<Response, RunError> {
        let access = Access {
            documents: Some(snapshot),
            sink: None,
            writer: Some(writer),
        };
        let deadline = budget.min(self.shared.limits.call_deadline);
        self.counted(self.call_endpoint(access, deadline, async |guest, store| {
            guest.call_handle(store, request).await
        }))
    }

    /// Counts how an invocation ended, for the operator's metrics.
    fn counted<R>(&self, result: Result<R, RunError>) -> Result<R, RunError> {
        self.shared.outcomes.record(Outcome::of(&result));
        result
    }

    fn call_generator<R>(
        &self,
        access: Access,
        deadline: Duration,
        f: impl AsyncFnOnce(&generator::Guest, &mut Store<Invocation>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        let Kind::Generator { pre, indices } = &self.kind else {
            return Err(RunError::Host(format!(
                "{} provides no data sets",
                self.name
            )));
        };
        self.call(pre, access, deadline, async |instance, store| {
            f(&indices.load(&mut *store, &instance)?, store).await
        })
    }

    fn call_endpoint<R>(
        &self,
        access: Access,
        deadline: Duration,
        f: impl AsyncFnOnce(&endpoint::Guest, &mut Store<Invocation>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        let Kind::Endpoint { pre, indices } = &self.kind else {
            return Err(RunError::Host(format!("{} serves no endpoints", self.name)));
        };
        self.call(pre, access, deadline, async |instance, store| {
            f(&indices.load(&mut *store, &instance)?, store).await
        })
    }

    /// Instantiates the component in a fresh store with the runtime's limits, calls `f` on the
    /// instance for at most `deadline`, and turns a trap into the limit or failure that caused
    /// it.
    ///
    /// Two clocks cut an invocation off: the epoch deadline traps wasm that keeps running, and
    /// a timer drops the call (and with it any WASI wait it is blocked in, a sleep or a poll)
    /// once `deadline` has passed, so a plugin frees its worker on time whatever it does.
    fn call<R>(
        &self,
        pre: &InstancePre<Invocation>,
        access: Access,
        deadline: Duration,
        f: impl AsyncFnOnce(Instance, &mut Store<Invocation>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        let limits = self.shared.limits;
        // Held until the store is gone, so its instance's slot of the pool is free again.
        let _slot = self
            .shared
            .slots
            .take(std::time::Instant::now() + deadline)
            .ok_or_else(|| {
                RunError::Host(format!(
                    "all {} plugin slots stayed taken for {deadline:?}",
                    limits.invocations
                ))
            })?;
        let invocation = Invocation::new(self.name.clone(), &self.grants, &limits, access)
            .map_err(RunError::Host)?;
        let mut store = Store::new(&self.shared.engine, invocation);
        store.limiter(|s| &mut s.limiter);
        let ticks = deadline.as_millis() / TICK.as_millis() + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let invoke = async {
            let instance = pre.instantiate_async(&mut store).await?;
            f(instance, &mut store).await
        };
        // The timer is made inside the runtime that drives it.
        let ran = wasmtime_wasi::runtime::in_tokio(async {
            tokio::time::timeout(deadline, invoke).await
        });
        let data = store.data();
        let failure = match ran {
            Ok(Ok(out)) if !data.sink.refused() => return Ok(out),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_elapsed) => return Err(RunError::Timeout(deadline)),
        };
        Err(if data.limiter.exceeded {
            RunError::Memory(limits.memory_bytes)
        } else if data.sink.output_exceeded {
            RunError::Output(limits.output_bytes)
        } else if let Some(SinkError::Storage(why)) = &data.sink.failure {
            RunError::Host(why.clone())
        } else if let Some(SinkError::Refused(why)) = &data.sink.failure {
            RunError::Failed(why.clone())
        } else if data.sink.failure.is_some() {
            RunError::Failed("cancelled".into())
        } else {
            match failure {
                Some(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                    RunError::Timeout(deadline)
                }
                Some(e) => resource_limit(&e, &limits).unwrap_or_else(|| {
                    let stderr = data.stderr_tail();
                    RunError::Trap(if stderr.is_empty() {
                        e.root_cause().to_string()
                    } else {
                        format!("{}; it wrote: {stderr}", e.root_cause())
                    })
                }),
                None => RunError::Failed("the plugin stopped".into()),
            }
        })
    }
}

/// The count limit an instantiation failed on, if that is why it failed: wasmtime refuses the
/// instance, memory or table past a store's limit with a message naming which.
fn resource_limit(e: &wasmtime::Error, limits: &Limits) -> Option<RunError> {
    let message = format!("{e:#}");
    let (what, limit) = [
        ("instance count", "instances", limits.instances),
        ("memory count", "memories", limits.memories),
        ("table count", "tables", limits.tables),
    ]
    .into_iter()
    .find(|(needle, ..)| message.contains(&format!("resource limit exceeded: {needle}")))
    .map(|(_, what, limit)| (what, limit))?;
    Some(RunError::Resources { what, limit })
}
