//! `hostile-endpoints`: batch endpoints that break the rules the host must survive.
//!
//! - `POST /v1/hostile/trap` panics;
//! - `GET /v1/hostile/spin` never returns;
//! - `GET /v1/hostile/sleep` sleeps for an hour, waiting in WASI rather than spinning in wasm;
//! - `GET /v1/hostile/free` weighs 0, which the host raises to 1;
//! - `PUT /v1/hostile/slow/{id}` upserts the product `id` and then keeps the call busy for
//!   `ms` milliseconds, so a test can stop the server between a committed write and the end
//!   of the call. It answers 201 when its write inserted the product and 200 when it replaced
//!   one: an operation replayed after a crash answers as the first run did only if the host
//!   handed back the write it had already committed instead of writing again.

use std::time::{Duration, Instant};

use bulkhost_endpoint_sdk::serde_json::json;
use bulkhost_endpoint_sdk::{Call, EndpointInfo, Endpoints, Reply, writes};

struct Hostile;

fn endpoint(method: &str, path: &str, description: &str) -> EndpointInfo {
    EndpointInfo {
        method: method.into(),
        path: path.into(),
        load_score: 1,
        description: description.into(),
    }
}

impl Endpoints for Hostile {
    fn endpoints() -> Vec<EndpointInfo> {
        vec![
            endpoint("POST", "/v1/hostile/trap", "Panics."),
            endpoint("GET", "/v1/hostile/spin", "Never returns."),
            endpoint("GET", "/v1/hostile/sleep", "Sleeps for an hour."),
            EndpointInfo {
                load_score: 0,
                ..endpoint("GET", "/v1/hostile/free", "Claims to weigh nothing.")
            },
            endpoint(
                "PUT",
                "/v1/hostile/slow/{id}",
                "Upserts a product, then stays busy `ms` milliseconds.",
            ),
        ]
    }

    fn handle(call: &Call) -> Reply {
        match call.template() {
            "/v1/hostile/trap" => panic!("the trap endpoint was called"),
            "/v1/hostile/spin" => loop {
                std::hint::spin_loop();
            },
            "/v1/hostile/sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                Reply::json(200, json!({"slept": true}))
            }
            "/v1/hostile/free" => Reply::json(200, json!({"free": true})),
            _ => slow_upsert(call),
        }
    }
}

fn slow_upsert(call: &Call) -> Reply {
    let id = call.path_param("id").unwrap_or_default();
    let busy = Duration::from_millis(
        call.query("ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_default(),
    );
    let product = json!({"product_id": id, "name": format!("Slow {id}")});
    let written = match writes::upsert("products", &product) {
        Ok(written) => written,
        Err(e) => return Reply::error(503, "UNAVAILABLE", &format!("{e:?}")),
    };
    let start = Instant::now();
    while start.elapsed() < busy {
        std::hint::spin_loop();
    }
    let status = if written.inserted > 0 { 201 } else { 200 };
    Reply::json(status, json!({"id": id, "version": written.version}))
}

bulkhost_endpoint_sdk::export_endpoints!(Hostile);
