//! The outbox: notices a finished export request or batch owes its client — a webhook call,
//! a mail — written in the transaction that finishes the work, so a crash neither loses nor
//! invents one, and kept until delivered or given up.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::engine::OutboxTxn;
use crate::{Result, Store};

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
    txn: &mut (impl OutboxTxn + ?Sized),
    notice: Notice,
    tenant: &str,
    id: &str,
    to: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let delivery = Delivery {
        seq: 0,
        notice,
        tenant: tenant.to_string(),
        id: id.to_string(),
        url: to.to_string(),
        attempts: 0,
        not_before: now,
    };
    txn.owe(&delivery).map(drop)
}

/// The deliveries finished work owes: claimed, tried, postponed, settled.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a> {
    store: &'a Store,
}

impl Store {
    /// The deliveries finished work owes: claimed, tried, postponed, settled.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { store: self }
    }
}

impl Outbox<'_> {
    /// How long the delivery due longest (and not claimed) has waited at `moment`; zero when
    /// none is due.
    pub fn lag(&self, moment: NaiveDateTime) -> Result<std::time::Duration> {
        let oldest = self.store.engine.read()?.oldest_due(moment)?;
        Ok(oldest
            .and_then(|due| (moment - due).to_std().ok())
            .unwrap_or_default())
    }

    /// Claims the deliveries due at `moment` for this store's worker, oldest first: at most
    /// `per_tenant` of each tenant and `limit` in all, so that one tenant's backlog (a dead
    /// receiver's retries) never hides another tenant's due deliveries. A claimed delivery is
    /// not due again before `moment` plus [`Store::lease`], so no other host delivers it
    /// meanwhile; settling it ends the claim.
    pub fn due_deliveries(
        &self,
        moment: NaiveDateTime,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let held_until = moment + chrono::Duration::from_std(self.store.lease).unwrap_or_default();
        self.store.write(|txn| {
            let due = txn.due(moment, per_tenant, limit)?;
            for delivery in &due {
                txn.put_delivery(&Delivery {
                    not_before: held_until,
                    ..delivery.clone()
                })?;
            }
            Ok(due)
        })
    }

    /// Gives back deliveries claimed by [`Outbox::due_deliveries`] that were not started, due
    /// again as they were.
    pub fn release_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        self.store.write(|txn| {
            deliveries
                .iter()
                .try_for_each(|delivery| txn.put_delivery(delivery))
        })
    }

    /// Moves a delivery to `until` without counting an attempt: it was not tried (its tenant
    /// had sent as many mails as it may for now).
    pub fn postpone_delivery(&self, delivery: &Delivery, until: NaiveDateTime) -> Result<()> {
        self.store.write(|txn| {
            txn.put_delivery(&Delivery {
                not_before: until,
                ..delivery.clone()
            })
        })
    }

    /// Records a delivery's outcome: delivered (or given up), it leaves the outbox; otherwise
    /// it is tried again from `retry_at`.
    pub fn settle_delivery(
        &self,
        delivery: &Delivery,
        retry_at: Option<NaiveDateTime>,
    ) -> Result<()> {
        self.store.write(|txn| match retry_at {
            None => txn.remove_delivery(delivery.seq),
            Some(at) => txn.put_delivery(&Delivery {
                attempts: delivery.attempts + 1,
                not_before: at,
                ..delivery.clone()
            }),
        })
    }
}
