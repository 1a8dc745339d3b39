//! Passwords and API tokens: how a request proves which tenant it acts for.
//!
//! Passwords are Argon2 hashes from the configuration. Tokens are random, handed out once, and
//! kept only as a SHA-256 digest under a public token id; a presented token is looked up by id
//! and its secret compared in constant time. Unknown users, wrong secrets and expired tokens all
//! answer `None`, so callers cannot tell them apart. A token is only as good as its user: once
//! the user leaves the configuration, the token stops working. Each user holds at most the
//! tenant's quota of live tokens, counted in an index of their own tokens (issuing one never
//! reads the whole token table), and expired tokens are dropped by [`Credentials::prune_tokens`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tenant::Secret;
use crate::{Result, Store};

/// How long a successful password check is remembered, so Basic-authenticated clients do not
/// pay an Argon2 hash per request.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Remembers recent successful password checks by a digest of (user, password).
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache(Mutex<HashMap<[u8; 32], (String, Instant)>>);

/// Hashes a password into the PHC string the configuration's `password_hash` takes.
pub fn hash_password(password: &str) -> String {
    let salt =
        argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_else(|e| unreachable!("argon2 with default parameters cannot fail: {e}"))
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A token as stored: never its secret, only the secret's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The tenant it acts for.
    pub tenant: String,
    /// The user it was issued to.
    pub user: String,
    /// The SHA-256 of its secret, hex.
    pub secret_sha256: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// A token as handed to its holder, once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The bearer string: `{id}.{secret}`.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Passwords and API tokens: which tenant a request acts for.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    store: &'a Store,
}

impl Store {
    /// Passwords and API tokens: which tenant a request acts for.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials { store: self }
    }
}

impl Credentials<'_> {
    /// The tenant `user` belongs to, if `password` is theirs and was checked recently: the
    /// answer without an Argon2 hash, `None` when one is needed.
    pub fn recall_password(&self, user: &str, password: &str) -> Option<String> {
        let fingerprint = digest(&[user.as_bytes(), password.as_bytes()]);
        let cache = self
            .store
            .verified
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .get(&fingerprint)
            .filter(|(_, at)| at.elapsed() < VERIFIED_TTL)
            .map(|(tenant, _)| tenant.clone())
    }

    /// The tenant `user` belongs to, if `password` is theirs: an Argon2 hash unless the pair
    /// was checked recently. An unknown user costs the same hash as a wrong password.
    pub fn verify_password(&self, user: &str, password: &str) -> Option<String> {
        if let Some(tenant) = self.recall_password(user, password) {
            return Some(tenant);
        }
        let fingerprint = digest(&[user.as_bytes(), password.as_bytes()]);
        let (tenant, ok) = match self.store.tenants.user(user) {
            Some((tenant, Secret::Plain(p))) => (
                Some(tenant),
                bool::from(p.as_bytes().ct_eq(password.as_bytes())),
            ),
            Some((tenant, Secret::Hash(h))) => (Some(tenant), check_hash(h, password)),
            None => {
                // Spend the same time on unknown users as on known ones.
                check_hash(&self.store.decoy_hash, password);
                (None, false)
            }
        };
        let tenant = tenant.filter(|_| ok)?.name.clone();
        let mut cache = self
            .store
            .verified
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (_, at)| at.elapsed() < VERIFIED_TTL);
        cache.insert(fingerprint, (tenant.clone(), Instant::now()));
        Some(tenant)
    }

    /// Issues a token for `user` of `tenant`, valid for `ttl`, unless the user already holds
    /// the tenant's quota of live tokens ([`crate::Error::QuotaExceeded`]).
    pub fn issue_token(&self, tenant: &str, user: &str, ttl: Duration) -> Result<IssuedToken> {
        let id = hex::encode(rand::random::<[u8; 12]>());
        let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let record = TokenRecord {
            tenant: tenant.to_string(),
            user: user.to_string(),
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            expires_at,
        };
        let quota = self.store.tenants.quotas(tenant).tokens_per_user;
        self.store.write(|txn| {
            if txn.live_tokens(user, now, quota)? >= quota {
                return Err(crate::Error::QuotaExceeded(format!(
                    "the user holds the tenant's quota of {quota} live tokens; use one of them, or wait until some expire"
                )));
            }
            txn.put_token(&id, &record)
        })?;
        Ok(IssuedToken {
            token: format!("{id}.{secret}"),
            expires_at,
        })
    }

    /// Drops tokens that expired before `moment`; answers how many.
    pub fn prune_tokens(&self, moment: DateTime<Utc>) -> Result<u64> {
        self.store.write(|txn| txn.prune_tokens(moment))
    }

    /// The tenant a presented token acts for, if it is genuine, unexpired, and its user still
    /// belongs to that tenant.
    pub fn verify_token(&self, token: &str) -> Result<Option<String>> {
        let Some((id, secret)) = token.split_once('.') else {
            return Ok(None);
        };
        let Some(record) = self.store.engine.read()?.token(id)? else {
            return Ok(None);
        };
        let presented = hex::encode(Sha256::digest(secret.as_bytes()));
        let genuine = bool::from(presented.as_bytes().ct_eq(record.secret_sha256.as_bytes()));
        let member = self
            .store
            .tenants
            .user(&record.user)
            .is_some_and(|(tenant, _)| tenant.name == record.tenant);
        let live = record.expires_at > Utc::now() && member;
        Ok((genuine && live).then_some(record.tenant))
    }
}

fn check_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{TenantConfig, UserConfig};

    fn store(dir: &std::path::Path) -> Store {
        let tenants = vec![TenantConfig {
            name: "acme".into(),
            changes_enabled: true,
            quotas: Default::default(),
            users: vec![UserConfig {
                name: "ann".into(),
                password_hash: Some(hash_password("s3cret")),
                password: None,
            }],
        }];
        Store::open(
            dir,
            Default::default(),
            crate::Tenants::new(tenants, false).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn passwords_and_tokens_resolve_to_the_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        assert_eq!(
            s.credentials().verify_password("ann", "s3cret").as_deref(),
            Some("acme")
        );
        assert_eq!(
            s.credentials().verify_password("ann", "s3cret").as_deref(),
            Some("acme")
        );
        assert_eq!(s.credentials().verify_password("ann", "wrong"), None);
        assert_eq!(s.credentials().verify_password("bob", "s3cret"), None);

        let t = s
            .credentials()
            .issue_token("acme", "ann", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            s.credentials().verify_token(&t.token).unwrap().as_deref(),
            Some("acme")
        );
        let (id, _) = t.token.split_once('.').unwrap();
        assert_eq!(
            s.credentials()
                .verify_token(&format!("{id}.forged"))
                .unwrap(),
            None
        );
        assert_eq!(s.credentials().verify_token("garbage").unwrap(), None);

        let expired = s
            .credentials()
            .issue_token("acme", "ann", Duration::ZERO)
            .unwrap();
        assert_eq!(s.credentials().verify_token(&expired.token).unwrap(), None);
    }

    #[test]
    fn expired_tokens_are_pruned_and_only_live_ones_count_against_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for _ in 0..5 {
            s.credentials()
                .issue_token("acme", "ann", Duration::ZERO)
                .unwrap();
        }
        assert_eq!(s.credentials().prune_tokens(Utc::now()).unwrap(), 5);
        assert_eq!(s.credentials().prune_tokens(Utc::now()).unwrap(), 0);
        let live = s
            .credentials()
            .issue_token("acme", "ann", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            s.credentials()
                .verify_token(&live.token)
                .unwrap()
                .as_deref(),
            Some("acme")
        );
    }
}
