//! Google Cloud REST (JSON) over the shared [`UpstreamClient`]: one client per
//! API host, bearer tokens from google-cloud-auth, `pageSize`/`pageToken`/
//! `nextPageToken` pagination, Google's error body (`google.rpc.Status`), and
//! the response shapes the connector reads (from the discovery documents
//! `artifactregistry.v1`, `run.v2` and `container.v1`).
//!
//! Why not the generated google-cloud-rust service crates
//! (`google-cloud-artifactregistry-v1`, `google-cloud-run-v2`,
//! `google-cloud-container-v1`): each is a large generated crate (minutes of
//! cold compile on two cores per API for three list calls), they speak gRPC
//! or their own HTTP client, so their requests would bypass the shared layer
//! (retries, rate limits, concurrency, request statistics, fixture replay);
//! serde models of the fields we read are a few dozen lines. google-cloud-auth
//! is used for what it is good at: the credential flows.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{UpstreamClient, UpstreamError};

/// Errors of one Google API request.
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// Retries, rate limits or transport failures (the shared layer's verdict).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// No access token could be obtained from the configured credentials.
    #[error("no access token from the configured credentials: {0}")]
    Token(String),
    /// The API answered with a non-success status.
    #[error("{api} answered {status} {reason}: {message}")]
    Status {
        /// API host name ("run.googleapis.com").
        api: &'static str,
        /// HTTP status.
        status: u16,
        /// `error.status` of the body ("PERMISSION_DENIED"); empty if none.
        reason: String,
        /// `error.message`, at most 200 characters.
        message: String,
        /// The `reason` of the `google.rpc.ErrorInfo` in `error.details`
        /// ("SERVICE_DISABLED"); empty if none.
        cause: String,
    },
    /// The body does not have the documented shape.
    #[error("{api} returned a body that does not parse: {detail}")]
    Malformed {
        /// API host name.
        api: &'static str,
        /// Parser message.
        detail: String,
    },
}

impl GcpError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            GcpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the API refused the request as invalid (400
    /// `INVALID_ARGUMENT`): what Google answers a page token it no longer
    /// accepts (expired, or from another listing).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, GcpError::Status { status: 400, reason, .. } if reason == "INVALID_ARGUMENT")
    }

    /// Whether the API is not enabled in the project (403 with an ErrorInfo
    /// of reason `SERVICE_DISABLED`): the project has nothing of it.
    pub fn is_service_disabled(&self) -> bool {
        matches!(self, GcpError::Status { status: 403, cause, .. } if cause == "SERVICE_DISABLED")
    }
}

/// Where access tokens come from.
#[derive(Clone)]
pub enum TokenSource {
    /// Fixture mode: no `Authorization` header.
    None,
    /// google-cloud-auth credentials (ADC, service account key, external
    /// account); the crate caches and refreshes the token.
    #[cfg(feature = "gcp")]
    Credentials(google_cloud_auth::credentials::AccessTokenCredentials),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => f.write_str("TokenSource::None"),
            #[cfg(feature = "gcp")]
            TokenSource::Credentials(_) => f.write_str("TokenSource::Credentials(<redacted>)"),
        }
    }
}

impl TokenSource {
    async fn header(&self) -> Result<Option<HeaderValue>, GcpError> {
        match self {
            TokenSource::None => Ok(None),
            #[cfg(feature = "gcp")]
            TokenSource::Credentials(credentials) => {
                let token = credentials
                    .access_token()
                    .await
                    .map_err(|e| GcpError::Token(e.to_string()))?;
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.token))
                    .map_err(|_| GcpError::Token("the token is not a valid header value".into()))?;
                value.set_sensitive(true);
                Ok(Some(value))
            }
        }
    }
}

/// One Google API (one host) over the shared upstream client, whose base URL
/// is the API root (`https://run.googleapis.com`, or a replay prefix).
#[derive(Debug, Clone)]
pub struct GcpApi {
    /// Host name, for messages and cursors ("run.googleapis.com").
    pub api: &'static str,
    upstream: Arc<UpstreamClient>,
    tokens: TokenSource,
}

