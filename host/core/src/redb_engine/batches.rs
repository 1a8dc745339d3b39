//! Batches, their queue, results, idempotency keys and write marks in redb's tables.

use std::ops::Bound;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{
    ALL, Reader, Redb, RedbTxn, Tbl, Writer, meta_key, next_seq, records_of, records_where,
};
use crate::Result;
use crate::batches::{Batch, BatchStatus, OperationResult};
use crate::engine::{BatchesTxn, BatchesView};
use crate::keys::Key;
use crate::records::{json, parse};

const BATCH_SEQ: &str = "batch_seq";

#[derive(Debug, Serialize, Deserialize)]
struct QueueEntry {
    tenant: String,
    uuid: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    digest: String,
    uuid: String,
}

fn batch_key(tenant: &str, uuid: &str) -> Vec<u8> {
    Key::new().str(tenant).str(uuid).into_vec()
}

fn result_key(uuid: &str, index: usize) -> Vec<u8> {
    Key::new().str(uuid).u64(index as u64).into_vec()
}

/// The meta key of the tenant's unfinished batch.
fn slot_key(tenant: &str) -> Vec<u8> {
    meta_key(tenant, "unfinished-batch")
}

fn idempotency_key(tenant: &str, key: &str) -> Vec<u8> {
    Key::new().str(tenant).str(key).into_vec()
}

fn mark_prefix(uuid: &str, index: Option<usize>) -> Vec<u8> {
    let key = Key::new().str(uuid);
    match index {
        Some(index) => key.u64(index as u64).into_vec(),
        None => key.into_vec(),
    }
}

fn load_header(r: &impl Reader, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
    r.get(Tbl::Batches, &batch_key(tenant, uuid))?
        .map(|raw| parse(&raw))
        .transpose()
}

impl<T: Reader, W> BatchesView for Redb<T, W> {
    fn batch(&self, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
        let Some(mut batch) = load_header(&self.tables, tenant, uuid)? else {
            return Ok(None);
        };
        if let Some(raw) = self.tables.get(Tbl::BatchOperations, uuid.as_bytes())? {
            batch.operations = parse(&raw)?;
        }
        Ok(Some(batch))
    }

    fn batches(&self, tenant: &str) -> Result<Vec<Batch>> {
        records_of(&self.tables, Tbl::Batches, tenant)
    }

    fn batch_results(&self, uuid: &str, from: usize, to: usize) -> Result<Vec<OperationResult>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let (start, end) = (result_key(uuid, from), result_key(uuid, to));
        records_where(
            &self.tables,
            Tbl::BatchResults,
            (Bound::Included(&start), Bound::Excluded(&end)),
            |_| true,
        )
    }
}

impl BatchesTxn for RedbTxn<'_, '_> {
    fn lock_batch(&mut self, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
        load_header(&self.tables, tenant, uuid)
    }

