//! Runs one sync: validation, scope iteration, diffing, events and summary.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use connectors_proto::v1::{
    Checkpoint, EntityKind, KindCount, Progress, Provenance, ScopeState as ProtoScopeState, ScopeStatus, SourceMode,
    Summary, SyncEvent, SyncMode, sync_event::Event,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument as _;

use super::checkpoint::{DeferredFailure, ResumePoint, Tally, Token};
use super::context::ScopeContext;
use super::encoded::EncodedEvent;
use super::state::{SeenUrns, StateStore, SyncUrns};
use super::{Connector, Scope, ScopeError, SyncError};
use crate::cache::SharedCache;
use crate::http::{RequestStats, SYNC_STATS};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events buffered per stream before the connector waits (backpressure).
    pub channel_capacity: usize,
    /// How long per-scope state and kept checkpoints live in the cache.
    pub state_ttl: Duration,
    /// How long a scope's state lives once a sync from the checkpoint that
    /// holds it has saved a newer one (zero: removed at once). A client that
    /// lost the newer checkpoint can sync from the older one for this long.
    pub superseded_state_ttl: Duration,
    /// How long a sync that stopped before its scopes completed can be
    /// resumed (its scopes' partial state is kept that long).
    pub resume_ttl: Duration,
    /// How many of the newest saved states of each scope live `state_ttl`;
    /// older ones expire after `superseded_state_ttl`.
    pub kept_generations: usize,
    /// A progress event at least every this many entities.
    pub progress_every: u64,
    /// Let identical concurrent syncs share one crawl (see `coalesce`).
    pub coalesce: bool,
    /// Bytes of a crawl's coalescing log before it stops publishing, unless
    /// a follower has joined by then.
    pub coalesce_log_max_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 256,
            state_ttl: Duration::from_secs(30 * 24 * 3600),
            superseded_state_ttl: Duration::from_secs(3600),
            resume_ttl: super::state::DEFAULT_RESUME_TTL,
            kept_generations: super::state::DEFAULT_GENERATIONS,
            progress_every: 500,
            coalesce: true,
            coalesce_log_max_bytes: 32 << 20,
        }
    }
}

/// Validated, connector-independent sync options.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// FULL or INCREMENTAL (UNSPECIFIED is FULL).
    pub mode: SyncMode,
    /// Token from a previous checkpoint or summary; empty when none.
    pub checkpoint: Vec<u8>,
    /// Kinds wanted; empty = every kind of the connector.
    pub kinds: Vec<EntityKind>,
    /// Where the server keeps this sync's checkpoint.
    pub state_key: Option<String>,
    /// Only the scopes of this shard.
    pub shard: Option<Shard>,
    /// When the caller stops waiting (its `grpc-timeout`): the sync ends then
    /// (outcome `deadline_exceeded`), and the gRPC gate ends the stream with
    /// DEADLINE_EXCEEDED. A coalescing leader's deadline ends its followers'
    /// streams too (UNAVAILABLE: they resume).
    pub deadline: Option<tokio::time::Instant>,
}

/// One shard of a request's scopes (see `SyncOptions.shard_index` in sync.proto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, below `count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// The shard a scope key belongs to: big-endian u64 of the first 8 bytes of
    /// SHA-256(key) modulo the count. Any client can compute it.
    pub fn of(key: &str, count: u32) -> u32 {
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u32::try_from(u64::from_be_bytes(first) % u64::from(count.max(1))).unwrap_or(0)
    }

    /// Whether `key` is in this shard.
    pub fn contains(&self, key: &str) -> bool {
        Self::of(key, self.count) == self.index
    }
}

/// The events of one sync. Dropping it cancels the sync.
pub type SyncStream = ReceiverStream<Result<EncodedEvent, SyncError>>;

/// Runs syncs.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    cache: SharedCache,
    store: StateStore,
    /// Set when the server drains: new syncs are refused.
    draining: CancellationToken,
    /// Set when open syncs must end (drain timeout passed).
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// What every scope task of one sync reads: fixed when the sync starts.
#[derive(Debug)]
pub(super) struct RunInfo {
    pub(super) connector_id: &'static str,
    connector_version: &'static str,
    pub(super) sync_id: String,
    /// What this stream writes its scopes' states under: the sync id, or,
    /// resumed, a generation of its own (see [`ResumePoint::generation`]).
    pub(super) generation: String,
    /// Resumed inside a scope: the generation its chunks so far are under.
    resumed_from: Option<String>,
    source_mode: SourceMode,
    pub(super) kinds: Vec<EntityKind>,
    pub(super) fingerprint: String,
    pub(super) store: StateStore,
    /// The token came from `state_key` (not from the client): state that has
    /// expired since is replaced by a FULL sync of the scope instead of an error.
    lenient: bool,
    /// INCREMENTAL: scopes are diffed against the baseline's state.
    incremental: bool,
    /// How long the state a scope moved past lives on.
    superseded_ttl: Duration,
    /// Events a scope may buffer ahead of the one being sent.
    scope_buffer: usize,
    /// INCREMENTAL: the urns pushed or retained in any scope of this stream,
    /// so that an entity that moved to another scope is not deleted by the
    /// one it left.
    pushed: Option<SyncUrns>,
    /// INCREMENTAL with more than one scope in the baseline: the urns each
    /// scope's baseline holds, read when a scope first has deletions to send.
    held: Option<HeldUrns>,
}

/// The urns of every scope's baseline in a sync, read once, when first
/// needed: an entity a scope's baseline holds is that scope's to delete or
/// keep, so no other scope deletes it. (A scope that failed keeps an older
/// state, which may still hold an entity that has moved to another scope
/// since; that scope then sends it as unchanged, so a deletion sent by the
/// first would never be undone.)
#[derive(Debug)]
pub(super) struct HeldUrns {
    /// Scope key and the generation of its baseline.
    generations: Vec<(String, String)>,
    /// Per scope, the urns its baseline holds (a baseline no longer in the
    /// cache holds none).
    sets: tokio::sync::OnceCell<Vec<(String, SeenUrns)>>,
}

