//! Documents, their keys and ordering indexes, the change log, attachments and the per-tenant
//! counters, in redb's tables.
//!
//! A document is stored under (tenant, collection, id) as its version followed by its JSON;
//! its key values map to its id in `Codes`, each ordering field has an index of (value, id)
//! entries, and both sequences carry counted chunks (`ranked.rs`) so a page at any position
//! is a seek.

use std::ops::Bound;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::ranked::{self, Seq};
use super::{Reader, Redb, RedbTxn, Tbl, Writer, decode_u64, meta_key};
use crate::attachments::{Attachment, AttachmentInfo};
use crate::changes::ChangeRecord;
use crate::documents::Document;
use crate::engine::{DocumentWrite, DocumentsTxn, DocumentsView, Stored, TenantState};
use crate::keys::{Key, prefix_end, trailing_u64};
use crate::quota::Usage;
use crate::{Error, Result};

pub(crate) fn doc_prefix(tenant: &str, collection: &str) -> Vec<u8> {
    Key::new().str(tenant).str(collection).into_vec()
}

/// The prefix of a collection's index by `field`.
pub(crate) fn index_prefix(tenant: &str, collection: &str, field: &str) -> Vec<u8> {
    Key::new().str(tenant).str(collection).str(field).into_vec()
}

pub(crate) fn index_entry(prefix: &[u8], value: &Value, id: u64) -> Vec<u8> {
    Key::new().bytes(prefix).value(value).u64(id).into_vec()
}

pub(crate) fn primary(prefix: &[u8]) -> Seq<'_> {
    Seq {
        tbl: Tbl::Docs,
        prefix,
    }
}

pub(crate) fn index(prefix: &[u8]) -> Seq<'_> {
    Seq {
        tbl: Tbl::Index,
        prefix,
    }
}

fn code_key(tenant: &str, collection: &str, values: &[String]) -> Vec<u8> {
    [
        doc_prefix(tenant, collection),
        crate::keys::key_position(values),
    ]
    .concat()
}

fn external_key(tenant: &str, collection: &str, ext: &str) -> Vec<u8> {
    Key::new().str(tenant).str(collection).str(ext).into_vec()
}

fn change_key(tenant: &str, version: u64) -> Vec<u8> {
    Key::new().str(tenant).u64(version).into_vec()
}

fn next_id_key(tenant: &str, collection: &str) -> Vec<u8> {
    Key::new()
        .str(tenant)
        .str("next_id")
        .str(collection)
        .into_vec()
}

pub(crate) fn usage_key(tenant: &str, usage: Usage) -> Vec<u8> {
    Key::new()
        .str(tenant)
        .str("usage")
        .str(usage.name())
        .into_vec()
}

fn attachments_prefix(tenant: &str, collection: &str, id: u64) -> Vec<u8> {
    Key::new().str(tenant).str(collection).u64(id).into_vec()
}

fn attachment_key(tenant: &str, collection: &str, id: u64, name: &str) -> Vec<u8> {
    Key::new()
        .bytes(&attachments_prefix(tenant, collection, id))
        .str(name)
        .into_vec()
}

pub(crate) fn encode_doc(version: u64, body: &Map<String, Value>) -> Vec<u8> {
    let mut out = version.to_be_bytes().to_vec();
    serde_json::to_writer(&mut out, body)
        .unwrap_or_else(|e| unreachable!("a JSON map serializes: {e}"));
    out
}

pub(crate) fn decode_doc(id: u64, raw: &[u8]) -> Result<Document> {
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

/// The stored header before an attachment's content: everything of [`AttachmentInfo`] but
/// the length.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    name: String,
    content_type: String,
    modified: NaiveDateTime,
}

fn encode_attachment(attachment: &Attachment) -> Vec<u8> {
    let header = Header {
        name: attachment.info.name.clone(),
        content_type: attachment.info.content_type.clone(),
        modified: attachment.info.modified,
    };
    let header =
        serde_json::to_vec(&header).unwrap_or_else(|e| unreachable!("a header serializes: {e}"));
    let mut out = Vec::with_capacity(4 + header.len() + attachment.content.len());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&attachment.content);
    out
}

