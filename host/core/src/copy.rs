//! Copying a deployment from one storage engine to another: from an embedded redb file to a
//! shared PostgreSQL database when a deployment outgrows one host, and back.
//!
//! The copy speaks the engine traits only, so it moves the domain (documents with their ids,
//! versions, keys, external ids and attachments; the change log; each tenant's state, usage
//! and id counters; tokens; shared settings; uploaded plugins; change hooks, under new ids),
//! never one engine's bytes: each
//! engine builds its own indexes as it stores. The records are read from one snapshot of the
//! source, the counters a snapshot does not answer (last ids, settings, the unfinished batch)
//! from a write transaction that writes nothing; the target must be empty, and is written in
//! chunks of [`CHUNK`] records, so memory stays bounded whatever the size. Each tenant's state (its version) is written last, so a copy
//! cut short leaves a target that is not taken for a finished one: the next attempt refuses
//! it as not empty.
//!
//! Work in flight does not move: the copy refuses a source with queued or running exports or
//! an unfinished batch (stop the hosts and let them finish first), and finished export and
//! batch results, which expire within days, are not copied.

use crate::engine::{self, DocumentWrite, Durability, Engine, View};
use crate::quota::Usage;
use crate::schema::Schema;
use crate::{Document, Error, Result, Schemas, Tenants};

/// Documents per target transaction.
const CHUNK: usize = 500;

/// What a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Documents, of every tenant and collection.
    pub documents: u64,
    /// Change records.
    pub changes: u64,
    /// Attached files.
    pub attachments: u64,
    /// API tokens.
    pub tokens: u64,
    /// Shared settings.
    pub settings: u64,
    /// Uploaded plugin components.
    pub components: u64,
    /// Change hooks.
    pub hooks: u64,
}

/// Copies everything of the configured `tenants` and `schemas` from `from` into the empty
/// `to`.
pub fn copy_deployment(
    from: &dyn Engine,
    to: &dyn Engine,
    schemas: &Schemas,
    tenants: &Tenants,
) -> Result<Copied> {
    let source = from.read()?;
    refuse_unfinished(from, &*source, tenants)?;
    refuse_filled(to, schemas, tenants)?;
    let mut copied = Copied::default();
    for tenant in tenants.iter().map(|t| t.name.as_str()) {
        for schema in schemas.iter() {
            copy_collection(from, &*source, to, tenant, schema, &mut copied)?;
        }
        copy_changes(&*source, to, tenant, &mut copied)?;
        let state = source.tenant_state(tenant)?;
        engine::write(to, Durability::Immediate, |txn| {
            txn.lock_tenant(tenant)?;
            txn.set_tenant_state(tenant, &state)
        })?;
    }
    let tokens = source.tokens()?;
    let settings = engine::write(from, Durability::Immediate, |txn| txn.settings())?;
    engine::write(to, Durability::Immediate, |txn| {
        for (id, token) in &tokens {
            txn.put_token(id, token)?;
        }
        for (name, value) in &settings {
            txn.put_setting(name, value)?;
        }
        Ok(())
    })?;
    copied.tokens = tokens.len() as u64;
    copied.settings = settings.len() as u64;
    for component in source.components(None)? {
        let bytes = source
            .component_bytes(&component.scope, &component.name)?
            .ok_or_else(|| Error::Corrupt(format!("plugin {} has no bytes", component.name)))?;
        engine::write(to, Durability::Immediate, |txn| {
            txn.put_component(&component, &bytes)
        })?;
        copied.components += 1;
    }
    let hooks = source.hooks(None)?;
    engine::write(to, Durability::Immediate, |txn| {
        hooks
            .iter()
            .try_for_each(|hook| txn.insert_hook(hook).map(drop))
    })?;
    copied.hooks = hooks.len() as u64;
    Ok(copied)
}

/// Fails when the source has work in flight, which a copy would lose.
fn refuse_unfinished(from: &dyn Engine, source: &dyn View, tenants: &Tenants) -> Result<()> {
    for tenant in tenants.iter().map(|t| t.name.as_str()) {
        if let Some(export) = source.exports(tenant)?.iter().find(|e| !e.finished()) {
            return Err(Error::CopyRefused(format!(
                "export {} of tenant `{tenant}` has not finished; stop the hosts once it has",
                export.id
            )));
        }
        if let Some(batch) = engine::write(from, Durability::Immediate, |txn| {
            txn.unfinished_batch(tenant)
        })? {
            return Err(Error::CopyRefused(format!(
                "batch {batch} of tenant `{tenant}` has not finished; stop the hosts once it has"
            )));
        }
    }
    Ok(())
}

