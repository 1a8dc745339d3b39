//! The benchmark harness. One run prints every figure `BENCHMARKS.md` quotes, each beside the
//! yardstick it is judged against, measured on the same machine in the same run:
//!
//! - documents/s upserted over HTTP in lists of 1,000, against the same JSON bytes written
//!   straight into redb in commits of the same size;
//! - page latency of the last page against the first, at the full collection size;
//! - changes/s listed through `/c/{firma}/changes.json`;
//! - the plugin host and bulk export figures (`plugins.rs`) and the batch figures
//!   (`batches.rs`);
//! - the isolation figures (`isolation.rs`): another tenant's latency beside stalled
//!   connections and beside a flood of made-up credentials.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bulkhost_core::{RawTables, RedbEngine, Schemas, TenantConfig, Tenants, UserConfig};
use bulkhost_server::config::{Config, load_schemas};
use bulkhost_server::serve::{Options, Server};
use clap::Parser;
use serde_json::{Value, json};

mod batches;
mod isolation;
mod plugins;
mod process;

/// The allocator the `bulkhost` binary uses, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures bulkhost against its yardsticks and prints a Markdown report.
#[derive(Debug, Parser)]
struct Args {
    /// Documents to load (the page-latency figure is taken at this size).
    #[arg(long, default_value_t = 1_000_000)]
    documents: u64,
    /// Documents per upsert request and per direct commit.
    #[arg(long, default_value_t = 1_000)]
    batch: u64,
    /// Concurrent HTTP clients during the upsert phase.
    #[arg(long, default_value_t = 1)]
    clients: u64,
    /// Requests timed per page-latency sample set.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Where the built plugin components are (`make plugins` puts them there).
    #[arg(long, default_value_os_t = plugins::default_components())]
    components: std::path::PathBuf,
    /// Records of the export (`ledger`, about 208 bytes each) and of the synthetic figures.
    #[arg(long, default_value_t = 1_000_000)]
    export_records: u64,
    /// Requests per side and round of the plugin endpoint / native handler comparison.
    #[arg(long, default_value_t = 1_000)]
    endpoint_requests: usize,
    /// Stalled downloads held open in the rounds of the isolation figure.
    #[arg(long, value_delimiter = ',', default_value = "0,1000,5000")]
    stalled: Vec<usize>,
    /// Connections sending made-up credentials in the flood figure.
    #[arg(long, default_value_t = 200)]
    flood: usize,
    /// The parts of the report to measure, all by default.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "collections,plugins,batches,isolation"
    )]
    sections: Vec<Section>,
}

/// A part of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Upserts, page latency and the change feed.
    Collections,
    /// Plugins and the bulk export.
    Plugins,
    /// Batches and plugin endpoints.
    Batches,
    /// Isolation between tenants.
    Isolation,
}

const TENANT: &str = "bench";
/// A copy of the products collection without ordering indexes, to show what they cost.
const UNINDEXED: &str = "products-unindexed";
/// The one user of the benchmark tenant.
pub(crate) const USER: &str = "bench";

