//! The Kubernetes connector: Deployments and Pods of the server's kubeconfig
//! contexts (or the in-cluster service account) as workloads, through kube-rs
//! over the shared upstream HTTP layer.
//!
//! Lists are paginated with `limit`/`continue`; the continue token is the page
//! cursor of checkpoints. Every object's `resourceVersion` is its upstream
//! version. Lists carry no ETags and Kubernetes has no change feed short of a
//! watch, so each sync lists the scope again and the engine diffs it by
//! content hash (INCREMENTAL sends only what changed).

pub mod client;
pub mod selector;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use async_trait::async_trait;
use connectors_proto::v1::{ContainerImage, Entity, EntityKind, Label, Workload, entity::Body};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, ObjectList};

use self::client::Cluster;
use crate::http::UpstreamError;
use crate::sync::{Availability, Connector, Descriptor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn};

/// The connector id.
pub const ID: &str = "kubernetes";

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "Kubernetes",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Workload],
    native_incremental: false,
    auth_modes: &["kubeconfig", "in_cluster"],
    service: "connectors.kubernetes.v1.KubernetesConnectorService",
};

/// A validated Kubernetes sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesRequest {
    /// Context names (checked against the configured ones when resolving scopes).
    pub contexts: Vec<String>,
    /// Namespaces; empty = all namespaces.
    pub namespaces: Vec<String>,
    /// Label selector (validated), empty for none.
    pub label_selector: String,
    /// Field selector for pods (validated), empty for none.
    pub field_selector: String,
}

/// Settings of the Kubernetes connector.
#[derive(Debug, Clone)]
pub struct KubernetesSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Contexts synced when a request names none.
    pub default_contexts: Vec<String>,
    /// Objects per list page (`limit`).
    pub page_size: u32,
}

/// The Kubernetes connector.
#[derive(Debug)]
pub struct KubernetesConnector {
    settings: KubernetesSettings,
    clusters: BTreeMap<String, Cluster>,
    /// Contexts that could not be built, with the cause: a scope of one
    /// fails with it.
    unusable: BTreeMap<String, String>,
}

/// The reason of a scope whose kubeconfig context could not be built.
pub const CONTEXT_UNUSABLE: &str = "KUBECONFIG_CONTEXT_UNUSABLE";

impl KubernetesConnector {
    /// A connector over the configured contexts: each one's cluster, or the
    /// error that kept it from being built.
    pub fn new(settings: KubernetesSettings, contexts: Vec<client::Context>) -> Self {
        let mut clusters = BTreeMap::new();
        let mut unusable = BTreeMap::new();
        for (name, built) in contexts {
            match built {
                Ok(cluster) => {
                    clusters.insert(name, cluster);
                }
                Err(error) => {
                    unusable.insert(name, error.to_string());
                }
            }
        }
        Self {
            settings,
            clusters,
            unusable,
        }
    }

    /// The configured context names (usable or not), sorted.
    pub fn context_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.clusters.keys().chain(self.unusable.keys()).cloned().collect();
        names.sort();
        names
    }
}

/// Which listing a page cursor is in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Deployments(Option<String>),
    Pods(Option<String>),
}

impl Phase {
    fn cursor(&self) -> String {
        match self {
            Phase::Deployments(token) => format!("deployments:{}", token.as_deref().unwrap_or("")),
            Phase::Pods(token) => format!("pods:{}", token.as_deref().unwrap_or("")),
        }
    }

    fn parse(cursor: &str) -> Option<Self> {
        let token = |t: &str| {
            if t.is_empty() {
                Some(None)
            } else if t.len() <= 4096
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'/' | b'.'))
            {
                Some(Some(t.to_owned()))
            } else {
                None
            }
        };
        match cursor.split_once(':')? {
            ("deployments", t) => token(t).map(Phase::Deployments),
            ("pods", t) => token(t).map(Phase::Pods),
            _ => None,
        }
    }
}