/// Fails unless `to` holds nothing of these tenants and no plugin or token.
fn refuse_filled(to: &dyn Engine, schemas: &Schemas, tenants: &Tenants) -> Result<()> {
    let target = to.read()?;
    let filled = |what: String| Err(Error::CopyRefused(format!("the target holds {what}")));
    for tenant in tenants.iter().map(|t| t.name.as_str()) {
        if target.tenant_state(tenant)?.version > 0 {
            return filled(format!("changes of tenant `{tenant}`"));
        }
        for schema in schemas.iter() {
            if target.seek(tenant, &schema.collection, None, false, 0, &mut |_| {
                Ok(false)
            })? > 0
            {
                return filled(format!(
                    "documents of `{tenant}` in `{}`",
                    schema.collection
                ));
            }
        }
    }
    if !target.components(None)?.is_empty() {
        return filled("uploaded plugins".into());
    }
    if !target.tokens()?.is_empty() {
        return filled("API tokens".into());
    }
    Ok(())
}

/// Copies one collection of one tenant, its documents in id order, in chunks.
fn copy_collection(
    from: &dyn Engine,
    source: &dyn View,
    to: &dyn Engine,
    tenant: &str,
    schema: &Schema,
    copied: &mut Copied,
) -> Result<()> {
    let collection = schema.collection.as_str();
    in_chunks(
        |visit| {
            source
                .seek(tenant, collection, None, false, 0, visit)
                .map(drop)
        },
        |documents| write_documents(source, to, tenant, schema, documents, copied),
    )?;
    let last_id = engine::write(from, Durability::Immediate, |txn| {
        txn.last_id(tenant, collection)
    })?;
    engine::write(to, Durability::Immediate, |txn| {
        txn.set_last_id(tenant, collection, last_id)
    })
}

/// Stores `documents` of one collection in `to` with their external ids, attachments and the
/// usage they add.
fn write_documents(
    source: &dyn View,
    to: &dyn Engine,
    tenant: &str,
    schema: &Schema,
    documents: &[Document],
    copied: &mut Copied,
) -> Result<()> {
    let collection = schema.collection.as_str();
    let keys: Vec<Vec<String>> = documents
        .iter()
        .map(|d| crate::documents::key_values(schema, &d.body))
        .collect();
    let mut attachments = Vec::new();
    for document in documents {
        for info in source.attachments(tenant, collection, document.id)? {
            if let Some(attachment) =
                source.attachment(tenant, collection, document.id, &info.name)?
            {
                attachments.push((document.id, attachment));
            }
        }
    }
    engine::write(to, Durability::Immediate, |txn| {
        txn.lock_tenant(tenant)?;
        let writes: Vec<DocumentWrite<'_>> = documents
            .iter()
            .zip(&keys)
            .map(|(d, key)| DocumentWrite {
                id: d.id,
                key,
                version: d.version,
                body: &d.body,
                old: None,
            })
            .collect();
        let sizes = txn.put_documents(tenant, collection, &schema.ordering, &writes)?;
        txn.add_usage(tenant, Usage::Documents, sizes.iter().sum::<u64>() as i64)?;
        for document in documents {
            for ext in crate::documents::external_ids_of(&document.body) {
                txn.set_external(tenant, collection, &ext, document.id)?;
            }
        }
        let mut attached = 0;
        for (id, attachment) in &attachments {
            attached += txn.put_attachment(tenant, collection, *id, attachment)?.1;
        }
        txn.add_usage(tenant, Usage::Attachments, attached as i64)?;
        Ok(())
    })?;
    copied.documents += documents.len() as u64;
    copied.attachments += attachments.len() as u64;
    Ok(())
}

/// Copies the tenant's change log, in chunks.
fn copy_changes(
    source: &dyn View,
    to: &dyn Engine,
    tenant: &str,
    copied: &mut Copied,
) -> Result<()> {
    in_chunks(
        |visit| source.changes(tenant, 0, visit),
        |records| {
            engine::write(to, Durability::Immediate, |txn| {
                txn.lock_tenant(tenant)?;
                txn.append_changes(tenant, records)
            })?;
            copied.changes += records.len() as u64;
            Ok(())
        },
    )
}

/// Hands what `scan` visits to `flush` in chunks of [`CHUNK`], the last one shorter, none
/// empty; stops at the first failure of either.
fn in_chunks<T>(
    scan: impl FnOnce(&mut dyn FnMut(T) -> Result<bool>) -> Result<()>,
    mut flush: impl FnMut(&[T]) -> Result<()>,
) -> Result<()> {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut flushed = Ok(());
    scan(&mut |item| {
        chunk.push(item);
        if chunk.len() < CHUNK {
            return Ok(true);
        }
        flushed = flush(&chunk);
        chunk.clear();
        Ok(flushed.is_ok())
    })?;
    flushed?;
    if chunk.is_empty() {
        Ok(())
    } else {
        flush(&chunk)
    }
}