/// A product of about 200 bytes of JSON, deterministic in `i`.
fn product(i: u64) -> Value {
    json!({
        "product_id": format!("P{i:09}"),
        "name": format!("Product {} of family {}", i, i % 977),
        "barcode": format!("{:013}", i.wrapping_mul(2_654_435_761) % 10_000_000_000_000),
        "unit": if i.is_multiple_of(3) { "kg" } else { "pcs" },
        "price": format!("{}.{:04}", i % 1000, i % 10_000),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.documents % args.batch == 0,
        "--documents must be a multiple of --batch"
    );
    println!("# bulkhost benchmark\n");
    println!(
        "{} documents, lists of {}, {} HTTP client(s), {} cores\n",
        args.documents,
        args.batch,
        args.clients,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    for section in &args.sections {
        match section {
            Section::Collections => collection_figures(&args).await?,
            Section::Plugins => plugin_figures(&args).await?,
            Section::Batches => batch_figures(&args).await?,
            Section::Isolation => isolation_figures(&args).await?,
        }
    }
    Ok(())
}

async fn collection_figures(args: &Args) -> anyhow::Result<()> {
    let batches: Vec<Vec<Value>> = (0..args.documents / args.batch)
        .map(|b| {
            (b * args.batch..(b + 1) * args.batch)
                .map(product)
                .collect()
        })
        .collect();

    let direct_rate = direct_writes(&batches)?;
    let core_rate = core_upserts(&batches, "products")?;
    let unindexed_rate = core_upserts(&batches, UNINDEXED)?;

    let data = tempfile::tempdir()?;
    let server = start_server(data.path()).await?;
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let http_rate = http_upserts(&client, &base, batches, args.clients).await?;
    println!("## Upserts\n");
    println!("| path | documents/s |\n|---|---|");
    println!(
        "| HTTP `POST /api/v1/products/` (validate, upsert by key, 3 ordering indexes, change log) | {http_rate:.0} |"
    );
    println!(
        "| the core's `Documents::upsert` in-process, same lists (no HTTP) | {core_rate:.0} |"
    );
    println!(
        "| the core in-process, same lists, a copy of products without ordering indexes | {unindexed_rate:.0} |"
    );
    println!(
        "| redb direct: the same entries (document, key, index entries, change record, rank counts), same commit size | {direct_rate:.0} |"
    );
    println!(
        "| **HTTP / redb direct** (goal ≥ 0.5) | **{:.2}** |",
        http_rate / direct_rate
    );
    println!(
        "| HTTP / core in-process (cost of the HTTP surface) | {:.2} |\n",
        http_rate / core_rate
    );

    println!(
        "## Page latency at {} documents (page_size=100)\n",
        args.documents
    );
    println!(
        "| ordering | first page p50 | last page p50 | last/first (goal ≤ 1.5) |\n|---|---|---|---|"
    );
    let last_page = args.documents.div_ceil(100);
    for ordering in ["", "&ordering=name", "&ordering=-price"] {
        let (first, last) = page_latency(
            &client,
            &base,
            &format!("page=1{ordering}"),
            &format!("page={last_page}{ordering}"),
            args.samples,
        )
        .await?;
        println!(
            "| {} | {:.3} ms | {:.3} ms | **{:.2}** |",
            if ordering.is_empty() {
                "id (default)"
            } else {
                ordering.trim_start_matches("&ordering=")
            },
            first.as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3,
            last.as_secs_f64() / first.as_secs_f64()
        );
    }

    let (listed, elapsed) = list_changes(&client, &base).await?;
    println!("\n## Change feed\n");
    println!("| what | figure |\n|---|---|");
    println!(
        "| changes listed through `/c/{TENANT}/changes.json?limit=1000` | {listed} in {:.2} s = {:.0} changes/s |",
        elapsed.as_secs_f64(),
        listed as f64 / elapsed.as_secs_f64()
    );

    let _ = stop.send(());
    serving.await??;

    Ok(())
}

async fn isolation_figures(args: &Args) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?.with_file_name("bulkhost");
    let component = args.components.join("synthetic.wasm");
    let (rounds, peak) = isolation::stalled_downloads(&binary, &component, &args.stalled).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\n## Isolation\n");
    println!(
        "Another tenant's page reads and writes, one at a time, while one tenant holds stalled \
         downloads of a 20 MB export (each connection read its status line, then stopped \
         reading; every one of them holds a stream, the per-tenant cap raised for the figure):\n"
    );
    println!(
        "| stalled connections | read p50 | read p99 | write p50 | write p99 | failed | goal |\n|---|---|---|---|---|---|---|"
    );
    for round in &rounds {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} | p99 < 100 ms, none failed |",
            round.stalled,
            ms(round.reads.p50),
            ms(round.reads.p99),
            ms(round.writes.p50),
            ms(round.writes.p99),
            round.reads.failed + round.writes.failed
        );
    }
    println!(
        "\nPeak RSS of the server through the last round: {:.0} MiB.\n",
        peak as f64 / f64::from(1 << 20)
    );
    let flood = isolation::credential_flood(&binary, args.flood).await?;
    println!(
        "A known user's page reads while {} connections, each from its own loopback address, \
         send made-up credentials:\n",
        args.flood
    );
    println!("| what | figure | goal |\n|---|---|---|");
    println!(
        "| the known user's page read p50 / p99 | {:.2} ms / **{:.2} ms**, {} failed | p99 < 20 ms |",
        ms(flood.reads.p50),
        ms(flood.reads.p99),
        flood.reads.failed
    );
    let secs = flood.elapsed.as_secs_f64();
    println!(
        "| the flood's answers | {:.0}/s 401 (an Argon2 check each), {:.0}/s 429 | |",
        flood.unauthorized as f64 / secs,
        flood.throttled as f64 / secs
    );
    Ok(())
}

