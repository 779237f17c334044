//! The Kubernetes connector: the conformance suite on fixtures, and the
//! Kubernetes-specific behaviour (contexts, namespaces, selectors, owner
//! links, request counts, live mode).

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use connectors_proto::kubernetes::v1::SyncRequest;
use connectors_proto::v1::{
    EntityKind, Label, ScopeState, SyncEvent, SyncOptions, Workload, entity::Body, sync_event::Event,
};
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::replay::{FixtureSet, ReplayOptions, ReplayServer};
use serde::Deserialize;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::conformance::{FaultRun, Harness, collect, full, incremental};
use crate::support::{TestServer, scope_errors, scope_statuses, summary, upserts};

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[derive(Debug, Deserialize)]
struct EstateCluster {
    deployments: Vec<String>,
    pods: Vec<String>,
}

/// fixtures/kubernetes/estate.json: context -> "namespace/name" lists.
fn estate() -> BTreeMap<String, EstateCluster> {
    let text = std::fs::read_to_string(fixtures_root().join("kubernetes/estate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Debug, Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Kubernetes;

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.kubernetes().sync(request).await.map(|r| r.into_inner())
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        options: Some(options),
        ..Default::default()
    }
}

#[async_trait]
impl Harness for Kubernetes {
    const ID: &'static str = "kubernetes";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(server, request(options)).await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        let total: usize = estate().values().map(|c| c.deployments.len() + c.pods.len()).sum();
        // The estate the fixture generator wrote (fixtures/kubernetes/generate.py):
        // 10 deployments and 24 pods in 2 clusters.
        assert_eq!(total, 34);
        vec![(EntityKind::Workload, total as u64)]
    }

    fn apply_change(server: &TestServer) {
        let root = fixtures_root();
        let mut set = FixtureSet::load_provider(&root, "kubernetes").unwrap();
        set.overlay_dir(&root.join("kubernetes/scenarios/changed/exchanges"))
            .unwrap();
        server.server.replay("kubernetes").unwrap().set_fixtures(set);
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let text = std::fs::read_to_string(fixtures_root().join("kubernetes/scenarios/changed/expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        crate::conformance::malformed_fails(
            run,
            "context:staging-us",
            "pods of staging-us: kubernetes returned a body that does not parse",
        )
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let many: Vec<String> = (0..101).map(|i| format!("ns{i}")).collect();
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (
                SyncRequest {
                    contexts: strings(&["prod-eu", "https://evil.example.com"]),
                    ..Default::default()
                },
                "contexts[1]",
            ),
            (
                SyncRequest {
                    contexts: strings(&[""]),
                    ..Default::default()
                },
                "contexts[0]",
            ),
            (
                SyncRequest {
                    contexts: strings(&["prod-eu", "prod-eu"]),
                    ..Default::default()
                },
                "contexts[1]",
            ),
            (
                SyncRequest {
                    namespaces: strings(&["payments", "Bad_NS"]),
                    ..Default::default()
                },
                "namespaces[1]",
            ),
            (
                SyncRequest {
                    namespaces: strings(&["../kube-system"]),
                    ..Default::default()
                },
                "namespaces[0]",
            ),
            (
                SyncRequest {
                    namespaces: many,
                    ..Default::default()
                },
                "namespaces",
            ),
            (
                SyncRequest {
                    label_selector: "app in (web".into(),
                    ..Default::default()
                },
                "label_selector",
            ),
            (
                SyncRequest {
                    label_selector: "app=web=x".into(),
                    ..Default::default()
                },
                "label_selector",
            ),
            (
                SyncRequest {
                    field_selector: "status.phase".into(),
                    ..Default::default()
                },
                "field_selector",
            ),
            (
                SyncRequest {
                    options: Some(SyncOptions {
                        kinds: vec![EntityKind::Repository as i32],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "options.kinds[0]",
            ),
        ];
        let mut out = Vec::new();
        for (request, field) in cases {
            out.push((open(server, request).await, field));
        }
        out
    }
}

crate::conformance_suite!(conformance, crate::kubernetes::Kubernetes);

fn workloads(events: &[SyncEvent]) -> Vec<(String, Workload)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => match &u.entity.as_ref()?.body {
                Some(Body::Workload(w)) => Some((u.entity.as_ref()?.urn.clone(), w.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn urn(context: &str, namespace_name: &str, kind: &str) -> String {
    let (ns, name) = namespace_name.split_once('/').unwrap();
    format!("urn:connectors:kubernetes:workload:{context}/{ns}/{kind}/{name}")
}

#[tokio::test]
async fn full_sync_lists_deployments_then_pods_per_context_in_api_order() {
    let server = TestServer::start().await;
    let events = collect(open(&server, request(full())).await).await;
    let mut expected = Vec::new();
    for (context, cluster) in estate() {
        expected.extend(cluster.deployments.iter().map(|d| urn(&context, d, "deployment")));
        expected.extend(cluster.pods.iter().map(|p| urn(&context, p, "pod")));
    }
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, expected);
    assert_eq!(
        scope_statuses(&events).into_iter().map(|(s, _)| s).collect::<Vec<_>>(),
        vec!["context:prod-eu", "context:staging-us"]
    );
    // prod-eu: 6 deployments (2 pages of 3), 14 pods (5 pages);
    // staging-us: 4 deployments (2 pages), 10 pods (4 pages).
    assert_eq!(summary(&events).upstream_requests, 2 + 5 + 2 + 4);
    assert_eq!(server.unmatched("kubernetes"), Vec::<String>::new());
}

#[tokio::test]
async fn workloads_carry_images_digests_owners_replicas_and_phase() {
    let server = TestServer::start().await;
    let events = collect(open(&server, request(full())).await).await;
    let all: BTreeMap<String, Workload> = workloads(&events).into_iter().collect();
    let api = &all["urn:connectors:kubernetes:workload:prod-eu/payments/deployment/api"];
    assert_eq!(api.workload_type, "Deployment");
    assert_eq!(api.cluster, "prod-eu");
    assert_eq!(api.namespace, "payments");
    assert_eq!((api.desired_replicas, api.ready_replicas), (3, 3));
    assert_eq!(api.status, "Available");
    assert_eq!(
        api.attributes,
        vec![Label {
            key: "uid".into(),
            value: "ec83c904-bf21-48b1-8426-925827aff5ea".into()
        }]
    );
    let images: Vec<(&str, &str, &str)> = api
        .images
        .iter()
        .map(|i| (i.container.as_str(), i.image.as_str(), i.digest.as_str()))
        .collect();
    assert_eq!(
        images,
        vec![
            ("api", "registry.example.com/payments/api:1.4.2", ""),
            ("envoy", "docker.io/envoyproxy/envoy:v1.30.2", "")
        ]
    );
    // Pods of the deployment: owner link through the ReplicaSet, digests from status.
    let api_pods: Vec<&Workload> = all
        .iter()
        .filter(|(u, _)| u.starts_with("urn:connectors:kubernetes:workload:prod-eu/payments/pod/api-"))
        .map(|(_, w)| w)
        .collect();
    assert_eq!(api_pods.len(), 3);
    for pod in api_pods {
        assert_eq!(pod.workload_type, "Pod");
        assert_eq!(pod.status, "Running");
        assert_eq!((pod.desired_replicas, pod.ready_replicas), (1, 1));
        assert_eq!(
            pod.owner_urns,
            vec!["urn:connectors:kubernetes:workload:prod-eu/payments/deployment/api"]
        );
        assert_eq!(pod.images.len(), 2);
        for image in &pod.images {
            assert!(
                image.digest.starts_with("sha256:") && image.digest.len() == 71,
                "{image:?}"
            );
        }
    }
    // A pending pod: not ready, no digest yet. A Job's pod: no Deployment owner.
    let pending: Vec<&Workload> = all.values().filter(|w| w.status == "Pending").collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].ready_replicas, 0);
    assert_eq!(pending[0].images[0].digest, "");
    let job_pod = all
        .iter()
        .find(|(u, _)| u.contains("/pod/nightly-reconcile-"))
        .map(|(_, w)| w)
        .unwrap();
    assert_eq!(job_pod.status, "Succeeded");
    assert!(job_pod.owner_urns.is_empty());
    // Labels are sorted and provenance carries the resourceVersion.
    let first = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    let keys: Vec<&str> = first
        .entity
        .as_ref()
        .unwrap()
        .labels
        .iter()
        .map(|l| l.key.as_str())
        .collect();
    assert_eq!(
        keys,
        vec!["app.kubernetes.io/name", "app.kubernetes.io/part-of", "tier"]
    );
    // The first item of prod-eu's first deployments page
    // (fixtures/kubernetes/exchanges/prod-eu/deployments.json).
    assert_eq!(
        first.entity.as_ref().unwrap().urn,
        "urn:connectors:kubernetes:workload:prod-eu/monitoring/deployment/prometheus"
    );
    let p = first.provenance.unwrap();
    assert_eq!(p.source, "context:prod-eu");
    assert_eq!(p.operation, "apps/v1/deployments.list");
    assert_eq!(p.upstream_version, "4100010");
}

#[tokio::test]
async fn namespaces_and_label_selectors_narrow_the_lists() {
    let server = TestServer::start().await;
    let events = sync_namespaces(&server, "prod-eu", &["payments"]).await;
    let estate = estate();
    let prod = &estate["prod-eu"];
    let mut expected: Vec<String> = prod
        .deployments
        .iter()
        .filter(|d| d.starts_with("payments/"))
        .map(|d| urn("prod-eu", d, "deployment"))
        .collect();
    expected.extend(
        prod.pods
            .iter()
            .filter(|p| p.starts_with("payments/"))
            .map(|p| urn("prod-eu", p, "pod")),
    );
    assert_eq!(expected.len(), 2 + 6);
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        scope_statuses(&events).into_iter().map(|(s, _)| s).collect::<Vec<_>>(),
        vec!["namespace:prod-eu/payments"]
    );
    // GET the namespace, then 1 page of deployments and 2 of pods.
    assert_eq!(summary(&events).upstream_requests, 1 + 1 + 2);

    let events = collect(
        open(
            &server,
            SyncRequest {
                contexts: vec!["prod-eu".into()],
                label_selector: "tier=frontend".into(),
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got.len(), 1 + 3);
    assert_eq!(
        got[0],
        "urn:connectors:kubernetes:workload:prod-eu/storefront/deployment/web"
    );
    assert_eq!(server.unmatched("kubernetes"), Vec::<String>::new());
}

#[tokio::test]
async fn an_unknown_context_names_the_field_and_the_configured_contexts_only() {
    let server = TestServer::start().await;
    let status = open(
        &server,
        SyncRequest {
            contexts: vec!["prod-eu".into(), "dev".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("unknown context");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "contexts[1]: \"dev\" is not a context configured on this server (configured: prod-eu, staging-us)"
    );
    assert!(!status.message().contains("127.0.0.1"));
}

#[tokio::test]
async fn no_change_incremental_sends_nothing_and_lists_once_more() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let events = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    let s = summary(&events);
    assert_eq!(upserts(&events).len(), 0);
    assert_eq!(s.upstream_requests, 13);
    assert_eq!(s.counts.iter().map(|c| c.unchanged).sum::<u64>(), 34);
}

#[tokio::test]
async fn live_mode_without_credentials_is_a_failed_precondition_naming_the_variables() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    let server = TestServer::with_config(config).await;
    let status = open(&server, request(full())).await.expect_err("not configured");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("KUBECONFIG"), "{}", status.message());
}

/// Live mode from a KUBECONFIG with a bearer token: kube-rs sends it to the
/// context's server (with its path prefix), the request names only the context.
#[tokio::test]
async fn live_mode_uses_the_kubeconfig_context_server_and_token() {
    let root = fixtures_root();
    let mut set = FixtureSet::default();
    let fixtures = FixtureSet::load_provider(&root, "kubernetes").unwrap();
    for exchange in fixtures.exchanges() {
        if exchange.request.path.starts_with("/clusters/staging-us/") {
            let mut exchange = exchange.clone();
            exchange.request.path = exchange
                .request
                .path
                .replace("/clusters/staging-us/", "/k8s/clusters/c-7xk2p/");
            exchange
                .request
                .headers
                .insert("authorization".into(), "Bearer live-token-123".into());
            set.insert(exchange);
        }
    }
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: rancher\n  cluster:\n    server: {}/k8s/clusters/c-7xk2p\nusers:\n- name: reader\n  user:\n    token: live-token-123\ncontexts:\n- name: rancher-staging\n  context:\n    cluster: rancher\n    user: reader\ncurrent-context: rancher-staging\n",
            upstream.base_url()
        ),
    )
    .unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.kubernetes.kubeconfig = Some(path.display().to_string());
    config.kubernetes.page_size = Some(3);
    let server = TestServer::with_config(config).await;
    let listed = server.client.get_connector("kubernetes").await.unwrap();
    assert_eq!(listed.auth_mode, "kubeconfig");
    let events = collect(open(&server, request(full())).await).await;
    let s = summary(&events);
    assert!(s.complete, "{:?}", scope_statuses(&events));
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got.len(), 14);
    assert!(
        got.iter()
            .all(|u| u.starts_with("urn:connectors:kubernetes:workload:rancher-staging/"))
    );
    // Only the start-up credential check (GET /version) may be unmatched.
    let unmatched: Vec<String> = upstream
        .unmatched_requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET /k8s/clusters/c-7xk2p/version"))
        .collect();
    assert_eq!(unmatched, Vec::<String>::new());
    std::fs::remove_dir_all(&dir).ok();
}

