//! The one place the WIT contract in `wit/` becomes Rust.

wasmtime::component::bindgen!({
    world: "dataset-generator",
    path: "../../wit",
    imports: {
        // A plugin that keeps emitting after the host refused its output is trapped.
        "bulkhost:plugin/sink.emit": trappable,
    },
});

pub use bulkhost::plugin::{documents, log, sink, types};
pub use exports::bulkhost::plugin::generator;
