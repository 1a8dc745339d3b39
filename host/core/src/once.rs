//! Exactly-once writes for batch operations.
//!
//! A batch operation runs through the same handlers as a direct request, and a handler's
//! write commits before the batch records the operation's result. A crash between the two
//! must not make the replayed operation write again. So each write an operation makes is
//! marked: in the transaction that commits it, the write's outcome is stored under (batch,
//! operation, n-th write of the operation). When the operation runs again after a restart,
//! its n-th write finds the mark and answers the stored outcome without touching anything,
//! and the handler answers what it answered the first time. Recording the operation's result
//! drops its marks.
//!
//! Handlers are deterministic in the writes they make for a given request and state, which
//! holds for the built-in surfaces; plugin endpoints are told so in the plugin guide.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{Key, prefix_end};
use crate::records::{json, parse};
use crate::storage::{Reader, Tbl, WriteTables, Writer};
use crate::{Result, Store};

/// The operation a [`Store`] handle writes for, and how many writes it has made.
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
    let end = prefix_end(&prefix);
    let mut keys = Vec::new();
    w.scan(
        Tbl::WriteMarks,
        Bound::Included(&prefix),
        Bound::Excluded(&end),
        false,
        &mut |k, _| {
            keys.push(k.to_vec());
            Ok(true)
        },
    )?;
    for k in keys {
        w.remove(Tbl::WriteMarks, &k)?;
    }
    Ok(())
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
    /// [`Store::for_operation`], a write this operation already committed answers its stored
    /// outcome instead of running again.
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
        self.storage.write(|w| {
            if let Some(stored) = w.get(Tbl::WriteMarks, &key)? {
                return parse(&stored);
            }
            let out = f(w)?;
            w.put(Tbl::WriteMarks, &key, &json(&out))?;
            Ok(out)
        })
    }
}
