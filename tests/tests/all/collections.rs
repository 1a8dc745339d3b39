//! The Datawiz collections: paging, search, ordering, upsert, validation, references, OPTIONS, HEAD, DELETE,
//! and the error shapes of bad input.

use bulkhost_tests::{Api, TestServer, seed_references, stock_doc};
use serde_json::{Value, json};

const DOCS: &str = "/api/v1/stock-taking-documents/";

async fn global_version(api: &Api) -> String {
    api.get("/api/v1/shops/?page_size=1")
        .await
        .header("x-global-version")
        .expect("version header")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_link_absolutely_and_end_with_null() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let shops: Vec<Value> = (0..25)
        .map(|i| json!({"shop_id": format!("S{i:02}"), "name": format!("Shop {i}")}))
        .collect();
    assert_eq!(
        ann.post("/api/v1/shops/", &Value::Array(shops))
            .await
            .status,
        201
    );

    let first = ann.get("/api/v1/shops/?page_size=10").await.json();
    assert_eq!(first["count"], 25);
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(
        first["next"],
        format!("{}/api/v1/shops/?page_size=10&page=2", server.base)
    );
    assert_eq!(first["results"].as_array().unwrap().len(), 10);
    assert_eq!(first["results"][0]["shop_id"], "S00");
    assert_eq!(
        first["results"][0]["url"],
        format!("{}/api/v1/shops/1/", server.base)
    );

    let second = ann.get("/api/v1/shops/?page_size=10&page=2").await.json();
    assert_eq!(
        second["previous"],
        format!("{}/api/v1/shops/?page_size=10", server.base)
    );
    let last = ann.get("/api/v1/shops/?page_size=10&page=3").await.json();
    assert_eq!(last["next"], Value::Null);
    assert_eq!(last["results"].as_array().unwrap().len(), 5);
    assert_eq!(last["results"][4]["shop_id"], "S24");
    let by_name = ann
        .get("/api/v1/shops/?page_size=10&page=last")
        .await
        .json();
    assert_eq!(by_name["results"], last["results"]);

    let all = ann.get("/api/v1/shops/").await.json();
    assert_eq!(
        all["results"].as_array().unwrap().len(),
        25,
        "default page size is 100"
    );
    let capped = ann.get("/api/v1/shops/?page_size=5000").await.json();
    assert_eq!(capped["results"].as_array().unwrap().len(), 25);

    for bad in ["0", "-1", "abc", "4"] {
        let r = ann
            .get(&format!("/api/v1/shops/?page_size=10&page={bad}"))
            .await;
        assert_eq!(r.status, 404, "page={bad}");
        assert_eq!(r.json(), json!({"detail": "Invalid page."}));
    }
    server.stop().await;
}