impl GcpApi {
    /// An API client.
    pub fn new(api: &'static str, upstream: Arc<UpstreamClient>, tokens: TokenSource) -> Self {
        Self { api, upstream, tokens }
    }

    /// `GET <root><path_and_query>`, parsed as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, GcpError> {
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
        if let Some(token) = self.tokens.header().await? {
            headers.insert(header::AUTHORIZATION, token);
        }
        let response = self.upstream.execute(request).await?;
        let status = response.status();
        if !status.is_success() {
            let (reason, message, cause) = error_body(response.body());
            return Err(GcpError::Status {
                api: self.api,
                status: status.as_u16(),
                reason,
                message,
                cause,
            });
        }
        serde_json::from_slice(response.body()).map_err(|e| GcpError::Malformed {
            api: self.api,
            detail: e.to_string(),
        })
    }
}

/// `listing` with `pageSize` and, after the first page, `pageToken`.
pub fn page_route(listing: &str, page_size: u32, token: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("pageSize", &page_size.to_string());
    if let Some(token) = token {
        query.append_pair("pageToken", token);
    }
    format!("{listing}?{}", query.finish())
}

/// Google's error body: `{"error": {"code": 403, "message": "...", "status":
/// "PERMISSION_DENIED", "details": [...]}}` (google.rpc.Status in JSON):
/// its status, message (at most 200 characters) and the reason of the
/// `google.rpc.ErrorInfo` among its details.
pub fn error_body(body: &[u8]) -> (String, String, String) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Status,
    }
    #[derive(Deserialize)]
    struct Status {
        #[serde(default)]
        message: String,
        #[serde(default)]
        status: String,
        #[serde(default)]
        details: Vec<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(rename = "@type", default)]
        kind: String,
        #[serde(default)]
        reason: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => {
            let cause = e
                .error
                .details
                .into_iter()
                .find(|d| d.kind == "type.googleapis.com/google.rpc.ErrorInfo")
                .map(|d| d.reason)
                .unwrap_or_default();
            (e.error.status, e.error.message.chars().take(200).collect(), cause)
        }
        Err(_) => (String::new(), String::new(), String::new()),
    }
}

/// `ListRepositoriesResponse` (artifactregistry v1).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRepositories {
    /// The page (absent when empty).
    #[serde(default)]
    pub repositories: Vec<Repository>,
    /// Next page token; absent or empty on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `Repository` (artifactregistry v1): the fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// `projects/{p}/locations/{l}/repositories/{r}`.
    pub name: String,
    /// "DOCKER", "MAVEN", "NPM", "PYTHON", ...
    #[serde(default)]
    pub format: String,
    /// "STANDARD_REPOSITORY", "VIRTUAL_REPOSITORY", "REMOTE_REPOSITORY".
    #[serde(default)]
    pub mode: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Size in bytes (int64 as a string).
    #[serde(default)]
    pub size_bytes: Option<String>,
    /// Registry host and path (`us-central1-docker.pkg.dev/p/r`).
    #[serde(default)]
    pub registry_uri: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub create_time: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default)]
    pub update_time: Option<String>,
}

/// `ListDockerImagesResponse` (artifactregistry v1).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDockerImages {
    /// The page (absent when empty).
    #[serde(default)]
    pub docker_images: Vec<DockerImage>,
    /// Next page token.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `DockerImage` (artifactregistry v1): the fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerImage {
    /// `projects/{p}/locations/{l}/repositories/{r}/dockerImages/{image}@sha256:{digest}`.
    pub name: String,
    /// `{l}-docker.pkg.dev/{p}/{r}/{image}@sha256:{digest}`.
    #[serde(default)]
    pub uri: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Size in bytes (int64 as a string).
    #[serde(default)]
    pub image_size_bytes: Option<String>,
    /// Manifest media type.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Upload time (RFC 3339).
    #[serde(default)]
    pub upload_time: Option<String>,
    /// Last update (tags moved, ...).
    #[serde(default)]
    pub update_time: Option<String>,
}

