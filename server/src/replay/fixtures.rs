//! Loading and matching recorded exchanges (format: fixtures/README.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method, Uri};
use serde::Deserialize;

/// The placeholder of the replay server's own base URL in recorded bodies and headers.
pub(crate) const BASE_URL: &str = "{{base_url}}";

/// Errors loading fixtures.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid fixture JSON.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Two exchanges of one set answer the same request.
    #[error("duplicate fixture for {0}")]
    Duplicate(String),
}

/// The request side of an exchange.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query parameters; the request must carry exactly these.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers the request must carry (name case-insensitive, value exact).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// When set, the request body must equal this JSON value.
    #[serde(default)]
    pub body_json: Option<serde_json::Value>,
    /// When set, the request body, decoded as a form
    /// (`application/x-www-form-urlencoded`, the AWS query protocol of STS),
    /// must carry exactly these parameters, as `query` must.
    #[serde(default)]
    pub body_form: Option<BTreeMap<String, String>>,
}

fn default_method() -> String {
    "GET".into()
}

/// The response side of an exchange.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedResponse {
    /// HTTP status.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers, in order.
    #[serde(default, deserialize_with = "headers_in_order")]
    pub headers: Vec<(String, String)>,
    /// JSON body.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Raw body, used instead of `body`.
    #[serde(default)]
    pub body_text: Option<String>,
}

fn default_status() -> u16 {
    200
}

fn headers_in_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let map = serde_json::Map::deserialize(d)?;
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            other => Ok((k, other.to_string())),
        })
        .collect()
}

impl RecordedResponse {
    /// The body to send, with `{{base_url}}` substituted in raw bodies.
    pub fn body_bytes(&self, base_url: &str) -> Vec<u8> {
        if let Some(text) = &self.body_text {
            return text.replace(BASE_URL, base_url).into_bytes();
        }
        match &self.body {
            Some(value) => serde_json::to_vec(value).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// [`RecordedResponse::body_bytes`] of an answer the server owns: a text
    /// body without the placeholder is sent as it is, not copied.
    pub fn into_body_bytes(self, base_url: &str) -> Vec<u8> {
        match self.body_text {
            Some(text) if !text.contains(BASE_URL) => text.into_bytes(),
            _ => self.body_bytes(base_url),
        }
    }
}

/// One recorded request and its answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    /// What the client sends.
    pub request: RecordedRequest,
    /// What the upstream answered.
    pub response: RecordedResponse,
    /// When set, the exchange answers only its first `times` matching
    /// requests, ahead of exchanges without `times`; later matches fall
    /// through to the next matching exchange (a token that expires, a 429
    /// answered once).
    #[serde(default)]
    pub times: Option<u64>,
    /// Matches answered so far (shared by clones of the set).
    #[serde(skip)]
    hits: Arc<AtomicU64>,
}

impl Exchange {
    fn key(&self) -> String {
        let query: Vec<String> = self.request.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let headers: Vec<String> = self
            .request
            .headers
            .iter()
            .map(|(k, v)| format!("{}:{v}", k.to_ascii_lowercase()))
            .collect();
        let body = self
            .request
            .body_json
            .as_ref()
            .map(|b| b.to_string())
            .unwrap_or_default();
        let form = self
            .request
            .body_form
            .as_ref()
            .map(|form| {
                let pairs: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(" form:{}", pairs.join("&"))
            })
            .unwrap_or_default();
        let times = self.times.map(|n| format!(" times={n}")).unwrap_or_default();
        format!(
            "{} {}?{} [{}] {}{form}{times}",
            self.request.method.to_ascii_uppercase(),
            self.request.path,
            query.join("&"),
            headers.join(","),
            body
        )
    }

    fn matches(
        &self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &RequestBody<'_>,
    ) -> bool {
        if !self.request.method.eq_ignore_ascii_case(method.as_str())
            || self.request.path != path
            || &self.request.query != query
        {
            return false;
        }
        let headers_match = self.request.headers.iter().all(|(name, value)| {
            headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == value)
        });
        if !headers_match {
            return false;
        }
        if let Some(expected) = &self.request.body_form
            && body.form() != expected
        {
            return false;
        }
        match &self.request.body_json {
            None => true,
            Some(expected) => body.json().is_some_and(|actual| actual == expected),
        }
    }
}

