//! `hostile`: each data set breaks one rule the host must survive.
//!
//! - `loop` never returns;
//! - `bomb` allocates until it is stopped;
//! - `trap` panics;
//! - `flood` emits forever and ignores the host's refusals;
//! - `garbage` emits a record that is not a JSON object;
//! - `tenant-shops` lists the calling tenant's shops, to show a plugin sees only its tenant.

use bulkhost_plugin_sdk::{
    DatasetInfo, GenerateError, Output, Params, Plugin, documents, serde_json,
};

struct Hostile;

const NAMES: [&str; 6] = ["loop", "bomb", "trap", "flood", "garbage", "tenant-shops"];

impl Plugin for Hostile {
    fn datasets() -> Vec<DatasetInfo> {
        NAMES
            .iter()
            .map(|name| DatasetInfo {
                name: (*name).into(),
                description: format!("misbehaves: {name}"),
                params: Vec::new(),
                fields: Vec::new(),
            })
            .collect()
    }

    fn generate(dataset: &str, _params: &Params, out: &mut Output) -> Result<(), GenerateError> {
        match dataset {
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
            "flood" => {
                let record = format!("{{\"filler\":\"{}\"}}", "x".repeat(64 * 1024));
                loop {
                    let _ignored = out.push_raw(record.clone());
                }
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
