//! Shared upstream HTTP behaviour for every connector that speaks HTTP:
//! conditional requests (ETag / If-None-Match, Last-Modified) with the cached
//! body reused on 304 (except for requests that say `Cache-Control: no-store`),
//! retries with jittered backoff on 5xx, timeouts and broken bodies,
//! rate-limit handling (`Retry-After`, `x-ratelimit-*`), a per-connector
//! concurrency limit, and per-sync request figures.
//!
//! Clients built on tower (octocrab, kube) reach it through [`TowerAdapter`];
//! the rest call [`UpstreamClient::execute`]. Every base URL comes from server
//! configuration: absolute URLs (pagination links from the upstream) must stay
//! on the configured origin.

mod server_name;
mod stats;
mod tower_adapter;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use url::Url;

use crate::cache::SharedCache;

pub use stats::{RequestStats, SYNC_STATS, spawn_in_sync};
pub use tower_adapter::TowerAdapter;

/// Settings of one connector's upstream client.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Connector id, for metrics and cache keys.
    pub connector: &'static str,
    /// Base URL every relative request is resolved against.
    pub base_url: Url,
    /// Timeout of one attempt (connect, headers and body).
    pub request_timeout: Duration,
    /// Attempts per request, first one included.
    pub max_attempts: u32,
    /// Whether 429 and 5xx answers are retried here (and, when retries run
    /// out, returned as [`UpstreamError::RateLimited`] or
    /// [`UpstreamError::ServerError`]). Off, they are returned as responses,
    /// for a client that reads their error codes and retries them itself
    /// (the AWS SDK): retrying here too would multiply the attempts.
    pub status_retries: bool,
    /// First retry delay; doubles per attempt, with full jitter.
    pub base_backoff: Duration,
    /// Cap of one retry delay.
    pub max_backoff: Duration,
    /// A rate limit that resets within this is waited out; a longer one is reported.
    pub max_rate_limit_wait: Duration,
    /// Upstream requests in flight at once for this connector.
    pub concurrency: usize,
    /// Send conditional requests and reuse cached bodies on 304.
    pub conditional_requests: bool,
    /// How long conditional-request entries are kept.
    pub cache_ttl: Duration,
    /// The largest response body read (bytes); a larger one is an error,
    /// not retried, and nothing of it is kept.
    pub max_body_bytes: u64,
    /// A stable identity of the configured credential (for example
    /// "github-app:42"). When set, conditional-request entries are keyed on it
    /// instead of the `Authorization` header, so that short-lived tokens
    /// (GitHub App installation tokens rotate hourly) keep their entries.
    pub credential_id: Option<String>,
    /// Extra trust anchors (DER) beside the public and system roots, for an
    /// upstream with a private CA (a Kubernetes cluster's CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Whether the built-in roots (webpki's and the system's) are trusted.
    /// Off, only `extra_root_certificates` are: a Kubernetes context that
    /// names its cluster's CA trusts that CA alone, as client-go does.
    pub built_in_roots: bool,
    /// The name the server's certificate is verified for, instead of the
    /// base URL's host (a kubeconfig's `tls-server-name`). Needs
    /// `extra_root_certificates` and `built_in_roots` off.
    pub tls_server_name: Option<String>,
    /// A proxy every request goes through (a kubeconfig's `proxy-url`),
    /// instead of the environment's `HTTP(S)_PROXY` / `NO_PROXY`.
    pub proxy: Option<ProxyUrl>,
    /// A TLS client identity (PEM certificate chain and private key), for
    /// upstreams that authenticate clients by certificate (kubeconfig users).
    pub client_identity: Option<ClientIdentity>,
    /// Skip server certificate verification (a kubeconfig's
    /// `insecure-skip-tls-verify`); logged as a warning when used.
    pub accept_invalid_certs: bool,
    /// Relative request paths answered at another path of the base URL's
    /// origin, outside its path prefix: (request path, origin path). GitHub
    /// Enterprise Server's REST API is under `/api/v3`, its GraphQL API at
    /// `/api/graphql`, which clients ask for as `/graphql`, as on github.com.
    pub rerooted_paths: Vec<(&'static str, String)>,
    /// The rate-limit budget of its own, apart from the rest of the
    /// credential's, that a request to this path counts against, if any.
    /// GitHub counts GraphQL points and SBOM requests apart from its REST
    /// requests (`x-ratelimit-resource: graphql`, `dependency_sbom`, against
    /// `core`). A response that names its budget in `x-ratelimit-resource`
    /// shares its reset under that budget, whatever the path said.
    pub separate_budget: fn(&str) -> Option<&'static str>,
    /// How the credential's rate-limit budget is divided among its requests:
    /// a reset learned from one request holds back only those of its budget.
    pub budget: Budget,
    /// Lower-case text that marks a 403 as a rate limit even when it comes
    /// without rate-limit headers. GitHub's secondary limits may: its answer
    /// then says "You have exceeded a secondary rate limit", and GitHub asks
    /// clients to wait at least a minute ([`BARE_RATE_LIMIT_WAIT`]).
    pub rate_limit_message: Option<&'static str>,
}

