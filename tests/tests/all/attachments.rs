//! Files attached to documents: stored, listed, downloaded and removed under the document's
//! URL, versioned in the change feed with their document, gone with it, and private to the
//! tenant.

use bulkhost_tests::{TestServer, all_changes, seed_references};

const SHOP: &str = "/api/v1/shops/code:1/";
const LOGO: &str = "/api/v1/shops/code:1/attachments/logo.png";

/// Bytes that are not UTF-8, so a download that mangled binary content would show.
fn png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0x00];
    bytes.extend((0..=255u8).cycle().take(5000));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_live_beside_their_document() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let before = all_changes(&ann, "acme", 1, 1000).await.len();

    let put = ann.send_raw("PUT", LOGO, "image/png", png()).await;
    assert_eq!(put.status, 201, "{}", put.text);
    let info = put.json();
    assert_eq!(info["name"], "logo.png");
    assert_eq!(info["content_type"], "image/png");
    assert_eq!(info["size"], png().len());
    assert!(
        info["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/shops/code:1/attachments/logo%2Epng"),
        "{info}"
    );
    let replaced = ann
        .send_raw("PUT", LOGO, "image/png", png()[..100].to_vec())
        .await;
    assert_eq!(replaced.status, 200, "replacing answers 200");
    ann.send_raw(
        "PUT",
        &format!("{SHOP}attachments/notes.txt"),
        "text/plain",
        b"open 9-5".to_vec(),
    )
    .await;

    let file = ann.get(LOGO).await;
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename*=UTF-8''logo%2Epng"),
        "a file is a download, never a page of the server's origin"
    );
    let list = ann.get(&format!("{SHOP}attachments/")).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["logo.png", "notes.txt"]);
    assert_eq!(list[0]["size"], 100);

    let file = ann.get(LOGO).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.header("content-type"), Some("image/png"));
    assert_eq!(file.bytes, png()[..100]);
    let url = info["url"].as_str().unwrap();
    let followed = ann.get(url.strip_prefix(&ann.base).unwrap()).await;
    assert_eq!(
        followed.bytes,
        png()[..100],
        "the listed url downloads the file"
    );

    let changes = all_changes(&ann, "acme", 1, 1000).await;
    let new: Vec<_> = changes[before..]
        .iter()
        .map(|c| {
            (
                c["@evidence"].as_str().unwrap(),
                c["@operation"].as_str().unwrap(),
                c["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        new,
        [("shops", "update", "1"); 3],
        "each attachment write is an update of its document"
    );

    let globex = server.as_user("gus");
    seed_references(&globex).await;
    assert_eq!(
        globex.get(LOGO).await.status,
        404,
        "another tenant sees nothing"
    );
    assert_eq!(
        globex.get(&format!("{SHOP}attachments/")).await.json(),
        serde_json::json!([])
    );

    assert_eq!(ann.send("DELETE", LOGO, None).await.status, 204);
    assert_eq!(ann.get(LOGO).await.status, 404);
    assert_eq!(ann.send("DELETE", LOGO, None).await.status, 404);

    assert_eq!(ann.send("DELETE", SHOP, None).await.status, 204);
    let recreated = ann
        .post(
            "/api/v1/shops/",
            &serde_json::json!({"shop_id": "1", "name": "Shop 1"}),
        )
        .await;
    assert_eq!(recreated.status, 201);
    assert_eq!(
        ann.get(&format!("{SHOP}attachments/")).await.json(),
        serde_json::json!([]),
        "deleting a document deletes its attachments"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_attachment_requests_get_drf_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let version = all_changes(&ann, "acme", 1, 1000).await.len();

    let missing = ann
        .send_raw(
            "PUT",
            "/api/v1/shops/code:9/attachments/a.txt",
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["detail"], "Not found.");

    let control = ann
        .send_raw(
            "PUT",
            &format!("{SHOP}attachments/a%01b"),
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(control.status, 400, "{}", control.text);
    assert!(
        control.json()["detail"]
            .as_str()
            .unwrap()
            .contains("control characters")
    );

    let huge = ann
        .send_raw(
            "PUT",
            LOGO,
            "image/png",
            vec![0; bulkhost_core::MAX_ATTACHMENT_BYTES + 1],
        )
        .await;
    assert_eq!(huge.status, 413);
    assert!(huge.json()["detail"].as_str().unwrap().contains("at most"));

    let post = ann.send_raw("POST", LOGO, "image/png", png()).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, PUT, DELETE, HEAD"));

    assert_eq!(ann.send("DELETE", LOGO, None).await.status, 404);
    assert_eq!(
        all_changes(&ann, "acme", 1, 1000).await.len(),
        version,
        "no refused request wrote a change"
    );
    assert_eq!(
        ann.get(&format!("{SHOP}attachments/")).await.json(),
        serde_json::json!([])
    );
    server.stop().await;
}
