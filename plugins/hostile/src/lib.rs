//! `hostile`: each data set breaks one rule the host must survive.
//!
//! - `loop` never returns;
//! - `bomb` allocates until it is stopped;
//! - `trap` panics;
//! - `flood` emits forever and ignores the host's refusals;
//! - `garbage` emits a record that is not a JSON object;
//! - `tenant-shops` lists the calling tenant's shops, to show a plugin sees only its tenant;
//! - `read-file` reads the file `path` and `connect` opens a TCP connection to `address`,
//!   which only an operator's grant allows;
//! - `chatty` logs an overlong message and then a flood of them;
//! - `sleep` sleeps in `generate` and `sleep-validate` in `validate`, for an hour: a WASI
//!   wait on the clock rather than a loop in wasm, which only the host's timer can cut short.

use std::time::Duration;

use bulkhost_plugin_sdk::{
    DatasetInfo, GenerateError, Output, ParamError, ParamKind, ParamSpec, Params, Plugin,
    documents, log, serde_json,
};

struct Hostile;

/// How long the sleeping data sets sleep.
const SLEEP: Duration = Duration::from_secs(3600);

const NAMES: [&str; 11] = [
    "loop",
    "bomb",
    "trap",
    "flood",
    "garbage",
    "tenant-shops",
    "read-file",
    "connect",
    "chatty",
    "sleep",
    "sleep-validate",
];

/// The one parameter a probe of the sandbox takes.
fn target(dataset: &str) -> Option<&'static str> {
    match dataset {
        "read-file" => Some("path"),
        "connect" => Some("address"),
        _ => None,
    }
}

impl Plugin for Hostile {
    fn datasets() -> Vec<DatasetInfo> {
        NAMES
            .iter()
            .map(|name| DatasetInfo {
                name: (*name).into(),
                description: format!("misbehaves: {name}"),
                params: target(name)
                    .map(|param| ParamSpec {
                        name: param.into(),
                        description: "What the probe tries to reach.".into(),
                        kind: ParamKind::String,
                        required: true,
                        default_value: None,
                        allowed_values: Vec::new(),
                    })
                    .into_iter()
                    .collect(),
                fields: Vec::new(),
            })
            .collect()
    }

    fn check(dataset: &str, _params: &Params) -> Vec<ParamError> {
        if dataset == "sleep-validate" {
            std::thread::sleep(SLEEP);
        }
        Vec::new()
    }

    fn generate(dataset: &str, params: &Params, out: &mut Output) -> Result<(), GenerateError> {
        let denied = |e: std::io::Error| GenerateError::Failed(format!("denied: {e}"));
        match dataset {
            "read-file" => {
                let content = std::fs::read_to_string(params.get("path").unwrap_or_default())
                    .map_err(denied)?;
                out.push(&serde_json::json!({ "content": content }))?;
                out.flush()
            }
            "connect" => {
                let mut stream =
                    std::net::TcpStream::connect(params.get("address").unwrap_or_default())
                        .map_err(denied)?;
                std::io::Write::write_all(&mut stream, b"hello from a plugin").map_err(denied)?;
                out.push(&serde_json::json!({ "connected": true }))?;
                out.flush()
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("this plugin always panics"),
            "sleep" => {
                std::thread::sleep(SLEEP);
                Ok(())
            }
            "flood" => {
                let record = format!("{{\"filler\":\"{}\"}}", "x".repeat(64 * 1024));
                loop {
                    let _ignored = out.push_raw(record.clone());
                }
            }
            "chatty" => {
                log::warn(&format!("long {}", "x".repeat(10_000)));
                for i in 0..1500 {
                    log::info(&format!("message {i}"));
                }
                Ok(())
            }
            "garbage" => {
                out.push_raw("not json".into())?;
                out.flush()
            }
            _ => {
                for doc in documents::all("shops") {
                    let doc = doc.map_err(|e| GenerateError::Failed(format!("{e:?}")))?;
                    let body: serde_json::Value = serde_json::from_str(&doc.body)
                        .map_err(|e| GenerateError::Failed(e.to_string()))?;
                    out.push(&body)?;
                }
                Ok(())
            }
        }
    }
}

bulkhost_plugin_sdk::export_plugin!(Hostile);
