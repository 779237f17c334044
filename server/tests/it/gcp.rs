//! The GCP connector: the conformance suite on fixtures, and the
//! GCP-specific behaviour (assets, request counts, pagination, errors).

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use connectors_proto::gcp::v1::SyncRequest;
use connectors_proto::v1::{EntityKind, ScopeState, SyncEvent, SyncOptions, entity::Body, sync_event::Event};
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::replay::{FixtureSet, ReplayOptions, ReplayServer};
use futures::StreamExt;
use serde::Deserialize;
use tonic::{Code, Status};

use crate::conformance::{FaultRun, Harness, Page, Refusal, collect, full, incremental, refuse_page_token};
use crate::support::{TestServer, scope_errors, scope_statuses, summary, upserts};

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EstateProject {
    repositories: Vec<String>,
    docker_images: Vec<String>,
    services: Vec<String>,
    clusters: Vec<String>,
}

/// fixtures/gcp/estate.json: project -> resource names.
fn estate() -> BTreeMap<String, EstateProject> {
    let text = std::fs::read_to_string(fixtures_root().join("gcp/estate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Debug, Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Gcp;

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.gcp().sync(request).await.map(|r| r.into_inner())
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        options: Some(options),
        ..Default::default()
    }
}

/// A listing page that does not parse is that listing's failure: the
/// project's other listings (the other location's repositories, Cloud Run,
/// GKE) are sent, then its scope ends FAILED `UPSTREAM_MALFORMED` naming it.
#[tokio::test]
async fn a_listing_that_does_not_parse_fails_its_project_after_the_other_listings() {
    let server = TestServer::start().await;
    let prod = || SyncRequest {
        project_ids: vec!["acme-prod-4821".into()],
        options: Some(full()),
    };
    let clean = collect(open(&server, prod()).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "gcp").unwrap();
    set.insert(crate::support::cut_short(
        "/artifactregistry.googleapis.com/v1/projects/acme-prod-4821/locations/us-central1/repositories",
        serde_json::json!({"pageSize": "2"}),
        r#"{"repositories": [{"name": "projects/"#,
    ));
    server.server.replay("gcp").unwrap().set_fixtures(set);
    let events = collect(open(&server, prod()).await).await;
    let expected: Vec<(String, String)> = upserts(&clean)
        .into_iter()
        .filter(|(urn, _)| !urn.contains("/locations/us-central1/repositories/"))
        .collect();
    // Left out: us-central1's repositories and their images (7); sent:
    // europe-west1's, the Cloud Run services and the GKE cluster (9).
    assert_eq!((upserts(&clean).len(), expected.len()), (16, 9));
    assert_eq!(upserts(&events), expected);
    assert_eq!(
        scope_errors(&events),
        vec![(
            "project:acme-prod-4821".to_owned(),
            "UPSTREAM_MALFORMED".to_owned(),
            "artifactregistry.googleapis.com /v1/projects/acme-prod-4821/locations/us-central1/repositories: artifactregistry.googleapis.com returned a body that does not parse: EOF while parsing a string at line 1 column 37".to_owned()
        )]
    );
    assert_eq!(crate::support::deletions(&events), Vec::<String>::new());
}

#[async_trait]
impl Harness for Gcp {
    const ID: &'static str = "gcp";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(server, request(options)).await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        let total: usize = estate()
            .values()
            .map(|p| p.repositories.len() + p.docker_images.len() + p.services.len() + p.clusters.len())
            .sum();
        // The estate fixtures/gcp/generate.py wrote.
        assert_eq!(total, 22);
        vec![(EntityKind::Asset, total as u64)]
    }

    fn apply_change(server: &TestServer) {
        let root = fixtures_root();
        let mut set = FixtureSet::load_provider(&root, "gcp").unwrap();
        set.overlay_dir(&root.join("gcp/scenarios/changed/exchanges")).unwrap();
        server.server.replay("gcp").unwrap().set_fixtures(set);
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let text = std::fs::read_to_string(fixtures_root().join("gcp/scenarios/changed/expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        crate::conformance::malformed_fails(
            run,
            "project:acme-prod-4821",
            "artifactregistry.googleapis.com /v1/projects/acme-prod-4821/locations/europe-west1/repositories: artifactregistry.googleapis.com returned a body that does not parse: EOF while parsing a value at line 1 column 20",
        )
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let projects = |ids: &[&str]| SyncRequest {
            project_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let many: Vec<String> = (0..101).map(|i| format!("project-{i:03}")).collect();
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (projects(&[""]), "project_ids[0]"),
            (projects(&["acme-prod-4821", "Acme-Prod"]), "project_ids[1]"),
            (projects(&["acme-prod-4821", "acme-prod-4821"]), "project_ids[1]"),
            (projects(&["https://evil.example/x"]), "project_ids[0]"),
            (projects(&["acme-prod-4821/../x"]), "project_ids[0]"),
            (projects(&["short"]), "project_ids[0]"),
            (
                SyncRequest {
                    project_ids: many,
                    ..Default::default()
                },
                "project_ids",
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

crate::conformance_suite!(conformance, crate::gcp::Gcp);

#[tokio::test]
async fn full_sync_maps_every_asset_type_with_exact_values_and_requests() {
    let server = TestServer::start().await;
    let events = collect(open(&server, request(full())).await).await;
    let s = summary(&events);
    assert!(s.complete);
    // Per project: repositories per location (2), docker images pages,
    // services pages per location, one cluster listing. acme-prod: 1 + 3
    // (5 images, pageSize 2) + 1 + 1 + 2 (3 services) + 1 + 1; acme-staging:
    // 1 + 1 + 1 + 1 + 1 + 1.
    assert_eq!(s.upstream_requests, 10 + 6);
    assert_eq!(server.unmatched("gcp"), Vec::<String>::new());
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut entities = BTreeMap::new();
    for event in &events {
        if let Some(Event::Upsert(u)) = &event.event {
            let entity = u.entity.clone().unwrap();
            let Some(Body::Asset(a)) = &entity.body else {
                panic!("not an asset")
            };
            *by_type.entry(a.asset_type.clone()).or_default() += 1;
            entities.insert(entity.urn.clone(), entity);
        }
    }
    assert_eq!(
        by_type,
        BTreeMap::from([
            ("gcp.artifactregistry.dockerimage".to_owned(), 9),
            ("gcp.artifactregistry.repository".to_owned(), 4),
            ("gcp.container.cluster".to_owned(), 3),
            ("gcp.run.service".to_owned(), 6),
        ])
    );
    let service = &entities["urn:connectors:gcp:asset:projects/acme-prod-4821/locations/us-central1/services/catalog"];
    let labels: Vec<(&str, &str)> = service
        .labels
        .iter()
        .map(|l| (l.key.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(labels, vec![("app", "catalog"), ("env", "prod")]);
    let Some(Body::Asset(a)) = &service.body else { panic!() };
    assert_eq!(
        (a.account.as_str(), a.region.as_str()),
        ("acme-prod-4821", "us-central1")
    );
    assert_eq!(a.status, "CONDITION_SUCCEEDED");
    assert_eq!(a.native_type, "run.googleapis.com/Service");
    assert!(
        a.images[0]
            .image
            .starts_with("us-central1-docker.pkg.dev/acme-prod-4821/containers/catalog@sha256:")
    );
    assert!(a.images[0].digest.starts_with("sha256:"));
    let attrs: Vec<&str> = a.attributes.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(attrs, vec!["generation", "ingress", "latest_ready_revision", "uri"]);
    assert!(
        a.attributes
            .iter()
            .any(|l| l.key == "ingress" && l.value == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")
    );
    let cluster =
        &entities["urn:connectors:gcp:asset:projects/acme-prod-4821/locations/europe-west1-b/clusters/prod-eu"];
    let Some(Body::Asset(c)) = &cluster.body else { panic!() };
    assert_eq!(
        c.external_id,
        "https://container.googleapis.com/v1/projects/acme-prod-4821/zones/europe-west1-b/clusters/prod-eu"
    );
    assert_eq!((c.status.as_str(), c.region.as_str()), ("RUNNING", "europe-west1-b"));
    assert!(
        c.attributes
            .iter()
            .any(|l| l.key == "node_pools" && l.value == "default-pool:1.33.5-gke.1162000:e2-standard-4")
    );
    let images: Vec<_> = entities
        .values()
        .filter(|e| {
            e.parent_urn
                == "urn:connectors:gcp:asset:projects/acme-prod-4821/locations/us-central1/repositories/containers"
        })
        .collect();
    assert_eq!(images.len(), 5, "every page of the paginated image listing");
}

/// The events of a FULL sync of the projects `ids`.
async fn full_sync_of(server: &TestServer, ids: &[&str]) -> Vec<SyncEvent> {
    let request = SyncRequest {
        project_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        options: Some(full()),
    };
    collect(open(server, request).await).await
}

#[tokio::test]
async fn a_project_named_in_the_request_is_synced_alone() {
    let server = TestServer::start().await;
    let events = full_sync_of(&server, &["acme-staging-3310"]).await;
    assert_eq!(
        scope_statuses(&events),
        vec![("project:acme-staging-3310".to_owned(), ScopeState::Ok as i32)]
    );
    assert_eq!(upserts(&events).len(), 1 + 2 + 2 + 1);
    assert_eq!(summary(&events).upstream_requests, 6);
}

#[tokio::test]
async fn a_forbidden_project_fails_only_its_scope_with_googles_reason() {
    let server = TestServer::start().await;
    let events = full_sync_of(&server, &["acme-forbidden-0001", "acme-staging-3310"]).await;
    let statuses: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len(), 2);
    let forbidden = statuses
        .iter()
        .find(|s| s.scope == "project:acme-forbidden-0001")
        .unwrap();
    assert_eq!(forbidden.state, ScopeState::Failed as i32);
    assert_eq!(forbidden.reason, "UPSTREAM_PERMISSION_DENIED");
    assert!(forbidden.error.contains("PERMISSION_DENIED"), "{}", forbidden.error);
    let ok = statuses
        .iter()
        .find(|s| s.scope == "project:acme-staging-3310")
        .unwrap();
    assert_eq!(ok.state, ScopeState::Ok as i32);
    assert!(!summary(&events).complete);
}

#[tokio::test]
async fn an_api_never_enabled_in_a_project_has_nothing_there_and_the_rest_is_synced() {
    // A project that uses GKE alone: Cloud Run answers 403 SERVICE_DISABLED.
    // It has no services; its clusters are still synced.
    let server = TestServer::start().await;
    let events = full_sync_of(&server, &["acme-gke-only-5120"]).await;
    assert_eq!(
        scope_statuses(&events),
        vec![("project:acme-gke-only-5120".to_owned(), ScopeState::Ok as i32)]
    );
    let urns: Vec<String> = upserts(&events).into_iter().map(|(urn, _)| urn).collect();
    assert_eq!(
        urns,
        vec!["urn:connectors:gcp:asset:projects/acme-gke-only-5120/locations/europe-west1/clusters/batch".to_owned()]
    );
    // 2 repository listings, Cloud Run once (not again for europe-west1), GKE.
    assert_eq!(summary(&events).upstream_requests, 4);
    assert!(summary(&events).complete);
    assert_eq!(server.unmatched("gcp"), Vec::<String>::new());
}

/// Checkpoints come back from clients: a page cursor pointing at another
/// project's listing (sent with the server's credential) is refused, and not
/// requested.
#[tokio::test]
async fn a_crafted_cursor_is_refused() {
    let server = TestServer::start().await;
    // A checkpoint taken inside a scope (its cursor names the next listing
    // page), from a sync read to its end: no upstream request is left in flight.
    let events = collect(open(&server, request(full())).await).await;
    let token = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Checkpoint(c)) => Some(c.token.clone()),
            _ => None,
        })
        .expect("a checkpoint");
    let text = String::from_utf8(token).unwrap();
    let crafted = text.replace("acme-prod-4821/locations", "victim-project/locations");
    assert_ne!(crafted, text, "the cursor names the listing");
    let mut options = full();
    options.checkpoint = crafted.into_bytes();
    let requests = server.upstream_requests("gcp");
    let result = open(&server, request(options)).await;
    let status = match result {
        Err(status) => status,
        Ok(stream) => {
            let events: Vec<_> = stream.collect().await;
            events.into_iter().find_map(Result::err).expect("the stream fails")
        }
    };
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "options.checkpoint: the page cursor it holds is not valid"
        ),
        "{status:?}"
    );
    // Nothing was asked of the upstream (a request for the victim's listing
    // would also be listed as unmatched).
    assert_eq!(server.upstream_requests("gcp"), requests);
    assert_eq!(server.unmatched("gcp"), Vec::<String>::new());
}

#[tokio::test]
async fn incremental_across_the_change_reads_every_listing_again() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    <Gcp as Harness>::apply_change(&server);
    let events = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    let s = summary(&events);
    // Still 3 image pages (6 images), one service page fewer (2 services).
    assert_eq!(s.upstream_requests, 15);
    assert_eq!(s.deletions, 1);
    assert_eq!(server.unmatched("gcp"), Vec::<String>::new());
}

#[tokio::test]
async fn live_mode_without_credentials_is_a_failed_precondition_naming_the_variables() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    let server = TestServer::with_config(config).await;
    let status = open(&server, request(full())).await.expect_err("not configured");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{}",
        status.message()
    );
}

