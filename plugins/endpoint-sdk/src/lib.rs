//! The SDK for bulkhost batch endpoint plugins: implement [`Endpoints`], call
//! [`export_endpoints!`], and build with `cargo build --release --target wasm32-wasip2`.
//!
//! It wraps the WIT bindings of `bulkhost:plugin/batch-endpoint`: a call arrives as a
//! [`Call`] with its path parameters, query and body at hand, the answer is a [`Reply`], the
//! tenant's collections are read through [`documents`] and written through [`writes`] — the
//! same validation, upsert and change feed as the collections API.
//!
//! A crate of its own rather than a feature of `bulkhost-plugin-sdk`: a component's world is
//! fixed by the bindings linked into it, and Cargo unifies features across a workspace.

extern crate self as bulkhost_endpoint_sdk;

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "batch-endpoint",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_endpoint",
        default_bindings_module: "bulkhost_endpoint_sdk::__bindings",
        runtime_path: "bulkhost_endpoint_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use __bindings::exports::bulkhost::plugin::endpoint::{EndpointInfo, Request, Response};
pub use serde_json;
use serde_json::{Value, json};

/// The tenant's collections as they were when the call started.
pub mod documents {
    pub use crate::__bindings::bulkhost::plugin::documents::{
        Attachment, Document, Error, Page, attachments, get, read_attachment, scan,
    };
}

/// Writes to the tenant's collections, validated and recorded in the change feed as a client's
/// `POST /api/v1/{collection}/` is.
pub mod writes {
    pub use crate::__bindings::bulkhost::plugin::writes::{Error, Upserted, delete};

    /// Validates and upserts one document (a JSON object) or a list, atomically.
    pub fn upsert(collection: &str, documents: &serde_json::Value) -> Result<Upserted, Error> {
        crate::__bindings::bulkhost::plugin::writes::upsert(collection, &documents.to_string())
    }

    /// Validates and inserts one document or a list, atomically; [`Error::Exists`] when a
    /// key is taken, and then nothing is written. Answer from its outcome rather than from a
    /// read made before it: a batch operation that runs again after a crash gets the outcome
    /// of its first run back.
    pub fn create(collection: &str, documents: &serde_json::Value) -> Result<Upserted, Error> {
        crate::__bindings::bulkhost::plugin::writes::create(collection, &documents.to_string())
    }
}

/// Messages in the host's log, tagged with the plugin.
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
}

/// A batch endpoint plugin's logic.
pub trait Endpoints {
    /// The endpoints the plugin serves: method, path template, load score, description.
    fn endpoints() -> Vec<EndpointInfo>;

    /// Answers one call. The host routes only calls that match a declared endpoint.
    fn handle(call: &Call) -> Reply;
}

/// One call, as the host routed it.
#[derive(Debug, Clone)]
pub struct Call(pub Request);

impl Call {
    /// The method, upper case.
    pub fn method(&self) -> &str {
        &self.0.method
    }

    /// The template the call matched, as [`Endpoints::endpoints`] declared it.
    pub fn template(&self) -> &str {
        &self.0.template
    }

    /// The value a `{name}` segment of the template matched.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        lookup(&self.0.path_params, name)
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.0.query, name)
    }

    /// The body parsed as JSON; a 400 [`Reply`] when it is missing or malformed.
    pub fn json(&self) -> Result<Value, Reply> {
        let body = self.0.body.as_deref().unwrap_or_default();
        serde_json::from_str(body).map_err(|e| {
            Reply::error(
                400,
                "INVALID_BODY",
                &format!("the body is not valid JSON: {e}"),
            )
        })
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The answer to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply { status, body }
    }

    /// An error in the shape `{"error": {"code": ..., "message": ...}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(status, json!({"error": {"code": code, "message": message}}))
    }
}

#[doc(hidden)]
pub fn run_handle<E: Endpoints>(request: Request) -> Response {
    let reply = E::handle(&Call(request));
    Response {
        status: reply.status,
        body: if reply.body.is_null() {
            String::new()
        } else {
            reply.body.to_string()
        },
    }
}

/// Exports an [`Endpoints`] implementation as the component's `endpoint` interface.
#[macro_export]
macro_rules! export_endpoints {
    ($plugin:ty) => {
        struct __BulkhostExport;

        impl $crate::__bindings::exports::bulkhost::plugin::endpoint::Guest for __BulkhostExport {
            fn describe() -> ::std::vec::Vec<$crate::EndpointInfo> {
                <$plugin as $crate::Endpoints>::endpoints()
            }

            fn handle(request: $crate::Request) -> $crate::Response {
                $crate::run_handle::<$plugin>(request)
            }
        }

        $crate::__bindings::__export_endpoint!(__BulkhostExport with_types_in $crate::__bindings);
    };
}