/// Which of a credential's requests share one rate-limit budget (see
/// [`UpstreamConfig::budget`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Budget {
    /// Every request of the credential (GitHub, GitLab: one budget per token).
    #[default]
    Credential,
    /// This client's requests, apart from the connector's other clients with
    /// the same credential (each Google API has quotas of its own).
    Named(&'static str),
    /// The requests whose path has the same segment after the named one
    /// (`subscriptions`: Azure Resource Manager throttles each subscription
    /// apart); paths without it share the credential's budget.
    PerSegmentAfter(&'static str),
}

/// A request extension (never sent) that gives the request a rate-limit
/// budget of its own within its credential's: each installation of a GitHub
/// App has its own limit, though every one authenticates as the one App.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetScope(pub String);

/// How long a rate limit the upstream gave no time for is waited out.
pub const BARE_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// An http or https proxy URL; printed without its user information (a
/// proxy password).
#[derive(Clone)]
pub struct ProxyUrl(pub Url);

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.0;
        write!(f, "ProxyUrl({}://{}", url.scheme(), url.host_str().unwrap_or(""))?;
        match url.port() {
            Some(port) => write!(f, ":{port})"),
            None => f.write_str(")"),
        }
    }
}

/// A PEM client certificate chain and key; never printed.
#[derive(Clone)]
pub struct ClientIdentity(pub Vec<u8>);

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(<redacted>)")
    }
}

impl UpstreamConfig {
    /// Defaults suited to a public SaaS API.
    pub fn new(connector: &'static str, base_url: Url) -> Self {
        Self {
            connector,
            base_url,
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            status_retries: true,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_rate_limit_wait: Duration::from_secs(60),
            concurrency: 8,
            conditional_requests: true,
            cache_ttl: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            credential_id: None,
            extra_root_certificates: Vec::new(),
            built_in_roots: true,
            tls_server_name: None,
            proxy: None,
            client_identity: None,
            accept_invalid_certs: false,
            rerooted_paths: Vec::new(),
            separate_budget: |_| None,
            budget: Budget::Credential,
            rate_limit_message: None,
        }
    }
}

/// Why an upstream request failed, after retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The rate limit is exhausted and does not reset within the wait budget.
    #[error("upstream rate limit exhausted (status {status})")]
    RateLimited {
        /// HTTP status (429 or 403).
        status: u16,
        /// When the limit resets, if the upstream said.
        reset_time: Option<DateTime<Utc>>,
    },
    /// The upstream kept answering with a server error.
    #[error("upstream answered {status} after {attempts} attempts")]
    ServerError {
        /// Last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The request could not be sent or the response not read (timeout, reset, truncated body).
    #[error("upstream request failed after {attempts} attempts: {message}")]
    Transport {
        /// Lower-case description without secrets.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The URL is not on the configured upstream origin.
    #[error("refusing request to a url outside the configured upstream origin")]
    ForeignOrigin,
    /// The response body is larger than the client reads.
    #[error("upstream answered {status} with a body over {limit} bytes, the most read")]
    BodyTooLarge {
        /// HTTP status.
        status: u16,
        /// The limit (`UpstreamConfig::max_body_bytes`).
        limit: u64,
    },
    /// The request could not be built.
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
}

impl UpstreamError {
    /// Finds an `UpstreamError` in an error's source chain (clients wrap ours).
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a UpstreamError> {
        let mut current = Some(error);
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<UpstreamError>() {
                return Some(found);
            }
            current = err.source();
        }
        None
    }
}

/// A conditional-request entry: the response to reuse on a 304. Stored in a
/// compact binary form (status, headers, raw body), not JSON with a base64
/// body: every GET with an ETag writes one.
struct CachedResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl CachedResponse {
    const MAGIC: &'static [u8] = b"cr2\n";

    fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(Self::MAGIC);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&u32::try_from(self.headers.len()).unwrap_or(0).to_be_bytes());
        for (name, value) in &self.headers {
            for part in [name.as_bytes(), value.as_bytes()] {
                out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    fn decode(bytes: Bytes) -> Option<Self> {
        fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, rest) = (buf.get(..n)?, buf.get(n..)?);
            *buf = rest;
            Some(head)
        }
        fn len(buf: &mut &[u8]) -> Option<usize> {
            let raw: [u8; 4] = take(buf, 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(raw)).ok()
        }
        let mut buf = bytes.as_ref();
        if take(&mut buf, Self::MAGIC.len())? != Self::MAGIC {
            return None;
        }
        let status = u16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
        let count = len(&mut buf)?;
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let n = len(&mut buf)?;
            let name = String::from_utf8(take(&mut buf, n)?.to_vec()).ok()?;
            let n = len(&mut buf)?;
            let value = String::from_utf8(take(&mut buf, n)?.to_vec()).ok()?;
            headers.push((name, value));
        }
        let body = bytes.slice(bytes.len() - buf.len()..);
        Some(Self { status, headers, body })
    }
}

