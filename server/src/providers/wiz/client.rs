//! The Wiz GraphQL client: the `CloudResourceSearch` query over the shared
//! upstream HTTP layer, with OAuth client-credentials tokens (renewed before
//! they expire, and once more when the API answers 401) or a ready token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::http::{UpstreamClient, UpstreamError};

/// The cloud resource inventory query (Wiz's `cloudResources` connection with
/// Relay cursors). Fixtures match the POST body exactly: keep it equal to
/// `QUERY` in fixtures/wiz/generate.py.
pub const QUERY: &str = "query CloudResourceSearch($filterBy: CloudResourceFilters, $first: Int, $after: String) {
  cloudResources(filterBy: $filterBy, first: $first, after: $after) {
    nodes {
      id
      name
      type
      subscriptionId
      subscriptionExternalId
      graphEntity {
        id
        providerUniqueId
        name
        type
        properties
        firstSeen
        lastSeen
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
";

/// The audience Wiz's token endpoint at `auth_url` expects for API tokens:
/// `beyond-api` for the Auth0 endpoints of older tenants (`auth.wiz.io`,
/// `auth0.gov.wiz.io`), `wiz-api` for the Cognito ones (`auth.app.wiz.io`,
/// `auth.gov.wiz.io`, `auth.app.wiz.us`) and any other.
pub fn audience(auth_url: &url::Url) -> &'static str {
    match auth_url.host_str() {
        Some("auth.wiz.io" | "auth0.gov.wiz.io") => "beyond-api",
        _ => "wiz-api",
    }
}

/// A token is renewed when it has less than this left.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// How the connector authenticates to Wiz.
#[derive(Clone, Default)]
pub enum WizAuth {
    /// No credentials (fixture mode).
    #[default]
    None,
    /// A ready bearer token (`WIZ_TOKEN`).
    Token(String),
    /// OAuth client credentials (`WIZ_CLIENT_ID`, `WIZ_CLIENT_SECRET`).
    ClientCredentials {
        /// Service account client id.
        client_id: String,
        /// Service account client secret.
        client_secret: String,
    },
}

impl std::fmt::Debug for WizAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WizAuth::None => f.write_str("None"),
            WizAuth::Token(_) => f.write_str("Token(<redacted>)"),
            WizAuth::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

impl WizAuth {
    /// The registry's auth mode name.
    pub fn mode(&self) -> &'static str {
        match self {
            WizAuth::None => "none",
            WizAuth::Token(_) => "token",
            WizAuth::ClientCredentials { .. } => "client_credentials",
        }
    }
}

/// Why a Wiz request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Retries, rate limits or transport failures of the shared HTTP layer.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The credentials were rejected (after one token renewal).
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials lack a permission (403).
    #[error("{0}")]
    Forbidden(String),
    /// Any other non-success status.
    #[error("wiz answered {status}")]
    Status {
        /// HTTP status.
        status: u16,
    },
    /// A body that does not parse.
    #[error("{0}")]
    Malformed(String),
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// "Bearer".
    #[serde(default)]
    pub token_type: Option<String>,
}

/// A GraphQL answer: data (possibly partial) and errors.
#[derive(Debug, Deserialize)]
pub struct GraphqlResponse {
    /// The data; partial when `errors` is not empty.
    #[serde(default)]
    pub data: Option<CloudResourcesData>,
    /// GraphQL errors.
    #[serde(default)]
    pub errors: Vec<GraphqlError>,
}

/// One GraphQL error.
#[derive(Debug, Deserialize)]
pub struct GraphqlError {
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// Machine-readable details, if any.
    #[serde(default)]
    pub extensions: Option<GraphqlErrorExtensions>,
}

/// The `extensions` of a GraphQL error.
#[derive(Debug, Deserialize)]
pub struct GraphqlErrorExtensions {
    /// The error's code (`FORBIDDEN`, `INTERNAL`, ...).
    #[serde(default)]
    pub code: Option<String>,
}

