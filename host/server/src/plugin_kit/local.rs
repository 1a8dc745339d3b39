//! `bulkhost plugin run`: one data set generated without a server, over documents read from
//! JSON files into a throwaway store, under the server's limits, its records written as JSON
//! lines; what it took goes to standard error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulkhost_core::{Schema, Schemas, Store, TenantConfig, Tenants};
use bulkhost_runtime::{Grants, RecordSink, Runtime, SinkError};
use serde_json::Value;

use super::{KitError, read_component};

/// The tenant the documents belong to.
const TENANT: &str = "local";

/// What to run.
#[derive(Debug)]
pub struct RunRequest<'a> {
    /// The component.
    pub component: &'a Path,
    /// The data set.
    pub dataset: &'a str,
    /// Its parameters, as a Winfra XXL request gives them.
    pub params: &'a [(String, String)],
    /// A directory of `{collection}.json` (an array of documents, or one) and
    /// `{collection}.jsonl` files.
    pub documents: Option<&'a Path>,
    /// The collections there are.
    pub schemas: &'a Schemas,
}

/// What a run produced and took.
#[derive(Debug)]
pub struct RunReport {
    /// Documents loaded.
    pub documents: u64,
    /// Records written.
    pub records: u64,
    /// Their bytes, without line ends.
    pub bytes: u64,
    /// Compiling the component and asking it what it provides.
    pub load: std::time::Duration,
    /// Validating and generating.
    pub generate: std::time::Duration,
}

/// Writes each record as a line.
struct LineSink(Box<dyn Write + Send>);

impl RecordSink for LineSink {
    fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError> {
        records
            .iter()
            .try_for_each(|r| writeln!(self.0, "{r}"))
            .map_err(|e| SinkError::Storage(format!("writing the records: {e}")))
    }
}

/// Generates `request`'s data set into `out`.
pub fn run(
    runtime: &Runtime,
    request: &RunRequest<'_>,
    out: Box<dyn Write + Send>,
) -> Result<RunReport, KitError> {
    let (name, wasm) = read_component(request.component)?;
    let started = Instant::now();
    let plugin = runtime
        .load(&name, &wasm, Grants::default())
        .map_err(|e| KitError::Refused(e.to_string()))?;
    let load = started.elapsed();
    if !plugin.datasets().iter().any(|d| d.name == request.dataset) {
        let offered: Vec<&str> = plugin.datasets().iter().map(|d| d.name.as_str()).collect();
        return Err(KitError::Usage(format!(
            "{name} provides no data set `{}`; it provides: {}",
            request.dataset,
            if offered.is_empty() {
                "none (it is an endpoint plugin)".into()
            } else {
                offered.join(", ")
            }
        )));
    }
    let scratch = tempfile::tempdir().map_err(|e| KitError::Io("a scratch directory".into(), e))?;
    let store = scratch_store(scratch.path(), request.schemas)?;
    let documents = match request.documents {
        Some(dir) => load_documents(&store, request.schemas, dir)?,
        None => 0,
    };
    let started = Instant::now();
    let refusals = plugin
        .validate(request.dataset, request.params)
        .map_err(|e| KitError::Failed(e.to_string()))?;
    if !refusals.is_empty() {
        let why: Vec<String> = refusals
            .iter()
            .map(|e| format!("{}: {}", e.name, e.message))
            .collect();
        return Err(KitError::Usage(format!(
            "the parameters are refused: {}",
            why.join("; ")
        )));
    }
    let snapshot = store
        .documents()
        .snapshot(TENANT)
        .map_err(|e| KitError::Failed(e.to_string()))?;
    let generated = plugin
        .generate(
            snapshot,
            Box::new(LineSink(out)),
            request.dataset,
            request.params,
        )
        .map_err(|e| KitError::Failed(e.to_string()))?;
    Ok(RunReport {
        documents,
        records: generated.records,
        bytes: generated.bytes,
        load,
        generate: started.elapsed(),
    })
}

fn scratch_store(dir: &Path, schemas: &Schemas) -> Result<Store, KitError> {
    let tenant = TenantConfig {
        name: TENANT.into(),
        changes_enabled: true,
        users: Vec::new(),
        quotas: Default::default(),
    };
    let tenants = Tenants::new(vec![tenant], true).map_err(|e| KitError::Failed(e.to_string()))?;
    Store::open(dir, schemas.clone(), tenants).map_err(|e| KitError::Failed(e.to_string()))
}

/// Reads every `*.json` and `*.jsonl` file of `dir` into the collection its name names,
/// referenced collections first, each file in one write; answers how many documents there were.
fn load_documents(store: &Store, schemas: &Schemas, dir: &Path) -> Result<u64, KitError> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| KitError::Io(dir.display().to_string(), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| KitError::Io(dir.display().to_string(), e))?
            .path();
        let (Some(stem), Some("json" | "jsonl")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if schemas.get(stem).is_none() {
            let known: Vec<&str> = schemas.iter().map(|s| s.collection.as_str()).collect();
            return Err(KitError::Usage(format!(
                "{} names no collection; the collections are {} (add schemas with --schemas)",
                path.display(),
                known.join(", ")
            )));
        }
        files.insert(stem.to_string(), path);
    }
    let mut loaded = 0;
    for collection in referenced_first(schemas, files.keys()) {
        let path = &files[&collection];
        let documents = read_documents(path)?;
        let written = store
            .documents()
            .upsert(TENANT, &collection, &documents)
            .map_err(|e| KitError::Usage(format!("{}: {e}", path.display())))?;
        loaded += written.inserted + written.updated;
    }
    Ok(loaded)
}

/// `collections` ordered so that a collection comes after those it references.
fn referenced_first<'a>(
    schemas: &Schemas,
    collections: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let mut left: Vec<&String> = collections.collect();
    let mut ordered: Vec<String> = Vec::new();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|c| {
                schemas.get(c).is_none_or(|schema| {
                    references(schema)
                        .iter()
                        .all(|r| r == *c || ordered.contains(r) || !left.contains(&r))
                })
            })
            .unwrap_or(0);
        ordered.push(left.remove(ready).clone());
    }
    ordered
}

/// The collections `schema`'s fields reference, nested fields included.
fn references(schema: &Schema) -> Vec<String> {
    fn walk(fields: &[bulkhost_core::Field], found: &mut Vec<String>) {
        for field in fields {
            if let Some(r) = &field.references {
                found.push(r.collection.clone());
            }
            walk(&field.children, found);
        }
    }
    let mut found = Vec::new();
    walk(&schema.fields, &mut found);
    found
}

/// A file's documents: a JSON array or object, or JSON lines.
fn read_documents(path: &Path) -> Result<Value, KitError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| KitError::Io(path.display().to_string(), e))?;
    let bad = |line: usize, e: serde_json::Error| {
        KitError::Usage(format!("{}:{line}: not JSON: {e}", path.display()))
    };
    if path.extension().is_some_and(|e| e == "jsonl") {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(i + 1, e)))
            .collect::<Result<Vec<Value>, _>>()?;
        Ok(Value::Array(lines))
    } else {
        serde_json::from_str(&text).map_err(|e| bad(e.line(), e))
    }
}
