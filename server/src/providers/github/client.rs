//! The GitHub client: octocrab over the shared upstream HTTP layer, with PAT
//! or GitHub App authentication; the [`Session`] that sends a sync's
//! requests with octocrab's credentials; and the upstream shapes octocrab has
//! no model for (git trees and blobs, the dependency-graph SBOM).

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, header};
use octocrab::{AuthState, Octocrab, OctocrabBuilder};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::http::{TowerAdapter, UpstreamClient};

/// How the connector authenticates.
#[derive(Clone)]
pub enum GithubAuth {
    /// No credential (fixture mode).
    None,
    /// A personal access token (classic or fine-grained) or any bearer token.
    Token(String),
    /// A GitHub App: installation tokens are minted per organization.
    App {
        /// The App id.
        app_id: u64,
        /// The App's RSA private key, PEM.
        private_key_pem: String,
    },
}

impl std::fmt::Debug for GithubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        match self {
            GithubAuth::None => f.write_str("None"),
            GithubAuth::Token(_) => f.write_str("Token(<redacted>)"),
            GithubAuth::App { app_id, .. } => write!(f, "App {{ app_id: {app_id}, private_key_pem: <redacted> }}"),
        }
    }
}

impl GithubAuth {
    /// The mode name shown in the registry.
    pub fn mode(&self) -> &'static str {
        match self {
            GithubAuth::None => "none",
            GithubAuth::Token(_) => "pat",
            GithubAuth::App { .. } => "github_app",
        }
    }
}

/// Octocrab clients per installation, and the upstream client a sync's
/// requests go to.
pub struct GithubClient {
    base: Octocrab,
    app: bool,
    /// Installations by owner, or by owner/repository.
    installations: Mutex<HashMap<String, Arc<Installation>>>,
    upstream: Arc<UpstreamClient>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The App private key is not a valid RSA PEM key.
    #[error("GITHUB_APP_PRIVATE_KEY is not a valid RSA private key in PEM form")]
    InvalidAppKey,
    /// The token has characters a header cannot carry.
    #[error("GITHUB_TOKEN contains characters not allowed in an HTTP header")]
    InvalidToken,
}

impl GithubClient {
    /// Builds octocrab on the shared upstream client.
    pub fn new(upstream: Arc<UpstreamClient>, auth: &GithubAuth) -> Result<Self, ClientError> {
        let mut headers: Vec<(HeaderName, HeaderValue)> = vec![
            (
                header::USER_AGENT,
                HeaderValue::from_static(concat!("connectors-server/", env!("CARGO_PKG_VERSION"))),
            ),
            (header::ACCEPT, HeaderValue::from_static("application/vnd.github+json")),
            (
                HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static("2022-11-28"),
            ),
        ];
        let auth_state = match auth {
            GithubAuth::None => AuthState::None,
            GithubAuth::Token(token) => {
                let mut value =
                    HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                headers.push((header::AUTHORIZATION, value));
                AuthState::None
            }
            GithubAuth::App {
                app_id,
                private_key_pem,
            } => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
                    .map_err(|_| ClientError::InvalidAppKey)?;
                AuthState::App(octocrab::auth::AppAuth {
                    app_id: (*app_id).into(),
                    key,
                })
            }
        };
        let headers = Arc::new(headers);
        let base = OctocrabBuilder::new_empty()
            .with_service(TowerAdapter::new(upstream.clone()))
            .with_layer(&octocrab::service::middleware::extra_headers::ExtraHeadersLayer::new(
                headers.clone(),
            ))
            .with_auth(auth_state)
            .build()
            .map_err(|never| match never {})?;
        Ok(Self {
            base,
            app: matches!(auth, GithubAuth::App { .. }),
            installations: Mutex::new(HashMap::new()),
            upstream,
            headers,
        })
    }

    /// The session of an organization's (or a repository owner's)
    /// installation when authenticated as an App; of the token otherwise.
    pub async fn for_owner(&self, owner: &str, repo: Option<&str>) -> octocrab::Result<Session> {
        let session = |installation: Option<Arc<Installation>>| Session {
            installation,
            upstream: self.upstream.clone(),
            headers: self.headers.clone(),
        };
        if !self.app {
            return Ok(session(None));
        }
        let key = match repo {
            Some(repo) => format!("{owner}/{repo}"),
            None => owner.to_owned(),
        };
        let mut installations = self.installations.lock().await;
        if let Some(installation) = installations.get(&key) {
            return Ok(session(Some(installation.clone())));
        }
        let id = match repo {
            Some(repo) => self.base.apps().get_repository_installation(owner, repo).await?,
            None => self.base.apps().get_org_installation(owner).await?,
        }
        .id;
        // An organization and its explicit repositories are one installation.
        let installation = match installations.values().find(|known| known.id == id.0) {
            Some(known) => known.clone(),
            None => Arc::new(Installation {
                crab: self.base.installation(id)?,
                id: id.0,
                budget: crate::http::BudgetScope(format!("installation={}", id.0)),
                minting: Mutex::new(()),
            }),
        };
        installations.insert(key, installation.clone());
        Ok(session(Some(installation)))
    }

    /// The client without installation (for checks).
    pub fn base(&self) -> &Octocrab {
        &self.base
    }
}

