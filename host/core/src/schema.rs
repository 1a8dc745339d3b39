//! Collection schemas: data files, not code, that declare what a collection holds.
//!
//! A schema names the collection, its fields (type, required, read-only, max length, label,
//! nested children), the key fields that identify a document for upsert, the fields `search`
//! looks in, the fields `ordering` may use, and references to other collections. Operators add a
//! collection by dropping a `*.json` schema into a schema directory; no rebuild is needed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::{Error, Result};

/// A field's type, with the names DRF's OPTIONS metadata uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text, trimmed, optionally bounded by `max_length`.
    String,
    /// A whole number.
    Integer,
    /// An exact decimal, kept as a string with `decimal_places` digits after the point.
    Decimal,
    /// A date and time, kept as `YYYY-MM-DDThh:mm:ss` (UTC when an offset was given).
    Datetime,
    /// `true` or `false`.
    Bool,
    /// A nested object whose fields are `children`.
    Object,
    /// A list of nested objects whose fields are `children`.
    List,
}

/// A reference from a field to the key of a document in another collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The referenced collection; its key must be a single field.
    pub collection: String,
    /// The read-only field that carries the referenced document's URL in responses.
    pub url_field: Option<String>,
}

/// One field of a collection or of a nested object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The JSON property name.
    pub name: String,
    /// What values it takes.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether a write must carry it.
    #[serde(default)]
    pub required: bool,
    /// Whether clients may only read it (writes ignore it).
    #[serde(default)]
    pub read_only: bool,
    /// Whether `null` is accepted; optional fields accept it by default.
    pub nullable: Option<bool>,
    /// The longest accepted string, in characters.
    pub max_length: Option<usize>,
    /// The human label shown by OPTIONS; derived from the name when absent.
    pub label: Option<String>,
    /// Digits after the decimal point for `decimal` fields.
    pub decimal_places: Option<u32>,
    /// The collection whose key this field holds.
    pub references: Option<Reference>,
    /// Fields of a nested object or of each list item.
    #[serde(default)]
    pub children: Vec<Field>,
}

impl Field {
    /// Whether `null` is an accepted value.
    pub fn accepts_null(&self) -> bool {
        self.nullable.unwrap_or(!self.required)
    }

    /// The label OPTIONS shows: the declared one, or the name as DRF derives it
    /// (`document_id` → `Document id`).
    pub fn label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| label_from_name(&self.name))
    }
}

/// DRF's derivation of a label from a field name.
pub fn label_from_name(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A collection's schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The collection's path segment, e.g. `stock-taking-documents`.
    pub collection: String,
    /// The display name OPTIONS reports, e.g. `Stock Taking Document List`.
    pub name: String,
    /// A description OPTIONS reports.
    #[serde(default)]
    pub description: String,
    /// The fields, in the order responses list them.
    pub fields: Vec<Field>,
    /// The fields whose values identify a document: a write with the same values replaces it.
    pub key: Vec<String>,
    /// Fields `search=` looks in.
    #[serde(default)]
    pub search: Vec<String>,
    /// Fields `ordering=` accepts; each gets an index.
    #[serde(default)]
    pub ordering: Vec<String>,
}

impl Schema {
    /// The top-level field of that name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !is_name(&self.collection) {
            return Err(format!(
                "collection name `{}` must start with a letter and use letters, digits, `-` and `_`",
                self.collection
            ));
        }
        if self.key.is_empty() {
            return Err("`key` names no field".into());
        }
        for name in &self.key {
            match self.field(name) {
                Some(f) if matches!(f.kind, FieldType::Object | FieldType::List) => {
                    return Err(format!("key field `{name}` is not a scalar"));
                }
                Some(f) if !f.required || f.read_only => {
                    return Err(format!("key field `{name}` must be required and writable"));
                }
                Some(_) => {}
                None => return Err(format!("key field `{name}` is not declared")),
            }
        }
        for name in self.search.iter().chain(&self.ordering) {
            if self.field(name).is_none() {
                return Err(format!("search/ordering field `{name}` is not declared"));
            }
        }
        check_fields(&self.fields)
    }
}

