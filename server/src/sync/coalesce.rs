//! Coalescing identical concurrent syncs, within one process and across
//! replicas that share a cache (Redis).
//!
//! The first sync of a given (connector, request fingerprint, mode, baseline)
//! takes a lease in the cache and becomes the leader: it crawls the upstream
//! and appends every event it sends to a log in the cache, in batches. A sync
//! that finds the lease held follows: it replays the leader's log to its own
//! client and crawls nothing. The log is namespaced by the leader's crawl id,
//! which is the fencing token: a leader that lost its lease (paused, partitioned)
//! can only write to its own crawl's keys, never into another crawl's log.
//!
//! A follower gets exactly the leader's events, checkpoints included, so a
//! follower that is cut off resumes from them like any client. If the leader
//! ends early (its client left, the process died), followers end with
//! UNAVAILABLE and resume from the last checkpoint they received.
//!
//! A log is about as large as the stream, so it is capped: when it reaches
//! its cap and no follower has joined, the leader ends the log ("truncated"),
//! releases the lease and goes on without publishing; a sync that joins
//! after that crawls on its own. A follower that had joined keeps the log
//! going to the end. (One that joins in the instant the log is ended reads
//! it to the end marker and then resumes from its last checkpoint, as after
//! any early end.)

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use connectors_proto::v1::{SyncEvent, sync_event::Event};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::SyncError;
use super::encoded::EncodedEvent;
use super::state::StateStore;
use crate::cache::SharedCache;

/// How long a lease lives without renewal (renewed every third of it).
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a crawl's log stays readable at most (if its leader dies before
/// it can delete it).
const LOG_TTL: Duration = Duration::from_secs(600);
/// How long a finished crawl's log stays for its followers to read it to the
/// end; then the leader deletes it. (A log is about the size of the stream:
/// kept for `LOG_TTL`, a 200k-entity sync's log would hold ~120 MB of the
/// cache for ten minutes, pushing out state chunks an incremental sync needs.)
/// A follower still reading after that ends UNAVAILABLE and resumes.
const LOG_GRACE: Duration = Duration::from_secs(60);
/// Events per batch before a flush (batches are also flushed at checkpoints).
const BATCH: usize = 256;
/// Bytes a batch buffer is allocated with: a batch that would outgrow its
/// buffer is flushed instead (never reallocated and copied).
const BATCH_BYTES: usize = 128 * 1024;

/// The coalescing key of a sync.
pub(super) fn key(
    connector: &str,
    fingerprint: &str,
    mode: i32,
    baseline: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connector.as_bytes());
    hasher.update(b"\0");
    hasher.update(fingerprint.as_bytes());
    hasher.update(mode.to_le_bytes());
    for (scope, generation) in baseline {
        hasher.update(scope.as_bytes());
        hasher.update(b"=");
        hasher.update(generation.as_bytes());
        hasher.update(b"\0");
    }
    hex::encode(&hasher.finalize()[..16])
}

fn lease_key(key: &str) -> String {
    format!("lease:v1:{key}")
}

fn batch_key(crawl: &str, n: u32) -> String {
    format!("crawl:v1:{crawl}:{n}")
}

fn end_key(crawl: &str) -> String {
    format!("crawl:v1:{crawl}:end")
}

/// How many batches the leader has written so far: a follower waiting for
/// a batch below it knows the batch is gone (expired, evicted, or never
/// admitted by the cache), not late.
fn head_key(crawl: &str) -> String {
    format!("crawl:v1:{crawl}:head")
}

/// Present once a follower has joined the crawl.
fn followers_key(crawl: &str) -> String {
    format!("crawl:v1:{crawl}:followers")
}

/// What a new sync does.
pub(super) enum Role {
    /// Crawl and publish.
    Leader(Arc<Publisher>),
    /// Replay the crawl with this id.
    Follower(String),
    /// Crawl without publishing (the cache is unavailable).
    Alone,
}

