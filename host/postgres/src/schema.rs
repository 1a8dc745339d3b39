//! The database schema, as numbered migrations applied in order and recorded in
//! `bulkhost_migrations`. A migration never changes once released: a later one alters what an
//! earlier one made. `bulkhost migrate` applies what is pending, under an advisory lock, so
//! hosts started together with `--migrate` apply each migration once.

use bulkhost_core::Result;

use crate::ConnectError;
use crate::error::from_pg;

/// The migrations of this build: (version, what it does, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "the tables of bulkhost 0.1", V1),
    (2, "uploaded plugin components", V2),
    (3, "document keys in a table of their own", V3),
    (4, "export chunks stored uncompressed", V4),
    (5, "change hooks", V5),
    (6, "export chunks with their deflate pieces", V6),
];

/// Serializes migrations across hosts: an arbitrary key of this application.
const LOCK: i64 = 0x6275_6c6b_686f_7374;

const V1: &str = r#"
-- Per tenant: its global version, change feed switch and oldest listable version, the moment
-- of its last change, and its unfinished batch. Document writes lock the row.
CREATE TABLE tenants (
    tenant text PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0,
    changes_enabled boolean,
    changes_since bigint NOT NULL DEFAULT 0,
    last_change_at timestamp,
    unfinished_batch text
);
CREATE TABLE usage (
    tenant text NOT NULL,
    usage text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (tenant, usage)
);
CREATE TABLE collections (
    tenant text NOT NULL,
    collection text NOT NULL,
    last_id bigint NOT NULL,
    PRIMARY KEY (tenant, collection)
);
-- `key` is the key values as bulkhost encodes them for ordering (the cursor of key-order
-- scans); `body` the JSON text, its field order kept.
CREATE TABLE documents (
    tenant text NOT NULL,
    collection text NOT NULL,
    id bigint NOT NULL,
    key bytea NOT NULL,
    version bigint NOT NULL,
    body text NOT NULL,
    size integer NOT NULL,
    PRIMARY KEY (tenant, collection, id)
);
CREATE UNIQUE INDEX documents_by_key ON documents (tenant, collection, key);
-- The orders documents are listed in: by id (`field` is '') and by each ordering field, each
-- entry its encoded value and id; and counted chunks of each order, so that a page at any
-- position skips whole chunks.
CREATE TABLE document_order (
    tenant text NOT NULL,
    collection text NOT NULL,
    field text NOT NULL,
    position bytea NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (tenant, collection, field, position)
);
CREATE TABLE order_chunks (
    tenant text NOT NULL,
    collection text NOT NULL,
    field text NOT NULL,
    start bytea NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (tenant, collection, field, start)
);
CREATE TABLE external_ids (
    tenant text NOT NULL,
    collection text NOT NULL,
    ext text NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (tenant, collection, ext)
);
CREATE TABLE changes (
    tenant text NOT NULL,
    version bigint NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (tenant, version)
);
CREATE TABLE attachments (
    tenant text NOT NULL,
    collection text NOT NULL,
    id bigint NOT NULL,
    name text NOT NULL,
    content_type text NOT NULL,
    modified timestamp NOT NULL,
    content bytea NOT NULL,
    PRIMARY KEY (tenant, collection, id, name)
);
-- An export request is its JSON record; beside it what the queries select on.
CREATE TABLE exports (
    tenant text NOT NULL,
    id text NOT NULL,
    request text NOT NULL,
    created_at timestamp NOT NULL,
    expires_at timestamp NOT NULL,
    lease_until timestamp,
    running boolean NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX exports_by_expiry ON exports (expires_at);
CREATE INDEX exports_running ON exports (lease_until) WHERE running;
CREATE TABLE export_queue (
    seq bigserial PRIMARY KEY,
    tenant text NOT NULL,
    id text NOT NULL,
    index integer NOT NULL
);
CREATE INDEX export_queue_by_tenant ON export_queue (tenant, seq);
CREATE TABLE export_turn (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    tenant text NOT NULL
);
INSERT INTO export_turn (tenant) VALUES ('');
CREATE TABLE export_chunks (
    id text NOT NULL,
    index integer NOT NULL,
    first bigint NOT NULL,
    chunk bytea NOT NULL,
    PRIMARY KEY (id, index, first)
);
CREATE TABLE batches (
    tenant text NOT NULL,
    uuid text NOT NULL,
    header text NOT NULL,
    status text NOT NULL,
    completed_at timestamp,
    lease_until timestamp,
    PRIMARY KEY (tenant, uuid)
);
-- One unfinished batch per tenant, whichever host accepts it.
CREATE UNIQUE INDEX batches_one_unfinished ON batches (tenant) WHERE status <> 'finished';
CREATE INDEX batches_processing ON batches (lease_until) WHERE status = 'processing';
CREATE INDEX batches_by_completion ON batches (completed_at) WHERE status = 'finished';
CREATE TABLE batch_operations (
    uuid text PRIMARY KEY,
    operations text NOT NULL
);
CREATE TABLE batch_queue (
    seq bigserial PRIMARY KEY,
    tenant text NOT NULL,
    uuid text NOT NULL
);
CREATE TABLE batch_results (
    uuid text NOT NULL,
    index integer NOT NULL,
    result text NOT NULL,
    PRIMARY KEY (uuid, index)
);
CREATE TABLE batch_keys (
    tenant text NOT NULL,
    key text NOT NULL,
    digest text NOT NULL,
    uuid text NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE write_marks (
    uuid text NOT NULL,
    index integer NOT NULL,
    n bigint NOT NULL,
    outcome bytea NOT NULL,
    PRIMARY KEY (uuid, index, n)
);
CREATE TABLE outbox (
    seq bigserial PRIMARY KEY,
    tenant text NOT NULL,
    not_before timestamp NOT NULL,
    delivery text NOT NULL
);
CREATE INDEX outbox_by_due ON outbox (not_before, seq);
CREATE TABLE tokens (
    id text PRIMARY KEY,
    user_name text NOT NULL,
    expires_at timestamptz NOT NULL,
    record text NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user_name, expires_at);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
-- What every host of the deployment must share, such as the webhook signing secret.
CREATE TABLE settings (
    name text PRIMARY KEY,
    value text NOT NULL
);
"#;

const V2: &str = r#"
-- Uploaded plugin components, so every host serves the same plugins. `owner` is the tenant, or
-- the empty string for the operator's uploads.
CREATE TABLE components (
    owner text NOT NULL,
    name text NOT NULL,
    sha256 text NOT NULL,
    len bigint NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (owner, name)
);
"#;

// A lookup by key had two unique indexes to choose from, both leading with (tenant,
// collection): the primary key, filtered by key, and the key index. Before a table has
// statistics the planner rates them alike and may take the first, a scan of the whole
// collection per key. Alone in a table of its own, the key index is the only way in.
const V3: &str = r#"
CREATE TABLE document_keys (
    tenant text NOT NULL,
    collection text NOT NULL,
    key bytea NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (tenant, collection, key)
);
INSERT INTO document_keys (tenant, collection, key, id)
    SELECT tenant, collection, key, id FROM documents;
DROP INDEX documents_by_key;
ALTER TABLE documents DROP COLUMN key;
"#;

// Export results are read whole, often several times, and live for days: decompressing each
// 256 KiB chunk on every download cost more than the disk it saved (downloads 115-142 MB/s
// compressed, 150-169 MB/s not, for 201 MB of records).
const V4: &str = r#"
ALTER TABLE export_chunks ALTER COLUMN chunk SET STORAGE EXTERNAL;
"#;

// ABRA Flexi's web hooks on the change feed: the hook as JSON, beside what finding the due
// ones filters on.
const V5: &str = r#"
CREATE TABLE hooks (
    id bigserial PRIMARY KEY,
    tenant text NOT NULL,
    next_attempt timestamp NOT NULL,
    paused boolean NOT NULL,
    hook text NOT NULL
);
CREATE INDEX hooks_of_tenant ON hooks (tenant, id);
CREATE INDEX hooks_due ON hooks (next_attempt) WHERE NOT paused;
"#;

// Each chunk's records compressed once, in the list and in the lines layout, for gzip
// downloads; already compressed, so stored as they are. Chunks stored before have none.
const V6: &str = r#"
ALTER TABLE export_chunks ADD COLUMN list_piece bytea, ADD COLUMN lines_piece bytea;
ALTER TABLE export_chunks ALTER COLUMN list_piece SET STORAGE EXTERNAL,
    ALTER COLUMN lines_piece SET STORAGE EXTERNAL;
"#;

/// The newest migration `client`'s database has applied; 0 when none.
async fn applied(client: &tokio_postgres::Client) -> Result<i32> {
    let exists = client
        .query_one("SELECT to_regclass('bulkhost_migrations') IS NOT NULL", &[])
        .await
        .map_err(from_pg)?;
    if !exists.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM bulkhost_migrations",
            &[],
        )
        .await
        .map_err(from_pg)?;
    Ok(row.get(0))
}

/// Applies the pending migrations under the advisory lock that makes hosts take turns.
async fn migrate(
    client: &mut tokio_postgres::Client,
) -> std::result::Result<Vec<i32>, ConnectError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(from_pg)?;
    let outcome = apply(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await
        .map_err(from_pg)?;
    outcome
}

async fn apply(client: &mut tokio_postgres::Client) -> std::result::Result<Vec<i32>, ConnectError> {
    let applied = applied(client).await?;
    if applied == 0 {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS bulkhost_migrations (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )",
            )
            .await
            .map_err(from_pg)?;
    }
    newest_known(applied)?;
    let mut done = Vec::new();
    for (version, what, sql) in MIGRATIONS.iter().filter(|(v, ..)| *v > applied) {
        let txn = client.transaction().await.map_err(from_pg)?;
        txn.batch_execute(sql).await.map_err(from_pg)?;
        txn.execute(
            "INSERT INTO bulkhost_migrations (version, description) VALUES ($1, $2)",
            &[version, what],
        )
        .await
        .map_err(from_pg)?;
        txn.commit().await.map_err(from_pg)?;
        done.push(*version);
    }
    Ok(done)
}

