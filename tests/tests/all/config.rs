//! `bulkhost config check`: one configuration from defaults, the file, the environment, secret
//! files and flags, printed with its secrets hidden, and refused naming the key when invalid.

use std::path::Path;
use std::process::{Command, Output};

use bulkhost_tests::ServerProcess;
use serde_json::json;

use crate::process::binary;

/// `bulkhost config check --config bulkhost.toml` run in `dir`, with `args` and the
/// environment `env`.
fn config_check(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(binary())
        .current_dir(dir)
        .args(["config", "check", "--config", "bulkhost.toml"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// A directory holding `bulkhost.toml` with `file` in it.
fn with_file(file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bulkhost.toml"), file).unwrap();
    dir
}

/// The effective configuration `config check` printed, parsed and as text.
fn printed(out: &Output) -> (toml::Table, String) {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (text.parse().expect("the output is TOML"), text)
}

/// What a refused configuration printed to stderr.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "accepted");
    assert!(
        out.stdout.is_empty(),
        "nothing is printed of a refused configuration"
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn layers_rise_from_defaults_to_file_to_environment_to_flags() {
    let dir = with_file(
        "listen = \"127.0.0.1:7000\"\nschema_dirs = [\"schemas\"]\n\
         public_url = \"https://data.example.com/\"\n\
         [plugins]\nmemory_mib = 128\noutput_mib = 64\n\
         [exports]\nworkers = 3\n",
    );
    std::fs::create_dir(dir.path().join("schemas")).unwrap();
    let extra = tempfile::tempdir().unwrap();
    let secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LW9mLTMyLWJ5dGVzISE=";
    let secret_file = extra.path().join("whsec");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let env = [
        ("BULKHOST_LISTEN", "127.0.0.1:7001".to_string()),
        ("BULKHOST_PLUGINS__MEMORY_MIB", "512".to_string()),
        ("BULKHOST_BATCHES__MAX_LOAD_SCORE", "60".to_string()),
        (
            "BULKHOST_DATABASE__URL",
            "postgres://app:hunter2@db.example.com/bulk".to_string(),
        ),
        (
            "BULKHOST_WEBHOOKS__SECRET_FILE",
            secret_file.display().to_string(),
        ),
        // Someone else's variable (an orchestrator's, named after a service): left alone.
        ("BULKHOST_PORT", "tcp://10.0.0.1:8080".to_string()),
    ];
    let extra_dir = extra.path().to_str().unwrap();
    let out = config_check(
        dir.path(),
        &env,
        &["--listen", "127.0.0.1:7002", "--schemas", extra_dir],
    );
    let (config, text) = printed(&out);
    assert_eq!(
        config["listen"].as_str(),
        Some("127.0.0.1:7002"),
        "a flag wins"
    );
    assert_eq!(
        config["plugins"]["memory_mib"].as_integer(),
        Some(512),
        "the environment beats the file"
    );
    assert_eq!(config["plugins"]["output_mib"].as_integer(), Some(64));
    assert_eq!(config["exports"]["workers"].as_integer(), Some(3));
    assert_eq!(config["batches"]["max_load_score"].as_integer(), Some(60));
    assert_eq!(
        config["plugins"]["max_instances"].as_integer(),
        Some(100),
        "a default"
    );
    assert_eq!(
        config["public_url"].as_str(),
        Some("https://data.example.com")
    );
    let schema_dirs: Vec<&str> = config["schema_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        schema_dirs,
        ["schemas", extra_dir],
        "--schemas adds to the file's directories"
    );
    assert_eq!(config["webhooks"]["secret"].as_str(), Some("[redacted]"));
    assert_eq!(
        config["database"]["url"].as_str(),
        Some("postgres://app:[redacted]@db.example.com/bulk")
    );
    assert!(
        !text.contains("hunter2") && !text.contains("c2VjcmV0"),
        "no secret is printed:\n{text}"
    );
}

#[test]
fn paths_in_the_file_are_taken_from_its_directory() {
    let dir = with_file("schema_dirs = [\"schemas\"]\n[plugins]\ndir = \"components\"\n");
    std::fs::create_dir(dir.path().join("schemas")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .current_dir(elsewhere.path())
        .args(["config", "check", "--config"])
        .arg(dir.path().join("bulkhost.toml"))
        .output()
        .unwrap();
    let (config, _) = printed(&out);
    let schemas = dir.path().join("schemas");
    assert_eq!(
        config["schema_dirs"][0].as_str(),
        Some(schemas.to_str().unwrap())
    );
    let components = dir.path().join("components");
    assert_eq!(
        config["plugins"]["dir"].as_str(),
        Some(components.to_str().unwrap())
    );
}

#[test]
fn an_invalid_configuration_is_refused_naming_each_key() {
    let dir = with_file("[exports]\nworkers = 0\n[plugins]\ncalls_per_tenant = 0\n");
    let stderr = refused(&config_check(dir.path(), &[], &[]));
    assert!(
        stderr.contains("exports.workers") && stderr.contains("plugins.calls_per_tenant"),
        "{stderr}"
    );

    let dir = with_file("[plugins]\nmemory_mib = \"lots\"\n");
    let stderr = refused(&config_check(dir.path(), &[], &[]));
    assert!(
        stderr.contains("plugins.memory_mib") && stderr.contains("bulkhost.toml"),
        "{stderr}"
    );

    let dir = with_file("");
    let typo = [("BULKHOST_PLUGINS__MEMORY_MIBS", "512".to_string())];
    let stderr = refused(&config_check(dir.path(), &typo, &[]));
    assert!(stderr.contains("memory_mibs"), "{stderr}");

    let bad_secret = [("BULKHOST_WEBHOOKS__SECRET", "not base64!".to_string())];
    let stderr = refused(&config_check(dir.path(), &bad_secret, &[]));
    assert!(stderr.contains("webhooks.secret"), "{stderr}");
    assert!(!stderr.contains("not base64!"), "the secret is not echoed");

    let missing = [(
        "BULKHOST_WEBHOOKS__SECRET_FILE",
        "/nonexistent/whsec".to_string(),
    )];
    let stderr = refused(&config_check(dir.path(), &missing, &[]));
    assert!(stderr.contains("/nonexistent/whsec"), "{stderr}");

    // A secret given where a section is expected is refused without being repeated.
    let misplaced = [(
        "BULKHOST_MAIL",
        "smtps://mailer:p4ssw0rd@relay:465".to_string(),
    )];
    let stderr = refused(&config_check(dir.path(), &misplaced, &[]));
    assert!(
        stderr.contains("MAIL") && !stderr.contains("p4ssw0rd"),
        "{stderr}"
    );

    let dir = with_file("[plugins]\nmemory_mib = 12\n[webhooks]\nsecret = \"whsec_p4ssw0rd\n");
    let stderr = refused(&config_check(dir.path(), &[], &[]));
    assert!(
        stderr.contains("line 4") && !stderr.contains("p4ssw0rd"),
        "{stderr}"
    );
}

#[test]
fn the_database_url_may_come_from_a_file_under_its_short_name() {
    let dir = with_file("");
    let secret = dir.path().join("database-url");
    std::fs::write(&secret, "postgres://app:hunter2@db/bulk\n").unwrap();
    let env = [("BULKHOST_DATABASE_FILE", secret.display().to_string())];
    let (config, text) = printed(&config_check(dir.path(), &env, &[]));
    assert_eq!(
        config["database"]["url"].as_str(),
        Some("postgres://app:[redacted]@db/bulk")
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn the_server_runs_with_what_the_environment_sets() {
    let data = tempfile::tempdir().unwrap();
    let tenants = format!(
        "[[tenants]]\nname = \"acme\"\n[[tenants.users]]\nname = \"ann\"\npassword_hash = \"{}\"\n",
        crate::process::hash("ann-pw")
    );
    let server = ServerProcess::start_with_env(
        binary(),
        data.path(),
        &tenants,
        &[("BULKHOST_MAX_BODY_BYTES", "64")],
    );
    let ann = server.as_user("ann");
    let small = ann.post("/api/v1/shops/", &json!({"shop_id": "S1"})).await;
    assert_eq!(small.status, 400, "a small body is read: {}", small.text);
    let large = ann
        .post("/api/v1/shops/", &json!({"shop_id": "x".repeat(100)}))
        .await;
    assert_eq!(
        large.status, 413,
        "BULKHOST_MAX_BODY_BYTES reached the server"
    );
}
