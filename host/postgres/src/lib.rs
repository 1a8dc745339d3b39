//! The PostgreSQL engine of bulkhost: every piece of durable state in one database that
//! several hosts share, so that any host answers any request.
//!
//! It implements the engine traits of [`bulkhost_core::engine`] in PostgreSQL's idiom: rows
//! with primary keys and unique constraints, a tenant row locked for the length of a document
//! write (so versions commit in the order they are given), `FOR UPDATE SKIP LOCKED` for the
//! queues, and `NOTIFY` from the committing transaction, which every host `LISTEN`s to, to wake
//! its long-polls. The schema is versioned ([`migrate_database`]).
//!
//! The core calls engines synchronously, from the server's blocking pool; this engine drives
//! tokio-postgres (with a bounded deadpool pool) from there, the connections themselves running
//! as tasks on the server's runtime, so nothing blocks the runtime's async workers.

#![deny(missing_docs)]

mod batches;
mod components;
mod documents;
mod error;
mod exports;
mod hooks;
mod json;
mod listen;
mod order;
mod outbox;
mod schema;
mod session;
mod settings;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use bulkhost_core::Result;
use bulkhost_core::engine::{CommitListener, CommitListeners, Durability, Engine, Txn, View};

pub use error::ConnectError;
pub use schema::migrate_database;
use session::Session;

/// How the engine connects.
#[derive(Debug, Clone)]
pub struct Options {
    /// A `postgres://` URL (or a libpq key/value string).
    pub url: String,
    /// The most connections the pool opens.
    pub pool_size: usize,
    /// How long a request waits for a free connection, or for one to be opened, before it
    /// fails as unavailable.
    pub wait: Duration,
}

impl Options {
    /// The defaults for `url`: 16 connections, 5 s of waiting.
    pub fn new(url: &str) -> Self {
        Options {
            url: url.to_string(),
            pool_size: 16,
            wait: Duration::from_secs(5),
        }
    }

    /// Whether the URL is one a connection could be made with, without connecting: a
    /// configuration is checked before anything starts.
    pub fn check_url(url: &str) -> std::result::Result<(), ConnectError> {
        url.parse::<tokio_postgres::Config>()?;
        Ok(())
    }
}

/// The PostgreSQL engine. Cheap to clone.
#[derive(Clone)]
pub struct PgEngine {
    pool: deadpool_postgres::Pool,
    runtime: tokio::runtime::Handle,
    listeners: Arc<CommitListeners>,
}

impl std::fmt::Debug for PgEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEngine")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// How often a serialization failure or deadlock is retried before the write fails.
const RETRIES: usize = 3;

impl PgEngine {
    /// Connects to the database, which must be migrated to this build's schema
    /// ([`migrate_database`] does it), and starts listening for other hosts' commits. Must be called
    /// inside a tokio runtime, which runs the connections from then on.
    pub async fn connect(options: &Options) -> std::result::Result<Self, ConnectError> {
        let config: tokio_postgres::Config = options.url.parse()?;
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.wait))
            .create_timeout(Some(options.wait))
            .recycle_timeout(Some(options.wait))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()?;
        let client = pool.get().await?;
        schema::check(&client).await?;
        drop(client);
        let engine = PgEngine {
            pool,
            runtime: tokio::runtime::Handle::current(),
            listeners: Arc::default(),
        };
        listen::spawn(config, engine.listeners.clone());
        Ok(engine)
    }

    /// A session on a pooled connection.
    fn session(&self) -> Result<Session> {
        Session::open(&self.pool, &self.runtime)
    }
}

impl Engine for PgEngine {
    fn read(&self) -> Result<Box<dyn View>> {
        let session = self.session()?;
        session.execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        Ok(Box::new(session))
    }

    fn write(
        &self,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            let mut session = self.session()?;
            session.execute_batch(match durability {
                Durability::Immediate => "BEGIN",
                // A commit that does not wait for the WAL flush; a crash may lose it whole.
                Durability::Deferred => "BEGIN; SET LOCAL synchronous_commit = off",
            })?;
            match work(&mut session).and_then(|()| session.commit()) {
                Err(e) if session.retryable() && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying a write after a conflict");
                }
                done => return done,
            }
        }
    }

    fn add_listener(&self, listener: Arc<dyn CommitListener>) {
        self.listeners.add(listener);
    }

    fn shared(&self) -> bool {
        true
    }
}
