//! The GitHub connector: repositories of organizations (or explicit
//! repositories), their dependency manifests and dependency-graph SBOMs,
//! over the shared upstream HTTP layer: octocrab authenticates (tokens, App
//! installation tokens), a `client::Session` sends the sync's requests.
//!
//! Incremental: org listings are conditional requests (ETags, 304s reuse the
//! cached page); a repository whose `pushed_at` and default branch equal the baseline's keeps
//! its manifests and SBOM without refetching them.

pub mod client;
pub mod manifests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use self::client::{
    BlobRef, BlobText, GitBlob, GitTree, GitTreeEntry, GithubAuth, GithubClient, GraphqlError,
    ListedRepo as GhRepository, PageError, RepoPage, RequestError, SbomReport, SbomResponse, Session, SpdxDocument,
};
use crate::http::UpstreamError;
use crate::sync::{Availability, Connector, Descriptor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn};
use async_trait::async_trait;
use base64::Engine as _;
use connectors_proto::v1::{Entity, EntityKind, Manifest, Repository, Sbom, SbomPackage, entity::Body};
use futures::StreamExt;
use futures::future::Either;
use http::Uri;

/// The connector id.
pub const ID: &str = "github";

/// The rate-limit budget apart from the REST `core` one that a request to
/// `path` counts against: GraphQL points (`/graphql`), and the dependency
/// graph's SBOMs (`/repos/{owner}/{repo}/dependency-graph/sbom...`: the
/// export and the SBOM reports), which GitHub limits in a `dependency_sbom`
/// budget of their own ("GET /rate_limit": "The dependency_sbom object
/// provides your rate limit status for requesting SBOMs").
pub fn separate_budget(path: &str) -> Option<&'static str> {
    if path == "/graphql" {
        return Some("graphql");
    }
    let mut segments = path.split('/');
    let sbom = segments.next() == Some("")
        && segments.next() == Some("repos")
        && segments.nth(2) == Some("dependency-graph")
        && segments.next() == Some("sbom");
    sbom.then_some("dependency_sbom")
}

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "GitHub",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Repository, EntityKind::Manifest, EntityKind::Sbom],
    native_incremental: true,
    auth_modes: &["pat", "github_app"],
    service: "connectors.github.v1.GithubConnectorService",
};

/// A validated GitHub sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GithubRequest {
    /// Organization logins.
    pub orgs: Vec<String>,
    /// Explicit repositories (owner, name).
    pub repositories: Vec<(String, String)>,
    /// Skip archived repositories.
    pub exclude_archived: bool,
    /// Skip forks.
    pub exclude_forks: bool,
}

/// Manifest blobs per GraphQL read unless `GITHUB_BLOB_BATCH` says otherwise:
/// as many as the API is asked for in one go elsewhere (`per_page` ≤ 100).
pub const DEFAULT_BLOB_BATCH: usize = 100;

/// Listing pages whose repositories' children are fetched at once.
const PAGES_IN_FLIGHT: usize = 2;

/// Settings of the GitHub connector.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Credentials.
    pub auth: GithubAuth,
    /// Organizations synced when a request names none.
    pub default_orgs: Vec<String>,
    /// Repositories per listing page (1 to 100).
    pub page_size: u8,
    /// Repositories whose manifests and SBOM are fetched at once.
    pub repo_concurrency: usize,
    /// Manifest blobs read per GraphQL request (`GITHUB_BLOB_BATCH`; 0: one
    /// REST request per blob).
    pub blob_batch: usize,
    /// How SBOM reports are waited for.
    pub sbom_reports: SbomReportWait,
    /// Whether a repository whose SBOM report cannot be generated (404) is
    /// asked for the synchronous export instead: GitHub Enterprise Server
    /// releases without the reports still have it (github.com closed it on
    /// 2026-11-13).
    pub legacy_sbom_export: bool,
}

/// How long GitHub is given to generate a repository's SBOM report: polled
/// after `first_poll`, then at doubling intervals of at most five seconds,
/// for `at_most` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SbomReportWait {
    /// Delay before the first poll of a report not ready.
    pub first_poll: Duration,
    /// How long a report may take before its repository's scope fails.
    pub at_most: Duration,
}

impl SbomReportWait {
    /// Live: 500 ms, then doubling up to 5 s, for two minutes.
    pub const LIVE: Self = Self {
        first_poll: Duration::from_millis(500),
        at_most: Duration::from_secs(120),
    };
    /// On the replay server (fixtures, tests).
    pub const FIXTURE: Self = Self {
        first_poll: Duration::from_millis(5),
        at_most: Duration::from_secs(2),
    };
}

/// The GitHub connector.
#[derive(Debug)]
pub struct GithubConnector {
    settings: GithubSettings,
    client: GithubClient,
    upstream: Arc<crate::http::UpstreamClient>,
}

impl GithubConnector {
    /// A connector on the shared upstream client.
    pub fn new(
        settings: GithubSettings,
        upstream: Arc<crate::http::UpstreamClient>,
    ) -> Result<Self, client::ClientError> {
        let client = GithubClient::new(upstream.clone(), &settings.auth)?;
        Ok(Self {
            settings,
            client,
            upstream,
        })
    }
}

/// Maps an octocrab error to a scope outcome.
fn scope_error(error: octocrab::Error, what: &str) -> ScopeError {
    if let Some(upstream) = UpstreamError::find(&error) {
        return upstream_error(upstream, what);
    }
    match &error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let message = format!("{what}: github answered {status}: {}", source.message.to_lowercase());
            ScopeError::from_status(status, message)
        }
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => malformed(what),
        _ => ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: format!("{what}: request failed"),
        },
    }
}

/// Maps a failure of the shared upstream layer to a scope outcome.
fn upstream_error(upstream: &UpstreamError, what: &str) -> ScopeError {
    ScopeError::from_upstream(upstream, what, "github rate limit exhausted")
}

/// The scope error of a request a `Session` sent.
fn request_error(error: RequestError, what: &str) -> ScopeError {
    match error {
        RequestError::Upstream(upstream) => upstream_error(&upstream, what),
        RequestError::GitHub(error) => scope_error(error, what),
    }
}

/// The scope error of a request made with `client::get_*`.
fn page_error(error: PageError, what: &str) -> ScopeError {
    match error {
        PageError::Request(e) => request_error(e, what),
        PageError::Malformed => malformed(what),
    }
}

/// A body that does not parse as what `what` should be.
fn malformed(what: &str) -> ScopeError {
    ScopeError::Failed {
        reason: "UPSTREAM_MALFORMED",
        message: format!("{what}: github returned a body that does not parse"),
    }
}