/// `GoogleCloudRunV2ListServicesResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServices {
    /// The page (absent when empty).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Next page token.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `GoogleCloudRunV2Service`: the fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// `projects/{p}/locations/{l}/services/{s}`.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// "INGRESS_TRAFFIC_ALL", ...
    #[serde(default)]
    pub ingress: String,
    /// Main URI (`https://...run.app`).
    #[serde(default)]
    pub uri: String,
    /// Full name of the latest ready revision.
    #[serde(default)]
    pub latest_ready_revision: String,
    /// Generation (int64 as a string).
    #[serde(default)]
    pub generation: Option<String>,
    /// The revision template.
    #[serde(default)]
    pub template: Template,
    /// The `Ready` condition.
    #[serde(default)]
    pub terminal_condition: Option<Condition>,
    /// Entity tag, changes with every update.
    #[serde(default)]
    pub etag: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub create_time: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default)]
    pub update_time: Option<String>,
}

/// `GoogleCloudRunV2RevisionTemplate`: the containers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Containers (one, plus sidecars).
    #[serde(default)]
    pub containers: Vec<Container>,
}

/// `GoogleCloudRunV2Container`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name (may be empty for the single container).
    #[serde(default)]
    pub name: String,
    /// Image reference as deployed.
    #[serde(default)]
    pub image: String,
}

/// `GoogleCloudRunV2Condition`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// "CONDITION_SUCCEEDED", "CONDITION_FAILED", ...
    #[serde(default)]
    pub state: String,
}

/// `ListClustersResponse` (container v1; not paginated).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListClusters {
    /// Clusters of every location.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Zones that could not be reached: the listing is incomplete.
    #[serde(default)]
    pub missing_zones: Vec<String>,
}

/// `Cluster` (container v1): the fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Short name.
    pub name: String,
    /// Region or zone.
    #[serde(default)]
    pub location: String,
    /// "RUNNING", "PROVISIONING", ...
    #[serde(default)]
    pub status: String,
    /// Control plane version.
    #[serde(default)]
    pub current_master_version: String,
    /// Nodes across pools.
    #[serde(default)]
    pub current_node_count: Option<u64>,
    /// Control plane endpoint (IP).
    #[serde(default)]
    pub endpoint: String,
    /// `resourceLabels`.
    #[serde(default)]
    pub resource_labels: BTreeMap<String, String>,
    /// Node pools.
    #[serde(default)]
    pub node_pools: Vec<NodePool>,
    /// Release channel.
    #[serde(default)]
    pub release_channel: Option<ReleaseChannel>,
    /// Self link (`https://container.googleapis.com/v1/projects/...`).
    #[serde(default)]
    pub self_link: String,
    /// Entity tag.
    #[serde(default)]
    pub etag: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub create_time: Option<String>,
}

/// `NodePool` (container v1): the fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    /// Name.
    pub name: String,
    /// Kubernetes version of the nodes.
    #[serde(default)]
    pub version: String,
    /// Node configuration.
    #[serde(default)]
    pub config: NodeConfig,
}

/// `NodeConfig`: the machine type.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    /// "e2-standard-4", ...
    #[serde(default)]
    pub machine_type: String,
}

/// `ReleaseChannel`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseChannel {
    /// "REGULAR", "RAPID", "STABLE", ...
    #[serde(default)]
    pub channel: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_routes_carry_size_and_encoded_token() {
        assert_eq!(page_route("/v2/x/services", 50, None), "/v2/x/services?pageSize=50");
        assert_eq!(
            page_route("/v2/x/services", 2, Some("CiA+/=")),
            "/v2/x/services?pageSize=2&pageToken=CiA%2B%2F%3D"
        );
    }

    #[test]
    fn google_error_bodies_give_status_message_and_error_info_reason() {
        let body = br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED","details":[]}}"#;
        assert_eq!(
            error_body(body),
            (
                "PERMISSION_DENIED".to_owned(),
                "Permission denied".to_owned(),
                String::new()
            )
        );
        let disabled = br#"{"error":{"code":403,"message":"Cloud Run Admin API has not been used","status":"PERMISSION_DENIED","details":[
            {"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"Cloud Run Admin API has not been used"},
            {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com","metadata":{"service":"run.googleapis.com"}}]}}"#;
        assert_eq!(error_body(disabled).2, "SERVICE_DISABLED");
        assert_eq!(error_body(b"<html>"), (String::new(), String::new(), String::new()));
    }
}