impl GraphqlError {
    /// Whether the query was refused for want of permission: the error is
    /// coded `FORBIDDEN` or `UNAUTHORIZED` (the token is valid, its scopes
    /// do not cover the query).
    pub fn is_denied(&self) -> bool {
        matches!(
            self.extensions.as_ref().and_then(|e| e.code.as_deref()),
            Some("FORBIDDEN" | "UNAUTHORIZED")
        )
    }
}

impl GraphqlResponse {
    /// Whether the query was refused for an argument (the `after` cursor of
    /// a resumed scope, Wiz having expired it): no data, and an error coded
    /// as bad input. Wiz does not publish its codes; these are the GraphQL
    /// servers' (`BAD_USER_INPUT`, Apollo's) and `INVALID_INPUT`.
    pub fn refuses_input(&self) -> bool {
        let data = self.data.as_ref().and_then(|d| d.cloud_resources.as_ref());
        data.is_none()
            && self.errors.iter().any(|e| {
                matches!(
                    e.extensions.as_ref().and_then(|x| x.code.as_deref()),
                    Some("BAD_USER_INPUT" | "INVALID_INPUT")
                )
            })
    }
}

/// `data` of the cloud resources query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudResourcesData {
    /// The connection; null when the field failed.
    #[serde(default)]
    pub cloud_resources: Option<CloudResourceConnection>,
}

/// One page of the `cloudResources` connection.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudResourceConnection {
    /// The resources of the page (a node that failed is null; so is the
    /// whole list when the error reached it).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub nodes: Vec<Option<CloudResource>>,
    /// Relay pagination.
    #[serde(default)]
    pub page_info: Option<PageInfo>,
}

/// A list that may be null (a GraphQL field error nulls the field), as empty.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Relay `pageInfo`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Whether another page follows.
    #[serde(default)]
    pub has_next_page: bool,
    /// The cursor to pass as `after` for the next page.
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// A Wiz cloud resource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudResource {
    /// Wiz's id of the resource.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Wiz graph entity type ("VIRTUAL_MACHINE").
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Wiz's id of the cloud account.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// The cloud's id of the account (AWS account, Azure subscription, GCP project).
    #[serde(default)]
    pub subscription_external_id: Option<String>,
    /// The resource's node in the Wiz security graph.
    #[serde(default)]
    pub graph_entity: Option<GraphEntity>,
}

/// A node of the Wiz security graph.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEntity {
    /// Graph node id.
    #[serde(default)]
    pub id: Option<String>,
    /// The cloud provider's unique id (ARN, resource id).
    #[serde(default)]
    pub provider_unique_id: Option<String>,
    /// Graph entity type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Free-form properties (cloudPlatform, nativeType, region, status, tags, ...).
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

struct CachedToken {
    value: String,
    expires: Instant,
}