/// Takes the lease for `key` or finds who holds it. A leader's log is capped
/// at about `log_max_bytes` unless a follower joins before it gets there.
pub(super) async fn join(cache: &SharedCache, key: &str, crawl: &str, log_max_bytes: usize) -> Role {
    let lease = lease_key(key);
    match cache
        .set_if_absent(&lease, Bytes::from(crawl.to_owned()), LEASE_TTL)
        .await
    {
        Some(true) => {
            let publisher = Arc::new(Publisher {
                cache: cache.clone(),
                lease,
                crawl: crawl.to_owned(),
                log_max_bytes,
                state: Mutex::new(Batch::default()),
                done: CancellationToken::new(),
            });
            publisher.clone().spawn_renewal();
            Role::Leader(publisher)
        }
        Some(false) => match cache.get(&lease).await.and_then(|v| String::from_utf8(v.to_vec()).ok()) {
            Some(leader) if uuid::Uuid::parse_str(&leader).is_ok() => {
                // Before reading anything: the leader looks for this when its
                // log reaches the cap.
                cache
                    .set(&followers_key(&leader), Bytes::from_static(b"1"), Some(LOG_TTL))
                    .await;
                Role::Follower(leader)
            }
            // The lease ended between the two calls: crawl alone.
            _ => Role::Alone,
        },
        None => Role::Alone,
    }
}

/// Events encoded but not written yet, and what the log holds.
#[derive(Default)]
struct Batch {
    buf: BytesMut,
    events: usize,
    /// Batches written.
    written: u32,
    /// Bytes written.
    bytes: usize,
    /// The log reached its cap with followers: it goes on to the end.
    uncapped: bool,
    /// The log was ended before the crawl: at its cap without followers,
    /// or at a batch the cache did not store.
    truncated: bool,
}

/// The leader's side: batches its events into the shared log.
pub(super) struct Publisher {
    cache: SharedCache,
    lease: String,
    crawl: String,
    log_max_bytes: usize,
    state: Mutex<Batch>,
    done: CancellationToken,
}

