//! ABRA Flexi's web hooks on the change feed: registration with a URL test, listing and
//! removal in ABRA's envelopes; after each commit the changes since the last acknowledged
//! version, in the hook's format, with its secret key, signed; failures retried, a hook that
//! keeps failing paused with its reason, and resumed by a retry.

use std::time::{Duration, Instant};

use bulkhost_tests::{Api, TestServer, seed_references};
use serde_json::{Value, json};

use crate::receivers::{Receiver, SECRET, receiver};

async fn server() -> TestServer {
    TestServer::start_with(&format!(
        "[webhooks]\nallow_private = true\nretry_base_ms = 100\nmax_attempts = 3\nsecret = \"{SECRET}\"\n"
    ))
    .await
}

/// Registers a hook as ann with the query `query` (URL-encoded by the caller).
async fn register(api: &Api, query: &str) -> bulkhost_tests::Reply {
    api.send("PUT", &format!("/c/acme/hooks.json?{query}"), None)
        .await
}

fn encoded(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

/// The hooks' listing, polled until `done` holds for it, at most 15 s.
async fn listing_until(api: &Api, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let listed = api.get("/c/acme/hooks.json").await.json();
        if done(&listed) {
            return listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not reached: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn received(receiver: &Receiver, n: usize) -> Vec<crate::receivers::Call> {
    receiver.wait_for(n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_is_posted_each_commits_changes_in_its_format_and_moves_on() {
    let server = server().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let json_hook = receiver(vec![]).await;
    let registered = register(
        &ann,
        &format!("url={}&format=json&secKey=s3cret", encoded(&json_hook.url)),
    )
    .await;
    assert_eq!(registered.status, 200, "{}", registered.text);
    let hook = &registered.json()["winstrom"]["hooks"][0];
    assert_eq!(hook["dataFormat"], "JSON");
    assert_eq!(
        hook["lastVersion"], "9",
        "from the global version by default"
    );
    assert_eq!(hook["paused"], "false");
    let test = &received(&json_hook, 1).await[0];
    assert_eq!(test.body, "", "the URL test is an empty notification");
    assert_eq!(test.headers["x-fb-hook-seckey"], "s3cret");

    ann.post("/api/v1/shops/", &json!({"shop_id": "4", "name": "Shop 4"}))
        .await;
    let call = received(&json_hook, 2).await[1].clone();
    call.assert_signed();
    assert_eq!(call.headers["x-fb-hook-seckey"], "s3cret");
    assert_eq!(call.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    let feed = ann.get("/c/acme/changes.json?start=10").await.json();
    assert_eq!(body, feed, "the changes as changes.json lists them");
    listing_until(&ann, |l| l["winstrom"]["hooks"][0]["lastVersion"] == "10").await;

    let xml_hook = receiver(vec![]).await;
    let registered = register(
        &ann,
        &format!(
            "url={}&format=XML&lastVersion=8&skipUrlTest=true",
            encoded(&xml_hook.url)
        ),
    )
    .await;
    assert_eq!(registered.status, 200, "{}", registered.text);
    let call = received(&xml_hook, 1).await[0].clone();
    assert!(call.headers.get("x-fb-hook-seckey").is_none());
    assert_eq!(
        call.headers["content-type"],
        "application/xml; charset=utf-8"
    );
    let xml = ann.get("/c/acme/changes.xml?start=9").await.text;
    assert_eq!(call.body, xml, "versions 9 and 10 in changes.xml's shape");

    ann.post("/api/v1/shops/", &json!({"shop_id": "5", "name": "Shop 5"}))
        .await;
    let both = (received(&json_hook, 3).await, received(&xml_hook, 2).await);
    let body: Value = serde_json::from_str(&both.0[2].body).unwrap();
    assert_eq!(body["winstrom"]["@globalVersion"], "11");
    assert_eq!(body["winstrom"]["changes"][0]["@in-version"], "11");
    assert_eq!(
        body["winstrom"]["changes"].as_array().unwrap().len(),
        1,
        "only what the hook has not acknowledged"
    );
    assert!(both.1[1].body.contains("globalVersion=\"11\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_is_retried_then_paused_with_its_reason_until_a_retry() {
    let server = server().await;
    let ann = server.as_user("ann");
    let failing = receiver(vec![500, 503, 500]).await;
    let registered = register(
        &ann,
        &format!("url={}&format=JSON&skipUrlTest=true", encoded(&failing.url)),
    )
    .await;
    assert_eq!(registered.status, 200, "{}", registered.text);
    let id = registered.json()["winstrom"]["hooks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "Shop 1"}))
        .await;
    let paused = listing_until(&ann, |l| l["winstrom"]["hooks"][0]["paused"] == "true").await;
    let hook = &paused["winstrom"]["hooks"][0];
    assert_eq!(hook["penalty"], "3");
    assert_eq!(hook["lastVersion"], "0");
    let failure = hook["failure"].as_str().unwrap();
    assert!(
        failure.contains("paused after 3 failed attempts") && failure.contains("500"),
        "{failure}"
    );
    let calls = received(&failing, 3).await;
    assert!(
        calls.iter().all(|c| c.body == calls[0].body),
        "the same changes again"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        failing.received.lock().unwrap().len(),
        3,
        "a paused hook is left alone"
    );

    let retried = ann
        .send("PUT", &format!("/c/acme/hooks/{id}/retry.json"), None)
        .await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    let delivered = listing_until(&ann, |l| l["winstrom"]["hooks"][0]["lastVersion"] == "1").await;
    assert_eq!(delivered["winstrom"]["hooks"][0]["penalty"], "0");
    assert_eq!(delivered["winstrom"]["hooks"][0]["paused"], "false");
    assert_eq!(received(&failing, 4).await[3].body, calls[0].body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_checked_and_hooks_listed_and_removed_in_abras_envelopes() {
    let server = server().await;
    let ann = server.as_user("ann");
    ann.post("/api/v1/shops/", &json!({"shop_id": "1", "name": "Shop 1"}))
        .await;
    let answering = receiver(vec![]).await;
    let refusing = receiver(vec![404]).await;
    let url = encoded(&answering.url);
    for (query, expected) in [
        ("format=JSON".to_string(), "Parameter `url` is required."),
        (format!("url={url}"), "`format` must be JSON or XML"),
        (
            format!("url={url}&format=CSV"),
            "`format` must be JSON or XML",
        ),
        (
            "url=ftp%3A%2F%2Fx&format=JSON".into(),
            "must be an http:// or https:// URL",
        ),
        (
            format!("url={url}&format=JSON&lastVersion=5"),
            "ahead of the global version 1",
        ),
        (
            format!("url={url}&format=JSON&lastVersion=x"),
            "`lastVersion` must be",
        ),
        (
            format!("url={url}&format=JSON&skipUrlTest=yes"),
            "`skipUrlTest` must be",
        ),
        (
            format!("url={}&format=JSON", encoded(&refusing.url)),
            "The URL test failed: the receiver answered 404",
        ),
    ] {
        let refused = register(&ann, &query).await;
        assert_eq!(refused.status, 400, "{query}: {}", refused.text);
        assert_eq!(refused.json()["winstrom"]["success"], "false");
        let message = refused.json()["winstrom"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(expected), "{query}: {message}");
    }
    let empty = ann.get("/c/acme/hooks.json").await.json();
    assert_eq!(empty, json!({"winstrom": {"@version": "1.0", "hooks": []}}));

    let posted = ann
        .send(
            "POST",
            &format!("/c/acme/hooks.json?url={url}&format=XML"),
            None,
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let id = posted.json()["winstrom"]["hooks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let xml = ann.get("/c/acme/hooks.xml").await;
    assert_eq!(
        xml.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    assert!(
        xml.text.contains(&format!("<hooks>\n    <id>{id}</id>"))
            && xml.text.contains("<dataFormat>XML</dataFormat>")
            && xml.text.contains("<lastVersion>1</lastVersion>"),
        "{}",
        xml.text
    );
    let other = ann.get("/c/other/hooks.json").await;
    assert_eq!(other.status, 403);

    let removed = ann
        .send("DELETE", &format!("/c/acme/hooks/{id}.json"), None)
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.json()["winstrom"]["success"], "true");
    for path in [
        format!("/c/acme/hooks/{id}.json"),
        "/c/acme/hooks/x.json".into(),
    ] {
        let gone = ann.send("DELETE", &path, None).await;
        assert_eq!(gone.status, 404, "{path}");
        assert_eq!(gone.json()["winstrom"]["message"], "No such hook.");
    }
    assert_eq!(
        ann.send("PUT", &format!("/c/acme/hooks/{id}/retry.json"), None)
            .await
            .status,
        404
    );

    let off = ann.send("PUT", "/c/acme/changes/disable.json", None).await;
    assert_eq!(off.status, 200);
    let refused = register(&ann, &format!("url={url}&format=JSON&skipUrlTest=true")).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}
