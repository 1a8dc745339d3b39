//! Winfra XXL bulk export over HTTP: queue a request, poll its state, download the records whole or by
//! offset and limit; bad requests refused before anything is queued; hostile plugins fail
//! alone; components dropped into the plugins directory are offered without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhost_tests::{Api, Auth, TestServer, queue_export, settled_export};
use serde_json::{Value, json};

use crate::receivers::{SECRET, receiver};

fn install(dir: &Path, name: &str, component: &str) {
    std::fs::copy(component, dir.join(format!("{name}.wasm"))).unwrap();
}

async fn server(plugins: &Path, extra: &str) -> TestServer {
    TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\nsync_interval_ms = 200\ndeadline_secs = 2\n{extra}",
        plugins.display()
    ))
    .await
}

async fn token_client(server: &TestServer) -> Api {
    let r = server
        .as_user("ann")
        .post("/api_token/", &json!({"domain": "acme", "api": "xxl"}))
        .await;
    let token = r.json()["WINFRA-API-TOKEN"].as_str().unwrap().to_string();
    server
        .anonymous()
        .with_auth(Auth::Header("WINFRA-API-TOKEN".into(), token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_queued_generated_and_downloaded_by_pages() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let server = server(plugins.path(), "").await;
    let api = token_client(&server).await;

    let queued = api
        .post(
            "/api_v1/generar_xxl",
            &json!([{"dataset": "synthetic", "count": 2345, "width": "100"}]),
        )
        .await;
    assert_eq!(queued.status, 200, "{}", queued.text);
    let queued = queued.json();
    assert_eq!(queued["estado"], "PENDING");
    assert_eq!(queued["error_message"], "");
    assert_eq!(
        queued["datasets"],
        json!([{"dataset": "synthetic", "estado": "PENDING", "fecha_generacion_inicio": null,
                "fecha_generacion_fin": null, "numero_registros": 0, "error_message": ""}])
    );
    let id = queued["peticion_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);

    let done = settled_export(&api, &id).await;
    assert_eq!(done["estado"], "OK", "{done}");
    let ds = &done["datasets"][0];
    assert_eq!(ds["estado"], "OK");
    assert_eq!(ds["numero_registros"], 2345);
    assert!(ds["fecha_generacion_inicio"].is_string() && ds["fecha_generacion_fin"].is_string());

    let whole = api.get(&format!("/api_v1/datos_xxl/{id}/synthetic")).await;
    assert_eq!(whole.status, 200);
    let whole: Vec<Value> = serde_json::from_str(&whole.text).unwrap();
    assert_eq!(whole.len(), 2345);
    let mut joined = Vec::new();
    for offset in (0..2345).step_by(100) {
        let page = api
            .get(&format!("/datos_xxl/{id}/synthetic/{offset}/100"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        joined.extend(serde_json::from_str::<Vec<Value>>(&page.text).unwrap());
    }
    assert_eq!(joined, whole);
    for (i, record) in whole.iter().enumerate() {
        assert_eq!(record["id"], i as u64);
    }
    let past_end = api
        .get(&format!("/api_v1/datos_xxl/{id}/synthetic/5000/10"))
        .await;
    assert_eq!(past_end.text, "[]");
    let listed = api.get("/api_v1/estado_xxl").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["peticion_id"], id.as_str());

    let other = server.as_user("gus");
    assert_eq!(
        other.get(&format!("/api_v1/estado_xxl/{id}")).await.status,
        404
    );
    assert_eq!(
        other
            .get(&format!("/api_v1/datos_xxl/{id}/synthetic"))
            .await
            .status,
        404
    );
    assert_eq!(other.get("/api_v1/estado_xxl").await.json(), json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_anything_is_queued() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let server = server(plugins.path(), "").await;
    let api = server.as_user("ann");
    let cases = [
        (json!({"dataset": "synthetic"}), "non-empty JSON list"),
        (json!([]), "non-empty JSON list"),
        (json!([{"count": 1}]), "names no `dataset`"),
        (json!([{"dataset": "nope"}]), "Unknown data set `nope`"),
        (
            json!([{"dataset": "synthetic"}, {"dataset": "synthetic"}]),
            "requested twice",
        ),
        (
            json!([{"dataset": "synthetic", "count": -5}]),
            "count must be between",
        ),
        (
            json!([{"dataset": "synthetic", "colour": "red"}]),
            "colour unknown parameter",
        ),
        (
            json!([{"dataset": "synthetic", "width": [1]}]),
            "must be a string, number or boolean",
        ),
        (
            json!([{"dataset": "synthetic", "webhook": "ftp://x"}]),
            "http:// or https://",
        ),
    ];
    for (body, expected) in cases {
        let r = api.post("/api_v1/generar_xxl", &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        let message = r.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(api.get("/api_v1/estado_xxl").await.json(), json!([]));
    assert_eq!(
        api.get("/api_v1/estado_xxl/not-a-request").await.status,
        404
    );
    let anonymous = server
        .anonymous()
        .post("/api_v1/generar_xxl", &json!([]))
        .await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.json()["error"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_plugin_fails_alone_while_another_tenant_exports() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    install(plugins.path(), "hostile", env!("PLUGIN_HOSTILE"));
    let server = server(plugins.path(), "").await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let hostile = queue_export(
        &ann,
        json!([{"dataset": "loop"}, {"dataset": "bomb"}, {"dataset": "trap"}]),
    )
    .await;
    let fine = queue_export(&gus, json!([{"dataset": "synthetic", "count": 5000}])).await;
    let fine = settled_export(&gus, &fine).await;
    assert_eq!(fine["estado"], "OK", "{fine}");
    assert_eq!(fine["datasets"][0]["numero_registros"], 5000);
    let failed = settled_export(&ann, &hostile).await;
    assert_eq!(failed["estado"], "ERROR");
    let messages: Vec<&str> = failed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["error_message"].as_str().unwrap())
        .collect();
    assert!(messages[0].contains("time limit"), "{messages:?}");
    assert!(messages[1].contains("memory limit"), "{messages:?}");
    assert!(
        messages[2].contains("this plugin always panics"),
        "{messages:?}"
    );
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .starts_with("loop: ")
    );
    assert_eq!(
        ann.get(&format!("/api_v1/datos_xxl/{hostile}/loop"))
            .await
            .status,
        409,
        "a failed data set has no records"
    );
    server.stop().await;
}

/// Runs one data set of the `hostile` plugin as `api` and answers its final state and records.
async fn probe(api: &Api, dataset: &str, param: &str, value: &str) -> (Value, Vec<Value>) {
    let id = queue_export(api, json!([{"dataset": dataset, param: value}])).await;
    let state = settled_export(api, &id).await;
    let records = if state["estado"] == "OK" {
        api.get(&format!("/api_v1/datos_xxl/{id}/{dataset}"))
            .await
            .json()
            .as_array()
            .unwrap()
            .clone()
    } else {
        Vec::new()
    };
    (state, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operators_grant_opens_files_and_addresses_to_its_plugin() {
    let plugins = tempfile::tempdir().unwrap();
    let granted = tempfile::tempdir().unwrap();
    let prices = granted.path().join("prices.csv");
    std::fs::write(&prices, "A1;9.95").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret.txt");
    std::fs::write(&secret, "not for plugins").unwrap();
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_addr = allowed.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let (mut socket, _) = allowed.accept().await.unwrap();
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut text)
            .await
            .unwrap();
        text
    });
    let refused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    install(plugins.path(), "hostile", env!("PLUGIN_HOSTILE"));
    let own = plugins.path().join("tenants/globex");
    std::fs::create_dir_all(&own).unwrap();
    install(&own, "hostile", env!("PLUGIN_HOSTILE"));
    let server = server(
        plugins.path(),
        &format!(
            "[plugins.grants.hostile]\nread_dirs = [\"{}\"]\nconnect = [\"{allowed_addr}\"]\n",
            granted.path().display()
        ),
    )
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));

    let (state, records) = probe(&ann, "read-file", "path", prices.to_str().unwrap()).await;
    assert_eq!(state["estado"], "OK", "{state}");
    assert_eq!(records, [json!({"content": "A1;9.95"})]);
    let (state, _) = probe(&ann, "read-file", "path", secret.to_str().unwrap()).await;
    assert_eq!(
        state["estado"], "ERROR",
        "a file outside the grant stays closed"
    );
    assert!(
        state["error_message"].as_str().unwrap().contains("denied"),
        "{state}"
    );

    let (state, records) = probe(&ann, "connect", "address", &allowed_addr.to_string()).await;
    assert_eq!(state["estado"], "OK", "{state}");
    assert_eq!(records, [json!({"connected": true})]);
    assert_eq!(received.await.unwrap(), "hello from a plugin");
    let other = refused.local_addr().unwrap().to_string();
    let (state, _) = probe(&ann, "connect", "address", &other).await;
    assert_eq!(
        state["estado"], "ERROR",
        "an address outside the grant stays closed"
    );

    let (state, _) = probe(&gus, "read-file", "path", prices.to_str().unwrap()).await;
    assert_eq!(
        state["estado"], "ERROR",
        "a tenant's extension gets no grant, even under the granted name"
    );
    let (state, _) = probe(&gus, "connect", "address", &allowed_addr.to_string()).await;
    assert_eq!(state["estado"], "ERROR", "{state}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_dropped_into_the_directory_are_offered_without_a_restart() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "[exports]\nworkers = 1\n").await;
    let api = server.as_user("ann");
    let refused = api
        .post("/api_v1/generar_xxl", &json!([{"dataset": "synthetic"}]))
        .await;
    assert_eq!(refused.status, 422);
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let started = Instant::now();
    let id = loop {
        let r = api
            .post(
                "/api_v1/generar_xxl",
                &json!([{"dataset": "synthetic", "count": 10}]),
            )
            .await;
        if r.status == 200 {
            break r.json()["peticion_id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not offered: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(settled_export(&api, &id).await["estado"], "OK");

    std::fs::create_dir_all(plugins.path().join("tenants/globex")).unwrap();
    install(
        &plugins.path().join("tenants/globex"),
        "mine",
        env!("PLUGIN_HOSTILE"),
    );
    let gus = server.as_user("gus");
    let started = Instant::now();
    while gus
        .post("/api_v1/generar_xxl", &json!([{"dataset": "loop"}]))
        .await
        .status
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = gus
        .post("/api_v1/generar_xxl", &json!([{"dataset": "synthetic"}]))
        .await
        .json();
    let queued_id = queued["peticion_id"].as_str().unwrap();
    let cancelled = gus
        .send("DELETE", &format!("/api_v1/estado_xxl/{queued_id}"), None)
        .await
        .json();
    assert_eq!(cancelled["estado"], "ERROR");
    assert_eq!(cancelled["datasets"][0]["error_message"], "cancelled");
    assert_eq!(
        api.post("/api_v1/generar_xxl", &json!([{"dataset": "loop"}]))
            .await
            .status,
        422,
        "another tenant's extension is not offered to acme"
    );
    std::fs::remove_file(plugins.path().join("synthetic.wasm")).unwrap();
    let started = Instant::now();
    while api
        .post("/api_v1/generar_xxl", &json!([{"dataset": "synthetic"}]))
        .await
        .status
        != 422
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still offered after removal"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_the_final_state_signed_and_retried() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let hook = receiver(vec![500]).await;
    let server = server(
        plugins.path(),
        &format!("[webhooks]\nallow_private = true\nretry_base_ms = 100\nsecret = \"{SECRET}\"\n"),
    )
    .await;
    let api = server.as_user("ann");
    let id = queue_export(
        &api,
        json!([{"dataset": "synthetic", "count": 20, "webhook": hook.url}]),
    )
    .await;
    hook.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "delivered once it succeeded, not again");
    let state: Value = serde_json::from_str(&received[1].body).unwrap();
    assert_eq!(state["peticion_id"], id.as_str());
    assert_eq!(state["estado"], "OK");
    assert_eq!(state["datasets"][0]["numero_registros"], 20);
    assert_eq!(received[1].id(), received[0].id(), "a retry keeps its id");
    received[1].assert_signed();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_never_reach_private_addresses_unless_allowed() {
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let hook = receiver(vec![]).await;
    let server = server(
        plugins.path(),
        "[webhooks]\nretry_base_ms = 100\nmax_attempts = 3\n",
    )
    .await;
    let api = server.as_user("ann");
    let id = queue_export(
        &api,
        json!([{"dataset": "synthetic", "count": 5, "webhook": hook.url}]),
    )
    .await;
    assert_eq!(settled_export(&api, &id).await["estado"], "OK");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        hook.received.lock().unwrap().is_empty(),
        "loopback was reached"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_come_as_json_lines_gzip_and_byte_ranges() {
    use std::io::Read;
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let server = server(plugins.path(), "").await;
    let api = server.as_user("ann");
    let id = queue_export(
        &api,
        json!([{"dataset": "synthetic", "count": 300, "width": 80}]),
    )
    .await;
    assert_eq!(settled_export(&api, &id).await["estado"], "OK");
    let url = format!("{}/api_v1/datos_xxl/{id}/synthetic", server.base);

    let whole = fetch(&api, &url, &[]).await;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let length: usize = whole.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let whole = whole.bytes().await.unwrap().to_vec();
    assert_eq!(whole.len(), length);
    let records: Vec<Value> = serde_json::from_slice(&whole).unwrap();
    assert_eq!(records.len(), 300);

    let lines = fetch(&api, &url, &[("accept", "application/x-ndjson")]).await;
    assert_eq!(lines.headers()["content-type"], "application/x-ndjson");
    let lines = lines.text().await.unwrap();
    let parsed: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, records);

    let zipped = fetch(&api, &url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap().to_vec();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, whole);

    let part = fetch(
        &api,
        &url,
        &[("range", "bytes=100-199"), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", zipped.len()).as_str(),
        "a range of the gzip form is a range of its bytes"
    );
    assert_eq!(part.headers()["content-encoding"], "gzip");
    assert_eq!(part.bytes().await.unwrap(), zipped[100..200]);
    let part = fetch(&api, &url, &[("range", "bytes=100-199")]).await;
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{length}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), whole[100..200]);
    let resumed = fetch(&api, &url, &[("range", "bytes=1000-")]).await;
    assert_eq!(resumed.bytes().await.unwrap(), whole[1000..]);
    let tail = fetch(&api, &url, &[("range", "bytes=-7")]).await;
    assert_eq!(tail.bytes().await.unwrap(), whole[length - 7..]);
    let beyond = fetch(&api, &url, &[("range", &format!("bytes={length}-"))]).await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{length}").as_str()
    );

    let page = api
        .client
        .get(format!("{url}/10/5"))
        .basic_auth("ann", Some("ann-pw"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page: Vec<Value> = page
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(page, records[10..15]);
    server.stop().await;
}

/// `GET url` as ann with `headers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gzip_form_of_each_layout_and_page_holds_the_plain_bytes_across_chunks() {
    use std::io::Read;
    let gunzip = |body: &[u8]| {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .expect("one valid gzip member");
        plain
    };
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let server = server(plugins.path(), "").await;
    let api = server.as_user("ann");
    // Results are stored in chunks of 1,000 records: three here, the last one short.
    let id = queue_export(
        &api,
        json!([{"dataset": "synthetic", "count": 2500, "width": 120}]),
    )
    .await;
    assert_eq!(settled_export(&api, &id).await["estado"], "OK");
    let url = format!("{}/api_v1/datos_xxl/{id}/synthetic", server.base);
    for accept in ["application/json", "application/x-ndjson"] {
        let plain = fetch(&api, &url, &[("accept", accept)]).await;
        let plain = plain.bytes().await.unwrap();
        let zipped = fetch(
            &api,
            &url,
            &[("accept", accept), ("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        let zipped = zipped.bytes().await.unwrap();
        assert!(gunzip(&zipped) == plain, "{accept}: the whole gzip form");
        assert!(zipped.len() < plain.len(), "{accept}: compressed");
        let ranged = fetch(
            &api,
            &url,
            &[
                ("accept", accept),
                ("accept-encoding", "gzip"),
                ("range", "bytes=0-"),
            ],
        )
        .await;
        assert_eq!(
            ranged.headers()["content-range"],
            format!("bytes 0-{}/{}", zipped.len() - 1, zipped.len()).as_str(),
            "{accept}: the size of the gzip form is known exactly before it is read"
        );
        assert!(ranged.bytes().await.unwrap() == zipped);

        for (offset, limit) in [
            (0, 1000),
            (500, 1000),
            (999, 1002),
            (1000, 2000),
            (2400, 500),
            (2500, 10),
            (10, 0),
        ] {
            let page = format!("{url}/{offset}/{limit}");
            let plain = fetch(&api, &page, &[("accept", accept)]).await;
            let plain = plain.bytes().await.unwrap();
            let zipped = fetch(
                &api,
                &page,
                &[("accept", accept), ("accept-encoding", "gzip")],
            )
            .await
            .bytes()
            .await
            .unwrap();
            assert!(
                gunzip(&zipped) == plain,
                "{accept}: the gzip form of records {offset} to {}",
                offset + limit
            );
        }
    }
    server.stop().await;
}

async fn fetch(api: &Api, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = api.client.get(url).basic_auth("ann", Some("ann-pw"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

async fn put_component(api: &Api, path: &str, bytes: Vec<u8>) -> bulkhost_tests::Reply {
    api.send_raw("PUT", path, "application/wasm", bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_upload_their_own_extensions_and_operators_shared_ones() {
    let plugins = tempfile::tempdir().unwrap();
    // The SHA-256 of the operator token "operator-secret".
    let server = server(
        plugins.path(),
        "[admin]\ntoken_sha256 = [\"ec585b7be286a5088d8687af4ce027f389cd098e2bb0dee876d5521fa4468f59\"]\n",
    )
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let hostile = std::fs::read(env!("PLUGIN_HOSTILE")).unwrap();
    let synthetic = std::fs::read(env!("PLUGIN_SYNTHETIC")).unwrap();

    let uploaded = put_component(&ann, "/api_v1/plugins/mine", hostile.clone()).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let uploaded = uploaded.json();
    assert_eq!(uploaded["name"], "mine");
    assert_eq!(uploaded["sha256"].as_str().unwrap().len(), 64);
    assert!(
        !plugins.path().join("tenants/acme/mine.wasm").exists(),
        "an upload is kept in the store, not among the operator's files"
    );
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["dataset"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(ann.get("/api_v1/datasets").await.json()).contains(&"loop".to_string()));
    assert!(names(gus.get("/api_v1/datasets").await.json()).is_empty());
    assert_eq!(ann.get("/api_v1/plugins").await.json()[0]["name"], "mine");
    assert_eq!(gus.get("/api_v1/plugins").await.json(), json!([]));

    for (name, bytes, expected) in [
        (
            "junk",
            b"not wasm".to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "old",
            std::fs::read(env!("PLUGIN_WRONG_CONTRACT")).unwrap(),
            "does not match the bulkhost:plugin@0.1.0 contract",
        ),
        ("bad%20name", synthetic.clone(), "plugin names use"),
        ("again", hostile.clone(), "is provided twice"),
    ] {
        let r = put_component(&ann, &format!("/api_v1/plugins/{name}"), bytes).await;
        assert_eq!(r.status, 422, "{name}: {}", r.text);
        assert!(
            r.json()["error"].as_str().unwrap().contains(expected),
            "{name}: {}",
            r.text
        );
    }
    assert_eq!(
        ann.send("DELETE", "/api_v1/plugins/mine", None)
            .await
            .status,
        204
    );
    assert!(names(ann.get("/api_v1/datasets").await.json()).is_empty());
    assert_eq!(
        ann.send("DELETE", "/api_v1/plugins/mine", None)
            .await
            .status,
        404
    );

    let operator = server.anonymous().with_auth(Auth::Header(
        "Authorization".into(),
        "Bearer operator-secret".into(),
    ));
    let stranger = server
        .anonymous()
        .with_auth(Auth::Header("Authorization".into(), "Bearer guess".into()));
    assert_eq!(
        put_component(&stranger, "/admin/plugins/synthetic", synthetic.clone())
            .await
            .status,
        401
    );
    assert_eq!(
        put_component(&ann, "/admin/plugins/synthetic", synthetic.clone())
            .await
            .status,
        401
    );
    let shared = put_component(&operator, "/admin/plugins/synthetic", synthetic.clone()).await;
    assert_eq!(shared.status, 201, "{}", shared.text);
    assert_eq!(shared.json()["datasets"][0]["dataset"], "synthetic");
    assert_eq!(shared.json()["datasets"][0]["params"][0]["name"], "count");
    for tenant in [&ann, &gus] {
        assert_eq!(
            names(tenant.get("/api_v1/datasets").await.json()),
            ["synthetic"]
        );
    }
    assert_eq!(
        operator.get("/admin/plugins").await.json()[0]["name"],
        "synthetic"
    );
    assert_eq!(
        operator
            .send("DELETE", "/admin/plugins/synthetic", None)
            .await
            .status,
        204
    );
    assert!(names(gus.get("/api_v1/datasets").await.json()).is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_follow_rfc_9110_and_a_resumed_gzip_download_continues_the_same_bytes() {
    use std::io::Read;
    let plugins = tempfile::tempdir().unwrap();
    install(plugins.path(), "synthetic", env!("PLUGIN_SYNTHETIC"));
    let server = server(plugins.path(), "").await;
    let api = server.as_user("ann");
    let id = queue_export(
        &api,
        json!([{"dataset": "synthetic", "count": 3000, "width": 300}]),
    )
    .await;
    assert_eq!(settled_export(&api, &id).await["estado"], "OK");
    let url = format!("{}/api_v1/datos_xxl/{id}/synthetic", server.base);
    let whole = fetch(&api, &url, &[]).await;
    let etag = whole.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    let whole = whole.bytes().await.unwrap();

    for ignored in ["bytes=0-9,20-29", "items=0-9", "bytes=9-1", "bytes=x-"] {
        let r = fetch(&api, &url, &[("range", ignored)]).await;
        assert_eq!(r.status(), 200, "{ignored} is ignored");
        assert_eq!(r.bytes().await.unwrap(), whole, "{ignored}: the whole body");
    }
    let matching = fetch(&api, &url, &[("range", "bytes=10-19"), ("if-range", &etag)]).await;
    assert_eq!(matching.status(), 206);
    assert_eq!(matching.headers()["etag"], etag.as_str());
    assert_eq!(matching.bytes().await.unwrap(), whole[10..20]);
    for stale in [
        "\"another\"",
        &format!("W/{etag}"),
        "Tue, 01 Dec 2026 10:00:00 GMT",
    ] {
        let r = fetch(&api, &url, &[("range", "bytes=10-19"), ("if-range", stale)]).await;
        assert_eq!(r.status(), 200, "If-Range {stale} does not match");
        assert_eq!(r.bytes().await.unwrap(), whole);
    }

    let zipped = fetch(&api, &url, &[("accept-encoding", "gzip")]).await;
    let zipped_tag = zipped.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(zipped_tag, etag, "each representation has its own tag");
    let zipped = zipped.bytes().await.unwrap();
    let again = fetch(&api, &url, &[("accept-encoding", "gzip")])
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        zipped, again,
        "the gzip form is the same bytes on every request"
    );
    let cut = zipped.len() / 3;
    let resumed = fetch(
        &api,
        &url,
        &[
            ("accept-encoding", "gzip"),
            ("range", &format!("bytes={cut}-")),
            ("if-range", &zipped_tag),
        ],
    )
    .await;
    assert_eq!(resumed.status(), 206);
    let mut spliced = zipped[..cut].to_vec();
    spliced.extend_from_slice(&resumed.bytes().await.unwrap());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&spliced[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(
        unzipped, whole,
        "the resumed download spliced into the same stream"
    );
    let mismatched = fetch(
        &api,
        &url,
        &[
            ("accept-encoding", "gzip"),
            ("range", &format!("bytes={cut}-")),
            ("if-range", &etag),
        ],
    )
    .await;
    assert_eq!(
        mismatched.status(),
        200,
        "the identity tag does not resume the gzip form"
    );
    server.stop().await;
}
