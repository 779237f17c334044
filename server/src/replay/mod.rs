//! The fixture replay server: serves recorded upstream HTTP exchanges
//! (`fixtures/<provider>/`) on loopback, so that in fixture mode, in tests and
//! in benchmarks every connector runs its real client against it.
//!
//! It answers conditional requests with 304 like the providers do, counts
//! every request (tests assert on upstream request counts), fails loudly on
//! requests no fixture matches, and can inject latency and faults.

mod fixtures;
pub mod github_graphql;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use fixtures::{Exchange, FixtureError, FixtureSet, RecordedRequest, RecordedResponse};

/// Answers, from code, the requests no recorded exchange matches: a synthetic
/// estate of any size (benchmarks) without holding its responses in memory.
/// Its answers go through the same conditional-request, latency and fault
/// handling as recorded ones.
pub trait Synthesizer: Send + Sync + 'static {
    /// The answer to a request, or `None` when the estate has no such
    /// resource; `fixtures` are the recorded exchanges the server holds.
    fn respond(
        &self,
        fixtures: &FixtureSet,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Option<RecordedResponse>;
}

/// A fault the server can inject instead of the recorded answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 Service Unavailable.
    ServerError,
    /// 429 with `Retry-After: 0`.
    RateLimited,
    /// Headers promising more body than is sent, then the connection ends.
    TruncatedBody,
    /// The connection is closed before any response (a reset).
    ConnectionReset,
    /// 200 with a body that is not valid JSON (and no ETag).
    MalformedBody,
}

/// Latency and fault injection.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Added before every answer.
    pub latency: Duration,
    /// Share of requests (0.0 to 1.0) answered with a fault instead.
    pub fault_rate: f64,
    /// Faults to choose from (round robin by request hash); empty = all.
    pub faults: Vec<Fault>,
    /// Seed of the deterministic fault choice.
    pub seed: u64,
}

/// Request figures of a replay server.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Every request received.
    pub requests: AtomicU64,
    /// Requests answered 304.
    pub not_modified: AtomicU64,
    /// Requests answered with an injected fault.
    pub faults: AtomicU64,
    /// Requests no fixture matched.
    pub unmatched: AtomicU64,
    /// Requests being answered now, and the most at once.
    pub in_flight: PeakGauge,
}

/// A count of things in progress and the most there were at once.
#[derive(Debug, Default)]
pub struct PeakGauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl PeakGauge {
    /// Counts one more until the guard is dropped.
    pub fn enter(&self) -> PeakGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        PeakGuard(self)
    }

    /// In progress now.
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    /// The most in progress at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

/// One thing in progress of a [`PeakGauge`].
#[derive(Debug)]
pub struct PeakGuard<'a>(&'a PeakGauge);

impl Drop for PeakGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ReplayStats {
    /// Every request received.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests no fixture matched.
    pub fn unmatched(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// 304 answers.
    pub fn not_modified(&self) -> u64 {
        self.not_modified.load(Ordering::Relaxed)
    }

    /// Injected faults.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// The most requests that were being answered at once (latency included).
    pub fn max_in_flight(&self) -> u64 {
        self.in_flight.peak()
    }
}

struct Shared {
    fixtures: RwLock<Arc<FixtureSet>>,
    synthesizer: Option<Arc<dyn Synthesizer>>,
    options: RwLock<ReplayOptions>,
    stats: ReplayStats,
    base_url: String,
    /// How often each request was seen (by [`fault_key`], for deterministic faults).
    seen: std::sync::Mutex<HashMap<String, u64>>,
    /// Requests no fixture matched, for error messages in tests.
    unmatched_log: std::sync::Mutex<Vec<String>>,
}

/// A running replay server.
#[derive(Clone)]
pub struct ReplayServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for ReplayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ReplayServer {
    /// Serves `fixtures` on an ephemeral 127.0.0.1 port until dropped handles call
    /// [`ReplayServer::shutdown`] (or the runtime ends).
    pub async fn start(fixtures: FixtureSet, options: ReplayOptions) -> std::io::Result<Self> {
        Self::start_inner(fixtures, None, options).await
    }

