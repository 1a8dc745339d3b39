//! `bulkhost:plugin/sink`: where a generation's records go, counted against the invocation's
//! output cap and checked to be JSON objects before the [`RecordSink`] sees them.

use wasmtime::component::{HasData, Linker};

use crate::bindings::sink::{self, Error};

/// Where a generation's records go; the export job store implements it.
pub trait RecordSink: Send {
    /// Stores a batch of records (JSON object texts) after those already stored. The batch
    /// is handed over, so a sink that keeps the records need not copy them.
    fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError>;
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

/// What the interface emits into, and what the invocation's outcome is judged by afterwards:
/// how much was emitted, and whether the host refused more.
pub struct SinkCtx {
    sink: Option<Box<dyn RecordSink>>,
    output_cap: u64,
    /// Records the sink accepted.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether the plugin tried to emit past the output cap.
    pub output_exceeded: bool,
    /// Why the sink stopped taking records, if it did.
    pub failure: Option<SinkError>,
}

impl SinkCtx {
    /// Emits into `sink`, at most `output_cap` bytes of records.
    pub fn new(sink: Option<Box<dyn RecordSink>>, output_cap: u64) -> Self {
        SinkCtx {
            sink,
            output_cap,
            records: 0,
            bytes: 0,
            output_exceeded: false,
            failure: None,
        }
    }

    /// Whether the host refused the plugin's output, so the invocation failed whatever the
    /// plugin answered.
    pub fn refused(&self) -> bool {
        self.output_exceeded || self.failure.is_some()
    }

    /// The view the generated bindings call.
    pub fn view(&mut self) -> Sink<'_> {
        Sink { ctx: self }
    }
}

/// The interface's implementation over a borrowed [`SinkCtx`].
pub struct Sink<'a> {
    ctx: &'a mut SinkCtx,
}

struct HasSink;

impl HasData for HasSink {
    type Data<'a> = Sink<'a>;
}

/// Adds the interface to `linker`; `get` borrows the context from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> Sink<'_>,
) -> wasmtime::Result<()> {
    sink::add_to_linker::<T, HasSink>(linker, get)
}

impl sink::Host for Sink<'_> {
    /// Traps a plugin that keeps emitting after the host refused its output: it was told to
    /// stop, so going on is a bug.
    fn emit(&mut self, records: Vec<String>) -> wasmtime::Result<Result<(), Error>> {
        let ctx = &mut *self.ctx;
        if ctx.refused() {
            wasmtime::bail!("the plugin emitted records after the host refused its output");
        }
        let bytes: u64 = records.iter().map(|r| r.len() as u64).sum();
        if ctx.bytes + bytes > ctx.output_cap {
            ctx.output_exceeded = true;
            return Ok(Err(Error::OutputLimit(ctx.output_cap)));
        }
        if let Some(i) = records.iter().position(|r| !is_json_object(r)) {
            return Ok(Err(Error::InvalidRecord(format!(
                "record {i} of the batch is not a JSON object"
            ))));
        }
        let Some(sink) = ctx.sink.as_mut() else {
            return Ok(Err(Error::Cancelled));
        };
        let count = records.len() as u64;
        match sink.accept(records) {
            Ok(()) => {
                ctx.records += count;
                ctx.bytes += bytes;
                Ok(Ok(()))
            }
            Err(e) => {
                ctx.failure = Some(e);
                Ok(Err(Error::Cancelled))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::sink::Host;

    /// Keeps what it accepts.
    struct Kept(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl RecordSink for Kept {
        fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError> {
            self.0.lock().unwrap().extend(records);
            Ok(())
        }
    }

    #[test]
    fn records_are_counted_checked_and_capped() {
        let kept = std::sync::Arc::default();
        let mut ctx = SinkCtx::new(Some(Box::new(Kept(std::sync::Arc::clone(&kept)))), 20);
        let mut view = ctx.view();
        assert!(matches!(view.emit(vec![r#"{"a":1}"#.into()]), Ok(Ok(()))));
        assert!(matches!(
            view.emit(vec!["[1]".into()]).unwrap(),
            Err(Error::InvalidRecord(_))
        ));
        assert!(matches!(
            view.emit(vec![r#"{"b":"a long value"}"#.into()]),
            Ok(Err(Error::OutputLimit(20)))
        ));
        assert!(view.emit(vec![r#"{"c":1}"#.into()]).is_err(), "trapped");
        assert_eq!((ctx.records, ctx.bytes, ctx.output_exceeded), (1, 7, true));
        assert_eq!(*kept.lock().unwrap(), vec![r#"{"a":1}"#.to_string()]);
    }
}
