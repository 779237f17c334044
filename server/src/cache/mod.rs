//! The cache every replica uses: upstream conditional-request entries, per-scope
//! entity state for incremental diffs, server-kept checkpoints and leases.
//!
//! One trait, two implementations: [`MemoryCache`] (embedded, bounded; the
//! default) and [`RedisCache`] (`REDIS_URL`). Callers go through [`SharedCache`],
//! which turns backend failures into misses so that a cache outage degrades the
//! service to uncached instead of failing syncs.

mod memory;
mod redis_backend;
#[cfg(test)]
pub(crate) mod suite;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use memory::MemoryCache;
pub use redis_backend::{RedisCache, RedisTls};

/// Key prefixes of what the server cannot fetch again: per-scope sync state
/// (the chunks of one being written, and the list of a scope's newest),
/// kept checkpoints, coalescing leases and shared rate-limit resets.
/// Everything else (conditional-request bodies, coalescing logs) can be
/// fetched or crawled again.
const KEPT_PREFIXES: [&str; 6] = [
    "state:",
    "pending:",
    "generations:",
    "checkpoint:",
    "lease:",
    "ratelimit:",
];

/// Whether `key` holds something the server cannot fetch again
/// ([`KEPT_PREFIXES`]); the in-memory cache keeps such entries apart.
pub(crate) fn is_kept(key: &str) -> bool {
    KEPT_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

/// Errors of a cache backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The backend could not be reached or did not answer in time.
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("cache backend error: {0}")]
    Backend(String),
}

/// A byte-oriented key/value cache with per-entry time to live.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// Returns the value of `key`, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;
    /// Stores `value` under `key`, replacing any value, for `ttl` (or until evicted).
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
    /// Stores `value` under `key` only if the key is absent; true when stored.
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool, CacheError>;
    /// Makes `key` expire `ttl` from now, keeping its value (a zero `ttl`
    /// removes it); true when the key was there.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, CacheError>;
    /// The backend's name, for health details and metrics ("memory", "redis").
    fn backend(&self) -> &'static str;
}

/// The cache handle the rest of the server uses. Backend errors are logged,
/// counted and reported as misses (reads) or ignored (writes): a cache outage
/// never fails a sync, it only makes it uncached.
#[derive(Clone)]
pub struct SharedCache {
    inner: Arc<dyn Cache>,
    degraded: Arc<AtomicBool>,
    /// While a failing backend cools down, operations skip it (a circuit
    /// breaker): an outage costs one timeout, not one per operation.
    retry_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// The last operation's answer was an error (logged once per run).
    refusing: Arc<AtomicBool>,
    /// Whether operations skip the backend while it cools down.
    skips: bool,
}

/// How long a failing backend is skipped before the next operation tries it.
const COOL_DOWN: Duration = Duration::from_secs(2);

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("backend", &self.inner.backend())
            .field("degraded", &self.is_degraded())
            .finish()
    }
}

impl SharedCache {
    /// Wraps a backend.
    pub fn new(inner: Arc<dyn Cache>) -> Self {
        Self {
            inner,
            degraded: Arc::new(AtomicBool::new(false)),
            retry_at: Arc::new(std::sync::Mutex::new(None)),
            refusing: Arc::new(AtomicBool::new(false)),
            skips: true,
        }
    }

    /// The same cache, its operations tried even while the backend cools
    /// down: for the few writes whose loss outlives the outage (a
    /// coalescing lease that would hold identical syncs to a crawl that
    /// ended, the marker that tells its followers so).
    pub fn trying_always(&self) -> Self {
        Self {
            skips: false,
            ..self.clone()
        }
    }

    /// An in-memory cache bounded to `max_bytes`.
    pub fn memory(max_bytes: u64) -> Self {
        Self::new(Arc::new(MemoryCache::new(max_bytes)))
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    /// True when the last backend operation failed (the service runs uncached).
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// True while the backend is cooling down after a failure (operations are skipped).
    fn skipping(&self) -> bool {
        if !self.skips {
            return false;
        }
        let skip = self
            .retry_at
            .lock()
            .map(|at| at.is_some_and(|at| std::time::Instant::now() < at))
            .unwrap_or(false);
        if skip {
            metrics::counter!("connectors_cache_skipped_total").increment(1);
        }
        skip
    }

    fn observe<T>(&self, op: &'static str, result: Result<T, CacheError>) -> Option<T> {
        // Only an unreachable backend is skipped for a while. One that
        // answers with an error (Redis out of memory under `noeviction`, a
        // value over its size limit, a replica that refuses writes) still
        // serves other operations, reads above all.
        if let Ok(mut at) = self.retry_at.lock() {
            *at = matches!(result, Err(CacheError::Unavailable(_))).then(|| std::time::Instant::now() + COOL_DOWN);
        }
        match result {
            Ok(value) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(backend = self.backend(), "cache backend recovered");
                    metrics::gauge!("connectors_cache_degraded").set(0.0);
                }
                self.refusing.store(false, Ordering::Relaxed);
                Some(value)
            }
            Err(CacheError::Backend(error)) => {
                if !self.refusing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(backend = self.backend(), op, %error, "cache backend refused an operation");
                }
                metrics::counter!("connectors_cache_errors_total", "op" => op).increment(1);
                None
            }
            Err(error) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(backend = self.backend(), op, %error, "cache backend failing; serving uncached");
                }
                metrics::gauge!("connectors_cache_degraded").set(1.0);
                metrics::counter!("connectors_cache_errors_total", "op" => op).increment(1);
                None
            }
        }
    }

    /// Tries the backend even while it cools down (the health watcher's probe),
    /// updating the degraded state either way.
    pub async fn probe(&self) {
        let result = self.inner.get("health:probe").await;
        self.observe("probe", result);
    }

    /// Reads `key`; a backend failure reads as a miss.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        if self.skipping() {
            return None;
        }
        let result = self.inner.get(key).await;
        self.observe("get", result).flatten()
    }

    /// Reads `key` for a caller that must tell a miss from a failure: the
    /// sync state, which, not read, is not the same as expired. Tried even
    /// while the backend cools down; a failure is logged and counted, and
    /// returned.
    pub async fn read(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let result = self.inner.get(key).await;
        let error = result.as_ref().err().cloned();
        let value = self.observe("get", result);
        match error {
            Some(error) => Err(error),
            None => Ok(value.flatten()),
        }
    }

    /// Writes `key`; a backend failure is logged and counted. Returns whether it was stored.
    pub async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> bool {
        if self.skipping() {
            return false;
        }
        let result = self.inner.set(key, value, ttl).await;
        self.observe("set", result).is_some()
    }

    /// Deletes `key`; a backend failure is logged and counted.
    pub async fn delete(&self, key: &str) {
        if self.skipping() {
            return;
        }
        let result = self.inner.delete(key).await;
        self.observe("delete", result);
    }

    /// Stores only if absent. `None` when the backend failed.
    pub async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Option<bool> {
        if self.skipping() {
            return None;
        }
        let result = self.inner.set_if_absent(key, value, ttl).await;
        self.observe("set_if_absent", result)
    }

    /// Makes `key` expire `ttl` from now (see [`Cache::expire`]); a backend
    /// failure is logged and counted. True when the key was there.
    pub async fn expire(&self, key: &str, ttl: Duration) -> bool {
        if self.skipping() {
            return false;
        }
        let result = self.inner.expire(key, ttl).await;
        self.observe("expire", result).unwrap_or(false)
    }
}
