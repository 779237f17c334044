//! Engine tests with a scripted connector: event order, incremental diffs,
//! scope failures, resume, state keys, cancellation and validation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use connectors_proto::v1::{
    Entity, EntityKind, ScopeState as ProtoScopeState, SourceMode, SyncEvent, SyncMode, Tag, entity::Body,
    sync_event::Event,
};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::checkpoint::DeferredFailure;
use super::*;
use crate::cache::SharedCache;
use crate::replay::PeakGauge;

static FAKE: Descriptor = Descriptor {
    id: "fake",
    display_name: "Fake",
    version: "1.0.0",
    kinds: &[EntityKind::Tag, EntityKind::Asset],
    native_incremental: false,
    auth_modes: &[],
    service: "connectors.fake.v1.FakeConnectorService",
};

/// Entities per scope, editable between syncs; a scope can be made to fail;
/// a checkpoint after every `page` entities; an endless scope for cancellation.
#[derive(Default)]
struct Fake {
    data: Mutex<BTreeMap<String, Vec<(String, String)>>>,
    failing: Mutex<Option<String>>,
    /// (scope, item index): items that fail alone (`fail_when_done`), not pushed.
    deferring: Mutex<Vec<(String, usize)>>,
    endless: bool,
    pushed: AtomicU64,
    /// Delay before each entity (to keep a sync in flight).
    slow: Option<Duration>,
    /// Scopes crawled, over all syncs.
    crawls: AtomicU64,
    /// Scopes crawled at once (0: the trait's default).
    concurrency: usize,
    /// Scopes being crawled now, and the most there were at once.
    in_flight: PeakGauge,
    /// Every scope waits here before its first entity, so a sync whose scopes
    /// are not crawled concurrently never gets past it.
    rendezvous: Option<tokio::sync::Barrier>,
    /// Per scope, `ScopeContext::prior_unseen` of tags when the scope ended.
    unseen: Mutex<BTreeMap<String, Vec<(String, String)>>>,
    /// Urns without the scope (`urn:connectors:fake:tag:<id>`), as an entity
    /// that moves between scopes keeps its urn.
    unscoped: bool,
    /// A resumed scope is listed again from its first page, as after
    /// Kubernetes' 410 Gone or a stale page token.
    restarts: bool,
    /// Does not read its baseline back (`Connector::reads_baseline`), as
    /// the cloud connectors: its baseline holds no urns.
    lean: bool,
    /// Called as a scope's crawl begins (after its baseline was read).
    on_crawl: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

const PAGE: usize = 2;

fn tag(scope: &str, id: &str, value: &str) -> Entity {
    Entity {
        urn: urn("fake", EntityKind::Tag, &format!("{scope}/{id}")),
        kind: EntityKind::Tag as i32,
        native_id: format!("{scope}/{id}"),
        display_name: id.to_owned(),
        labels: Vec::new(),
        parent_urn: String::new(),
        body: Some(Body::Tag(Tag {
            resource_id: scope.to_owned(),
            key: id.to_owned(),
            value: value.to_owned(),
        })),
    }
}

impl Fake {
    fn with(data: &[(&str, &[(&str, &str)])]) -> Arc<Self> {
        Self::holding(Fake::default(), data)
    }

    /// [`Self::with`], not reading its baseline back (`lean`) when asked.
    fn lean_with(lean: bool, data: &[(&str, &[(&str, &str)])]) -> Arc<Self> {
        Self::holding(
            Fake {
                lean,
                ..Fake::default()
            },
            data,
        )
    }

    fn holding(fake: Fake, data: &[(&str, &[(&str, &str)])]) -> Arc<Self> {
        {
            let mut map = fake.data.lock().unwrap();
            for (scope, items) in data {
                map.insert(
                    (*scope).to_owned(),
                    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                );
            }
        }
        Arc::new(fake)
    }
}

#[async_trait]
impl Connector for Fake {
    type Request = ();

    fn descriptor(&self) -> &'static Descriptor {
        &FAKE
    }

    fn availability(&self) -> Availability {
        Availability::Fixture { reason: "test".into() }
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        Ok(())
    }

    fn scopes(&self, _request: &()) -> Result<Vec<Scope>, SyncError> {
        Ok(self
            .data
            .lock()
            .unwrap()
            .keys()
            .map(|k| Scope::new(k.clone()))
            .collect())
    }

    fn request_fingerprint(&self, _request: &()) -> String {
        String::new()
    }

    fn scope_concurrency(&self) -> usize {
        if self.concurrency == 0 { 1 } else { self.concurrency }
    }

    fn reads_baseline(&self) -> bool {
        !self.lean
    }

    async fn sync_scope(&self, _request: &(), scope: &Scope, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        self.crawls.fetch_add(1, Ordering::SeqCst);
        let on_crawl = self.on_crawl.lock().unwrap().take();
        if let Some(on_crawl) = on_crawl {
            on_crawl();
        }
        let _in_flight = self.in_flight.enter();
        if let Some(rendezvous) = &self.rendezvous {
            rendezvous.wait().await;
        }
        if self.endless {
            loop {
                let n = self.pushed.fetch_add(1, Ordering::SeqCst);
                if n % 5 == 4 {
                    ctx.checkpoint(n.to_string()).await?;
                }
                ctx.upsert(tag(&scope.key, &n.to_string(), "v"), UpsertMeta::default())
                    .await?;
            }
        }
        let items = self.data.lock().unwrap().get(&scope.key).cloned().unwrap_or_default();
        let start: usize = match ctx.resume_cursor() {
            Some(cursor) if !self.restarts => cursor.parse().unwrap(),
            _ => 0,
        };
        for (i, (id, value)) in items.iter().enumerate().skip(start) {
            if let Some(delay) = self.slow {
                tokio::time::sleep(delay).await;
            }
            if self.failing.lock().unwrap().as_deref() == Some(scope.key.as_str()) && i == 1 {
                return Err(ScopeError::Failed {
                    reason: "UPSTREAM_UNAVAILABLE",
                    message: "boom".into(),
                });
            }
            let deferred = self.deferring.lock().unwrap().contains(&(scope.key.clone(), i));
            if deferred {
                ctx.fail_when_done(ScopeError::Failed {
                    reason: "UPSTREAM_MALFORMED",
                    message: format!("item {id}: its body does not parse"),
                })?;
            } else {
                let mut entity = tag(&scope.key, id, value);
                if self.unscoped {
                    entity.urn = urn("fake", EntityKind::Tag, id);
                }
                ctx.upsert(entity, UpsertMeta::new("list", value.clone())).await?;
            }
            if (i + 1) % PAGE == 0 && i + 1 < items.len() {
                ctx.checkpoint((i + 1).to_string()).await?;
            }
        }
        if !self.lean {
            let unseen = ctx.prior_unseen(EntityKind::Tag);
            assert_eq!(ctx.prior_unseen(EntityKind::Asset), Vec::new());
            self.unseen.lock().unwrap().insert(scope.key.clone(), unseen);
        }
        Ok(())
    }
}

fn engine() -> Engine {
    Engine::new(
        EngineConfig::default(),
        SharedCache::memory(16 << 20),
        CancellationToken::new(),
    )
}

fn opts(mode: SyncMode, checkpoint: Vec<u8>) -> SyncOptions {
    SyncOptions {
        mode,
        checkpoint,
        ..Default::default()
    }
}

async fn collect(engine: &Engine, fake: &Arc<Fake>, options: SyncOptions) -> Vec<SyncEvent> {
    let stream = decoded(engine.start(fake.clone(), (), options).await.unwrap());
    stream.map(|e| e.unwrap()).collect().await
}

/// The engine's stream with its events decoded (the engine sends them encoded).
fn decoded(stream: SyncStream) -> impl Stream<Item = Result<SyncEvent, SyncError>> + Unpin {
    stream.map(|item| item.map(|event| event.event().expect("the engine's events decode")))
}

/// The events of `stream` before its first checkpoint, and that checkpoint's token.
async fn until_checkpoint(
    stream: &mut (impl Stream<Item = Result<SyncEvent, SyncError>> + Unpin),
) -> (Vec<SyncEvent>, Vec<u8>) {
    let mut before = Vec::new();
    loop {
        let event = stream.next().await.unwrap().unwrap();
        if let Some(Event::Checkpoint(c)) = &event.event {
            return (before, c.token.clone());
        }
        before.push(event);
    }
}

/// A compact rendering of the stream, for exact comparisons.
fn render(events: &[SyncEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e.event.as_ref()? {
            Event::Upsert(u) => Some(format!("upsert {}", u.entity.as_ref()?.urn)),
            Event::Deletion(d) => Some(format!("delete {}", d.urn)),
            Event::Checkpoint(c) => Some(format!("checkpoint {}", c.scope)),
            Event::Progress(_) => None,
            Event::ScopeStatus(s) => Some(format!("scope {} {}", s.scope, s.state)),
            Event::Summary(s) => Some(format!("summary complete={} deletions={}", s.complete, s.deletions)),
        })
        .collect()
}

fn summary(events: &[SyncEvent]) -> connectors_proto::v1::Summary {
    match events.last().and_then(|e| e.event.clone()) {
        Some(Event::Summary(s)) => s,
        other => panic!("last event is not a summary: {other:?}"),
    }
}

fn checkpoints(events: &[SyncEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Checkpoint(c)) => Some(c.token.clone()),
            _ => None,
        })
        .collect()
}

const T: &str = "urn:connectors:fake:tag:";

#[tokio::test]
async fn full_sync_emits_scopes_in_order_with_checkpoints_and_one_summary() {
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y"), ("3", "z")]), ("b", &[("1", "q")])]);
    let events = collect(&engine(), &fake, opts(SyncMode::Full, vec![])).await;
    assert_eq!(
        render(&events),
        vec![
            format!("upsert {T}a/1"),
            format!("upsert {T}a/2"),
            "checkpoint a".into(),
            format!("upsert {T}a/3"),
            "scope a 1".into(),
            "checkpoint a".into(),
            format!("upsert {T}b/1"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=true deletions=0".into(),
        ]
    );
    let s = summary(&events);
    assert_eq!(s.mode, SyncMode::Full as i32);
    assert_eq!(s.counts.len(), 1);
    assert_eq!(
        (s.counts[0].kind, s.counts[0].upserts, s.counts[0].unchanged),
        (EntityKind::Tag as i32, 4, 0)
    );
    assert_eq!((s.scopes_ok, s.scopes_failed), (2, 0));
    // Provenance and hash of the first upsert.
    let Some(Event::Upsert(first)) = &events[0].event else {
        panic!()
    };
    let p = first.provenance.as_ref().unwrap();
    assert_eq!(p.connector_id, "fake");
    assert_eq!(p.connector_version, "1.0.0");
    assert_eq!(p.sync_id, s.sync_id);
    assert_eq!(p.source, "a");
    assert_eq!(p.operation, "list");
    assert_eq!(p.upstream_version, "x");
    assert_eq!(p.source_mode, SourceMode::Fixture as i32);
    assert_eq!(p.content_hash, content_hash(first.entity.as_ref().unwrap()));
    // Every upsert's own fields (the provenance template of a scope is
    // rewritten per upsert): version, hash and source of each, in order.
    let per_upsert: Vec<(String, String, bool)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => {
                let p = u.provenance.as_ref().unwrap();
                let hash_matches = p.content_hash == content_hash(u.entity.as_ref().unwrap());
                Some((p.source.clone(), p.upstream_version.clone(), hash_matches))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        per_upsert,
        vec![
            ("a".into(), "x".into(), true),
            ("a".into(), "y".into(), true),
            ("a".into(), "z".into(), true),
            ("b".into(), "q".into(), true),
        ]
    );
}

/// What a connector may confirm before its scope's deletions are final.
#[tokio::test]
async fn prior_unseen_is_what_the_deletions_would_hold() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y"), ("3", "z")])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    assert_eq!(fake.unseen.lock().unwrap()["a"], Vec::new(), "FULL: no baseline");
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), vec![("2".into(), "y".into())]);
    let events = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&full).checkpoint)).await;
    let unseen = fake.unseen.lock().unwrap()["a"].clone();
    assert_eq!(
        unseen,
        vec![(format!("{T}a/1"), String::new()), (format!("{T}a/3"), String::new())]
    );
    let deleted: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Deletion(d)) => Some(d.urn.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, unseen.into_iter().map(|(urn, _)| urn).collect::<Vec<_>>());
}

