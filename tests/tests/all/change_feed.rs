//! The ABRA Flexi change feed: versions, the two listing shapes, paging with `next`, record filters, enabling and
//! disabling, the oldest listable version, `add-global-version` and long-polling.

use std::time::{Duration, Instant};

use bulkhost_tests::{TestServer, seed_references, stock_doc};
use serde_json::{Value, json};

fn changes(v: &Value) -> &Vec<Value> {
    v["winstrom"]["changes"].as_array().expect("changes array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_gets_an_ascending_version_in_abra_flexis_shapes() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    ann.post("/api/v1/stock-taking-documents/", &stock_doc("VF1", "1", 1))
        .await;
    ann.post("/api/v1/stock-taking-documents/", &stock_doc("VF1", "1", 2))
        .await;
    let delete = ann.send("DELETE", "/api/v1/shops/code:3/", None).await;
    assert_eq!(delete.status, 204);

    let all = ann.get("/c/acme/changes.json").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.header("x-oldest-version"), Some("1"));
    let all = all.json();
    assert_eq!(all["winstrom"]["@globalVersion"], "12");
    assert_eq!(all["winstrom"]["next"], "none");
    let list = changes(&all);
    assert_eq!(list.len(), 12);
    let versions: Vec<u64> = list
        .iter()
        .map(|c| c["@in-version"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());
    assert_eq!(
        list[9],
        json!({
            "@evidence": "stock-taking-documents",
            "@in-version": "10",
            "@operation": "create",
            "@timestamp": list[9]["@timestamp"],
            "id": "1",
            "external-ids": ["code:VF1/1"]
        })
    );
    let ts = list[9]["@timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 21 && ts.as_bytes()[10] == b' ' && ts.as_bytes()[19] == b'.',
        "{ts}"
    );
    assert_eq!(list[10]["@operation"], "update");
    assert_eq!(list[11]["@operation"], "delete");
    assert_eq!(list[11]["@evidence"], "shops");
    assert_eq!(list[11]["external-ids"], json!(["code:3"]));

    let page = ann.get("/c/acme/changes.json?start=4&limit=3").await.json();
    let got: Vec<&str> = changes(&page)
        .iter()
        .map(|c| c["@in-version"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["4", "5", "6"]);
    assert_eq!(page["winstrom"]["next"], "7");

    let xml = ann.get("/c/acme/changes.xml?start=10&limit=1").await;
    assert_eq!(xml.status, 200);
    assert!(xml.header("content-type").unwrap().contains("xml"));
    let expected_head = "<?xml version=\"1.0\"?>\n<winstrom version=\"1.0\" globalVersion=\"12\">\n  <stock-taking-documents in-version=\"10\" operation=\"create\" timestamp=\"";
    assert!(xml.text.starts_with(expected_head), "{}", xml.text);
    assert!(xml.text.contains("    <id>1</id>\n    <id>code:VF1/1</id>\n  </stock-taking-documents>\n  <next>11</next>\n</winstrom>"), "{}", xml.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_filters_limits_and_bad_parameters() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let evidences = |v: &Value| -> Vec<String> {
        changes(v)
            .iter()
            .map(|c| c["@evidence"].as_str().unwrap().to_string())
            .collect()
    };
    let shops = ann.get("/c/acme/changes.json?records=shops").await.json();
    assert_eq!(evidences(&shops), ["shops", "shops", "shops"]);
    let two = ann
        .get("/c/acme/changes.json?records=shops&records=cashiers")
        .await
        .json();
    assert_eq!(evidences(&two), ["shops", "shops", "shops", "cashiers"]);
    let original_name = ann
        .get("/c/acme/changes.json?evidence=cashiers")
        .await
        .json();
    assert_eq!(evidences(&original_name), ["cashiers"]);
    let limited = ann
        .get("/c/acme/changes.json?records=products&limit=2")
        .await
        .json();
    assert_eq!(
        limited["winstrom"]["next"], "6",
        "next is the next matching version"
    );

    let capped = ann.get("/c/acme/changes.json?limit=5000").await;
    assert_eq!(capped.status, 200);
    for bad in ["limit=abc", "limit=-1", "start=x", "wait=soon"] {
        let r = ann.get(&format!("/c/acme/changes.json?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["winstrom"]["success"], "false", "{bad}");
    }
    let xml_error = ann.get("/c/acme/changes.xml?limit=abc").await;
    assert_eq!(xml_error.status, 400);
    assert!(xml_error.text.contains("<success>false</success>"));
    assert_eq!(ann.get("/c/acme/nothing-here.json").await.status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_stops_recording_and_reenabling_moves_the_oldest_version() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
        .await;
    assert_eq!(
        ann.get("/c/acme/changes/status.xml").await.text,
        "<?xml version=\"1.0\"?>\n<winstrom version=\"1.0\">\n  <success>true</success>\n</winstrom>\n"
    );
    let off = ann.send("PUT", "/c/acme/changes/disable.xml", None).await;
    assert_eq!(off.status, 200);
    assert_eq!(
        ann.get("/c/acme/changes/status.json").await.json(),
        json!({"winstrom": {"@version": "1.0", "success": "false"}})
    );
    let listing = ann.get("/c/acme/changes.json").await;
    assert_eq!(listing.status, 403);
    assert_eq!(listing.json()["winstrom"]["success"], "false");
    ann.post("/api/v1/shops/", &json!({"shop_id": "2", "name": "b"}))
        .await;

    let on = ann.send("POST", "/c/acme/changes/enable.json", None).await;
    assert_eq!(on.status, 200);
    ann.post("/api/v1/shops/", &json!({"shop_id": "3", "name": "c"}))
        .await;
    let after = ann.get("/c/acme/changes.json").await;
    assert_eq!(after.header("x-oldest-version"), Some("3"));
    let after = after.json();
    assert_eq!(after["winstrom"]["@globalVersion"], "3");
    assert_eq!(
        changes(&after).len(),
        1,
        "the write made while disabled is not listed"
    );
    let gone = ann.get("/c/acme/changes.json?start=1").await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.header("x-oldest-version"), Some("3"));
    assert!(
        gone.json()["winstrom"]["message"]
            .as_str()
            .unwrap()
            .contains("reload")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_carry_the_global_version_they_were_read_at() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let listing = ann
        .get("/c/acme/shops.json?add-global-version=true&limit=0")
        .await
        .json();
    assert_eq!(listing["winstrom"]["@globalVersion"], "9");
    assert_eq!(listing["winstrom"]["@version"], "1.0");
    let shops = listing["winstrom"]["shops"].as_array().unwrap();
    assert_eq!(shops.len(), 3);
    assert_eq!(
        shops[0],
        json!({"id": "1", "shop_id": "1", "name": "Shop 1"})
    );
    let paged = ann
        .get("/c/acme/products.json?start=1&limit=2")
        .await
        .json();
    let ids: Vec<&str> = paged["winstrom"]["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "3"]);
    assert!(paged["winstrom"].get("@globalVersion").is_none());
    let xml = ann
        .get("/c/acme/cashiers.xml?add-global-version=true")
        .await
        .text;
    assert_eq!(
        xml,
        "<?xml version=\"1.0\"?>\n<winstrom version=\"1.0\" globalVersion=\"9\">\n  <cashiers>\n    <id>1</id>\n    <cashier_id>C1</cashier_id>\n    <name>Olena</name>\n  </cashiers>\n</winstrom>\n"
    );
    let one = ann
        .get("/c/acme/shops/code:2.json?add-global-version=true")
        .await
        .json();
    assert_eq!(one["winstrom"]["shops"][0]["shop_id"], "2");
    assert_eq!(one["winstrom"]["@globalVersion"], "9");
    let drf = ann
        .get("/api/v1/shops/?add-global-version=true")
        .await
        .json();
    assert_eq!(drf["globalVersion"], 9);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_as_soon_as_a_newer_version_commits() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
        .await;
    let writer = ann.clone();
    let started = Instant::now();
    let write = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer
            .post("/api/v1/shops/", &json!({"shop_id": "2", "name": "b"}))
            .await
    });
    let polled = ann.get("/c/acme/changes.json?start=2&wait=20").await.json();
    let waited = started.elapsed();
    assert_eq!(write.await.unwrap().status, 201);
    assert_eq!(changes(&polled).len(), 1);
    assert_eq!(changes(&polled)[0]["@in-version"], "2");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    let timed_out = ann.get("/c/acme/changes.json?start=3&wait=1").await.json();
    assert!(changes(&timed_out).is_empty());
    assert_eq!(timed_out["winstrom"]["next"], "none");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_name_documents_and_appear_in_the_feed() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let shop = |id: &str, ext: Value| json!({"shop_id": id, "name": "s", "external-ids": ext});
    let r = ann
        .post(
            "/api/v1/shops/",
            &shop("1", json!(["ESHOP:1", "ext:POS:77"])),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let one = ann.get("/c/acme/shops/ext:ESHOP:1.json").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(
        one.json()["winstrom"]["shops"][0]["external-ids"],
        json!(["ext:ESHOP:1", "ext:POS:77"])
    );
    assert_eq!(
        ann.get("/api/v1/shops/ext:POS:77/").await.json()["shop_id"],
        "1"
    );
    let feed = ann.get("/c/acme/changes.json").await.json();
    assert_eq!(
        changes(&feed)[0]["external-ids"],
        json!(["code:1", "ext:ESHOP:1", "ext:POS:77"])
    );
    let xml = ann.get("/c/acme/changes.xml").await.text;
    assert!(
        xml.contains("    <id>code:1</id>\n    <id>ext:ESHOP:1</id>\n    <id>ext:POS:77</id>\n"),
        "{xml}"
    );

    let taken = ann
        .post("/api/v1/shops/", &shop("2", json!(["ESHOP:1"])))
        .await;
    assert_eq!(taken.status, 400);
    assert_eq!(
        taken.json(),
        json!({"external-ids": ["External id \"ext:ESHOP:1\" already belongs to document 1."]})
    );
    let malformed = ann
        .post("/api/v1/shops/", &shop("2", json!(["no-system"])))
        .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.json()["external-ids"][0]
            .as_str()
            .unwrap()
            .contains("ext:SYSTEM:VALUE")
    );
    assert_eq!(ann.get("/api/v1/shops/").await.json()["count"], 1);

    let kept = ann
        .post(
            "/api/v1/shops/",
            &json!({"shop_id": "1", "name": "renamed"}),
        )
        .await;
    assert_eq!(kept.status, 201);
    assert_eq!(
        ann.get("/c/acme/shops/ext:ESHOP:1.json").await.status,
        200,
        "omitted ids are kept"
    );
    ann.post("/api/v1/shops/", &shop("1", json!(["ESHOP:9"])))
        .await;
    assert_eq!(
        ann.get("/c/acme/shops/ext:ESHOP:1.json").await.status,
        404,
        "replaced ids are released"
    );
    assert_eq!(
        ann.post("/api/v1/shops/", &shop("2", json!(["ESHOP:1"])))
            .await
            .status,
        201
    );

    assert_eq!(
        ann.send("DELETE", "/api/v1/shops/ext:ESHOP:9/", None)
            .await
            .status,
        204
    );
    assert_eq!(ann.get("/c/acme/shops/ext:ESHOP:9.json").await.status, 404);
    let feed = ann.get("/c/acme/changes.json").await.json();
    let last = changes(&feed).last().unwrap().clone();
    assert_eq!(last["@operation"], "delete");
    assert_eq!(last["external-ids"], json!(["code:1", "ext:ESHOP:9"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_defaults_to_100_and_is_capped_at_1000() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let cashiers: Vec<Value> = (0..1100)
        .map(|i| json!({"cashier_id": format!("C{i}"), "name": "n"}))
        .collect();
    assert_eq!(
        ann.post("/api/v1/cashiers/", &Value::Array(cashiers))
            .await
            .status,
        201
    );
    let default = ann.get("/c/acme/changes.json").await.json();
    assert_eq!(changes(&default).len(), 100);
    assert_eq!(default["winstrom"]["next"], "101");
    let capped = ann
        .get("/c/acme/changes.json?limit=5000&start=50")
        .await
        .json();
    assert_eq!(changes(&capped).len(), 1000);
    assert_eq!(capped["winstrom"]["next"], "1050");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_changes_are_dropped_and_laggards_told_to_reload() {
    let server =
        TestServer::start_with("change_retention_secs = 2\nmaintenance_interval_secs = 1").await;
    let ann = server.as_user("ann");
    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "a"}))
        .await;
    ann.post("/api/v1/shops/", &json!({"shop_id": "2", "name": "b"}))
        .await;
    tokio::time::sleep(Duration::from_millis(5000)).await;
    ann.post("/api/v1/shops/", &json!({"shop_id": "3", "name": "c"}))
        .await;

    let current = ann.get("/c/acme/changes.json").await;
    assert_eq!(current.header("x-oldest-version"), Some("3"));
    let current = current.json();
    let versions: Vec<&str> = changes(&current)
        .iter()
        .map(|c| c["@in-version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["3"]);
    let behind = ann.get("/c/acme/changes.json?start=2").await;
    assert_eq!(behind.status, 410);
    assert_eq!(behind.header("x-oldest-version"), Some("3"));
    let listing = ann
        .get("/c/acme/shops.json?add-global-version=true&limit=0")
        .await
        .json();
    assert_eq!(
        listing["winstrom"]["shops"].as_array().unwrap().len(),
        3,
        "documents stay"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_zero_answers_the_global_version_alone() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let listing = ann.get("/c/acme/changes.json?limit=0").await;
    assert_eq!(listing.status, 200, "{}", listing.text);
    let listing = listing.json();
    assert_eq!(changes(&listing).len(), 0);
    assert_eq!(listing["winstrom"]["@globalVersion"], "9");
    let xml = ann.get("/c/acme/changes.xml?limit=0&wait=30").await;
    assert_eq!(xml.status, 200, "a version read does not wait");
    assert!(xml.text.contains("globalVersion=\"9\""), "{}", xml.text);
    server.stop().await;
}

/// Whether `text` is well-formed XML, read to its end.
fn well_formed(text: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => return true,
            Ok(quick_xml::events::Event::Text(t)) => {
                if t.xml_content().is_err() {
                    return false;
                }
                if t.iter()
                    .any(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
                {
                    return false;
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_answers_are_well_formed_whatever_a_client_sends() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let error = ann.get("/c/acme/bad%01%0Bname.xml").await;
    assert_eq!(error.status, 404);
    assert!(well_formed(&error.text), "{:?}", error.text);
    assert!(error.text.contains('\u{FFFD}'), "{:?}", error.text);
    ann.post(
        "/api/v1/shops/",
        &json!({"shop_id": "<1&>", "name": "tab\tand \"quotes\"", "external-ids": ["ext:A:<b>"]}),
    )
    .await;
    for path in ["/c/acme/shops.xml", "/c/acme/changes.xml"] {
        let listing = ann.get(path).await;
        assert_eq!(listing.status, 200);
        assert!(well_formed(&listing.text), "{path}: {}", listing.text);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_requests_are_refused_in_xml() {
    let server = TestServer::start().await;
    let refused = server.anonymous().get("/c/acme/changes.xml").await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.header("content-type").unwrap().contains("xml"),
        "{:?}",
        refused.header("content-type")
    );
    assert!(
        refused.text.contains("<success>false</success>"),
        "{}",
        refused.text
    );
    assert!(well_formed(&refused.text));
    let json = server.anonymous().get("/c/acme/changes.json").await;
    assert_eq!(json.status, 401);
    assert_eq!(json.json()["winstrom"]["success"], "false");
    let missing = server.as_user("ann").get("/c/acme/shops/no.such.xml").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .text
            .contains("<message>Record not found.</message>"),
        "{}",
        missing.text
    );
    server.stop().await;
}

/// One server-sent event: its type, id and data.
#[derive(Debug)]
struct Event {
    event: String,
    id: String,
    data: String,
}

/// Reads `n` events (comments aside) from an event stream, failing after 10 seconds.
async fn next_events(
    response: &mut reqwest::Response,
    buffer: &mut String,
    n: usize,
) -> Vec<Event> {
    let mut events = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while events.len() < n {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
                    .unwrap_or_default()
            };
            if !field("event:").is_empty() {
                events.push(Event {
                    event: field("event:"),
                    id: field("id:"),
                    data: field("data:"),
                });
            }
            continue;
        }
        let left = until.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("the events arrive within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    events
}

/// Opens the change stream as ann with `query` and `headers`.
async fn open_stream(
    server: &TestServer,
    query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("{}/c/acme/changes/stream{query}", server.base))
        .basic_auth("ann", Some("ann-pw"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_sends_each_change_as_an_event_and_resumes_after_the_last_seen() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;

    let mut live = open_stream(&server, "", &[]).await;
    assert_eq!(live.status(), 200);
    assert_eq!(
        live.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut history = open_stream(&server, "?start=1&records=shops,cashiers", &[]).await;
    let (mut live_buffer, mut history_buffer) = (String::new(), String::new());
    let listed = ann
        .get("/c/acme/changes.json?start=1&records=shops&records=cashiers")
        .await
        .json();
    let sent = next_events(&mut history, &mut history_buffer, 4).await;
    let ids: Vec<&str> = sent.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "9"]);
    for (event, change) in sent.iter().zip(changes(&listed)) {
        assert_eq!(event.event, "change");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(
            &data, change,
            "an event carries the change as changes.json lists it"
        );
    }

    ann.post("/api/v1/stock-taking-documents/", &stock_doc("S1", "1", 1))
        .await;
    ann.post("/api/v1/shops/", &json!({"shop_id": "4", "name": "Shop 4"}))
        .await;
    let new = next_events(&mut live, &mut live_buffer, 2).await;
    assert_eq!((new[0].id.as_str(), new[1].id.as_str()), ("10", "11"));
    let data: Value = serde_json::from_str(&new[0].data).unwrap();
    assert_eq!(data["@evidence"], "stock-taking-documents");
    let filtered = next_events(&mut history, &mut history_buffer, 1).await;
    assert_eq!(filtered[0].id, "11", "the filter holds for new changes too");
    drop((live, history));

    let mut resumed = open_stream(&server, "?records=shops", &[("last-event-id", "2")]).await;
    let mut buffer = String::new();
    let again = next_events(&mut resumed, &mut buffer, 2).await;
    let ids: Vec<&str> = again.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["3", "11"],
        "a reconnection continues after Last-Event-ID"
    );

    let bad = open_stream(&server, "", &[("last-event-id", "soon")]).await;
    assert_eq!(bad.status(), 400);
    let other = reqwest::Client::new()
        .get(format!("{}/c/other/changes/stream", server.base))
        .basic_auth("ann", Some("ann-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let off = ann.send("PUT", "/c/acme/changes/disable.json", None).await;
    assert_eq!(off.status, 200);
    assert_eq!(open_stream(&server, "", &[]).await.status(), 403);
}
