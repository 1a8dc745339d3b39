//! Records stored as JSON in the job tables (exports, batches, the outbox), the named
//! sequences that order them, and the clock they are stamped with.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::keys::Key;
use crate::storage::Writer;
use crate::{Error, Result};

/// The next value of the named sequence, advanced inside the caller's transaction.
pub(crate) fn next_seq(w: &mut impl Writer, name: &str) -> Result<u64> {
    let key = Key::new().str("").str(name).into_vec();
    let seq = w.counter(&key)? + 1;
    w.set_counter(&key, seq)?;
    Ok(seq)
}

/// A record as stored.
pub(crate) fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| unreachable!("plain records serialize: {e}"))
}

/// A stored record; a failure means the database holds what this build does not read.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| Error::Corrupt(e.to_string()))
}

/// The time records are stamped with (UTC).
pub(crate) fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
