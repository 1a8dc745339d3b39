//! The operator's overview of tenants over HTTP: usage beside each tenant's own quotas, work by
//! state, a tenant's own plugins and its failures, each tenant apart; only with a token.

use bulkhost_tests::{Api, Auth, TestServer, eventually, plugins_with, queue_export};
use serde_json::{Value, json};
use std::time::Duration;

/// The SHA-256 of the operator token "operator-secret".
const OPERATOR_DIGEST: &str = "ec585b7be286a5088d8687af4ce027f389cd098e2bb0dee876d5521fa4468f59";

fn bearer(server: &TestServer, token: &str) -> Api {
    server.anonymous().with_auth(Auth::Header(
        "Authorization".into(),
        format!("Bearer {token}"),
    ))
}

fn tenant<'a>(listing: &'a Value, name: &str) -> &'a Value {
    listing
        .as_array()
        .expect("a list of tenants")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed: {listing}"))
}

fn usage<'a>(tenant: &'a Value, counter: &str) -> &'a Value {
    tenant["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["counter"] == counter)
        .unwrap_or_else(|| panic!("{counter} is listed: {tenant}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_each_tenants_usage_work_plugins_and_failures() {
    let plugins = plugins_with(&[("hostile.wasm", env!("PLUGIN_HOSTILE"))]);
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\n[admin]\ntoken_sha256 = [\"{OPERATOR_DIGEST}\"]\n\
         [webhooks]\nallow_private = true\nretry_base_ms = 100\nmax_attempts = 2\n\
         [[tenants]]\nname = \"initech\"\n[tenants.quotas]\ndocument_mib = 2\nunfinished_exports = 3\n\
         [[tenants.users]]\nname = \"ina\"\npassword = \"ina-pw\"\n",
        plugins.path().display()
    ))
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let operator = bearer(&server, "operator-secret");

    for refused in [bearer(&server, "guess"), ann.clone(), server.anonymous()] {
        let r = refused.get("/admin/tenants").await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.json()["error"], "An operator token is required.");
    }

    let before = operator.get("/admin/tenants").await;
    assert_eq!(before.status, 200, "{}", before.text);
    let before = before.json();
    let names: Vec<&str> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // The test server declares its own tenants after the configuration it is given.
    assert_eq!(names, ["initech", "acme", "globex"], "configuration order");
    assert_eq!(usage(tenant(&before, "acme"), "documents")["used"], 0);

    let posted = ann
        .post(
            "/api/v1/products/",
            &json!([{"product_id": "P1", "name": "Anvil"}, {"product_id": "P2", "name": "Rope"}]),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.text);
    let trap = queue_export(&ann, json!([{"dataset": "trap"}])).await;
    let hook = ann
        .send(
            "PUT",
            "/c/acme/hooks.json?url=http%3A%2F%2F127.0.0.1%3A9%2Fgone&format=JSON&skipUrlTest=true",
            None,
        )
        .await;
    assert_eq!(hook.status, 200, "{}", hook.text);
    let hook_id = hook.json()["winstrom"]["hooks"][0]["id"].clone();
    let uploaded = gus
        .send_raw(
            "PUT",
            "/api_v1/plugins/mine",
            "application/wasm",
            std::fs::read(env!("PLUGIN_SYNTHETIC")).unwrap(),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let batch = gus
        .post(
            "/v1/batch",
            &json!({"batch": {"operations": [
                {"operationId": "list", "method": "GET", "endpoint": "/api/v1/products/"}
            ]}}),
        )
        .await;
    assert_eq!(batch.status, 201, "{}", batch.text);
    // A change after the registration gives the hook something to fail to deliver.
    let more = ann
        .post(
            "/api/v1/products/",
            &json!({"product_id": "P3", "name": "Glue"}),
        )
        .await;
    assert_eq!(more.status, 201, "{}", more.text);

    let listing = eventually(Duration::from_secs(20), async || {
        let listing = operator.get("/admin/tenants").await.json();
        let (acme, globex) = (tenant(&listing, "acme"), tenant(&listing, "globex"));
        (acme["export_runs"]["failed"] == 1
            && acme["hooks"]["paused"] == 1
            && globex["batches"]["finished"] == 1)
            .then_some(listing)
    })
    .await;

    let acme = tenant(&listing, "acme");
    assert_eq!(acme["users"], 1);
    assert_eq!(acme["changes_enabled"], true);
    assert_eq!(acme["version"], 3, "{acme}");
    let documents = usage(acme, "documents");
    assert!(documents["used"].as_u64().unwrap() > 0, "{acme}");
    assert_eq!(documents["limit"], 10u64 << 30, "the deployment's quota");
    assert_eq!(usage(acme, "unfinished-exports")["used"], 0, "{acme}");
    assert_eq!(
        acme["export_runs"],
        json!({"queued": 0, "running": 0, "done": 0, "failed": 1, "cancelled": 0})
    );
    assert_eq!(
        acme["hooks"],
        json!({"total": 1, "failing": 1, "paused": 1})
    );
    assert_eq!(acme["plugins"], json!([]));
    let failures = acme["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{acme}");
    assert_eq!(failures[0]["kind"], "export");
    assert_eq!(failures[0]["id"], trap.as_str());
    assert_eq!(failures[0]["subject"], "trap");
    assert!(
        failures[0]["error"].as_str().unwrap().contains("panic"),
        "{acme}"
    );
    assert!(failures[0]["at"].is_string(), "{acme}");
    assert_eq!(failures[1]["kind"], "hook");
    assert_eq!(failures[1]["id"], hook_id);
    assert_eq!(failures[1]["subject"], "http://127.0.0.1:9/gone");
    assert!(failures[1]["at"].is_null());

    let globex = tenant(&listing, "globex");
    assert_eq!(globex["plugins"], json!(["mine"]), "{globex}");
    assert_eq!(
        globex["batches"],
        json!({"pending": 0, "processing": 0, "finished": 1, "failed": 0})
    );
    assert_eq!(
        acme["batches"],
        json!({"pending": 0, "processing": 0, "finished": 0, "failed": 0}),
        "a batch counts for its own tenant alone"
    );
    assert_eq!(
        globex["failures"],
        json!([]),
        "another tenant's failures stay its own"
    );
    assert_eq!(usage(globex, "documents")["used"], 0);
    assert_eq!(globex["version"], 0);

    let initech = tenant(&listing, "initech");
    assert_eq!(
        usage(initech, "documents")["limit"],
        2u64 << 20,
        "its own quota"
    );
    assert_eq!(usage(initech, "unfinished-exports")["limit"], 3);
    assert_eq!(
        usage(initech, "results")["limit"],
        20u64 << 30,
        "the deployment's where it has none"
    );
}
