//! Response bodies produced by blocking storage reads, chunk by chunk, with backpressure: the
//! producer waits while the client is slow, so memory stays bounded whatever the data size.

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// Bytes gathered before a chunk is handed to the connection.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks that may wait for the connection before the producer blocks.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The producer's end of a streamed body.
#[derive(Debug)]
pub struct Sink {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

impl Sink {
    /// Sends `buf` on once it holds a full chunk; answers `false` when the client has gone, so
    /// the producer can stop reading.
    pub fn fill(&self, buf: &mut Vec<u8>) -> bool {
        if buf.len() < CHUNK_BYTES {
            return true;
        }
        let chunk = Bytes::from(std::mem::replace(buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx.blocking_send(Ok(chunk)).is_ok()
    }

    /// Sends what is left.
    pub fn finish(&self, buf: Vec<u8>) {
        if !buf.is_empty() {
            let _client_gone = self.tx.blocking_send(Ok(Bytes::from(buf)));
        }
    }
}

/// A body whose bytes `produce` writes from a blocking thread. If `produce` fails midway, the
/// error is logged and the connection is aborted, so the client sees a failed transfer rather
/// than a shorter document that looks complete.
pub fn body_from_blocking<E: std::fmt::Display>(
    produce: impl FnOnce(&Sink) -> Result<(), E> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let sink = Sink { tx };
        if let Err(e) = produce(&sink) {
            tracing::error!(error = %e, "streamed response stopped early");
            let _client_gone = sink
                .tx
                .blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    // Fused: body wrappers (compression) may poll once more after the end.
    Body::from_stream(futures_util::StreamExt::fuse(chunks))
}
