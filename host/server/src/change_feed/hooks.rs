//! `/c/{firma}/hooks`: ABRA Flexi's web hooks on the change feed. `PUT` (or `POST`)
//! `hooks.json?url=...&format=JSON|XML` registers one (`lastVersion` to start after another
//! version than the current one, `secKey` sent back in `X-FB-Hook-SecKey`, `skipUrlTest=true`
//! to register without the empty test notification that must otherwise be answered with a 2xx);
//! `GET hooks.json` lists them with the version each has seen, its penalty and whether it is
//! paused; `DELETE hooks/{id}` removes one and `PUT hooks/{id}/retry` clears its penalty and
//! pause. Delivery is `crate::change_hooks`'s.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{Error, Hook, HookFormat, Hooks, NewHook};

use super::wire::{HookEntry, HookListing, HooksBody};
use super::xml::Winstrom;
use super::{AbraError, Format, content_type, number, success, to_json};
use crate::change_hooks::notify;
use crate::http::query::{Params, param};
use crate::state::{AppState, blocking};

/// `GET hooks`.
pub(super) async fn list(
    state: &AppState,
    tenant: &str,
    format: Format,
) -> Result<Response, AbraError> {
    let (store, tenant) = (state.store.clone(), tenant.to_string());
    let hooks = blocking(move || store.hooks().list(&tenant)).await?;
    Ok(listing(&hooks, format))
}

/// `PUT hooks?url=...&format=...`: checks the parameters, tests the URL unless told not to,
/// and registers the hook; answers it in a listing of one.
pub(super) async fn register(
    state: &AppState,
    tenant: &str,
    params: &Params,
    format: Format,
) -> Result<Response, AbraError> {
    let bad = |message: String| AbraError::new(StatusCode::BAD_REQUEST, message);
    let url = param(params, "url").ok_or_else(|| bad("Parameter `url` is required.".into()))?;
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
        _ => {
            return Err(bad(format!(
                "`url` must be an http:// or https:// URL, not `{url}`."
            )));
        }
    }
    let data_format = match param(params, "format")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("JSON") => HookFormat::Json,
        Some("XML") => HookFormat::Xml,
        _ => return Err(bad("Parameter `format` must be JSON or XML.".into())),
    };
    let sec_key = param(params, "secKey").map(str::to_string);
    let new = NewHook {
        url: url.to_string(),
        format: data_format,
        last_version: number(params, "lastVersion", format)?,
        sec_key: sec_key.clone(),
    };
    let skip_test = match param(params, "skipUrlTest") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(format!(
                "Parameter `skipUrlTest` must be true or false, not `{other}`."
            )));
        }
    };
    if !skip_test {
        let message_id = format!("hook_test_{}", uuid::Uuid::new_v4().simple());
        notify(
            state,
            url,
            data_format,
            sec_key.as_deref(),
            &message_id,
            Vec::new(),
        )
        .await
        .map_err(|why| bad(format!("The URL test failed: {why}")))?;
    }
    let (store, tenant) = (state.store.clone(), tenant.to_string());
    let hook = blocking(move || store.hooks().register(&tenant, new)).await?;
    Ok(listing(&[hook], format))
}

/// `DELETE hooks/{id}`.
pub(super) async fn remove(
    state: &AppState,
    tenant: &str,
    id: &str,
    format: Format,
) -> Result<Response, AbraError> {
    on_hook(state, tenant, id, format, |hooks, tenant, id| {
        hooks.remove(tenant, id)
    })
    .await
}

/// `PUT hooks/{id}/retry`.
pub(super) async fn retry(
    state: &AppState,
    tenant: &str,
    id: &str,
    format: Format,
) -> Result<Response, AbraError> {
    on_hook(state, tenant, id, format, |hooks, tenant, id| {
        hooks.retry(tenant, id).map(drop)
    })
    .await
}

/// Does `act` to the tenant's hook `id`: ABRA's success, or 404 when there is no such hook.
async fn on_hook(
    state: &AppState,
    tenant: &str,
    id: &str,
    format: Format,
    act: fn(Hooks<'_>, &str, u64) -> Result<(), Error>,
) -> Result<Response, AbraError> {
    let id: u64 = id.parse().map_err(|_| no_such_hook())?;
    let (store, tenant) = (state.store.clone(), tenant.to_string());
    blocking(move || act(store.hooks(), &tenant, id))
        .await
        .map_err(|e| match e {
            Error::NotFound => no_such_hook(),
            other => other.into(),
        })?;
    Ok(success(format, true))
}

fn no_such_hook() -> AbraError {
    AbraError::new(StatusCode::NOT_FOUND, "No such hook.")
}

fn entry(hook: &Hook) -> HookEntry {
    HookEntry {
        id: hook.id.to_string(),
        url: hook.url.clone(),
        data_format: match hook.format {
            HookFormat::Json => "JSON",
            HookFormat::Xml => "XML",
        },
        last_version: hook.last_version.to_string(),
        penalty: hook.penalty.to_string(),
        paused: hook.paused.is_some().to_string(),
        failure: hook
            .paused
            .clone()
            .or_else(|| hook.last_error.clone())
            .unwrap_or_default(),
    }
}

/// Hooks in ABRA's envelope: `hooks` holds them as a list in JSON, one `<hooks>` element each
/// in XML.
fn listing(hooks: &[Hook], format: Format) -> Response {
    let entries: Vec<HookEntry> = hooks.iter().map(entry).collect();
    let body = match format {
        Format::Json => to_json(&HookListing {
            winstrom: HooksBody {
                version: "1.0",
                hooks: entries,
            },
        }),
        Format::Xml => {
            let mut xml = Winstrom::open(None);
            for entry in &entries {
                let fields = serde_json::to_value(entry)
                    .unwrap_or_else(|e| unreachable!("a hook serializes: {e}"));
                xml.value("hooks", &fields);
            }
            xml.finish()
        }
    };
    ([(header::CONTENT_TYPE, content_type(format))], body).into_response()
}
