//! The OpenAPI document of every route, served at `/openapi.json`.
//!
//! The surfaces route by path patterns of their seed dialects (suffixes, `code:` ids), so the
//! document is built from this table rather than from handler attributes; a test requests every
//! path listed here and checks the router answers it.

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, Paths,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Required, ResponseBuilder,
};

use crate::state::AppState;

/// One documented operation.
pub struct Route {
    /// The HTTP methods that share this description.
    pub methods: &'static [HttpMethod],
    /// The path, with `{parameters}`.
    pub path: &'static str,
    /// Which surface it belongs to.
    pub tag: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// Whether it needs credentials.
    pub authenticated: bool,
}

const COLLECTIONS: &str = "Datawiz collections";
const CHANGE_FEED: &str = "ABRA Flexi changes";
const BULK_EXPORT: &str = "Winfra XXL bulk export";
const BATCH: &str = "LogiCommerce batch";
const OPS: &str = "operations";

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    Route {
        methods: &[HttpMethod::Get, HttpMethod::Head],
        path: "/api/v1/{collection}/",
        tag: COLLECTIONS,
        summary: "One page of a collection: {count, next, previous, results}. Also `/{collection}.json`, `/{collection}/.json/` and `.api`.",
        query: &[
            (
                "page",
                "Page number from 1, or `last`; a page past the end is 404 \"Invalid page.\"",
            ),
            (
                "page_size",
                "Documents per page; default 100, at most 1000.",
            ),
            (
                "search",
                "Terms that must each occur in one of the collection's search fields.",
            ),
            ("ordering", "Comma-separated fields, `-` for descending."),
            ("format", "`json` or `api` (HTML)."),
            (
                "add-global-version",
                "`true` adds the tenant's globalVersion.",
            ),
        ],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Post],
        path: "/api/v1/{collection}/",
        tag: COLLECTIONS,
        summary: "Upsert one document or a list by the collection's key, atomically: 201 {updated, inserted}, or 400 with DRF field errors.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Options],
        path: "/api/v1/{collection}/",
        tag: COLLECTIONS,
        summary: "Field metadata in DRF's OPTIONS shape.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[
            HttpMethod::Get,
            HttpMethod::Head,
            HttpMethod::Delete,
            HttpMethod::Options,
        ],
        path: "/api/v1/{collection}/{id}/",
        tag: COLLECTIONS,
        summary: "One document by numeric id or `code:KEY`; DELETE removes it.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get, HttpMethod::Head],
        path: "/api/v1/{collection}/{id}/attachments/",
        tag: COLLECTIONS,
        summary: "The files attached to a document: [{url, name, content_type, size, modified}].",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[
            HttpMethod::Put,
            HttpMethod::Get,
            HttpMethod::Head,
            HttpMethod::Delete,
        ],
        path: "/api/v1/{collection}/{id}/attachments/{name}",
        tag: COLLECTIONS,
        summary: "One attached file (at most 16 MiB): PUT stores the body with its Content-Type (201 new, 200 replaced), GET downloads it, DELETE removes it. Each write is an update of the document in the change feed.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/c/{firma}/changes.json",
        tag: CHANGE_FEED,
        summary: "Changes since a version (also `.xml`). `X-Oldest-Version` names the oldest version still listable; an older `start` is 410.",
        query: &[
            ("start", "First version to list (inclusive)."),
            ("limit", "Changes to list; default 100, at most 1000."),
            (
                "records",
                "Only these record types (collections); repeatable. ABRA's `evidence` is accepted too.",
            ),
            (
                "wait",
                "Seconds (at most 60) to wait for a change when none is newer than `start`.",
            ),
        ],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Put, HttpMethod::Post],
        path: "/c/{firma}/changes/enable.json",
        tag: CHANGE_FEED,
        summary: "Switch the change feed on (also `.xml`); it restarts at the next version.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Put, HttpMethod::Post],
        path: "/c/{firma}/changes/disable.json",
        tag: CHANGE_FEED,
        summary: "Switch the change feed off (also `.xml`).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/c/{firma}/changes/status.json",
        tag: CHANGE_FEED,
        summary: "Whether the change feed is on (also `.xml`).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/c/{firma}/{collection}.json",
        tag: CHANGE_FEED,
        summary: "A collection in ABRA's winstrom envelope (also `.xml`), streamed from one snapshot.",
        query: &[
            (
                "add-global-version",
                "`true` adds @globalVersion, the version the listing is at.",
            ),
            ("start", "Records to skip."),
            ("limit", "Records to list; default 20, 0 for all."),
        ],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/c/{firma}/{collection}/{id}.json",
        tag: CHANGE_FEED,
        summary: "One record by numeric id or `code:KEY` (also `.xml`).",
        query: &[("add-global-version", "`true` adds @globalVersion.")],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Post],
        path: "/api_token/",
        tag: BULK_EXPORT,
        summary: "Basic credentials and {\"domain\", \"api\"} answer {\"WINFRA-API-TOKEN\": token}.",
        query: &[],
        authenticated: false,
    },
    Route {
        methods: &[HttpMethod::Post],
        path: "/api_v1/generar_xxl",
        tag: BULK_EXPORT,
        summary: "Queue a list of PeticionGenerarXXL ({dataset, webhook?, ...parameters}); answers EstadoGenerarXXL with PENDING, or 422 {error} before anything is queued.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/api_v1/estado_xxl",
        tag: BULK_EXPORT,
        summary: "EstadoGenerarXXL of every request of the caller that has not expired.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get, HttpMethod::Delete],
        path: "/api_v1/estado_xxl/{id}",
        tag: BULK_EXPORT,
        summary: "One request's EstadoGenerarXXL; DELETE cancels what is still pending.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/api_v1/datos_xxl/{id}/{dataset}",
        tag: BULK_EXPORT,
        summary: "A finished data set's records as one JSON list, streamed (also without `api_v1/`).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/api_v1/datos_xxl/{id}/{dataset}/{offset}/{limit}",
        tag: BULK_EXPORT,
        summary: "`limit` records from `offset`, found by one seek (also without `api_v1/`).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/api_v1/datasets",
        tag: BULK_EXPORT,
        summary: "Every data set offered to the caller, with its parameters and record fields.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/api_v1/plugins",
        tag: BULK_EXPORT,
        summary: "The caller's own plugins (extensions no other tenant sees).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Put, HttpMethod::Delete],
        path: "/api_v1/plugins/{name}",
        tag: BULK_EXPORT,
        summary: "Upload (the component's bytes) or remove one of the caller's own plugins; an upload is checked completely before it is kept.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/admin/plugins",
        tag: OPS,
        summary: "The operator's plugins, serving every tenant (operator bearer token).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Put, HttpMethod::Delete],
        path: "/admin/plugins/{name}",
        tag: OPS,
        summary: "Upload or remove an operator plugin (operator bearer token).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Post],
        path: "/v1/batch",
        tag: BATCH,
        summary: "Queue a batch: {batch: {operations: [{operationId, method, endpoint, body}], webhook: {callbackUrl, email}}} → 201 {uuid}. One unfinished batch per tenant (409 BATCH_IN_PROGRESS); rule violations are 422 INVALID_BATCH; an Idempotency-Key header makes retries safe.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/v1/batch/{uuid}",
        tag: BATCH,
        summary: "A batch's progress: {uuid, status, operations, createdAt, processedAt, updatingAt, completedAt, responses: [...], webhook}; kept 1 hour after it finished (then 404 STATUS_EXPIRED).",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/v1/batch/{uuid}/jsonl",
        tag: BATCH,
        summary: "Every operation's response of a finished batch, one JSON line each; kept 24 hours; resumable with Range.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/v1/batch/{uuid}/file",
        tag: BATCH,
        summary: "The same JSONL, under the name LogiCommerce gives it once the status has expired.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/v1/batch/{uuid}/gz",
        tag: BATCH,
        summary: "The JSONL, gzip-compressed; resumable with Range.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Post],
        path: "/v1/batch/{uuid}/retry",
        tag: BATCH,
        summary: "Queue the operations of a finished batch that did not succeed (status outside 2xx) as a new batch with the same webhook → 201 {uuid}.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/v1/batch/limits",
        tag: BATCH,
        summary: "Every endpoint a batch may call with its load score, and maxLoadScore: {limits: {endpoints: [{endpoint, loadScore, method}], maxLoadScore}}.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[
            HttpMethod::Get,
            HttpMethod::Post,
            HttpMethod::Put,
            HttpMethod::Patch,
            HttpMethod::Delete,
        ],
        path: "/v1/{endpoint}",
        tag: BATCH,
        summary: "The batch endpoints of the tenant's plugins, called one by one (see /v1/batch/limits); errors are {error: {code, message}}.",
        query: &[],
        authenticated: true,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/healthz",
        tag: OPS,
        summary: "200 when the database answers.",
        query: &[],
        authenticated: false,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/metrics",
        tag: OPS,
        summary: "Prometheus metrics.",
        query: &[],
        authenticated: false,
    },
    Route {
        methods: &[HttpMethod::Get],
        path: "/openapi.json",
        tag: OPS,
        summary: "This document.",
        query: &[],
        authenticated: false,
    },
];

/// Builds the document from [`ROUTES`].
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .tag(route.tag)
            .summary(Some(route.summary))
            .response("200", ResponseBuilder::new().description("Success"))
            .response(
                "401",
                ResponseBuilder::new().description("Missing, wrong or expired credentials"),
            );
        for name in path_parameters(route.path) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True),
            );
        }
        for (name, description) in route.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description)),
            );
        }
        if route.authenticated {
            for scheme in ["basic", "bearer", "winfra_token"] {
                op = op.security(SecurityRequirement::new::<_, _, &str>(scheme, []));
            }
        }
        let op = op.build();
        for method in route.methods {
            let item = PathItem::new(method.clone(), op.clone());
            match paths.paths.get_mut(route.path) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    paths.paths.insert(route.path.to_string(), item);
                }
            }
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("bulkhost")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Bulk export, collections, change feed and batch APIs over one storage core.",
                )),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "basic",
                    SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
                )
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
                )
                .security_scheme(
                    "winfra_token",
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("WINFRA-API-TOKEN"))),
                )
                .build(),
        ))
        .build()
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
}

/// The route serving the document.
pub fn router() -> Router<AppState> {
    let doc = document();
    Router::new().route("/openapi.json", get(move || async move { Json(doc) }))
}
