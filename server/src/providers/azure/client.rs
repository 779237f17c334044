//! Azure Resource Manager over the shared HTTP layer: GETs of subscription
//! listings with an `Authorization: Bearer` token from azure_identity,
//! `nextLink` pagination, and ARM's error body.
//!
//! Why not the azure management crates: the Rust SDK publishes no maintained,
//! stable management-plane crates for Microsoft.ContainerRegistry,
//! Microsoft.ContainerService and Microsoft.Web (the old `azure_mgmt_*` crates
//! are unmaintained and pinned to old api-versions), and each would bring its
//! own HTTP pipeline outside the shared layer (conditional requests, retries,
//! rate limits, fixture replay). Three list endpoints are plain ARM REST; only
//! the token comes from the SDK (`azure_identity`).

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential};
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{UpstreamClient, UpstreamError};

/// Errors of one ARM request.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// Retries, rate limits or transport failures (the shared layer's verdict).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// No token could be obtained from the configured credential.
    #[error("azure credential: {0}")]
    Credential(String),
    /// ARM answered with a non-success status.
    #[error("azure resource manager answered {status}: {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// ARM's `error.code` (`AuthorizationFailed`, `SubscriptionNotFound`, ...).
        code: String,
        /// ARM's `error.message`.
        message: String,
    },
    /// The body does not have the documented shape.
    #[error("azure resource manager returned a body that does not parse: {0}")]
    Malformed(String),
}

/// One page of an ARM list: `{"value": [...], "nextLink": "https://..."}`.
#[derive(Debug, Deserialize)]
pub struct ArmPage {
    /// Resources of the page.
    #[serde(default)]
    pub value: Vec<Value>,
    /// Absolute URL of the next page, when there is one.
    #[serde(default, rename = "nextLink")]
    pub next_link: Option<String>,
}

