//! Client authentication: API keys from `CONNECTORS_API_KEYS`, accepted as
//! `authorization: Bearer <key>` or `x-api-key: <key>`, kept only as SHA-256
//! digests, optionally limited to some connectors. Health and reflection stay
//! open unless configured otherwise. Applied as a tower layer in front of
//! every gRPC service.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tonic::Status;

/// Connector ids a key may be limited to.
pub const CONNECTOR_IDS: &[&str] = &["aws", "azure", "gcp", "github", "gitlab", "kubernetes", "wiz"];

/// What one key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every connector.
    All,
    /// Only these connectors (and the registry).
    Connectors(BTreeSet<String>),
}

/// The identity of an authenticated client (a prefix of its key's digest),
/// put in request extensions for per-client limits. Never the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);

/// Configured API keys and what is protected.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: HashMap<[u8; 32], Access>,
    /// Require a key for grpc.health.v1 too.
    pub protect_health: bool,
    /// Require a key for server reflection too.
    pub protect_reflection: bool,
    /// gRPC service name -> connector id.
    services: HashMap<String, String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .field("protect_health", &self.protect_health)
            .field("protect_reflection", &self.protect_reflection)
            .finish()
    }
}

/// Why `CONNECTORS_API_KEYS` is invalid. Never contains a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("CONNECTORS_API_KEYS entry {entry}: {message}")]
pub struct ApiKeysError {
    /// 1-based position of the entry.
    pub entry: usize,
    /// What is wrong.
    pub message: String,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Parses `CONNECTORS_API_KEYS`: comma-separated entries, each `KEY` (every
    /// connector) or `KEY=connector+connector`. `KEY` may be `sha256:<64 hex>`
    /// to configure the digest instead of the key. Keys are at least 16
    /// characters, without ',' or '='.
    pub fn parse(value: &str) -> Result<Self, ApiKeysError> {
        let mut keys = HashMap::new();
        for (i, entry) in value.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let entry_no = i + 1;
            let err = |message: &str| ApiKeysError {
                entry: entry_no,
                message: message.to_owned(),
            };
            let (key, access) = match entry.split_once('=') {
                Some((key, connectors)) => {
                    let mut set = BTreeSet::new();
                    for connector in connectors.split('+').map(str::trim) {
                        if !CONNECTOR_IDS.contains(&connector) {
                            // What follows '=' may be the rest of a key that
                            // contains one (base64 padding): quote it only
                            // when it reads as a connector id.
                            let an_id = (1..=12).contains(&connector.len())
                                && connector.bytes().all(|b| b.is_ascii_lowercase());
                            return Err(err(&if an_id {
                                format!("unknown connector {connector:?} (known: {})", CONNECTOR_IDS.join(", "))
                            } else {
                                "'=' may not appear in a key (it separates a key from the connectors it may use: KEY=github+gitlab)".to_owned()
                            }));
                        }
                        set.insert(connector.to_owned());
                    }
                    (key.trim(), Access::Connectors(set))
                }
                None => (entry, Access::All),
            };
            let digest = match key.strip_prefix("sha256:") {
                Some(hex_digest) => {
                    let bytes =
                        hex::decode(hex_digest).map_err(|_| err("sha256: must be followed by 64 hex digits"))?;
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| err("sha256: must be followed by 64 hex digits"))?
                }
                None => {
                    if key.len() < 16 || !key.chars().all(|c| c.is_ascii_graphic()) {
                        return Err(err("keys must be at least 16 visible ASCII characters"));
                    }
                    digest(key)
                }
            };
            if keys.insert(digest, access).is_some() {
                return Err(err("duplicate key"));
            }
        }
        Ok(Self {
            keys,
            ..Default::default()
        })
    }

    /// True when no key is configured (the API is open).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Declares which gRPC service belongs to which connector.
    pub fn with_service(mut self, service: &str, connector: &str) -> Self {
        self.services.insert(service.to_owned(), connector.to_owned());
        self
    }

    /// Decides on a request to `path` ("/package.Service/Method").
    pub fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<ClientId>, Status> {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        let open_service = (service == "grpc.health.v1.Health" && !self.protect_health)
            || (service.starts_with("grpc.reflection.") && !self.protect_reflection);
        if self.keys.is_empty() || open_service {
            return Ok(None);
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(Status::unauthenticated(
                "missing API key: send authorization: Bearer <key> or x-api-key: <key>",
            ));
        };
        let digest = digest(presented);
        let Some(access) = self.keys.get(&digest) else {
            return Err(Status::unauthenticated("invalid API key"));
        };
        if let (Some(connector), Access::Connectors(allowed)) = (self.services.get(service), access)
            && !allowed.contains(connector)
        {
            return Err(Status::permission_denied(format!(
                "this API key may not use connector {connector}"
            )));
        }
        Ok(Some(ClientId(hex::encode(&digest[..8]))))
    }
}

/// The tower layer.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    keys: Arc<ApiKeys>,
}