#[tokio::test]
async fn incremental_emits_nothing_when_nothing_changed_and_exact_diffs_when_it_did() {
    incremental_diffs(false).await;
}

/// The same diffs from a baseline that holds no urns (a connector that does
/// not read its baseline back): the deletion's urn is read again from the
/// saved state.
#[tokio::test]
async fn a_baseline_without_urns_gives_the_same_diffs() {
    incremental_diffs(true).await;
}

async fn incremental_diffs(lean: bool) {
    let engine = engine();
    let fake = Fake::lean_with(
        lean,
        &[("a", &[("1", "x"), ("2", "y"), ("3", "z")]), ("b", &[("1", "q")])],
    );
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let token = summary(&full).checkpoint;

    let same = collect(&engine, &fake, opts(SyncMode::Incremental, token.clone())).await;
    assert_eq!(
        render(&same),
        vec![
            "checkpoint a",
            "scope a 1",
            "checkpoint a",
            "scope b 1",
            "checkpoint b",
            "summary complete=true deletions=0"
        ]
    );
    assert_eq!(summary(&same).counts[0].unchanged, 4);

    // Change a/2, delete a/3, add b/2.
    {
        let mut data = fake.data.lock().unwrap();
        data.insert(
            "a".into(),
            vec![("1".into(), "x".into()), ("2".into(), "CHANGED".into())],
        );
        data.insert("b".into(), vec![("1".into(), "q".into()), ("2".into(), "new".into())]);
    }
    let changed = collect(&engine, &fake, opts(SyncMode::Incremental, token.clone())).await;
    assert_eq!(
        render(&changed),
        vec![
            format!("upsert {T}a/2"),
            format!("delete {T}a/3"),
            "scope a 1".into(),
            "checkpoint a".into(),
            format!("upsert {T}b/2"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=true deletions=1".into(),
        ]
    );
    // From the newest checkpoint nothing changed any more.
    let again = collect(
        &engine,
        &fake,
        opts(SyncMode::Incremental, summary(&changed).checkpoint),
    )
    .await;
    assert_eq!(
        render(&again)
            .iter()
            .filter(|e| e.starts_with("upsert") || e.starts_with("delete"))
            .count(),
        0
    );
    // FULL ignores the baseline and emits everything.
    let full_again = collect(&engine, &fake, opts(SyncMode::Full, token)).await;
    assert_eq!(
        render(&full_again).iter().filter(|e| e.starts_with("upsert")).count(),
        4
    );
}

#[tokio::test]
async fn a_failed_scope_is_reported_and_keeps_its_baseline() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")]), ("b", &[("1", "q")])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let token = summary(&full).checkpoint;

    *fake.failing.lock().unwrap() = Some("a".into());
    fake.data
        .lock()
        .unwrap()
        .insert("b".into(), vec![("1".into(), "q2".into())]);
    let failed = collect(&engine, &fake, opts(SyncMode::Incremental, token)).await;
    assert_eq!(
        render(&failed),
        vec![
            "scope a 2".to_owned(),
            "checkpoint a".into(),
            format!("upsert {T}b/1"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=false deletions=0".into(),
        ]
    );
    let status = failed
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) if s.state == ProtoScopeState::Failed as i32 => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (status.reason.as_str(), status.error.as_str()),
        ("UPSTREAM_UNAVAILABLE", "boom")
    );
    // No deletions for a failed scope; the next sync diffs "a" against its old baseline.
    *fake.failing.lock().unwrap() = None;
    let next = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&failed).checkpoint)).await;
    assert_eq!(
        render(&next)
            .iter()
            .filter(|e| e.starts_with("upsert") || e.starts_with("delete"))
            .count(),
        0
    );
}

#[tokio::test]
async fn resume_from_a_mid_scope_checkpoint_sends_the_rest_exactly_once() {
    resume_mid_scope(false).await;
}

/// The same from a baseline that holds no urns: the entities sent before the
/// break are marked seen by their ids, and the deletion's urn is read again.
#[tokio::test]
async fn a_baseline_without_urns_resumes_mid_scope_as_one_with_them() {
    resume_mid_scope(true).await;
}

/// A resumed INCREMENTAL scope listed again from its first page (Kubernetes'
/// 410, a stale page token) does not send again what the broken stream
/// sent: those baseline entities were marked seen from its chunks. On both
/// baselines; the sync-wide pushed set does not cover this (it keeps
/// deletions back, not upserts).
#[tokio::test]
async fn a_resumed_incremental_scope_listed_again_sends_the_rest_once_on_both_baselines() {
    for lean in [false, true] {
        let engine = engine();
        let fake = Fake::holding(
            Fake {
                lean,
                restarts: true,
                ..Fake::default()
            },
            &[(
                "a",
                &[("0", "v"), ("1", "v"), ("2", "v"), ("3", "v"), ("4", "v"), ("5", "v")],
            )],
        );
        let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
        let changed: Vec<(String, String)> = (0..6).map(|i| (i.to_string(), "w".to_owned())).collect();
        fake.data.lock().unwrap().insert("a".into(), changed);
        let mut stream = decoded(
            engine
                .start(fake.clone(), (), opts(SyncMode::Incremental, summary(&full).checkpoint))
                .await
                .unwrap(),
        );
        let (before, token) = until_checkpoint(&mut stream).await;
        drop(stream);
        assert_eq!(changes(&before), upserts_of(0..2), "lean: {lean}");
        let resumed = collect(&engine, &fake, opts(SyncMode::Incremental, token)).await;
        assert_eq!(changes(&resumed), upserts_of(2..6), "lean: {lean}");
        assert_eq!(summary(&resumed).deletions, 0, "lean: {lean}");
    }
}

async fn resume_mid_scope(lean: bool) {
    let engine = engine();
    let items: &[(&str, &str)] = &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d"), ("5", "e")];
    let fake = Fake::lean_with(lean, &[("a", items), ("b", &[("1", "q")])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let baseline = summary(&full).checkpoint;
    // Change one entity and delete one, then run INCREMENTAL but "lose" the
    // stream after its first page checkpoint.
    fake.data.lock().unwrap().insert(
        "a".into(),
        vec![
            ("1".into(), "A".into()),
            ("2".into(), "b".into()),
            ("3".into(), "C".into()),
            ("4".into(), "d".into()),
        ],
    );
    let mut stream = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Incremental, baseline.clone()))
            .await
            .unwrap(),
    );
    let (before, token) = until_checkpoint(&mut stream).await;
    drop(stream);
    assert_eq!(render(&before), vec![format!("upsert {T}a/1")]);
    // The client resumes with the mid-stream token (and its original options).
    let resumed = collect(&engine, &fake, opts(SyncMode::Incremental, token)).await;
    assert_eq!(
        render(&resumed),
        vec![
            format!("upsert {T}a/3"),
            format!("delete {T}a/5"),
            "scope a 1".into(),
            "checkpoint a".into(),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=true deletions=1".into(),
        ]
    );
    // Its summary covers the whole sync, as that of the same sync unbroken.
    let resumed_summary = summary(&resumed);
    let whole = summary(&collect(&engine, &fake, opts(SyncMode::Incremental, baseline.clone())).await);
    assert_eq!(resumed_summary.counts, whole.counts);
    assert_eq!(
        resumed_summary
            .counts
            .iter()
            .map(|c| (c.kind, c.upserts, c.unchanged))
            .collect::<Vec<_>>(),
        vec![(EntityKind::Tag as i32, 2, 3)]
    );
    assert_eq!(
        (
            resumed_summary.deletions,
            resumed_summary.scopes_ok,
            resumed_summary.scopes_failed
        ),
        (1, 2, 0)
    );
    // The resumed summary's checkpoint is a valid baseline: nothing changed since.
    let after = collect(
        &engine,
        &fake,
        opts(SyncMode::Incremental, summary(&resumed).checkpoint),
    )
    .await;
    assert_eq!(
        render(&after)
            .iter()
            .filter(|e| e.starts_with("upsert") || e.starts_with("delete"))
            .count(),
        0
    );
}

#[tokio::test]
async fn resume_after_a_finished_scope_skips_it() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x")]), ("b", &[("1", "q"), ("2", "r")])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let after_a = checkpoints(&full)[0].clone();
    let resumed = collect(&engine, &fake, opts(SyncMode::Full, after_a)).await;
    assert_eq!(
        render(&resumed),
        vec![
            format!("upsert {T}b/1"),
            format!("upsert {T}b/2"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=true deletions=0".into(),
        ]
    );
    assert_eq!(summary(&resumed).sync_id, summary(&full).sync_id);
}

#[tokio::test]
async fn the_server_keeps_the_checkpoint_under_a_state_key() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x")])]);
    let keyed = |mode| SyncOptions {
        mode,
        state_key: Some("nightly".into()),
        ..Default::default()
    };
    let first = collect(&engine, &fake, keyed(SyncMode::Incremental)).await;
    assert_eq!(render(&first).iter().filter(|e| e.starts_with("upsert")).count(), 1);
    let second = collect(&engine, &fake, keyed(SyncMode::Incremental)).await;
    assert_eq!(render(&second).iter().filter(|e| e.starts_with("upsert")).count(), 0);
    assert_eq!(summary(&second).mode, SyncMode::Incremental as i32);
}

