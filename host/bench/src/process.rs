//! A `bulkhost serve --dev` child process on a free port: the server as operators run it,
//! measured from outside, with its own memory and file limits.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// A running server; killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts `binary serve --dev` over a database in `data` with the TOML `config`.
    pub fn start(binary: &Path, data: &Path, config: &str) -> anyhow::Result<Self> {
        let path = data.join("bench.toml");
        std::fs::write(&path, config)?;
        let mut child = Command::new(binary)
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.join("db"))
            .arg("--config")
            .arg(&path)
            .env("BULKHOST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().context("the server stopped")??;
            if let Some(addr) = line.strip_prefix("bulkhost listening on ") {
                break addr.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProcess { child, base })
    }

    /// Queues the export `request` as `user` (whose password is `password`) and waits until
    /// it is OK; answers its `peticion_id`.
    pub async fn export(
        &self,
        client: &reqwest::Client,
        (user, password): (&str, &str),
        request: &serde_json::Value,
    ) -> anyhow::Result<String> {
        let queued: serde_json::Value = client
            .post(format!("{}/api_v1/generar_xxl", self.base))
            .basic_auth(user, Some(password))
            .json(request)
            .send()
            .await?
            .json()
            .await?;
        let id = queued["peticion_id"]
            .as_str()
            .context("no peticion_id")?
            .to_string();
        loop {
            let state: serde_json::Value = client
                .get(format!("{}/api_v1/estado_xxl/{id}", self.base))
                .basic_auth(user, Some(password))
                .send()
                .await?
                .json()
                .await?;
            match state["estado"].as_str() {
                Some("OK") => return Ok(id),
                Some("PENDING") => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                _ => anyhow::bail!("the export failed: {state}"),
            }
        }
    }

    /// Peak resident memory so far, from the kernel's high-water mark.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .context("no VmHWM")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib * 1024)
    }
}
