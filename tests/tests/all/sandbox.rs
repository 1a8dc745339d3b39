//! A tenant's plugins cannot reach past the sandbox over HTTP: names in any encoding stay
//! inside the caller's own plugins, a plugin that waits in WASI ends at its deadline in every
//! call without holding anything up, loading cannot be hung, and uploads are bounded in size,
//! number and compile time while everybody else is served.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhost_tests::{
    Api, Reply, TestServer, components, plugins_with, queue_export, settled_export,
};
use serde_json::{Value, json};

fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("the build script built the plugin")
}

async fn put_component(api: &Api, path: &str, bytes: Vec<u8>) -> Reply {
    api.send_raw("PUT", path, "application/wasm", bytes).await
}

/// The names of the plugins `api` lists at `path`.
async fn plugin_names(api: &Api, path: &str) -> Vec<String> {
    let listed = api.get(path).await.json();
    listed
        .as_array()
        .unwrap_or_else(|| panic!("a listing: {listed}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

async fn server(plugins: &Path, extra: &str) -> TestServer {
    TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\nsync_interval_ms = 200\n{extra}",
        plugins.display()
    ))
    .await
}

/// What a request answers, or a failure once `limit` has passed: a call that would hang is a
/// failed test, not a stuck one.
async fn within<T>(limit: Duration, what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_name_in_any_encoding_names_only_the_callers_own_plugins() {
    let plugins = plugins_with(&[("synthetic.wasm", env!("PLUGIN_SYNTHETIC"))]);
    // The SHA-256 of the operator token "operator-secret".
    let server = server(
        plugins.path(),
        "[admin]\ntoken_sha256 = [\"ec585b7be286a5088d8687af4ce027f389cd098e2bb0dee876d5521fa4468f59\"]\n",
    )
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let hostile = component(env!("PLUGIN_HOSTILE"));
    let mine = put_component(&gus, "/api_v1/plugins/mine", hostile.clone()).await;
    assert_eq!(mine.status, 201, "{}", mine.text);
    let operators = plugins.path().join("synthetic.wasm");
    for name in [
        "..%2F..%2Fsynthetic",
        "..%2F..%2Ftenants%2Fglobex%2Fmine",
        "%2E%2E%2F%2E%2E%2Fsynthetic",
        "..%5C..%5Csynthetic",
        "%252E%252E%252Fsynthetic",
        "synthetic%00",
        "mine%0A",
        "%2E%2E%2F",
    ] {
        let path = format!("/api_v1/plugins/{name}");
        let deleted = ann.send("DELETE", &path, None).await;
        assert_eq!(deleted.status, 422, "DELETE {name}: {}", deleted.text);
        assert!(
            deleted.json()["error"]
                .as_str()
                .unwrap()
                .contains("plugin names use"),
            "{}",
            deleted.text
        );
        let uploaded = put_component(&ann, &path, hostile.clone()).await;
        assert_eq!(uploaded.status, 422, "PUT {name}: {}", uploaded.text);
        let admin = server.anonymous().with_auth(bulkhost_tests::Auth::Header(
            "authorization".into(),
            "Bearer operator-secret".into(),
        ));
        let removed = admin
            .send("DELETE", &format!("/admin/plugins/{name}"), None)
            .await;
        assert_eq!(removed.status, 422, "admin DELETE {name}: {}", removed.text);
        assert!(operators.exists(), "{name} reached the operator's plugin");
        assert_eq!(
            plugin_names(&gus, "/api_v1/plugins").await,
            ["mine"],
            "{name} reached another tenant's plugin"
        );
    }
    let listed = gus.get("/api_v1/datasets").await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["dataset"] == "synthetic"),
        "{listed}"
    );
    assert_eq!(
        ann.send("DELETE", "/api_v1/plugins/mine", None)
            .await
            .status,
        404,
        "a name is only ever the caller's own"
    );
    assert_eq!(plugin_names(&gus, "/api_v1/plugins").await, ["mine"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_waiting_in_wasi_ends_at_its_deadline_while_another_tenant_exports() {
    let plugins = plugins_with(&[("synthetic.wasm", env!("PLUGIN_SYNTHETIC"))]);
    let server = server(
        plugins.path(),
        "deadline_secs = 2\ncall_deadline_secs = 2\n[exports]\nworkers = 2\n",
    )
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let limit = Duration::from_secs(20);
    let uploaded = put_component(
        &ann,
        "/api_v1/plugins/hostile",
        component(env!("PLUGIN_HOSTILE")),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);

    let refused = within(
        limit,
        "a validation that sleeps",
        ann.post(
            "/api_v1/generar_xxl",
            &json!([{"dataset": "sleep-validate"}]),
        ),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("time limit"), "{}", refused.text);

    let sleepers = [
        queue_export(&ann, json!([{"dataset": "sleep"}])).await,
        queue_export(&ann, json!([{"dataset": "sleep"}])).await,
    ];
    let other = queue_export(&gus, json!([{"dataset": "synthetic", "count": 50}])).await;
    assert_eq!(
        settled_export(&gus, &other).await["estado"],
        "OK",
        "another tenant's export finishes though both workers met a sleeper"
    );
    for id in &sleepers {
        let state = settled_export(&ann, id).await;
        assert_eq!(state["estado"], "ERROR", "{state}");
        assert!(
            state["error_message"]
                .as_str()
                .unwrap()
                .contains("time limit"),
            "{state}"
        );
    }

    let sleepy = within(
        limit,
        "an upload whose describe sleeps",
        put_component(
            &ann,
            "/api_v1/plugins/sleepy",
            component(env!("PLUGIN_HOSTILE_DESCRIBE")),
        ),
    )
    .await;
    assert_eq!(sleepy.status, 422, "{}", sleepy.text);
    assert!(
        sleepy.text.contains("describe failed") && sleepy.text.contains("time limit"),
        "{}",
        sleepy.text
    );
    assert_eq!(plugin_names(&ann, "/api_v1/plugins").await, ["hostile"]);

    let endpoints = put_component(
        &ann,
        "/api_v1/plugins/endpoints",
        component(env!("PLUGIN_HOSTILE_ENDPOINTS")),
    )
    .await;
    assert_eq!(endpoints.status, 201, "{}", endpoints.text);
    let slept = within(
        limit,
        "an endpoint that sleeps",
        ann.get("/v1/hostile/sleep"),
    )
    .await;
    assert_eq!(slept.status, 500, "{}", slept.text);
    assert_eq!(slept.json()["error"]["code"], "PLUGIN_FAILED");
    assert!(slept.text.contains("time limit"), "{}", slept.text);
    assert_eq!(gus.get("/api/v1/shops/").await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_does_not_wait_for_a_tenants_plugin_that_hangs_in_describe() {
    let plugins = plugins_with(&[("synthetic.wasm", env!("PLUGIN_SYNTHETIC"))]);
    let own = plugins.path().join("tenants/acme");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::copy(env!("PLUGIN_HOSTILE_DESCRIBE"), own.join("sleepy.wasm")).unwrap();
    std::fs::copy(env!("PLUGIN_HOSTILE"), own.join("hostile.wasm")).unwrap();
    let server = within(
        Duration::from_secs(10),
        "the start",
        server(plugins.path(), "call_deadline_secs = 5\n"),
    )
    .await;
    let gus = server.as_user("gus");
    let offered = gus.get("/api_v1/datasets").await.json();
    assert_eq!(offered[0]["dataset"], "synthetic", "{offered}");
    let ann = server.as_user("ann");
    let started = Instant::now();
    loop {
        let own: Vec<Value> = ann
            .get("/api_v1/datasets")
            .await
            .json()
            .as_array()
            .unwrap()
            .clone();
        if own.iter().any(|d| d["dataset"] == "loop") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the tenant's other plugin loads beside the hanging one"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = ann.get("/api_v1/plugins").await.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hostile"], "the hanging one is not offered");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_bounded_in_size_compile_time_and_number_while_others_are_served() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(
        plugins.path(),
        "tenant_max_upload_mib = 1\nmax_upload_mib = 16\ncompile_timeout_secs = 1\n\
         compile_concurrency = 1\n\
         [admin]\ntoken_sha256 = [\"ec585b7be286a5088d8687af4ce027f389cd098e2bb0dee876d5521fa4468f59\"]\n\
         [quotas]\nplugins = 2\nplugin_mib = 1\n",
    )
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let admin = server.anonymous().with_auth(bulkhost_tests::Auth::Header(
        "authorization".into(),
        "Bearer operator-secret".into(),
    ));
    let synthetic = component(env!("PLUGIN_SYNTHETIC"));

    let large = components::with_padding(&synthetic, 2 << 20, 1);
    let too_large = put_component(&ann, "/api_v1/plugins/large", large.clone()).await;
    assert_eq!(too_large.status, 413, "{}", too_large.text);
    assert!(
        too_large.text.contains("at most 1 MiB"),
        "{}",
        too_large.text
    );
    let operator = put_component(&admin, "/admin/plugins/large", large).await;
    assert_eq!(
        operator.status, 201,
        "the operator's own limit is larger: {}",
        operator.text
    );

    let hostile = component(env!("PLUGIN_HOSTILE"));
    for (name, bytes) in [("one", &synthetic), ("two", &hostile)] {
        let uploaded = put_component(&ann, &format!("/api_v1/plugins/{name}"), bytes.clone()).await;
        assert_eq!(uploaded.status, 201, "{name}: {}", uploaded.text);
    }
    let third = put_component(
        &ann,
        "/api_v1/plugins/three",
        component(env!("PLUGIN_HOSTILE_ENDPOINTS")),
    )
    .await;
    assert_eq!(third.status, 422, "{}", third.text);
    assert!(third.text.contains("may number 2"), "{}", third.text);
    let replaced = put_component(&ann, "/api_v1/plugins/two", hostile).await;
    assert_eq!(
        replaced.status, 201,
        "replacing one takes no more room: {}",
        replaced.text
    );

    let slow = components::with_code(&synthetic, 8_000);
    let upload = {
        let admin = admin.clone();
        tokio::spawn(async move { put_component(&admin, "/admin/plugins/slow", slow).await })
    };
    let mut served = 0;
    while !upload.is_finished() {
        let page = gus.get("/api/v1/shops/").await;
        assert_eq!(page.status, 200, "{}", page.text);
        served += 1;
    }
    let refused = upload.await.unwrap();
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(
        refused.text.contains("could not be compiled within 1s"),
        "{}",
        refused.text
    );
    assert!(served > 0, "other requests were answered while it compiled");
    assert!(
        !plugin_names(&admin, "/admin/plugins")
            .await
            .contains(&"slow".to_string())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_calls_are_capped_per_tenant_and_in_all() {
    let plugins = plugins_with(&[("hostile_endpoints.wasm", env!("PLUGIN_HOSTILE_ENDPOINTS"))]);
    let server = server(
        plugins.path(),
        "call_deadline_secs = 3\ncalls_per_tenant = 1\ncalls_at_once = 2\n\
         [[tenants]]\nname = \"initech\"\n[[tenants.users]]\nname = \"ina\"\npassword = \"ina-pw\"\n",
    )
    .await;
    let sleeping = |user: &str| {
        let api = server.as_user(user);
        tokio::spawn(async move { api.get("/v1/hostile/sleep").await })
    };
    let held = [sleeping("ann"), sleeping("gus")];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let own = server.as_user("ann").get("/v1/hostile/free").await;
    assert_eq!(own.status, 429, "{}", own.text);
    assert!(own.text.contains("1 plugin calls"), "{}", own.text);
    let all = server.as_user("ina").get("/v1/hostile/free").await;
    assert_eq!(all.status, 429, "{}", all.text);
    assert!(
        all.text.contains("the server has as many plugin calls"),
        "{}",
        all.text
    );
    assert_eq!(
        server.as_user("ina").get("/api/v1/shops/").await.status,
        200,
        "everything else is served"
    );
    for call in held {
        assert_eq!(call.await.unwrap().status, 500);
    }
    assert_eq!(
        server.as_user("ina").get("/v1/hostile/free").await.status,
        200
    );
    server.stop().await;
}