/// The urn's native id: `<context>/<namespace>/<kind>/<name>`.
pub fn native_id(context: &str, namespace: &str, kind: &str, name: &str) -> String {
    format!("{context}/{namespace}/{kind}/{name}")
}

fn workload_urn(context: &str, namespace: &str, kind: &str, name: &str) -> String {
    urn(ID, EntityKind::Workload, &native_id(context, namespace, kind, name))
}

fn labels(meta: &ObjectMeta) -> Vec<Label> {
    // BTreeMap: already sorted by key.
    meta.labels
        .iter()
        .flatten()
        .map(|(key, value)| Label {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The object's attributes: its `uid`, when it has one. A Deployment
/// deleted and created again with the same name keeps its urn; the new uid
/// makes it an upsert.
fn attributes(meta: &ObjectMeta) -> Vec<Label> {
    meta.uid
        .iter()
        .filter(|uid| !uid.is_empty())
        .map(|uid| Label {
            key: "uid".into(),
            value: uid.clone(),
        })
        .collect()
}

/// The digest of an image reference (`repo@sha256:...`), if pinned.
fn digest_of(reference: &str) -> String {
    reference
        .rsplit_once('@')
        .map(|(_, digest)| digest.to_owned())
        .filter(|d| d.contains(':'))
        .unwrap_or_default()
}

fn images<'a>(
    containers: impl IntoIterator<Item = (&'a String, Option<&'a String>)>,
    statuses: &[ContainerStatus],
) -> Vec<ContainerImage> {
    containers
        .into_iter()
        .map(|(name, image)| {
            let image = image.cloned().unwrap_or_default();
            // A pod's status says which digest the kubelet actually pulled.
            let digest = statuses
                .iter()
                .find(|s| s.name == *name)
                .map(|s| digest_of(&s.image_id))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| digest_of(&image));
            ContainerImage {
                container: name.clone(),
                image,
                digest,
            }
        })
        .collect()
}

/// The (name, image) of a pod spec's containers, then its init containers.
fn spec_containers(spec: Option<&PodSpec>) -> impl Iterator<Item = (&String, Option<&String>)> {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    containers.iter().chain(init).map(|c| (&c.name, c.image.as_ref()))
}

fn clamp(n: Option<i32>) -> u32 {
    u32::try_from(n.unwrap_or(0).max(0)).unwrap_or(0)
}

/// Maps a Deployment.
pub fn deployment_entity(context: &str, deployment: &Deployment) -> Entity {
    let meta = &deployment.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let pod_spec = deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let status = deployment.status.as_ref();
    let condition = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .is_some_and(|c| c.status == "True")
    };
    let state = if condition("Available") {
        "Available"
    } else if condition("Progressing") {
        "Progressing"
    } else {
        "Unavailable"
    };
    Entity {
        urn: workload_urn(context, &namespace, "deployment", &name),
        kind: EntityKind::Workload as i32,
        native_id: native_id(context, &namespace, "deployment", &name),
        display_name: format!("{namespace}/{name}"),
        labels: labels(meta),
        parent_urn: String::new(),
        body: Some(Body::Workload(Workload {
            workload_type: "Deployment".into(),
            cluster: context.to_owned(),
            namespace,
            images: images(spec_containers(pod_spec), &[]),
            owner_urns: Vec::new(),
            desired_replicas: clamp(deployment.spec.as_ref().and_then(|s| s.replicas).or(Some(1))),
            ready_replicas: clamp(status.and_then(|s| s.ready_replicas)),
            status: state.into(),
            attributes: attributes(meta),
        })),
    }
}

/// The Deployment owning a pod through its ReplicaSet: the ReplicaSet is
/// named `<deployment>-<pod-template-hash>` and the pod carries that hash as
/// its `pod-template-hash` label, so no ReplicaSet needs to be read.
fn owning_deployment(pod: &Pod) -> Option<String> {
    let meta = &pod.metadata;
    let hash = meta.labels.as_ref()?.get("pod-template-hash")?;
    let owner = meta
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "ReplicaSet" && o.api_version == "apps/v1")?;
    owner
        .name
        .strip_suffix(hash.as_str())
        .and_then(|n| n.strip_suffix('-'))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// Maps a Pod.
