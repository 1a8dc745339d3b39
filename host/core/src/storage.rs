//! The only module that knows redb: tables, transactions and the commit hook.
//!
//! Everything else in the core reads and writes through [`Reader`] and [`Writer`], byte keys to
//! byte values in a handful of named tables. That narrow seam is where another engine can stand
//! in for redb later without touching the business rules.

use std::cell::OnceCell;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, WriteTransaction,
};

use crate::Result;

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// The tables of the core. Keys are built by [`crate::keys::Key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tbl {
    /// (tenant, collection, id) → stored document.
    Docs,
    /// Ordered index entries: (tenant, collection, field, value, id) → nothing.
    Index,
    /// Chunk counts over the sequences of `Docs` and `Index`, for seeking to a position:
    /// (table, sequence, chunk start) → n.
    Ranks,
    /// (tenant, collection, key values) → id, for upsert by key and `code:` lookups.
    Codes,
    /// (tenant, version) → change record.
    Changes,
    /// Counters and settings: (tenant, name) → value.
    Meta,
    /// (token id) → token record.
    Tokens,
    /// (tenant, collection, `ext:` id) → id: ABRA's external ids, unique per collection.
    External,
    /// (tenant, request id) → export request record.
    Exports,
    /// (tenant, sequence) → (request id, data set index): queued data set runs.
    Queue,
    /// (request id, data set index, first record) → a chunk of generated records.
    Results,
    /// (sequence) → side effect to deliver (webhooks), written with the change that causes it.
    Outbox,
    /// (tenant, collection, document id, name) → a file attached to the document.
    Attachments,
    /// (tenant, batch uuid) → a batch and its progress, without its operations.
    Batches,
    /// (sequence) → (tenant, batch uuid): batches waiting for a worker.
    BatchQueue,
    /// (batch uuid) → its operations, as accepted.
    BatchOperations,
    /// (batch uuid, operation index) → the operation's result.
    BatchResults,
    /// (tenant, idempotency key) → (body digest, batch uuid).
    BatchKeys,
    /// (batch uuid, operation index, n) → the outcome of the n-th write of an operation in
    /// flight, so a replay does not write again.
    WriteMarks,
    /// (user, token id) → when the token expires: a user's live tokens, counted without
    /// reading the token table.
    TokenOwners,
}

const TABLES: [(Tbl, Def); 20] = [
    (Tbl::Docs, TableDefinition::new("docs")),
    (Tbl::Index, TableDefinition::new("index")),
    (Tbl::Ranks, TableDefinition::new("ranks")),
    (Tbl::Codes, TableDefinition::new("codes")),
    (Tbl::Changes, TableDefinition::new("changes")),
    (Tbl::Meta, TableDefinition::new("meta")),
    (Tbl::Tokens, TableDefinition::new("tokens")),
    (Tbl::External, TableDefinition::new("external_ids")),
    (Tbl::Exports, TableDefinition::new("exports")),
    (Tbl::Queue, TableDefinition::new("queue")),
    (Tbl::Results, TableDefinition::new("results")),
    (Tbl::Outbox, TableDefinition::new("outbox")),
    (Tbl::Attachments, TableDefinition::new("attachments")),
    (Tbl::Batches, TableDefinition::new("batches")),
    (Tbl::BatchQueue, TableDefinition::new("batch_queue")),
    (
        Tbl::BatchOperations,
        TableDefinition::new("batch_operations"),
    ),
    (Tbl::BatchResults, TableDefinition::new("batch_results")),
    (Tbl::BatchKeys, TableDefinition::new("batch_keys")),
    (Tbl::WriteMarks, TableDefinition::new("write_marks")),
    (Tbl::TokenOwners, TableDefinition::new("token_owners")),
];

