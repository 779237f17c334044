//! The connector conformance suite, written once and run against every
//! connector through a [`Harness`] (see the `conformance_suite!` invocations).

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use connectors_proto::v1::{
    ConnectorAvailability, EntityKind, ScopeState, SourceMode, SyncEvent, SyncMode, SyncOptions, sync_event::Event,
};
use connectors_server::replay::{Exchange, Fault, ReplayOptions};
use futures::StreamExt;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Code, Status};

use crate::support::{TestServer, deletions, scope_statuses, summary, upserts};

/// What the suite needs to know about a connector.
#[async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    /// Connector id.
    const ID: &'static str;
    /// Starts a raw (non-resuming) sync of the connector's default fixture scope.
    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status>;
    /// Upserts per kind of a FULL sync of the default fixture scope.
    fn expected_counts() -> Vec<(EntityKind, u64)>;
    /// Switches the replay server to the "changed" scenario.
    fn apply_change(server: &TestServer);
    /// Urns an INCREMENTAL sync across the change must upsert and delete.
    fn expected_change() -> (Vec<String>, Vec<String>);
    /// The scopes a FULL sync under `run`'s faults fails, as (scope, state,
    /// reason, error), in stream order: faults the connector cannot recover
    /// from by design. Every other scope must lose nothing.
    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)>;
    /// Bad requests and the field each must be rejected for.
    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)>;
}

pub async fn collect(stream: Result<tonic::Streaming<SyncEvent>, Status>) -> Vec<SyncEvent> {
    let mut stream = stream.expect("sync starts");
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.expect("stream ends ok"));
    }
    events
}

pub fn full() -> SyncOptions {
    SyncOptions {
        mode: SyncMode::Full as i32,
        ..Default::default()
    }
}

pub fn incremental(checkpoint: Vec<u8>) -> SyncOptions {
    SyncOptions {
        mode: SyncMode::Incremental as i32,
        checkpoint,
        ..Default::default()
    }
}

pub async fn descriptor<H: Harness>() {
    let server = TestServer::start().await;
    let listed = server.client.list_connectors().await.unwrap();
    let entry = listed.iter().find(|c| c.id == H::ID).expect("listed");
    assert_eq!(entry.availability, ConnectorAvailability::Fixture as i32);
    // The kinds it declares are the kinds its fixture sync emits (the
    // summary counts them in kind order).
    let mut kinds: Vec<EntityKind> = entry.kinds.iter().map(|k| EntityKind::try_from(*k).unwrap()).collect();
    kinds.sort();
    let emitted: Vec<EntityKind> = H::expected_counts().into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, emitted);
    assert!(
        entry.reason.contains("set "),
        "fixture reason names what to set: {}",
        entry.reason
    );
    let got = server.client.get_connector(H::ID).await.unwrap();
    assert_eq!(&got, entry);
}