/// Connects to the database at `url` and applies its pending migrations, each in a
/// transaction of its own; answers the versions applied. Hosts migrating at once take turns;
/// a database migrated by a newer build is refused.
pub async fn migrate_database(url: &str) -> std::result::Result<Vec<i32>, ConnectError> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let applied = migrate(&mut client).await;
    drop(client);
    let _ = driver.await;
    applied
}

/// Refuses a database migrated past what this build knows.
fn newest_known(applied: i32) -> std::result::Result<(), ConnectError> {
    let newest = MIGRATIONS.last().map_or(0, |(v, ..)| *v);
    if applied > newest {
        return Err(ConnectError::Schema(format!(
            "the database has schema version {applied}, written by a newer bulkhost; this one knows up to {newest}"
        )));
    }
    Ok(())
}

/// Checks that the database has exactly this build's schema.
pub(crate) async fn check(
    client: &tokio_postgres::Client,
) -> std::result::Result<(), ConnectError> {
    let applied = applied(client).await?;
    newest_known(applied)?;
    let newest = MIGRATIONS.last().map_or(0, |(v, ..)| *v);
    if applied < newest {
        return Err(ConnectError::Schema(format!(
            "the database has schema version {applied}, this build needs {newest}: run `bulkhost migrate` (or start with `--migrate`)"
        )));
    }
    Ok(())
}
