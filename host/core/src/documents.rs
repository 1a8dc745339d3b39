//! The one write path for business documents, and the reads that page through them.
//!
//! A write validates every submitted object, checks references, upserts by the schema's key,
//! maintains the ordering indexes and appends one change record per changed document, all in a
//! single redb transaction: either the whole request lands with its changes, or nothing does.

use serde_json::{Map, Value};

use crate::changes::{ChangeRecord, Operation, change_time};
use crate::keys::{Key, trailing_u64};
use crate::quota::{self, Usage};
use crate::ranked::{self, RankWriter, Seq};
use crate::schema::{Field, Schema};
use crate::storage::{ReadTables, Reader, Tbl, WriteTables, Writer, decode_u64};
use crate::validate::{self, EXTERNAL_IDS, FieldErrors, ValidationErrors, validate_object};
use crate::{Error, Result, Store};

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The numeric id, assigned at first insert and stable across updates.
    pub id: u64,
    /// The global version of the tenant at the document's last change.
    pub version: u64,
    /// The normalized fields, in schema order.
    pub body: Map<String, Value>,
}

/// What a write request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Upserted {
    /// Documents that replaced an existing one with the same key.
    pub updated: u64,
    /// Documents that were new.
    pub inserted: u64,
    /// The tenant's global version after the write.
    pub version: u64,
    /// The id of the last document written, for a `Location` header.
    pub last_id: Option<u64>,
}

/// How a client names one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocRef {
    /// The numeric id.
    Id(u64),
    /// The key values, joined by `/` for composite keys (seed 002's `code:`).
    Code(String),
    /// An external id, `ext:SYSTEM:VALUE` (seed 002's `ext:`).
    External(String),
}

impl DocRef {
    /// Parses `123`, `code:ABC` or `ext:SYSTEM:VALUE`.
    pub fn parse(s: &str) -> Option<DocRef> {
        if let Some(code) = s.strip_prefix("code:") {
            return Some(DocRef::Code(code.to_string()));
        }
        if s.starts_with("ext:") {
            return Some(DocRef::External(s.to_string()));
        }
        s.parse().ok().map(DocRef::Id)
    }
}

/// One field of an `ordering=` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// The schema field.
    pub field: String,
    /// `-field`: largest first.
    pub descending: bool,
}

/// A page request.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// How many matching documents to skip.
    pub offset: u64,
    /// How many to answer at most.
    pub limit: u64,
    /// `search=`: every whitespace-separated term must occur (case-insensitively) in one of the
    /// schema's search fields.
    pub search: Option<String>,
    /// `ordering=`; empty means by id.
    pub ordering: Vec<OrderBy>,
}

/// A page of documents.
#[derive(Debug, Clone)]
pub struct Page {
    /// How many documents match in all.
    pub count: u64,
    /// The documents of this page.
    pub documents: Vec<Document>,
    /// The tenant's global version in the snapshot the page was read from.
    pub global_version: u64,
}

pub(crate) fn doc_prefix(tenant: &str, collection: &str) -> Key {
    Key::new().str(tenant).str(collection)
}

fn doc_key(tenant: &str, collection: &str, id: u64) -> Vec<u8> {
    doc_prefix(tenant, collection).u64(id).into_vec()
}

/// The prefix of a collection's index by `field`.
fn index_prefix(tenant: &str, collection: &str, field: &str) -> Vec<u8> {
    Key::new().str(tenant).str(collection).str(field).into_vec()
}

fn index_entry(prefix: &[u8], value: &Value, id: u64) -> Vec<u8> {
    Key::new().bytes(prefix).value(value).u64(id).into_vec()
}

fn primary(prefix: &[u8]) -> Seq<'_> {
    Seq {
        tbl: Tbl::Docs,
        prefix,
    }
}

fn index(prefix: &[u8]) -> Seq<'_> {
    Seq {
        tbl: Tbl::Index,
        prefix,
    }
}

fn code_key(tenant: &str, collection: &str, values: &[String]) -> Vec<u8> {
    values
        .iter()
        .fold(Key::new().str(tenant).str(collection), |k, v| k.str(v))
        .into_vec()
}

/// A scalar as the text a key or search compares.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn key_values(schema: &Schema, body: &Map<String, Value>) -> Vec<String> {
    schema
        .key
        .iter()
        .map(|k| body.get(k).map(scalar_text).unwrap_or_default())
        .collect()
}

/// The change feed's entry for `operation` on the document `id` whose body is `body`.
fn change_of(
    schema: &Schema,
    id: u64,
    body: &Map<String, Value>,
    operation: Operation,
    version: u64,
    timestamp: chrono::NaiveDateTime,
) -> ChangeRecord {
    ChangeRecord {
        version,
        collection: schema.collection.clone(),
        id,
        code: key_values(schema, body).join("/"),
        external_ids: external_ids_of(body),
        operation,
        timestamp,
    }
}