/// A sync of `namespaces` of `context`, read to its end.
async fn sync_namespaces(server: &TestServer, context: &str, namespaces: &[&str]) -> Vec<SyncEvent> {
    let request = SyncRequest {
        contexts: vec![context.to_owned()],
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    };
    collect(open(server, request).await).await
}

/// A FULL sync of `contexts`, read to its end.
/// A deployments page that does not parse ends the deployments only: the
/// context's pods are listed and sent, then its scope ends FAILED
/// `UPSTREAM_MALFORMED` naming the listing (nothing deleted); a pods page
/// that does not parse after it is counted with it.
#[tokio::test]
async fn a_deployments_page_that_does_not_parse_fails_its_scope_after_the_pods() {
    let server = TestServer::start().await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "kubernetes").unwrap();
    let cut_short = |path: &str, query: serde_json::Value| -> connectors_server::replay::Exchange {
        serde_json::from_value(serde_json::json!({
            "request": {"method": "GET", "path": path, "query": query,
                "headers": {"authorization": "Bearer fixture-token-prod-eu"}},
            "response": {"status": 200, "headers": {"content-type": "application/json"},
                "body_text": "{\"kind\": \"DeploymentList\", \"items\": [{\"meta"}
        }))
        .unwrap()
    };
    set.insert(cut_short(
        "/clusters/prod-eu/apis/apps/v1/deployments",
        serde_json::json!({"limit": "3"}),
    ));
    server.server.replay("kubernetes").unwrap().set_fixtures(set.clone());
    let events = full_sync_of(&server, &["prod-eu"]).await;
    let pods: Vec<String> = estate()["prod-eu"]
        .pods
        .iter()
        .map(|p| urn("prod-eu", p, "pod"))
        .collect();
    assert_eq!(pods.len(), 14);
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, pods);
    let deployments_error = "deployments of prod-eu: kubernetes returned a body that does not parse";
    assert_eq!(
        crate::support::scope_errors(&events),
        vec![(
            "context:prod-eu".to_owned(),
            "UPSTREAM_MALFORMED".to_owned(),
            deployments_error.to_owned()
        )]
    );
    assert_eq!(crate::support::deletions(&events), Vec::<String>::new());
    // The pods' first page cut short too: nothing sent, both counted.
    set.insert(cut_short(
        "/clusters/prod-eu/api/v1/pods",
        serde_json::json!({"limit": "3"}),
    ));
    server.server.replay("kubernetes").unwrap().set_fixtures(set);
    let events = full_sync_of(&server, &["prod-eu"]).await;
    assert_eq!(upserts(&events), Vec::<(String, String)>::new());
    assert_eq!(
        crate::support::scope_errors(&events)[0].2,
        format!("{deployments_error} (and 1 more such failures in this scope)")
    );
}

