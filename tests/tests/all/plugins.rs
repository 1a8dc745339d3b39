//! The plugin host through the WIT contract: real components built from `plugins/`, loaded,
//! described, validated and run under limits; hostile ones fail alone with a clear error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhost_core::{Store, TenantConfig, Tenants};
use bulkhost_runtime::{
    Compilation, EndpointRequest, Grants, Limits, LoadError, RecordSink, Registry, RunError,
    Runtime, SinkError, TenantWriter,
};
use bulkhost_tests::components;
use serde_json::{Value, json};

fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("the build script built the plugin")
}

fn synthetic() -> Vec<u8> {
    component(env!("PLUGIN_SYNTHETIC"))
}

fn hostile() -> Vec<u8> {
    component(env!("PLUGIN_HOSTILE"))
}

fn hostile_endpoints() -> Vec<u8> {
    component(env!("PLUGIN_HOSTILE_ENDPOINTS"))
}

/// A sink that keeps every record.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl RecordSink for Collect {
    fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend(records);
        Ok(())
    }
}

impl Collect {
    fn records(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }
}

fn store(dir: &std::path::Path) -> Store {
    let tenants = ["acme", "globex"]
        .into_iter()
        .map(|name| TenantConfig {
            name: name.into(),
            changes_enabled: true,
            quotas: Default::default(),
            users: Vec::new(),
        })
        .collect();
    Store::open(
        dir,
        bulkhost_server::config::load_schemas(&[]).unwrap(),
        Tenants::new(tenants, false).unwrap(),
    )
    .unwrap()
}

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(2),
        call_deadline: Duration::from_secs(2),
        memory_bytes: 64 << 20,
        output_bytes: 1 << 20,
        ..Limits::default()
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The benchmark's export data set: the PostgreSQL export peer's rows, field for field.
#[test]
fn ledger_makes_records_shaped_like_the_postgresql_export_peers_rows() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let component = std::fs::read(env!("PLUGIN_LEDGER")).unwrap();
    let plugin = runtime
        .load("ledger", &component, Grants::default())
        .unwrap();
    let sink = Collect::default();
    let store = store(dir.path());
    let generated = plugin
        .generate(
            store.documents().snapshot("acme").unwrap(),
            Box::new(sink.clone()),
            "ledger",
            &params(&[("count", "1000")]),
        )
        .unwrap();
    assert_eq!(generated.records, 1000);
    let records = sink.records();
    let first = &records[0];
    assert_eq!(first["id"], 1);
    assert_eq!(first["code"], "SKU-0000000001");
    assert_eq!(first["date"], "2015-01-02");
    assert_eq!(first["amount"], "79.19");
    assert_eq!(
        first["note"],
        "count stock stock frozen aisle back returned seasonal fresh dairy checked promo lot 1"
    );
    assert_eq!(
        records[999]["date"], "2017-09-27",
        "1,000 days after 2015-01-01"
    );
    let mean = records.iter().map(|r| r.to_string().len()).sum::<usize>() / records.len();
    assert!((200..=215).contains(&mean), "about 208 bytes: {mean}");
}

#[test]
fn synthetic_describes_validates_and_streams_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(
        limits(),
        Compilation::default(),
        Some(&dir.path().join("cache")),
    )
    .unwrap();
    let plugin = runtime
        .load("synthetic", &synthetic(), Grants::default())
        .unwrap();
    assert_eq!(plugin.hash().len(), 64);
    let info = &plugin.datasets()[0];
    assert_eq!(info.name, "synthetic");
    let names: Vec<&str> = info.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["count", "width"]);
    assert_eq!(info.params[0].default_value.as_deref(), Some("1000"));

    assert!(
        plugin
            .validate("synthetic", &params(&[("count", "5")]))
            .unwrap()
            .is_empty()
    );
    let refused = plugin
        .validate(
            "synthetic",
            &params(&[("count", "-1"), ("width", "wide"), ("colour", "red")]),
        )
        .unwrap();
    let refused: Vec<(String, String)> = refused.into_iter().map(|e| (e.name, e.message)).collect();
    assert!(
        refused.contains(&("colour".into(), "unknown parameter".into())),
        "{refused:?}"
    );
    assert!(
        refused.contains(&("width".into(), "`wide` is not a whole number".into())),
        "{refused:?}"
    );
    let range = plugin
        .validate("synthetic", &params(&[("count", "-1")]))
        .unwrap();
    assert_eq!(range[0].name, "count");
    assert!(
        plugin.validate("nope", &[]).unwrap()[0]
            .message
            .contains("unknown data set")
    );

    let sink = Collect::default();
    let store = store(dir.path());
    let generated = plugin
        .generate(
            store.documents().snapshot("acme").unwrap(),
            Box::new(sink.clone()),
            "synthetic",
            &params(&[("count", "1500"), ("width", "200")]),
        )
        .unwrap();
    let records = sink.records();
    assert_eq!(generated.records, 1500);
    assert_eq!(records.len(), 1500);
    assert_eq!(generated.bytes, 1500 * 200);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["id"], i as u64);
        assert_eq!(record["name"], format!("record {i}"));
    }
    assert!(
        std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .next()
            .is_some(),
        "compiled components are cached on disk"
    );
}

