//! Reading request bodies: one reader, one size rule and one way of saying where a JSON body
//! is wrong, for every surface. Each dialect turns a [`BodyError`] into its own error shape
//! once (`From<BodyError>`), so an oversized body is the same 413 on every route of a dialect.

use std::marker::PhantomData;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use crate::state::AppState;

/// Why a request body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body passed the route's limit, in bytes.
    #[error("a request body here may hold at most {}", Size(*.0))]
    TooLarge(usize),
    /// The connection failed while the body was read.
    #[error("could not read the request body: {0}")]
    Unreadable(String),
    /// The body is not JSON at all.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON of another shape; `path` says where (`batch.operations[2].method`).
    #[error("{message} at `{path}`")]
    Shape {
        /// Where in the body, in dotted form; `.` for the whole body.
        path: String,
        /// What was expected there.
        message: String,
    },
}

/// A size in the unit it is most likely configured in.
struct Size(usize);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: usize = 1 << 20;
        if self.0 >= MIB && self.0.is_multiple_of(MIB) {
            write!(f, "{} MiB", self.0 / MIB)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            BodyError::TooLarge(limit)
        } else {
            BodyError::Unreadable(e.to_string())
        }
    })
}

/// Parses JSON into `T`, naming the place in the body where it does not fit.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    // Tracking the path slows the parse of every large list, and most bodies fit: only a
    // body that does not is read a second time, to say where.
    serde_json::from_slice(bytes).or_else(|_| parse_located(bytes))
}

/// [`parse`]'s error: the place in the body where it does not fit.
fn parse_located<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            BodyError::Shape {
                path,
                message: inner.to_string(),
            }
        } else {
            BodyError::NotJson(inner.to_string())
        }
    })?;
    reader
        .end()
        .map_err(|e| BodyError::NotJson(e.to_string()))?;
    Ok(parsed)
}

/// A request body within the deployment's `max_body_bytes`, refused in the dialect `E`.
#[derive(Debug)]
pub struct Limited<E>(pub Bytes, pub PhantomData<E>);

impl<E> FromRequest<AppState> for Limited<E>
where
    E: From<BodyError> + IntoResponse,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, E> {
        let bytes = read(request.into_body(), state.config.max_body_bytes).await?;
        Ok(Limited(bytes, PhantomData))
    }
}
