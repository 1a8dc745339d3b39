//! Seed 003: the batch surface, its limits, and plugin endpoints called one by one.

use std::path::Path;
use std::time::Duration;

use bulkhost_tests::{Api, TestServer, all_changes};
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

/// Sends `operations` as one batch and answers its uuid.
async fn submit(api: &Api, operations: Value) -> String {
    let created = api
        .post("/v1/batch", &json!({"batch": {"operations": operations}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json()["uuid"].as_str().unwrap().to_string()
}

/// Polls the batch until it has finished; answers its last status.
async fn finished(api: &Api, uuid: &str) -> Value {
    for _ in 0..600 {
        let status = api.get(&format!("/v1/batch/{uuid}")).await;
        assert_eq!(status.status, 200, "{}", status.text);
        let status = status.json();
        if status["status"] == "finished" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {uuid} did not finish in 30 s");
}

fn op(id: &str, method: &str, endpoint: &str, body: Option<Value>) -> Value {
    json!({
        "operationId": id,
        "method": method,
        "endpoint": endpoint,
        "body": body.map(|b| b.to_string()),
    })
}

fn product(name: &str) -> Value {
    json!({"name": name, "barcode": "4006381333931", "price": 2.5})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_built_in_and_plugin_operations_in_order_and_reports_each() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "").await;
    let ann = server.as_user("ann");
    let uuid = submit(
        &ann,
        json!([
            op("put-p1", "PUT", "/v1/products/P1", Some(product("Coffee"))),
            op(
                "post-p2",
                "post",
                "/api/v1/products/",
                Some(json!({"product_id": "P2", "name": "Tea"}))
            ),
            op(
                "bad-p3",
                "PUT",
                "/v1/products/P3",
                Some(json!({"name": "X", "barcode": "1"}))
            ),
            op("get-p1", "GET", "/v1/products/P1", None),
            op("page", "GET", "/v1/products?page=1&perPage=10", None),
            op("del-p2", "DELETE", "/api/v1/products/code:P2/", None),
            op(
                "changes",
                "GET",
                "/c/acme/changes.json?start=1&limit=100",
                None
            ),
        ]),
    )
    .await;
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid, uuid.to_uppercase(), "seed 003 shows upper-case uuids");
    let status = finished(&ann, &uuid).await;
    assert_eq!(status["uuid"], uuid.as_str());
    assert_eq!(status["operations"], 7);
    for field in ["createdAt", "processedAt", "updatingAt", "completedAt"] {
        let at = status[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {status}"));
        assert!(
            chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
            "{field} = {at}"
        );
    }
    assert!(status.get("webhook").is_none(), "no webhook was asked for");
    let responses = status["responses"].as_array().unwrap();
    let ids: Vec<&str> = responses
        .iter()
        .map(|r| r["operationId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "put-p1", "post-p2", "bad-p3", "get-p1", "page", "del-p2", "changes"
        ]
    );
    let codes: Vec<u64> = responses
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [201, 201, 422, 200, 200, 204, 200], "{status}");
    let first = &responses[0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "body",
            "completedAt",
            "endpoint",
            "method",
            "operationId",
            "status",
            "statusCode",
            "statusText",
            "uuid"
        ]
    );
    assert_eq!(first["status"], "finished");
    assert_eq!(first["method"], "PUT");
    assert_eq!(first["endpoint"], "/v1/products/P1");
    assert_eq!(first["statusText"], "Created");
    let body: Value = serde_json::from_str(responses[3]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["name"], "Coffee", "operations see earlier writes");
    let refused: Value = serde_json::from_str(responses[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(refused["error"]["code"], "INVALID_PRODUCT");
    let page: Value = serde_json::from_str(responses[4]["body"].as_str().unwrap()).unwrap();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");

    let changes = all_changes(&ann, "acme", 1, 100).await;
    let products: Vec<(String, String)> = changes
        .iter()
        .filter(|c| c["@evidence"] == "products")
        .map(|c| {
            (
                c["@operation"].as_str().unwrap().to_string(),
                c["external-ids"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        products,
        [
            ("create".to_string(), "code:P1".to_string()),
            ("create".to_string(), "code:P2".to_string()),
            ("delete".to_string(), "code:P2".to_string()),
        ],
        "{changes:?}"
    );

    let gus = server.as_user("gus");
    let foreign = gus.get(&format!("/v1/batch/{uuid}")).await;
    assert_eq!(foreign.status, 404, "another tenant's batch is not found");
    assert_eq!(foreign.json()["error"]["code"], "NOT_FOUND");
    server.stop().await;
}
