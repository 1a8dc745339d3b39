//! Each tenant's quotas hold over HTTP: past one, a write is refused in the surface's own error
//! shape and nothing is written; giving room back (a deletion, an expiry) makes room again; a
//! tenant's own quotas replace the deployment's for it alone.

use bulkhost_tests::{Api, TestServer, plugins_with, settled_export};
use serde_json::{Value, json};

async fn global_version(api: &Api) -> u64 {
    api.get("/c/acme/changes.json?limit=0").await.json()["winstrom"]["@globalVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn products(from: usize, n: usize) -> Value {
    (from..from + n)
        .map(|i| json!({"product_id": format!("P{i:05}"), "name": "n".repeat(300)}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_documents_and_attachments_stay_within_their_quotas() {
    let server = TestServer::start_with(
        "[quotas]\ndocument_mib = 1\nattachment_mib = 1\n\
         [[tenants]]\nname = \"initech\"\n[tenants.quotas]\ndocument_mib = 0\n\
         [[tenants.users]]\nname = \"ina\"\npassword = \"ina-pw\"\n",
    )
    .await;
    let ann = server.as_user("ann");
    let mut written = 0;
    let refused = loop {
        let r = ann.post("/api/v1/products/", &products(written, 500)).await;
        if r.status != 201 {
            break r;
        }
        written += 500;
        assert!(written < 10_000, "1 MiB holds no 10 000 such products");
    };
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("quota of 1 MiB of stored documents"),
        "{}",
        refused.text
    );
    let version = global_version(&ann).await;
    let count = ann.get("/api/v1/products/").await.json()["count"].clone();
    assert_eq!(count, written as u64, "the refused list wrote nothing");
    assert_eq!(
        ann.post("/api/v1/products/", &products(written, 500))
            .await
            .status,
        403
    );
    assert_eq!(global_version(&ann).await, version);
    for i in 0..500 {
        let gone = ann
            .send("DELETE", &format!("/api/v1/products/code:P{i:05}/"), None)
            .await;
        assert_eq!(gone.status, 204);
    }
    assert_eq!(
        ann.post("/api/v1/products/", &products(written, 400))
            .await
            .status,
        201,
        "deleting gave the room back"
    );
    let ina = server.as_user("ina");
    let own = ina
        .post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
        .await;
    assert_eq!(own.status, 403, "a tenant's own quota: {}", own.text);

    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
        .await;
    let file = |fill: u8| vec![fill; 700 << 10];
    let put = |name: &str, bytes: Vec<u8>| {
        let path = format!("/api/v1/shops/code:1/attachments/{name}");
        let ann = ann.clone();
        async move {
            ann.send_raw("PUT", &path, "application/octet-stream", bytes)
                .await
        }
    };
    assert_eq!(put("a.bin", file(1)).await.status, 201);
    let over = put("b.bin", file(2)).await;
    assert_eq!(over.status, 403, "{}", over.text);
    assert!(over.text.contains("MiB of attached files"), "{}", over.text);
    assert_eq!(
        put("a.bin", file(3)).await.status,
        200,
        "a replacement of the same size fits"
    );
    assert_eq!(
        ann.send("DELETE", "/api/v1/shops/code:1/attachments/a.bin", None)
            .await
            .status,
        204
    );
    assert_eq!(put("b.bin", file(2)).await.status, 201);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_unfinished_exports_and_tokens_stay_within_their_quotas() {
    let plugins = plugins_with(&[("synthetic.wasm", env!("PLUGIN_SYNTHETIC"))]);
    std::fs::copy(env!("PLUGIN_HOSTILE"), plugins.path().join("hostile.wasm")).unwrap();
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\ndeadline_secs = 2\n\
         [quotas]\nresult_mib = 1\nunfinished_exports = 1\ntokens_per_user = 2\n",
        plugins.path().display()
    ))
    .await;
    let ann = server.as_user("ann");
    let queue = |body: Value| {
        let ann = ann.clone();
        async move { ann.post("/api_v1/generar_xxl", &body).await }
    };

    let big = queue(json!([{"dataset": "synthetic", "count": 5000, "width": 400}])).await;
    let big = settled_export(&ann, big.json()["peticion_id"].as_str().unwrap()).await;
    assert_eq!(big["estado"], "ERROR", "{big}");
    assert!(
        big["error_message"]
            .as_str()
            .unwrap()
            .contains("1 MiB of stored export results"),
        "{big}"
    );
    let small = queue(json!([{"dataset": "synthetic", "count": 1000, "width": 400}])).await;
    let small = settled_export(&ann, small.json()["peticion_id"].as_str().unwrap()).await;
    assert_eq!(
        small["estado"], "OK",
        "the failed run gave its room back: {small}"
    );

    let sleeping = queue(json!([{"dataset": "sleep"}])).await;
    assert_eq!(sleeping.status, 200, "{}", sleeping.text);
    let second = queue(json!([{"dataset": "synthetic", "count": 1}])).await;
    assert_eq!(second.status, 422, "{}", second.text);
    assert!(
        second.json()["error"]
            .as_str()
            .unwrap()
            .contains("1 export requests queued or generating"),
        "{}",
        second.text
    );
    let gus = server.as_user("gus");
    assert_eq!(
        gus.post(
            "/api_v1/generar_xxl",
            &json!([{"dataset": "synthetic", "count": 1}])
        )
        .await
        .status,
        200,
        "another tenant's quota is its own"
    );
    settled_export(&ann, sleeping.json()["peticion_id"].as_str().unwrap()).await;
    assert_eq!(
        queue(json!([{"dataset": "synthetic", "count": 1}]))
            .await
            .status,
        200,
        "a finished request frees its place"
    );

    let token = || {
        let ann = ann.clone();
        async move {
            ann.post("/api_token/", &json!({"domain": "acme", "api": "xxl"}))
                .await
        }
    };
    assert_eq!(token().await.status, 200);
    assert_eq!(token().await.status, 200);
    let third = token().await;
    assert_eq!(third.status, 422, "{}", third.text);
    assert!(
        third.json()["error"]
            .as_str()
            .unwrap()
            .contains("quota of 2 live tokens"),
        "{}",
        third.text
    );
    assert_eq!(
        gus.post("/api_token/", &json!({"domain": "globex", "api": "xxl"}))
            .await
            .status,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_write_past_the_quota_is_refused_as_invalid_with_the_quota_named() {
    let plugins = plugins_with(&[("catalog.wasm", env!("PLUGIN_CATALOG"))]);
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\n[quotas]\ndocument_mib = 0\n",
        plugins.path().display()
    ))
    .await;
    let ann = server.as_user("ann");
    let refused = ann
        .send(
            "PUT",
            "/v1/products/P1",
            Some(&json!({"name": "Coffee", "barcode": "4006381333931", "price": 4.5})),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let fields: Value =
        serde_json::from_str(refused.json()["error"]["fields"].as_str().unwrap()).unwrap();
    assert!(
        fields["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("0 MiB of stored documents"),
        "{fields}"
    );
    assert_eq!(
        ann.get("/v1/products/P1").await.status,
        404,
        "nothing was written"
    );
    server.stop().await;
}
