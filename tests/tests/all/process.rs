//! The command line and the server as a process: help, password hashing, graceful shutdown on
//! SIGTERM, and no acknowledged write lost to SIGKILL.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhost_tests::{Api, ServerProcess, all_changes};
use serde_json::{Value, json};

/// The `bulkhost` command line built for these tests.
pub fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_bulkhost-under-test"))
}

/// An Argon2 hash of `password`, made by `bulkhost hash-password`.
pub fn hash(password: &str) -> String {
    let mut child = Command::new(binary())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-password runs");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The configuration every process test starts from: one tenant, and claims that lapse two
/// seconds after their host stopped renewing them, so a restart takes over soon on an engine
/// that cannot tell a dead host from a slow one.
fn config() -> String {
    format!(
        "[database]\nlease_secs = 2\n[[tenants]]\nname = \"acme\"\n[[tenants.users]]\nname = \"ann\"\npassword_hash = \"{}\"\n",
        hash("ann-pw")
    )
}

#[test]
fn help_explains_the_operator_interface() {
    let run = |args: &[&str]| {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let top = run(&["--help"]);
    assert!(
        top.contains("serve") && top.contains("hash-password"),
        "{top}"
    );
    let serve = run(&["serve", "--help"]);
    for needle in [
        "--listen",
        "BULKHOST_LISTEN",
        "--data",
        "BULKHOST_DATA",
        "--config",
        "BULKHOST_CONFIG",
        "--dev",
        "password_hash",
    ] {
        assert!(serve.contains(needle), "`{needle}` missing from:\n{serve}");
    }
}

/// What `bulkhost serve` writes to stderr when it refuses to start with `config`.
fn refused_start(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started with {config}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_passwords_need_development_mode() {
    let stderr = refused_start(
        "[[tenants]]\nname = \"a\"\n[[tenants.users]]\nname = \"u\"\npassword = \"p\"\n",
    );
    assert!(stderr.contains("development mode"), "{stderr}");
}

#[test]
fn a_grant_of_a_missing_directory_stops_the_start() {
    let stderr = refused_start(&format!(
        "{}[plugins.grants.erp]\nread_dirs = [\"no-such-dir\"]\n",
        config()
    ));
    assert!(
        stderr.contains("plugins.grants.erp.read_dirs") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(binary(), dir.path(), &config());
    let ann = server.as_user("ann");
    assert_eq!(
        ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
            .await
            .status,
        201
    );
    let poller = ann.clone();
    let in_flight =
        tokio::spawn(async move { poller.get("/c/acme/changes.json?start=2&wait=60").await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let signalled = std::time::Instant::now();
    server.signal("TERM");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "a long-poll answers at once when the server stops"
    );
    let status = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("server exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

async fn writer(api: Api, prefix: &'static str, acknowledged: Arc<Mutex<Vec<String>>>) {
    for batch in 0.. {
        let docs: Vec<Value> = (0..20)
            .map(|i| json!({"cashier_id": format!("{prefix}-{batch}-{i}"), "name": "x"}))
            .collect();
        let sent = api
            .client
            .post(format!("{}/api/v1/cashiers/", api.base))
            .basic_auth("ann", Some("ann-pw"))
            .json(&docs)
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 201 => acknowledged.lock().unwrap().extend(
                docs.iter()
                    .map(|d| d["cashier_id"].as_str().unwrap().to_string()),
            ),
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_upserts_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = config();
    let server = ServerProcess::start(binary(), dir.path(), &config);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|p| tokio::spawn(writer(server.as_user("ann"), p, acknowledged.clone())))
        .collect();
    while acknowledged.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("KILL");
    for w in writers {
        w.await.unwrap();
    }
    drop(server);
    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();

    let restarted = ServerProcess::start(binary(), dir.path(), &config);
    let ann = restarted.as_user("ann");
    let listing = ann
        .get("/c/acme/cashiers.json?limit=0&add-global-version=true")
        .await
        .json();
    let stored: BTreeSet<String> = listing["winstrom"]["cashiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cashier_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "lost acknowledged writes: {missing:?}");
    assert_eq!(
        stored.len() % 20,
        0,
        "a batch is written whole or not at all"
    );

    let ids: BTreeSet<String> = listing["winstrom"]["cashiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let mut replayed = BTreeSet::new();
    let mut versions = Vec::new();
    for c in all_changes(&ann, "acme", 1, 1000).await {
        versions.push(c["@in-version"].as_str().unwrap().parse::<u64>().unwrap());
        assert_eq!(c["@operation"], "create");
        replayed.insert(c["id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        replayed, ids,
        "the change log names exactly the stored documents"
    );
    assert!(versions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        versions.last().map(u64::to_string).as_deref(),
        listing["winstrom"]["@globalVersion"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_generation_ends_every_request_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(env!("PLUGIN_SYNTHETIC"), plugins.join("synthetic.wasm")).unwrap();
    let config = format!("{}\n[plugins]\ndir = \"{}\"\n", config(), plugins.display());
    let server = ServerProcess::start(binary(), dir.path(), &config);
    let ann = server.as_user("ann");
    let big = ann
        .post(
            "/api_v1/generar_xxl",
            &json!([{"dataset": "synthetic", "count": 1_000_000, "width": 100}]),
        )
        .await
        .json();
    let small = ann
        .post(
            "/api_v1/generar_xxl",
            &json!([{"dataset": "synthetic", "count": 10}]),
        )
        .await
        .json();
    let big_id = big["peticion_id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    loop {
        let state = ann
            .get(&format!("/api_v1/estado_xxl/{big_id}"))
            .await
            .json();
        if state["datasets"][0]["numero_registros"].as_u64().unwrap() > 0 {
            assert_eq!(state["estado"], "PENDING", "killed while generating");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("KILL");
    drop(server);

    let restarted = ServerProcess::start(binary(), dir.path(), &config);
    let ann = restarted.as_user("ann");
    for (id, count) in [
        (big_id.as_str(), 1_000_000u64),
        (small["peticion_id"].as_str().unwrap(), 10),
    ] {
        let started = std::time::Instant::now();
        let state = loop {
            let state = ann.get(&format!("/api_v1/estado_xxl/{id}")).await.json();
            if state["estado"] != "PENDING" {
                break state;
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "never finished: {state}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(state["estado"], "OK", "{state}");
        assert_eq!(state["datasets"][0]["numero_registros"], count);
    }
    let tail = ann
        .get(&format!("/api_v1/datos_xxl/{big_id}/synthetic/999999/5"))
        .await;
    let tail: Vec<Value> = serde_json::from_str(&tail.text).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0]["id"], 999_999);
}

#[test]
fn the_demo_starts_with_a_relative_data_directory() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "data",
        ])
        .current_dir(dir.path())
        .env("BULKHOST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let listening = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("bulkhost listening on "));
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(listening, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("data/compiled").is_dir());
    assert!(dir.path().join("data/plugins").is_dir());
}

/// The `statusCode`s of a batch's completed operations.
async fn batch_codes(api: &Api, uuid: &str) -> (String, Vec<u64>) {
    let status = api.get(&format!("/v1/batch/{uuid}")).await.json();
    let codes = status["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    (status["status"].as_str().unwrap().to_string(), codes)
}

/// A server process with the catalogue and hostile endpoint plugins, running a batch of 22
/// operations (creates P0, a write to S1 that then stays busy `busy_ms`, creates P1-P20),
/// caught in its slow operation after that operation's write and the result before it.
async fn batch_in_its_slow_operation(
    busy_ms: u64,
) -> (tempfile::TempDir, String, ServerProcess, String) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(env!("PLUGIN_CATALOG"), plugins.join("catalog.wasm")).unwrap();
    std::fs::copy(
        env!("PLUGIN_HOSTILE_ENDPOINTS"),
        plugins.join("hostile_endpoints.wasm"),
    )
    .unwrap();
    let config = format!("{}\n[plugins]\ndir = \"{}\"\n", config(), plugins.display());
    let server = ServerProcess::start(binary(), dir.path(), &config);
    let ann = server.as_user("ann");
    let product = |id: &str| {
        json!({"operationId": id, "method": "POST", "endpoint": "/v1/products",
               "body": json!({"id": id, "name": id, "barcode": "4006381333931", "price": 1}).to_string()})
    };
    let mut operations = vec![
        product("P0"),
        json!({"operationId": "slow", "method": "PUT",
               "endpoint": format!("/v1/hostile/slow/S1?ms={busy_ms}")}),
    ];
    operations.extend((1..=20).map(|i| product(&format!("P{i}"))));
    let created = ann
        .post("/v1/batch", &json!({"batch": {"operations": operations}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    loop {
        let written = all_changes(&ann, "acme", 1, 100)
            .await
            .iter()
            .any(|c| c["external-ids"][0] == "code:S1");
        if written && batch_codes(&ann, &uuid).await.1 == [201] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (dir, config, server, uuid)
}

/// Waits for the batch to finish; answers its status codes.
async fn finished_codes(api: &Api, uuid: &str) -> Vec<u64> {
    let started = std::time::Instant::now();
    loop {
        let (status, codes) = batch_codes(api, uuid).await;
        if status == "finished" {
            return codes;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{codes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each write of the batch of [`batch_in_its_slow_operation`], sorted, plus `also`.
fn expected_writes(also: &[&str]) -> Vec<String> {
    let mut expected: Vec<String> = (0..=20).map(|i| format!("create code:P{i}")).collect();
    expected.push("create code:S1".into());
    expected.extend(also.iter().map(|w| w.to_string()));
    expected.sort();
    expected
}

/// Every change of the tenant as `operation key`, sorted.
async fn writes_made(api: &Api) -> Vec<String> {
    let mut written: Vec<String> = all_changes(api, "acme", 1, 100)
        .await
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["@operation"].as_str().unwrap(),
                c["external-ids"][0].as_str().unwrap()
            )
        })
        .collect();
    written.sort();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_resumes_and_runs_every_operation_once() {
    let (dir, config, server, uuid) = batch_in_its_slow_operation(3000).await;
    let ann = server.as_user("ann");
    // A client's write meanwhile is durable, and makes the operation's write durable too.
    let shop = ann
        .post(
            "/api/v1/shops/",
            &json!({"shop_id": "X", "name": "Meanwhile"}),
        )
        .await;
    assert_eq!(shop.status, 201, "{}", shop.text);
    server.signal("KILL");
    drop(server);

    let restarted = ServerProcess::start(binary(), dir.path(), &config);
    let ann = restarted.as_user("ann");
    assert_eq!(
        finished_codes(&ann, &uuid).await,
        [201; 22],
        "each product is created once (a second POST would be 409) and the replayed slow \
         write answers that it inserted, as the first run did"
    );
    assert_eq!(
        writes_made(&ann).await,
        expected_writes(&["create code:X"]),
        "every write happened exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_batch_records_the_operation_in_flight_and_the_batch_resumes() {
    let (dir, config, mut server, uuid) = batch_in_its_slow_operation(1500).await;
    server.signal("TERM");
    let status = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(15)))
        .await
        .unwrap()
        .expect("server exits after SIGTERM");
    assert!(status.success(), "{status:?}");

    let restarted = ServerProcess::start(binary(), dir.path(), &config);
    let ann = restarted.as_user("ann");
    let (_, recorded) = batch_codes(&ann, &uuid).await;
    assert_eq!(
        recorded.get(..2),
        Some(&[201, 201][..]),
        "the stop waited for the slow operation and recorded it: {recorded:?}"
    );
    assert_eq!(finished_codes(&ann, &uuid).await, [201; 22]);
    assert_eq!(writes_made(&ann).await, expected_writes(&[]));
}

#[test]
fn a_token_stops_working_once_its_user_leaves_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let both = format!(
        "{}[[tenants.users]]\nname = \"amy\"\npassword_hash = \"{}\"\n",
        config(),
        hash("amy-pw")
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = {
        let server = ServerProcess::start(binary(), dir.path(), &both);
        let issued = runtime.block_on(
            server
                .as_user("amy")
                .post("/api_token/", &json!({"domain": "acme", "api": "xxl"})),
        );
        assert_eq!(issued.status, 200, "{}", issued.text);
        issued.json()["WINFRA-API-TOKEN"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let server = ServerProcess::start(binary(), dir.path(), &config());
    let with_token = server
        .as_user("ann")
        .with_auth(bulkhost_tests::Auth::Header(
            "WINFRA-API-TOKEN".into(),
            token,
        ));
    let refused = runtime.block_on(with_token.get("/api/v1/shops/"));
    assert_eq!(refused.status, 401, "{}", refused.text);
    let ann = runtime.block_on(server.as_user("ann").get("/api/v1/shops/"));
    assert_eq!(ann.status, 200, "the user who stayed still signs in");
}

#[test]
fn tenant_names_that_could_name_a_path_stop_the_start() {
    for (name, problem) in [
        ("..", "names a directory"),
        (".", "names a directory"),
        ("a/b", "holds `/`"),
        ("a\\\\b", "holds `/`"),
        ("bell\\u0007", "control character"),
        ("", "is empty"),
    ] {
        let stderr = refused_start(&format!("[[tenants]]\nname = \"{name}\"\n"));
        assert!(stderr.contains(problem), "`{name}`: {stderr}");
    }
}

#[test]
fn webhooks_ignore_a_proxy_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime.block_on(crate::receivers::receiver(vec![]));
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(env!("PLUGIN_SYNTHETIC"), plugins.join("synthetic.wasm")).unwrap();
    let config = format!(
        "[plugins]\ndir = \"{}\"\n[webhooks]\nallow_private = true\n{}",
        plugins.display(),
        config()
    );
    let server = ServerProcess::start_with_env(
        binary(),
        dir.path(),
        &config,
        &[
            ("HTTP_PROXY", "http://127.0.0.1:9"),
            ("http_proxy", "http://127.0.0.1:9"),
            ("ALL_PROXY", "http://127.0.0.1:9"),
        ],
    );
    let ann = server.as_user("ann");
    let queued = runtime.block_on(ann.post(
        "/api_v1/generar_xxl",
        &json!([{"dataset": "synthetic", "count": 3, "webhook": hook.url}]),
    ));
    assert_eq!(queued.status, 200, "{}", queued.text);
    let calls = runtime.block_on(hook.wait_for(1));
    assert!(
        calls[0].body.contains("\"estado\":\"OK\""),
        "{}",
        calls[0].body
    );
}
