//! The client in the `bulkhost` binary, run as a customer runs it against a server: `export`
//! with its byte ranges, a broken connection and a killed process taken up again; `sync` into
//! SQLite and on from its stored version; `batch` split by load score, with retries and the
//! responses saved; settings from flags, the environment or a file, the password never shown.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bulkhost_tests::{TestServer, seed_references};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::binary;

async fn server() -> (TestServer, tempfile::TempDir) {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("PLUGIN_SYNTHETIC"),
        plugins.path().join("synthetic.wasm"),
    )
    .unwrap();
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\n",
        plugins.path().display()
    ))
    .await;
    (server, plugins)
}

/// `bulkhost args...` in `dir` against `url` as ann.
fn client(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .args(args)
        .env("BULKHOST_URL", url)
        .env("BULKHOST_USER", "ann")
        .env("BULKHOST_PASSWORD", "ann-pw")
        .env("BULKHOST_TENANT", "acme")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    command
}

fn finished(out: Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// How a proxy treats the download connections it forwards.
#[derive(Clone, Copy)]
enum Trouble {
    /// Closes the first `n` after `bytes` of their answer.
    Cut { n: usize, bytes: usize },
    /// Stops forwarding every one after `bytes` of its answer, holding it open.
    Stall { bytes: usize },
}

/// A TCP proxy in front of `upstream` that makes trouble for range downloads of export data;
/// answers its URL.
async fn proxy(upstream: String, trouble: Trouble) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    let troubled = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let (upstream, troubled) = (upstream.clone(), troubled.clone());
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let mut request = vec![0u8; 16384];
                let n = inbound.read(&mut request).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&request[..n]).to_lowercase();
                outbound.write_all(&request[..n]).await.unwrap();
                let download = text.contains("/datos_xxl/")
                    && text.contains("\r\nrange: bytes=")
                    && !text.contains("range: bytes=0-0");
                let limit = match trouble {
                    Trouble::Cut { n, bytes }
                        if download && troubled.fetch_add(1, Ordering::SeqCst) < n =>
                    {
                        Some(bytes)
                    }
                    Trouble::Stall { bytes } if download => Some(bytes),
                    _ => None,
                };
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let forwarding = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                });
                let mut sent = 0;
                let mut buffer = vec![0u8; 8192];
                loop {
                    let n = match out_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let n = match limit {
                        Some(limit) if sent + n > limit => {
                            let _ = in_write.write_all(&buffer[..limit - sent]).await;
                            // The server's side closes at once, so no answer of the server is
                            // held; a stall keeps the client's side open, silent.
                            forwarding.abort();
                            drop(out_read);
                            if matches!(trouble, Trouble::Stall { .. }) {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            return;
                        }
                        _ => n,
                    };
                    if in_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                    sent += n;
                }
            });
        }
    });
    url
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_downloads_in_ranges_through_broken_connections_and_after_a_kill() {
    let (server, _plugins) = server().await;
    let here = tempfile::tempdir().unwrap();
    let cutting = proxy(
        server.base.clone(),
        Trouble::Cut {
            n: 3,
            bytes: 150_000,
        },
    )
    .await;
    let spec = "synthetic?count=30000&width=300";
    let (ok, printed) = finished(
        client(
            here.path(),
            &cutting,
            &["export", spec, "--out", "a", "--parallel", "3"],
        )
        .output()
        .unwrap(),
    );
    assert!(ok, "{printed}");
    assert!(
        printed.contains("synthetic: 30000 records, global version 0"),
        "{printed}"
    );
    let records = lines(&here.path().join("a/synthetic.jsonl"));
    assert_eq!(records.len(), 30000);
    assert_eq!(records[29999]["id"], 29999, "in order, whole");
    assert!(!here.path().join("a/synthetic.jsonl.gz.part").exists());

    let stalling = proxy(server.base.clone(), Trouble::Stall { bytes: 700_000 }).await;
    let spec = "synthetic?count=60000&width=400";
    let mut stalled: Child = client(
        here.path(),
        &stalling,
        &["export", spec, "--out", "b", "--json", "--parallel", "1"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let progress = here.path().join("b/synthetic.json.gz.part.json");
    let started = Instant::now();
    let written = || -> u64 {
        std::fs::read(&progress)
            .ok()
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .and_then(|p| p["ranges"][0][2].as_u64())
            .unwrap_or(0)
    };
    while written() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no download got under way"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stalled.kill().unwrap();
    stalled.wait().unwrap();
    let kept: Value = serde_json::from_slice(&std::fs::read(&progress).unwrap()).unwrap();
    assert!(kept["ranges"][0][2].as_u64().unwrap() > 0, "{kept}");

    let (ok, printed) = finished(
        client(
            here.path(),
            &server.base,
            &["export", spec, "--out", "b", "--json"],
        )
        .output()
        .unwrap(),
    );
    assert!(ok, "{printed}");
    assert!(printed.contains("taking up request"), "{printed}");
    let list: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(here.path().join("b/synthetic.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(list.len(), 60000);
    let requests = server.as_user("ann").get("/api_v1/estado_xxl").await.json();
    assert_eq!(
        requests.as_array().unwrap().len(),
        2,
        "the run after the kill took up its request instead of queueing another"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_loads_then_applies_the_changes_after_its_stored_version() {
    let (server, _plugins) = server().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let here = tempfile::tempdir().unwrap();
    let sync = |follow: bool| {
        let mut args = vec![
            "sync",
            "--db",
            "copy.sqlite",
            "--records",
            "shops",
            "--records",
            "products",
        ];
        if follow {
            args.push("--follow");
        }
        client(here.path(), &server.base, &args)
    };
    let rows = || -> Vec<(String, i64, Value)> {
        let db = rusqlite::Connection::open(here.path().join("copy.sqlite")).unwrap();
        let mut statement = db
            .prepare("SELECT collection, id, body FROM documents ORDER BY collection, id")
            .unwrap();
        statement
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    serde_json::from_str(&r.get::<_, String>(2)?).unwrap(),
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (ok, printed) = finished(sync(false).output().unwrap());
    assert!(ok, "{printed}");
    assert!(printed.contains("version 9"), "{printed}");
    let loaded = rows();
    assert_eq!(loaded.len(), 8, "3 shops and 5 products");
    assert_eq!(loaded[5].2["shop_id"], "1");

    ann.post(
        "/api/v1/shops/",
        &json!({"shop_id": "2", "name": "Renamed"}),
    )
    .await;
    assert_eq!(
        ann.send("DELETE", "/api/v1/shops/code:3/", None)
            .await
            .status,
        204
    );
    ann.post(
        "/api/v1/cashiers/",
        &json!({"cashier_id": "C2", "name": "Taras"}),
    )
    .await;
    let (ok, printed) = finished(sync(false).output().unwrap());
    assert!(ok, "{printed}");
    assert!(printed.contains("version 12"), "{printed}");
    let shops: Vec<Value> = rows()
        .into_iter()
        .filter(|(c, ..)| c == "shops")
        .map(|(.., body)| body)
        .collect();
    assert_eq!(shops.len(), 2, "{shops:?}");
    assert_eq!(shops[1]["name"], "Renamed");

    let mut follower = sync(true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    ann.post("/api/v1/shops/", &json!({"shop_id": "9", "name": "Live"}))
        .await;
    let started = Instant::now();
    while !rows().iter().any(|(.., body)| body["shop_id"] == "9") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the follower never applied it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follower.kill().unwrap();
    follower.wait().unwrap();

    let other = client(
        here.path(),
        &server.base,
        &["sync", "--db", "copy.sqlite", "--records", "cashiers"],
    )
    .output()
    .unwrap();
    let (ok, printed) = finished(other);
    assert!(!ok && printed.contains("use another file"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_splits_by_load_score_retries_what_failed_and_saves_every_response() {
    let (server, _plugins) = server().await;
    let here = tempfile::tempdir().unwrap();
    let mut operations: Vec<String> = (0..60)
        .map(|i| {
            json!({"operationId": format!("shop-{i}"), "method": "POST", "endpoint": "/api/v1/shops/",
                   "body": {"shop_id": format!("S{i}"), "name": format!("Shop {i}")}})
            .to_string()
        })
        .collect();
    operations.push(
        json!({"method": "POST", "endpoint": "/api/v1/shops/", "body": {"name": "no key"}})
            .to_string(),
    );
    std::fs::write(here.path().join("ops.jsonl"), operations.join("\n")).unwrap();
    let (ok, printed) = finished(
        client(
            here.path(),
            &server.base,
            &["batch", "ops.jsonl", "--out", "responses.jsonl"],
        )
        .output()
        .unwrap(),
    );
    assert!(
        !ok,
        "an operation that keeps failing fails the command: {printed}"
    );
    assert!(
        printed.contains("61 operations in 2 batches: 60 succeeded, 1 did not"),
        "{printed}"
    );
    let responses = lines(&here.path().join("responses.jsonl"));
    assert_eq!(responses.len(), 61);
    assert_eq!(responses[0]["operationId"], "shop-0");
    assert_eq!(responses[60]["operationId"], "line-61");
    assert_eq!(responses[60]["statusCode"], 400);
    let count = server.as_user("ann").get("/api/v1/shops/").await.json()["count"].clone();
    assert_eq!(count, 60);

    std::fs::write(
        here.path().join("bad.jsonl"),
        "{\"method\": \"GET\", \"endpoint\": \"/nowhere\"}\n",
    )
    .unwrap();
    let (ok, printed) = finished(
        client(here.path(), &server.base, &["batch", "bad.jsonl"])
            .output()
            .unwrap(),
    );
    assert!(
        !ok && printed.contains("bad.jsonl:1: `GET /nowhere` is not an endpoint a batch may call"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_the_environment_or_a_file_and_the_password_is_never_shown() {
    let (server, _plugins) = server().await;
    let here = tempfile::tempdir().unwrap();
    std::fs::write(
        here.path().join("connection.toml"),
        format!(
            "url = \"{}\"\nuser = \"ann\"\npassword = \"wrong-secret-pw\"\n",
            server.base
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(binary());
        command
            .current_dir(here.path())
            .args(args)
            .env_remove("BULKHOST_URL")
            .env_remove("BULKHOST_PASSWORD")
            .env("RUST_BACKTRACE", "0");
        finished(command.output().unwrap())
    };
    let (ok, printed) = run(&[
        "export",
        "synthetic?count=1",
        "--connection",
        "connection.toml",
    ]);
    assert!(!ok && printed.contains("401"), "{printed}");
    assert!(!printed.contains("wrong-secret-pw"), "{printed}");
    let (ok, printed) = run(&[
        "export",
        "synthetic?count=3",
        "--connection",
        "connection.toml",
        "--password",
        "ann-pw",
        "--out",
        "x",
    ]);
    assert!(ok, "a flag takes precedence over the file: {printed}");
    let (ok, printed) = run(&["export", "synthetic"]);
    assert!(
        !ok && printed.contains("no server URL: give --url, set BULKHOST_URL"),
        "{printed}"
    );
    let help = Command::new(binary())
        .args(["export", "--help"])
        .env("BULKHOST_PASSWORD", "visible-secret")
        .output()
        .unwrap();
    let (_, printed) = finished(help);
    assert!(!printed.contains("visible-secret"), "{printed}");
}
