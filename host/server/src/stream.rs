//! Response bodies produced piece by piece from blocking storage reads, at the pace of the
//! client, without ever waiting on a thread for it.
//!
//! A producer runs on the blocking pool and keeps a few pieces ready ahead of the connection.
//! While the client keeps up, it runs on, so a fast download costs no hand-off per piece.
//! When the pieces ahead are all waiting, the producer does not wait with them: it parks (its
//! state goes into a slot, what it read ahead is let go) and gives its thread back; the
//! connection wakes it again once it has taken half of them. A client that reads slowly, or
//! not at all, thus holds no thread and a few pieces of memory, however large the data; the
//! connection's write timeout then closes a stalled one.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

use crate::gates::Pass;

/// About how many bytes one piece holds.
pub const PIECE_BYTES: usize = 64 * 1024;
/// Pieces a producer makes ahead of the connection before it parks.
const PIECES_AHEAD: usize = 4;

/// Makes a body's bytes, a piece at a time, on a blocking thread.
pub trait Producer: Send + 'static {
    /// Appends the next bytes to `out`, about [`PIECE_BYTES`] (fewer at the end, any number on
    /// the way); answers `false` once everything has been produced.
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool>;

    /// Lets go of what it keeps only to make its next pieces faster (a chunk read ahead): the
    /// client has stopped taking pieces, and may never take more.
    fn park(&mut self) {}
}

impl Producer for Box<dyn Producer> {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        (**self).produce(out)
    }

    fn park(&mut self) {
        (**self).park();
    }
}

type Piece = std::io::Result<Bytes>;

/// A producer between runs: what it still has to make, and its end of the channel (dropped
/// when everything is made, which ends the body).
struct Parked<P> {
    producer: Option<P>,
    pieces: mpsc::Sender<Piece>,
}

type Slot<P> = Arc<Mutex<Option<Parked<P>>>>;

/// The next piece of `producer`: at least one byte, or `None` at the end; and whether more
/// may follow.
fn next_piece<P: Producer>(producer: &mut P) -> std::io::Result<(Option<Bytes>, bool)> {
    let mut bytes = Vec::with_capacity(PIECE_BYTES);
    loop {
        let more = producer.produce(&mut bytes)?;
        if !bytes.is_empty() {
            return Ok((Some(Bytes::from(bytes)), more));
        }
        if !more {
            return Ok((None, false));
        }
    }
}

/// Makes pieces until they are all made, the client has gone, or the pieces ahead are all
/// waiting; then it parks in `slot`. A piece is only made once there is room for it, so a
/// parked producer holds none.
fn run<P: Producer>(mut parked: Parked<P>, slot: &Slot<P>) {
    loop {
        let Some(producer) = parked.producer.as_mut() else {
            return;
        };
        let room = match parked.pieces.clone().try_reserve_owned() {
            Ok(room) => room,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                producer.park();
                let probe = parked.pieces.clone();
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(parked);
                // The connection may have taken every piece before the slot was filled, and
                // found it empty: then nobody else wakes this producer, so it goes on itself.
                if probe.capacity() == 0 {
                    return;
                }
                match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(woken) => parked = woken,
                    None => return,
                }
                continue;
            }
        };
        match next_piece(producer) {
            Ok((Some(bytes), more)) => {
                room.send(Ok(bytes));
                if !more {
                    return;
                }
            }
            Ok((None, _)) => return,
            Err(e) => {
                tracing::error!(error = %e, "streamed response stopped early");
                room.send(Err(e));
                return;
            }
        }
    }
}

fn start<P: Producer>(parked: Parked<P>, slot: Slot<P>) {
    tokio::task::spawn_blocking(move || run(parked, &slot));
}

/// A body whose bytes `producer` makes, holding `pass` (a place behind a tenant's gate) until
/// the body is done or dropped. If the producer fails midway, the error is logged and the
/// connection is aborted, so the client sees a failed transfer rather than a shorter document
/// that looks complete.
pub fn body(producer: impl Producer, pass: Option<Pass>) -> Body {
    let (pieces, mut taken) = mpsc::channel(PIECES_AHEAD);
    let slot: Slot<_> = Arc::default();
    start(
        Parked {
            producer: Some(producer),
            pieces,
        },
        slot.clone(),
    );
    let stream = futures_util::stream::poll_fn(move |cx| {
        let _held = &pass;
        let piece = taken.poll_recv(cx);
        if let Poll::Ready(Some(_)) = &piece
            && taken.len() <= PIECES_AHEAD / 2
            && let Some(parked) = slot.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            start(parked, slot.clone());
        }
        piece
    });
    // Fused: a body may be polled once more after its end.
    Body::from_stream(futures_util::StreamExt::fuse(stream))
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// `pieces` pieces of one byte value each, counting up.
    struct Counting {
        made: u8,
        pieces: u8,
    }

    impl Producer for Counting {
        fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
            out.extend(std::iter::repeat_n(self.made, PIECE_BYTES));
            self.made += 1;
            Ok(self.made < self.pieces)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_gets_every_piece_in_order_however_often_the_producer_parks() {
        let mut body = body(
            Counting {
                made: 0,
                pieces: 40,
            },
            None,
        );
        let mut got = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
            frames += 1;
            if frames % 3 == 0 {
                // Long enough for the producer to fill the pieces ahead and park.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let expected: Vec<u8> = (0..40u8)
            .flat_map(|b| std::iter::repeat_n(b, PIECE_BYTES))
            .collect();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the pieces came in order, none lost");
    }
}
