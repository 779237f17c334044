//! The GitHub connector: repositories of organizations (or explicit
//! repositories), their dependency manifests and dependency-graph SBOMs,
//! through octocrab over the shared upstream HTTP layer.
//!
//! Incremental: org listings are conditional requests (ETags, 304s reuse the
//! cached page); a repository whose `pushed_at` equals the baseline's keeps
//! its manifests and SBOM without refetching them.

pub mod client;
pub mod manifests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use self::client::{
    GitBlob, GitTree, GithubAuth, GithubClient, ListedRepo as GhRepository, PageError, RepoPage, SbomResponse,
};
use crate::http::UpstreamError;
use crate::sync::{Availability, Connector, Descriptor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn};
use async_trait::async_trait;
use base64::Engine as _;
use connectors_proto::v1::{Entity, EntityKind, Manifest, Repository, Sbom, SbomPackage, entity::Body};
use futures::StreamExt;
use futures::future::Either;
use http::Uri;
use octocrab::Octocrab;

/// The connector id.
pub const ID: &str = "github";

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
        return match upstream {
            UpstreamError::RateLimited { reset_time, .. } => ScopeError::RateLimited {
                reset_time: *reset_time,
                message: format!("{what}: github rate limit exhausted"),
            },
            other => ScopeError::Failed {
                reason: "UPSTREAM_UNAVAILABLE",
                message: format!("{what}: {other}"),
            },
        };
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

