//! `bulkhost batch`: LogiCommerce operations from a JSON-lines file, split into as many
//! batches as their load scores need (each within `maxLoadScore`, weighed as
//! `/v1/batch/limits` says), run one after another (one batch runs at a time per account),
//! each followed with a progress bar. Operations that did not succeed are run again
//! (`/v1/batch/{uuid}/retry`) up to `--retries` times; the last response of every operation
//! goes to the output as JSON lines. Each batch carries an `Idempotency-Key` made from its
//! operations, so running the command again after an interruption takes up the batches the
//! server already has instead of running them twice.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{ClientError, Connection, ConnectionArgs, POLL, io};

/// `bulkhost batch`.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// The operations, one JSON object per line: `method`, `endpoint`, optional `body` and
    /// `operationId` (`line-N` when absent).
    operations: PathBuf,
    /// Where the responses go, as JSON lines.
    #[arg(long, short, default_value = "responses.jsonl")]
    out: PathBuf,
    /// How often operations that did not succeed are run again.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Where the server is and who calls it.
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// One operation as the batch body carries it.
type Operation = Map<String, Value>;

/// An endpoint a batch may call, and its weight.
struct Weighed {
    method: String,
    segments: Vec<String>,
    load_score: u32,
}

impl Weighed {
    fn matches(&self, method: &str, endpoint: &str) -> bool {
        let path = endpoint.split('?').next().unwrap_or_default();
        let given: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.method.eq_ignore_ascii_case(method)
            && given.len() == self.segments.len()
            && self.segments.iter().zip(&given).all(|(template, segment)| {
                (template.starts_with('{') && template.contains('}') && !segment.is_empty())
                    || template == segment
            })
    }
}

/// What `/v1/batch/limits` says, ready to weigh operations with.
async fn limits(api: &Connection) -> Result<(Vec<Weighed>, u32), ClientError> {
    let answer: Value = api
        .json(
            "reading the batch limits",
            api.request(Method::GET, "/v1/batch/limits"),
        )
        .await?;
    let limits = &answer["limits"];
    let endpoints = limits["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Weighed {
            method: e["method"].as_str().unwrap_or_default().to_string(),
            segments: e["endpoint"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
                .split('/')
                .map(str::to_string)
                .collect(),
            load_score: e["loadScore"].as_u64().unwrap_or(1).max(1) as u32,
        })
        .collect();
    let max = limits["maxLoadScore"].as_u64().unwrap_or(100) as u32;
    Ok((endpoints, max))
}

