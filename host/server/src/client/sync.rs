//! `bulkhost sync`: ABRA Flexi's initial load and differential sync into a local SQLite file.
//! The first run reads each collection whole from one snapshot
//! (`/c/{firma}/{collection}.json?add-global-version=true&limit=0`, parsed as it arrives, one
//! record at a time) and keeps the lowest global version the listings were read at; every run
//! then applies the changes after the stored version, fetching each created or updated record,
//! removing deleted ones, and storing the version reached in the same transaction, so a run
//! that stops continues from there. `--follow` keeps going, long-polling for new changes.
//!
//! The file holds `documents(collection, id, body)`, each body the record as ABRA Flexi lists
//! it, and `sync_state(name, value)` with the `version` and the `collections` followed.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use rusqlite::{Connection as Sqlite, OptionalExtension, params};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::connection::error_chain;
use super::{ClientError, Connection, ConnectionArgs, io};

/// Records written per local transaction during the initial load.
const LOAD_BATCH: usize = 1000;
/// Changes asked for at once.
const CHANGES_PAGE: u32 = 1000;
/// How long one long-poll of `--follow` waits for a change, in seconds.
const FOLLOW_WAIT: u32 = 30;

/// `bulkhost sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The SQLite file to keep in step (created on the first run).
    #[arg(long)]
    db: PathBuf,
    /// A collection (ABRA Flexi's record type) to copy; may be repeated.
    #[arg(long = "records", required = true)]
    collections: Vec<String>,
    /// Keep following the change feed until interrupted.
    #[arg(long)]
    follow: bool,
    /// Where the server is and who calls it.
    #[command(flatten)]
    connection: ConnectionArgs,
}

fn open(path: &PathBuf) -> Result<Sqlite, ClientError> {
    let db = Sqlite::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS documents (
             collection TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL,
             PRIMARY KEY (collection, id));
         CREATE TABLE IF NOT EXISTS sync_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    Ok(db)
}

