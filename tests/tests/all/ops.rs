//! Operator endpoints and the OpenAPI document.

use bulkhost_server::openapi::ROUTES;
use bulkhost_tests::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_without_credentials() {
    let server = TestServer::start().await;
    let anonymous = server.anonymous();
    let health = anonymous.get("/healthz").await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    server.as_user("ann").get("/api/v1/shops/").await;
    let metrics = anonymous.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains("bulkhost_http_requests_total{method=\"GET\",route=\"/api/v1/{*path}\",status=\"200\"} 1"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("bulkhost_http_request_duration_seconds_bucket")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let server = TestServer::start().await;
    let anonymous = server.anonymous();
    for i in 0..40 {
        anonymous.send(&format!("BREW{i}"), "/healthz", None).await;
        anonymous.get(&format!("/nowhere/{i}")).await;
    }
    let metrics = anonymous.get("/metrics").await.text;
    assert!(!metrics.contains("BREW"), "{metrics}");
    assert!(!metrics.contains("/nowhere/"), "{metrics}");
    assert!(
        metrics.contains("method=\"OTHER\",route=\"/healthz\""),
        "{metrics}"
    );
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("bulkhost_http_requests_total{"))
        .count();
    assert!(series <= 3, "{series} series: {metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
        .await;
    let doc = server.anonymous().get("/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for route in ROUTES.iter().filter(|r| !r.per_collection()) {
        assert!(
            paths.contains_key(route.path),
            "{} is documented",
            route.path
        );
    }
    assert!(
        paths.contains_key("/api/v1/shops/"),
        "each collection has its paths"
    );
    for (template, operations) in paths {
        let path = template
            .replace("{firma}", "acme")
            .replace("{id}", "code:1")
            .replace("{dataset}", "synthetic")
            .replace("{offset}", "0")
            .replace("{limit}", "10")
            .replace("{name}", "x");
        for method in operations.as_object().expect("operations").keys() {
            let name = method.to_uppercase();
            if path.ends_with("/changes/stream") {
                // An event stream never ends: its head answers whether it is served.
                let head = ann
                    .client
                    .get(format!("{}{path}", ann.base))
                    .basic_auth("ann", Some("ann-pw"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(head.status(), 200, "GET {path}");
                continue;
            }
            let r = ann.send(&name, &path, None).await;
            ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
                .await;
            let unrouted = (r.status == 404 && r.text.is_empty()) || r.status == 405;
            assert!(
                !unrouted && r.status < 500,
                "{name} {path} answered {}: {}",
                r.status,
                r.text
            );
        }
    }
    server.stop().await;
}