pub fn pod_entity(context: &str, pod: &Pod) -> Entity {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut statuses: Vec<ContainerStatus> = status.and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    for more in [
        status.and_then(|s| s.init_container_statuses.clone()),
        status.and_then(|s| s.ephemeral_container_statuses.clone()),
    ] {
        statuses.extend(more.unwrap_or_default());
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let owner_urns = owning_deployment(pod)
        .map(|deployment| vec![workload_urn(context, &namespace, "deployment", &deployment)])
        .unwrap_or_default();
    Entity {
        urn: workload_urn(context, &namespace, "pod", &name),
        kind: EntityKind::Workload as i32,
        native_id: native_id(context, &namespace, "pod", &name),
        display_name: format!("{namespace}/{name}"),
        labels: labels(meta),
        parent_urn: String::new(),
        body: Some(Body::Workload(Workload {
            workload_type: "Pod".into(),
            cluster: context.to_owned(),
            namespace,
            // Debug containers (`kubectl debug`) run in the pod too.
            images: images(
                spec_containers(spec).chain(
                    spec.and_then(|s| s.ephemeral_containers.as_deref())
                        .unwrap_or_default()
                        .iter()
                        .map(|c| (&c.name, c.image.as_ref())),
                ),
                &statuses,
            ),
            owner_urns,
            desired_replicas: 1,
            ready_replicas: u32::from(ready),
            status: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            attributes: attributes(meta),
        })),
    }
}

/// Maps a kube error to a scope outcome.
fn scope_error(error: kube::Error, what: &str) -> ScopeError {
    if let Some(upstream) = UpstreamError::find(&error) {
        return ScopeError::from_upstream(upstream, what, "kubernetes api server is throttling");
    }
    match &error {
        // kube fills in a Status for any error body; code 0 means the body
        // was JSON but not a Kubernetes Status (not an API server answering).
        kube::Error::Api(status) if status.code == 0 => ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: format!("{what}: the upstream answered an error that is not a kubernetes status"),
        },
        kube::Error::Api(status) => {
            let message = format!(
                "{what}: kubernetes answered {} {}: {}",
                status.code,
                status.reason,
                status.message.to_lowercase()
            );
            match status.code {
                410 => ScopeError::Failed {
                    reason: "UPSTREAM_CONTINUE_EXPIRED",
                    message: format!("{message} (continue tokens kept expiring: sync again)"),
                },
                // Each context has credentials of its own: one rejected is
                // that context's failure, not the whole sync's.
                401 => ScopeError::Failed {
                    reason: "UPSTREAM_CREDENTIALS_REJECTED",
                    message,
                },
                status => ScopeError::from_status(status, message),
            }
        }
        kube::Error::SerdeError(_) => ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{what}: kubernetes returned a body that does not parse"),
        },
        _ => ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: format!("{what}: request failed"),
        },
    }
}

/// Relists after an expired continue token at most this often per scope.
const MAX_RESTARTS: u32 = 2;

fn is_gone(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 410)
}

fn short(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => UpstreamError::find(other)
            .map(|e| e.to_string())
            .unwrap_or_else(|| "request failed".into()),
    }
}

/// Checks that a namespace a request names exists: the API answers the lists
/// of a namespace that does not exist with empty lists (200), so a misspelt
/// namespace would be a scope OK with nothing in it. A credential that may not
/// read namespaces (403; a RoleBinding in the namespace grants the lists
/// only) goes on to the lists.
async fn check_namespace(cluster: &Cluster, namespace: &str) -> Result<(), ScopeError> {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    match namespaces.get(namespace).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        Err(error) => Err(scope_error(error, &format!("namespace {}/{namespace}", cluster.name))),
    }
}

