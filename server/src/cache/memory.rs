//! The embedded cache: moka, bounded by the total size of the stored values.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;

use super::{Cache, CacheError};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Option<Duration>,
}

struct EntryExpiry;

impl Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

/// In-memory cache, bounded to a number of bytes (keys plus values); least
/// recently used entries are evicted first. Keys are hashed with foldhash
/// (randomly seeded): SipHash, moka's default, was a fifth of the cache's
/// CPU in a GitHub-shaped sync, where every request looks a key up (README,
/// "Performance"). Most keys are SHA-256 digests of requests already.
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry, foldhash::quality::RandomState>,
}

impl MemoryCache {
    /// A cache holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.value.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(EntryExpiry)
            .build_with_hasher(foldhash::quality::RandomState::default());
        Self { entries }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.entries.get(key).await.map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.entries.insert(key.to_owned(), Entry { value, ttl }).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let entry = self
            .entries
            .entry(key.to_owned())
            .or_insert_with(async move { Entry { value, ttl: Some(ttl) } })
            .await;
        Ok(entry.is_fresh())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
