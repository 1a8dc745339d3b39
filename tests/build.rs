//! Builds the guest plugins in `plugins/` for `wasm32-wasip2` into this crate's `OUT_DIR` and
//! tells the tests where each component is (`env!("PLUGIN_SYNTHETIC")` and so on).

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [&str; 8] = [
    "synthetic",
    "ledger",
    "hostile",
    "wrong_contract",
    "erp_datasets",
    "catalog",
    "hostile_endpoints",
    "hostile_describe",
];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = root.join("plugins/Cargo.toml");
    let target_dir = out.join("wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the plugins failed; is the wasm32-wasip2 target installed (make setup)?"
    );
    let release = target_dir.join("wasm32-wasip2/release");
    for plugin in PLUGINS {
        let wasm = release.join(format!("{plugin}.wasm"));
        println!(
            "cargo:rustc-env=PLUGIN_{}={}",
            plugin.to_uppercase(),
            wasm.display()
        );
        let deps = std::fs::read_to_string(release.join(format!("{plugin}.d")))
            .expect("cargo writes a dep-info file per artifact");
        for path in deps
            .split_once(':')
            .map(|(_, inputs)| inputs)
            .unwrap_or_default()
            .split_whitespace()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed={}", manifest.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
}