impl Publisher {
    fn spawn_renewal(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = self.done.cancelled() => return,
                    _ = tokio::time::sleep(LEASE_TTL / 3) => {}
                }
                // A read that failed says nothing of the lease: the next
                // round tries again (the lease lives three rounds).
                let Ok(holder) = self.cache.read(&self.lease).await else {
                    continue;
                };
                if holder.as_deref() != Some(self.crawl.as_bytes()) {
                    tracing::warn!(crawl = %self.crawl, "coalescing lease lost; followers will move on");
                    return;
                }
                self.cache
                    .set(&self.lease, Bytes::from(self.crawl.clone()), Some(LEASE_TTL))
                    .await;
            }
        });
    }

    /// Appends an event; flushes at a `boundary` (checkpoints, scope ends,
    /// the summary), every `BATCH` events, and before the event when it would
    /// not fit in what is left of the batch's buffer.
    pub(super) async fn push(&self, event: &EncodedEvent, boundary: bool) {
        let mut state = self.state.lock().await;
        if state.truncated {
            return;
        }
        // Length-delimited, as `SyncEvent::encode_length_delimited` writes.
        let bytes = event.as_bytes();
        let needed = prost::encoding::encoded_len_varint(bytes.len() as u64) + bytes.len();
        if state.buf.capacity() - state.buf.len() < needed {
            self.flush(&mut state).await;
            state.buf.reserve(needed.max(BATCH_BYTES));
        }
        prost::encoding::encode_varint(bytes.len() as u64, &mut state.buf);
        state.buf.extend_from_slice(bytes);
        state.events += 1;
        if boundary || state.events >= BATCH {
            self.flush(&mut state).await;
        }
    }

    async fn flush(&self, state: &mut Batch) {
        if state.events == 0 || state.truncated {
            return;
        }
        // The next batch goes on in the rest of the buffer.
        let batch = state.buf.split().freeze();
        state.events = 0;
        if state.bytes + batch.len() > self.log_max_bytes && !state.uncapped {
            if self.cache.get(&followers_key(&self.crawl)).await.is_some() {
                state.uncapped = true;
            } else {
                self.truncate(state).await;
                return;
            }
        }
        state.bytes += batch.len();
        let stored = self
            .cache
            .set(&batch_key(&self.crawl, state.written), batch, Some(LOG_TTL))
            .await;
        if !stored {
            // A gap followers would wait at until the crawl ends: the log
            // ends here instead, and they resume from their last checkpoint.
            tracing::debug!(crawl = %self.crawl, batch = state.written, "coalescing log batch not stored; no longer published");
            self.end(state, "unpublished").await;
            return;
        }
        state.written += 1;
        self.cache
            .set(
                &head_key(&self.crawl),
                Bytes::from(state.written.to_string()),
                Some(LOG_TTL),
            )
            .await;
    }

    /// Ends the log at its cap: what is written stays readable, new syncs
    /// no longer join this crawl, and nothing more is published.
    async fn truncate(&self, state: &mut Batch) {
        tracing::debug!(crawl = %self.crawl, bytes = state.bytes, "coalescing log reached its cap without followers; no longer published");
        self.end(state, "truncated").await;
    }

    /// Ends the log before the crawl ends, with `why` as its outcome: what
    /// is written stays readable (it must never read as complete), new
    /// syncs no longer join this crawl, and nothing more is published.
    async fn end(&self, state: &mut Batch, why: &str) {
        state.truncated = true;
        state.buf = BytesMut::new();
        let end = format!("{}:{why}", state.written);
        self.cache
            .trying_always()
            .set(&end_key(&self.crawl), Bytes::from(end), Some(LOG_TTL))
            .await;
        self.release().await;
    }

    /// Stops renewing the lease and deletes it if it is still this crawl's.
    /// Tried even while the cache cools down: a lease left behind would have
    /// identical syncs follow a crawl that ended, until it expires.
    async fn release(&self) {
        self.done.cancel();
        let cache = self.cache.trying_always();
        if cache.get(&self.lease).await.as_deref() == Some(self.crawl.as_bytes()) {
            cache.delete(&self.lease).await;
        }
    }

    /// Ends the log with the outcome ("ok", "partial", "failed", ...) and releases the lease.
    /// Its log is deleted `LOG_GRACE` later.
    pub(super) async fn finish(&self, outcome: &str) {
        let written = {
            let mut state = self.state.lock().await;
            self.flush(&mut state).await;
            // A truncated log keeps its end marker: it must never read as complete.
            if !state.truncated {
                let end = format!("{}:{outcome}", state.written);
                self.cache
                    .trying_always()
                    .set(&end_key(&self.crawl), Bytes::from(end), Some(LOG_TTL))
                    .await;
            }
            state.written
        };
        self.release().await;
        let (cache, crawl) = (self.cache.clone(), self.crawl.clone());
        tokio::spawn(async move {
            tokio::time::sleep(LOG_GRACE).await;
            for n in 0..written {
                cache.delete(&batch_key(&crawl, n)).await;
            }
            cache.delete(&end_key(&crawl)).await;
            cache.delete(&head_key(&crawl)).await;
            cache.delete(&followers_key(&crawl)).await;
        });
    }
}

/// The next length-delimited event of a batch: its bytes and the event.
fn next_event(buf: &mut Bytes) -> Option<(EncodedEvent, SyncEvent)> {
    let len = usize::try_from(prost::encoding::decode_varint(buf).ok()?).ok()?;
    if len > buf.len() {
        return None;
    }
    let bytes = buf.split_to(len);
    let event = SyncEvent::decode(bytes.clone()).ok()?;
    Some((EncodedEvent::from_encoded(bytes), event))
}

/// Where a follower keeps its own checkpoints.
pub(super) struct FollowerState {
    pub(super) store: StateStore,
    pub(super) connector: &'static str,
    pub(super) state_key: Option<String>,
}

