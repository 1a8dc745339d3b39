//! A bulkhost batch endpoint plugin: `GET /v1/shops/{id}` answers one shop of the tenant's
//! `shops` collection, `PUT /v1/shops/{id}` creates or replaces it through the host's
//! validation and change feed. Replace them with your own endpoints.

use bulkhost_endpoint_sdk::serde_json::{self, Value, json};
use bulkhost_endpoint_sdk::{Call, EndpointInfo, Endpoints, Reply, documents, writes};

struct Shops;

fn endpoint(method: &str, load_score: u32, description: &str) -> EndpointInfo {
    EndpointInfo {
        method: method.into(),
        path: "/v1/shops/{id}".into(),
        load_score,
        description: description.into(),
    }
}

impl Endpoints for Shops {
    fn endpoints() -> Vec<EndpointInfo> {
        vec![
            endpoint("GET", 1, "One shop."),
            endpoint("PUT", 2, "Creates or replaces the shop `id`."),
        ]
    }

    fn handle(call: &Call) -> Reply {
        let id = call.path_param("id").unwrap_or_default();
        match call.method() {
            "GET" => match documents::get("shops", id) {
                Ok(Some(doc)) => match serde_json::from_str::<Value>(&doc.body) {
                    Ok(shop) => Reply::json(200, shop),
                    Err(e) => Reply::error(500, "BAD_DOCUMENT", &e.to_string()),
                },
                Ok(None) => Reply::error(404, "NOT_FOUND", &format!("no shop `{id}`")),
                Err(e) => Reply::error(500, "READ_FAILED", &format!("{e:?}")),
            },
            _ => {
                let mut shop = match call.json() {
                    Ok(Value::Object(shop)) => shop,
                    Ok(_) => return Reply::error(400, "INVALID_BODY", "a shop is a JSON object"),
                    Err(reply) => return reply,
                };
                shop.insert("shop_id".into(), json!(id));
                match writes::upsert("shops", &Value::Object(shop)) {
                    Ok(done) if done.inserted > 0 => Reply::json(201, json!({"shop_id": id})),
                    Ok(_) => Reply::json(200, json!({"shop_id": id})),
                    Err(e) => Reply::error(422, "INVALID", &format!("{e:?}")),
                }
            }
        }
    }
}

bulkhost_endpoint_sdk::export_endpoints!(Shops);
