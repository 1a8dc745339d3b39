//! The SDK for bulkhost data set plugins: implement [`Plugin`], call [`export_plugin!`], and
//! build with `cargo build --release --target wasm32-wasip2`.
//!
//! It wraps the WIT bindings of `bulkhost:plugin/dataset-generator` so a plugin author writes
//! only logic: parameters arrive checked against the plugin's own specs with defaults filled
//! in ([`Params`]), records go out through an [`Output`] that batches them for the host, and
//! the tenant's collections are read through [`documents`].

use std::fmt::Write as _;

extern crate self as bulkhost_plugin_sdk;

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "dataset-generator",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_generator",
        default_bindings_module: "bulkhost_plugin_sdk::__bindings",
        runtime_path: "bulkhost_plugin_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use __bindings::bulkhost::plugin::types::{
    DatasetInfo, FieldKind, FieldSpec, Param, ParamError, ParamKind, ParamSpec,
};
pub use __bindings::exports::bulkhost::plugin::generator::GenerateError;
pub use serde_json;

/// The tenant's collections, as the host lets the plugin read them.
pub mod documents {
    pub use crate::__bindings::bulkhost::plugin::documents::{
        Attachment, Document, Error, Page, attachments, get, read_attachment,
    };
    use crate::__bindings::bulkhost::plugin::documents::{modified_since, scan};

    /// Documents per host call when iterating.
    const PAGE: u32 = 500;

