//! `GET /c/{firma}/changes/stream`: the change feed as server-sent events (beyond ABRA Flexi,
//! in the manner of CouchDB's continuous `_changes`). One `change` event per change, its `id`
//! the version, its data the change as `changes.json` lists it; a client that reconnects with
//! `Last-Event-ID` (or `start=`) continues after the last version it saw. Comments keep idle
//! connections alive; the `records` filter applies as in a listing. Without either, the stream
//! starts at the next change. A stream that falls behind the kept change log ends with a
//! `gone` event naming the oldest version, as a listing answers 410.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{ChangeQuery, Error};
use futures_util::{StreamExt, stream};
use tokio::sync::watch;

use super::{AbraError, Format, MAX_LIMIT, change_json, number, records_filter};
use crate::gates::Pass;
use crate::http::query::Params;
use crate::state::{AppState, blocking};

/// How often an idle stream sends a comment, so proxies and clients keep the connection.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Where a stream is and what it holds.
struct Cursor {
    state: AppState,
    tenant: String,
    query: ChangeQuery,
    pending: VecDeque<Event>,
    versions: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    ended: bool,
    _pass: Pass,
}

/// Answers the stream, or refuses it as a listing would (a `start` older than the kept log, a
/// disabled feed, a tenant with too many open waits).
pub(super) async fn changes_stream(
    state: &AppState,
    tenant: String,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, AbraError> {
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                AbraError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("Last-Event-ID must be a version, not `{v}`."),
                )
            })
        })
        .transpose()?;
    let start = match resumed {
        Some(seen) => Some(seen + 1),
        None => number(params, "start", Format::Json)?,
    };
    let pass = state.gates.long_polls.enter(&tenant)?;
    let store = state.store.clone();
    let (who, probe) = (tenant.clone(), start);
    let start = blocking(move || {
        let feed = store.change_feed();
        let version = feed.global_version(&who)?;
        let start = probe.unwrap_or(version + 1);
        // A listing refuses a start the log no longer reaches, and a disabled feed.
        feed.changes(
            &who,
            &ChangeQuery {
                start: Some(start),
                limit: 0,
                records: Vec::new(),
            },
        )?;
        Ok::<_, Error>(start)
    })
    .await?;
    let cursor = Cursor {
        versions: state.versions.subscribe(&tenant),
        stopping: state.stopping.subscribe(),
        state: state.clone(),
        query: ChangeQuery {
            start: Some(start),
            limit: MAX_LIMIT,
            records: records_filter(params),
        },
        tenant,
        pending: VecDeque::new(),
        ended: false,
        _pass: pass,
    };
    // A comment first, so the answer's head and a first byte go out at once, before any
    // change: a client knows the stream is open without waiting for a heartbeat.
    let opened = stream::once(std::future::ready(Ok::<_, Infallible>(
        Event::default().comment("open"),
    )));
    let events = opened.chain(stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next_event().await?;
        Some((Ok::<_, Infallible>(event), cursor))
    }));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

impl Cursor {
    /// The next event, waiting for a commit when none is pending; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            match self.read().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(last) => {
                    self.ended = true;
                    return Some(last);
                }
            }
            tokio::select! {
                changed = self.versions.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
            }
        }
    }

    /// Reads the changes from the cursor on into `pending`; answers whether it found any, or
    /// the event that ends the stream.
    async fn read(&mut self) -> Result<bool, Event> {
        let (store, tenant, query) = (
            self.state.store.clone(),
            self.tenant.clone(),
            self.query.clone(),
        );
        let list = match blocking(move || store.change_feed().changes(&tenant, &query)).await {
            Ok(list) => list,
            Err(Error::ChangesGone { oldest }) => {
                return Err(Event::default().event("gone").data(format!(
                    "Changes before version {oldest} are no longer available; reload the data and continue from its globalVersion."
                )));
            }
            Err(e) => {
                tracing::warn!(error = %e, "a change stream stopped");
                return Err(Event::default().event("error").data(e.to_string()));
            }
        };
        // Without a `next`, nothing up to the global version is left to list.
        let start = self.query.start.unwrap_or(0);
        self.query.start = Some(list.next.unwrap_or(start.max(list.global_version + 1)));
        for change in &list.changes {
            let data = serde_json::to_string(&change_json(change))
                .unwrap_or_else(|e| unreachable!("a change serializes: {e}"));
            self.pending.push_back(
                Event::default()
                    .event("change")
                    .id(change.version.to_string())
                    .data(data),
            );
        }
        Ok(!list.changes.is_empty())
    }
}