#[test]
fn a_component_of_another_contract_is_rejected_at_load_naming_the_mismatch() {
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let err = runtime
        .load(
            "wrong",
            &component(env!("PLUGIN_WRONG_CONTRACT")),
            Grants::default(),
        )
        .unwrap_err();
    assert!(matches!(err, LoadError::Contract(_)), "{err}");
    for expected in [
        "bulkhost:plugin/generator@0.1.0",
        "bulkhost:plugin/endpoint@0.1.0",
        "bulkhost:plugin/generator@0.0.1",
    ] {
        assert!(
            err.to_string().contains(expected),
            "names what it expects and what it found: {err}"
        );
    }
    let err = runtime
        .load("junk", b"not wasm", Grants::default())
        .unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

fn run_hostile(runtime: &Runtime, dir: &std::path::Path, dataset: &str) -> RunError {
    let plugin = runtime
        .load("hostile", &hostile(), Grants::default())
        .unwrap();
    let store = store(dir);
    plugin
        .generate(
            store.documents().snapshot("acme").unwrap(),
            Box::new(Collect::default()),
            dataset,
            &[],
        )
        .unwrap_err()
}

/// Invocations take slots of the instance pool; one past them waits for a slot, up to its
/// own deadline, and never fails for want of a pooled instance.
#[test]
fn an_invocation_past_the_pool_waits_for_a_slot_up_to_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(
        Limits {
            invocations: 1,
            call_deadline: Duration::from_millis(300),
            ..limits()
        },
        Compilation::default(),
        None,
    )
    .unwrap();
    let synthetic = runtime
        .load("synthetic", &synthetic(), Grants::default())
        .unwrap();
    let sleeper = {
        let runtime = runtime.clone();
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || run_hostile(&runtime, &dir, "sleep"))
    };
    // The sleeper takes the only slot for its 2 s deadline once it has loaded.
    let waited = loop {
        match synthetic.describe() {
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&waited, RunError::Host(why) if why.contains("all 1 plugin slots stayed taken")),
        "{waited}"
    );
    assert!(matches!(sleeper.join().unwrap(), RunError::Timeout(_)));
    assert_eq!(
        synthetic.describe().unwrap().len(),
        1,
        "the slot is free again once the sleeper's deadline has passed"
    );
}

#[test]
fn hostile_plugins_fail_alone_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let cases = [
        ("loop", "time limit"),
        ("bomb", "memory limit of 64 MiB"),
        ("trap", "this plugin always panics"),
        ("flood", "output limit of 1048576 bytes"),
        ("garbage", "not a JSON object"),
    ];
    for (dataset, expected) in cases {
        let started = std::time::Instant::now();
        let err = run_hostile(&runtime, dir.path(), dataset);
        assert!(err.to_string().contains(expected), "{dataset}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{dataset} took {:?}",
            started.elapsed()
        );
    }
    assert!(matches!(
        run_hostile(&runtime, dir.path(), "loop"),
        RunError::Timeout(_)
    ));
    assert!(matches!(
        run_hostile(&runtime, dir.path(), "bomb"),
        RunError::Memory(_)
    ));
}