fn encode_doc(version: u64, body: &Map<String, Value>) -> Vec<u8> {
    let mut out = version.to_be_bytes().to_vec();
    serde_json::to_writer(&mut out, body)
        .unwrap_or_else(|e| unreachable!("a JSON map serializes: {e}"));
    out
}

fn decode_doc(id: u64, raw: &[u8]) -> Result<Document> {
    if raw.len() < 8 {
        return Err(Error::Corrupt(format!("document {id} is truncated")));
    }
    let body = serde_json::from_slice(&raw[8..]).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(Document {
        id,
        version: decode_u64(&raw[..8]),
        body,
    })
}

pub(crate) fn version_key(tenant: &str) -> Vec<u8> {
    Key::new().str(tenant).str("version").into_vec()
}

fn next_id_key(tenant: &str, collection: &str) -> Vec<u8> {
    Key::new()
        .str(tenant)
        .str("next_id")
        .str(collection)
        .into_vec()
}

impl Store {
    fn schema(&self, collection: &str) -> Result<std::sync::Arc<Schema>> {
        self.schemas.require(collection).cloned()
    }

    fn check_tenant(&self, tenant: &str) -> Result<()> {
        match self.tenants.get(tenant) {
            Some(_) => Ok(()),
            None => Err(Error::UnknownTenant(tenant.to_string())),
        }
    }

    /// Validates and upserts one object or a list of objects, atomically.
    ///
    /// Items are applied in request order, so a list that names one key twice ends with the
    /// later item. A replacement identical to the stored document counts as updated but does
    /// not advance the version or the change feed: nothing changed.
    pub fn upsert(&self, tenant: &str, collection: &str, input: &Value) -> Result<Upserted> {
        self.write_input(tenant, collection, input, true)
    }

    /// Validates and inserts one object or a list of objects, atomically, refusing the whole
    /// write with [`Error::Exists`] when a key is taken: a create that cannot race another
    /// writer of the same key, and that answers from its own outcome.
    pub fn create(&self, tenant: &str, collection: &str, input: &Value) -> Result<Upserted> {
        self.write_input(tenant, collection, input, false)
    }

    fn write_input(
        &self,
        tenant: &str,
        collection: &str,
        input: &Value,
        replace: bool,
    ) -> Result<Upserted> {
        self.check_tenant(tenant)?;
        let schema = self.schema(collection)?;
        let (items, many) = match input {
            Value::Array(items) => (items.as_slice(), true),
            one => (std::slice::from_ref(one), false),
        };
        let mut bodies = Vec::with_capacity(items.len());
        let mut errors = ValidationErrors {
            items: Vec::with_capacity(items.len()),
            many,
        };
        for item in items {
            match (
                validate_object(&schema.fields, item),
                validate::external_ids(item),
            ) {
                (Ok(mut body), Ok(external)) => {
                    if let Some(external) = external {
                        body.insert(EXTERNAL_IDS.into(), external);
                    }
                    bodies.push(body);
                    errors.items.push(FieldErrors::new());
                }
                (fields, external) => {
                    let mut e = fields.err().unwrap_or_default();
                    if let Err(x) = external {
                        e.insert(EXTERNAL_IDS.into(), x);
                    }
                    errors.items.push(e);
                }
            }
        }
        if errors.any() {
            return Err(Error::Invalid(errors));
        }
        let docs_prefix = doc_prefix(tenant, collection).into_vec();
        let index_prefixes: Vec<(String, Vec<u8>)> = schema
            .ordering
            .iter()
            .map(|f| (f.clone(), index_prefix(tenant, collection, f)))
            .collect();
        let outcome = self.write_documents(|w, ranks| {
            let mut reference_errors = false;
            for (i, body) in bodies.iter().enumerate() {
                if let Err(e) = self.check_references(w, tenant, &schema.fields, body) {
                    errors.items[i] = e;
                    reference_errors = true;
                }
            }
            if reference_errors {
                return Err(Error::Invalid(errors.clone()));
            }
            let recording = self.changes_recording(w, tenant)?;
            let timestamp = change_time(w, tenant)?;
            let mut version = w.counter(&version_key(tenant))?;
            let mut stored_bytes = 0i64;
            let mut last_id = w.counter(&next_id_key(tenant, collection))?;
            let mut out = Upserted::default();
            for (i, mut body) in bodies.into_iter().enumerate() {
                let code = key_values(&schema, &body);
                let code_key = code_key(tenant, collection, &code);
                let (id, old) =
                    match w.replace(Tbl::Codes, &code_key, &(last_id + 1).to_be_bytes())? {
                        Some(_) if !replace => return Err(Error::Exists(code.join("/"))),
                        Some(existing) => {
                            w.put(Tbl::Codes, &code_key, &existing)?;
                            let id = decode_u64(&existing);
                            (id, load_sized(w, tenant, collection, id)?)
                        }
                        None => {
                            last_id += 1;
                            (last_id, None)
                        }
                    };
                let (old, old_size) = match old {
                    Some((doc, size)) => (Some(doc), size),
                    None => (None, 0),
                };
                out.last_id = Some(id);
                if let Some(kept) = old.as_ref().and_then(|o| o.body.get(EXTERNAL_IDS))
                    && !body.contains_key(EXTERNAL_IDS)
                {
                    body.insert(EXTERNAL_IDS.into(), kept.clone());
                }
                let operation = match &old {
                    Some(old) if old.body == body => {
                        out.updated += 1;
                        continue;
                    }
                    Some(_) => {
                        out.updated += 1;
                        Operation::Update
                    }
                    None => {
                        out.inserted += 1;
                        Operation::Create
                    }
                };
                if let Some(conflict) =
                    claim_external_ids(w, tenant, collection, id, old.as_ref(), &body)?
                {
                    errors.items[i].insert(
                        EXTERNAL_IDS.into(),
                        Value::Array(vec![Value::String(conflict)]),
                    );
                    return Err(Error::Invalid(errors.clone()));
                }
                version += 1;
                let key = Key::new().bytes(&docs_prefix).u64(id).into_vec();
                let stored = encode_doc(version, &body);
                stored_bytes += stored.len() as i64 - old_size as i64;
                ranks.put(w, primary(&docs_prefix), &key, &stored)?;
                for (field, prefix) in &index_prefixes {
                    let value = body.get(field).unwrap_or(&Value::Null);
                    if let Some(old) = &old {
                        let old_value = old.body.get(field).unwrap_or(&Value::Null);
                        if old_value == value {
                            continue;
                        }
                        ranks.remove(w, index(prefix), &index_entry(prefix, old_value, id))?;
                    }
                    ranks.put(w, index(prefix), &index_entry(prefix, value, id), &[])?;
                }
                if recording {
                    change_of(&schema, id, &body, operation, version, timestamp)
                        .append(w, tenant)?;
                }
            }
            let quotas = self.tenants.quotas(tenant);
            quota::charge(w, tenant, Usage::Documents, stored_bytes, &quotas)?;
            w.set_counter(&next_id_key(tenant, collection), last_id)?;
            w.set_counter(&version_key(tenant), version)?;
            out.version = version;
            Ok(out)
        })?;
        self.storage.notify(tenant, outcome.version);
        Ok(outcome)
    }

