//! How PostgreSQL's failures become the core's: a database that cannot be reached for now is
//! [`Error::Unavailable`] (a surface answers 503 and the client tries again), anything else a
//! storage failure.

use bulkhost_core::Error;
use tokio_postgres::error::SqlState;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection string is not valid.
    #[error("the database URL is not valid: {0}")]
    Url(#[from] tokio_postgres::Error),
    /// The pool could not be built.
    #[error("the connection pool could not be built: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    /// No connection could be opened.
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    /// The database's schema is not this build's.
    #[error("{0}")]
    Schema(String),
    /// A statement failed.
    #[error("{0}")]
    Core(#[from] Error),
}

/// Whether a failure means the server cannot be reached or is going away.
fn unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        }
        // Without a state from the server, only a failure of the connection's I/O is one.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// A failed statement, told with the server's own words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Statement(String);

/// What the server said of a failure, or the client's account when the server said nothing.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The core's error for a failed statement.
pub(crate) fn from_pg(e: tokio_postgres::Error) -> Error {
    if unavailable(&e) {
        Error::Unavailable(describe(&e))
    } else {
        Error::Storage(Box::new(Statement(describe(&e))))
    }
}

/// The core's error for a connection the pool could not give.
pub(crate) fn from_pool(e: deadpool_postgres::PoolError) -> Error {
    Error::Unavailable(e.to_string())
}
