//! `bulkhost export`: queues data sets (or takes up the request an interrupted run queued),
//! shows a bar per data set — records while it generates, bytes while it downloads — and
//! writes each as JSON lines or a JSON list once its record count checks out.

use std::path::{Path, PathBuf};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::download::{Download, Layout};
use super::{ClientError, Connection, ConnectionArgs, POLL, io};

/// `bulkhost export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Data sets to export, each `NAME` or `NAME?param=value&param=value`
    /// (`'articulos?desde_version=120'`).
    #[arg(required = true)]
    datasets: Vec<String>,
    /// The directory the files go to.
    #[arg(long, short, default_value = ".")]
    out: PathBuf,
    /// Write each data set as a JSON list (`NAME.json`) instead of JSON lines (`NAME.jsonl`).
    #[arg(long)]
    json: bool,
    /// Byte ranges downloaded at once per data set.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Queue a new request even if an interrupted run of the same export left one.
    #[arg(long)]
    fresh: bool,
    /// Where the server is and who calls it.
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// What an interrupted run leaves in the output directory to be taken up again.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    /// The request, as asked.
    request: Vec<Map<String, Value>>,
    /// Its `peticion_id`.
    peticion_id: String,
}

/// `EstadoGenerarXXL`, as far as the client reads it.
#[derive(Debug, Deserialize)]
struct Estado {
    peticion_id: String,
    estado: String,
    #[serde(default)]
    error_message: String,
    datasets: Vec<EstadoDataset>,
}

#[derive(Debug, Deserialize)]
struct EstadoDataset {
    dataset: String,
    estado: String,
    numero_registros: u64,
    #[serde(default)]
    error_message: String,
    version_global: Option<u64>,
}

/// `NAME?a=1&b=2` as a Winfra XXL request item.
fn request_item(spec: &str) -> Result<Map<String, Value>, ClientError> {
    let (name, query) = spec.split_once('?').unwrap_or((spec, ""));
    if name.is_empty() {
        return Err(ClientError::Settings(format!("`{spec}` names no data set")));
    }
    let mut item = Map::new();
    item.insert("dataset".into(), Value::String(name.into()));
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ClientError::Settings(format!("`{spec}`: {e}")))?;
    for (k, v) in pairs {
        item.insert(k, Value::String(v));
    }
    Ok(item)
}

fn pending_file(out: &Path) -> PathBuf {
    out.join(".bulkhost-export.json")
}

/// The request an interrupted run of the same export queued, if it is still on the server.
async fn pending(
    api: &Connection,
    out: &Path,
    request: &[Map<String, Value>],
) -> Result<Option<Estado>, ClientError> {
    let Ok(text) = std::fs::read_to_string(pending_file(out)) else {
        return Ok(None);
    };
    let Ok(pending) = serde_json::from_str::<Pending>(&text) else {
        return Ok(None);
    };
    if pending.request != request {
        return Ok(None);
    }
    let path = format!("/api_v1/estado_xxl/{}", pending.peticion_id);
    match api
        .json(
            "reading the request's state",
            api.request(Method::GET, &path),
        )
        .await
    {
        Ok(estado) => Ok(Some(estado)),
        Err(ClientError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) async fn run(args: ExportArgs) -> Result<(), ClientError> {
    let api = args.connection.connect()?;
    let request = args
        .datasets
        .iter()
        .map(|s| request_item(s))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.out).map_err(io(args.out.display()))?;
    let resumed = if args.fresh {
        None
    } else {
        pending(&api, &args.out, &request).await?
    };
    let mut estado: Estado = match resumed {
        Some(estado) => {
            eprintln!("taking up request {} of an earlier run", estado.peticion_id);
            estado
        }
        None => {
            api.json(
                "queueing the export",
                api.request(Method::POST, "/api_v1/generar_xxl")
                    .json(&request),
            )
            .await?
        }
    };
    let state = Pending {
        request,
        peticion_id: estado.peticion_id.clone(),
    };
    let text = serde_json::to_vec(&state).unwrap_or_default();
    std::fs::write(pending_file(&args.out), text).map_err(io("the export's state file"))?;

    let bars = MultiProgress::new();
    let mut tracks: Vec<Track> = estado
        .datasets
        .iter()
        .map(|d| Track::new(&bars, &d.dataset))
        .collect();
    let layout = if args.json {
        Layout::List
    } else {
        Layout::Lines
    };
    let mut downloads = tokio::task::JoinSet::new();
    loop {
        for (track, d) in tracks.iter_mut().zip(&estado.datasets) {
            track.follow(d);
            if d.estado == "OK" && !track.started {
                track.started = true;
                let download = Download {
                    api: api.clone(),
                    path: format!("/api_v1/datos_xxl/{}/{}", estado.peticion_id, d.dataset),
                    target: args.out.join(format!(
                        "{}.{}",
                        d.dataset,
                        if args.json { "json" } else { "jsonl" }
                    )),
                    layout,
                    parallel: args.parallel.max(1),
                    records: d.numero_registros,
                    bar: track.bar.clone(),
                };
                downloads.spawn(download.run());
            }
        }
        if estado.estado != "PENDING" {
            break;
        }
        tokio::time::sleep(POLL).await;
        let path = format!("/api_v1/estado_xxl/{}", estado.peticion_id);
        estado = api
            .json(
                "reading the request's state",
                api.request(Method::GET, &path),
            )
            .await?;
    }
    let mut failures: Vec<String> = estado
        .datasets
        .iter()
        .filter(|d| d.estado != "OK")
        .map(|d| format!("{}: {}", d.dataset, d.error_message))
        .collect();
    while let Some(done) = downloads.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        return Err(ClientError::Mismatch(format!(
            "request {} ended {}: {}",
            estado.peticion_id,
            estado.estado,
            if estado.error_message.is_empty() {
                failures.join("; ")
            } else {
                estado.error_message.clone()
            }
        )));
    }
    let _ = std::fs::remove_file(pending_file(&args.out));
    for d in &estado.datasets {
        let version = d
            .version_global
            .map(|v| format!(", global version {v}"))
            .unwrap_or_default();
        println!("{}: {} records{version}", d.dataset, d.numero_registros);
    }
    Ok(())
}

/// One data set's bar.
struct Track {
    bar: ProgressBar,
    started: bool,
}

impl Track {
    fn new(bars: &MultiProgress, dataset: &str) -> Self {
        let bar = bars.add(ProgressBar::no_length());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>20} {spinner} {msg} {human_pos} records")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(dataset.to_string());
        bar.set_message("queued");
        Track {
            bar,
            started: false,
        }
    }

    /// Shows a data set's state while it is generated.
    fn follow(&self, d: &EstadoDataset) {
        if self.started {
            return;
        }
        self.bar.set_position(d.numero_registros);
        match d.estado.as_str() {
            "PENDING" if d.numero_registros > 0 => self.bar.set_message("generating"),
            "ERROR" => self
                .bar
                .abandon_with_message(format!("failed: {}", d.error_message)),
            _ => {}
        }
        self.bar.tick();
    }
}