impl RunInfo {
    pub(super) fn provenance(
        &self,
        scope: &str,
        region: &str,
        operation: &str,
        upstream_version: String,
        content_hash: String,
    ) -> Provenance {
        Provenance {
            connector_id: self.connector_id.to_owned(),
            connector_version: self.connector_version.to_owned(),
            sync_id: self.sync_id.clone(),
            source: scope.to_owned(),
            region: region.to_owned(),
            operation: operation.to_owned(),
            fetch_time: Some(now()),
            upstream_version,
            content_hash,
            source_mode: self.source_mode as i32,
        }
    }

    /// Whether the request wants entities of the kind with this proto value.
    pub(super) fn wants_kind(&self, kind: i32) -> bool {
        self.kinds.iter().any(|k| *k as i32 == kind)
    }

    /// Records that a scope pushed (or retained) `urn` (INCREMENTAL syncs only).
    pub(super) fn note_pushed(&self, urn: &str) {
        if let Some(pushed) = &self.pushed {
            pushed.insert(urn);
        }
    }

    /// The fingerprint `note_pushed_fingerprints` records `urn` by
    /// (INCREMENTAL syncs only).
    pub(super) fn pushed_fingerprint(&self, urn: &str) -> Option<u64> {
        self.pushed.as_ref().map(|pushed| pushed.fingerprint(urn))
    }

    /// Records urns by their `pushed_fingerprint`s.
    pub(super) fn note_pushed_fingerprints(&self, fingerprints: &[u64]) {
        if let Some(pushed) = &self.pushed {
            pushed.insert_fingerprints(fingerprints);
        }
    }

    /// Whether a scope of this sync pushed (or retained) `urn` so far.
    pub(super) fn pushed_in_sync(&self, urn: &str) -> bool {
        self.pushed.as_ref().is_some_and(|pushed| pushed.contains(urn))
    }

    /// Per scope of the baseline, the urns it holds; `None` when the
    /// baseline has one scope at most (or the sync is FULL); an error when
    /// the cache could not be read.
    pub(super) async fn held_urns(&self) -> Result<Option<&[(String, SeenUrns)]>, crate::cache::CacheError> {
        let Some(held) = self.held.as_ref() else {
            return Ok(None);
        };
        let sets = held
            .sets
            .get_or_try_init(|| async {
                let mut sets = Vec::with_capacity(held.generations.len());
                for (scope, generation) in &held.generations {
                    let mut urns = SeenUrns::default();
                    let found = self
                        .store
                        .visit_urns(self.connector_id, &self.fingerprint, scope, generation, |urn| {
                            urns.insert(urns.fingerprint(urn));
                        })
                        .await?;
                    if found {
                        sets.push((scope.clone(), urns));
                    }
                }
                Ok::<_, crate::cache::CacheError>(sets)
            })
            .await?;
        Ok(Some(sets))
    }
}

