//! Starting the server: open the store, load the operator's plugins, bind, serve until SIGTERM
//! or Ctrl-C, then let in-flight requests finish. Tenants' own plugins load in the background
//! once the server listens, so no tenant's component can hold the start up; work that may
//! need one (export runs, batches) waits until they have loaded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulkhost_core::engine::Engine;
use bulkhost_core::{RedbEngine, Schemas, Store, Tenants};
use tokio::net::TcpListener;

use crate::collections::pages::{self, PageCache};
use crate::config::Config;
use bulkhost_runtime::{Registry, Runtime, SyncReport};

use crate::state::{AppState, Ticks, VersionWatch, blocking};
use crate::workers;
use crate::{app, demo};

/// Everything needed to run a server.
#[derive(Debug)]
pub struct Options {
    /// The configuration: where to listen (port 0 picks a free one), the data directory or the
    /// shared database, and every setting.
    pub config: Config,
    /// The collections served.
    pub schemas: Schemas,
    /// The tenants served.
    pub tenants: Tenants,
    /// Whether to load the demo documents.
    pub demo: bool,
}

/// A shared PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Database {
    /// How to connect.
    pub options: bulkhost_postgres::Options,
    /// Whether to apply pending schema migrations before serving.
    pub migrate: bool,
}

/// Opens the store on the engine the options name: the shared database, or the embedded file
/// in `data`.
async fn open_store(
    data: &std::path::Path,
    database: Option<&Database>,
    schemas: Schemas,
    tenants: Tenants,
) -> anyhow::Result<Store> {
    let engine = match database {
        Some(database) => open_shared(database).await?,
        None => open_embedded(data, &schemas).await?,
    };
    Ok(Store::new(engine, schemas, tenants))
}

/// Opens the embedded file in `data`, upgraded when an earlier build wrote it.
pub async fn open_embedded(
    data: &std::path::Path,
    schemas: &Schemas,
) -> anyhow::Result<Arc<dyn Engine>> {
    let (data, schemas) = (data.to_path_buf(), schemas.clone());
    let engine = blocking(move || {
        RedbEngine::open(&data, &schemas)
            .with_context(|| format!("opening the database in {}", data.display()))
    })
    .await?;
    Ok(Arc::new(engine))
}

/// Opens the shared database, its pending migrations applied first when asked.
pub async fn open_shared(database: &Database) -> anyhow::Result<Arc<dyn Engine>> {
    if database.migrate {
        migrate(&database.options.url).await?;
    }
    let engine = bulkhost_postgres::PgEngine::connect(&database.options)
        .await
        .context("opening the PostgreSQL database")?;
    Ok(Arc::new(engine))
}

/// Applies the pending schema migrations of the PostgreSQL database at `url`; answers the
/// versions applied.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<i32>> {
    let applied = bulkhost_postgres::migrate_database(url)
        .await
        .context("migrating the PostgreSQL database")?;
    for version in &applied {
        tracing::info!(version, "applied a schema migration");
    }
    Ok(applied)
}

