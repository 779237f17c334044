//! The GCP connector: Artifact Registry repositories and their docker images,
//! Cloud Run services and GKE clusters of each project, as cloud assets, over
//! the Google REST APIs through the shared HTTP layer (one upstream client per
//! API host) with tokens from google-cloud-auth.
//!
//! Scopes are `project:<id>`. Within a scope the listings run in a fixed
//! order (repositories per location with each docker repository's images,
//! services per location, clusters); a checkpoint is taken at every page
//! boundary of a repository or service listing, its cursor naming the API and
//! the next page's route. Incremental syncs are the engine's: Google's list
//! calls have no conditional requests, so every listing is read again and
//! unchanged assets are recognised by their content hash.

pub mod client;

use async_trait::async_trait;
use connectors_proto::v1::{CloudAsset, ContainerImage, Entity, EntityKind, Label, entity::Body};

use self::client::{
    Cluster, DockerImage, GcpApi, GcpError, ListClusters, ListDockerImages, ListRepositories, ListServices, Repository,
    Service, TokenSource, page_route,
};
use crate::sync::{
    Availability, Connector, Descriptor, ResumedCursor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn,
};

/// The connector id.
pub const ID: &str = "gcp";

/// Artifact Registry's host (cursor and message name).
pub const ARTIFACT_REGISTRY: &str = "artifactregistry.googleapis.com";
/// Cloud Run's host.
pub const RUN: &str = "run.googleapis.com";
/// GKE's host.
pub const CONTAINER: &str = "container.googleapis.com";

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "Google Cloud",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Asset],
    native_incremental: false,
    auth_modes: &["application_default", "service_account", "external_account"],
    service: "connectors.gcp.v1.GcpConnectorService",
};

/// Most images pages read per docker repository (a guard against a token loop).
const MAX_IMAGE_PAGES: usize = 10_000;

/// A validated GCP sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcpRequest {
    /// Project ids; empty = the server's GCP_PROJECT_IDS.
    pub project_ids: Vec<String>,
}

/// Settings of the GCP connector.
#[derive(Debug, Clone)]
pub struct GcpSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Projects synced when a request names none.
    pub default_projects: Vec<String>,
    /// Regions listed for Artifact Registry and Cloud Run.
    pub locations: Vec<String>,
    /// `pageSize` of every paginated listing (1 to 1000).
    pub page_size: u32,
}

/// The three APIs.
#[derive(Debug, Clone)]
pub struct GcpApis {
    /// artifactregistry.googleapis.com.
    pub artifact_registry: GcpApi,
    /// run.googleapis.com.
    pub run: GcpApi,
    /// container.googleapis.com.
    pub container: GcpApi,
}

/// The GCP connector.
#[derive(Debug)]
pub struct GcpConnector {
    settings: GcpSettings,
    apis: GcpApis,
    tokens: TokenSource,
}

impl GcpConnector {
    /// A connector over the three API clients.
    pub fn new(settings: GcpSettings, apis: GcpApis, tokens: TokenSource) -> Self {
        Self { settings, apis, tokens }
    }
}

/// The listings of a project scope over `locations`: Artifact Registry in
/// each, Cloud Run in each region (a multi-region such as `us` or `europe`
/// holds repositories, but Cloud Run takes regions only: `us-central1`), then
/// GKE everywhere.
fn listings_of(locations: &[String]) -> Vec<Listing> {
    let regions = locations.iter().filter(|l| l.contains('-'));
    locations
        .iter()
        .map(|l| Listing::Repositories(l.clone()))
        .chain(regions.map(|l| Listing::Services(l.clone())))
        .chain([Listing::Clusters])
        .collect()
}

/// One listing of a project scope.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listing {
    Repositories(String),
    Services(String),
    Clusters,
}

impl Listing {
    fn api(&self) -> &'static str {
        match self {
            Listing::Repositories(_) => ARTIFACT_REGISTRY,
            Listing::Services(_) => RUN,
            Listing::Clusters => CONTAINER,
        }
    }

    fn path(&self, project: &str) -> String {
        match self {
            Listing::Repositories(l) => format!("/v1/projects/{project}/locations/{l}/repositories"),
            Listing::Services(l) => format!("/v2/projects/{project}/locations/{l}/services"),
            // GKE's list is not paginated and takes "-" for every location.
            Listing::Clusters => format!("/v1/projects/{project}/locations/-/clusters"),
        }
    }
}

