//! The plugin author's kit from the outside: `bulkhost plugin new` writes a crate that builds
//! where it is written, `plugin check` shows what the host sees or why it refuses a component,
//! `plugin run` generates a data set without a server under the server's limits; and the plugin
//! guide, followed from an empty directory to a data set a running server exports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bulkhost_tests::{Auth, ServerProcess, queue_export, settled_export};
use serde_json::{Value, json};

use crate::process::binary;

/// The plugin guide.
const GUIDE: &str = include_str!("../../../plugins/README.md");

/// `bulkhost args...` run in `dir`.
fn bulkhost(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("BULKHOST_CONFIG")
        .output()
        .expect("bulkhost runs")
}

/// Standard output of a command that succeeded.
fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Standard error of a command that failed.
fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// `cargo build --release` in a crate `plugin new` wrote, sharing the target directory the
/// tests' own plugins are built in so their dependencies compile once; answers where the
/// guide says the component is, `target/wasm32-wasip2/release/{file}.wasm` inside the crate.
fn cargo_build(root: &Path, file: &str) -> PathBuf {
    let shared = Path::new(env!("PLUGIN_SYNTHETIC"))
        .ancestors()
        .nth(3)
        .expect("the plugins' target directory");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", shared)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the new crate builds where it is written");
    let relative = format!("target/wasm32-wasip2/release/{file}.wasm");
    let placed = root.join(&relative);
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::copy(shared.join(&relative["target/".len()..]), &placed).unwrap();
    placed
}

/// The lines of `text` as JSON values.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The code of the first `rust` block of the guide, unindented.
fn guide_example() -> String {
    let start = GUIDE
        .find("   ```rust\n")
        .expect("the guide shows the example")
        + 11;
    let end = start + GUIDE[start..].find("   ```\n").unwrap();
    GUIDE[start..end]
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_takes_an_empty_directory_to_a_data_set_a_server_exports() {
    let steps = [
        "rustup target add wasm32-wasip2",
        "bulkhost plugin new --kind dataset my-datasets",
        "cargo build --release",
        "bulkhost plugin check target/wasm32-wasip2/release/my_datasets.wasm",
        "bulkhost plugin run target/wasm32-wasip2/release/my_datasets.wasm --dataset tiendas --param ciudad=Lviv --documents documents",
        "curl -u demo.admin:demo -T target/wasm32-wasip2/release/my_datasets.wasm http://127.0.0.1:8080/api_v1/plugins/my-datasets",
        r#"curl -u demo.admin:demo -H 'content-type: application/json' -d '[{"dataset": "tiendas", "ciudad": "Lviv"}]' http://127.0.0.1:8080/api_v1/generar_xxl"#,
    ];
    for step in steps {
        assert!(GUIDE.contains(step), "the guide shows `{step}`");
    }

    let empty = tempfile::tempdir().unwrap();
    succeeded(&bulkhost(
        empty.path(),
        &["plugin", "new", "--kind", "dataset", "my-datasets"],
    ));
    let root = empty.path().join("my-datasets");
    let written = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        written.contains(&guide_example()),
        "the guide shows the example `plugin new` writes"
    );
    assert!(
        failed(&bulkhost(empty.path(), &["plugin", "new", "my-datasets"]))
            .contains("already exists"),
        "an existing crate is never overwritten"
    );

    let wasm = cargo_build(&root, "my_datasets");
    let wasm_arg = "target/wasm32-wasip2/release/my_datasets.wasm";
    let checked = succeeded(&bulkhost(&root, &["plugin", "check", wasm_arg]));
    assert!(
        checked.starts_with("my_datasets: world dataset-generator of bulkhost:plugin@0.1.0"),
        "{checked}"
    );
    assert!(
        checked.contains("data set tiendas: Every shop, optionally only those in one city.")
            && checked.contains("  param ciudad (string, optional): Only shops")
            && checked.contains("  field shop_id (string): The shop's key."),
        "{checked}"
    );

    let ran = bulkhost(
        &root,
        &[
            "plugin",
            "run",
            wasm_arg,
            "--dataset",
            "tiendas",
            "--param",
            "ciudad=Lviv",
            "--documents",
            "documents",
        ],
    );
    let records = json_lines(&succeeded(&ran));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["shop_id"], "676");
    let timing = String::from_utf8_lossy(&ran.stderr);
    assert!(
        timing.contains("tiendas: 1 records") && timing.contains("2 documents"),
        "{timing}"
    );

    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_demo(binary(), data.path());
    let demo = server
        .as_user("demo.admin")
        .with_auth(Auth::Basic("demo.admin".into(), "demo".into()));
    let uploaded = demo
        .send_raw(
            "PUT",
            "/api_v1/plugins/my-datasets",
            "application/wasm",
            std::fs::read(&wasm).unwrap(),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let id = queue_export(&demo, json!([{"dataset": "tiendas", "ciudad": "Lviv"}])).await;
    let state = settled_export(&demo, &id).await;
    assert_eq!(state["estado"], "OK", "{state}");
    assert_eq!(state["datasets"][0]["numero_registros"], 1, "{state}");
    let shops = demo
        .get(&format!("/api_v1/datos_xxl/{id}/tiendas"))
        .await
        .json();
    assert_eq!(shops[0]["address"], "11 Main Street, Lviv", "{shops}");
}

