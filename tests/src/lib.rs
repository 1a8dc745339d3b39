//! Support for the end-to-end tests: servers started in-process or as child processes,
//! clients that speak to them over real HTTP, and hostile variants of the built components.

pub mod components;
pub mod database;
pub mod hosts;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bulkhost_core::Tenants;
use bulkhost_server::config::{Config, load_schemas};
use bulkhost_server::serve::{Options, Server};
use serde_json::Value;
use tempfile::TempDir;

/// The tenants every test server declares: two companies with one user each.
pub const TENANTS: &str = r#"
[[tenants]]
name = "acme"
[[tenants.users]]
name = "ann"
password = "ann-pw"

[[tenants]]
name = "globex"
[[tenants.users]]
name = "gus"
password = "gus-pw"
"#;

/// A server running inside the test process on a free loopback port.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _data: TempDir,
}

impl TestServer {
    /// Starts a server with [`TENANTS`].
    pub async fn start() -> TestServer {
        Self::start_with("").await
    }

    /// Starts a server with [`TENANTS`] plus the extra TOML `config` (settings, more tenants).
    pub async fn start_with(config: &str) -> TestServer {
        let data = tempfile::tempdir().expect("temp dir");
        let mut config: Config =
            toml::from_str(&format!("{config}\n{TENANTS}")).expect("test configuration parses");
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.data = data.path().to_path_buf();
        config.database.url = database::for_data_dir(data.path());
        let options = Options {
            schemas: load_schemas(&config.schema_dirs).expect("schemas load"),
            tenants: Tenants::new(config.tenants.clone(), true)
                .expect("tenants are valid")
                .with_quotas(config.quotas),
            config,
            demo: false,
        };
        let server = Server::bind(options).await.expect("server binds");
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        TestServer {
            base,
            shutdown: Some(tx),
            task: Some(task),
            _data: data,
        }
    }

    /// A client signed in as `user` with HTTP Basic.
    pub fn as_user(&self, user: &str) -> Api {
        Api {
            base: self.base.clone(),
            client: reqwest::Client::new(),
            auth: Auth::Basic(user.to_string(), format!("{user}-pw")),
        }
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            base: self.base.clone(),
            client: reqwest::Client::new(),
            auth: Auth::None,
        }
    }

    /// Stops accepting connections and waits for requests in flight.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// How a client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials.
    None,
    /// HTTP Basic user and password.
    Basic(String, String),
    /// A header name and value, such as `WINFRA-API-TOKEN`.
    Header(String, String),
}

/// An HTTP client bound to one server and one identity.
#[derive(Debug, Clone)]
pub struct Api {
    /// The server's base URL.
    pub base: String,
    /// The underlying client.
    pub client: reqwest::Client,
    /// The identity it sends.
    pub auth: Auth,
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text (invalid UTF-8 replaced).
    pub text: String,
    /// The body's bytes.
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// The same server with another identity.
    pub fn with_auth(&self, auth: Auth) -> Api {
        Api {
            auth,
            ..self.clone()
        }
    }

    fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Header(name, value) => request.header(name, value),
        }
    }

    async fn finish(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body is read").to_vec();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// Sends a request; `path` is appended to the base URL.
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let request = self.request(method, path);
        Self::finish(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        Self::finish(
            self.request(method, path)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// `GET`
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }
}

/// Queues a bulk export request and answers its `peticion_id`.
pub async fn queue_export(api: &Api, body: Value) -> String {
    let r = api.post("/api_v1/generar_xxl", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["peticion_id"]
        .as_str()
        .expect("a peticion_id")
        .to_string()
}

/// Polls `estado_xxl/{id}` until the request is no longer PENDING, at most a minute; answers
/// its last state.
pub async fn settled_export(api: &Api, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let state = api.get(&format!("/api_v1/estado_xxl/{id}")).await.json();
        if state["estado"] != "PENDING" {
            return state;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still pending: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plugins directory holding copies of `components`, each as (file name, built component).
pub fn plugins_with(components: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, path) in components {
        std::fs::copy(path, dir.path().join(name)).expect("the component is copied");
    }
    dir
}

/// Polls every 100 ms until `done` answers `Some`, failing the test after `limit`.
pub async fn eventually<T>(limit: Duration, mut done: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(out) = done().await {
            return out;
        }
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every change of `firma` from version `start` on, reading `limit` per request and following
/// `next` until the end marker, as a syncing client does.
pub async fn all_changes(api: &Api, firma: &str, start: u64, limit: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut start = start;
    loop {
        let page = api
            .get(&format!(
                "/c/{firma}/changes.json?start={start}&limit={limit}"
            ))
            .await
            .json();
        out.extend(
            page["winstrom"]["changes"]
                .as_array()
                .expect("changes array")
                .iter()
                .cloned(),
        );
        match page["winstrom"]["next"].as_str().expect("next marker") {
            "none" => return out,
            next => start = next.parse().expect("next is a version"),
        }
    }
}

/// The Datawiz reference data a stock-taking document needs: shops 1-3, products P1-P5,
/// cashier C1.
pub async fn seed_references(api: &Api) {
    let shops: Vec<Value> = (1..=3)
        .map(|i| serde_json::json!({"shop_id": i.to_string(), "name": format!("Shop {i}")}))
        .collect();
    let products: Vec<Value> = (1..=5)
        .map(|i| serde_json::json!({"product_id": format!("P{i}"), "name": format!("Product {i}")}))
        .collect();
    for (path, body) in [
        ("/api/v1/shops/", Value::Array(shops)),
        ("/api/v1/products/", Value::Array(products)),
        (
            "/api/v1/cashiers/",
            serde_json::json!({"cashier_id": "C1", "name": "Olena"}),
        ),
    ] {
        let r = api.post(path, &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

/// A valid stock-taking document.
pub fn stock_doc(document_id: &str, shop: &str, qty: u32) -> Value {
    serde_json::json!({
        "document_id": document_id,
        "date": "2015-01-01T00:00:00",
        "shop_id": shop,
        "stuff_id": null,
        "products": [
            {"product_id": "P1", "stock_qty": "2.0000", "fact_qty": format!("{qty}.0000")}
        ]
    })
}

/// The `bulkhost` binary running as a child process.
pub struct ServerProcess {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `binary serve` with `config` (TOML, written beside the data) on a free port.
    pub fn start(binary: &Path, data: &Path, config: &str) -> ServerProcess {
        Self::start_with_env(binary, data, config, &[])
    }

    /// As [`ServerProcess::start`], with these environment variables set for the server.
    pub fn start_with_env(
        binary: &Path,
        data: &Path,
        config: &str,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let database = database::for_data_dir(data);
        Self::start_on(binary, data, config, env, database.as_deref())
    }

    /// As [`ServerProcess::start_with_env`], keeping everything in `database` (a PostgreSQL
    /// URL) when one is given, as a host of several on one database does.
    pub fn start_on(
        binary: &Path,
        data: &Path,
        config: &str,
        env: &[(&str, &str)],
        database: Option<&str>,
    ) -> ServerProcess {
        let config_path = data.join("bulkhost.toml");
        std::fs::write(&config_path, config).expect("config is written");
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.join("db"))
            .arg("--config")
            .arg(&config_path);
        if let Some(url) = database {
            command.args(["--database", url]);
        }
        command
            .env("BULKHOST_LOG", "warn")
            .envs(env.iter().copied());
        Self::spawn(command)
    }

    /// `binary serve --dev`, the README's demo: the demo tenant and documents, the plugins in
    /// `data/plugins`, on a free port.
    pub fn start_demo(binary: &Path, data: &Path) -> ServerProcess {
        Self::start_demo_with_env(binary, data, &[])
    }

    /// As [`ServerProcess::start_demo`], with these environment variables set for the server.
    pub fn start_demo_with_env(binary: &Path, data: &Path, env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("BULKHOST_LOG", "warn")
            .envs(env.iter().copied());
        Self::spawn(command)
    }

    /// Starts `command` and waits until the server prints where it listens.
    fn spawn(mut command: Command) -> ServerProcess {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server process starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("server printed its address")
                .expect("stdout is readable");
            if let Some(addr) = line.strip_prefix("bulkhost listening on ") {
                break addr.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        ServerProcess { base, child }
    }

    /// A client for this server signed in as `user` (password `{user}-pw`).
    pub fn as_user(&self, user: &str) -> Api {
        Api {
            base: self.base.clone(),
            client: reqwest::Client::new(),
            auth: Auth::Basic(user.to_string(), format!("{user}-pw")),
        }
    }

    /// Sends a signal by name (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