/// Names that are safe as URL segments, JSON keys and XML element names alike.
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_fields(fields: &[Field]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for f in fields {
        if !is_name(&f.name) {
            return Err(format!(
                "field name `{}` must start with a letter and use letters, digits, `-` and `_`",
                f.name
            ));
        }
        if !seen.insert(f.name.as_str())
            || f.name == "url"
            || f.name == crate::validate::EXTERNAL_IDS
        {
            return Err(format!("field `{}` is declared twice or reserved", f.name));
        }
        let nested = matches!(f.kind, FieldType::Object | FieldType::List);
        if nested == f.children.is_empty() {
            return Err(format!(
                "field `{}`: objects and lists need children, other types none",
                f.name
            ));
        }
        check_fields(&f.children)?;
    }
    Ok(())
}

/// Every collection the host knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    by_name: BTreeMap<String, Arc<Schema>>,
}

impl Schemas {
    /// Parses schema files given as (origin, JSON text); later ones replace earlier ones of the
    /// same collection, so a directory can override a bundled schema.
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = (String, &'a str)>) -> Result<Self> {
        let mut by_name = BTreeMap::new();
        for (origin, text) in sources {
            let schema: Schema = serde_json::from_str(text).map_err(|e| Error::Schema {
                name: origin.clone(),
                reason: e.to_string(),
            })?;
            schema.check().map_err(|reason| Error::Schema {
                name: origin.clone(),
                reason,
            })?;
            by_name.insert(schema.collection.clone(), Arc::new(schema));
        }
        let schemas = Schemas { by_name };
        schemas.check_references()?;
        Ok(schemas)
    }

    /// Reads every `*.json` file of `dir`, in name order.
    pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>> {
        let io = |source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).map_err(|source| Error::Io {
                    path: p.display().to_string(),
                    source,
                })?;
                Ok((p.display().to_string(), text))
            })
            .collect()
    }

    fn check_references(&self) -> Result<()> {
        fn walk(schemas: &Schemas, owner: &str, fields: &[Field]) -> Result<()> {
            for f in fields {
                if let Some(r) = &f.references {
                    match schemas.get(&r.collection) {
                        Some(target) if target.key.len() == 1 => {}
                        _ => {
                            return Err(Error::Schema {
                                name: owner.to_string(),
                                reason: format!(
                                    "field `{}` references `{}`, which is not a collection with a single key field",
                                    f.name, r.collection
                                ),
                            });
                        }
                    }
                }
                walk(schemas, owner, &f.children)?;
            }
            Ok(())
        }
        for s in self.by_name.values() {
            walk(self, &s.collection, &s.fields)?;
        }
        Ok(())
    }

    /// The schema of a collection.
    pub fn get(&self, collection: &str) -> Option<&Arc<Schema>> {
        self.by_name.get(collection)
    }

    /// The schema of a collection, or the error surfaces turn into a 404.
    pub fn require(&self, collection: &str) -> Result<&Arc<Schema>> {
        self.get(collection)
            .ok_or_else(|| Error::UnknownCollection(collection.to_string()))
    }

    /// All collections, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Schema>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_drf() {
        assert_eq!(label_from_name("document_id"), "Document id");
        assert_eq!(label_from_name("url"), "Url");
    }

    #[test]
    fn references_must_resolve() {
        let doc = r#"{"collection":"a","name":"A","key":["x"],
            "fields":[{"name":"x","type":"string","required":true,
                       "references":{"collection":"missing"}}]}"#;
        let err = Schemas::from_sources([("a.json".to_string(), doc)]).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn names_must_be_usable_in_urls_and_xml() {
        for (collection, field) in [("1st", "x"), ("a b", "x"), ("ok", "2x"), ("ok", "a<b")] {
            let doc = format!(
                r#"{{"collection":"{collection}","name":"A","key":["{field}"],
                    "fields":[{{"name":"{field}","type":"string","required":true}}]}}"#
            );
            assert!(
                Schemas::from_sources([("a.json".to_string(), doc.as_str())]).is_err(),
                "{collection} {field}"
            );
        }
    }

    #[test]
    fn key_fields_must_be_required() {
        let doc = r#"{"collection":"a","name":"A","key":["x"],
            "fields":[{"name":"x","type":"string"}]}"#;
        assert!(Schemas::from_sources([("a.json".to_string(), doc)]).is_err());
    }
}
