//! The GitLab connector: projects of groups (subgroups included) or explicit
//! projects, as repository entities, and the most recent pipelines of each
//! project, over the GitLab REST API v4 through the shared HTTP layer.
//!
//! Incremental: group and pipeline listings are conditional requests (GitLab
//! sends weak ETags; 304s reuse the cached page); a listed pipeline whose
//! `updated_at` equals the baseline's, of a project whose `last_activity_at`
//! equals the baseline's, is kept without being read again.

pub mod client;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use connectors_proto::v1::{Entity, EntityKind, Label, Pipeline, Repository, SyncMode, entity::Body};
use futures::StreamExt;

use self::client::{GitlabClient, GitlabError, PipelineBasic, PipelineDetail, Project, User};
use crate::http::UpstreamClient;
use crate::sync::{Availability, Connector, Descriptor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn};

/// The connector id.
pub const ID: &str = "gitlab";

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "GitLab",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Repository, EntityKind::Pipeline],
    native_incremental: true,
    auth_modes: &["token"],
    service: "connectors.gitlab.v1.GitlabConnectorService",
};

/// Pipeline statuses that will not change again: only these have a finish
/// time and duration worth a `GET /projects/:id/pipelines/:pipeline_id`.
const FINISHED: &[&str] = &["success", "failed", "canceled", "skipped"];

/// Most pipelines per project a request may ask for (GitLab's `per_page` cap).
pub const MAX_PIPELINES_PER_PROJECT: u32 = 100;

/// A validated GitLab sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitlabRequest {
    /// Group full paths.
    pub groups: Vec<String>,
    /// Explicit project full paths.
    pub projects: Vec<String>,
    /// Pipelines per project; `None` = the server default.
    pub pipelines_per_project: Option<u32>,
    /// Child pipelines too (a second listing per project).
    pub include_child_pipelines: bool,
}

/// Settings of the GitLab connector.
#[derive(Debug, Clone)]
pub struct GitlabSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Groups synced when a request names neither groups nor projects.
    pub default_groups: Vec<String>,
    /// Projects per listing page (1 to 100).
    pub page_size: u32,
    /// Pipelines per project when the request does not say (1 to 100).
    pub pipelines_per_project: u32,
    /// Projects whose pipelines are fetched at once.
    pub project_concurrency: usize,
}

/// The GitLab connector.
#[derive(Debug)]
pub struct GitlabConnector {
    settings: GitlabSettings,
    client: GitlabClient,
    live: bool,
}

impl GitlabConnector {
    /// A connector on the shared upstream client (whose base URL is the API
    /// root, `<GITLAB_BASE_URL>/api/v4`), sending `token` as `PRIVATE-TOKEN`.
    pub fn new(
        settings: GitlabSettings,
        upstream: Arc<UpstreamClient>,
        token: Option<&str>,
    ) -> Result<Self, client::ClientError> {
        let live = token.is_some();
        let client = GitlabClient::new(upstream, token)?;
        Ok(Self { settings, client, live })
    }

    fn pipelines_limit(&self, request: &GitlabRequest) -> u32 {
        request
            .pipelines_per_project
            .unwrap_or(self.settings.pipelines_per_project)
            .clamp(1, MAX_PIPELINES_PER_PROJECT)
    }
}

/// A path segment or full path as GitLab wants it in `:id` (URL-encoded).
/// Validated paths hold only `[A-Za-z0-9_.-/]`, so '/' is all there is to encode.
pub fn encode_path(path: &str) -> String {
    path.replace('/', "%2F")
}

/// Maps a GitLab error to a scope outcome.
fn scope_error(error: GitlabError, what: &str) -> ScopeError {
    match error {
        GitlabError::Upstream(upstream) => ScopeError::from_upstream(&upstream, what, "gitlab rate limit exhausted"),
        GitlabError::Status { status, message } => {
            let message = format!("{what}: gitlab answered {status}: {message}");
            ScopeError::from_status(status, message)
        }
        GitlabError::Malformed(detail) => ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{what}: gitlab returned a body that does not parse: {detail}"),
        },
    }
}

fn project_urn(project: &Project) -> String {
    urn(ID, EntityKind::Repository, &project.id.to_string())
}

