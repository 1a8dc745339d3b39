//! The OpenAPI 3.1 document, generated per request from the route table ([`ROUTES`]), the
//! types the handlers parse and render, and what is data at run time: each collection's
//! schema, each data set's parameters and each plugin endpoint. `/openapi.json` serves it
//! and `/docs` a reference page over it, with its assets built into the binary.
//!
//! The surfaces route by their dialects' path patterns (suffixes, `code:` ids), so each
//! collection gets its own paths here rather than one template.

mod data;
mod docs;
mod model;
mod routes;

pub use model::{Access, Answer, At, Content, Dialect, Kind, Param, Route, Typed, answer};
pub use routes::ROUTES;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bulkhost_core::Schema as Collection;
use bulkhost_runtime::{DatasetInfo, EndpointInfo};
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, ParameterStyle, PathItem, Paths,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder, Schema,
};

use crate::auth::Caller;
use crate::batch::wire::BatchFailure;
use crate::bulk_export::wire::{ParamValue, PeticionGenerarXxl, WinfraFailure};
use crate::change_feed::wire::AbraFailure;
use crate::state::AppState;

/// What the document is built for: the collections served and the caller's data sets and
/// endpoints (none for an anonymous reader, who sees the generic request shapes).
struct Scope<'a> {
    collections: Vec<Arc<Collection>>,
    datasets: Option<BTreeMap<String, DatasetInfo>>,
    endpoints: Vec<EndpointInfo>,
    tenant: Option<&'a str>,
}

/// The document for `tenant`, or for an anonymous reader.
pub fn document(state: &AppState, tenant: Option<&str>) -> OpenApi {
    let scope = Scope {
        collections: state.store.schemas().iter().cloned().collect(),
        datasets: tenant.map(|t| state.registry.datasets(t)),
        endpoints: tenant
            .map(|t| state.registry.endpoints(t))
            .unwrap_or_default()
            .into_iter()
            .map(|(info, _)| info)
            .collect(),
        tenant,
    };
    let mut components = Vec::new();
    for failure in [
        Typed::of::<AbraFailure>(),
        Typed::of::<WinfraFailure>(),
        Typed::of::<BatchFailure>(),
        Typed::of::<PeticionGenerarXxl>(),
        Typed::of::<ParamValue>(),
    ] {
        failure.collect(&mut components);
    }
    components.push((DRF_ERROR.into(), drf_error().into()));
    let mut paths = Paths::new();
    for Operation {
        route,
        rendering,
        path: template,
    } in operations()
    {
        if route.per_collection() {
            for collection in &scope.collections {
                let path = template.replace("{collection}", &collection.collection);
                let op = operation(
                    route,
                    &scope,
                    Some(collection),
                    &path,
                    *rendering,
                    &mut components,
                );
                add(&mut paths, &path, route.http_method(), op);
            }
        } else {
            let op = operation(route, &scope, None, template, *rendering, &mut components);
            add(&mut paths, template, route.http_method(), op);
        }
    }
    for endpoint in &scope.endpoints {
        if let Some((method, op)) = endpoint_operation(endpoint) {
            add(&mut paths, &endpoint.path, method, op);
        }
    }
    for collection in &scope.collections {
        components.push((document_name(collection), data::document(collection).into()));
        components.push((input_name(collection), data::input(collection).into()));
    }
    let mut built = ComponentsBuilder::new();
    for (name, schema) in components {
        built = built.schema(name, schema);
    }
    let built = built
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
        .security_scheme(
            "operator",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("bulkhost")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Datawiz collections, ABRA Flexi changes, Winfra XXL bulk export and LogiCommerce batches over one storage core.",
                )),
        )
        .paths(paths)
        .components(Some(built))
        .build()
}

/// How an operation's JSON bodies travel: as JSON, or, at ABRA Flexi's `.xml` twin of a
/// `.json` path, as XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendering {
    Json,
    Xml,
}