#[tokio::test]
async fn bad_options_name_the_field() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x")])]);
    let err = |options| {
        let engine = engine.clone();
        let fake = fake.clone();
        async move {
            match engine.start(fake, (), options).await {
                Err(SyncError::InvalidArgument { field, message }) => (field, message),
                other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
            }
        }
    };
    let (field, message) = err(SyncOptions {
        kinds: vec![EntityKind::Repository],
        ..Default::default()
    })
    .await;
    assert_eq!(field, "options.kinds[0]");
    assert_eq!(message, "connector fake does not emit ENTITY_KIND_REPOSITORY");
    let (field, message) = err(opts(SyncMode::Incremental, b"garbage".to_vec())).await;
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("options.checkpoint", "not a checkpoint issued by this service")
    );

    // A token from another request (different kinds) is refused.
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let (field, message) = err(SyncOptions {
        mode: SyncMode::Incremental,
        checkpoint: summary(&full).checkpoint,
        kinds: vec![EntityKind::Asset],
        ..Default::default()
    })
    .await;
    assert_eq!(field, "options.checkpoint");
    assert!(message.contains("different request"), "{message}");
}

#[tokio::test]
async fn a_checkpoint_whose_state_expired_is_a_failed_precondition() {
    let fake = Fake::with(&[("a", &[("1", "x")])]);
    let full = collect(&engine(), &fake, opts(SyncMode::Full, vec![])).await;
    // Another engine with an empty cache: the state is gone.
    let mut stream = engine()
        .start(fake.clone(), (), opts(SyncMode::Incremental, summary(&full).checkpoint))
        .await
        .unwrap();
    match stream.next().await {
        Some(Err(SyncError::FailedPrecondition { reason, .. })) => assert_eq!(reason, "CHECKPOINT_STATE_EXPIRED"),
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn dropping_the_stream_stops_the_connector() {
    let fake = Arc::new(Fake {
        endless: true,
        ..Default::default()
    });
    fake.data.lock().unwrap().insert("a".into(), Vec::new());
    let mut stream = decoded(engine().start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    for _ in 0..10 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = fake.pushed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.pushed.load(Ordering::SeqCst), stopped_at);
    // Bounded channels (the stream's and the scope's, 256 each): the
    // producer never ran far ahead of the consumer.
    assert!(stopped_at <= 10 + 2 * 256 + 2, "producer pushed {stopped_at}");
}

#[tokio::test]
async fn a_draining_engine_refuses_new_syncs_and_ends_open_ones_with_unavailable() {
    let shutdown = CancellationToken::new();
    let engine = Engine::new(EngineConfig::default(), SharedCache::memory(1 << 20), shutdown.clone());
    let fake = Arc::new(Fake {
        endless: true,
        ..Default::default()
    });
    fake.data.lock().unwrap().insert("a".into(), Vec::new());
    let mut stream = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    stream.next().await.unwrap().unwrap();
    shutdown.cancel();
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    assert!(matches!(last, Some(Err(SyncError::Unavailable(_)))), "{last:?}");
    assert!(matches!(
        engine.start(fake, (), SyncOptions::default()).await,
        Err(SyncError::Unavailable(_))
    ));
}

#[tokio::test]
async fn drain_lets_open_syncs_finish_and_ends_the_rest_after_their_last_checkpoint() {
    // A sync that finishes within the drain timeout ends normally.
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y"), ("3", "z")])]);
    let stream = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let drained = tokio::spawn({
        let engine = engine.clone();
        async move { engine.drain(Duration::from_secs(5)).await }
    });
    let events: Vec<SyncEvent> = stream.map(|e| e.unwrap()).collect().await;
    assert!(summary(&events).complete);
    assert!(drained.await.unwrap(), "drained in time");

    // One that does not gets its last checkpoint again, then UNAVAILABLE.
    let engine = self::engine();
    let endless = Arc::new(Fake {
        endless: true,
        ..Default::default()
    });
    endless.data.lock().unwrap().insert("a".into(), Vec::new());
    let mut stream = decoded(engine.start(endless.clone(), (), SyncOptions::default()).await.unwrap());
    let first = stream.next().await.unwrap();
    let drained = tokio::spawn({
        let engine = engine.clone();
        async move { engine.drain(Duration::from_millis(200)).await }
    });
    let mut items = vec![first];
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    assert!(!drained.await.unwrap(), "the endless sync outlived the drain timeout");
    let last_sent_checkpoint = items[..items.len() - 2]
        .iter()
        .rev()
        .find_map(|item| match item {
            Ok(SyncEvent {
                event: Some(Event::Checkpoint(c)),
            }) => Some(c.token.clone()),
            _ => None,
        })
        .expect("checkpoints were sent");
    // The checkpoint sent again is the last one sent, or the one whose send
    // the drain cut short: it covers no event the client was not sent.
    let upserts_covered = |token: &[u8]| {
        let json = &token[token.iter().position(|b| *b == b':').unwrap() + 1..];
        let token: serde_json::Value = serde_json::from_slice(json).unwrap();
        token["resume"]["tally"]["counts"][0][1].as_u64().unwrap()
    };
    let upserts_sent = items
        .iter()
        .filter(|item| {
            matches!(
                item,
                Ok(SyncEvent {
                    event: Some(Event::Upsert(_))
                })
            )
        })
        .count() as u64;
    match &items[items.len() - 2] {
        Ok(SyncEvent {
            event: Some(Event::Checkpoint(c)),
        }) => {
            let covered = upserts_covered(&c.token);
            assert!(
                covered >= upserts_covered(&last_sent_checkpoint) && covered <= upserts_sent,
                "the checkpoint sent again covers {covered} upserts; {} by the last sent, {upserts_sent} sent",
                upserts_covered(&last_sent_checkpoint)
            );
        }
        other => panic!("expected the final checkpoint, got {other:?}"),
    }
    assert!(matches!(items.last(), Some(Err(SyncError::Unavailable(_)))));
    assert!(matches!(
        engine.start(endless, (), SyncOptions::default()).await,
        Err(SyncError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_state_key_whose_state_expired_falls_back_to_a_full_sync() {
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")])]);
    let keyed = SyncOptions {
        mode: SyncMode::Incremental,
        state_key: Some("nightly".into()),
        ..Default::default()
    };
    let first_cache = SharedCache::memory(1 << 20);
    let first = Engine::new(EngineConfig::default(), first_cache.clone(), CancellationToken::new());
    collect(&first, &fake, keyed.clone()).await;
    // A cache that still has the kept checkpoint but lost the scope state.
    let ttl = Duration::from_secs(60);
    let kept = super::state::StateStore::new(first_cache, ttl)
        .load_checkpoint("fake", "nightly")
        .await
        .unwrap()
        .expect("checkpoint kept under the state key");
    let second_cache = SharedCache::memory(1 << 20);
    super::state::StateStore::new(second_cache.clone(), ttl)
        .save_checkpoint("fake", "nightly", kept.to_vec())
        .await;
    let second = Engine::new(EngineConfig::default(), second_cache, CancellationToken::new());
    let events = collect(&second, &fake, keyed.clone()).await;
    assert_eq!(render(&events).iter().filter(|e| e.starts_with("upsert")).count(), 2);
    // The same token sent by the client itself is an error instead.
    let mut stream = second
        .start(fake.clone(), (), opts(SyncMode::Incremental, kept.to_vec()))
        .await
        .unwrap();
    match stream.next().await {
        Some(Err(SyncError::FailedPrecondition { reason, .. })) => assert_eq!(reason, "CHECKPOINT_STATE_EXPIRED"),
        other => panic!("expected CHECKPOINT_STATE_EXPIRED, got {other:?}"),
    }
}

#[tokio::test]
async fn shards_are_disjoint_and_their_union_is_the_whole_request() {
    let scopes: Vec<String> = (0..40).map(|i| format!("org:org-{i}")).collect();
    let data: Vec<(&str, &[(&str, &str)])> = scopes.iter().map(|s| (s.as_str(), &[("1", "x")][..])).collect();
    let fake = Fake::with(&data);
    let engine = engine();
    let whole: BTreeSet<String> = render(&collect(&engine, &fake, SyncOptions::default()).await)
        .into_iter()
        .filter(|e| e.starts_with("upsert"))
        .collect();
    assert_eq!(whole.len(), 40);
    let mut union = BTreeSet::new();
    let mut sizes = Vec::new();
    for index in 0..3 {
        let options = SyncOptions {
            shard: Some(Shard { index, count: 3 }),
            ..Default::default()
        };
        let part: BTreeSet<String> = render(&collect(&engine, &fake, options).await)
            .into_iter()
            .filter(|e| e.starts_with("upsert"))
            .collect();
        assert!(union.is_disjoint(&part), "shard {index} overlaps an earlier one");
        sizes.push(part.len());
        union.extend(part);
    }
    assert_eq!(union, whole);
    // The 40 scopes by shard (the assignment below, computed with Python's hashlib).
    assert_eq!(sizes, [17, 10, 13]);
    // The documented assignment (SHA-256, first 8 bytes big-endian, mod n),
    // values computed with Python's hashlib.
    assert_eq!(Shard::of("org:acme", 7), 4);
    assert_eq!(Shard::of("org:acme-corp", 2), 1);
    assert_eq!(Shard::of("org:globex", 2), 0);
}

#[tokio::test]
async fn identical_concurrent_syncs_share_one_crawl() {
    let engine = engine();
    let fake = Fake {
        slow: Some(Duration::from_millis(20)),
        ..Default::default()
    };
    {
        let mut data = fake.data.lock().unwrap();
        for scope in ["a", "b"] {
            data.insert(scope.into(), (0..5).map(|i| (i.to_string(), "v".to_owned())).collect());
        }
    }
    let fake = Arc::new(fake);
    let first = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let second = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let (first, second): (Vec<SyncEvent>, Vec<SyncEvent>) = tokio::join!(
        first.map(|e| e.unwrap()).collect(),
        second.map(|e| e.unwrap()).collect()
    );
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 2, "two scopes crawled once");
    assert_eq!(render(&first), render(&second));
    assert_eq!(render(&first).iter().filter(|e| e.starts_with("upsert")).count(), 10);
    assert_eq!(summary(&first), summary(&second));
    // A sync after both ended crawls again (the lease is released).
    collect(&engine, &fake, SyncOptions::default()).await;
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 4);
    // Different requests (here: FULL vs INCREMENTAL from a checkpoint) do not coalesce.
    let token = summary(&first).checkpoint;
    let full = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let incremental = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Incremental, token))
            .await
            .unwrap(),
    );
    let _: (Vec<_>, Vec<_>) = tokio::join!(full.collect(), incremental.collect());
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 8);
}

/// A fake of one scope, "a", of `n` tags, each pushed after `delay`.
fn one_slow_scope(n: usize, delay: Duration) -> Arc<Fake> {
    let fake = Fake {
        slow: Some(delay),
        ..Default::default()
    };
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), (0..n).map(|i| (i.to_string(), "v".to_owned())).collect());
    Arc::new(fake)
}

