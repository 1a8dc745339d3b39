//! The embedded engine: one redb file, one host, nothing to set up — the default.
//!
//! Everything is stored in a handful of ordered byte tables ([`Tbl`]) with keys built by
//! [`crate::keys::Key`], so that byte order is the domain's order (tenant, collection, value,
//! id). The modules beside this one implement the engine traits of [`crate::engine`] over
//! [`Reader`] and [`Writer`], the narrow access this module gives to a transaction's tables.
//! redb has one writer at a time, which makes every write transaction hold every tenant: the
//! locks the traits ask for are given by that alone.

mod batches;
mod components;
mod documents;
mod exports;
mod hooks;
mod outbox;
mod ranked;
mod tokens;
mod upgrade;

use std::cell::OnceCell;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, WriteTransaction,
};

use crate::Result;
use crate::engine::{CommitListener, CommitListeners, Durability, Engine, Txn, View};

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
    /// (request id, data set index, layout, first record) → the chunk's deflate piece in that
    /// layout, for gzip downloads.
    Pieces,
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
    /// (owner, plugin name) → an uploaded component's description.
    Components,
    /// (owner, plugin name) → an uploaded component's bytes, apart, so listing reads none.
    ComponentBytes,
    /// (tenant, hook id) → a change hook.
    Hooks,
}

const TABLES: [(Tbl, Def); 24] = [
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
    (Tbl::Pieces, TableDefinition::new("result_pieces")),
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
    (Tbl::Components, TableDefinition::new("components")),
    (Tbl::ComponentBytes, TableDefinition::new("component_bytes")),
    (Tbl::Hooks, TableDefinition::new("hooks")),
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
    /// Whether a table was opened for writing: a write transaction that wrote nothing is
    /// aborted rather than committed, which spares an idle poll a commit and its fsync.
    written: bool,
}

impl<S: Source> Tables<S> {
    fn new(source: S) -> Self {
        Tables {
            source,
            tables: TABLES.iter().map(|_| OnceCell::new()).collect(),
            written: false,
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
        self.written = true;
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

/// Key-value entries for each of the five scratch tables of [`RedbEngine::write_raw_entries`].
pub type RawTables = [Vec<(Vec<u8>, Vec<u8>)>; 5];

/// redb's page cache. Its default (1 GiB) lets a large export's freshly written result pages
/// pile up in memory. Measured with a 1,000,000-record export and its downloads, the server's
/// peak was 324 MiB at 64 MiB of cache and 184 MiB at 16 MiB (the allocator holds about three
/// times what the cache counts), while page reads at 1,000,000 documents got faster (0.83 ms
/// p50 against 1.26 ms) and the change feed listed 280,000 changes/s against 214,000: the
/// hot pages (indexes, rank chunks, recent documents) still fit.
const CACHE_BYTES: usize = 16 << 20;

/// A snapshot or a transaction of the engine: its tables, and what a write keeps beside them.
pub(crate) struct Redb<T, W = ()> {
    pub(crate) tables: T,
    pub(crate) write: W,
}

/// What a write transaction keeps beside its tables.
pub(crate) struct WriteState<'c> {
    /// The rank bookkeeping of the ordered sequences it changes.
    pub(crate) ranks: ranked::RankWriter<'c>,
    /// The tenants whose version it moved, with their new version.
    pub(crate) versions: Vec<(String, u64)>,
}

/// A write transaction of the engine.
pub(crate) type RedbTxn<'t, 'c> = Redb<WriteTables<'t>, WriteState<'c>>;

/// The redb engine. Cheap to clone; all clones share one file.
#[derive(Clone)]
pub struct RedbEngine {
    db: Arc<Database>,
    ranks: Arc<std::sync::Mutex<ranked::RankCache>>,
    listeners: Arc<CommitListeners>,
}

impl std::fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbEngine").finish_non_exhaustive()
    }
}