/// The project id of a repository urn.
fn project_id_of(repository_urn: &str) -> Option<u64> {
    repository_urn
        .strip_prefix(&urn(ID, EntityKind::Repository, ""))?
        .parse()
        .ok()
}

/// Whether `project` belongs to `group` (its namespace is the group or one
/// of its subgroups; GitLab paths are case-insensitive).
fn in_group(project: &Project, group: &str) -> bool {
    let namespace = project.namespace.full_path.to_ascii_lowercase();
    let group = group.to_ascii_lowercase();
    namespace == group || namespace.strip_prefix(&group).is_some_and(|rest| rest.starts_with('/'))
}

fn activity_version(project: &Project) -> String {
    project.last_activity_at.clone().unwrap_or_default()
}

/// The label of a project pending deletion: `gitlab.marked_for_deletion_on`
/// with the day GitLab removes it. Delayed deletion keeps the project
/// listed (recent versions also rename it `<path>-deletion_scheduled-<id>`),
/// so it is still sent, marked; its deletion comes once GitLab removes it.
fn deletion_label(project: &Project) -> Option<Label> {
    let day = project
        .marked_for_deletion_on
        .as_deref()
        .or(project.marked_for_deletion_at.as_deref())
        .filter(|day| !day.is_empty())?;
    Some(Label {
        key: "gitlab.marked_for_deletion_on".to_owned(),
        value: day.to_owned(),
    })
}

/// A project as a repository entity.
pub fn project_entity(project: &Project) -> Entity {
    let mut topics = project
        .topics
        .clone()
        .or_else(|| project.tag_list.clone())
        .unwrap_or_default();
    topics.sort();
    topics.dedup();
    Entity {
        urn: project_urn(project),
        kind: EntityKind::Repository as i32,
        native_id: project.id.to_string(),
        display_name: project.path_with_namespace.clone(),
        labels: deletion_label(project).into_iter().collect(),
        parent_urn: String::new(),
        body: Some(Body::Repository(Repository {
            owner: project.namespace.full_path.clone(),
            name: project.path.clone(),
            full_name: project.path_with_namespace.clone(),
            description: project.description.clone().unwrap_or_default(),
            default_branch: project.default_branch.clone().unwrap_or_default(),
            visibility: project.visibility.clone().unwrap_or_default(),
            archived: project.archived,
            fork: project.forked_from_project.is_some(),
            language: String::new(),
            topics,
            web_url: project.web_url.clone(),
            clone_url: project.http_url_to_repo.clone().unwrap_or_default(),
            license_spdx_id: String::new(),
            create_time: super::rfc3339_timestamp(project.created_at.as_deref()),
            push_time: super::rfc3339_timestamp(project.last_activity_at.as_deref()),
        })),
    }
}

fn pipeline_native_id(project: &Project, pipeline: &PipelineBasic) -> String {
    format!("{}:{}", project.id, pipeline.id)
}

fn pipeline_urn(project: &Project, pipeline: &PipelineBasic) -> String {
    urn(ID, EntityKind::Pipeline, &pipeline_native_id(project, pipeline))
}

/// A pipeline as an entity; `detail` adds the finish time and duration.
pub fn pipeline_entity(project: &Project, pipeline: &PipelineBasic, detail: Option<&PipelineDetail>) -> Entity {
    let native_id = pipeline_native_id(project, pipeline);
    Entity {
        urn: pipeline_urn(project, pipeline),
        kind: EntityKind::Pipeline as i32,
        native_id,
        display_name: format!("{} pipeline {}", project.path_with_namespace, pipeline.id),
        labels: Vec::new(),
        parent_urn: project_urn(project),
        body: Some(Body::Pipeline(Pipeline {
            project: project.path_with_namespace.clone(),
            status: pipeline.status.clone(),
            r#ref: pipeline.git_ref.clone(),
            sha: pipeline.sha.clone(),
            source: pipeline.source.clone().unwrap_or_default(),
            web_url: pipeline.web_url.clone(),
            create_time: super::rfc3339_timestamp(pipeline.created_at.as_deref()),
            update_time: super::rfc3339_timestamp(pipeline.updated_at.as_deref()),
            finish_time: detail.and_then(|d| super::rfc3339_timestamp(d.finished_at.as_deref())),
            duration_seconds: detail
                .and_then(|d| d.duration)
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map(|d| d.round() as u64)
                .unwrap_or(0),
        })),
    }
}