async fn full_sync_of(server: &TestServer, contexts: &[&str]) -> Vec<SyncEvent> {
    let request = SyncRequest {
        contexts: contexts.iter().map(|c| (*c).to_owned()).collect(),
        options: Some(full()),
        ..Default::default()
    };
    collect(open(server, request).await).await
}

/// The fixtures' exchanges of the `staging-us` context only.
fn staging_us_only() -> FixtureSet {
    let mut set = FixtureSet::default();
    for exchange in FixtureSet::load_provider(&fixtures_root(), "kubernetes")
        .unwrap()
        .exchanges()
    {
        if exchange.request.path.starts_with("/clusters/staging-us/") {
            set.insert(exchange.clone());
        }
    }
    set
}

/// The fixtures' kubeconfig pointed at `upstream`, changed by `edit`, in a
/// directory of its own (`name`): the directory and the file.
fn fixture_kubeconfig(name: &str, upstream: &ReplayServer, edit: impl FnOnce(String) -> String) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("kubeconfig-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    let text = std::fs::read_to_string(fixtures_root().join("kubernetes/kubeconfig.yaml"))
        .unwrap()
        .replace("{{base_url}}", upstream.base_url());
    std::fs::write(&path, edit(text)).unwrap();
    (dir, path)
}

/// Live mode on the kubeconfig at `path`, `contexts` the default ones, the
/// fixtures' page size.
fn live_config(path: &std::path::Path, contexts: &[&str]) -> Config {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.kubernetes.kubeconfig = Some(path.display().to_string());
    config.kubernetes.contexts = contexts.iter().map(|c| (*c).to_owned()).collect();
    config.kubernetes.page_size = Some(3);
    config
}