impl RedbEngine {
    /// Opens (or creates) the database file `bulkhost.redb` in `dir`, upgrading one written by
    /// an earlier build (see `upgrade.rs`) for the collections of `schemas`.
    pub fn open(dir: &Path, schemas: &crate::Schemas) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| crate::Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("bulkhost.redb"))?;
        let engine = RedbEngine {
            db: Arc::new(db),
            ranks: Arc::default(),
            listeners: Arc::default(),
        };
        // Every table exists from the start, so read transactions can open any of them.
        engine.write_tables(Durability::Immediate, |w| {
            TABLES
                .iter()
                .try_for_each(|(tbl, _)| w.tables.table_mut(*tbl).map(drop))
        })?;
        engine.upgrade(schemas)?;
        Ok(engine)
    }

    /// Runs `f` in one write transaction with the rank bookkeeping it needs; a failure
    /// anywhere discards the cached chunk lists, which may be ahead of what was committed.
    /// Listeners hear of the versions it moved once it is committed.
    fn write_tables<R>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut RedbTxn<'_, '_>) -> Result<R>,
    ) -> Result<R> {
        let mut cache = self.ranks.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(match durability {
                Durability::Immediate => redb::Durability::Immediate,
                Durability::Deferred => redb::Durability::None,
            })?;
            let (out, versions, written) = {
                let mut state = Redb {
                    tables: Tables::new(&txn),
                    write: WriteState {
                        ranks: cache.begin(),
                        versions: Vec::new(),
                    },
                };
                let out = f(&mut state)?;
                let Redb {
                    mut tables,
                    write: WriteState { ranks, versions },
                } = state;
                ranks.flush(&mut tables)?;
                (out, versions, tables.written)
            };
            if written {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok((out, versions))
        })();
        match result {
            Ok((out, versions)) => {
                drop(cache);
                self.notify(&versions);
                Ok(out)
            }
            Err(e) => {
                cache.clear();
                Err(e)
            }
        }
    }

    fn notify(&self, versions: &[(String, u64)]) {
        for (tenant, version) in versions {
            self.listeners.tell(tenant, *version);
        }
    }

    fn read_tables(&self) -> Result<ReadTables> {
        Ok(Tables::new(self.db.begin_read()?))
    }

    /// Writes raw entries in one durable commit, `tables[t]` into scratch table `t`: the
    /// yardstick the benchmark harness holds the document write path against, fed the same
    /// entries a document write makes (the document, its key, its index entries, its change
    /// record, the rank counts).
    pub fn write_raw_entries(&self, tables: &RawTables) -> Result<()> {
        const RAW: [Def; 5] = [
            TableDefinition::new("bench_raw_0"),
            TableDefinition::new("bench_raw_1"),
            TableDefinition::new("bench_raw_2"),
            TableDefinition::new("bench_raw_3"),
            TableDefinition::new("bench_raw_4"),
        ];
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        for (def, entries) in RAW.iter().zip(tables) {
            let mut table = txn.open_table(*def)?;
            for (key, value) in entries {
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Engine for RedbEngine {
    fn read(&self) -> Result<Box<dyn View>> {
        Ok(Box::new(Redb {
            tables: self.read_tables()?,
            write: (),
        }))
    }

    fn write(
        &self,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>,
    ) -> Result<()> {
        self.write_tables(durability, |txn| work(txn))
    }

    fn add_listener(&self, listener: Arc<dyn CommitListener>) {
        self.listeners.add(listener);
    }

    fn shared(&self) -> bool {
        false
    }
}

/// A counter of the meta table, read inside a transaction.
pub(crate) fn meta_key(scope: &str, name: &str) -> Vec<u8> {
    crate::keys::Key::new().str(scope).str(name).into_vec()
}

/// Every record of `tbl` with a key in `range`, stored as JSON, that `keep` selects, in key
/// order.
pub(crate) fn records_where<T: serde::de::DeserializeOwned>(
    r: &impl Reader,
    tbl: Tbl,
    (from, to): (Bound<&[u8]>, Bound<&[u8]>),
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    r.scan(tbl, from, to, false, &mut |_, v| {
        let record: T = crate::records::parse(v)?;
        if keep(&record) {
            out.push(record);
        }
        Ok(true)
    })?;
    Ok(out)
}

/// Every record of `tbl` whose key starts with `owner` (a tenant, a plugin scope's owner),
/// in key order.
pub(crate) fn records_of<T: serde::de::DeserializeOwned>(
    r: &impl Reader,
    tbl: Tbl,
    owner: &str,
) -> Result<Vec<T>> {
    let prefix = crate::keys::Key::new().str(owner).into_vec();
    let end = crate::keys::prefix_end(&prefix);
    records_where(
        r,
        tbl,
        (Bound::Included(&prefix), Bound::Excluded(&end)),
        |_| true,
    )
}

/// Every key.
pub(crate) const ALL: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Unbounded, Bound::Unbounded);

/// The next value of the named sequence, advanced inside the caller's transaction.
pub(crate) fn next_seq(w: &mut impl Writer, name: &str) -> Result<u64> {
    let key = meta_key("", name);
    let seq = w.counter(&key)? + 1;
    w.set_counter(&key, seq)?;
    Ok(seq)
}

impl crate::engine::SettingsTxn for RedbTxn<'_, '_> {
    fn setting(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .tables
            .get(Tbl::Meta, &meta_key("settings", name))?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned()))
    }

    fn put_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.tables
            .put(Tbl::Meta, &meta_key("settings", name), value.as_bytes())
    }

    fn settings(&mut self) -> Result<Vec<(String, String)>> {
        let prefix = crate::keys::Key::new().str("settings").into_vec();
        let end = crate::keys::prefix_end(&prefix);
        let mut settings = Vec::new();
        self.tables.scan(
            Tbl::Meta,
            Bound::Included(&prefix),
            Bound::Excluded(&end),
            false,
            &mut |k, v| {
                if let Some((name, _)) = crate::keys::split_str(&k[prefix.len()..]) {
                    settings.push((name, String::from_utf8_lossy(v).into_owned()));
                }
                Ok(true)
            },
        )?;
        Ok(settings)
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for crate::Error {
            fn from(e: $t) -> Self {
                crate::Error::Storage(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

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
        let s = RedbEngine::open(dir.path(), &crate::Schemas::default()).unwrap();
        let r: Result<()> = s.write_tables(Durability::Immediate, |w| {
            w.tables.put(Tbl::Meta, b"k", b"v")?;
            Err(crate::Error::NotFound)
        });
        assert!(r.is_err());
        assert_eq!(s.read_tables().unwrap().get(Tbl::Meta, b"k").unwrap(), None);
        s.write_tables(Durability::Immediate, |w| {
            w.tables.put(Tbl::Meta, b"k", b"v")
        })
        .unwrap();
        assert_eq!(
            s.read_tables().unwrap().get(Tbl::Meta, b"k").unwrap(),
            Some(b"v".to_vec())
        );
    }
}
