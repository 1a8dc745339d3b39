//! The plugin host of bulkhost: WebAssembly components built against the contract in `wit/`,
//! run by wasmtime, each invocation sandboxed (no files, no network, WASI's clock only, unless
//! the operator grants directories or addresses to one of its plugins), limited (wall time,
//! memory, output) and scoped to one tenant's documents.

#![deny(missing_docs)]

mod bindings;
mod error;
mod grants;
mod host;
mod limits;
mod outcome;
mod plugin;
mod registry;
mod runtime;

pub use bindings::documents::Document as WitDocument;
pub use bindings::endpoint::{
    EndpointInfo, Request as EndpointRequest, Response as EndpointResponse,
};
pub use bindings::types::{DatasetInfo, FieldKind, FieldSpec, ParamError, ParamKind, ParamSpec};
pub use error::{LoadError, RunError};
pub use grants::Grants;
pub use host::sink::{RecordSink, SinkError, is_json_object};
pub use host::writes::{DocumentWriter, TenantWriter};
pub use limits::{Compilation, Limits};
pub use outcome::Outcome;
pub use plugin::{Generated, Plugin};
pub use registry::{InstallError, PluginName, Registry, Scope, SyncReport, TENANTS_DIR};
pub use runtime::{Interfaces, Runtime, TICK, content_hash};
