//! The embedded cache: moka, bounded by the total size of the stored values.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;

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

type Entries = moka::future::Cache<String, Entry, foldhash::quality::RandomState>;

/// In-memory cache, bounded to a number of bytes (keys plus values), in two
/// halves so that one kind of entry never pushes out the other:
///
/// - what the server cannot fetch again (sync state, checkpoints, leases,
///   shared rate-limit resets: the keys `cache::is_kept` names), least
///   recently written evicted first. Every write
///   is admitted, so the state a sync just wrote always replaces older state;
/// - what it can (conditional-request bodies, coalescing logs, the rest),
///   under moka's TinyLFU: an entry looked up often outlives one looked up
///   once, and a body that would only push out more popular ones is not kept.
///
/// With one shared half, a cache full of upstream bodies kept out the state
/// a sync wrote at its end (TinyLFU admits a new entry only if it is looked up
/// more often than the one it would evict), and the next INCREMENTAL sync
/// failed with `CHECKPOINT_STATE_EXPIRED`.
///
/// Keys are hashed with foldhash (randomly seeded): SipHash, moka's default,
/// was a fifth of the cache's CPU in a GitHub-shaped sync, where every
/// request looks a key up (README, "Performance"). Most keys are SHA-256
/// digests of requests already.
pub struct MemoryCache {
    kept: Entries,
    bulk: Entries,
}

impl MemoryCache {
    /// A cache holding at most about `max_bytes` of keys and values, half of
    /// it for each of its two halves.
    pub fn new(max_bytes: u64) -> Self {
        let half = |policy| {
            moka::future::Cache::builder()
                .max_capacity(max_bytes / 2)
                .weigher(|key: &String, entry: &Entry| {
                    u32::try_from(key.len() + entry.value.len() + 64).unwrap_or(u32::MAX)
                })
                .expire_after(EntryExpiry)
                .eviction_policy(policy)
                .build_with_hasher(foldhash::quality::RandomState::default())
        };
        Self {
            kept: half(EvictionPolicy::lru()),
            bulk: half(EvictionPolicy::tiny_lfu()),
        }
    }

    /// The half `key` belongs to.
    fn half(&self, key: &str) -> &Entries {
        if super::is_kept(key) { &self.kept } else { &self.bulk }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.half(key).get(key).await.map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        self.half(key).insert(key.to_owned(), Entry { value, ttl }).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.half(key).invalidate(key).await;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let entry = self
            .half(key)
            .entry(key.to_owned())
            .or_insert_with(async move { Entry { value, ttl: Some(ttl) } })
            .await;
        Ok(entry.is_fresh())
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let half = self.half(key);
        if ttl.is_zero() {
            return Ok(half.remove(key).await.is_some());
        }
        // Atomic with other writes of the key: the value stays as it is.
        let result = half
            .entry(key.to_owned())
            .and_compute_with(|current| async move {
                match current {
                    Some(current) => Op::Put(Entry {
                        value: current.into_value().value,
                        ttl: Some(ttl),
                    }),
                    None => Op::Nop,
                }
            })
            .await;
        Ok(matches!(result, CompResult::ReplacedWith(_)))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
