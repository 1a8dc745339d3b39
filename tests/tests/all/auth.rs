//! Credentials and tenancy: Basic, bearer and Winfra XXL tokens each resolve to one tenant, and
//! no tenant can read, list, count or change another's data.

use bulkhost_tests::{Auth, TestServer, seed_references, stock_doc};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_wrong_and_missing_credentials_are_refused_alike() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    assert_eq!(ann.get("/api/v1/shops/").await.status, 200);

    let wrong = ann.with_auth(Auth::Basic("ann".into(), "nope".into()));
    let unknown = ann.with_auth(Auth::Basic("nobody".into(), "ann-pw".into()));
    let bad_token = ann.with_auth(Auth::Header("WINFRA-API-TOKEN".into(), "abc.def".into()));
    let bad_bearer = ann.with_auth(Auth::Header(
        "Authorization".into(),
        "Bearer abc.def".into(),
    ));
    let mut bodies = Vec::new();
    for api in [&wrong, &unknown, &bad_token, &bad_bearer] {
        let r = api.get("/api/v1/shops/").await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(r.header("www-authenticate").is_some());
        bodies.push(r.text);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let missing = server.anonymous().get("/api/v1/shops/").await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.json(),
        json!({"detail": "Authentication credentials were not provided."})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_winfra_xxl_token_flow_issues_tokens_accepted_as_header_and_bearer() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let r = ann
        .post("/api_token/", &json!({"domain": "acme", "api": "xxl"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["WINFRA-API-TOKEN"]
        .as_str()
        .expect("token")
        .to_string();

    let by_header = server
        .anonymous()
        .with_auth(Auth::Header("WINFRA-API-TOKEN".into(), token.clone()));
    assert_eq!(by_header.get("/api/v1/shops/").await.status, 200);
    let by_bearer = server.anonymous().with_auth(Auth::Header(
        "Authorization".into(),
        format!("Bearer {token}"),
    ));
    assert_eq!(
        by_bearer.get("/c/acme/changes/status.json").await.status,
        200
    );
    assert_eq!(
        by_bearer.get("/c/globex/changes/status.json").await.status,
        403
    );

    let wrong_domain = ann
        .post("/api_token/", &json!({"domain": "globex", "api": "xxl"}))
        .await;
    assert_eq!(wrong_domain.status, 401);
    assert!(wrong_domain.json()["error"].is_string());
    let bad_body = ann.post("/api_token/", &json!({"api": "xxl"})).await;
    assert_eq!(bad_body.status, 422);
    assert!(bad_body.json()["error"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_get_the_same_401_as_forged_ones() {
    let server = TestServer::start_with("token_ttl_secs = 0").await;
    let ann = server.as_user("ann");
    let r = ann
        .post("/api_token/", &json!({"domain": "acme", "api": "xxl"}))
        .await;
    let token = r.json()["WINFRA-API-TOKEN"].as_str().unwrap().to_string();
    let expired = server
        .anonymous()
        .with_auth(Auth::Header("WINFRA-API-TOKEN".into(), token));
    let forged = server
        .anonymous()
        .with_auth(Auth::Header("WINFRA-API-TOKEN".into(), "x.y".into()));
    let a = expired.get("/api/v1/shops/").await;
    let b = forged.get("/api/v1/shops/").await;
    assert_eq!((a.status, &a.text), (401, &b.text));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_read_list_count_or_change_each_others_data() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let gus = server.as_user("gus");
    seed_references(&ann).await;
    let r = ann
        .post("/api/v1/stock-taking-documents/", &stock_doc("D1", "1", 5))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let listed = gus.get("/api/v1/stock-taking-documents/").await.json();
    assert_eq!(listed["count"], 0);
    assert_eq!(listed["results"], json!([]));
    assert_eq!(
        gus.get("/api/v1/stock-taking-documents/1/").await.status,
        404
    );
    assert_eq!(gus.get("/api/v1/shops/code:1/").await.status, 404);
    assert_eq!(
        gus.send("DELETE", "/api/v1/stock-taking-documents/1/", None)
            .await
            .status,
        404
    );
    // globex has no shop 1, so its copy of the document is refused by the reference check.
    let write = gus
        .post("/api/v1/stock-taking-documents/", &stock_doc("D1", "1", 9))
        .await;
    assert_eq!(write.status, 400, "{}", write.text);

    for path in [
        "/c/acme/changes.json",
        "/c/acme/changes.xml",
        "/c/acme/shops.json",
        "/c/acme/shops/1.json",
        "/c/acme/changes/status.json",
    ] {
        let r = gus.get(path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(!r.text.contains("Shop 1") && !r.text.contains("in-version"));
    }
    assert_eq!(
        gus.send("PUT", "/c/acme/changes/disable.json", None)
            .await
            .status,
        403
    );
    assert_eq!(
        ann.get("/c/acme/changes/status.json").await.json()["winstrom"]["success"],
        "true"
    );

    let mine = ann.get("/api/v1/stock-taking-documents/1/").await.json();
    assert_eq!(mine["products"][0]["fact_qty"], "5.0000");
    server.stop().await;
}
