//! What one plugin invocation may use before the host stops it.

use std::time::Duration;

/// Per-invocation limits, configurable by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time an invocation may run (describe, validate or a whole generation).
    pub deadline: Duration,
    /// Linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Bytes of records one generation may emit.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(600),
            memory_bytes: 256 << 20,
            output_bytes: 4 << 30,
        }
    }
}

/// Table elements an instance may grow its tables to.
const TABLE_ELEMENTS: usize = 100_000;

/// Enforces [`Limits::memory_bytes`] and remembers whether it had to, so a resulting trap can
/// be reported as the memory limit rather than as the guest's abort.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) cap: usize,
    pub(crate) exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS)
    }
}