fn decode_attachment(raw: &[u8], with_content: bool) -> Result<Attachment> {
    let corrupt = || Error::Corrupt("an attachment is truncated".into());
    let len = raw.get(..4).ok_or_else(corrupt)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let header = raw.get(4..4 + len).ok_or_else(corrupt)?;
    let header: Header =
        serde_json::from_slice(header).map_err(|e| Error::Corrupt(e.to_string()))?;
    let content = &raw[4 + len..];
    Ok(Attachment {
        info: AttachmentInfo {
            name: header.name,
            content_type: header.content_type,
            size: content.len() as u64,
            modified: header.modified,
        },
        content: if with_content {
            content.to_vec()
        } else {
            Vec::new()
        },
    })
}

fn load_sized(r: &impl Reader, tenant: &str, collection: &str, id: u64) -> Result<Option<Stored>> {
    r.get(
        Tbl::Docs,
        &Key::new()
            .bytes(&doc_prefix(tenant, collection))
            .u64(id)
            .into_vec(),
    )?
    .map(|raw| {
        decode_doc(id, &raw).map(|document| Stored {
            document,
            size: raw.len() as u64,
        })
    })
    .transpose()
}

fn tenant_state(r: &impl Reader, tenant: &str) -> Result<TenantState> {
    Ok(TenantState {
        version: r.counter(&meta_key(tenant, "version"))?,
        changes_enabled: r
            .get(Tbl::Meta, &meta_key(tenant, "changes_enabled"))?
            .map(|v| v.first() == Some(&1)),
        changes_since: r.counter(&meta_key(tenant, "changes_since"))?,
        last_change_at: r
            .get(Tbl::Meta, &meta_key(tenant, "last_change_at"))?
            .and_then(|raw| <[u8; 8]>::try_from(raw.as_slice()).ok())
            .and_then(|raw| chrono::DateTime::from_timestamp_micros(i64::from_be_bytes(raw)))
            .map(|t| t.naive_utc()),
    })
}

impl<T: Reader, W> DocumentsView for Redb<T, W> {
    fn tenant_state(&self, tenant: &str) -> Result<TenantState> {
        tenant_state(&self.tables, tenant)
    }

    fn usage(&self, tenant: &str, usage: Usage) -> Result<u64> {
        self.tables.counter(&usage_key(tenant, usage))
    }

    fn document(&self, tenant: &str, collection: &str, id: u64) -> Result<Option<Stored>> {
        load_sized(&self.tables, tenant, collection, id)
    }

    fn id_of_key(&self, tenant: &str, collection: &str, key: &[String]) -> Result<Option<u64>> {
        Ok(self
            .tables
            .get(Tbl::Codes, &code_key(tenant, collection, key))?
            .map(|v| decode_u64(&v)))
    }

    fn id_of_external(&self, tenant: &str, collection: &str, ext: &str) -> Result<Option<u64>> {
        Ok(self
            .tables
            .get(Tbl::External, &external_key(tenant, collection, ext))?
            .map(|v| decode_u64(&v)))
    }

    fn seek(
        &self,
        tenant: &str,
        collection: &str,
        by: Option<&str>,
        descending: bool,
        position: u64,
        visit: &mut dyn FnMut(Document) -> Result<bool>,
    ) -> Result<u64> {
        let r = &self.tables;
        let Some(field) = by else {
            let prefix = doc_prefix(tenant, collection);
            return ranked::seek(r, primary(&prefix), position, descending, &mut |k, v| {
                visit(decode_doc(trailing_u64(k), v)?)
            });
        };
        let prefix = index_prefix(tenant, collection, field);
        ranked::seek(
            r,
            index(&prefix),
            position,
            descending,
            &mut |k, _| match load_sized(r, tenant, collection, trailing_u64(k))? {
                Some(stored) => visit(stored.document),
                None => Err(Error::Corrupt("an index names a missing document".into())),
            },
        )
    }