#[tokio::test]
async fn followers_end_unavailable_when_the_leader_stops_early() {
    let engine = engine();
    let fake = one_slow_scope(50, Duration::from_millis(20));
    let mut leader = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let mut follower = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    // The follower receives what the leader sent, checkpoints included.
    loop {
        let event = follower.next().await.unwrap().unwrap();
        if matches!(event.event, Some(Event::Checkpoint(_))) {
            break;
        }
    }
    leader.next().await.unwrap().unwrap();
    drop(leader);
    let mut last = None;
    while let Some(item) = follower.next().await {
        last = Some(item);
    }
    match last {
        Some(Err(SyncError::Unavailable(message))) => {
            assert!(message.contains("resume from the last checkpoint"), "{message}")
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test]
async fn past_its_log_cap_a_sync_streams_everything_and_a_later_twin_crawls_alone() {
    // A cap of one byte: the first batch ends the log.
    let config = EngineConfig {
        coalesce_log_max_bytes: 1,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, SharedCache::memory(16 << 20), CancellationToken::new());
    let fake = one_slow_scope(20, Duration::from_millis(5));
    let mut first = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let mut head = Vec::new();
    // The first checkpoint's batch was the log's first, and its last.
    while !matches!(
        head.last(),
        Some(SyncEvent {
            event: Some(Event::Checkpoint(_))
        })
    ) {
        head.push(first.next().await.unwrap().unwrap());
    }
    let second = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let rest: Vec<SyncEvent> = first.map(|e| e.unwrap()).collect().await;
    let second: Vec<SyncEvent> = second.map(|e| e.unwrap()).collect().await;
    let first: Vec<SyncEvent> = head.into_iter().chain(rest).collect();
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 2, "each sync crawled scope a");
    let upserts = |events: &[SyncEvent]| {
        render(events)
            .into_iter()
            .filter(|e| e.starts_with("upsert"))
            .collect::<Vec<_>>()
    };
    let expected: Vec<String> = (0..20)
        .map(|i| format!("upsert {}", tag("a", &i.to_string(), "v").urn))
        .collect();
    assert_eq!(upserts(&first), expected);
    assert_eq!(upserts(&second), expected);
    assert!(summary(&first).complete && summary(&second).complete);
}

/// A fake of five scopes whose scopes are crawled `concurrency` at once, each
/// entity after a short sleep (so the scopes' crawls overlap).
fn five_scopes(concurrency: usize) -> Arc<Fake> {
    let fake = Fake {
        concurrency,
        slow: Some(Duration::from_millis(2)),
        ..Default::default()
    };
    {
        let mut data = fake.data.lock().unwrap();
        for scope in ["a", "b", "c", "d", "e"] {
            data.insert(
                scope.into(),
                (1..=5).map(|i| (i.to_string(), format!("{scope}{i}"))).collect(),
            );
        }
    }
    Arc::new(fake)
}

/// The same story told to a fake of five scopes: a FULL sync, an unchanged
/// INCREMENTAL one, one across a change with a failing scope, and one lost
/// after its fourth checkpoint (in scope b, while c and d are in flight) and resumed. Returns each stream rendered.
async fn story(fake: &Arc<Fake>) -> Vec<Vec<String>> {
    let engine = engine();
    let full = collect(&engine, fake, opts(SyncMode::Full, vec![])).await;
    let token = summary(&full).checkpoint;
    let same = collect(&engine, fake, opts(SyncMode::Incremental, token.clone())).await;
    assert_eq!(summary(&same).counts[0].unchanged, 25);
    {
        let mut data = fake.data.lock().unwrap();
        data.get_mut("b").unwrap()[3].1 = "CHANGED".into();
        data.get_mut("d").unwrap().pop();
        data.get_mut("e").unwrap().push(("6".into(), "new".into()));
    }
    *fake.failing.lock().unwrap() = Some("c".into());
    let changed = collect(&engine, fake, opts(SyncMode::Incremental, token.clone())).await;
    *fake.failing.lock().unwrap() = None;

    let mut stream = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Incremental, token))
            .await
            .unwrap(),
    );
    let mut before = Vec::new();
    let mut seen_checkpoints = 0;
    let lost_at = loop {
        let event = stream.next().await.unwrap().unwrap();
        before.push(event.clone());
        if let Some(Event::Checkpoint(c)) = &event.event {
            seen_checkpoints += 1;
            if seen_checkpoints == 4 {
                break c.token.clone();
            }
        }
    };
    drop(stream);
    let resumed = collect(&engine, fake, opts(SyncMode::Incremental, lost_at)).await;
    vec![
        render(&full),
        render(&same),
        render(&changed),
        render(&before),
        render(&resumed),
    ]
}

#[tokio::test]
async fn concurrent_scopes_send_exactly_the_stream_of_a_sequential_sync() {
    let sequential = five_scopes(1);
    let concurrent = five_scopes(3);
    let expected = story(&sequential).await;
    let got = story(&concurrent).await;
    assert_eq!(got, expected);
    // The story is what the engine promises, whatever the concurrency.
    let changes = |rendered: &[String]| -> Vec<String> {
        rendered
            .iter()
            .filter(|e| e.starts_with("upsert") || e.starts_with("delete"))
            .cloned()
            .collect()
    };
    let diff = vec![
        format!("upsert {T}b/4"),
        format!("delete {T}d/5"),
        format!("upsert {T}e/6"),
    ];
    let changed = &expected[2];
    assert_eq!(changes(changed), diff);
    assert!(changed.contains(&"scope c 2".to_owned()), "{changed:?}");
    assert_eq!(changed.last().unwrap(), "summary complete=false deletions=1");
    // The stream was lost after b's first page; the resumed sync sends b's
    // change and what follows, once.
    assert_eq!(expected[3].last().unwrap(), "checkpoint b");
    assert_eq!(changes(&expected[4]), diff);
    assert_eq!(sequential.in_flight.peak(), 1);
    assert_eq!(concurrent.in_flight.peak(), 3);
}

#[tokio::test]
async fn scopes_are_crawled_at_once_up_to_the_connector_limit() {
    // Each scope waits until another has started: only a concurrent engine
    // gets past the rendezvous; with a limit of 2 never more than 2 run.
    let fake = Fake {
        concurrency: 2,
        rendezvous: Some(tokio::sync::Barrier::new(2)),
        ..Default::default()
    };
    {
        let mut data = fake.data.lock().unwrap();
        for scope in ["a", "b", "c", "d"] {
            data.insert(scope.into(), vec![("1".into(), "x".into()), ("2".into(), "y".into())]);
        }
    }
    let fake = Arc::new(fake);
    let events = tokio::time::timeout(
        Duration::from_secs(10),
        collect(&engine(), &fake, opts(SyncMode::Full, vec![])),
    )
    .await
    .expect("the scopes were not crawled concurrently");
    let s = summary(&events);
    assert_eq!((s.scopes_ok, s.scopes_failed, s.counts[0].upserts), (4, 0, 8));
    assert_eq!(fake.in_flight.peak(), 2);
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn dropping_the_stream_stops_every_scope_in_flight() {
    let fake = Arc::new(Fake {
        concurrency: 3,
        endless: true,
        ..Default::default()
    });
    for scope in ["a", "b", "c"] {
        fake.data.lock().unwrap().insert(scope.into(), Vec::new());
    }
    let mut stream = decoded(engine().start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    for _ in 0..10 {
        stream.next().await.unwrap().unwrap();
    }
    assert_eq!(fake.in_flight.peak(), 3);
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.in_flight.now(), 0);
    let stopped_at = fake.pushed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.pushed.load(Ordering::SeqCst), stopped_at);
}

#[test]
fn upstream_failures_map_to_rate_limited_or_unavailable_scopes() {
    use crate::http::UpstreamError;
    let reset = chrono::DateTime::from_timestamp(1_795_000_000, 0);
    let limited = UpstreamError::RateLimited {
        status: 403,
        reset_time: reset,
    };
    match ScopeError::from_upstream(&limited, "org acme", "github rate limit exhausted") {
        ScopeError::RateLimited { reset_time, message } => {
            assert_eq!(
                (reset_time, message.as_str()),
                (reset, "org acme: github rate limit exhausted")
            );
        }
        other => panic!("not rate limited: {other:?}"),
    }
    let down = UpstreamError::ServerError {
        status: 503,
        attempts: 4,
    };
    match ScopeError::from_upstream(&down, "org acme", "github rate limit exhausted") {
        ScopeError::Failed { reason, message } => assert_eq!(
            (reason, message.as_str()),
            (
                "UPSTREAM_UNAVAILABLE",
                "org acme: upstream answered 503 after 4 attempts"
            )
        ),
        other => panic!("not failed: {other:?}"),
    }
}

fn engine_on(cache: SharedCache, superseded_state_ttl: Duration) -> Engine {
    let config = EngineConfig {
        superseded_state_ttl,
        ..EngineConfig::default()
    };
    Engine::new(config, cache, CancellationToken::new())
}

/// The error that ends a sync from `checkpoint` at once.
async fn refused(engine: &Engine, fake: &Arc<Fake>, checkpoint: Vec<u8>) -> SyncError {
    let mut stream = engine
        .start(fake.clone(), (), opts(SyncMode::Incremental, checkpoint))
        .await
        .unwrap();
    let error = match stream.next().await {
        Some(Err(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(stream.next().await.is_none());
    error
}

/// Asserts `error` says the state of scope a a checkpoint held is gone.
fn assert_state_of_a_expired(error: SyncError) {
    match error {
        SyncError::FailedPrecondition { reason, message } => {
            assert_eq!(reason, "CHECKPOINT_STATE_EXPIRED");
            assert_eq!(
                message,
                "options.checkpoint: the state of scope a it refers to is no longer in the cache; run a FULL sync"
            );
        }
        other => panic!("expected CHECKPOINT_STATE_EXPIRED, got {other:?}"),
    }
}

fn changes(events: &[SyncEvent]) -> Vec<String> {
    render(events)
        .into_iter()
        .filter(|e| e.starts_with("upsert") || e.starts_with("delete"))
        .collect()
}

/// An engine that removes moved-past state at once, a store on its cache,
/// a fake of scopes a (2 entities) and b (1), and the summary of a first
/// FULL sync of it.
async fn superseding_engine_after_a_full_sync() -> (
    Engine,
    super::state::StateStore,
    Arc<Fake>,
    connectors_proto::v1::Summary,
) {
    let cache = SharedCache::memory(16 << 20);
    let engine = engine_on(cache.clone(), Duration::ZERO);
    let store = super::state::StateStore::new(cache, Duration::from_secs(60));
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")]), ("b", &[("1", "q")])]);
    let first = summary(&collect(&engine, &fake, opts(SyncMode::Full, vec![])).await);
    (engine, store, fake, first)
}

#[tokio::test]
async fn a_sync_from_a_checkpoint_removes_the_state_it_held_once_newer_state_is_saved() {
    let (engine, store, fake, first) = superseding_engine_after_a_full_sync().await;
    for scope in ["a", "b"] {
        assert!(
            store
                .load_chunks("fake", &first.sync_id, scope, 1)
                .await
                .unwrap()
                .is_some()
        );
    }

    let second = collect(&engine, &fake, opts(SyncMode::Incremental, first.checkpoint.clone())).await;
    assert_eq!(changes(&second), Vec::<String>::new());
    let second = summary(&second);
    for scope in ["a", "b"] {
        assert_eq!(
            store.load_chunks("fake", &first.sync_id, scope, 1).await.unwrap(),
            None,
            "{scope}"
        );
        assert!(
            store
                .load_chunks("fake", &second.sync_id, scope, 1)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_state_of_a_expired(refused(&engine, &fake, first.checkpoint).await);
    // The newest checkpoint works, and nothing changed since it.
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), vec![("1".into(), "x".into())]);
    let third = collect(&engine, &fake, opts(SyncMode::Incremental, second.checkpoint)).await;
    assert_eq!(changes(&third), vec![format!("delete {T}a/2")]);
    assert_eq!(summary(&third).counts[0].unchanged, 2);
}

#[tokio::test]
async fn the_state_a_checkpoint_held_serves_it_again_only_for_the_grace_period() {
    let engine = engine_on(SharedCache::memory(16 << 20), Duration::from_millis(300));
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")])]);
    let first = summary(&collect(&engine, &fake, opts(SyncMode::Full, vec![])).await).checkpoint;
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), vec![("1".into(), "x2".into())]);
    let expected = vec![format!("upsert {T}a/1"), format!("delete {T}a/2")];
    let second = collect(&engine, &fake, opts(SyncMode::Incremental, first.clone())).await;
    assert_eq!(changes(&second), expected);
    // A client that lost the second checkpoint syncs from the first again.
    let again = collect(&engine, &fake, opts(SyncMode::Incremental, first.clone())).await;
    assert_eq!(changes(&again), expected);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        refused(&engine, &fake, first).await,
        SyncError::FailedPrecondition {
            reason: "CHECKPOINT_STATE_EXPIRED",
            ..
        }
    ));
    // What the newer checkpoints hold is kept.
    for newer in [summary(&second).checkpoint, summary(&again).checkpoint] {
        let events = collect(&engine, &fake, opts(SyncMode::Incremental, newer)).await;
        assert_eq!(changes(&events), Vec::<String>::new());
        assert_eq!(summary(&events).counts[0].unchanged, 1);
    }
}

