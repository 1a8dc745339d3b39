//! The engine the end-to-end suite runs against: the embedded file by default, or, when
//! `BULKHOST_TEST_POSTGRES` names a PostgreSQL server (`make test` starts a private one), a
//! database of that server for each data directory a test uses, created and migrated on
//! first use. A server restarted on the same directory finds the same database, so crash and
//! restart tests mean the same against either engine.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The variable naming the PostgreSQL server, as a `postgres://` URL of any database on it.
pub const SERVER_VARIABLE: &str = "BULKHOST_TEST_POSTGRES";

/// The variable naming a second server, of the test that restarts its database: restarting
/// the shared one would break the other tests talking to it at that moment.
pub const RESTARTABLE_SERVER_VARIABLE: &str = "BULKHOST_TEST_POSTGRES_RESTARTABLE";

/// The URL of the server's database for the data directory `data`, created (and migrated) if
/// it does not exist yet; `None` when the suite runs on the embedded engine.
pub fn for_data_dir(data: &Path) -> Option<String> {
    let server = std::env::var(SERVER_VARIABLE).ok()?;
    Some(on_server(&server, data))
}

/// The URL of the database of `server` for the data directory `data`, created (and migrated)
/// if it does not exist yet.
pub fn on_server(server: &str, data: &Path) -> String {
    let digest = Sha256::digest(data.as_os_str().as_encoded_bytes());
    let name = format!("bulkhost_test_{}", &hex(&digest)[..24]);
    let url = with_database(server, &name);
    let (server, created) = (server.to_string(), url.clone());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the database setup")
            .block_on(create(&server, &name, &created))
    })
    .join()
    .expect("the database setup ran");
    url
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `url` naming `database` instead of the database it names.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn create(server: &str, name: &str, url: &str) {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server answers");
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("the server lists its databases")
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a test database is created");
    }
    drop(client);
    let _ = driver.await;
    bulkhost_postgres::migrate_database(url)
        .await
        .expect("the test database is migrated");
}