/// A pipeline entity with its upstream version and operation.
struct PipelineEntity {
    entity: Entity,
    version: String,
    operation: &'static str,
}

/// A pipeline of a project's listing: read, or unchanged since the baseline (its urn).
enum Listed {
    Fetched(Box<PipelineEntity>),
    Unchanged(String),
}

impl GitlabConnector {
    /// The `limit` newest pipelines of a project's listing (`source`: that
    /// source alone), or none when they are not visible (403) or gone (404).
    async fn list_pipelines(
        &self,
        project: &Project,
        limit: u32,
        source: Option<&str>,
    ) -> Result<Vec<PipelineBasic>, ScopeError> {
        let full = &project.path_with_namespace;
        let mut route = format!(
            "/projects/{}/pipelines?per_page={limit}&order_by=id&sort=desc",
            project.id
        );
        if let Some(source) = source {
            route.push_str("&source=");
            route.push_str(source);
        }
        match self.client.get::<Vec<PipelineBasic>>(&route).await {
            Ok(page) => {
                let mut listed = page.body;
                listed.truncate(limit as usize);
                Ok(listed)
            }
            Err(error) if matches!(error.status(), Some(403 | 404)) => {
                tracing::warn!(connector = ID, project = %full, %error, route = %route, "pipelines not readable; none synced from this listing");
                Ok(Vec::new())
            }
            Err(error) => Err(scope_error(error, &format!("pipelines of {full}"))),
        }
    }

    /// The most recent pipelines of a project (newest first), with details
    /// for finished ones; with `children`, its most recent child pipelines
    /// too (a listing of their own), in the same id order. A pipeline whose
    /// `updated_at` is its version in `known` (urn -> version) is unchanged:
    /// it is not read again. A project whose pipelines are not visible (403)
    /// or gone (404) has none.
    async fn fetch_pipelines(
        &self,
        project: &Project,
        limit: u32,
        children: bool,
        known: &HashMap<String, String>,
    ) -> Result<Vec<Listed>, ScopeError> {
        let full = &project.path_with_namespace;
        let listed = if children {
            let (listed, children) = futures::future::try_join(
                self.list_pipelines(project, limit, None),
                self.list_pipelines(project, limit, Some("parent_pipeline")),
            )
            .await?;
            // Newest first across both; a pipeline in both (should a GitLab
            // list a child in the plain listing too) is sent once.
            let mut all: Vec<PipelineBasic> = listed.into_iter().chain(children).collect();
            all.sort_by_key(|pipeline| std::cmp::Reverse(pipeline.id));
            all.dedup_by_key(|pipeline| pipeline.id);
            all
        } else {
            self.list_pipelines(project, limit, None).await?
        };
        let client = &self.client;
        let fetches: Vec<_> = listed
            .into_iter()
            .map(|pipeline| async move {
                let urn = pipeline_urn(project, &pipeline);
                let version = pipeline.updated_at.as_deref().unwrap_or_default();
                if !version.is_empty() && known.get(&urn).map(String::as_str) == Some(version) {
                    return (pipeline, Some(urn), None);
                }
                if !FINISHED.contains(&pipeline.status.as_str()) {
                    return (pipeline, None, None);
                }
                let route = format!("/projects/{}/pipelines/{}", project.id, pipeline.id);
                let detail = client.get::<PipelineDetail>(&route).await;
                (pipeline, None, Some(detail))
            })
            .collect();
        let fetched = futures::stream::iter(fetches).buffered(4).collect::<Vec<_>>().await;
        let mut out = Vec::with_capacity(fetched.len());
        for (pipeline, unchanged, detail) in fetched {
            if let Some(urn) = unchanged {
                out.push(Listed::Unchanged(urn));
                continue;
            }
            let (detail, operation) = match detail {
                None => (None, "pipelines/list"),
                Some(Ok(page)) => (Some(page.body), "pipelines/get"),
                // Deleted between the listing and this request.
                Some(Err(error)) if error.status() == Some(404) => continue,
                Some(Err(error)) => {
                    return Err(scope_error(error, &format!("pipeline {} of {full}", pipeline.id)));
                }
            };
            out.push(Listed::Fetched(Box::new(PipelineEntity {
                entity: pipeline_entity(project, &pipeline, detail.as_ref()),
                version: pipeline.updated_at.clone().unwrap_or_default(),
                operation,
            })));
        }
        Ok(out)
    }