/// The current time, as provenance's fetch time.
pub(super) fn now() -> pbjson_types::Timestamp {
    let now = Utc::now();
    pbjson_types::Timestamp {
        seconds: now.timestamp(),
        nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// What a scope task hands to the sync's sender, in the scope's order.
#[derive(Debug)]
pub(super) enum ScopeItem {
    /// An upsert to send, of this kind (encoded by the scope's task).
    Upsert(i32, EncodedEvent),
    /// A deletion to send (encoded by the scope's task).
    Deletion(EncodedEvent),
    /// Entities of this kind found unchanged since the baseline (not sent).
    Unchanged(i32, u64),
    /// A page boundary: the scope resumes at `cursor` with `chunks` state
    /// chunks saved, and with the failure it went past, if any.
    Checkpoint {
        cursor: String,
        chunks: u32,
        failure: Option<DeferredFailure>,
    },
}

/// Where a resumed sync takes up the scope it was in: the connector's page
/// cursor, the state chunks saved, and the failure the scope went past.
#[derive(Debug, Clone, Default)]
pub(super) struct ScopeResume {
    cursor: Option<String>,
    chunks: u32,
    failure: Option<DeferredFailure>,
}

/// How one scope task ended.
struct ScopeOutcome {
    result: Result<(), ScopeError>,
    /// The generation of the scope's state the next sync diffs against,
    /// when it ended OK: the new one, or, when that could not be saved, the
    /// one the client's baseline held (if its state was there).
    generation: Option<String>,
    entities: u64,
}

/// A scope being crawled: its items arrive on `items`; `task` ends with its outcome.
struct InFlight {
    scope: Scope,
    /// The generation the client's baseline holds for the scope.
    generation: Option<String>,
    items: mpsc::Receiver<ScopeItem>,
    task: AbortOnDropHandle<ScopeOutcome>,
}

/// Everything one running sync accumulates. It sends the events of the
/// scopes in scope order, while up to the connector's scope concurrency of
/// them are crawled at once.
struct Run {
    info: Arc<RunInfo>,
    mode: SyncMode,
    events: mpsc::Sender<Result<EncodedEvent, SyncError>>,
    /// Set when this sync leads a coalesced crawl: its events go to the shared log too.
    publisher: Option<Arc<super::coalesce::Publisher>>,
    /// The newest checkpoint sent, re-sent when the stream is ended by a drain.
    last_checkpoint: Arc<std::sync::Mutex<Option<Checkpoint>>>,
    state_key: Option<String>,
    /// The baseline the client holds (from its checkpoint).
    baseline: BTreeMap<String, String>,
    /// Scopes done in this sync (including before a resume) and their new generation.
    done: Vec<(String, Option<String>)>,
    counts: BTreeMap<i32, (u64, u64)>,
    /// `connectors_entities_total` of each kind sent, looked up once per kind
    /// (a lookup in the metrics registry per upsert cost more than the count).
    entity_counters: Vec<(i32, metrics::Counter)>,
    deletions: u64,
    entities_since_progress: u64,
    progress_every: u64,
    scopes_total: u32,
    scopes_ok: u32,
    scopes_failed: u32,
    /// Upstream requests and cache hits of the streams before the checkpoint
    /// this sync resumed from (this stream's are in `stats`).
    requests_before: (u64, u64),
    started: Instant,
    start_time: chrono::DateTime<Utc>,
    stats: Arc<RequestStats>,
}

fn fingerprint(connector: &str, scopes: &[Scope], kinds: &[EntityKind], extra: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connector.as_bytes());
    for scope in scopes {
        hasher.update(b"\0scope\0");
        hasher.update(scope.key.as_bytes());
    }
    let mut kinds: Vec<i32> = kinds.iter().map(|k| *k as i32).collect();
    kinds.sort_unstable();
    for kind in kinds {
        hasher.update(kind.to_le_bytes());
    }
    hasher.update(b"\0extra\0");
    hasher.update(extra.as_bytes());
    hex::encode(&hasher.finalize()[..12])
}

impl Engine {
    /// An engine keeping its state in `cache`. Cancelling `shutdown` ends every
    /// open sync with UNAVAILABLE (after re-sending its last checkpoint).
    pub fn new(config: EngineConfig, cache: SharedCache, shutdown: CancellationToken) -> Self {
        let store = StateStore::new(cache.clone(), config.state_ttl)
            .with_resume_ttl(config.resume_ttl)
            .with_generations(config.kept_generations);
        Self {
            config,
            cache,
            store,
            draining: CancellationToken::new(),
            shutdown,
            tracker: TaskTracker::new(),
        }
    }

    /// Refuses new syncs, lets open ones finish for up to `timeout`, then ends
    /// the rest with UNAVAILABLE. True when every sync finished in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.draining.cancel();
        self.tracker.close();
        let finished = tokio::time::timeout(timeout, self.tracker.wait()).await.is_ok();
        if !finished {
            tracing::warn!(open = self.tracker.len(), "drain timeout passed; ending open syncs");
            self.shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
        }
        finished
    }

    /// Syncs running now.
    pub fn active_syncs(&self) -> usize {
        self.tracker.len()
    }

    /// Validates a sync and starts it. Errors here are errors of the whole
    /// request (no stream is opened).
    pub async fn start<C: Connector>(
        &self,
        connector: Arc<C>,
        request: C::Request,
        options: SyncOptions,
    ) -> Result<SyncStream, SyncError> {
        let descriptor = connector.descriptor();
        if self.draining.is_cancelled() || self.shutdown.is_cancelled() {
            return Err(SyncError::Unavailable(
                "server is draining; retry on another replica".into(),
            ));
        }
        let availability = connector.availability();
        if let super::Availability::Unavailable { reason } = &availability {
            return Err(SyncError::FailedPrecondition {
                reason: "CONNECTOR_NOT_CONFIGURED",
                message: reason.clone(),
            });
        }
        for (i, kind) in options.kinds.iter().enumerate() {
            if !descriptor.kinds.contains(kind) {
                return Err(SyncError::invalid(
                    format!("options.kinds[{i}]"),
                    format!("connector {} does not emit {}", descriptor.id, kind.as_str_name()),
                ));
            }
        }
        let mut kinds: Vec<EntityKind> = if options.kinds.is_empty() {
            descriptor.kinds.to_vec()
        } else {
            options.kinds.clone()
        };
        kinds.sort_by_key(|k| *k as i32);
        kinds.dedup();
        let mut scopes = connector.scopes(&request)?;
        if let Some(shard) = options.shard {
            scopes.retain(|scope| shard.contains(&scope.key));
        }
        let fingerprint = fingerprint(descriptor.id, &scopes, &kinds, &connector.request_fingerprint(&request));

        // The token: from the request, else the one kept under state_key.
        let token = if !options.checkpoint.is_empty() {
            Some(
                Token::decode(&options.checkpoint, descriptor.id, &fingerprint)
                    .map_err(|error| SyncError::invalid("options.checkpoint", error.to_string()))?,
            )
        } else if let Some(key) = &options.state_key {
            // A checkpoint that could not be read is not one never kept:
            // syncing every scope in full would send no deletion of what
            // went since, and replace the kept checkpoint.
            let kept = self.store.load_checkpoint(descriptor.id, key).await.map_err(|error| {
                SyncError::Unavailable(format!(
                    "the checkpoint kept under options.state_key could not be read ({error}); retry"
                ))
            })?;
            match kept {
                Some(bytes) => match Token::decode(&bytes, descriptor.id, &fingerprint) {
                    Ok(token) => Some(token),
                    // Kept for another request (the server's default scopes
                    // changed, or the key's request did): the client cannot
                    // fix it, so the sync runs as if nothing were kept, and
                    // its checkpoints replace the kept one.
                    Err(error) => {
                        tracing::warn!(connector = descriptor.id, state_key = %key, %error, "checkpoint kept under the state key ignored; syncing every scope in full");
                        None
                    }
                },
                None => None,
            }
        } else {
            None
        };
        let lenient = options.checkpoint.is_empty() && token.is_some();
        // A sync from what is kept under `state_key` starts its stream with
        // the checkpoint it starts from: the kept one moves on as the sync
        // does (each checkpoint is saved when it is sent), so a client that
        // breaks off before its first checkpoint arrived and calls again
        // without one would otherwise go on from a checkpoint it never saw,
        // and miss what came before it.
        let initial = (options.checkpoint.is_empty() && options.state_key.is_some()).then(|| Checkpoint {
            token: match &token {
                Some(token) => token.encode(),
                None => Token {
                    connector: descriptor.id.to_owned(),
                    fingerprint: fingerprint.clone(),
                    baseline: BTreeMap::new(),
                    resume: None,
                }
                .encode(),
            },
            scope: String::new(),
        });
        let requested_mode = match options.mode {
            SyncMode::Unspecified => SyncMode::Full,
            mode => mode,
        };
        let mut resumed_from = None;
        let (sync_id, mode, baseline, done, resume_current, tally) = match token {
            Some(Token {
                resume: Some(resume),
                baseline,
                ..
            }) => {
                let mode = SyncMode::try_from(resume.mode).unwrap_or(SyncMode::Full);
                resumed_from = Some(resume.generation.unwrap_or_else(|| resume.sync_id.clone()));
                let current = resume.current.map(|scope| {
                    let at = ScopeResume {
                        cursor: resume.cursor,
                        chunks: resume.chunks,
                        failure: resume.failure,
                    };
                    (scope, at)
                });
                (resume.sync_id, mode, baseline, resume.done, current, resume.tally)
            }
            Some(Token { baseline, .. }) => (
                uuid::Uuid::now_v7().to_string(),
                requested_mode,
                baseline,
                Vec::new(),
                None,
                Tally::default(),
            ),
            None => (
                uuid::Uuid::now_v7().to_string(),
                requested_mode,
                BTreeMap::new(),
                Vec::new(),
                None,
                Tally::default(),
            ),
        };
        let span = tracing::Span::current();
        span.record("sync.id", sync_id.as_str());
        span.record("sync.mode", mode.as_str_name());
        // FULL syncs diff against nothing, but the baseline the client holds
        // is still carried on (a scope that fails keeps it) and moved past.
        let incremental = mode == SyncMode::Incremental;

        let (tx, rx) = mpsc::channel(self.config.channel_capacity);
        if let Some(checkpoint) = &initial {
            // The channel is new and empty: there is room.
            let _ = tx.try_send(Ok(EncodedEvent::from(SyncEvent {
                event: Some(Event::Checkpoint(checkpoint.clone())),
            })));
        }

        // Identical fresh syncs share one crawl; resumed syncs run on their own.
        let role = if self.config.coalesce && resume_current.is_none() && done.is_empty() {
            // The baseline is part of the key even for FULL syncs: a crawl's
            // checkpoints carry it on, and supersede it.
            let key = super::coalesce::key(descriptor.id, &fingerprint, mode as i32, &baseline);
            match super::coalesce::join(&self.cache, &key, &sync_id, self.config.coalesce_log_max_bytes).await {
                super::coalesce::Role::Follower(crawl) => {
                    tracing::info!(connector = descriptor.id, crawl = %crawl, "joining an identical sync in flight");
                    // The crawl's states are this client's too: the leader's
                    // client moving past them must not expire them.
                    self.store.mark_shared(&crawl).await;
                    let connector_id = descriptor.id;
                    let keep = super::coalesce::FollowerState {
                        store: self.store.clone(),
                        connector: connector_id,
                        state_key: options.state_key.clone(),
                    };
                    let cache = self.cache.clone();
                    let shutdown = self.shutdown.clone();
                    metrics::gauge!("connectors_active_streams", "connector" => connector_id).increment(1.0);
                    span.record("sync.coalesced", true);
                    let deadline = options.deadline;
                    self.tracker.spawn(async move {
                        let follow = super::coalesce::follow(cache, crawl, key, tx, keep, shutdown);
                        let outcome = tokio::select! {
                            outcome = follow => match outcome {
                                "cancelled" => left(deadline),
                                outcome => outcome,
                            },
                            () = until(deadline) => "deadline_exceeded",
                        };
                        record_outcome(&tracing::Span::current(), outcome, None);
                        tracing::info!(connector = connector_id, outcome, "coalesced sync ended");
                        metrics::counter!("connectors_syncs_total", "connector" => connector_id, "outcome" => outcome)
                            .increment(1);
                        metrics::gauge!("connectors_active_streams", "connector" => connector_id).decrement(1.0);
                    }.instrument(span));
                    return Ok(ReceiverStream::new(rx));
                }
                super::coalesce::Role::Leader(publisher) => Some(publisher),
                super::coalesce::Role::Alone => None,
            }
        } else {
            None
        };
        let last_checkpoint = Arc::new(std::sync::Mutex::new(initial));
        let stats = Arc::new(RequestStats::default());
        let run = Run {
            info: Arc::new(RunInfo {
                connector_id: descriptor.id,
                connector_version: descriptor.version,
                generation: match &resumed_from {
                    Some(_) => uuid::Uuid::now_v7().to_string(),
                    None => sync_id.clone(),
                },
                resumed_from: resume_current.as_ref().and(resumed_from),
                sync_id,
                source_mode: availability.source_mode(),
                kinds,
                fingerprint,
                store: self.store.clone(),
                lenient,
                incremental,
                superseded_ttl: self.config.superseded_state_ttl,
                scope_buffer: self.config.channel_capacity,
                pushed: incremental.then(SyncUrns::default),
                held: (incremental && baseline.len() > 1).then(|| HeldUrns {
                    generations: baseline
                        .iter()
                        .map(|(scope, generation)| (scope.clone(), generation.clone()))
                        .collect(),
                    sets: tokio::sync::OnceCell::new(),
                }),
            }),
            mode,
            events: tx.clone(),
            publisher: role.clone(),
            last_checkpoint: last_checkpoint.clone(),
            state_key: options.state_key.clone(),
            baseline,
            done,
            counts: tally
                .counts
                .iter()
                .map(|&(kind, upserts, unchanged)| (kind, (upserts, unchanged)))
                .collect(),
            entity_counters: Vec::new(),
            deletions: tally.deletions,
            entities_since_progress: 0,
            progress_every: self.config.progress_every,
            scopes_total: u32::try_from(scopes.len()).unwrap_or(u32::MAX),
            scopes_ok: tally.scopes_ok,
            scopes_failed: tally.scopes_failed,
            requests_before: (tally.requests, tally.cache_hits),
            started: Instant::now(),
            start_time: Utc::now(),
            stats: stats.clone(),
        };
        let concurrency = connector.scope_concurrency().max(1);
        let shutdown = self.shutdown.clone();
        let deadline = options.deadline;
        let connector_id = descriptor.id;
        metrics::gauge!("connectors_active_streams", "connector" => connector_id).increment(1.0);
        let span_stats = stats.clone();
        self.tracker.spawn(SYNC_STATS.scope(stats, async move {
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = tx.closed() => left(deadline),
                // The gRPC gate ends the stream at the deadline when the
                // response is polled; a client that stopped reading does not
                // poll it, so the sync stops here as well.
                () = until(deadline) => "deadline_exceeded",
                _ = shutdown.cancelled() => {
                    // The client resumes from the last checkpoint; send it again
                    // so that it is the last thing before the status.
                    let last = last_checkpoint.lock().ok().and_then(|l| l.clone());
                    if let Some(checkpoint) = last {
                        let _ = tx.send(Ok(EncodedEvent::from(SyncEvent { event: Some(Event::Checkpoint(checkpoint)) }))).await;
                    }
                    let _ = tx.send(Err(SyncError::Unavailable("server is shutting down; resume from the last checkpoint".into()))).await;
                    "drained"
                }
                result = run.execute(connector, Arc::new(request), scopes, resume_current, concurrency) => match result {
                    Ok(true) => "ok",
                    Ok(false) => "partial",
                    Err(RunEnd::Cancelled) => left(deadline),
                    Err(RunEnd::Failed(error)) => {
                        tracing::warn!(connector = connector_id, %error, "sync failed");
                        let _ = tx.send(Err(error)).await;
                        "failed"
                    }
                },
            };
            if let Some(publisher) = role {
                publisher.finish(outcome).await;
            }
            record_outcome(&tracing::Span::current(), outcome, Some(&span_stats));
            tracing::info!(connector = connector_id, outcome, elapsed_ms = started.elapsed().as_millis() as u64, "sync ended");
            metrics::counter!("connectors_syncs_total", "connector" => connector_id, "outcome" => outcome).increment(1);
            metrics::histogram!("connectors_sync_duration_seconds", "connector" => connector_id)
                .record(started.elapsed().as_secs_f64());
            metrics::gauge!("connectors_active_streams", "connector" => connector_id).decrement(1.0);
        }).instrument(span));
        Ok(ReceiverStream::new(rx))
    }
}

