//! Where the server is and who calls it: flags, then the environment, then a TOML file.

use std::path::PathBuf;

use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;

use super::ClientError;

/// The connection as flags and the environment give it.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// The server's base URL, e.g. https://data.example.com.
    #[arg(long, env = "BULKHOST_URL")]
    url: Option<String>,
    /// The user to sign in as.
    #[arg(long, env = "BULKHOST_USER")]
    user: Option<String>,
    /// The user's password (prefer the environment or the file: flags show in process lists).
    #[arg(long, env = "BULKHOST_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The company (tenant) whose change feed `sync` follows.
    #[arg(long, env = "BULKHOST_TENANT")]
    tenant: Option<String>,
    /// A TOML file with `url`, `user`, `password` and `tenant`, for what flags and the
    /// environment leave out.
    #[arg(long = "connection", env = "BULKHOST_CONNECTION")]
    file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionFile {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    tenant: Option<String>,
}

/// A server and the credentials to call it with.
#[derive(Clone)]
pub struct Connection {
    base: String,
    user: String,
    password: String,
    tenant: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ConnectionArgs {
    /// The connection, each setting from the first place that gives it.
    pub fn connect(&self) -> Result<Connection, ClientError> {
        let file: ConnectionFile = match &self.file {
            None => ConnectionFile::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(super::io(path.display()))?;
                toml::from_str(&text).map_err(|e| {
                    ClientError::Settings(format!("{}: {}", path.display(), e.message()))
                })?
            }
        };
        let missing = |what: &str, flag: &str, var: &str| {
            ClientError::Settings(format!(
                "no {what}: give --{flag}, set {var}, or name a --connection file that has `{flag}`"
            ))
        };
        let base = self
            .url
            .clone()
            .or(file.url)
            .ok_or_else(|| missing("server URL", "url", "BULKHOST_URL"))?;
        Ok(Connection {
            base: base.trim_end_matches('/').to_string(),
            user: self
                .user
                .clone()
                .or(file.user)
                .ok_or_else(|| missing("user", "user", "BULKHOST_USER"))?,
            password: self
                .password
                .clone()
                .or(file.password)
                .ok_or_else(|| missing("password", "password", "BULKHOST_PASSWORD"))?,
            tenant: self.tenant.clone().or(file.tenant),
            client: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| ClientError::Settings(e.to_string()))?,
        })
    }
}

impl Connection {
    /// The company whose change feed to follow.
    pub fn tenant(&self) -> Result<&str, ClientError> {
        self.tenant.as_deref().ok_or_else(|| {
            ClientError::Settings(
                "no company: give --tenant, set BULKHOST_TENANT, or put `tenant` in the --connection file"
                    .into(),
            )
        })
    }

    /// A request to `path` (absolute, from `/`), signed in.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
    }

    /// Sends `request`; a non-2xx answer is an error carrying the server's message.
    pub async fn send(&self, what: &str, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Http(what.to_string(), error_chain(&e)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Err(ClientError::Refused {
            what: what.to_string(),
            status,
            message: message_of(&text),
        })
    }

    /// Sends `request` and reads a JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        self.send(what, request)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Http(what.to_string(), error_chain(&e)))
    }
}

/// An error with its causes, which reqwest keeps apart.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The message of an error body in any of the four dialects' shapes, or the body itself.
fn message_of(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.trim().chars().take(500).collect();
    };
    let found = [
        &value["error"]["message"],
        &value["error"],
        &value["winstrom"]["message"],
        &value["detail"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(str::to_string));
    found.unwrap_or_else(|| value.to_string())
}