#[tokio::test]
async fn a_full_sync_from_a_checkpoint_moves_past_its_state_and_a_failed_scope_keeps_it() {
    let (engine, store, fake, first) = superseding_engine_after_a_full_sync().await;
    *fake.failing.lock().unwrap() = Some("a".into());
    let full = collect(&engine, &fake, opts(SyncMode::Full, first.checkpoint.clone())).await;
    assert_eq!(
        render(&full),
        vec![
            format!("upsert {T}a/1"),
            "scope a 2".into(),
            "checkpoint a".into(),
            format!("upsert {T}b/1"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=false deletions=0".into(),
        ]
    );
    // Scope b's state from the first sync is gone, scope a's is kept.
    assert_eq!(store.load_chunks("fake", &first.sync_id, "b", 1).await.unwrap(), None);
    assert!(
        store
            .load_chunks("fake", &first.sync_id, "a", 1)
            .await
            .unwrap()
            .is_some()
    );
    // Scope a failed, so the new checkpoint still holds its first state: a
    // deletion since then is sent, as from the first checkpoint.
    *fake.failing.lock().unwrap() = None;
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), vec![("1".into(), "x".into())]);
    let next = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&full).checkpoint)).await;
    assert_eq!(changes(&next), vec![format!("delete {T}a/2")]);
}

#[tokio::test]
async fn only_the_newest_states_of_a_scope_outlive_the_grace_period_whatever_checkpoints_were_used() {
    let config = EngineConfig {
        superseded_state_ttl: Duration::ZERO,
        kept_generations: 2,
        ..EngineConfig::default()
    };
    let cache = SharedCache::memory(16 << 20);
    let engine = Engine::new(config, cache.clone(), CancellationToken::new());
    let store = super::state::StateStore::new(cache, Duration::from_secs(60));
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")])]);
    // Three FULL syncs without a checkpoint, as a scheduler that never
    // passes one runs them: only the newest two states are kept.
    let mut fulls = Vec::new();
    for _ in 0..3 {
        fulls.push(summary(&collect(&engine, &fake, opts(SyncMode::Full, vec![])).await));
    }
    let kept = async |sync: &connectors_proto::v1::Summary| {
        store
            .load_chunks("fake", &sync.sync_id, "a", 1)
            .await
            .unwrap()
            .is_some()
    };
    assert_eq!(
        (kept(&fulls[0]).await, kept(&fulls[1]).await, kept(&fulls[2]).await),
        (false, true, true)
    );
    assert_state_of_a_expired(refused(&engine, &fake, fulls[0].checkpoint.clone()).await);
    // An INCREMENTAL sync from the second moves past its state; the third's
    // is still one of the newest two.
    let fourth = collect(&engine, &fake, opts(SyncMode::Incremental, fulls[1].checkpoint.clone())).await;
    assert_eq!(changes(&fourth), Vec::<String>::new());
    assert_eq!(summary(&fourth).counts[0].unchanged, 2);
    assert!(!kept(&fulls[1]).await);
    let fifth = collect(&engine, &fake, opts(SyncMode::Incremental, fulls[2].checkpoint.clone())).await;
    assert_eq!(changes(&fifth), Vec::<String>::new());
    assert_eq!(summary(&fifth).counts[0].unchanged, 2);
    assert_eq!(
        (kept(&summary(&fourth)).await, kept(&summary(&fifth)).await),
        (true, true)
    );
}

#[tokio::test]
async fn on_redis_only_the_newest_states_of_a_scope_keep_the_state_ttl() {
    use redis::AsyncCommands;
    let Some(redis) = crate::testing::RedisServer::start_or_skip() else {
        return;
    };
    let prefix = format!("{}:", uuid::Uuid::new_v4());
    let cache = SharedCache::new(Arc::new(
        crate::cache::RedisCache::new(&redis.url(), prefix.clone()).unwrap(),
    ));
    let grace = Duration::from_secs(3600);
    let config = EngineConfig {
        superseded_state_ttl: grace,
        kept_generations: 2,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, cache, CancellationToken::new());
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")]), ("b", &[("1", "q")])]);
    // A chain of 5 syncs, each from the last one's checkpoint, then 3 FULL
    // syncs without a checkpoint.
    let mut checkpoint = summary(&collect(&engine, &fake, opts(SyncMode::Full, vec![])).await).checkpoint;
    for _ in 0..4 {
        let events = collect(&engine, &fake, opts(SyncMode::Incremental, checkpoint)).await;
        assert_eq!(changes(&events), Vec::<String>::new());
        checkpoint = summary(&events).checkpoint;
    }
    for _ in 0..3 {
        collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    }
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap();
    // Manifests and chunks of 8 generations of 2 scopes: per scope the
    // chain's 4 older ones (moved past), then the chain's last and the first
    // FULL sync's (beyond the newest 2) expire within the grace period, the
    // newest 2 live on; so do the 2 scopes' lists of their newest.
    for (pattern, count, expected) in [
        ("state:v1:*", 16, (12, 4)),
        ("pending:v1:*", 16, (12, 4)),
        ("generations:v1:*", 2, (0, 2)),
    ] {
        let keys: Vec<String> = conn.keys(format!("{prefix}{pattern}")).await.unwrap();
        assert_eq!(keys.len(), count, "{pattern}");
        let mut ttls = Vec::new();
        for key in keys {
            let millis: i64 = conn.pttl(&key).await.unwrap();
            ttls.push(millis);
        }
        let within_grace = ttls.iter().filter(|&&ms| ms > 0 && ms <= grace_ms).count();
        let long_lived = ttls.iter().filter(|&&ms| ms > 29 * 24 * 3600 * 1000).count();
        assert_eq!((within_grace, long_lived), expected, "{pattern}: {ttls:?}");
    }
}

#[tokio::test]
async fn a_sync_resumed_after_a_failed_scope_is_not_complete() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y")]), ("b", &[("1", "q")])]);
    *fake.failing.lock().unwrap() = Some("a".into());
    let mut stream = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Full, vec![]))
            .await
            .unwrap(),
    );
    // Up to the checkpoint after scope a failed, then the stream is lost.
    let (before, token) = until_checkpoint(&mut stream).await;
    drop(stream);
    assert_eq!(render(&before), vec![format!("upsert {T}a/1"), "scope a 2".into()]);
    let resumed = collect(&engine, &fake, opts(SyncMode::Full, token)).await;
    assert_eq!(
        render(&resumed),
        vec![
            format!("upsert {T}b/1"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=false deletions=0".into(),
        ]
    );
    let resumed = summary(&resumed);
    assert_eq!((resumed.scopes_ok, resumed.scopes_failed), (1, 1));
    assert_eq!(
        resumed.counts.iter().map(|c| (c.kind, c.upserts)).collect::<Vec<_>>(),
        vec![(EntityKind::Tag as i32, 2)]
    );
}

#[tokio::test]
async fn a_sync_left_unfinished_can_be_resumed_only_for_the_resume_ttl() {
    let config = EngineConfig {
        // Long beside the resumed crawl (40 entities, 5 ms apart): at 300 ms
        // a loaded machine (CI building beside it) once let the first
        // sync's chunk 0 expire before its resume finished, so its state
        // was not saved and the last sync sent all 40 again.
        resume_ttl: Duration::from_millis(1500),
        // Two identical syncs in a row here are two syncs, not one crawl.
        coalesce: false,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, SharedCache::memory(16 << 20), CancellationToken::new());
    let fake = one_slow_scope(40, Duration::from_millis(5));
    // Two syncs whose clients go away after their first page's checkpoint,
    // their scope unfinished (the crawl stops with the stream).
    let abandon = async || {
        let mut stream = decoded(
            engine
                .start(fake.clone(), (), opts(SyncMode::Full, vec![]))
                .await
                .unwrap(),
        );
        until_checkpoint(&mut stream).await.1
    };
    let (first, second) = (abandon().await, abandon().await);
    // Within the resume TTL the first resumes and finishes: its chunks, the
    // first of them written before the resume, are now its state.
    let resumed = collect(&engine, &fake, opts(SyncMode::Full, first)).await;
    assert_eq!(render(&resumed).last().unwrap(), "summary complete=true deletions=0");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // Past the resume TTL the second one's partial state is gone.
    let mut late = engine
        .start(fake.clone(), (), opts(SyncMode::Full, second))
        .await
        .unwrap();
    match late.next().await {
        Some(Err(SyncError::FailedPrecondition { reason, message })) => {
            assert_eq!(reason, "CHECKPOINT_STATE_EXPIRED");
            assert_eq!(
                message,
                "options.checkpoint: the partial state it refers to is no longer in the cache; sync again without it"
            );
        }
        other => panic!("expected CHECKPOINT_STATE_EXPIRED, got {other:?}"),
    }
    // The finished sync's state outlived the resume TTL: nothing changed since.
    let next = collect(
        &engine,
        &fake,
        opts(SyncMode::Incremental, summary(&resumed).checkpoint),
    )
    .await;
    assert_eq!(changes(&next), Vec::<String>::new());
    assert_eq!(summary(&next).counts[0].unchanged, 40);
}

