//! The isolation figures, through a separate `bulkhost serve` process: another tenant's page
//! reads and writes while thousands of connections hold downloads they stopped reading, and a
//! known user's page reads while 200 connections send made-up credentials from 200 addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use base64::Engine;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::ServerProcess;

/// The tenant whose connections stall, and the one that is measured.
const STALLING: &str = "stall";
const MEASURED: &str = "quiet";

/// Requests timed per kind and round.
const SAMPLES: usize = 300;
/// The longest a measured request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a round of requests took.
#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    pub p50: Duration,
    pub p99: Duration,
    pub failed: usize,
}

fn latencies(mut times: Vec<Duration>, failed: usize) -> Latencies {
    times.sort();
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(REQUEST_TIMEOUT)
    };
    Latencies {
        p50: at(0.5),
        p99: at(0.99),
        failed,
    }
}

/// One round with `stalled` connections held open.
pub struct StalledRound {
    pub stalled: usize,
    pub reads: Latencies,
    pub writes: Latencies,
}

fn config(plugins: &Path, extra: &str) -> String {
    format!(
        "[plugins]\ndir = \"{}\"\n{extra}\n\
         [[tenants]]\nname = \"{STALLING}\"\n[[tenants.users]]\nname = \"{STALLING}\"\npassword = \"{STALLING}\"\n\
         [[tenants]]\nname = \"{MEASURED}\"\n[[tenants.users]]\nname = \"{MEASURED}\"\npassword = \"{MEASURED}\"\n",
        plugins.display()
    )
}

/// Opens a connection with a small receive window, asks for `path` and reads only the status
/// line, then stops reading; answers the connection and its status code.
async fn stall(addr: SocketAddr, path: &str) -> anyhow::Result<(TcpStream, u16)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stream = socket.connect(addr).await?;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{STALLING}:{STALLING}"));
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let status = std::str::from_utf8(&head[9..12])?.parse()?;
    Ok((stream, status))
}

/// How long `request` took to be answered `expected` and read whole; `None` if it was not.
async fn timed(request: reqwest::RequestBuilder, expected: u16) -> Option<Duration> {
    let started = Instant::now();
    let answer = request.send().await.ok()?;
    if answer.status().as_u16() != expected {
        return None;
    }
    answer.bytes().await.ok()?;
    Some(started.elapsed())
}

/// Keeps what `time` took, or counts a failure.
fn kept(times: &mut Vec<Duration>, failed: &mut usize, time: Option<Duration>) {
    match time {
        Some(time) => times.push(time),
        None => *failed += 1,
    }
}

/// Times `SAMPLES` page reads and as many writes of the measured tenant, one at a time.
async fn measure(base: &str, round: &mut u64) -> anyhow::Result<(Latencies, Latencies)> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let (mut read_failures, mut write_failures) = (0, 0);
    for _ in 0..SAMPLES {
        let read = client
            .get(format!("{base}/api/v1/shops/?page_size=20"))
            .basic_auth(MEASURED, Some(MEASURED));
        kept(&mut reads, &mut read_failures, timed(read, 200).await);
        *round += 1;
        let write = client
            .post(format!("{base}/api/v1/shops/"))
            .basic_auth(MEASURED, Some(MEASURED))
            .json(&json!({"shop_id": format!("S{round}"), "name": "Shop"}));
        kept(&mut writes, &mut write_failures, timed(write, 201).await);
    }
    Ok((
        latencies(reads, read_failures),
        latencies(writes, write_failures),
    ))
}

/// Another tenant's page reads and writes with `counts` stalled downloads held open, counts
/// rising; answers a round per count and the server's peak memory.
pub async fn stalled_downloads(
    binary: &Path,
    component: &Path,
    counts: &[usize],
) -> anyhow::Result<(Vec<StalledRound>, u64)> {
    bulkhost_server::listener::raise_file_limit()?;
    let data = tempfile::tempdir()?;
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(component, plugins.join("synthetic.wasm"))?;
    // Every stalled connection may hold a stream: the figure is what the streaming itself
    // costs others, not the cap that would normally refuse most of them.
    let server = ServerProcess::start(
        binary,
        data.path(),
        &config(
            &plugins,
            "[http]\nwrite_timeout_secs = 3600\nstreams_per_tenant = 100000\nstreams_at_once = 100000\n",
        ),
    )?;
    let request = json!([{"dataset": "synthetic", "count": 20000, "width": 1000}]);
    let id = server
        .export(&reqwest::Client::new(), (STALLING, STALLING), &request)
        .await?;
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse()?;
    let path = format!("/api_v1/datos_xxl/{id}/synthetic");
    let mut held = Vec::new();
    let mut rounds = Vec::new();
    let mut written = 0;
    for &count in counts {
        while held.len() < count {
            let (stream, status) = stall(addr, &path).await?;
            ensure!(status == 200, "a stalled download answered {status}");
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (reads, writes) = measure(&server.base, &mut written).await?;
        rounds.push(StalledRound {
            stalled: count,
            reads,
            writes,
        });
    }
    let peak = server.peak_rss_bytes()?;
    drop(held);
    Ok((rounds, peak))
}

/// What a flood of made-up credentials got.
pub struct Flood {
    /// The known user's page reads meanwhile.
    pub reads: Latencies,
    /// The flood's requests answered, by status.
    pub unauthorized: u64,
    pub throttled: u64,
    /// How long the flood ran.
    pub elapsed: Duration,
}

/// A known user's page reads while `connections` clients, each from its own loopback address,
/// send made-up credentials as fast as they are answered.
pub async fn credential_flood(binary: &Path, connections: usize) -> anyhow::Result<Flood> {
    let data = tempfile::tempdir()?;
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let server = ServerProcess::start(binary, data.path(), &config(&plugins, ""))?;
    let known = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let url = format!("{}/api/v1/shops/?page_size=20", server.base);
    known
        .get(&url)
        .basic_auth(MEASURED, Some(MEASURED))
        .send()
        .await?
        .error_for_status()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (unauthorized, throttled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flood = Vec::new();
    for i in 0..connections {
        let address = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            (i / 250) as u8 + 1,
            (i % 250) as u8 + 2,
        ));
        let client = reqwest::Client::builder().local_address(address).build()?;
        let (stop, url) = (stop.clone(), url.clone());
        let (unauthorized, throttled) = (unauthorized.clone(), throttled.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let answer = client
                    .get(&url)
                    .basic_auth(format!("intruder-{i}-{n}"), Some(format!("guess-{n}")))
                    .send()
                    .await;
                match answer.map(|r| r.status().as_u16()) {
                    Ok(401) => unauthorized.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => throttled.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut reads = Vec::new();
    let mut failed = 0;
    for _ in 0..SAMPLES * 2 {
        let read = known.get(&url).basic_auth(MEASURED, Some(MEASURED));
        kept(&mut reads, &mut failed, timed(read, 200).await);
    }
    let elapsed = started.elapsed() + Duration::from_secs(2);
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await?;
    }
    Ok(Flood {
        reads: latencies(reads, failed),
        unauthorized: unauthorized.load(Ordering::Relaxed),
        throttled: throttled.load(Ordering::Relaxed),
        elapsed,
    })
}
