//! `synthetic`: N deterministic records of configurable width, for benchmarks and tests.
//!
//! [`record`] lives in `record.rs`, plain Rust independent of the bindings, so the host's
//! benchmark compiles the very same logic natively to compare against the component.

mod record;

pub use record::record;

use bulkhost_plugin_sdk::{
    DatasetInfo, FieldKind, FieldSpec, GenerateError, Output, ParamError, ParamKind, ParamSpec,
    Params, Plugin,
};

/// Records a request may ask for.
pub const MAX_COUNT: i64 = 100_000_000;
/// The widest record, in bytes.
pub const MAX_WIDTH: i64 = 1 << 20;

struct Synthetic;

fn param(name: &str, description: &str, default: &str) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        description: description.into(),
        kind: ParamKind::Integer,
        required: false,
        default_value: Some(default.into()),
        allowed_values: Vec::new(),
    }
}

fn field(name: &str, kind: FieldKind, description: &str) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        kind,
        description: description.into(),
    }
}

impl Plugin for Synthetic {
    fn datasets() -> Vec<DatasetInfo> {
        vec![DatasetInfo {
            name: "synthetic".into(),
            description: "N deterministic records of about `width` bytes each.".into(),
            params: vec![
                param("count", "How many records to produce.", "1000"),
                param(
                    "width",
                    "About how many bytes of JSON each record takes.",
                    "200",
                ),
            ],
            fields: vec![
                field("id", FieldKind::Integer, "0 to count - 1"),
                field("name", FieldKind::String, "`record {id}`"),
                field("group", FieldKind::Integer, "id modulo 97"),
                field("payload", FieldKind::String, "deterministic filler"),
            ],
        }]
    }

    fn check(_dataset: &str, params: &Params) -> Vec<ParamError> {
        let mut errors = Vec::new();
        let count = params.integer("count").unwrap_or(0);
        if !(0..=MAX_COUNT).contains(&count) {
            errors.push(ParamError {
                name: "count".into(),
                message: format!("must be between 0 and {MAX_COUNT}"),
            });
        }
        let width = params.integer("width").unwrap_or(0);
        if !(64..=MAX_WIDTH).contains(&width) {
            errors.push(ParamError {
                name: "width".into(),
                message: format!("must be between 64 and {MAX_WIDTH}"),
            });
        }
        errors
    }

    fn generate(_dataset: &str, params: &Params, out: &mut Output) -> Result<(), GenerateError> {
        let count = params.integer("count").unwrap_or(0).max(0) as u64;
        let width = params.integer("width").unwrap_or(200).max(0) as usize;
        for i in 0..count {
            out.push_raw(record(i, width))?;
        }
        Ok(())
    }
}

bulkhost_plugin_sdk::export_plugin!(Synthetic);
