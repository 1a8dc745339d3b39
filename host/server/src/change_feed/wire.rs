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

/// `hooks.json`: a company's change hooks (ABRA Flexi's web hooks), and the answer to a
/// registration, which holds the new hook.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookListing {
    /// ABRA's envelope.
    pub winstrom: HooksBody,
}

/// The hooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct HooksBody {
    /// Always `1.0`.
    #[serde(rename = "@version")]
    pub version: &'static str,
    /// The hooks, by id.
    pub hooks: Vec<HookEntry>,
}

/// One hook; every value is a string, as in ABRA Flexi.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookEntry {
    /// Its id: `DELETE hooks/{id}` removes it.
    pub id: String,
    /// Where the changes are posted.
    pub url: String,
    /// `JSON` or `XML`.
    #[serde(rename = "dataFormat")]
    pub data_format: &'static str,
    /// The last version the hook acknowledged; it is sent the changes after it.
    #[serde(rename = "lastVersion")]
    pub last_version: String,
    /// Failed attempts in a row.
    pub penalty: String,
    /// `true` once delivery stopped after too many failures; `PUT hooks/{id}/retry` resumes it.
    pub paused: String,
    /// Why the last attempt failed, or why the hook is paused; empty otherwise.
    pub failure: String,
}
