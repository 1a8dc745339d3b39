//! The host side of the WIT imports, for one invocation: the tenant's documents, the record
//! sink, the log, and a WASI context that grants nothing but what the operator granted.

use std::sync::Arc;

use bulkhost_core::{DocRef, Snapshot};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{documents, log, sink, types, writes};
use crate::grants::Grants;
use crate::limits::{Limits, StoreLimiter};

/// Where a generation's records go; the export job store implements it.
pub trait RecordSink: Send {
    /// Stores a batch of records (JSON object texts) after those already stored. The batch
    /// is handed over, so a sink that keeps the records need not copy them.
    fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError>;
}

/// Where a batch endpoint plugin's writes go: the core's one write path, for the tenant whose
/// batch runs, so a plugin's write validates, upserts and enters the change feed exactly as a
/// client's `POST` does.
pub trait DocumentWriter: Send {
    /// Validates and upserts one document (a JSON object) or a list, atomically.
    fn upsert(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted>;
    /// Validates and inserts, refusing the whole write when a key is taken.
    fn create(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted>;
    /// Deletes the document whose key is `key`; answers the tenant's version after it.
    fn delete(&mut self, collection: &str, key: &str) -> bulkhost_core::Result<u64>;
}

/// The plain [`DocumentWriter`]: the tenant's documents in a [`bulkhost_core::Store`].
#[derive(Debug, Clone)]
pub struct TenantWriter {
    /// The store written to.
    pub store: bulkhost_core::Store,
    /// The tenant whose documents are written.
    pub tenant: String,
}

impl DocumentWriter for TenantWriter {
    fn upsert(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted> {
        self.store
            .documents()
            .upsert(&self.tenant, collection, documents)
    }

    fn create(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted> {
        self.store
            .documents()
            .create(&self.tenant, collection, documents)
    }

    fn delete(&mut self, collection: &str, key: &str) -> bulkhost_core::Result<u64> {
        self.store
            .documents()
            .delete(&self.tenant, collection, &DocRef::Code(key.to_string()))
    }
}

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

/// Why a sink stopped taking records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The request was cancelled or expired; the plugin is told to stop.
    #[error("cancelled")]
    Cancelled,
    /// Storing failed; the plugin is told to stop and the data set fails with this message.
    #[error("{0}")]
    Storage(String),
    /// The host will not store more (the tenant's storage quota is full, say); the plugin is
    /// told to stop and the data set fails with this message.
    #[error("{0}")]
    Refused(String),
}

/// Whether a record a plugin emitted is one JSON object: the check every record passes before
/// a sink sees it, so sinks store records without parsing them again.
pub fn is_json_object(record: &str) -> bool {
    record.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(record).is_ok()
}

/// Messages one invocation may log before the host drops the rest.
const LOG_MESSAGES: u32 = 1000;
/// Characters of one log message the host keeps.
const LOG_CHARS: usize = 4096;
/// Bytes of the guest's stderr kept per invocation, to explain a crash (a Rust guest prints
/// its panic message there). Writing more traps the guest.
const STDERR_BYTES: usize = 256 * 1024;
/// Characters of stderr quoted in a crash message.
const STDERR_QUOTED: usize = 600;

/// Documents one page of a scan answers at most...
const PAGE_LIMIT: u32 = 1000;
/// ...and the stored bytes past which it ends early (it always holds one document), so a
/// page of large documents stays a bounded allocation on the host.
const PAGE_BYTES: usize = 16 << 20;

/// The store data of one invocation.
pub(crate) struct Invocation {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: StoreLimiter,
    documents: Option<Snapshot>,
    sink: Option<Box<dyn RecordSink>>,
    writer: Option<Box<dyn DocumentWriter>>,
    pub(crate) emitted_records: u64,
    pub(crate) emitted_bytes: u64,
    output_cap: u64,
    pub(crate) output_exceeded: bool,
    pub(crate) sink_failure: Option<SinkError>,
    logged: u32,
    plugin: Arc<str>,
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
            documents: access.documents,
            sink: access.sink,
            writer: access.writer,
            emitted_records: 0,
            emitted_bytes: 0,
            output_cap: limits.output_bytes,
            output_exceeded: false,
            sink_failure: None,
            logged: 0,
            plugin,
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

    fn snapshot(&self) -> Result<&Snapshot, documents::Error> {
        self.documents.as_ref().ok_or_else(|| {
            documents::Error::Unavailable("documents are readable only while generating".into())
        })
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

impl types::Host for Invocation {}

fn read_error(e: bulkhost_core::Error) -> documents::Error {
    match e {
        bulkhost_core::Error::UnknownCollection(c) => documents::Error::UnknownCollection(c),
        bulkhost_core::Error::ChangesGone { .. } | bulkhost_core::Error::ChangesDisabled => {
            documents::Error::HistoryGone
        }
        other => documents::Error::Unavailable(other.to_string()),
    }
}

fn to_wit(doc: bulkhost_core::Document) -> documents::Document {
    documents::Document {
        id: doc.id,
        version: doc.version,
        body: serde_json::Value::Object(doc.body).to_string(),
    }
}

fn cursor(cursor: Option<String>) -> Result<u64, documents::Error> {
    cursor.map_or(Ok(0), |c| {
        c.parse().map_err(|_| documents::Error::InvalidCursor)
    })
}

impl documents::Host for Invocation {
    fn scan(
        &mut self,
        collection: String,
        from: Option<String>,
        limit: u32,
    ) -> Result<documents::Page, documents::Error> {
        let after = from
            .map(|c| hex::decode(c).map_err(|_| documents::Error::InvalidCursor))
            .transpose()?;
        let page = self
            .snapshot()?
            .scan_by_key(
                &collection,
                after.as_deref(),
                limit.clamp(1, PAGE_LIMIT) as usize,
                PAGE_BYTES,
            )
            .map_err(read_error)?;
        Ok(documents::Page {
            documents: page.documents.into_iter().map(to_wit).collect(),
            next: page.next.map(hex::encode),
        })
    }

    fn modified_since(
        &mut self,
        collection: String,
        since: String,
        from: Option<String>,
        limit: u32,
    ) -> Result<documents::Page, documents::Error> {
        let moment = bulkhost_core::parse_datetime(&since)
            .ok_or(documents::Error::InvalidDatetime(since))?;
        let from = cursor(from)?;
        let page = self
            .snapshot()?
            .changed_since(
                &collection,
                moment,
                from,
                limit.clamp(1, PAGE_LIMIT) as usize,
                PAGE_BYTES,
            )
            .map_err(read_error)?;
        Ok(documents::Page {
            documents: page.documents.into_iter().map(to_wit).collect(),
            next: page.next.map(|v| v.to_string()),
        })
    }

    fn get(
        &mut self,
        collection: String,
        key: String,
    ) -> Result<Option<documents::Document>, documents::Error> {
        Ok(self
            .snapshot()?
            .get(&collection, &DocRef::Code(key))
            .map_err(read_error)?
            .map(to_wit))
    }

    fn attachments(
        &mut self,
        collection: String,
        id: u64,
    ) -> Result<Vec<documents::Attachment>, documents::Error> {
        Ok(self
            .snapshot()?
            .attachments(&collection, id)
            .map_err(read_error)?
            .into_iter()
            .map(|info| documents::Attachment {
                name: info.name,
                content_type: info.content_type,
                size: info.size,
            })
            .collect())
    }

    fn read_attachment(
        &mut self,
        collection: String,
        id: u64,
        name: String,
    ) -> Result<Option<Vec<u8>>, documents::Error> {
        self.snapshot()?
            .attachment_content(&collection, id, &name)
            .map_err(read_error)
    }
}

fn write_error(e: bulkhost_core::Error) -> writes::Error {
    match e {
        bulkhost_core::Error::UnknownCollection(c) => writes::Error::UnknownCollection(c),
        bulkhost_core::Error::Invalid(errors) => {
            writes::Error::Invalid(errors.to_json().to_string())
        }
        bulkhost_core::Error::QuotaExceeded(why) => writes::Error::Invalid(
            serde_json::json!({ bulkhost_core::NON_FIELD_ERRORS: [why] }).to_string(),
        ),
        bulkhost_core::Error::NotFound => writes::Error::NotFound,
        bulkhost_core::Error::Exists(key) => writes::Error::Exists(key),
        other => writes::Error::Unavailable(other.to_string()),
    }
}

/// The documents of a write: a JSON object or a list of them.
fn documents_of(text: &str) -> Result<serde_json::Value, writes::Error> {
    let documents: serde_json::Value =
        serde_json::from_str(text).map_err(|e| writes::Error::InvalidJson(e.to_string()))?;
    if documents.is_object() || documents.is_array() {
        Ok(documents)
    } else {
        Err(writes::Error::InvalidJson(
            "expected a JSON object or a list of objects".into(),
        ))
    }
}

fn upserted(done: bulkhost_core::Upserted) -> writes::Upserted {
    writes::Upserted {
        updated: done.updated,
        inserted: done.inserted,
        version: done.version,
    }
}

impl Invocation {
    /// The writer of the call being handled.
    fn writer(&mut self) -> Result<&mut Box<dyn DocumentWriter>, writes::Error> {
        self.writer.as_mut().ok_or_else(|| {
            writes::Error::Unavailable("writes are possible only while handling a call".into())
        })
    }
}

impl writes::Host for Invocation {
    fn upsert(
        &mut self,
        collection: String,
        documents: String,
    ) -> Result<writes::Upserted, writes::Error> {
        let documents = documents_of(&documents)?;
        let done = self.writer()?.upsert(&collection, &documents);
        done.map(upserted).map_err(write_error)
    }

    fn create(
        &mut self,
        collection: String,
        documents: String,
    ) -> Result<writes::Upserted, writes::Error> {
        let documents = documents_of(&documents)?;
        let done = self.writer()?.create(&collection, &documents);
        done.map(upserted).map_err(write_error)
    }

    fn delete(&mut self, collection: String, key: String) -> Result<u64, writes::Error> {
        self.writer()?
            .delete(&collection, &key)
            .map_err(write_error)
    }
}

impl sink::Host for Invocation {
    fn emit(&mut self, records: Vec<String>) -> wasmtime::Result<Result<(), sink::Error>> {
        if self.output_exceeded || self.sink_failure.is_some() {
            wasmtime::bail!("the plugin emitted records after the host refused its output");
        }
        let bytes: u64 = records.iter().map(|r| r.len() as u64).sum();
        if self.emitted_bytes + bytes > self.output_cap {
            self.output_exceeded = true;
            return Ok(Err(sink::Error::OutputLimit(self.output_cap)));
        }
        for (i, record) in records.iter().enumerate() {
            if !is_json_object(record) {
                return Ok(Err(sink::Error::InvalidRecord(format!(
                    "record {} of the batch is not a JSON object",
                    i
                ))));
            }
        }
        let Some(sink) = self.sink.as_mut() else {
            return Ok(Err(sink::Error::Cancelled));
        };
        let count = records.len() as u64;
        match sink.accept(records) {
            Ok(()) => {
                self.emitted_records += count;
                self.emitted_bytes += bytes;
                Ok(Ok(()))
            }
            Err(e) => {
                self.sink_failure = Some(e);
                Ok(Err(sink::Error::Cancelled))
            }
        }
    }
}

impl log::Host for Invocation {
    fn log(&mut self, level: log::Level, message: String) {
        self.logged += 1;
        if self.logged > LOG_MESSAGES {
            return;
        }
        let mut message = message;
        if message.len() > LOG_CHARS {
            let mut end = LOG_CHARS;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        if self.logged == LOG_MESSAGES {
            tracing::warn!(
                plugin,
                "further log messages of this invocation are dropped"
            );
        }
    }
}