/// Until `deadline`; forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The outcome of a sync whose client stopped reading: `deadline_exceeded`
/// when the caller's deadline has passed (the gate ended the stream), else
/// `cancelled` (the client went away).
pub(super) fn left(deadline: Option<tokio::time::Instant>) -> &'static str {
    if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
        "deadline_exceeded"
    } else {
        "cancelled"
    }
}

/// Records how a sync ended on its span (an OpenTelemetry error status when
/// it failed).
fn record_outcome(span: &tracing::Span, outcome: &str, stats: Option<&RequestStats>) {
    span.record("sync.outcome", outcome);
    if let Some(stats) = stats {
        span.record("sync.upstream_requests", stats.requests());
    }
    if outcome == "failed" {
        span.record("otel.status_code", "error");
    }
}

enum RunEnd {
    Cancelled,
    Failed(SyncError),
}

impl From<ScopeError> for RunEnd {
    fn from(error: ScopeError) -> Self {
        match error {
            ScopeError::Cancelled => RunEnd::Cancelled,
            ScopeError::Fatal(error) => RunEnd::Failed(error),
            other => RunEnd::Failed(SyncError::Internal(other.to_string())),
        }
    }
}

impl Run {
    async fn send(&mut self, event: SyncEvent) -> Result<(), ScopeError> {
        // A boundary of the coalescing log: its batch is flushed after it.
        let boundary = matches!(
            event.event,
            Some(Event::Checkpoint(_) | Event::ScopeStatus(_) | Event::Summary(_))
        );
        self.send_encoded(EncodedEvent::from(&event), boundary).await
    }

