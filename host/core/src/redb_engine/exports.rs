//! Export requests, their queue and their result chunks in redb's tables.
//!
//! A request is one JSON record under (tenant, id); the queue holds (tenant, sequence) entries,
//! so the first entry after a tenant's keys is the next tenant's oldest; a run's results are
//! chunks under (request, run, first record), so the chunk holding any record is one seek.

use std::ops::Bound;

use chrono::NaiveDateTime;

use super::{
    ALL, Reader, Redb, RedbTxn, Tbl, Writer, decode_u64, meta_key, next_seq, records_of,
    records_where,
};
use crate::Result;
use crate::engine::{ExportsTxn, ExportsView, RunRef, StoredChunk};
use crate::exports::ExportRequest;
use crate::keys::{Key, prefix_end};
use crate::packed::Layout;
use crate::records::{json, parse};

const QUEUE_SEQ: &str = "queue_seq";

fn export_key(tenant: &str, id: &str) -> Vec<u8> {
    Key::new().str(tenant).str(id).into_vec()
}

fn results_prefix(id: &str, index: usize) -> Vec<u8> {
    Key::new().str(id).u64(index as u64).into_vec()
}

/// Where a chunk's piece in `layout` is kept: under the run's results prefix, as in
/// `Tbl::Results`, so the same prefix removes both.
fn piece_key(id: &str, index: usize, layout: Layout, first: u64) -> Vec<u8> {
    Key::new()
        .bytes(&results_prefix(id, index))
        .u64(layout as u64)
        .u64(first)
        .into_vec()
}

/// Where the queue's turn is kept: the tenant served last.
fn turn_key() -> Vec<u8> {
    meta_key("", "queue_turn")
}

fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<Option<ExportRequest>> {
    r.get(Tbl::Exports, &export_key(tenant, id))?
        .map(|raw| parse(&raw))
        .transpose()
}

impl<T: Reader, W> ExportsView for Redb<T, W> {
    fn export(&self, tenant: &str, id: &str) -> Result<Option<ExportRequest>> {
        load(&self.tables, tenant, id)
    }

    fn exports(&self, tenant: &str) -> Result<Vec<ExportRequest>> {
        records_of(&self.tables, Tbl::Exports, tenant)
    }

    fn queued_runs(&self) -> Result<u64> {
        let mut queued = 0;
        self.tables.scan(
            Tbl::Queue,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |_, _| {
                queued += 1;
                Ok(true)
            },
        )?;
        Ok(queued)
    }

    fn chunk_before(&self, id: &str, index: usize, at: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let prefix = results_prefix(id, index);
        let key = Key::new().bytes(&prefix).u64(at).into_vec();
        let mut found = None;
        self.tables.scan(
            Tbl::Results,
            Bound::Included(&prefix),
            Bound::Included(&key),
            true,
            &mut |k, v| {
                found = Some((decode_u64(&k[k.len() - 8..]), v.to_vec()));
                Ok(false)
            },
        )?;
        Ok(found)
    }

    fn piece_at(
        &self,
        id: &str,
        index: usize,
        layout: Layout,
        first: u64,
    ) -> Result<Option<Vec<u8>>> {
        self.tables
            .get(Tbl::Pieces, &piece_key(id, index, layout, first))
    }
}

impl ExportsTxn for RedbTxn<'_, '_> {
    fn lock_export(&mut self, tenant: &str, id: &str) -> Result<Option<ExportRequest>> {
        load(&self.tables, tenant, id)
    }

    fn save_export(&mut self, request: &ExportRequest) -> Result<()> {
        self.tables.put(
            Tbl::Exports,
            &export_key(&request.tenant, &request.id),
            &json(request),
        )
    }

    fn remove_export(&mut self, tenant: &str, id: &str) -> Result<()> {
        self.tables
            .remove(Tbl::Exports, &export_key(tenant, id))
            .map(drop)
    }

    fn enqueue_run(&mut self, run: &RunRef) -> Result<()> {
        let seq = next_seq(&mut self.tables, QUEUE_SEQ)?;
        self.tables.put(
            Tbl::Queue,
            &Key::new().str(&run.tenant).u64(seq).into_vec(),
            &json(run),
        )
    }

    fn take_queued_run(&mut self) -> Result<Option<RunRef>> {
        let last = self
            .tables
            .get(Tbl::Meta, &turn_key())?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .unwrap_or_default();
        let after = prefix_end(&Key::new().str(&last).into_vec());
        let mut found = None;
        for from in [after.as_slice(), &[]] {
            self.tables.scan(
                Tbl::Queue,
                Bound::Included(from),
                Bound::Unbounded,
                false,
                &mut |k, v| {
                    found = Some((k.to_vec(), parse::<RunRef>(v)?));
                    Ok(false)
                },
            )?;
            if found.is_some() {
                break;
            }
        }
        let Some((key, run)) = found else {
            return Ok(None);
        };
        self.tables.remove(Tbl::Queue, &key)?;
        self.tables
            .put(Tbl::Meta, &turn_key(), run.tenant.as_bytes())?;
        Ok(Some(run))
    }

    fn put_chunk(
        &mut self,
        id: &str,
        index: usize,
        first: u64,
        chunk: &StoredChunk<'_>,
    ) -> Result<()> {
        self.tables.put(
            Tbl::Results,
            &Key::new()
                .bytes(&results_prefix(id, index))
                .u64(first)
                .into_vec(),
            chunk.records,
        )?;
        for (layout, piece) in Layout::ALL.into_iter().zip(chunk.pieces) {
            self.tables
                .put(Tbl::Pieces, &piece_key(id, index, layout, first), piece)?;
        }
        Ok(())
    }

    fn remove_chunks(&mut self, id: &str, index: usize) -> Result<u64> {
        let prefix = results_prefix(id, index);
        Ok(self.tables.remove_prefix(Tbl::Results, &prefix)?
            + self.tables.remove_prefix(Tbl::Pieces, &prefix)?)
    }

    fn exports_with_lapsed_leases(&mut self, moment: NaiveDateTime) -> Result<Vec<ExportRequest>> {
        records_where(&self.tables, Tbl::Exports, ALL, |r: &ExportRequest| {
            r.datasets.iter().any(|d| d.lease_lapsed(moment))
        })
    }

    fn expired_exports(&mut self, moment: NaiveDateTime) -> Result<Vec<ExportRequest>> {
        records_where(&self.tables, Tbl::Exports, ALL, |r: &ExportRequest| {
            r.expires_at <= moment
        })
    }
}
