//! Hearing of every host's commits: a connection of its own `LISTEN`s on the versions channel
//! and tells the engine's listeners, so a long-poll on one host wakes when another commits.
//!
//! A notification sent while the connection is down is lost, so after every (re)connection the
//! listeners are told every tenant's current version: a waiter never sleeps through a commit
//! it would have heard of.

use std::sync::Arc;
use std::time::Duration;

use bulkhost_core::engine::CommitListeners;
use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use crate::documents::VERSIONS_CHANNEL;

/// How long to wait before connecting again after the connection was lost.
const RECONNECT: Duration = Duration::from_millis(500);

/// Starts listening on the current runtime, for as long as it runs.
pub(crate) fn spawn(config: tokio_postgres::Config, listeners: Arc<CommitListeners>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, &listeners).await {
                tracing::warn!(error = %e, "listening for other hosts' commits failed; reconnecting");
            }
            tokio::time::sleep(RECONNECT).await;
        }
    });
}

/// One connection's life: listen, catch up, then pass notifications on until it ends.
async fn listen(
    config: &tokio_postgres::Config,
    listeners: &CommitListeners,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (sender, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if sender.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {VERSIONS_CHANNEL}"))
        .await?;
    for row in client
        .query("SELECT tenant, version FROM tenants", &[])
        .await?
    {
        listeners.tell(row.get(0), row.get::<_, i64>(1) as u64);
    }
    while let Some(payload) = notices.recv().await {
        if let Some((version, tenant)) = payload.split_once(' ')
            && let Ok(version) = version.parse()
        {
            listeners.tell(tenant, version);
        }
    }
    match driver.await {
        Ok(ended) => ended,
        Err(_) => Ok(()),
    }
}
