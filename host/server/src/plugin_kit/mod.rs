//! The plugin author's kit, `bulkhost plugin new|check|run`: start a plugin crate that builds
//! where it is written, see what the host makes of a component, and run a data set over local
//! documents without a server, under the limits a server applies.

mod check;
mod local;
mod scaffold;

use std::path::{Path, PathBuf};

use anyhow::Context;
use bulkhost_runtime::Runtime;

pub use scaffold::Kind;

use crate::config::{Flags, load_schemas};

/// `bulkhost plugin ...`.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin crate NAME in the current directory: the contract (`wit/`), the SDK
    /// (`vendor/`), an example and sample documents; `cargo build --release` in it builds the
    /// component.
    New {
        /// What the plugin provides.
        #[arg(long, value_enum, default_value = "dataset")]
        kind: Kind,
        /// The crate's name (lowercase letters, digits, `-`, `_`).
        name: String,
    },
    /// Load a component as the server would and print its world, its data sets or endpoints,
    /// or why the host refuses it; exits non-zero when refused.
    Check {
        /// The component (`.wasm`).
        component: PathBuf,
        /// Where the limits come from.
        #[command(flatten)]
        limits: LimitsArgs,
    },
    /// Generate one data set without a server, over documents from JSON files, and write its
    /// records as JSON lines; a timing line goes to standard error.
    Run {
        /// The component (`.wasm`).
        component: PathBuf,
        /// The data set to generate.
        #[arg(long)]
        dataset: String,
        /// A parameter, `name=value`; may be repeated.
        #[arg(long = "param", value_parser = param)]
        params: Vec<(String, String)>,
        /// A directory of documents: `{collection}.json` (an array of documents) or
        /// `{collection}.jsonl`, one per collection.
        #[arg(long)]
        documents: Option<PathBuf>,
        /// Extra directory of collection schemas (*.json), beside the bundled ones; may be
        /// repeated.
        #[arg(long = "schemas")]
        schema_dirs: Vec<PathBuf>,
        /// Write the records here instead of to standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Where the limits come from.
        #[command(flatten)]
        limits: LimitsArgs,
    },
}

/// Where the limits come from: the server's defaults, or a deployment's configuration.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    /// The server's TOML configuration, whose `[plugins]` limits apply (environment variables
    /// apply as they do for `serve`).
    #[arg(long, env = "BULKHOST_CONFIG")]
    config: Option<PathBuf>,
}

impl LimitsArgs {
    fn runtime(&self) -> anyhow::Result<Runtime> {
        let config = crate::config::load(self.config.as_deref(), &Flags::default())?;
        Runtime::new(config.plugins.limits(), config.plugins.compilation(), None)
            .context("starting the plugin runtime")
    }
}

fn param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not `name=value`"))
}

/// Why a kit command failed.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The host would refuse the component.
    #[error("refused: {0}")]
    Refused(String),
    /// The command was asked for something that cannot be.
    #[error("{0}")]
    Usage(String),
    /// The plugin failed while running.
    #[error("the plugin failed: {0}")]
    Failed(String),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// A component's bytes and the name the server would give it (its file name).
fn read_component(path: &Path) -> Result<(String, Vec<u8>), KitError> {
    let wasm = std::fs::read(path).map_err(|e| KitError::Io(path.display().to_string(), e))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    Ok((name, wasm))
}

/// Runs a kit command.
pub fn main(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New { kind, name } => {
            let root = scaffold::write(Path::new("."), &name, kind)?;
            println!(
                "wrote {}: `cd {name} && cargo build --release` builds target/wasm32-wasip2/release/{}.wasm",
                root.display(),
                name.replace('-', "_")
            );
            Ok(())
        }
        PluginCommand::Check { component, limits } => {
            print!("{}", check::check(&limits.runtime()?, &component)?);
            Ok(())
        }
        PluginCommand::Run {
            component,
            dataset,
            params,
            documents,
            schema_dirs,
            output,
            limits,
        } => {
            let schemas = load_schemas(&schema_dirs)?;
            let out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| KitError::Io(path.display().to_string(), e))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let request = local::RunRequest {
                component: &component,
                dataset: &dataset,
                params: &params,
                documents: documents.as_deref(),
                schemas: &schemas,
            };
            let report = local::run(&limits.runtime()?, &request, out)?;
            eprintln!(
                "{dataset}: {} records, {} bytes in {:.1} ms (loading the component {:.1} ms, {} documents)",
                report.records,
                report.bytes,
                report.generate.as_secs_f64() * 1e3,
                report.load.as_secs_f64() * 1e3,
                report.documents
            );
            Ok(())
        }
    }
}