    fn count_before(
        &self,
        tenant: &str,
        collection: &str,
        by: &str,
        value: &Value,
        descending: bool,
    ) -> Result<u64> {
        let prefix = index_prefix(tenant, collection, by);
        let seq = index(&prefix);
        let group = Key::new().bytes(&prefix).value(value).into_vec();
        if descending {
            Ok(ranked::len(&self.tables, seq)?
                - ranked::rank(&self.tables, seq, &prefix_end(&group))?)
        } else {
            ranked::rank(&self.tables, seq, &group)
        }
    }

    fn keys_after(
        &self,
        tenant: &str,
        collection: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let prefix = doc_prefix(tenant, collection);
        let end = prefix_end(&prefix);
        let start = after.map(|a| [prefix.as_slice(), a].concat());
        let from = match &start {
            Some(start) => Bound::Excluded(start.as_slice()),
            None => Bound::Included(prefix.as_slice()),
        };
        let mut ids = Vec::with_capacity(limit.min(4096));
        self.tables.scan(
            Tbl::Codes,
            from,
            Bound::Excluded(&end),
            false,
            &mut |k, v| {
                ids.push((k[prefix.len()..].to_vec(), decode_u64(v)));
                Ok(ids.len() < limit)
            },
        )?;
        Ok(ids)
    }

    fn changes(
        &self,
        tenant: &str,
        from: u64,
        visit: &mut dyn FnMut(ChangeRecord) -> Result<bool>,
    ) -> Result<()> {
        let start = change_key(tenant, from);
        let end = prefix_end(&Key::new().str(tenant).into_vec());
        self.tables.scan(
            Tbl::Changes,
            Bound::Included(&start),
            Bound::Excluded(&end),
            false,
            &mut |_, v| {
                visit(serde_json::from_slice(v).map_err(|e| Error::Corrupt(e.to_string()))?)
            },
        )
    }

    fn attachments(&self, tenant: &str, collection: &str, id: u64) -> Result<Vec<AttachmentInfo>> {
        let prefix = attachments_prefix(tenant, collection, id);
        let end = prefix_end(&prefix);
        let mut out = Vec::new();
        self.tables.scan(
            Tbl::Attachments,
            Bound::Included(&prefix),
            Bound::Excluded(&end),
            false,
            &mut |_, v| {
                out.push(decode_attachment(v, false)?.info);
                Ok(true)
            },
        )?;
        Ok(out)
    }

    fn attachment(
        &self,
        tenant: &str,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<Attachment>> {
        self.tables
            .get(
                Tbl::Attachments,
                &attachment_key(tenant, collection, id, name),
            )?
            .map(|raw| decode_attachment(&raw, true))
            .transpose()
    }
}

impl DocumentsTxn for RedbTxn<'_, '_> {
    fn lock_tenant(&mut self, tenant: &str) -> Result<TenantState> {
        tenant_state(&self.tables, tenant)
    }

    fn set_tenant_state(&mut self, tenant: &str, state: &TenantState) -> Result<()> {
        let w = &mut self.tables;
        let before = w.counter(&meta_key(tenant, "version"))?;
        w.set_counter(&meta_key(tenant, "version"), state.version)?;
        if let Some(enabled) = state.changes_enabled {
            w.put(
                Tbl::Meta,
                &meta_key(tenant, "changes_enabled"),
                &[u8::from(enabled)],
            )?;
        }
        w.set_counter(&meta_key(tenant, "changes_since"), state.changes_since)?;
        if let Some(at) = state.last_change_at {
            w.put(
                Tbl::Meta,
                &meta_key(tenant, "last_change_at"),
                &at.and_utc().timestamp_micros().to_be_bytes(),
            )?;
        }
        if state.version != before {
            self.write
                .versions
                .push((tenant.to_string(), state.version));
        }
        Ok(())
    }