#[test]
fn an_endpoint_crate_builds_and_declares_its_endpoints() {
    let empty = tempfile::tempdir().unwrap();
    succeeded(&bulkhost(
        empty.path(),
        &["plugin", "new", "--kind", "endpoint", "shop-api"],
    ));
    let root = empty.path().join("shop-api");
    let wasm = cargo_build(&root, "shop_api");
    let checked = succeeded(&bulkhost(
        &root,
        &["plugin", "check", wasm.to_str().unwrap()],
    ));
    assert!(
        checked.starts_with("shop_api: world batch-endpoint of bulkhost:plugin@0.1.0"),
        "{checked}"
    );
    assert!(
        checked.contains("endpoint GET /v1/shops/{id} (load score 1): One shop.")
            && checked.contains("endpoint PUT /v1/shops/{id} (load score 2)"),
        "{checked}"
    );
    let ran = failed(&bulkhost(
        &root,
        &["plugin", "run", wasm.to_str().unwrap(), "--dataset", "x"],
    ));
    assert!(ran.contains("it is an endpoint plugin"), "{ran}");
}

#[test]
fn check_names_what_does_not_fit_the_contract() {
    let here = tempfile::tempdir().unwrap();
    let refused = failed(&bulkhost(
        here.path(),
        &["plugin", "check", env!("PLUGIN_WRONG_CONTRACT")],
    ));
    assert!(
        refused.contains("refused:")
            && refused.contains("does not match the bulkhost:plugin@0.1.0 contract")
            && refused.contains("it imports:")
            && refused.contains("it exports:"),
        "{refused}"
    );
    let junk = here.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let refused = failed(&bulkhost(
        here.path(),
        &["plugin", "check", junk.to_str().unwrap()],
    ));
    assert!(
        refused.contains("not a valid WebAssembly component"),
        "{refused}"
    );
    let missing = failed(&bulkhost(here.path(), &["plugin", "check", "nowhere.wasm"]));
    assert!(missing.contains("nowhere.wasm"), "{missing}");
    for bad in ["My Plugin", "../escape"] {
        let refused = failed(&bulkhost(here.path(), &["plugin", "new", bad]));
        assert!(refused.contains("is not a usable crate name"), "{refused}");
    }
    assert_eq!(std::fs::read_dir(here.path()).unwrap().count(), 1);
}