/// A fake whose urns leave the scope out, with these scopes and entities.
fn unscoped(data: &[(&str, &[(&str, &str)])]) -> Arc<Fake> {
    let fake = Fake::with(data);
    let mut fake = Arc::into_inner(fake).expect("not shared yet");
    fake.unscoped = true;
    Arc::new(fake)
}

#[tokio::test]
async fn an_entity_that_moves_to_another_scope_of_the_request_is_not_deleted() {
    let engine = engine();
    // X is in scope b, then moves to scope a (a GitHub repository
    // transferred between two requested orgs keeps its urn).
    let fake = unscoped(&[("a", &[]), ("b", &[("X", "x")])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    assert_eq!(changes(&full), [format!("upsert {T}X")]);
    {
        let mut data = fake.data.lock().unwrap();
        data.insert("a".into(), vec![("X".into(), "x".into())]);
        data.insert("b".into(), Vec::new());
    }
    let moved = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&full).checkpoint)).await;
    assert_eq!(changes(&moved), [format!("upsert {T}X")]);
    assert_eq!(summary(&moved).deletions, 0);
    let again = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&moved).checkpoint)).await;
    assert_eq!(changes(&again), Vec::<String>::new());
    assert_eq!(summary(&again).deletions, 0);
}

#[tokio::test]
async fn an_entity_another_scopes_baseline_holds_is_not_deleted_by_a_scope_that_still_lists_it_from_an_older_state() {
    let engine = engine();
    let fake = unscoped(&[("a", &[("F", "f"), ("X", "x")]), ("b", &[])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    assert_eq!(changes(&full), [format!("upsert {T}F"), format!("upsert {T}X")]);
    // X moves to b; a fails after its first entity, so it keeps the state
    // that holds X, while b's new state holds X too.
    {
        let mut data = fake.data.lock().unwrap();
        data.insert("a".into(), vec![("F".into(), "f".into()), ("G".into(), "g".into())]);
        data.insert("b".into(), vec![("X".into(), "x".into())]);
    }
    *fake.failing.lock().unwrap() = Some("a".into());
    let moved = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&full).checkpoint)).await;
    assert_eq!(changes(&moved), [format!("upsert {T}X")]);
    assert_eq!((summary(&moved).scopes_ok, summary(&moved).scopes_failed), (1, 1));
    // a goes on from its older state, which holds X; b's holds X, unchanged.
    // X is b's to delete or keep: a sends no deletion of it.
    *fake.failing.lock().unwrap() = None;
    let next = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&moved).checkpoint)).await;
    assert_eq!(changes(&next), [format!("upsert {T}G")]);
    assert_eq!(summary(&next).deletions, 0);
    // Gone from b too, X is deleted once, by b.
    fake.data.lock().unwrap().insert("b".into(), Vec::new());
    let gone = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&next).checkpoint)).await;
    assert_eq!(changes(&gone), [format!("delete {T}X")]);
}

/// A memory cache that, while `refusing` is set, does not store the chunks
/// of scopes in progress (`pending:` keys), as a backend that drops or
/// evicts the writes: the state of the scopes synced then is not saved.
/// Reads of keys starting with one of `unreadable` fail as a backend that
/// did not answer; while `hanging` is set, writes of kept checkpoints never
/// end; writes of keys `unwritable` picks are refused as a full backend
/// refuses them. Every key read is logged in `reads`.
struct RefusingCache {
    inner: crate::cache::MemoryCache,
    reads: Mutex<Vec<String>>,
    refusing: std::sync::atomic::AtomicBool,
    unreadable: Mutex<Vec<&'static str>>,
    hanging: std::sync::atomic::AtomicBool,
    unwritable: Mutex<Option<KeyFilter>>,
    /// Keys read as missing (expired or evicted).
    missing: Mutex<Option<KeyPredicate>>,
}

/// Picks cache keys.
type KeyFilter = fn(&str) -> bool;

/// Picks cache keys, with what it needs to.
type KeyPredicate = Box<dyn Fn(&str) -> bool + Send>;

impl RefusingCache {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: crate::cache::MemoryCache::new(16 << 20),
            reads: Mutex::new(Vec::new()),
            refusing: false.into(),
            unreadable: Mutex::new(Vec::new()),
            hanging: false.into(),
            unwritable: Mutex::new(None),
            missing: Mutex::new(None),
        })
    }
}

#[async_trait]
impl crate::cache::Cache for RefusingCache {
    async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, crate::cache::CacheError> {
        self.reads.lock().unwrap().push(key.to_owned());
        if self
            .unreadable
            .lock()
            .unwrap()
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            return Err(crate::cache::CacheError::Unavailable("timed out".into()));
        }
        if self
            .missing
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|missing| missing(key))
        {
            return Ok(None);
        }
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: bytes::Bytes, ttl: Option<Duration>) -> Result<(), crate::cache::CacheError> {
        if key.starts_with("pending:") && self.refusing.load(Ordering::SeqCst) {
            return Ok(());
        }
        if key.starts_with("checkpoint:") && self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self
            .unwritable
            .lock()
            .unwrap()
            .is_some_and(|unwritable| unwritable(key))
        {
            return Err(crate::cache::CacheError::Backend("OOM command not allowed".into()));
        }
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), crate::cache::CacheError> {
        self.inner.delete(key).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: bytes::Bytes,
        ttl: Duration,
    ) -> Result<bool, crate::cache::CacheError> {
        self.inner.set_if_absent(key, value, ttl).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, crate::cache::CacheError> {
        self.inner.expire(key, ttl).await
    }

    fn backend(&self) -> &'static str {
        "refusing"
    }
}

#[tokio::test]
async fn a_scope_whose_state_was_not_saved_is_diffed_against_its_previous_state() {
    let cache = RefusingCache::new();
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y"), ("3", "z")])]);
    let first = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    cache.refusing.store(true, Ordering::SeqCst);
    let unsaved = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&first).checkpoint)).await;
    assert_eq!(changes(&unsaved), Vec::<String>::new());
    cache.refusing.store(false, Ordering::SeqCst);
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), vec![("1".into(), "x".into()), ("3".into(), "z".into())]);
    let next = collect(
        &engine,
        &fake,
        opts(SyncMode::Incremental, summary(&unsaved).checkpoint),
    )
    .await;
    assert_eq!(changes(&next), [format!("delete {T}a/2")]);
    assert_eq!(summary(&next).deletions, 1);
}

#[tokio::test]
async fn a_checkpoint_kept_for_another_request_is_ignored_but_one_the_client_sends_is_refused() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x")])]);
    let first = collect(&engine, &fake, keyed(Vec::new())).await;
    assert_eq!(changes(&first), [format!("upsert {T}a/1")]);
    // The server's scopes change (a default scope such as GITHUB_ORGS grew):
    // the kept checkpoint is for another request now.
    fake.data
        .lock()
        .unwrap()
        .insert("b".into(), vec![("1".into(), "q".into())]);
    let changed = match engine.start(fake.clone(), (), keyed(Vec::new())).await {
        Ok(stream) => decoded(stream).map(|e| e.unwrap()).collect::<Vec<_>>().await,
        Err(error) => panic!("the kept checkpoint was not ignored: {error}"),
    };
    assert_eq!(
        render(&changed),
        vec![
            // The checkpoint it starts from: none kept that fits.
            "checkpoint ".into(),
            format!("upsert {T}a/1"),
            "scope a 1".into(),
            "checkpoint a".into(),
            format!("upsert {T}b/1"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=true deletions=0".into(),
        ]
    );
    // Its checkpoint is kept instead: the next sync goes on from it.
    let next = collect(&engine, &fake, keyed(Vec::new())).await;
    assert_eq!(changes(&next), Vec::<String>::new());
    assert_eq!(summary(&next).counts[0].unchanged, 2);
    // A checkpoint for another request that the client sends is refused.
    match engine.start(fake.clone(), (), keyed(summary(&first).checkpoint)).await {
        Err(SyncError::InvalidArgument { field, message }) => assert_eq!(
            (field.as_str(), message.as_str()),
            (
                "options.checkpoint",
                "checkpoint was issued for a different request (scopes, kinds or filters changed)"
            )
        ),
        other => panic!("expected INVALID_ARGUMENT, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_resumed_sync_knows_what_the_scopes_done_before_the_break_pushed() {
    let engine = engine();
    let fake = unscoped(&[("a", &[]), ("b", &[("X", "x")])]);
    let full = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    {
        let mut data = fake.data.lock().unwrap();
        data.insert("a".into(), vec![("X".into(), "x".into())]);
        data.insert("b".into(), Vec::new());
    }
    // The stream breaks after scope a (which X moved to) is done.
    let mut stream = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Incremental, summary(&full).checkpoint))
            .await
            .unwrap(),
    );
    let (before, token) = until_checkpoint(&mut stream).await;
    drop(stream);
    assert_eq!(render(&before), [format!("upsert {T}X"), "scope a 1".into()]);
    let resumed = collect(&engine, &fake, opts(SyncMode::Incremental, token)).await;
    assert_eq!(
        render(&resumed),
        ["scope b 1", "checkpoint b", "summary complete=true deletions=0"]
    );
}

#[test]
fn a_sync_whose_client_stopped_reading_after_its_deadline_ended_by_the_deadline() {
    let now = tokio::time::Instant::now();
    assert_eq!(engine::left(None), "cancelled");
    assert_eq!(engine::left(Some(now + Duration::from_secs(60))), "cancelled");
    assert_eq!(engine::left(Some(now)), "deadline_exceeded");
    assert_eq!(
        engine::left(now.checked_sub(Duration::from_millis(1))),
        "deadline_exceeded"
    );
}

#[tokio::test]
async fn a_sync_whose_client_stopped_reading_ends_at_its_deadline() {
    let config = EngineConfig {
        channel_capacity: 4,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, SharedCache::memory(16 << 20), CancellationToken::new());
    let items: Vec<(String, String)> = (0..50).map(|i| (format!("{i:02}"), "v".to_owned())).collect();
    let fake = Arc::new(Fake::default());
    fake.data.lock().unwrap().insert("a".into(), items);
    let options = SyncOptions {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(200)),
        ..opts(SyncMode::Full, vec![])
    };
    // Never read: the sync fills the channel and waits on its client.
    let stream = engine.start(fake.clone(), (), options).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(engine.active_syncs(), 1, "waiting on its client");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(engine.active_syncs(), 0, "ended at the deadline, the stream still held");
    drop(stream);
}