    fn add_usage(&mut self, tenant: &str, usage: Usage, delta: i64) -> Result<u64> {
        let key = usage_key(tenant, usage);
        let next = self.tables.counter(&key)?.saturating_add_signed(delta);
        self.tables.set_counter(&key, next)?;
        Ok(next)
    }

    fn last_id(&mut self, tenant: &str, collection: &str) -> Result<u64> {
        self.tables.counter(&next_id_key(tenant, collection))
    }

    fn set_last_id(&mut self, tenant: &str, collection: &str, id: u64) -> Result<()> {
        self.tables
            .set_counter(&next_id_key(tenant, collection), id)
    }

    fn documents_by_keys(
        &mut self,
        tenant: &str,
        collection: &str,
        keys: &[Vec<String>],
    ) -> Result<Vec<Option<Stored>>> {
        keys.iter()
            .map(|key| match self.id_of_key(tenant, collection, key)? {
                Some(id) => load_sized(&self.tables, tenant, collection, id),
                None => Ok(None),
            })
            .collect()
    }

    fn keys_exist(&mut self, tenant: &str, keys: &[(&str, &str)]) -> Result<Vec<bool>> {
        keys.iter()
            .map(|(collection, code)| {
                Ok(self
                    .tables
                    .get(
                        Tbl::Codes,
                        &code_key(tenant, collection, &[code.to_string()]),
                    )?
                    .is_some())
            })
            .collect()
    }