/// `GET <prefix>/version` answered as a v1.31 API server answers it (the
/// start-up credential check).
fn version_exchange(prefix: &str) -> connectors_server::replay::Exchange {
    serde_json::from_value(serde_json::json!({
        "request": {"method": "GET", "path": format!("{prefix}/version")},
        "response": {"status": 200, "headers": {"content-type": "application/json"}, "body": {
            "major": "1", "minor": "31", "gitVersion": "v1.31.2", "gitCommit": "5864a4677267e6adeae276ad85882a8714d69d9d",
            "gitTreeState": "clean", "buildDate": "2024-10-22T20:28:14Z", "goVersion": "go1.22.8",
            "compiler": "gc", "platform": "linux/amd64"}}
    }))
    .unwrap()
}

/// A 403 `Status` from the API server (RBAC) fails that context's scope with
/// UPSTREAM_PERMISSION_DENIED; the other context is synced and the summary is
/// incomplete.
#[tokio::test]
async fn a_forbidden_cluster_is_a_failed_scope_and_the_others_are_synced() {
    let mut set = staging_us_only();
    let forbidden: connectors_server::replay::Exchange = serde_json::from_value(serde_json::json!({
        "request": {"method": "GET", "path": "/clusters/prod-eu/apis/apps/v1/deployments", "query": {"limit": "3"}},
        "response": {"status": 403, "headers": {"content-type": "application/json"}, "body": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.apps is forbidden: User \"system:serviceaccount:connectors:connectors-server\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope",
            "reason": "Forbidden", "details": {"group": "apps", "kind": "deployments"}, "code": 403}}
    }))
    .unwrap();
    set.insert(forbidden);
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let (dir, path) = fixture_kubeconfig("forbidden", &upstream, |text| text);
    let config = live_config(&path, &["prod-eu", "staging-us"]);
    let server = TestServer::with_config(config).await;
    let events = collect(open(&server, request(full())).await).await;
    let statuses: Vec<(String, String, String)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) => Some((s.scope.clone(), s.reason.clone(), s.error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].0, "context:prod-eu");
    assert_eq!(statuses[0].1, "UPSTREAM_PERMISSION_DENIED");
    assert!(
        statuses[0]
            .2
            .starts_with("deployments of prod-eu: kubernetes answered 403 Forbidden: "),
        "{}",
        statuses[0].2
    );
    assert_eq!(
        (statuses[1].0.as_str(), statuses[1].1.as_str()),
        ("context:staging-us", "")
    );
    assert_eq!(upserts(&events).len(), 14);
    assert!(!summary(&events).complete);
    std::fs::remove_dir_all(&dir).ok();
}

