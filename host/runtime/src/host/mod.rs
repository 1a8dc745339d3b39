//! The host side of the WIT imports, for one invocation. Each interface has its module with a
//! context (what it reaches), a view (the context borrowed from the store's data, which the
//! generated bindings call) and an `add_to_linker`; [`Invocation`], the store's data, composes
//! them with a WASI context that grants nothing but what the operator granted.

pub mod documents;
pub mod log;
pub mod sink;
pub mod writes;

use std::sync::Arc;

use bulkhost_core::Snapshot;
use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use self::documents::DocumentsCtx;
use self::log::LogCtx;
use self::sink::{RecordSink, SinkCtx};
use self::writes::{DocumentWriter, WritesCtx};
use crate::grants::Grants;
use crate::limits::{Limits, StoreLimiter};

/// Bytes of the guest's stderr kept per invocation, to explain a crash (a Rust guest prints
/// its panic message there). Writing more traps the guest.
const STDERR_BYTES: usize = 256 * 1024;
/// Characters of stderr quoted in a crash message.
const STDERR_QUOTED: usize = 600;

/// What one invocation may reach besides its own memory; everything absent is refused.
#[derive(Default)]
pub(crate) struct Access {
    /// The tenant's documents, for reads.
    pub(crate) documents: Option<Snapshot>,
    /// Where generated records go.
    pub(crate) sink: Option<Box<dyn RecordSink>>,
    /// Where writes go.
    pub(crate) writer: Option<Box<dyn DocumentWriter>>,
}

/// The plugin worlds' imports beyond WASI, by which the linkers differ.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Imports {
    /// A data set generator's: it emits records into the sink.
    Generator,
    /// A batch endpoint's: it writes documents.
    Endpoint,
}

/// A linker of WASI and the host interfaces a plugin of `imports` may call: documents and the
/// log for every plugin, then the sink or writes.
pub(crate) fn linker(engine: &Engine, imports: Imports) -> wasmtime::Result<Linker<Invocation>> {
    let mut linker = Linker::<Invocation>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    documents::add_to_linker(&mut linker, |i| i.documents.view())?;
    log::add_to_linker(&mut linker, |i| i.log.view())?;
    match imports {
        Imports::Generator => sink::add_to_linker(&mut linker, |i| i.sink.view())?,
        Imports::Endpoint => writes::add_to_linker(&mut linker, |i| i.writes.view())?,
    }
    Ok(linker)
}

/// The store data of one invocation.
pub(crate) struct Invocation {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: StoreLimiter,
    documents: DocumentsCtx,
    writes: WritesCtx,
    pub(crate) sink: SinkCtx,
    log: LogCtx,
    stderr: MemoryOutputPipe,
}

impl Invocation {
    /// The store data of one invocation; fails when a granted resource cannot be opened.
    pub(crate) fn new(
        plugin: Arc<str>,
        grants: &Grants,
        limits: &Limits,
        access: Access,
    ) -> Result<Self, String> {
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        grants.apply(&mut wasi)?;
        Ok(Invocation {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: StoreLimiter::new(limits),
            documents: DocumentsCtx::new(access.documents),
            writes: WritesCtx::new(access.writer),
            sink: SinkCtx::new(access.sink, limits.output_bytes),
            log: LogCtx::new(plugin),
            stderr,
        })
    }

    /// The end of what the guest wrote to stderr, for crash messages.
    pub(crate) fn stderr_tail(&self) -> String {
        let contents = self.stderr.contents();
        let text = String::from_utf8_lossy(&contents);
        let text = text.trim();
        let mut start = text.len().saturating_sub(STDERR_QUOTED);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].replace('\n', " | ")
    }
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
