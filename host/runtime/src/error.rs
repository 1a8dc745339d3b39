//! Why loading or running a plugin failed, in words an operator or API user can act on.

use std::time::Duration;

/// A component could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// Compiling the component (with the wait for its turn) took longer than the operator
    /// allows.
    #[error(
        "the component could not be compiled within {0:?}; a smaller component, or a later try, may fit"
    )]
    CompileTimeout(Duration),
    /// The component does not fit the `bulkhost:plugin` contract; the message names what does
    /// not match.
    #[error("does not match the bulkhost:plugin@0.1.0 contract: {0}")]
    Contract(String),
    /// The component's `describe` failed.
    #[error("describe failed: {0}")]
    Describe(#[source] RunError),
    /// Two of the component's data sets, or a data set and another plugin's, share a name.
    #[error("data set `{0}` is provided twice")]
    Duplicate(String),
    /// An endpoint the component declares cannot be served; the message names it and why.
    #[error("endpoint {0}")]
    Endpoint(String),
}

/// An invocation failed. Each variant's message is what the API shows as `error_message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The invocation ran past its deadline.
    #[error("the plugin exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The instance tried to grow its memories and tables together past the cap.
    #[error("the plugin exceeded its memory limit of {} MiB", .0 >> 20)]
    Memory(usize),
    /// The component creates more instances, memories or tables than an invocation may.
    #[error("the plugin exceeded its limit of {limit} {what}")]
    Resources {
        /// `instances`, `memories` or `tables`.
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The plugin emitted more than its output cap.
    #[error("the plugin exceeded its output limit of {0} bytes")]
    Output(u64),
    /// The plugin trapped (a bug in the plugin).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The plugin refused the parameters.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The plugin reported a failure.
    #[error("{0}")]
    Failed(String),
    /// The host could not set the invocation up.
    #[error("the host could not run the plugin: {0}")]
    Host(String),
}