    /// Like [`ReplayServer::start`], with `synthesizer` answering what no fixture matches.
    pub async fn start_synthetic(
        fixtures: FixtureSet,
        synthesizer: Arc<dyn Synthesizer>,
        options: ReplayOptions,
    ) -> std::io::Result<Self> {
        Self::start_inner(fixtures, Some(synthesizer), options).await
    }

    async fn start_inner(
        fixtures: FixtureSet,
        synthesizer: Option<Arc<dyn Synthesizer>>,
        options: ReplayOptions,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            fixtures: RwLock::new(Arc::new(fixtures)),
            synthesizer,
            options: RwLock::new(options),
            stats: ReplayStats::default(),
            base_url: format!("http://{addr}"),
            seen: std::sync::Mutex::new(HashMap::new()),
            unmatched_log: std::sync::Mutex::new(Vec::new()),
        });
        let shutdown = CancellationToken::new();
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let token = shutdown.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "replay server failed");
            }
        });
        Ok(Self { shared, addr, shutdown })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Request figures.
    pub fn stats(&self) -> &ReplayStats {
        &self.shared.stats
    }

    /// The requests no fixture matched ("METHOD /path?query").
    pub fn unmatched_requests(&self) -> Vec<String> {
        self.shared
            .unmatched_log
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    /// Replaces the served fixtures (for example with a scenario overlay).
    pub fn set_fixtures(&self, fixtures: FixtureSet) {
        if let Ok(mut current) = self.shared.fixtures.write() {
            *current = Arc::new(fixtures);
        }
    }

    /// Replaces the latency and fault settings.
    pub fn set_options(&self, options: ReplayOptions) {
        if let Ok(mut current) = self.shared.options.write() {
            *current = options;
        }
    }

    /// Stops serving.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

fn json_error(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({ "message": message, "replay": "no fixture matches this request" });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

/// What tells one request from another for the fault choice: "METHOD uri",
/// the values of the headers its fixture matches on (awsJson APIs tell their
/// operations apart by `X-Amz-Target` alone) and a digest of its body
/// (GraphQL APIs post every query to one path). With the method and URI
/// alone, concurrent requests to one path took each other's occurrences, so
/// that which request a fault hit changed from run to run.
fn fault_key(key: &str, exchange: Option<&Exchange>, headers: &http::HeaderMap, body: &[u8]) -> String {
    let mut fault_key = key.to_owned();
    for name in exchange.into_iter().flat_map(|e| e.request.headers.keys()) {
        let value = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        fault_key.push_str(&format!(" {}:{value}", name.to_ascii_lowercase()));
    }
    if !body.is_empty() {
        fault_key.push_str(&format!(" #{}", hex::encode(&Sha256::digest(body)[..8])));
    }
    fault_key
}

fn fault_for(options: &ReplayOptions, key: &str, occurrence: u64) -> Option<Fault> {
    if options.fault_rate <= 0.0 {
        return None;
    }
    let mut hasher = Sha256::new();
    hasher.update(options.seed.to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(occurrence.to_le_bytes());
    let digest = hasher.finalize();
    let roll = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    let unit = (roll >> 11) as f64 / (1u64 << 53) as f64;
    if unit >= options.fault_rate {
        return None;
    }
    let faults: &[Fault] = if options.faults.is_empty() {
        &[
            Fault::ServerError,
            Fault::RateLimited,
            Fault::TruncatedBody,
            Fault::ConnectionReset,
        ]
    } else {
        &options.faults
    };
    Some(faults[(digest[8] as usize) % faults.len()])
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = shared.stats.in_flight.enter();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let options = shared.options.read().map(|o| o.clone()).unwrap_or_default();
    if !options.latency.is_zero() {
        tokio::time::sleep(options.latency).await;
    }
    let fixtures = match shared.fixtures.read() {
        Ok(f) => f.clone(),
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "fixtures lock poisoned".into()),
    };
    let key = format!("{} {}", parts.method, parts.uri);
    let exchange = fixtures.find(&parts.method, &parts.uri, &parts.headers, &body);
    let fault_key = fault_key(&key, exchange, &parts.headers, &body);
    let recorded = exchange.map(|exchange| std::borrow::Cow::Borrowed(&exchange.response));
    let synthesized = || {
        shared
            .synthesizer
            .as_ref()
            .and_then(|s| s.respond(&fixtures, &parts.method, &parts.uri, &parts.headers, &body))
            .map(std::borrow::Cow::Owned)
    };
    let Some(response) = recorded.or_else(synthesized) else {
        shared.stats.unmatched.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(request = %key, "replay: no fixture matches");
        if let Ok(mut log) = shared.unmatched_log.lock() {
            log.push(key.clone());
        }
        return json_error(StatusCode::NOT_FOUND, format!("no fixture for {key}"));
    };

    let occurrence = match shared.seen.lock() {
        Ok(mut seen) => {
            let count = seen.entry(fault_key.clone()).or_insert(0);
            *count += 1;
            *count - 1
        }
        Err(_) => 0,
    };
    if let Some(fault) = fault_for(&options, &fault_key, occurrence) {
        shared.stats.faults.fetch_add(1, Ordering::Relaxed);
        return match fault {
            Fault::ServerError => Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"message":"service unavailable (injected fault)"}"#))
                .unwrap_or_default(),
            Fault::RateLimited => Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::RETRY_AFTER, "0")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"message":"rate limited (injected)"}"#))
                .unwrap_or_default(),
            Fault::ConnectionReset => {
                // A body that fails before its first byte: hyper drops the
                // connection without sending the head.
                let stream = futures::stream::once(async {
                    Err::<Bytes, std::io::Error>(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected reset",
                    ))
                });
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from_stream(stream))
                    .unwrap_or_default()
            }
            Fault::MalformedBody => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"malformed": [1, 2,"#))
                .unwrap_or_default(),
            Fault::TruncatedBody => {
                // The head and a first chunk go out; then the body breaks.
                let head = futures::stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from_static(b"{\"trunc"))]);
                let stream = head.chain(futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected truncation",
                    ))
                }));
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CONTENT_LENGTH, "4096")
                    .body(Body::from_stream(stream))
                    .unwrap_or_default()
            }
        };
    }

    let etag = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("etag"))
        .map(|(_, value)| value.as_str());
    if let (Some(etag), Some(if_none_match)) = (etag, parts.headers.get(header::IF_NONE_MATCH)) {
        let matches = if_none_match
            .to_str()
            .map(|v| {
                v.split(',')
                    .any(|candidate| candidate.trim() == etag || candidate.trim() == "*")
            })
            .unwrap_or(false);
        if matches {
            shared.stats.not_modified.fetch_add(1, Ordering::Relaxed);
            let mut builder = Response::builder().status(StatusCode::NOT_MODIFIED);
            for (name, value) in &response.headers {
                if name.eq_ignore_ascii_case("etag") || name.to_ascii_lowercase().starts_with("x-ratelimit") {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            return builder.body(Body::empty()).unwrap_or_default();
        }
    }

    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        let value = if value.contains(fixtures::BASE_URL) {
            HeaderValue::try_from(value.replace(fixtures::BASE_URL, &shared.base_url))
        } else {
            HeaderValue::from_str(value)
        };
        if let Ok(value) = value {
            builder = builder.header(name.as_str(), value);
        }
    }
    let body = match response {
        std::borrow::Cow::Borrowed(recorded) => recorded.body_bytes(&shared.base_url),
        std::borrow::Cow::Owned(synthesized) => synthesized.into_body_bytes(&shared.base_url),
    };
    builder.body(Body::from(body)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
