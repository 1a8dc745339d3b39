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

use crate::engine::{self, Durability, Txn};
use crate::records::{json, parse};
use crate::{Result, Store};

/// The batch operation a [`Store`] handle writes for, and how many writes it has made. Each
/// operation gets a handle of its own, so a write that lands late (an operation given up at
/// its time budget while its plugin was still finishing) is still marked as its own.
#[derive(Debug)]
pub(crate) struct OperationMark {
    tenant: String,
    batch: String,
    index: usize,
    writes: AtomicU64,
}

impl Store {
    /// A handle on this store whose writes belong to operation `index` of batch `batch` of
    /// `tenant`: each is committed at most once, however often the operation runs.
    pub fn for_operation(&self, tenant: &str, batch: &str, index: usize) -> Store {
        Store {
            mark: Some(Arc::new(OperationMark {
                tenant: tenant.to_string(),
                batch: batch.to_string(),
                index,
                writes: AtomicU64::new(0),
            })),
            ..self.clone()
        }
    }

    /// Runs a write a client asked for in one durable transaction; on a handle made by
    /// [`Store::for_operation`], in a marked transaction that the operation's result makes
    /// durable, where a write the operation already committed answers its stored outcome
    /// instead of running again. The batch is held for the transaction, so two hosts that
    /// both run the operation (one of them after the other's lease lapsed) write once.
    pub(crate) fn commit<R: Serialize + DeserializeOwned>(
        &self,
        mut f: impl FnMut(&mut dyn Txn) -> Result<R>,
    ) -> Result<R> {
        let Some(mark) = &self.mark else {
            return self.write(f);
        };
        let n = mark.writes.fetch_add(1, Ordering::Relaxed);
        engine::write(&*self.engine, Durability::Deferred, |txn| {
            txn.lock_batch(&mark.tenant, &mark.batch)?;
            if let Some(stored) = txn.write_mark(&mark.batch, mark.index, n)? {
                return parse(&stored);
            }
            let out = f(txn)?;
            txn.put_write_mark(&mark.batch, mark.index, n, &json(&out))?;
            Ok(out)
        })
    }
}