/// A PKCS#8 RSA key for a test service account (openssl; skipped without it
/// unless CI=true).
fn test_service_account_key() -> Option<String> {
    let output = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output();
    match output {
        Ok(out) if out.status.success() => Some(String::from_utf8(out.stdout).unwrap()),
        other => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("openssl is required under CI=true: {other:?}");
            }
            eprintln!("skipping: openssl not available");
            None
        }
    }
}

/// Live mode with a service account key file: google-cloud-auth signs its
/// token locally (self-signed JWT, no network), the three APIs are the
/// configured URLs (here the replay server under the host prefixes), and the
/// default scope is GCP_PROJECT_IDS.
#[tokio::test]
async fn live_mode_with_a_service_account_key_syncs_the_configured_projects() {
    let Some(key) = test_service_account_key() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("gcp-sa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.json");
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "acme-prod-4821",
        "private_key_id": "0123456789abcdef",
        "private_key": key,
        "client_email": "inventory@acme-prod-4821.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": "https://oauth2.googleapis.com/token"
    });
    std::fs::write(&path, json.to_string()).unwrap();
    let set = FixtureSet::load_provider(&fixtures_root(), "gcp").unwrap();
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let base = upstream.base_url().trim_end_matches('/').to_owned();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.gcp.credentials_file = Some(path);
    config.gcp.project_ids = vec!["acme-staging-3310".into()];
    config.gcp.locations = vec!["us-central1".into(), "europe-west1".into()];
    config.gcp.page_size = Some(2);
    config.gcp.artifactregistry_url =
        Some(url::Url::parse(&format!("{base}/artifactregistry.googleapis.com")).unwrap());
    config.gcp.run_url = Some(url::Url::parse(&format!("{base}/run.googleapis.com")).unwrap());
    config.gcp.container_url = Some(url::Url::parse(&format!("{base}/container.googleapis.com")).unwrap());
    let server = TestServer::with_config(config).await;
    let entry = server.client.get_connector("gcp").await.unwrap();
    assert_eq!(
        entry.availability,
        connectors_proto::v1::ConnectorAvailability::Live as i32
    );
    let events = collect(open(&server, request(full())).await).await;
    assert_eq!(
        scope_statuses(&events),
        vec![("project:acme-staging-3310".to_owned(), ScopeState::Ok as i32)]
    );
    assert_eq!(upserts(&events).len(), 6);
    assert_eq!(upstream.stats().requests(), 6);
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The prod us-central1 Cloud Run listing: 2 pages, `pageToken` on the second.
const SERVICES: &str = "/run.googleapis.com/v2/projects/acme-prod-4821/locations/us-central1/services";

