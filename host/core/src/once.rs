//! Exactly-once writes for batch operations.
//!
//! A batch operation runs through the same handlers as a direct request, and a handler's
//! write commits before the batch records the operation's result. A crash between the two
//! must not make the replayed operation write again.
//!
//! An operation's writes are committed without waiting for the disk, like its result after
//! them; a durable commit later makes both durable. A crash before that loses both, and the
//! operation runs again on the state it first saw. But a durable commit in between (another
//! client's write) makes the writes durable without the result, so each write is also
//! marked: in the transaction that commits it, its outcome is stored under (batch,
//! operation, n-th write of the operation). When the operation runs again, its n-th write
//! finds the mark and answers the stored outcome without writing, and a handler that answers
//! from its writes' outcomes (the built-in surfaces do) answers what it answered the first
//! time. Recording the operation's result drops its marks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::Key;
use crate::records::{json, parse};
use crate::storage::{Reader, Tbl, WriteTables, Writer};
use crate::{Result, Store};

/// The batch operation a [`Store`] handle writes for, and how many writes it has made. Each
/// operation gets a handle of its own, so a write that lands late (an operation given up at
/// its time budget while its plugin was still finishing) is still marked as its own.
#[derive(Debug)]
pub(crate) struct OperationMark {
    batch: String,
    index: u64,
    writes: AtomicU64,
}

fn operation_prefix(batch: &str, index: u64) -> Vec<u8> {
    Key::new().str(batch).u64(index).into_vec()
}

/// Drops the marks of operation `index` of `batch`, or of every operation when `index` is
/// `None`: its result is recorded, or the batch is gone.
pub(crate) fn forget(w: &mut WriteTables<'_>, batch: &str, index: Option<usize>) -> Result<()> {
    let prefix = match index {
        Some(index) => operation_prefix(batch, index as u64),
        None => Key::new().str(batch).into_vec(),
    };
    w.remove_prefix(Tbl::WriteMarks, &prefix).map(drop)
}

impl Store {
    /// A handle on this store whose writes belong to operation `index` of batch `batch`:
    /// each is committed at most once, however often the operation runs.
    pub fn for_operation(&self, batch: &str, index: usize) -> Store {
        Store {
            mark: Some(Arc::new(OperationMark {
                batch: batch.to_string(),
                index: index as u64,
                writes: AtomicU64::new(0),
            })),
            ..self.clone()
        }
    }

    /// Runs a write a client asked for in one durable transaction; on a handle made by
    /// [`Store::for_operation`], in a marked transaction that the operation's result makes
    /// durable, where a write the operation already committed answers its stored outcome
    /// instead of running again.
    pub(crate) fn commit<R: Serialize + DeserializeOwned>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<R>,
    ) -> Result<R> {
        let Some(mark) = &self.mark else {
            return self.storage.write(f);
        };
        let n = mark.writes.fetch_add(1, Ordering::Relaxed);
        let key = Key::new()
            .bytes(&operation_prefix(&mark.batch, mark.index))
            .u64(n)
            .into_vec();
        self.storage.write_unsynced(|w| {
            if let Some(stored) = w.get(Tbl::WriteMarks, &key)? {
                return parse(&stored);
            }
            let out = f(w)?;
            w.put(Tbl::WriteMarks, &key, &json(&out))?;
            Ok(out)
        })
    }
}