/// Replays the crawl `crawl` to `tx`. Returns the outcome for metrics.
pub(super) async fn follow(
    cache: SharedCache,
    crawl: String,
    key: String,
    tx: mpsc::Sender<Result<EncodedEvent, SyncError>>,
    keep: FollowerState,
    shutdown: CancellationToken,
) -> &'static str {
    let lease = lease_key(&key);
    let mut next = 0u32;
    let mut idle = Duration::from_millis(10);
    let mut last_checkpoint = None;
    loop {
        if tx.is_closed() {
            return "cancelled";
        }
        if shutdown.is_cancelled() {
            if let Some(checkpoint) = last_checkpoint {
                let _ = tx
                    .send(Ok(EncodedEvent::from(SyncEvent {
                        event: Some(Event::Checkpoint(checkpoint)),
                    })))
                    .await;
            }
            let _ = tx
                .send(Err(SyncError::Unavailable(
                    "server is shutting down; resume from the last checkpoint".into(),
                )))
                .await;
            return "drained";
        }
        if let Some(batch) = cache.get(&batch_key(&crawl, next)).await {
            next += 1;
            idle = Duration::from_millis(10);
            let mut buf = batch;
            while !buf.is_empty() {
                // The leader's bytes are passed on as they are; decoded only to
                // see checkpoints.
                let Some((encoded, event)) = next_event(&mut buf) else {
                    let _ = tx
                        .send(Err(SyncError::Internal("corrupt coalesced batch".into())))
                        .await;
                    return "failed";
                };
                let summary = matches!(event.event, Some(Event::Summary(_)));
                let token = match &event.event {
                    Some(Event::Checkpoint(c)) => {
                        last_checkpoint = Some(c.clone());
                        Some(c.token.clone())
                    }
                    Some(Event::Summary(s)) => Some(s.checkpoint.clone()),
                    _ => None,
                };
                if let (Some(token), Some(state_key)) = (token, &keep.state_key) {
                    keep.store.save_checkpoint(keep.connector, state_key, token).await;
                }
                if tx.send(Ok(encoded)).await.is_err() {
                    return "cancelled";
                }
                // Nothing follows a summary, whatever becomes of the log's
                // end marker.
                if summary {
                    return "coalesced";
                }
            }
            continue;
        }
        // How many batches were written: all of them once the log ended,
        // else as many as its head says.
        let end = cache.get(&end_key(&crawl)).await;
        let written = match &end {
            Some(end) => {
                let text = String::from_utf8_lossy(end).into_owned();
                let (batches, outcome) = text.split_once(':').unwrap_or(("0", "failed"));
                if batches.parse::<u32>().is_ok_and(|total| next >= total) {
                    if matches!(outcome, "ok" | "partial") {
                        return "coalesced";
                    }
                    if outcome == "truncated" {
                        let _ = tx
                            .send(Err(SyncError::Unavailable(
                                "the crawl this sync joined stopped publishing at its log's cap (CONNECTORS_COALESCE_LOG_MAX_BYTES); resume from the last checkpoint".into(),
                            )))
                            .await;
                        return "failed";
                    }
                    let _ = tx
                        .send(Err(SyncError::Unavailable(format!(
                            "the crawl this sync joined ended early ({outcome}); resume from the last checkpoint"
                        ))))
                        .await;
                    return "failed";
                }
                true
            }
            None => cache
                .get(&head_key(&crawl))
                .await
                .and_then(|head| std::str::from_utf8(&head).ok()?.parse::<u32>().ok())
                .is_some_and(|head| head > next),
        };
        if written {
            // Batch `next` was written: read it, unless it is gone (expired,
            // evicted from a full cache, or never admitted), in which case
            // the log can never be completed.
            if cache.get(&batch_key(&crawl, next)).await.is_some() {
                continue;
            }
            let _ = tx
                .send(Err(SyncError::Unavailable(
                    "the log of the crawl this sync joined is no longer complete in the cache; resume from the last checkpoint"
                        .into(),
                )))
                .await;
            return "failed";
        }
        if cache.get(&lease).await.as_deref() != Some(crawl.as_bytes()) {
            // No end marker and no lease: the leader is gone. Check the end
            // marker once more (it may have been written just now).
            if cache.get(&end_key(&crawl)).await.is_some() {
                continue;
            }
            let _ = tx
                .send(Err(SyncError::Unavailable(
                    "the crawl this sync joined stopped; resume from the last checkpoint".into(),
                )))
                .await;
            return "failed";
        }
        tokio::time::sleep(idle).await;
        idle = (idle * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors_proto::v1::{Checkpoint, Entity, Summary, Upsert};

    #[test]
    fn leases_are_kept_apart_and_crawl_logs_are_not() {
        use crate::cache::is_kept;
        assert!(is_kept(&lease_key("0f1e")));
        assert!(!is_kept(&batch_key("0f1e", 0)));
        assert!(!is_kept(&end_key("0f1e")));
        assert!(!is_kept(&followers_key("0f1e")));
    }

    fn upsert(i: usize, size: usize) -> SyncEvent {
        SyncEvent {
            event: Some(Event::Upsert(Upsert {
                entity: Some(Entity {
                    urn: format!("urn:connectors:test:asset:{i}"),
                    display_name: "x".repeat(size),
                    ..Default::default()
                }),
                provenance: None,
            })),
        }
    }

    /// The leader's side of a first sync (it must lead).
    async fn lead(cache: &SharedCache, key: &str, crawl: &str, log_max_bytes: usize) -> Arc<Publisher> {
        let Role::Leader(publisher) = join(cache, key, crawl, log_max_bytes).await else {
            panic!("the first sync leads");
        };
        publisher
    }

    /// A cache holding the finished log of crawl `crawl` (coalescing key
    /// `key`): three batches of one upsert each (each pushed as a boundary),
    /// then the end marker.
    async fn finished_log_of_three_batches(key: &str, crawl: &str) -> SharedCache {
        let cache = SharedCache::memory(64 << 20);
        let publisher = lead(&cache, key, crawl, usize::MAX).await;
        for i in 0..3 {
            publisher.push(&EncodedEvent::from(&upsert(i, 10)), true).await;
        }
        publisher.finish("ok").await;
        cache
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_log_is_deleted_after_the_grace_period() {
        let crawl = "2f1d0c5e-0000-4000-8000-000000000003";
        let cache = finished_log_of_three_batches("k3", crawl).await;
        let keys = [
            batch_key(crawl, 0),
            batch_key(crawl, 1),
            batch_key(crawl, 2),
            end_key(crawl),
        ];
        let mut present = Vec::new();
        for key in &keys {
            present.push(cache.get(key).await.is_some());
        }
        assert_eq!(present, vec![true; 4], "readable right after the end");
        assert_eq!(cache.get(&lease_key("k3")).await, None, "the lease is released");

        tokio::time::sleep(LOG_GRACE - Duration::from_secs(1)).await;
        assert!(
            cache.get(&end_key(crawl)).await.is_some(),
            "still there within the grace period"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut present = Vec::new();
        for key in &keys {
            present.push(cache.get(key).await.is_some());
        }
        assert_eq!(present, vec![false; 4], "deleted after the grace period");
    }

    #[tokio::test]
    async fn a_follower_whose_log_lost_a_batch_ends_unavailable_instead_of_waiting_forever() {
        let crawl = "2f1d0c5e-0000-4000-8000-000000000002";
        let cache = finished_log_of_three_batches("k2", crawl).await;
        // The middle batch is evicted. (Before the fix the follower asked for
        // it again and again without ever waiting: this test hung.)
        cache.delete(&batch_key(crawl, 1)).await;

        let (outcome, events, error) = replay(cache, crawl, "k2").await;
        assert_eq!(outcome, "failed");
        assert_eq!(events, vec![upsert(0, 10)]);
        assert_eq!(
            error.as_deref(),
            Some(
                "the log of the crawl this sync joined is no longer complete in the cache; resume from the last checkpoint"
            )
        );
    }

    #[tokio::test]
    async fn nothing_follows_a_summary_even_when_the_logs_end_marker_is_gone() {
        let cache = SharedCache::memory(64 << 20);
        let crawl = "2f1d0c5e-0000-4000-8000-000000000008";
        let publisher = lead(&cache, "k8", crawl, usize::MAX).await;
        let summary = SyncEvent {
            event: Some(Event::Summary(Summary {
                complete: true,
                ..Default::default()
            })),
        };
        publisher.push(&EncodedEvent::from(&upsert(0, 10)), true).await;
        publisher.push(&EncodedEvent::from(&summary), true).await;
        publisher.finish("ok").await;
        // Evicted, or expired: the follower cannot tell the log ended.
        cache.delete(&end_key(crawl)).await;
        let (outcome, events, error) = replay(cache, crawl, "k8").await;
        assert_eq!((outcome, error), ("coalesced", None));
        assert_eq!(events, vec![upsert(0, 10), summary]);
    }

    #[tokio::test]
    async fn a_follower_whose_log_lost_a_batch_while_the_crawl_runs_ends_unavailable_at_once() {
        let cache = SharedCache::memory(64 << 20);
        let crawl = "2f1d0c5e-0000-4000-8000-000000000009";
        let publisher = lead(&cache, "k9", crawl, usize::MAX).await;
        for i in 0..3 {
            publisher.push(&EncodedEvent::from(&upsert(i, 10)), true).await;
        }
        // The first batch expired (a crawl older than the log's TTL), and
        // the crawl goes on: the follower does not wait for its end.
        cache.delete(&batch_key(crawl, 0)).await;
        let (outcome, events, error) = replay(cache, crawl, "k9").await;
        assert_eq!((outcome, events), ("failed", Vec::new()));
        assert_eq!(
            error.as_deref(),
            Some(
                "the log of the crawl this sync joined is no longer complete in the cache; resume from the last checkpoint"
            )
        );
        drop(publisher);
    }

    /// Follows crawl `crawl` (coalescing key `key`) to its end: the outcome,
    /// the events received, and the message of the UNAVAILABLE it ended with.
    async fn replay(cache: SharedCache, crawl: &str, key: &str) -> (&'static str, Vec<SyncEvent>, Option<String>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let keep = FollowerState {
            store: StateStore::new(cache.clone(), Duration::from_secs(60)),
            connector: "test",
            state_key: None,
        };
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            follow(cache, crawl.into(), key.into(), tx, keep, CancellationToken::new()),
        )
        .await
        .expect("the follower ends");
        let (mut events, mut error) = (Vec::new(), None);
        while let Ok(item) = rx.try_recv() {
            assert!(error.is_none(), "nothing after the error");
            match item {
                Ok(event) => events.push(event.event().unwrap()),
                Err(SyncError::Unavailable(message)) => error = Some(message),
                Err(other) => panic!("expected UNAVAILABLE, got {other:?}"),
            }
        }
        (outcome, events, error)
    }

    /// The bytes one `upsert(i, 10)` (i < 10) takes in the log.
    fn logged_len() -> usize {
        let len = EncodedEvent::from(&upsert(0, 10)).as_bytes().len();
        len + prost::encoding::encoded_len_varint(len as u64)
    }

    #[tokio::test]
    async fn a_log_without_followers_ends_at_its_cap_and_frees_the_lease() {
        let cache = SharedCache::memory(64 << 20);
        let crawl = "2f1d0c5e-0000-4000-8000-000000000004";
        // Room for two one-event batches, not three.
        let publisher = lead(&cache, "k4", crawl, logged_len() * 5 / 2).await;
        for i in 0..5 {
            publisher.push(&EncodedEvent::from(&upsert(i, 10)), true).await;
        }
        let mut present = Vec::new();
        for n in 0..3 {
            present.push(cache.get(&batch_key(crawl, n)).await.is_some());
        }
        assert_eq!(present, vec![true, true, false]);
        assert_eq!(cache.get(&end_key(crawl)).await.as_deref(), Some(&b"2:truncated"[..]));
        assert_eq!(cache.get(&lease_key("k4")).await, None, "the lease is released");
        // An identical sync from now on crawls for itself.
        let other = "2f1d0c5e-0000-4000-8000-000000000005";
        assert!(matches!(join(&cache, "k4", other, usize::MAX).await, Role::Leader(_)));

        // The crawl's end does not make the log look complete.
        publisher.finish("ok").await;
        assert_eq!(cache.get(&end_key(crawl)).await.as_deref(), Some(&b"2:truncated"[..]));
        // A follower that joined as the log ended gets what was written, then resumes.
        let (outcome, events, error) = replay(cache, crawl, "k4").await;
        assert_eq!(outcome, "failed");
        assert_eq!(events, vec![upsert(0, 10), upsert(1, 10)]);
        assert_eq!(
            error.as_deref(),
            Some(
                "the crawl this sync joined stopped publishing at its log's cap (CONNECTORS_COALESCE_LOG_MAX_BYTES); resume from the last checkpoint"
            )
        );
    }

    #[tokio::test]
    async fn a_log_with_a_follower_goes_on_past_its_cap() {
        let cache = SharedCache::memory(64 << 20);
        let crawl = "2f1d0c5e-0000-4000-8000-000000000006";
        let publisher = lead(&cache, "k6", crawl, logged_len() * 5 / 2).await;
        publisher.push(&EncodedEvent::from(&upsert(0, 10)), true).await;
        let Role::Follower(followed) = join(&cache, "k6", "2f1d0c5e-0000-4000-8000-000000000007", usize::MAX).await
        else {
            panic!("the second sync follows");
        };
        assert_eq!(followed, crawl);
        for i in 1..5 {
            publisher.push(&EncodedEvent::from(&upsert(i, 10)), true).await;
        }
        publisher.finish("ok").await;
        assert_eq!(cache.get(&end_key(crawl)).await.as_deref(), Some(&b"5:ok"[..]));
        let (outcome, events, error) = replay(cache, crawl, "k6").await;
        assert_eq!(outcome, "coalesced");
        assert_eq!(events, (0..5).map(|i| upsert(i, 10)).collect::<Vec<_>>());
        assert_eq!(error, None);
    }

    #[tokio::test]
    async fn a_follower_replays_exactly_the_events_of_a_log_that_spans_many_buffers() {
        let cache = SharedCache::memory(64 << 20);
        let publisher = lead(&cache, "k", "2f1d0c5e-0000-4000-8000-000000000001", usize::MAX).await;
        // 300 events of 3..40 KiB: several batch buffers of BATCH_BYTES, one
        // event larger than a buffer, and checkpoint boundaries in between.
        let mut sent = Vec::new();
        for i in 0..300 {
            let event = if i % 50 == 49 {
                SyncEvent {
                    event: Some(Event::Checkpoint(Checkpoint {
                        token: vec![u8::try_from(i % 256).unwrap(); 8],
                        ..Default::default()
                    })),
                }
            } else if i == 120 {
                upsert(i, BATCH_BYTES + 1000)
            } else {
                upsert(i, 3000 + (i * 7919) % 37_000)
            };
            let boundary = matches!(event.event, Some(Event::Checkpoint(_)));
            publisher.push(&EncodedEvent::from(&event), boundary).await;
            sent.push(event);
        }
        let summary = SyncEvent {
            event: Some(Event::Summary(Summary {
                complete: true,
                ..Default::default()
            })),
        };
        publisher.push(&EncodedEvent::from(&summary), true).await;
        sent.push(summary);
        publisher.finish("ok").await;
        let written = publisher.state.lock().await.written;
        assert!(written > 20, "the log spans many batches ({written})");
        // No batch outgrew its buffer, except the one that holds the event
        // larger than a buffer, alone.
        let mut sizes = Vec::new();
        for n in 0..written {
            sizes.push(
                cache
                    .get(&batch_key("2f1d0c5e-0000-4000-8000-000000000001", n))
                    .await
                    .unwrap()
                    .len(),
            );
        }
        let big = EncodedEvent::from(&sent[120]).as_bytes().len();
        let oversized: Vec<usize> = sizes.iter().copied().filter(|&len| len > BATCH_BYTES).collect();
        assert_eq!(oversized, vec![big + prost::encoding::encoded_len_varint(big as u64)]);

        let (outcome, got, error) = replay(cache, "2f1d0c5e-0000-4000-8000-000000000001", "k").await;
        assert_eq!(outcome, "coalesced");
        assert_eq!(error, None);
        assert_eq!(got.len(), sent.len());
        assert_eq!(got, sent);
    }
}
