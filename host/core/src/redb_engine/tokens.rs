//! API tokens in redb's tables: each under its public id, and a per-user index of
//! (user, id) → expiry that counts a user's live tokens without reading the token table.

use std::ops::Bound;

use chrono::{DateTime, Utc};

use super::{Reader, Redb, RedbTxn, Tbl, Writer, decode_u64};
use crate::Result;
use crate::credentials::TokenRecord;
use crate::engine::{TokensTxn, TokensView};
use crate::keys::{Key, prefix_end, split_str};
use crate::records::{json, parse};

fn owner_key(user: &str, id: &str) -> Vec<u8> {
    Key::new().str(user).str(id).into_vec()
}

/// Enters the token `id` in its user's index of live tokens.
pub(crate) fn index_token(w: &mut impl Writer, id: &str, record: &TokenRecord) -> Result<()> {
    let expires = record.expires_at.timestamp().max(0) as u64;
    w.put(
        Tbl::TokenOwners,
        &owner_key(&record.user, id),
        &expires.to_be_bytes(),
    )
}

impl<T: Reader, W> TokensView for Redb<T, W> {
    fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let raw = self
            .tables
            .get(Tbl::Tokens, Key::new().str(id).as_slice())?;
        // A record this build cannot read is no token.
        Ok(raw.and_then(|raw| parse(&raw).ok()))
    }

    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        stored_tokens(&self.tables)
    }
}

/// Every token this build can read, by its public id.
pub(crate) fn stored_tokens(r: &impl Reader) -> Result<Vec<(String, TokenRecord)>> {
    let mut tokens = Vec::new();
    r.scan(
        Tbl::Tokens,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            if let (Some((id, _)), Ok(record)) = (split_str(k), parse::<TokenRecord>(v)) {
                tokens.push((id, record));
            }
            Ok(true)
        },
    )?;
    Ok(tokens)
}

impl TokensTxn for RedbTxn<'_, '_> {
    fn live_tokens(&mut self, user: &str, moment: DateTime<Utc>, limit: u64) -> Result<u64> {
        let prefix = Key::new().str(user).into_vec();
        let end = prefix_end(&prefix);
        let mut live = 0;
        self.tables.scan(
            Tbl::TokenOwners,
            Bound::Included(&prefix),
            Bound::Excluded(&end),
            false,
            &mut |_, v| {
                if decode_u64(v) as i64 > moment.timestamp() {
                    live += 1;
                }
                Ok(live < limit)
            },
        )?;
        Ok(live)
    }

    fn put_token(&mut self, id: &str, token: &TokenRecord) -> Result<()> {
        self.tables
            .put(Tbl::Tokens, Key::new().str(id).as_slice(), &json(token))?;
        index_token(&mut self.tables, id, token)
    }

    fn prune_tokens(&mut self, moment: DateTime<Utc>) -> Result<u64> {
        let mut expired = Vec::new();
        self.tables.scan(
            Tbl::Tokens,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, v| {
                match parse::<TokenRecord>(v) {
                    Ok(r) if r.expires_at > moment => {}
                    Ok(r) => expired.push((k.to_vec(), Some(r.user))),
                    Err(_) => expired.push((k.to_vec(), None)),
                }
                Ok(true)
            },
        )?;
        for (key, user) in &expired {
            self.tables.remove(Tbl::Tokens, key)?;
            if let (Some(user), Some((id, _))) = (user, split_str(key)) {
                self.tables
                    .remove(Tbl::TokenOwners, &owner_key(user, &id))?;
            }
        }
        Ok(expired.len() as u64)
    }
}
