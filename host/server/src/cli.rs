//! The operator interface: `bulkhost serve`, `bulkhost migrate`, `bulkhost copy` and the
//! credential helpers.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

use crate::config::{FileConfig, load_schemas};
use crate::{demo, serve};

/// bulkhost serves business data in bulk: paged collections (seed 001), a change feed
/// (seed 002), and an API token flow (seed 000), for many tenants from one redb file.
#[derive(Debug, Parser)]
#[command(name = "bulkhost", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the HTTP server.
    ///
    /// Settings come from, in rising precedence: built-in defaults, the TOML file given by
    /// --config, BULKHOST_* environment variables, and flags. The file declares tenants and their
    /// users ([[tenants]] with name, changes_enabled and [[tenants.users]] with name and
    /// password_hash), schema_dirs, public_url, max_body_bytes and token_ttl_secs.
    Serve(ServeArgs),
    /// Read a password from standard input and print its Argon2 hash for `password_hash`.
    HashPassword,
    /// Make an operator token for the `/admin/` API: prints the token (keep it) and its
    /// SHA-256 (put it in `[admin] token_sha256`).
    AdminToken,
    /// Apply the pending schema migrations of the shared PostgreSQL database.
    Migrate(DatabaseArgs),
    /// Copy a stopped deployment into an empty one: from a data directory to a PostgreSQL
    /// database, or back. Documents, the change log, attachments, tokens, shared settings and
    /// uploaded plugins move; queued or running work must have finished first.
    Copy(CopyArgs),
}

#[derive(Debug, clap::Args)]
struct CopyArgs {
    /// Where the deployment is: a data directory or a `postgres://` URL.
    #[arg(long)]
    from: String,
    /// Where it goes, empty: a data directory or a `postgres://` URL.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    deployment: DeploymentArgs,
}

/// What both `serve` and `copy` read: the configuration and the collections it declares.
#[derive(Debug, clap::Args)]
struct DeploymentArgs {
    /// TOML configuration file.
    #[arg(long, env = "BULKHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Extra directory of collection schemas (*.json); may be repeated.
    #[arg(long = "schemas", env = "BULKHOST_SCHEMAS", value_delimiter = ',')]
    schema_dirs: Vec<PathBuf>,
    /// Development mode: adds the `demo` tenant (user `demo.admin`, password `demo`) with demo
    /// documents, and accepts plain-text passwords in the configuration. Never for production.
    #[arg(long, env = "BULKHOST_DEV")]
    dev: bool,
}

/// The configuration `DeploymentArgs` name, with its collections and tenants.
struct Deployment {
    file: FileConfig,
    schemas: bulkhost_core::Schemas,
    tenants: bulkhost_core::Tenants,
}

impl DeploymentArgs {
    fn load(&self) -> anyhow::Result<Deployment> {
        let mut file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        if self.dev {
            demo::add_tenant(&mut file.tenants);
        }
        let mut schema_dirs = file.schema_dirs.clone();
        schema_dirs.extend(self.schema_dirs.iter().cloned());
        let schemas = load_schemas(&schema_dirs)?;
        let tenants = bulkhost_core::Tenants::new(std::mem::take(&mut file.tenants), self.dev)?
            .with_quotas(file.quotas);
        Ok(Deployment {
            file,
            schemas,
            tenants,
        })
    }
}

#[derive(Debug, clap::Args)]
struct DatabaseArgs {
    /// The PostgreSQL database, a `postgres://` URL.
    #[arg(long, env = "BULKHOST_DATABASE")]
    database: String,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "BULKHOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory of this host's files: the embedded database (without --database), compiled
    /// plugins [default: ./data].
    #[arg(long, env = "BULKHOST_DATA")]
    data: Option<PathBuf>,
    /// A PostgreSQL database (`postgres://...`) to keep everything in, shared with other hosts,
    /// instead of the embedded file.
    #[arg(long, env = "BULKHOST_DATABASE")]
    database: Option<String>,
    /// Apply pending schema migrations of the PostgreSQL database before serving.
    #[arg(long, env = "BULKHOST_MIGRATE")]
    migrate: bool,
    #[command(flatten)]
    deployment: DeploymentArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "BULKHOST_LOG_JSON")]
    log_json: bool,
}

/// Runs the command line.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            println!(
                "{}",
                bulkhost_core::hash_password(line.trim_end_matches(['\r', '\n']))
            );
            Ok(())
        }
        Command::AdminToken => {
            let token = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                rand::random::<[u8; 32]>(),
            );
            let digest = hex::encode(Sha256::digest(token.as_bytes()));
            println!("token: {token}\ntoken_sha256: {digest}");
            Ok(())
        }
        Command::Serve(args) => run_serve(args),
        Command::Copy(args) => {
            init_tracing(false);
            let Deployment {
                schemas, tenants, ..
            } = args.deployment.load()?;
            let copied =
                runtime()?.block_on(crate::copy::copy(&args.from, &args.to, schemas, tenants))?;
            println!(
                "copied {} documents, {} changes, {} attachments, {} tokens, {} settings and {} plugins",
                copied.documents,
                copied.changes,
                copied.attachments,
                copied.tokens,
                copied.settings,
                copied.components
            );
            Ok(())
        }
        Command::Migrate(args) => {
            init_tracing(false);
            let applied = runtime()?.block_on(serve::migrate(&args.database))?;
            match applied.as_slice() {
                [] => println!("the database schema is up to date"),
                versions => println!("applied schema migrations {versions:?}"),
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_json);
    match crate::listener::raise_file_limit() {
        Ok(files) => tracing::debug!(files, "open files allowed"),
        Err(e) => tracing::warn!(error = %e, "could not raise the limit of open files"),
    }
    let Deployment {
        mut file,
        schemas,
        tenants,
    } = args.deployment.load()?;
    if let Some(url) = &args.database {
        file.database.url = Some(url.clone());
    }
    file.database.migrate |= args.migrate;
    let options = serve::Options {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        data: args
            .data
            .clone()
            .or_else(|| file.data.clone())
            .unwrap_or_else(|| PathBuf::from("data")),
        schemas,
        tenants,
        database: file.database.database(),
        settings: file.settings(),
        demo: args.deployment.dev,
    };
    runtime()?.block_on(serve::run(options))
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BULKHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
