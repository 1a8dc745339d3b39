//! The outbox in PostgreSQL's table. Due deliveries are claimed with `SKIP LOCKED`, so hosts
//! polling at once take different ones.

use bulkhost_core::engine::{OutboxTxn, OutboxView};
use bulkhost_core::{Delivery, Result};
use chrono::NaiveDateTime;

use crate::json::{parse, text};
use crate::session::Session;

impl OutboxView for Session {
    fn oldest_due(&self, moment: NaiveDateTime) -> Result<Option<NaiveDateTime>> {
        let row = self.query_one(
            "SELECT min(not_before) FROM outbox WHERE not_before <= $1",
            &[&moment],
        )?;
        Ok(row.get(0))
    }
}

impl OutboxTxn for Session {
    fn owe(&mut self, delivery: &Delivery) -> Result<u64> {
        let row = self.query_one(
            "INSERT INTO outbox (tenant, not_before, delivery) VALUES ($1, $2, $3) RETURNING seq",
            &[&delivery.tenant, &delivery.not_before, &text(delivery)?],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn due(
        &mut self,
        moment: NaiveDateTime,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let rows = self.query(
            // The outer `not_before` is checked again on a row another host claimed while this
            // statement ran, which the window over the snapshot cannot see.
            "SELECT seq, delivery FROM outbox WHERE not_before <= $1 AND seq IN (
                SELECT seq FROM (
                    SELECT seq, row_number() OVER (PARTITION BY tenant ORDER BY seq) AS r
                    FROM outbox WHERE not_before <= $1) d
                WHERE r <= $2 ORDER BY seq LIMIT $3)
             ORDER BY seq FOR UPDATE SKIP LOCKED",
            &[&moment, &(per_tenant as i64), &(limit as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let mut delivery: Delivery = parse(row.get(1))?;
                delivery.seq = row.get::<_, i64>(0) as u64;
                Ok(delivery)
            })
            .collect()
    }

    fn put_delivery(&mut self, delivery: &Delivery) -> Result<()> {
        self.execute(
            "UPDATE outbox SET not_before = $2, delivery = $3 WHERE seq = $1",
            &[
                &(delivery.seq as i64),
                &delivery.not_before,
                &text(delivery)?,
            ],
        )
        .map(drop)
    }

    fn remove_delivery(&mut self, seq: u64) -> Result<()> {
        self.execute("DELETE FROM outbox WHERE seq = $1", &[&(seq as i64)])
            .map(drop)
    }
}
