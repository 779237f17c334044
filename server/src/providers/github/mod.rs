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

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use connectors_proto::v1::{Entity, EntityKind, Manifest, Repository, Sbom, SbomPackage, entity::Body};
use futures::StreamExt;
use http::Uri;
use octocrab::Octocrab;
use octocrab::models::Repository as GhRepository;

use self::client::{GitBlob, GitTree, GithubAuth, GithubClient, SbomResponse};
use crate::http::UpstreamError;
use crate::sync::{Availability, Connector, Descriptor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn};

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
            match status {
                401 => ScopeError::Fatal(SyncError::UpstreamUnauthenticated(message)),
                403 => ScopeError::Failed {
                    reason: "UPSTREAM_PERMISSION_DENIED",
                    message,
                },
                404 => ScopeError::Failed {
                    reason: "UPSTREAM_NOT_FOUND",
                    message,
                },
                _ => ScopeError::Failed {
                    reason: "UPSTREAM_ERROR",
                    message,
                },
            }
        }
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{what}: github returned a body that does not parse"),
        },
        _ => ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: format!("{what}: request failed"),
        },
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
            language: repo
                .language
                .as_ref()
                .and_then(|l| l.as_str())
                .unwrap_or_default()
                .to_owned(),
            topics,
            web_url: repo.html_url.as_ref().map(|u| u.to_string()).unwrap_or_default(),
            clone_url: repo.clone_url.as_ref().map(|u| u.to_string()).unwrap_or_default(),
            license_spdx_id: repo.license.as_ref().map(|l| l.spdx_id.clone()).unwrap_or_default(),
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

/// What was fetched for one repository besides the repository itself.
struct Children {
    manifests: Vec<Entity>,
    sbom: Option<Entity>,
}

async fn fetch_blob(
    crab: &Octocrab,
    owner: &str,
    name: &str,
    path: String,
    eco: &'static str,
    sha: String,
) -> (String, &'static str, String, octocrab::Result<GitBlob>) {
    let route = format!("/repos/{owner}/{name}/git/blobs/{sha}");
    let blob = crab.get::<GitBlob, _, ()>(&route, None).await;
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
        &self,
        crab: &Octocrab,
        repo: &GhRepository,
        want_manifests: bool,
        want_sbom: bool,
    ) -> Result<Children, ScopeError> {
        let owner = repo.owner.as_ref().map(|o| o.login.clone()).unwrap_or_default();
        let name = &repo.name;
        let full = format!("{owner}/{name}");
        let parent = repo_urn(repo);
        let mut manifests = Vec::new();
        if want_manifests {
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
                    let (owner, name) = (owner.as_str(), name.as_str());
                    let fetches: Vec<_> = found
                        .into_iter()
                        .map(|(path, eco, sha)| fetch_blob(crab, owner, name, path, eco, sha))
                        .collect();
                    let blobs = futures::stream::iter(fetches).buffered(4).collect::<Vec<_>>().await;
                    for (path, eco, sha, blob) in blobs {
                        let blob = blob.map_err(|e| scope_error(e, &format!("manifest {path} of {full}")))?;
                        let (dependencies, parse_error) =
                            match decode_blob(&blob).and_then(|text| manifests::parse(eco, &text)) {
                                Ok(deps) => (deps, String::new()),
                                Err(error) => (Vec::new(), error),
                            };
                        manifests.push(Entity {
                            urn: urn(ID, EntityKind::Manifest, &format!("{}:{path}", repo.id)),
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
        }
        let mut sbom = None;
        if want_sbom {
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
        }
        Ok(Children { manifests, sbom })
    }

    async fn maybe_fetch_children(
        &self,
        crab: &Octocrab,
        repo: &GhRepository,
        fetch: bool,
        want_manifests: bool,
        want_sbom: bool,
    ) -> Result<Option<Children>, ScopeError> {
        if fetch {
            self.fetch_children(crab, repo, want_manifests, want_sbom)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }

    /// Pushes a batch of repositories (one listing page) and their children.
    async fn push_repos(
        &self,
        request: &GithubRequest,
        crab: &Octocrab,
        repos: Vec<GhRepository>,
        operation: &'static str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let repos: Vec<GhRepository> = repos
            .into_iter()
            .filter(|r| !(request.exclude_archived && r.archived.unwrap_or(false)))
            .filter(|r| !(request.exclude_forks && r.fork.unwrap_or(false)))
            .collect();
        let want_manifests = ctx.wants(EntityKind::Manifest);
        let want_sbom = ctx.wants(EntityKind::Sbom);
        // Repositories pushed since the baseline get their children refetched;
        // the others keep them.
        let refetch: Vec<bool> = repos
            .iter()
            .map(|repo| ctx.prior_version(&repo_urn(repo)) != Some(push_version(repo).as_str()))
            .collect();
        let concurrency = self.settings.repo_concurrency.max(1);
        let jobs: Vec<_> = repos
            .iter()
            .zip(refetch)
            .map(|(repo, refetch)| {
                self.maybe_fetch_children(
                    crab,
                    repo,
                    refetch && (want_manifests || want_sbom),
                    want_manifests,
                    want_sbom,
                )
            })
            .collect();
        let mut children = futures::stream::iter(jobs).buffered(concurrency);
        for repo in &repos {
            let fetched = children.next().await.unwrap_or(Ok(None))?;
            if ctx.is_cancelled() {
                return Err(ScopeError::Cancelled);
            }
            ctx.upsert(repo_entity(repo), UpsertMeta::new(operation, push_version(repo)))
                .await?;
            match fetched {
                Some(children) => {
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
        }
        Ok(())
    }

    async fn sync_org(&self, request: &GithubRequest, org: &str, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let crab = self
            .client
            .for_owner(org, None)
            .await
            .map_err(|e| scope_error(e, &format!("installation of {org}")))?;
        let mut page = match ctx.resume_cursor() {
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
                crab.get_page::<GhRepository>(&Some(uri))
                    .await
                    .map_err(|e| scope_error(e, &format!("repositories of {org}")))?
            }
            None => Some(
                crab.orgs(org)
                    .list_repos()
                    .per_page(self.settings.page_size)
                    .send()
                    .await
                    .map_err(|e| scope_error(e, &format!("repositories of {org}")))?,
            ),
        };
        while let Some(current) = page {
            let next = current.next.clone();
            self.push_repos(request, &crab, current.items, "repos/list-for-org", ctx)
                .await?;
            let Some(next_uri) = next else {
                break;
            };
            // Relative to the configured base: the cursor pins no origin, and
            // octocrab authenticates the request as one to its own upstream.
            let next_uri = self.upstream.relativize(&next_uri).map_err(|e| ScopeError::Failed {
                reason: "UPSTREAM_MALFORMED",
                message: format!("repositories of {org}: next page link refused: {e}"),
            })?;
            ctx.checkpoint(next_uri.to_string()).await?;
            page = crab
                .get_page::<GhRepository>(&Some(next_uri))
                .await
                .map_err(|e| scope_error(e, &format!("repositories of {org}")))?;
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
            .repos(owner, name)
            .get()
            .await
            .map_err(|e| scope_error(e, &format!("repository {owner}/{name}")))?;
        self.push_repos(request, &crab, vec![repo], "repos/get", ctx).await
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
