//! How plugin invocations ended, counted per outcome for the operator's metrics: a plugin that
//! keeps trapping, running out of time or of memory shows there before a tenant complains.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::RunError;

/// How one invocation (describe, validate, a generation, an endpoint call) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered.
    Ok,
    /// The plugin reported a failure, or refused a generation's parameters (a `validate`
    /// that lists refusals answered, and counts as `Ok`).
    Failed,
    /// The plugin trapped.
    Trap,
    /// It ran past its deadline.
    Deadline,
    /// It tried to take more memory than an invocation may.
    Memory,
    /// It emitted more than its output cap.
    Output,
    /// It created more instances, memories or tables than an invocation may.
    Resources,
    /// The host could not run it, or asked it for what it does not provide.
    Host,
}

impl Outcome {
    /// Every outcome, in the order metrics list them.
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Failed,
        Outcome::Trap,
        Outcome::Deadline,
        Outcome::Memory,
        Outcome::Output,
        Outcome::Resources,
        Outcome::Host,
    ];

    /// The outcome's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Trap => "trap",
            Outcome::Deadline => "deadline",
            Outcome::Memory => "memory",
            Outcome::Output => "output",
            Outcome::Resources => "resources",
            Outcome::Host => "host",
        }
    }

    /// The outcome of an invocation that answered `result`.
    pub(crate) fn of<R>(result: &Result<R, RunError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(RunError::Failed(_) | RunError::InvalidParams(_)) => Outcome::Failed,
            Err(RunError::Trap(_)) => Outcome::Trap,
            Err(RunError::Timeout(_)) => Outcome::Deadline,
            Err(RunError::Memory(_)) => Outcome::Memory,
            Err(RunError::Output(_)) => Outcome::Output,
            Err(RunError::Resources { .. }) => Outcome::Resources,
            Err(RunError::Host(_)) => Outcome::Host,
        }
    }
}

/// Invocations by outcome since the runtime started.
#[derive(Debug, Default)]
pub(crate) struct Outcomes([AtomicU64; Outcome::ALL.len()]);

impl Outcomes {
    /// Counts one invocation.
    pub(crate) fn record(&self, outcome: Outcome) {
        self.0[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Each outcome with its count.
    pub(crate) fn counts(&self) -> [(Outcome, u64); Outcome::ALL.len()] {
        Outcome::ALL.map(|outcome| (outcome, self.0[outcome as usize].load(Ordering::Relaxed)))
    }
}
