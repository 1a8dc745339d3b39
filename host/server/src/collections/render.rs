//! Documents as responses show them: `url` first, then the schema's fields in order, each
//! reference followed by the URL of the document it names.
//!
//! Rendering serializes straight from the stored bodies: a page of documents is written to
//! the response without building a second JSON tree beside it, and each distinct reference is
//! looked up once per page, however many documents name it.

use std::collections::HashMap;

use bulkhost_core::{Document, Documents, Field, FieldType, Result};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

/// The ids of the documents that a set of documents' references name: collection → code →
/// id. A code missing from it names no document, and its link renders as `null`.
#[derive(Debug, Default)]
pub struct Links(HashMap<String, HashMap<String, u64>>);

impl Links {
    /// Looks up, in one snapshot, every distinct reference of `docs`.
    pub fn of(
        documents: &Documents,
        tenant: &str,
        fields: &[Field],
        docs: &[Document],
    ) -> Result<Links> {
        Ok(Links(documents.referenced_ids(tenant, fields, docs)?))
    }

    fn id(&self, collection: &str, code: &str) -> Option<u64> {
        self.0.get(collection)?.get(code).copied()
    }
}

/// What every rendered document of one response shares.
pub struct Context<'a> {
    /// The server's base URL, which links start with.
    pub base: &'a str,
    /// The collection's URL, which each document's `url` extends.
    pub collection_url: &'a str,
    /// The collection's fields.
    pub fields: &'a [Field],
    /// The ids references name.
    pub links: &'a Links,
}

/// One document as a response shows it.
pub struct Rendered<'a> {
    context: &'a Context<'a>,
    doc: &'a Document,
}

impl<'a> Context<'a> {
    /// `doc`, rendered.
    pub fn render(&'a self, doc: &'a Document) -> Rendered<'a> {
        Rendered { context: self, doc }
    }
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let url = format!("{}{}/", self.context.collection_url, self.doc.id);
        map.serialize_entry("url", &url)?;
        fields(&mut map, self.context, self.context.fields, &self.doc.body)?;
        map.end()
    }
}

/// The entries of `body`'s `fields`, in the schema's order, each reference followed by its
/// link; a field the body lacks renders as `null`.
fn fields<M: SerializeMap>(
    map: &mut M,
    context: &Context<'_>,
    fields: &[Field],
    body: &Map<String, Value>,
) -> std::result::Result<(), M::Error> {
    for f in fields {
        let value = body.get(&f.name).unwrap_or(&Value::Null);
        map.serialize_entry(
            &f.name,
            &Nested {
                context,
                field: f,
                value,
            },
        )?;
        if let Some(r) = &f.references
            && let Some(url_field) = &r.url_field
        {
            let url = match value {
                Value::String(code) => context
                    .links
                    .id(&r.collection, code)
                    .map(|id| format!("{}/api/v1/{}/{id}/", context.base, r.collection)),
                _ => None,
            };
            map.serialize_entry(url_field, &url)?;
        }
    }
    Ok(())
}

/// A field's value: nested objects (alone or as list items) rendered by the field's children,
/// anything else as stored.
struct Nested<'a> {
    context: &'a Context<'a>,
    field: &'a Field,
    value: &'a Value,
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let object = |body| Object {
            context: self.context,
            fields: &self.field.children,
            body,
        };
        match (self.value, self.field.kind) {
            (Value::Object(child), FieldType::Object) => object(child).serialize(serializer),
            (Value::Array(items), FieldType::List) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    match item {
                        Value::Object(child) => seq.serialize_element(&object(child))?,
                        other => seq.serialize_element(other)?,
                    }
                }
                seq.end()
            }
            _ => self.value.serialize(serializer),
        }
    }
}

/// A nested object, rendered by its fields.
struct Object<'a> {
    context: &'a Context<'a>,
    fields: &'a [Field],
    body: &'a Map<String, Value>,
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        fields(&mut map, self.context, self.fields, self.body)?;
        map.end()
    }
}