    async fn maybe_fetch_pipelines(
        &self,
        project: &Project,
        known: Option<&HashMap<String, String>>,
        limit: u32,
        children: bool,
    ) -> Result<Vec<Listed>, ScopeError> {
        match known {
            Some(known) => self.fetch_pipelines(project, limit, children, known).await,
            None => Ok(Vec::new()),
        }
    }

    /// Pushes a batch of projects (one listing page) and their pipelines.
    async fn push_projects(
        &self,
        request: &GitlabRequest,
        projects: Vec<Project>,
        operation: &'static str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let want_pipelines = ctx.wants(EntityKind::Pipeline);
        let incremental = ctx.mode() == SyncMode::Incremental;
        let limit = self.pipelines_limit(request);
        // Pipelines are listed for every project with CI (a conditional
        // request: unchanged listings are 304s). `last_activity_at` cannot
        // say that they are unchanged: GitLab moves it at most once an hour,
        // and not when a pipeline runs or finishes. For a project whose
        // `last_activity_at` is the baseline's, the listed pipelines whose
        // `updated_at` is the baseline's are kept without being read again
        // (`known`); a project with newer activity has them all read again.
        let plans: Vec<Option<HashMap<String, String>>> = projects
            .iter()
            .map(|project| {
                if !want_pipelines || project.jobs_enabled == Some(false) {
                    return None;
                }
                let urn = project_urn(project);
                let unchanged = incremental
                    && project.last_activity_at.is_some()
                    && ctx.prior_version(&urn) == Some(activity_version(project).as_str());
                let known = if unchanged {
                    ctx.prior_children(&urn).filter(|(_, v)| !v.is_empty()).collect()
                } else {
                    HashMap::new()
                };
                Some(known)
            })
            .collect();
        let jobs: Vec<_> = projects
            .iter()
            .zip(&plans)
            .map(|(project, known)| {
                self.maybe_fetch_pipelines(project, known.as_ref(), limit, request.include_child_pipelines)
            })
            .collect();
        let mut pipelines = futures::stream::iter(jobs).buffered(self.settings.project_concurrency.max(1));
        for project in &projects {
            // Pipelines whose answer does not parse are this project's
            // failure: it is sent without them (the baseline's kept, saved
            // without its activity version so the next sync reads them
            // again), the others go on, and the scope ends FAILED after them.
            let (listed, failed) = match pipelines.next().await.unwrap_or(Ok(Vec::new())) {
                Ok(listed) => (listed, None),
                Err(error) if error.is_malformed() => (Vec::new(), Some(error)),
                Err(error) => return Err(error),
            };
            if ctx.is_cancelled() {
                return Err(ScopeError::Cancelled);
            }
            let version = match failed {
                None => activity_version(project),
                Some(_) => String::new(),
            };
            ctx.upsert(project_entity(project), UpsertMeta::new(operation, version))
                .await?;
            if let Some(error) = failed {
                ctx.retain_children(&project_urn(project));
                ctx.fail_when_done(error)?;
            }
            for pipeline in listed {
                match pipeline {
                    Listed::Unchanged(urn) => {
                        ctx.retain(&urn);
                    }
                    Listed::Fetched(pipeline) => {
                        let pipeline = *pipeline;
                        ctx.upsert(pipeline.entity, UpsertMeta::new(pipeline.operation, pipeline.version))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn sync_group(
        &self,
        request: &GitlabRequest,
        group: &str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let listing = format!("/groups/{}/projects?", encode_path(group));
        let mut route = match ctx.resume_cursor() {
            // Cursors are listing pages of this group this server wrote;
            // anything else (a crafted token) is refused. Those written before
            // the listing said with_shared=false are made to say it.
            Some(cursor) if cursor.starts_with(&listing) && !cursor.contains("://") => {
                client::with_param(cursor, "with_shared", "false")
            }
            Some(_) => {
                return Err(ScopeError::Fatal(SyncError::invalid(
                    "options.checkpoint",
                    "the page cursor it holds is not valid",
                )));
            }
            // with_shared=false: GitLab's default (true) would add projects
            // of other namespaces merely shared with the group.
            None => format!(
                "{listing}include_subgroups=true&with_shared=false&per_page={}&order_by=id&sort=asc",
                self.settings.page_size
            ),
        };
        let mut listed = HashSet::new();
        loop {
            let page = self
                .client
                .get::<Vec<Project>>(&route)
                .await
                .map_err(|e| scope_error(e, &format!("projects of group {group}")))?;
            listed.extend(page.body.iter().map(|project| project.id));
            self.push_projects(request, page.body, "groups/projects", ctx).await?;
            let Some(next) = page.next else {
                break;
            };
            if !next.starts_with(&listing) {
                return Err(ScopeError::Failed {
                    reason: "UPSTREAM_MALFORMED",
                    message: format!("projects of group {group}: next page outside the listing refused"),
                });
            }
            ctx.checkpoint(next.clone()).await?;
            route = next;
        }
        self.confirm_unlisted(request, group, &listed, ctx).await
    }

    /// Offset pagination drifts: a project deleted (or moved out) on a page
    /// already read shifts every later row up by one, so the first row of the
    /// next page is never listed. Before the scope's deletions are final, each
    /// project of the baseline that no page of this sync listed is looked up
    /// (`GET /projects/:id`): still in the group, it is pushed (unchanged ones
    /// are not sent); gone (404), no longer visible (403) or moved to another
    /// namespace, it is left to the deletions. Any other failure fails the
    /// scope, so no deletion is sent on a guess.
    async fn confirm_unlisted(
        &self,
        request: &GitlabRequest,
        group: &str,
        listed: &HashSet<u64>,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let mut unlisted: BTreeSet<u64> = ctx
            .prior_unseen(EntityKind::Repository)
            .iter()
            .filter_map(|(urn, _)| project_id_of(urn))
            .collect();
        // Without repositories in the state, a project's pipelines stand for it.
        if !ctx.wants(EntityKind::Repository) {
            unlisted.extend(
                ctx.prior_unseen(EntityKind::Pipeline)
                    .iter()
                    .filter_map(|(_, parent)| project_id_of(parent)),
            );
        }
        unlisted.retain(|id| !listed.contains(id));
        if unlisted.is_empty() {
            return Ok(());
        }
        let client = &self.client;
        let lookups: Vec<_> = unlisted
            .into_iter()
            .map(|id| async move { (id, client.get::<Project>(&format!("/projects/{id}")).await) })
            .collect();
        let mut lookups = futures::stream::iter(lookups).buffered(self.settings.project_concurrency.max(1));
        let mut kept = Vec::new();
        while let Some((id, found)) = lookups.next().await {
            match found {
                Ok(page) if in_group(&page.body, group) => kept.push(page.body),
                Ok(_) => {}
                Err(error) if matches!(error.status(), Some(403 | 404)) => {}
                Err(error) => return Err(scope_error(error, &format!("project {id} of group {group}"))),
            }
        }
        if !kept.is_empty() {
            tracing::info!(
                connector = ID,
                group,
                kept = kept.len(),
                "projects no listing page showed are still in the group; kept"
            );
        }
        self.push_projects(request, kept, "projects/get", ctx).await
    }

    async fn sync_project(
        &self,
        request: &GitlabRequest,
        path: &str,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let project = self
            .client
            .get::<Project>(&format!("/projects/{}", encode_path(path)))
            .await
            .map_err(|e| scope_error(e, &format!("project {path}")))?
            .body;
        self.push_projects(request, vec![project], "projects/get", ctx).await
    }
}

#[async_trait]
impl Connector for GitlabConnector {
    type Request = GitlabRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        if !self.live {
            return Ok(());
        }
        self.client
            .get::<User>("/user")
            .await
            .map(|_| ())
            .map_err(|e| SyncError::UpstreamUnauthenticated(format!("GET /api/v4/user failed: {e}")))
    }

    fn scopes(&self, request: &GitlabRequest) -> Result<Vec<Scope>, SyncError> {
        let mut scopes = Vec::new();
        if request.groups.is_empty() && request.projects.is_empty() {
            if self.settings.default_groups.is_empty() {
                return Err(SyncError::invalid(
                    "groups",
                    "no groups or projects given and GITLAB_GROUPS is not set on the server",
                ));
            }
            scopes.extend(
                self.settings
                    .default_groups
                    .iter()
                    .map(|group| Scope::new(format!("group:{group}"))),
            );
        }
        scopes.extend(request.groups.iter().map(|group| Scope::new(format!("group:{group}"))));
        scopes.extend(
            request
                .projects
                .iter()
                .map(|project| Scope::new(format!("project:{project}"))),
        );
        Ok(scopes)
    }

    /// A project without activity since the baseline keeps its pipelines
    /// from it.
    fn reads_baseline(&self) -> bool {
        true
    }

    fn request_fingerprint(&self, request: &GitlabRequest) -> String {
        let limit = self.pipelines_limit(request);
        // Without child pipelines, the binding of earlier servers' checkpoints.
        if request.include_child_pipelines {
            format!("pipelines={limit};children")
        } else {
            format!("pipelines={limit}")
        }
    }

    async fn sync_scope(
        &self,
        request: &GitlabRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        match scope.key.split_once(':') {
            Some(("group", group)) => self.sync_group(request, group, ctx).await,
            Some(("project", path)) => self.sync_project(request, path, ctx).await,
            _ => Err(ScopeError::Fatal(SyncError::Internal(format!(
                "unknown scope {}",
                scope.key
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        serde_json::from_value(project_json()).unwrap()
    }

    fn project_json() -> serde_json::Value {
        serde_json::json!({
            "id": 52004,
            "name": "gateway",
            "path": "gateway",
            "path_with_namespace": "acme-corp/platform/gateway",
            "description": null,
            "default_branch": "main",
            "visibility": "internal",
            "archived": false,
            "topics": ["go", "edge", "go"],
            "tag_list": ["ignored"],
            "web_url": "https://gitlab.example.com/acme-corp/platform/gateway",
            "http_url_to_repo": "https://gitlab.example.com/acme-corp/platform/gateway.git",
            "created_at": "2025-08-06T11:02:45.120Z",
            "last_activity_at": "2026-10-03T12:00:00.000Z",
            "namespace": {"id": 1002, "full_path": "acme-corp/platform", "kind": "group"},
            "forked_from_project": null,
            "jobs_enabled": true
        })
    }

    #[test]
    fn a_project_maps_to_a_repository() {
        let entity = project_entity(&project());
        assert_eq!(entity.urn, "urn:connectors:gitlab:repository:52004");
        assert_eq!(entity.display_name, "acme-corp/platform/gateway");
        let Some(Body::Repository(repo)) = entity.body else {
            panic!("not a repository")
        };
        assert_eq!(repo.owner, "acme-corp/platform");
        assert_eq!(repo.name, "gateway");
        assert_eq!(repo.full_name, "acme-corp/platform/gateway");
        assert_eq!(repo.topics, vec!["edge", "go"]);
        assert!(!repo.fork, "forked_from_project: null is not a fork");
        assert_eq!(repo.visibility, "internal");
        assert_eq!(
            repo.clone_url,
            "https://gitlab.example.com/acme-corp/platform/gateway.git"
        );
        let created = repo.create_time.unwrap();
        assert_eq!((created.seconds, created.nanos), (1_754_478_165, 120_000_000));
        assert_eq!(entity.labels, Vec::new());
    }

    /// A project pending deletion (GitLab sends the day under both names
    /// since 12.10, under `marked_for_deletion_at` only before) is labelled
    /// with the day it goes.
    #[test]
    fn a_project_pending_deletion_is_labelled_with_the_day_it_goes() {
        let label = |on: Option<&str>, at: Option<&str>| {
            let mut value = serde_json::to_value(project_json()).unwrap();
            value["marked_for_deletion_on"] = serde_json::json!(on);
            value["marked_for_deletion_at"] = serde_json::json!(at);
            let project: Project = serde_json::from_value(value).unwrap();
            project_entity(&project)
                .labels
                .into_iter()
                .map(|l| (l.key, l.value))
                .collect::<Vec<_>>()
        };
        let marked = vec![("gitlab.marked_for_deletion_on".to_owned(), "2026-12-08".to_owned())];
        assert_eq!(label(Some("2026-12-08"), Some("2026-12-08")), marked);
        assert_eq!(label(None, Some("2026-12-08")), marked);
        assert_eq!(label(None, None), Vec::new());
    }

    #[test]
    fn topics_fall_back_to_tag_list_and_forks_are_detected() {
        let mut value = serde_json::to_value(serde_json::json!({
            "id": 1, "path": "p", "path_with_namespace": "g/p", "web_url": "w",
            "tag_list": ["b", "a"], "namespace": {"full_path": "g"},
            "forked_from_project": {"id": 9}
        }))
        .unwrap();
        let p: Project = serde_json::from_value(value.take()).unwrap();
        let Some(Body::Repository(repo)) = project_entity(&p).body else {
            panic!()
        };
        assert_eq!(repo.topics, vec!["a", "b"]);
        assert!(repo.fork);
    }

    #[test]
    fn a_pipeline_maps_with_its_detail() {
        let basic: PipelineBasic = serde_json::from_value(serde_json::json!({
            "id": 310012, "iid": 3, "project_id": 52004, "sha": "abc", "ref": "main",
            "status": "success", "source": "push",
            "created_at": "2026-10-01T10:00:00.000Z", "updated_at": "2026-10-01T10:05:00.500Z",
            "web_url": "https://gitlab.example.com/acme-corp/platform/gateway/-/pipelines/310012"
        }))
        .unwrap();
        let detail: PipelineDetail = serde_json::from_value(serde_json::json!({
            "id": 310012, "finished_at": "2026-10-01T10:05:00.500Z", "duration": 290
        }))
        .unwrap();
        let entity = pipeline_entity(&project(), &basic, Some(&detail));
        assert_eq!(entity.urn, "urn:connectors:gitlab:pipeline:52004:310012");
        assert_eq!(entity.parent_urn, "urn:connectors:gitlab:repository:52004");
        let Some(Body::Pipeline(p)) = entity.body else {
            panic!("not a pipeline")
        };
        assert_eq!(p.project, "acme-corp/platform/gateway");
        assert_eq!(
            (p.status.as_str(), p.r#ref.as_str(), p.source.as_str()),
            ("success", "main", "push")
        );
        assert_eq!(p.duration_seconds, 290);
        assert_eq!(p.finish_time.unwrap().nanos, 500_000_000);
        let without = pipeline_entity(&project(), &basic, None);
        let Some(Body::Pipeline(p)) = without.body else {
            panic!()
        };
        assert_eq!((p.duration_seconds, p.finish_time), (0, None));
    }

    #[test]
    fn a_project_is_in_its_namespace_s_group_and_its_ancestors_only() {
        let gateway = project();
        assert!(in_group(&gateway, "acme-corp/platform"));
        assert!(in_group(&gateway, "Acme-Corp"));
        assert!(!in_group(&gateway, "acme"));
        assert!(!in_group(&gateway, "acme-corp/platform/gateway"));
        assert!(!in_group(&gateway, "globex"));
    }

    #[test]
    fn repository_urns_give_the_project_id() {
        assert_eq!(project_id_of("urn:connectors:gitlab:repository:52004"), Some(52004));
        assert_eq!(project_id_of(&project_urn(&project())), Some(52004));
        assert_eq!(project_id_of("urn:connectors:gitlab:pipeline:52004:310012"), None);
        assert_eq!(project_id_of("urn:connectors:github:repository:52004"), None);
    }

    #[test]
    fn paths_are_encoded_for_the_id_parameter() {
        assert_eq!(
            encode_path("acme-corp/platform/gateway"),
            "acme-corp%2Fplatform%2Fgateway"
        );
        assert_eq!(encode_path("globex"), "globex");
    }
}