/// ARM over the shared upstream client (based at the ARM endpoint).
pub struct ArmClient {
    upstream: Arc<UpstreamClient>,
    credential: Option<Arc<dyn TokenCredential>>,
    token_scope: String,
    /// The last token: reused until [`TOKEN_RENEWAL`] before it expires.
    /// Most azure_identity credentials cache their tokens, but the Azure CLI
    /// credential does not: it would start `az` for every request.
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

/// How long before its expiry a token is renewed (what azure_identity's own
/// caches allow).
const TOKEN_RENEWAL: azure_core::time::Duration = azure_core::time::Duration::minutes(5);

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("credential", &self.credential.as_ref().map(|_| "<configured>"))
            .field("token_scope", &self.token_scope)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// A client; without a credential (fixture mode) no `Authorization` is sent.
    pub fn new(upstream: Arc<UpstreamClient>, credential: Option<Arc<dyn TokenCredential>>) -> Self {
        let token_scope = format!("{}/.default", upstream.config().base_url.as_str().trim_end_matches('/'));
        Self {
            upstream,
            credential,
            token_scope,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// A bearer token for ARM: the last one while it has more than five
    /// minutes to live (`TOKEN_RENEWAL`), else a new one from the credential
    /// (one request for it at a time).
    pub async fn bearer(&self) -> Result<Option<HeaderValue>, ArmError> {
        let Some(credential) = &self.credential else {
            return Ok(None);
        };
        let mut last = self.token.lock().await;
        let renew_after = azure_core::time::OffsetDateTime::now_utc() + TOKEN_RENEWAL;
        let token = match last.take().filter(|token| token.expires_on > renew_after) {
            Some(token) => token,
            None => credential
                .get_token(&[self.token_scope.as_str()], None)
                .await
                .map_err(|e| ArmError::Credential(e.to_string()))?,
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.token.secret()))
            .map_err(|_| ArmError::Credential("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        *last = Some(token);
        Ok(Some(value))
    }

    /// `GET <arm>/<path_and_query>` as one list page; `nextLink` is returned
    /// relative to the ARM endpoint (a link to another origin is refused).
    pub async fn list(&self, path_and_query: &str) -> Result<(Vec<Value>, Option<String>), ArmError> {
        let mut request = http::Request::new(Bytes::new());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = path_and_query
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamError::InvalidRequest(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("connectors-server/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(bearer) = self.bearer().await? {
            headers.insert(header::AUTHORIZATION, bearer);
        }
        let response = self.upstream.execute(request).await?;
        let status = response.status();
        if !status.is_success() {
            let (code, message) = error_body(response.body());
            return Err(ArmError::Status {
                status: status.as_u16(),
                code,
                message,
            });
        }
        let page: ArmPage = serde_json::from_slice(response.body()).map_err(|e| ArmError::Malformed(e.to_string()))?;
        let next = match page.next_link.filter(|l| !l.is_empty()) {
            None => None,
            Some(link) => {
                let uri: http::Uri = link
                    .parse()
                    .map_err(|_| ArmError::Malformed("nextLink is not a URL".into()))?;
                let relative = self
                    .upstream
                    .relativize(&uri)
                    .map_err(|_| ArmError::Malformed("nextLink points outside the ARM endpoint".into()))?;
                Some(relative.to_string())
            }
        };
        Ok((page.value, next))
    }
}

/// ARM's error body: `{"error": {"code": "...", "message": "..."}}`.
fn error_body(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct Outer {
        error: Option<Inner>,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(Outer { error: Some(inner) }) => (inner.code, inner.message),
        _ => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential that counts its calls and hands out tokens living `life`.
    #[derive(Debug)]
    struct Counting {
        calls: std::sync::atomic::AtomicU32,
        life: azure_core::time::Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            assert_eq!(scopes, ["https://management.azure.com/.default"]);
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok(azure_core::credentials::AccessToken::new(
                format!("token-{n}"),
                azure_core::time::OffsetDateTime::now_utc() + self.life,
            ))
        }
    }

    fn arm_with(life: azure_core::time::Duration) -> (ArmClient, Arc<Counting>) {
        let credential = Arc::new(Counting {
            calls: std::sync::atomic::AtomicU32::new(0),
            life,
        });
        let upstream = crate::http::UpstreamClient::new(
            crate::http::UpstreamConfig::new("azure", url::Url::parse("https://management.azure.com").unwrap()),
            crate::cache::SharedCache::memory(1 << 20),
        )
        .unwrap();
        (ArmClient::new(Arc::new(upstream), Some(credential.clone())), credential)
    }

    #[tokio::test]
    async fn a_token_is_reused_until_five_minutes_before_it_expires() {
        // The Azure CLI credential does not cache: without this, every ARM
        // page started an `az account get-access-token` process.
        let (arm, credential) = arm_with(azure_core::time::Duration::hours(1));
        for _ in 0..3 {
            let bearer = arm.bearer().await.unwrap().unwrap();
            assert_eq!(bearer.to_str().unwrap(), "Bearer token-1");
            assert!(bearer.is_sensitive());
        }
        assert_eq!(credential.calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        // A token within five minutes of its expiry is renewed.
        let (arm, credential) = arm_with(azure_core::time::Duration::minutes(4));
        for n in 1..=2 {
            let bearer = arm.bearer().await.unwrap().unwrap();
            assert_eq!(bearer.to_str().unwrap(), format!("Bearer token-{n}"));
        }
        assert_eq!(credential.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn arm_error_bodies_parse() {
        let (code, message) = error_body(
            br#"{"error":{"code":"AuthorizationFailed","message":"The client does not have authorization"}}"#,
        );
        assert_eq!(code, "AuthorizationFailed");
        assert_eq!(message, "The client does not have authorization");
        assert_eq!(error_body(b"not json"), (String::new(), String::new()));
    }

    #[test]
    fn arm_throttling_headers_are_read_by_the_shared_layer() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            HeaderValue::from_static("11999"),
        );
        assert_eq!(crate::http::RateLimit::from_headers(&headers).remaining, Some(11999));
        headers.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            HeaderValue::from_static("0"),
        );
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("17"));
        let rate = crate::http::RateLimit::from_headers(&headers);
        assert_eq!((rate.remaining, rate.retry_after), (Some(0), Some(17)));
        assert!(rate.is_limited(http::StatusCode::TOO_MANY_REQUESTS));
    }
}