/// The requests of a sync on behalf of one owner. They go to the shared
/// upstream client directly, with the headers octocrab's client adds and its
/// credential: the token, or the installation's token, which octocrab mints
/// and caches. octocrab sends each request through a `tower::buffer::Buffer`
/// (a worker task and two hand-offs between tasks per request); a sync
/// sends about one request per entity (see the README's "Performance").
#[derive(Clone)]
pub struct Session {
    /// The App installation the requests are made as, if any.
    installation: Option<Arc<Installation>>,
    upstream: Arc<UpstreamClient>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

/// An installation of the App, shared by every session made as it: one
/// octocrab client, so one cached installation token (octocrab's
/// `CachedToken` is copied, not shared, when its client is cloned: each
/// clone would mint tokens of its own), minted by one request at a time.
struct Installation {
    crab: Octocrab,
    id: u64,
    /// Its requests share the installation's rate limit, not the App's.
    budget: crate::http::BudgetScope,
    /// Held while a request gets its token, so an expired token is
    /// minted again once, not by every request in flight.
    minting: Mutex<()>,
}

/// Redirects a request follows at most (GitHub's for a renamed repository is one).
const MAX_REDIRECTS: u32 = 3;

/// Why a request of a [`Session`] failed.
#[derive(Debug)]
pub enum RequestError {
    /// The shared upstream layer gave up: rate limit, server errors, transport.
    Upstream(crate::http::UpstreamError),
    /// GitHub answered with an error status, or no installation token could be had.
    GitHub(octocrab::Error),
}

impl From<octocrab::Error> for RequestError {
    /// octocrab's error, or the upstream layer's failure it carries.
    fn from(error: octocrab::Error) -> Self {
        match crate::http::UpstreamError::find(&error) {
            Some(upstream) => Self::Upstream(upstream.clone()),
            None => Self::GitHub(error),
        }
    }
}

impl Session {
    /// Sends a request to `route` (a path and query, relative to the
    /// configured API URL; an absolute URI must be on that URL's origin and
    /// under its path, or the upstream client refuses it before anything,
    /// the credential included, is sent) and returns a 2xx response; an error status is
    /// `RequestError::GitHub`, parsed as octocrab parses it. A 401 to an
    /// installation's request (its token revoked before it expired) is sent
    /// once more through octocrab, which forgets the token, mints a new one
    /// and retries: later requests of every session of that installation
    /// get the new token.
    pub async fn send(
        &self,
        method: http::Method,
        route: &str,
        extra: Option<http::HeaderMap>,
        body: bytes::Bytes,
    ) -> Result<http::Response<bytes::Bytes>, RequestError> {
        use http_body_util::BodyExt as _;
        let uri: http::Uri = route.parse().map_err(|_| {
            RequestError::Upstream(crate::http::UpstreamError::InvalidRequest(format!(
                "{route:?} is not a request path"
            )))
        })?;
        let mut uri = uri;
        let mut response = self.send_once(&method, &uri, extra.as_ref(), &body).await?;
        // GitHub answers a renamed or transferred repository's old name with
        // a redirect to it on the API (`/repositories/{id}`) and asks clients
        // to follow it. Only GETs, only within the configured API (the
        // upstream client refuses another origin, the credential included).
        let mut redirects = 0;
        while method == http::Method::GET
            && matches!(response.status().as_u16(), 301 | 302 | 307 | 308)
            && redirects < MAX_REDIRECTS
        {
            let Some(location) = response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<http::Uri>().ok())
            else {
                break;
            };
            uri = self.upstream.relativize(&location).map_err(RequestError::Upstream)?;
            redirects += 1;
            response = self.send_once(&method, &uri, extra.as_ref(), &body).await?;
        }
        let response = if let Some(installation) = self
            .installation
            .as_ref()
            .filter(|_| response.status() == http::StatusCode::UNAUTHORIZED)
        {
            let mut request = http::Request::new(body);
            *request.method_mut() = method;
            *request.uri_mut() = uri;
            if let Some(extra) = extra {
                *request.headers_mut() = extra;
            }
            json_content_type(&mut request);
            installation.crab.execute(request).await.map_err(RequestError::from)?
        } else if response.status().is_success() {
            return Ok(response);
        } else {
            return Err(status_error(response).await);
        };
        let response = octocrab::map_github_error(response).await.map_err(RequestError::from)?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(RequestError::from)?.to_bytes();
        Ok(http::Response::from_parts(parts, bytes))
    }