/// `connectors_upstream_requests_total` by status and
/// `connectors_upstream_not_modified_total` of one connector, each looked up
/// in the metrics registry once, when first counted (after the server has
/// installed its recorder): a lookup per request builds the labels and
/// allocates the status's text.
struct RequestCounters {
    connector: &'static str,
    /// Index: the status code less 100 (codes are 100 to 999).
    by_status: Box<[std::sync::OnceLock<metrics::Counter>]>,
    transport_error: std::sync::OnceLock<metrics::Counter>,
    not_modified: std::sync::OnceLock<metrics::Counter>,
}

impl RequestCounters {
    fn new(connector: &'static str) -> Self {
        Self {
            connector,
            by_status: (100..1000).map(|_| std::sync::OnceLock::new()).collect(),
            transport_error: std::sync::OnceLock::new(),
            not_modified: std::sync::OnceLock::new(),
        }
    }

    /// A request answered with `status`.
    fn answered(&self, status: StatusCode) {
        let connector = self.connector;
        let new = || metrics::counter!("connectors_upstream_requests_total", "connector" => connector, "status" => status.as_u16().to_string());
        match self.by_status.get(usize::from(status.as_u16()).wrapping_sub(100)) {
            Some(slot) => slot.get_or_init(new).increment(1),
            None => new().increment(1),
        }
    }

    /// A request that got no answer (transport failure).
    fn failed(&self) {
        let connector = self.connector;
        self.transport_error
            .get_or_init(|| metrics::counter!("connectors_upstream_requests_total", "connector" => connector, "status" => "error"))
            .increment(1);
    }

    /// A 304 answered from the cached body.
    fn not_modified(&self) {
        let connector = self.connector;
        self.not_modified
            .get_or_init(|| metrics::counter!("connectors_upstream_not_modified_total", "connector" => connector))
            .increment(1);
    }
}

