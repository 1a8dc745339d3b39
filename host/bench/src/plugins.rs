//! The plugin host and bulk export figures: the synthetic generator through its component
//! against the same source compiled natively; instantiate + describe per invocation; and a
//! 1M-record export through a separate `bulkhost` process, for its peak memory and its
//! download rate, plain and in its gzip form, against in-process `serde_json` serialization of the
//! same records and `gzip -1` of the same JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bulkhost_core::{Store, TenantConfig, Tenants};
use bulkhost_runtime::{
    Compilation, Grants, Limits, RecordSink, Runtime, SinkError, is_json_object,
};
use serde_json::{Value, json};

use crate::process::ServerProcess;

#[path = "../../../plugins/synthetic/src/record.rs"]
mod synthetic_record;

/// Records per batch, as the plugin SDK sends them.
const BATCH: usize = 512;

/// Counts what it is given. Records reach a sink checked by the host, so the native side
/// makes the same check ([`is_json_object`]) itself.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl Counting {
    fn take(&self, records: &[String]) {
        self.0.fetch_add(records.len() as u64, Ordering::Relaxed);
    }
}

impl RecordSink for Counting {
    fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError> {
        self.take(&records);
        Ok(())
    }
}

/// Rounds of the wasm/native comparison; each side reports its median round, so a hiccup
/// of the machine does not decide the figure.
const ROUNDS: usize = 5;

/// Synthetic records per second through the component and natively, alternating the two
/// sides for [`ROUNDS`] rounds.
pub fn wasm_vs_native(component: &[u8], records: u64, width: usize) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        dir.path(),
        bulkhost_core::Schemas::default(),
        Tenants::new(
            vec![TenantConfig {
                name: "bench".into(),
                changes_enabled: true,
                quotas: Default::default(),
                users: vec![],
            }],
            false,
        )?,
    )?;
    let runtime = Runtime::new(Limits::default(), Compilation::default(), None)?;
    let plugin = runtime.load("synthetic", component, Grants::default())?;
    let params = vec![
        ("count".to_string(), records.to_string()),
        ("width".to_string(), width.to_string()),
    ];
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let sink = Counting::default();
        let started = Instant::now();
        plugin.generate(
            store.documents().snapshot("bench")?,
            Box::new(sink.clone()),
            "synthetic",
            &params,
        )?;
        wasm.push(records as f64 / started.elapsed().as_secs_f64());
        ensure!(
            sink.0.load(Ordering::Relaxed) == records,
            "the component lost records"
        );
        native.push(native_rate(records, width)?);
    }
    Ok((median(wasm), median(native)))
}