#[test]
fn a_plugin_waiting_in_wasi_ends_at_its_deadline_in_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let within_bounds = |started: std::time::Instant| {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it slept {:?}, far past its deadline",
            started.elapsed()
        );
    };
    let started = std::time::Instant::now();
    let err = runtime
        .load(
            "sleepy",
            &component(env!("PLUGIN_HOSTILE_DESCRIBE")),
            Grants::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, LoadError::Describe(RunError::Timeout(_))),
        "{err}"
    );
    assert!(err.to_string().contains("time limit"), "{err}");
    within_bounds(started);

    let plugin = runtime
        .load("hostile", &hostile(), Grants::default())
        .unwrap();
    let started = std::time::Instant::now();
    let err = plugin.validate("sleep-validate", &[]).unwrap_err();
    assert!(matches!(err, RunError::Timeout(_)), "{err}");
    within_bounds(started);

    let started = std::time::Instant::now();
    assert!(matches!(
        run_hostile(&runtime, dir.path(), "sleep"),
        RunError::Timeout(_)
    ));
    within_bounds(started);

    let endpoints = runtime
        .load("hostile-endpoints", &hostile_endpoints(), Grants::default())
        .unwrap();
    let store = store(&dir.path().join("endpoints"));
    let writer = TenantWriter {
        store: store.clone(),
        tenant: "acme".into(),
    };
    let started = std::time::Instant::now();
    let err = endpoints
        .handle(
            store.documents().snapshot("acme").unwrap(),
            Box::new(writer),
            &call("GET", "/v1/hostile/sleep", "/v1/hostile/sleep", None),
            Duration::from_secs(60),
        )
        .unwrap_err();
    assert!(matches!(err, RunError::Timeout(_)), "{err}");
    within_bounds(started);
}

#[test]
fn memories_and_their_number_are_capped_per_invocation_not_per_memory() {
    let runtime = Runtime::new(
        Limits {
            memory_bytes: 256 << 20,
            memories: 8,
            ..limits()
        },
        Compilation::default(),
        None,
    )
    .unwrap();
    let huge = components::with_memories(&hostile(), 100, 4096);
    let err = runtime.load("huge", &huge, Grants::default()).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Describe(RunError::Memory(_) | RunError::Resources { .. })
        ),
        "100 memories of 256 MiB: {err}"
    );
    let many = components::with_memories(&hostile(), 100, 1);
    let err = runtime.load("many", &many, Grants::default()).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Describe(RunError::Resources {
                what: "memories",
                limit: 8
            })
        ),
        "100 memories of 64 KiB: {err}"
    );
    assert!(err.to_string().contains("limit of 8 memories"), "{err}");

    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let three = components::with_memories(&hostile(), 3, 512);
    let err = runtime
        .load("three", &three, Grants::default())
        .unwrap_err();
    assert!(
        matches!(err, LoadError::Describe(RunError::Memory(_))),
        "three memories of 32 MiB each fit 64 MiB alone, not together: {err}"
    );
    assert!(
        runtime
            .load(
                "one",
                &components::with_memories(&hostile(), 1, 512),
                Grants::default()
            )
            .is_ok(),
        "one more memory within the cap is fine"
    );
}

#[test]
fn a_looping_plugin_does_not_stop_another_generation() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let looping = {
        let (runtime, dir) = (runtime.clone(), dir.path().join("a"));
        std::thread::spawn(move || run_hostile(&runtime, &dir, "loop"))
    };
    let plugin = runtime
        .load("synthetic", &synthetic(), Grants::default())
        .unwrap();
    let sink = Collect::default();
    let store = store(&dir.path().join("b"));
    let generated = plugin
        .generate(
            store.documents().snapshot("globex").unwrap(),
            Box::new(sink.clone()),
            "synthetic",
            &params(&[("count", "300")]),
        )
        .unwrap();
    assert_eq!(generated.records, 300);
    assert!(
        !looping.is_finished(),
        "the loop was still running meanwhile"
    );
    assert!(matches!(looping.join().unwrap(), RunError::Timeout(_)));
}