    /// `GET route` (relative to the API URL), answered whatever its status
    /// (a 202 to poll again, a redirect to follow); nothing cached.
    pub async fn get_any(&self, route: &str) -> Result<http::Response<bytes::Bytes>, RequestError> {
        let uri: http::Uri = route.parse().map_err(|_| {
            RequestError::Upstream(crate::http::UpstreamError::InvalidRequest(format!(
                "{route:?} is not a request path"
            )))
        })?;
        let mut extra = http::HeaderMap::new();
        extra.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.send_once(&http::Method::GET, &uri, Some(&extra), &bytes::Bytes::new())
            .await
    }

    /// Downloads `url`, where the API pointed on another host (pre-signed
    /// storage): without the session's headers, so no credential goes there.
    pub async fn download(&self, url: url::Url) -> Result<http::Response<bytes::Bytes>, RequestError> {
        self.upstream.download(url).await.map_err(RequestError::Upstream)
    }

    /// The configured API URL.
    pub fn api_url(&self) -> &url::Url {
        &self.upstream.config().base_url
    }

    async fn send_once(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        extra: Option<&http::HeaderMap>,
        body: &bytes::Bytes,
    ) -> Result<http::Response<bytes::Bytes>, RequestError> {
        let mut request = http::Request::new(body.clone());
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        for (name, value) in self.headers.iter() {
            headers.insert(name, value.clone());
        }
        if let Some(extra) = extra {
            headers.extend(extra.iter().map(|(name, value)| (name.clone(), value.clone())));
        }
        json_content_type(&mut request);
        let headers = request.headers_mut();
        if let Some(installation) = &self.installation {
            use secrecy::ExposeSecret as _;
            // Valid for at least 30 s more: octocrab's cached token, or one it mints.
            let token = {
                let _one = installation.minting.lock().await;
                installation
                    .crab
                    .installation_token()
                    .await
                    .map_err(RequestError::GitHub)?
            };
            let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).map_err(|_| {
                RequestError::Upstream(crate::http::UpstreamError::InvalidRequest(
                    "the installation token is not a header value".into(),
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        if let Some(installation) = &self.installation {
            request.extensions_mut().insert(installation.budget.clone());
        }
        self.upstream.execute(request).await.map_err(RequestError::Upstream)
    }
}

/// The error of a response with an error status, as octocrab reads GitHub's
/// error bodies.
pub async fn status_error(response: http::Response<bytes::Bytes>) -> RequestError {
    use http_body_util::BodyExt as _;
    let status = response.status();
    let response = response.map(|bytes| http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed());
    match octocrab::map_github_error(response).await {
        Err(error) => RequestError::from(error),
        Ok(_) => RequestError::Upstream(crate::http::UpstreamError::InvalidRequest(format!(
            "github answered {status} where it was not expected"
        ))),
    }
}

/// Every body a session sends is JSON (GraphQL reads): its type, on both
/// the first send and octocrab's resend after a 401.
pub(super) fn json_content_type(request: &mut http::Request<bytes::Bytes>) {
    if !request.body().is_empty() {
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
}

/// A repository as `GET /orgs/{org}/repos` and `GET /repos/{owner}/{repo}`
/// return it: only the fields the connector maps. octocrab's
/// `models::Repository` holds every field of the 5 KB item (some 40 of them
/// parsed as URLs) in a struct of several kilobytes; a listing page of 100 of
/// them cost more than the rest of the repository's sync (see the README's
/// "Performance").
#[derive(Debug, Clone, Deserialize)]
pub struct ListedRepo {
    /// Repository id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// `owner/name`.
    #[serde(default)]
    pub full_name: Option<String>,
    /// The owning user or organization.
    #[serde(default)]
    pub owner: Option<RepoOwner>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Default branch.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// "public", "private" or "internal".
    #[serde(default)]
    pub visibility: Option<String>,
    /// Whether the repository is private.
    #[serde(default)]
    pub private: Option<bool>,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: Option<bool>,
    /// Whether it is a fork.
    #[serde(default)]
    pub fork: Option<bool>,
    /// Primary language.
    #[serde(default)]
    pub language: Option<String>,
    /// Topics.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Web page.
    #[serde(default)]
    pub html_url: Option<String>,
    /// HTTPS clone URL.
    #[serde(default)]
    pub clone_url: Option<String>,
    /// Detected license.
    #[serde(default)]
    pub license: Option<RepoLicense>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last push.
    #[serde(default)]
    pub pushed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of a repository listing.
#[derive(Debug)]
pub struct RepoPage {
    /// The repositories, in listing order.
    pub items: Vec<ListedRepo>,
    /// The next page, from the `Link` header.
    pub next: Option<http::Uri>,
}

/// Why a listing page could not be read.
#[derive(Debug)]
pub enum PageError {
    /// The request failed or GitHub answered with an error.
    Request(RequestError),
    /// The body does not parse (as a JSON array of repositories, or a blob).
    Malformed,
}

/// `GET` of a repository listing page (`/orgs/{org}/repos?per_page=n` or a
/// `next` link). octocrab's `Page<T>` parses a page into a
/// `serde_json::Value` first and then into `T` (a quarter of the server's CPU
/// in a GitHub-shaped sync, see the README's "Performance"); here the items
/// are parsed from the bytes at once, and octocrab still reads the `Link`
/// header (its own parser, given the headers with an empty body).
pub async fn get_repo_page(session: &Session, uri: http::Uri) -> Result<RepoPage, PageError> {
    use http_body_util::BodyExt as _;
    // Whole: an absolute URI keeps its origin, which the upstream client
    // checks against the configured one (listing links are made relative
    // before they get here).
    let route = uri.to_string();
    let response = session
        .send(http::Method::GET, &route, None, bytes::Bytes::new())
        .await
        .map_err(PageError::Request)?;
    let (parts, bytes) = response.into_parts();
    let empty = http_body_util::Full::new(bytes::Bytes::from_static(b"[]"))
        .map_err(|never| match never {})
        .boxed();
    let links =
        <octocrab::Page<ListedRepo> as octocrab::FromResponse>::from_response(http::Response::from_parts(parts, empty))
            .await
            .map_err(|error| PageError::Request(RequestError::GitHub(error)))?;
    let items = parse_json(&bytes)?;
    Ok(RepoPage {
        items,
        next: links.next,
    })
}

/// A JSON body parsed with sonic-rs (SIMD): a listing page is some 500 KB of
/// repository items of which a few fields are read, and sonic-rs skips the
/// rest several times faster than serde_json (README "Performance", eighth
/// round). It checks the text is UTF-8, as serde_json does.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PageError> {
    sonic_rs::from_slice(bytes).map_err(|_| PageError::Malformed)
}

/// `GET` of a JSON resource, parsed straight from the body's bytes.
/// octocrab's `get` parses through `serde_path_to_error`, which tracks the
/// path of every value it reads (7% of the server's CPU in a GitHub-shaped
/// sync when trees and SBOMs went through it, see the README's
/// "Performance"); what a malformed body is matters here, not where.
/// `headers` are added to the request.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    session: &Session,
    route: &str,
    headers: Option<http::HeaderMap>,
) -> Result<T, PageError> {
    let response = session
        .send(http::Method::GET, route, headers, bytes::Bytes::new())
        .await
        .map_err(PageError::Request)?;
    parse_json(response.body())
}

/// `GET` of a git blob by its sha. A blob's content is addressed by its
/// sha, so the request says `Cache-Control: no-store`: the upstream layer
/// keeps no conditional-request entry for it (an incremental sync never asks
/// for a blob whose sha it has, see `ScopeContext::retain`).
pub async fn get_blob(session: &Session, route: &str) -> Result<GitBlob, PageError> {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    get_json(session, route, Some(headers)).await
}

/// The owner of a repository.
#[derive(Debug, Clone, Deserialize)]
pub struct RepoOwner {
    /// Login.
    pub login: String,
}

/// A repository's detected license.
#[derive(Debug, Clone, Deserialize)]
pub struct RepoLicense {
    /// SPDX id ("NOASSERTION" for an unrecognized license; null for none).
    #[serde(default)]
    pub spdx_id: Option<String>,
}

/// `GET /repos/{owner}/{repo}/git/trees/{tree_sha}?recursive=1`.
#[derive(Debug, Deserialize)]
pub struct GitTree {
    /// Tree sha.
    pub sha: String,
    /// Entries, in GitHub's (path) order.
    #[serde(default)]
    pub tree: Vec<GitTreeEntry>,
    /// Whether GitHub cut the listing short.
    #[serde(default)]
    pub truncated: bool,
}

/// One entry of a git tree.
#[derive(Debug, Deserialize)]
pub struct GitTreeEntry {
    /// Path from the root.
    pub path: String,
    /// "blob", "tree" or "commit".
    #[serde(rename = "type")]
    pub kind: String,
    /// Git file mode: `100644`, `100755`, `040000`, `160000` (a submodule),
    /// `120000` (a blob holding a symlink's target path, not file content).
    #[serde(default)]
    pub mode: String,
    /// Object sha.
    pub sha: String,
}

impl GitTreeEntry {
    /// Whether the entry is a file with content: a blob, not a symlink.
    pub fn is_file(&self) -> bool {
        self.kind == "blob" && self.mode != "120000"
    }
}

/// `GET /repos/{owner}/{repo}/git/blobs/{file_sha}`.
#[derive(Debug, Deserialize)]
pub struct GitBlob {
    /// Blob sha.
    pub sha: String,
    /// Content in `encoding`.
    pub content: String,
    /// "base64" or "utf-8".
    pub encoding: String,
}

/// `GET /repos/{owner}/{repo}/dependency-graph/sbom/generate-report`.
#[derive(Debug, Deserialize)]
pub struct SbomReport {
    /// Where the report will be:
    /// `https://api.github.com/repos/{owner}/{repo}/dependency-graph/sbom/fetch-report/{id}`.
    pub sbom_url: String,
}

/// `GET /repos/{owner}/{repo}/dependency-graph/sbom`: the synchronous export
/// github.com closed on 2026-11-13 (GitHub Enterprise Server releases without
/// SBOM reports still have it).
#[derive(Debug, Deserialize)]
pub struct SbomResponse {
    /// The SPDX document.
    pub sbom: SpdxDocument,
}

/// The SPDX document of the dependency graph.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxDocument {
    /// "SPDX-2.3".
    #[serde(rename = "spdxVersion")]
    pub spdx_version: String,
    /// Document name.
    pub name: String,
    /// Document namespace.
    pub document_namespace: String,
    /// Creation info.
    pub creation_info: SpdxCreationInfo,
    /// Packages.
    #[serde(default)]
    pub packages: Vec<SpdxPackage>,
}

/// SPDX creation info.
#[derive(Debug, Deserialize)]
pub struct SpdxCreationInfo {
    /// RFC 3339 creation time.
    pub created: chrono::DateTime<chrono::Utc>,
}

/// An SPDX package.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxPackage {
    /// "SPDXRef-...".
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    /// Package name.
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version_info: Option<String>,
    /// Concluded license.
    #[serde(default)]
    pub license_concluded: Option<String>,
    /// External references (purls).
    #[serde(default)]
    pub external_refs: Vec<SpdxExternalRef>,
}

/// An SPDX external reference.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxExternalRef {
    /// "purl", ...
    pub reference_type: String,
    /// The locator.
    pub reference_locator: String,
}

/// A git blob to read: its repository and sha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub name: String,
    /// Blob sha.
    pub sha: String,
}