/// Each context has credentials of its own: a context whose API server
/// rejects them (401) or cannot be reached fails its own scope, and the
/// other contexts are synced. The start-up check covers the contexts a
/// default sync syncs (`KUBERNETES_CONTEXTS`), not every context of the
/// kubeconfig.
#[tokio::test]
async fn a_context_whose_credentials_are_rejected_or_whose_server_is_gone_fails_its_scope_only() {
    let mut set = staging_us_only();
    let exchange =
        |value: serde_json::Value| -> connectors_server::replay::Exchange { serde_json::from_value(value).unwrap() };
    // prod-eu's API server answers /version (the start-up check), then 401s
    // the lists: its token was revoked after start-up.
    set.insert(version_exchange("/clusters/prod-eu"));
    set.insert(exchange(serde_json::json!({
        "request": {"method": "GET", "path": "/clusters/prod-eu/apis/apps/v1/deployments", "query": {"limit": "3"}},
        "response": {"status": 401, "headers": {"content-type": "application/json"}, "body": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}}
    })));
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    // A third context whose API server is gone (nothing listens on port 9).
    let (dir, path) = fixture_kubeconfig("rejected", &upstream, |text| {
        text.replace(
            "contexts:\n",
            "contexts:\n- name: decommissioned\n  context:\n    cluster: decommissioned\n    user: prod-eu-inventory-reader\n",
        )
        .replace(
            "users:\n",
            "- name: decommissioned\n  cluster:\n    server: \"https://127.0.0.1:9\"\nusers:\n",
        )
    });
    let config = live_config(&path, &["prod-eu"]);
    let server = TestServer::with_config(config).await;
    // The start-up check: prod-eu's /version, once; the connector serves.
    for _ in 0..500 {
        if upstream.stats().requests() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(upstream.stats().requests(), 1, "the start-up check of prod-eu");
    let mut health = HealthClient::new(server.client.channel().clone());
    let check = health
        .check(HealthCheckRequest {
            service: "connectors.kubernetes.v1.KubernetesConnectorService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.status, ServingStatus::Serving as i32);

    let events = full_sync_of(&server, &["prod-eu", "decommissioned", "staging-us"]).await;
    let errors = scope_errors(&events);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        (
            "context:prod-eu".to_owned(),
            "UPSTREAM_CREDENTIALS_REJECTED".to_owned(),
            "deployments of prod-eu: kubernetes answered 401 Unauthorized: unauthorized".to_owned()
        )
    );
    assert_eq!(
        (errors[1].0.as_str(), errors[1].1.as_str()),
        ("context:decommissioned", "UPSTREAM_UNAVAILABLE")
    );
    assert_eq!(
        scope_statuses(&events)[2],
        ("context:staging-us".to_owned(), ScopeState::Ok as i32)
    );
    assert_eq!(upserts(&events).len(), 14);
    assert!(!summary(&events).complete);
    std::fs::remove_dir_all(&dir).ok();
}

/// Resuming from a checkpoint whose continue token has expired (410 Gone)
/// lists that kind again from its first page (which hands out a fresh
/// token): the resumed stream sends what the broken one had not, without
/// duplicates.
#[tokio::test]
async fn an_expired_continue_token_on_resume_relists_without_duplicates() {
    let server = TestServer::start().await;
    let reference = upserts(&collect(open(&server, request(full())).await).await);
    let mut stream = open(&server, request(full())).await.unwrap();
    let mut before = Vec::new();
    let token = loop {
        let event = futures::StreamExt::next(&mut stream).await.unwrap().unwrap();
        if let Some(Event::Checkpoint(c)) = &event.event {
            break c.token.clone();
        }
        before.push(event);
    };
    drop(stream);
    assert_eq!(
        upserts(&before).len(),
        3,
        "the checkpoint follows the first deployments page"
    );
    // The API server compacted: the old continue token is 410 Gone, and a
    // new list hands out a new one.
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "kubernetes").unwrap();
    let fresh = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDEwOTk5OSwic3RhcnQiOiJwYXltZW50cy9hcGlcdTAwMDAifQ";
    let exchanges = set.exchanges_mut("/clusters/prod-eu/apis/apps/v1/deployments").unwrap();
    let mut expired = None;
    for exchange in exchanges.iter_mut() {
        match exchange.request.query.get("continue").cloned() {
            Some(old) => {
                expired = Some((exchange.clone(), old));
                exchange.request.query.insert("continue".into(), fresh.into());
            }
            None if !exchange.request.query.contains_key("labelSelector") => {
                let body = exchange.response.body.as_mut().unwrap();
                body["metadata"]["continue"] = fresh.into();
            }
            None => {}
        }
    }
    let (mut gone, old) = expired.unwrap();
    gone.request.query.insert("continue".into(), old);
    gone.response.status = 410;
    gone.response.body = Some(serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        "reason": "Expired", "code": 410
    }));
    set.insert(gone);
    let replay = server.server.replay("kubernetes").unwrap();
    replay.set_fixtures(set);
    let mut options = full();
    options.checkpoint = token;
    let after = collect(open(&server, request(options)).await).await;
    assert!(summary(&after).complete, "{:?}", scope_statuses(&after));
    let mut combined = upserts(&before);
    combined.extend(upserts(&after));
    assert_eq!(
        combined, reference,
        "before + after = an unbroken sync, without duplicates"
    );
    assert_eq!(server.unmatched("kubernetes"), Vec::<String>::new());
}

