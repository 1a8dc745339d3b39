//! The JSON bodies of ABRA Flexi's change feed, as types; a collection's listing is described
//! from its schema when the document is built.

use serde::Serialize;
use utoipa::ToSchema;

/// `changes.json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changes {
    /// ABRA's envelope.
    pub winstrom: ChangesBody,
}

/// The changes and where to go on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesBody {
    /// The company's newest version.
    #[serde(rename = "@globalVersion")]
    pub global_version: String,
    /// The changes, ascending by version.
    pub changes: Vec<Change>,
    /// The `start` of the next listing, or `none` when this one reached the newest version.
    pub next: String,
}

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    /// The record type (collection).
    #[serde(rename = "@evidence")]
    pub evidence: String,
    /// The version the change made.
    #[serde(rename = "@in-version")]
    pub in_version: String,
    /// `create`, `update` or `delete`.
    #[serde(rename = "@operation")]
    pub operation: &'static str,
    /// When, `YYYY-MM-DD hh:mm:ss.f`.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// The record's id.
    pub id: String,
    /// `code:KEY` and the record's external ids.
    #[serde(rename = "external-ids")]
    pub external_ids: Vec<String>,
}

/// The answer of `changes/enable`, `disable` and `status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Switched {
    /// ABRA's envelope.
    pub winstrom: Success,
}

/// Whether the feed is on (or the switch worked).
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    /// Always `1.0`.
    #[serde(rename = "@version")]
    pub version: &'static str,
    /// `true` or `false`.
    pub success: String,
}

/// An error in ABRA's envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct AbraFailure {
    /// ABRA's envelope.
    pub winstrom: Failure,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct Failure {
    /// Always `1.0`.
    #[serde(rename = "@version")]
    pub version: &'static str,
    /// Always `false`.
    pub success: &'static str,
    /// What went wrong.
    pub message: String,
}