async fn batch_figures(args: &Args) -> anyhow::Result<()> {
    let f = batches::batch_figures(&args.components, args.endpoint_requests).await?;
    println!("\n## Batches and plugin endpoints\n");
    println!("| what | figure | goal |\n|---|---|---|");
    for (what, batched, direct) in [
        ("PUT", f.batch_writes, f.direct_writes),
        ("GET", f.batch_reads, f.direct_reads),
    ] {
        println!(
            "| a batch of {} `{what} /v1/products/{{id}}` (catalogue plugin), `POST /v1/batch` to finished / the same requests one by one over HTTP (keep-alive) | {batched:.0} / {direct:.0} operations/s = **{:.2}** | > 1 |",
            batches::OPERATIONS,
            batched / direct
        );
    }
    println!(
        "| `PUT /v1/products/{{id}}` through the plugin / `POST /api/v1/products/` native, {} each | {:.0} / {:.0} requests/s = **{:.2}** | ≥ 0.3 |",
        args.endpoint_requests,
        f.plugin_writes,
        f.native_writes,
        f.plugin_writes / f.native_writes
    );
    println!(
        "| `GET /v1/products/{{id}}` through the plugin / `GET /api/v1/products/code:{{id}}/` native | {:.0} / {:.0} requests/s = **{:.2}** | ≥ 0.3 |",
        f.plugin_reads,
        f.native_reads,
        f.plugin_reads / f.native_reads
    );
    Ok(())
}

async fn plugin_figures(args: &Args) -> anyhow::Result<()> {
    let component_path = args.components.join("synthetic.wasm");
    let component = std::fs::read(&component_path)
        .with_context(|| format!("reading {} (run `make plugins`)", component_path.display()))?;
    // Invocations block their thread, as the server's workers do: off the async runtime.
    let records = args.export_records;
    let (wasm, native, describe) = tokio::task::spawn_blocking(move || {
        let (wasm, native) = plugins::wasm_vs_native(&component, records, 200)?;
        let describe = plugins::instantiate_describe(&component, 2000)?;
        anyhow::Ok((wasm, native, describe))
    })
    .await??;
    let binary = std::env::current_exe()?.with_file_name("bulkhost");
    let ledger = args.components.join("ledger.wasm");
    let smaller = plugins::export(&binary, &ledger, args.export_records / 5).await?;
    let export = plugins::export(&binary, &ledger, args.export_records).await?;
    let mib = |b: f64| b / f64::from(1 << 20);
    println!("\n## Plugins and bulk export\n");
    println!("| what | figure | goal |\n|---|---|---|");
    println!(
        "| synthetic records/s through the wasm component ({} records of 200 bytes) | {wasm:.0} | |",
        args.export_records
    );
    println!("| the same generator source compiled natively, same sink | {native:.0} | |");
    println!("| **wasm / native** | **{:.2}** | ≥ 0.75 |", wasm / native);
    println!(
        "| instantiate (`InstancePre`) + `describe`, p50 of 2000 | **{:.1} µs** | ≤ 100 µs |",
        describe.as_secs_f64() * 1e6
    );
    println!(
        "| export of {} `ledger` records (about 208 bytes) through `bulkhost serve`: queue, generate, store | {:.1} s ({:.0} records/s) | |",
        export.records,
        export.generate_secs,
        export.records as f64 / export.generate_secs
    );
    println!(
        "| **peak RSS of that server process** (export, then whole download) | **{:.0} MiB**, and {:.0} MiB for {} records | flat, < 256 MiB |",
        mib(export.peak_rss as f64),
        mib(smaller.peak_rss as f64),
        smaller.records
    );
    println!(
        "| download of the whole data set over loopback | {:.0} MiB/s | |",
        mib(export.download_bytes_per_sec)
    );
    println!(
        "| `serde_json` serialization of the same records in-process | {:.0} MiB/s | |",
        mib(export.serialize_bytes_per_sec)
    );
    println!(
        "| **download / serialization** | **{:.2}** | ≥ 0.5 |",
        export.download_bytes_per_sec / export.serialize_bytes_per_sec
    );
    println!(
        "| gzip download (`Accept-Encoding: gzip`), JSON carried per second / `gzip -1` of the same JSON | {:.0} / {:.0} MiB/s = **{:.2}** | |",
        mib(export.gzip_json_bytes_per_sec),
        mib(export.gzip_1_json_bytes_per_sec),
        export.gzip_json_bytes_per_sec / export.gzip_1_json_bytes_per_sec
    );
    println!(
        "| gzip body / `gzip -1` of the same JSON | {:.1} / {:.1} MiB = **{:.2}** | |",
        mib(export.gzip_body_bytes as f64),
        mib(export.gzip_1_bytes as f64),
        export.gzip_body_bytes as f64 / export.gzip_1_bytes as f64
    );
    Ok(())
}

