//! Documents, their keys and orders, the change log, attachments and the per-tenant counters
//! in PostgreSQL's tables. A document write takes the tenant's row (`FOR UPDATE`) first, so a
//! tenant's versions are given, and committed, one write after another, whichever host writes.

use std::collections::HashMap;

use bulkhost_core::engine::{DocumentWrite, DocumentsTxn, DocumentsView, Stored, TenantState};
use bulkhost_core::keys::{id_position, key_position, prefix_end, value_position};
use bulkhost_core::{Attachment, AttachmentInfo, ChangeRecord, Document, Result, Usage};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use crate::json;
use crate::order::Order;
use crate::session::Session;

/// The channel commits that move a tenant's version are announced on, as `version tenant`.
pub(crate) const VERSIONS_CHANNEL: &str = "bulkhost_versions";

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A document row: (id, version, body, size) from column `at` on.
fn stored(row: &Row, at: usize) -> Result<Stored> {
    let body: String = row.get(at + 2);
    Ok(Stored {
        document: Document {
            id: row.get::<_, i64>(at) as u64,
            version: row.get::<_, i64>(at + 1) as u64,
            body: json::parse(&body)?,
        },
        size: row.get::<_, i32>(at + 3) as u64,
    })
}

/// A tenant row: (version, changes_enabled, changes_since, last_change_at).
fn tenant_state_of(row: &Row) -> TenantState {
    TenantState {
        version: row.get::<_, i64>(0) as u64,
        changes_enabled: row.get(1),
        changes_since: row.get::<_, i64>(2) as u64,
        last_change_at: row.get(3),
    }
}

/// The order by id.
fn by_id<'a>(tenant: &'a str, collection: &'a str) -> Order<'a> {
    Order {
        tenant,
        collection,
        field: "",
    }
}

/// A document's position in the order of `field`.
fn field_position(body: &Map<String, Value>, field: &str, id: u64) -> Vec<u8> {
    let mut position = value_position(body.get(field).unwrap_or(&Value::Null));
    position.extend_from_slice(&id_position(id));
    position
}

/// The stored size of a document: its JSON text and its version.
fn size_of(body: &str) -> i32 {
    i32::try_from(body.len() + 8).unwrap_or(i32::MAX)
}

impl DocumentsView for Session {
    fn tenant_state(&self, tenant: &str) -> Result<TenantState> {
        let row = self.query_opt(
            "SELECT version, changes_enabled, changes_since, last_change_at
             FROM tenants WHERE tenant = $1",
            &[&tenant],
        )?;
        Ok(row.map_or_else(TenantState::default, |row| tenant_state_of(&row)))
    }

