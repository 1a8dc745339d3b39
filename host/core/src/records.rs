//! Records stored as JSON (exports, batches, the outbox, write marks), and the clock they are
//! stamped with.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
