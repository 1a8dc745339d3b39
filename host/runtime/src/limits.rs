//! What one plugin invocation may use before the host stops it, and what compiling a component
//! may cost.

use std::time::Duration;

/// Per-invocation limits, configurable by the operator. Each holds whatever the guest does, in
/// wasm or blocked in a WASI call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time of a whole generation.
    pub deadline: Duration,
    /// Wall time of every shorter call: `describe` (at load), `validate` and one endpoint call.
    pub call_deadline: Duration,
    /// Bytes that all linear memories and tables of an invocation may take together.
    pub memory_bytes: usize,
    /// Bytes of records one generation may emit.
    pub output_bytes: u64,
    /// Core instances an invocation may create.
    pub instances: usize,
    /// Linear memories an invocation may create.
    pub memories: usize,
    /// Tables an invocation may create.
    pub tables: usize,
    /// Invocations that may run at once. Each takes a slot of the pooling instance allocator,
    /// whose memories, tables and stacks are reserved when the runtime starts; an invocation
    /// beyond them waits for one to free.
    pub invocations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(600),
            call_deadline: Duration::from_secs(30),
            memory_bytes: 256 << 20,
            output_bytes: 4 << 30,
            instances: 100,
            memories: 8,
            tables: 16,
            invocations: 128,
        }
    }
}

impl Limits {
    /// The pooling instance allocator's slots for these limits: every invocation instantiates
    /// its component afresh, so taking its instances, memories, tables and stack from slots
    /// reserved once (address space only, until used) saves the system calls of creating them
    /// each time. The pool holds [`Limits::invocations`] invocations that each create all
    /// they may. It caps nothing per component or memory size itself: the store limiter
    /// refuses what passes these limits, with the same errors as without a pool.
    pub(crate) fn pool(&self) -> wasmtime::PoolingAllocationConfig {
        let count = |n: usize| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        let invocations = count(self.invocations);
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(invocations)
            .total_stacks(invocations)
            .total_core_instances(invocations.saturating_mul(count(self.instances)))
            .total_memories(invocations.saturating_mul(count(self.memories)))
            .max_memories_per_module(count(self.memories))
            .total_tables(invocations.saturating_mul(count(self.tables)))
            .max_tables_per_module(count(self.tables))
            .table_elements(self.memory_bytes / TABLE_ELEMENT_BYTES);
        pool
    }
}

/// What compiling components may cost the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compilation {
    /// Components compiled at once; more wait for their turn.
    pub concurrency: usize,
    /// How long loading one component may wait for its turn and compile, together.
    pub timeout: Duration,
}

impl Default for Compilation {
    fn default() -> Self {
        Compilation {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Bytes wasmtime spends per table element (a pointer).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Enforces [`Limits`] on one store: the sum of its memories and tables, and how many
/// instances, memories and tables it may create. It remembers whether it had to refuse memory,
/// so a resulting trap is reported as the memory limit rather than as the guest's abort.
#[derive(Debug)]
pub(crate) struct StoreLimiter {
    cap: usize,
    used: usize,
    /// The growth last allowed, taken back if wasmtime then fails to grow.
    pending: usize,
    instances: usize,
    memories: usize,
    tables: usize,
    pub(crate) exceeded: bool,
}

impl StoreLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        StoreLimiter {
            cap: limits.memory_bytes,
            used: 0,
            pending: 0,
            instances: limits.instances,
            memories: limits.memories,
            tables: limits.tables,
            exceeded: false,
        }
    }

    /// Accounts for `grow` more bytes, or refuses them when they would pass the cap.
    fn grow(&mut self, grow: usize) -> bool {
        if self.used.saturating_add(grow) > self.cap {
            self.exceeded = true;
            return false;
        }
        self.used += grow;
        self.pending = grow;
        true
    }

    fn undo(&mut self) {
        self.used -= std::mem::take(&mut self.pending);
    }
}

impl wasmtime::ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo();
        Ok(())
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.memories
    }

    fn tables(&self) -> usize {
        self.tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memories_and_tables_share_one_cap() {
        let mut limiter = StoreLimiter::new(&Limits {
            memory_bytes: 1 << 20,
            ..Limits::default()
        });
        assert!(limiter.memory_growing(0, 512 << 10, None).unwrap());
        assert!(limiter.memory_growing(0, 256 << 10, None).unwrap());
        assert!(!limiter.table_growing(0, 64 << 10, None).unwrap());
        assert!(limiter.exceeded);
        assert!(limiter.table_growing(0, 1024, None).unwrap());
        limiter
            .table_grow_failed(wasmtime::Error::msg("no"))
            .unwrap();
        assert!(limiter.memory_growing(256 << 10, 512 << 10, None).unwrap());
    }
}