/// What the GraphQL API gave for one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobText {
    /// The blob's text.
    Text(String),
    /// No text: binary, truncated by GitHub, or not found. Read it over REST,
    /// which has every blob's bytes and answers a missing one with its status.
    Unavailable,
}

/// Why a GraphQL read of blobs failed as a whole.
#[derive(Debug)]
pub enum GraphqlError {
    /// The request failed or GitHub answered with an HTTP error.
    Request(RequestError),
    /// The body does not parse as a GraphQL response.
    Malformed,
    /// GitHub's GraphQL rate limit is exhausted (an error of type `RATE_LIMITED`).
    RateLimited(Option<chrono::DateTime<chrono::Utc>>),
    /// GitHub answered with errors and no data: their messages.
    Errors(String),
}

/// The GraphQL request reading `blobs`: one aliased `repository` field per
/// repository (in order of first appearance), one aliased `object(oid:)`
/// per blob, every value passed as a variable (never spliced into the query).
/// Returns the body and, per blob, its repository and object aliases.
pub fn blob_query(blobs: &[BlobRef]) -> (serde_json::Value, Vec<(String, String)>) {
    use std::fmt::Write as _;
    // Per repository: owner, name, and its blobs (index in `blobs`, sha).
    type Repo<'a> = (&'a str, &'a str, Vec<(usize, &'a str)>);
    let mut repos: Vec<Repo<'_>> = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        match repos
            .iter_mut()
            .find(|(owner, name, _)| *owner == blob.owner && *name == blob.name)
        {
            Some((_, _, shas)) => shas.push((i, &blob.sha)),
            None => repos.push((&blob.owner, &blob.name, vec![(i, &blob.sha)])),
        }
    }
    let mut declarations = Vec::new();
    let mut selection = String::new();
    let mut variables = serde_json::Map::new();
    let mut aliases = vec![(String::new(), String::new()); blobs.len()];
    for (r, (owner, name, shas)) in repos.iter().enumerate() {
        declarations.push(format!("$o{r}: String!, $n{r}: String!"));
        variables.insert(format!("o{r}"), (*owner).into());
        variables.insert(format!("n{r}"), (*name).into());
        let _ = write!(selection, " r{r}: repository(owner: $o{r}, name: $n{r}) {{");
        for (b, (index, sha)) in shas.iter().enumerate() {
            declarations.push(format!("$s{r}_{b}: GitObjectID!"));
            variables.insert(format!("s{r}_{b}"), (*sha).into());
            let _ = write!(
                selection,
                " b{b}: object(oid: $s{r}_{b}) {{ ... on Blob {{ text isBinary isTruncated }} }}"
            );
            aliases[*index] = (format!("r{r}"), format!("b{b}"));
        }
        selection.push_str(" }");
    }
    let query = format!("query({}) {{{selection} }}", declarations.join(", "));
    (serde_json::json!({ "query": query, "variables": variables }), aliases)
}