pub async fn full_sync<H: Harness>() {
    let server = TestServer::start().await;
    let events = collect(H::open(&server, full()).await).await;
    let s = summary(&events);
    assert!(s.complete);
    assert_eq!(s.mode, SyncMode::Full as i32);
    let counts: Vec<(EntityKind, u64)> = s
        .counts
        .iter()
        .map(|c| (EntityKind::try_from(c.kind).unwrap(), c.upserts))
        .collect();
    assert_eq!(counts, H::expected_counts());
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let ups = upserts(&events);
    assert_eq!(ups.len() as u64, total);
    assert_eq!(
        ups.iter().map(|(u, _)| u).collect::<BTreeSet<_>>().len(),
        ups.len(),
        "urns are unique"
    );
    let prefix = format!("urn:connectors:{}:", H::ID);
    for event in &events {
        if let Some(Event::Upsert(u)) = &event.event {
            let entity = u.entity.as_ref().unwrap();
            let p = u.provenance.as_ref().unwrap();
            assert!(entity.urn.starts_with(&prefix), "{}", entity.urn);
            assert_eq!(p.connector_id, H::ID);
            assert_eq!(p.sync_id, s.sync_id);
            assert_eq!(p.source_mode, SourceMode::Fixture as i32);
            assert!(!p.source.is_empty() && !p.operation.is_empty());
            assert!(p.fetch_time.is_some());
            // The hash is SHA-256 of the entity's protobuf encoding, as received.
            assert_eq!(p.content_hash, hex::encode(Sha256::digest(entity.encode_to_vec())));
        }
    }
    // Every scope ended OK, each status followed at once by the checkpoint
    // after that scope (the engine sends the two back to back).
    let statuses = scope_statuses(&events);
    assert!(!statuses.is_empty());
    for (at, event) in events.iter().enumerate() {
        if let Some(Event::ScopeStatus(status)) = &event.event {
            match events.get(at + 1).and_then(|next| next.event.as_ref()) {
                Some(Event::Checkpoint(checkpoint)) => assert_eq!(checkpoint.scope, status.scope),
                other => panic!("scope {} is followed by {other:?}, not its checkpoint", status.scope),
            }
        }
    }
    assert!(statuses.iter().all(|(_, state)| *state == ScopeState::Ok as i32));
    assert_eq!(s.scopes_ok as usize, statuses.len());
    assert_eq!(s.upstream_requests, server.upstream_requests(H::ID));
    assert_eq!(server.unmatched(H::ID), Vec::<String>::new());
}

pub async fn idempotent<H: Harness>() {
    let server = TestServer::start().await;
    let first = upserts(&collect(H::open(&server, full()).await).await);
    let second = upserts(&collect(H::open(&server, full()).await).await);
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

pub async fn incremental_without_change<H: Harness>() {
    let server = TestServer::start().await;
    let base = collect(H::open(&server, full()).await).await;
    let events = collect(H::open(&server, incremental(summary(&base).checkpoint)).await).await;
    assert_eq!(upserts(&events), Vec::<(String, String)>::new());
    assert_eq!(deletions(&events), Vec::<String>::new());
    let s = summary(&events);
    assert!(s.complete);
    let unchanged: u64 = s.counts.iter().map(|c| c.unchanged).sum();
    let expected: u64 = H::expected_counts().iter().map(|(_, n)| n).sum();
    assert_eq!(unchanged, expected);
}

pub async fn incremental_with_change<H: Harness>() {
    let server = TestServer::start().await;
    let base = collect(H::open(&server, full()).await).await;
    H::apply_change(&server);
    let events = collect(H::open(&server, incremental(summary(&base).checkpoint)).await).await;
    let (mut want_up, mut want_del) = H::expected_change();
    want_up.sort();
    want_del.sort();
    let mut got_up: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    got_up.sort();
    let mut got_del = deletions(&events);
    got_del.sort();
    assert_eq!(got_up, want_up);
    assert_eq!(got_del, want_del);
    assert_eq!(summary(&events).deletions, want_del.len() as u64);
    assert_eq!(server.unmatched(H::ID), Vec::<String>::new());
}

pub async fn resume<H: Harness>() {
    let server = TestServer::start().await;
    let unbroken = collect(H::open(&server, full()).await).await;
    let reference = upserts(&unbroken);
    // Read until the first checkpoint taken inside a scope (a page boundary)
    // or, failing that, after the first scope; then drop the stream.
    let mut stream = H::open(&server, full()).await.unwrap();
    let mut before = Vec::new();
    let mut finished_scopes = BTreeSet::new();
    let token = loop {
        let event = stream.next().await.expect("stream has a checkpoint").unwrap();
        match &event.event {
            Some(Event::Checkpoint(c)) => break c.token.clone(),
            Some(Event::ScopeStatus(s)) => {
                finished_scopes.insert(s.scope.clone());
            }
            _ => {}
        }
        before.push(event);
    };
    drop(stream);
    assert!(!upserts(&before).is_empty(), "entities came before the checkpoint");
    let mut options = full();
    options.checkpoint = token;
    let after = collect(H::open(&server, options).await).await;
    let mut combined = upserts(&before);
    combined.extend(upserts(&after));
    assert_eq!(
        combined, reference,
        "before + after the break = an unbroken sync, without duplicates"
    );
    for (scope, _) in scope_statuses(&after) {
        assert!(!finished_scopes.contains(&scope), "scope {scope} sent again");
    }
    // The resumed sync's summary covers the whole sync, as the unbroken one's.
    let (whole, resumed) = (summary(&unbroken), summary(&after));
    assert_eq!((resumed.counts, resumed.deletions), (whole.counts, whole.deletions));
    assert_eq!(
        (resumed.scopes_ok, resumed.scopes_failed, resumed.complete),
        (whole.scopes_ok, whole.scopes_failed, whole.complete)
    );
}

/// How the replay refuses the provider page token a checkpoint holds (the
/// provider expired it) when a client resumes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Refused; the listing's first page hands out a fresh token, which is answered.
    Fresh,
    /// Refused; the first page hands out the refused token again.
    SameToken,
    /// Refused, and the first page is refused too.
    FirstPageToo,
}