/// The benchmark tenant, its change feed on.
pub(crate) fn tenants() -> anyhow::Result<Tenants> {
    Ok(Tenants::new(
        vec![TenantConfig {
            name: TENANT.into(),
            changes_enabled: true,
            quotas: Default::default(),
            users: vec![UserConfig {
                name: USER.into(),
                password_hash: None,
                password: Some(USER.into()),
            }],
        }],
        true,
    )?)
}

async fn start_server(data: &std::path::Path) -> anyhow::Result<Server> {
    Server::bind(Options {
        config: Config {
            listen: "127.0.0.1:0".parse()?,
            data: data.to_path_buf(),
            ..Config::default()
        },
        schemas: load_schemas(&[])?,
        tenants: tenants()?,
        demo: false,
    })
    .await
}

/// The yardstick: the entries an upsert of the same lists writes, committed to redb in the
/// same commit sizes with the same durability (fsync per commit), without the work around
/// them. Per document: the document under its id, its key, one entry per ordering index
/// (`product_id`, `name`, `price`, value-ordered), its change record; per commit, the rank
/// counts of the index chunks it touched.
fn direct_writes(batches: &[Vec<Value>]) -> anyhow::Result<f64> {
    use bulkhost_core::keys::{id_position, key_position, value_position};
    let dir = tempfile::tempdir()?;
    let storage = RedbEngine::open(dir.path(), &Schemas::default())?;
    let prefix = |part: &str| format!("{TENANT}/products/{part}").into_bytes();
    let concat = |parts: &[&[u8]]| parts.concat();
    let mut id = 0u64;
    let commits: Vec<RawTables> = batches
        .iter()
        .map(|batch| {
            let mut tables = RawTables::default();
            let mut chunks = std::collections::BTreeSet::new();
            for doc in batch {
                id += 1;
                let body = serde_json::to_vec(doc).unwrap_or_default();
                let code = doc["product_id"].as_str().unwrap_or_default().to_string();
                let change = json!({"collection": "products", "id": id, "code": code,
                    "operation": "create", "timestamp": "2026-01-01T00:00:00"});
                tables[0].push((
                    concat(&[&prefix(""), &id_position(id)]),
                    concat(&[&id.to_be_bytes(), &body]),
                ));
                tables[1].push((
                    concat(&[&prefix(""), &key_position(&[code])]),
                    id.to_be_bytes().to_vec(),
                ));
                for field in ["product_id", "name", "price"] {
                    let value = value_position(&doc[field]);
                    let entry = concat(&[&prefix(field), &value, &id_position(id)]);
                    chunks.insert(entry[..entry.len().min(prefix(field).len() + 6)].to_vec());
                    tables[2].push((entry, Vec::new()));
                }
                tables[3].push((
                    concat(&[TENANT.as_bytes(), &id.to_be_bytes()]),
                    serde_json::to_vec(&change).unwrap_or_default(),
                ));
            }
            tables[4] = chunks
                .into_iter()
                .map(|chunk| (chunk, 1024u64.to_be_bytes().to_vec()))
                .collect();
            tables
        })
        .collect();
    let started = Instant::now();
    let mut written = 0u64;
    for (commit, batch) in commits.iter().zip(batches) {
        storage.write_raw_entries(commit)?;
        written += batch.len() as u64;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

/// The bundled schemas plus [`UNINDEXED`].
fn schemas() -> anyhow::Result<bulkhost_core::Schemas> {
    let schema_dir = tempfile::tempdir()?;
    let mut unindexed: Value =
        serde_json::from_str(include_str!("../../server/schemas/products.json"))?;
    unindexed["collection"] = json!(UNINDEXED);
    unindexed["ordering"] = json!([]);
    std::fs::write(
        schema_dir.path().join("unindexed.json"),
        unindexed.to_string(),
    )?;
    load_schemas(&[schema_dir.path().to_path_buf()])
}

/// What the HTTP surface adds: the same lists upserted through the core, in-process.
fn core_upserts(batches: &[Vec<Value>], collection: &str) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = bulkhost_core::Store::open(dir.path(), schemas()?, tenants()?)?;
    let lists: Vec<Value> = batches.iter().map(|b| Value::Array(b.clone())).collect();
    let started = Instant::now();
    let mut written = 0u64;
    for list in &lists {
        written += store.documents().upsert(TENANT, collection, list)?.inserted;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

async fn http_upserts(
    client: &reqwest::Client,
    base: &str,
    batches: Vec<Vec<Value>>,
    clients: u64,
) -> anyhow::Result<f64> {
    let bodies: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap_or_default())
        .collect();
    let total: u64 = batches.iter().map(|b| b.len() as u64).sum();
    drop(batches);
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (client, queue, url) = (
                client.clone(),
                queue.clone(),
                format!("{base}/api/v1/products/"),
            );
            tokio::spawn(async move {
                loop {
                    let next = queue
                        .lock()
                        .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                        .next();
                    let Some(body) = next else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    let r = client
                        .post(&url)
                        .basic_auth(USER, Some(USER))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    ensure!(
                        r.status() == 201,
                        "upsert answered {}: {}",
                        r.status(),
                        r.text().await?
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Median latencies of two page requests, sampled alternately so that drift in the machine's
/// state weighs on both alike.
async fn page_latency(
    client: &reqwest::Client,
    base: &str,
    first: &str,
    last: &str,
    samples: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut times = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    for i in 0..samples + 20 {
        for (which, query) in [first, last].into_iter().enumerate() {
            let url = format!("{base}/api/v1/products/?page_size=100&{query}");
            let started = Instant::now();
            let r = client.get(&url).basic_auth(USER, Some(USER)).send().await?;
            ensure!(r.status() == 200, "page answered {}", r.status());
            let body = r.bytes().await?;
            let elapsed = started.elapsed();
            ensure!(body.len() > 1000, "page is short");
            if i >= 20 {
                times[which].push(elapsed);
            }
        }
    }
    let [mut a, mut b] = times;
    a.sort();
    b.sort();
    Ok((a[a.len() / 2], b[b.len() / 2]))
}

async fn list_changes(client: &reqwest::Client, base: &str) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut start = 1u64;
    let mut listed = 0u64;
    loop {
        let page: Value = client
            .get(format!(
                "{base}/c/{TENANT}/changes.json?start={start}&limit=1000"
            ))
            .basic_auth(USER, Some(USER))
            .send()
            .await?
            .json()
            .await?;
        listed += page["winstrom"]["changes"]
            .as_array()
            .context("changes array")?
            .len() as u64;
        match page["winstrom"]["next"].as_str() {
            Some("none") | None => break,
            Some(next) => start = next.parse()?,
        }
    }
    Ok((listed, started.elapsed()))
}