/// A repository's blobs in a GraphQL answer, by alias (`null`: no such object).
type GraphqlRepo = HashMap<String, Option<GraphqlBlob>>;

#[derive(Deserialize)]
struct GraphqlResponse {
    /// Repositories by alias (`null`: not resolved).
    #[serde(default)]
    data: Option<HashMap<String, Option<GraphqlRepo>>>,
    #[serde(default)]
    errors: Vec<GraphqlErrorItem>,
}

#[derive(Deserialize)]
struct GraphqlBlob {
    #[serde(default)]
    text: Option<String>,
    #[serde(default, rename = "isBinary")]
    is_binary: bool,
    #[serde(default, rename = "isTruncated")]
    is_truncated: bool,
}

#[derive(Deserialize)]
struct GraphqlErrorItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: String,
}

/// Reads `blobs` in one `POST /graphql`, in order. A blob GitHub gives no
/// text for (binary, truncated, gone, or its repository not resolved: a
/// partial answer) is `Unavailable`; a response without data is an error.
pub async fn read_blobs(session: &Session, blobs: &[BlobRef]) -> Result<Vec<BlobText>, GraphqlError> {
    let (body, aliases) = blob_query(blobs);
    let body = serde_json::to_vec(&body).map_err(|_| GraphqlError::Malformed)?;
    let response = session
        .send(http::Method::POST, "/graphql", None, body.into())
        .await
        .map_err(GraphqlError::Request)?;
    let (parts, bytes) = response.into_parts();
    let parsed: GraphqlResponse = serde_json::from_slice(&bytes).map_err(|_| GraphqlError::Malformed)?;
    let Some(mut data) = parsed.data else {
        if parsed.errors.iter().any(|e| e.kind.as_deref() == Some("RATE_LIMITED")) {
            let reset = crate::http::RateLimit::from_headers(&parts.headers).reset_time(chrono::Utc::now());
            return Err(GraphqlError::RateLimited(reset));
        }
        let messages: Vec<&str> = parsed.errors.iter().map(|e| e.message.as_str()).collect();
        return Err(if messages.is_empty() {
            GraphqlError::Malformed
        } else {
            GraphqlError::Errors(messages.join("; "))
        });
    };
    Ok(aliases
        .iter()
        .map(|(repo, object)| {
            let blob = data
                .get_mut(repo)
                .and_then(Option::as_mut)
                .and_then(|objects| objects.remove(object))
                .flatten();
            match blob {
                Some(GraphqlBlob {
                    text: Some(text),
                    is_binary: false,
                    is_truncated: false,
                }) => BlobText::Text(text),
                _ => BlobText::Unavailable,
            }
        })
        .collect())
}