impl Rendering {
    /// The renderings a route is served in: ABRA Flexi's `.json` paths have an `.xml` twin.
    fn of(route: &Route) -> &'static [Rendering] {
        if route.dialect == Dialect::ChangeFeed && route.path.ends_with(".json") {
            &[Rendering::Json, Rendering::Xml]
        } else {
            &[Rendering::Json]
        }
    }

    /// The path in this rendering.
    fn path(self, path: &str) -> String {
        match (self, path.strip_suffix(".json")) {
            (Rendering::Xml, Some(stem)) => format!("{stem}.xml"),
            _ => path.to_string(),
        }
    }

    /// A body's media types and schemas in this rendering: XML takes the place of JSON,
    /// described as text, since a schema of JSON values says nothing of XML elements.
    fn bodies(
        self,
        bodies: Vec<(String, Option<RefOr<Schema>>)>,
    ) -> Vec<(String, Option<RefOr<Schema>>)> {
        match self {
            Rendering::Json => bodies,
            Rendering::Xml => bodies
                .into_iter()
                .map(|(media, schema)| match media.as_str() {
                    "application/json" => ("application/xml".to_string(), Some(xml_text())),
                    _ => (media, schema),
                })
                .collect(),
        }
    }
}

/// An XML document: ABRA Flexi's `winstrom` envelope holding what the `.json` twin answers.
fn xml_text() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "ABRA Flexi's XML: the `winstrom` envelope holding what the `.json` path answers.",
        ))
        .into()
}

const DRF_ERROR: &str = "DrfError";

/// DRF's error bodies: `{"detail": ...}`, field errors (field name → messages), or a list of
/// those for a list request.
fn drf_error() -> Schema {
    let object =
        ObjectBuilder::new().property("detail", ObjectBuilder::new().schema_type(Type::String));
    OneOfBuilder::new()
        .item(object)
        .item(ArrayBuilder::new().items(ObjectBuilder::new()))
        .description(Some(
            "`{\"detail\": message}`, or field name → messages (nested for nested objects), or a list of those for a list request.",
        ))
        .into()
}

fn document_name(collection: &Collection) -> String {
    format!("{}.document", collection.collection)
}

fn input_name(collection: &Collection) -> String {
    format!("{}.input", collection.collection)
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn add(paths: &mut Paths, path: &str, method: HttpMethod, op: utoipa::openapi::path::Operation) {
    let item = PathItem::new(method, op);
    match paths.paths.get_mut(path) {
        Some(existing) => existing.merge_operations(item),
        None => {
            paths.paths.insert(path.to_string(), item);
        }
    }
}

/// A unique, readable id: the method and the path's words, `get_api_v1_shops_id`.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    format!("{}_{}", method.to_lowercase(), words.join("_"))
}

fn operation(
    route: &Route,
    scope: &Scope,
    collection: Option<&Arc<Collection>>,
    path: &str,
    rendering: Rendering,
    components: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .tag(route.dialect.tag())
        .summary(Some(route.summary))
        .operation_id(Some(operation_id(route.method_name(), path)));
    for param in route.params {
        op = op.parameter(parameter(param, scope));
    }
    let mut resolve = |content: Content| {
        rendering.bodies(resolved(
            content,
            route.dialect,
            scope,
            collection,
            components,
        ))
    };
    let sent = resolve(route.body);
    if !sent.is_empty() {
        let mut body = RequestBodyBuilder::new().required(Some(Required::True));
        for (media, schema) in sent {
            let schema = schema.unwrap_or_else(bytes);
            body = body.content(media, ContentBuilder::new().schema(Some(schema)).build());
        }
        op = op.request_body(Some(body.build()));
    }
    for answer in route.answers.iter().chain(shared_answers(route)) {
        let mut response = ResponseBuilder::new().description(answer.description);
        for (media, schema) in resolve(answer.content) {
            response = response.content(media, ContentBuilder::new().schema(schema).build());
        }
        op = op.response(answer.status, response);
    }
    op = secured(op, route.access);
    op.build()
}

/// Any bytes, as a request body of a media type that is not JSON.
fn bytes() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Binary,
        )))
        .into()
}

