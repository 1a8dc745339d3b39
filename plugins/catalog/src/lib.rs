//! `catalog`: a product catalogue API in the style of LogiCommerce's e-commerce API, for batches.
//!
//! `GET /v1/products` pages through the tenant's `products` collection (`page`, `perPage` at
//! most 100), `GET`, `PUT` and `DELETE /v1/products/{id}` read, upsert and remove one product,
//! `POST /v1/products` creates one. Products are checked here before the host's own validation
//! runs: a barcode must be a valid EAN-13 and a price a non-negative number. Writes go through
//! the host's write path, so they appear in the collections API and the change feed.

use bulkhost_endpoint_sdk::serde_json::{Map, Value, json};
use bulkhost_endpoint_sdk::{Call, EndpointInfo, Endpoints, Reply, documents, writes};

/// The collection products are stored in.
const PRODUCTS: &str = "products";
/// Products per page unless `perPage` says otherwise.
const DEFAULT_PER_PAGE: u64 = 20;
/// The most products one page holds.
const MAX_PER_PAGE: u64 = 100;

struct Catalog;

fn endpoint(method: &str, path: &str, load_score: u32, description: &str) -> EndpointInfo {
    EndpointInfo {
        method: method.into(),
        path: path.into(),
        load_score,
        description: description.into(),
    }
}

impl Endpoints for Catalog {
    fn endpoints() -> Vec<EndpointInfo> {
        vec![
            endpoint(
                "GET",
                "/v1/products",
                1,
                "A page of products: page, perPage (at most 100).",
            ),
            endpoint(
                "POST",
                "/v1/products",
                2,
                "Creates a product; 409 when the id exists.",
            ),
            endpoint("GET", "/v1/products/{id}", 1, "One product."),
            endpoint(
                "PUT",
                "/v1/products/{id}",
                2,
                "Creates or replaces the product `id`.",
            ),
            endpoint("DELETE", "/v1/products/{id}", 1, "Removes a product."),
        ]
    }

    fn handle(call: &Call) -> Reply {
        let id = call.path_param("id").unwrap_or_default();
        let outcome = match (call.method(), call.template()) {
            ("GET", "/v1/products") => list(call),
            ("POST", "/v1/products") => call.json().and_then(|body| create(&body)),
            ("GET", _) => find(id).map(|p| Reply::json(200, p)),
            ("PUT", _) => call.json().and_then(|body| replace(id, &body)),
            ("DELETE", _) => remove(id),
            _ => Err(Reply::error(405, "METHOD_NOT_ALLOWED", "not served")),
        };
        outcome.unwrap_or_else(|reply| reply)
    }
}

fn unavailable<E: std::fmt::Debug>(e: E) -> Reply {
    Reply::error(503, "UNAVAILABLE", &format!("{e:?}"))
}

/// A stored product as the API shows it.
fn render(body: &str) -> Result<Value, Reply> {
    let stored: Map<String, Value> =
        bulkhost_endpoint_sdk::serde_json::from_str(body).map_err(unavailable)?;
    let field = |name: &str| stored.get(name).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "id": field("product_id"),
        "name": field("name"),
        "barcode": field("barcode"),
        "unit": field("unit"),
        "price": field("price"),
    }))
}

fn positive(call: &Call, name: &str, default: u64) -> Result<u64, Reply> {
    match call.query(name) {
        None => Ok(default),
        Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Reply::error(
                400,
                "INVALID_PARAMETER",
                &format!("{name} must be a positive integer"),
            )
        }),
    }
}

