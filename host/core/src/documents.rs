//! The one write path for business documents, and the reads that page through them.
//!
//! A write validates every submitted object, checks references, upserts by the schema's key,
//! maintains the ordering indexes and appends one change record per changed document, all in a
//! single transaction of the engine: either the whole request lands with its changes, or
//! nothing does. The engine is asked in bulk (every stored document the request names, every
//! reference it makes) and told in bulk (every document it leaves), so a request of a thousand
//! documents costs an engine over a network a handful of round trips, not thousands.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::changes::{ChangeRecord, Operation, change_time};
use crate::engine::{DocumentWrite, DocumentsView, Stored, Txn, View};
use crate::keys::Key;
use crate::quota::{self, Usage};
use crate::schema::{Field, Schema};
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
    /// The key values, joined by `/` for composite keys (ABRA Flexi's `code:`).
    Code(String),
    /// An external id, `ext:SYSTEM:VALUE` (ABRA Flexi's `ext:`).
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

/// A scalar as the text a key or search compares.
fn scalar_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

pub(crate) fn key_values(schema: &Schema, body: &Map<String, Value>) -> Vec<String> {
    schema
        .key
        .iter()
        .map(|k| {
            body.get(k)
                .map(scalar_text)
                .unwrap_or_default()
                .into_owned()
        })
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

/// Where one key of a write stands as its items are applied in order.
struct Slot {
    id: Option<u64>,
    /// What is stored, before this write.
    stored: Option<Stored>,
    /// The document the items applied so far leave, once one of them changed it.
    written: Option<Document>,
}

impl Slot {
    /// What the items applied so far leave: their document, else the stored one.
    fn current(&self) -> Option<&Document> {
        self.written
            .as_ref()
            .or(self.stored.as_ref().map(|s| &s.document))
    }
}

/// The documents of every tenant: the one write path (validated, upserted by key, versioned,
/// recorded in the change feed) and the reads that page through them.
#[derive(Debug, Clone, Copy)]
pub struct Documents<'a> {
    store: &'a Store,
}