    /// Sends an event encoded already (the encoding the coalescing log gets too).
    async fn send_encoded(&mut self, event: EncodedEvent, boundary: bool) -> Result<(), ScopeError> {
        if let Some(publisher) = &self.publisher {
            publisher.push(&event, boundary).await;
        }
        self.events.send(Ok(event)).await.map_err(|_| ScopeError::Cancelled)
    }

    fn count_upsert(&mut self, kind: i32) {
        self.counts.entry(kind).or_default().0 += 1;
        self.entities_since_progress += 1;
        let at = match self.entity_counters.iter().position(|(k, _)| *k == kind) {
            Some(at) => at,
            None => {
                let segment = EntityKind::try_from(kind)
                    .map(super::hash::kind_segment)
                    .unwrap_or("unspecified");
                let counter = metrics::counter!("connectors_entities_total", "connector" => self.info.connector_id, "kind" => segment);
                self.entity_counters.push((kind, counter));
                self.entity_counters.len() - 1
            }
        };
        self.entity_counters[at].1.increment(1);
    }

    fn count_unchanged(&mut self, kind: i32, count: u64) {
        self.counts.entry(kind).or_default().1 += count;
        self.entities_since_progress += count;
    }

    fn progress(&self) -> Progress {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-6);
        let entities: u64 = self.counts.values().map(|(u, n)| u + n).sum();
        let (requests, cache_hits) = self.requests();
        Progress {
            entities,
            upstream_requests: requests,
            cache_hits,
            rate_limit_remaining: self.stats.rate_limit_remaining(),
            entities_per_second: entities as f64 / elapsed,
            // This stream's rate.
            requests_per_second: self.stats.requests() as f64 / elapsed,
            scopes_done: u32::try_from(self.done.len()).unwrap_or(u32::MAX),
            scopes_total: self.scopes_total,
        }
    }

    /// Upstream requests and cache hits of the whole sync so far.
    fn requests(&self) -> (u64, u64) {
        (
            self.requests_before.0 + self.stats.requests(),
            self.requests_before.1 + self.stats.not_modified(),
        )
    }

    /// The sync's totals so far, for a resume token.
    fn tally(&self) -> Tally {
        let (requests, cache_hits) = self.requests();
        Tally {
            counts: self
                .counts
                .iter()
                .map(|(&kind, &(upserts, unchanged))| (kind, upserts, unchanged))
                .collect(),
            deletions: self.deletions,
            scopes_ok: self.scopes_ok,
            scopes_failed: self.scopes_failed,
            requests,
            cache_hits,
        }
    }

    async fn maybe_progress(&mut self) -> Result<(), ScopeError> {
        if self.entities_since_progress >= self.progress_every {
            self.entities_since_progress = 0;
            let progress = self.progress();
            self.send(SyncEvent {
                event: Some(Event::Progress(progress)),
            })
            .await?;
        }
        Ok(())
    }

    /// A mid-stream token: done scopes, and the scope in progress with its cursor.
    fn resume_token(&self, current: Option<(&str, ScopeResume)>) -> Token {
        let (
            current,
            ScopeResume {
                cursor,
                chunks,
                failure,
            },
        ) = match current {
            Some((scope, at)) => (Some(scope.to_owned()), at),
            None => (None, ScopeResume::default()),
        };
        Token {
            connector: self.info.connector_id.to_owned(),
            fingerprint: self.info.fingerprint.clone(),
            baseline: self.baseline.clone(),
            resume: Some(ResumePoint {
                sync_id: self.info.sync_id.clone(),
                mode: self.mode as i32,
                done: self.done.clone(),
                current,
                cursor,
                chunks,
                generation: (self.info.generation != self.info.sync_id).then(|| self.info.generation.clone()),
                tally: self.tally(),
                failure,
            }),
        }
    }

    /// The token for the next sync: every scope at its newest generation.
    fn final_token(&self) -> Token {
        let mut baseline = self.baseline.clone();
        for (scope, generation) in &self.done {
            match generation {
                Some(generation) => {
                    baseline.insert(scope.clone(), generation.clone());
                }
                None => {
                    baseline.remove(scope);
                }
            }
        }
        Token {
            connector: self.info.connector_id.to_owned(),
            fingerprint: self.info.fingerprint.clone(),
            baseline,
            resume: None,
        }
    }

    async fn send_checkpoint(&mut self, token: Token, scope: &str) -> Result<(), ScopeError> {
        let checkpoint = Checkpoint {
            token: token.encode(),
            scope: scope.to_owned(),
        };
        // What a drain re-sends: this one as soon as every event it covers is
        // in the channel, that is now, before it is itself, and before it is
        // kept under the state key (a drain that comes while either waits,
        // right after a scope's status, must not send the client back before
        // that scope).
        if let Ok(mut last) = self.last_checkpoint.lock() {
            *last = Some(checkpoint.clone());
        }
        if let Some(key) = &self.state_key {
            self.info
                .store
                .save_checkpoint(self.info.connector_id, key, checkpoint.token.clone())
                .await;
        }
        self.send(SyncEvent {
            event: Some(Event::Checkpoint(checkpoint)),
        })
        .await?;
        Ok(())
    }

    /// Sends one item of `scope`, the scope whose events are being sent.
    async fn forward(&mut self, scope: &str, item: ScopeItem) -> Result<(), ScopeError> {
        match item {
            ScopeItem::Upsert(kind, event) => {
                self.count_upsert(kind);
                self.send_encoded(event, false).await?;
                self.maybe_progress().await
            }
            ScopeItem::Deletion(event) => {
                self.deletions += 1;
                self.send_encoded(event, false).await
            }
            ScopeItem::Unchanged(kind, count) => {
                self.count_unchanged(kind, count);
                self.maybe_progress().await
            }
            ScopeItem::Checkpoint {
                cursor,
                chunks,
                failure,
            } => {
                let at = ScopeResume {
                    cursor: Some(cursor),
                    chunks,
                    failure,
                };
                let token = self.resume_token(Some((scope, at)));
                self.send_checkpoint(token, scope).await
            }
        }
    }

    /// Starts crawling `scope` in a task of its own; `resume` is the cursor
    /// and saved chunks when the sync resumes inside this scope.
    fn start_scope<C: Connector>(
        &self,
        connector: &Arc<C>,
        request: &Arc<C::Request>,
        scope: Scope,
        resume: Option<ScopeResume>,
    ) -> InFlight {
        let generation = self.baseline.get(&scope.key).cloned();
        let (items, receiver) = mpsc::channel(self.info.scope_buffer.max(1));
        let crawl = crawl_scope(
            connector.clone(),
            request.clone(),
            self.info.clone(),
            scope.clone(),
            generation.clone(),
            resume,
            items,
        );
        InFlight {
            scope,
            generation,
            items: receiver,
            // Spawned from the sync task: the crawl keeps its stats and span.
            task: crate::http::spawn_in_sync(crawl),
        }
    }

    /// A resumed INCREMENTAL sync: records the urns of the scopes it saved
    /// before the checkpoint it resumed from (from their saved state), so
    /// that an entity that moved into one of them is not deleted by the
    /// scope it left either. (A scope done whose state was not saved is not
    /// known: an entity that moved there is deleted by the scope it left.)
    async fn note_pushed_before_the_resume(&self) -> Result<(), SyncError> {
        if self.info.pushed.is_none() {
            return Ok(());
        }
        let info = &self.info;
        for (scope, generation) in &self.done {
            // Scopes that saved a state in this sync (a failed one holds
            // its baseline's, or none).
            let Some(generation) = generation
                .as_deref()
                .filter(|g| self.baseline.get(scope).map(String::as_str) != Some(*g))
            else {
                continue;
            };
            let found = info
                .store
                .visit_urns(info.connector_id, &info.fingerprint, scope, generation, |urn| {
                    info.note_pushed(urn)
                })
                .await
                .map_err(|error| {
                    SyncError::Unavailable(format!(
                        "the state of scope {scope}, done before the checkpoint, could not be read ({error}); resume again"
                    ))
                })?;
            if !found {
                tracing::warn!(connector = info.connector_id, scope = %scope, "the state a scope done before the resume saved is gone; an entity that moved there may be deleted");
            }
        }
        Ok(())
    }

    /// Runs every scope, up to `concurrency` at once, and sends their events
    /// in scope order; Ok(true) when all ended OK. A scope behind the one
    /// being sent buffers at most `scope_buffer` items, then waits.
    async fn execute<C: Connector>(
        mut self,
        connector: Arc<C>,
        request: Arc<C::Request>,
        scopes: Vec<Scope>,
        resume_current: Option<(String, ScopeResume)>,
        concurrency: usize,
    ) -> Result<bool, RunEnd> {
        self.note_pushed_before_the_resume().await.map_err(RunEnd::Failed)?;
        let already_done: HashSet<String> = self.done.iter().map(|(scope, _)| scope.clone()).collect();
        let mut pending = scopes.into_iter().filter(|scope| !already_done.contains(&scope.key));
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        loop {
            while in_flight.len() < concurrency.max(1) {
                let Some(scope) = pending.next() else { break };
                let resume = match &resume_current {
                    Some((current, at)) if *current == scope.key => Some(at.clone()),
                    _ => None,
                };
                in_flight.push_back(self.start_scope(&connector, &request, scope, resume));
            }
            let Some(mut front) = in_flight.pop_front() else { break };
            while let Some(item) = front.items.recv().await {
                self.forward(&front.scope.key, item).await?;
            }
            let scope = front.scope;
            let outcome = front.task.await.map_err(|error| {
                RunEnd::Failed(SyncError::Internal(format!(
                    "the crawl of scope {} ended: {error}",
                    scope.key
                )))
            })?;
            let status = match outcome.result {
                Ok(()) => {
                    self.done.push((scope.key.clone(), outcome.generation));
                    self.scopes_ok += 1;
                    ScopeStatus {
                        scope: scope.key.clone(),
                        state: ProtoScopeState::Ok as i32,
                        entities: outcome.entities,
                        ..Default::default()
                    }
                }
                Err(ScopeError::Failed { reason, message }) => {
                    tracing::warn!(connector = self.info.connector_id, scope = %scope.key, reason, %message, "scope failed");
                    self.done.push((scope.key.clone(), front.generation));
                    self.scopes_failed += 1;
                    ScopeStatus {
                        scope: scope.key.clone(),
                        state: ProtoScopeState::Failed as i32,
                        error: message,
                        reason: reason.to_owned(),
                        ..Default::default()
                    }
                }
                Err(ScopeError::RateLimited { reset_time, message }) => {
                    tracing::warn!(connector = self.info.connector_id, scope = %scope.key, %message, "scope rate limited");
                    self.done.push((scope.key.clone(), front.generation));
                    self.scopes_failed += 1;
                    ScopeStatus {
                        scope: scope.key.clone(),
                        state: ProtoScopeState::RateLimited as i32,
                        error: message,
                        reason: "UPSTREAM_RATE_LIMITED".into(),
                        retry_time: reset_time.map(|t| pbjson_types::Timestamp {
                            seconds: t.timestamp(),
                            nanos: 0,
                        }),
                        ..Default::default()
                    }
                }
                Err(other) => return Err(other.into()),
            };
            self.send(SyncEvent {
                event: Some(Event::ScopeStatus(status)),
            })
            .await?;
            let token = self.resume_token(None);
            self.send_checkpoint(token, &scope.key).await?;
            let progress = self.progress();
            self.send(SyncEvent {
                event: Some(Event::Progress(progress)),
            })
            .await?;
        }

        let token = self.final_token().encode();
        if let Some(key) = &self.state_key {
            self.info
                .store
                .save_checkpoint(self.info.connector_id, key, token.clone())
                .await;
        }
        let elapsed = self.started.elapsed();
        // Whole-sync figures: a resumed sync counts what was sent before its checkpoint.
        let complete = self.scopes_failed == 0;
        let (upstream_requests, cache_hits) = self.requests();
        let summary = Summary {
            sync_id: self.info.sync_id.clone(),
            mode: self.mode as i32,
            counts: self
                .counts
                .iter()
                .map(|(kind, (upserts, unchanged))| KindCount {
                    kind: *kind,
                    upserts: *upserts,
                    unchanged: *unchanged,
                })
                .collect(),
            deletions: self.deletions,
            upstream_requests,
            cache_hits,
            duration: Some(pbjson_types::Duration {
                seconds: i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(elapsed.subsec_nanos()).unwrap_or(0),
            }),
            complete,
            checkpoint: token,
            scopes_ok: self.scopes_ok,
            scopes_failed: self.scopes_failed,
            start_time: Some(pbjson_types::Timestamp {
                seconds: self.start_time.timestamp(),
                nanos: i32::try_from(self.start_time.timestamp_subsec_nanos()).unwrap_or(0),
            }),
        };
        let upserts: u64 = summary.counts.iter().map(|count| count.upserts).sum();
        tracing::Span::current().record("sync.entities", upserts);
        self.send(SyncEvent {
            event: Some(Event::Summary(summary)),
        })
        .await?;
        Ok(complete)
    }
}

