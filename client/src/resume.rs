//! Resumable sync streams, shared by every connector.
//!
//! A connector's `Sync` RPC streams [`SyncEvent`]s and sends an opaque
//! checkpoint token after every scope (and at upstream page boundaries). A
//! client that loses the stream may call `Sync` again with the last token it
//! received and continues where it left off. [`resumable`] implements that
//! once, over "a function that starts a stream given a checkpoint", so each
//! connector only supplies how to call its own `Sync`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use connectors_proto::v1::SyncEvent;
use connectors_proto::v1::sync_event::Event;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, FusedStream};
use futures::{FutureExt, Stream, StreamExt, TryFutureExt};
use tonic::{Code, Status};

use crate::Error;

/// When and how often a [`SyncStream`] calls `Sync` again after the stream
/// broke.
///
/// The delay before the n-th consecutive resume is `initial_backoff * 2^(n-1)`,
/// capped at `max_backoff`. A stream that delivered a new checkpoint before
/// breaking made progress: the count of consecutive resumes (and the backoff)
/// starts over, so a long sync survives any number of spaced-out breaks but
/// gives up after `max_attempts` resumes in a row that gained nothing.
///
/// A status that carries a `google.rpc.RetryInfo` (the server's load
/// shedding sends RESOURCE_EXHAUSTED with one) is waited out: the next
/// attempt comes no sooner than the delay it asks for, up to
/// `max_retry_delay` (60 s), or the backoff if that is longer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_delay: Duration,
}

impl Default for ResumePolicy {
    /// 5 attempts, 100 ms backoff doubling up to 5 s, a server's RetryInfo
    /// honoured up to 60 s.
    fn default() -> Self {
        Self {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_delay: Duration::from_secs(60),
        }
    }
}

impl ResumePolicy {
    /// The default number of consecutive resume attempts.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

    /// A policy that never resumes: the first break is returned as an error.
    pub fn never() -> Self {
        Self::default().with_max_attempts(0)
    }

    /// Sets how many times in a row `Sync` may be called again after a
    /// retryable failure without progress (0 disables resuming).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the delay before the first resume (doubled on each further one).
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the maximum delay between two resumes.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the longest delay asked for by a status's `google.rpc.RetryInfo`
    /// that is waited out (a longer one is waited this long).
    #[must_use]
    pub fn with_max_retry_delay(mut self, delay: Duration) -> Self {
        self.max_retry_delay = delay;
        self
    }

    /// How many times in a row `Sync` may be called again.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the `retry`-th consecutive resume (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The delay before the `retry`-th consecutive resume after `status`:
    /// the backoff, or the delay the status's `google.rpc.RetryInfo` asks
    /// for (at most `max_retry_delay`) when that is longer.
    pub fn delay_after(&self, status: &Status, retry: u32) -> Duration {
        let asked = retry_delay(status).map_or(Duration::ZERO, |delay| delay.min(self.max_retry_delay));
        self.backoff(retry).max(asked)
    }
}

/// The delay a status's `google.rpc.RetryInfo` asks for, if it has one.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    use tonic_types::StatusExt;
    status.get_details_retry_info()?.retry_delay
}

/// Whether a sync stream that failed with `status` should be resumed:
/// `UNAVAILABLE` and `RESOURCE_EXHAUSTED` always; `UNKNOWN`, `INTERNAL` and
/// `CANCELLED` only when raised by the client's own transport (a broken
/// connection or a truncated stream), not when sent by the server. Every other
/// code (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `UNAUTHENTICATED`,
/// `PERMISSION_DENIED`, `NOT_FOUND`, ...) is final.
pub fn is_retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted => true,
        Code::Unknown | Code::Internal | Code::Cancelled => is_transport_break(status),
        _ => false,
    }
}

