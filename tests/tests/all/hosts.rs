//! Several hosts on one PostgreSQL database mean what one host means: one version order, one
//! feed, one owner of each piece of work, limits and credentials that hold across hosts, and
//! no acknowledged write lost when a host or the database goes away.
//!
//! These tests need a PostgreSQL server (`make test` starts a private one), so a plain
//! `cargo test` leaves them out; `--include-ignored` runs them.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhost_tests::hosts::Hosts;
use bulkhost_tests::{Api, all_changes, database, eventually, queue_export};

use crate::receivers::slow_receiver;
use serde_json::{Value, json};

use crate::process::{binary, hash};

/// Tenant `acme` (user `ann`) with `extra` configuration, claims that lapse 2 s after their
/// host stopped renewing them, and the test plugins deployed in `plugins`, a directory every
/// host reads.
fn config(plugins: &std::path::Path, extra: &str) -> String {
    for (name, path) in [
        ("synthetic.wasm", env!("PLUGIN_SYNTHETIC")),
        ("catalog.wasm", env!("PLUGIN_CATALOG")),
        ("hostile_endpoints.wasm", env!("PLUGIN_HOSTILE_ENDPOINTS")),
    ] {
        std::fs::copy(path, plugins.join(name)).unwrap();
    }
    settings(&format!("dir = \"{}\"\n{extra}", plugins.display()))
}

/// Tenant `acme` (user `ann`), claims that lapse 2 s after their host stopped renewing them,
/// and `plugins` as the `[plugins]` settings.
fn settings(plugins: &str) -> String {
    format!(
        "[database]\nlease_secs = 2\n[plugins]\n{plugins}\n\
         [[tenants]]\nname = \"acme\"\n[[tenants.users]]\nname = \"ann\"\npassword_hash = \"{}\"\n",
        hash("ann-pw")
    )
}