#[test]
fn plugins_read_only_the_calling_tenants_documents() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .documents()
        .upsert(
            "acme",
            "shops",
            &json!([{"shop_id": "A1", "name": "acme shop"}]),
        )
        .unwrap();
    store
        .documents()
        .upsert(
            "globex",
            "shops",
            &json!([{"shop_id": "G1", "name": "globex shop"}, {"shop_id": "G2", "name": "x"}]),
        )
        .unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let plugin = runtime
        .load("hostile", &hostile(), Grants::default())
        .unwrap();
    for (tenant, expected) in [("acme", vec!["A1"]), ("globex", vec!["G1", "G2"])] {
        let sink = Collect::default();
        plugin
            .generate(
                store.documents().snapshot(tenant).unwrap(),
                Box::new(sink.clone()),
                "tenant-shops",
                &[],
            )
            .unwrap();
        let ids: Vec<String> = sink
            .records()
            .iter()
            .map(|r| r["shop_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, expected, "{tenant}");
    }
}

#[test]
fn the_registry_follows_its_directory_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("tenants/acme")).unwrap();
    let store = store(dir.path());
    let registry = Registry::new(
        Runtime::new(limits(), Compilation::default(), None).unwrap(),
        &plugins,
        Default::default(),
        store.clone(),
    );
    assert!(registry.datasets("acme").is_empty());

    std::fs::write(plugins.join("data.wasm"), synthetic()).unwrap();
    std::fs::write(plugins.join("tenants/acme/mine.wasm"), hostile()).unwrap();
    std::fs::write(plugins.join("junk.wasm"), b"not wasm").unwrap();
    let report = registry.sync();
    assert_eq!(report.loaded.len(), 2, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0]
            .1
            .contains("not a valid WebAssembly component")
    );
    let acme: Vec<String> = registry.datasets("acme").into_keys().collect();
    assert!(acme.contains(&"synthetic".to_string()) && acme.contains(&"loop".to_string()));
    let globex: Vec<String> = registry.datasets("globex").into_keys().collect();
    assert_eq!(
        globex,
        ["synthetic"],
        "a tenant's extension is visible to it alone"
    );
    assert!(registry.find("globex", "loop").is_none());
    assert_eq!(
        registry.sync(),
        Default::default(),
        "an unchanged directory changes nothing"
    );

    std::fs::write(plugins.join("copy.wasm"), synthetic()).unwrap();
    let duplicate = registry.sync();
    assert!(
        duplicate.failed[0]
            .1
            .contains("`synthetic` is provided twice"),
        "{duplicate:?}"
    );
    std::fs::remove_file(plugins.join("copy.wasm")).unwrap();

    let (running, _) = registry.find("globex", "synthetic").unwrap();
    std::fs::write(plugins.join("data.wasm"), hostile()).unwrap();
    let replaced = registry.sync();
    assert_eq!(
        replaced.replaced,
        [plugins.join("data.wasm").display().to_string()],
        "{replaced:?}"
    );
    assert!(registry.find("globex", "synthetic").is_none());
    assert!(registry.find("globex", "trap").is_some());
    let sink = Collect::default();
    running
        .generate(
            store.documents().snapshot("globex").unwrap(),
            Box::new(sink.clone()),
            "synthetic",
            &params(&[("count", "10")]),
        )
        .unwrap();
    assert_eq!(
        sink.records().len(),
        10,
        "a job keeps the version it started with"
    );

    std::fs::remove_file(plugins.join("data.wasm")).unwrap();
    let removed = registry.sync();
    assert_eq!(
        removed.removed,
        [plugins.join("data.wasm").display().to_string()]
    );
    assert!(registry.find("globex", "trap").is_none());
    assert!(registry.find("acme", "trap").is_some());
}

/// Two registries over one store, as two hosts over one database, each with its own plugins
/// directory.
#[test]
fn uploads_live_in_the_store_and_every_registry_over_it_follows_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let registry = |name: &str| {
        let plugins = dir.path().join(name);
        std::fs::create_dir_all(plugins.join("tenants/acme")).unwrap();
        let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
        (
            Registry::new(runtime, &plugins, Default::default(), store.clone()),
            plugins,
        )
    };
    let ((one, one_dir), (other, _)) = (registry("one"), registry("other"));
    std::fs::write(one_dir.join("tenants/acme/mine.wasm"), synthetic()).unwrap();
    one.sync();
    assert!(one.find("acme", "synthetic").is_some());

    let acme = bulkhost_runtime::Scope::Tenant("acme".into());
    let installed = one.install(acme.clone(), "mine", &hostile()).unwrap();
    assert!(
        !one_dir.join("tenants/acme/mine.wasm").exists(),
        "an upload replaces the deployed file of its name"
    );
    assert!(one.find("acme", "synthetic").is_none() && one.find("acme", "loop").is_some());
    let stored = store.components().list().unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].sha256, installed.hash());

    let synced = other.sync();
    assert_eq!(synced.loaded, ["uploaded acme/mine"], "{synced:?}");
    assert!(other.find("acme", "loop").is_some());
    assert!(other.find("globex", "loop").is_none());
    assert_eq!(
        other.sync(),
        Default::default(),
        "an unchanged upload is not reloaded"
    );
    assert_eq!(
        one.sync(),
        Default::default(),
        "nor on the host that took it"
    );

    assert!(one.uninstall(acme, "mine").unwrap());
    assert!(store.components().list().unwrap().is_empty());
    assert_eq!(other.sync().removed, ["uploaded acme/mine"]);
    assert!(other.find("acme", "loop").is_none());
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plugin_logs_reach_the_host_log_tagged_truncated_and_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let plugin = runtime
        .load("hostile", &hostile(), Grants::default())
        .unwrap();
    let store = store(dir.path());
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        plugin
            .generate(
                store.documents().snapshot("acme").unwrap(),
                Box::new(Collect::default()),
                "chatty",
                &[],
            )
            .unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let long = log
        .lines()
        .find(|l| l.contains("long xxx"))
        .expect("the long message is logged");
    assert!(
        long.contains("WARN") && long.contains("plugin=\"hostile\""),
        "{long}"
    );
    assert_eq!(
        long.matches('x').count(),
        4096 - "long ".len(),
        "a message is cut at 4096 bytes"
    );
    assert!(log.contains("message 0"));
    assert!(log.contains("message 998"), "1000 messages per invocation");
    assert!(!log.contains("message 999\n"), "the rest are dropped");
    assert!(log.contains("further log messages of this invocation are dropped"));
}

