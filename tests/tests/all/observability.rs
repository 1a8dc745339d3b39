//! What an operator watches: a request id on every response, an access log line per request,
//! and the metrics of exports, plugins and deliveries.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bulkhost_tests::{TestServer, eventually, queue_export, settled_export};
use serde_json::{Value, json};

use crate::process::{binary, hash};
use crate::receivers::receiver;

fn install(dir: &Path, name: &str, component: &str) {
    std::fs::copy(component, dir.join(format!("{name}.wasm"))).unwrap();
}

/// The value of the series `name` (with its labels, as rendered) in a metrics text.
fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_runs_plugin_outcomes_and_the_queue_show_in_the_metrics() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    install(plugins.path(), "hostile", env!("PLUGIN_HOSTILE"));
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\ndeadline_secs = 4\n[exports]\nworkers = 1\n",
        plugins.path().display()
    ))
    .await;
    let (ann, anonymous) = (server.as_user("ann"), server.anonymous());
    // The one worker is held by a plugin that never returns, so what follows waits.
    let stuck = queue_export(&ann, json!([{"dataset": "loop"}])).await;
    eventually(Duration::from_secs(10), async || {
        let state = ann.get(&format!("/api_v1/estado_xxl/{stuck}")).await.json();
        state["datasets"][0]["fecha_generacion_inicio"]
            .is_string()
            .then_some(())
    })
    .await;
    let waiting = queue_export(
        &ann,
        json!([{"dataset": "synthetic", "count": 250}, {"dataset": "trap"}, {"dataset": "bomb"}]),
    )
    .await;
    let metrics = anonymous.get("/metrics").await.text;
    assert_eq!(
        series(&metrics, "bulkhost_export_queue_depth"),
        Some(3.0),
        "{metrics}"
    );
    settled_export(&ann, &stuck).await;
    settled_export(&ann, &waiting).await;

    let metrics = anonymous.get("/metrics").await.text;
    for (name, value) in [
        ("bulkhost_export_queue_depth", 0.0),
        ("bulkhost_export_runs_total{outcome=\"ok\"}", 1.0),
        ("bulkhost_export_runs_total{outcome=\"failed\"}", 3.0),
        ("bulkhost_export_records_total", 250.0),
        ("bulkhost_plugin_invocations_total{outcome=\"trap\"}", 1.0),
        ("bulkhost_plugin_invocations_total{outcome=\"memory\"}", 1.0),
        (
            "bulkhost_plugin_invocations_total{outcome=\"deadline\"}",
            1.0,
        ),
    ] {
        assert_eq!(series(&metrics, name), Some(value), "{name} in\n{metrics}");
    }
    let answered = series(
        &metrics,
        "bulkhost_plugin_invocations_total{outcome=\"ok\"}",
    );
    assert!(
        answered.is_some_and(|n| n >= 3.0),
        "describe, validate and the synthetic run answered: {metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_show_in_the_metrics_by_outcome() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let hook = receiver(vec![500]).await;
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\n[webhooks]\nallow_private = true\nretry_base_ms = 100\n",
        plugins.path().display()
    ))
    .await;
    let ann = server.as_user("ann");
    queue_export(
        &ann,
        json!([{"dataset": "synthetic", "count": 5, "webhook": hook.url}]),
    )
    .await;
    hook.wait_for(2).await;
    let anonymous = server.anonymous();
    let metrics = eventually(Duration::from_secs(10), async || {
        let metrics = anonymous.get("/metrics").await.text;
        let delivered = "bulkhost_deliveries_total{kind=\"webhook\",outcome=\"delivered\"}";
        series(&metrics, delivered).map(|_| metrics)
    })
    .await;
    assert_eq!(
        series(
            &metrics,
            "bulkhost_deliveries_total{kind=\"webhook\",outcome=\"retried\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        series(&metrics, "bulkhost_outbox_lag_seconds").is_some(),
        "{metrics}"
    );
    server.stop().await;
}

/// A server process logging JSON lines at `info` (on its standard output, after the line
/// saying where it listens), and those lines as they arrive.
fn logging_server(data: &Path) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let config = data.join("bulkhost.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenants]]\nname = \"acme\"\n[[tenants.users]]\nname = \"ann\"\npassword_hash = \"{}\"\n",
            hash("ann-pw")
        ),
    )
    .unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--log-json", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(data.join("db"))
        .env("BULKHOST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, arrived) = mpsc::channel();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let base = loop {
        let line = arrived
            .recv_timeout(Duration::from_secs(30))
            .expect("the server printed its address");
        if let Some(addr) = line.strip_prefix("bulkhost listening on ") {
            break addr.trim().to_string();
        }
    };
    (child, base, arrived)
}

/// The access line of the request `id`, waiting for it at most 10 s.
fn access_line(lines: &mpsc::Receiver<String>, id: &str) -> Value {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no access line for {id}"));
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if entry["target"] == "bulkhost::access" && entry["fields"]["request_id"] == id {
            return entry["fields"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_a_request_id_and_an_access_line() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base, lines) = logging_server(data.path());
    let client = reqwest::Client::new();
    let chosen = client
        .get(format!("{base}/api/v1/shops/?page_size=5"))
        .basic_auth("ann", Some("ann-pw"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 200);
    assert_eq!(chosen.headers()["x-request-id"], "client-chosen-42");
    let body = chosen.bytes().await.unwrap();
    let line = access_line(&lines, "client-chosen-42");
    assert_eq!(line["tenant"], "acme", "{line}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/api/v1/{collection}/");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], body.len() as u64);
    assert_eq!(line["complete"], true);
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");

    let unusable = "x".repeat(300);
    let refused = client
        .get(format!("{base}/nowhere"))
        .header("x-request-id", &unusable)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let made = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        made.len(),
        32,
        "an unusable id is replaced by one made here"
    );
    let line = access_line(&lines, &made);
    assert_eq!(line["tenant"], "-");
    assert_eq!(line["status"], 404);

    let unauthorized = client
        .get(format!("{base}/api/v1/shops/"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert!(unauthorized.headers().contains_key("x-request-id"));

    for (id, path, route) in [
        (
            "listing-json",
            "/c/acme/shops.json",
            "/c/{firma}/{collection}.json",
        ),
        (
            "listing-xml",
            "/c/acme/shops.xml",
            "/c/{firma}/{collection}.xml",
        ),
        (
            "record-xml",
            "/c/acme/shops/7.xml",
            "/c/{firma}/{collection}/{id}.xml",
        ),
    ] {
        client
            .get(format!("{base}{path}"))
            .basic_auth("ann", Some("ann-pw"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(access_line(&lines, id)["route"], route, "{path}");
    }

    // A long-poll its client gives up on is never answered; its line says so.
    let gone = client
        .get(format!("{base}/c/acme/changes.json?start=1000&wait=30"))
        .basic_auth("ann", Some("ann-pw"))
        .header("x-request-id", "gone-early")
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    let line = access_line(&lines, "gone-early");
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["complete"], false);
    assert_eq!(line["tenant"], "acme");
    child.kill().unwrap();
    child.wait().unwrap();
}
