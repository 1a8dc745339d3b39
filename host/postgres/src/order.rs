//! The orders documents are listed in, with counted chunks so a page at any position costs
//! about what the first page does.
//!
//! Each order (by id, or by one ordering field) is the rows of `document_order` under its
//! (tenant, collection, field), sorted by `position`: the encoded value followed by the id.
//! `order_chunks` cuts each order into runs of at most [`MAX_CHUNK`] positions and counts
//! each run under its first position (the first run starts at the empty position). Seeking to
//! position `p` sums the counts to find the run that holds it, then skips fewer than
//! `MAX_CHUNK` rows inside it: one statement, whatever `p` is. Writes keep the counts in the
//! same transaction, a run that grows past the maximum being cut in pieces of [`PIECE`].

use bulkhost_core::Result;
use tokio_postgres::Row;

use crate::session::Session;

/// A run splits once it holds more positions than this.
const MAX_CHUNK: i32 = 1024;
/// The size of the pieces a run is cut into.
const PIECE: i64 = 512;
/// How many rows a seek reads at a time while its visitor wants more.
const BATCH: i64 = 500;

/// One order: a tenant's collection by one field ('' for the id).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) collection: &'a str,
    pub(crate) field: &'a str,
}

/// The order's chunks with the number of positions before each: the prefix of every seek.
const CHUNKS: &str = "WITH c AS (
        SELECT start, n, sum(n) OVER (ORDER BY start) - n AS before
        FROM order_chunks WHERE tenant = $1 AND collection = $2 AND field = $3),
    t AS (SELECT coalesce(sum(n), 0)::bigint AS total FROM c)";

impl Session {
    /// Adds positions (each with its document's id) to an order.
    pub(crate) fn add_positions(&self, order: Order<'_>, entries: &[(Vec<u8>, i64)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (positions, ids): (Vec<&[u8]>, Vec<i64>) =
            entries.iter().map(|(p, id)| (p.as_slice(), *id)).unzip();
        self.execute(
            "INSERT INTO document_order (tenant, collection, field, position, id)
             SELECT $1, $2, $3, p, id FROM unnest($4::bytea[], $5::int8[]) AS e(p, id)",
            &[
                &order.tenant,
                &order.collection,
                &order.field,
                &positions,
                &ids,
            ],
        )?;
        self.count(order, &positions, 1)
    }

    /// Removes positions from an order.
    pub(crate) fn remove_positions(&self, order: Order<'_>, positions: &[Vec<u8>]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let positions: Vec<&[u8]> = positions.iter().map(Vec::as_slice).collect();
        self.execute(
            "DELETE FROM document_order
             WHERE tenant = $1 AND collection = $2 AND field = $3 AND position = ANY($4)",
            &[&order.tenant, &order.collection, &order.field, &positions],
        )?;
        self.count(order, &positions, -1)
    }