/// Every route of an access level answers these, in its dialect's error shape.
fn shared_answers(route: &Route) -> &'static [Answer] {
    const TENANT: &[Answer] = &[
        answer(
            "401",
            "Missing, wrong or expired credentials.",
            Content::Error,
        ),
        answer(
            "429",
            "A limit of the caller is reached; `Retry-After` says when to try again.",
            Content::Error,
        ),
        answer(
            "503",
            "The database does not answer; `Retry-After` says when to try again.",
            Content::Error,
        ),
    ];
    const OPERATOR: &[Answer] = &[
        answer("401", "Missing or wrong operator token.", Content::Error),
        answer("503", "The database does not answer.", Content::Error),
    ];
    match route.access {
        Access::Tenant => TENANT,
        Access::Operator => OPERATOR,
        Access::Open => &[],
    }
}

fn secured(mut op: OperationBuilder, access: Access) -> OperationBuilder {
    let schemes: &[&str] = match access {
        Access::Tenant => &["basic", "bearer", "winfra_token"],
        Access::Operator => &["operator"],
        Access::Open => &[],
    };
    for scheme in schemes {
        op = op.security(SecurityRequirement::new::<_, _, &str>(*scheme, []));
    }
    op
}

/// The media types and schemas of a body; empty for none.
fn resolved(
    content: Content,
    dialect: Dialect,
    scope: &Scope,
    collection: Option<&Arc<Collection>>,
    components: &mut Vec<(String, RefOr<Schema>)>,
) -> Vec<(String, Option<RefOr<Schema>>)> {
    let json = |schema: RefOr<Schema>| vec![("application/json".to_string(), Some(schema))];
    let mut typed = |t: Typed| {
        if !components.iter().any(|(name, _)| *name == t.name()) {
            t.collect(components);
        }
        reference(&t.name())
    };
    match content {
        Content::Empty => Vec::new(),
        Content::Json(t) => json(typed(t)),
        Content::List(t) => json(ArrayBuilder::new().items(typed(t)).into()),
        Content::Error => json(reference(match dialect {
            Dialect::Collections => DRF_ERROR,
            Dialect::ChangeFeed => "AbraFailure",
            Dialect::BulkExport | Dialect::Operator | Dialect::Service => "WinfraFailure",
            Dialect::Batch => "BatchFailure",
        })),
        Content::Media(types) => types.iter().map(|t| (t.to_string(), None)).collect(),
        Content::Document => json(reference(&document_name(expect(collection)))),
        Content::Page => {
            let page = data::page(reference(&document_name(expect(collection))));
            let mut out = json(page.into());
            out.push(("text/html".into(), None));
            out
        }
        Content::Upsert => {
            let one = reference(&input_name(expect(collection)));
            let many = ArrayBuilder::new().items(one.clone());
            json(OneOfBuilder::new().item(one).item(many).into())
        }
        Content::Listing => json(data::listing(expect(collection)).into()),
        Content::Exports => json(match &scope.datasets {
            Some(datasets) if !datasets.is_empty() => {
                data::export_requests(datasets.values()).into()
            }
            _ => ArrayBuilder::new()
                .items(reference(&PeticionGenerarXxl::name()))
                .min_items(Some(1))
                .into(),
        }),
    }
}

fn expect(collection: Option<&Arc<Collection>>) -> &Collection {
    collection
        .unwrap_or_else(|| unreachable!("collection content is only on per-collection routes"))
}

fn parameter(param: &Param, scope: &Scope) -> utoipa::openapi::path::Parameter {
    let (location, required) = match param.at {
        At::Path => (ParameterIn::Path, Required::True),
        At::Query => (ParameterIn::Query, Required::False),
        At::RequiredQuery => (ParameterIn::Query, Required::True),
        At::Header => (ParameterIn::Header, Required::False),
    };
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let schema: Schema = match param.kind {
        Kind::Company => match scope.tenant {
            Some(tenant) => text().enum_values(Some([tenant])).into(),
            None => text().into(),
        },
        Kind::Text => text().into(),
        Kind::Whole => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .into(),
        Kind::Word(words) => text().enum_values(Some(words.iter().copied())).into(),
        Kind::Repeated => ArrayBuilder::new().items(text()).into(),
        Kind::Dataset => match &scope.datasets {
            Some(datasets) if !datasets.is_empty() => {
                text().enum_values(Some(datasets.keys().cloned())).into()
            }
            _ => text().into(),
        },
    };
    let mut built = ParameterBuilder::new()
        .name(param.name)
        .parameter_in(location)
        .required(required)
        .description(Some(param.description))
        .schema(Some(schema));
    if param.kind == Kind::Repeated {
        built = built.style(Some(ParameterStyle::Form)).explode(Some(true));
    }
    built.build()
}