/// Called with each (key, value) of a scan; answering `false` stops the scan.
pub(crate) type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Read access shared by read and write transactions.
pub(crate) trait Reader {
    fn get(&self, tbl: Tbl, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the entries in `[from, to)` in key order (reversed when `rev`), until `visit`
    /// answers `false`. A visitor keeps the storage engine's borrows out of the callers.
    fn scan(
        &self,
        tbl: Tbl,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        rev: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()>;

    /// Reads a big-endian counter, zero when absent.
    fn counter(&self, key: &[u8]) -> Result<u64> {
        Ok(self.get(Tbl::Meta, key)?.map_or(0, |v| decode_u64(&v)))
    }
}

/// Writes, only inside a write transaction.
pub(crate) trait Writer: Reader {
    fn put(&mut self, tbl: Tbl, key: &[u8], value: &[u8]) -> Result<()>;
    /// Writes and answers the value it replaced: one tree walk where a get and a put take two.
    fn replace(&mut self, tbl: Tbl, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>>;
    fn remove(&mut self, tbl: Tbl, key: &[u8]) -> Result<Option<Vec<u8>>>;

    fn set_counter(&mut self, key: &[u8], value: u64) -> Result<()> {
        self.put(Tbl::Meta, key, &value.to_be_bytes())
    }

    /// Removes every entry whose key starts with `prefix` (a whole encoded key part); answers
    /// the bytes of the values removed, for the quotas that count them.
    fn remove_prefix(&mut self, tbl: Tbl, prefix: &[u8]) -> Result<u64> {
        let end = crate::keys::prefix_end(prefix);
        let mut keys = Vec::new();
        let mut bytes = 0;
        self.scan(
            tbl,
            Bound::Included(prefix),
            Bound::Excluded(&end),
            false,
            &mut |k, v| {
                keys.push(k.to_vec());
                bytes += v.len() as u64;
                Ok(true)
            },
        )?;
        for k in keys {
            self.remove(tbl, &k)?;
        }
        Ok(bytes)
    }
}

pub(crate) fn decode_u64(v: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    let n = v.len().min(8);
    raw[8 - n..].copy_from_slice(&v[..n]);
    u64::from_be_bytes(raw)
}

fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
    rev: bool,
    visit: &mut Visitor<'_>,
) -> Result<()> {
    if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
        (from, to)
        && a > b
    {
        return Ok(());
    }
    let range = table.range::<&[u8]>((from, to))?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) = item?;
        visit(k.value(), v.value())
    };
    if rev {
        for item in range.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in range {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

/// A transaction tables are opened from.
pub(crate) trait Source {
    /// An open table of this transaction.
    type Table;

    fn open(&self, def: Def) -> Result<Self::Table>;
}

impl<'t> Source for &'t WriteTransaction {
    type Table = Table<'t, &'static [u8], &'static [u8]>;

    fn open(&self, def: Def) -> Result<Self::Table> {
        Ok(self.open_table(def)?)
    }
}

impl Source for ReadTransaction {
    type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

    fn open(&self, def: Def) -> Result<Self::Table> {
        Ok(self.open_table(def)?)
    }
}

/// The tables of one transaction, indexed by [`Tbl`], each opened when first used: a
/// transaction touches a few of them, and opening a table is a lookup of its own.
pub(crate) struct Tables<S: Source> {
    source: S,
    tables: Vec<OnceCell<S::Table>>,
}

impl<S: Source> Tables<S> {
    fn new(source: S) -> Self {
        Tables {
            source,
            tables: TABLES.iter().map(|_| OnceCell::new()).collect(),
        }
    }

    fn table(&self, tbl: Tbl) -> Result<&S::Table> {
        let cell = &self.tables[tbl as usize];
        if let Some(table) = cell.get() {
            return Ok(table);
        }
        let table = self.source.open(TABLES[tbl as usize].1)?;
        Ok(cell.get_or_init(|| table))
    }

    fn table_mut(&mut self, tbl: Tbl) -> Result<&mut S::Table> {
        self.table(tbl)?;
        self.tables[tbl as usize]
            .get_mut()
            .ok_or_else(|| unreachable!("the table was opened just now"))
    }
}

/// The tables of one read transaction: a consistent snapshot.
pub(crate) type ReadTables = Tables<ReadTransaction>;

/// The tables of one write transaction.
pub(crate) type WriteTables<'t> = Tables<&'t WriteTransaction>;

impl<S: Source> Reader for Tables<S>
where
    S::Table: ReadableTable<&'static [u8], &'static [u8]>,
{
    fn get(&self, tbl: Tbl, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table(tbl)?.get(key)?.map(|g| g.value().to_vec()))
    }

    fn scan(
        &self,
        tbl: Tbl,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        rev: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        scan_table(self.table(tbl)?, from, to, rev, visit)
    }
}

impl Writer for WriteTables<'_> {
    fn put(&mut self, tbl: Tbl, key: &[u8], value: &[u8]) -> Result<()> {
        self.table_mut(tbl)?.insert(key, value)?;
        Ok(())
    }

    fn replace(&mut self, tbl: Tbl, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .table_mut(tbl)?
            .insert(key, value)?
            .map(|g| g.value().to_vec()))
    }