    /// Adds `sign` to the count of the run holding each position, then cuts the runs that
    /// grew too long and drops the ones left empty (but the first). The runs are read once,
    /// over the span of the positions, and the positions assigned to them here: one range
    /// scan, where a probe per position would cost a lookup each.
    fn count(&self, order: Order<'_>, positions: &[&[u8]], sign: i32) -> Result<()> {
        let mut sorted = positions.to_vec();
        sorted.sort_unstable();
        let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
            return Ok(());
        };
        let starts: Vec<Vec<u8>> = self
            .query(
                "SELECT start FROM order_chunks
                 WHERE tenant = $1 AND collection = $2 AND field = $3 AND start <= $5
                   AND start >= coalesce((
                       SELECT start FROM order_chunks
                       WHERE tenant = $1 AND collection = $2 AND field = $3 AND start <= $4
                       ORDER BY start DESC LIMIT 1), '\\x'::bytea)
                 ORDER BY start",
                &[&order.tenant, &order.collection, &order.field, first, last],
            )?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        let mut runs: Vec<&[u8]> = Vec::new();
        let mut deltas: Vec<i32> = Vec::new();
        for position in &sorted {
            let holder = starts.partition_point(|s| s.as_slice() <= *position);
            let start = holder
                .checked_sub(1)
                .map_or(&[][..], |i| starts[i].as_slice());
            match (runs.last(), deltas.last_mut()) {
                (Some(last), Some(n)) if *last == start => *n += sign,
                _ => {
                    runs.push(start);
                    deltas.push(sign);
                }
            }
        }
        let touched = self.query(
            "INSERT INTO order_chunks AS oc (tenant, collection, field, start, n)
             SELECT $1, $2, $3, s, k FROM unnest($4::bytea[], $5::int4[]) AS e(s, k)
             ON CONFLICT (tenant, collection, field, start) DO UPDATE SET n = oc.n + EXCLUDED.n
             RETURNING start, n",
            &[
                &order.tenant,
                &order.collection,
                &order.field,
                &runs,
                &deltas,
            ],
        )?;
        for row in touched {
            let (start, n): (Vec<u8>, i32) = (row.get(0), row.get(1));
            if n > MAX_CHUNK {
                self.split(order, &start, n)?;
            } else if n <= 0 && !start.is_empty() {
                self.execute(
                    "DELETE FROM order_chunks
                     WHERE tenant = $1 AND collection = $2 AND field = $3 AND start = $4",
                    &[&order.tenant, &order.collection, &order.field, &start],
                )?;
            }
        }
        Ok(())
    }

    /// Cuts the run starting at `start`, of `n` positions, into pieces of [`PIECE`]. The run
    /// ends where the next one starts; its positions are read between the two bounds, so the
    /// cut costs the run's length, not the rest of the order's.
    fn split(&self, order: Order<'_>, start: &[u8], n: i32) -> Result<()> {
        let next: Option<Vec<u8>> = self
            .query_opt(
                "SELECT start FROM order_chunks
                 WHERE tenant = $1 AND collection = $2 AND field = $3 AND start > $4
                 ORDER BY start LIMIT 1",
                &[&order.tenant, &order.collection, &order.field, &start],
            )?
            .map(|row| row.get(0));
        // $6 stays a parameter either way, so the statement keeps one shape per bound; an OR
        // of the two would keep the index from stopping at the next run.
        let bounded = if next.is_some() {
            "AND position < $6"
        } else {
            "AND $6::bytea IS NULL"
        };
        let cuts: Vec<Vec<u8>> = self
            .query(
                &format!(
                    "SELECT position FROM (
                        SELECT position, row_number() OVER (ORDER BY position) - 1 AS r
                        FROM document_order
                        WHERE tenant = $1 AND collection = $2 AND field = $3
                          AND position >= $4 {bounded}
                     ) s WHERE r > 0 AND r % $5 = 0"
                ),
                &[
                    &order.tenant,
                    &order.collection,
                    &order.field,
                    &start,
                    &PIECE,
                    &next,
                ],
            )?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        let mut starts: Vec<&[u8]> = vec![start];
        starts.extend(cuts.iter().map(Vec::as_slice));
        let counts: Vec<i32> = (0..starts.len())
            .map(|i| {
                let before = i as i64 * PIECE;
                (i64::from(n) - before).min(PIECE) as i32
            })
            .collect();
        self.execute(
            "INSERT INTO order_chunks AS oc (tenant, collection, field, start, n)
             SELECT $1, $2, $3, s, k FROM unnest($4::bytea[], $5::int4[]) AS e(s, k)
             ON CONFLICT (tenant, collection, field, start) DO UPDATE SET n = EXCLUDED.n",
            &[
                &order.tenant,
                &order.collection,
                &order.field,
                &starts,
                &counts,
            ],
        )
        .map(drop)
    }

    /// Visits the rows of `documents` in the order, from `position` (counted from the end when
    /// `descending`), until `visit` answers `false`; answers the order's length.
    pub(crate) fn seek_order(
        &self,
        order: Order<'_>,
        descending: bool,
        position: u64,
        visit: &mut dyn FnMut(&Row) -> Result<bool>,
    ) -> Result<u64> {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        let located = self.query_one(
            &format!(
                "{CHUNKS},
                g AS (SELECT CASE WHEN $5 THEN t.total - 1 - $4 ELSE $4 END AS target FROM t),
                p AS (SELECT c.start, g.target - c.before AS skip FROM c, g
                      WHERE g.target >= 0 AND c.before <= g.target ORDER BY c.start DESC LIMIT 1)
             SELECT t.total, a.position FROM t LEFT JOIN (p CROSS JOIN LATERAL (
                 SELECT o.position FROM document_order o
                 WHERE o.tenant = $1 AND o.collection = $2 AND o.field = $3 AND o.position >= p.start
                 ORDER BY o.position OFFSET p.skip LIMIT 1) a) ON true"
            ),
            &[&order.tenant, &order.collection, &order.field, &position, &descending],
        )?;
        let total: i64 = located.get(0);
        let Some(mut anchor): Option<Vec<u8>> = located.get(1) else {
            return Ok(total as u64);
        };
        let (first, next, direction) = if descending {
            ("<=", "<", "DESC")
        } else {
            (">=", ">", "ASC")
        };
        let mut comparison = first;
        // The documents of a batch of positions are looked up one by one, by id: a join
        // left to estimates could read the whole collection for a page.
        loop {
            let rows = self.query(
                &format!(
                    "SELECT o.position, d.id, d.version, d.body, d.size
                     FROM (SELECT position, id FROM document_order
                           WHERE tenant = $1 AND collection = $2 AND field = $3
                             AND position {comparison} $4
                           ORDER BY position {direction} LIMIT $5) o
                     CROSS JOIN LATERAL (
                        SELECT id, version, body, size FROM documents
                        WHERE tenant = $1 AND collection = $2 AND id = o.id LIMIT 1) d
                     ORDER BY o.position {direction}"
                ),
                &[
                    &order.tenant,
                    &order.collection,
                    &order.field,
                    &anchor,
                    &BATCH,
                ],
            )?;
            for row in &rows {
                if !visit(row)? {
                    return Ok(total as u64);
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == BATCH => anchor = last.get(0),
                _ => return Ok(total as u64),
            }
            comparison = next;
        }
    }

    /// How many positions of the order come before `bound`.
    pub(crate) fn count_below(&self, order: Order<'_>, bound: &[u8]) -> Result<u64> {
        let row = self.query_one(
            "WITH c AS (
                    SELECT start, n, sum(n) OVER (ORDER BY start) - n AS before
                    FROM order_chunks WHERE tenant = $1 AND collection = $2 AND field = $3),
                p AS (SELECT start, before FROM c WHERE start <= $4 ORDER BY start DESC LIMIT 1)
             SELECT coalesce((SELECT before FROM p), 0)::bigint + (
                 SELECT count(*) FROM document_order o, p
                 WHERE o.tenant = $1 AND o.collection = $2 AND o.field = $3
                   AND o.position >= p.start AND o.position < $4)",
            &[&order.tenant, &order.collection, &order.field, &bound],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// How many positions the order holds.
    pub(crate) fn order_len(&self, order: Order<'_>) -> Result<u64> {
        let row = self.query_one(
            "SELECT coalesce(sum(n), 0)::bigint FROM order_chunks
             WHERE tenant = $1 AND collection = $2 AND field = $3",
            &[&order.tenant, &order.collection, &order.field],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
