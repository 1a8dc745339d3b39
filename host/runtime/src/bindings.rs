//! The one place the WIT contract in `wit/` becomes Rust: the `host` world, the union of
//! every plugin world, so each interface is bound once whichever kind of plugin uses it.

wasmtime::component::bindgen!({
    world: "host",
    path: "../../wit",
    imports: {
        // A plugin that keeps emitting after the host refused its output is trapped.
        "bulkhost:plugin/sink.emit": trappable,
    },
    // Exports are called with `call_async`, so an invocation blocked in an (async) WASI call
    // can be cut off at its deadline.
    exports: { default: async },
});

pub use bulkhost::plugin::{documents, log, sink, types, writes};
pub use exports::bulkhost::plugin::{endpoint, generator};
