//! The command-line client of the four APIs, for a server's customers: `bulkhost export`
//! queues Winfra XXL data sets and downloads them with progress bars, in parallel byte ranges
//! that resume after an interruption; `bulkhost sync` keeps a local SQLite copy of collections
//! in step with ABRA Flexi's change feed; `bulkhost batch` runs LogiCommerce operations from a
//! JSON-lines file in as many batches as their load scores need.
//!
//! Where the server is and who calls it comes from flags, the environment or a TOML file, in
//! that order of precedence; the password is never printed.

mod batch;
mod connection;
mod download;
mod export;
mod sync;

use std::time::Duration;

pub use connection::{Connection, ConnectionArgs};

/// How often a command asks the server how work is going.
const POLL: Duration = Duration::from_millis(250);

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection settings are incomplete or unreadable.
    #[error("{0}")]
    Settings(String),
    /// The server could not be reached or the connection broke.
    #[error("{0}: {1}")]
    Http(String, String),
    /// The server refused or failed a request.
    #[error("{what}: the server answered {status}: {message}")]
    Refused {
        /// What was asked.
        what: String,
        /// The status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// What arrived is not what was announced.
    #[error("{0}")]
    Mismatch(String),
    /// A local file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The local database failed.
    #[error("the local database: {0}")]
    Local(#[from] rusqlite::Error),
}

/// `bulkhost export|sync|batch`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Queue Winfra XXL data sets, follow their generation and download them.
    Export(export::ExportArgs),
    /// Copy collections into a local SQLite file and keep it in step with the change feed.
    Sync(sync::SyncArgs),
    /// Run LogiCommerce batch operations from a JSON-lines file.
    Batch(batch::BatchArgs),
}

/// Runs a client command.
pub fn main(command: ClientCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            ClientCommand::Export(args) => export::run(args).await,
            ClientCommand::Sync(args) => sync::run(args).await,
            ClientCommand::Batch(args) => batch::run(args).await,
        }
    })?;
    Ok(())
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ClientError {
    move |e| ClientError::Io(what.to_string(), e)
}