impl Store {
    /// The documents of every tenant: the one write path (validated, upserted by key, versioned,
    /// recorded in the change feed) and the reads that page through them.
    pub fn documents(&self) -> Documents<'_> {
        Documents { store: self }
    }

    fn schema(&self, collection: &str) -> Result<std::sync::Arc<Schema>> {
        self.schemas.require(collection).cloned()
    }

    pub(crate) fn check_tenant(&self, tenant: &str) -> Result<()> {
        match self.tenants.get(tenant) {
            Some(_) => Ok(()),
            None => Err(Error::UnknownTenant(tenant.to_string())),
        }
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
        let keys: Vec<Vec<String>> = bodies.iter().map(|b| key_values(&schema, b)).collect();
        self.commit(|txn| {
            let mut errors = errors.clone();
            if self.check_references(txn, tenant, &schema, &bodies, &mut errors)? {
                return Err(Error::Invalid(errors));
            }
            let mut state = txn.lock_tenant(tenant)?;
            let recording = self.changes_recording(&state, tenant);
            let timestamp = change_time(&mut state);
            let mut distinct: Vec<Vec<String>> = Vec::new();
            let mut slot_of: HashMap<&[String], usize> = HashMap::new();
            for key in &keys {
                slot_of.entry(key.as_slice()).or_insert_with(|| {
                    distinct.push(key.clone());
                    distinct.len() - 1
                });
            }
            let mut slots: Vec<Slot> = txn
                .documents_by_keys(tenant, collection, &distinct)?
                .into_iter()
                .map(|stored| Slot {
                    id: stored.as_ref().map(|s| s.document.id),
                    written: None,
                    stored,
                })
                .collect();
            let mut version = state.version;
            let mut last_id = txn.last_id(tenant, collection)?;
            let mut changes = Vec::new();
            let mut out = Upserted::default();
            for (i, (mut body, key)) in bodies.iter().cloned().zip(&keys).enumerate() {
                let slot = &mut slots[slot_of[key.as_slice()]];
                if slot.current().is_some() && !replace {
                    return Err(Error::Exists(key.join("/")));
                }
                let id = *slot.id.get_or_insert_with(|| {
                    last_id += 1;
                    last_id
                });
                out.last_id = Some(id);
                if let Some(kept) = slot.current().and_then(|o| o.body.get(EXTERNAL_IDS))
                    && !body.contains_key(EXTERNAL_IDS)
                {
                    body.insert(EXTERNAL_IDS.into(), kept.clone());
                }
                let operation = match slot.current() {
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
                    claim_external_ids(txn, tenant, collection, id, slot.current(), &body)?
                {
                    errors.items[i].insert(
                        EXTERNAL_IDS.into(),
                        Value::Array(vec![Value::String(conflict)]),
                    );
                    return Err(Error::Invalid(errors));
                }
                version += 1;
                if recording {
                    changes.push(change_of(&schema, id, &body, operation, version, timestamp));
                }
                slot.written = Some(Document { id, version, body });
            }
            out.version = version;
            if version == state.version {
                return Ok(out);
            }
            let changed: Vec<(&Vec<String>, &Slot)> = distinct
                .iter()
                .zip(&slots)
                .filter(|(_, slot)| slot.written.is_some())
                .collect();
            let writes: Vec<DocumentWrite<'_>> = changed
                .iter()
                .filter_map(|(key, slot)| {
                    let doc = slot.written.as_ref()?;
                    Some(DocumentWrite {
                        id: doc.id,
                        key,
                        version: doc.version,
                        body: &doc.body,
                        old: slot.stored.as_ref().map(|s| &s.document),
                    })
                })
                .collect();
            let sizes = txn.put_documents(tenant, collection, &schema.ordering, &writes)?;
            let before: u64 = changed
                .iter()
                .filter_map(|(_, slot)| slot.stored.as_ref().map(|s| s.size))
                .sum();
            let stored_bytes = sizes.iter().sum::<u64>() as i64 - before as i64;
            txn.append_changes(tenant, &changes)?;
            let quotas = self.tenants.quotas(tenant);
            quota::charge(txn, tenant, Usage::Documents, stored_bytes, &quotas)?;
            txn.set_last_id(tenant, collection, last_id)?;
            state.version = version;
            txn.set_tenant_state(tenant, &state)?;
            Ok(out)
        })
    }

    /// Runs `change` on the stored document `doc` inside one write, then gives the document a
    /// new version and an update in the change feed: what hangs off a document (its
    /// attachments) is part of it for a client that syncs incrementally.
    pub(crate) fn change_attached<R: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
        mut change: impl FnMut(&mut dyn Txn, u64) -> Result<R>,
    ) -> Result<R> {
        self.check_tenant(tenant)?;
        let schema = self.schema(collection)?;
        self.commit(|txn| {
            let mut state = txn.lock_tenant(tenant)?;
            let timestamp = change_time(&mut state);
            let id = resolve(txn, tenant, &schema, doc)?.ok_or(Error::NotFound)?;
            let current = txn
                .document(tenant, collection, id)?
                .ok_or(Error::NotFound)?
                .document;
            let out = change(txn, id)?;
            state.version += 1;
            let key = key_values(&schema, &current.body);
            txn.put_documents(
                tenant,
                collection,
                &schema.ordering,
                &[DocumentWrite {
                    id,
                    key: &key,
                    version: state.version,
                    body: &current.body,
                    old: Some(&current),
                }],
            )?;
            if self.changes_recording(&state, tenant) {
                txn.append_changes(
                    tenant,
                    &[change_of(
                        &schema,
                        id,
                        &current.body,
                        Operation::Update,
                        state.version,
                        timestamp,
                    )],
                )?;
            }
            txn.set_tenant_state(tenant, &state)?;
            Ok(out)
        })
    }

    /// Checks every reference of every body against the stored keys, asking the engine once;
    /// answers whether any failed, with their errors in `errors`.
    fn check_references(
        &self,
        txn: &mut dyn Txn,
        tenant: &str,
        schema: &Schema,
        bodies: &[Map<String, Value>],
        errors: &mut ValidationErrors,
    ) -> Result<bool> {
        let wanted = distinct_references(&schema.fields, bodies);
        if wanted.is_empty() {
            return Ok(false);
        }
        let asked: Vec<(&str, &str)> = wanted.iter().map(|(c, k)| (*c, k.as_ref())).collect();
        let exist = txn.keys_exist(tenant, &asked)?;
        let missing: HashSet<(&str, &str)> = asked
            .iter()
            .zip(exist)
            .filter(|(_, exists)| !exists)
            .map(|(r, _)| *r)
            .collect();
        if missing.is_empty() {
            return Ok(false);
        }
        let mut failed = false;
        for (i, body) in bodies.iter().enumerate() {
            if let Err(e) = reference_errors(&schema.fields, body, &missing) {
                errors.items[i] = e;
                failed = true;
            }
        }
        Ok(failed)
    }
}