fn cashier(code: &str) -> Value {
    json!({"cashier_id": code, "name": format!("cashier {code}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn versions_are_unique_and_ascending_and_every_host_reads_one_feed() {
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start(binary(), 3, &config(plugins.path(), ""));
    let writers: Vec<_> = (0..3)
        .map(|h| {
            let api = hosts.as_user(h, "ann");
            tokio::spawn(async move {
                for round in 0..20 {
                    let docs: Vec<Value> = (0..5)
                        .map(|i| cashier(&format!("H{h}-{round}-{i}")))
                        .collect();
                    let r = api.post("/api/v1/cashiers/", &Value::Array(docs)).await;
                    assert_eq!(r.status, 201, "{}", r.text);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut feeds = Vec::new();
    for h in 0..3 {
        feeds.push(all_changes(&hosts.as_user(h, "ann"), "acme", 1, 37).await);
    }
    let versions: Vec<u64> = feeds[0]
        .iter()
        .map(|c| c["@in-version"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions.len(), 300, "one change per document written");
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions ascend, each given once: {versions:?}"
    );
    assert_eq!(feeds[1], feeds[0], "host 1 reads the feed host 0 reads");
    assert_eq!(feeds[2], feeds[0], "host 2 reads the feed host 0 reads");
}

/// A host serves a page it has read before only while the database still holds what it
/// read: a write through another host shows on the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_page_read_through_one_host_shows_a_write_through_another() {
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start(binary(), 2, &config(plugins.path(), ""));
    let (reader, writer) = (hosts.as_user(0, "ann"), hosts.as_user(1, "ann"));
    let codes = || async {
        let page = reader.get("/api/v1/cashiers/").await.json();
        let results = page["results"].as_array().unwrap().clone();
        results
            .iter()
            .map(|c| c["cashier_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        writer.post("/api/v1/cashiers/", &cashier("A")).await.status,
        201
    );
    assert_eq!(codes().await, ["A"]);
    assert_eq!(codes().await, ["A"]);
    assert_eq!(
        writer.post("/api/v1/cashiers/", &cashier("B")).await.status,
        201
    );
    assert_eq!(codes().await, ["A", "B"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_long_poll_wakes_within_100_ms_of_a_write_through_another_host() {
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start(binary(), 2, &config(plugins.path(), ""));
    let (reader, writer) = (hosts.as_user(0, "ann"), hosts.as_user(1, "ann"));
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        let next = writer
            .post("/api/v1/cashiers/", &cashier(&format!("W{round}")))
            .await;
        assert_eq!(next.status, 201, "{}", next.text);
        let version: u64 =
            reader.get("/c/acme/changes.json?limit=1").await.json()["winstrom"]["@globalVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
        let poll = {
            let reader = reader.clone();
            tokio::spawn(async move {
                let page = reader
                    .get(&format!(
                        "/c/acme/changes.json?start={}&wait=20",
                        version + 1
                    ))
                    .await;
                (Instant::now(), page)
            })
        };
        // The long-poll is waiting on host 0 before host 1 commits.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = writer
            .post("/api/v1/cashiers/", &cashier(&format!("X{round}")))
            .await;
        let committed = Instant::now();
        assert_eq!(r.status, 201, "{}", r.text);
        let (answered, page) = poll.await.unwrap();
        let changes = page.json()["winstrom"]["changes"].as_array().unwrap().len();
        assert_eq!(changes, 1, "the long-poll answers the write: {}", page.text);
        worst = worst.max(answered.saturating_duration_since(committed));
    }
    assert!(
        worst < Duration::from_millis(100),
        "a long-poll woke {worst:?} after a write through another host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn an_export_of_a_host_killed_while_generating_ends_ok_on_another() {
    let plugins = tempfile::tempdir().unwrap();
    let mut hosts = Hosts::new(binary(), 3, &config(plugins.path(), ""));
    hosts.restart(0);
    let ann = hosts.as_user(0, "ann");
    let id = queue_export(
        &ann,
        json!([{"dataset": "synthetic", "count": 300000, "width": 64}]),
    )
    .await;
    eventually(Duration::from_secs(30), async || {
        let state = ann.get(&format!("/api_v1/estado_xxl/{id}")).await.json();
        (state["datasets"][0]["numero_registros"].as_u64() > Some(0)).then_some(())
    })
    .await;
    // Two more hosts join; the one generating dies.
    hosts.restart(1);
    hosts.restart(2);
    hosts.kill(0);
    let other = hosts.as_user(1, "ann");
    let state = eventually(Duration::from_secs(120), async || {
        let state = other.get(&format!("/api_v1/estado_xxl/{id}")).await.json();
        (state["estado"] != "PENDING").then_some(state)
    })
    .await;
    assert_eq!(state["estado"], "OK", "{state}");
    assert_eq!(state["datasets"][0]["numero_registros"], 300000, "{state}");
    let whole = other
        .get(&format!("/api_v1/datos_xxl/{id}/synthetic"))
        .await;
    let records: Vec<Value> = serde_json::from_str(&whole.text).unwrap();
    assert_eq!(
        records.len(),
        300000,
        "every record once, none of the dead host's"
    );
    let distinct: BTreeSet<String> = records.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), 300000, "no record twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_host_killed_during_streamed_upserts_loses_no_acknowledged_write() {
    let plugins = tempfile::tempdir().unwrap();
    let mut hosts = Hosts::start(binary(), 2, &config(plugins.path(), ""));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let writer = {
        let (api, acknowledged) = (hosts.as_user(0, "ann"), acknowledged.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let code = format!("S{i:05}");
                let sent = api
                    .client
                    .post(format!("{}/api/v1/cashiers/", api.base))
                    .basic_auth("ann", Some("ann-pw"))
                    .json(&cashier(&code))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        acknowledged.lock().unwrap().insert(code);
                    }
                    _ => return,
                }
            }
        })
    };
    eventually(Duration::from_secs(30), async || {
        (acknowledged.lock().unwrap().len() > 200).then_some(())
    })
    .await;
    hosts.kill(0);
    writer.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_all_stored(&hosts.as_user(1, "ann"), &acknowledged).await;
}

/// Checks that every acknowledged cashier code is in the change feed `api` reads.
async fn assert_all_stored(api: &Api, acknowledged: &BTreeSet<String>) {
    let stored: BTreeSet<String> = all_changes(api, "acme", 1, 1000)
        .await
        .iter()
        .filter_map(|c| c["external-ids"][0].as_str())
        .filter_map(|e| e.strip_prefix("code:").map(str::to_string))
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// A batch of one operation that takes `ms` milliseconds, with an idempotency key.
async fn slow_batch(api: &Api, key: &str, ms: u64) -> (u16, Value) {
    let body = json!({"batch": {"operations": [{
        "operationId": "slow", "method": "PUT",
        "endpoint": format!("/v1/hostile/slow/S1?ms={ms}")
    }]}});
    let r = api
        .client
        .post(format!("{}/v1/batch", api.base))
        .basic_auth("ann", Some("ann-pw"))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn one_unfinished_batch_per_tenant_and_idempotency_keys_hold_across_hosts() {
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start(binary(), 3, &config(plugins.path(), ""));
    let apis: Vec<Api> = (0..3).map(|h| hosts.as_user(h, "ann")).collect();
    let at_once = |key: fn(usize) -> String| {
        let answers: Vec<_> = (0..24)
            .map(|i| {
                let api = apis[i % 3].clone();
                tokio::spawn(async move { slow_batch(&api, &key(i), 1500).await })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for answer in answers {
                out.push(answer.await.unwrap());
            }
            out
        }
    };
    // Batches under different keys through every host at once: one gets the tenant's slot.
    let racing = at_once(|i| format!("k{i}")).await;
    let accepted: Vec<&Value> = racing
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(accepted.len(), 1, "one unfinished batch: {racing:?}");
    assert!(
        racing
            .iter()
            .all(|(status, _)| *status == 201 || *status == 409),
        "the others are refused as the dialect says: {racing:?}"
    );
    let first = accepted[0]["uuid"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), async || {
        (batch_codes(&apis[0], &first).await.0 == "finished").then_some(())
    })
    .await;
    // One key and body through every host at once: one batch, answered to all.
    let same = at_once(|_| "once".to_string()).await;
    let uuids: BTreeSet<&str> = same
        .iter()
        .map(|(status, body)| {
            assert!(*status == 201 || *status == 200, "{status} {body}");
            body["uuid"].as_str().unwrap()
        })
        .collect();
    assert_eq!(uuids.len(), 1, "one batch for one key: {uuids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn tokens_and_quotas_hold_across_hosts() {
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start(
        binary(),
        3,
        &config(plugins.path(), "[quotas]\nunfinished_exports = 2\n"),
    );
    let issued = hosts
        .as_user(0, "ann")
        .post("/api_token/", &json!({"domain": "acme", "api": "xxl"}))
        .await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    let token = issued.json()["WINFRA-API-TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    for h in 0..3 {
        let api = hosts
            .as_user(h, "ann")
            .with_auth(bulkhost_tests::Auth::Header(
                "WINFRA-API-TOKEN".into(),
                token.clone(),
            ));
        let r = api.get("/api_v1/estado_xxl").await;
        assert_eq!(r.status, 200, "host {h} refused the token: {}", r.text);
    }
    // Exports that take a while, queued through every host at once: two in all may wait.
    let queued: Vec<_> = (0..6)
        .map(|i| {
            let api = hosts.as_user(i % 3, "ann");
            tokio::spawn(async move {
                api.post(
                    "/api_v1/generar_xxl",
                    &json!([{"dataset": "synthetic", "count": 2000000, "width": 200}]),
                )
                .await
                .status
            })
        })
        .collect();
    let mut accepted = 0;
    for status in queued {
        match status.await.unwrap() {
            200 => accepted += 1,
            422 => {}
            other => panic!("queueing answered {other}"),
        }
    }
    assert_eq!(
        accepted, 2,
        "the quota of two unfinished exports, across hosts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_webhook_is_delivered_by_one_host_not_by_each() {
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start(
        binary(),
        3,
        &config(plugins.path(), "[webhooks]\nallow_private = true\n"),
    );
    // Each call takes a second to answer: long enough for every other host to poll the outbox
    // while it is in flight, short of the lease that claims it.
    let hook = slow_receiver(vec![], Duration::from_secs(1)).await;
    let ann = hosts.as_user(1, "ann");
    for i in 0..5 {
        queue_export(
            &ann,
            json!([{"dataset": "synthetic", "count": 10 + i, "webhook": hook.url}]),
        )
        .await;
    }
    hook.wait_for(5).await;
    // Every host polls the outbox several times meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = hook.received.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        5,
        "each finished request told once, by one host"
    );
    // No secret is configured: the one the first host made is every host's.
    let (client, connection) = tokio_postgres::connect(hosts.database(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let secret: String = client
        .query_one(
            "SELECT value FROM settings WHERE name = 'webhook-secret'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for call in &calls {
        call.assert_signed_with(&secret);
    }
}

/// The operations' status codes and the batch's status, as a host reports them.
async fn batch_codes(api: &Api, uuid: &str) -> (String, Vec<u64>) {
    let status = api.get(&format!("/v1/batch/{uuid}")).await.json();
    let codes = status["responses"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| r["statusCode"].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default();
    (
        status["status"].as_str().unwrap_or_default().to_string(),
        codes,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_batch_of_a_host_killed_mid_batch_runs_every_operation_once_on_another() {
    let plugins = tempfile::tempdir().unwrap();
    let mut hosts = Hosts::new(binary(), 2, &config(plugins.path(), ""));
    hosts.restart(0);
    let ann = hosts.as_user(0, "ann");
    let operations: Vec<Value> = (0..12)
        .map(|i| {
            json!({"operationId": format!("op{i}"), "method": "PUT",
                   "endpoint": format!("/v1/hostile/slow/B{i:02}?ms=300")})
        })
        .collect();
    let created = ann
        .post("/v1/batch", &json!({"batch": {"operations": operations}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), async || {
        (batch_codes(&ann, &uuid).await.1.len() >= 3).then_some(())
    })
    .await;
    hosts.restart(1);
    hosts.kill(0);
    let other = hosts.as_user(1, "ann");
    let codes = eventually(Duration::from_secs(60), async || {
        let (status, codes) = batch_codes(&other, &uuid).await;
        (status == "finished").then_some(codes)
    })
    .await;
    assert_eq!(codes, vec![201; 12], "every operation answered once");
    let writes: Vec<String> = all_changes(&other, "acme", 1, 100)
        .await
        .iter()
        .filter_map(|c| c["external-ids"][0].as_str().map(str::to_string))
        .collect();
    let expected: Vec<String> = (0..12).map(|i| format!("code:B{i:02}")).collect();
    assert_eq!(writes, expected, "each operation wrote once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_database_restart_under_load_loses_no_acknowledged_write() {
    let restart = std::env::var("BULKHOST_TEST_POSTGRES_RESTART")
        .expect("the test cluster's restart script, from scripts/with-postgres.sh");
    let plugins = tempfile::tempdir().unwrap();
    let hosts = Hosts::start_on(
        binary(),
        2,
        &config(plugins.path(), ""),
        database::RESTARTABLE_SERVER_VARIABLE,
    );
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<_> = (0..2)
        .map(|h| {
            let api = hosts.as_user(h, "ann");
            let (acknowledged, refusals, writing) =
                (acknowledged.clone(), refusals.clone(), writing.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let code = format!("R{h}-{i:05}");
                    let r = api.post("/api/v1/cashiers/", &cashier(&code)).await;
                    match r.status {
                        201 => {
                            acknowledged.lock().unwrap().insert(code);
                        }
                        _ => refusals.lock().unwrap().push((
                            r.status,
                            r.header("retry-after").map(str::to_string),
                            r.text,
                        )),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted = Command::new(&restart).status().expect("the restart runs");
    assert!(restarted.success());
    // Both hosts write again by themselves once the database is back.
    let before = acknowledged.lock().unwrap().len();
    eventually(Duration::from_secs(30), async || {
        let now = acknowledged.lock().unwrap().clone();
        let again = (0..2).all(|h| {
            now.iter()
                .filter(|c| c.starts_with(&format!("R{h}-")))
                .count()
                > 0
        });
        (now.len() > before + 20 && again).then_some(())
    })
    .await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let refusals = refusals.lock().unwrap().clone();
    assert!(
        !refusals.is_empty(),
        "writes were in flight while the database was down"
    );
    for (status, retry_after, body) in &refusals {
        assert_eq!(*status, 503, "{body}");
        assert!(retry_after.is_some(), "a 503 says when to try again");
        let detail: Value = serde_json::from_str(body).unwrap();
        assert!(detail["detail"].is_string(), "DRF's error shape: {body}");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_all_stored(&hosts.as_user(1, "ann"), &acknowledged).await;
}

/// The data sets host `i` offers `ann`.
async fn datasets(hosts: &Hosts, i: usize) -> Vec<String> {
    hosts
        .as_user(i, "ann")
        .get("/api_v1/datasets")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dataset"].as_str().unwrap().to_string())
        .collect()
}

/// Each host has a plugins directory of its own: an upload through one host is served by
/// the others once they sync, by a host started afterwards, and its removal likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_plugin_uploaded_through_one_host_serves_on_every_host_and_its_removal_too() {
    let mut hosts = Hosts::start(binary(), 3, &settings("sync_interval_ms = 500\n"));
    let hostile = std::fs::read(env!("PLUGIN_HOSTILE")).unwrap();
    let uploaded = hosts
        .as_user(0, "ann")
        .send_raw("PUT", "/api_v1/plugins/mine", "application/wasm", hostile)
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    for h in 1..3 {
        eventually(Duration::from_secs(5), async || {
            datasets(&hosts, h)
                .await
                .contains(&"loop".to_string())
                .then_some(())
        })
        .await;
    }
    hosts.kill(1);
    hosts.restart(1);
    eventually(Duration::from_secs(5), async || {
        datasets(&hosts, 1)
            .await
            .contains(&"loop".to_string())
            .then_some(())
    })
    .await;
    let removed = hosts
        .as_user(2, "ann")
        .send("DELETE", "/api_v1/plugins/mine", None)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    for h in 0..2 {
        eventually(Duration::from_secs(5), async || {
            (!datasets(&hosts, h).await.contains(&"loop".to_string())).then_some(())
        })
        .await;
    }
}
