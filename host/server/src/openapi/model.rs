//! What a route says about itself: its method and path, who may call it, its parameters, its
//! body and every answer it can give. The route table is written in these terms, and the
//! document, the batch catalogue and the tests read it.

use std::borrow::Cow;

use utoipa::ToSchema;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::{RefOr, Schema};

/// The API dialects the server speaks; each has its tag and its error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Datawiz collections, in Django REST Framework's manner.
    Collections,
    /// ABRA Flexi's change feed and listings.
    ChangeFeed,
    /// Winfra XXL's bulk export.
    BulkExport,
    /// LogiCommerce's batches and the plugin endpoints beside them.
    Batch,
    /// The operator's API.
    Operator,
    /// Liveness, metrics and this document.
    Service,
}

impl Dialect {
    /// The tag its operations carry.
    pub fn tag(self) -> &'static str {
        match self {
            Dialect::Collections => "Datawiz collections",
            Dialect::ChangeFeed => "ABRA Flexi changes",
            Dialect::BulkExport => "Winfra XXL bulk export",
            Dialect::Batch => "LogiCommerce batch",
            Dialect::Operator => "operator",
            Dialect::Service => "service",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// A tenant's user: Basic credentials, a bearer token or Winfra's token header.
    Tenant,
    /// The operator, with an operator bearer token.
    Operator,
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A `{name}` segment of the path.
    Path,
    /// The query string.
    Query,
    /// The query string, and the operation needs it.
    RequiredQuery,
    /// A request header.
    Header,
}

/// What values a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// A whole number from 0.
    Whole,
    /// One of these words.
    Word(&'static [&'static str]),
    /// Repeatable text, each value also a comma-separated list.
    Repeated,
    /// The name of a data set offered to the caller.
    Dataset,
    /// The caller's company (tenant), in ABRA Flexi's paths.
    Company,
}

/// One parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Where it travels.
    pub at: At,
    /// What it takes.
    pub kind: Kind,
    /// What it does.
    pub description: &'static str,
}

impl Param {
    /// A path segment.
    pub const fn path(name: &'static str, kind: Kind, description: &'static str) -> Param {
        Param {
            name,
            at: At::Path,
            kind,
            description,
        }
    }

    /// An optional query parameter.
    pub const fn query(name: &'static str, kind: Kind, description: &'static str) -> Param {
        Param {
            name,
            at: At::Query,
            kind,
            description,
        }
    }

    /// A query parameter the operation needs.
    pub const fn required_query(
        name: &'static str,
        kind: Kind,
        description: &'static str,
    ) -> Param {
        Param {
            name,
            at: At::RequiredQuery,
            kind,
            description,
        }
    }

    /// An optional header.
    pub const fn header(name: &'static str, description: &'static str) -> Param {
        Param {
            name,
            at: At::Header,
            kind: Kind::Text,
            description,
        }
    }
}

/// A type whose schema the document carries as a component.
#[derive(Clone, Copy)]
pub struct Typed {
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.name)())
    }
}

fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

impl Typed {
    /// The schema of `T`.
    pub const fn of<T: ToSchema>() -> Typed {
        Typed {
            name: T::name,
            collect: collect::<T>,
        }
    }

    /// The component's name.
    pub fn name(&self) -> String {
        (self.name)().into_owned()
    }

    /// Adds the component and those it refers to.
    pub fn collect(&self, out: &mut Vec<(String, RefOr<Schema>)>) {
        (self.collect)(out)
    }
}

/// What a request or response body holds.
#[derive(Debug, Clone, Copy)]
pub enum Content {
    /// Nothing.
    Empty,
    /// JSON of a type.
    Json(Typed),
    /// A JSON list of a type.
    List(Typed),
    /// The dialect's error body.
    Error,
    /// Bytes of any of these media types.
    Media(&'static [&'static str]),
    /// The collection's document, as responses show it.
    Document,
    /// One page of the collection's documents.
    Page,
    /// The collection's documents to upsert: one, or a list.
    Upsert,
    /// The collection as ABRA Flexi lists it.
    Listing,
    /// Data set requests, each with the parameters its data set takes.
    Exports,
}

/// One answer a route gives.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The status, or `default` for any other.
    pub status: &'static str,
    /// When it is given.
    pub description: &'static str,
    /// Its body.
    pub content: Content,
}

/// Shorthand for an [`Answer`].
pub const fn answer(status: &'static str, description: &'static str, content: Content) -> Answer {
    Answer {
        status,
        description,
        content,
    }
}

/// An HTTP method as OpenAPI names it; `None` for one OpenAPI has no operation for.
pub fn http_method(method: &axum::http::Method) -> Option<HttpMethod> {
    use axum::http::Method;
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::OPTIONS => HttpMethod::Options,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        Method::TRACE => HttpMethod::Trace,
        _ => return None,
    })
}

/// One operation the server serves.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its method.
    pub method: axum::http::Method,
    /// The path, with `{parameters}`; `{collection}` stands for each collection in turn.
    pub path: &'static str,
    /// The dialect it speaks.
    pub dialect: Dialect,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
    /// Its parameters, path segments included (`{collection}` excepted: each collection has
    /// its own paths).
    pub params: &'static [Param],
    /// Its request body.
    pub body: Content,
    /// Its answers beyond those every route of its access and dialect gives.
    pub answers: &'static [Answer],
}

impl Route {
    /// The method's name, upper case.
    pub fn method_name(&self) -> &str {
        self.method.as_str()
    }

    /// The method as the document names it.
    pub fn http_method(&self) -> HttpMethod {
        http_method(&self.method)
            .unwrap_or_else(|| unreachable!("the route table names only methods OpenAPI has"))
    }

    /// Whether the path names a collection, and so stands for one path per collection.
    pub fn per_collection(&self) -> bool {
        self.path.contains("{collection}")
    }
}
