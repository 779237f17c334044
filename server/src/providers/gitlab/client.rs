//! The GitLab REST API (v4) client: plain GETs through the shared
//! [`UpstreamClient`], GitLab's offset pagination (`X-Next-Page`, or a
//! `Link: rel="next"` where GitLab answers with keyset pagination), and the
//! response shapes the connector reads.
//!
//! Why not the `gitlab` crate: it is sync-first (its async client is a thin
//! layer over the same blocking design), brings its own HTTP stack and a large
//! dependency tree, and would have to be wrapped to go through the shared
//! layer (conditional requests, retries, rate limits, fixture replay). Four
//! GET endpoints do not justify that; serde models of the fields we read do.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{UpstreamClient, UpstreamError};

/// Errors of one GitLab request.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    /// Retries, rate limits or transport failures (the shared layer's verdict).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// GitLab answered with a non-success status.
    #[error("gitlab answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// GitLab's `message` (or `error`) field, lower-cased; empty if none.
        message: String,
    },
    /// The body does not have the documented shape.
    #[error("gitlab returned a body that does not parse: {0}")]
    Malformed(String),
}

impl GitlabError {
    /// The HTTP status of a GitLab error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitlabError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The token has characters a header cannot carry.
    #[error("GITLAB_TOKEN contains characters not allowed in an HTTP header")]
    InvalidToken,
}

/// One page of a listing: the body and the next page's path (relative to the
/// API base), if there is one.
#[derive(Debug)]
pub struct Page<T> {
    /// Parsed body.
    pub body: T,
    /// Next page, relative to the API base (`/groups/...?...&page=3`).
    pub next: Option<String>,
}

/// GitLab over the shared upstream client. The base URL of the upstream
/// client is the API root (`<GITLAB_BASE_URL>/api/v4`).
pub struct GitlabClient {
    upstream: Arc<UpstreamClient>,
    token: Option<HeaderValue>,
}

impl std::fmt::Debug for GitlabClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabClient")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// `PRIVATE-TOKEN`: GitLab's header for personal, group and project access tokens.
static PRIVATE_TOKEN: HeaderName = HeaderName::from_static("private-token");

impl GitlabClient {
    /// A client sending `token` (if any) as `PRIVATE-TOKEN`.
    pub fn new(upstream: Arc<UpstreamClient>, token: Option<&str>) -> Result<Self, ClientError> {
        let token = token
            .map(|t| {
                let mut value = HeaderValue::from_str(t).map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self { upstream, token })
    }

    /// `GET <api>/<path_and_query>`, parsed as `T`, with the next page's path.
    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<Page<T>, GitlabError> {
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
        if let Some(token) = &self.token {
            headers.insert(PRIVATE_TOKEN.clone(), token.clone());
        }
        let response = self.upstream.execute(request).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(GitlabError::Status {
                status: status.as_u16(),
                message: error_message(response.body()),
            });
        }
        let next = self.next_page(path_and_query, response.headers());
        let body = serde_json::from_slice(response.body()).map_err(|e| GitlabError::Malformed(e.to_string()))?;
        Ok(Page { body, next })
    }

    /// The next page: `X-Next-Page` applied to the current path (offset
    /// pagination), else a `Link: rel="next"` made relative to the API base
    /// (keyset pagination sends only the link). An empty `X-Next-Page` is the
    /// last page.
    fn next_page(&self, current: &str, headers: &HeaderMap) -> Option<String> {
        let next_page = headers
            .get("x-next-page")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        if let Some(page) = next_page {
            let page: u32 = page.parse().ok()?;
            return Some(with_page(current, page));
        }
        if headers.contains_key("x-next-page") {
            return None;
        }
        let link = headers.get(header::LINK)?.to_str().ok()?;
        let target = next_link(link)?;
        let uri: http::Uri = target.parse().ok()?;
        match self.upstream.relativize(&uri) {
            Ok(relative) => Some(relative.to_string()),
            Err(error) => {
                tracing::warn!(connector = "gitlab", %error, "next page link refused");
                None
            }
        }
    }
}

/// `current` with its `page` query parameter set to `page`.
pub fn with_page(current: &str, page: u32) -> String {
    with_param(current, "page", &page.to_string())
}

/// `current` with its query parameter `name` set to `value` (moved last).
pub fn with_param(current: &str, name: &str, value: &str) -> String {
    let (path, query) = current.split_once('?').unwrap_or((current, ""));
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.push((name.into(), value.into()));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{path}?{query}")
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// GitLab's error body: `{"message": "404 Project Not Found"}` (or an
/// `error` field, e.g. `{"error": "insufficient_scope", ...}`).
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        message: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return String::new();
    };
    let text = match (parsed.message, parsed.error) {
        (Some(serde_json::Value::String(s)), _) => s,
        (Some(other), _) => other.to_string(),
        (None, Some(error)) => error,
        (None, None) => String::new(),
    };
    text.chars().take(200).collect::<String>().to_lowercase()
}