/// Records per second of the generator compiled into the harness, checked as the host checks
/// a component's records and handed over in the SDK's batches.
fn native_rate(records: u64, width: usize) -> anyhow::Result<f64> {
    let sink = Counting::default();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..records {
        let record = synthetic_record::record(i, width);
        ensure!(is_json_object(&record), "record {i} is not a JSON object");
        batch.push(record);
        if batch.len() == BATCH {
            sink.take(&batch);
            batch.clear();
        }
    }
    sink.take(&batch);
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

/// The median time to instantiate the component afresh and call `describe`.
pub fn instantiate_describe(component: &[u8], samples: usize) -> anyhow::Result<Duration> {
    let runtime = Runtime::new(Limits::default(), Compilation::default(), None)?;
    let plugin = runtime.load("synthetic", component, Grants::default())?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples + 50 {
        let started = Instant::now();
        let described = plugin.describe()?;
        times.push(started.elapsed());
        ensure!(described.len() == 1);
    }
    times.drain(..50);
    times.sort();
    Ok(times[times.len() / 2])
}

/// Figures of one export through a separate server process.
pub struct ExportFigures {
    pub records: u64,
    pub generate_secs: f64,
    pub peak_rss: u64,
    pub download_bytes_per_sec: f64,
    pub serialize_bytes_per_sec: f64,
    /// The gzip form (`Accept-Encoding: gzip`): the JSON bytes it carries per second.
    pub gzip_json_bytes_per_sec: f64,
    /// Its body's bytes.
    pub gzip_body_bytes: u64,
    /// `gzip -1` of the same JSON: its bytes and the JSON bytes it takes per second.
    pub gzip_1_bytes: u64,
    pub gzip_1_json_bytes_per_sec: f64,
}

/// Exports `records` records of the `ledger` component (shaped like the PostgreSQL export
/// peer's rows) through a separate server process, and downloads them.
pub async fn export(
    binary: &Path,
    component: &Path,
    records: u64,
) -> anyhow::Result<ExportFigures> {
    let data = tempfile::tempdir()?;
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(component, plugins.join("ledger.wasm"))?;
    let config = format!("[plugins]\ndir = \"{}\"\n", plugins.display());
    let server = ServerProcess::start(binary, data.path(), &config)?;
    let client = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("demo.admin", Some("demo"));
    let started = Instant::now();
    let request = json!([{"dataset": "ledger", "count": records}]);
    let id = server
        .export(&client, ("demo.admin", "demo"), &request)
        .await?;
    let generate_secs = started.elapsed().as_secs_f64();

    let url = format!("{}/api_v1/datos_xxl/{id}/ledger", server.base);
    let download_bytes_per_sec = median(
        (0..DOWNLOADS)
            .map(|_| download(&url, false).map(|(size, secs)| size / secs))
            .collect::<anyhow::Result<Vec<f64>>>()?,
    );
    let body = auth(client.get(&url)).send().await?.bytes().await?;
    let gzipped = (0..DOWNLOADS)
        .map(|_| download(&url, true))
        .collect::<anyhow::Result<Vec<(f64, f64)>>>()?;
    let gzip_json_bytes_per_sec = median(
        gzipped
            .iter()
            .map(|(_, secs)| body.len() as f64 / secs)
            .collect(),
    );
    let peak_rss = server.peak_rss_bytes()?;
    let (gzip_1_bytes, gzip_1_secs) = gzip_1(&body)?;

    let parsed: Vec<Value> = serde_json::from_slice(&body)?;
    ensure!(
        parsed.len() as u64 == records,
        "the download holds {} records",
        parsed.len()
    );
    let body_len = body.len();
    drop(body);
    let started = Instant::now();
    let mut counter = ByteCount(0);
    serde_json::to_writer(&mut counter, &parsed)?;
    let serialize_bytes_per_sec = counter.0 as f64 / started.elapsed().as_secs_f64();
    Ok(ExportFigures {
        records,
        generate_secs,
        peak_rss,
        download_bytes_per_sec,
        serialize_bytes_per_sec,
        gzip_json_bytes_per_sec,
        gzip_body_bytes: gzipped[0].0 as u64,
        gzip_1_bytes,
        gzip_1_json_bytes_per_sec: body_len as f64 / gzip_1_secs,
    })
}

/// Whole downloads timed; the median is reported, so a hiccup of the machine does not
/// decide the figure.
const DOWNLOADS: usize = 3;

/// The bytes and seconds of one whole download by curl into `/dev/null`, plain or in its gzip
/// form as it travels (curl does not decompress it): curl reads as fast as the connection
/// allows and nothing waits on a disk, so the figure is the server's.
fn download(url: &str, gzip: bool) -> anyhow::Result<(f64, f64)> {
    let mut curl = Command::new("curl");
    if gzip {
        curl.args(["--header", "Accept-Encoding: gzip"]);
    }
    let measured = curl
        .args(["--silent", "--fail", "--user", "demo.admin:demo"])
        .args(["--output", "/dev/null"])
        .args(["--write-out", "%{size_download} %{time_total}"])
        .arg(url)
        .output()
        .context("running curl")?;
    ensure!(measured.status.success(), "the download failed");
    let text = String::from_utf8(measured.stdout)?;
    let mut figures = text.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(size)), Some(Ok(secs))) = (figures.next(), figures.next()) else {
        bail!("unexpected curl output: {text}");
    };
    Ok((size, secs))
}

/// `gzip -1` of `plain`, the yardstick of the gzip form: its bytes and seconds.
fn gzip_1(plain: &[u8]) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut gzip = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = gzip.stdin.take().context("gzip's input")?;
    let mut stdout = gzip.stdout.take().context("gzip's output")?;
    let mut compressed = ByteCount(0);
    // Fed from a scoped thread, so the body is lent rather than copied; dropping the input
    // when it is written tells gzip the end.
    std::thread::scope(|scope| {
        let feeder = scope.spawn(move || std::io::Write::write_all(&mut stdin, plain));
        std::io::copy(&mut stdout, &mut compressed)?;
        feeder
            .join()
            .map_err(|_| anyhow::anyhow!("feeding gzip"))??;
        anyhow::Ok(())
    })?;
    ensure!(gzip.wait()?.success(), "gzip failed");
    Ok((compressed.0, started.elapsed().as_secs_f64()))
}

/// A writer that only counts.
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where `make plugins` leaves the components.
pub fn default_components() -> PathBuf {
    PathBuf::from("target/plugins/wasm32-wasip2/release")
}
