//! The bundled `erp-datasets` plugin: the 19 data sets of Winfra XXL over collections of the
//! same names, with Winfra XXL's filters and rules, exercised over HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhost_tests::{Api, TestServer};
use serde_json::{Value, json};

async fn server(plugins: &Path) -> TestServer {
    std::fs::copy(env!("PLUGIN_ERP_DATASETS"), plugins.join("erp.wasm")).unwrap();
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/erp-datasets/schemas");
    TestServer::start_with(&format!(
        "schema_dirs = [\"{}\"]\n[plugins]\ndir = \"{}\"\n",
        schemas.display(),
        plugins.display()
    ))
    .await
}

/// Runs one data set and answers its records, or the 422 message.
async fn export(api: &Api, request: Value) -> Result<Vec<Value>, String> {
    let r = api.post("/api_v1/generar_xxl", &json!([request])).await;
    if r.status != 200 {
        return Err(r.json()["error"].as_str().unwrap_or_default().to_string());
    }
    let id = r.json()["peticion_id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let state = loop {
        let state = api.get(&format!("/api_v1/estado_xxl/{id}")).await.json();
        if state["estado"] != "PENDING" {
            break state;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(state["estado"], "OK", "{state}");
    let dataset = request["dataset"].as_str().unwrap();
    Ok(serde_json::from_str(
        &api.get(&format!("/api_v1/datos_xxl/{id}/{dataset}"))
            .await
            .text,
    )
    .unwrap())
}

fn codes(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["codigo"].as_str().unwrap())
        .collect()
}

async fn load(api: &Api, collection: &str, docs: Value) {
    let r = api.post(&format!("/api/v1/{collection}/"), &docs).await;
    assert_eq!(r.status, 201, "{collection}: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nineteen_data_sets_apply_winfra_xxls_rules() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path()).await;
    let api = server.as_user("ann");
    let offered = api.get("/api_v1/datasets").await.json();
    assert_eq!(offered.as_array().unwrap().len(), 19);

    load(
        &api,
        "interlocutores",
        json!([
            {"codigo": "C1", "nombre": "Cliente uno", "tipo": "cliente"},
            {"codigo": "P1", "nombre": "Proveedor uno", "tipo": "proveedor"},
            {"codigo": "P2", "nombre": "Proveedor dos", "tipo": "proveedor"},
        ]),
    )
    .await;
    let proveedores = export(
        &api,
        json!({"dataset": "interlocutores", "tipo": "proveedor"}),
    )
    .await
    .unwrap();
    assert_eq!(codes(&proveedores), ["P1", "P2"]);
    assert!(
        export(&api, json!({"dataset": "interlocutores", "tipo": "socio"}))
            .await
            .unwrap_err()
            .contains("tipo must be one of")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let since = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    load(
        &api,
        "interlocutores",
        json!([
            {"codigo": "P2", "nombre": "Proveedor dos", "tipo": "acreedor"},
            {"codigo": "C1", "nombre": "Cliente renombrado", "tipo": "cliente"},
        ]),
    )
    .await;
    let changed = export(
        &api,
        json!({"dataset": "interlocutores", "modificado_desde": since}),
    )
    .await
    .unwrap();
    assert_eq!(
        codes(&changed),
        ["P2", "C1"],
        "only what changed since then, in the order of the changes"
    );
    let acreedores = export(
        &api,
        json!({"dataset": "interlocutores", "tipo": "acreedor", "modificado_desde": since}),
    )
    .await
    .unwrap();
    assert_eq!(codes(&acreedores), ["P2"]);

    load(
        &api,
        "articulos",
        json!([{"codigo": "A2", "descripcion": "Tuerca"}, {"codigo": "A1", "descripcion": "Tornillo"}]),
    )
    .await;
    let photo = api
        .send_raw(
            "PUT",
            "/api/v1/articulos/code:A1/attachments/foto.png",
            "image/png",
            vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a],
        )
        .await;
    assert_eq!(photo.status, 201, "{}", photo.text);
    let plain = export(&api, json!({"dataset": "articulos"})).await.unwrap();
    assert_eq!(codes(&plain), ["A1", "A2"], "records leave in key order");
    assert!(plain[0].get("ficheros_adjuntos").is_none());
    let with = export(
        &api,
        json!({"dataset": "articulos", "incluir_ficheros_adjuntos": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        with[0]["ficheros_adjuntos"],
        json!([{"nombre": "foto.png", "tipo": "image/png", "contenido": "iVBORw0KGgo="}])
    );
    assert_eq!(with[1]["ficheros_adjuntos"], json!([]));

    load(
        &api,
        "compras",
        json!([
            {"codigo": "K1", "fecha": "2024-05-01T00:00:00", "proveedor": "P1"},
            {"codigo": "K2", "fecha": "2024-05-31T23:59:59", "proveedor": "P1"},
            {"codigo": "K3", "fecha": "2024-06-01T00:00:00", "proveedor": "P1"},
        ]),
    )
    .await;
    let may = export(&api, json!({"dataset": "compras", "fecha_desde": "2024-05-01", "fecha_hasta": "2024-05-31T00:00:00"})).await.unwrap();
    assert_eq!(
        codes(&may),
        ["K1", "K2"],
        "from 0:00 of the first day to 24:00 of the last"
    );
    assert!(
        export(
            &api,
            json!({"dataset": "compras", "fecha_desde": "2024-05-01"})
        )
        .await
        .unwrap_err()
        .contains("fecha_hasta is required")
    );
    assert!(
        export(&api, json!({"dataset": "diario"})).await.is_err(),
        "diario needs its dates"
    );

    load(&api, "ventas", json!([
        {"codigo": "V1", "fecha": "2024-03-01T10:00:00", "tipo_documento": "factura", "estado": "Facturado", "cliente": "C1"},
        {"codigo": "V2", "fecha": "2024-03-02T10:00:00", "tipo_documento": "pedido", "estado": "Bloqueado", "cliente": "C1"},
        {"codigo": "V3", "fecha": "2024-03-03T10:00:00", "tipo_documento": "albaran", "estado": "Borrador", "cliente": "C1"},
    ])).await;
    let range =
        json!({"dataset": "ventas", "fecha_desde": "2024-01-01", "fecha_hasta": "2024-12-31"});
    assert_eq!(codes(&export(&api, range.clone()).await.unwrap()), ["V1"]);
    let mut everything = range.clone();
    everything["incluir_pedidos"] = json!(true);
    everything["todos_estados"] = json!(true);
    assert_eq!(
        codes(&export(&api, everything).await.unwrap()),
        ["V1", "V2", "V3"]
    );
    let too_long = export(
        &api,
        json!({"dataset": "ventas", "fecha_desde": "2024-01-01", "fecha_hasta": "2025-01-02"}),
    )
    .await;
    assert!(too_long.unwrap_err().contains("at most 12 months"));

    load(&api, "deudas", json!([
        {"codigo": "D1", "interlocutor": "C1", "clase": "deuda", "fecha": "2024-01-10T00:00:00", "importe": 10},
        {"codigo": "E1", "interlocutor": "C1", "clase": "efecto", "fecha": "2024-02-10T00:00:00", "importe": 20},
        {"codigo": "D2", "interlocutor": "C1", "clase": "deuda", "fecha": "2024-03-10T00:00:00", "importe": 30, "liquidado": true},
    ])).await;
    assert_eq!(
        codes(&export(&api, json!({"dataset": "deudas"})).await.unwrap()),
        ["D1", "E1"]
    );
    assert_eq!(
        codes(
            &export(&api, json!({"dataset": "deudas", "incluir_efectos": true}))
                .await
                .unwrap()
        ),
        ["E1"]
    );
    assert_eq!(codes(&export(&api, json!({"dataset": "deudas", "incluir_liquidado": true, "fecha_desde": "2024-02-01", "fecha_hasta": "2024-12-31"})).await.unwrap()), ["D2", "E1"]);
    assert!(
        export(
            &api,
            json!({"dataset": "deudas", "fecha_desde": "2024-02-01"})
        )
        .await
        .unwrap_err()
        .contains("only with incluir_liquidado")
    );
    assert!(export(&api, json!({"dataset": "deudas", "incluir_liquidado": true, "fecha_desde": "2023-01-01", "fecha_hasta": "2024-06-01"})).await.unwrap_err().contains("12 months"));

    let day = |offset: i64| {
        (chrono::Utc::now() + chrono::Duration::days(offset))
            .format("%Y-%m-%dT00:00:00")
            .to_string()
    };
    load(&api, "descuentos", json!([
        {"codigo": "T1", "articulo": "A1", "porcentaje": 5, "fecha_desde": day(-3), "fecha_hasta": day(1)},
        {"codigo": "T2", "articulo": "A1", "porcentaje": 5, "fecha_desde": day(-10), "fecha_hasta": day(-1)},
        {"codigo": "T3", "articulo": "A1", "porcentaje": 5, "fecha_desde": day(6), "fecha_hasta": day(20)},
        {"codigo": "T4", "articulo": "A1", "porcentaje": 5, "fecha_desde": day(9), "fecha_hasta": day(20)},
    ])).await;
    assert_eq!(
        codes(
            &export(&api, json!({"dataset": "descuentos"}))
                .await
                .unwrap()
        ),
        ["T1", "T3"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_winfra_xxl_python_client_runs_unchanged_but_for_its_constants() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path()).await;
    let api = server.as_user("ann");
    let partners: Vec<Value> = (0..250)
        .map(|i| {
            json!({"codigo": format!("I{i:03}"), "nombre": format!("Interlocutor {i}"),
                        "tipo": if i % 2 == 0 { "proveedor" } else { "cliente" }})
        })
        .collect();
    load(&api, "interlocutores", Value::Array(partners)).await;
    let articles: Vec<Value> = (0..130)
        .map(|i| json!({"codigo": format!("A{i:03}"), "descripcion": format!("Artículo {i}")}))
        .collect();
    load(&api, "articulos", Value::Array(articles)).await;

    let base = format!("{}/", server.base);
    let script = include_str!("../../winfra_xxl_client.py")
        .replace("\"http://127.0.0.1:5000/\"", &format!("\"{base}\""))
        .replace("AUTH_USER = \"pruebas.admin\"", "AUTH_USER = \"ann\"")
        .replace("DOMAIN_USER = \"pruebas.admin\"", "DOMAIN_USER = \"ann\"")
        .replace("AUTH_PASS = \"\"", "AUTH_PASS = \"ann-pw\"")
        .replace("DOMAIN_PASS = \"\"", "DOMAIN_PASS = \"ann-pw\"")
        .replace("DOMAIN = \"pruebas\"", "DOMAIN = \"acme\"")
        .replace("time.sleep(10 * 60)", "time.sleep(0.2)");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("client.py"), &script).unwrap();
    let dir = work.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("client.py")
            .current_dir(&dir)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Finalizado"), "{stdout}");
    assert!(
        stdout.contains("interlocutores: 125 registros."),
        "{stdout}"
    );

    let id = api.get("/api_v1/estado_xxl").await.json()[0]["peticion_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (dataset, count) in [("interlocutores", 125), ("articulos", 130)] {
        let mut offsets: Vec<u64> = std::fs::read_dir(work.path())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_prefix(&format!("xxl.{dataset}."))?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..count).step_by(100).collect::<Vec<u64>>());
        let joined: Vec<Value> = offsets
            .iter()
            .flat_map(|o| {
                let page =
                    std::fs::read(work.path().join(format!("xxl.{dataset}.{o}.json"))).unwrap();
                serde_json::from_slice::<Vec<Value>>(&page).unwrap()
            })
            .collect();
        let whole: Vec<Value> = serde_json::from_str(
            &api.get(&format!("/api_v1/datos_xxl/{id}/{dataset}"))
                .await
                .text,
        )
        .unwrap();
        assert_eq!(joined.len() as u64, count);
        assert_eq!(
            joined, whole,
            "{dataset}: the saved pages, joined, are the data set"
        );
    }
    assert!(
        std::fs::read_to_string(work.path().join("xxl.interlocutores.0.json"))
            .unwrap()
            .contains("\"tipo\":\"proveedor\"")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_larger_than_a_page_is_read_whole_in_key_order() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path()).await;
    let api = server.as_user("ann");
    let inserted: Vec<Value> = (0..1203)
        .rev()
        .map(|i| json!({"codigo": format!("A{i:04}"), "descripcion": "x"}))
        .collect();
    load(&api, "articulos", Value::Array(inserted)).await;
    let records = export(&api, json!({"dataset": "articulos"})).await.unwrap();
    let expected: Vec<String> = (0..1203).map(|i| format!("A{i:04}")).collect();
    assert_eq!(
        codes(&records),
        expected,
        "three host pages, continued by their cursors, in key order"
    );
    server.stop().await;
}

/// Runs one data set and answers its final state with its records.
async fn export_with_state(api: &Api, request: Value) -> (Value, Vec<Value>) {
    let id = bulkhost_tests::queue_export(api, json!([request])).await;
    let state = bulkhost_tests::settled_export(api, &id).await;
    assert_eq!(state["estado"], "OK", "{state}");
    let dataset = request["dataset"].as_str().unwrap();
    let records = api
        .get(&format!("/api_v1/datos_xxl/{id}/{dataset}"))
        .await
        .json();
    (state, serde_json::from_value(records).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_records_its_version_and_a_later_one_takes_only_what_changed_after_it() {
    let plugins = tempfile::tempdir().unwrap();
    let server = server(plugins.path()).await;
    let api = server.as_user("ann");
    load(
        &api,
        "articulos",
        json!([{"codigo": "A1", "descripcion": "Tornillo"}, {"codigo": "A2", "descripcion": "Tuerca"},
               {"codigo": "A3", "descripcion": "Arandela"}]),
    )
    .await;
    let queued = api
        .post("/api_v1/generar_xxl", &json!([{"dataset": "articulos"}]))
        .await
        .json();
    assert!(
        queued["datasets"][0].get("version_global").is_none(),
        "a data set not yet generated has no version: {queued}"
    );

    let (full, records) = export_with_state(&api, json!({"dataset": "articulos"})).await;
    assert_eq!(codes(&records), ["A1", "A2", "A3"]);
    let version = full["datasets"][0]["version_global"].as_u64().unwrap();
    let global = api.get("/c/acme/changes.json?limit=0").await.json();
    assert_eq!(
        global["winstrom"]["@globalVersion"],
        version.to_string(),
        "the export reflects the version the change feed was at"
    );

    load(
        &api,
        "articulos",
        json!([{"codigo": "A2", "descripcion": "Tuerca M8"}, {"codigo": "A4", "descripcion": "Clavo"}]),
    )
    .await;
    assert_eq!(
        api.send("DELETE", "/api/v1/articulos/code:A1/", None)
            .await
            .status,
        204
    );
    let (delta, records) = export_with_state(
        &api,
        json!({"dataset": "articulos", "desde_version": version}),
    )
    .await;
    assert_eq!(codes(&records), ["A2", "A4"], "only what changed after it");
    assert_eq!(records[0]["descripcion"], "Tuerca M8");
    assert!(delta["datasets"][0]["version_global"].as_u64().unwrap() > version);
    let feed = api
        .get(&format!("/c/acme/changes.json?start={}", version + 1))
        .await
        .json();
    let operations: Vec<(&str, &str)> = feed["winstrom"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["@operation"].as_str().unwrap(),
                c["external-ids"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        operations,
        [
            ("update", "code:A2"),
            ("create", "code:A4"),
            ("delete", "code:A1")
        ],
        "the change feed continues the same export, deletions included"
    );

    for (bad, expected) in [("-1", "must not be negative"), ("soon", "desde_version")] {
        let refused = export(&api, json!({"dataset": "articulos", "desde_version": bad}))
            .await
            .unwrap_err();
        assert!(refused.contains(expected), "{bad}: {refused}");
    }
}