/// The `product_id`s of a page, in order.
fn ids(page: Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["product_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_ordering_follow_drf() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let products = json!([
        {"product_id": "A", "name": "Green apple", "price": "3.5"},
        {"product_id": "B", "name": "Red apple", "price": "2"},
        {"product_id": "C", "name": "Banana", "price": "10"},
        {"product_id": "D", "name": "Apple juice", "price": "2"},
    ]);
    assert_eq!(ann.post("/api/v1/products/", &products).await.status, 201);
    let found = ann.get("/api/v1/products/?search=APPLE").await.json();
    assert_eq!(found["count"], 3);
    assert_eq!(ids(found), ["A", "B", "D"]);
    assert_eq!(
        ids(ann.get("/api/v1/products/?search=apple%20red").await.json()),
        ["B"]
    );
    let none = ann
        .get("/api/v1/products/.json/?search=unknown-string")
        .await
        .json();
    assert_eq!(
        none,
        json!({"count": 0, "next": null, "previous": null, "results": []})
    );

    assert_eq!(
        ids(ann.get("/api/v1/products/?ordering=-price").await.json()),
        ["C", "A", "D", "B"],
        "decimals order numerically; a descending order is the exact reverse of the ascending one"
    );
    assert_eq!(
        ids(ann
            .get("/api/v1/products/?ordering=price,-name")
            .await
            .json()),
        ["B", "D", "A", "C"]
    );
    assert_eq!(
        ids(ann
            .get("/api/v1/products/?ordering=price,-name&page_size=1&page=2")
            .await
            .json()),
        ["D"]
    );
    assert_eq!(
        ids(ann
            .get("/api/v1/products/?ordering=-price,name&page_size=2&page=2")
            .await
            .json()),
        ["D", "B"]
    );
    assert_eq!(
        ids(ann
            .get("/api/v1/products/?ordering=name&search=apple")
            .await
            .json()),
        ["D", "A", "B"]
    );
    assert_eq!(
        ids(ann
            .get("/api/v1/products/?ordering=nonexistent")
            .await
            .json()),
        ["A", "B", "C", "D"],
        "unknown ordering fields are ignored, as DRF does"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_by_key_answers_counts_and_renders_urls() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let r = ann.post(DOCS, &stock_doc("cb2084aa", "1", 10)).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json(), json!({"updated": 0, "inserted": 1}));
    let location = r.header("location").unwrap().to_string();
    assert_eq!(location, format!("{}{DOCS}1/", server.base));

    let again = ann
        .post(
            "/api/v1/stock-taking-documents/?format=json",
            &json!([
                stock_doc("cb2084aa", "1", 11),
                stock_doc("cb2084aa", "2", 1)
            ]),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json(), json!({"updated": 1, "inserted": 1}));

    let doc = ann.get(&format!("{DOCS}1/")).await.json();
    assert_eq!(
        doc,
        json!({
            "url": format!("{}{DOCS}1/", server.base),
            "document_id": "cb2084aa",
            "date": "2015-01-01T00:00:00",
            "shop_id": "1",
            "shop_url": format!("{}/api/v1/shops/1/", server.base),
            "stuff_id": null,
            "stuff_url": null,
            "products": [{
                "product_id": "P1",
                "product_url": format!("{}/api/v1/products/1/", server.base),
                "stock_qty": "2.0000",
                "fact_qty": "11.0000"
            }]
        })
    );
    let by_code = ann.get(&format!("{DOCS}code:cb2084aa%2F2/")).await;
    assert_eq!(by_code.status, 200, "{}", by_code.text);
    assert_eq!(by_code.json()["shop_id"], "2");
    assert_eq!(
        ann.get("/api/v1/stock-taking-documents.json").await.json()["count"],
        2
    );
    assert_eq!(
        ann.get(&format!("{DOCS}2.json")).await.json()["shop_id"],
        "2"
    );

    let html = ann.get(&format!("{DOCS}?format=api")).await;
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text.contains("Stock Taking Document List"));
    server.stop().await;
}