impl Documents<'_> {
    /// Validates and upserts one object or a list of objects, atomically.
    ///
    /// Items are applied in request order, so a list that names one key twice ends with the
    /// later item. A replacement identical to the stored document counts as updated but does
    /// not advance the version or the change feed: nothing changed.
    pub fn upsert(&self, tenant: &str, collection: &str, input: &Value) -> Result<Upserted> {
        self.store.write_input(tenant, collection, input, true)
    }

    /// Validates and inserts one object or a list of objects, atomically, refusing the whole
    /// write with [`Error::Exists`] when a key is taken: a create that cannot race another
    /// writer of the same key, and that answers from its own outcome.
    pub fn create(&self, tenant: &str, collection: &str, input: &Value) -> Result<Upserted> {
        self.store.write_input(tenant, collection, input, false)
    }

    /// Deletes one document, recording the deletion in the change feed.
    pub fn delete(&self, tenant: &str, collection: &str, doc: &DocRef) -> Result<u64> {
        self.store.check_tenant(tenant)?;
        let schema = self.store.schema(collection)?;
        self.store.commit(|txn| {
            let mut state = txn.lock_tenant(tenant)?;
            let timestamp = change_time(&mut state);
            let id = resolve(txn, tenant, &schema, doc)?.ok_or(Error::NotFound)?;
            let current = txn
                .document(tenant, collection, id)?
                .ok_or(Error::NotFound)?;
            let key = key_values(&schema, &current.document.body);
            let removed = txn
                .remove_document(tenant, collection, &schema.ordering, id, &key)?
                .ok_or(Error::NotFound)?;
            claim_external_ids(
                txn,
                tenant,
                collection,
                id,
                Some(&removed.document),
                &Map::new(),
            )?;
            let quotas = self.store.tenants.quotas(tenant);
            quota::charge(
                txn,
                tenant,
                Usage::Documents,
                -(removed.size as i64),
                &quotas,
            )?;
            let freed = txn.remove_attachments(tenant, collection, id)?;
            quota::charge(txn, tenant, Usage::Attachments, -(freed as i64), &quotas)?;
            state.version += 1;
            if self.store.changes_recording(&state, tenant) {
                txn.append_changes(
                    tenant,
                    &[change_of(
                        &schema,
                        id,
                        &removed.document.body,
                        Operation::Delete,
                        state.version,
                        timestamp,
                    )],
                )?;
            }
            txn.set_tenant_state(tenant, &state)?;
            Ok(state.version)
        })
    }

    /// One document by id or code.
    pub fn get(&self, tenant: &str, collection: &str, doc: &DocRef) -> Result<Document> {
        self.store.check_tenant(tenant)?;
        let schema = self.store.schema(collection)?;
        let view = self.store.engine.read()?;
        let id = resolve(&*view, tenant, &schema, doc)?.ok_or(Error::NotFound)?;
        Ok(view
            .document(tenant, collection, id)?
            .ok_or(Error::NotFound)?
            .document)
    }

    /// The ids of the documents that the references of `docs` (with `fields`) name, each
    /// distinct reference asked once, from one snapshot: collection → key value → id.
    /// Responses turn references into `*_url` links with it; a reference missing from it names
    /// no document.
    pub fn referenced_ids(
        &self,
        tenant: &str,
        fields: &[Field],
        docs: &[Document],
    ) -> Result<HashMap<String, HashMap<String, u64>>> {
        let wanted = distinct_references(fields, docs.iter().map(|doc| &doc.body));
        let asked: Vec<(&str, &str)> = wanted.iter().map(|(c, k)| (*c, k.as_ref())).collect();
        let ids = self.store.engine.read()?.ids_of_codes(tenant, &asked)?;
        let mut found: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for ((collection, code), id) in asked.into_iter().zip(ids) {
            if let Some(id) = id {
                found
                    .entry(collection.to_string())
                    .or_default()
                    .insert(code.to_string(), id);
            }
        }
        Ok(found)
    }

    /// One page of a collection, seeking straight to its first document when there is no
    /// search; a search scans in order and counts every match.
    pub fn page(&self, tenant: &str, collection: &str, query: &PageQuery) -> Result<Page> {
        self.store.check_tenant(tenant)?;
        let schema = self.store.schema(collection)?;
        let ordering: Vec<&OrderBy> = query
            .ordering
            .iter()
            .filter(|o| schema.ordering.contains(&o.field))
            .collect();
        let view = self.store.engine.read()?;
        let r = &*view;
        let global_version = r.tenant_state(tenant)?.version;
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
            let count = ordered_scan(r, tenant, &schema, &ordering, query.offset, &mut |doc| {
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
        ordered_scan(r, tenant, &schema, &ordering, 0, &mut |doc| {
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
        self.store.check_tenant(tenant)?;
        Ok(Snapshot {
            schemas: self.store.schemas.clone(),
            view: self.store.engine.read()?,
            tenant: tenant.to_string(),
            changes_default: self
                .store
                .tenants
                .get(tenant)
                .is_some_and(|t| t.changes_enabled),
        })
    }
}

/// The distinct references of `bodies` to documents by key: (collection, key value).
fn distinct_references<'a>(
    fields: &'a [Field],
    bodies: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> HashSet<(&'a str, Cow<'a, str>)> {
    let mut wanted = HashSet::new();
    for body in bodies {
        references(fields, body, &mut |collection, code| {
            wanted.insert((collection, code));
        });
    }
    wanted
}

/// Visits each reference of `body` to a document by key: (collection, key value).
fn references<'a>(
    fields: &'a [Field],
    body: &'a Map<String, Value>,
    found: &mut dyn FnMut(&'a str, Cow<'a, str>),
) {
    for field in fields {
        let Some(value) = body.get(&field.name) else {
            continue;
        };
        if let Some(reference) = &field.references
            && !value.is_null()
        {
            found(&reference.collection, scalar_text(value));
        }
        match value {
            Value::Object(child) if !field.children.is_empty() => {
                references(&field.children, child, found);
            }
            Value::Array(items) if !field.children.is_empty() => {
                for item in items {
                    if let Value::Object(child) = item {
                        references(&field.children, child, found);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The field errors of the references of `body` that name a `missing` document.
fn reference_errors(
    fields: &[Field],
    body: &Map<String, Value>,
    missing: &HashSet<(&str, &str)>,
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
            if missing.contains(&(reference.collection.as_str(), code.as_ref())) {
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
                if let Err(e) = reference_errors(&field.children, child, missing) {
                    errors.insert(field.name.clone(), Value::Object(e));
                }
            }
            Value::Array(items) if !field.children.is_empty() => {
                let mut failed = false;
                let per_item: Vec<Value> = items
                    .iter()
                    .map(|item| match item {
                        Value::Object(child) => {
                            match reference_errors(&field.children, child, missing) {
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

/// One tenant's documents as of one moment: every read through it sees the same commits, so a
/// listing and the global version it reports agree, however long the listing takes to stream.
pub struct Snapshot {
    pub(crate) schemas: std::sync::Arc<crate::Schemas>,
    pub(crate) view: Box<dyn View>,
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
        Ok(self.view.tenant_state(&self.tenant)?.version)
    }

    /// One document by id, code or external id.
    pub fn get(&self, collection: &str, doc: &DocRef) -> Result<Option<Document>> {
        let schema = self.schemas.require(collection)?;
        match resolve(&*self.view, &self.tenant, schema, doc)? {
            Some(id) => Ok(self
                .view
                .document(&self.tenant, collection, id)?
                .map(|s| s.document)),
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
        ordered_scan(&*self.view, &self.tenant, schema, &[], from_position, visit)
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
        let ids = self
            .view
            .keys_after(&self.tenant, collection, after, limit + 1)?;
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
            if let Some(stored) = self.view.document(&self.tenant, collection, id)? {
                bytes += stored.size as usize;
                page.documents.push(stored.document);
            }
            last = Some(key);
        }
        Ok(page)
    }
}

pub(crate) fn external_ids_of(body: &Map<String, Value>) -> Vec<String> {
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
    txn: &mut dyn Txn,
    tenant: &str,
    collection: &str,
    id: u64,
    old: Option<&Document>,
    body: &Map<String, Value>,
) -> Result<Option<String>> {
    let new = external_ids_of(body);
    for ext in old.map(|o| external_ids_of(&o.body)).unwrap_or_default() {
        if !new.contains(&ext) {
            txn.remove_external(tenant, collection, &ext)?;
        }
    }
    for ext in &new {
        if let Some(holder) = txn.set_external(tenant, collection, ext, id)?
            && holder != id
        {
            return Ok(Some(format!(
                "External id \"{ext}\" already belongs to document {holder}."
            )));
        }
    }
    Ok(None)
}

/// The id a client's reference names, if a document answers to it.
fn resolve(
    r: &(impl DocumentsView + ?Sized),
    tenant: &str,
    schema: &Schema,
    doc: &DocRef,
) -> Result<Option<u64>> {
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
            r.id_of_key(tenant, &schema.collection, &parts)
        }
        DocRef::External(ext) => r.id_of_external(tenant, &schema.collection, ext),
    }
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

/// The encoded value of a document's ordering field: documents with equal ones tie.
fn ordering_value(doc: &Document, field: &str) -> Vec<u8> {
    Key::new()
        .value(doc.body.get(field).unwrap_or(&Value::Null))
        .into_vec()
}

/// Visits documents in the requested order from `position` on, answering the collection's size.
///
/// The first ordering field (or the id) drives the engine's seek. Further ordering fields break
/// ties within each run of equal first values, which is sorted in memory one run at a time.
fn ordered_scan(
    r: &(impl DocumentsView + ?Sized),
    tenant: &str,
    schema: &Schema,
    ordering: &[&OrderBy],
    position: u64,
    visit: &mut dyn FnMut(Document) -> Result<bool>,
) -> Result<u64> {
    let collection = schema.collection.as_str();
    let Some((first, rest)) = ordering.split_first() else {
        return r.seek(tenant, collection, None, false, position, visit);
    };
    let (field, rev) = (first.field.as_str(), first.descending);
    if rest.is_empty() {
        return r.seek(tenant, collection, Some(field), rev, position, visit);
    }
    let mut group_value = None;
    r.seek(tenant, collection, Some(field), rev, position, &mut |doc| {
        group_value = Some(doc.body.get(field).cloned().unwrap_or(Value::Null));
        Ok(false)
    })?;
    let group_start = match &group_value {
        Some(value) => r.count_before(tenant, collection, field, value, rev)?,
        None => 0,
    };
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
    let total = r.seek(
        tenant,
        collection,
        Some(field),
        rev,
        group_start,
        &mut |doc| {
            let value = ordering_value(&doc, field);
            if value != current {
                if !flush(&mut group, &mut skip)? {
                    go_on = false;
                    return Ok(false);
                }
                current = value;
            }
            group.push(doc);
            Ok(true)
        },
    )?;
    if go_on {
        flush(&mut group, &mut skip)?;
    }
    Ok(total)
}

fn compare_by(ordering: &[&OrderBy], a: &Document, b: &Document) -> std::cmp::Ordering {
    for o in ordering {
        let ord = ordering_value(a, &o.field).cmp(&ordering_value(b, &o.field));
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

    #[test]
    fn changed_since_lists_each_document_once_at_its_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::items_store(dir.path());
        let put = |code: &str, rank: i64| {
            s.documents()
                .upsert("t", "items", &json!({"code": code, "rank": rank}))
                .unwrap()
        };
        put("a", 1);
        put("b", 1);
        let changes = s
            .change_feed()
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
        let snapshot = s.documents().snapshot("t").unwrap();
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
        s.documents()
            .delete("t", "items", &DocRef::Code("c".into()))
            .unwrap();
        let after_delete = s
            .documents()
            .snapshot("t")
            .unwrap()
            .changed_since("items", since, 0, 10, usize::MAX)
            .unwrap();
        assert_eq!(codes(&after_delete), ["b", "a"]);
        s.change_feed().set_changes_enabled("t", false).unwrap();
        s.change_feed().set_changes_enabled("t", true).unwrap();
        assert!(matches!(
            s.documents()
                .snapshot("t")
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
                        s.documents()
                            .upsert("t", "items", &Value::Array(items))
                            .unwrap();
                    }
                });
            }
        });
        let mut start = 1;
        let mut previous = None;
        loop {
            let page = s
                .change_feed()
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
        s.documents()
            .upsert("t", "items", &Value::Array(items))
            .unwrap();
        let snapshot = s.documents().snapshot("t").unwrap();
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
        let first = s.documents().upsert("t", "items", &doc).unwrap();
        let again = s.documents().upsert("t", "items", &doc).unwrap();
        assert_eq!((again.updated, again.version), (1, first.version));
        let changed = s
            .documents()
            .upsert("t", "items", &json!({"code": "a", "rank": 2}))
            .unwrap();
        assert_eq!(changed.version, first.version + 1);
    }
}