fn status_of(error: &octocrab::Error) -> Option<u16> {
    match error {
        octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
        _ => None,
    }
}

/// Whether an error of the SBOM export says that this repository has none to
/// give (a 403 that does not say the credential lacks access).
fn sbom_unavailable(error: &octocrab::Error) -> bool {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            source.status_code.as_u16() == 403
                && !source.message.to_ascii_lowercase().contains("resource not accessible")
        }
        _ => false,
    }
}

/// A repository's SBOM entity from its SPDX document.
fn sbom_entity(repo: &GhRepository, doc: SpdxDocument) -> Entity {
    let mut packages: Vec<SbomPackage> = doc
        .packages
        .into_iter()
        .map(|p| SbomPackage {
            purl: p
                .external_refs
                .iter()
                .find(|r| r.reference_type == "purl")
                .map(|r| r.reference_locator.clone())
                .unwrap_or_default(),
            spdx_id: p.spdx_id,
            name: p.name,
            version: p.version_info.unwrap_or_default(),
            license_concluded: p.license_concluded.unwrap_or_default(),
        })
        .collect();
    packages.sort_by(|a, b| a.spdx_id.cmp(&b.spdx_id));
    Entity {
        urn: urn(ID, EntityKind::Sbom, &repo.id.to_string()),
        kind: EntityKind::Sbom as i32,
        native_id: repo.id.to_string(),
        display_name: doc.name.clone(),
        labels: Vec::new(),
        parent_urn: repo_urn(repo),
        body: Some(Body::Sbom(Sbom {
            spec_version: doc.spdx_version,
            document_name: doc.name,
            document_namespace: doc.document_namespace,
            create_time: timestamp(Some(doc.creation_info.created)),
            packages,
        })),
    }
}

/// What an error of an SBOM request (not a 404) means for the repository:
/// GitHub blocks the repository (its children are kept), a 403 that is not
/// about the credential's access (GitHub's answer for a repository whose
/// dependency graph cannot be exported, a fork without one for example: no
/// SBOM, the scope goes on), or the scope's failure. Rate limits never get
/// here (the shared layer makes them errors of their own), and a credential
/// without access ("Resource not accessible by integration" or "by personal
/// access token") still fails the scope.
fn sbom_refused(error: PageError, full: &str, what: &str) -> Result<Access<Option<Entity>>, ScopeError> {
    match error {
        PageError::Request(RequestError::GitHub(error)) if let Some(status) = access_blocked(&error) => {
            Ok(Access::Blocked(status))
        }
        PageError::Request(RequestError::GitHub(error)) if sbom_unavailable(&error) => {
            tracing::warn!(
                connector = ID,
                repository = %full,
                "the sbom report answered 403; no sbom for this repository"
            );
            Ok(Access::Open(None))
        }
        error => Err(page_error(error, what)),
    }
}

/// Whether GitHub blocks access to a repository's contents: 451 for a
/// repository taken down for legal reasons (a DMCA notice), 403 "Repository
/// access blocked" for one disabled for its terms of service or otherwise
/// unavailable. Such a repository is still listed by its organization, and
/// every request for its contents is answered so.
fn access_blocked(error: &octocrab::Error) -> Option<u16> {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let blocked =
                status == 451 || (status == 403 && source.message.eq_ignore_ascii_case("repository access blocked"));
            blocked.then_some(status)
        }
        _ => None,
    }
}

