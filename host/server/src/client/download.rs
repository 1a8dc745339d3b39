//! Downloading one data set: the gzip form of its JSON lines, split into as many byte ranges
//! as downloads run side by side, each checked with `If-Range` against the `ETag` the first
//! answer named, into a part file. How far each range got is recorded beside it as the bytes
//! arrive, so a broken connection continues from its last byte, and so does a run started
//! again after the process stopped. Once whole, the part file is decompressed into the target
//! and its records counted against the state's.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::connection::error_chain;
use super::{ClientError, Connection, io};

/// Bytes written between two records of how far a range got.
const RECORD_EVERY: u64 = 256 << 10;
/// Attempts at one range in a row without progress before the download gives up (to be run
/// again).
const ATTEMPTS: u32 = 3;
/// Attempts at one range in a row that the server answers with "try again shortly".
const BUSY_ATTEMPTS: u32 = 30;

/// How the records are written.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// One JSON object per line.
    Lines,
    /// One JSON list.
    List,
}

/// One data set to download.
pub struct Download {
    /// The server.
    pub api: Connection,
    /// `/api_v1/datos_xxl/{id}/{dataset}`.
    pub path: String,
    /// The file to write.
    pub target: PathBuf,
    /// How.
    pub layout: Layout,
    /// Ranges fetched at once.
    pub parallel: usize,
    /// The records the state announced.
    pub records: u64,
    /// Where progress shows.
    pub bar: ProgressBar,
}

/// What is downloaded so far, kept beside the part file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    etag: String,
    total: u64,
    /// Each range: its first byte, its end (exclusive), and the first byte not yet written.
    ranges: Vec<(u64, u64, u64)>,
}

impl Progress {
    /// The ranges of a fresh download of `total` bytes in `parts`.
    fn fresh(etag: String, total: u64, parts: usize) -> Self {
        let size = total.div_ceil(parts as u64).max(1);
        let ranges = (0..total.div_ceil(size))
            .map(|i| (i * size, ((i + 1) * size).min(total), i * size))
            .collect();
        Progress {
            etag,
            total,
            ranges,
        }
    }

    /// Bytes written so far.
    fn written(&self) -> u64 {
        self.ranges.iter().map(|(from, _, at)| at - from).sum()
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl Download {
    fn ranged(&self, from: u64, to: u64) -> reqwest::RequestBuilder {
        self.api
            .request(Method::GET, &self.path)
            .header(header::ACCEPT, "application/x-ndjson")
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(header::RANGE, format!("bytes={from}-{to}"))
    }

    /// The representation's size and `ETag`, from a one-byte range.
    async fn probe(&self) -> Result<(u64, String), ClientError> {
        let response = self
            .api
            .send("asking for the data set's size", self.ranged(0, 0))
            .await?;
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let total = response
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, total)| total.parse().ok());
        match (response.status(), total) {
            (StatusCode::PARTIAL_CONTENT, Some(total)) if !etag.is_empty() => Ok((total, etag)),
            (status, _) => Err(ClientError::Mismatch(format!(
                "{}: the server answered a range with {status} and no usable Content-Range or ETag",
                self.path
            ))),
        }
    }