fn list(call: &Call) -> Result<Reply, Reply> {
    let page = positive(call, "page", 1)?;
    let per_page = positive(call, "perPage", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let skip = (page - 1).saturating_mul(per_page);
    let (mut items, mut total, mut cursor) = (Vec::new(), 0u64, None);
    loop {
        let batch = documents::scan(PRODUCTS, cursor.as_deref(), 1000).map_err(unavailable)?;
        for doc in &batch.documents {
            if total >= skip && (items.len() as u64) < per_page {
                items.push(render(&doc.body)?);
            }
            total += 1;
        }
        cursor = batch.next;
        if cursor.is_none() {
            break;
        }
    }
    Ok(Reply::json(
        200,
        json!({
            "items": items,
            "pagination": {
                "page": page,
                "perPage": per_page,
                "totalItems": total,
                "totalPages": total.div_ceil(per_page),
            }
        }),
    ))
}

fn find(id: &str) -> Result<Value, Reply> {
    match documents::get(PRODUCTS, id).map_err(unavailable)? {
        Some(doc) => render(&doc.body),
        None => Err(Reply::error(404, "NOT_FOUND", &format!("no product {id}"))),
    }
}

/// Whether `code` is a valid EAN-13: thirteen digits whose last is the check digit.
fn valid_ean13(code: &str) -> bool {
    let digits: Vec<u32> = code.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 13 || code.len() != 13 {
        return false;
    }
    let sum: u32 = digits[..12]
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
        .sum();
    (10 - sum % 10) % 10 == digits[12]
}

/// The collection document for an API product, or the 422 that says what is wrong.
fn to_document(id: &str, body: &Value) -> Result<Value, Reply> {
    let invalid = |message: &str| Reply::error(422, "INVALID_PRODUCT", message);
    let product = body
        .as_object()
        .ok_or_else(|| invalid("a product is a JSON object"))?;
    if id.is_empty() {
        return Err(invalid("id is required"));
    }
    let name = product
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.trim().is_empty() {
        return Err(invalid("name is required"));
    }
    let barcode = product.get("barcode").filter(|b| !b.is_null());
    if let Some(barcode) = barcode
        && !barcode.as_str().is_some_and(valid_ean13)
    {
        return Err(invalid("barcode must be a valid EAN-13"));
    }
    let price = product.get("price").filter(|p| !p.is_null());
    if let Some(price) = price
        && !price.as_f64().is_some_and(|p| p >= 0.0)
    {
        return Err(invalid("price must be a number, zero or more"));
    }
    let mut document = json!({"product_id": id, "name": name});
    for (field, value) in [
        ("barcode", barcode),
        ("unit", product.get("unit")),
        ("price", price),
    ] {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            document[field] = if field == "price" {
                Value::String(value.to_string())
            } else {
                value.clone()
            };
        }
    }
    Ok(document)
}

/// Stores a product through the host's write path (`write` is `writes::create` or
/// `writes::upsert`) and answers it, 201 when it is new. The answer comes from the write's
/// outcome and what was written, not from reads made before: reads see the collection as it
/// was when the call started, and a batch operation run again after a crash gets its writes'
/// first outcomes back.
fn store(
    id: &str,
    body: &Value,
    write: fn(&str, &Value) -> Result<writes::Upserted, writes::Error>,
) -> Result<Reply, Reply> {
    let document = to_document(id, body)?;
    let written = write(PRODUCTS, &document).map_err(|e| match e {
        writes::Error::Invalid(fields) => Reply::json(
            422,
            json!({"error": {"code": "INVALID_PRODUCT", "message": "the catalogue refused the product", "fields": fields}}),
        ),
        writes::Error::Exists(_) => {
            Reply::error(409, "ALREADY_EXISTS", &format!("product {id} exists"))
        }
        other => unavailable(other),
    })?;
    Ok(Reply::json(
        if written.inserted > 0 { 201 } else { 200 },
        render(&document.to_string())?,
    ))
}

fn create(body: &Value) -> Result<Reply, Reply> {
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
    store(id, body, writes::create)
}

fn replace(id: &str, body: &Value) -> Result<Reply, Reply> {
    store(id, body, writes::upsert)
}

fn remove(id: &str) -> Result<Reply, Reply> {
    match writes::delete(PRODUCTS, id) {
        Ok(_) => Ok(Reply::json(204, Value::Null)),
        Err(writes::Error::NotFound) => {
            Err(Reply::error(404, "NOT_FOUND", &format!("no product {id}")))
        }
        Err(other) => Err(unavailable(other)),
    }
}

bulkhost_endpoint_sdk::export_endpoints!(Catalog);
