//! The deployment's shared settings in PostgreSQL's table.

use bulkhost_core::Result;
use bulkhost_core::engine::SettingsTxn;

use crate::session::Session;

impl SettingsTxn for Session {
    fn setting(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])?
            .map(|row| row.get(0)))
    }

    fn put_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&name, &value],
        )
        .map(drop)
    }

    fn settings(&mut self) -> Result<Vec<(String, String)>> {
        let rows = self.query("SELECT name, value FROM settings ORDER BY name", &[])?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }
}