    fn unfinished_batch(&mut self, tenant: &str) -> Result<Option<String>> {
        Ok(self
            .tables
            .get(Tbl::Meta, &slot_key(tenant))?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned()))
    }

    fn idempotency(&mut self, tenant: &str, key: &str) -> Result<Option<(String, String)>> {
        self.tables
            .get(Tbl::BatchKeys, &idempotency_key(tenant, key))?
            .map(|raw| parse::<KeyRecord>(&raw).map(|r| (r.digest, r.uuid)))
            .transpose()
    }

    fn insert_batch(&mut self, batch: &Batch, idempotency: Option<(&str, &str)>) -> Result<()> {
        self.save_batch(batch)?;
        self.tables.put(
            Tbl::BatchOperations,
            batch.uuid.as_bytes(),
            &json(&batch.operations),
        )?;
        self.tables
            .put(Tbl::Meta, &slot_key(&batch.tenant), batch.uuid.as_bytes())?;
        if let Some((key, digest)) = idempotency {
            let record = KeyRecord {
                digest: digest.to_string(),
                uuid: batch.uuid.clone(),
            };
            self.tables.put(
                Tbl::BatchKeys,
                &idempotency_key(&batch.tenant, key),
                &json(&record),
            )?;
        }
        Ok(())
    }

    fn save_batch(&mut self, batch: &Batch) -> Result<()> {
        self.tables.put(
            Tbl::Batches,
            &batch_key(&batch.tenant, &batch.uuid),
            &json(batch),
        )?;
        if batch.status == BatchStatus::Finished
            && self.unfinished_batch(&batch.tenant)?.as_deref() == Some(batch.uuid.as_str())
        {
            self.tables.remove(Tbl::Meta, &slot_key(&batch.tenant))?;
        }
        Ok(())
    }

    fn remove_batch(&mut self, batch: &Batch) -> Result<u64> {
        let freed = self
            .tables
            .remove_prefix(Tbl::BatchResults, &Key::new().str(&batch.uuid).into_vec())?;
        self.tables
            .remove(Tbl::Batches, &batch_key(&batch.tenant, &batch.uuid))?;
        self.tables
            .remove(Tbl::BatchOperations, batch.uuid.as_bytes())?;
        self.forget_write_marks(&batch.uuid, None)?;
        if let Some(key) = &batch.idempotency_key {
            self.tables
                .remove(Tbl::BatchKeys, &idempotency_key(&batch.tenant, key))?;
        }
        Ok(freed)
    }

    fn enqueue_batch(&mut self, tenant: &str, uuid: &str) -> Result<()> {
        let seq = next_seq(&mut self.tables, BATCH_SEQ)?;
        let entry = QueueEntry {
            tenant: tenant.to_string(),
            uuid: uuid.to_string(),
        };
        self.tables.put(
            Tbl::BatchQueue,
            &Key::new().u64(seq).into_vec(),
            &json(&entry),
        )
    }

    fn take_queued_batch(&mut self) -> Result<Option<(String, String)>> {
        let mut first = None;
        self.tables.scan(
            Tbl::BatchQueue,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, v| {
                first = Some((k.to_vec(), parse::<QueueEntry>(v)?));
                Ok(false)
            },
        )?;
        let Some((key, entry)) = first else {
            return Ok(None);
        };
        self.tables.remove(Tbl::BatchQueue, &key)?;
        Ok(Some((entry.tenant, entry.uuid)))
    }

    fn put_batch_result(
        &mut self,
        uuid: &str,
        index: usize,
        result: &OperationResult,
    ) -> Result<u64> {
        let stored = json(result);
        self.tables
            .put(Tbl::BatchResults, &result_key(uuid, index), &stored)?;
        Ok(stored.len() as u64)
    }

    fn batches_with_lapsed_leases(&mut self, moment: NaiveDateTime) -> Result<Vec<Batch>> {
        records_where(&self.tables, Tbl::Batches, ALL, |b: &Batch| {
            b.lease_lapsed(moment)
        })
    }

    fn batches_completed_before(&mut self, moment: NaiveDateTime) -> Result<Vec<Batch>> {
        records_where(&self.tables, Tbl::Batches, ALL, |b: &Batch| {
            b.status == BatchStatus::Finished && b.completed_at.is_some_and(|at| at < moment)
        })
    }

    fn write_mark(&mut self, uuid: &str, index: usize, n: u64) -> Result<Option<Vec<u8>>> {
        self.tables.get(
            Tbl::WriteMarks,
            &Key::new()
                .bytes(&mark_prefix(uuid, Some(index)))
                .u64(n)
                .into_vec(),
        )
    }

    fn put_write_mark(&mut self, uuid: &str, index: usize, n: u64, outcome: &[u8]) -> Result<()> {
        self.tables.put(
            Tbl::WriteMarks,
            &Key::new()
                .bytes(&mark_prefix(uuid, Some(index)))
                .u64(n)
                .into_vec(),
            outcome,
        )
    }

    fn forget_write_marks(&mut self, uuid: &str, index: Option<usize>) -> Result<()> {
        self.tables
            .remove_prefix(Tbl::WriteMarks, &mark_prefix(uuid, index))
            .map(drop)
    }
}