fn timestamp(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<pbjson_types::Timestamp> {
    t.map(|t| pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

fn repo_urn(repo: &GhRepository) -> String {
    urn(ID, EntityKind::Repository, &repo.id.to_string())
}

/// The repository id in a repository's urn (or a child's parent urn).
fn repo_id_of(urn: &str) -> Option<u64> {
    urn.strip_prefix(&self::urn(ID, EntityKind::Repository, ""))?
        .parse()
        .ok()
}

fn repo_entity(repo: &GhRepository) -> Entity {
    let owner = owner_of(repo);
    let full_name = repo
        .full_name
        .clone()
        .unwrap_or_else(|| format!("{owner}/{}", repo.name));
    let mut topics = repo.topics.clone().unwrap_or_default();
    topics.sort();
    let visibility = repo.visibility.clone().unwrap_or_else(|| {
        if repo.private.unwrap_or(false) {
            "private"
        } else {
            "public"
        }
        .to_owned()
    });
    Entity {
        urn: repo_urn(repo),
        kind: EntityKind::Repository as i32,
        native_id: repo.id.to_string(),
        display_name: full_name.clone(),
        labels: Vec::new(),
        parent_urn: String::new(),
        body: Some(Body::Repository(Repository {
            owner,
            name: repo.name.clone(),
            full_name,
            description: repo.description.clone().unwrap_or_default(),
            default_branch: repo.default_branch.clone().unwrap_or_default(),
            visibility,
            archived: repo.archived.unwrap_or(false),
            fork: repo.fork.unwrap_or(false),
            language: repo.language.clone().unwrap_or_default(),
            topics,
            web_url: repo.html_url.clone().unwrap_or_default(),
            clone_url: repo.clone_url.clone().unwrap_or_default(),
            license_spdx_id: repo
                .license
                .as_ref()
                .and_then(|l| l.spdx_id.clone())
                .unwrap_or_default(),
            create_time: timestamp(repo.created_at),
            push_time: timestamp(repo.pushed_at),
        })),
    }
}

/// The version a repository's children are kept by: when it was last
/// pushed, and its default branch (switching the default branch pushes
/// nothing, yet the manifests and SBOM are another branch's).
fn push_version(repo: &GhRepository) -> String {
    match (repo.pushed_at, repo.default_branch.as_deref()) {
        (None, _) => String::new(),
        (Some(pushed), None) => pushed.to_rfc3339(),
        (Some(pushed), Some(branch)) => format!("{} {branch}", pushed.to_rfc3339()),
    }
}

/// Whether the baseline's `prior` version of a repository is its push
/// version now. A version saved by earlier servers is the push time alone:
/// it still stands for the same push (the next push records the branch).
fn same_push(prior: Option<&str>, repo: &GhRepository) -> bool {
    let now = push_version(repo);
    match prior {
        None => false,
        Some(prior) if prior == now => true,
        Some(prior) => {
            !prior.is_empty() && !prior.contains(' ') && now.split_once(' ').is_some_and(|(pushed, _)| pushed == prior)
        }
    }
}

/// What was fetched for one repository besides the repository itself.
struct Children {
    /// Manifests with their blob shas (their upstream versions).
    manifests: Vec<(Entity, String)>,
    /// Manifests whose blob the baseline has already (same path, same sha):
    /// kept without fetching the blob.
    kept: Vec<String>,
    sbom: Option<Entity>,
    /// GitHub blocks access to the repository's contents (the status it
    /// answered): its children are kept from the baseline.
    blocked: Option<u16>,
    /// What of the repository failed alone (a tree, SBOM or manifest blob
    /// whose body does not parse): the baseline's of it is in `kept`, and
    /// the scope ends FAILED with it after the rest is sent
    /// (`ScopeContext::fail_when_done`).
    failed: Vec<ScopeError>,
}

/// A repository's children before its manifests' blobs are read.
struct Pending {
    /// Manifests to read: path, ecosystem and blob sha, in tree order.
    blobs: Vec<(String, &'static str, String)>,
    kept: Vec<String>,
    sbom: Option<Entity>,
    blocked: Option<u16>,
    failed: Vec<ScopeError>,
}

/// The parts of one repository (its tree, its SBOM) that failed alone.
#[derive(Default)]
struct FailedAlone {
    failed: Vec<ScopeError>,
    /// What the baseline has of those parts: kept.
    kept: Vec<String>,
}

impl FailedAlone {
    /// `part`, or, when it failed alone, `instead`, with the failure noted
    /// and the baseline's children of `kind` kept.
    fn absorb<T>(
        &mut self,
        part: Result<T, ScopeError>,
        instead: T,
        kind: EntityKind,
        known: &KnownVersions,
    ) -> Result<T, ScopeError> {
        match part {
            Err(error) if fails_alone(&error) => {
                self.failed.push(error);
                let prefix = urn(ID, kind, "");
                self.kept
                    .extend(known.keys().filter(|u| u.starts_with(&prefix)).cloned());
                Ok(instead)
            }
            other => other,
        }
    }
}

/// Whether a failure of one repository's tree or SBOM is its own, so the
/// organization's other repositories go on: a body that does not parse (an
/// SBOM GitHub generated with a field our model refuses, a truncated tree)
/// says nothing about the next repository. Server errors after the shared
/// layer's retries, rate limits and credential failures are the upstream's
/// or the credential's, and end the scope at once.
fn fails_alone(error: &ScopeError) -> bool {
    error.is_malformed()
}

/// What a request for a repository's contents found: what it asked for,
/// or that GitHub blocks access to the repository (with the status).
enum Access<T> {
    Open(T),
    Blocked(u16),
}

/// The baseline's children of a repository with their upstream versions
/// (a manifest's version is its blob sha), by urn.
type KnownVersions = std::collections::HashMap<String, String>;

/// What one listing page (or one explicit repository) fetched: its
/// repositories in order, each with its children (`None`: kept from the
/// baseline), up to the first that failed, and that failure.
struct PageOutcome {
    repos: Vec<(GhRepository, Option<Children>)>,
    error: Option<ScopeError>,
}

/// How a page's children are fetched.
#[derive(Debug, Clone, Copy)]
struct FetchPlan {
    want_manifests: bool,
    want_sbom: bool,
    /// Repositories whose tree and SBOM are fetched at once.
    concurrency: usize,
    /// Blobs per GraphQL read (0: one REST request per blob).
    blob_batch: usize,
    sbom_reports: SbomReportWait,
    legacy_sbom_export: bool,
}

/// What of a git ref name is percent-encoded in a request path: what a URI
/// cannot carry as is (non-ASCII is always encoded). Git allows `#`, `%` and
/// other punctuation in ref names; a `#` sent raw would end the path there
/// (the request would read another branch's tree, or none). `/` is kept:
/// refs nest with it, and GitHub reads `git/trees/release/1.2` as the ref
/// `release/1.2`.
const REF_IN_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']');

fn manifest_urn(repo: &GhRepository, path: &str) -> String {
    urn(ID, EntityKind::Manifest, &format!("{}:{path}", repo.id))
}

fn owner_of(repo: &GhRepository) -> String {
    repo.owner.as_ref().map(|o| o.login.clone()).unwrap_or_default()
}

/// `owner/name`, as the connector's messages and display names say it.
fn full_name_of(repo: &GhRepository) -> String {
    format!("{}/{}", owner_of(repo), repo.name)
}

fn decode_blob(blob: &GitBlob) -> Result<String, String> {
    let bytes = match blob.encoding.as_str() {
        "base64" => {
            let compact: String = blob.content.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| "blob content is not valid base64".to_owned())?
        }
        "utf-8" | "utf8" => blob.content.clone().into_bytes(),
        other => return Err(format!("unsupported blob encoding {other}")),
    };
    String::from_utf8(bytes).map_err(|_| "manifest is not utf-8".to_owned())
}

/// The scope error of a GraphQL read of the blobs of `what`.
fn graphql_error(error: GraphqlError, what: &str) -> ScopeError {
    match error {
        GraphqlError::Request(e) => request_error(e, what),
        GraphqlError::Malformed => malformed(what),
        GraphqlError::RateLimited(reset_time) => ScopeError::RateLimited {
            reset_time,
            message: format!("{what}: github graphql rate limit exhausted"),
        },
        GraphqlError::Errors(messages) => ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: format!(
                "{what}: github graphql answered with errors: {}",
                messages.to_lowercase()
            ),
        },
    }
}

fn manifest_entity(
    repo: &GhRepository,
    full: &str,
    path: String,
    eco: &'static str,
    sha: &str,
    text: Result<String, String>,
) -> Entity {
    let (dependencies, parse_error) = match text.and_then(|text| manifests::parse(eco, &text)) {
        Ok(deps) => (deps, String::new()),
        Err(error) => (Vec::new(), error),
    };
    Entity {
        urn: manifest_urn(repo, &path),
        kind: EntityKind::Manifest as i32,
        native_id: format!("{}:{path}", repo.id),
        display_name: format!("{full}:{path}"),
        labels: Vec::new(),
        parent_urn: repo_urn(repo),
        body: Some(Body::Manifest(Manifest {
            path,
            ecosystem: eco.to_owned(),
            blob_sha: sha.to_owned(),
            dependencies,
            parse_error,
        })),
    }
}

/// A blob of a page to read, with the repository it belongs to (its index in the page).
struct Wanted {
    repo: usize,
    full: String,
    path: String,
    blob: BlobRef,
}

/// What was read of one blob: its text, or why it is not text (a manifest
/// sent with that parse error); or the failure of its read alone (a body
/// that does not parse), which fails the repository's part, not the page.
type BlobRead = Result<Result<String, String>, ScopeError>;

/// What was read of a prefix of the blobs asked for, and the failure that
/// ended it: the index of the repository (in its page) from which on
/// nothing was read, and why.
type BlobTexts = (Vec<BlobRead>, Option<(usize, ScopeError)>);

/// Reads blobs over REST, four at a time.
async fn read_blobs_rest(session: &Session, wanted: &[&Wanted]) -> BlobTexts {
    // Collected first: a stream over a borrowing closure would not be Send.
    let reads: Vec<_> = wanted
        .iter()
        .map(|w| {
            let route = format!("/repos/{}/{}/git/blobs/{}", w.blob.owner, w.blob.name, w.blob.sha);
            async move { client::get_blob(session, &route).await }
        })
        .collect();
    let blobs = futures::stream::iter(reads).buffered(4).collect::<Vec<_>>().await;
    let mut texts = Vec::with_capacity(blobs.len());
    for (blob, w) in blobs.into_iter().zip(wanted) {
        match blob {
            Ok(blob) => texts.push(Ok(decode_blob(&blob))),
            Err(e) => {
                let error = page_error(e, &format!("manifest {} of {}", w.path, w.full));
                if fails_alone(&error) {
                    texts.push(Err(error));
                    continue;
                }
                return (texts, Some((w.repo, error)));
            }
        }
    }
    (texts, None)
}

/// One GraphQL read of `chunk`, and REST reads of what it gave no text for.
async fn read_chunk(session: &Session, chunk: &[Wanted]) -> Result<Vec<BlobRead>, ScopeError> {
    let refs: Vec<BlobRef> = chunk.iter().map(|w| w.blob.clone()).collect();
    let first = &chunk[0];
    let what = || match chunk.len() {
        1 => format!("manifest {} of {}", first.path, first.full),
        n => format!("{n} manifests from {} on", first.full),
    };
    let texts = match client::read_blobs(session, &refs).await {
        Ok(texts) => texts,
        // GitHub answered without data or with a body that is not a GraphQL
        // answer, or kept answering 5xx or not at all: a query GitHub could
        // not finish within its 10 s answers 502 (sometimes an HTML page, or
        // 504) with "Something went wrong while executing your query. This
        // may be the result of a timeout". The blobs are read over REST, a
        // budget of its own at GitHub.
        Err(
            error @ (GraphqlError::Errors(_)
            | GraphqlError::Malformed
            | GraphqlError::Request(client::RequestError::Upstream(
                UpstreamError::ServerError { .. } | UpstreamError::Transport { .. },
            ))),
        ) => {
            let error = graphql_error(error, &what());
            tracing::warn!(connector = ID, %error, "github graphql read failed; reading its blobs over REST");
            vec![BlobText::Unavailable; chunk.len()]
        }
        Err(error) => return Err(graphql_error(error, &what())),
    };
    let fallback: Vec<&Wanted> = chunk
        .iter()
        .zip(&texts)
        .filter(|(_, text)| **text == BlobText::Unavailable)
        .map(|(w, _)| w)
        .collect();
    let (rest, failed) = read_blobs_rest(session, &fallback).await;
    if let Some((_, e)) = failed {
        return Err(e);
    }
    let mut rest = rest.into_iter();
    Ok(texts
        .into_iter()
        .map(|text| match text {
            BlobText::Text(text) => Ok(Ok(text)),
            BlobText::Unavailable => rest.next().unwrap_or_else(|| Ok(Err("blob not read".to_owned()))),
        })
        .collect::<Vec<_>>())
}

/// Reads the blobs of a page in order: GraphQL reads of up to `batch`
/// blobs each (two at once), over REST what GraphQL gives no text for
/// (binary, truncated, gone). With `batch` 0, every blob over REST.
async fn read_page_blobs(session: &Session, batch: usize, wanted: &[Wanted]) -> BlobTexts {
    if batch == 0 {
        return read_blobs_rest(session, &wanted.iter().collect::<Vec<_>>()).await;
    }
    let reads: Vec<_> = wanted.chunks(batch).map(|chunk| read_chunk(session, chunk)).collect();
    let results = futures::stream::iter(reads).buffered(2).collect::<Vec<_>>().await;
    let mut texts = Vec::with_capacity(wanted.len());
    for (result, chunk) in results.into_iter().zip(wanted.chunks(batch)) {
        match result {
            Ok(chunk_texts) => texts.extend(chunk_texts),
            // Nothing of this chunk counts: its first repository may have
            // blobs in it that were not read.
            Err(e) => return (texts, Some((chunk[0].repo, e))),
        }
    }
    (texts, None)
}

impl GithubConnector {
    /// A repository's tree (the manifests in it, less those kept from the
    /// baseline: a blob is addressed by its sha, so a manifest at the same
    /// path with the same sha as in the baseline is the same entity) and its
    /// SBOM, which do not depend on each other.
    async fn fetch_pending(
        session: &Session,
        repo: &GhRepository,
        known: &KnownVersions,
        plan: FetchPlan,
    ) -> Result<Pending, ScopeError> {
        let owner = owner_of(repo);
        let full = format!("{owner}/{}", repo.name);
        let (tree, sbom) = futures::join!(
            async {
                if plan.want_manifests {
                    Self::fetch_tree(session, repo, known, &owner, &full).await
                } else {
                    Ok(Access::Open((Vec::new(), Vec::new())))
                }
            },
            async {
                if plan.want_sbom {
                    Self::fetch_sbom(session, repo, &owner, &full, plan).await
                } else {
                    Ok(Access::Open(None))
                }
            }
        );
        let mut alone = FailedAlone::default();
        let tree = alone.absorb(
            tree,
            Access::Open((Vec::new(), Vec::new())),
            EntityKind::Manifest,
            known,
        );
        let sbom = alone.absorb(sbom, Access::Open(None), EntityKind::Sbom, known);
        match (tree?, sbom?) {
            (Access::Open((blobs, mut kept)), Access::Open(sbom)) => {
                kept.append(&mut alone.kept);
                Ok(Pending {
                    blobs,
                    kept,
                    sbom,
                    blocked: None,
                    failed: alone.failed,
                })
            }
            (Access::Blocked(status), _) | (_, Access::Blocked(status)) => {
                tracing::warn!(
                    connector = ID,
                    repository = %full,
                    status,
                    "github blocks access to this repository; its manifests and sbom are kept from the last sync"
                );
                Ok(Pending {
                    blobs: Vec::new(),
                    kept: Vec::new(),
                    sbom: None,
                    blocked: Some(status),
                    failed: Vec::new(),
                })
            }
        }
    }

    async fn fetch_tree(
        session: &Session,
        repo: &GhRepository,
        known: &KnownVersions,
        owner: &str,
        full: &str,
    ) -> Result<Access<(Vec<(String, &'static str, String)>, Vec<String>)>, ScopeError> {
        let name = &repo.name;
        let branch = repo.default_branch.clone().unwrap_or_else(|| "HEAD".into());
        let branch = percent_encoding::utf8_percent_encode(&branch, REF_IN_PATH);
        let route = format!("/repos/{owner}/{name}/git/trees/{branch}?recursive=1");
        let mut kept = Vec::new();
        match client::get_json::<GitTree>(session, &route, None).await {
            Ok(tree) => {
                let entries = if tree.truncated {
                    tracing::info!(connector = ID, repo = %full, "git tree truncated by github; reading it a level at a time");
                    Self::walk_tree(session, owner, name, tree.sha, full).await?
                } else {
                    tree.tree
                };
                let blobs = entries
                    .into_iter()
                    // A symlink's blob is the path it points to, not a manifest.
                    .filter(client::GitTreeEntry::is_file)
                    .filter_map(|e| manifests::ecosystem(&e.path).map(|eco| (e.path, eco, e.sha)))
                    .filter(|(path, _, sha)| {
                        let urn = manifest_urn(repo, path);
                        let same = known.get(&urn) == Some(sha);
                        if same {
                            kept.push(urn);
                        }
                        !same
                    })
                    .collect();
                Ok(Access::Open((blobs, kept)))
            }
            // 409: the repository is empty; 404: no such branch.
            Err(PageError::Request(RequestError::GitHub(error))) if matches!(status_of(&error), Some(409 | 404)) => {
                Ok(Access::Open((Vec::new(), kept)))
            }
            Err(PageError::Request(RequestError::GitHub(error))) if let Some(status) = access_blocked(&error) => {
                Ok(Access::Blocked(status))
            }
            Err(error) => Err(page_error(error, &format!("tree of {full}"))),
        }
    }

    /// The entries of a tree GitHub cut short in its recursive listing
    /// (past 100,000 entries or 7 MB), read as GitHub's documentation says:
    /// a level at a time. A subtree is listed recursively in one request,
    /// and only one cut short again is read a level at a time; directories
    /// of vendored or built files (`manifests::skipped_dir`) are not read.
    /// Entries come in path order.
    async fn walk_tree(
        session: &Session,
        owner: &str,
        name: &str,
        root: String,
        full: &str,
    ) -> Result<Vec<GitTreeEntry>, ScopeError> {
        let get = |sha: &str, recursive: bool| {
            let route = format!(
                "/repos/{owner}/{name}/git/trees/{sha}{}",
                if recursive { "?recursive=1" } else { "" }
            );
            async move {
                client::get_json::<GitTree>(session, &route, None)
                    .await
                    .map_err(|e| page_error(e, &format!("tree of {full}")))
            }
        };
        let prefixed = |prefix: &str, mut entry: GitTreeEntry| {
            if !prefix.is_empty() {
                entry.path = format!("{prefix}/{}", entry.path);
            }
            entry
        };
        let mut entries = Vec::new();
        // Trees to read a level at a time: their path and sha.
        let mut levels = vec![(String::new(), root)];
        while let Some((prefix, sha)) = levels.pop() {
            for entry in get(&sha, false).await?.tree {
                let entry = prefixed(&prefix, entry);
                if entry.kind != "tree" {
                    entries.push(entry);
                    continue;
                }
                if manifests::skipped_dir(entry.path.rsplit('/').next().unwrap_or_default()) {
                    continue;
                }
                let subtree = get(&entry.sha, true).await?;
                if subtree.truncated {
                    levels.push((entry.path.clone(), entry.sha.clone()));
                } else {
                    entries.extend(subtree.tree.into_iter().map(|e| prefixed(&entry.path, e)));
                }
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// A repository's SBOM, from GitHub's asynchronous SBOM reports (the
    /// synchronous export closed on github.com on 2026-11-13): `generate-report`
    /// starts one and names it, `fetch-report/{id}` answers 201 or 202 until it
    /// is ready and then redirects to the SPDX document in storage on another
    /// host, which is downloaded without the credential.
    async fn fetch_sbom(
        session: &Session,
        repo: &GhRepository,
        owner: &str,
        full: &str,
        plan: FetchPlan,
    ) -> Result<Access<Option<Entity>>, ScopeError> {
        let name = &repo.name;
        let what = format!("sbom of {full}");
        let generate = format!("/repos/{owner}/{name}/dependency-graph/sbom/generate-report");
        let mut no_store = http::HeaderMap::new();
        no_store.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        let report = match client::get_json::<SbomReport>(session, &generate, Some(no_store)).await {
            Ok(report) => report,
            Err(PageError::Request(RequestError::GitHub(error))) if status_of(&error) == Some(404) => {
                // No dependency graph for this repository; or a GitHub
                // Enterprise Server without the reports, which still exports.
                if plan.legacy_sbom_export {
                    return Self::export_sbom(session, repo, owner, full).await;
                }
                return Ok(Access::Open(None));
            }
            Err(error) => return sbom_refused(error, full, &what),
        };
        // Only the report's id is taken from the answer: the request goes to
        // this repository's fetch-report on the configured API.
        let id = report
            .sbom_url
            .split_once("/dependency-graph/sbom/fetch-report/")
            .map(|(_, id)| id)
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
            .ok_or_else(|| ScopeError::Failed {
                reason: "UPSTREAM_MALFORMED",
                message: format!("{what}: generate-report named no report: {:?}", report.sbom_url),
            })?;
        let fetch = format!("/repos/{owner}/{name}/dependency-graph/sbom/fetch-report/{id}");
        let started = tokio::time::Instant::now();
        let mut delay = plan.sbom_reports.first_poll;
        let document = loop {
            let response = session
                .get_any(&fetch)
                .await
                .map_err(|e| page_error(PageError::Request(e), &what))?;
            match response.status().as_u16() {
                // Not ready yet.
                201 | 202 => {
                    if started.elapsed() + delay > plan.sbom_reports.at_most {
                        return Err(ScopeError::Failed {
                            reason: "UPSTREAM_UNAVAILABLE",
                            message: format!(
                                "{what}: github had not generated the report after {} s",
                                plan.sbom_reports.at_most.as_secs()
                            ),
                        });
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = response
                        .headers()
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| session.api_url().join(v).ok())
                        .ok_or_else(|| ScopeError::Failed {
                            reason: "UPSTREAM_MALFORMED",
                            message: format!("{what}: the report's redirect has no location"),
                        })?;
                    let download = session
                        .download(location)
                        .await
                        .map_err(|e| page_error(PageError::Request(e), &what))?;
                    if !download.status().is_success() {
                        return Err(ScopeError::Failed {
                            reason: "UPSTREAM_ERROR",
                            message: format!("{what}: the report's download answered {}", download.status().as_u16()),
                        });
                    }
                    break client::parse_json::<SpdxDocument>(download.body()).map_err(|e| page_error(e, &what))?;
                }
                200 => {
                    break client::parse_json::<SpdxDocument>(response.body()).map_err(|e| page_error(e, &what))?;
                }
                _ => {
                    let error = client::status_error(response).await;
                    return Err(page_error(PageError::Request(error), &what));
                }
            }
        };
        Ok(Access::Open(Some(sbom_entity(repo, document))))
    }

    /// The synchronous SBOM export of GitHub Enterprise Server releases
    /// without reports: `{"sbom": <SPDX document>}`; 404 when the repository
    /// has no dependency graph.
    async fn export_sbom(
        session: &Session,
        repo: &GhRepository,
        owner: &str,
        full: &str,
    ) -> Result<Access<Option<Entity>>, ScopeError> {
        let route = format!("/repos/{owner}/{}/dependency-graph/sbom", repo.name);
        match client::get_json::<SbomResponse>(session, &route, None).await {
            Ok(response) => Ok(Access::Open(Some(sbom_entity(repo, response.sbom)))),
            Err(PageError::Request(RequestError::GitHub(error))) if status_of(&error) == Some(404) => {
                Ok(Access::Open(None))
            }
            Err(error) => sbom_refused(error, full, &format!("sbom of {full}")),
        }
    }

    /// The children of a page's repositories (or of one explicit
    /// repository): trees and SBOMs of `concurrency` repositories at a time,
    /// then the page's manifests, in GraphQL reads of `blob_batch` blobs.
    async fn fetch_page(
        session: Session,
        planned: Vec<(GhRepository, Option<KnownVersions>)>,
        plan: FetchPlan,
    ) -> PageOutcome {
        let session = &session;
        let fetched: Vec<Result<(GhRepository, Option<Pending>), ScopeError>> = futures::stream::iter(planned)
            .map(|(repo, known)| async move {
                let Some(known) = known else {
                    return Ok((repo, None));
                };
                // Each repository's requests and their parsing run in a task
                // of their own, so they spread over the cores.
                let session = session.clone();
                let id = repo.id;
                let task = crate::http::spawn_in_sync(async move {
                    let pending = Self::fetch_pending(&session, &repo, &known, plan).await;
                    pending.map(|pending| (repo, Some(pending)))
                });
                task.await.unwrap_or_else(|error| {
                    Err(ScopeError::Fatal(SyncError::Internal(format!(
                        "the fetch of repository {id} ended: {error}"
                    ))))
                })
            })
            .buffered(plan.concurrency.max(1))
            .collect()
            .await;
        // The repositories up to the first that failed.
        let mut error = None;
        let mut done: Vec<(GhRepository, Option<Pending>)> = Vec::with_capacity(fetched.len());
        for fetched in fetched {
            match fetched {
                Ok(repo) => done.push(repo),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let wanted: Vec<Wanted> = done
            .iter()
            .enumerate()
            .flat_map(|(i, (repo, pending))| {
                let owner = owner_of(repo);
                let full = format!("{owner}/{}", repo.name);
                pending.iter().flat_map(|p| &p.blobs).map(move |(path, _, sha)| Wanted {
                    repo: i,
                    full: full.clone(),
                    path: path.clone(),
                    blob: BlobRef {
                        owner: owner.clone(),
                        name: repo.name.clone(),
                        sha: sha.clone(),
                    },
                })
            })
            .collect();
        let (texts, failed) = read_page_blobs(session, plan.blob_batch, &wanted).await;
        if let Some((repo, e)) = failed {
            done.truncate(repo);
            error = Some(e);
        }
        let mut texts = texts.into_iter();
        let repos = done
            .into_iter()
            .map(|(repo, pending)| {
                let children = pending.map(|mut p| {
                    let full = full_name_of(&repo);
                    let mut manifests = Vec::with_capacity(p.blobs.len());
                    for (path, eco, sha) in p.blobs {
                        match texts.next().unwrap_or_else(|| Ok(Err("blob not read".to_owned()))) {
                            Ok(text) => manifests.push((manifest_entity(&repo, &full, path, eco, &sha, text), sha)),
                            // The baseline's manifest at that path (if any) is kept.
                            Err(error) => {
                                p.kept.push(manifest_urn(&repo, &path));
                                p.failed.push(error);
                            }
                        }
                    }
                    Children {
                        manifests,
                        kept: p.kept,
                        sbom: p.sbom,
                        blocked: p.blocked,
                        failed: p.failed,
                    }
                });
                (repo, children)
            })
            .collect();
        PageOutcome { repos, error }
    }

    fn fetch_plan(&self, ctx: &ScopeContext<'_>) -> FetchPlan {
        FetchPlan {
            want_manifests: ctx.wants(EntityKind::Manifest),
            want_sbom: ctx.wants(EntityKind::Sbom),
            concurrency: self.settings.repo_concurrency.max(1),
            blob_batch: self.settings.blob_batch,
            sbom_reports: self.settings.sbom_reports,
            legacy_sbom_export: self.settings.legacy_sbom_export,
        }
    }

    /// The repositories of a listing page the request keeps, each with
    /// whether its children are fetched (pushed since the baseline, or no
    /// baseline; with the baseline's versions of them) or kept from the
    /// baseline (`None`).
    fn plan(
        &self,
        request: &GithubRequest,
        repos: Vec<GhRepository>,
        ctx: &ScopeContext<'_>,
    ) -> Vec<(GhRepository, Option<KnownVersions>)> {
        let wants_children = ctx.wants(EntityKind::Manifest) || ctx.wants(EntityKind::Sbom);
        repos
            .into_iter()
            .filter(|r| !(request.exclude_archived && r.archived.unwrap_or(false)))
            .filter(|r| !(request.exclude_forks && r.fork.unwrap_or(false)))
            .map(|repo| {
                let urn = repo_urn(&repo);
                let pushed = !same_push(ctx.prior_version(&urn), &repo);
                let fetch = (pushed && wants_children).then(|| ctx.prior_children(&urn).collect());
                (repo, fetch)
            })
            .collect()
    }

    /// Pushes a repository and its children (or keeps them from the baseline).
    async fn push_repo(
        &self,
        repo: &GhRepository,
        fetched: Option<Children>,
        operation: &'static str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        if ctx.is_cancelled() {
            return Err(ScopeError::Cancelled);
        }
        // A blocked repository, or one whose tree or SBOM failed alone, is
        // saved without its push version: the next sync asks again, and sees
        // its contents once GitHub serves them.
        let version = match &fetched {
            Some(Children { blocked: Some(_), .. }) => String::new(),
            Some(Children { failed, .. }) if !failed.is_empty() => String::new(),
            _ => push_version(repo),
        };
        ctx.upsert(repo_entity(repo), UpsertMeta::new(operation, version))
            .await?;
        match fetched {
            Some(Children { blocked: Some(_), .. }) | None => {
                ctx.retain_children(&repo_urn(repo));
            }
            Some(children) => {
                for urn in &children.kept {
                    ctx.retain(urn);
                }
                for (manifest, blob_sha) in children.manifests {
                    ctx.upsert(manifest, UpsertMeta::new("git/get-blob", blob_sha)).await?;
                }
                if let Some(sbom) = children.sbom {
                    ctx.upsert(sbom, UpsertMeta::new("dependency-graph/export-sbom", String::new()))
                        .await?;
                }
                for error in children.failed {
                    ctx.fail_when_done(error)?;
                }
            }
        }
        Ok(())
    }

    /// Pushes what a page fetched, in listing order, then its failure if any.
    async fn push_page(
        &self,
        outcome: PageOutcome,
        operation: &'static str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        for (repo, children) in outcome.repos {
            self.push_repo(&repo, children, operation, ctx).await?;
        }
        outcome.error.map_or(Ok(()), Err)
    }

    /// Crawls an organization as a pipeline of listing pages: up to
    /// `PAGES_IN_FLIGHT` pages have their children fetched at once (each in a
    /// task of its own), and the next listing page is fetched meanwhile;
    /// entities and page checkpoints still go out in listing order.
    async fn sync_org(&self, request: &GithubRequest, org: &str, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let session = self
            .client
            .for_owner(org, None)
            .await
            .map_err(|e| scope_error(e, &format!("installation of {org}")))?;
        let listing_error = |e| page_error(e, &format!("repositories of {org}"));
        let first = match ctx.resume_cursor() {
            Some(cursor) => listing_cursor(cursor, org).ok_or_else(|| {
                ScopeError::Fatal(SyncError::invalid(
                    "options.checkpoint",
                    "the page cursor it holds is not valid",
                ))
            })?,
            None => format!("/orgs/{org}/repos?per_page={}", self.settings.page_size)
                .parse()
                // Logins are checked (requests and GITHUB_ORGS) before they get here.
                .map_err(|_| ScopeError::Failed {
                    reason: "INVALID_SCOPE",
                    message: format!("{org:?} is not an organization login"),
                })?,
        };
        let plan = self.fetch_plan(ctx);
        let lost = |what: &str, error: tokio::task::JoinError| {
            ScopeError::Fatal(SyncError::Internal(format!("{what} of {org} ended: {error}")))
        };
        // A listing page fetched and not yet handed to a page task.
        let mut ready: Option<RepoPage> = Some(client::get_repo_page(&session, first).await.map_err(listing_error)?);
        // The ids every page of this sync listed, whatever the request keeps.
        let mut listed = std::collections::HashSet::new();
        let mut to_fetch: Option<Uri> = None;
        let mut listing = None;
        let mut pages = futures::stream::FuturesOrdered::new();
        loop {
            if pages.len() < PAGES_IN_FLIGHT
                && let Some(page) = ready.take()
            {
                // Relative to the configured base: the cursor pins no origin, and
                // octocrab authenticates the request as one to its own upstream.
                let next = match &page.next {
                    Some(next) => Some(self.upstream.relativize(next).map_err(|e| ScopeError::Failed {
                        reason: "UPSTREAM_MALFORMED",
                        message: format!("repositories of {org}: next page link refused: {e}"),
                    })?),
                    None => None,
                };
                listed.extend(page.items.iter().map(|repo| repo.id));
                let planned = self.plan(request, page.items, ctx);
                let task = crate::http::spawn_in_sync(Self::fetch_page(session.clone(), planned, plan));
                let cursor = next.clone();
                pages.push_back(async move { (task.await, cursor) });
                to_fetch = next;
            }
            if listing.is_none()
                && ready.is_none()
                && let Some(uri) = to_fetch.take()
            {
                // The page is fetched and parsed (100 items of 5 KB) by a task
                // of its own, not by the one that sends this scope's entities.
                let session = session.clone();
                listing = Some(crate::http::spawn_in_sync(async move {
                    client::get_repo_page(&session, uri).await
                }));
            }
            let event = match listing.as_mut() {
                None => match pages.next().await {
                    Some(page) => Either::Left(page),
                    None => break,
                },
                Some(fetching) => tokio::select! {
                    biased;
                    Some(page) = pages.next() => Either::Left(page),
                    fetched = fetching => Either::Right(fetched),
                },
            };
            match event {
                Either::Left((outcome, cursor)) => {
                    let outcome = outcome.map_err(|e| lost("a listing page's fetch", e))?;
                    self.push_page(outcome, "repos/list-for-org", ctx).await?;
                    if let Some(cursor) = cursor {
                        ctx.checkpoint(cursor.to_string()).await?;
                    }
                }
                Either::Right(fetched) => {
                    listing = None;
                    ready = Some(
                        fetched
                            .map_err(|e| lost("a listing page fetch", e))?
                            .map_err(listing_error)?,
                    );
                }
            }
        }
        self.confirm_unlisted(request, org, &session, &listed, ctx).await
    }

    /// Page-number listings drift: a repository deleted or transferred out
    /// of the organization on a page already read shifts every later one up
    /// by one, so the first repository of the next page is never listed.
    /// Before the scope's deletions are final, each repository of the
    /// baseline that no page of this sync listed is looked up by id
    /// (`GET /repositories/{id}`, which follows renames and transfers):
    /// still the organization's, it is pushed (an unchanged one is not
    /// sent) and its children fetched as a listed one's would be; gone
    /// (404) or now another owner's, it is left to the deletions; one
    /// GitHub blocks keeps what the baseline has of it. Any other failure
    /// fails the scope, so no deletion is sent on a guess.
    async fn confirm_unlisted(
        &self,
        request: &GithubRequest,
        org: &str,
        session: &Session,
        listed: &std::collections::HashSet<u64>,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let mut unlisted: std::collections::BTreeSet<u64> = ctx
            .prior_unseen(EntityKind::Repository)
            .iter()
            .filter_map(|(urn, _)| repo_id_of(urn))
            .collect();
        // Without repositories in the state, their children stand for them.
        if !ctx.wants(EntityKind::Repository) {
            for kind in [EntityKind::Manifest, EntityKind::Sbom] {
                unlisted.extend(
                    ctx.prior_unseen(kind)
                        .iter()
                        .filter_map(|(_, parent)| repo_id_of(parent)),
                );
            }
        }
        unlisted.retain(|id| !listed.contains(id));
        if unlisted.is_empty() {
            return Ok(());
        }
        let lookups: Vec<_> = unlisted
            .into_iter()
            .map(|id| async move {
                let found = client::get_json::<GhRepository>(session, &format!("/repositories/{id}"), None).await;
                (id, found)
            })
            .collect();
        let mut lookups = futures::stream::iter(lookups).buffered(self.settings.repo_concurrency.max(1));
        let mut kept = Vec::new();
        while let Some((id, found)) = lookups.next().await {
            match found {
                Ok(repo) if owner_of(&repo).eq_ignore_ascii_case(org) => kept.push(repo),
                Ok(_) => {}
                Err(PageError::Request(RequestError::GitHub(error))) if status_of(&error) == Some(404) => {}
                Err(PageError::Request(RequestError::GitHub(error))) if access_blocked(&error).is_some() => {
                    let blocked = urn(ID, EntityKind::Repository, &id.to_string());
                    ctx.retain(&blocked);
                    ctx.retain_children(&blocked);
                }
                Err(error) => return Err(page_error(error, &format!("repository {id} of {org}"))),
            }
        }
        if !kept.is_empty() {
            tracing::info!(
                connector = ID,
                org,
                kept = kept.len(),
                "repositories no listing page showed are still the organization's; kept"
            );
        }
        // A listing page's worth at a time, as listed repositories are fetched.
        let mut kept = kept.into_iter().peekable();
        while kept.peek().is_some() {
            let page: Vec<GhRepository> = kept
                .by_ref()
                .take(usize::from(self.settings.page_size.max(1)))
                .collect();
            let planned = self.plan(request, page, ctx);
            let outcome = Self::fetch_page(session.clone(), planned, self.fetch_plan(ctx)).await;
            self.push_page(outcome, "repos/get", ctx).await?;
        }
        Ok(())
    }

    async fn sync_repo(
        &self,
        request: &GithubRequest,
        owner: &str,
        name: &str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let session = self
            .client
            .for_owner(owner, Some(name))
            .await
            .map_err(|e| scope_error(e, &format!("installation of {owner}/{name}")))?;
        let repo = client::get_json::<GhRepository>(&session, &format!("/repos/{owner}/{name}"), None)
            .await
            .map_err(|e| page_error(e, &format!("repository {owner}/{name}")))?;
        let planned = self.plan(request, vec![repo], ctx);
        let outcome = Self::fetch_page(session, planned, self.fetch_plan(ctx)).await;
        self.push_page(outcome, "repos/get", ctx).await
    }
}

#[async_trait]
impl Connector for GithubConnector {
    type Request = GithubRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        match &self.settings.auth {
            GithubAuth::None => Ok(()),
            GithubAuth::Token(_) => match self.client.base().current().user().await {
                Ok(_) => Ok(()),
                // GitHub authenticated the token, which may not read a user:
                // an App installation token ("Resource not accessible by
                // integration"), whose syncs work. A rejected token is a 401.
                Err(e) if status_of(&e) == Some(403) => Ok(()),
                Err(e) => Err(SyncError::UpstreamUnauthenticated(format!(
                    "GET /user failed: {}",
                    short(&e)
                ))),
            },
            GithubAuth::App { .. } => self
                .client
                .base()
                .current()
                .app()
                .await
                .map(|_| ())
                .map_err(|e| SyncError::UpstreamUnauthenticated(format!("GET /app failed: {}", short(&e)))),
        }
    }

    fn scopes(&self, request: &GithubRequest) -> Result<Vec<Scope>, SyncError> {
        let mut scopes = Vec::new();
        if request.orgs.is_empty() && request.repositories.is_empty() {
            if self.settings.default_orgs.is_empty() {
                return Err(SyncError::invalid(
                    "orgs",
                    "no organizations or repositories given and GITHUB_ORGS is not set on the server",
                ));
            }
            scopes.extend(
                self.settings
                    .default_orgs
                    .iter()
                    .map(|org| Scope::new(format!("org:{org}"))),
            );
        }
        scopes.extend(request.orgs.iter().map(|org| Scope::new(format!("org:{org}"))));
        scopes.extend(
            request
                .repositories
                .iter()
                .map(|(owner, name)| Scope::new(format!("repo:{owner}/{name}"))),
        );
        Ok(scopes)
    }

    /// A repository unchanged since the baseline keeps its manifests and
    /// SBOM from it, and a manifest whose blob sha is the baseline's is kept.
    fn reads_baseline(&self) -> bool {
        true
    }

    fn request_fingerprint(&self, request: &GithubRequest) -> String {
        format!("archived={} forks={}", request.exclude_archived, request.exclude_forks)
    }

    async fn sync_scope(
        &self,
        request: &GithubRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        match scope.key.split_once(':') {
            Some(("org", org)) => self.sync_org(request, org, ctx).await,
            Some(("repo", full)) => {
                let (owner, name) = full.split_once('/').unwrap_or((full, ""));
                self.sync_repo(request, owner, name, ctx).await
            }
            _ => Err(ScopeError::Fatal(SyncError::Internal(format!(
                "unknown scope {}",
                scope.key
            )))),
        }
    }
}

fn short(error: &octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            format!("{} {}", source.status_code.as_u16(), source.message.to_lowercase())
        }
        other => UpstreamError::find(other)
            .map(|e| e.to_string())
            .unwrap_or_else(|| "request failed".into()),
    }
}

/// The listing page a resumed organization scope goes on from, when
/// `cursor` is one: checkpoints come back from clients, so a cursor is
/// accepted only as a page of the organization's repository listing
/// (`/orgs/{org}/repos`, or `/organizations/{id}/repos` as GitHub's `Link`
/// headers name it), never another path of the API sent with the server's
/// credential.
fn listing_cursor(cursor: &str, org: &str) -> Option<Uri> {
    let uri: Uri = cursor.parse().ok()?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return None;
    }
    let path = uri.path();
    let listing = match path.strip_prefix("/orgs/") {
        Some(rest) => rest
            .strip_suffix("/repos")
            .is_some_and(|login| login.eq_ignore_ascii_case(org)),
        None => path
            .strip_prefix("/organizations/")
            .and_then(|rest| rest.strip_suffix("/repos"))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
    };
    listing.then_some(uri)
}
