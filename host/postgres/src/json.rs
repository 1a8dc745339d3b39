//! Records kept as JSON text (bodies, change records, requests, batches, deliveries, tokens):
//! one way to write them and one to read them back, a failure to read one meaning the database
//! holds what this build does not read.

use bulkhost_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored record.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A record as stored.
pub(crate) fn text(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(e.to_string()))
}