fn call(method: &str, path: &str, template: &str, body: Option<Value>) -> EndpointRequest {
    let params: Vec<(String, String)> = template
        .split('/')
        .zip(path.split('/'))
        .filter(|(t, _)| t.starts_with('{'))
        .map(|(t, v)| (t.trim_matches(['{', '}']).to_string(), v.to_string()))
        .collect();
    EndpointRequest {
        method: method.into(),
        path: path.into(),
        template: template.into(),
        path_params: params,
        query: Vec::new(),
        body: body.map(|b| b.to_string()),
    }
}

#[test]
fn an_endpoint_plugin_validates_writes_through_the_core_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(limits(), Compilation::default(), None).unwrap();
    let catalog = runtime
        .load(
            "catalog",
            &component(env!("PLUGIN_CATALOG")),
            Grants::default(),
        )
        .unwrap();
    assert!(catalog.datasets().is_empty());
    let declared: Vec<(String, String, u32)> = catalog
        .endpoints()
        .iter()
        .map(|e| (e.method.clone(), e.path.clone(), e.load_score))
        .collect();
    assert!(declared.contains(&("PUT".into(), "/v1/products/{id}".into(), 2)));
    assert_eq!(declared.len(), 5);

    let store = store(dir.path());
    let run = |request: EndpointRequest| {
        let writer = TenantWriter {
            store: store.clone(),
            tenant: "acme".into(),
        };
        let response = catalog
            .handle(
                store.documents().snapshot("acme").unwrap(),
                Box::new(writer),
                &request,
                Duration::from_secs(2),
            )
            .unwrap();
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&response.body).unwrap()
        };
        (response.status, body)
    };

    let version = || {
        store
            .documents()
            .snapshot("acme")
            .unwrap()
            .global_version()
            .unwrap()
    };
    let before = version();
    let (status, body) = run(call(
        "POST",
        "/v1/products",
        "/v1/products",
        Some(json!({"id": "P1", "name": "Coffee", "barcode": "4006381333931", "price": 4.5})),
    ));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "P1");
    let stored = store
        .documents()
        .get(
            "acme",
            "products",
            &bulkhost_core::DocRef::Code("P1".into()),
        )
        .unwrap();
    assert_eq!(
        stored.body["name"], "Coffee",
        "the write went through the core"
    );
    assert_eq!(version(), before + 1, "and got a version in the change log");

    let (status, body) = run(call(
        "PUT",
        "/v1/products/P2",
        "/v1/products/{id}",
        Some(json!({"name": "Tea", "barcode": "4006381333932"})),
    ));
    assert_eq!(status, 422, "a wrong EAN-13 check digit is refused");
    assert_eq!(body["error"]["code"], "INVALID_PRODUCT");
    assert!(
        store
            .documents()
            .get(
                "acme",
                "products",
                &bulkhost_core::DocRef::Code("P2".into())
            )
            .is_err(),
        "a refused product is not written"
    );
    assert_eq!(version(), before + 1);

    let (status, body) = run(call("GET", "/v1/products", "/v1/products", None));
    assert_eq!(status, 200);
    assert_eq!(body["pagination"]["totalItems"], 1);
    assert_eq!(body["items"][0]["name"], "Coffee");
    let (status, _) = run(call("DELETE", "/v1/products/P1", "/v1/products/{id}", None));
    assert_eq!(status, 204);
    let (status, _) = run(call("GET", "/v1/products/P1", "/v1/products/{id}", None));
    assert_eq!(status, 404);

    let globex = store.documents().snapshot("globex").unwrap();
    assert_eq!(
        globex
            .scan_by_key("products", None, 10, usize::MAX)
            .unwrap()
            .documents
            .len(),
        0,
        "another tenant saw no write"
    );
}