    /// Downloads, decompresses and checks the data set.
    pub async fn run(self) -> Result<(), ClientError> {
        let part = with_suffix(&self.target, ".gz.part");
        let progress_file = with_suffix(&self.target, ".gz.part.json");
        let (total, etag) = self.probe().await?;
        let kept = std::fs::read(&progress_file)
            .ok()
            .and_then(|raw| serde_json::from_slice::<Progress>(&raw).ok())
            .filter(|p| p.etag == etag && p.total == total && part.exists());
        let progress = match kept {
            Some(progress) => progress,
            None => {
                let file = std::fs::File::create(&part).map_err(io(part.display()))?;
                file.set_len(total).map_err(io(part.display()))?;
                let fresh = Progress::fresh(etag.clone(), total, self.parallel);
                save(&progress_file, &fresh)?;
                fresh
            }
        };
        self.bar.set_length(total);
        self.bar.set_position(progress.written());
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>20} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.set_message("downloading");
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&part)
                .map_err(io(part.display()))?,
        );
        let ranges = progress.ranges.len();
        let shared = Arc::new(Mutex::new(progress));
        let me = Arc::new(self);
        let mut workers: tokio::task::JoinSet<Result<(), ClientError>> =
            tokio::task::JoinSet::new();
        for index in 0..ranges {
            let (me, shared, file) = (me.clone(), shared.clone(), file.clone());
            let progress_file = progress_file.clone();
            workers
                .spawn(async move { me.fetch_range(index, &shared, &file, &progress_file).await });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| ClientError::Mismatch(e.to_string()))??;
        }
        drop(file);
        me.bar.set_message("checking");
        let (target, layout, records) = (me.target.clone(), me.layout, me.records);
        let unpacked = part.clone();
        let written = tokio::task::spawn_blocking(move || unpack(&unpacked, &target, layout))
            .await
            .map_err(|e| ClientError::Mismatch(e.to_string()))??;
        if written != records {
            return Err(ClientError::Mismatch(format!(
                "{}: {written} records arrived where the state announced {records}",
                me.path
            )));
        }
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&progress_file);
        me.bar
            .finish_with_message(format!("{written} records → {}", me.target.display()));
        Ok(())
    }

    /// Fetches range `index` from where it got to, trying again after a broken connection as
    /// long as each attempt brings bytes.
    async fn fetch_range(
        &self,
        index: usize,
        shared: &Mutex<Progress>,
        file: &std::fs::File,
        progress_file: &Path,
    ) -> Result<(), ClientError> {
        // Answers that say "busy" and connections that broke are counted apart: waiting out a
        // busy server does not use up the tries of a flaky connection, nor the other way round.
        let (mut busy, mut broken) = (0, 0);
        loop {
            let (etag, (from, end, at)) = {
                let held = shared.lock().unwrap_or_else(|e| e.into_inner());
                (held.etag.clone(), held.ranges[index])
            };
            if at >= end {
                return Ok(());
            }
            let what = format!("bytes {from}-{} of {}", end - 1, self.path);
            let pause = match self
                .try_range(index, shared, file, progress_file, &etag)
                .await
            {
                Ok(()) => continue,
                Err(ClientError::Mismatch(why)) => return Err(ClientError::Mismatch(why)),
                // The server asks to be tried again shortly (busy, or its database restarting).
                Err(ClientError::Refused {
                    status: 429 | 503, ..
                }) if busy < BUSY_ATTEMPTS => {
                    busy += 1;
                    std::time::Duration::from_secs(1)
                }
                Err(e) => {
                    let moved =
                        shared.lock().unwrap_or_else(|e| e.into_inner()).ranges[index].2 > at;
                    // Bytes arrived before it broke: the server serves again, so both counts
                    // start over.
                    if moved {
                        (busy, broken) = (0, 1);
                    } else {
                        broken += 1;
                    }
                    if broken >= ATTEMPTS {
                        return Err(ClientError::Http(
                            format!("{what} (run again to resume)"),
                            e.to_string(),
                        ));
                    }
                    std::time::Duration::from_millis(200 * u64::from(broken))
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One request for what is left of range `index`, recording its progress as bytes arrive.
    async fn try_range(
        &self,
        index: usize,
        shared: &Mutex<Progress>,
        file: &std::fs::File,
        progress_file: &Path,
        etag: &str,
    ) -> Result<(), ClientError> {
        let (_, end, mut at) = shared.lock().unwrap_or_else(|e| e.into_inner()).ranges[index];
        let what = format!("bytes {at}-{} of {}", end - 1, self.path);
        let mut response = self
            .api
            .send(
                &what,
                self.ranged(at, end - 1).header(header::IF_RANGE, etag),
            )
            .await?;
        if response.status() != StatusCode::PARTIAL_CONTENT {
            return Err(ClientError::Mismatch(format!(
                "{}: the data set changed on the server; run again with --fresh",
                self.path
            )));
        }
        let mut unrecorded = 0;
        let record = |at: u64| -> Result<(), ClientError> {
            let snapshot = {
                let mut held = shared.lock().unwrap_or_else(|e| e.into_inner());
                held.ranges[index].2 = at;
                held.clone()
            };
            save(progress_file, &snapshot)
        };
        loop {
            let next = response.chunk().await;
            let bytes = match next {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break,
                Err(e) => {
                    record(at)?;
                    return Err(ClientError::Http(what, error_chain(&e)));
                }
            };
            if at + bytes.len() as u64 > end {
                return Err(ClientError::Mismatch(format!(
                    "{what}: more bytes than asked"
                )));
            }
            file.write_all_at(&bytes, at).map_err(io("the part file"))?;
            at += bytes.len() as u64;
            unrecorded += bytes.len() as u64;
            self.bar.inc(bytes.len() as u64);
            if unrecorded >= RECORD_EVERY {
                record(at)?;
                unrecorded = 0;
            }
        }
        record(at)?;
        if at != end {
            return Err(ClientError::Http(what, "the connection ended early".into()));
        }
        Ok(())
    }
}

/// Records `progress` beside the part file, replacing the previous record whole.
fn save(path: &Path, progress: &Progress) -> Result<(), ClientError> {
    let temporary = with_suffix(path, ".new");
    let text = serde_json::to_vec(progress).unwrap_or_default();
    std::fs::write(&temporary, text).map_err(io(temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(io(path.display()))
}

/// Decompresses the part file into `target` in `layout`; answers how many records it held.
fn unpack(part: &Path, target: &Path, layout: Layout) -> Result<u64, ClientError> {
    let source = std::fs::File::open(part).map_err(io(part.display()))?;
    let lines = BufReader::new(flate2::read::MultiGzDecoder::new(source)).lines();
    let temporary = with_suffix(target, ".new");
    let mut out =
        BufWriter::new(std::fs::File::create(&temporary).map_err(io(temporary.display()))?);
    let mut records = 0u64;
    let failed = io(target.display());
    let written: std::io::Result<()> = (|| {
        if matches!(layout, Layout::List) {
            out.write_all(b"[")?;
        }
        for line in lines {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            match layout {
                Layout::Lines => writeln!(out, "{line}")?,
                Layout::List if records == 0 => write!(out, "\n{line}")?,
                Layout::List => write!(out, ",\n{line}")?,
            }
            records += 1;
        }
        if matches!(layout, Layout::List) {
            out.write_all(b"\n]\n")?;
        }
        out.flush()
    })();
    written.map_err(failed)?;
    std::fs::rename(&temporary, target).map_err(io(target.display()))?;
    Ok(records)
}
