//! Encodes the plugin contract (`wit/`) as a binary WIT package, the form `wkg` and other
//! component tooling fetch, so the server can serve the very contract it was built with.
//! Writes `contract.wasm` and `contract.rs` (the package's name and where it is served) into
//! `OUT_DIR`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let wit = manifest.join("../../wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(&wit)
        .unwrap_or_else(|e| panic!("the contract in {} parses: {e:?}", wit.display()));
    let bytes = wit_component::encode(&resolve, package).expect("the contract encodes");
    let name = &resolve.packages[package].name;
    let version = name
        .version
        .as_ref()
        .expect("the contract's package has a version");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("contract.wasm"), bytes).expect("OUT_DIR is writable");
    std::fs::write(
        out.join("contract.rs"),
        format!(
            "/// The contract's package, as WIT names it.\n\
             pub const PACKAGE: &str = {package:?};\n\
             /// Where the server serves it: wkg's local registry layout, \
             `{{namespace}}/{{name}}/{{version}}.wasm`, under `/wit/`.\n\
             pub const PACKAGE_PATH: &str = {path:?};\n",
            package = format!("{}:{}@{version}", name.namespace, name.name),
            path = format!("/wit/{}/{}/{version}.wasm", name.namespace, name.name),
        ),
    )
    .expect("OUT_DIR is writable");
}