/// The fixtures' kubeconfig with two stale contexts added: `retired`, whose
/// cluster's CA file was deleted, and `orphaned`, whose cluster entry was
/// removed from the kubeconfig (kubectl leaves both behind).
fn kubeconfig_with_stale_contexts(name: &str, upstream: &ReplayServer) -> (PathBuf, PathBuf) {
    fixture_kubeconfig(name, upstream, |text| {
        text.replace(
            "contexts:\n",
            "contexts:\n- name: retired\n  context:\n    cluster: retired\n    user: prod-eu-inventory-reader\n- name: orphaned\n  context:\n    cluster: gone\n    user: prod-eu-inventory-reader\n",
        )
        .replace(
            "users:\n",
            "- name: retired\n  cluster:\n    server: \"https://127.0.0.1:9\"\n    certificate-authority: /nonexistent/retired-ca.crt\nusers:\n",
        )
    })
}

/// A merged KUBECONFIG keeps contexts nobody syncs any more. One that cannot
/// be built (its CA file deleted, its cluster entry removed) no longer stops
/// the server: it fails only the scopes of syncs that name it, with the
/// cause; the default context syncs.
#[tokio::test]
async fn a_context_that_cannot_be_built_fails_only_the_syncs_that_name_it() {
    let upstream = ReplayServer::start(staging_us_only(), ReplayOptions::default())
        .await
        .unwrap();
    let (dir, path) = kubeconfig_with_stale_contexts("stale", &upstream);
    let config = live_config(&path, &["staging-us"]);
    let server = TestServer::with_config(config).await;
    server
        .wait_for_health(
            "connectors.kubernetes.v1.KubernetesConnectorService",
            ServingStatus::Serving,
        )
        .await;

    let events = collect(open(&server, request(full())).await).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(upserts(&events).len(), 14);

    let events = full_sync_of(&server, &["staging-us", "retired", "orphaned"]).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            ("context:staging-us".to_owned(), ScopeState::Ok as i32),
            ("context:retired".to_owned(), ScopeState::Failed as i32),
            ("context:orphaned".to_owned(), ScopeState::Failed as i32),
        ]
    );
    let errors = scope_errors(&events);
    assert_eq!(
        (errors[0].1.as_str(), errors[1].1.as_str()),
        ("KUBECONFIG_CONTEXT_UNUSABLE", "KUBECONFIG_CONTEXT_UNUSABLE")
    );
    assert!(
        errors[0]
            .2
            .starts_with("kubeconfig context \"retired\" cannot be used: ")
            && errors[0].2.contains("/nonexistent/retired-ca.crt"),
        "{}",
        errors[0].2
    );
    assert!(
        errors[1]
            .2
            .starts_with("kubeconfig context \"orphaned\" cannot be used: "),
        "{}",
        errors[1].2
    );
    assert_eq!(upserts(&events).len(), 14);
    assert!(!summary(&events).complete);
    std::fs::remove_dir_all(&dir).ok();
}