/// A page of the listing whose token a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Its first page, which hands out the token.
    First,
    /// The page the token asks for.
    Next,
}

/// Rewrites the exchanges of `path` for `refusal`: `page` says which page
/// an exchange answers (`None`: another listing); `refuse` turns an exchange
/// into the provider's refusal; `fresh` makes the first page hand out a new
/// token, or the next page answer it.
pub fn refuse_page_token(
    set: &mut connectors_server::replay::FixtureSet,
    path: &str,
    refusal: Refusal,
    page: impl Fn(&Exchange) -> Option<Page>,
    refuse: impl Fn(&mut Exchange),
    fresh: impl Fn(&mut Exchange, Page),
) {
    let mut refused = Vec::new();
    for exchange in set.exchanges_mut(path).unwrap().iter_mut() {
        let Some(page) = page(exchange) else { continue };
        let refuses = page == Page::Next || refusal == Refusal::FirstPageToo;
        if refuses {
            let mut old = exchange.clone();
            refuse(&mut old);
            refused.push(old);
        }
        if refusal == Refusal::Fresh {
            fresh(exchange, page);
        }
    }
    // Each replaces the exchange answering its request (the next page's
    // stays, asked with the fresh token, under Refusal::Fresh).
    for exchange in refused {
        set.insert(exchange);
    }
}

/// The streams of [`stale_page_token`].
pub struct StaleTokenRun {
    /// An unbroken FULL sync.
    pub unbroken: Vec<SyncEvent>,
    /// A FULL sync up to the checkpoint holding the page token.
    pub before: Vec<SyncEvent>,
    /// Its resume, the token refused ([`Refusal::Fresh`]).
    pub resumed: Vec<SyncEvent>,
    /// Its resumes under [`Refusal::SameToken`] and [`Refusal::FirstPageToo`].
    pub bounded: [Vec<SyncEvent>; 2],
    /// Upstream requests of `resumed` and of each of `bounded`.
    pub requests: [u64; 3],
}

/// Reads a sync up to the first checkpoint whose token holds `cursor` (the
/// page token's parameter, which the connector writes into its page cursor)
/// and drops the stream: the events before it and its token.
async fn break_at(stream: Result<tonic::Streaming<SyncEvent>, Status>, cursor: &str) -> (Vec<SyncEvent>, Vec<u8>) {
    let mut stream = stream.expect("sync starts");
    let mut before = Vec::new();
    loop {
        let event = stream
            .next()
            .await
            .expect("a checkpoint holding the page token")
            .unwrap();
        if let Some(Event::Checkpoint(c)) = &event.event
            && String::from_utf8_lossy(&c.token).contains(cursor)
        {
            return (before, c.token.clone());
        }
        before.push(event);
    }
}

