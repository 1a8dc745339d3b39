//! Which endpoints a batch operation may call and what each weighs: the built-in routes of
//! the other surfaces and the batch endpoints of the tenant's plugins, each with its load
//! score, as `GET /v1/batch/limits` lists them and `POST /v1/batch` checks them.

use std::collections::BTreeMap;

use crate::http::template::match_template;
use crate::openapi::{Access, operations};
use crate::state::AppState;
use bulkhost_runtime::{EndpointInfo, Plugin};

/// The methods a batch operation may use.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// What a built-in call weighs unless the operator says otherwise: reads 1, writes 2,
/// deletions 1.
fn default_score(method: &str) -> u32 {
    match method {
        "POST" | "PUT" | "PATCH" => 2,
        _ => 1,
    }
}

/// One endpoint a batch may call.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Upper case.
    pub method: String,
    /// The path template, `{name}` matching one segment.
    pub template: String,
    /// What one call weighs.
    pub load_score: u32,
    /// The plugin serving it; `None` for a built-in route.
    pub plugin: Option<(Plugin, EndpointInfo)>,
}

/// Whether a route may be called from a batch: tenant routes in the methods batches use,
/// and nothing under `/v1/` (the batch surface itself, and plugin endpoints, which are listed
/// one by one).
fn batchable(route: &crate::openapi::Route) -> bool {
    route.access == Access::Tenant
        && METHODS.contains(&route.method_name())
        && !route.path.starts_with("/v1/")
}

/// Every endpoint `tenant`'s batches may call, ordered by path then method: built-in routes
/// with the operator's load scores, then the tenant's plugin endpoints (a plugin endpoint
/// never replaces a built-in one). Every endpoint weighs at least 1, whatever a plugin or the
/// operator says, so no batch is unbounded.
pub fn endpoints(state: &AppState, tenant: &str) -> Vec<Endpoint> {
    let scores = &state.config.batches.load_scores;
    let mut out: BTreeMap<(String, String), Endpoint> = BTreeMap::new();
    for (info, plugin) in state.registry.endpoints(tenant) {
        let score = scores
            .get(&format!("{} {}", info.method, info.path))
            .copied()
            .unwrap_or(info.load_score)
            .max(1);
        out.insert(
            (info.path.clone(), info.method.clone()),
            Endpoint {
                method: info.method.clone(),
                template: info.path.clone(),
                load_score: score,
                plugin: Some((plugin, info)),
            },
        );
    }
    for operation in operations().iter().filter(|op| batchable(op.route)) {
        let (method, template) = (operation.route.method_name(), &operation.path);
        let load_score = scores
            .get(&format!("{method} {template}"))
            .copied()
            .unwrap_or_else(|| default_score(method))
            .max(1);
        out.insert(
            (template.clone(), method.to_string()),
            Endpoint {
                method: method.to_string(),
                template: template.clone(),
                load_score,
                plugin: None,
            },
        );
    }
    out.into_values().collect()
}

/// The endpoint a call of `method` on `path` reaches, preferring a template with fewer
/// parameters (`/v1/products/export` over `/v1/products/{id}`).
pub fn find<'a>(
    catalogue: &'a [Endpoint],
    method: &str,
    path: &str,
) -> Option<(&'a Endpoint, Vec<(String, String)>)> {
    catalogue
        .iter()
        .filter(|e| e.method == method)
        .filter_map(|e| match_template(&e.template, path).map(|p| (e, p)))
        .min_by_key(|(_, params)| params.len())
}