/// A plugin endpoint's operation: any JSON in, any status and JSON out, in its path's
/// `{name}` segments.
fn endpoint_operation(
    endpoint: &EndpointInfo,
) -> Option<(HttpMethod, utoipa::openapi::path::Operation)> {
    let method = axum::http::Method::from_bytes(endpoint.method.as_bytes())
        .ok()
        .as_ref()
        .and_then(model::http_method)?;
    let mut op = OperationBuilder::new()
        .tag(Dialect::Batch.tag())
        .summary(Some(endpoint.description.clone()))
        .operation_id(Some(operation_id(&endpoint.method, &endpoint.path)));
    for name in crate::http::template::template_params(&endpoint.path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if matches!(
        method,
        HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
    ) {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Schema::default()))
                        .build(),
                )
                .build(),
        ));
    }
    let any = ContentBuilder::new()
        .schema(Some(Schema::default()))
        .build();
    op = op.response(
        "204",
        ResponseBuilder::new().description("The plugin answered with an empty body."),
    );
    op = op.response(
        "default",
        ResponseBuilder::new()
            .description(
                "What the plugin answers; the host's own errors are `{error: {code, message}}`.",
            )
            .content("application/json", any),
    );
    op = secured(op, Access::Tenant);
    Some((method, op.build()))
}

/// The document's reader: a tenant when the request carries its credentials.
struct Reader(Option<String>);

impl FromRequestParts<AppState> for Reader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller =
            Caller::<crate::bulk_export::WinfraError>::from_request_parts(parts, state).await;
        Ok(Reader(caller.ok().map(|c| c.tenant)))
    }
}

async fn serve_document(State(state): State<AppState>, Reader(tenant): Reader) -> Response {
    axum::Json(document(&state, tenant.as_deref())).into_response()
}

/// One operation the document describes: a route of the table in one of its renderings, at
/// the path it is served at in that rendering.
#[derive(Debug)]
pub struct Operation {
    /// The route.
    pub route: &'static Route,
    rendering: Rendering,
    /// Its path template: the route's own, or the `.xml` twin of an ABRA Flexi `.json` path.
    pub path: String,
}

/// Every operation of the table, `.xml` twins included, made once: the document, the batch
/// catalogue and the access log's route names all read this one list.
pub fn operations() -> &'static [Operation] {
    static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
        ROUTES
            .iter()
            .flat_map(|route| {
                Rendering::of(route)
                    .iter()
                    .map(move |&rendering| Operation {
                        route,
                        rendering,
                        path: rendering.path(route.path),
                    })
            })
            .collect()
    });
    &OPERATIONS
}

/// The template of the route a request of `method` on `path` takes, as the document names it:
/// the one with the fewest parameters where several match (`/api/v1/{collection}/{id}/` for
/// `GET /api/v1/shops/7/`); `None` for paths the document does not spell (DRF's suffixed
/// forms, plugin endpoints). A HEAD request takes its GET route.
pub fn documented_route(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    let method = if method == axum::http::Method::HEAD {
        &axum::http::Method::GET
    } else {
        method
    };
    operations()
        .iter()
        .filter(|op| op.route.method == *method)
        .filter_map(|op| {
            let filled = crate::http::template::template_fit(&op.path, path)?;
            Some((op.path.as_str(), filled))
        })
        .min_by_key(|(_, filled)| *filled)
        .map(|(template, _)| template)
}

/// The routes serving the document and the reference page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(serve_document))
        .route("/docs", get(docs::page))
        .route("/docs/", get(docs::index))
        .route("/docs/{file}", get(docs::file))
}
