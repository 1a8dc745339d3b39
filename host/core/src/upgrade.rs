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

use crate::credentials::{TokenRecord, index_token};
use crate::exports::ExportRequest;
use crate::keys::{Key, prefix_end, split_str};
use crate::quota::{self, Usage};
use crate::records::parse;
use crate::storage::{Reader, Tbl, Writer};
use crate::{Error, Result, Store};

/// The format this build writes.
const FORMAT: u64 = 2;

fn format_key() -> Vec<u8> {
    Key::new().str("").str("format").into_vec()
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

impl Store {
    /// Brings the database to this build's format; refuses one written by a newer build.
    pub(crate) fn upgrade(&self) -> Result<()> {
        let format = self.storage.read()?.counter(&format_key())?;
        if format > FORMAT {
            return Err(Error::Corrupt(format!(
                "the database has format {format}, written by a newer bulkhost; this one reads up to {FORMAT}"
            )));
        }
        if format == FORMAT {
            return Ok(());
        }
        let tenants = tenants_with_documents(&self.storage.read()?)?;
        for tenant in &tenants {
            for schema in self.schemas.iter() {
                for field in &schema.ordering {
                    self.rebuild_index(tenant, &schema.collection, field)?;
                }
            }
        }
        self.count_usage()?;
        self.index_tokens()?;
        self.storage.write(|w| w.set_counter(&format_key(), FORMAT))
    }

    /// Sets every tenant's usage counters from what is stored.
    fn count_usage(&self) -> Result<()> {
        let r = self.storage.read()?;
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
        for (tenant, bytes) in bytes_by_tenant(&r, Tbl::BatchResults, owner)? {
            *results.entry(tenant).or_default() += bytes;
        }
        drop(r);
        self.storage.write(|w| {
            for (usage, by_tenant) in [
                (Usage::Documents, &documents),
                (Usage::Attachments, &attachments),
                (Usage::Results, &results),
                (Usage::UnfinishedExports, &unfinished),
            ] {
                for (tenant, n) in by_tenant {
                    quota::reset(w, tenant, usage, *n)?;
                }
            }
            Ok(())
        })
    }

    /// Indexes every stored token under its user.
    fn index_tokens(&self) -> Result<()> {
        self.storage.write(|w| {
            let mut owned = Vec::new();
            w.scan(
                Tbl::Tokens,
                Bound::Unbounded,
                Bound::Unbounded,
                false,
                &mut |k, v| {
                    if let (Some((id, _)), Ok(record)) = (split_str(k), parse::<TokenRecord>(v)) {
                        owned.push((id, record));
                    }
                    Ok(true)
                },
            )?;
            for (id, record) in owned {
                index_token(w, &id, &record)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OrderBy, PageQuery};
    use serde_json::{Value, json};

    fn ranks(store: &Store) -> (u64, Vec<i64>) {
        let page = store
            .page(
                "t",
                "items",
                &PageQuery {
                    offset: 0,
                    limit: 10,
                    ordering: vec![OrderBy {
                        field: "rank".into(),
                        descending: false,
                    }],
                    ..PageQuery::default()
                },
            )
            .unwrap();
        let ranks = page
            .documents
            .iter()
            .map(|d| d.body["rank"].as_i64().unwrap())
            .collect();
        (page.count, ranks)
    }

    #[test]
    fn a_database_of_the_earlier_format_reads_as_if_written_now() {
        let dir = tempfile::tempdir().unwrap();
        let big = 9_007_199_254_740_993i64;
        let usage = {
            let store = crate::items_store(dir.path());
            let items: Vec<Value> = [big, big - 1, 5, -3]
                .iter()
                .enumerate()
                .map(|(i, rank)| json!({"code": format!("c{i}"), "rank": rank}))
                .collect();
            store.upsert("t", "items", &Value::Array(items)).unwrap();
            let usage = store.storage.read().unwrap();
            let usage = usage
                .counter(&Key::new().str("t").str("usage").str("documents").into_vec())
                .unwrap();
            // What the earlier format left: index entries this build does not write (numbers
            // as f64 keys), chunk counts that count them, no usage counters, no format.
            let prefix = Key::new().str("t").str("items").str("rank").into_vec();
            store
                .storage
                .write(|w| {
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
            usage
        };
        assert!(usage > 0);
        let store = crate::items_store(dir.path());
        assert_eq!(ranks(&store), (4, vec![-3, 5, big - 1, big]));
        let counted = store
            .storage
            .read()
            .unwrap()
            .counter(&Key::new().str("t").str("usage").str("documents").into_vec())
            .unwrap();
        assert_eq!(counted, usage, "the usage counters were counted afresh");
        assert_eq!(
            store
                .storage
                .read()
                .unwrap()
                .counter(&format_key())
                .unwrap(),
            FORMAT
        );
    }
}
