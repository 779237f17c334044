//! Per-sync request figures. The sync engine scopes a [`RequestStats`] to the
//! task that runs a connector; the upstream client records into it from
//! whatever client library sits on top.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

tokio::task_local! {
    /// The request figures of the sync running on this task.
    pub static SYNC_STATS: std::sync::Arc<RequestStats>;
}

/// Spawns `future` as a task of the sync running on this task: its upstream
/// requests count in the sync's [`RequestStats`] and its spans are children of
/// the current span. Dropping the handle aborts the task, so a sync that ends
/// leaves none of its work behind.
pub fn spawn_in_sync<F>(future: F) -> tokio_util::task::AbortOnDropHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument as _;
    let span = tracing::Span::current();
    let task = match SYNC_STATS.try_with(std::sync::Arc::clone) {
        Ok(stats) => tokio::spawn(SYNC_STATS.scope(stats, future).instrument(span)),
        Err(_) => tokio::spawn(future.instrument(span)),
    };
    tokio_util::task::AbortOnDropHandle::new(task)
}

/// Request figures of one sync.
#[derive(Debug)]
pub struct RequestStats {
    /// Upstream HTTP requests sent (every attempt).
    pub requests: AtomicU64,
    /// 304 Not Modified answers served from the cache.
    pub not_modified: AtomicU64,
    /// Retries (server errors, transport failures, rate limits waited out).
    pub retries: AtomicU64,
    /// Lowest rate-limit remaining seen; -1 when none.
    pub rate_limit_remaining: AtomicI64,
}

impl Default for RequestStats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rate_limit_remaining: AtomicI64::new(-1),
        }
    }
}

impl RequestStats {
    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// 304s so far.
    pub fn not_modified(&self) -> u64 {
        self.not_modified.load(Ordering::Relaxed)
    }

    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Lowest remaining rate limit seen, -1 when unknown.
    pub fn rate_limit_remaining(&self) -> i64 {
        self.rate_limit_remaining.load(Ordering::Relaxed)
    }
}

fn with(f: impl FnOnce(&RequestStats)) {
    let _ = SYNC_STATS.try_with(|stats| f(stats));
}

pub(super) fn record_request() {
    with(|s| {
        s.requests.fetch_add(1, Ordering::Relaxed);
    });
}

pub(super) fn record_not_modified() {
    with(|s| {
        s.not_modified.fetch_add(1, Ordering::Relaxed);
    });
}

pub(super) fn record_retry() {
    with(|s| {
        s.retries.fetch_add(1, Ordering::Relaxed);
    });
}

pub(super) fn record_rate_limit_remaining(remaining: i64) {
    with(|s| {
        let _ = s
            .rate_limit_remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                (current < 0 || remaining < current).then_some(remaining)
            });
    });
}