/// Crawls one scope in its own task: loads its baseline (and, when resuming
/// inside it, the entries already sent), runs the connector, emits its
/// deletions and saves its new state. Its items go to `items` in order.
async fn crawl_scope<C: Connector>(
    connector: Arc<C>,
    request: Arc<C::Request>,
    info: Arc<RunInfo>,
    scope: Scope,
    generation: Option<String>,
    resume: Option<ScopeResume>,
    items: mpsc::Sender<ScopeItem>,
) -> ScopeOutcome {
    let failed = |error: ScopeError| ScopeOutcome {
        result: Err(error),
        generation: None,
        entities: 0,
    };
    let expired = |message: String| {
        failed(ScopeError::Fatal(SyncError::FailedPrecondition {
            reason: "CHECKPOINT_STATE_EXPIRED",
            message,
        }))
    };
    // State that could not be read is not state that expired: the scope
    // fails (and keeps its baseline) rather than run as if it had none,
    // which would send no deletion of what went since.
    let unreadable = |what: &str, error: crate::cache::CacheError| {
        failed(ScopeError::Failed {
            reason: "STATE_UNAVAILABLE",
            message: format!("{what} of scope {} could not be read ({error}); sync again", scope.key),
        })
    };
    // What the next sync diffs against if this one's state is not saved.
    let mut previous = generation.clone();
    let mut baseline = match generation.as_ref().filter(|_| info.incremental) {
        Some(generation) => {
            match info
                .store
                .load_baseline(
                    info.connector_id,
                    &info.fingerprint,
                    &scope.key,
                    generation,
                    connector.reads_baseline(),
                )
                .await
            {
                Ok(found @ Some(_)) => found,
                Err(error) => return unreadable("the state", error),
                Ok(None) if info.lenient => {
                    tracing::warn!(connector = info.connector_id, scope = %scope.key, "state kept under the state key expired; syncing the scope in full");
                    previous = None;
                    None
                }
                Ok(None) => {
                    return expired(format!(
                        "options.checkpoint: the state of scope {} it refers to is no longer in the cache; run a FULL sync",
                        scope.key
                    ));
                }
            }
        }
        None => None,
    };
    let mut failure = None;
    // What the broken stream sent of a resumed scope, from its saved chunks,
    // read a chunk at a time (a scope of 500k entities was held decoded at
    // once): the scope's urns (not to send them again), the baseline's
    // entities among them (seen) and the sync's (moved, not deleted).
    // Applied once every chunk was read: a missing one restarts the scope.
    let mut seen = SeenUrns::default();
    let mut total = 0u64;
    let (resume_cursor, chunks) = match resume {
        Some(ScopeResume {
            cursor,
            chunks,
            failure: went_past,
        }) => {
            failure = went_past;
            let from = info.resumed_from.as_deref().unwrap_or(&info.sync_id);
            let mut in_baseline = Vec::new();
            let mut in_sync = Vec::new();
            let read = info
                .store
                .visit_chunk_urns(info.connector_id, from, &scope.key, chunks, |urn| {
                    seen.insert(seen.fingerprint(urn));
                    in_baseline.extend(baseline.as_ref().and_then(|b| b.position(urn)));
                    in_sync.extend(info.pushed_fingerprint(urn));
                    total += 1;
                })
                .await;
            match read {
                // The chunks go on under this stream's own generation.
                Ok(true) => match info
                    .store
                    .copy_chunks(info.connector_id, from, &info.generation, &scope.key, chunks)
                    .await
                {
                    Ok(()) => {
                        if let Some(baseline) = baseline.as_mut() {
                            baseline.mark_seen(&in_baseline);
                        }
                        info.note_pushed_fingerprints(&in_sync);
                        (cursor, chunks)
                    }
                    Err(error) => return unreadable("the partial state", error),
                },
                Err(error) => return unreadable("the partial state", error),
                // Restart the scope from its first page.
                Ok(false) if info.lenient => {
                    seen = SeenUrns::default();
                    total = 0;
                    (None, 0)
                }
                Ok(false) => {
                    return expired(
                        "options.checkpoint: the partial state it refers to is no longer in the cache; sync again without it"
                            .into(),
                    );
                }
            }
        }
        None => (None, 0),
    };
    let mut ctx = ScopeContext {
        run: &info,
        items,
        scope_key: scope.key.clone(),
        region: scope.region.clone(),
        baseline,
        resume_cursor,
        pending: super::state::PendingChunk::default(),
        seen,
        pushed: None,
        failed_reads: 0,
        chunks,
        state_intact: true,
        total,
        emitted: 0,
        unchanged: std::collections::BTreeMap::new(),
        encoded: Vec::new(),
        provenance: None,
        failure,
    };
    let mut result = connector.sync_scope(&request, &scope, &mut ctx).await;
    if result.is_ok()
        && let Some(failure) = ctx.deferred_failure()
    {
        result = Err(failure);
    }
    if result.is_ok() {
        result = ctx.emit_deletions().await;
    }
    if let Err(error) = result {
        // What was found unchanged before the failure still counts.
        let _ = ctx.flush_unchanged().await;
        return failed(error);
    }
    if let Err(error) = ctx.flush_unchanged().await {
        return failed(error);
    }
    let intact = ctx.save_entries().await;
    let (emitted, total, chunks) = (ctx.emitted, ctx.total, ctx.chunks);
    drop(ctx);
    let saved = if intact
        && info
            .store
            .save(
                info.connector_id,
                &info.fingerprint,
                &scope.key,
                &info.generation,
                chunks,
            )
            .await
    {
        // The client's next checkpoint holds the new state: the one it held
        // lives on only for the grace period, instead of the state's TTL, as
        // do those beyond the scope's newest few.
        info.store
            .retain(
                info.connector_id,
                &info.fingerprint,
                &scope.key,
                &info.generation,
                generation.as_deref().filter(|old| *old != info.generation),
                info.superseded_ttl,
            )
            .await;
        Some(info.generation.clone())
    } else if previous.is_some() {
        // The next sync diffs against the state the client held: what
        // changed since is sent again, deletions included (dropping the
        // scope from the baseline made the next sync FULL, without them).
        tracing::warn!(connector = info.connector_id, scope = %scope.key, "scope state not saved; the next incremental sync diffs it against the previous state");
        previous
    } else {
        tracing::warn!(connector = info.connector_id, scope = %scope.key, "scope state not saved; the next incremental sync of it will be full");
        None
    };
    ScopeOutcome {
        result: Ok(()),
        generation: saved,
        entities: total.max(emitted),
    }
}