/// The upstream HTTP client of one connector.
pub struct UpstreamClient {
    http: reqwest::Client,
    cache: SharedCache,
    config: UpstreamConfig,
    permits: Arc<Semaphore>,
    counters: RequestCounters,
    /// Rate-limit resets learned from the shared cache, re-read at most once a second.
    budget_memo: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<i64>)>>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// A client with its own connection pool.
    pub fn new(config: UpstreamConfig, cache: SharedCache) -> Result<Self, UpstreamError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.concurrency);
        for der in &config.extra_root_certificates {
            let certificate = reqwest::Certificate::from_der(der)
                .map_err(|error| UpstreamError::InvalidRequest(format!("ca certificate: {error}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        if !config.built_in_roots {
            builder = builder.tls_built_in_root_certs(false);
        }
        if let Some(identity) = &config.client_identity {
            let identity = reqwest::Identity::from_pem(&identity.0)
                .map_err(|error| UpstreamError::InvalidRequest(format!("client certificate: {error}")))?;
            builder = builder.identity(identity);
        }
        if config.accept_invalid_certs {
            builder = builder.danger_accept_invalid_certs(true);
        } else if let Some(name) = &config.tls_server_name {
            if config.built_in_roots {
                return Err(UpstreamError::InvalidRequest(
                    "a tls server name needs the server's ca certificate".into(),
                ));
            }
            let tls =
                server_name::client_config(name, &config.extra_root_certificates, config.client_identity.as_ref())?;
            builder = builder.use_preconfigured_tls(tls);
        }
        if let Some(proxy) = &config.proxy {
            let proxy = reqwest::Proxy::all(proxy.0.as_str())
                .map_err(|_| UpstreamError::InvalidRequest("the proxy url is not valid".into()))?;
            builder = builder.proxy(proxy);
        }
        let http = builder
            .build()
            .map_err(|error| UpstreamError::InvalidRequest(error.to_string()))?;
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Ok(Self {
            http,
            cache,
            counters: RequestCounters::new(config.connector),
            config,
            permits,
            budget_memo: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Resolves a request URI against the base URL; absolute URIs must be on its origin.
    /// Either must stay under the base URL's path once dot segments are
    /// removed (`/../../admin` relative to `/api/v3` would leave it).
    pub fn resolve(&self, uri: &http::Uri) -> Result<Url, UpstreamError> {
        let base = &self.config.base_url;
        let prefix = base.path().trim_end_matches('/');
        let within_prefix = |url: &Url| {
            prefix.is_empty()
                || url.path() == prefix
                || url
                    .path()
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if uri.scheme().is_some() {
            let url = Url::parse(&uri.to_string()).map_err(|e| UpstreamError::InvalidRequest(e.to_string()))?;
            if url.origin() != base.origin() || !within_prefix(&url) {
                return Err(UpstreamError::ForeignOrigin);
            }
            return Ok(url);
        }
        let path_and_query = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        if let Some((_, target)) = self.config.rerooted_paths.iter().find(|(path, _)| *path == uri.path()) {
            let mut url = base.clone();
            url.set_path(target);
            url.set_query(uri.query());
            return Ok(url);
        }
        let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path_and_query);
        let url = Url::parse(&joined).map_err(|e| UpstreamError::InvalidRequest(e.to_string()))?;
        if !within_prefix(&url) {
            return Err(UpstreamError::ForeignOrigin);
        }
        Ok(url)
    }

    /// Turns an absolute URL on the configured origin (a pagination link) into a
    /// path relative to the base URL, so that clients treat it as their own
    /// upstream (octocrab only authenticates relative or api.github.com URIs).
    pub fn relativize(&self, uri: &http::Uri) -> Result<http::Uri, UpstreamError> {
        if uri.scheme().is_none() {
            return Ok(uri.clone());
        }
        let url = self.resolve(uri)?;
        let prefix = self.config.base_url.path().trim_end_matches('/');
        let path = url.path().strip_prefix(prefix).unwrap_or(url.path());
        let relative = match url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        relative
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamError::InvalidRequest(e.to_string()))
    }

    /// The credential identity conditional-request entries and the shared
    /// rate-limit budget are keyed on (a hash, never the credential).
    fn credential_hash(&self, headers: &HeaderMap) -> String {
        let mut hasher = Sha256::new();
        if let Some(credential) = &self.config.credential_id {
            hasher.update(b"credential\0");
            hasher.update(credential.as_bytes());
        } else if let Some(auth) = headers.get(header::AUTHORIZATION) {
            hasher.update(b"auth\0");
            hasher.update(auth.as_bytes());
        } else {
            hasher.update(b"anonymous");
        }
        hex::encode(&hasher.finalize()[..16])
    }

    /// The shared rate-limit budget of a request to `path` with `headers`
    /// (and the [`BudgetScope`] it carries, if any).
    fn budget_key(&self, headers: &HeaderMap, path: &str, scope: Option<&BudgetScope>) -> String {
        self.budget_key_of(headers, path, scope, (self.config.separate_budget)(path))
    }

    /// The budget key of a request in budget `separate` (none: the
    /// credential's main budget).
    fn budget_key_of(
        &self,
        headers: &HeaderMap,
        path: &str,
        scope: Option<&BudgetScope>,
        separate: Option<&str>,
    ) -> String {
        let separate = separate.map_or(String::new(), |name| format!(":{name}"));
        let part = match self.config.budget {
            Budget::Credential => String::new(),
            Budget::Named(name) => format!(":{name}"),
            Budget::PerSegmentAfter(segment) => {
                let mut segments = path.split('/');
                segments
                    .find(|s| *s == segment)
                    .and_then(|_| segments.next())
                    .filter(|value| !value.is_empty())
                    .map_or(String::new(), |value| {
                        format!(":{segment}={}", value.to_ascii_lowercase())
                    })
            }
        };
        let scope = scope.map_or(String::new(), |BudgetScope(scope)| format!(":scope={scope}"));
        format!(
            "ratelimit:v1:{}:{}{separate}{part}{scope}",
            self.config.connector,
            self.credential_hash(headers)
        )
    }

    /// The reset time (epoch seconds) of an exhausted rate limit that any
    /// replica learned for this credential, if it is still in the future.
    async fn shared_reset(&self, key: &str) -> Option<i64> {
        let now = Utc::now().timestamp();
        if let Ok(memo) = self.budget_memo.lock()
            && let Some((checked, reset)) = memo.get(key)
            && checked.elapsed() < Duration::from_secs(1)
        {
            return reset.filter(|r| *r > now);
        }
        let reset = self
            .cache
            .get(key)
            .await
            .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse::<i64>().ok());
        if let Ok(mut memo) = self.budget_memo.lock() {
            // Bounded: past this many budgets, those not exhausted now are
            // forgotten (they only save a cache lookup a second).
            if memo.len() >= BUDGET_MEMO_MAX {
                memo.retain(|_, (_, reset)| reset.is_some_and(|r| r > now));
            }
            memo.insert(key.to_owned(), (std::time::Instant::now(), reset));
        }
        reset.filter(|r| *r > now)
    }

    /// Tells every replica that this credential's limit is exhausted until `reset`.
    async fn share_reset(&self, key: &str, reset: i64) {
        let ttl = reset - Utc::now().timestamp();
        if ttl <= 0 {
            return;
        }
        if let Ok(mut memo) = self.budget_memo.lock() {
            memo.insert(key.to_owned(), (std::time::Instant::now(), Some(reset)));
        }
        let ttl = Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
        self.cache.set(key, Bytes::from(reset.to_string()), Some(ttl)).await;
    }

    fn cache_key(&self, url: &Url, headers: &HeaderMap) -> String {
        let mut hasher = Sha256::new();
        hasher.update(url.as_str().as_bytes());
        // Different credentials may see different data: key on a hash of the
        // credential, never on the credential itself.
        if let Some(credential) = &self.config.credential_id {
            hasher.update(b"\0credential\0");
            hasher.update(credential.as_bytes());
        } else if let Some(auth) = headers.get(header::AUTHORIZATION) {
            hasher.update(b"\0auth\0");
            hasher.update(auth.as_bytes());
        }
        if let Some(accept) = headers.get(header::ACCEPT) {
            hasher.update(b"\0accept\0");
            hasher.update(accept.as_bytes());
        }
        format!("http:v2:{}:{}", self.config.connector, hex::encode(hasher.finalize()))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.config.max_backoff);
        // Full jitter.
        let millis = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
    }

    /// Sends a request with the shared behaviour. 2xx and non-retryable 4xx
    /// responses are returned as responses (clients map them); exhausted
    /// retries, rate limits and transport failures are errors. Without
    /// `status_retries`, 429 and 5xx answers are responses too.
    pub async fn execute(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, UpstreamError> {
        let (parts, body) = request.into_parts();
        let url = self.resolve(&parts.uri)?;
        self.send_to(url, parts, body).await
    }

    /// GETs `url`, a download the upstream pointed at on another host (a
    /// redirect to pre-signed storage, such as GitHub's SBOM reports): with
    /// no header of the connector's (no credential reaches that host) and
    /// nothing cached; retries, concurrency and metrics as for any request.
    /// Only `https`, or the API's own scheme (a loopback replay server), and
    /// no user info; redirects from there are not followed.
    pub async fn download(&self, url: Url) -> Result<http::Response<Bytes>, UpstreamError> {
        if !(url.scheme() == "https" || url.scheme() == self.config.base_url.scheme())
            || url.host_str().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(UpstreamError::InvalidRequest(format!(
                "refusing to download from {}://{}",
                url.scheme(),
                url.host_str().unwrap_or_default()
            )));
        }
        let request = http::Request::get(url.as_str())
            .header(header::CACHE_CONTROL, "no-store")
            .body(Bytes::new())
            .map_err(|e| UpstreamError::InvalidRequest(e.to_string()))?;
        let (parts, body) = request.into_parts();
        self.send_to(url, parts, body).await
    }

    async fn send_to(
        &self,
        url: Url,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<http::Response<Bytes>, UpstreamError> {
        // A request that says `Cache-Control: no-store` (a connector's, for
        // content addressed by its URL, such as a git blob by sha) is neither
        // looked up nor stored.
        let cacheable = self.config.conditional_requests && parts.method == Method::GET && !no_store(&parts.headers);
        let cache_key = cacheable.then(|| self.cache_key(&url, &parts.headers));
        let cached: Option<CachedResponse> = match &cache_key {
            Some(key) => self.cache.get(key).await.and_then(CachedResponse::decode),
            None => None,
        };
        let connector = self.config.connector;
        let budget_key = self.budget_key(&parts.headers, parts.uri.path(), parts.extensions.get());
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // A limit another request (or replica) found exhausted is honoured
            // without spending a request on it.
            if let Some(reset) = self.shared_reset(&budget_key).await {
                let now = Utc::now();
                let wait = Duration::from_secs(u64::try_from(reset - now.timestamp()).unwrap_or(0));
                if wait > self.config.max_rate_limit_wait {
                    return Err(UpstreamError::RateLimited {
                        status: 429,
                        reset_time: DateTime::from_timestamp(reset, 0),
                    });
                }
                tracing::info!(
                    connector,
                    wait_ms = wait.as_millis() as u64,
                    "shared rate limit exhausted; waiting"
                );
                tokio::time::sleep(wait).await;
            }
            let mut builder = self
                .http
                .request(parts.method.clone(), url.clone())
                .headers(parts.headers.clone())
                .body(body.clone());
            if let Some(entry) = &cached {
                for (name, value) in &entry.headers {
                    if name.eq_ignore_ascii_case("etag") {
                        builder = builder.header(header::IF_NONE_MATCH, value);
                    } else if name.eq_ignore_ascii_case("last-modified") {
                        builder = builder.header(header::IF_MODIFIED_SINCE, value);
                    }
                }
            }
            let outcome = {
                let _permit = self.permits.acquire().await.map_err(|_| UpstreamError::Transport {
                    message: "client shut down".into(),
                    attempts: attempt,
                })?;
                stats::record_request();
                // One span per request sent (retries are spans of their own).
                // The path only: queries may carry page tokens, never needed.
                let host = url.host_str().unwrap_or_default();
                // Created only when spans are exported (see `EXPORT_ONLY`).
                let span = tracing::info_span!(
                    target: crate::telemetry::EXPORT_ONLY,
                    "upstream request",
                    otel.name = %format_args!("{} {host}", parts.method),
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    connector,
                    http.request.method = %parts.method,
                    server.address = host,
                    url.path = url.path(),
                    http.request.resend_count = attempt - 1,
                    http.response.status_code = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                );
                let limit = self.config.max_body_bytes;
                let outcome = async {
                    match builder.send().await {
                        Ok(response) => {
                            let status = response.status();
                            let headers = response.headers().clone();
                            match read_body(response, limit).await {
                                Ok(bytes) => Ok((status, headers, bytes)),
                                Err(BodyError::TooLarge) => Err(Failure::TooLarge(status.as_u16())),
                                Err(BodyError::Read(error)) => Err(Failure::Transport(format!(
                                    "reading the {} body: {}",
                                    status.as_u16(),
                                    describe(&error)
                                ))),
                            }
                        }
                        Err(error) => Err(Failure::Transport(describe(&error))),
                    }
                }
                .instrument(span.clone())
                .await;
                match &outcome {
                    Ok((status, _, _)) => {
                        span.record("http.response.status_code", status.as_u16());
                        if status.is_server_error() || status.as_u16() == 429 {
                            span.record("error.type", status.as_str());
                            span.record("otel.status_code", "error");
                        }
                    }
                    Err(_) => {
                        span.record("error.type", "transport");
                        span.record("otel.status_code", "error");
                    }
                }
                outcome
            };
            let (status, headers, bytes) = match outcome {
                Ok(parts) => parts,
                Err(Failure::TooLarge(status)) => {
                    // Not retried: the same resource is as large again.
                    self.counters
                        .answered(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
                    return Err(UpstreamError::BodyTooLarge {
                        status,
                        limit: self.config.max_body_bytes,
                    });
                }
                Err(Failure::Transport(message)) => {
                    self.counters.failed();
                    if attempt < self.config.max_attempts {
                        tracing::debug!(connector, attempt, %message, "upstream transport failure; retrying");
                        stats::record_retry();
                        let delay = self.backoff(attempt);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(UpstreamError::Transport {
                        message,
                        attempts: attempt,
                    });
                }
            };
            self.counters.answered(status);
            let mut rate = RateLimit::from_headers(&headers);
            if let Some(message) = self.config.rate_limit_message {
                rate.mark_bare_limit(status, &bytes, message);
            }
            if let Some(remaining) = rate.remaining {
                stats::record_rate_limit_remaining(remaining);
            }
            if (rate.is_limited(status) || rate.remaining == Some(0))
                && let Some(reset) = rate.reset_time(Utc::now())
            {
                // The budget the upstream says the request counted against
                // (GitHub: `core`, `graphql`, `dependency_sbom`, ...).
                let named = headers
                    .get("x-ratelimit-resource")
                    .and_then(|value| value.to_str().ok())
                    .filter(|name| {
                        !name.is_empty()
                            && name.len() <= 64
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    });
                match named {
                    Some(name) => {
                        let separate = (name != "core").then_some(name);
                        let key =
                            self.budget_key_of(&parts.headers, parts.uri.path(), parts.extensions.get(), separate);
                        self.share_reset(&key, reset.timestamp()).await;
                    }
                    None => self.share_reset(&budget_key, reset.timestamp()).await,
                }
            }

            if status == StatusCode::NOT_MODIFIED
                && let Some(entry) = cached
            {
                stats::record_not_modified();
                self.counters.not_modified();
                // Still current: it lives another TTL from now, so that a
                // resource revalidated every sync is never fetched whole
                // again only because its entry grew old.
                if let Some(key) = &cache_key {
                    self.cache.expire(key, self.config.cache_ttl).await;
                }
                return Ok(entry.into_response_updated(&headers));
            }
            if self.config.status_retries && rate.is_limited(status) {
                // A limit that says nothing of when it resets (Google's quota
                // 429s give it, if at all, in the body's RetryInfo) is backed
                // off from like a server error.
                let wait = rate.wait(Utc::now()).or_else(|| Some(self.backoff(attempt)));
                if attempt < self.config.max_attempts && wait.is_some_and(|w| w <= self.config.max_rate_limit_wait) {
                    let wait = wait.unwrap_or_default();
                    tracing::info!(
                        connector,
                        status = status.as_u16(),
                        wait_ms = wait.as_millis() as u64,
                        "upstream rate limited; waiting"
                    );
                    stats::record_retry();
                    let jitter = Duration::from_millis(rand::rng().random_range(0..50));
                    tokio::time::sleep(wait + jitter).await;
                    continue;
                }
                return Err(UpstreamError::RateLimited {
                    status: status.as_u16(),
                    reset_time: rate.reset_time(Utc::now()),
                });
            }
            if self.config.status_retries && matches!(status.as_u16(), 500 | 502 | 503 | 504) {
                if attempt < self.config.max_attempts {
                    tracing::debug!(
                        connector,
                        attempt,
                        status = status.as_u16(),
                        "upstream server error; retrying"
                    );
                    stats::record_retry();
                    let delay = self.backoff(attempt);
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(UpstreamError::ServerError {
                    status: status.as_u16(),
                    attempts: attempt,
                });
            }
            if status.is_success()
                && let Some(key) = &cache_key
                && (headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED))
            {
                let entry = CachedResponse::new(status, &headers, &bytes);
                self.cache.set(key, entry.encode(), Some(self.config.cache_ttl)).await;
            }
            let mut response = http::Response::new(bytes);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            return Ok(response);
        }
    }
}

/// Whether the request's `Cache-Control` has the `no-store` directive.
fn no_store(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"))
        })
    })
}

