//! Response bodies produced piece by piece from blocking storage reads, pulled by the
//! connection: the next piece is made on the blocking pool only once the client has taken the
//! one before (one piece is made ahead, so a fast client never waits for it). A client that
//! reads slowly, or not at all, holds no thread and at most two pieces of memory, however large
//! the data; the connection's write timeout then closes a stalled one.

use axum::body::{Body, Bytes};
use tokio::task::JoinHandle;

use crate::gates::Pass;

/// About how many bytes one piece holds.
pub const PIECE_BYTES: usize = 64 * 1024;

/// Makes a body's bytes, a piece at a time, on a blocking thread.
pub trait Producer: Send + 'static {
    /// Appends the next bytes to `out`, about [`PIECE_BYTES`] (fewer at the end, any number on
    /// the way); answers `false` once everything has been produced.
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool>;
}

impl Producer for Box<dyn Producer> {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        (**self).produce(out)
    }
}

/// A producer and the piece it made.
struct Piece<P> {
    producer: P,
    bytes: Vec<u8>,
    more: bool,
}

/// Makes the next piece of `producer` on the blocking pool: at least one byte, or the end.
fn next_piece<P: Producer>(mut producer: P) -> JoinHandle<std::io::Result<Piece<P>>> {
    tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::with_capacity(PIECE_BYTES);
        loop {
            let more = producer.produce(&mut bytes)?;
            if !more || !bytes.is_empty() {
                return Ok(Piece {
                    producer,
                    bytes,
                    more,
                });
            }
        }
    })
}

/// A body whose bytes `producer` makes, holding `pass` (a place behind a tenant's gate) until
/// the body is done or dropped. If the producer fails midway, the error is logged and the
/// connection is aborted, so the client sees a failed transfer rather than a shorter document
/// that looks complete.
pub fn body(producer: impl Producer, pass: Option<Pass>) -> Body {
    let pieces = futures_util::stream::unfold(
        (Some(next_piece(producer)), pass),
        |(next, pass)| async move {
            let made = match next?.await {
                Ok(made) => made,
                Err(e) => Err(std::io::Error::other(format!("the producer stopped: {e}"))),
            };
            match made {
                Ok(piece) if piece.bytes.is_empty() => None,
                Ok(piece) => {
                    let next = piece.more.then(|| next_piece(piece.producer));
                    Some((Ok(Bytes::from(piece.bytes)), (next, pass)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "streamed response stopped early");
                    Some((Err(e), (None, pass)))
                }
            }
        },
    );
    // Fused: a body may be polled once more after its end.
    Body::from_stream(futures_util::StreamExt::fuse(pieces))
}

/// The number of bytes `producer` makes, counted by making them: for a `Content-Range` whose
/// total is not known beforehand.
pub fn size(mut producer: impl Producer) -> std::io::Result<u64> {
    let mut total = 0;
    let mut piece = Vec::with_capacity(PIECE_BYTES);
    loop {
        piece.clear();
        let more = producer.produce(&mut piece)?;
        total += piece.len() as u64;
        if !more {
            return Ok(total);
        }
    }
}

/// Bytes already in memory (an attached file), handed over as one piece.
#[derive(Debug)]
pub struct Held(pub Option<Vec<u8>>);

impl Producer for Held {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        match self.0.take() {
            Some(bytes) if out.is_empty() => *out = bytes,
            Some(bytes) => out.extend_from_slice(&bytes),
            None => {}
        }
        Ok(false)
    }
}