/// The operations of the file, each with its weight.
fn read_operations(
    args: &BatchArgs,
    endpoints: &[Weighed],
    max: u32,
) -> Result<Vec<(Operation, u32)>, ClientError> {
    let file = std::fs::File::open(&args.operations).map_err(io(args.operations.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(args.operations.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", args.operations.display(), i + 1);
        let mut op: Operation = serde_json::from_str(&line)
            .map_err(|e| ClientError::Settings(format!("{at}: not a JSON object: {e}")))?;
        op.entry("operationId")
            .or_insert_with(|| Value::String(format!("line-{}", i + 1)));
        if let Some(Value::Object(_) | Value::Array(_)) = op.get("body") {
            let text = op["body"].to_string();
            op.insert("body".into(), Value::String(text));
        }
        let (method, endpoint) = (
            op.get("method").and_then(Value::as_str).unwrap_or_default(),
            op.get("endpoint")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        let weight = endpoints
            .iter()
            .find(|e| e.matches(method, endpoint))
            .map(|e| e.load_score)
            .ok_or_else(|| {
                ClientError::Settings(format!(
                    "{at}: `{method} {endpoint}` is not an endpoint a batch may call"
                ))
            })?;
        if weight > max {
            return Err(ClientError::Settings(format!(
                "{at}: `{method} {endpoint}` weighs {weight}, more than a batch may ({max})"
            )));
        }
        out.push((op, weight));
    }
    Ok(out)
}

/// Operations in runs whose weights add up to at most `max`, in file order.
fn split(operations: Vec<(Operation, u32)>, max: u32) -> Vec<Vec<Operation>> {
    let mut batches: Vec<Vec<Operation>> = Vec::new();
    let mut weight = 0;
    for (op, w) in operations {
        if batches.is_empty() || weight + w > max {
            batches.push(Vec::new());
            weight = 0;
        }
        weight += w;
        if let Some(last) = batches.last_mut() {
            last.push(op);
        }
    }
    batches
}

pub(super) async fn run(args: BatchArgs) -> Result<(), ClientError> {
    let api = args.connection.connect()?;
    let (endpoints, max) = limits(&api).await?;
    let operations = read_operations(&args, &endpoints, max)?;
    let total = operations.len();
    let batches = split(operations, max);
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&args.out).map_err(io(args.out.display()))?);
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} operations {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (mut succeeded, mut failed) = (0usize, 0usize);
    for (n, operations) in batches.iter().enumerate() {
        bar.set_message(format!("batch {} of {}", n + 1, batches.len()));
        let responses = run_batch(&api, operations, args.retries, &bar).await?;
        for response in responses {
            let ok = response["statusCode"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s));
            if ok {
                succeeded += 1;
            } else {
                failed += 1;
            }
            writeln!(out, "{response}").map_err(io(args.out.display()))?;
        }
    }
    out.flush().map_err(io(args.out.display()))?;
    bar.finish_with_message(format!("{} batches", batches.len()));
    println!(
        "{total} operations in {} batches: {succeeded} succeeded, {failed} did not; responses in {}",
        batches.len(),
        args.out.display()
    );
    if failed > 0 {
        return Err(ClientError::Mismatch(format!(
            "{failed} operations did not succeed after {} retries",
            args.retries
        )));
    }
    Ok(())
}

/// Runs one batch and its retries; answers the last response of each operation, in order.
async fn run_batch(
    api: &Connection,
    operations: &[Operation],
    retries: u32,
    bar: &ProgressBar,
) -> Result<Vec<Value>, ClientError> {
    let body = json!({"batch": {"operations": operations}});
    let key = hex::encode(&Sha256::digest(body.to_string().as_bytes())[..16]);
    let start = bar.position();
    let queued: Value = api
        .json(
            "submitting a batch",
            api.request(Method::POST, "/v1/batch")
                .header("idempotency-key", format!("bulkhost-batch-{key}"))
                .json(&body),
        )
        .await?;
    let mut uuid = queued["uuid"].as_str().unwrap_or_default().to_string();
    let mut last: Vec<Value> = Vec::new();
    for attempt in 0..=retries {
        let finished = wait(api, &uuid, |done| bar.set_position(start + done)).await?;
        let responses = finished["responses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if attempt == 0 {
            last = responses;
        } else {
            for response in responses {
                if let Some(slot) = last
                    .iter_mut()
                    .find(|r| r["operationId"] == response["operationId"])
                {
                    *slot = response;
                }
            }
        }
        let failing = last.iter().any(|r| {
            !r["statusCode"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        });
        if !failing || attempt == retries {
            break;
        }
        let retried: Value = api
            .json(
                "running the failed operations again",
                api.request(Method::POST, &format!("/v1/batch/{uuid}/retry")),
            )
            .await?;
        uuid = retried["uuid"].as_str().unwrap_or_default().to_string();
    }
    bar.set_position(start + operations.len() as u64);
    Ok(last)
}

/// Polls a batch until it is finished, telling `progress` how many operations are done.
async fn wait(api: &Connection, uuid: &str, progress: impl Fn(u64)) -> Result<Value, ClientError> {
    loop {
        let state: Value = api
            .json(
                "reading a batch's state",
                api.request(Method::GET, &format!("/v1/batch/{uuid}")),
            )
            .await?;
        progress(state["responses"].as_array().map_or(0, Vec::len) as u64);
        if state["status"] == "finished" {
            return Ok(state);
        }
        tokio::time::sleep(POLL).await;
    }
}
