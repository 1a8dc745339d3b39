//! Export requests, their queue and their result chunks in PostgreSQL's tables. A request is
//! its JSON record, with the columns the queries select on beside it; the queue's turn is one
//! row that claims lock, so hosts take tenants in one shared turn.

use bulkhost_core::engine::{ExportsTxn, ExportsView, RunRef, StoredChunk};
use bulkhost_core::{ExportRequest, Layout, Result, RunState};
use chrono::NaiveDateTime;

use crate::json::{self, parse};
use crate::session::Session;

fn requests(rows: &[tokio_postgres::Row]) -> Result<Vec<ExportRequest>> {
    rows.iter().map(|row| parse(row.get(0))).collect()
}

/// A moment before every lease: what a running run recorded without a lease counts as.
fn long_ago() -> NaiveDateTime {
    chrono::DateTime::UNIX_EPOCH.naive_utc()
}

impl ExportsView for Session {
    fn export(&self, tenant: &str, id: &str) -> Result<Option<ExportRequest>> {
        self.query_opt(
            "SELECT request FROM exports WHERE tenant = $1 AND id = $2",
            &[&tenant, &id],
        )?
        .map(|row| parse(row.get(0)))
        .transpose()
    }

    fn exports(&self, tenant: &str) -> Result<Vec<ExportRequest>> {
        requests(&self.query(
            "SELECT request FROM exports WHERE tenant = $1 ORDER BY created_at",
            &[&tenant],
        )?)
    }

    fn queued_runs(&self) -> Result<u64> {
        let row = self.query_one("SELECT count(*) FROM export_queue", &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn chunk_before(&self, id: &str, index: usize, at: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let row = self.query_opt(
            "SELECT first, chunk FROM export_chunks
             WHERE id = $1 AND index = $2 AND first <= $3 ORDER BY first DESC LIMIT 1",
            &[&id, &(index as i32), &(at.min(i64::MAX as u64) as i64)],
        )?;
        Ok(row.map(|row| (row.get::<_, i64>(0) as u64, row.get(1))))
    }

    fn piece_at(
        &self,
        id: &str,
        index: usize,
        layout: Layout,
        first: u64,
    ) -> Result<Option<Vec<u8>>> {
        let sql = match layout {
            Layout::List => {
                "SELECT list_piece FROM export_chunks WHERE id = $1 AND index = $2 AND first = $3"
            }
            Layout::Lines => {
                "SELECT lines_piece FROM export_chunks WHERE id = $1 AND index = $2 AND first = $3"
            }
        };
        let row = self.query_opt(
            sql,
            &[&id, &(index as i32), &(first.min(i64::MAX as u64) as i64)],
        )?;
        Ok(row.and_then(|row| row.get(0)))
    }
}

impl ExportsTxn for Session {
    fn lock_export(&mut self, tenant: &str, id: &str) -> Result<Option<ExportRequest>> {
        self.query_opt(
            "SELECT request FROM exports WHERE tenant = $1 AND id = $2 FOR UPDATE",
            &[&tenant, &id],
        )?
        .map(|row| parse(row.get(0)))
        .transpose()
    }

    fn save_export(&mut self, request: &ExportRequest) -> Result<()> {
        let running: Vec<&bulkhost_core::DatasetRun> = request
            .datasets
            .iter()
            .filter(|d| d.state == RunState::Running)
            .collect();
        let lease_until = running
            .iter()
            .map(|d| d.lease_until.unwrap_or_else(long_ago))
            .min();
        let text = json::text(request)?;
        self.execute(
            "INSERT INTO exports (tenant, id, request, created_at, expires_at, lease_until, running)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, id) DO UPDATE
             SET request = EXCLUDED.request, expires_at = EXCLUDED.expires_at,
                 lease_until = EXCLUDED.lease_until, running = EXCLUDED.running",
            &[
                &request.tenant,
                &request.id,
                &text,
                &request.created_at,
                &request.expires_at,
                &lease_until,
                &!running.is_empty(),
            ],
        )
        .map(drop)
    }

    fn remove_export(&mut self, tenant: &str, id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM export_queue WHERE tenant = $1 AND id = $2",
            &[&tenant, &id],
        )?;
        self.execute(
            "DELETE FROM exports WHERE tenant = $1 AND id = $2",
            &[&tenant, &id],
        )
        .map(drop)
    }

    fn enqueue_run(&mut self, run: &RunRef) -> Result<()> {
        self.execute(
            "INSERT INTO export_queue (tenant, id, index) VALUES ($1, $2, $3)",
            &[&run.tenant, &run.id, &(run.index as i32)],
        )
        .map(drop)
    }

    fn take_queued_run(&mut self) -> Result<Option<RunRef>> {
        let turn: String = self
            .query_one("SELECT tenant FROM export_turn FOR UPDATE", &[])?
            .get(0);
        let after = self.query_opt(
            "DELETE FROM export_queue WHERE seq = (
                SELECT seq FROM export_queue WHERE tenant > $1
                ORDER BY tenant, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING tenant, id, index",
            &[&turn],
        )?;
        let taken = match after {
            Some(row) => Some(row),
            None => self.query_opt(
                "DELETE FROM export_queue WHERE seq = (
                    SELECT seq FROM export_queue
                    ORDER BY tenant, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING tenant, id, index",
                &[],
            )?,
        };
        let Some(row) = taken else {
            return Ok(None);
        };
        let run = RunRef {
            tenant: row.get(0),
            id: row.get(1),
            index: row.get::<_, i32>(2) as usize,
        };
        self.execute("UPDATE export_turn SET tenant = $1", &[&run.tenant])?;
        Ok(Some(run))
    }

    fn put_chunk(
        &mut self,
        id: &str,
        index: usize,
        first: u64,
        chunk: &StoredChunk<'_>,
    ) -> Result<()> {
        let [list, lines] = chunk.pieces;
        self.execute(
            "INSERT INTO export_chunks (id, index, first, chunk, list_piece, lines_piece)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id,
                &(index as i32),
                &(first as i64),
                &chunk.records,
                &list,
                &lines,
            ],
        )
        .map(drop)
    }

    fn remove_chunks(&mut self, id: &str, index: usize) -> Result<u64> {
        let row = self.query_one(
            "WITH gone AS (
                DELETE FROM export_chunks WHERE id = $1 AND index = $2
                RETURNING octet_length(chunk)::bigint
                    + coalesce(octet_length(list_piece), 0)
                    + coalesce(octet_length(lines_piece), 0) AS size)
             SELECT coalesce(sum(size), 0)::bigint FROM gone",
            &[&id, &(index as i32)],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn exports_with_lapsed_leases(&mut self, moment: NaiveDateTime) -> Result<Vec<ExportRequest>> {
        requests(&self.query(
            "SELECT request FROM exports WHERE running AND lease_until < $1",
            &[&moment],
        )?)
    }

    fn expired_exports(&mut self, moment: NaiveDateTime) -> Result<Vec<ExportRequest>> {
        requests(&self.query(
            "SELECT request FROM exports WHERE expires_at <= $1",
            &[&moment],
        )?)
    }
}
