//! The batch figures: a batch of 100 plugin endpoint calls against the same requests sent one
//! by one over HTTP, and plugin endpoint requests against the collections surface's native
//! handlers doing the same read or write through the same core.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bulkhost_server::config::{Config, load_schemas};
use bulkhost_server::serve::{Options, Server};
use serde_json::{Value, json};

use crate::{USER, tenants};

/// Operations in the measured batch.
pub const OPERATIONS: usize = 100;
/// Rounds of each comparison; each side reports its median round.
const ROUNDS: usize = 5;
/// How often the batch's status is read while it runs.
const POLL: Duration = Duration::from_millis(2);

/// What the batch figures found, per second.
pub struct BatchFigures {
    /// Operations/s of one batch of writes, from `POST /v1/batch` to its status showing it
    /// finished.
    pub batch_writes: f64,
    /// The same writes sent one by one, each waiting for its answer.
    pub direct_writes: f64,
    /// Operations/s of one batch of reads.
    pub batch_reads: f64,
    /// The same reads sent one by one.
    pub direct_reads: f64,
    /// `GET /v1/products/{id}` through the catalogue plugin.
    pub plugin_reads: f64,
    /// `GET /api/v1/products/code:{id}/` through the native collections handler.
    pub native_reads: f64,
    /// `PUT /v1/products/{id}` through the catalogue plugin (its checks, then the core's upsert).
    pub plugin_writes: f64,
    /// `POST /api/v1/products/` of the same product through the native handler.
    pub native_writes: f64,
}

/// A client of the measured server.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(USER, Some(USER));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Requests per second of `count` calls made one after another.
    async fn rate(
        &self,
        count: usize,
        call: impl Fn(usize) -> (reqwest::Method, String, Option<Value>),
    ) -> anyhow::Result<f64> {
        let calls: Vec<_> = (0..count).map(call).collect();
        let started = Instant::now();
        for (method, path, body) in calls {
            let (status, answer) = self.send(method, &path, body.as_ref()).await?;
            ensure!(
                (200..300).contains(&status),
                "{path} answered {status}: {answer}"
            );
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    }
}

fn product(name: &str) -> Value {
    json!({"name": name, "barcode": "4006381333931", "price": 2.5})
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs a server with the catalogue plugin and measures both comparisons, alternating the
/// sides of each for [`ROUNDS`] rounds.
pub async fn batch_figures(components: &Path, requests: usize) -> anyhow::Result<BatchFigures> {
    let data = tempfile::tempdir()?;
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let catalog = components.join("catalog.wasm");
    std::fs::copy(&catalog, plugins.join("catalog.wasm"))
        .with_context(|| format!("copying {} (run `make plugins`)", catalog.display()))?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        data: data.path().join("db"),
        ..Config::default()
    };
    config.plugins.dir = Some(plugins);
    // 100 writes weigh 200 load points: the deployment allows such batches.
    config.batches.max_load_score = 2 * OPERATIONS as u32;
    let server = Server::bind(Options {
        config,
        schemas: load_schemas(&[])?,
        tenants: tenants()?,
        demo: false,
    })
    .await?;
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.local_addr()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let put = reqwest::Method::PUT;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let [
        mut batch_writes,
        mut direct_writes,
        mut batch_reads,
        mut direct_reads,
    ] = [(); 4].map(|()| Vec::new());
    for round in 0..ROUNDS {
        direct_writes.push(
            client
                .rate(OPERATIONS, |i| {
                    (
                        put.clone(),
                        format!("/v1/products/D{round}-{i}"),
                        Some(product("direct")),
                    )
                })
                .await?,
        );
        batch_writes.push(
            run_batch(&client, |i| {
                (
                    "PUT",
                    format!("/v1/products/B{round}-{i}"),
                    Some(product("batched")),
                )
            })
            .await?,
        );
        direct_reads.push(
            client
                .rate(OPERATIONS, |i| {
                    (get.clone(), format!("/v1/products/D{round}-{i}"), None)
                })
                .await?,
        );
        batch_reads.push(
            run_batch(&client, |i| {
                ("GET", format!("/v1/products/B{round}-{i}"), None)
            })
            .await?,
        );
    }

    let (mut plugin_writes, mut native_writes) = (Vec::new(), Vec::new());
    let (mut plugin_reads, mut native_reads) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        plugin_writes.push(
            client
                .rate(requests, |i| {
                    (
                        put.clone(),
                        format!("/v1/products/W{i}"),
                        Some(product(&format!("plugin {round}"))),
                    )
                })
                .await?,
        );
        native_writes.push(
            client
                .rate(requests, |i| {
                    let mut body = product(&format!("native {round}"));
                    body["product_id"] = json!(format!("W{i}"));
                    (post.clone(), "/api/v1/products/".to_string(), Some(body))
                })
                .await?,
        );
        plugin_reads.push(
            client
                .rate(requests, |i| {
                    (get.clone(), format!("/v1/products/W{i}"), None)
                })
                .await?,
        );
        native_reads.push(
            client
                .rate(requests, |i| {
                    (get.clone(), format!("/api/v1/products/code:W{i}/"), None)
                })
                .await?,
        );
    }
    let _ = stop.send(());
    serving.await??;
    Ok(BatchFigures {
        batch_writes: median(batch_writes),
        direct_writes: median(direct_writes),
        batch_reads: median(batch_reads),
        direct_reads: median(direct_reads),
        plugin_reads: median(plugin_reads),
        native_reads: median(native_reads),
        plugin_writes: median(plugin_writes),
        native_writes: median(native_writes),
    })
}

/// Operations/s of one batch of [`OPERATIONS`] calls, from its `POST` to the first status
/// read that shows it finished with every operation successful.
async fn run_batch(
    client: &Client,
    call: impl Fn(usize) -> (&'static str, String, Option<Value>),
) -> anyhow::Result<f64> {
    let operations: Vec<Value> = (0..OPERATIONS)
        .map(|i| {
            let (method, endpoint, body) = call(i);
            json!({
                "operationId": format!("op{i}"),
                "method": method,
                "endpoint": endpoint,
                "body": body.map(|b| b.to_string()),
            })
        })
        .collect();
    let started = Instant::now();
    let (status, created) = client
        .send(
            reqwest::Method::POST,
            "/v1/batch",
            Some(&json!({"batch": {"operations": operations}})),
        )
        .await?;
    ensure!(status == 201, "POST /v1/batch answered {status}: {created}");
    let uuid = created["uuid"].as_str().context("uuid")?.to_string();
    loop {
        let (_, progress) = client
            .send(reqwest::Method::GET, &format!("/v1/batch/{uuid}"), None)
            .await?;
        if progress["status"] == "finished" {
            let elapsed = started.elapsed();
            let failed = progress["responses"]
                .as_array()
                .context("responses")?
                .iter()
                .filter(|r| !(200..300).contains(&r["statusCode"].as_u64().unwrap_or_default()))
                .count();
            ensure!(failed == 0, "{failed} operations failed: {progress}");
            return Ok(OPERATIONS as f64 / elapsed.as_secs_f64());
        }
        tokio::time::sleep(POLL).await;
    }
}