impl AuthLayer {
    /// Enforces `keys`.
    pub fn new(keys: ApiKeys) -> Self {
        Self { keys: Arc::new(keys) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// The tower service.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    keys: Arc<ApiKeys>,
}

impl<S, B> tower_service::Service<http::Request<B>> for Auth<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.keys.check(request.uri().path(), request.headers()) {
            Ok(client) => {
                if let Some(client) = client {
                    request.extensions_mut().insert(client);
                }
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                metrics::counter!("connectors_auth_rejected_total", "code" => format!("{:?}", status.code()))
                    .increment(1);
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k-0123456789abcdef";
    const GITHUB_ONLY: &str = "g-0123456789abcdef";

    fn keys() -> ApiKeys {
        ApiKeys::parse(&format!("{KEY}, {GITHUB_ONLY}=github"))
            .unwrap()
            .with_service("connectors.github.v1.GithubConnectorService", "github")
            .with_service("connectors.gitlab.v1.GitlabConnectorService", "gitlab")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const SYNC_GITHUB: &str = "/connectors.github.v1.GithubConnectorService/Sync";
    const SYNC_GITLAB: &str = "/connectors.gitlab.v1.GitlabConnectorService/Sync";

    #[test]
    fn bearer_and_x_api_key_are_accepted() {
        let keys = keys();
        let bearer = keys.check(SYNC_GITHUB, &headers(&[("authorization", &format!("Bearer {KEY}"))]));
        let header = keys.check(SYNC_GITHUB, &headers(&[("x-api-key", KEY)]));
        let expected = Some(ClientId(hex::encode(&digest(KEY)[..8])));
        assert_eq!(bearer.unwrap(), expected);
        assert_eq!(header.unwrap(), expected);
    }

    #[test]
    fn missing_and_wrong_keys_are_unauthenticated_without_echoing_them() {
        let keys = keys();
        let missing = keys
            .check("/connectors.v1.RegistryService/ListConnectors", &headers(&[]))
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        let wrong = keys
            .check(
                SYNC_GITHUB,
                &headers(&[("authorization", "Bearer not-the-right-key-123")]),
            )
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert_eq!(wrong.message(), "invalid API key");
    }

    #[test]
    fn a_limited_key_is_denied_other_connectors() {
        let keys = keys();
        let auth = headers(&[("x-api-key", GITHUB_ONLY)]);
        assert!(keys.check(SYNC_GITHUB, &auth).is_ok());
        assert!(
            keys.check("/connectors.v1.RegistryService/ListConnectors", &auth)
                .is_ok()
        );
        let denied = keys.check(SYNC_GITLAB, &auth).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(denied.message(), "this API key may not use connector gitlab");
    }

    #[test]
    fn health_and_reflection_are_open_unless_protected() {
        let mut keys = keys();
        let health = "/grpc.health.v1.Health/Check";
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(keys.check(health, &headers(&[])).unwrap(), None);
        assert_eq!(keys.check(reflection, &headers(&[])).unwrap(), None);
        keys.protect_health = true;
        keys.protect_reflection = true;
        assert_eq!(
            keys.check(health, &headers(&[])).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            keys.check(reflection, &headers(&[])).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn parsing_checks_entries_and_accepts_digests() {
        let hashed = format!("sha256:{}", hex::encode(digest(KEY)));
        let keys = ApiKeys::parse(&hashed).unwrap();
        assert!(keys.check(SYNC_GITHUB, &headers(&[("x-api-key", KEY)])).is_ok());
        assert!(ApiKeys::parse("").unwrap().is_open());
        assert_eq!(
            ApiKeys::parse("short").unwrap_err(),
            ApiKeysError {
                entry: 1,
                message: "keys must be at least 16 visible ASCII characters".into()
            }
        );
        let unknown = ApiKeys::parse(&format!("{KEY}=github+jira")).unwrap_err();
        assert_eq!(unknown.entry, 1);
        assert!(unknown.message.starts_with("unknown connector \"jira\""));
        assert!(!unknown.to_string().contains(KEY), "errors never contain a key");
        assert_eq!(
            ApiKeys::parse(&format!("{KEY},{KEY}")).unwrap_err().message,
            "duplicate key"
        );
        assert_eq!(
            ApiKeys::parse("sha256:zz").unwrap_err().message,
            "sha256: must be followed by 64 hex digits"
        );
    }
    /// '=' separates a key from its connectors: a key that contains one (a
    /// base64 key's padding) is told so, and no part of it is quoted.
    #[test]
    fn a_key_containing_equals_is_refused_saying_why() {
        let equals =
            "'=' may not appear in a key (it separates a key from the connectors it may use: KEY=github+gitlab)";
        for value in [
            "c2stbGl2ZS0wMTIzNDU2Nzg5YWJjZGVm=",
            "c2stbGl2ZS0wMTIzNDU2Nzg5YWJjZA==",
            "sk-live-0123=456789abcdef",
        ] {
            let error = ApiKeys::parse(value).unwrap_err();
            assert_eq!(
                error,
                ApiKeysError {
                    entry: 1,
                    message: equals.into()
                },
                "{value}"
            );
        }
    }
}
