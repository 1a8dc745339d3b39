//! Upgrading a database written by an earlier build, once, when it is opened.
//!
//! The database's format number lives in the meta table. Each step rewrites what this build
//! stores differently, so an upgraded database reads exactly as if this build had written it,
//! and a crash during an upgrade only makes the next start do it again:
//!
//! - 2: ordering indexes collate numbers by their exact value (they were compared as `f64`,
//!   which ties integers past 2^53); the usage counters that quotas check are counted from
//!   what is stored; each user's tokens get the index that counts them.

use std::collections::HashMap;
use std::ops::Bound;

use serde_json::Value;

use super::documents::{decode_doc, doc_prefix, index, index_entry, index_prefix, usage_key};
use super::ranked;
use super::tokens::index_token;
use super::{Reader, RedbEngine, Tbl, Writer, meta_key};
use crate::engine::Durability;
use crate::exports::ExportRequest;
use crate::keys::Key;
use crate::keys::{prefix_end, split_str, trailing_u64};
use crate::quota::Usage;
use crate::records::parse;
use crate::{Error, Result, Schemas};

/// The format this build writes.
const FORMAT: u64 = 2;

fn format_key() -> Vec<u8> {
    meta_key("", "format")
}

/// The tenants that own at least one document, found by seeking from one tenant's keys to the
/// next rather than reading every document.
fn tenants_with_documents(r: &impl Reader) -> Result<Vec<String>> {
    let mut tenants = Vec::new();
    let mut from = Vec::new();
    loop {
        let mut next = None;
        r.scan(
            Tbl::Docs,
            Bound::Included(&from),
            Bound::Unbounded,
            false,
            &mut |k, _| {
                next = split_str(k).map(|(tenant, _)| tenant);
                Ok(false)
            },
        )?;
        let Some(tenant) = next else {
            return Ok(tenants);
        };
        from = prefix_end(&Key::new().str(&tenant).into_vec());
        tenants.push(tenant);
    }
}