/// Waits until the replay server has had no request for 200 ms: a dropped
/// stream's crawl stops promptly, but a request of it may still be under way.
async fn settle(replay: &connectors_server::replay::ReplayServer) {
    let mut settled = replay.stats().requests();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = replay.stats().requests();
        if std::mem::replace(&mut settled, now) == now {
            return;
        }
    }
}

/// Resumes from a checkpoint inside `scope` whose page token (`cursor` is in
/// it) the provider refuses, over the fixtures `refusing` builds: the
/// listing starts again from its first page, once. Checks what holds for
/// every connector (the resumed FULL sync completes, before + after the
/// break = an unbroken sync; an INCREMENTAL one resumed so sends nothing and
/// deletes nothing; a refusal after the restart fails `scope` alone) and
/// returns the streams for the connector's own exact checks.
pub async fn stale_page_token<H: Harness>(
    cursor: &str,
    scope: &str,
    refusing: impl Fn(Refusal) -> connectors_server::replay::FixtureSet,
) -> StaleTokenRun {
    let server = TestServer::start().await;
    let replay = server.server.replay(H::ID).unwrap();
    let recorded = connectors_server::replay::FixtureSet::load_provider(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")),
        H::ID,
    )
    .unwrap();
    let unbroken = collect(H::open(&server, full()).await).await;
    let (before, token) = break_at(H::open(&server, full()).await, cursor).await;
    let resume = |token: &[u8], options: SyncOptions| SyncOptions {
        checkpoint: token.to_vec(),
        ..options
    };

    settle(replay).await;
    let mut requests = Vec::new();
    replay.set_fixtures(refusing(Refusal::Fresh));
    let start = replay.stats().requests();
    let resumed = collect(H::open(&server, resume(&token, full())).await).await;
    requests.push(replay.stats().requests() - start);
    let (whole, after) = (summary(&unbroken), summary(&resumed));
    assert!(
        after.complete,
        "the resumed sync is complete; scope states: {:?}, errors: {:?}",
        scope_statuses(&resumed),
        crate::support::scope_errors(&resumed)
    );
    let mut combined = upserts(&before);
    combined.extend(upserts(&resumed));
    assert_eq!(
        combined,
        upserts(&unbroken),
        "before + after the break = an unbroken sync, without duplicates"
    );
    assert_eq!((after.counts, after.deletions), (whole.counts, whole.deletions));
    assert_eq!(server.unmatched(H::ID), Vec::<String>::new());

    // INCREMENTAL: the restarted listing sees every entity of the scope
    // again, so nothing is deleted (and, unchanged, nothing is sent).
    replay.set_fixtures(recorded);
    let base = summary(&unbroken).checkpoint;
    let (quiet, token_incremental) = break_at(H::open(&server, incremental(base)).await, cursor).await;
    settle(replay).await;
    replay.set_fixtures(refusing(Refusal::Fresh));
    let events = collect(H::open(&server, resume(&token_incremental, incremental(Vec::new()))).await).await;
    assert!(summary(&events).complete, "{:?}", scope_statuses(&events));
    assert_eq!(upserts(&quiet), Vec::new());
    assert_eq!((upserts(&events), deletions(&events)), (Vec::new(), Vec::new()));

    // A refusal after the restart fails the scope: one restart, not a loop.
    let mut bounded = Vec::new();
    for refusal in [Refusal::SameToken, Refusal::FirstPageToo] {
        replay.set_fixtures(refusing(refusal));
        let start = replay.stats().requests();
        let events = collect(H::open(&server, resume(&token, full())).await).await;
        requests.push(replay.stats().requests() - start);
        for (other, state) in scope_statuses(&events) {
            let want = if other == scope {
                ScopeState::Failed
            } else {
                ScopeState::Ok
            };
            assert_eq!(state, want as i32, "{refusal:?}: scope {other}");
        }
        assert!(!summary(&events).complete, "{refusal:?}");
        bounded.push(events);
    }
    assert_eq!(server.unmatched(H::ID), Vec::<String>::new());
    StaleTokenRun {
        unbroken,
        before,
        resumed,
        bounded: bounded.try_into().unwrap(),
        requests: requests.try_into().unwrap(),
    }
}