/// When the context a default sync syncs is the one that cannot be built, the
/// Kubernetes connector is unavailable (the cause as its reason, syncs
/// FAILED_PRECONDITION); the server and the other connectors serve.
#[tokio::test]
async fn a_default_context_that_cannot_be_built_leaves_only_this_connector_unavailable() {
    use connectors_proto::v1::ConnectorAvailability;

    let upstream = ReplayServer::start(staging_us_only(), ReplayOptions::default())
        .await
        .unwrap();
    let (dir, path) = kubeconfig_with_stale_contexts("stale-default", &upstream);
    let mut config = live_config(&path, &["staging-us", "retired"]);
    // Auto: live where credentials are configured, the others on fixtures.
    config.mode = ConnectorsMode::Auto;
    let server = TestServer::with_config(config).await;
    let (availability, reason) = crate::support::availability_of(&server.client, "kubernetes").await;
    assert_eq!(availability, ConnectorAvailability::Unavailable);
    assert!(
        reason.starts_with("kubeconfig context \"retired\" cannot be used: "),
        "{reason}"
    );
    let status = open(&server, request(full())).await.expect_err("unavailable");
    assert_eq!(status.code(), Code::FailedPrecondition);
    server
        .wait_for_health(
            "connectors.kubernetes.v1.KubernetesConnectorService",
            ServingStatus::NotServing,
        )
        .await;
    // Another connector (fixture mode) serves.
    let registry = server.client.list_connectors().await.unwrap();
    assert_eq!(registry.len(), 7);
    assert!(summary(&crate::support::github_full_sync(&server.client).await).complete);
    assert_eq!(upstream.stats().requests(), 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// A CA of the test's own, and a certificate for `server` (an IP address or
/// a DNS name) it signed.
struct TestCa {
    pem: String,
    leaf: rustls::pki_types::CertificateDer<'static>,
    leaf_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn test_ca(name: &str, server: &str) -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let ca = params.self_signed(&key).unwrap();
    let issuer = Issuer::from_params(&params, &key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![server.to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    TestCa {
        pem: ca.pem(),
        leaf: leaf.der().clone(),
        leaf_key: rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
    }
}

/// An `https://127.0.0.1:<port>` front for `backend` (plain HTTP) whose
/// certificate `ca` signed, as an API server's is.
async fn tls_front(backend: &ReplayServer, ca: &TestCa) -> String {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ca.leaf.clone()], ca.leaf_key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let backend = backend.base_url().trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

/// client-go trusts only the kubeconfig's `certificate-authority(-data)` for
/// that cluster. The server added the CA to the built-in roots instead, so an
/// API server (or a man in the middle) presenting a certificate of any CA the
/// system trusts was accepted too. Here the "system" trusts CA B
/// (`SSL_CERT_FILE`, read by rustls-native-certs), the kubeconfig names CA A:
/// a B-signed API server must be refused for the context that names A, and
/// still accepted for a context that names no CA.
#[tokio::test]
async fn a_context_with_a_ca_trusts_that_ca_only_not_the_system_roots() {
    let (ours, system) = (
        test_ca("cluster CA A", "127.0.0.1"),
        test_ca("system-trusted CA B", "127.0.0.1"),
    );
    let mut set = staging_us_only();
    set.insert(version_exchange("/clusters/staging-us"));
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let (signed_by_ours, signed_by_system) = (tls_front(&upstream, &ours).await, tls_front(&upstream, &system).await);
    let dir = std::env::temp_dir().join(format!("kubeconfig-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let system_roots = dir.join("system-roots.pem");
    std::fs::write(&system_roots, &system.pem).unwrap();
    let ca_data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ours.pem);
    let cluster = |name: &str, server: &str, ca: bool| {
        let ca = if ca {
            format!("    certificate-authority-data: {ca_data}\n")
        } else {
            String::new()
        };
        format!("- name: {name}\n  cluster:\n    server: {server}/clusters/staging-us\n{ca}")
    };
    let context = |name: &str| format!("- name: {name}\n  context:\n    cluster: {name}\n    user: reader\n");
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{}{}{}users:\n- name: reader\n  user:\n    token: fixture-token-staging-us\ncontexts:\n{}{}{}current-context: trusted\n",
            cluster("trusted", &signed_by_ours, true),
            cluster("impostor", &signed_by_system, true),
            cluster("public", &signed_by_system, false),
            context("trusted"),
            context("impostor"),
            context("public"),
        ),
    )
    .unwrap();
    let (_process, client) = crate::support::serve_with_env(&[
        ("CONNECTORS_MODE", "live"),
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("KUBERNETES_PAGE_SIZE", "3"),
        ("SSL_CERT_FILE", system_roots.to_str().unwrap()),
    ])
    .await;
    let request = SyncRequest {
        contexts: ["trusted", "impostor", "public"].map(String::from).to_vec(),
        options: Some(full()),
        ..Default::default()
    };
    let events = collect(client.kubernetes().sync(request).await.map(|r| r.into_inner())).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            ("context:trusted".to_owned(), ScopeState::Ok as i32),
            ("context:impostor".to_owned(), ScopeState::Failed as i32),
            ("context:public".to_owned(), ScopeState::Ok as i32),
        ]
    );
    let errors = scope_errors(&events);
    assert_eq!(
        (errors[0].0.as_str(), errors[0].1.as_str()),
        ("context:impostor", "UPSTREAM_UNAVAILABLE")
    );
    assert_eq!(upserts(&events).len(), 2 * 14);
    std::fs::remove_dir_all(&dir).ok();
}

/// A cluster's `tls-server-name` (the API server reached by IP, its
/// certificate for another name) and `proxy-url` (the API server reachable
/// only through a proxy) are honoured; both were ignored, so such contexts
/// failed. Only the verification name changes (the SNI stays the URL's
/// host, none for an IP): a name the certificate does not hold still fails.
#[tokio::test]
async fn a_cluster_s_tls_server_name_and_proxy_url_are_honoured() {
    let ca = test_ca("cluster CA", "kubernetes.internal");
    let upstream = ReplayServer::start(staging_us_only(), ReplayOptions::default())
        .await
        .unwrap();
    let front = tls_front(&upstream, &ca).await;
    let ca_data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ca.pem);
    let named = |name: &str, server_name: &str| {
        format!(
            "- name: {name}\n  cluster:\n    server: {front}/clusters/staging-us\n    certificate-authority-data: {ca_data}\n    tls-server-name: {server_name}\n"
        )
    };
    // Nothing listens on port 9: only the proxy (the replay server, which
    // answers the absolute-form request by its path) reaches the API.
    let proxied = format!(
        "- name: proxied\n  cluster:\n    server: http://127.0.0.1:9/clusters/staging-us\n    proxy-url: {}\n",
        upstream.base_url()
    );
    let context = |name: &str| format!("- name: {name}\n  context:\n    cluster: {name}\n    user: reader\n");
    let (dir, path) = fixture_kubeconfig("names-and-proxies", &upstream, |_| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{}{}{proxied}users:\n- name: reader\n  user:\n    token: fixture-token-staging-us\ncontexts:\n{}{}{}",
            named("named", "kubernetes.internal"),
            named("misnamed", "other.internal"),
            context("named"),
            context("misnamed"),
            context("proxied"),
        )
    });
    let server = TestServer::with_config(live_config(&path, &["named"])).await;
    let events = full_sync_of(&server, &["named", "misnamed", "proxied"]).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            ("context:named".to_owned(), ScopeState::Ok as i32),
            ("context:misnamed".to_owned(), ScopeState::Failed as i32),
            ("context:proxied".to_owned(), ScopeState::Ok as i32),
        ]
    );
    assert_eq!(scope_errors(&events)[0].1, "UPSTREAM_UNAVAILABLE");
    assert_eq!(upserts(&events).len(), 2 * 14);
    // The start-up check of `named` has no fixture; nothing else is unmatched.
    let unmatched: Vec<String> = upstream
        .unmatched_requests()
        .into_iter()
        .filter(|r| r != "GET /clusters/staging-us/version")
        .collect();
    assert_eq!(unmatched, Vec::<String>::new());
    std::fs::remove_dir_all(&dir).ok();
}