/// A request body parsed (as JSON, as a form) at most once, however many
/// exchanges with a body matcher share the path (awsJson and query-protocol
/// APIs all post to `/`).
struct RequestBody<'a> {
    raw: &'a [u8],
    json: std::cell::OnceCell<Option<serde_json::Value>>,
    form: std::cell::OnceCell<BTreeMap<String, String>>,
}

impl<'a> RequestBody<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Self {
            raw,
            json: std::cell::OnceCell::new(),
            form: std::cell::OnceCell::new(),
        }
    }

    fn json(&self) -> Option<&serde_json::Value> {
        self.json.get_or_init(|| serde_json::from_slice(self.raw).ok()).as_ref()
    }

    fn form(&self) -> &BTreeMap<String, String> {
        self.form
            .get_or_init(|| url::form_urlencoded::parse(self.raw).into_owned().collect())
    }
}

#[derive(Deserialize)]
struct ExchangeFile {
    exchanges: Vec<Exchange>,
}

/// A set of exchanges, indexed by path.
#[derive(Debug, Clone, Default)]
pub struct FixtureSet {
    by_path: BTreeMap<String, Vec<Exchange>>,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FixtureError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FixtureError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| FixtureError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            json_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

fn decode_query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

impl FixtureSet {
    /// Loads every `*.json` under `dir` (recursively).
    pub fn load_dir(dir: &Path) -> Result<Self, FixtureError> {
        let mut set = Self::default();
        set.overlay_dir(dir)?;
        Ok(set)
    }

    /// Loads `fixtures/<provider>/exchanges`.
    pub fn load_provider(fixtures_root: &Path, provider: &str) -> Result<Self, FixtureError> {
        Self::load_dir(&fixtures_root.join(provider).join("exchanges"))
    }

    /// Applies the overlay under `dir`: its exchanges replace those answering the
    /// same request and add the rest.
    pub fn overlay_dir(&mut self, dir: &Path) -> Result<(), FixtureError> {
        let mut files = Vec::new();
        json_files(dir, &mut files)?;
        files.sort();
        let mut seen = std::collections::HashSet::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Io {
                path: path.clone(),
                source,
            })?;
            let file: ExchangeFile = serde_json::from_str(&text).map_err(|source| FixtureError::Parse {
                path: path.clone(),
                source,
            })?;
            for exchange in file.exchanges {
                let key = exchange.key();
                if !seen.insert(key.clone()) {
                    return Err(FixtureError::Duplicate(key));
                }
                self.insert(exchange);
            }
        }
        Ok(())
    }

    /// Adds an exchange, replacing one that answers the same request.
    pub fn insert(&mut self, exchange: Exchange) {
        let key = exchange.key();
        let list = self.by_path.entry(exchange.request.path.clone()).or_default();
        list.retain(|existing| existing.key() != key);
        list.push(exchange);
    }

    /// Removes the exchanges of a path (to simulate a resource gone upstream
    /// without a recorded 404); returns how many were removed.
    pub fn remove_path(&mut self, path: &str) -> usize {
        self.by_path.remove(path).map(|list| list.len()).unwrap_or(0)
    }

    /// Number of exchanges.
    pub fn len(&self) -> usize {
        self.by_path.values().map(Vec::len).sum()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every exchange, ordered by path.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.by_path.values().flatten()
    }

    /// Mutable access to every exchange (for tests that add request matchers).
    pub fn exchanges_mut_all(&mut self) -> impl Iterator<Item = &mut Exchange> {
        self.by_path.values_mut().flatten()
    }

    /// Mutable access to the exchanges of a path.
    pub fn exchanges_mut(&mut self, path: &str) -> Option<&mut Vec<Exchange>> {
        self.by_path.get_mut(path)
    }

    /// The exchange answering a request: a matching exchange with `times`
    /// left first (counting the answer), else the first matching one without.
    pub fn find(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Option<&Exchange> {
        let path = uri.path();
        let query = decode_query(uri);
        let body = RequestBody::new(body);
        let body = &body;
        let candidates = self.by_path.get(path)?;
        let limited = candidates.iter().find(|exchange| {
            exchange.times.is_some_and(|times| {
                exchange.hits.load(Ordering::Relaxed) < times
                    && exchange.matches(method, path, &query, headers, body)
                    && exchange.hits.fetch_add(1, Ordering::Relaxed) < times
            })
        });
        limited.or_else(|| {
            candidates
                .iter()
                .filter(|exchange| exchange.times.is_none())
                .find(|exchange| exchange.matches(method, path, &query, headers, body))
        })
    }
}