/// An error description without URLs' query strings or credentials.
/// Why a request got no response to hand back.
enum Failure {
    /// Not sent, or its body not read: retried.
    Transport(String),
    /// Its body is over the limit (with the status): not retried.
    TooLarge(u16),
}

enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

/// The whole body, unless it is longer than `limit` bytes: refused from its
/// `Content-Length` before reading, or as soon as a body without one
/// (chunked) goes past it, so a huge answer never sits in memory.
async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Bytes, BodyError> {
    match response.content_length() {
        Some(length) if length > limit => Err(BodyError::TooLarge),
        // hyper reads no more than the length said.
        Some(_) => response.bytes().await.map_err(BodyError::Read),
        None => {
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "broken body"
    } else if error.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        detail = inner.to_string();
        source = inner.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", detail.to_lowercase())
    }
}

impl CachedResponse {
    fn new(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Self {
        let headers = headers
            .iter()
            .filter(|(name, _)| Self::kept(name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        Self {
            status: status.as_u16(),
            headers,
            body: body.clone(),
        }
    }

    /// Whether a response header (lower case) is stored with the body.
    /// Left out are those about the exchange rather than the resource:
    /// hop-by-hop and cookies, the date, the rate-limit figures of the
    /// moment (a 304's own are read when it comes), the request id, and the
    /// headers meant for browsers (CORS, HSTS, CSP, framing, sniffing). A
    /// GitHub response carries about 1 KB of those (987 of its 1,445 header
    /// bytes as stored), which went with every tree and SBOM.
    fn kept(name: &str) -> bool {
        !(matches!(
            name,
            "set-cookie"
                | "date"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "server"
                | "vary"
                | "retry-after"
                | "strict-transport-security"
                | "content-security-policy"
                | "referrer-policy"
                | "x-frame-options"
                | "x-content-type-options"
                | "x-xss-protection"
                | "x-github-request-id"
                | "x-request-id"
        ) || ["access-control-", "x-ratelimit-", "ratelimit-", "x-ms-ratelimit-"]
            .iter()
            .any(|prefix| name.starts_with(prefix)))
    }

    /// The stored response, its headers updated with those of the 304 that
    /// revalidated it (RFC 9111, section 4.3.4): fresh rate-limit figures
    /// and date, a new ETag. The 304's framing headers are not the body's.
    fn into_response_updated(self, not_modified: &HeaderMap) -> http::Response<Bytes> {
        let mut response = self.into_response();
        let updates = || {
            not_modified.iter().filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "content-length" | "content-encoding" | "transfer-encoding" | "connection"
                )
            })
        };
        for (name, _) in updates() {
            response.headers_mut().remove(name);
        }
        for (name, value) in updates() {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }

    fn into_response(self) -> http::Response<Bytes> {
        let mut response = http::Response::new(self.body);
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), HeaderValue::try_from(value)) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// The largest upstream response body read by default: 256 MiB, far above
/// any page, blob or SBOM the connectors read, and short of what would put
/// the process at risk.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 << 20;

/// Budgets whose last lookup an [`UpstreamClient`] remembers at most,
/// besides those exhausted now.
const BUDGET_MEMO_MAX: usize = 1024;

/// Rate-limit figures from response headers (GitHub's `x-ratelimit-*`, GitLab's
/// `ratelimit-*`, Azure Resource Manager's `x-ms-ratelimit-remaining-*-reads`,
/// and the standard `Retry-After`, in seconds or as an HTTP date).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RateLimit {
    /// Requests left in the window.
    pub remaining: Option<i64>,
    /// Epoch seconds at which the window resets.
    pub reset_epoch: Option<i64>,
    /// Seconds to wait, from `Retry-After`.
    pub retry_after: Option<u64>,
}

