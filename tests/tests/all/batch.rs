//! Seed 003: the batch surface, its limits, and plugin endpoints called one by one.

use std::path::Path;

use bulkhost_tests::{TestServer, all_changes};
use serde_json::{Value, json};

async fn server(plugins: &Path, extra: &str) -> TestServer {
    std::fs::copy(env!("PLUGIN_CATALOG"), plugins.join("catalog.wasm")).unwrap();
    TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\n{extra}",
        plugins.display()
    ))
    .await
}

fn listed<'a>(limits: &'a Value, method: &str, endpoint: &str) -> Option<&'a Value> {
    limits["limits"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == method && e["endpoint"] == endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_list_built_in_and_plugin_endpoints_with_their_scores() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(
        plugins.path(),
        "[batches]\nmax_load_score = 60\nload_scores = { \"PUT /v1/products/{id}\" = 5 }\n",
    )
    .await;
    let limits = server.as_user("ann").get("/v1/batch/limits").await;
    assert_eq!(limits.status, 200, "{}", limits.text);
    let limits = limits.json();
    assert_eq!(limits["limits"]["maxLoadScore"], 60);
    assert_eq!(
        listed(&limits, "put", "/v1/products/{id}"),
        Some(&json!({"endpoint": "/v1/products/{id}", "loadScore": 5, "method": "put"})),
        "the operator's score replaces the plugin's"
    );
    assert_eq!(
        listed(&limits, "get", "/v1/products").unwrap()["loadScore"],
        1
    );
    assert_eq!(
        listed(&limits, "post", "/api/v1/{collection}/").unwrap()["loadScore"],
        2
    );
    assert_eq!(
        listed(&limits, "get", "/c/{firma}/changes.json").unwrap()["loadScore"],
        1
    );
    assert!(
        listed(&limits, "put", "/admin/plugins/{name}").is_none(),
        "operator routes are not batchable"
    );
    assert!(listed(&limits, "head", "/api/v1/{collection}/").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_endpoints_answer_direct_calls_and_write_through_the_core() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "").await;
    let ann = server.as_user("ann");
    let put = ann
        .send(
            "PUT",
            "/v1/products/P1",
            Some(&json!({"name": "Coffee", "barcode": "4006381333931", "price": 4.5})),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text);
    assert_eq!(put.json()["name"], "Coffee");
    let stored = ann.get("/api/v1/products/code:P1/").await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json()["name"], "Coffee");
    let changes = all_changes(&ann, "acme", 1, 100).await;
    assert_eq!(changes.last().unwrap()["@evidence"], "products");

    let refused = ann
        .send(
            "PUT",
            "/v1/products/P2",
            Some(&json!({"name": "Tea", "barcode": "12"})),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json()["error"]["code"], "INVALID_PRODUCT");
    assert_eq!(all_changes(&ann, "acme", 1, 100).await.len(), changes.len());

    let missing = ann.get("/v1/nothing/here").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "NOT_FOUND");
    let wrong = ann.send("PATCH", "/v1/products/P1", None).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(server.anonymous().get("/v1/products").await.status, 401);
    server.stop().await;
}