    /// Runs a document write in one transaction with the rank bookkeeping it needs; a failure
    /// anywhere discards the cached chunk lists, which may be ahead of what was committed.
    fn write_documents<R: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>, &mut RankWriter<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut cache = self.ranks.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.commit(|w| {
            let mut ranks = cache.begin();
            let out = f(w, &mut ranks)?;
            ranks.flush(w)?;
            Ok(out)
        });
        if result.is_err() {
            cache.clear();
        }
        result
    }

    /// Writes the index of `collection` by `field` afresh from the tenant's documents, in one
    /// transaction: what an upgrade does when index keys are encoded differently.
    pub(crate) fn rebuild_index(&self, tenant: &str, collection: &str, field: &str) -> Result<()> {
        self.ranks.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let prefix = index_prefix(tenant, collection, field);
        let docs = doc_prefix(tenant, collection).into_vec();
        let docs_end = crate::keys::prefix_end(&docs);
        self.write_documents(|w, ranks| {
            w.remove_prefix(Tbl::Index, &prefix)?;
            w.remove_prefix(Tbl::Ranks, &ranked::chunks_prefix(index(&prefix)))?;
            let mut entries = Vec::new();
            w.scan(
                Tbl::Docs,
                std::ops::Bound::Included(&docs),
                std::ops::Bound::Excluded(&docs_end),
                false,
                &mut |k, v| {
                    let doc = decode_doc(trailing_u64(k), v)?;
                    let value = doc.body.get(field).unwrap_or(&Value::Null);
                    entries.push(index_entry(&prefix, value, doc.id));
                    Ok(true)
                },
            )?;
            for entry in entries {
                ranks.put(w, index(&prefix), &entry, &[])?;
            }
            Ok(())
        })
    }

    /// Deletes one document, recording the deletion in the change feed.
    pub fn delete(&self, tenant: &str, collection: &str, doc: &DocRef) -> Result<u64> {
        self.check_tenant(tenant)?;
        let schema = self.schema(collection)?;
        let version = self.write_documents(|w, ranks| {
            let timestamp = change_time(w, tenant)?;
            let id = resolve(w, tenant, &schema, doc)?.ok_or(Error::NotFound)?;
            let docs_prefix = doc_prefix(tenant, collection).into_vec();
            let key = Key::new().bytes(&docs_prefix).u64(id).into_vec();
            let raw = ranks
                .remove(w, primary(&docs_prefix), &key)?
                .ok_or(Error::NotFound)?;
            let old = decode_doc(id, &raw)?;
            let code = key_values(&schema, &old.body);
            w.remove(Tbl::Codes, &code_key(tenant, collection, &code))?;
            claim_external_ids(w, tenant, collection, id, Some(&old), &Map::new())?;
            let quotas = self.tenants.quotas(tenant);
            quota::charge(w, tenant, Usage::Documents, -(raw.len() as i64), &quotas)?;
            crate::attachments::remove_all(w, tenant, collection, id, &quotas)?;
            for field in &schema.ordering {
                let prefix = index_prefix(tenant, collection, field);
                let value = old.body.get(field).unwrap_or(&Value::Null);
                ranks.remove(w, index(&prefix), &index_entry(&prefix, value, id))?;
            }
            let version = w.counter(&version_key(tenant))? + 1;
            w.set_counter(&version_key(tenant), version)?;
            if self.changes_recording(w, tenant)? {
                change_of(
                    &schema,
                    id,
                    &old.body,
                    Operation::Delete,
                    version,
                    timestamp,
                )
                .append(w, tenant)?;
            }
            Ok(version)
        })?;
        self.storage.notify(tenant, version);
        Ok(version)
    }

    /// Runs `change` on the stored document `doc` inside one write, then gives the document a
    /// new version and an update in the change feed: what hangs off a document (its
    /// attachments) is part of it for a client that syncs incrementally.
    pub(crate) fn change_attached<R: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
        change: impl FnOnce(&mut WriteTables<'_>, u64) -> Result<R>,
    ) -> Result<R> {
        self.check_tenant(tenant)?;
        let schema = self.schema(collection)?;
        let (out, version) = self.write_documents(|w, ranks| {
            let timestamp = change_time(w, tenant)?;
            let id = resolve(w, tenant, &schema, doc)?.ok_or(Error::NotFound)?;
            let current = load(w, tenant, collection, id)?.ok_or(Error::NotFound)?;
            let out = change(w, id)?;
            let version = w.counter(&version_key(tenant))? + 1;
            w.set_counter(&version_key(tenant), version)?;
            let docs_prefix = doc_prefix(tenant, collection).into_vec();
            let key = Key::new().bytes(&docs_prefix).u64(id).into_vec();
            ranks.put(
                w,
                primary(&docs_prefix),
                &key,
                &encode_doc(version, &current.body),
            )?;
            if self.changes_recording(w, tenant)? {
                change_of(
                    &schema,
                    id,
                    &current.body,
                    Operation::Update,
                    version,
                    timestamp,
                )
                .append(w, tenant)?;
            }
            Ok((out, version))
        })?;
        self.storage.notify(tenant, version);
        Ok(out)
    }

    /// One document by id or code.
    pub fn get(&self, tenant: &str, collection: &str, doc: &DocRef) -> Result<Document> {
        self.check_tenant(tenant)?;
        let schema = self.schema(collection)?;
        let r = self.storage.read()?;
        let id = resolve(&r, tenant, &schema, doc)?.ok_or(Error::NotFound)?;
        load(&r, tenant, collection, id)?.ok_or(Error::NotFound)
    }

    /// The ids of documents named by (collection, single key value), read from one snapshot:
    /// responses turn references into `*_url` links with it.
    pub fn ids_of_codes(&self, tenant: &str, refs: &[(&str, &str)]) -> Result<Vec<Option<u64>>> {
        let r = self.storage.read()?;
        refs.iter()
            .map(|(collection, code)| {
                Ok(r.get(
                    Tbl::Codes,
                    &code_key(tenant, collection, &[code.to_string()]),
                )?
                .map(|v| decode_u64(&v)))
            })
            .collect()
    }

    fn check_references(
        &self,
        r: &impl Reader,
        tenant: &str,
        fields: &[Field],
        body: &Map<String, Value>,
    ) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for field in fields {
            let Some(value) = body.get(&field.name) else {
                continue;
            };
            if let Some(reference) = &field.references
                && !value.is_null()
            {
                let code = scalar_text(value);
                let exists = r
                    .get(
                        Tbl::Codes,
                        &code_key(tenant, &reference.collection, std::slice::from_ref(&code)),
                    )
                    .map_err(|e| storage_as_field_error(&field.name, &e))?
                    .is_some();
                if !exists {
                    errors.insert(
                        field.name.clone(),
                        Value::Array(vec![Value::String(format!(
                            "Invalid pk \"{code}\" - object does not exist."
                        ))]),
                    );
                }
            }
            match value {
                Value::Object(child) if !field.children.is_empty() => {
                    if let Err(e) = self.check_references(r, tenant, &field.children, child) {
                        errors.insert(field.name.clone(), Value::Object(e));
                    }
                }
                Value::Array(items) if !field.children.is_empty() => {
                    let mut failed = false;
                    let per_item: Vec<Value> = items
                        .iter()
                        .map(|item| match item {
                            Value::Object(child) => {
                                match self.check_references(r, tenant, &field.children, child) {
                                    Ok(()) => Value::Object(Map::new()),
                                    Err(e) => {
                                        failed = true;
                                        Value::Object(e)
                                    }
                                }
                            }
                            _ => Value::Object(Map::new()),
                        })
                        .collect();
                    if failed {
                        errors.insert(field.name.clone(), Value::Array(per_item));
                    }
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// One page of a collection, seeking straight to its first document when there is no
    /// search; a search scans in order and counts every match.
    pub fn page(&self, tenant: &str, collection: &str, query: &PageQuery) -> Result<Page> {
        self.check_tenant(tenant)?;
        let schema = self.schema(collection)?;
        let ordering: Vec<&OrderBy> = query
            .ordering
            .iter()
            .filter(|o| schema.ordering.contains(&o.field))
            .collect();
        let r = self.storage.read()?;
        let global_version = r.counter(&version_key(tenant))?;
        let terms: Vec<String> = query
            .search
            .as_deref()
            .unwrap_or_default()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut documents = Vec::new();
        if terms.is_empty() {
            let count = ordered_scan(&r, tenant, &schema, &ordering, query.offset, &mut |doc| {
                if documents.len() as u64 >= query.limit {
                    return Ok(false);
                }
                documents.push(doc);
                Ok(true)
            })?;
            return Ok(Page {
                count,
                documents,
                global_version,
            });
        }
        let mut count = 0;
        ordered_scan(&r, tenant, &schema, &ordering, 0, &mut |doc| {
            if matches_search(&schema, &doc, &terms) {
                if count >= query.offset && (documents.len() as u64) < query.limit {
                    documents.push(doc);
                }
                count += 1;
            }
            Ok(true)
        })?;
        Ok(Page {
            count,
            documents,
            global_version,
        })
    }

    /// A consistent read snapshot of the tenant's documents.
    pub fn snapshot(&self, tenant: &str) -> Result<Snapshot> {
        self.check_tenant(tenant)?;
        Ok(Snapshot {
            schemas: self.schemas.clone(),
            tables: self.storage.read()?,
            tenant: tenant.to_string(),
            changes_default: self.tenants.get(tenant).is_some_and(|t| t.changes_enabled),
        })
    }
}

/// One tenant's documents as of one moment: every read through it sees the same commits, so a
/// listing and the global version it reports agree, however long the listing takes to stream.
pub struct Snapshot {
    pub(crate) schemas: std::sync::Arc<crate::Schemas>,
    pub(crate) tables: ReadTables,
    pub(crate) tenant: String,
    /// Whether the change feed records when the tenant never switched it.
    pub(crate) changes_default: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The tenant's global version in this snapshot.
    pub fn global_version(&self) -> Result<u64> {
        self.tables.counter(&version_key(&self.tenant))
    }

    /// One document by id, code or external id.
    pub fn get(&self, collection: &str, doc: &DocRef) -> Result<Option<Document>> {
        let schema = self.schemas.require(collection)?;
        match resolve(&self.tables, &self.tenant, schema, doc)? {
            Some(id) => load(&self.tables, &self.tenant, collection, id),
            None => Ok(None),
        }
    }

    /// Visits the collection's documents in id order from `from_position`, until `visit`
    /// answers `false`; answers the collection's size.
    pub fn scan(
        &self,
        collection: &str,
        from_position: u64,
        visit: &mut dyn FnMut(Document) -> Result<bool>,
    ) -> Result<u64> {
        let schema = self.schemas.require(collection)?;
        ordered_scan(
            &self.tables,
            &self.tenant,
            schema,
            &[],
            from_position,
            visit,
        )
    }
}

/// A page of a scan in key order.
#[derive(Debug, Clone)]
pub struct KeyPage {
    /// The documents of this page, in key order.
    pub documents: Vec<Document>,
    /// Where the next page starts; `None` once the collection is exhausted.
    pub next: Option<Vec<u8>>,
}

impl Snapshot {
    /// Up to `limit` documents of the collection in key order (the key's values as text, part
    /// by part), after the position `after` that an earlier page answered as its `next`.
    ///
    /// Any bytes are a valid position, so a cursor needs no validation: a forged one only
    /// starts the scan elsewhere in the same tenant's collection.
    pub fn scan_by_key(
        &self,
        collection: &str,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<KeyPage> {
        self.schemas.require(collection)?;
        let prefix = doc_prefix(&self.tenant, collection).into_vec();
        let end = crate::keys::prefix_end(&prefix);
        let start = after.map(|a| [prefix.as_slice(), a].concat());
        let from = match &start {
            Some(start) => std::ops::Bound::Excluded(start.as_slice()),
            None => std::ops::Bound::Included(prefix.as_slice()),
        };
        let mut ids = Vec::with_capacity(limit + 1);
        self.tables.scan(
            Tbl::Codes,
            from,
            std::ops::Bound::Excluded(&end),
            false,
            &mut |k, v| {
                ids.push((k[prefix.len()..].to_vec(), decode_u64(v)));
                Ok(ids.len() <= limit)
            },
        )?;
        let mut page = KeyPage {
            documents: Vec::with_capacity(ids.len().min(limit)),
            next: None,
        };
        let (mut bytes, mut last) = (0, None);
        for (key, id) in ids {
            if page.documents.len() == limit || (bytes >= max_bytes && last.is_some()) {
                page.next = last;
                break;
            }
            if let Some((doc, size)) = load_sized(&self.tables, &self.tenant, collection, id)? {
                bytes += size;
                page.documents.push(doc);
            }
            last = Some(key);
        }
        Ok(page)
    }
}

fn external_key(tenant: &str, collection: &str, ext: &str) -> Vec<u8> {
    Key::new().str(tenant).str(collection).str(ext).into_vec()
}

fn external_ids_of(body: &Map<String, Value>) -> Vec<String> {
    body.get(EXTERNAL_IDS)
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Points the external ids of `body` at document `id` and releases those only `old` had.
/// Answers the message for an id another document of the collection already holds.
fn claim_external_ids(
    w: &mut impl Writer,
    tenant: &str,
    collection: &str,
    id: u64,
    old: Option<&Document>,
    body: &Map<String, Value>,
) -> Result<Option<String>> {
    let new = external_ids_of(body);
    for ext in old.map(|o| external_ids_of(&o.body)).unwrap_or_default() {
        if !new.contains(&ext) {
            w.remove(Tbl::External, &external_key(tenant, collection, &ext))?;
        }
    }
    for ext in &new {
        let key = external_key(tenant, collection, ext);
        if let Some(holder) = w.replace(Tbl::External, &key, &id.to_be_bytes())? {
            let holder = decode_u64(&holder);
            if holder != id {
                return Ok(Some(format!(
                    "External id \"{ext}\" already belongs to document {holder}."
                )));
            }
        }
    }
    Ok(None)
}

/// The id a client's reference names, if a document answers to it.
fn resolve(r: &impl Reader, tenant: &str, schema: &Schema, doc: &DocRef) -> Result<Option<u64>> {
    match doc {
        DocRef::Id(id) => Ok(Some(*id)),
        DocRef::Code(code) => {
            let parts: Vec<String> = if schema.key.len() == 1 {
                vec![code.clone()]
            } else {
                code.splitn(schema.key.len(), '/')
                    .map(str::to_string)
                    .collect()
            };
            Ok(
                r.get(Tbl::Codes, &code_key(tenant, &schema.collection, &parts))?
                    .map(|v| decode_u64(&v)),
            )
        }
        DocRef::External(ext) => Ok(r
            .get(
                Tbl::External,
                &external_key(tenant, &schema.collection, ext),
            )?
            .map(|v| decode_u64(&v))),
    }
}

fn storage_as_field_error(field: &str, e: &Error) -> FieldErrors {
    let mut m = FieldErrors::new();
    m.insert(
        field.to_string(),
        Value::Array(vec![Value::String(e.to_string())]),
    );
    m
}

pub(crate) fn load(
    r: &impl Reader,
    tenant: &str,
    collection: &str,
    id: u64,
) -> Result<Option<Document>> {
    Ok(load_sized(r, tenant, collection, id)?.map(|(doc, _)| doc))
}

/// A document with the size it takes in storage.
pub(crate) fn load_sized(
    r: &impl Reader,
    tenant: &str,
    collection: &str,
    id: u64,
) -> Result<Option<(Document, usize)>> {
    r.get(Tbl::Docs, &doc_key(tenant, collection, id))?
        .map(|raw| decode_doc(id, &raw).map(|doc| (doc, raw.len())))
        .transpose()
}

fn matches_search(schema: &Schema, doc: &Document, terms: &[String]) -> bool {
    terms.iter().all(|term| {
        schema.search.iter().any(|f| {
            doc.body
                .get(f)
                .is_some_and(|v| scalar_text(v).to_lowercase().contains(term.as_str()))
        })
    })
}

/// Visits documents in the requested order from `position` on, answering the collection's size.
///
/// The first ordering field (or the id) drives a sequence seek. Further ordering fields break
/// ties within each run of equal first values, which is sorted in memory one run at a time.
fn ordered_scan(
    r: &impl Reader,
    tenant: &str,
    schema: &Schema,
    ordering: &[&OrderBy],
    position: u64,
    visit: &mut dyn FnMut(Document) -> Result<bool>,
) -> Result<u64> {
    let collection = schema.collection.as_str();
    let Some((first, rest)) = ordering.split_first() else {
        let prefix = doc_prefix(tenant, collection).into_vec();
        return ranked::seek(r, primary(&prefix), position, false, &mut |k, v| {
            visit(decode_doc(trailing_u64(k), v)?)
        });
    };
    let prefix = index_prefix(tenant, collection, &first.field);
    let seq = index(&prefix);
    let rev = first.descending;
    let load_visit = |k: &[u8], visit: &mut dyn FnMut(Document) -> Result<bool>| match load(
        r,
        tenant,
        collection,
        trailing_u64(k),
    )? {
        Some(doc) => visit(doc),
        None => Err(Error::Corrupt("index names a missing document".into())),
    };
    if rest.is_empty() {
        return ranked::seek(r, seq, position, rev, &mut |k, _| load_visit(k, visit));
    }
    let mut group_start = 0;
    let mut group_prefix = Vec::new();
    ranked::seek(r, seq, position, rev, &mut |k, _| {
        group_prefix = k[..k.len() - 8].to_vec();
        Ok(false)
    })?;
    if !group_prefix.is_empty() {
        let after_group = crate::keys::prefix_end(&group_prefix);
        group_start = if rev {
            ranked::len(r, seq)? - ranked::rank(r, seq, &after_group)?
        } else {
            ranked::rank(r, seq, &group_prefix)?
        };
    }
    let mut skip = position - group_start;
    let mut group: Vec<Document> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut go_on = true;
    let mut flush = |group: &mut Vec<Document>, skip: &mut u64| -> Result<bool> {
        group.sort_by(|a, b| compare_by(rest, a, b));
        for doc in group.drain(..) {
            if *skip > 0 {
                *skip -= 1;
                continue;
            }
            if !visit(doc)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let total = ranked::seek(r, seq, group_start, rev, &mut |k, _| {
        let prefix = &k[..k.len() - 8];
        if prefix != current.as_slice() {
            if !flush(&mut group, &mut skip)? {
                go_on = false;
                return Ok(false);
            }
            current = prefix.to_vec();
        }
        load_visit(k, &mut |doc| {
            group.push(doc);
            Ok(true)
        })
    })?;
    if go_on {
        flush(&mut group, &mut skip)?;
    }
    Ok(total)
}

fn compare_by(ordering: &[&OrderBy], a: &Document, b: &Document) -> std::cmp::Ordering {
    for o in ordering {
        let key = |d: &Document| {
            Key::new()
                .value(d.body.get(&o.field).unwrap_or(&Value::Null))
                .into_vec()
        };
        let ord = key(a).cmp(&key(b));
        let ord = if o.descending { ord.reverse() } else { ord };
        if ord.is_ne() {
            return ord;
        }
    }
    a.id.cmp(&b.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ranks_of(store: &Store, query: PageQuery) -> (u64, Vec<i64>) {
        let page = store.page("t", "items", &query).unwrap();
        let ranks = page
            .documents
            .iter()
            .map(|d| d.body["rank"].as_i64().unwrap())
            .collect();
        (page.count, ranks)
    }

    #[test]
    fn a_failed_write_leaves_counts_and_cache_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::items_store(dir.path());
        let items: Vec<Value> = (0..3000)
            .map(|i| json!({"code": format!("c{i}"), "rank": (i * 7919) % 3000}))
            .collect();
        s.upsert("t", "items", &Value::Array(items)).unwrap();
        let failed: Result<()> = s.write_documents(|w, ranks| {
            let prefix = doc_prefix("t", "items").into_vec();
            for id in 10_000..12_000u64 {
                let key = Key::new().bytes(&prefix).u64(id).into_vec();
                ranks.put(w, primary(&prefix), &key, &encode_doc(1, &Map::new()))?;
            }
            Err(Error::NotFound)
        });
        assert!(failed.is_err());
        s.upsert("t", "items", &json!({"code": "extra", "rank": -1}))
            .unwrap();
        s.delete("t", "items", &DocRef::Code("c5".into())).unwrap();
        let by_id = PageQuery {
            offset: 2990,
            limit: 100,
            ..PageQuery::default()
        };
        assert_eq!(ranks_of(&s, by_id).0, 3000);
        let by_rank = PageQuery {
            offset: 0,
            limit: 3,
            ordering: vec![OrderBy {
                field: "rank".into(),
                descending: false,
            }],
            ..PageQuery::default()
        };
        assert_eq!(ranks_of(&s, by_rank), (3000, vec![-1, 0, 1]));
        let last = PageQuery {
            offset: 2998,
            limit: 5,
            ordering: vec![OrderBy {
                field: "rank".into(),
                descending: false,
            }],
            ..PageQuery::default()
        };
        assert_eq!(ranks_of(&s, last).1, vec![2998, 2999]);
    }

    #[test]
    fn changed_since_lists_each_document_once_at_its_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::items_store(dir.path());
        let put = |code: &str, rank: i64| {
            s.upsert("t", "items", &json!({"code": code, "rank": rank}))
                .unwrap()
        };
        put("a", 1);
        put("b", 1);
        let changes = s
            .changes(
                "t",
                &crate::ChangeQuery {
                    start: None,
                    limit: 10,
                    records: vec![],
                },
            )
            .unwrap();
        let since = changes.changes[1].timestamp;
        put("a", 2);
        put("c", 1);
        let snapshot = s.snapshot("t").unwrap();
        let codes = |page: &crate::ChangedPage| -> Vec<String> {
            page.documents
                .iter()
                .map(|d| d.body["code"].as_str().unwrap().to_string())
                .collect()
        };
        let first = snapshot
            .changed_since("items", since, 0, 2, usize::MAX)
            .unwrap();
        let tail = snapshot
            .changed_since("items", since, first.next.unwrap(), 2, usize::MAX)
            .unwrap();
        let mut all = codes(&first);
        all.extend(codes(&tail));
        assert_eq!(tail.next, None);
        assert!(all.starts_with(&["b".to_string()]) || all.starts_with(&["a".to_string()]));
        all.sort();
        assert_eq!(
            all,
            ["a", "b", "c"],
            "each document once, deleted ones never"
        );
        s.delete("t", "items", &DocRef::Code("c".into())).unwrap();
        let after_delete = s
            .snapshot("t")
            .unwrap()
            .changed_since("items", since, 0, 10, usize::MAX)
            .unwrap();
        assert_eq!(codes(&after_delete), ["b", "a"]);
        s.set_changes_enabled("t", false).unwrap();
        s.set_changes_enabled("t", true).unwrap();
        assert!(matches!(
            s.snapshot("t")
                .unwrap()
                .changed_since("items", since, 0, 10, usize::MAX),
            Err(Error::ChangesGone { .. })
        ));
    }

    #[test]
    fn concurrent_writers_get_timestamps_that_rise_with_their_versions() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::items_store(dir.path());
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let s = &s;
                scope.spawn(move || {
                    for round in 0..25 {
                        let items: Vec<Value> = (0..200)
                            .map(|i| json!({"code": format!("w{writer}-{round}-{i}"), "rank": i}))
                            .collect();
                        s.upsert("t", "items", &Value::Array(items)).unwrap();
                    }
                });
            }
        });
        let mut start = 1;
        let mut previous = None;
        loop {
            let page = s
                .changes(
                    "t",
                    &crate::ChangeQuery {
                        start: Some(start),
                        limit: 1000,
                        records: vec![],
                    },
                )
                .unwrap();
            for change in &page.changes {
                if let Some((version, at)) = previous {
                    assert!(
                        change.timestamp >= at,
                        "version {} at {} follows version {version} at {at}",
                        change.version,
                        change.timestamp
                    );
                }
                previous = Some((change.version, change.timestamp));
            }
            match page.next {
                Some(next) => start = next,
                None => break,
            }
        }
        assert_eq!(previous.map(|(v, _)| v), Some(4 * 25 * 200));
    }

    #[test]
    fn a_scan_page_ends_once_its_documents_pass_the_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::items_store(dir.path());
        let items: Vec<Value> = (0..10)
            .map(|i| json!({"code": format!("c{i}"), "rank": i}))
            .collect();
        s.upsert("t", "items", &Value::Array(items)).unwrap();
        let snapshot = s.snapshot("t").unwrap();
        let one = snapshot.scan_by_key("items", None, 1000, 1).unwrap();
        assert_eq!(
            one.documents.len(),
            1,
            "one document at least, then the bound"
        );
        let mut seen = one.documents.len();
        let mut next = one.next;
        while let Some(after) = next {
            let page = snapshot
                .scan_by_key("items", Some(&after), 1000, 70)
                .unwrap();
            assert!(page.documents.len() <= 3, "{}", page.documents.len());
            seen += page.documents.len();
            next = page.next;
        }
        assert_eq!(seen, 10, "the pages still cover the collection");
    }

    #[test]
    fn identical_replacements_do_not_advance_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::items_store(dir.path());
        let doc = json!({"code": "a", "rank": 1});
        let first = s.upsert("t", "items", &doc).unwrap();
        let again = s.upsert("t", "items", &doc).unwrap();
        assert_eq!((again.updated, again.version), (1, first.version));
        let changed = s
            .upsert("t", "items", &json!({"code": "a", "rank": 2}))
            .unwrap();
        assert_eq!(changed.version, first.version + 1);
    }
}
