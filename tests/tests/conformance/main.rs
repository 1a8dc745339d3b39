//! The OpenAPI document against tools that read it: an OpenAPI 3.1 validator, Schemathesis
//! fuzzing every operation of the demo server, and a client generated from the document; and
//! the console in a real browser. The Python tools are installed by `make setup` into
//! `target/venv` (`tests/requirements.txt`), Chromium and playwright-core too
//! (`tests/browser`).

use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhost_tests::ServerProcess;

/// The Python of the tools' virtual environment.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin");
    assert!(
        venv.join("python").exists(),
        "the conformance tools are not installed: run `make setup`"
    );
    venv.join("python")
}

/// A tool of the virtual environment.
fn tool(name: &str) -> PathBuf {
    python().with_file_name(name)
}

/// The demo server (`serve --dev`) with the bundled plugins.
fn demo(data: &Path) -> ServerProcess {
    demo_with_env(data, &[])
}

/// [`demo`] with these environment variables set for the server.
fn demo_with_env(data: &Path, env: &[(&str, &str)]) -> ServerProcess {
    let plugins = data.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins directory");
    for (name, path) in [
        ("synthetic", env!("PLUGIN_SYNTHETIC")),
        ("erp_datasets", env!("PLUGIN_ERP_DATASETS")),
        ("catalog", env!("PLUGIN_CATALOG")),
    ] {
        std::fs::copy(path, plugins.join(format!("{name}.wasm"))).expect("plugin copies");
    }
    ServerProcess::start_demo_with_env(
        Path::new(env!("CARGO_BIN_EXE_bulkhost-under-test")),
        data,
        env,
    )
}

/// The document as the demo user reads it (or, not `signed_in`, an anonymous reader), written
/// to `dir`; answers the file and what it holds.
async fn fetch_document(
    server: &ServerProcess,
    dir: &Path,
    signed_in: bool,
) -> (PathBuf, serde_json::Value) {
    let mut request = reqwest::Client::new().get(format!("{}/openapi.json", server.base));
    if signed_in {
        request = request.basic_auth("demo.admin", Some("demo"));
    }
    let text = request
        .send()
        .await
        .expect("the document is served")
        .text()
        .await
        .expect("the document reads");
    let path = dir.join(if signed_in {
        "openapi.json"
    } else {
        "anonymous.json"
    });
    std::fs::write(&path, &text).expect("the document is written");
    let doc = serde_json::from_str(&text).expect("the document is JSON");
    (path, doc)
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1_for_readers_with_and_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(dir.path());
    let (signed_in, _) = fetch_document(&server, dir.path(), true).await;
    run(Command::new(tool("openapi-spec-validator")).arg(&signed_in));
    let (anonymous, doc) = fetch_document(&server, dir.path(), false).await;
    run(Command::new(tool("openapi-spec-validator")).arg(&anonymous));
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["paths"]["/api/v1/shops/"]["post"]["requestBody"].is_object(),
        "each collection has its own paths"
    );
    let page = reqwest::get(format!("{}/docs/", server.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let initializer = reqwest::get(format!("{}/docs/swagger-initializer.js", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_in_any_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(dir.path());
    let (document, _) = fetch_document(&server, dir.path(), true).await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let report = run(Command::new(tool("schemathesis"))
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(&document)
        .args(["--url", &server.base, "--auth", "demo.admin:demo"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-time", "200", "--workers", "1", "--seed", "1"])
        .args(["--suppress-health-check", "all", "--max-failures", "50"])
        .env("NO_COLOR", "1"));
    let selected = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .expect("the report names the operations selected");
    let (tested, total) = selected.split_once('/').expect("`N/M`");
    let (tested, total): (usize, usize) = (tested.parse().unwrap(), total.parse().unwrap());
    // schemathesis.toml leaves out the change stream alone, which never ends by itself.
    assert_eq!(
        tested + 1,
        total,
        "every operation but the change stream is selected:\n{report}"
    );
    assert!(
        report.contains(&format!("Tested: {tested}")),
        "every selected operation is tested:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_lists_pages_upserts_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(dir.path());
    let (document, _) = fetch_document(&server, dir.path(), true).await;
    let client = dir.path().join("client");
    run(Command::new(tool("openapi-python-client"))
        .arg("generate")
        .arg("--path")
        .arg(&document)
        .arg("--output-path")
        .arg(&client)
        .args(["--meta", "none"]));
    let parent = dir.path().join("packages");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::rename(&client, parent.join("bulkhost_client")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi_client.py");
    let said = run(Command::new(python()).arg(script).arg(&parent).args([
        &server.base,
        "demo.admin",
        "demo",
    ]));
    assert!(
        said.contains("listed, paged, upserted and exported"),
        "{said}"
    );
}

#[test]
fn the_console_works_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists()
            && Path::new("/usr/bin/chromium").exists(),
        "Chromium or playwright-core is not installed: run `make setup`"
    );
    let data = tempfile::tempdir().unwrap();
    // The SHA-256 of the operator token "console-operator-token".
    let digest = "[398ca27fc10126a2a5532776b0e48ff182c0cfb0009b1d1996da8c07609a22c5]";
    let server = demo_with_env(data.path(), &[("BULKHOST_ADMIN__TOKEN_SHA256", digest)]);
    let screenshots = root.join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let said = run(Command::new("node")
        .arg(root.join("tests/browser/console.test.mjs"))
        .arg(&server.base)
        .arg(&screenshots)
        .env("BULKHOST_OPERATOR_TOKEN", "console-operator-token"));
    assert!(screenshots.join("console.png").exists(), "{said}");
}