fn state(db: &Sqlite, name: &str) -> Result<Option<String>, ClientError> {
    Ok(db
        .query_row(
            "SELECT value FROM sync_state WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?)
}

fn set_state(db: &Sqlite, name: &str, value: &str) -> Result<(), ClientError> {
    db.execute(
        "INSERT INTO sync_state (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

/// A record's numeric id, which ABRA Flexi sends as a string.
fn id_of(record: &Map<String, Value>) -> Option<i64> {
    match &record["id"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

pub(super) async fn run(args: SyncArgs) -> Result<(), ClientError> {
    let api = args.connection.connect()?;
    let tenant = api.tenant()?.to_string();
    let mut db = open(&args.db)?;
    let mut collections = args.collections.clone();
    collections.sort();
    collections.dedup();
    let followed = serde_json::to_string(&collections).unwrap_or_default();
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut version = match (state(&db, "version")?, state(&db, "collections")?) {
        (Some(version), Some(stored)) if stored == followed => {
            version.parse::<u64>().map_err(|_| {
                ClientError::Mismatch(format!(
                    "{}: the stored version is unreadable",
                    args.db.display()
                ))
            })?
        }
        (Some(_), Some(stored)) => {
            return Err(ClientError::Settings(format!(
                "{} follows {stored}; use another file for other collections",
                args.db.display()
            )));
        }
        _ => initial_load(&api, &tenant, &collections, &mut db, &bar).await?,
    };
    loop {
        let (reached, more) =
            apply_changes(&api, &tenant, &collections, version, &mut db, args.follow).await?;
        if reached != version {
            bar.set_message(format!("in step with version {reached}"));
        }
        version = reached;
        bar.tick();
        if !more && !args.follow {
            break;
        }
    }
    bar.finish_with_message(format!("{} is at version {version}", args.db.display()));
    println!("version {version}");
    Ok(())
}

/// Reads every collection whole into the file; answers the version to follow the change feed
/// from.
async fn initial_load(
    api: &Connection,
    tenant: &str,
    collections: &[String],
    db: &mut Sqlite,
    bar: &ProgressBar,
) -> Result<u64, ClientError> {
    let mut from: Option<u64> = None;
    let txn = db.transaction()?;
    txn.execute("DELETE FROM documents", [])?;
    for collection in collections {
        let path = format!("/c/{tenant}/{collection}.json?add-global-version=true&limit=0");
        let what = format!("reading {collection}");
        let mut response = api.send(&what, api.request(Method::GET, &path)).await?;
        let spool = tempfile::tempfile().map_err(io("a spool file"))?;
        let mut spool = std::io::BufWriter::new(spool);
        while let Some(bytes) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Http(what.clone(), error_chain(&e)))?
        {
            spool.write_all(&bytes).map_err(io("the spool file"))?;
        }
        let mut spool = spool
            .into_inner()
            .map_err(|e| ClientError::Io("the spool file".into(), e.into_error()))?;
        std::io::Seek::rewind(&mut spool).map_err(io("the spool file"))?;
        let mut batch: Vec<(i64, String)> = Vec::new();
        let mut count = 0u64;
        let mut store = |record: Map<String, Value>| -> Result<(), ClientError> {
            let id = id_of(&record).ok_or_else(|| {
                ClientError::Mismatch(format!("a record of {collection} has no numeric id"))
            })?;
            batch.push((id, Value::Object(record).to_string()));
            count += 1;
            if batch.len() >= LOAD_BATCH {
                insert(&txn, collection, &mut batch)?;
                bar.set_message(format!("initial load: {collection} {count} records"));
            }
            Ok(())
        };
        let version = read_listing(std::io::BufReader::new(spool), collection, &mut store)?;
        insert(&txn, collection, &mut batch)?;
        bar.set_message(format!("initial load: {collection} {count} records"));
        from = Some(from.map_or(version, |v: u64| v.min(version)));
    }
    let version = from.unwrap_or(0);
    let followed = serde_json::to_string(collections).unwrap_or_default();
    set_state(&txn, "collections", &followed)?;
    set_state(&txn, "version", &version.to_string())?;
    txn.commit()?;
    Ok(version)
}

/// Stores a document, replacing the copy of the same id.
fn upsert(db: &Sqlite, collection: &str, id: i64, body: &str) -> Result<(), ClientError> {
    db.prepare_cached(
        "INSERT INTO documents (collection, id, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (collection, id) DO UPDATE SET body = excluded.body",
    )?
    .execute(params![collection, id, body])?;
    Ok(())
}

fn insert(
    db: &Sqlite,
    collection: &str,
    batch: &mut Vec<(i64, String)>,
) -> Result<(), ClientError> {
    batch
        .drain(..)
        .try_for_each(|(id, body)| upsert(db, collection, id, &body))
}

/// Applies the changes after `version`; answers the version reached and whether more wait.
async fn apply_changes(
    api: &Connection,
    tenant: &str,
    collections: &[String],
    version: u64,
    db: &mut Sqlite,
    follow: bool,
) -> Result<(u64, bool), ClientError> {
    let mut query = vec![
        ("start".to_string(), (version + 1).to_string()),
        ("limit".to_string(), CHANGES_PAGE.to_string()),
    ];
    query.extend(
        collections
            .iter()
            .map(|c| ("records".to_string(), c.clone())),
    );
    if follow {
        query.push(("wait".to_string(), FOLLOW_WAIT.to_string()));
    }
    let path = format!(
        "/c/{tenant}/changes.json?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    );
    let listing: Value = api
        .json("reading the change feed", api.request(Method::GET, &path))
        .await?;
    let body = &listing["winstrom"];
    let changes = body["changes"].as_array().cloned().unwrap_or_default();
    let mut fetched = Vec::with_capacity(changes.len());
    for change in &changes {
        let collection = change["@evidence"].as_str().unwrap_or_default();
        let id: i64 = change["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let record = if change["@operation"] == "delete" {
            None
        } else {
            fetch_record(api, tenant, collection, id).await?
        };
        fetched.push((collection.to_string(), id, record));
    }
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
    let (reached, more) = match number(&body["next"]) {
        Some(next) => (next - 1, true),
        None => (number(&body["@globalVersion"]).unwrap_or(version), false),
    };
    let txn = db.transaction()?;
    for (collection, id, record) in fetched {
        match record {
            Some(body) => upsert(&txn, &collection, id, &body)?,
            None => {
                txn.execute(
                    "DELETE FROM documents WHERE collection = ?1 AND id = ?2",
                    params![collection, id],
                )?;
            }
        }
    }
    set_state(&txn, "version", &reached.max(version).to_string())?;
    txn.commit()?;
    Ok((reached.max(version), more))
}

/// A record as ABRA Flexi lists it, or `None` when it is gone by now (a later change deletes
/// it, which the sync applies in turn).
async fn fetch_record(
    api: &Connection,
    tenant: &str,
    collection: &str,
    id: i64,
) -> Result<Option<String>, ClientError> {
    let path = format!("/c/{tenant}/{collection}/{id}.json");
    let what = format!("reading {collection} {id}");
    match api
        .json::<Value>(&what, api.request(Method::GET, &path))
        .await
    {
        Ok(found) => Ok(found["winstrom"][collection]
            .get(0)
            .map(|record| record.to_string())),
        Err(ClientError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a listing `{"winstrom": {"@globalVersion": "N", "<collection>": [records...]}}`,
/// handing each record to `each` as it is read; answers the global version.
fn read_listing(
    reader: impl std::io::Read,
    collection: &str,
    each: &mut dyn FnMut(Map<String, Value>) -> Result<(), ClientError>,
) -> Result<u64, ClientError> {
    let mut failure = None;
    let mut version = None;
    let seed = Envelope {
        collection,
        each,
        failure: &mut failure,
        version: &mut version,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let parsed = seed.deserialize(&mut deserializer);
    if let Some(failure) = failure {
        return Err(failure);
    }
    parsed.map_err(|e| ClientError::Mismatch(format!("the listing of {collection}: {e}")))?;
    version.ok_or_else(|| {
        ClientError::Mismatch(format!(
            "the listing of {collection} names no @globalVersion"
        ))
    })
}

/// The listing, seen from its outermost object to its records.
struct Envelope<'a, 'b> {
    collection: &'a str,
    each: &'b mut dyn FnMut(Map<String, Value>) -> Result<(), ClientError>,
    failure: &'b mut Option<ClientError>,
    version: &'b mut Option<u64>,
}

impl<'de> DeserializeSeed<'de> for Envelope<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("ABRA Flexi's winstrom envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut inner = Some(self);
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), inner.take()) {
                ("winstrom", Some(seed)) => map.next_value_seed(Body(seed))?,
                (_, kept) => {
                    inner = kept;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// What `winstrom` holds: the version and the records.
struct Body<'a, 'b>(Envelope<'a, 'b>);

impl<'de> DeserializeSeed<'de> for Body<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the records and @globalVersion")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Envelope {
            collection,
            each,
            failure,
            version,
        } = self.0;
        while let Some(key) = map.next_key::<String>()? {
            if key == "@globalVersion" {
                let text: String = map.next_value()?;
                *version = Some(text.parse().map_err(de::Error::custom)?);
            } else if key == collection {
                map.next_value_seed(Records {
                    each: &mut *each,
                    failure: &mut *failure,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The records, each handed over as it is read.
struct Records<'b> {
    each: &'b mut dyn FnMut(Map<String, Value>) -> Result<(), ClientError>,
    failure: &'b mut Option<ClientError>,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Map<String, Value>>()? {
            if let Err(e) = (self.each)(record) {
                *self.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}