/// The scope error of a request made with `client::get_*`.
fn page_error(error: PageError, what: &str) -> ScopeError {
    match error {
        PageError::Request(e) => scope_error(e, what),
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

fn timestamp(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<pbjson_types::Timestamp> {
    t.map(|t| pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

fn repo_urn(repo: &GhRepository) -> String {
    urn(ID, EntityKind::Repository, &repo.id.to_string())
}

fn repo_entity(repo: &GhRepository) -> Entity {
    let owner = repo.owner.as_ref().map(|o| o.login.clone()).unwrap_or_default();
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

fn push_version(repo: &GhRepository) -> String {
    repo.pushed_at.map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// A manifest entity with its blob sha (its upstream version).
struct BlobEntity {
    entity: Entity,
    blob_sha: String,
}

impl From<Entity> for BlobEntity {
    fn from(entity: Entity) -> Self {
        let blob_sha = match &entity.body {
            Some(Body::Manifest(m)) => m.blob_sha.clone(),
            _ => String::new(),
        };
        Self { entity, blob_sha }
    }
}

/// One step of an organization crawl, in listing order: a repository with
/// what its children need (`bool`: fetch them) or what was fetched, or the end
/// of a listing page (a checkpoint at the next page's cursor).
enum Step<T> {
    Repo(Box<GhRepository>, T),
    PageEnd(Uri),
    /// A repository's fetch task ended without an answer (it panicked).
    Lost(ScopeError),
}

/// What was fetched for one repository besides the repository itself.
struct Children {
    manifests: Vec<Entity>,
    /// Manifests whose blob the baseline has already (same path, same sha):
    /// kept without fetching the blob.
    kept: Vec<String>,
    sbom: Option<Entity>,
}

/// The baseline's children of a repository with their upstream versions
/// (a manifest's version is its blob sha), by urn.
type KnownVersions = std::collections::HashMap<String, String>;

fn manifest_urn(repo: &GhRepository, path: &str) -> String {
    urn(ID, EntityKind::Manifest, &format!("{}:{path}", repo.id))
}

async fn fetch_blob(
    crab: &Octocrab,
    owner: &str,
    name: &str,
    path: String,
    eco: &'static str,
    sha: String,
) -> (String, &'static str, String, Result<GitBlob, PageError>) {
    let route = format!("/repos/{owner}/{name}/git/blobs/{sha}");
    let blob = client::get_blob(crab, &route).await;
    (path, eco, sha, blob)
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

impl GithubConnector {
    async fn fetch_children(
        crab: &Octocrab,
        repo: &GhRepository,
        known: &KnownVersions,
        want_manifests: bool,
        want_sbom: bool,
    ) -> Result<Children, ScopeError> {
        let owner = repo.owner.as_ref().map(|o| o.login.clone()).unwrap_or_default();
        let full = format!("{owner}/{}", repo.name);
        // The tree (then its blobs) and the SBOM do not depend on each other.
        let (manifests, sbom) = futures::join!(
            async {
                if want_manifests {
                    Self::fetch_manifests(crab, repo, known, &owner, &full).await
                } else {
                    Ok((Vec::new(), Vec::new()))
                }
            },
            async {
                if want_sbom {
                    Self::fetch_sbom(crab, repo, &owner, &full).await
                } else {
                    Ok(None)
                }
            }
        );
        let (manifests, kept) = manifests?;
        Ok(Children {
            manifests,
            kept,
            sbom: sbom?,
        })
    }

    /// The manifests of a repository's tree, and the urns of those kept from
    /// the baseline: a blob is addressed by its sha, so a manifest at the same
    /// path with the same sha as in the baseline is the same entity, and its
    /// blob is not fetched again.
    async fn fetch_manifests(
        crab: &Octocrab,
        repo: &GhRepository,
        known: &KnownVersions,
        owner: &str,
        full: &str,
    ) -> Result<(Vec<Entity>, Vec<String>), ScopeError> {
        let name = &repo.name;
        let parent = repo_urn(repo);
        let mut manifests = Vec::new();
        let mut kept = Vec::new();
        let branch = repo.default_branch.clone().unwrap_or_else(|| "HEAD".into());
        let route = format!("/repos/{owner}/{name}/git/trees/{branch}");
        match crab.get::<GitTree, _, _>(&route, Some(&[("recursive", "1")])).await {
            Ok(tree) => {
                if tree.truncated {
                    tracing::warn!(connector = ID, repo = %full, "git tree truncated by github; manifests may be missing");
                }
                let found: Vec<(String, &'static str, String)> = tree
                    .tree
                    .iter()
                    .filter(|e| e.kind == "blob")
                    .filter_map(|e| manifests::ecosystem(&e.path).map(|eco| (e.path.clone(), eco, e.sha.clone())))
                    .collect();
                let name = name.as_str();
                let fetches: Vec<_> = found
                    .into_iter()
                    .filter(|(path, _, sha)| {
                        let urn = manifest_urn(repo, path);
                        let same = known.get(&urn) == Some(sha);
                        if same {
                            kept.push(urn);
                        }
                        !same
                    })
                    .map(|(path, eco, sha)| fetch_blob(crab, owner, name, path, eco, sha))
                    .collect();
                let blobs = futures::stream::iter(fetches).buffered(4).collect::<Vec<_>>().await;
                for (path, eco, sha, blob) in blobs {
                    let blob = blob.map_err(|e| page_error(e, &format!("manifest {path} of {full}")))?;
                    let (dependencies, parse_error) =
                        match decode_blob(&blob).and_then(|text| manifests::parse(eco, &text)) {
                            Ok(deps) => (deps, String::new()),
                            Err(error) => (Vec::new(), error),
                        };
                    manifests.push(Entity {
                        urn: manifest_urn(repo, &path),
                        kind: EntityKind::Manifest as i32,
                        native_id: format!("{}:{path}", repo.id),
                        display_name: format!("{full}:{path}"),
                        labels: Vec::new(),
                        parent_urn: parent.clone(),
                        body: Some(Body::Manifest(Manifest {
                            path,
                            ecosystem: eco.to_owned(),
                            blob_sha: sha,
                            dependencies,
                            parse_error,
                        })),
                    });
                }
            }
            // 409: the repository is empty; 404: no such branch.
            Err(error) if matches!(status_of(&error), Some(409 | 404)) => {}
            Err(error) => return Err(scope_error(error, &format!("tree of {full}"))),
        }
        Ok((manifests, kept))
    }

    async fn fetch_sbom(
        crab: &Octocrab,
        repo: &GhRepository,
        owner: &str,
        full: &str,
    ) -> Result<Option<Entity>, ScopeError> {
        let name = &repo.name;
        let parent = repo_urn(repo);
        let mut sbom = None;
        let route = format!("/repos/{owner}/{name}/dependency-graph/sbom");
        match crab.get::<SbomResponse, _, ()>(&route, None).await {
            Ok(response) => {
                let doc = response.sbom;
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
                sbom = Some(Entity {
                    urn: urn(ID, EntityKind::Sbom, &repo.id.to_string()),
                    kind: EntityKind::Sbom as i32,
                    native_id: repo.id.to_string(),
                    display_name: doc.name.clone(),
                    labels: Vec::new(),
                    parent_urn: parent.clone(),
                    body: Some(Body::Sbom(Sbom {
                        spec_version: doc.spdx_version,
                        document_name: doc.name,
                        document_namespace: doc.document_namespace,
                        create_time: timestamp(Some(doc.creation_info.created)),
                        packages,
                    })),
                });
            }
            // 404: the dependency graph is not enabled for this repository.
            Err(error) if status_of(&error) == Some(404) => {}
            Err(error) => return Err(scope_error(error, &format!("sbom of {full}"))),
        }
        Ok(sbom)
    }

    async fn maybe_fetch_children(
        &self,
        crab: &Octocrab,
        repo: &GhRepository,
        fetch: Option<KnownVersions>,
        want_manifests: bool,
        want_sbom: bool,
    ) -> Result<Option<Children>, ScopeError> {
        match fetch {
            Some(known) => Self::fetch_children(crab, repo, &known, want_manifests, want_sbom)
                .await
                .map(Some),
            None => Ok(None),
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
                let pushed = ctx.prior_version(&urn) != Some(push_version(&repo).as_str());
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
        ctx.upsert(repo_entity(repo), UpsertMeta::new(operation, push_version(repo)))
            .await?;
        match fetched {
            Some(children) => {
                for urn in &children.kept {
                    ctx.retain(urn);
                }
                for manifest in children.manifests {
                    let manifest = BlobEntity::from(manifest);
                    ctx.upsert(manifest.entity, UpsertMeta::new("git/get-blob", manifest.blob_sha))
                        .await?;
                }
                if let Some(sbom) = children.sbom {
                    ctx.upsert(sbom, UpsertMeta::new("dependency-graph/export-sbom", String::new()))
                        .await?;
                }
            }
            None => {
                ctx.retain_children(&repo_urn(repo));
            }
        }
        Ok(())
    }

    /// Crawls an organization as one pipeline: up to `repo_concurrency`
    /// repositories have their children in flight at once, across page
    /// boundaries, and the next listing page is fetched while the current
    /// one's repositories are; entities and page checkpoints still go out in
    /// listing order.
    async fn sync_org(&self, request: &GithubRequest, org: &str, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let crab = self
            .client
            .for_owner(org, None)
            .await
            .map_err(|e| scope_error(e, &format!("installation of {org}")))?;
        let listing_error = |e| page_error(e, &format!("repositories of {org}"));
        let first = match ctx.resume_cursor() {
            Some(cursor) => {
                // Cursors are relative paths this server wrote; anything else
                // (an absolute URL in a crafted token) is refused.
                let uri: Uri = cursor
                    .parse()
                    .ok()
                    .filter(|uri: &Uri| uri.scheme().is_none() && cursor.starts_with('/'))
                    .ok_or_else(|| {
                        ScopeError::Fatal(SyncError::invalid(
                            "options.checkpoint",
                            "the page cursor it holds is not valid",
                        ))
                    })?;
                uri
            }
            None => format!("/orgs/{org}/repos?per_page={}", self.settings.page_size)
                .parse()
                // Logins are checked (requests and GITHUB_ORGS) before they get here.
                .map_err(|_| ScopeError::Failed {
                    reason: "INVALID_SCOPE",
                    message: format!("{org:?} is not an organization login"),
                })?,
        };
        let first: Option<RepoPage> = Some(client::get_repo_page(&crab, first).await.map_err(listing_error)?);
        let concurrency = self.settings.repo_concurrency.max(1);
        let (want_manifests, want_sbom) = (ctx.wants(EntityKind::Manifest), ctx.wants(EntityKind::Sbom));
        let crab = &crab;
        // Work not started yet, in order: repositories and page ends.
        let mut queued: VecDeque<Step<Option<KnownVersions>>> = VecDeque::new();
        let mut in_flight = futures::stream::FuturesOrdered::new();
        let mut next_page = None;
        let mut to_fetch: Option<Uri> = None;
        let mut page = first;
        loop {
            if let Some(current) = page.take() {
                let next = current.next.clone();
                queued.extend(
                    self.plan(request, current.items, ctx)
                        .into_iter()
                        .map(|(repo, fetch)| Step::Repo(Box::new(repo), fetch)),
                );
                if let Some(next) = next {
                    // Relative to the configured base: the cursor pins no origin, and
                    // octocrab authenticates the request as one to its own upstream.
                    let next = self.upstream.relativize(&next).map_err(|e| ScopeError::Failed {
                        reason: "UPSTREAM_MALFORMED",
                        message: format!("repositories of {org}: next page link refused: {e}"),
                    })?;
                    queued.push_back(Step::PageEnd(next.clone()));
                    to_fetch = Some(next);
                }
            }
            while in_flight.len() < concurrency {
                let Some(step) = queued.pop_front() else { break };
                in_flight.push_back(async move {
                    match step {
                        // Each repository's requests and their parsing run in a
                        // task of their own, so they spread over the cores.
                        Step::Repo(repo, Some(known)) => {
                            let crab = crab.clone();
                            let fetch = crate::http::spawn_in_sync(async move {
                                let children =
                                    Self::fetch_children(&crab, &repo, &known, want_manifests, want_sbom).await;
                                (repo, children)
                            });
                            match fetch.await {
                                Ok((repo, children)) => Step::Repo(repo, children.map(Some)),
                                Err(error) => Step::Lost(ScopeError::Fatal(SyncError::Internal(format!(
                                    "a repository fetch of {org} ended: {error}"
                                )))),
                            }
                        }
                        Step::Repo(repo, None) => Step::Repo(repo, Ok(None)),
                        Step::PageEnd(uri) => Step::PageEnd(uri),
                        Step::Lost(error) => Step::Lost(error),
                    }
                });
            }
            if next_page.is_none()
                && queued.len() < concurrency
                && let Some(uri) = to_fetch.take()
            {
                // The page is fetched and parsed (100 items of 5 KB) by a task
                // of its own, not by the one that sends this scope's entities.
                let crab = crab.clone();
                let fetch = crate::http::spawn_in_sync(async move { client::get_repo_page(&crab, uri).await });
                next_page = Some(Box::pin(async move {
                    match fetch.await {
                        Ok(fetched) => fetched.map(Some).map_err(listing_error),
                        Err(error) => Err(ScopeError::Fatal(SyncError::Internal(format!(
                            "a listing page fetch of {org} ended: {error}"
                        )))),
                    }
                }));
            }
            let event = match next_page.as_mut() {
                None => match in_flight.next().await {
                    Some(step) => Either::Left(step),
                    None => break,
                },
                Some(fetching) => tokio::select! {
                    biased;
                    Some(step) = in_flight.next() => Either::Left(step),
                    fetched = fetching => Either::Right(fetched),
                },
            };
            match event {
                Either::Left(Step::Repo(repo, children)) => {
                    self.push_repo(&repo, children?, "repos/list-for-org", ctx).await?;
                }
                Either::Left(Step::PageEnd(next)) => ctx.checkpoint(next.to_string()).await?,
                Either::Left(Step::Lost(error)) => return Err(error),
                Either::Right(fetched) => {
                    next_page = None;
                    page = fetched?;
                }
            }
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
        let crab = self
            .client
            .for_owner(owner, Some(name))
            .await
            .map_err(|e| scope_error(e, &format!("installation of {owner}/{name}")))?;
        let repo = crab
            .get::<GhRepository, _, ()>(format!("/repos/{owner}/{name}"), None)
            .await
            .map_err(|e| scope_error(e, &format!("repository {owner}/{name}")))?;
        for (repo, fetch) in self.plan(request, vec![repo], ctx) {
            let children = self
                .maybe_fetch_children(
                    &crab,
                    &repo,
                    fetch,
                    ctx.wants(EntityKind::Manifest),
                    ctx.wants(EntityKind::Sbom),
                )
                .await?;
            self.push_repo(&repo, children, "repos/get", ctx).await?;
        }
        Ok(())
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
            GithubAuth::Token(_) => self
                .client
                .base()
                .current()
                .user()
                .await
                .map(|_| ())
                .map_err(|e| SyncError::UpstreamUnauthenticated(format!("GET /user failed: {}", short(&e)))),
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