/// Pages are served again from their rendering while the tenant's data stands; every write
/// since, in the listed collection or in one it references, shows on the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_read_again_shows_every_write_since_in_any_collection() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    assert_eq!(ann.post(DOCS, &stock_doc("d1", "3", 10)).await.status, 201);
    let read = || async {
        let page = ann.get(DOCS).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let version = page.header("x-global-version").unwrap().to_string();
        (page.json()["results"][0].clone(), version)
    };
    let (first, version) = read().await;
    assert_eq!(first["products"][0]["fact_qty"], "10.0000");
    assert_eq!(
        first["shop_url"],
        format!("{}/api/v1/shops/3/", server.base)
    );
    assert_eq!(read().await, (first, version.clone()), "nothing changed");

    assert_eq!(ann.post(DOCS, &stock_doc("d1", "3", 11)).await.status, 201);
    let (updated, after_update) = read().await;
    assert_eq!(updated["products"][0]["fact_qty"], "11.0000");
    assert_ne!(after_update, version);

    let delete = ann.send("DELETE", "/api/v1/shops/3/", None).await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    assert_eq!(read().await.0["shop_url"], Value::Null, "the shop is gone");
    let shop = json!({"shop_id": "3", "name": "Shop 3, again"});
    assert_eq!(ann.post("/api/v1/shops/", &shop).await.status, 201);
    let (relinked, last) = read().await;
    assert_eq!(
        relinked["shop_url"],
        format!("{}/api/v1/shops/4/", server.base),
        "the shop's new id"
    );
    assert_eq!(last, global_version(&ann).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_with_one_bad_item_writes_nothing_and_names_the_item() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let before = global_version(&ann).await;
    let mut missing_field = stock_doc("D2", "1", 1);
    missing_field.as_object_mut().unwrap().remove("date");
    let mut bad_product = stock_doc("D3", "1", 1);
    bad_product["products"] = json!([
        {"product_id": "P1", "stock_qty": "1", "fact_qty": "1"},
        {"product_id": "P404", "stock_qty": "x", "fact_qty": "1"}
    ]);
    let r = ann
        .post(
            DOCS,
            &json!([
                stock_doc("D1", "1", 1),
                missing_field,
                stock_doc("D4", "99", 1),
                bad_product
            ]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!([
            {},
            {"date": ["This field is required."]},
            {},
            {"products": [{}, {"stock_qty": ["A valid number is required."]}]}
        ]),
        "type errors are reported before reference errors"
    );
    let r = ann
        .post(
            DOCS,
            &json!([stock_doc("D1", "1", 1), stock_doc("D4", "99", 1)]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!([{}, {"shop_id": ["Invalid pk \"99\" - object does not exist."]}])
    );
    let mut nested_ref = stock_doc("D5", "1", 1);
    nested_ref["products"][0]["product_id"] = json!("P404");
    let r = ann.post(DOCS, &nested_ref).await;
    assert_eq!(
        r.json(),
        json!({"products": [{"product_id": ["Invalid pk \"P404\" - object does not exist."]}]})
    );
    assert_eq!(ann.get(DOCS).await.json()["count"], 0);
    assert_eq!(global_version(&ann).await, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_drf_errors_and_changes_nothing() {
    let server = TestServer::start_with("max_body_bytes = 2048").await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    let before = global_version(&ann).await;

    let malformed = ann
        .send_raw(
            "POST",
            DOCS,
            "application/json",
            b"{\"document_id\": ".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );

    let wrong_types = ann
        .post(
            DOCS,
            &json!({"document_id": {"a": 1}, "date": "yesterday", "shop_id": "1", "products": "none"}),
        )
        .await;
    assert_eq!(wrong_types.status, 400);
    assert_eq!(
        wrong_types.json(),
        json!({
            "document_id": ["Not a valid string."],
            "date": ["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."],
            "products": ["Expected a list of items but got type \"str\"."]
        })
    );
    let not_object = ann.post(DOCS, &json!("text")).await;
    assert_eq!(
        not_object.json(),
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]})
    );
    let too_long = ann
        .post(
            "/api/v1/shops/",
            &json!({"shop_id": "x".repeat(51), "name": "n"}),
        )
        .await;
    assert_eq!(
        too_long.json(),
        json!({"shop_id": ["Ensure this field has no more than 50 characters."]})
    );
    let oversized = ann
        .post(
            "/api/v1/shops/",
            &json!({"shop_id": "big", "name": "n".repeat(4096)}),
        )
        .await;
    assert_eq!(oversized.status, 413);
    assert!(oversized.json()["detail"].is_string());
    let form = ann
        .send_raw(
            "POST",
            "/api/v1/shops/",
            "text/plain",
            b"shop_id=1".to_vec(),
        )
        .await;
    assert_eq!(form.status, 415);
    let unknown = ann.get("/api/v1/no-such-collection/").await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (404, json!({"detail": "Not found."}))
    );
    let unknown_post = ann.post("/api/v1/no-such-collection/", &json!({})).await;
    assert_eq!(unknown_post.status, 404);
    let put = ann.send("PUT", DOCS, Some(&json!({}))).await;
    assert_eq!(put.status, 405);
    assert_eq!(put.json(), json!({"detail": "Method \"PUT\" not allowed."}));
    assert_eq!(put.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
    assert_eq!(ann.get(&format!("{DOCS}?format=xml")).await.status, 404);
    assert_eq!(ann.get(&format!("{DOCS}999/")).await.status, 404);
    assert_eq!(ann.get(&format!("{DOCS}not-an-id/")).await.status, 404);

    assert_eq!(global_version(&ann).await, before);
    assert_eq!(ann.get(DOCS).await.json()["count"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_head_and_delete() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    seed_references(&ann).await;
    ann.post(DOCS, &stock_doc("D1", "1", 1)).await;

    let options = ann.send("OPTIONS", DOCS, None).await;
    assert_eq!(options.status, 200);
    assert_eq!(options.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
    let meta = options.json();
    assert_eq!(meta["name"], "Stock Taking Document List");
    assert_eq!(meta["renders"], json!(["application/json", "text/html"]));
    let post = &meta["actions"]["POST"];
    let names: Vec<&str> = post
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "url",
            "document_id",
            "date",
            "shop_id",
            "shop_url",
            "stuff_id",
            "stuff_url",
            "products"
        ]
    );
    assert_eq!(
        post["url"],
        json!({"type": "field", "required": false, "read_only": true, "label": "Url"})
    );
    assert_eq!(
        post["document_id"],
        json!({"type": "string", "required": true, "read_only": false, "label": "Document id", "max_length": 200})
    );
    assert_eq!(post["date"]["type"], "datetime");
    assert_eq!(post["products"]["type"], "field");
    let child = &post["products"]["child"];
    assert_eq!(child["type"], "nested object");
    assert_eq!(
        child["children"]["stock_qty"],
        json!({"type": "decimal", "required": true, "read_only": false, "label": "Stock qty", "decimal_places": 4})
    );
    assert_eq!(child["children"]["product_url"]["read_only"], true);

    let head = ann.send("HEAD", DOCS, None).await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty());

    let delete = ann.send("DELETE", &format!("{DOCS}1/"), None).await;
    assert_eq!(delete.status, 204);
    assert_eq!(ann.get(&format!("{DOCS}1/")).await.status, 404);
    assert_eq!(
        ann.send("DELETE", &format!("{DOCS}1/"), None).await.status,
        404
    );
    assert_eq!(ann.get(DOCS).await.json()["count"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_order_exactly_past_two_to_the_fifty_three() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let products = json!([
        {"product_id": "A", "name": "a", "price": "9007199254740993"},
        {"product_id": "B", "name": "b", "price": "9007199254740992"},
        {"product_id": "C", "name": "c", "price": "9007199254740992.5"},
        {"product_id": "D", "name": "d", "price": "-9007199254740993"},
        {"product_id": "E", "name": "e", "price": "-9007199254740992"},
    ]);
    assert_eq!(ann.post("/api/v1/products/", &products).await.status, 201);
    assert_eq!(
        ids(ann.get("/api/v1/products/?ordering=price").await.json()),
        ["D", "E", "B", "C", "A"],
        "values an f64 cannot tell apart still order by their value"
    );
    assert_eq!(
        ids(ann.get("/api/v1/products/?ordering=-price").await.json()),
        ["A", "C", "B", "E", "D"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_xml_cannot_carry_is_refused_with_a_field_error() {
    let server = TestServer::start().await;
    let ann = server.as_user("ann");
    let version = ann
        .get("/api/v1/shops/")
        .await
        .header("x-global-version")
        .map(str::to_string);
    for (text, message) in [
        ("bad\u{1}name", "The character U+0001 is not allowed."),
        ("nul\u{0}", "Null characters are not allowed."),
        ("\u{FFFF}", "The character U+FFFF is not allowed."),
    ] {
        let r = ann
            .post("/api/v1/shops/", &json!({"shop_id": "1", "name": text}))
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.json(), json!({"name": [message]}));
    }
    let ext = ann
        .post(
            "/api/v1/shops/",
            &json!({"shop_id": "1", "name": "ok", "external-ids": ["ext:SYS:\u{8}"]}),
        )
        .await;
    assert_eq!(ext.status, 400, "{}", ext.text);
    assert_eq!(
        ann.get("/api/v1/shops/")
            .await
            .header("x-global-version")
            .map(str::to_string),
        version,
        "nothing was written"
    );
    let fine = ann
        .post(
            "/api/v1/shops/",
            &json!({"shop_id": "1", "name": "tab\tand\nnewline"}),
        )
        .await;
    assert_eq!(
        fine.status, 201,
        "XML carries tabs and newlines: {}",
        fine.text
    );
    server.stop().await;
}