#[tokio::test]
async fn a_sync_from_its_state_key_starts_with_the_checkpoint_it_starts_from() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "x")])]);
    let first = collect(&engine, &fake, keyed(Vec::new())).await;
    assert_eq!(changes(&first), [format!("upsert {T}a/1")]);
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), vec![("1".into(), "x".into()), ("2".into(), "y".into())]);
    // The client reads the first event, then its connection breaks while the
    // server runs the sync to its end (saving its checkpoints under the key).
    let mut stream = decoded(engine.start(fake.clone(), (), keyed(Vec::new())).await.unwrap());
    let Some(Ok(SyncEvent {
        event: Some(Event::Checkpoint(start)),
    })) = stream.next().await
    else {
        panic!("the stream does not start with a checkpoint")
    };
    assert_eq!(
        start.token,
        summary(&first).checkpoint,
        "the kept checkpoint it starts from"
    );
    while engine.active_syncs() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);
    // Called again with the checkpoint it got, it is sent the change it
    // missed; without one, it would go on from what the server kept.
    let again = collect(&engine, &fake, keyed(start.token)).await;
    assert_eq!(changes(&again), [format!("upsert {T}a/2")]);
    let kept = collect(&engine, &fake, keyed(Vec::new())).await;
    assert_eq!(changes(&kept), Vec::<String>::new());
}

/// An INCREMENTAL sync from `checkpoint`, keeping its checkpoints under the
/// state key "nightly".
fn keyed(checkpoint: Vec<u8>) -> SyncOptions {
    SyncOptions {
        mode: SyncMode::Incremental,
        checkpoint,
        state_key: Some("nightly".into()),
        ..Default::default()
    }
}

/// The failed scopes of a sync: scope, reason, error.
fn failures(events: &[SyncEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) if s.state == ProtoScopeState::Failed as i32 => {
                Some((s.scope.clone(), s.reason.clone(), s.error.clone()))
            }
            _ => None,
        })
        .collect()
}

/// An engine on `cache` after a sync under the state key of scope a (1, 2,
/// 3), and its fake, from which a/3 is then removed.
async fn a_keyed_sync_then_one_gone(cache: &Arc<RefusingCache>) -> (Engine, Arc<Fake>) {
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Fake::with(&[("a", &[("1", "x"), ("2", "y"), ("3", "z")])]);
    let first = collect(&engine, &fake, keyed(vec![])).await;
    assert_eq!(summary(&first).counts[0].upserts, 3);
    fake.data.lock().unwrap().get_mut("a").unwrap().pop();
    (engine, fake)
}

#[tokio::test]
async fn a_state_the_cache_could_not_read_fails_its_scope_instead_of_syncing_it_in_full() {
    let cache = RefusingCache::new();
    let (engine, fake) = a_keyed_sync_then_one_gone(&cache).await;
    // The scope's state does not answer: the scope fails, nothing is sent
    // as new, and it keeps its state.
    *cache.unreadable.lock().unwrap() = vec!["state:"];
    let unread = collect(&engine, &fake, keyed(vec![])).await;
    assert_eq!(changes(&unread), Vec::<String>::new());
    assert_eq!(
        failures(&unread),
        [(
            "a".to_owned(),
            "STATE_UNAVAILABLE".to_owned(),
            "the state of scope a could not be read (cache backend unavailable: timed out); sync again".to_owned()
        )]
    );
    assert!(!summary(&unread).complete);
    // Read again, the state gives the deletion.
    cache.unreadable.lock().unwrap().clear();
    let next = collect(&engine, &fake, keyed(vec![])).await;
    assert_eq!(
        changes(&next),
        [format!("delete {}", urn("fake", EntityKind::Tag, "a/3"))]
    );
}

/// A baseline without urns whose saved state is gone from the cache by the
/// time the scope ends (evicted while it was crawled) cannot say which
/// entities went: the scope fails, sends no deletion and keeps its
/// baseline, and the next sync, with the state there, sends the deletion.
#[tokio::test]
async fn a_baseline_without_urns_whose_state_went_meanwhile_fails_its_scope_and_keeps_it() {
    let cache = RefusingCache::new();
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Arc::new(Fake {
        lean: true,
        ..Fake::default()
    });
    fake.data.lock().unwrap().insert("a".into(), numbered(1..=3));
    let first = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let token = summary(&first).checkpoint;
    // a/3 goes, a/2 changes.
    fake.data.lock().unwrap().insert(
        "a".into(),
        vec![("1".into(), "v".into()), ("2".into(), "changed".into())],
    );
    // The baseline was read as the scope began; its chunks go before it ends.
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    *cache.missing.lock().unwrap() = Some(Box::new({
        let gone = gone.clone();
        move |key| gone.load(Ordering::SeqCst) && key.starts_with("pending:v1:")
    }));
    *fake.on_crawl.lock().unwrap() = Some(Box::new(move || gone.store(true, Ordering::SeqCst)));
    let failed = collect(&engine, &fake, opts(SyncMode::Incremental, token.clone())).await;
    *cache.missing.lock().unwrap() = None;
    assert_eq!(
        changes(&failed),
        [format!("upsert {}", urn("fake", EntityKind::Tag, "a/2"))]
    );
    assert_eq!(
        failures(&failed),
        [(
            "a".to_owned(),
            "STATE_UNAVAILABLE".to_owned(),
            "the baseline state of scope a could not be read again to find its deletions (it is no longer in the cache); sync again".to_owned()
        )]
    );
    assert!(!summary(&failed).complete);
    // Its checkpoint still holds the old state: the deletion comes now.
    let next = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&failed).checkpoint)).await;
    assert_eq!(
        changes(&next),
        [
            format!("upsert {}", urn("fake", EntityKind::Tag, "a/2")),
            format!("delete {}", urn("fake", EntityKind::Tag, "a/3")),
        ]
    );
    assert!(summary(&next).complete);
}

#[tokio::test]
async fn a_kept_checkpoint_the_cache_could_not_read_ends_the_sync_unavailable() {
    let cache = RefusingCache::new();
    let (engine, fake) = a_keyed_sync_then_one_gone(&cache).await;
    *cache.unreadable.lock().unwrap() = vec!["checkpoint:"];
    let error = match engine.start(fake.clone(), (), keyed(vec![])).await {
        Err(error) => error,
        Ok(_) => panic!("the sync started without its checkpoint"),
    };
    assert_eq!(
        error.to_string(),
        "the checkpoint kept under options.state_key could not be read (cache backend unavailable: timed out); retry"
    );
    assert!(matches!(error, SyncError::Unavailable(_)));
    cache.unreadable.lock().unwrap().clear();
    let next = collect(&engine, &fake, keyed(vec![])).await;
    assert_eq!(
        changes(&next),
        [format!("delete {}", urn("fake", EntityKind::Tag, "a/3"))]
    );
}

#[tokio::test]
async fn a_drain_while_a_checkpoint_is_being_kept_sends_that_checkpoint_again() {
    let cache = RefusingCache::new();
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Fake::with(&[("a", &[("1", "x")]), ("b", &[("2", "y")])]);
    // Keeping the checkpoint after scope a never ends (a cache that stopped
    // answering); the drain comes meanwhile.
    cache.hanging.store(true, Ordering::SeqCst);
    let mut stream = decoded(engine.start(fake.clone(), (), keyed(vec![])).await.unwrap());
    let drained = tokio::spawn({
        let engine = engine.clone();
        async move { engine.drain(Duration::from_millis(200)).await }
    });
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    assert!(!drained.await.unwrap());
    let error = items.pop();
    assert!(matches!(error, Some(Err(SyncError::Unavailable(_)))), "{error:?}");
    let events: Vec<SyncEvent> = items.into_iter().map(Result::unwrap).collect();
    // The scope's status came: the client must not go back before it.
    assert_eq!(
        render(&events),
        [
            "checkpoint ".to_owned(),
            format!("upsert {}", urn("fake", EntityKind::Tag, "a/1")),
            "scope a 1".to_owned(),
            "checkpoint a".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_follower_ends_when_a_batch_of_the_log_could_not_be_stored_not_when_the_crawl_ends() {
    let cache = RefusingCache::new();
    // The log's second batch is refused.
    *cache.unwritable.lock().unwrap() = Some(|key| key.starts_with("crawl:v1:") && key.ends_with(":1"));
    let engine = Engine::new(
        EngineConfig::default(),
        SharedCache::new(cache.clone()),
        CancellationToken::new(),
    );
    let fake = one_slow_scope(40, Duration::from_millis(20));
    let leader = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let follower = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let followed = async {
        let items: Vec<_> = follower.collect().await;
        (items, std::time::Instant::now())
    };
    let led = async {
        let events: Vec<SyncEvent> = leader.map(|e| e.unwrap()).collect().await;
        (events, std::time::Instant::now())
    };
    let ((mut items, follower_ended), (events, leader_ended)) = tokio::join!(followed, led);
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 1, "one crawl");
    assert!(summary(&events).complete);
    match items.pop() {
        Some(Err(SyncError::Unavailable(message))) => assert_eq!(
            message,
            "the crawl this sync joined ended early (unpublished); resume from the last checkpoint"
        ),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    // It had the first batch (the events before the first checkpoint, and
    // that checkpoint), and ended long before the crawl's 40 entities.
    let received: Vec<SyncEvent> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(render(&received), render(&events[..received.len()]));
    assert!(follower_ended < leader_ended);
}

#[tokio::test]
async fn two_resumes_from_one_checkpoint_keep_states_of_their_own() {
    let engine = engine();
    let fake = Fake::with(&[("a", &[("1", "v"), ("2", "v"), ("3", "v"), ("4", "v"), ("5", "v")])]);
    // A FULL sync broken after its first page (the followers of a coalesced
    // crawl that ended early all hold this same checkpoint).
    let mut stream = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Full, vec![]))
            .await
            .unwrap(),
    );
    let (_, mid_scope) = until_checkpoint(&mut stream).await;
    drop(stream);
    let first = collect(&engine, &fake, opts(SyncMode::Full, mid_scope.clone())).await;
    fake.data.lock().unwrap().get_mut("a").unwrap().pop();
    // The second resume crawls an estate without 5: its state must not
    // replace the state the first one's checkpoint refers to.
    let second = collect(&engine, &fake, opts(SyncMode::Full, mid_scope)).await;
    assert_eq!(summary(&first).sync_id, summary(&second).sync_id);
    assert_ne!(summary(&first).checkpoint, summary(&second).checkpoint);
    let after_first = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&first).checkpoint)).await;
    assert_eq!(
        changes(&after_first),
        [format!("delete {}", urn("fake", EntityKind::Tag, "a/5"))]
    );
    let after_second = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&second).checkpoint)).await;
    assert_eq!(changes(&after_second), Vec::<String>::new());
}

#[tokio::test]
async fn a_state_coalesced_syncs_share_outlives_one_client_moving_past_it() {
    // States moved past expire at once here.
    let engine = engine_on(SharedCache::memory(16 << 20), Duration::ZERO);
    let fake = one_slow_scope(6, Duration::from_millis(20));
    let first = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let second = decoded(engine.start(fake.clone(), (), SyncOptions::default()).await.unwrap());
    let (first, second): (Vec<SyncEvent>, Vec<SyncEvent>) = tokio::join!(
        first.map(|e| e.unwrap()).collect(),
        second.map(|e| e.unwrap()).collect()
    );
    assert_eq!(fake.crawls.load(Ordering::SeqCst), 1, "one crawl");
    assert_eq!(summary(&first).checkpoint, summary(&second).checkpoint);
    // The first client goes on from the shared checkpoint; the second one
    // still can, later.
    let next = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&first).checkpoint)).await;
    assert_eq!(changes(&next), Vec::<String>::new());
    let later = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&second).checkpoint)).await;
    assert_eq!(changes(&later), Vec::<String>::new());
    assert!(summary(&later).complete);
}

