//! The bodies of the collections dialect that do not depend on a collection's schema, as
//! types; a collection's documents are described from its schema when the document is built.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `201` to an upsert: how many documents were replaced and how many added.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upserted {
    /// Documents whose key existed.
    pub updated: u64,
    /// Documents added.
    pub inserted: u64,
}

/// A file attached to a document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attachment)]
pub struct AttachmentInfo {
    /// Where to download it.
    pub url: String,
    /// Its name.
    pub name: String,
    /// The media type its uploader declared.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: String,
}

/// DRF's OPTIONS metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct Metadata {
    /// The view's name.
    pub name: String,
    /// The collection's description.
    pub description: String,
    /// Media types answered.
    pub renders: Vec<&'static str>,
    /// Media types read.
    pub parses: Vec<&'static str>,
    /// What a POST takes, field by field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Actions>,
}

/// The writes a list view takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Actions {
    /// Field name → `{type, required, read_only, label, ...}`, in the schema's order.
    #[serde(rename = "POST")]
    #[schema(value_type = Object)]
    pub post: Map<String, Value>,
}