    fn put_documents(
        &mut self,
        tenant: &str,
        collection: &str,
        ordering: &[String],
        writes: &[DocumentWrite<'_>],
    ) -> Result<Vec<u64>> {
        let docs_prefix = doc_prefix(tenant, collection);
        let index_prefixes: Vec<(&String, Vec<u8>)> = ordering
            .iter()
            .map(|f| (f, index_prefix(tenant, collection, f)))
            .collect();
        let Redb { tables: w, write } = self;
        let ranks = &mut write.ranks;
        let mut sizes = Vec::with_capacity(writes.len());
        for doc in writes {
            if doc.old.is_none() {
                w.put(
                    Tbl::Codes,
                    &code_key(tenant, collection, doc.key),
                    &doc.id.to_be_bytes(),
                )?;
            }
            let key = Key::new().bytes(&docs_prefix).u64(doc.id).into_vec();
            let stored = encode_doc(doc.version, doc.body);
            ranks.put(w, primary(&docs_prefix), &key, &stored)?;
            sizes.push(stored.len() as u64);
            for (field, prefix) in &index_prefixes {
                let value = doc.body.get(*field).unwrap_or(&Value::Null);
                if let Some(old) = doc.old {
                    let old_value = old.body.get(*field).unwrap_or(&Value::Null);
                    if old_value == value {
                        continue;
                    }
                    ranks.remove(w, index(prefix), &index_entry(prefix, old_value, doc.id))?;
                }
                ranks.put(w, index(prefix), &index_entry(prefix, value, doc.id), &[])?;
            }
        }
        Ok(sizes)
    }

    fn remove_document(
        &mut self,
        tenant: &str,
        collection: &str,
        ordering: &[String],
        id: u64,
        key: &[String],
    ) -> Result<Option<Stored>> {
        let docs_prefix = doc_prefix(tenant, collection);
        let Redb { tables: w, write } = self;
        let doc_key = Key::new().bytes(&docs_prefix).u64(id).into_vec();
        let Some(raw) = write.ranks.remove(w, primary(&docs_prefix), &doc_key)? else {
            return Ok(None);
        };
        let document = decode_doc(id, &raw)?;
        w.remove(Tbl::Codes, &code_key(tenant, collection, key))?;
        for field in ordering {
            let prefix = index_prefix(tenant, collection, field);
            let value = document.body.get(field).unwrap_or(&Value::Null);
            write
                .ranks
                .remove(w, index(&prefix), &index_entry(&prefix, value, id))?;
        }
        Ok(Some(Stored {
            document,
            size: raw.len() as u64,
        }))
    }

    fn set_external(
        &mut self,
        tenant: &str,
        collection: &str,
        ext: &str,
        id: u64,
    ) -> Result<Option<u64>> {
        Ok(self
            .tables
            .replace(
                Tbl::External,
                &external_key(tenant, collection, ext),
                &id.to_be_bytes(),
            )?
            .map(|v| decode_u64(&v)))
    }

    fn remove_external(&mut self, tenant: &str, collection: &str, ext: &str) -> Result<()> {
        self.tables
            .remove(Tbl::External, &external_key(tenant, collection, ext))
            .map(drop)
    }

    fn append_changes(&mut self, tenant: &str, records: &[ChangeRecord]) -> Result<()> {
        for record in records {
            let bytes = serde_json::to_vec(record).map_err(|e| Error::Corrupt(e.to_string()))?;
            self.tables
                .put(Tbl::Changes, &change_key(tenant, record.version), &bytes)?;
        }
        Ok(())
    }

    fn remove_changes_through(&mut self, tenant: &str, version: u64) -> Result<u64> {
        let from = change_key(tenant, 0);
        let to = change_key(tenant, version);
        let mut keys = Vec::new();
        self.tables.scan(
            Tbl::Changes,
            Bound::Included(&from),
            Bound::Included(&to),
            false,
            &mut |k, _| {
                keys.push(k.to_vec());
                Ok(true)
            },
        )?;
        for key in &keys {
            self.tables.remove(Tbl::Changes, key)?;
        }
        Ok(keys.len() as u64)
    }

    fn put_attachment(
        &mut self,
        tenant: &str,
        collection: &str,
        id: u64,
        attachment: &Attachment,
    ) -> Result<(Option<u64>, u64)> {
        let value = encode_attachment(attachment);
        let replaced = self.tables.replace(
            Tbl::Attachments,
            &attachment_key(tenant, collection, id, &attachment.info.name),
            &value,
        )?;
        Ok((replaced.map(|r| r.len() as u64), value.len() as u64))
    }

    fn remove_attachment(
        &mut self,
        tenant: &str,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<u64>> {
        Ok(self
            .tables
            .remove(
                Tbl::Attachments,
                &attachment_key(tenant, collection, id, name),
            )?
            .map(|r| r.len() as u64))
    }

    fn remove_attachments(&mut self, tenant: &str, collection: &str, id: u64) -> Result<u64> {
        self.tables.remove_prefix(
            Tbl::Attachments,
            &attachments_prefix(tenant, collection, id),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Durability;
    use crate::{DocRef, OrderBy, PageQuery, ranks_of};
    use serde_json::json;

    #[test]
    fn a_failed_write_leaves_counts_and_cache_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let (s, engine) = crate::items_store_on(dir.path());
        let items: Vec<Value> = (0..3000)
            .map(|i| json!({"code": format!("c{i}"), "rank": (i * 7919) % 3000}))
            .collect();
        s.documents()
            .upsert("t", "items", &Value::Array(items))
            .unwrap();
        let failed: Result<()> = engine.write_tables(Durability::Immediate, |txn| {
            let prefix = doc_prefix("t", "items");
            for id in 10_000..12_000u64 {
                let key = Key::new().bytes(&prefix).u64(id).into_vec();
                txn.write.ranks.put(
                    &mut txn.tables,
                    primary(&prefix),
                    &key,
                    &encode_doc(1, &Map::new()),
                )?;
            }
            Err(Error::NotFound)
        });
        assert!(failed.is_err());
        s.documents()
            .upsert("t", "items", &json!({"code": "extra", "rank": -1}))
            .unwrap();
        s.documents()
            .delete("t", "items", &DocRef::Code("c5".into()))
            .unwrap();
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
}