impl KubernetesConnector {
    fn list_params(&self, request: &KubernetesRequest, token: Option<String>, pods: bool) -> ListParams {
        let mut params = ListParams::default().limit(self.settings.page_size);
        if let Some(token) = token {
            params = params.continue_token(&token);
        }
        if !request.label_selector.is_empty() {
            params = params.labels(&request.label_selector);
        }
        if pods && !request.field_selector.is_empty() {
            params = params.fields(&request.field_selector);
        }
        params
    }

    async fn sync_cluster(
        &self,
        request: &KubernetesRequest,
        cluster: &Cluster,
        namespace: Option<&str>,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let mut phase = match ctx.resume_cursor() {
            Some(cursor) => Phase::parse(cursor).ok_or_else(|| {
                ScopeError::Fatal(SyncError::invalid(
                    "options.checkpoint",
                    "the page cursor it holds is not valid",
                ))
            })?,
            None => {
                if let Some(namespace) = namespace {
                    check_namespace(cluster, namespace).await?;
                }
                Phase::Deployments(None)
            }
        };
        let where_ = match namespace {
            Some(ns) => format!("{}/{ns}", cluster.name),
            None => cluster.name.clone(),
        };
        let deployments: Api<Deployment> = match namespace {
            Some(ns) => Api::namespaced(cluster.client.clone(), ns),
            None => Api::all(cluster.client.clone()),
        };
        let pods: Api<Pod> = match namespace {
            Some(ns) => Api::namespaced(cluster.client.clone(), ns),
            None => Api::all(cluster.client.clone()),
        };
        // Continue tokens expire with etcd compaction (about 5 minutes): a 410
        // on a continued page restarts that listing from its first page, as
        // the API documents; entities already pushed are not sent again.
        let mut restarts = 0;
        loop {
            if ctx.is_cancelled() {
                return Err(ScopeError::Cancelled);
            }
            let next = match &phase {
                Phase::Deployments(token) => {
                    let page: ObjectList<Deployment> = match deployments
                        .list(&self.list_params(request, token.clone(), false))
                        .await
                    {
                        Ok(page) => page,
                        Err(error) if token.is_some() && is_gone(&error) && restarts < MAX_RESTARTS => {
                            restarts += 1;
                            tracing::info!(connector = ID, scope = %where_, "continue token expired; listing deployments again");
                            phase = Phase::Deployments(None);
                            continue;
                        }
                        Err(error) => {
                            let error = scope_error(error, &format!("deployments of {where_}"));
                            // A page that does not parse ends the deployments
                            // only: the pods are listed, and the scope ends
                            // FAILED after them.
                            if !error.is_malformed() {
                                return Err(error);
                            }
                            ctx.fail_when_done(error)?;
                            phase = Phase::Pods(None);
                            ctx.checkpoint(phase.cursor()).await?;
                            continue;
                        }
                    };
                    for deployment in &page.items {
                        let version = deployment.metadata.resource_version.clone().unwrap_or_default();
                        ctx.upsert(
                            deployment_entity(&cluster.name, deployment),
                            UpsertMeta::new("apps/v1/deployments.list", version),
                        )
                        .await?;
                    }
                    match page.metadata.continue_.filter(|t| !t.is_empty()) {
                        Some(token) => Phase::Deployments(Some(token)),
                        None => Phase::Pods(None),
                    }
                }
                Phase::Pods(token) => {
                    let page: ObjectList<Pod> = match pods.list(&self.list_params(request, token.clone(), true)).await {
                        Ok(page) => page,
                        Err(error) if token.is_some() && is_gone(&error) && restarts < MAX_RESTARTS => {
                            restarts += 1;
                            tracing::info!(connector = ID, scope = %where_, "continue token expired; listing pods again");
                            phase = Phase::Pods(None);
                            continue;
                        }
                        Err(error) => {
                            let error = scope_error(error, &format!("pods of {where_}"));
                            if !error.is_malformed() {
                                return Err(error);
                            }
                            // After a deployments failure, counted with it.
                            ctx.fail_when_done(error)?;
                            return Ok(());
                        }
                    };
                    for pod in &page.items {
                        let version = pod.metadata.resource_version.clone().unwrap_or_default();
                        ctx.upsert(pod_entity(&cluster.name, pod), UpsertMeta::new("v1/pods.list", version))
                            .await?;
                    }
                    match page.metadata.continue_.filter(|t| !t.is_empty()) {
                        Some(token) => Phase::Pods(Some(token)),
                        None => return Ok(()),
                    }
                }
            };
            ctx.checkpoint(next.cursor()).await?;
            phase = next;
        }
    }
}

