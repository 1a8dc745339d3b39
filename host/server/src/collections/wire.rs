//! The bodies of the collections dialect that do not depend on a collection's schema, as
//! types; a collection's documents are described from its schema when the document is built.

use serde::Serialize;
use serde_json::Value;
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
    /// Field name → its description, in the schema's order.
    #[serde(rename = "POST")]
    #[schema(value_type = std::collections::HashMap<String, FieldMetadata>)]
    pub post: FieldTable,
}

/// Fields by name, in the schema's order.
#[derive(Debug, Default)]
pub struct FieldTable(pub Vec<(String, FieldMetadata)>);

impl Serialize for FieldTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, field)| (name, field)))
    }
}

/// DRF's description of one field in OPTIONS.
#[derive(Debug, Serialize, ToSchema)]
#[schema(no_recursion)]
pub struct FieldMetadata {
    /// `string`, `integer`, `decimal`, `datetime`, `boolean`, `nested object` or `field`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether a write must give it.
    pub required: bool,
    /// Whether writes leave it alone.
    pub read_only: bool,
    /// Its label (a list's `child` has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The longest text it takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The decimal places it keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimal_places: Option<u32>,
    /// A nested object's fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, FieldMetadata>>)]
    pub children: Option<FieldTable>,
    /// What a list holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<Box<FieldMetadata>>,
}

/// One page of a collection, as DRF's page-number pagination answers it; `T` is a document
/// as the collection's schema renders it.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// Documents in the whole listing.
    pub count: u64,
    /// The next page's URL.
    pub next: Option<String>,
    /// The previous page's URL.
    pub previous: Option<String>,
    /// The documents, rendered as the collection's schema says.
    pub results: Vec<T>,
    /// The version the page was read at, with `add-global-version=true`.
    #[serde(rename = "globalVersion", skip_serializing_if = "Option::is_none")]
    pub global_version: Option<u64>,
}

/// DRF's error body: a `detail`, or field errors by field name.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Failure {
    /// `{"detail": "..."}`.
    Detail {
        /// What went wrong.
        detail: String,
    },
    /// `{"field": ["message", ...], ...}`, nested as the document is.
    Fields(Value),
}