/// Sums the stored bytes of a table's values by the tenant `owner` finds for each key.
fn bytes_by_tenant(
    r: &impl Reader,
    tbl: Tbl,
    owner: impl Fn(&[u8]) -> Option<String>,
) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    r.scan(
        tbl,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            if let Some(tenant) = owner(k) {
                *out.entry(tenant).or_default() += v.len() as u64;
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

impl RedbEngine {
    /// Brings the database to this build's format; refuses one written by a newer build.
    pub(crate) fn upgrade(&self, schemas: &Schemas) -> Result<()> {
        let format = self.read_tables()?.counter(&format_key())?;
        if format > FORMAT {
            return Err(Error::Corrupt(format!(
                "the database has format {format}, written by a newer bulkhost; this one reads up to {FORMAT}"
            )));
        }
        if format == FORMAT {
            return Ok(());
        }
        let tenants = tenants_with_documents(&self.read_tables()?)?;
        for tenant in &tenants {
            for schema in schemas.iter() {
                for field in &schema.ordering {
                    self.rebuild_index(tenant, &schema.collection, field)?;
                }
            }
        }
        self.count_usage()?;
        self.index_tokens()?;
        self.write_tables(Durability::Immediate, |w| {
            w.tables.set_counter(&format_key(), FORMAT)
        })
    }

    /// Writes the index of `collection` by `field` afresh from the tenant's documents, in one
    /// transaction: what an upgrade does when index keys are encoded differently.
    fn rebuild_index(&self, tenant: &str, collection: &str, field: &str) -> Result<()> {
        self.ranks.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let prefix = index_prefix(tenant, collection, field);
        let docs = doc_prefix(tenant, collection);
        let docs_end = prefix_end(&docs);
        self.write_tables(Durability::Immediate, |txn| {
            let w = &mut txn.tables;
            w.remove_prefix(Tbl::Index, &prefix)?;
            w.remove_prefix(Tbl::Ranks, &ranked::chunks_prefix(index(&prefix)))?;
            let mut entries = Vec::new();
            w.scan(
                Tbl::Docs,
                Bound::Included(&docs),
                Bound::Excluded(&docs_end),
                false,
                &mut |k, v| {
                    let doc = decode_doc(trailing_u64(k), v)?;
                    let value = doc.body.get(field).unwrap_or(&Value::Null);
                    entries.push(index_entry(&prefix, value, doc.id));
                    Ok(true)
                },
            )?;
            for entry in entries {
                txn.write
                    .ranks
                    .put(&mut txn.tables, index(&prefix), &entry, &[])?;
            }
            Ok(())
        })
    }

    /// Sets every tenant's usage counters from what is stored.
    fn count_usage(&self) -> Result<()> {
        let r = self.read_tables()?;
        let tenant_of = |k: &[u8]| split_str(k).map(|(tenant, _)| tenant);
        let documents = bytes_by_tenant(&r, Tbl::Docs, tenant_of)?;
        let attachments = bytes_by_tenant(&r, Tbl::Attachments, tenant_of)?;
        let mut owners: HashMap<String, String> = HashMap::new();
        let mut unfinished: HashMap<String, u64> = HashMap::new();
        r.scan(
            Tbl::Exports,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |_, v| {
                let request: ExportRequest = parse(v)?;
                if !request.finished() {
                    *unfinished.entry(request.tenant.clone()).or_default() += 1;
                }
                owners.insert(request.id, request.tenant);
                Ok(true)
            },
        )?;
        r.scan(
            Tbl::Batches,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, _| {
                if let Some((tenant, rest)) = split_str(k)
                    && let Some((uuid, _)) = split_str(rest)
                {
                    owners.insert(uuid, tenant);
                }
                Ok(true)
            },
        )?;
        let owner = |k: &[u8]| split_str(k).and_then(|(id, _)| owners.get(&id).cloned());
        let mut results = bytes_by_tenant(&r, Tbl::Results, owner)?;
        for tbl in [Tbl::Pieces, Tbl::BatchResults] {
            for (tenant, bytes) in bytes_by_tenant(&r, tbl, owner)? {
                *results.entry(tenant).or_default() += bytes;
            }
        }
        drop(r);
        self.write_tables(Durability::Immediate, |txn| {
            for (usage, by_tenant) in [
                (Usage::Documents, &documents),
                (Usage::Attachments, &attachments),
                (Usage::Results, &results),
                (Usage::UnfinishedExports, &unfinished),
            ] {
                for (tenant, n) in by_tenant {
                    txn.tables.set_counter(&usage_key(tenant, usage), *n)?;
                }
            }
            Ok(())
        })
    }

    /// Indexes every stored token under its user.
    fn index_tokens(&self) -> Result<()> {
        self.write_tables(Durability::Immediate, |txn| {
            let w = &mut txn.tables;
            for (id, record) in super::tokens::stored_tokens(w)? {
                index_token(w, &id, &record)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;
    use crate::{OrderBy, PageQuery, Store};
    use serde_json::json;

    fn ranks(store: &Store) -> (u64, Vec<i64>) {
        crate::ranks_of(
            store,
            PageQuery {
                offset: 0,
                limit: 10,
                ordering: vec![OrderBy {
                    field: "rank".into(),
                    descending: false,
                }],
                ..PageQuery::default()
            },
        )
    }

    fn usage(engine: &RedbEngine) -> u64 {
        engine
            .read_tables()
            .unwrap()
            .counter(&usage_key("t", Usage::Documents))
            .unwrap()
    }

    #[test]
    fn a_database_of_the_earlier_format_reads_as_if_written_now() {
        let dir = tempfile::tempdir().unwrap();
        let big = 9_007_199_254_740_993i64;
        let counted = {
            let (store, engine) = crate::items_store_on(dir.path());
            let items: Vec<Value> = [big, big - 1, 5, -3]
                .iter()
                .enumerate()
                .map(|(i, rank)| json!({"code": format!("c{i}"), "rank": rank}))
                .collect();
            store
                .documents()
                .upsert("t", "items", &Value::Array(items))
                .unwrap();
            let counted = usage(&engine);
            // What the earlier format left: index entries this build does not write (numbers
            // as f64 keys), chunk counts that count them, no usage counters, no format.
            let prefix = index_prefix("t", "items", "rank");
            engine
                .write_tables(Durability::Immediate, |txn| {
                    let w = &mut txn.tables;
                    w.put(
                        Tbl::Index,
                        &Key::new()
                            .bytes(&prefix)
                            .bytes(&[0x30; 9])
                            .u64(1)
                            .into_vec(),
                        &[],
                    )?;
                    w.remove_prefix(Tbl::Meta, &Key::new().str("t").str("usage").into_vec())?;
                    w.remove(Tbl::Meta, &format_key()).map(drop)
                })
                .unwrap();
            counted
        };
        assert!(counted > 0);
        let (store, engine) = crate::items_store_on(dir.path());
        assert_eq!(ranks(&store), (4, vec![-3, 5, big - 1, big]));
        assert_eq!(
            usage(&engine),
            counted,
            "the usage counters were counted afresh"
        );
        assert_eq!(
            engine
                .read_tables()
                .unwrap()
                .counter(&format_key())
                .unwrap(),
            FORMAT
        );
    }
}
