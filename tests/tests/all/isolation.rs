//! One tenant's clients cannot starve another's: stalled readers hold no thread and are cut
//! off, a flood of made-up credentials is throttled without delaying known users, and a slow
//! webhook receiver delays only its own tenant's notices.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bulkhost_tests::{TestServer, plugins_with, queue_export, settled_export};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::receivers::{SECRET, receiver};

async fn server_with_synthetic(extra: &str) -> (TestServer, tempfile::TempDir) {
    let plugins = plugins_with(&[("synthetic.wasm", env!("PLUGIN_SYNTHETIC"))]);
    let server = TestServer::start_with(&format!(
        "[plugins]\ndir = \"{}\"\n{extra}",
        plugins.path().display()
    ))
    .await;
    (server, plugins)
}

/// Opens a connection, sends `GET path` as `user`, and never reads the answer.
async fn stalled(base: &str, path: &str, user: &str) -> tokio::net::TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-pw"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Answers within `limit` or fails the test.
async fn answered<T>(limit: Duration, what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| panic!("{what} was not answered within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_downloads_and_listings_hold_up_nobody_else() {
    bulkhost_server::listener::raise_file_limit().unwrap();
    let (server, _plugins) =
        server_with_synthetic("[http]\nwrite_timeout_secs = 3\nstreams_per_tenant = 4\n").await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let state = settled_export(
        &ann,
        &queue_export(
            &ann,
            json!([{"dataset": "synthetic", "count": 20000, "width": 1000}]),
        )
        .await,
    )
    .await;
    assert_eq!(state["estado"], "OK", "{state}");
    let id = state["peticion_id"].as_str().unwrap().to_string();
    let products: Vec<Value> = (0..20000)
        .map(|i| json!({"product_id": format!("P{i:05}"), "name": "x".repeat(300)}))
        .collect();
    for chunk in products.chunks(2000) {
        let r = ann
            .post("/api/v1/products/", &Value::from(chunk.to_vec()))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    let download = format!("/api_v1/datos_xxl/{id}/synthetic");
    let mut held = Vec::new();
    for i in 0..700 {
        let path = if i % 2 == 0 {
            download.as_str()
        } else {
            "/c/acme/products.json?limit=0"
        };
        held.push(stalled(&server.base, path, "ann").await);
    }
    let limit = Duration::from_secs(5);
    for i in 0..20 {
        let page = answered(limit, "another tenant's page", gus.get("/api/v1/shops/")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let write = answered(
            limit,
            "another tenant's write",
            gus.post(
                "/api/v1/shops/",
                &json!({"shop_id": format!("S{i}"), "name": "Shop"}),
            ),
        )
        .await;
        assert_eq!(write.status, 201, "{}", write.text);
    }
    let refused = answered(limit, "a download past the cap", ann.get(&download)).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("4 streamed responses")
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    let whole = answered(
        Duration::from_secs(30),
        "a download once the stalled ones were cut off",
        ann.get(&download),
    )
    .await;
    assert_eq!(
        whole.status, 200,
        "the write timeout freed the tenant's places"
    );
    assert_eq!(whole.json().as_array().unwrap().len(), 20000);
    drop(held);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_credentials_is_throttled_without_delaying_a_known_user() {
    let server = TestServer::start_with(
        "[auth]\nchecks_per_address_per_minute = 20\nchecks_per_user_per_minute = 1000\n",
    )
    .await;
    let gus = server.as_user("gus");
    assert_eq!(gus.get("/api/v1/shops/").await.status, 200);
    let (unauthorized, throttled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut flood = Vec::new();
    for i in 0..100 {
        let intruder = server.anonymous().with_auth(bulkhost_tests::Auth::Basic(
            format!("intruder-{i}"),
            format!("guess-{i}"),
        ));
        let (unauthorized, throttled) = (unauthorized.clone(), throttled.clone());
        flood.push(tokio::spawn(async move {
            let r = intruder.get("/api/v1/shops/").await;
            match r.status {
                401 => unauthorized.fetch_add(1, Ordering::Relaxed),
                429 => {
                    assert!(r.header("retry-after").is_some());
                    assert!(r.json()["detail"].as_str().unwrap().contains("Too many"));
                    throttled.fetch_add(1, Ordering::Relaxed)
                }
                other => panic!("{other}: {}", r.text),
            };
        }));
    }
    for _ in 0..20 {
        let page = answered(
            Duration::from_secs(5),
            "a known user during the flood",
            gus.get("/api/v1/shops/"),
        )
        .await;
        assert_eq!(page.status, 200);
    }
    for request in flood {
        request.await.unwrap();
    }
    assert!(
        unauthorized.load(Ordering::Relaxed) <= 20,
        "at most the address's ration of checks was made"
    );
    assert!(throttled.load(Ordering::Relaxed) >= 80);
    server.stop().await;

    let server = TestServer::start_with(
        "[auth]\nchecks_per_address_per_minute = 1000\nchecks_per_user_per_minute = 3\n",
    )
    .await;
    let wrong = server
        .anonymous()
        .with_auth(bulkhost_tests::Auth::Basic("ann".into(), "wrong".into()));
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(wrong.get("/c/acme/changes.json").await.status);
        }
        out
    };
    assert_eq!(
        statuses,
        [401, 401, 401, 429, 429],
        "a user name has its own ration"
    );
    let abra = wrong.get("/c/acme/changes.json").await;
    assert_eq!(abra.status, 429);
    assert_eq!(abra.json()["winstrom"]["success"], "false", "{}", abra.text);
    assert_eq!(
        server.as_user("gus").get("/api/v1/shops/").await.status,
        200,
        "another user is not held back"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_receiver_delays_only_its_own_tenant() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    let reached = Arc::new(AtomicUsize::new(0));
    {
        let reached = reached.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                reached.fetch_add(1, Ordering::Relaxed);
                held.push(socket);
            }
        });
    }
    let fast = receiver(vec![]).await;
    let (server, _plugins) = server_with_synthetic(&format!(
        "[webhooks]\nallow_private = true\nsecret = \"{SECRET}\"\nper_tenant = 1\n"
    ))
    .await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    for _ in 0..4 {
        settled_export(
            &ann,
            &queue_export(
                &ann,
                json!([{"dataset": "synthetic", "count": 5, "webhook": silent_url}]),
            )
            .await,
        )
        .await;
    }
    let started = Instant::now();
    while reached.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    settled_export(
        &gus,
        &queue_export(
            &gus,
            json!([{"dataset": "synthetic", "count": 5, "webhook": fast.url}]),
        )
        .await,
    )
    .await;
    let calls = fast.wait_for(1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "another tenant's notice waited {:?} behind a silent receiver",
        started.elapsed()
    );
    calls[0].assert_signed();
    assert_eq!(
        reached.load(Ordering::Relaxed),
        1,
        "one tenant has one delivery in flight at a time"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holds_at_most_its_cap_of_long_polls() {
    let server = TestServer::start_with("[http]\nlong_polls_per_tenant = 2\n").await;
    let (ann, gus) = (server.as_user("ann"), server.as_user("gus"));
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let ann = ann.clone();
            tokio::spawn(async move { ann.get("/c/acme/changes.json?start=1&wait=3").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = ann.get("/c/acme/changes.json?start=1&wait=3").await;
    assert_eq!(third.status, 429, "{}", third.text);
    assert_eq!(third.header("retry-after"), Some("1"));
    assert_eq!(third.json()["winstrom"]["success"], "false");
    assert_eq!(
        gus.get("/c/globex/changes.json?start=1&wait=1")
            .await
            .status,
        200,
        "another tenant's long-poll is its own"
    );
    for poll in polls {
        assert_eq!(poll.await.unwrap().status, 200);
    }
    assert_eq!(
        ann.get("/c/acme/changes.json?start=1&wait=1").await.status,
        200,
        "finished long-polls free their places"
    );
    server.stop().await;
}