/// Maps an API error to a scope outcome.
fn scope_error(error: GcpError, what: &str) -> ScopeError {
    match error {
        GcpError::Upstream(upstream) => ScopeError::from_upstream(&upstream, what, "google api quota exhausted"),
        GcpError::Token(message) => ScopeError::Fatal(SyncError::UpstreamUnauthenticated(format!("{what}: {message}"))),
        error @ GcpError::Status { status, .. } => {
            let message = format!("{what}: {error}");
            ScopeError::from_status(status, message)
        }
        error @ GcpError::Malformed { .. } => ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{what}: {error}"),
        },
    }
}

/// What follows a page of a listing.
enum After {
    /// The page with this token.
    Page(String),
    /// Nothing: the listing is complete.
    End,
    /// Nothing: the listing's API is not enabled in the project.
    ApiDisabled,
    /// The page token of the checkpoint was refused: the listing's first page.
    Restart,
}

impl After {
    /// The page a `nextPageToken` names, if any (absent or empty on the last).
    fn next(token: Option<String>) -> Self {
        token.filter(|t| !t.is_empty()).map_or(After::End, After::Page)
    }
}

/// Where a listing request goes: the scope, its project, the page's route.
struct Page<'a> {
    scope: &'a str,
    project: &'a str,
    route: &'a str,
}

/// The urn of a resource name.
pub fn asset_urn(name: &str) -> String {
    urn(ID, EntityKind::Asset, name)
}

/// `projects/{p}/locations/{l}/...` → (p, l).
fn project_location(name: &str) -> (String, String) {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["projects", p, "locations", l, ..] => ((*p).to_owned(), (*l).to_owned()),
        _ => (String::new(), String::new()),
    }
}

fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn labels(map: &std::collections::BTreeMap<String, String>) -> Vec<Label> {
    // A BTreeMap iterates by key: already the documented order.
    map.iter()
        .map(|(key, value)| Label {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Non-empty attributes, sorted by key.
fn attributes(pairs: Vec<(&str, String)>) -> Vec<Label> {
    let mut out: Vec<Label> = pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| Label {
            key: k.to_owned(),
            value: v,
        })
        .collect();
    out.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    out
}

/// The digest of an image reference pinned by digest (`...@sha256:...`).
fn digest_of(image: &str) -> String {
    image
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .filter(|d| d.starts_with("sha256:"))
        .unwrap_or_default()
}

fn asset(name: &str, display_name: &str, labels: Vec<Label>, parent_urn: String, body: CloudAsset) -> Entity {
    Entity {
        urn: asset_urn(name),
        kind: EntityKind::Asset as i32,
        native_id: name.to_owned(),
        display_name: display_name.to_owned(),
        labels,
        parent_urn,
        body: Some(Body::Asset(body)),
    }
}

/// An Artifact Registry repository as an asset.
pub fn repository_entity(repo: &Repository) -> Entity {
    let (project, location) = project_location(&repo.name);
    asset(
        &repo.name,
        last_segment(&repo.name),
        labels(&repo.labels),
        String::new(),
        CloudAsset {
            asset_type: "gcp.artifactregistry.repository".into(),
            native_type: "artifactregistry.googleapis.com/Repository".into(),
            cloud_platform: "gcp".into(),
            account: project,
            region: location,
            status: String::new(),
            external_id: repo.name.clone(),
            images: Vec::new(),
            attributes: attributes(vec![
                ("description", repo.description.clone()),
                ("format", repo.format.clone()),
                ("mode", repo.mode.clone()),
                ("registry_uri", repo.registry_uri.clone().unwrap_or_default()),
                ("size_bytes", repo.size_bytes.clone().unwrap_or_default()),
            ]),
            create_time: super::rfc3339_timestamp(repo.create_time.as_deref()),
            update_time: super::rfc3339_timestamp(repo.update_time.as_deref()),
        },
    )
}

/// A docker image of a repository as an asset (child of the repository).
pub fn docker_image_entity(repo: &Repository, image: &DockerImage) -> Entity {
    let (project, location) = project_location(&image.name);
    let mut tags = image.tags.clone();
    tags.sort();
    asset(
        &image.name,
        last_segment(&image.name),
        Vec::new(),
        asset_urn(&repo.name),
        CloudAsset {
            asset_type: "gcp.artifactregistry.dockerimage".into(),
            native_type: "artifactregistry.googleapis.com/DockerImage".into(),
            cloud_platform: "gcp".into(),
            account: project,
            region: location,
            status: String::new(),
            external_id: image.name.clone(),
            images: vec![ContainerImage {
                container: String::new(),
                image: image.uri.clone(),
                digest: digest_of(&image.uri),
            }],
            attributes: attributes(vec![
                ("media_type", image.media_type.clone().unwrap_or_default()),
                ("size_bytes", image.image_size_bytes.clone().unwrap_or_default()),
                ("tags", tags.join(",")),
            ]),
            create_time: super::rfc3339_timestamp(image.upload_time.as_deref()),
            update_time: super::rfc3339_timestamp(image.update_time.as_deref()),
        },
    )
}

/// A Cloud Run service as an asset.
pub fn service_entity(service: &Service) -> Entity {
    let (project, location) = project_location(&service.name);
    asset(
        &service.name,
        last_segment(&service.name),
        labels(&service.labels),
        String::new(),
        CloudAsset {
            asset_type: "gcp.run.service".into(),
            native_type: "run.googleapis.com/Service".into(),
            cloud_platform: "gcp".into(),
            account: project,
            region: location,
            status: service
                .terminal_condition
                .as_ref()
                .map(|c| c.state.clone())
                .unwrap_or_default(),
            external_id: service.name.clone(),
            images: service
                .template
                .containers
                .iter()
                .map(|c| ContainerImage {
                    container: c.name.clone(),
                    image: c.image.clone(),
                    digest: digest_of(&c.image),
                })
                .collect(),
            attributes: attributes(vec![
                ("generation", service.generation.clone().unwrap_or_default()),
                ("ingress", service.ingress.clone()),
                (
                    "latest_ready_revision",
                    last_segment(&service.latest_ready_revision).to_owned(),
                ),
                ("uri", service.uri.clone()),
            ]),
            create_time: super::rfc3339_timestamp(service.create_time.as_deref()),
            update_time: super::rfc3339_timestamp(service.update_time.as_deref()),
        },
    )
}

/// The resource name of a cluster (`projects/{p}/locations/{l}/clusters/{c}`).
pub fn cluster_name(project: &str, cluster: &Cluster) -> String {
    format!(
        "projects/{project}/locations/{}/clusters/{}",
        cluster.location, cluster.name
    )
}

/// A GKE cluster as an asset; node pools as `name:version:machine type`.
pub fn cluster_entity(project: &str, cluster: &Cluster) -> Entity {
    let name = cluster_name(project, cluster);
    let mut pools: Vec<String> = cluster
        .node_pools
        .iter()
        .map(|p| format!("{}:{}:{}", p.name, p.version, p.config.machine_type))
        .collect();
    pools.sort();
    asset(
        &name,
        &cluster.name,
        labels(&cluster.resource_labels),
        String::new(),
        CloudAsset {
            asset_type: "gcp.container.cluster".into(),
            native_type: "container.googleapis.com/Cluster".into(),
            cloud_platform: "gcp".into(),
            account: project.to_owned(),
            region: cluster.location.clone(),
            status: cluster.status.clone(),
            external_id: if cluster.self_link.is_empty() {
                name.clone()
            } else {
                cluster.self_link.clone()
            },
            images: Vec::new(),
            attributes: attributes(vec![
                ("current_master_version", cluster.current_master_version.clone()),
                (
                    "current_node_count",
                    cluster.current_node_count.map(|n| n.to_string()).unwrap_or_default(),
                ),
                ("endpoint", cluster.endpoint.clone()),
                ("node_pools", pools.join(",")),
                (
                    "release_channel",
                    cluster
                        .release_channel
                        .as_ref()
                        .map(|c| c.channel.clone())
                        .unwrap_or_default(),
                ),
            ]),
            create_time: super::rfc3339_timestamp(cluster.create_time.as_deref()),
            update_time: None,
        },
    )
}

impl GcpConnector {
    fn listings(&self) -> Vec<Listing> {
        listings_of(&self.settings.locations)
    }

    fn api(&self, listing: &Listing) -> &GcpApi {
        match listing {
            Listing::Repositories(_) => &self.apis.artifact_registry,
            Listing::Services(_) => &self.apis.run,
            Listing::Clusters => &self.apis.container,
        }
    }

    /// Every image of a docker repository, all pages.
    async fn images(&self, repo: &Repository) -> Result<Vec<DockerImage>, ScopeError> {
        let listing = format!("/v1/{}/dockerImages", repo.name);
        let what = format!("docker images of {}", repo.name);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_IMAGE_PAGES {
            let route = page_route(&listing, self.settings.page_size, token.as_deref());
            let page: ListDockerImages = self
                .apis
                .artifact_registry
                .get(&route)
                .await
                .map_err(|e| scope_error(e, &what))?;
            out.extend(page.docker_images);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(out),
            }
        }
        Err(ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{what}: more than {MAX_IMAGE_PAGES} pages"),
        })
    }

    /// A page of a listing, or what follows without one: nothing when its
    /// API is not enabled in the project (403 `SERVICE_DISABLED`: a project
    /// that uses GKE alone never enabled Cloud Run, and has nothing of that
    /// API then); the first page when the page token a resumed scope
    /// started from was refused (400 `INVALID_ARGUMENT`).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        page: &Page<'_>,
        listing: &Listing,
        resumed: &mut ResumedCursor,
        what: &str,
    ) -> Result<Result<T, After>, ScopeError> {
        let answer = self.api(listing).get(page.route).await;
        let refused = answer.as_ref().is_err_and(GcpError::is_invalid_argument);
        if resumed.restart(ID, page.scope, refused) {
            return Ok(Err(After::Restart));
        }
        match answer {
            Ok(page) => Ok(Ok(page)),
            Err(error) if error.is_service_disabled() => {
                tracing::warn!(
                    connector = ID,
                    project = page.project,
                    api = listing.api(),
                    "the api is not enabled in the project: nothing of it to list"
                );
                Ok(Err(After::ApiDisabled))
            }
            Err(error) => Err(scope_error(error, what)),
        }
    }

    /// One page of a listing: upserts its entities; says what comes next.
    async fn page(
        &self,
        at: &Page<'_>,
        listing: &Listing,
        resumed: &mut ResumedCursor,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<After, ScopeError> {
        let project = at.project;
        let what = format!("{} {}", self.api(listing).api, listing.path(project));
        match listing {
            Listing::Repositories(_) => {
                let page = match self.list::<ListRepositories>(at, listing, resumed, &what).await? {
                    Ok(page) => page,
                    Err(after) => return Ok(after),
                };
                for repo in &page.repositories {
                    let images = if repo.format == "DOCKER" {
                        self.images(repo).await?
                    } else {
                        Vec::new()
                    };
                    if ctx.is_cancelled() {
                        return Err(ScopeError::Cancelled);
                    }
                    let version = repo.update_time.clone().unwrap_or_default();
                    ctx.upsert(repository_entity(repo), UpsertMeta::new("repositories/list", version))
                        .await?;
                    for image in &images {
                        let version = image.update_time.clone().unwrap_or_default();
                        ctx.upsert(
                            docker_image_entity(repo, image),
                            UpsertMeta::new("dockerImages/list", version),
                        )
                        .await?;
                    }
                }
                Ok(After::next(page.next_page_token))
            }
            Listing::Services(_) => {
                let page = match self.list::<ListServices>(at, listing, resumed, &what).await? {
                    Ok(page) => page,
                    Err(after) => return Ok(after),
                };
                for service in &page.services {
                    let version = service.etag.clone().unwrap_or_default();
                    ctx.upsert(service_entity(service), UpsertMeta::new("services/list", version))
                        .await?;
                }
                Ok(After::next(page.next_page_token))
            }
            Listing::Clusters => {
                let page = match self.list::<ListClusters>(at, listing, resumed, &what).await? {
                    Ok(page) => page,
                    Err(after) => return Ok(after),
                };
                if !page.missing_zones.is_empty() {
                    // An incomplete listing must not turn into deletions.
                    return Err(ScopeError::Failed {
                        reason: "UPSTREAM_INCOMPLETE",
                        message: format!("{what}: zones not reachable: {}", page.missing_zones.join(",")),
                    });
                }
                for cluster in &page.clusters {
                    let version = cluster.etag.clone().unwrap_or_default();
                    ctx.upsert(
                        cluster_entity(project, cluster),
                        UpsertMeta::new("clusters/list", version),
                    )
                    .await?;
                }
                Ok(After::End)
            }
        }
    }

    async fn sync_project(&self, scope: &str, project: &str, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let listings = self.listings();
        // A resume cursor is "<api>|<route>" of a listing of this project this
        // server wrote; anything else (a crafted token) is refused.
        let (start, mut first_route) = match ctx.resume_cursor() {
            None => (0, None),
            Some(cursor) => {
                let found = cursor.split_once('|').and_then(|(api, route)| {
                    let (path, _) = route.split_once('?')?;
                    let index = listings
                        .iter()
                        .position(|l| l.api() == api && l.path(project) == path)?;
                    (!route.contains("://") && !route.contains('#')).then(|| (index, route.to_owned()))
                });
                match found {
                    Some((index, route)) => (index, Some(route)),
                    None => {
                        return Err(ScopeError::Fatal(SyncError::invalid(
                            "options.checkpoint",
                            "the page cursor it holds is not valid",
                        )));
                    }
                }
            }
        };
        let mut resumed = ResumedCursor::new(first_route.as_deref().is_some_and(|route| {
            let query = route.split_once('?').map_or("", |(_, query)| query);
            url::form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "pageToken")
        }));
        // APIs found not enabled in the project: their other listings (the
        // other locations) are not asked for.
        let mut disabled = Vec::new();
        for listing in &listings[start..] {
            if disabled.contains(&listing.api()) {
                continue;
            }
            let path = listing.path(project);
            let first_page = match listing {
                Listing::Clusters => path.clone(),
                _ => page_route(&path, self.settings.page_size, None),
            };
            let mut route = first_route.take().unwrap_or_else(|| first_page.clone());
            loop {
                if ctx.is_cancelled() {
                    return Err(ScopeError::Cancelled);
                }
                let at = Page {
                    scope,
                    project,
                    route: &route,
                };
                let after = match self.page(&at, listing, &mut resumed, ctx).await {
                    Ok(after) => after,
                    // A page that does not parse is this listing's failure:
                    // the project's other listings go on, and the scope
                    // ends FAILED after them.
                    Err(error) if error.is_malformed() => {
                        ctx.fail_when_done(error)?;
                        break;
                    }
                    Err(error) => return Err(error),
                };
                match after {
                    After::Page(token) => {
                        route = page_route(&path, self.settings.page_size, Some(&token));
                        ctx.checkpoint(format!("{}|{route}", listing.api())).await?;
                    }
                    After::Restart => route = first_page.clone(),
                    After::End => break,
                    After::ApiDisabled => {
                        disabled.push(listing.api());
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for GcpConnector {
    type Request = GcpRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        match &self.tokens {
            TokenSource::None => Ok(()),
            #[cfg(feature = "gcp")]
            TokenSource::Credentials(credentials) => credentials.access_token().await.map(|_| ()).map_err(|e| {
                SyncError::UpstreamUnauthenticated(format!("no access token from the GCP credentials: {e}"))
            }),
        }
    }

    fn scopes(&self, request: &GcpRequest) -> Result<Vec<Scope>, SyncError> {
        let projects = if request.project_ids.is_empty() {
            if self.settings.default_projects.is_empty() {
                return Err(SyncError::invalid(
                    "project_ids",
                    "no project ids given and GCP_PROJECT_IDS is not set on the server",
                ));
            }
            &self.settings.default_projects
        } else {
            &request.project_ids
        };
        Ok(projects.iter().map(|p| Scope::new(format!("project:{p}"))).collect())
    }

    fn request_fingerprint(&self, _request: &GcpRequest) -> String {
        format!("locations={}", self.settings.locations.join(","))
    }

    async fn sync_scope(
        &self,
        _request: &GcpRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        if !ctx.wants(EntityKind::Asset) {
            return Ok(());
        }
        match scope.key.split_once(':') {
            Some(("project", project)) => self.sync_project(&scope.key, project, ctx).await,
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

    #[test]
    fn cloud_run_is_listed_in_regions_only_and_artifact_registry_in_multi_regions_too() {
        let locations = ["us-central1", "us", "europe-west1", "europe"].map(String::from);
        assert_eq!(
            listings_of(&locations),
            vec![
                Listing::Repositories("us-central1".into()),
                Listing::Repositories("us".into()),
                Listing::Repositories("europe-west1".into()),
                Listing::Repositories("europe".into()),
                Listing::Services("us-central1".into()),
                Listing::Services("europe-west1".into()),
                Listing::Clusters,
            ]
        );
    }

    #[test]
    fn a_docker_image_maps_with_its_digest_and_parent() {
        let repo: Repository = serde_json::from_value(serde_json::json!({
            "name": "projects/acme-prod-4821/locations/us-central1/repositories/containers",
            "format": "DOCKER", "labels": {"team": "platform", "env": "prod"},
            "updateTime": "2026-10-20T08:00:01.120000Z"
        }))
        .unwrap();
        let image: DockerImage = serde_json::from_value(serde_json::json!({
            "name": "projects/acme-prod-4821/locations/us-central1/repositories/containers/dockerImages/checkout@sha256:abc",
            "uri": "us-central1-docker.pkg.dev/acme-prod-4821/containers/checkout@sha256:abc",
            "tags": ["v1", "latest"], "imageSizeBytes": "42",
            "uploadTime": "2026-09-02T10:11:12.345678Z"
        }))
        .unwrap();
        let entity = docker_image_entity(&repo, &image);
        assert_eq!(
            entity.urn,
            "urn:connectors:gcp:asset:projects/acme-prod-4821/locations/us-central1/repositories/containers/dockerImages/checkout@sha256:abc"
        );
        assert_eq!(
            entity.parent_urn,
            "urn:connectors:gcp:asset:projects/acme-prod-4821/locations/us-central1/repositories/containers"
        );
        let Some(Body::Asset(a)) = entity.body else { panic!() };
        assert_eq!(
            (a.account.as_str(), a.region.as_str()),
            ("acme-prod-4821", "us-central1")
        );
        assert_eq!(a.images[0].digest, "sha256:abc");
        let attrs: Vec<(&str, &str)> = a
            .attributes
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(attrs, vec![("size_bytes", "42"), ("tags", "latest,v1")]);
        assert_eq!(a.create_time.unwrap().nanos, 345_678_000);
        let repo_entity = repository_entity(&repo);
        let keys: Vec<&str> = repo_entity.labels.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, vec!["env", "team"]);
    }

    #[test]
    fn a_service_and_a_cluster_map() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "name": "projects/p-12345/locations/europe-west1/services/web",
            "ingress": "INGRESS_TRAFFIC_ALL", "uri": "https://web-x.a.run.app",
            "latestReadyRevision": "projects/p-12345/locations/europe-west1/services/web/revisions/web-00002-abc",
            "template": {"containers": [{"name": "web", "image": "gcr.io/p/web:1"}]},
            "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"}
        }))
        .unwrap();
        let Some(Body::Asset(a)) = service_entity(&service).body else {
            panic!()
        };
        assert_eq!(a.status, "CONDITION_SUCCEEDED");
        assert_eq!(a.images[0].image, "gcr.io/p/web:1");
        assert_eq!(a.images[0].digest, "");
        assert!(
            a.attributes
                .iter()
                .any(|l| l.key == "latest_ready_revision" && l.value == "web-00002-abc")
        );
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "name": "prod", "location": "us-central1-a", "status": "RUNNING",
            "currentMasterVersion": "1.33.5-gke.1162000",
            "selfLink": "https://container.googleapis.com/v1/projects/p-12345/zones/us-central1-a/clusters/prod",
            "nodePools": [{"name": "b", "version": "1.33", "config": {"machineType": "e2"}},
                          {"name": "a", "version": "1.33", "config": {"machineType": "n2"}}]
        }))
        .unwrap();
        let entity = cluster_entity("p-12345", &cluster);
        assert_eq!(
            entity.urn,
            "urn:connectors:gcp:asset:projects/p-12345/locations/us-central1-a/clusters/prod"
        );
        let Some(Body::Asset(a)) = entity.body else { panic!() };
        assert!(a.external_id.ends_with("/zones/us-central1-a/clusters/prod"));
        assert!(
            a.attributes
                .iter()
                .any(|l| l.key == "node_pools" && l.value == "a:1.33:n2,b:1.33:e2")
        );
    }
}
