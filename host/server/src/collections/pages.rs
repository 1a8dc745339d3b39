//! Rendered collection pages, kept by the tenant version they were read at.
//!
//! Customers keeping in sync poll the same listings over and over, and between two writes of
//! a tenant every page of its collections reads the same. A page's JSON is therefore kept
//! beside the tenant's global version it was read at, and served again while that version
//! stands. Every write of a tenant (any collection, references included) moves the version,
//! and the version is read from storage for each request, so several hosts on one database
//! never serve each other's stale pages. The cache is bounded in bytes, least recently used
//! first out.

use std::sync::Mutex;

use axum::body::Bytes;
use hashlink::LruCache;

/// The most bytes of rendered pages a host keeps.
pub const BUDGET_BYTES: usize = 16 << 20;
/// Pages larger than this are not kept: one of them would push out many smaller ones.
const LARGEST_KEPT: usize = 1 << 20;

/// What a page's rendering depends on besides the tenant's data: the collection, the request
/// (path and query: page, size, ordering, search, format) and the base URL links start with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    tenant: String,
    collection: String,
    base: String,
    request: String,
}

impl PageKey {
    /// The key of `request` (a path and query) for `tenant`'s `collection`, linked from `base`.
    pub fn new(tenant: &str, collection: &str, base: &str, request: &str) -> PageKey {
        PageKey {
            tenant: tenant.to_string(),
            collection: collection.to_string(),
            base: base.to_string(),
            request: request.to_string(),
        }
    }

    fn weight(&self) -> usize {
        self.tenant.len() + self.collection.len() + self.base.len() + self.request.len()
    }
}

struct Kept {
    version: u64,
    body: Bytes,
}

struct Inner {
    pages: LruCache<PageKey, Kept>,
    bytes: usize,
}

/// Rendered pages by request, each with the tenant version it shows.
pub struct PageCache {
    budget: usize,
    inner: Mutex<Inner>,
}

impl PageCache {
    /// A cache holding at most `budget` bytes of pages.
    pub fn new(budget: usize) -> PageCache {
        PageCache {
            budget,
            inner: Mutex::new(Inner {
                pages: LruCache::new_unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The page kept for `key` if it was read at `version`, the tenant's current one.
    pub fn get(&self, key: &PageKey, version: u64) -> Option<Bytes> {
        let mut inner = self.lock();
        let kept = inner.pages.get(key)?;
        (kept.version == version).then(|| kept.body.clone())
    }

    /// Keeps `body`, the page `key` read at `version`, in place of any older one.
    pub fn put(&self, key: PageKey, version: u64, body: Bytes) {
        if body.len() > LARGEST_KEPT.min(self.budget) {
            return;
        }
        let mut inner = self.lock();
        let weight = key.weight() + body.len();
        if let Some(old) = inner.pages.remove(&key) {
            inner.bytes -= key.weight() + old.body.len();
        }
        inner.bytes += weight;
        inner.pages.insert(key, Kept { version, body });
        while inner.bytes > self.budget {
            let Some((key, old)) = inner.pages.remove_lru() else {
                break;
            };
            inner.bytes -= key.weight() + old.body.len();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The cache holds no invariant a panic elsewhere could break half-way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(request: &str) -> PageKey {
        PageKey::new("t", "docs", "http://h", request)
    }

    #[test]
    fn a_page_is_served_only_at_the_version_it_was_read_at() {
        let cache = PageCache::new(BUDGET_BYTES);
        cache.put(key("/p?page=1"), 7, Bytes::from_static(b"seven"));
        assert_eq!(
            cache.get(&key("/p?page=1"), 7).as_deref(),
            Some(&b"seven"[..])
        );
        assert_eq!(cache.get(&key("/p?page=1"), 8), None);
        assert_eq!(cache.get(&key("/p?page=2"), 7), None);
        cache.put(key("/p?page=1"), 8, Bytes::from_static(b"eight"));
        assert_eq!(
            cache.get(&key("/p?page=1"), 8).as_deref(),
            Some(&b"eight"[..])
        );
    }

    #[test]
    fn the_least_recently_used_pages_leave_first_when_the_budget_is_spent() {
        let page = Bytes::from(vec![b'x'; 400]);
        let cache = PageCache::new(1000);
        cache.put(key("/a"), 1, page.clone());
        cache.put(key("/b"), 1, page.clone());
        assert!(cache.get(&key("/a"), 1).is_some());
        cache.put(key("/c"), 1, page.clone());
        assert!(cache.get(&key("/a"), 1).is_some());
        assert!(cache.get(&key("/b"), 1).is_none());
        assert!(cache.get(&key("/c"), 1).is_some());
        assert!(cache.lock().bytes <= 1000);
    }
}
