//! Delivering change hooks (ABRA Flexi's web hooks): after each commit, every active hook of
//! the tenant is posted the changes after the last version it acknowledged, in the change
//! feed's JSON or XML shape, with its `X-FB-Hook-SecKey` and signed as every webhook is
//! (Standard Webhooks), under the same address rules. A 2xx answer moves the hook on to the
//! last version it was sent; anything else counts a failure, retried with doubling waits, and
//! a hook that fails `webhooks.max_attempts` times in a row is paused with the reason, which its
//! listing shows, until the tenant asks for a retry.
//!
//! The change log is the hooks' outbox: a commit's changes are durable before any hook hears
//! of them, and a hook's position moves only once it acknowledged them, so a crash loses no
//! change and a receiver may see one again (ABRA Flexi's receivers deduplicate by
//! `@in-version`). Deliveries run side by side, at most `webhooks.per_tenant` of one tenant.

use std::time::Duration;

use bulkhost_core::{ChangeList, ChangeQuery, Hook, HookFormat};

use crate::change_feed::{MAX_LIMIT, changes_body};
use crate::state::{AppState, Ticks, blocking};
use crate::webhooks::{Dispatcher, Message, backoff, post};

/// How often hooks are looked at.
const POLL: Duration = Duration::from_millis(250);

/// Posts `body` to a hook's URL with its secret key, signed; `Ok` on a 2xx answer.
pub async fn notify(
    state: &AppState,
    url: &str,
    format: HookFormat,
    sec_key: Option<&str>,
    message_id: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let url = reqwest::Url::parse(url).map_err(|e| format!("the URL is not usable: {e}"))?;
    let headers: Vec<(&str, &str)> = sec_key
        .map(|k| ("x-fb-hook-seckey", k))
        .into_iter()
        .collect();
    let message = Message {
        id: message_id,
        content_type: format_of(format).media_type(),
        headers: &headers,
        body: String::from_utf8(body).map_err(|e| e.to_string())?,
    };
    post(state, url, message).await
}

/// Delivers due hooks until shutdown.
pub async fn deliver(state: AppState) {
    let mut dispatcher = Dispatcher::new(&state);
    let mut ticks = Ticks::new(&state, POLL);
    while ticks.next().await {
        let free = dispatcher.free();
        if free == 0 {
            continue;
        }
        let store = state.store.clone();
        let per_tenant = state.config.webhooks.per_tenant;
        let due = blocking(move || {
            store
                .hooks()
                .claim_due(chrono::Utc::now().naive_utc(), per_tenant, free)
        })
        .await;
        let due = match due {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "reading the change hooks failed");
                continue;
            }
        };
        // A hook that does not start now stays claimed until its lease lapses.
        for hook in due {
            let (tenant, id, state) = (hook.tenant.clone(), hook.id, state.clone());
            dispatcher.start(&tenant, id, async move { deliver_one(&state, &hook).await });
        }
    }
    dispatcher.shutdown().await;
}

/// The changes a hook is owed next, at most [`MAX_LIMIT`], and the version it has seen once it
/// acknowledges them: the last one sent, or the global version when nothing further matches.
fn owed(state: &AppState, hook: &Hook) -> Result<(ChangeList, u64), bulkhost_core::Error> {
    let query = ChangeQuery {
        start: Some(hook.last_version + 1),
        limit: MAX_LIMIT,
        records: Vec::new(),
    };
    let list = state.store.change_feed().changes(&hook.tenant, &query)?;
    let seen = match list.next {
        Some(next) => next - 1,
        None => list.global_version,
    };
    Ok((
        ChangeList {
            global_version: seen,
            ..list
        },
        seen,
    ))
}

/// Tries one hook and records how it went.
async fn deliver_one(state: &AppState, hook: &Hook) {
    let owed = {
        let (state, hook) = (state.clone(), hook.clone());
        blocking(move || owed(&state, &hook)).await
    };
    let outcome = match owed {
        Ok((list, seen)) => {
            let body = changes_body(&list, format_of(hook.format));
            let message_id = format!("hook_{}_{seen}", hook.id);
            notify(
                state,
                &hook.url,
                hook.format,
                hook.sec_key.as_deref(),
                &message_id,
                body,
            )
            .await
            .map(|()| seen)
        }
        Err(e) => Err(e.to_string()),
    };
    let given_up = hook.penalty + 1 >= state.config.webhooks.max_attempts;
    state.metrics.delivery(
        "hook",
        match &outcome {
            Ok(_) => "delivered",
            Err(_) if given_up => "given_up",
            Err(_) => "retried",
        },
    );
    let store = state.store.clone();
    let hook = hook.clone();
    let recorded = match outcome {
        Ok(seen) => blocking(move || store.hooks().delivered(&hook, seen)).await,
        Err(why) => {
            let retry_at = (!given_up).then(|| {
                let wait =
                    chrono::Duration::from_std(backoff(state, hook.penalty)).unwrap_or_default();
                chrono::Utc::now().naive_utc() + wait
            });
            tracing::warn!(hook = hook.id, tenant = %hook.tenant, to = %hook.url, error = %why, paused = given_up, "change hook failed");
            blocking(move || store.hooks().failed(&hook, &why, retry_at)).await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, "recording a change hook's outcome failed");
    }
}

/// The change feed's rendering of a hook's format.
pub fn format_of(format: HookFormat) -> crate::change_feed::Format {
    match format {
        HookFormat::Json => crate::change_feed::Format::Json,
        HookFormat::Xml => crate::change_feed::Format::Xml,
    }
}