/// Whether `status` was made by the client from a transport failure rather
/// than received from the server. tonic keeps the underlying error (hyper, h2,
/// io) as the status's source; a status decoded from the server's trailers has
/// none. A few transport failures are reported without a source and are
/// recognized by tonic's message.
fn is_transport_break(status: &Status) -> bool {
    const LOCAL_MESSAGES: &[&str] = &[
        // The body ended in the middle of a message.
        "Unexpected EOF decoding stream",
        // The HTTP/2 stream was reset (or the connection closed) before the
        // trailers carrying grpc-status.
        "missing grpc-status trailer",
        // The channel failed while waiting for a connection.
        "Service was not ready",
        "h2 protocol error",
    ];
    std::error::Error::source(status).is_some() || LOCAL_MESSAGES.iter().any(|needle| status.message().contains(needle))
}

type EventStream = BoxStream<'static, Result<SyncEvent, Status>>;
type StartFuture = BoxFuture<'static, Result<EventStream, Status>>;
type StartFn = Box<dyn FnMut(Vec<u8>) -> StartFuture + Send>;

/// Starts a [`SyncStream`] with `start`, resuming from an empty checkpoint
/// (the request's own checkpoint, if any, stays untouched by `start`).
///
/// See [`resumable_from`].
pub fn resumable<F, Fut, S>(start: F, policy: ResumePolicy) -> SyncStream
where
    F: FnMut(Vec<u8>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<S, Status>> + Send + 'static,
    S: Stream<Item = Result<SyncEvent, Status>> + Send + 'static,
{
    resumable_from(Vec::new(), start, policy)
}

/// Makes a [`SyncStream`] out of a function that starts one `Sync` call given
/// a checkpoint token, such as
/// `|checkpoint| client.sync(request_with(checkpoint))` mapped to its
/// `tonic::Streaming<SyncEvent>`.
///
/// `start` is first called (on the first poll) with `checkpoint`, then, after
/// each retryable break (see [`is_retryable`]; a stream that ends without a
/// `Summary` is one too), again with the newest token received so far, from
/// a `Checkpoint` event or the `Summary`, as allowed by `policy`. `start`
/// must send the token as `SyncOptions.checkpoint` and otherwise repeat the
/// same request.
pub fn resumable_from<F, Fut, S>(checkpoint: Vec<u8>, mut start: F, policy: ResumePolicy) -> SyncStream
where
    F: FnMut(Vec<u8>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<S, Status>> + Send + 'static,
    S: Stream<Item = Result<SyncEvent, Status>> + Send + 'static,
{
    let start: StartFn = Box::new(move |token| start(token).map_ok(|stream| -> EventStream { stream.boxed() }).boxed());
    SyncStream {
        start,
        policy,
        state: State::Idle,
        checkpoint,
        attempts: 0,
        failures: 0,
        progressed: false,
        finished: std::collections::HashSet::new(),
    }
}

enum State {
    /// `start` is to be called (on the next poll).
    Idle,
    /// Waiting for the `Sync` call to return its stream.
    Starting(StartFuture),
    /// Reading events.
    Streaming(EventStream),
    /// Backing off before the next resume.
    Waiting(Pin<Box<tokio::time::Sleep>>),
    /// After the summary or a final error.
    Done,
}

/// Why an attempt ended before its summary.
enum Break {
    Status(Status),
    NoSummary,
}

/// A stream of [`SyncEvent`]s that transparently resumes a broken `Sync`
/// call from its last checkpoint.
///
/// It yields every event of every attempt in order (upserts sent between the
/// last checkpoint and a break may be delivered again after the resume, as
/// the stream contract allows; treat upserts as idempotent), except those of
/// a scope whose `ScopeStatus` it yielded already (a break between a scope's
/// status and the checkpoint after it), skips events of kinds this client
/// does not know, and ends after the `Summary`. A final
/// error (non-retryable, or retryable once the [`ResumePolicy`] is used up)
/// is yielded once, then the stream ends.
///
/// It must be polled within a Tokio runtime (it sleeps between attempts).
pub struct SyncStream {
    start: StartFn,
    policy: ResumePolicy,
    state: State,
    checkpoint: Vec<u8>,
    attempts: u32,
    failures: u32,
    progressed: bool,
    /// Scopes whose `ScopeStatus` was yielded: their events are not yielded
    /// again when a resume starts before their checkpoint (a stream cut
    /// between a scope's status and the checkpoint after it).
    finished: std::collections::HashSet<String>,
}

impl SyncStream {
    /// Whether `event` belongs to a scope whose status was yielded already.
    fn is_replay(&self, event: &Event) -> bool {
        let scope = match event {
            Event::Upsert(upsert) => upsert.provenance.as_ref().map(|p| p.source.as_str()),
            Event::Deletion(deletion) => deletion.provenance.as_ref().map(|p| p.source.as_str()),
            Event::ScopeStatus(status) => Some(status.scope.as_str()),
            _ => None,
        };
        scope.is_some_and(|scope| self.finished.contains(scope))
    }

    /// How many times `Sync` was called (the first call included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How many times `Sync` was called again to resume a broken stream.
    pub fn resumes(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// The newest checkpoint token received (from a `Checkpoint` event or the
    /// `Summary`), or the initial one; empty if none.
    pub fn checkpoint(&self) -> &[u8] {
        &self.checkpoint
    }

    /// The resume policy in use.
    pub fn policy(&self) -> &ResumePolicy {
        &self.policy
    }

    fn remember(&mut self, token: &[u8]) {
        if !token.is_empty() && token != self.checkpoint.as_slice() {
            self.checkpoint = token.to_vec();
            self.progressed = true;
        }
    }

    /// Schedules a resume, or returns the final error.
    fn on_break(&mut self, brk: Break) -> Option<Error> {
        let retryable = match &brk {
            Break::Status(status) => is_retryable(status),
            Break::NoSummary => true,
        };
        if retryable {
            if self.progressed {
                self.failures = 0;
            }
            self.failures += 1;
            if self.failures <= self.policy.max_attempts {
                let delay = match &brk {
                    Break::Status(status) => self.policy.delay_after(status, self.failures),
                    Break::NoSummary => self.policy.backoff(self.failures),
                };
                let (code, message) = match &brk {
                    Break::Status(status) => (status.code(), status.message()),
                    Break::NoSummary => (Code::Unavailable, "stream ended without a summary"),
                };
                tracing::warn!(
                    ?code,
                    message,
                    attempt = self.attempts + 1,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "sync stream broke; resuming from the last checkpoint"
                );
                self.state = State::Waiting(Box::pin(tokio::time::sleep(delay)));
                return None;
            }
        }
        self.state = State::Done;
        Some(match brk {
            Break::Status(status) => Error::Status(status),
            Break::NoSummary => Error::Incomplete {
                attempts: self.attempts,
            },
        })
    }
}

impl Stream for SyncStream {
    type Item = Result<SyncEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle => {
                    this.attempts += 1;
                    this.progressed = false;
                    let future = (this.start)(this.checkpoint.clone());
                    this.state = State::Starting(future);
                }
                State::Starting(future) => match ready!(future.poll_unpin(cx)) {
                    Ok(stream) => this.state = State::Streaming(stream),
                    Err(status) => {
                        if let Some(err) = this.on_break(Break::Status(status)) {
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                },
                State::Streaming(stream) => match ready!(stream.poll_next_unpin(cx)) {
                    Some(Ok(event)) => match &event.event {
                        // A oneof case of a newer server: ignored, per the contract.
                        None => {}
                        Some(Event::Checkpoint(checkpoint)) => {
                            this.remember(&checkpoint.token);
                            return Poll::Ready(Some(Ok(event)));
                        }
                        Some(Event::Summary(summary)) => {
                            this.remember(&summary.checkpoint);
                            this.state = State::Done;
                            return Poll::Ready(Some(Ok(event)));
                        }
                        Some(other) if this.is_replay(other) => {}
                        Some(Event::ScopeStatus(status)) => {
                            this.finished.insert(status.scope.clone());
                            return Poll::Ready(Some(Ok(event)));
                        }
                        Some(_) => return Poll::Ready(Some(Ok(event))),
                    },
                    Some(Err(status)) => {
                        if let Some(err) = this.on_break(Break::Status(status)) {
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                    None => {
                        if let Some(err) = this.on_break(Break::NoSummary) {
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                },
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Idle;
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl FusedStream for SyncStream {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl fmt::Debug for SyncStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Starting(_) => "starting",
            State::Streaming(_) => "streaming",
            State::Waiting(_) => "waiting",
            State::Done => "done",
        };
        f.debug_struct("SyncStream")
            .field("state", &state)
            .field("attempts", &self.attempts)
            .field("checkpoint_len", &self.checkpoint.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use connectors_proto::v1::{Checkpoint, Entity, Progress, Summary, Upsert};
    use futures::future::{Ready, ready};
    use futures::stream::{self, Iter};
    use tokio::time::Instant;

    use super::*;

    type Script = Vec<Result<Vec<Result<SyncEvent, Status>>, Status>>;
    type FakeStream = Iter<std::vec::IntoIter<Result<SyncEvent, Status>>>;
    type Calls = Arc<Mutex<Vec<String>>>;

    /// A fake `start`: each call records its checkpoint and returns the next
    /// scripted attempt (the `Sync` call failing, or a stream of items).
    fn scripted(
        script: Script,
    ) -> (
        impl FnMut(Vec<u8>) -> Ready<Result<FakeStream, Status>> + Send + 'static,
        Calls,
    ) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&calls);
        let mut script = VecDeque::from(script);
        let start = move |checkpoint: Vec<u8>| {
            recorded.lock().unwrap().push(String::from_utf8(checkpoint).unwrap());
            let attempt = script.pop_front().expect("unexpected Sync call");
            ready(attempt.map(stream::iter))
        };
        (start, calls)
    }

    fn event(event: Event) -> Result<SyncEvent, Status> {
        Ok(SyncEvent { event: Some(event) })
    }

    fn upsert(urn: &str) -> Result<SyncEvent, Status> {
        event(Event::Upsert(Upsert {
            entity: Some(Entity {
                urn: urn.to_owned(),
                ..Default::default()
            }),
            provenance: None,
        }))
    }

    fn checkpoint(token: &str) -> Result<SyncEvent, Status> {
        event(Event::Checkpoint(Checkpoint {
            token: token.as_bytes().to_vec(),
            scope: String::new(),
        }))
    }

    fn progress(entities: u64) -> Result<SyncEvent, Status> {
        event(Event::Progress(Progress {
            entities,
            ..Default::default()
        }))
    }

    fn summary(token: &str) -> Result<SyncEvent, Status> {
        event(Event::Summary(Summary {
            checkpoint: token.as_bytes().to_vec(),
            ..Default::default()
        }))
    }

    /// A status as tonic makes it from a broken connection (with a source).
    fn connection_reset() -> Status {
        Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )))
    }

    fn describe(item: &Result<SyncEvent, Error>) -> String {
        match item {
            Ok(SyncEvent { event: Some(event) }) => match event {
                Event::Upsert(u) => format!("upsert {}", u.entity.as_ref().unwrap().urn),
                Event::Checkpoint(c) => {
                    format!("checkpoint {}", String::from_utf8_lossy(&c.token))
                }
                Event::Progress(p) => format!("progress {}", p.entities),
                Event::Summary(s) => format!("summary {}", String::from_utf8_lossy(&s.checkpoint)),
                other => format!("{other:?}"),
            },
            Ok(SyncEvent { event: None }) => "unknown".to_owned(),
            Err(err) => format!("error {err}"),
        }
    }

    async fn drain(stream: &mut SyncStream) -> Vec<String> {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(describe(&item));
        }
        assert!(stream.is_terminated());
        assert!(stream.next().await.is_none(), "polled after the end");
        items
    }

    fn calls(calls: &Calls) -> Vec<String> {
        calls.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn uninterrupted_sync_is_one_call() {
        let (start, tokens) = scripted(vec![Ok(vec![
            upsert("r1"),
            checkpoint("c1"),
            progress(1),
            summary("s"),
        ])]);
        let mut stream = resumable(start, ResumePolicy::default());
        assert_eq!(
            drain(&mut stream).await,
            ["upsert r1", "checkpoint c1", "progress 1", "summary s"]
        );
        assert_eq!(calls(&tokens), [""]);
        assert_eq!(stream.attempts(), 1);
        assert_eq!(stream.resumes(), 0);
        assert_eq!(stream.checkpoint(), b"s");
    }

    /// An upsert or status of `scope`.
    fn of_scope(scope: &str, event: Result<SyncEvent, Status>) -> Result<SyncEvent, Status> {
        let mut event = event.unwrap();
        match &mut event.event {
            Some(Event::Upsert(upsert)) => {
                upsert.provenance = Some(connectors_proto::v1::Provenance {
                    source: scope.to_owned(),
                    ..Default::default()
                })
            }
            other => panic!("not an upsert: {other:?}"),
        }
        Ok(event)
    }

    fn scope_status(scope: &str) -> Result<SyncEvent, Status> {
        event(Event::ScopeStatus(connectors_proto::v1::ScopeStatus {
            scope: scope.to_owned(),
            ..Default::default()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_scope_whose_status_came_is_not_yielded_again_after_a_resume() {
        // Cut between scope B's status and the checkpoint after it: the
        // resume starts from the checkpoint before B.
        let (start, tokens) = scripted(vec![
            Ok(vec![
                of_scope("org:a", upsert("a1")),
                scope_status("org:a"),
                checkpoint("ca"),
                of_scope("org:b", upsert("b1")),
                scope_status("org:b"),
                Err(Status::unavailable("server going away")),
            ]),
            Ok(vec![
                of_scope("org:b", upsert("b1")),
                scope_status("org:b"),
                checkpoint("cb"),
                of_scope("org:c", upsert("c1")),
                scope_status("org:c"),
                checkpoint("cc"),
                summary("s"),
            ]),
        ]);
        let mut stream = resumable(start, ResumePolicy::default());
        let items = drain(&mut stream).await;
        let statuses = items.iter().filter(|item| item.starts_with("ScopeStatus")).count();
        assert_eq!(statuses, 3, "{items:?}");
        let upserts: Vec<&String> = items.iter().filter(|item| item.starts_with("upsert")).collect();
        assert_eq!(upserts, ["upsert a1", "upsert b1", "upsert c1"]);
        assert_eq!(items.last().map(String::as_str), Some("summary s"));
        assert_eq!(calls(&tokens), ["", "ca"]);
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_resumes_from_the_last_checkpoint() {
        let (start, tokens) = scripted(vec![
            Ok(vec![
                upsert("r1"),
                checkpoint("c1"),
                upsert("r2"),
                checkpoint("c2"),
                upsert("r3"),
                Err(Status::unavailable("server going away")),
            ]),
            Ok(vec![upsert("r3"), checkpoint("c3"), summary("s")]),
        ]);
        let started = Instant::now();
        let mut stream = resumable_from(b"c0".to_vec(), start, ResumePolicy::default());
        assert_eq!(
            drain(&mut stream).await,
            [
                "upsert r1",
                "checkpoint c1",
                "upsert r2",
                "checkpoint c2",
                "upsert r3",
                "upsert r3",
                "checkpoint c3",
                "summary s",
            ]
        );
        assert_eq!(calls(&tokens), ["c0", "c2"]);
        assert_eq!(stream.attempts(), 2);
        assert_eq!(stream.resumes(), 1);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn end_without_summary_resumes() {
        let (start, tokens) = scripted(vec![
            Ok(vec![upsert("r1"), checkpoint("c1")]),
            Ok(vec![]),
            Ok(vec![upsert("r2"), summary("s")]),
        ]);
        let mut stream = resumable(start, ResumePolicy::default());
        assert_eq!(
            drain(&mut stream).await,
            ["upsert r1", "checkpoint c1", "upsert r2", "summary s"]
        );
        assert_eq!(calls(&tokens), ["", "c1", "c1"]);
        assert_eq!(stream.resumes(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_calls_back_off_exponentially() {
        let (start, tokens) = scripted(vec![
            Err(Status::unavailable("connection refused")),
            Err(connection_reset()),
            Err(Status::resource_exhausted("too many syncs")),
            Ok(vec![checkpoint("c1"), summary("s")]),
        ]);
        let started = Instant::now();
        let mut stream = resumable_from(b"t".to_vec(), start, ResumePolicy::default());
        assert_eq!(drain(&mut stream).await, ["checkpoint c1", "summary s"]);
        assert_eq!(calls(&tokens), ["t", "t", "t", "t"]);
        assert_eq!(stream.attempts(), 4);
        assert_eq!(started.elapsed(), Duration::from_millis(100 + 200 + 400));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_without_progress() {
        let (start, tokens) = scripted(vec![
            Ok(vec![checkpoint("c1"), Err(Status::unavailable("down"))]),
            Err(Status::unavailable("down")),
            Err(Status::unavailable("down")),
            Err(Status::unavailable("still down")),
        ]);
        let started = Instant::now();
        let mut stream = resumable(start, ResumePolicy::default().with_max_attempts(3));
        assert_eq!(
            drain(&mut stream).await,
            ["checkpoint c1", "error UNAVAILABLE: still down"]
        );
        assert_eq!(calls(&tokens), ["", "c1", "c1", "c1"]);
        assert_eq!(stream.attempts(), 4);
        assert_eq!(stream.resumes(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(100 + 200 + 400));
    }

    #[tokio::test(start_paused = true)]
    async fn incomplete_streams_give_up_with_incomplete() {
        let (start, tokens) = scripted(vec![Ok(vec![upsert("r1")]), Ok(vec![])]);
        let mut stream = resumable(start, ResumePolicy::default().with_max_attempts(1));
        assert_eq!(
            drain(&mut stream).await,
            ["upsert r1", "error sync stream ended without a summary (2 attempts)"]
        );
        assert_eq!(calls(&tokens), ["", ""]);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_attempt_budget() {
        let (start, tokens) = scripted(vec![
            Ok(vec![checkpoint("c1"), Err(Status::unavailable("a"))]),
            Ok(vec![checkpoint("c2"), Err(connection_reset())]),
            Ok(vec![checkpoint("c3"), Err(Status::unavailable("c"))]),
            Ok(vec![checkpoint("c4"), summary("s")]),
        ]);
        let started = Instant::now();
        let mut stream = resumable(start, ResumePolicy::default().with_max_attempts(1));
        assert_eq!(
            drain(&mut stream).await,
            [
                "checkpoint c1",
                "checkpoint c2",
                "checkpoint c3",
                "checkpoint c4",
                "summary s"
            ]
        );
        assert_eq!(calls(&tokens), ["", "c1", "c2", "c3"]);
        assert_eq!(stream.resumes(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_statuses_are_final() {
        for status in [
            Status::invalid_argument("checkpoint issued for another scope"),
            Status::failed_precondition("no credentials"),
            Status::unauthenticated("missing api key"),
            Status::permission_denied("forbidden"),
            Status::not_found("no such org"),
            // Sent by the server (no transport source): final.
            Status::internal("boom"),
            Status::unknown("panic"),
        ] {
            let expected = format!("error {}", Error::Status(status.clone()));
            let (start, tokens) = scripted(vec![Ok(vec![upsert("r1"), checkpoint("c1"), Err(status)])]);
            let mut stream = resumable(start, ResumePolicy::default());
            assert_eq!(
                drain(&mut stream).await,
                ["upsert r1".to_owned(), "checkpoint c1".to_owned(), expected]
            );
            assert_eq!(calls(&tokens), [""]);
            assert_eq!(stream.attempts(), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_policy_returns_the_first_break() {
        let (start, tokens) = scripted(vec![Err(Status::unavailable("down"))]);
        let mut stream = resumable(start, ResumePolicy::never());
        assert_eq!(drain(&mut stream).await, ["error UNAVAILABLE: down"]);
        assert_eq!(calls(&tokens), [""]);
    }

    #[tokio::test(start_paused = true)]
    async fn ends_after_the_summary_and_skips_unknown_events() {
        let (start, tokens) = scripted(vec![Ok(vec![
            Ok(SyncEvent { event: None }),
            upsert("r1"),
            summary(""),
            upsert("after-summary"),
            Err(Status::unavailable("ignored")),
        ])]);
        let mut stream = resumable_from(b"prev".to_vec(), start, ResumePolicy::default());
        assert_eq!(drain(&mut stream).await, ["upsert r1", "summary "]);
        assert_eq!(calls(&tokens), ["prev"]);
        // An empty summary token keeps the last one.
        assert_eq!(stream.checkpoint(), b"prev");
    }

    /// A status of the server's load shedding: RESOURCE_EXHAUSTED (or
    /// another code) with a `google.rpc.RetryInfo` asking for `delay`.
    fn asking_to_wait(code: Code, delay: Duration) -> Status {
        use tonic_types::{ErrorDetails, StatusExt};
        Status::with_error_details(code, "too many syncs", ErrorDetails::with_retry_info(Some(delay)))
    }

    #[tokio::test(start_paused = true)]
    async fn retry_info_delays_the_next_attempt_at_least_that_long() {
        let (start, tokens) = scripted(vec![
            Err(asking_to_wait(Code::ResourceExhausted, Duration::from_secs(5))),
            Ok(vec![
                checkpoint("c1"),
                Err(asking_to_wait(Code::Unavailable, Duration::from_millis(50))),
            ]),
            Err(asking_to_wait(Code::ResourceExhausted, Duration::from_secs(600))),
            Ok(vec![summary("s")]),
        ]);
        let started = Instant::now();
        let mut stream = resumable(start, ResumePolicy::default());
        assert_eq!(drain(&mut stream).await, ["checkpoint c1", "summary s"]);
        assert_eq!(calls(&tokens), ["", "", "c1", "c1"]);
        // 5 s asked (more than the 100 ms backoff); 50 ms asked, less than
        // the backoff (100 ms: the checkpoint reset it); 600 s asked, capped
        // at 60 s.
        assert_eq!(started.elapsed(), Duration::from_millis(5_000 + 100 + 60_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_asking_to_wait_is_not_given_up_on_within_its_delay() {
        // Five attempts, each refused with 5 s asked: 25 s of waiting, not
        // 100 + 200 + 400 + 800 + 1600 ms.
        let mut script: Script = (0..5)
            .map(|_| Err(asking_to_wait(Code::ResourceExhausted, Duration::from_secs(5))))
            .collect();
        script.push(Ok(vec![summary("s")]));
        let (start, tokens) = scripted(script);
        let started = Instant::now();
        let mut stream = resumable(start, ResumePolicy::default());
        assert_eq!(drain(&mut stream).await, ["summary s"]);
        assert_eq!(calls(&tokens).len(), 6);
        assert_eq!(started.elapsed(), Duration::from_secs(25));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = ResumePolicy::default();
        let delays: Vec<u128> = (1..=9).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(policy.backoff(200), Duration::from_secs(5));
        assert_eq!(policy.max_attempts(), 5);
    }

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable(&Status::unavailable("x")));
        assert!(is_retryable(&Status::resource_exhausted("x")));
        assert!(is_retryable(&connection_reset()));
        assert!(is_retryable(&Status::internal("Unexpected EOF decoding stream.")));
        assert!(is_retryable(&Status::unknown(
            "protocol error: missing grpc-status trailer, stream was terminated without a final status"
        )));
        assert!(is_retryable(&Status::unknown("Service was not ready: transport error")));
        assert!(!is_retryable(&Status::unknown("handler panicked")));
        assert!(!is_retryable(&Status::internal("bug")));
        assert!(!is_retryable(&Status::cancelled("cancelled by server")));
        assert!(!is_retryable(&Status::deadline_exceeded("x")));
        assert!(!is_retryable(&Status::invalid_argument("x")));
    }
}
