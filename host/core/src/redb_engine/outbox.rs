//! The outbox in redb's table: deliveries under their sequence number, oldest first.

use std::collections::HashMap;
use std::ops::Bound;

use chrono::NaiveDateTime;

use super::{Reader, Redb, RedbTxn, Tbl, Writer, decode_u64, next_seq};
use crate::Result;
use crate::engine::{OutboxTxn, OutboxView};
use crate::keys::Key;
use crate::outbox::Delivery;
use crate::records::{json, parse};

const OUTBOX_SEQ: &str = "outbox_seq";

fn delivery_key(seq: u64) -> Vec<u8> {
    Key::new().u64(seq).into_vec()
}

impl<T: Reader, W> OutboxView for Redb<T, W> {
    /// Reads every owed delivery: the outbox holds what is not delivered yet, which stays
    /// small unless receivers are down.
    fn oldest_due(&self, moment: NaiveDateTime) -> Result<Option<NaiveDateTime>> {
        let mut oldest: Option<NaiveDateTime> = None;
        self.tables.scan(
            Tbl::Outbox,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |_, v| {
                let due = parse::<Delivery>(v)?.not_before;
                if due <= moment && oldest.is_none_or(|o| due < o) {
                    oldest = Some(due);
                }
                Ok(true)
            },
        )?;
        Ok(oldest)
    }
}

impl OutboxTxn for RedbTxn<'_, '_> {
    fn owe(&mut self, delivery: &Delivery) -> Result<u64> {
        let seq = next_seq(&mut self.tables, OUTBOX_SEQ)?;
        let owed = Delivery {
            seq,
            ..delivery.clone()
        };
        self.put_delivery(&owed)?;
        Ok(seq)
    }

    fn due(
        &mut self,
        moment: NaiveDateTime,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        let mut taken: HashMap<String, usize> = HashMap::new();
        self.tables.scan(
            Tbl::Outbox,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, v| {
                let mut delivery: Delivery = parse(v)?;
                delivery.seq = decode_u64(k);
                let of_tenant = taken.entry(delivery.tenant.clone()).or_default();
                if delivery.not_before <= moment && *of_tenant < per_tenant {
                    *of_tenant += 1;
                    out.push(delivery);
                }
                Ok(out.len() < limit)
            },
        )?;
        Ok(out)
    }

    fn put_delivery(&mut self, delivery: &Delivery) -> Result<()> {
        self.tables
            .put(Tbl::Outbox, &delivery_key(delivery.seq), &json(delivery))
    }

    fn remove_delivery(&mut self, seq: u64) -> Result<()> {
        self.tables
            .remove(Tbl::Outbox, &delivery_key(seq))
            .map(drop)
    }
}