#[test]
fn run_checks_parameters_and_documents_and_holds_the_servers_limits() {
    let here = tempfile::tempdir().unwrap();
    let synthetic = env!("PLUGIN_SYNTHETIC");
    let out = here.path().join("records.jsonl");
    succeeded(&bulkhost(
        here.path(),
        &[
            "plugin",
            "run",
            synthetic,
            "--dataset",
            "synthetic",
            "--param",
            "count=250",
            "--output",
            out.to_str().unwrap(),
        ],
    ));
    let records = json_lines(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(records.len(), 250);

    let refused = failed(&bulkhost(
        here.path(),
        &[
            "plugin",
            "run",
            synthetic,
            "--dataset",
            "synthetic",
            "--param",
            "count=many",
        ],
    ));
    assert!(
        refused.contains("the parameters are refused: count"),
        "{refused}"
    );
    let refused = failed(&bulkhost(
        here.path(),
        &["plugin", "run", synthetic, "--dataset", "nope"],
    ));
    assert!(
        refused.contains("no data set `nope`; it provides: synthetic"),
        "{refused}"
    );

    let documents = here.path().join("documents");
    std::fs::create_dir(&documents).unwrap();
    std::fs::write(documents.join("warehouses.json"), "[]").unwrap();
    let refused = failed(&bulkhost(
        here.path(),
        &[
            "plugin",
            "run",
            synthetic,
            "--dataset",
            "synthetic",
            "--documents",
            documents.to_str().unwrap(),
        ],
    ));
    assert!(
        refused.contains("warehouses.json names no collection"),
        "{refused}"
    );

    std::fs::write(
        here.path().join("bulkhost.toml"),
        "[plugins]\ndeadline_secs = 1\n",
    )
    .unwrap();
    let refused = failed(&bulkhost(
        here.path(),
        &[
            "plugin",
            "run",
            env!("PLUGIN_HOSTILE"),
            "--dataset",
            "loop",
            "--config",
            "bulkhost.toml",
        ],
    ));
    assert!(refused.contains("the plugin failed:"), "{refused}");
    assert!(
        refused.contains("exceeded its time limit of 1s"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_data_set_built_with_componentize_py_is_checked_uploaded_and_exported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tool = root.join("target/venv/bin/componentize-py");
    assert!(
        tool.exists(),
        "componentize-py is not installed: run `make setup`"
    );
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("shops_by_city.wasm");
    let mut build = Command::new(&tool);
    build
        .current_dir(root.join("plugins/python/shops-by-city"))
        .args([
            "-d",
            "../../../wit",
            "-w",
            "dataset-generator",
            "componentize",
            "app",
            "-o",
        ])
        .arg(&wasm);
    shops_by_city_is_checked_uploaded_and_exported(build, &wasm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_data_set_built_with_componentize_js_is_checked_uploaded_and_exported() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/javascript/shops-by-city");
    assert!(
        project.join("node_modules/.bin/componentize-js").exists(),
        "componentize-js is not installed: run `make setup`"
    );
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("shops_by_city.wasm");
    // The guide's own command, its output moved out of the source tree.
    let mut build = Command::new("npm");
    build
        .current_dir(&project)
        .args(["run", "--silent", "build", "--", "--out"])
        .arg(&wasm);
    shops_by_city_is_checked_uploaded_and_exported(build, &wasm).await;
}

/// Runs `build`, which writes the example `shops_by_city` plugin of another language to
/// `wasm`, then checks the component, uploads it as a tenant's plugin and exports it, and has
/// a bad parameter refused: both examples behave alike.
async fn shops_by_city_is_checked_uploaded_and_exported(mut build: Command, wasm: &Path) {
    let built = build.output().unwrap();
    assert!(
        built.status.success(),
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let size = std::fs::metadata(wasm).unwrap().len();
    assert!(
        size < 32 << 20,
        "the plugin fits a tenant's upload: {size} bytes"
    );

    let checked = succeeded(&bulkhost(
        wasm.parent().unwrap(),
        &["plugin", "check", wasm.to_str().unwrap()],
    ));
    assert!(
        checked.contains("data set shops_by_city:")
            && checked
                .contains("param detail (string, optional, default full, one of full, compact)"),
        "{checked}"
    );

    let server = bulkhost_tests::TestServer::start().await;
    let ann = server.as_user("ann");
    let shops = json!([
        {"shop_id": "1", "name": "Kyiv central", "address": "10 Main Street, Kyiv"},
        {"shop_id": "2", "name": "Lviv central", "address": "11 Main Street, Lviv"},
        {"shop_id": "3", "name": "Lviv west", "address": "2 Side Street, Lviv"}
    ]);
    assert_eq!(ann.post("/api/v1/shops/", &shops).await.status, 201);
    let uploaded = ann
        .send_raw(
            "PUT",
            "/api_v1/plugins/shops",
            "application/wasm",
            std::fs::read(wasm).unwrap(),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let id = queue_export(
        &ann,
        json!([{"dataset": "shops_by_city", "city": "lviv", "detail": "compact"}]),
    )
    .await;
    let exported = async |id: &str| {
        let state = settled_export(&ann, id).await;
        assert_eq!(state["estado"], "OK", "{state}");
        ann.get(&format!("/api_v1/datos_xxl/{id}/shops_by_city"))
            .await
            .json()
    };
    assert_eq!(
        exported(&id).await,
        json!([{"shop_id": "2", "name": "Lviv central", "city": "Lviv"},
               {"shop_id": "3", "name": "Lviv west", "city": "Lviv"}])
    );
    let id = queue_export(&ann, json!([{"dataset": "shops_by_city", "limit": "1"}])).await;
    assert_eq!(
        exported(&id).await,
        json!([{"shop_id": "1", "name": "Kyiv central", "address": "10 Main Street, Kyiv",
                "city": "Kyiv", "id": 1, "version": 1}]),
        "the full form, with the document's id and version"
    );
    let refused = ann
        .post(
            "/api_v1/generar_xxl",
            &json!([{"dataset": "shops_by_city", "detail": "everything"}]),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text.contains("detail must be one of full, compact"),
        "{}",
        refused.text
    );
}

/// What a WIT package declares, by name: each interface's types and functions, each world's
/// imports and exports, and the documentation of both.
fn outline(resolve: &wit_parser::Resolve, package: wit_parser::PackageId) -> Vec<String> {
    let package = &resolve.packages[package];
    let mut lines = vec![format!("package {}", package.name)];
    for (name, &id) in &package.interfaces {
        let interface = &resolve.interfaces[id];
        lines.push(format!("interface {name}: {:?}", interface.docs.contents));
        lines.extend(interface.types.keys().map(|t| format!("  type {t}")));
        lines.extend(interface.functions.keys().map(|f| format!("  func {f}")));
    }
    for (name, &id) in &package.worlds {
        let world = &resolve.worlds[id];
        lines.push(format!("world {name}: {:?}", world.docs.contents));
        let key = |k: &wit_parser::WorldKey| resolve.name_world_key(k);
        lines.extend(world.imports.keys().map(|k| format!("  import {}", key(k))));
        lines.extend(world.exports.keys().map(|k| format!("  export {}", key(k))));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_is_served_as_a_wit_package_in_wkgs_layout() {
    let server = bulkhost_tests::TestServer::start().await;
    let url = format!("{}/wit/bulkhost/plugin/0.1.0.wasm", server.base);
    let client = reqwest::Client::new();
    let served = client.get(&url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/wasm");
    let tag = served.headers()["etag"].clone();
    let bytes = served.bytes().await.unwrap();

    let decoded = match wit_parser::decoding::decode(&bytes).expect("a binary WIT package") {
        wit_parser::decoding::DecodedWasm::WitPackage(resolve, package) => {
            outline(&resolve, package)
        }
        other => panic!("a WIT package, not a component: {:?}", other.package()),
    };
    let mut source = wit_parser::Resolve::default();
    let (package, _) = source
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"))
        .unwrap();
    assert_eq!(decoded, outline(&source, package), "the contract in wit/");
    assert_eq!(decoded[0], "package bulkhost:plugin@0.1.0");
    assert!(
        decoded
            .iter()
            .any(|l| l.starts_with("world dataset-generator: Some(\"A plugin")),
        "documentation travels with it: {decoded:#?}"
    );

    let again = client
        .get(&url)
        .header("if-none-match", tag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        304,
        "a client's current copy is not sent again"
    );
    assert_eq!(again.headers()["etag"], tag);
    let weak = format!("\"an-older-copy\", W/{}", tag.to_str().unwrap());
    let again = client
        .get(&url)
        .header("if-none-match", weak)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "If-None-Match compares weakly");
    let stale = client
        .get(&url)
        .header("if-none-match", "\"an-older-copy\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(
        client
            .get(format!("{}/wit/bulkhost/plugin/9.9.9.wasm", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "only the contract this server loads plugins with"
    );
}
