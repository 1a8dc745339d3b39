//! One pooled connection with one open transaction: what a snapshot or a write of the core
//! runs in. Every engine trait is implemented on [`Session`], reads once for both.

use std::cell::Cell;
use std::future::Future;

use bulkhost_core::Result;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::error::{from_pg, from_pool};

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A transaction on a pooled connection, rolled back unless committed.
pub(crate) struct Session {
    client: Option<deadpool_postgres::Object>,
    runtime: tokio::runtime::Handle,
    /// Whether the last failure was a conflict that running the transaction again resolves.
    conflict: Cell<bool>,
}

impl Session {
    /// A session on a connection from `pool`, waiting at most the pool's timeout for one.
    pub(crate) fn open(
        pool: &deadpool_postgres::Pool,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self> {
        let client = run(runtime, pool.get()).map_err(from_pool)?;
        Ok(Session {
            client: Some(client),
            runtime: runtime.clone(),
            conflict: Cell::new(false),
        })
    }

    fn client(&self) -> &deadpool_postgres::Object {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("a session has its connection until it ends"))
    }

    /// Waits for `work` on the calling (blocking) thread; its I/O runs on the runtime.
    fn wait<T>(
        &self,
        work: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        run(&self.runtime, work).map_err(|e| {
            self.conflict.set(matches!(
                e.code(),
                Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
            ));
            from_pg(e)
        })
    }

    /// Runs statements without parameters.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        let client = self.client();
        self.wait(client.batch_execute(sql))
    }

    /// The rows of a query.
    pub(crate) fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let client = self.client();
        self.wait(async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
    }

    /// The row of a query that answers at most one.
    pub(crate) fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let client = self.client();
        self.wait(async {
            let statement = client.prepare_cached(sql).await?;
            client.query_opt(&statement, params).await
        })
    }

    /// The row of a query that answers exactly one.
    pub(crate) fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row> {
        let client = self.client();
        self.wait(async {
            let statement = client.prepare_cached(sql).await?;
            client.query_one(&statement, params).await
        })
    }

    /// Runs a statement; answers how many rows it touched.
    pub(crate) fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let client = self.client();
        self.wait(async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
    }

    /// Commits the transaction.
    pub(crate) fn commit(&mut self) -> Result<()> {
        self.execute_batch("COMMIT")?;
        self.client.take();
        Ok(())
    }

    /// Whether the last failure was a conflict (a deadlock, a serialization failure).
    pub(crate) fn retryable(&self) -> bool {
        self.conflict.get()
    }
}

/// Waits for `work` on the calling thread, with `runtime` driving the connections.
///
/// The caller may itself be inside another runtime's `block_on` (a plugin's host call runs in
/// one): `work` runs outside tokio's cooperative budget, whose exhaustion would defer a wake-up
/// to that runtime's scheduler, which cannot run while this thread waits.
fn run<T>(runtime: &tokio::runtime::Handle, work: impl Future<Output = T>) -> T {
    let _entered = runtime.enter();
    futures_executor::block_on(tokio::task::unconstrained(work))
}

impl Drop for Session {
    /// An unfinished transaction is rolled back before its connection goes back to the pool,
    /// on the runtime: a snapshot may be dropped anywhere, and dropping never waits.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.runtime.spawn(async move {
                if client.batch_execute("ROLLBACK").await.is_err() {
                    // A connection in an unknown state never goes back to the pool.
                    drop(deadpool_postgres::Object::take(client));
                }
            });
        }
    }
}