/// The Wiz API client.
pub struct WizClient {
    api: Arc<UpstreamClient>,
    auth_http: Arc<UpstreamClient>,
    auth: WizAuth,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for WizClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WizClient")
            .field("api_url", &self.api.config().base_url.as_str())
            .field("auth_url", &self.auth_http.config().base_url.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn absolute(url: &Url) -> Result<http::Uri, UpstreamError> {
    url.as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| UpstreamError::InvalidRequest(e.to_string()))
}

impl WizClient {
    /// A client: `api` is based at the GraphQL endpoint, `auth_http` at the token endpoint.
    pub fn new(api: Arc<UpstreamClient>, auth_http: Arc<UpstreamClient>, auth: WizAuth) -> Self {
        Self {
            api,
            auth_http,
            auth,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The bearer token to send; `rejected` is a token the API just refused,
    /// which is renewed (client credentials) instead of reused.
    async fn bearer(&self, rejected: Option<&str>) -> Result<Option<String>, ClientError> {
        let (client_id, client_secret) = match &self.auth {
            WizAuth::None => return Ok(None),
            WizAuth::Token(token) => return Ok(Some(token.clone())),
            WizAuth::ClientCredentials {
                client_id,
                client_secret,
            } => (client_id, client_secret),
        };
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires > Instant::now() + TOKEN_MARGIN
            && rejected != Some(token.value.as_str())
        {
            return Ok(Some(token.value.clone()));
        }
        let token = self.fetch_token(client_id, client_secret).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(Some(value))
    }

    async fn fetch_token(&self, client_id: &str, client_secret: &str) -> Result<CachedToken, ClientError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("audience", audience(&self.auth_http.config().base_url))
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret)
            .finish();
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(absolute(&self.auth_http.config().base_url)?)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Bytes::from(form))
            .map_err(|e| UpstreamError::InvalidRequest(e.to_string()))?;
        let response = self.auth_http.execute(request).await?;
        let status = response.status();
        if matches!(status.as_u16(), 400 | 401 | 403) {
            return Err(ClientError::Unauthorized(format!(
                "the wiz token endpoint answered {} to the client credentials",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ClientError::Status {
                status: status.as_u16(),
            });
        }
        let token: TokenResponse = serde_json::from_slice(response.body())
            .map_err(|_| ClientError::Malformed("the wiz token endpoint returned a body that does not parse".into()))?;
        if token.access_token.is_empty() {
            return Err(ClientError::Malformed(
                "the wiz token endpoint returned an empty access_token".into(),
            ));
        }
        if let Some(kind) = &token.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            tracing::warn!(connector = "wiz", token_type = %kind, "unexpected token type; sending it as a bearer token");
        }
        tracing::debug!(
            connector = "wiz",
            expires_in = token.expires_in,
            "wiz access token issued"
        );
        Ok(CachedToken {
            value: token.access_token,
            expires: Instant::now() + Duration::from_secs(token.expires_in.unwrap_or(3600)),
        })
    }

    async fn post(&self, body: &Bytes, token: Option<&str>) -> Result<http::Response<Bytes>, ClientError> {
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri(absolute(&self.api.config().base_url)?)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = builder
            .body(body.clone())
            .map_err(|e| UpstreamError::InvalidRequest(e.to_string()))?;
        Ok(self.api.execute(request).await?)
    }