impl RateLimit {
    /// Reads the headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_headers_at(headers, Utc::now())
    }

    /// Reads the headers, with `now` for a `Retry-After` given as an HTTP date.
    pub fn from_headers_at(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let int = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
        // Azure Resource Manager sends several read budgets (per subscription,
        // the newer global one per subscription, per tenant): the smallest binds.
        let arm = [
            "x-ms-ratelimit-remaining-subscription-reads",
            "x-ms-ratelimit-remaining-subscription-global-reads",
            "x-ms-ratelimit-remaining-tenant-reads",
        ]
        .into_iter()
        .filter_map(int)
        .min();
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let v = v.trim();
                // Delay-seconds, or an HTTP date (RFC 9110 section 10.2.3), in
                // any of the three forms a recipient must accept (section
                // 5.6.7: IMF-fixdate, RFC 850, asctime).
                v.parse::<u64>().ok().or_else(|| {
                    let at = httpdate::parse_http_date(v).ok()?;
                    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    let at = i64::try_from(at).ok()?;
                    Some(u64::try_from((at - now.timestamp()).max(0)).unwrap_or(0))
                })
            });
        Self {
            remaining: int("x-ratelimit-remaining")
                .or_else(|| int("ratelimit-remaining"))
                .or(arm),
            reset_epoch: int("x-ratelimit-reset").or_else(|| int("ratelimit-reset")),
            retry_after,
        }
    }

    /// True when the response says the client is rate limited.
    pub fn is_limited(&self, status: StatusCode) -> bool {
        status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN && (self.remaining == Some(0) || self.retry_after.is_some()))
    }

    /// Makes a 403 or 429 whose body holds `message` (lower case, matched
    /// without regard to case) a rate limit of [`BARE_RATE_LIMIT_WAIT`] when
    /// its headers say nothing of when to come back (no `Retry-After`, and
    /// requests left in the budget). GitHub's secondary limits come so: "wait
    /// for at least one minute before retrying".
    pub fn mark_bare_limit(&mut self, status: StatusCode, body: &[u8], message: &str) {
        if matches!(status, StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS)
            && self.retry_after.is_none()
            && self.remaining != Some(0)
            && body
                .windows(message.len().max(1))
                .any(|window| window.eq_ignore_ascii_case(message.as_bytes()))
        {
            self.retry_after = Some(BARE_RATE_LIMIT_WAIT.as_secs());
        }
    }

    /// The budget's reset (epoch seconds) when the budget is spent:
    /// `remaining` 0, or not given and no `Retry-After` either. The reset of a budget with requests left
    /// is when it refills, not when the limit that refused a request (a
    /// secondary limit, a per-endpoint one) lifts. GitHub: "If the
    /// retry-after response header is present, ... wait that many seconds.
    /// If x-ratelimit-remaining is 0, ... wait until the time specified by
    /// x-ratelimit-reset".
    fn spent_until(&self) -> Option<i64> {
        let spent = match self.remaining {
            Some(left) => left <= 0,
            None => self.retry_after.is_none(),
        };
        self.reset_epoch.filter(|_| spent)
    }

    /// How long to wait before the next attempt: the longer of `Retry-After`
    /// and the time until a spent budget resets; none when neither is known.
    pub fn wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        let after = self.retry_after.map(Duration::from_secs);
        let reset = self
            .spent_until()
            .map(|reset| Duration::from_secs(u64::try_from(reset - now.timestamp()).unwrap_or(0)));
        match (after, reset) {
            (Some(after), Some(reset)) => Some(after.max(reset)),
            (after, reset) => after.or(reset),
        }
    }

    /// When the limit lifts: the later of `now` + `Retry-After` and a spent
    /// budget's reset; none when neither is known.
    pub fn reset_time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = self
            .retry_after
            .map(|s| now + chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2).min(i64::MAX / 1000)));
        let reset = self.spent_until().and_then(|reset| DateTime::from_timestamp(reset, 0));
        match (after, reset) {
            (Some(after), Some(reset)) => Some(after.max(reset)),
            (after, reset) => after.or(reset),
        }
    }
}

#[cfg(test)]
mod tests;
