//! Change hooks in PostgreSQL's table. Due hooks are claimed with `SKIP LOCKED`, so hosts
//! polling at once take different ones.

use bulkhost_core::engine::{HooksTxn, HooksView};
use bulkhost_core::{Hook, Result};
use chrono::NaiveDateTime;
use tokio_postgres::Row;

use crate::json::{parse, text};
use crate::session::Session;

fn hook_of(row: &Row) -> Result<Hook> {
    let mut hook: Hook = parse(row.get(1))?;
    hook.id = row.get::<_, i64>(0) as u64;
    Ok(hook)
}

impl HooksView for Session {
    fn hooks(&self, tenant: Option<&str>) -> Result<Vec<Hook>> {
        let rows = match tenant {
            Some(tenant) => self.query(
                "SELECT id, hook FROM hooks WHERE tenant = $1 ORDER BY id",
                &[&tenant],
            )?,
            None => self.query("SELECT id, hook FROM hooks ORDER BY id", &[])?,
        };
        rows.iter().map(hook_of).collect()
    }
}

impl HooksTxn for Session {
    fn insert_hook(&mut self, hook: &Hook) -> Result<u64> {
        let row = self.query_one(
            "INSERT INTO hooks (tenant, next_attempt, paused, hook) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[
                &hook.tenant,
                &hook.next_attempt,
                &hook.paused.is_some(),
                &text(hook)?,
            ],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn lock_hook(&mut self, tenant: &str, id: u64) -> Result<Option<Hook>> {
        self.query_opt(
            "SELECT id, hook FROM hooks WHERE tenant = $1 AND id = $2 FOR UPDATE",
            &[&tenant, &(id as i64)],
        )?
        .map(|row| hook_of(&row))
        .transpose()
    }

    fn put_hook(&mut self, hook: &Hook) -> Result<()> {
        self.execute(
            "UPDATE hooks SET next_attempt = $3, paused = $4, hook = $5
             WHERE tenant = $1 AND id = $2",
            &[
                &hook.tenant,
                &(hook.id as i64),
                &hook.next_attempt,
                &hook.paused.is_some(),
                &text(hook)?,
            ],
        )
        .map(drop)
    }

    fn remove_hook(&mut self, tenant: &str, id: u64) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM hooks WHERE tenant = $1 AND id = $2",
            &[&tenant, &(id as i64)],
        )? > 0)
    }

    fn due_hooks(&mut self, moment: NaiveDateTime) -> Result<Vec<Hook>> {
        let rows = self.query(
            "SELECT id, hook FROM hooks WHERE NOT paused AND next_attempt <= $1
             ORDER BY next_attempt FOR UPDATE SKIP LOCKED",
            &[&moment],
        )?;
        rows.iter().map(hook_of).collect()
    }
}
