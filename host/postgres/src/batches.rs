//! Batches, their queue, results, idempotency keys and write marks in PostgreSQL's tables. A
//! unique index holds each tenant to one unfinished batch, whichever host accepts it.

use bulkhost_core::engine::{BatchesTxn, BatchesView};
use bulkhost_core::{Batch, BatchStatus, OperationResult, Result};
use chrono::NaiveDateTime;

use crate::json::{parse, text};
use crate::session::Session;

fn headers(rows: &[tokio_postgres::Row]) -> Result<Vec<Batch>> {
    rows.iter().map(|row| parse(row.get(0))).collect()
}

impl BatchesView for Session {
    fn batch(&self, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
        let Some(row) = self.query_opt(
            "SELECT b.header, o.operations FROM batches b
             LEFT JOIN batch_operations o ON o.uuid = b.uuid
             WHERE b.tenant = $1 AND b.uuid = $2",
            &[&tenant, &uuid],
        )?
        else {
            return Ok(None);
        };
        let mut batch: Batch = parse(row.get(0))?;
        if let Some(operations) = row.get::<_, Option<&str>>(1) {
            batch.operations = parse(operations)?;
        }
        Ok(Some(batch))
    }

    fn batches(&self, tenant: &str) -> Result<Vec<Batch>> {
        headers(&self.query("SELECT header FROM batches WHERE tenant = $1", &[&tenant])?)
    }

    fn batch_results(&self, uuid: &str, from: usize, to: usize) -> Result<Vec<OperationResult>> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT result FROM batch_results
             WHERE uuid = $1 AND index >= $2 AND index < $3 ORDER BY index",
            &[&uuid, &(from as i32), &(to.min(i32::MAX as usize) as i32)],
        )?
        .iter()
        .map(|row| parse(row.get(0)))
        .collect()
    }
}

impl BatchesTxn for Session {
    fn lock_batch(&mut self, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
        self.query_opt(
            "SELECT header FROM batches WHERE tenant = $1 AND uuid = $2 FOR UPDATE",
            &[&tenant, &uuid],
        )?
        .map(|row| parse(row.get(0)))
        .transpose()
    }

    fn unfinished_batch(&mut self, tenant: &str) -> Result<Option<String>> {
        Ok(self
            .query_opt(
                "SELECT uuid FROM batches WHERE tenant = $1 AND status <> 'finished'",
                &[&tenant],
            )?
            .map(|row| row.get(0)))
    }

    fn idempotency(&mut self, tenant: &str, key: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .query_opt(
                "SELECT digest, uuid FROM batch_keys WHERE tenant = $1 AND key = $2",
                &[&tenant, &key],
            )?
            .map(|row| (row.get(0), row.get(1))))
    }

    fn insert_batch(&mut self, batch: &Batch, idempotency: Option<(&str, &str)>) -> Result<()> {
        self.execute(
            "INSERT INTO batches (tenant, uuid, header, status, completed_at, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &batch.tenant,
                &batch.uuid,
                &text(batch)?,
                &batch.status.as_str(),
                &batch.completed_at,
                &batch.lease_until,
            ],
        )?;
        self.execute(
            "INSERT INTO batch_operations (uuid, operations) VALUES ($1, $2)",
            &[&batch.uuid, &text(&batch.operations)?],
        )?;
        if let Some((key, digest)) = idempotency {
            self.execute(
                "INSERT INTO batch_keys (tenant, key, digest, uuid) VALUES ($1, $2, $3, $4)",
                &[&batch.tenant, &key, &digest, &batch.uuid],
            )?;
        }
        Ok(())
    }

    fn save_batch(&mut self, batch: &Batch) -> Result<()> {
        self.execute(
            "UPDATE batches SET header = $3, status = $4, completed_at = $5, lease_until = $6
             WHERE tenant = $1 AND uuid = $2",
            &[
                &batch.tenant,
                &batch.uuid,
                &text(batch)?,
                &batch.status.as_str(),
                &batch.completed_at,
                &batch.lease_until,
            ],
        )
        .map(drop)
    }

    fn remove_batch(&mut self, batch: &Batch) -> Result<u64> {
        let freed = self.query_one(
            "WITH gone AS (
                DELETE FROM batch_results WHERE uuid = $1
                RETURNING octet_length(result)::bigint AS size)
             SELECT coalesce(sum(size), 0)::bigint FROM gone",
            &[&batch.uuid],
        )?;
        self.execute(
            "DELETE FROM batches WHERE tenant = $1 AND uuid = $2",
            &[&batch.tenant, &batch.uuid],
        )?;
        self.execute(
            "DELETE FROM batch_operations WHERE uuid = $1",
            &[&batch.uuid],
        )?;
        self.forget_write_marks(&batch.uuid, None)?;
        if let Some(key) = &batch.idempotency_key {
            self.execute(
                "DELETE FROM batch_keys WHERE tenant = $1 AND key = $2",
                &[&batch.tenant, key],
            )?;
        }
        Ok(freed.get::<_, i64>(0) as u64)
    }

    fn enqueue_batch(&mut self, tenant: &str, uuid: &str) -> Result<()> {
        self.execute(
            "INSERT INTO batch_queue (tenant, uuid) VALUES ($1, $2)",
            &[&tenant, &uuid],
        )
        .map(drop)
    }

    fn take_queued_batch(&mut self) -> Result<Option<(String, String)>> {
        Ok(self
            .query_opt(
                "DELETE FROM batch_queue WHERE seq = (
                    SELECT seq FROM batch_queue ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING tenant, uuid",
                &[],
            )?
            .map(|row| (row.get(0), row.get(1))))
    }

    fn put_batch_result(
        &mut self,
        uuid: &str,
        index: usize,
        result: &OperationResult,
    ) -> Result<u64> {
        let stored = text(result)?;
        self.execute(
            "INSERT INTO batch_results (uuid, index, result) VALUES ($1, $2, $3)",
            &[&uuid, &(index as i32), &stored],
        )?;
        Ok(stored.len() as u64)
    }

    fn batches_with_lapsed_leases(&mut self, moment: NaiveDateTime) -> Result<Vec<Batch>> {
        headers(&self.query(
            "SELECT header FROM batches
             WHERE status = 'processing' AND (lease_until IS NULL OR lease_until < $1)",
            &[&moment],
        )?)
    }

    fn batches_completed_before(&mut self, moment: NaiveDateTime) -> Result<Vec<Batch>> {
        headers(&self.query(
            "SELECT header FROM batches WHERE status = $2 AND completed_at < $1",
            &[&moment, &BatchStatus::Finished.as_str()],
        )?)
    }

    fn write_mark(&mut self, uuid: &str, index: usize, n: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .query_opt(
                "SELECT outcome FROM write_marks WHERE uuid = $1 AND index = $2 AND n = $3",
                &[&uuid, &(index as i32), &(n as i64)],
            )?
            .map(|row| row.get(0)))
    }

    fn put_write_mark(&mut self, uuid: &str, index: usize, n: u64, outcome: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO write_marks (uuid, index, n, outcome) VALUES ($1, $2, $3, $4)",
            &[&uuid, &(index as i32), &(n as i64), &outcome],
        )
        .map(drop)
    }

    fn forget_write_marks(&mut self, uuid: &str, index: Option<usize>) -> Result<()> {
        self.execute(
            "DELETE FROM write_marks WHERE uuid = $1 AND ($2::int4 IS NULL OR index = $2)",
            &[&uuid, &index.map(|i| i as i32)],
        )
        .map(drop)
    }
}