    /// Runs the cloud resources query with `variables`. A 401 renews a
    /// client-credentials token once and repeats the request.
    pub async fn cloud_resources(&self, variables: Value) -> Result<GraphqlResponse, ClientError> {
        let body = serde_json::json!({ "query": QUERY, "variables": variables });
        let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| ClientError::Malformed(e.to_string()))?);
        let token = self.bearer(None).await?;
        let mut response = self.post(&body, token.as_deref()).await?;
        if response.status() == StatusCode::UNAUTHORIZED
            && let (WizAuth::ClientCredentials { .. }, Some(rejected)) = (&self.auth, token.as_deref())
        {
            tracing::info!(connector = "wiz", "wiz answered 401; renewing the access token once");
            let renewed = self.bearer(Some(rejected)).await?;
            response = self.post(&body, renewed.as_deref()).await?;
        }
        let status = response.status();
        match status.as_u16() {
            401 => {
                return Err(ClientError::Unauthorized(
                    "wiz answered 401 to the cloud resources query".into(),
                ));
            }
            403 => {
                return Err(ClientError::Forbidden(
                    "wiz answered 403 to the cloud resources query (the service account needs read:resources)".into(),
                ));
            }
            _ if !status.is_success() => {
                return Err(ClientError::Status {
                    status: status.as_u16(),
                });
            }
            _ => {}
        }
        serde_json::from_slice(response.body())
            .map_err(|_| ClientError::Malformed("wiz returned a body that does not parse as a graphql answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_equals_the_one_the_fixtures_were_recorded_with() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/wiz/exchanges/cloud-resources/tenant-page-1.json"
        );
        let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            file["exchanges"][0]["request"]["body_json"]["query"].as_str(),
            Some(QUERY)
        );
    }

    #[test]
    fn the_audience_follows_the_token_endpoint() {
        let of = |url: &str| audience(&url::Url::parse(url).unwrap());
        assert_eq!(of("https://auth.app.wiz.io/oauth/token"), "wiz-api");
        assert_eq!(of("https://auth.gov.wiz.io/oauth/token"), "wiz-api");
        assert_eq!(of("https://auth.app.wiz.us/oauth/token"), "wiz-api");
        assert_eq!(of("https://auth.wiz.io/oauth/token"), "beyond-api");
        assert_eq!(of("https://auth0.gov.wiz.io/oauth/token"), "beyond-api");
        assert_eq!(of("http://127.0.0.1:4000/oauth/token"), "wiz-api");
    }

    #[test]
    fn only_an_answer_without_data_and_coded_as_bad_input_refuses_the_input() {
        let answer = |body: &str| serde_json::from_str::<GraphqlResponse>(body).unwrap();
        let refused = r#"{"errors":[{"message":"invalid cursor","extensions":{"code":"BAD_USER_INPUT"}}],"data":null}"#;
        assert!(answer(refused).refuses_input());
        assert!(answer(&refused.replace("BAD_USER_INPUT", "INVALID_INPUT")).refuses_input());
        // A failure of another kind, or one that still brought data.
        assert!(!answer(&refused.replace("BAD_USER_INPUT", "INTERNAL")).refuses_input());
        assert!(!answer(&refused.replace("BAD_USER_INPUT", "FORBIDDEN")).refuses_input());
        let partial = refused.replace(
            r#""data":null"#,
            r#""data":{"cloudResources":{"nodes":[],"pageInfo":{"hasNextPage":false}}}"#,
        );
        assert!(!answer(&partial).refuses_input());
    }

    #[test]
    fn partial_answers_keep_their_data_and_errors() {
        let body = r#"{"data":{"cloudResources":{"nodes":[{"id":"r1"},null],"pageInfo":{"hasNextPage":true,"endCursor":"c1"}}},
            "errors":[{"message":"boom","path":["cloudResources","nodes",1]}]}"#;
        let answer: GraphqlResponse = serde_json::from_str(body).unwrap();
        let connection = answer.data.unwrap().cloud_resources.unwrap();
        assert_eq!(connection.nodes.len(), 2);
        assert_eq!(connection.nodes[0].as_ref().unwrap().id, "r1");
        assert!(connection.nodes[1].is_none());
        assert_eq!(answer.errors[0].message, "boom");
        let info = connection.page_info.unwrap();
        assert!(info.has_next_page);
        assert_eq!(info.end_cursor.as_deref(), Some("c1"));

        // An error that reached the list nulls it: the errors still come through.
        let body = r#"{"data":{"cloudResources":{"nodes":null,"pageInfo":null}},
            "errors":[{"message":"boom","path":["cloudResources","nodes"],"extensions":{"code":"INTERNAL"}}]}"#;
        let answer: GraphqlResponse = serde_json::from_str(body).unwrap();
        let connection = answer.data.unwrap().cloud_resources.unwrap();
        assert!(connection.nodes.is_empty());
        assert!(connection.page_info.is_none());
        assert_eq!(answer.errors[0].message, "boom");
        assert!(!answer.errors[0].is_denied());
    }

    #[test]
    fn debug_redacts_secrets() {
        let auth = WizAuth::ClientCredentials {
            client_id: "id-1".into(),
            client_secret: "s3cret".into(),
        };
        let shown = format!("{auth:?} {:?}", WizAuth::Token("t0ken".into()));
        assert!(shown.contains("id-1"));
        assert!(!shown.contains("s3cret") && !shown.contains("t0ken"), "{shown}");
    }
}
