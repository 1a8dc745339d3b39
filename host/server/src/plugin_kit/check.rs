//! `bulkhost plugin check`: loads a component the way the server does (same contract, same
//! limits) and tells its author what the host sees — its world, its data sets or endpoints with
//! their parameters and fields — or, when it does not fit, why, beside what it imports and
//! exports.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use bulkhost_runtime::{DatasetInfo, EndpointInfo, Grants, LoadError, Plugin, Runtime};

use super::{KitError, read_component};
use crate::bulk_export::wire::{field_kind, param_kind};
use crate::contract::PACKAGE;

/// Loads the component at `path` and describes it; a component the host would refuse is an
/// error that says why.
pub fn check(runtime: &Runtime, path: &Path) -> Result<String, KitError> {
    let (name, wasm) = read_component(path)?;
    let started = Instant::now();
    let plugin = match runtime.load(&name, &wasm, Grants::default()) {
        Ok(plugin) => plugin,
        Err(e @ (LoadError::Contract(_) | LoadError::Describe(_))) => {
            let seen = runtime
                .interfaces(&wasm)
                .map(|i| {
                    format!(
                        "\n  it imports: {}\n  it exports: {}",
                        listed(&i.imports),
                        listed(&i.exports)
                    )
                })
                .unwrap_or_default();
            return Err(KitError::Refused(format!("{e}{seen}")));
        }
        Err(e) => return Err(KitError::Refused(e.to_string())),
    };
    Ok(describe(&plugin, wasm.len(), started.elapsed()))
}

fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

fn describe(plugin: &Plugin, size: usize, loaded_in: std::time::Duration) -> String {
    let world = if plugin.endpoints().is_empty() {
        "dataset-generator"
    } else {
        "batch-endpoint"
    };
    let mut out = format!(
        "{}: world {world} of {PACKAGE}, {} KiB, sha256 {}, loaded in {} ms\n",
        plugin.name(),
        size.div_ceil(1024),
        plugin.hash(),
        loaded_in.as_millis()
    );
    for dataset in plugin.datasets() {
        describe_dataset(&mut out, dataset);
    }
    for endpoint in plugin.endpoints() {
        describe_endpoint(&mut out, endpoint);
    }
    out
}

fn describe_dataset(out: &mut String, dataset: &DatasetInfo) {
    let _ = writeln!(out, "data set {}: {}", dataset.name, dataset.description);
    for p in &dataset.params {
        let mut notes = vec![param_kind(p.kind).to_string()];
        notes.push(if p.required { "required" } else { "optional" }.into());
        if let Some(default) = &p.default_value {
            notes.push(format!("default {default}"));
        }
        if !p.allowed_values.is_empty() {
            notes.push(format!("one of {}", p.allowed_values.join(", ")));
        }
        let _ = writeln!(
            out,
            "  param {} ({}): {}",
            p.name,
            notes.join(", "),
            p.description
        );
    }
    for f in &dataset.fields {
        let kind = field_kind(f.kind);
        let _ = writeln!(out, "  field {} ({kind}): {}", f.name, f.description);
    }
}

fn describe_endpoint(out: &mut String, endpoint: &EndpointInfo) {
    let _ = writeln!(
        out,
        "endpoint {} {} (load score {}): {}",
        endpoint.method, endpoint.path, endpoint.load_score, endpoint.description
    );
}