#[test]
fn a_resumed_cursor_restarts_once_and_only_on_the_first_request() {
    // The first request carried the checkpoint's token and was refused.
    let mut resumed = ResumedCursor::new(true);
    assert!(resumed.restart("fake", "s", true));
    // The restarted listing's own refusals fail the scope.
    assert!(!resumed.restart("fake", "s", true));
    // A first request that was answered: later refusals are not the token's.
    let mut resumed = ResumedCursor::new(true);
    assert!(!resumed.restart("fake", "s", false));
    assert!(!resumed.restart("fake", "s", true));
    // Not resumed from a token.
    assert!(!ResumedCursor::new(false).restart("fake", "s", true));
}

fn scope_statuses(events: &[SyncEvent]) -> Vec<(String, i32, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) => Some((s.scope.clone(), s.state, s.reason.clone(), s.error.clone())),
            _ => None,
        })
        .collect()
}

/// One item's failure (`fail_when_done`) does not stop its scope: the rest
/// is sent, then the scope ends FAILED with it and keeps its baseline; a
/// sync resumed from a checkpoint after the failure still ends it FAILED.
#[tokio::test]
async fn an_item_that_fails_alone_fails_its_scope_after_the_rest_is_sent_also_when_resumed() {
    let engine = engine();
    let fake = Fake::with(&[
        ("a", &[("1", "x"), ("2", "y"), ("3", "z"), ("4", "w"), ("5", "v")]),
        ("b", &[("1", "q")]),
    ]);
    fake.deferring
        .lock()
        .unwrap()
        .extend([("a".to_owned(), 1), ("a".to_owned(), 3)]);
    let events = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    let failed = ProtoScopeState::Failed as i32;
    assert_eq!(
        render(&events),
        vec![
            format!("upsert {T}a/1"),
            "checkpoint a".into(),
            format!("upsert {T}a/3"),
            "checkpoint a".into(),
            format!("upsert {T}a/5"),
            format!("scope a {failed}"),
            "checkpoint a".into(),
            format!("upsert {T}b/1"),
            "scope b 1".into(),
            "checkpoint b".into(),
            "summary complete=false deletions=0".into(),
        ]
    );
    let status = (
        "a".to_owned(),
        failed,
        "UPSTREAM_MALFORMED".to_owned(),
        "item 2: its body does not parse (and 1 more such failures in this scope)".to_owned(),
    );
    assert_eq!(scope_statuses(&events)[0], status);
    let s = summary(&events);
    assert_eq!((s.scopes_ok, s.scopes_failed), (1, 1));

    // Resumed from the first checkpoint (after item 2 failed): the rest of
    // the scope, which still ends FAILED with both failures.
    let resumed = collect(&engine, &fake, opts(SyncMode::Full, checkpoints(&events)[0].clone())).await;
    assert_eq!(render(&resumed), render(&events)[2..]);
    assert_eq!(scope_statuses(&resumed)[0], status);

    // The failed scope kept no state: an INCREMENTAL from the first sync's
    // summary syncs it in full, deleting nothing; once the items are read,
    // it ends OK.
    fake.deferring.lock().unwrap().clear();
    let next = collect(&engine, &fake, opts(SyncMode::Incremental, summary(&events).checkpoint)).await;
    assert_eq!(
        changes(&next),
        vec![
            format!("upsert {T}a/1"),
            format!("upsert {T}a/2"),
            format!("upsert {T}a/3"),
            format!("upsert {T}a/4"),
            format!("upsert {T}a/5"),
        ]
    );
    assert_eq!(summary(&next).scopes_failed, 0);
}

#[test]
fn a_deferred_failure_read_back_from_a_token_is_bounded_and_names_a_known_reason() {
    let read_back = DeferredFailure {
        reason: "SOMETHING_A_CLIENT_WROTE".into(),
        message: format!("line one\nline two{}", "x".repeat(5000)),
        more: 0,
    };
    match read_back.into_error() {
        ScopeError::Failed { reason, message } => {
            assert_eq!(reason, "UPSTREAM_ERROR");
            assert_eq!(message.chars().count(), 1024);
            assert!(message.starts_with("line oneline twoxxx"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// How many times each state chunk of a scope in progress was read (of any
/// generation), by chunk number, since the last call.
fn chunk_reads(cache: &RefusingCache) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for key in std::mem::take(&mut *cache.reads.lock().unwrap()) {
        if key.starts_with("pending:") {
            let chunk = key.rsplit(':').next().unwrap().parse().unwrap();
            *counts.entry(chunk).or_default() += 1;
        }
    }
    counts
}

/// Tags `ids`, each with the value "v".
fn numbered(ids: impl Iterator<Item = usize>) -> Vec<(String, String)> {
    ids.map(|i| (i.to_string(), "v".to_owned())).collect()
}

/// The upserts of tags `ids` of scope a, rendered.
fn upserts_of(ids: impl Iterator<Item = usize>) -> Vec<String> {
    ids.map(|i| format!("upsert {T}a/{i}")).collect()
}

#[tokio::test]
async fn a_resumed_scope_listed_again_from_its_first_page_sends_the_rest_once_reading_its_chunks_once() {
    let cache = RefusingCache::new();
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Arc::new(Fake {
        restarts: true,
        ..Fake::default()
    });
    fake.data.lock().unwrap().insert("a".into(), numbered(0..40));
    // The stream breaks after 20 entities, 10 checkpoints (a chunk each).
    let mut stream = decoded(
        engine
            .start(fake.clone(), (), opts(SyncMode::Full, vec![]))
            .await
            .unwrap(),
    );
    let mut before = Vec::new();
    let mut token = Vec::new();
    for _ in 0..10 {
        let (events, next) = until_checkpoint(&mut stream).await;
        before.extend(changes(&events));
        token = next;
    }
    drop(stream);
    assert_eq!(before, upserts_of(0..20));
    chunk_reads(&cache);
    // The resumed scope lists all 40 again: the first 20 are not sent again.
    let resumed = collect(&engine, &fake, opts(SyncMode::Full, token)).await;
    assert_eq!(changes(&resumed), upserts_of(20..40));
    // Each of the 10 chunks is read three times: the resume loads it and
    // copies it to its own generation, and the first entity listed again
    // reads it (not each of the 20).
    assert_eq!(chunk_reads(&cache), (0..10).map(|chunk| (chunk, 3)).collect());
}

/// A FULL sync of scope a listing tags 1 to 4 twice (chunks of 2 saved at
/// its checkpoints), its state chunks unreadable if `unreadable`: the
/// upserts sent and the chunks read.
async fn listed_twice(unreadable: bool) -> (Vec<String>, BTreeMap<u32, usize>) {
    let cache = RefusingCache::new();
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Fake::with(&[]);
    fake.data
        .lock()
        .unwrap()
        .insert("a".into(), numbered((1..=4).chain(1..=4)));
    if unreadable {
        *cache.unreadable.lock().unwrap() = vec!["pending:"];
    }
    let events = collect(&engine, &fake, opts(SyncMode::Full, vec![])).await;
    (changes(&events), chunk_reads(&cache))
}

#[tokio::test]
async fn an_entity_listed_again_in_a_scope_is_sent_once_and_its_chunks_read_once() {
    // Chunks 0 (1, 2) and 1 (3, 4) are read when 1 comes again; 2, 3 and 4
    // are found without reading them again.
    assert_eq!(
        listed_twice(false).await,
        (upserts_of(1..=4), BTreeMap::from([(0, 1), (1, 1)]))
    );
}

#[tokio::test]
async fn without_its_chunks_an_entity_listed_again_is_sent_again_not_lost() {
    // 1, 2 and 3 each try to read chunk 0 (1, 2), in vain; then the scope
    // stops trying, and 4 is sent again without a read.
    assert_eq!(
        listed_twice(true).await,
        (upserts_of((1..=4).chain(1..=4)), BTreeMap::from([(0, 3)]))
    );
}

/// A sync resumed from the checkpoint kept under its state key, whose scope's
/// saved chunks are only partly there (chunk 0 read, chunk 1 evicted),
/// starts that scope again from its first page as if nothing had been sent:
/// what chunk 0 holds is not taken as sent nor as seen in the baseline, so
/// every entity that changed is sent, one gone since is deleted, and the
/// scope's new state holds the rest.
#[tokio::test]
async fn a_resume_whose_chunks_are_partly_gone_starts_the_scope_again_taking_none_as_sent() {
    let cache = RefusingCache::new();
    let engine = engine_on(SharedCache::new(cache.clone()), Duration::from_secs(60));
    let fake = Arc::new(Fake {
        slow: Some(Duration::from_millis(100)),
        ..Fake::default()
    });
    fake.data.lock().unwrap().insert("a".into(), numbered(1..=6));
    collect(&engine, &fake, keyed(Vec::new())).await;
    let changed: Vec<(String, String)> = (1..=6).map(|i| (i.to_string(), "w".to_owned())).collect();
    fake.data.lock().unwrap().insert("a".into(), changed);
    // The stream breaks after its second page (chunks 0 and 1 saved, the
    // checkpoint kept under the key points after them).
    let mut stream = decoded(engine.start(fake.clone(), (), keyed(Vec::new())).await.unwrap());
    let (mut pages, mut sync_id) = (0, String::new());
    while pages < 3 {
        // The stream's first checkpoint is the one it starts from.
        match stream.next().await.unwrap().unwrap().event {
            Some(Event::Checkpoint(_)) => pages += 1,
            Some(Event::Upsert(u)) => sync_id = u.provenance.unwrap().sync_id,
            _ => {}
        }
    }
    drop(stream);
    while engine.active_syncs() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // a/1 (in chunk 0) is gone since.
    fake.data.lock().unwrap().get_mut("a").unwrap().remove(0);
    // The broken sync's chunks but its first (the baseline's are there).
    let broken = format!("pending:v1:fake:{sync_id}:");
    *cache.missing.lock().unwrap() = Some(Box::new(move |key| key.starts_with(&broken) && !key.ends_with(":0")));
    let resumed = collect(&engine, &fake, keyed(Vec::new())).await;
    *cache.missing.lock().unwrap() = None;
    assert_eq!(summary(&resumed).sync_id, sync_id, "the broken sync, resumed");
    let mut expected: Vec<String> = (2..=6).map(|i| format!("upsert {T}a/{i}")).collect();
    expected.push(format!("delete {T}a/1"));
    assert_eq!(changes(&resumed), expected);
    // The new state holds the five: nothing changed, nothing sent.
    let next = collect(&engine, &fake, keyed(Vec::new())).await;
    assert_eq!(changes(&next), Vec::<String>::new());
    assert_eq!(summary(&next).counts[0].unchanged, 5);
}