/// `API_Entities_Project` (group listings and `GET /projects/:id`): the fields read.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    /// Numeric id (urns use it: it survives renames and transfers).
    pub id: u64,
    /// Path (slug) of the project.
    pub path: String,
    /// `namespace/.../path`.
    pub path_with_namespace: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Default branch (absent for an empty repository).
    #[serde(default)]
    pub default_branch: Option<String>,
    /// "public", "internal" or "private".
    #[serde(default)]
    pub visibility: Option<String>,
    /// Archived (read-only).
    #[serde(default)]
    pub archived: bool,
    /// Topics (GitLab 14.0+).
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Topics under their deprecated name (before 14.0).
    #[serde(default)]
    pub tag_list: Option<Vec<String>>,
    /// Web page.
    pub web_url: String,
    /// HTTPS clone URL.
    #[serde(default)]
    pub http_url_to_repo: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last activity (RFC 3339): the incremental marker.
    #[serde(default)]
    pub last_activity_at: Option<String>,
    /// The owning namespace.
    pub namespace: Namespace,
    /// Present (non-null) for forks.
    #[serde(default)]
    pub forked_from_project: Option<serde::de::IgnoredAny>,
    /// Whether CI/CD is enabled (absent for some tokens).
    #[serde(default)]
    pub jobs_enabled: Option<bool>,
    /// The day delayed deletion removes the project (Premium; a date,
    /// `2026-12-08`), set while it is pending deletion.
    #[serde(default)]
    pub marked_for_deletion_on: Option<String>,
    /// The same under its name before GitLab 12.10 (later versions send
    /// both: not a serde alias, which would refuse the pair as a duplicate).
    #[serde(default)]
    pub marked_for_deletion_at: Option<String>,
}

/// The namespace of a project.
#[derive(Debug, Clone, Deserialize)]
pub struct Namespace {
    /// Full path ("acme-corp/platform").
    pub full_path: String,
}

/// `API_Entities_Ci_PipelineBasic` (`GET /projects/:id/pipelines`).
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineBasic {
    /// Instance-wide id.
    pub id: u64,
    /// Commit.
    #[serde(default)]
    pub sha: String,
    /// Branch or tag.
    #[serde(rename = "ref", default)]
    pub git_ref: String,
    /// "success", "failed", "running", ...
    #[serde(default)]
    pub status: String,
    /// "push", "schedule", "merge_request_event", ...
    #[serde(default)]
    pub source: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last update (RFC 3339): the pipeline's upstream version.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Web page.
    #[serde(default)]
    pub web_url: String,
}

/// `API_Entities_Ci_Pipeline` (`GET /projects/:id/pipelines/:pipeline_id`): the
/// fields the listing does not have.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineDetail {
    /// Instance-wide id.
    pub id: u64,
    /// Finish time (RFC 3339), when finished.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Seconds spent running, when finished.
    #[serde(default)]
    pub duration: Option<f64>,
}

/// `GET /user` (the credential check).
#[derive(Debug, Deserialize)]
pub struct User {
    /// User id.
    pub id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameter_is_set_or_replaced() {
        assert_eq!(
            with_page("/groups/acme%2Fx/projects?per_page=6&sort=asc", 2),
            "/groups/acme%2Fx/projects?per_page=6&sort=asc&page=2"
        );
        assert_eq!(with_page("/p?page=2&per_page=6", 3), "/p?per_page=6&page=3");
        assert_eq!(
            with_param("/p?with_shared=true&page=2", "with_shared", "false"),
            "/p?page=2&with_shared=false"
        );
    }

    #[test]
    fn next_link_is_found_among_others() {
        let link = r#"<https://g.example/api/v4/projects?page=1>; rel="prev", <https://g.example/api/v4/projects?id_after=42&pagination=keyset>; rel="next", <https://g.example/api/v4/projects?page=1>; rel="first""#;
        assert_eq!(
            next_link(link),
            Some("https://g.example/api/v4/projects?id_after=42&pagination=keyset")
        );
        assert_eq!(next_link(r#"<https://g.example/x>; rel="first""#), None);
    }

    #[test]
    fn error_bodies_give_the_message() {
        assert_eq!(
            error_message(br#"{"message":"404 Project Not Found"}"#),
            "404 project not found"
        );
        assert_eq!(
            error_message(br#"{"error":"insufficient_scope","error_description":"x"}"#),
            "insufficient_scope"
        );
        assert_eq!(error_message(br#"{"message":{"base":["bad"]}}"#), r#"{"base":["bad"]}"#);
        assert_eq!(error_message(b"<html>"), "");
    }
}