    /// Every document of `collection`, in key order, fetched a page at a time.
    pub fn all(collection: &str) -> impl Iterator<Item = Result<Document, Error>> + '_ {
        pages(move |cursor| scan(collection, cursor, PAGE))
    }

    /// The documents of `collection` created or changed at or after `since` (ISO 8601).
    pub fn changed_since<'a>(
        collection: &'a str,
        since: &'a str,
    ) -> impl Iterator<Item = Result<Document, Error>> + 'a {
        pages(move |cursor| modified_since(collection, since, cursor, PAGE))
    }

    fn pages<'a>(
        mut fetch: impl FnMut(Option<&str>) -> Result<Page, Error> + 'a,
    ) -> impl Iterator<Item = Result<Document, Error>> + 'a {
        let mut cursor: Option<Option<String>> = Some(None);
        let mut buffered = std::collections::VecDeque::new();
        std::iter::from_fn(move || {
            loop {
                if let Some(doc) = buffered.pop_front() {
                    return Some(Ok(doc));
                }
                let next = cursor.take()?;
                match fetch(next.as_deref()) {
                    Ok(page) => {
                        buffered.extend(page.documents);
                        cursor = page.next.map(Some);
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }
}

/// Messages in the host's log, tagged with the plugin and the invocation.
pub mod log {
    use crate::__bindings::bulkhost::plugin::log::{Level, log};

    /// An informational message.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Something the operator should look at.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// A failure.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// A data set plugin's logic.
pub trait Plugin {
    /// The data sets the plugin provides, with their parameters and record fields.
    fn datasets() -> Vec<DatasetInfo>;

    /// Rules beyond what the parameter specs say (ranges, combinations of parameters). Runs
    /// after the specs are checked, with defaults filled in.
    fn check(_dataset: &str, _params: &Params) -> Vec<ParamError> {
        Vec::new()
    }

    /// Produces the data set's records into `out`.
    fn generate(dataset: &str, params: &Params, out: &mut Output) -> Result<(), GenerateError>;
}

/// A request's parameters, checked against the data set's specs, defaults filled in.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<Param>);

impl Params {
    /// The value of `name`, if given or defaulted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// A boolean parameter; absent reads as `false`.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).and_then(parse_bool).unwrap_or(false)
    }

    /// An integer parameter.
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn is_datetime(v: &str) -> bool {
    let v = v.trim();
    let date = v.get(..10).unwrap_or_default();
    let bytes = date.as_bytes();
    date.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && date
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
        && (v.len() == 10 || matches!(v.as_bytes().get(10), Some(b'T' | b' ')))
}

fn kind_error(kind: ParamKind, value: &str) -> Option<String> {
    let ok = match kind {
        ParamKind::String => true,
        ParamKind::Integer => value.trim().parse::<i64>().is_ok(),
        ParamKind::Decimal => value.trim().parse::<f64>().is_ok(),
        ParamKind::Boolean => parse_bool(value).is_some(),
        ParamKind::Datetime => is_datetime(value),
    };
    (!ok).then(|| {
        let expected = match kind {
            ParamKind::String => "a string",
            ParamKind::Integer => "a whole number",
            ParamKind::Decimal => "a number",
            ParamKind::Boolean => "true or false",
            ParamKind::Datetime => "a date and time such as 2024-05-31T00:00:00",
        };
        format!("`{value}` is not {expected}")
    })
}

fn error(name: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Checks `given` against the data set's specs and fills in defaults.
#[doc(hidden)]
pub fn resolve<P: Plugin>(dataset: &str, given: Vec<Param>) -> Result<Params, Vec<ParamError>> {
    let datasets = P::datasets();
    let Some(info) = datasets.iter().find(|d| d.name == dataset) else {
        return Err(vec![error("", format!("unknown data set `{dataset}`"))]);
    };
    let mut errors = Vec::new();
    for p in &given {
        if !info.params.iter().any(|s| s.name == p.name) {
            errors.push(error(&p.name, "unknown parameter"));
        }
    }
    let mut resolved = Vec::new();
    for spec in &info.params {
        let value = given
            .iter()
            .find(|p| p.name == spec.name)
            .map(|p| p.value.clone())
            .or_else(|| spec.default_value.clone());
        let Some(value) = value else {
            if spec.required {
                errors.push(error(&spec.name, "is required"));
            }
            continue;
        };
        if let Some(message) = kind_error(spec.kind, &value) {
            errors.push(error(&spec.name, message));
        } else if !spec.allowed_values.is_empty() && !spec.allowed_values.contains(&value) {
            let mut message = String::from("must be one of");
            for (i, allowed) in spec.allowed_values.iter().enumerate() {
                let _ = write!(message, "{} {allowed}", if i == 0 { "" } else { "," });
            }
            errors.push(error(&spec.name, message));
        }
        resolved.push(Param {
            name: spec.name.clone(),
            value,
        });
    }
    let params = Params(resolved);
    if errors.is_empty() {
        errors = P::check(dataset, &params);
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(errors)
    }
}

/// Records on their way to the host, sent in batches.
#[derive(Debug, Default)]
pub struct Output {
    batch: Vec<String>,
    bytes: usize,
}

/// A batch is sent once it holds this many records...
const BATCH_RECORDS: usize = 512;
/// ...or this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

impl Output {
    /// Adds a record given as JSON object text.
    pub fn push_raw(&mut self, record: String) -> Result<(), GenerateError> {
        self.bytes += record.len();
        self.batch.push(record);
        if self.batch.len() >= BATCH_RECORDS || self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds a record.
    pub fn push(&mut self, record: &serde_json::Value) -> Result<(), GenerateError> {
        self.push_raw(record.to_string())
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) -> Result<(), GenerateError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let sent = __bindings::bulkhost::plugin::sink::emit(&self.batch);
        // Cleared, not replaced: the next batch reuses the list's memory.
        self.batch.clear();
        self.bytes = 0;
        sent.map_err(|e| {
            use __bindings::bulkhost::plugin::sink::Error;
            GenerateError::Failed(match e {
                Error::OutputLimit(cap) => format!("output limit of {cap} bytes reached"),
                Error::Cancelled => "cancelled".to_string(),
                Error::InvalidRecord(why) => format!("invalid record: {why}"),
            })
        })
    }
}

#[doc(hidden)]
pub fn run_validate<P: Plugin>(dataset: &str, params: Vec<Param>) -> Vec<ParamError> {
    resolve::<P>(dataset, params).err().unwrap_or_default()
}

#[doc(hidden)]
pub fn run_generate<P: Plugin>(dataset: &str, params: Vec<Param>) -> Result<(), GenerateError> {
    let params = resolve::<P>(dataset, params).map_err(GenerateError::InvalidParams)?;
    let mut out = Output::default();
    P::generate(dataset, &params, &mut out)?;
    out.flush()
}

/// Exports a [`Plugin`] implementation as the component's `generator` interface.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __BulkhostExport;

        impl $crate::__bindings::exports::bulkhost::plugin::generator::Guest for __BulkhostExport {
            fn describe() -> ::std::vec::Vec<$crate::DatasetInfo> {
                <$plugin as $crate::Plugin>::datasets()
            }

            fn validate(
                dataset: ::std::string::String,
                params: ::std::vec::Vec<$crate::Param>,
            ) -> ::std::vec::Vec<$crate::ParamError> {
                $crate::run_validate::<$plugin>(&dataset, params)
            }

            fn generate(
                dataset: ::std::string::String,
                params: ::std::vec::Vec<$crate::Param>,
            ) -> ::std::result::Result<(), $crate::GenerateError> {
                $crate::run_generate::<$plugin>(&dataset, params)
            }
        }

        $crate::__bindings::__export_generator!(__BulkhostExport with_types_in $crate::__bindings);
    };
}