    fn remove(&mut self, tbl: Tbl, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .table_mut(tbl)?
            .remove(key)?
            .map(|g| g.value().to_vec()))
    }
}

/// redb's page cache. Its default (1 GiB) lets a large export's freshly written result pages
/// pile up in memory; this keeps the server's footprint flat whatever the data size, while the
/// hot pages (indexes, rank chunks, recent documents) still fit.
const CACHE_BYTES: usize = 64 << 20;

/// Told after every commit that changed a tenant's documents, so waiting readers (long-polls of
/// the change feed) wake without the core knowing about async runtimes.
pub trait CommitListener: Send + Sync {
    /// `version` is the tenant's global version after the commit.
    fn committed(&self, tenant: &str, version: u64);
}

/// The embedded database. Cheap to clone; all clones share one redb file.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
    listeners: Arc<std::sync::RwLock<Vec<Arc<dyn CommitListener>>>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (or creates) the database file `bulkhost.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| crate::Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("bulkhost.redb"))?;
        let storage = Storage {
            db: Arc::new(db),
            listeners: Arc::default(),
        };
        // Every table exists from the start, so read transactions can open any of them.
        storage.write(|w| {
            TABLES
                .iter()
                .try_for_each(|(tbl, _)| w.table(*tbl).map(drop))
        })?;
        Ok(storage)
    }

    /// Registers a listener told of every commit that advanced a tenant's version.
    pub fn add_listener(&self, listener: Arc<dyn CommitListener>) {
        self.listeners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    pub(crate) fn notify(&self, tenant: &str, version: u64) {
        for l in self
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            l.committed(tenant, version);
        }
    }

    /// Runs `f` in one durable write transaction: committed (and fsynced) when `f` succeeds,
    /// rolled back entirely when it fails.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut WriteTables<'_>) -> Result<R>) -> Result<R> {
        self.write_with(Durability::Immediate, f)
    }

    /// Runs `f` in one write transaction that is committed without waiting for the disk: it
    /// becomes durable with the next durable commit, and a crash before that loses it whole
    /// (never in part). Only for writes whose loss a restart repairs.
    pub(crate) fn write_unsynced<R>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<R>,
    ) -> Result<R> {
        self.write_with(Durability::None, f)
    }

    fn write_with<R>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        let out = f(&mut Tables::new(&txn))?;
        txn.commit()?;
        Ok(out)
    }

    /// A consistent read snapshot.
    pub(crate) fn read(&self) -> Result<ReadTables> {
        Ok(Tables::new(self.db.begin_read()?))
    }

    /// Writes raw bytes into a scratch table in one commit: the yardstick the benchmark harness
    /// holds the document write path against.
    pub fn write_raw_batch(&self, prefix: &str, start: u64, values: &[Vec<u8>]) -> Result<()> {
        const RAW: Def = TableDefinition::new("bench_raw");
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(RAW)?;
            for (i, v) in values.iter().enumerate() {
                let key = crate::keys::Key::new()
                    .str(prefix)
                    .u64(start + i as u64)
                    .into_vec();
                table.insert(key.as_slice(), v.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_indexed_by_their_position() {
        for (i, (tbl, _)) in TABLES.iter().enumerate() {
            assert_eq!(*tbl as usize, i);
        }
    }

    #[test]
    fn failed_write_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let r: Result<()> = s.write(|w| {
            w.put(Tbl::Meta, b"k", b"v")?;
            Err(crate::Error::NotFound)
        });
        assert!(r.is_err());
        assert_eq!(s.read().unwrap().get(Tbl::Meta, b"k").unwrap(), None);
        s.write(|w| w.put(Tbl::Meta, b"k", b"v")).unwrap();
        assert_eq!(
            s.read().unwrap().get(Tbl::Meta, b"k").unwrap(),
            Some(b"v".to_vec())
        );
    }
}
