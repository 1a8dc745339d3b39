//! The LogiCommerce batch surface, its limits, and plugin endpoints called one by one.

use std::path::Path;
use std::time::Duration;

use bulkhost_tests::{Api, TestServer, all_changes};
use serde_json::{Value, json};

use crate::receivers::{SECRET, receiver, relay};

/// A server with the catalogue and hostile endpoint plugins; `extra` continues the
/// `[plugins]` table.
async fn server(plugins: &Path, extra: &str) -> TestServer {
    std::fs::copy(env!("PLUGIN_CATALOG"), plugins.join("catalog.wasm")).unwrap();
    std::fs::copy(
        env!("PLUGIN_HOSTILE_ENDPOINTS"),
        plugins.join("hostile_endpoints.wasm"),
    )
    .unwrap();
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

    let posted = ann
        .post(
            "/v1/products",
            &json!({"id": "P3", "name": "Cocoa", "price": 3}),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.text);
    let again = ann
        .post(
            "/v1/products",
            &json!({"id": "P3", "name": "Other", "price": 3}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.json()["error"]["code"], "ALREADY_EXISTS");
    assert_eq!(ann.get("/v1/products/P3").await.json()["name"], "Cocoa");

    let missing = ann.get("/v1/nothing/here").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "NOT_FOUND");
    let wrong = ann.send("PATCH", "/v1/products/P1", None).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(server.anonymous().get("/v1/products").await.status, 401);
    let removed = ann.send("DELETE", "/v1/products/P3", None).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(
        removed.header("content-type"),
        None,
        "an empty answer declares no body type"
    );
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

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
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
            op("links", "GET", "/api/v1/products/?page_size=1", None),
            op("del-p2", "DELETE", "/api/v1/products/code:P2/", None),
            op(
                "changes",
                "GET",
                "/c/acme/changes.json?start=1&limit=100",
                None
            ),
            op("foreign", "GET", "/c/globex/changes.json?start=1", None),
        ]),
    )
    .await;
    assert_eq!(uuid.len(), 36);
    assert_eq!(
        uuid,
        uuid.to_uppercase(),
        "LogiCommerce shows upper-case uuids"
    );
    let status = finished(&ann, &uuid).await;
    assert_eq!(status["uuid"], uuid.as_str());
    assert_eq!(status["operations"], 9);
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
            "put-p1", "post-p2", "bad-p3", "get-p1", "page", "links", "del-p2", "changes",
            "foreign"
        ]
    );
    let codes: Vec<u64> = responses
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [201, 201, 422, 200, 200, 200, 204, 200, 403],
        "an operation is authorized as the batch's tenant: {status}"
    );
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
    let links: Value = serde_json::from_str(responses[5]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        links["next"],
        format!("{}/api/v1/products/?page_size=1&page=2", ann.base),
        "links point at the host the batch was sent to"
    );

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

    let lines = ann.get(&format!("/v1/batch/{uuid}/jsonl")).await;
    assert_eq!(lines.status, 200);
    assert_eq!(lines.header("content-type"), Some("application/x-ndjson"));
    let parsed: Vec<Value> = lines
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        &parsed, responses,
        "one line per operation, as the status shows it"
    );
    assert!(lines.text.ends_with('\n'));
    let file = ann.get(&format!("/v1/batch/{uuid}/file")).await;
    assert_eq!(file.bytes, lines.bytes, "/file is the JSONL");
    let gz = ann.get(&format!("/v1/batch/{uuid}/gz")).await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-type"), Some("application/gzip"));
    assert_eq!(gunzip(&gz.bytes), lines.bytes);
    for (range, from, to) in [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, gz.bytes.len()),
        ("bytes=-25", gz.bytes.len() - 25, gz.bytes.len()),
    ] {
        let part = ann
            .client
            .get(format!("{}/v1/batch/{uuid}/gz", ann.base))
            .basic_auth("ann", Some("ann-pw"))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206, "{range}");
        let content_range = part.headers()["content-range"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            content_range,
            format!("bytes {from}-{}/{}", to - 1, gz.bytes.len())
        );
        assert_eq!(part.bytes().await.unwrap(), gz.bytes[from..to], "{range}");
    }
    let beyond = ann
        .client
        .get(format!("{}/v1/batch/{uuid}/jsonl", ann.base))
        .basic_auth("ann", Some("ann-pw"))
        .header("Range", format!("bytes={}-", lines.bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);

    let metrics = server.anonymous().get("/metrics").await.text;
    for line in [
        "bulkhost_batch_operations_total{method=\"PUT\",status=\"201\"} 1",
        "bulkhost_batch_operations_total{method=\"PUT\",status=\"422\"} 1",
        "bulkhost_batch_operations_total{method=\"GET\",status=\"403\"} 1",
        "bulkhost_batches_finished_total 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    let gus = server.as_user("gus");
    let foreign = gus.get(&format!("/v1/batch/{uuid}")).await;
    assert_eq!(foreign.status, 404, "another tenant's batch is not found");
    assert_eq!(foreign.json()["error"]["code"], "NOT_FOUND");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_a_batch_is_checked_before_anything_is_queued() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "[batches]\nmax_load_score = 5\n").await;
    let ann = server.as_user("ann");
    let put = |id: &str| op(id, "PUT", &format!("/v1/products/{id}"), Some(product(id)));
    let cases = [
        (json!({}), "`batch` is required"),
        (
            json!({"batch": {"operations": []}}),
            "at least one operation",
        ),
        (
            json!({"batch": {"operations": [{"method": "GET", "endpoint": "/v1/products"}]}}),
            "`operationId` is required",
        ),
        (
            json!({"batch": {"operations": [put("A"), put("A")]}}),
            "operationId `A` is used twice",
        ),
        (
            json!({"batch": {"operations": [op("x", "TRACE", "/v1/products", None)]}}),
            "method `TRACE`",
        ),
        (
            json!({"batch": {"operations": [op("x", "GET", "/v1/nothing", None)]}}),
            "GET /v1/nothing is not an endpoint",
        ),
        (
            json!({"batch": {"operations": [op("x", "GET", "/v1/batch/limits", None)]}}),
            "not an endpoint a batch can call",
        ),
        (
            json!({"batch": {"operations": [op("x", "GET", "/admin/plugins", None)]}}),
            "not an endpoint a batch can call",
        ),
        (
            json!({"batch": {"operations": [op("x", "GET", "/v1/products?perPage=101", None)]}}),
            "`perPage` is at most 100",
        ),
        (
            json!({"batch": {"operations": [op("x", "GET", "/api/v1/products/?page_size=500", None)]}}),
            "`page_size` is at most 100",
        ),
        (
            json!({"batch": {"operations": [put("A"), put("B"), put("C")]}}),
            "weigh 6 load points together; a batch may weigh at most 5",
        ),
        (
            json!({"batch": {"operations": [put("A")], "webhook": {"callbackUrl": "ftp://example.com/x"}}}),
            "callbackUrl must be an http",
        ),
        (
            json!({"batch": {"operations": [put("A")], "webhook": {"email": "not an address"}}}),
            "is not an address",
        ),
    ];
    for (body, expected) in cases {
        let refused = ann.post("/v1/batch", &body).await;
        assert_eq!(refused.status, 422, "{body}: {}", refused.text);
        let error = refused.json();
        assert_eq!(error["error"]["code"], "INVALID_BATCH", "{body}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let garbled = ann
        .send_raw(
            "POST",
            "/v1/batch",
            "application/json",
            b"{\"batch\":".to_vec(),
        )
        .await;
    assert_eq!(garbled.status, 400);
    assert_eq!(garbled.json()["error"]["code"], "INVALID_JSON");
    let anonymous = server
        .anonymous()
        .post("/v1/batch", &json!({"batch": {"operations": [put("A")]}}))
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["code"], "UNAUTHORIZED");

    assert_eq!(
        ann.get("/api/v1/products/").await.json()["count"],
        0,
        "nothing ran"
    );
    let uuid = submit(&ann, json!([put("A"), put("B")])).await;
    let status = finished(&ann, &uuid).await;
    assert_eq!(
        status["responses"][1]["statusCode"], 201,
        "no refused batch held the slot"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_runs_at_a_time_and_an_idempotency_key_answers_the_same_batch() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "").await;
    let ann = server.as_user("ann");
    let slow = json!({"batch": {"operations": [
        op("slow", "PUT", "/v1/hostile/slow/S1?ms=1500", None),
    ]}});
    let send = |key: &'static str, body: Value| {
        let ann = ann.clone();
        async move {
            let request = ann
                .client
                .post(format!("{}/v1/batch", ann.base))
                .basic_auth("ann", Some("ann-pw"))
                .header("Idempotency-Key", key)
                .json(&body);
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (code, first) = send("sync-1", slow.clone()).await;
    assert_eq!(code, 201, "{first}");
    let uuid = first["uuid"].as_str().unwrap().to_string();

    let second = ann
        .post(
            "/v1/batch",
            &json!({"batch": {"operations": [op("p", "GET", "/v1/products", None)]}}),
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.text);
    let error = second.json();
    assert_eq!(error["error"]["code"], "BATCH_IN_PROGRESS");
    assert!(
        error["error"]["message"].as_str().unwrap().contains(&uuid),
        "{error}"
    );
    let other_tenant = submit(
        &server.as_user("gus"),
        json!([op("p", "GET", "/v1/products", None)]),
    )
    .await;
    assert_ne!(other_tenant, uuid, "the rule holds per tenant");

    let early = ann.get(&format!("/v1/batch/{uuid}/jsonl")).await;
    assert_eq!(early.status, 409, "{}", early.text);
    assert_eq!(early.json()["error"]["code"], "BATCH_NOT_FINISHED");
    let (code, again) = send("sync-1", slow.clone()).await;
    assert_eq!(
        (code, &again["uuid"]),
        (201, &first["uuid"]),
        "a retry gets the same batch"
    );
    let (code, conflict) = send(
        "sync-1",
        json!({"batch": {"operations": [op("x", "GET", "/v1/products", None)]}}),
    )
    .await;
    assert_eq!(code, 422, "{conflict}");
    assert_eq!(conflict["error"]["code"], "IDEMPOTENCY_CONFLICT");

    let status = finished(&ann, &uuid).await;
    assert_eq!(status["responses"][0]["statusCode"], 201);
    let (code, later) = send("sync-1", slow).await;
    assert_eq!(
        (code, &later["uuid"]),
        (201, &first["uuid"]),
        "also after it finished"
    );
    let next = submit(&ann, json!([op("p", "GET", "/v1/products", None)])).await;
    assert_eq!(
        finished(&ann, &next).await["responses"][0]["statusCode"],
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_whose_plugin_traps_or_hangs_fails_alone() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "call_deadline_secs = 1\n").await;
    let ann = server.as_user("ann");
    let uuid = submit(
        &ann,
        json!([
            op("before", "PUT", "/v1/products/P1", Some(product("Before"))),
            op("trap", "POST", "/v1/hostile/trap", Some(json!({}))),
            op("spin", "GET", "/v1/hostile/spin", None),
            op("after", "PUT", "/v1/products/P2", Some(product("After"))),
        ]),
    )
    .await;
    let status = finished(&ann, &uuid).await;
    let responses = status["responses"].as_array().unwrap();
    let codes: Vec<u64> = responses
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [201, 500, 500, 201], "{status}");
    let trap: Value = serde_json::from_str(responses[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(trap["error"]["code"], "PLUGIN_FAILED");
    let message = trap["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("hostile_endpoints") && message.contains("trap"),
        "{message}"
    );
    let spin: Value = serde_json::from_str(responses[2]["body"].as_str().unwrap()).unwrap();
    let message = spin["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("deadline") || message.contains("time"),
        "{message}"
    );
    assert_eq!(ann.get("/v1/products/P2").await.json()["name"], "After");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_batch_calls_its_callback_and_mails_its_address() {
    let plugins = tempfile::tempdir().unwrap();
    let hook = receiver(vec![503]).await;
    let mail = relay().await;
    let server = server(
        plugins.path(),
        &format!(
            "[webhooks]\nallow_private = true\nretry_base_ms = 100\nsecret = \"{SECRET}\"\n\
             [mail]\nrelay = \"{}\"\nfrom = \"bulkhost@example.com\"\n",
            mail.url
        ),
    )
    .await;
    let ann = server.as_user("ann");
    let created = ann
        .post(
            "/v1/batch",
            &json!({"batch": {
                "operations": [
                    op("ok", "PUT", "/v1/products/P1", Some(product("Coffee"))),
                    op("bad", "PUT", "/v1/products/P2", Some(json!({"name": "X", "barcode": "1"}))),
                ],
                "webhook": {"callbackUrl": format!("{}?source=bulkhost", hook.url), "email": "ops@example.com"},
            }}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    let status = finished(&ann, &uuid).await;
    assert_eq!(
        status["webhook"],
        json!({"callbackUrl": format!("{}?source=bulkhost", hook.url), "email": "ops@example.com"})
    );

    let calls = hook.wait_for(2).await;
    assert_eq!(
        calls[1].id(),
        calls[0].id(),
        "the retry after a 503 keeps its id"
    );
    let call = &calls[1];
    assert_eq!(
        call.uri.query(),
        Some(format!("source=bulkhost&uid={uuid}").as_str()),
        "the callback names the batch in `uid`"
    );
    call.assert_signed();
    let told: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(told["uuid"], uuid.as_str());
    assert_eq!(told["status"], "finished");
    assert_eq!(told["responses"][1]["statusCode"], 422);

    let started = std::time::Instant::now();
    while mail.received.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(15), "no mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = mail.received.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "mailed once");
    assert_eq!(mails[0].recipients, ["ops@example.com"]);
    // Unfolded headers, quoted-printable soft breaks joined.
    let data = mails[0].data.replace("\n ", " ").replace("=\n", "");
    assert!(
        data.contains(&format!(
            "Subject: Batch {uuid} finished: 1 of 2 operations failed"
        )),
        "{data}"
    );
    assert!(data.contains("bad PUT /v1/products/P2: 422"), "{data}");
    assert!(data.contains("From: bulkhost@example.com"), "{data}");
    assert_eq!(
        hook.received.lock().unwrap().len(),
        2,
        "called once it succeeded"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_to_a_private_address_is_not_called_unless_allowed() {
    let plugins = tempfile::tempdir().unwrap();
    let hook = receiver(vec![]).await;
    let server = server(
        plugins.path(),
        "[webhooks]\nretry_base_ms = 100\nmax_attempts = 2\n",
    )
    .await;
    let ann = server.as_user("ann");
    let created = ann
        .post(
            "/v1/batch",
            &json!({"batch": {
                "operations": [op("p", "GET", "/v1/products", None)],
                "webhook": {"callbackUrl": hook.url, "email": "ops@example.com"},
            }}),
        )
        .await;
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    finished(&ann, &uuid).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        hook.received.lock().unwrap().is_empty(),
        "loopback is not a public address"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failed_operations_of_a_finished_batch_rerun_as_a_new_batch() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "").await;
    let ann = server.as_user("ann");
    let uuid = submit(
        &ann,
        json!([
            op("slow", "PUT", "/v1/hostile/slow/S1?ms=800", None),
            op("read-p9", "GET", "/v1/products/P9", None),
            op("put-p1", "PUT", "/v1/products/P1", Some(product("Coffee"))),
        ]),
    )
    .await;
    let early = ann
        .post(&format!("/v1/batch/{uuid}/retry"), &json!({}))
        .await;
    assert_eq!(early.status, 409, "{}", early.text);
    assert_eq!(early.json()["error"]["code"], "BATCH_NOT_FINISHED");
    let status = finished(&ann, &uuid).await;
    assert_eq!(status["responses"][1]["statusCode"], 404);

    let put = ann
        .send("PUT", "/v1/products/P9", Some(&product("Late")))
        .await;
    assert_eq!(put.status, 201);
    let retried = ann
        .post(&format!("/v1/batch/{uuid}/retry"), &json!({}))
        .await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    let again = retried.json()["uuid"].as_str().unwrap().to_string();
    assert_ne!(again, uuid);
    let status = finished(&ann, &again).await;
    let responses = status["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 1, "only the failed operation runs again");
    assert_eq!(responses[0]["operationId"], "read-p9");
    assert_eq!(responses[0]["statusCode"], 200);

    let nothing = ann
        .post(&format!("/v1/batch/{again}/retry"), &json!({}))
        .await;
    assert_eq!(nothing.status, 422);
    assert_eq!(nothing.json()["error"]["code"], "NOTHING_TO_RETRY");
    let foreign = server
        .as_user("gus")
        .post(&format!("/v1/batch/{uuid}/retry"), &json!({}))
        .await;
    assert_eq!(foreign.status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_batch_shows_its_status_and_then_its_responses_for_the_configured_times() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(env!("PLUGIN_CATALOG"), plugins.path().join("catalog.wasm")).unwrap();
    let server = TestServer::start_with(&format!(
        "maintenance_interval_secs = 1\n[plugins]\ndir = \"{}\"\n\
         [batches]\nstatus_ttl_secs = 1\nresults_ttl_secs = 3\n",
        plugins.path().display()
    ))
    .await;
    let ann = server.as_user("ann");
    let keyed = |body: Value| {
        let ann = ann.clone();
        async move {
            ann.client
                .post(format!("{}/v1/batch", ann.base))
                .basic_auth("ann", Some("ann-pw"))
                .header("Idempotency-Key", "k")
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let body = json!({"batch": {"operations": [op("p", "GET", "/v1/products", None)]}});
    let uuid = keyed(body.clone()).await;
    finished(&ann, &uuid).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = ann.get(&format!("/v1/batch/{uuid}")).await;
    assert_eq!(status.status, 404, "{}", status.text);
    let error = status.json();
    assert_eq!(error["error"]["code"], "STATUS_EXPIRED");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/jsonl")
    );
    assert_eq!(
        ann.get(&format!("/v1/batch/{uuid}/jsonl")).await.status,
        200
    );

    let started = std::time::Instant::now();
    loop {
        let gone = ann.get(&format!("/v1/batch/{uuid}/jsonl")).await;
        if gone.status == 404 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", gone.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = std::time::Instant::now();
    while keyed(body.clone()).await == uuid {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the batch and its key are dropped by maintenance"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

/// The endpoints `GET /v1/batch/limits` lists to `api`.
async fn listed_endpoints(api: &Api) -> Vec<String> {
    api.get("/v1/batch/limits").await.json()["limits"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["method"].as_str().unwrap(),
                e["endpoint"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_plugins_load_without_a_restart_and_a_tenants_own_serve_it_alone() {
    let plugins = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\nsync_interval_ms = 200\n",
        plugins.path().display()
    ))
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    assert!(
        !listed_endpoints(&ann)
            .await
            .contains(&"get /v1/products".to_string())
    );
    assert_eq!(ann.get("/v1/products").await.status, 404);

    std::fs::copy(env!("PLUGIN_CATALOG"), plugins.path().join("catalog.wasm")).unwrap();
    let started = std::time::Instant::now();
    while !listed_endpoints(&ann)
        .await
        .contains(&"get /v1/products".to_string())
    {
        assert!(started.elapsed() < Duration::from_secs(10), "never offered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ann.get("/v1/products").await.status, 200);
    let uuid = submit(&gus, json!([op("p", "GET", "/v1/products", None)])).await;
    assert_eq!(
        finished(&gus, &uuid).await["responses"][0]["statusCode"],
        200
    );

    let uploaded = gus
        .send_raw(
            "PUT",
            "/api_v1/plugins/hostile-endpoints",
            "application/wasm",
            std::fs::read(env!("PLUGIN_HOSTILE_ENDPOINTS")).unwrap(),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    assert!(
        listed_endpoints(&gus)
            .await
            .contains(&"post /v1/hostile/trap".to_string())
    );
    assert!(
        !listed_endpoints(&ann)
            .await
            .contains(&"post /v1/hostile/trap".to_string()),
        "a tenant's extension serves that tenant only"
    );
    assert_eq!(ann.send("POST", "/v1/hostile/trap", None).await.status, 404);
    let refused = ann
        .post(
            "/v1/batch",
            &json!({"batch": {"operations": [op("t", "POST", "/v1/hostile/trap", None)]}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);

    std::fs::remove_file(plugins.path().join("catalog.wasm")).unwrap();
    let started = std::time::Instant::now();
    while listed_endpoints(&ann)
        .await
        .contains(&"get /v1/products".to_string())
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never withdrawn"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_weighs_something_and_a_batch_is_bounded_in_operations() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(
        plugins.path(),
        "[batches]\nmax_operations = 150\nload_scores = { \"GET /api/v1/{collection}/\" = 0 }\n",
    )
    .await;
    let ann = server.as_user("ann");
    let limits = ann.get("/v1/batch/limits").await.json();
    assert_eq!(
        listed(&limits, "get", "/v1/hostile/free").unwrap()["loadScore"],
        1,
        "a plugin's 0 counts as 1"
    );
    assert_eq!(
        listed(&limits, "get", "/api/v1/{collection}/").unwrap()["loadScore"],
        1,
        "so does an operator's"
    );
    let free = |n: usize| -> Value {
        (0..n)
            .map(|i| op(&format!("f{i}"), "GET", "/v1/hostile/free", None))
            .collect()
    };
    let heavy = ann
        .post("/v1/batch", &json!({"batch": {"operations": free(101)}}))
        .await;
    assert_eq!(heavy.status, 422, "{}", heavy.text);
    assert!(heavy.text.contains("101 load points"), "{}", heavy.text);
    let long = ann
        .post("/v1/batch", &json!({"batch": {"operations": free(151)}}))
        .await;
    assert_eq!(long.status, 422, "{}", long.text);
    assert!(long.text.contains("at most 150"), "{}", long.text);
    let waiting = ann
        .post(
            "/v1/batch",
            &json!({"batch": {"operations": [op("w", "GET", "/c/acme/changes.json?wait=30", None)]}}),
        )
        .await;
    assert_eq!(waiting.status, 422, "{}", waiting.text);
    assert!(waiting.text.contains("`wait`"), "{}", waiting.text);
    let uuid = submit(&ann, free(100)).await;
    let status = finished(&ann, &uuid).await;
    assert_eq!(status["responses"].as_array().unwrap().len(), 100);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_and_batches_keep_to_their_time_budgets() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(
        plugins.path(),
        "[batches]\noperation_timeout_secs = 1\ntimeout_secs = 3\n",
    )
    .await;
    let ann = server.as_user("ann");
    let started = std::time::Instant::now();
    let uuid = submit(
        &ann,
        json!([
            op("s1", "GET", "/v1/hostile/sleep", None),
            op("ok", "PUT", "/v1/products/P1", Some(product("Kept"))),
            op("s2", "GET", "/v1/hostile/sleep", None),
            op("s3", "GET", "/v1/hostile/sleep", None),
            op("s4", "GET", "/v1/hostile/sleep", None),
            op("late", "PUT", "/v1/products/P2", Some(product("Late"))),
        ]),
    )
    .await;
    let status = finished(&ann, &uuid).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    let responses = status["responses"].as_array().unwrap();
    let codes: Vec<u64> = responses
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes[..3], [504, 201, 504], "{status}");
    assert!(
        responses[0]["statusText"]
            .as_str()
            .unwrap()
            .contains("time budget of 1"),
        "{status}"
    );
    assert_eq!(codes[5], 504, "{status}");
    assert!(
        responses[5]["statusText"]
            .as_str()
            .unwrap()
            .contains("the batch passed its time budget of 3 s"),
        "{status}"
    );
    assert_eq!(ann.get("/v1/products/P2").await.status, 404, "not run");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_responses_cannot_be_recorded_ends_with_the_reason_and_frees_the_slot() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "[quotas]\nresult_mib = 0\n").await;
    let ann = server.as_user("ann");
    let uuid = submit(
        &ann,
        json!([
            op("a", "GET", "/v1/products", None),
            op("b", "GET", "/v1/products", None),
        ]),
    )
    .await;
    let status = finished(&ann, &uuid).await;
    let error = status["error"]
        .as_str()
        .expect("the batch says why it stopped");
    assert!(
        error.contains("recording its responses failed") && error.contains("quota"),
        "{status}"
    );
    assert!(
        status["responses"].as_array().unwrap().is_empty(),
        "{status}"
    );
    let next = ann
        .post(
            "/v1/batch",
            &json!({"batch": {"operations": [op("c", "GET", "/v1/products", None)]}}),
        )
        .await;
    assert_eq!(next.status, 201, "the tenant's slot is free: {}", next.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_batch_mails_keep_to_its_hourly_rate() {
    let plugins = tempfile::tempdir().unwrap();
    let mail = relay().await;
    let server = server(
        plugins.path(),
        &format!(
            "[mail]\nrelay = \"{}\"\nfrom = \"bulkhost@example.com\"\nper_tenant_per_hour = 2\n",
            mail.url
        ),
    )
    .await;
    let mailed = |address: &str| {
        json!({"batch": {
            "operations": [op("p", "GET", "/v1/products", None)],
            "webhook": {"email": address},
        }})
    };
    for (user, address) in [
        ("ann", "a1@example.com"),
        ("ann", "a2@example.com"),
        ("ann", "a3@example.com"),
        ("gus", "g1@example.com"),
    ] {
        let api = server.as_user(user);
        let created = api.post("/v1/batch", &mailed(address)).await;
        assert_eq!(created.status, 201, "{}", created.text);
        finished(&api, created.json()["uuid"].as_str().unwrap()).await;
    }
    let started = std::time::Instant::now();
    while mail.received.lock().unwrap().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "mails expected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut sent: Vec<String> = mail
        .received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        ["a1@example.com", "a2@example.com", "g1@example.com"],
        "the third mail of the hour waits; another tenant's goes out"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abra_listings_and_records_can_be_batch_operations() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path(), "").await;
    let ann = server.as_user("ann");
    ann.post("/api/v1/shops/", &json!({"shop_id": "S1", "name": "Kyiv"}))
        .await;
    let uuid = submit(
        &ann,
        json!([
            op("listing", "GET", "/c/acme/shops.json?limit=0", None),
            op("record", "GET", "/c/acme/shops/code:S1.json", None),
            op("xml", "GET", "/c/acme/shops.xml", None),
        ]),
    )
    .await;
    let status = finished(&ann, &uuid).await;
    let responses = status["responses"].as_array().unwrap();
    for response in responses {
        assert_eq!(response["statusCode"], 200, "{response}");
    }
    let listing: Value = serde_json::from_str(responses[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(listing["winstrom"]["shops"][0]["shop_id"], "S1");
    assert!(
        responses[2]["body"]
            .as_str()
            .unwrap()
            .contains("<shop_id>S1</shop_id>")
    );
    server.stop().await;
}