    fn usage(&self, tenant: &str, usage: Usage) -> Result<u64> {
        let row = self.query_opt(
            "SELECT value FROM usage WHERE tenant = $1 AND usage = $2",
            &[&tenant, &usage.name()],
        )?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0) as u64))
    }

    fn document(&self, tenant: &str, collection: &str, id: u64) -> Result<Option<Stored>> {
        self.query_opt(
            "SELECT id, version, body, size FROM documents
             WHERE tenant = $1 AND collection = $2 AND id = $3",
            &[&tenant, &collection, &to_i64(id)],
        )?
        .map(|row| stored(&row, 0))
        .transpose()
    }

    fn ids_of_codes(&self, tenant: &str, refs: &[(&str, &str)]) -> Result<Vec<Option<u64>>> {
        let (collections, positions): (Vec<&str>, Vec<Vec<u8>>) = refs
            .iter()
            .map(|(collection, code)| (*collection, key_position(&[code.to_string()])))
            .unzip();
        let rows = self.query(
            "SELECT k.id FROM unnest($2::text[], $3::bytea[]) WITH ORDINALITY AS w(collection, key, n)
             LEFT JOIN LATERAL (
                SELECT id FROM document_keys
                WHERE tenant = $1 AND collection = w.collection AND key = w.key LIMIT 1) k ON true
             ORDER BY w.n",
            &[&tenant, &collections, &positions],
        )?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Option<i64>>(0).map(|id| id as u64))
            .collect())
    }

    fn id_of_key(&self, tenant: &str, collection: &str, key: &[String]) -> Result<Option<u64>> {
        let row = self.query_opt(
            "SELECT id FROM document_keys WHERE tenant = $1 AND collection = $2 AND key = $3",
            &[&tenant, &collection, &key_position(key)],
        )?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    fn id_of_external(&self, tenant: &str, collection: &str, ext: &str) -> Result<Option<u64>> {
        let row = self.query_opt(
            "SELECT id FROM external_ids WHERE tenant = $1 AND collection = $2 AND ext = $3",
            &[&tenant, &collection, &ext],
        )?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
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
        let order = Order {
            tenant,
            collection,
            field: by.unwrap_or(""),
        };
        self.seek_order(order, descending, position, &mut |row| {
            visit(stored(row, 1)?.document)
        })
    }

    fn count_before(
        &self,
        tenant: &str,
        collection: &str,
        by: &str,
        value: &Value,
        descending: bool,
    ) -> Result<u64> {
        let order = Order {
            tenant,
            collection,
            field: by,
        };
        let group = value_position(value);
        if descending {
            Ok(self.order_len(order)? - self.count_below(order, &prefix_end(&group))?)
        } else {
            self.count_below(order, &group)
        }
    }

    fn keys_after(
        &self,
        tenant: &str,
        collection: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let rows = self.query(
            "SELECT key, id FROM document_keys
             WHERE tenant = $1 AND collection = $2 AND ($3::bytea IS NULL OR key > $3)
             ORDER BY key LIMIT $4",
            &[&tenant, &collection, &after, &to_i64(limit as u64)],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
            .collect())
    }

    fn changes(
        &self,
        tenant: &str,
        from: u64,
        visit: &mut dyn FnMut(ChangeRecord) -> Result<bool>,
    ) -> Result<()> {
        const BATCH: i64 = 1000;
        let mut from = to_i64(from);
        loop {
            let rows = self.query(
                "SELECT version, record FROM changes
                 WHERE tenant = $1 AND version >= $2 ORDER BY version LIMIT $3",
                &[&tenant, &from, &BATCH],
            )?;
            for row in &rows {
                let record: String = row.get(1);
                if !visit(json::parse(&record)?)? {
                    return Ok(());
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == BATCH => from = last.get::<_, i64>(0) + 1,
                _ => return Ok(()),
            }
        }
    }

    fn attachments(&self, tenant: &str, collection: &str, id: u64) -> Result<Vec<AttachmentInfo>> {
        let rows = self.query(
            "SELECT name, content_type, octet_length(content)::bigint, modified FROM attachments
             WHERE tenant = $1 AND collection = $2 AND id = $3 ORDER BY name",
            &[&tenant, &collection, &to_i64(id)],
        )?;
        Ok(rows
            .iter()
            .map(|row| AttachmentInfo {
                name: row.get(0),
                content_type: row.get(1),
                size: row.get::<_, i64>(2) as u64,
                modified: row.get(3),
            })
            .collect())
    }

    fn attachment(
        &self,
        tenant: &str,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<Attachment>> {
        let row = self.query_opt(
            "SELECT content_type, modified, content FROM attachments
             WHERE tenant = $1 AND collection = $2 AND id = $3 AND name = $4",
            &[&tenant, &collection, &to_i64(id), &name],
        )?;
        Ok(row.map(|row| {
            let content: Vec<u8> = row.get(2);
            Attachment {
                info: AttachmentInfo {
                    name: name.to_string(),
                    content_type: row.get(0),
                    size: content.len() as u64,
                    modified: row.get(1),
                },
                content,
            }
        }))
    }
}

impl DocumentsTxn for Session {
    fn lock_tenant(&mut self, tenant: &str) -> Result<TenantState> {
        const LOCK: &str = "SELECT version, changes_enabled, changes_since, last_change_at
             FROM tenants WHERE tenant = $1 FOR UPDATE";
        // The row exists after a tenant's first write: one round trip, but for that write.
        let row = match self.query_opt(LOCK, &[&tenant])? {
            Some(row) => row,
            None => {
                self.execute(
                    "INSERT INTO tenants (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING",
                    &[&tenant],
                )?;
                self.query_one(LOCK, &[&tenant])?
            }
        };
        Ok(tenant_state_of(&row))
    }

    fn set_tenant_state(&mut self, tenant: &str, state: &TenantState) -> Result<()> {
        let version = to_i64(state.version);
        // Every statement sees the row as it was before the update: a version that moved is
        // announced, at commit, to every host listening.
        self.query(
            &format!(
                "WITH old AS (SELECT version FROM tenants WHERE tenant = $1),
                    up AS (UPDATE tenants
                        SET version = $2, changes_enabled = $3, changes_since = $4,
                            last_change_at = $5
                        WHERE tenant = $1)
                 SELECT pg_notify('{VERSIONS_CHANNEL}', $2::text || ' ' || $1)
                 FROM old WHERE old.version <> $2"
            ),
            &[
                &tenant,
                &version,
                &state.changes_enabled,
                &to_i64(state.changes_since),
                &state.last_change_at,
            ],
        )
        .map(drop)
    }

    fn add_usage(&mut self, tenant: &str, usage: Usage, delta: i64) -> Result<u64> {
        let row = self.query_one(
            "INSERT INTO usage AS u (tenant, usage, value) VALUES ($1, $2, greatest($3::int8, 0))
             ON CONFLICT (tenant, usage) DO UPDATE SET value = greatest(u.value + $3::int8, 0)
             RETURNING value",
            &[&tenant, &usage.name(), &delta],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn last_id(&mut self, tenant: &str, collection: &str) -> Result<u64> {
        let row = self.query_opt(
            "SELECT last_id FROM collections WHERE tenant = $1 AND collection = $2",
            &[&tenant, &collection],
        )?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0) as u64))
    }

    fn set_last_id(&mut self, tenant: &str, collection: &str, id: u64) -> Result<()> {
        self.execute(
            "INSERT INTO collections (tenant, collection, last_id) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, collection) DO UPDATE SET last_id = EXCLUDED.last_id",
            &[&tenant, &collection, &to_i64(id)],
        )
        .map(drop)
    }

    fn documents_by_keys(
        &mut self,
        tenant: &str,
        collection: &str,
        keys: &[Vec<String>],
    ) -> Result<Vec<Option<Stored>>> {
        let positions: Vec<Vec<u8>> = keys.iter().map(|k| key_position(k)).collect();
        // One probe of the key table per key, then one of the documents by id, each a
        // lateral lookup of at most one row: no estimate can turn either into a scan of the
        // whole collection.
        let rows = self.query(
            "SELECT w.key, d.id, d.version, d.body, d.size
             FROM unnest($3::bytea[]) AS w(key)
             CROSS JOIN LATERAL (
                SELECT id FROM document_keys
                WHERE tenant = $1 AND collection = $2 AND key = w.key LIMIT 1) k
             CROSS JOIN LATERAL (
                SELECT id, version, body, size FROM documents
                WHERE tenant = $1 AND collection = $2 AND id = k.id LIMIT 1) d",
            &[&tenant, &collection, &positions],
        )?;
        let mut found: HashMap<Vec<u8>, Stored> = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(row.get(0), stored(row, 1)?);
        }
        Ok(positions.iter().map(|p| found.remove(p)).collect())
    }

    fn keys_exist(&mut self, tenant: &str, keys: &[(&str, &str)]) -> Result<Vec<bool>> {
        Ok(self
            .ids_of_codes(tenant, keys)?
            .iter()
            .map(Option::is_some)
            .collect())
    }

    fn put_documents(
        &mut self,
        tenant: &str,
        collection: &str,
        ordering: &[String],
        writes: &[DocumentWrite<'_>],
    ) -> Result<Vec<u64>> {
        let bodies: Vec<String> = writes
            .iter()
            .map(|w| json::text(w.body))
            .collect::<Result<_>>()?;
        let ids: Vec<i64> = writes.iter().map(|w| to_i64(w.id)).collect();
        let keys: Vec<Vec<u8>> = writes.iter().map(|w| key_position(w.key)).collect();
        let versions: Vec<i64> = writes.iter().map(|w| to_i64(w.version)).collect();
        let sizes: Vec<i32> = bodies.iter().map(|b| size_of(b)).collect();
        self.execute(
            "INSERT INTO documents (tenant, collection, id, version, body, size)
             SELECT $1, $2, id, version, body, size
             FROM unnest($3::int8[], $4::int8[], $5::text[], $6::int4[])
                AS d(id, version, body, size)
             ON CONFLICT (tenant, collection, id) DO UPDATE
             SET version = EXCLUDED.version, body = EXCLUDED.body, size = EXCLUDED.size",
            &[&tenant, &collection, &ids, &versions, &bodies, &sizes],
        )?;
        // A document keeps its key for life: only new ones enter the key table.
        let (new_keys, new_ids): (Vec<&[u8]>, Vec<i64>) = writes
            .iter()
            .zip(&keys)
            .filter(|(w, _)| w.old.is_none())
            .map(|(w, key)| (key.as_slice(), to_i64(w.id)))
            .unzip();
        if !new_ids.is_empty() {
            self.execute(
                "INSERT INTO document_keys (tenant, collection, key, id)
                 SELECT $1, $2, key, id FROM unnest($3::bytea[], $4::int8[]) AS k(key, id)",
                &[&tenant, &collection, &new_keys, &new_ids],
            )?;
        }
        let new: Vec<(Vec<u8>, i64)> = writes
            .iter()
            .filter(|w| w.old.is_none())
            .map(|w| (id_position(w.id).to_vec(), to_i64(w.id)))
            .collect();
        self.add_positions(by_id(tenant, collection), &new)?;
        for field in ordering {
            let order = Order {
                tenant,
                collection,
                field,
            };
            let mut gone = Vec::new();
            let mut added = Vec::new();
            for w in writes {
                let position = field_position(w.body, field, w.id);
                if let Some(old) = w.old {
                    let was = field_position(&old.body, field, w.id);
                    if was == position {
                        continue;
                    }
                    gone.push(was);
                }
                added.push((position, to_i64(w.id)));
            }
            self.remove_positions(order, &gone)?;
            self.add_positions(order, &added)?;
        }
        Ok(sizes.into_iter().map(|s| s as u64).collect())
    }

    fn remove_document(
        &mut self,
        tenant: &str,
        collection: &str,
        ordering: &[String],
        id: u64,
        key: &[String],
    ) -> Result<Option<Stored>> {
        let Some(row) = self.query_opt(
            "DELETE FROM documents WHERE tenant = $1 AND collection = $2 AND id = $3
             RETURNING id, version, body, size",
            &[&tenant, &collection, &to_i64(id)],
        )?
        else {
            return Ok(None);
        };
        let removed = stored(&row, 0)?;
        self.execute(
            "DELETE FROM document_keys WHERE tenant = $1 AND collection = $2 AND key = $3",
            &[&tenant, &collection, &key_position(key)],
        )?;
        self.remove_positions(by_id(tenant, collection), &[id_position(id).to_vec()])?;
        for field in ordering {
            let order = Order {
                tenant,
                collection,
                field,
            };
            self.remove_positions(order, &[field_position(&removed.document.body, field, id)])?;
        }
        Ok(Some(removed))
    }

    fn set_external(
        &mut self,
        tenant: &str,
        collection: &str,
        ext: &str,
        id: u64,
    ) -> Result<Option<u64>> {
        let row = self.query_opt(
            "WITH old AS (
                SELECT id FROM external_ids WHERE tenant = $1 AND collection = $2 AND ext = $3),
             up AS (
                INSERT INTO external_ids (tenant, collection, ext, id) VALUES ($1, $2, $3, $4)
                ON CONFLICT (tenant, collection, ext) DO UPDATE SET id = EXCLUDED.id)
             SELECT id FROM old",
            &[&tenant, &collection, &ext, &to_i64(id)],
        )?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    fn remove_external(&mut self, tenant: &str, collection: &str, ext: &str) -> Result<()> {
        self.execute(
            "DELETE FROM external_ids WHERE tenant = $1 AND collection = $2 AND ext = $3",
            &[&tenant, &collection, &ext],
        )
        .map(drop)
    }

    fn append_changes(&mut self, tenant: &str, records: &[ChangeRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let versions: Vec<i64> = records.iter().map(|r| to_i64(r.version)).collect();
        let texts: Vec<String> = records.iter().map(json::text).collect::<Result<_>>()?;
        self.execute(
            "INSERT INTO changes (tenant, version, record)
             SELECT $1, v, r FROM unnest($2::int8[], $3::text[]) AS c(v, r)",
            &[&tenant, &versions, &texts],
        )
        .map(drop)
    }

    fn remove_changes_through(&mut self, tenant: &str, version: u64) -> Result<u64> {
        self.execute(
            "DELETE FROM changes WHERE tenant = $1 AND version <= $2",
            &[&tenant, &to_i64(version)],
        )
    }

    fn put_attachment(
        &mut self,
        tenant: &str,
        collection: &str,
        id: u64,
        attachment: &Attachment,
    ) -> Result<(Option<u64>, u64)> {
        let row = self.query_opt(
            "WITH old AS (
                SELECT octet_length(content)::bigint AS size FROM attachments
                WHERE tenant = $1 AND collection = $2 AND id = $3 AND name = $4),
             up AS (
                INSERT INTO attachments (tenant, collection, id, name, content_type, modified, content)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (tenant, collection, id, name) DO UPDATE
                SET content_type = EXCLUDED.content_type, modified = EXCLUDED.modified,
                    content = EXCLUDED.content)
             SELECT size FROM old",
            &[
                &tenant,
                &collection,
                &to_i64(id),
                &attachment.info.name,
                &attachment.info.content_type,
                &attachment.info.modified,
                &attachment.content,
            ],
        )?;
        Ok((
            row.map(|row| row.get::<_, i64>(0) as u64),
            attachment.content.len() as u64,
        ))
    }

    fn remove_attachment(
        &mut self,
        tenant: &str,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<u64>> {
        let row = self.query_opt(
            "DELETE FROM attachments
             WHERE tenant = $1 AND collection = $2 AND id = $3 AND name = $4
             RETURNING octet_length(content)::bigint",
            &[&tenant, &collection, &to_i64(id), &name],
        )?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    fn remove_attachments(&mut self, tenant: &str, collection: &str, id: u64) -> Result<u64> {
        let row = self.query_one(
            "WITH gone AS (
                DELETE FROM attachments WHERE tenant = $1 AND collection = $2 AND id = $3
                RETURNING octet_length(content)::bigint AS size)
             SELECT coalesce(sum(size), 0)::bigint FROM gone",
            &[&tenant, &collection, &to_i64(id)],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