/// The fixtures with the page token of the prod us-central1 services
/// expired: Google answers it 400 `INVALID_ARGUMENT` (its wording for an
/// expired token is not documented; this is its generic message for the
/// status).
fn refusing(refusal: Refusal) -> FixtureSet {
    let fresh = "CiBmcmVzaC10b2tlbi1hZnRlci1leHBpcnk";
    let mut set = FixtureSet::load_provider(&fixtures_root(), "gcp").unwrap();
    refuse_page_token(
        &mut set,
        SERVICES,
        refusal,
        |exchange| {
            let next = exchange.request.query.contains_key("pageToken");
            Some(if next { Page::Next } else { Page::First })
        },
        |exchange| {
            exchange.response.status = 400;
            exchange.response.body = Some(serde_json::json!({"error": {
                "code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"
            }}));
        },
        |exchange, page| match page {
            Page::First => exchange.response.body.as_mut().unwrap()["nextPageToken"] = fresh.into(),
            Page::Next => {
                exchange.request.query.insert("pageToken".into(), fresh.into());
            }
        },
    );
    set
}

/// Resuming from a checkpoint whose `pageToken` Google has expired (page
/// tokens live 1 h to 72 h depending on the API) lists that listing again
/// from its first page: the scope ends OK, and what the broken stream had
/// sent is not sent again. A refusal after that restart fails the scope.
#[tokio::test]
async fn an_expired_page_token_on_resume_lists_again_from_the_first_page() {
    let run = crate::conformance::stale_page_token::<Gcp>("pageToken=", "project:acme-prod-4821", refusing).await;
    let prod = |events: &[SyncEvent]| -> Vec<String> {
        upserts(events)
            .into_iter()
            .map(|(urn, _)| urn)
            .filter(|urn| urn.contains(":projects/acme-prod-4821/"))
            .collect()
    };
    let mut resent = prod(&run.before);
    resent.extend(prod(&run.resumed));
    assert_eq!(resent, prod(&run.unbroken));
    // 3 repositories, 7 images, 4 services, 2 clusters (estate.json).
    assert_eq!(resent.len(), 16);
    assert_eq!(
        prod(&run.resumed),
        [
            "us-central1/services/auth-gateway",
            "europe-west1/services/frontend",
            "us-central1/clusters/prod-us",
            "europe-west1-b/clusters/prod-eu",
        ]
        .map(|name| format!("urn:connectors:gcp:asset:projects/acme-prod-4821/locations/{name}"))
    );
    // The refused page, page 1 again, page 2, the rest of prod (2), staging
    // (6); the refused page, page 1 and the refused page again, or the
    // refused page and page 1 refused too, then staging.
    assert_eq!(run.requests, [3 + 2 + 6, 3 + 6, 2 + 6]);
    for events in &run.bounded {
        let errors = scope_errors(events);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].1, "UPSTREAM_ERROR");
        assert!(errors[0].2.contains("400 INVALID_ARGUMENT"), "{}", errors[0].2);
    }
}