/// A bound server, ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    notifier: Arc<crate::webhooks::Notifier>,
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(options: Options) -> anyhow::Result<Server> {
        let config = options.config.finished()?;
        let store = open_store(
            &config.data,
            config.database.database().as_ref(),
            options.schemas,
            options.tenants,
        )
        .await?
        .with_lease(config.database.lease());
        if options.demo {
            let store = store.clone();
            blocking(move || demo::load(&store))
                .await
                .context("loading the demo documents")?;
        }
        let versions = Arc::new(VersionWatch::default());
        store.engine().add_listener(versions.clone());
        let plugins_dir = config.plugins_dir();
        let cache_dir = config.data.join("compiled");
        let limits = config.plugin_limits();
        let compilation = config.plugins.compilation();
        let grants = config.plugins.grants();
        let uploads = store.clone();
        let registry = blocking(move || -> anyhow::Result<Registry> {
            std::fs::create_dir_all(&plugins_dir)
                .with_context(|| format!("creating {}", plugins_dir.display()))?;
            let runtime = Runtime::new(limits, compilation, Some(&cache_dir))
                .context("starting the plugin runtime")?;
            let registry = Registry::new(runtime, plugins_dir, grants, uploads);
            log_sync(&registry.sync_operator());
            Ok(registry)
        })
        .await?;
        // Alone on its database, a host starting up knows every lease it finds is a previous
        // process's; beside others, only lapsed ones are.
        let lapsed_before = if store.engine().shared() {
            chrono::Utc::now().naive_utc()
        } else {
            chrono::NaiveDateTime::MAX
        };
        let recovering = store.clone();
        let recovered = blocking(move || recovering.exports().recover_exports(lapsed_before))
            .await
            .context("recovering interrupted exports")?;
        if recovered > 0 {
            tracing::warn!(
                runs = recovered,
                "requeued export runs interrupted by a stop"
            );
        }
        let resuming = store.clone();
        let resumed = blocking(move || resuming.batches().recover_batches(lapsed_before))
            .await
            .context("recovering interrupted batches")?;
        if resumed > 0 {
            tracing::warn!(batches = resumed, "resuming batches interrupted by a stop");
        }
        let signer = {
            let (configured, store) = (config.webhooks.secret.clone(), store.clone());
            let data = config.data.clone();
            blocking(move || {
                crate::webhooks::Signer::load_or_create(configured.as_deref(), &store, &data)
            })
            .await?
        };
        let notifier = Arc::new(crate::webhooks::Notifier {
            mailer: config
                .mail
                .relay
                .as_deref()
                .map(|relay| crate::mail::Mailer::new(relay, &config.mail.from))
                .transpose()?,
            mails: crate::throttle::Throttle::new(
                config.mail.per_tenant_per_hour,
                Duration::from_secs(3600),
            ),
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let gates = crate::gates::Gates {
            streams: crate::gates::TenantGate::new(
                config.http.streams_per_tenant,
                "streamed responses",
            )
            .at_most(config.http.streams_at_once),
            long_polls: crate::gates::TenantGate::new(
                config.http.long_polls_per_tenant,
                "long-polls",
            ),
            plugin_calls: crate::gates::TenantGate::new(
                config.plugins.calls_per_tenant,
                "plugin calls",
            )
            .at_most(config.plugins.calls_at_once),
        };
        let metrics = Arc::new(crate::metrics::Metrics::new(
            store.clone(),
            registry.runtime().clone(),
        ));
        Ok(Server {
            listener,
            notifier,
            state: AppState {
                store,
                passwords: Arc::new(crate::auth::PasswordChecks::new(&config.auth)),
                gates: Arc::new(gates),
                config: Arc::new(config),
                versions,
                metrics,
                stopping: Arc::new(tokio::sync::watch::channel(false).0),
                registry: Arc::new(registry),
                signer: Arc::new(signer),
                wakeup: Arc::default(),
                batch_wakeup: Arc::default(),
                plugins_loaded: Arc::new(tokio::sync::watch::channel(false).0),
                pages: Arc::new(PageCache::new(pages::BUDGET_BYTES)),
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
        tokio::spawn(take_back_lapsed_work(self.state.clone()));
        tokio::spawn(forget_idle_rations(self.state.clone()));
        tokio::spawn(follow_plugins(self.state.clone()));
        tokio::spawn(crate::webhooks::deliver(
            self.state.clone(),
            self.notifier.clone(),
        ));
        tokio::spawn(crate::change_hooks::deliver(self.state.clone()));
        workers::spawn(&self.state, self.state.config.exports.workers);
        let batch_workers =
            crate::batch::executor::spawn(&self.state, self.state.config.batches.workers);
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let write_timeout = Duration::from_secs(self.state.config.http.write_timeout_secs);
        crate::listener::serve(self.listener, app(self.state), write_timeout, shutdown).await;
        let finishing = async {
            for worker in batch_workers {
                let _ = worker.await;
            }
        };
        if tokio::time::timeout(BATCH_STOP_GRACE, finishing)
            .await
            .is_err()
        {
            tracing::warn!(
                "batch operations still running at the stop; they run again after the restart"
            );
        }
        Ok(())
    }
}

fn log_sync(report: &SyncReport) {
    for path in &report.loaded {
        tracing::info!(plugin = %path, "plugin loaded");
    }
    for path in &report.replaced {
        tracing::info!(plugin = %path, "plugin replaced");
    }
    for path in &report.removed {
        tracing::info!(plugin = %path, "plugin removed");
    }
    for (path, why) in &report.failed {
        tracing::warn!(plugin = %path, error = %why, "plugin not loaded");
    }
}

/// Keeps the registry in step with the plugins directory until shutdown; the first round,
/// right after the start, loads the tenants' own plugins.
async fn follow_plugins(state: AppState) {
    let mut ticks = Ticks::new(&state, state.config.plugins.sync_interval());
    while ticks.next().await {
        let registry = state.registry.clone();
        log_sync(&blocking(move || registry.sync()).await);
        state.plugins_loaded.send_replace(true);
    }
}

/// Every minute until shutdown: drops the sign-in rations that have filled up again, so
/// their memory holds about a minute of checks.
async fn forget_idle_rations(state: AppState) {
    let mut ticks = Ticks::new(&state, Duration::from_secs(60));
    while ticks.next().await {
        state.passwords.forget_idle();
    }
}

/// Twice per lease until shutdown: takes back the export runs and batches whose host stopped
/// renewing their leases (it died, or lost the database), so this host runs them.
async fn take_back_lapsed_work(state: AppState) {
    let mut ticks = Ticks::new(&state, state.store.lease() / 2);
    while ticks.next().await {
        let now = chrono::Utc::now().naive_utc();
        let store = state.store.clone();
        match blocking(move || store.exports().recover_exports(now)).await {
            Ok(0) => {}
            Ok(runs) => {
                tracing::warn!(runs, "took back export runs whose lease lapsed");
                state.wakeup.notify();
            }
            Err(e) => tracing::error!(error = %e, "taking back export runs failed"),
        }
        let store = state.store.clone();
        match blocking(move || store.batches().recover_batches(now)).await {
            Ok(0) => {}
            Ok(batches) => {
                tracing::warn!(batches, "took back batches whose lease lapsed");
                state.batch_wakeup.notify_waiters();
            }
            Err(e) => tracing::error!(error = %e, "taking back batches failed"),
        }
    }
}

/// Every maintenance interval until shutdown: drops expired export requests with their data,
/// and change records older than the retention.
async fn maintain(state: AppState) {
    let mut ticks = Ticks::new(&state, state.config.maintenance_interval());
    while ticks.next().await {
        let store = state.store.clone();
        match blocking(move || store.exports().prune_exports()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "dropped expired export requests"),
            Err(e) => tracing::error!(error = %e, "pruning export requests failed"),
        }
        let (store, kept) = (state.store.clone(), state.config.batches.results_ttl());
        match blocking(move || store.batches().prune_batches(kept)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(batches = n, "dropped expired batches"),
            Err(e) => tracing::error!(error = %e, "pruning batches failed"),
        }
        let store = state.store.clone();
        match blocking(move || store.credentials().prune_tokens(chrono::Utc::now())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tokens = n, "dropped expired tokens"),
            Err(e) => tracing::error!(error = %e, "pruning tokens failed"),
        }
        let cutoff = state.config.change_retention().and_then(|retention| {
            chrono::Duration::from_std(retention)
                .ok()
                .and_then(|r| chrono::Utc::now().naive_utc().checked_sub_signed(r))
        });
        let Some(cutoff) = cutoff else { continue };
        let tenants: Vec<String> = state
            .store
            .tenants()
            .iter()
            .map(|t| t.name.clone())
            .collect();
        for tenant in tenants {
            let store = state.store.clone();
            let pruned = blocking(move || {
                store
                    .change_feed()
                    .prune_changes(&tenant, cutoff)
                    .map(|n| (tenant, n))
            })
            .await;
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

/// How long a stop waits for the batch operations in flight to finish and their results to
/// be recorded; an operation still running then runs again after the restart.
const BATCH_STOP_GRACE: Duration = Duration::from_secs(10);

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
