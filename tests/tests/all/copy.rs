//! `bulkhost copy`: a deployment moves from its data directory to PostgreSQL and back, and
//! clients find on the new one what they left on the old: documents by id and key, external
//! ids, attachments, the change feed with its versions, tokens and uploaded plugins.
//!
//! This needs a PostgreSQL server (`make test` starts a private one), so a plain `cargo test`
//! leaves it out; `--include-ignored` runs it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bulkhost_tests::{Api, Auth, ServerProcess, all_changes, database, eventually};
use serde_json::{Value, json};

use crate::process::{binary, hash};

fn config(data: &Path) -> String {
    let config = format!(
        "[[tenants]]\nname = \"acme\"\n[[tenants.users]]\nname = \"ann\"\npassword_hash = \"{}\"\n",
        hash("ann-pw")
    );
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("bulkhost.toml"), &config).unwrap();
    config
}

/// Runs `bulkhost copy --from from --to to` with the configuration in `data`; answers whether
/// it succeeded and what it printed.
fn copy(data: &Path, from: &str, to: &str) -> (bool, String) {
    let out = Command::new(binary())
        .args(["copy", "--from", from, "--to", to, "--config"])
        .arg(data.join("bulkhost.toml"))
        .env("BULKHOST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Everything the test compares between deployments, as a client reads it, links made
/// relative.
async fn observed(ann: &Api, token: &str) -> Value {
    let mut pages = Vec::new();
    let mut next = Some("/api/v1/cashiers/?ordering=-name&page_size=400".to_string());
    while let Some(url) = next {
        let page = ann.get(&url).await.json();
        next = page["next"]
            .as_str()
            .map(|n| n[n.find("/api/").unwrap()..].to_string());
        pages.push(page["results"].clone());
    }
    let with_token = ann.with_auth(Auth::Header("WINFRA-API-TOKEN".into(), token.into()));
    // A tenant's plugins load in the background right after the start.
    let plugins = eventually(Duration::from_secs(10), async || {
        let listed = ann.get("/api_v1/plugins").await.json();
        (listed != json!([])).then_some(listed)
    })
    .await;
    let mut hooks = ann.get("/c/acme/hooks.json").await.json();
    for hook in hooks["winstrom"]["hooks"].as_array_mut().unwrap() {
        // A copy gives hooks new ids, and the writes after it may start a delivery (which
        // fails: the receiver's name does not resolve): what moves is the registration.
        let fields = hook.as_object_mut().unwrap();
        fields.retain(|k, _| ["url", "dataFormat", "lastVersion"].contains(&k.as_str()));
    }
    let seen = json!({
        "pages": pages,
        "hooks": hooks,
        "by_key": ann.get("/api/v1/cashiers/code:C0007/").await.json(),
        "attachment": ann.get("/api/v1/cashiers/code:C0007/attachments/").await.json(),
        "file": ann.get("/api/v1/cashiers/code:C0007/attachments/note.txt").await.text,
        "changes": all_changes(ann, "acme", 1, 500).await,
        "external": ann.get("/c/acme/cashiers/ext:POS:7.json").await.json(),
        "token": with_token.get("/api_v1/estado_xxl").await.status,
        "plugins": plugins,
    });
    // Links name the host that answered, which differs between deployments.
    serde_json::from_str(&seen.to_string().replace(&ann.base, "")).unwrap()
}

/// Asserts that two observations agree, naming the first part that does not.
fn assert_same(seen: &Value, expected: &Value) {
    for (part, value) in expected.as_object().unwrap() {
        assert!(
            seen[part] == *value,
            "{part}: {} instead of {value}",
            seen[part]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `make test` runs it beside a private cluster"]
async fn a_deployment_moves_to_postgresql_and_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, third) = (
        dir.path().join("first"),
        dir.path().join("second"),
        dir.path().join("third"),
    );
    let config = config(&first);
    for data in [&second, &third] {
        std::fs::create_dir_all(data).unwrap();
    }
    let server = ServerProcess::start_on(binary(), &first, &config, &[], None);
    let ann = server.as_user("ann");
    let cashiers: Vec<Value> = (0..1200)
        .map(|i| json!({"cashier_id": format!("C{i:04}"), "name": format!("cashier {}", i % 37)}))
        .collect();
    let mut cashiers = cashiers;
    cashiers[7]["external-ids"] = json!(["ext:POS:7"]);
    for chunk in cashiers.chunks(300) {
        let r = ann
            .post("/api/v1/cashiers/", &Value::from(chunk.to_vec()))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let renamed = ann
        .post(
            "/api/v1/cashiers/",
            &json!({"cashier_id": "C0003", "name": "renamed"}),
        )
        .await;
    assert!(renamed.status < 300, "{}", renamed.text);
    assert_eq!(
        ann.send("DELETE", "/api/v1/cashiers/code:C0004/", None)
            .await
            .status,
        204
    );
    let attached = ann
        .send_raw(
            "PUT",
            "/api/v1/cashiers/code:C0007/attachments/note.txt",
            "text/plain",
            b"till 7".to_vec(),
        )
        .await;
    assert_eq!(attached.status, 201, "{}", attached.text);
    let token = ann
        .post("/api_token/", &json!({"domain": "acme", "api": "xxl"}))
        .await
        .json()["WINFRA-API-TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    let uploaded = ann
        .send_raw(
            "PUT",
            "/api_v1/plugins/mine",
            "application/wasm",
            std::fs::read(env!("PLUGIN_HOSTILE")).unwrap(),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let hooked = ann
        .send(
            "PUT",
            "/c/acme/hooks.json?url=https%3A%2F%2Fhooks.example.com%2Fbulkhost&format=XML&secKey=k&skipUrlTest=true",
            None,
        )
        .await;
    assert_eq!(hooked.status, 200, "{}", hooked.text);
    let before = observed(&ann, &token).await;
    assert_eq!(before["token"], 200, "{before}");
    drop(server);

    let database = database::for_data_dir(&second).expect("a PostgreSQL server");
    let from_dir = first.join("db").display().to_string();
    let (ok, printed) = copy(&first, &from_dir, &database);
    assert!(ok, "{printed}");
    assert!(printed.contains("copied 1199 documents"), "{printed}");
    assert!(printed.contains("and 1 change hooks"), "{printed}");
    let on_postgres = ServerProcess::start_on(binary(), &second, &config, &[], Some(&database));
    let ann = on_postgres.as_user("ann");
    assert_same(&observed(&ann, &token).await, &before);
    let added = ann
        .post(
            "/api/v1/cashiers/",
            &json!({"cashier_id": "C9999", "name": "new"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let url = ann.get("/api/v1/cashiers/code:C9999/").await.json()["url"].clone();
    assert!(
        url.as_str().unwrap().ends_with("/api/v1/cashiers/1201/"),
        "ids go on from the last one given, deleted ones included: {url}"
    );
    drop(on_postgres);

    let (again, refused) = copy(&first, &from_dir, &database);
    assert!(!again, "a second copy into a filled target: {refused}");
    assert!(refused.contains("the target holds"), "{refused}");

    let back = third.join("db").display().to_string();
    let (ok, printed) = copy(&first, &database, &back);
    assert!(ok, "{printed}");
    let on_redb = ServerProcess::start_on(binary(), &third, &config, &[], None);
    let ann = on_redb.as_user("ann");
    assert_eq!(
        ann.get("/api/v1/cashiers/code:C9999/").await.json()["name"],
        "new"
    );
    assert_eq!(
        ann.send("DELETE", "/api/v1/cashiers/code:C9999/", None)
            .await
            .status,
        204
    );
    let mut after = observed(&ann, &token).await;
    // The round trip added C9999 and took it away again: two more changes.
    let kept = before["changes"].as_array().unwrap().len();
    let added = after["changes"].as_array_mut().unwrap().split_off(kept);
    assert_eq!(added.len(), 2, "{added:?}");
    assert_same(&after, &before);
}