/// The API answers the lists of a namespace that does not exist with empty
/// lists, so a misspelt namespace was a scope OK with no entities. A
/// namespace the request names is read first: 404 fails its scope with
/// UPSTREAM_NOT_FOUND naming it, and nothing is listed.
#[tokio::test]
async fn a_namespace_that_does_not_exist_fails_its_scope_naming_it() {
    let server = TestServer::start().await;
    let events = sync_namespaces(&server, "prod-eu", &["payments", "paymnets"]).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            ("namespace:prod-eu/payments".to_owned(), ScopeState::Ok as i32),
            ("namespace:prod-eu/paymnets".to_owned(), ScopeState::Failed as i32),
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![(
            "namespace:prod-eu/paymnets".to_owned(),
            "UPSTREAM_NOT_FOUND".to_owned(),
            "namespace prod-eu/paymnets: kubernetes answered 404 NotFound: namespaces \"paymnets\" not found"
                .to_owned()
        )]
    );
    assert_eq!(upserts(&events).len(), 2 + 6);
    // payments: the namespace, 1 + 2 list pages; paymnets: the namespace.
    assert_eq!(summary(&events).upstream_requests, 4 + 1);
    assert_eq!(server.unmatched("kubernetes"), Vec::<String>::new());
}

/// A credential that may list workloads in a namespace but not read the
/// namespace itself (403 on `GET /api/v1/namespaces/{ns}`) lists as before.
#[tokio::test]
async fn a_namespace_the_credential_may_not_read_is_listed_all_the_same() {
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "kubernetes").unwrap();
    assert_eq!(set.remove_path("/clusters/prod-eu/api/v1/namespaces/payments"), 1);
    set.insert(serde_json::from_value(serde_json::json!({
        "request": {"method": "GET", "path": "/clusters/prod-eu/api/v1/namespaces/payments"},
        "response": {"status": 403, "headers": {"content-type": "application/json"}, "body": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "namespaces \"payments\" is forbidden: User \"system:serviceaccount:connectors:connectors-server\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"payments\"",
            "reason": "Forbidden", "details": {"name": "payments", "kind": "namespaces"}, "code": 403}}
    }))
    .unwrap());
    let server = TestServer::start().await;
    server.server.replay("kubernetes").unwrap().set_fixtures(set);
    let events = sync_namespaces(&server, "prod-eu", &["payments"]).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(upserts(&events).len(), 2 + 6);
    assert_eq!(summary(&events).upstream_requests, 1 + 1 + 2);
    assert_eq!(server.unmatched("kubernetes"), Vec::<String>::new());
}
