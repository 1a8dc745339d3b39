//! The outbox: notices a finished export request or batch owes its client — a webhook call,
//! a mail — written in the transaction that finishes the work, so a crash neither loses nor
//! invents one, and kept until delivered or given up.

use std::collections::HashMap;
use std::ops::Bound;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::keys::Key;
use crate::records::{json, next_seq, parse};
use crate::storage::{Reader, Tbl, Writer, decode_u64};
use crate::{Result, Store};

const OUTBOX_SEQ: &str = "outbox_seq";

/// What a delivery tells, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// An export request's final `EstadoGenerarXXL`, posted to its webhook.
    #[default]
    Export,
    /// A finished batch, posted to its `callbackUrl` with `?uid=<uuid>`.
    BatchCallback,
    /// A finished batch, mailed to its webhook's `email`.
    BatchMail,
}

/// A delivery the outbox owes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its position in the outbox.
    #[serde(skip)]
    pub seq: u64,
    /// What it tells.
    #[serde(default)]
    pub notice: Notice,
    /// The tenant of the request or batch.
    pub tenant: String,
    /// The export request or batch whose end is told.
    pub id: String,
    /// Where to: a URL, or a mail address for [`Notice::BatchMail`].
    pub url: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this moment (UTC).
    pub not_before: NaiveDateTime,
}

/// Owes a delivery, inside the transaction that finishes what it tells of.
pub(crate) fn owe(
    w: &mut impl Writer,
    notice: Notice,
    tenant: &str,
    id: &str,
    to: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let seq = next_seq(w, OUTBOX_SEQ)?;
    let delivery = Delivery {
        seq,
        notice,
        tenant: tenant.to_string(),
        id: id.to_string(),
        url: to.to_string(),
        attempts: 0,
        not_before: now,
    };
    w.put(
        Tbl::Outbox,
        &Key::new().u64(seq).into_vec(),
        &json(&delivery),
    )
}

impl Store {
    /// Deliveries due at `moment`, oldest first: at most `per_tenant` of each tenant and
    /// `limit` in all, so that one tenant's backlog (a dead receiver's retries) never hides
    /// another tenant's due deliveries.
    pub fn due_deliveries(
        &self,
        moment: NaiveDateTime,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let r = self.storage.read()?;
        let mut out = Vec::new();
        let mut taken: HashMap<String, usize> = HashMap::new();
        r.scan(
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

    /// Moves a delivery to `until` without counting an attempt: it was not tried (its tenant
    /// had sent as many mails as it may for now).
    pub fn postpone_delivery(&self, delivery: &Delivery, until: NaiveDateTime) -> Result<()> {
        let key = Key::new().u64(delivery.seq).into_vec();
        let later = Delivery {
            not_before: until,
            ..delivery.clone()
        };
        self.storage
            .write(|w| w.put(Tbl::Outbox, &key, &json(&later)))
    }

    /// Records a delivery's outcome: delivered (or given up), it leaves the outbox; otherwise
    /// it is tried again from `retry_at`.
    pub fn settle_delivery(
        &self,
        delivery: &Delivery,
        retry_at: Option<NaiveDateTime>,
    ) -> Result<()> {
        let key = Key::new().u64(delivery.seq).into_vec();
        self.storage.write(|w| match retry_at {
            None => w.remove(Tbl::Outbox, &key).map(|_| ()),
            Some(at) => {
                let next = Delivery {
                    attempts: delivery.attempts + 1,
                    not_before: at,
                    ..delivery.clone()
                };
                w.put(Tbl::Outbox, &key, &json(&next))
            }
        })
    }
}
