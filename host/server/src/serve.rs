//! Starting the server: open the store, bind, serve until SIGTERM or Ctrl-C, then let
//! in-flight requests finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bulkhost_core::{Schemas, Store, Tenants};
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::state::{AppState, VersionWatch, blocking};
use crate::{app, demo};

/// Everything needed to run a server.
#[derive(Debug)]
pub struct Options {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Directory of the database file.
    pub data: PathBuf,
    /// The collections served.
    pub schemas: Schemas,
    /// The tenants served.
    pub tenants: Tenants,
    /// Run-time settings.
    pub settings: Settings,
    /// Whether to load the demo documents.
    pub demo: bool,
}

/// A bound server, ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(options: Options) -> anyhow::Result<Server> {
        let data = options.data.clone();
        let (schemas, tenants, demo_data) = (options.schemas, options.tenants, options.demo);
        let store = blocking(move || -> anyhow::Result<Store> {
            let store = Store::open(&data, schemas, tenants)
                .with_context(|| format!("opening the database in {}", data.display()))?;
            if demo_data {
                demo::load(&store).context("loading the demo documents")?;
            }
            Ok(store)
        })
        .await?;
        let versions = Arc::new(VersionWatch::default());
        store.storage().add_listener(versions.clone());
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        Ok(Server {
            listener,
            state: AppState {
                store,
                settings: Arc::new(options.settings),
                versions,
                metrics: Arc::default(),
                stopping: Arc::new(tokio::sync::watch::channel(false).0),
            },
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tokio::spawn(maintain(self.state.clone()));
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        axum::serve(self.listener, app(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}

/// Drops change records older than the retention, every maintenance interval, until shutdown.
async fn maintain(state: AppState) {
    let Some(retention) = state.settings.change_retention else {
        return;
    };
    let mut stopping = state.stopping.subscribe();
    let mut ticks = tokio::time::interval(state.settings.maintenance_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|stopping| *stopping) => return,
        }
        let Some(cutoff) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| chrono::Utc::now().naive_utc().checked_sub_signed(r))
        else {
            return;
        };
        let tenants: Vec<String> = state
            .store
            .tenants()
            .iter()
            .map(|t| t.name.clone())
            .collect();
        for tenant in tenants {
            let store = state.store.clone();
            let pruned =
                blocking(move || store.prune_changes(&tenant, cutoff).map(|n| (tenant, n))).await;
            match pruned {
                Ok((tenant, n)) if n > 0 => {
                    tracing::info!(%tenant, pruned = n, "dropped expired change records")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning change records failed"),
            }
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let demo_mode = options.demo;
    let server = Server::bind(options).await?;
    let addr = server.local_addr();
    tracing::info!(%addr, "bulkhost listening");
    println!("bulkhost listening on http://{addr}");
    if demo_mode {
        println!(
            "development mode: tenant `{}`, user `{}`, password `{}`",
            demo::TENANT,
            demo::USER,
            demo::PASSWORD
        );
    }
    server.serve(shutdown_signal()).await?;
    tracing::info!("bulkhost stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
