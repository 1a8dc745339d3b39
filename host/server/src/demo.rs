//! Development mode: a `demo` tenant with documents, so the README's examples answer real data.

use bulkhost_core::{PageQuery, Store, TenantConfig, UserConfig};
use serde_json::{Value, json};

/// The demo tenant's name.
pub const TENANT: &str = "demo";
/// The demo user's name.
pub const USER: &str = "demo.admin";
/// The demo user's password; development mode only.
pub const PASSWORD: &str = "demo";

/// Adds the demo tenant unless the configuration declares one of that name already.
pub fn add_tenant(tenants: &mut Vec<TenantConfig>) {
    if tenants.iter().any(|t| t.name == TENANT) {
        return;
    }
    tenants.push(TenantConfig {
        name: TENANT.into(),
        changes_enabled: true,
        quotas: Default::default(),
        users: vec![UserConfig {
            name: USER.into(),
            password_hash: None,
            password: Some(PASSWORD.into()),
        }],
    });
}

/// Loads the demo documents into an empty demo tenant; a tenant with shops is left alone.
pub fn load(store: &Store) -> bulkhost_core::Result<()> {
    let probe = PageQuery {
        limit: 1,
        ..PageQuery::default()
    };
    if store.documents().page(TENANT, "shops", &probe)?.count > 0 {
        return Ok(());
    }
    for (collection, documents) in documents() {
        store.documents().upsert(TENANT, collection, &documents)?;
    }
    Ok(())
}

/// The demo data: deterministic, so examples and screenshots stay stable.
fn documents() -> Vec<(&'static str, Value)> {
    let cities = ["Kyiv", "Lviv", "Odesa"];
    let shops: Vec<Value> = cities
        .iter()
        .enumerate()
        .map(|(i, city)| {
            json!({"shop_id": format!("{}", 675 + i), "name": format!("{city} central"),
                   "address": format!("{} Main Street, {city}", 10 + i),
                   "open_date": format!("201{i}-03-01T09:00:00")})
        })
        .collect();
    let names = [
        "Rye bread",
        "Milk 2.5%",
        "Buckwheat",
        "Sunflower oil",
        "Apples",
        "Coffee beans",
    ];
    let products: Vec<Value> = (0..24)
        .map(|i| {
            json!({"product_id": format!("P{:04}", i + 1),
                   "name": format!("{} #{}", names[i % names.len()], i / names.len() + 1),
                   "barcode": format!("48200000{:05}", i * 37),
                   "unit": if i % 3 == 0 { "kg" } else { "pcs" },
                   "price": format!("{}.{:02}", 10 + i * 7 % 90, i * 13 % 100)})
        })
        .collect();
    let cashiers: Vec<Value> = ["Olena", "Taras", "Iryna", "Mykola"]
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"cashier_id": format!("C{}", i + 1), "name": name}))
        .collect();
    let documents: Vec<Value> = (0..36)
        .map(|i| {
            let products: Vec<Value> = (0..3 + i % 4)
                .map(|j| {
                    let p = (i * 5 + j * 7) % 24;
                    json!({"product_id": format!("P{:04}", p + 1),
                           "stock_qty": format!("{}.0000", 2 + (i + j) % 9),
                           "fact_qty": format!("{}.0000", 1 + (i * j) % 11)})
                })
                .collect();
            json!({"document_id": format!("INV-2025-{:04}", i + 1),
                   "date": format!("2025-{:02}-{:02}T{:02}:00:00", 1 + i % 12, 1 + i % 28, 8 + i % 10),
                   "shop_id": format!("{}", 675 + i % 3),
                   "stuff_id": if i % 5 == 0 { Value::Null } else { json!(format!("C{}", 1 + i % 4)) },
                   "products": products})
        })
        .collect();
    vec![
        ("shops", Value::Array(shops)),
        ("products", Value::Array(products)),
        ("cashiers", Value::Array(cashiers)),
        ("stock-taking-documents", Value::Array(documents)),
    ]
}