pub async fn cancellation<H: Harness>() {
    let server = TestServer::start().await;
    let replay = server.server.replay(H::ID).unwrap();
    let full_requests = {
        let before = replay.stats().requests();
        collect(H::open(&server, full()).await).await;
        replay.stats().requests() - before
    };
    replay.set_options(ReplayOptions {
        latency: Duration::from_millis(100),
        ..Default::default()
    });
    let start = replay.stats().requests();
    let mut stream = H::open(&server, full()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let settled = replay.stats().requests();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        replay.stats().requests(),
        settled,
        "upstream work stopped after the client left"
    );
    assert!(
        settled - start < full_requests,
        "{} of {full_requests} requests",
        settled - start
    );
}

/// (source scope, urn, content hash) of every upsert.
fn sourced(events: &[SyncEvent]) -> BTreeSet<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => {
                let p = u.provenance.as_ref()?;
                Some((p.source.clone(), u.entity.as_ref()?.urn.clone(), p.content_hash.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The faults of a [`faults`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRun {
    /// 503s, 429s with `Retry-After: 0`, truncated bodies and connection
    /// resets on a fifth of the requests: all retryable. Seed 54 faults no
    /// request four times in a row (the retry budget) in any connector's
    /// fixture sync, and some requests of each (seed 28 did, once AWS
    /// retried its bare 429s: a Lambda page got 4 faults in a row). The
    /// seed moves the occurrences the malformed run starts at, so changing
    /// it moves that run's pins too.
    Retryable,
    /// 200s whose body is not JSON on a twentieth of the requests: the
    /// upstream answered, so nothing retries them; the scope fails.
    MalformedBodies,
}

impl FaultRun {
    fn options(self) -> ReplayOptions {
        let (faults, fault_rate, seed) = match self {
            FaultRun::Retryable => (
                vec![
                    Fault::ServerError,
                    Fault::RateLimited,
                    Fault::TruncatedBody,
                    Fault::ConnectionReset,
                ],
                0.2,
                54,
            ),
            FaultRun::MalformedBodies => (vec![Fault::MalformedBody], 0.05, 50),
        };
        ReplayOptions {
            fault_rate,
            faults,
            seed,
            ..Default::default()
        }
    }
}

/// What [`Harness::failed_under`] returns for a connector whose only
/// unrecoverable fault is a malformed body failing `scope` with `error`.
pub fn malformed_fails(
    run: FaultRun,
    scope: impl Into<String>,
    error: impl Into<String>,
) -> Vec<(String, ScopeState, String, String)> {
    match run {
        FaultRun::Retryable => Vec::new(),
        FaultRun::MalformedBodies => vec![(
            scope.into(),
            ScopeState::Failed,
            "UPSTREAM_MALFORMED".to_owned(),
            error.into(),
        )],
    }
}

/// (scope, state, reason, error) of every scope that did not end OK.
fn not_ok(events: &[SyncEvent]) -> Vec<(String, ScopeState, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) if s.state != ScopeState::Ok as i32 => Some((
                s.scope.clone(),
                ScopeState::try_from(s.state).unwrap(),
                s.reason.clone(),
                s.error.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// A fault-injected FULL sync loses nothing: retryable faults are retried
/// until every scope holds exactly what a clean sync sent (the few a harness
/// names aside); a malformed body fails exactly the scopes the harness names,
/// and every other scope is whole.
pub async fn faults<H: Harness>() {
    let server = TestServer::start().await;
    let replay = server.server.replay(H::ID).unwrap();
    let clean = collect(H::open(&server, full()).await).await;
    let clean_requests = replay.stats().requests();
    let reference = sourced(&clean);
    for run in [FaultRun::Retryable, FaultRun::MalformedBodies] {
        replay.set_options(run.options());
        let (requests_before, faults_before) = (replay.stats().requests(), replay.stats().faults());
        let events = collect(H::open(&server, full()).await).await;
        let requests = replay.stats().requests() - requests_before;
        let faults = replay.stats().faults() - faults_before;
        assert!(faults > 0, "{run:?}: no fault was injected");
        let failed = not_ok(&events);
        let expected = H::failed_under(run);
        assert_eq!(failed, expected, "{run:?}: the scopes that failed");
        let failed_scopes: BTreeSet<&str> = failed.iter().map(|(scope, ..)| scope.as_str()).collect();
        let whole = |set: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String, String)> {
            set.iter()
                .filter(|(source, ..)| !failed_scopes.contains(source.as_str()))
                .cloned()
                .collect()
        };
        let got = sourced(&events);
        assert_eq!(
            whole(&got),
            whole(&reference),
            "{run:?}: a scope that ended OK lost or changed entities"
        );
        assert!(got.is_subset(&reference), "{run:?}: entities invented under faults");
        let s = summary(&events);
        assert_eq!(
            (s.complete, s.scopes_failed as usize, s.upstream_requests),
            (expected.is_empty(), expected.len(), requests),
            "{run:?}: complete, scopes failed, upstream requests"
        );
        if expected.is_empty() {
            assert_eq!(got, reference, "{run:?}");
        }
        if run == FaultRun::Retryable && expected.is_empty() {
            // Each fault was followed by another request (its retry, or a
            // fallback that asks for the same data another way).
            assert!(
                requests >= clean_requests + faults,
                "{requests} requests under {faults} faults; a clean sync sends {clean_requests}"
            );
        }
    }
}

pub async fn bad_input<H: Harness>() {
    let server = TestServer::start().await;
    for (result, field) in H::bad_requests(&server).await {
        let status = result.expect_err(&format!("bad {field} is rejected"));
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "message names {field}: {}",
            status.message()
        );
    }
    // Shared options are validated the same for every connector.
    let garbage = incremental(b"not a checkpoint".to_vec());
    let status = H::open(&server, garbage).await.expect_err("garbage checkpoint");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("options.checkpoint"),
        "{}",
        status.message()
    );
    let unknown_kind = SyncOptions {
        kinds: vec![99],
        ..Default::default()
    };
    let status = H::open(&server, unknown_kind).await.expect_err("unknown kind");
    assert_eq!(status.message(), "options.kinds[0]: unknown entity kind 99");
    let bad_key = SyncOptions {
        state_key: "../../etc".into(),
        ..Default::default()
    };
    let status = H::open(&server, bad_key).await.expect_err("bad state key");
    assert!(
        status.message().starts_with("options.state_key"),
        "{}",
        status.message()
    );
}

/// Expands to one `#[tokio::test]` per conformance check for a harness.
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $harness:ty) => {
        mod $name {
            use $crate::conformance as c;
            #[tokio::test]
            async fn descriptor() {
                c::descriptor::<$harness>().await
            }
            #[tokio::test]
            async fn full_sync() {
                c::full_sync::<$harness>().await
            }
            #[tokio::test]
            async fn idempotent() {
                c::idempotent::<$harness>().await
            }
            #[tokio::test]
            async fn incremental_without_change() {
                c::incremental_without_change::<$harness>().await
            }
            #[tokio::test]
            async fn incremental_with_change() {
                c::incremental_with_change::<$harness>().await
            }
            #[tokio::test]
            async fn resume() {
                c::resume::<$harness>().await
            }
            #[tokio::test]
            async fn cancellation() {
                c::cancellation::<$harness>().await
            }
            #[tokio::test]
            async fn faults() {
                c::faults::<$harness>().await
            }
            #[tokio::test]
            async fn bad_input() {
                c::bad_input::<$harness>().await
            }
        }
    };
}
