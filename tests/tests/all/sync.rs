//! ABRA Flexi's synchronisation procedure, end to end: a client loads a snapshot with its
//! global version, then replays the change feed, and must end equal to the server.

use std::collections::BTreeMap;

use bulkhost_tests::{Api, TestServer, all_changes};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Op {
    Upsert { shop: bool, key: u8, name: u8 },
    Delete { shop: bool, key: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 0u8..10, any::<u8>()).prop_map(|(shop, key, name)| Op::Upsert { shop, key, name }),
        1 => (any::<bool>(), 0u8..10).prop_map(|(shop, key)| Op::Delete { shop, key }),
    ]
}

fn collection(shop: bool) -> &'static str {
    if shop { "shops" } else { "cashiers" }
}

async fn apply(api: &Api, op: &Op) {
    match op {
        Op::Upsert { shop, key, name } => {
            let body = if *shop {
                json!({"shop_id": format!("s{key}"), "name": format!("n{name}")})
            } else {
                json!({"cashier_id": format!("c{key}"), "name": format!("n{name}")})
            };
            let r = api
                .post(&format!("/api/v1/{}/", collection(*shop)), &body)
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
        Op::Delete { shop, key } => {
            let prefix = if *shop { "s" } else { "c" };
            let r = api
                .send(
                    "DELETE",
                    &format!("/api/v1/{}/code:{prefix}{key}/", collection(*shop)),
                    None,
                )
                .await;
            assert!(r.status == 204 || r.status == 404, "{}", r.text);
        }
    }
}

type State = BTreeMap<(String, String), Value>;

/// The initial load: every collection with the version it was read at.
async fn load(api: &Api) -> (State, u64) {
    let mut state = State::new();
    let mut version = u64::MAX;
    for c in ["shops", "cashiers"] {
        let listing = api
            .get(&format!("/c/acme/{c}.json?add-global-version=true&limit=0"))
            .await
            .json();
        let v: u64 = listing["winstrom"]["@globalVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        version = version.min(v);
        for record in listing["winstrom"][c].as_array().unwrap() {
            let id = record["id"].as_str().unwrap().to_string();
            state.insert((c.to_string(), id), record.clone());
        }
    }
    (state, version)
}

/// The differential sync: changes since the remembered version, following `next`.
async fn sync(api: &Api, state: &mut State, since: u64) {
    for change in all_changes(api, "acme", since + 1, 7).await {
        let c = change["@evidence"].as_str().unwrap().to_string();
        let id = change["id"].as_str().unwrap().to_string();
        if change["@operation"] == "delete" {
            state.remove(&(c, id));
            continue;
        }
        let one = api.get(&format!("/c/acme/{c}/{id}.json")).await;
        if one.status == 404 {
            state.remove(&(c, id));
        } else {
            let record = one.json()["winstrom"][&c][0].clone();
            state.insert((c, id), record);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn replaying_the_feed_from_a_snapshot_reaches_the_server_state(
        before in proptest::collection::vec(op(), 0..25),
        after in proptest::collection::vec(op(), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = TestServer::start().await;
            let ann = server.as_user("ann");
            for op in &before {
                apply(&ann, op).await;
            }
            let (mut client, version) = load(&ann).await;
            for op in &after {
                apply(&ann, op).await;
            }
            sync(&ann, &mut client, version).await;
            let (server_state, _) = load(&ann).await;
            assert_eq!(client, server_state);
            server.stop().await;
        });
    }
}
