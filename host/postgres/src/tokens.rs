//! API tokens in PostgreSQL's table, indexed by user and by expiry.

use bulkhost_core::engine::{TokensTxn, TokensView};
use bulkhost_core::{Result, TokenRecord};
use chrono::{DateTime, Utc};

use crate::json;
use crate::session::Session;

impl TokensView for Session {
    fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let row = self.query_opt("SELECT record FROM tokens WHERE id = $1", &[&id])?;
        // A record this build cannot read is no token.
        Ok(row.and_then(|row| json::parse(row.get(0)).ok()))
    }

    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        let rows = self.query("SELECT id, record FROM tokens ORDER BY id", &[])?;
        Ok(rows
            .iter()
            .filter_map(|row| Some((row.get(0), json::parse(row.get(1)).ok()?)))
            .collect())
    }
}

impl TokensTxn for Session {
    fn live_tokens(&mut self, user: &str, moment: DateTime<Utc>, limit: u64) -> Result<u64> {
        let row = self.query_one(
            "SELECT count(*) FROM (
                SELECT 1 FROM tokens WHERE user_name = $1 AND expires_at > $2 LIMIT $3) live",
            &[&user, &moment, &(limit.min(i64::MAX as u64) as i64)],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn put_token(&mut self, id: &str, token: &TokenRecord) -> Result<()> {
        let record = json::text(token)?;
        self.execute(
            "INSERT INTO tokens (id, user_name, expires_at, record) VALUES ($1, $2, $3, $4)",
            &[&id, &token.user, &token.expires_at, &record],
        )
        .map(drop)
    }

    fn prune_tokens(&mut self, moment: DateTime<Utc>) -> Result<u64> {
        self.execute("DELETE FROM tokens WHERE expires_at <= $1", &[&moment])
    }
}
