//! Change hooks in redb's table, under (tenant, id). A deployment holds few hooks, so finding
//! the due ones reads them all.

use std::ops::Bound;

use chrono::NaiveDateTime;

use super::{ALL, Reader, Redb, RedbTxn, Tbl, Writer, next_seq};
use crate::Result;
use crate::engine::{HooksTxn, HooksView};
use crate::hooks::Hook;
use crate::keys::{Key, prefix_end, trailing_u64};
use crate::records::{json, parse};

const HOOK_SEQ: &str = "hook_seq";

fn hook_key(tenant: &str, id: u64) -> Vec<u8> {
    Key::new().str(tenant).u64(id).into_vec()
}

/// The hooks in `range`, each with the id its key ends with.
fn hooks_in(r: &impl Reader, (from, to): (Bound<&[u8]>, Bound<&[u8]>)) -> Result<Vec<Hook>> {
    let mut out = Vec::new();
    r.scan(Tbl::Hooks, from, to, false, &mut |k, v| {
        let mut hook: Hook = parse(v)?;
        hook.id = trailing_u64(k);
        out.push(hook);
        Ok(true)
    })?;
    Ok(out)
}

impl<T: Reader, W> HooksView for Redb<T, W> {
    fn hooks(&self, tenant: Option<&str>) -> Result<Vec<Hook>> {
        let mut hooks = match tenant {
            None => hooks_in(&self.tables, ALL)?,
            Some(tenant) => {
                let prefix = Key::new().str(tenant).into_vec();
                let end = prefix_end(&prefix);
                hooks_in(
                    &self.tables,
                    (Bound::Included(&prefix), Bound::Excluded(&end)),
                )?
            }
        };
        hooks.sort_by_key(|h| h.id);
        Ok(hooks)
    }
}

impl HooksTxn for RedbTxn<'_, '_> {
    fn insert_hook(&mut self, hook: &Hook) -> Result<u64> {
        let id = next_seq(&mut self.tables, HOOK_SEQ)?;
        self.put_hook(&Hook { id, ..hook.clone() })?;
        Ok(id)
    }

    fn lock_hook(&mut self, tenant: &str, id: u64) -> Result<Option<Hook>> {
        self.tables
            .get(Tbl::Hooks, &hook_key(tenant, id))?
            .map(|v| {
                let mut hook: Hook = parse(&v)?;
                hook.id = id;
                Ok(hook)
            })
            .transpose()
    }

    fn put_hook(&mut self, hook: &Hook) -> Result<()> {
        self.tables
            .put(Tbl::Hooks, &hook_key(&hook.tenant, hook.id), &json(hook))
    }

    fn remove_hook(&mut self, tenant: &str, id: u64) -> Result<bool> {
        Ok(self
            .tables
            .remove(Tbl::Hooks, &hook_key(tenant, id))?
            .is_some())
    }

    fn due_hooks(&mut self, moment: NaiveDateTime) -> Result<Vec<Hook>> {
        let mut due: Vec<Hook> = hooks_in(&self.tables, ALL)?
            .into_iter()
            .filter(|h| h.paused.is_none() && h.next_attempt <= moment)
            .collect();
        due.sort_by_key(|h| h.next_attempt);
        Ok(due)
    }
}