#[async_trait]
impl Connector for KubernetesConnector {
    type Request = KubernetesRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        // The contexts a default sync syncs; another context of the
        // kubeconfig (a stale one, say) fails only a sync that asks for it.
        for name in &self.settings.default_contexts {
            let Some(cluster) = self.clusters.get(name) else {
                continue;
            };
            // Cheap and allowed for every authenticated user: the server version.
            if let Err(error) = cluster.client.apiserver_version().await {
                let message = format!("context {name}: GET /version failed: {}", short(&error));
                return Err(match &error {
                    kube::Error::Api(status) if status.code == 401 => SyncError::UpstreamUnauthenticated(message),
                    kube::Error::Api(status) if status.code == 403 => SyncError::UpstreamPermissionDenied(message),
                    _ => SyncError::Unavailable(message),
                });
            }
        }
        Ok(())
    }

    fn scopes(&self, request: &KubernetesRequest) -> Result<Vec<Scope>, SyncError> {
        let contexts = if request.contexts.is_empty() {
            if self.settings.default_contexts.is_empty() {
                return Err(SyncError::invalid(
                    "contexts",
                    "no contexts given and the server has no default context (set KUBERNETES_CONTEXTS or a current-context in KUBECONFIG)",
                ));
            }
            self.settings.default_contexts.clone()
        } else {
            for (i, context) in request.contexts.iter().enumerate() {
                if !self.clusters.contains_key(context) && !self.unusable.contains_key(context) {
                    return Err(SyncError::invalid(
                        format!("contexts[{i}]"),
                        format!(
                            "{:?} is not a context configured on this server (configured: {})",
                            crate::grpc::validate::truncate(context),
                            self.context_names().join(", ")
                        ),
                    ));
                }
            }
            request.contexts.clone()
        };
        let mut scopes = Vec::new();
        for context in contexts {
            if request.namespaces.is_empty() {
                scopes.push(Scope::new(format!("context:{context}")));
            } else {
                scopes.extend(
                    request
                        .namespaces
                        .iter()
                        .map(|ns| Scope::new(format!("namespace:{context}/{ns}"))),
                );
            }
        }
        Ok(scopes)
    }

    fn request_fingerprint(&self, request: &KubernetesRequest) -> String {
        format!(
            "labels={:?} fields={:?} limit={}",
            request.label_selector, request.field_selector, self.settings.page_size
        )
    }

    async fn sync_scope(
        &self,
        request: &KubernetesRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let (context, namespace) = match scope.key.split_once(':') {
            Some(("context", context)) => (context, None),
            Some(("namespace", rest)) => match rest.rsplit_once('/') {
                Some((context, ns)) => (context, Some(ns)),
                None => (rest, None),
            },
            _ => {
                return Err(ScopeError::Fatal(SyncError::Internal(format!(
                    "unknown scope {}",
                    scope.key
                ))));
            }
        };
        if let Some(cause) = self.unusable.get(context) {
            return Err(ScopeError::Failed {
                reason: CONTEXT_UNUSABLE,
                message: cause.clone(),
            });
        }
        let cluster = self
            .clusters
            .get(context)
            .ok_or_else(|| ScopeError::Fatal(SyncError::Internal(format!("context {context} is not configured"))))?;
        self.sync_cluster(request, cluster, namespace, ctx).await
    }
}
