//! The Wiz connector: the conformance suite on fixtures, and the
//! Wiz-specific behaviour (platform scopes, filters, pagination, GraphQL
//! errors with partial data, token renewal on 401, 429s, live mode).

use std::path::PathBuf;

use async_trait::async_trait;
use connectors_proto::v1::{
    ConnectorAvailability, EntityKind, ScopeState, SourceMode, SyncEvent, SyncOptions, entity::Body, sync_event::Event,
};
use connectors_proto::wiz::v1::SyncRequest;
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::replay::{FixtureSet, ReplayOptions, ReplayServer};
use futures::StreamExt;
use serde::Deserialize;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::conformance::{FaultRun, Harness, Page, Refusal, collect, full, incremental, refuse_page_token};
use crate::support::{TestServer, deletions, scope_statuses, summary, upserts};

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[derive(Debug, Deserialize)]
struct EstateResource {
    id: String,
    cloud_platform: String,
}

/// fixtures/wiz/estate.json: every resource, in the tenant listing order.
fn estate() -> Vec<EstateResource> {
    let text = std::fs::read_to_string(fixtures_root().join("wiz/estate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn urn(id: &str) -> String {
    format!("urn:connectors:wiz:asset:{id}")
}

#[derive(Debug, Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Wiz;

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.wiz().sync(request).await.map(|r| r.into_inner())
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        options: Some(options),
        ..Default::default()
    }
}

/// The base fixtures with a scenario's exchanges laid over them.
fn with_scenario(name: &str) -> FixtureSet {
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "wiz").unwrap();
    set.overlay_dir(&root.join(format!("wiz/scenarios/{name}/exchanges")))
        .unwrap();
    set
}

#[async_trait]
impl Harness for Wiz {
    const ID: &'static str = "wiz";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(server, request(options)).await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        // The estate the fixture generator wrote (fixtures/wiz/generate.py).
        assert_eq!(estate().len(), 42);
        vec![(EntityKind::Asset, 42)]
    }

    fn apply_change(server: &TestServer) {
        server
            .server
            .replay("wiz")
            .unwrap()
            .set_fixtures(with_scenario("changed"));
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let text = std::fs::read_to_string(fixtures_root().join("wiz/scenarios/changed/expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        crate::conformance::malformed_fails(
            run,
            "tenant",
            "wiz returned a body that does not parse as a graphql answer",
        )
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let platforms = |p: &[&str]| SyncRequest {
            cloud_platforms: p.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (platforms(&["aws"]), "cloud_platforms[0]"),
            (platforms(&["AWS", "Mars"]), "cloud_platforms[1]"),
            (platforms(&["AWS", "AWS"]), "cloud_platforms[1]"),
            (
                platforms(&[
                    "AWS",
                    "Azure",
                    "GCP",
                    "OCI",
                    "Alibaba",
                    "Kubernetes",
                    "OpenShift",
                    "vSphere",
                    "Linode",
                    "a",
                    "b",
                    "c",
                    "d",
                    "e",
                    "f",
                    "g",
                    "h",
                ]),
                "cloud_platforms",
            ),
            (
                SyncRequest {
                    resource_types: vec!["BUCKET".into(), "bucket".into()],
                    ..Default::default()
                },
                "resource_types[1]",
            ),
            (
                SyncRequest {
                    resource_types: vec![String::new()],
                    ..Default::default()
                },
                "resource_types[0]",
            ),
            (
                SyncRequest {
                    subscription_ids: vec!["123456789012".into(), "a b".into()],
                    ..Default::default()
                },
                "subscription_ids[1]",
            ),
            (
                SyncRequest {
                    subscription_ids: vec!["x".repeat(129)],
                    ..Default::default()
                },
                "subscription_ids[0]",
            ),
            (
                SyncRequest {
                    subscription_ids: (0..101).map(|i| format!("acct-{i}")).collect(),
                    ..Default::default()
                },
                "subscription_ids",
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

crate::conformance_suite!(conformance, crate::wiz::Wiz);

fn assets(events: &[SyncEvent]) -> Vec<connectors_proto::v1::CloudAsset> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => match u.entity.as_ref()?.body.as_ref()? {
                Body::Asset(asset) => Some(asset.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn scope_message(events: &[SyncEvent], scope: &str) -> (i32, String, String) {
    events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) if s.scope == scope => Some((s.state, s.reason.clone(), s.error.clone())),
            _ => None,
        })
        .expect("scope status")
}

#[tokio::test]
async fn the_tenant_is_paged_with_cursors_and_mapped_to_assets() {
    let server = TestServer::start().await;
    let events = collect(open(&server, request(full())).await).await;
    let expected: Vec<String> = estate().iter().map(|r| urn(&r.id)).collect();
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, expected, "every resource, in listing order");
    // 42 resources, 12 a page: 4 pages, a checkpoint after each of the first 3 and after the scope.
    assert_eq!(server.upstream_requests("wiz"), 4);
    let checkpoints = events
        .iter()
        .filter(|e| matches!(e.event, Some(Event::Checkpoint(_))))
        .count();
    assert_eq!(checkpoints, 4);
    assert_eq!(
        scope_statuses(&events),
        vec![("tenant".to_owned(), ScopeState::Ok as i32)]
    );
    let platforms: std::collections::BTreeSet<String> = assets(&events).into_iter().map(|a| a.cloud_platform).collect();
    assert_eq!(platforms.into_iter().collect::<Vec<_>>(), ["aws", "azure", "gcp"]);

    // One resource, field by field.
    let orders = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) if u.entity.as_ref()?.display_name == "orders-db" => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    let entity = orders.entity.unwrap();
    let labels: Vec<(String, String)> = entity.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
    assert_eq!(
        labels,
        [
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "orders".to_owned())
        ]
    );
    let Some(Body::Asset(asset)) = entity.body else {
        panic!("asset")
    };
    assert_eq!(asset.asset_type, "wiz.db_server");
    assert_eq!(asset.native_type, "AWS::RDS::DBInstance");
    assert_eq!(asset.cloud_platform, "aws");
    assert_eq!(asset.account, "123456789012");
    assert_eq!(asset.region, "us-east-1");
    assert_eq!(asset.status, "Active");
    assert_eq!(asset.external_id, "arn:aws:rds:us-east-1:123456789012:orders-db");
    let provenance = orders.provenance.unwrap();
    assert_eq!(provenance.operation, "cloudResources");
    assert_eq!(provenance.source, "tenant");
    assert_eq!(provenance.source_mode, SourceMode::Fixture as i32);
    assert_eq!(server.unmatched("wiz"), Vec::<String>::new());
}

#[tokio::test]
async fn each_cloud_platform_is_a_scope_of_its_own() {
    let server = TestServer::start().await;
    let events = collect(
        open(
            &server,
            SyncRequest {
                cloud_platforms: vec!["GCP".into(), "AWS".into(), "Azure".into()],
                options: Some(full()),
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            ("platform:GCP".to_owned(), ScopeState::Ok as i32),
            ("platform:AWS".to_owned(), ScopeState::Ok as i32),
            ("platform:Azure".to_owned(), ScopeState::Ok as i32),
        ]
    );
    let estate = estate();
    let count = |p: &str| estate.iter().filter(|r| r.cloud_platform == p).count();
    assert_eq!((count("AWS"), count("Azure"), count("GCP")), (16, 14, 12));
    let platforms: Vec<String> = assets(&events).into_iter().map(|a| a.cloud_platform).collect();
    let mut expected = vec!["gcp"; 12];
    expected.extend(vec!["aws"; 16]);
    expected.extend(vec!["azure"; 14]);
    assert_eq!(platforms, expected, "scopes in request order");
    // AWS and Azure take 2 pages each, GCP fits on 1.
    assert_eq!(server.upstream_requests("wiz"), 5);
    let sources: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => Some(u.provenance.as_ref()?.source.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sources.len(), 3);
    assert_eq!(server.unmatched("wiz"), Vec::<String>::new());
}

#[tokio::test]
async fn graphql_errors_with_partial_data_emit_the_data_and_fail_the_scope() {
    let server = TestServer::start().await;
    server
        .server
        .replay("wiz")
        .unwrap()
        .set_fixtures(with_scenario("partial-errors"));
    let events = collect(open(&server, request(full())).await).await;
    // Page 1 (12) and the first half of page 2 (6); pages 3 and 4 are not asked for.
    let expected: Vec<String> = estate().iter().take(18).map(|r| urn(&r.id)).collect();
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, expected);
    let (state, reason, message) = scope_message(&events, "tenant");
    assert_eq!(state, ScopeState::Failed as i32);
    assert_eq!(reason, "UPSTREAM_GRAPHQL_ERROR");
    assert_eq!(
        message,
        "cloudResources: wiz answered 1 graphql error(s): Resource graph query timed out for some resources"
    );
    let s = summary(&events);
    assert!(!s.complete);
    assert_eq!((s.scopes_ok, s.scopes_failed), (0, 1));
    assert_eq!(server.upstream_requests("wiz"), 2);
}

#[tokio::test]
async fn a_failed_scope_sends_no_deletions_and_the_next_sync_recovers() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let replay = server.server.replay("wiz").unwrap();
    replay.set_fixtures(with_scenario("partial-errors"));
    let failed = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    assert_eq!(
        deletions(&failed),
        Vec::<String>::new(),
        "no deletions from a partial scope"
    );
    replay.set_fixtures(FixtureSet::load_provider(&fixtures_root(), "wiz").unwrap());
    let again = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    assert_eq!(upserts(&again), Vec::<(String, String)>::new());
    assert_eq!(deletions(&again), Vec::<String>::new());
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let server = TestServer::start().await;
    server
        .server
        .replay("wiz")
        .unwrap()
        .set_fixtures(with_scenario("rate-limited"));
    let started = std::time::Instant::now();
    let events = collect(open(&server, request(full())).await).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert_eq!(upserts(&events).len(), 42);
    assert_eq!(
        scope_statuses(&events),
        vec![("tenant".to_owned(), ScopeState::Ok as i32)]
    );
    // 4 pages plus the one 429.
    assert_eq!(server.upstream_requests("wiz"), 5);
    assert_eq!(summary(&events).upstream_requests, 5);
}

/// A server with the Wiz connector live against `upstream` (both the GraphQL
/// and the token endpoint on the replay server).
async fn live(upstream: &ReplayServer, client_credentials: bool) -> TestServer {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.wiz.api_url = Some(url::Url::parse(&format!("{}/graphql", upstream.base_url())).unwrap());
    config.wiz.auth_url = Some(url::Url::parse(&format!("{}/oauth/token", upstream.base_url())).unwrap());
    config.wiz.page_size = Some(12);
    if client_credentials {
        config.wiz.client_id = Some("fixture-client".into());
        config.wiz.client_secret = Some("fixture-secret".into());
    } else {
        config.wiz.token = Some("fixture-token-a".into());
    }
    TestServer::with_config(config).await
}

/// Waits until `upstream` has answered `requests` requests (the start-up check).
async fn settle(upstream: &ReplayServer, requests: u64) {
    for _ in 0..200 {
        if upstream.stats().requests() >= requests {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(upstream.stats().requests(), requests, "the start-up credential check");
}

#[tokio::test]
async fn a_401_on_token_expiry_renews_the_token_once_and_continues() {
    let upstream = ReplayServer::start(with_scenario("token-expiry"), ReplayOptions::default())
        .await
        .unwrap();
    let server = live(&upstream, true).await;
    let listed = server.client.get_connector("wiz").await.unwrap();
    assert_eq!(listed.availability, ConnectorAvailability::Live as i32);
    // The start-up credential check (token A, then a one-resource query) runs
    // in the background; wait for it so the counts below are the sync's own.
    settle(&upstream, 2).await;
    let before = upstream.stats().requests();
    let events = collect(open(&server, request(full())).await).await;
    assert_eq!(upserts(&events).len(), 42);
    assert_eq!(
        scope_statuses(&events),
        vec![("tenant".to_owned(), ScopeState::Ok as i32)]
    );
    for event in &events {
        if let Some(Event::Upsert(u)) = &event.event {
            assert_eq!(u.provenance.as_ref().unwrap().source_mode, SourceMode::Live as i32);
        }
    }
    // Page 1 (token A), page 2 with token A (401), a new token, page 2 again
    // (token B), pages 3 and 4 (token B).
    assert_eq!(upstream.stats().requests() - before, 6);
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    // The start-up check passed.
    let mut health = HealthClient::new(server.client.channel().clone());
    let check = health
        .check(HealthCheckRequest {
            service: "connectors.wiz.v1.WizConnectorService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.status, ServingStatus::Serving as i32);
    upstream.shutdown();
}

#[tokio::test]
async fn a_service_account_without_read_resources_is_not_serving_and_fails_its_scopes_as_denied() {
    // Wiz answers HTTP 200 with a GraphQL error for a query the token's
    // scopes do not allow: the start-up check must not pass it.
    let upstream = ReplayServer::start(with_scenario("permission-denied"), ReplayOptions::default())
        .await
        .unwrap();
    let server = live(&upstream, false).await;
    settle(&upstream, 1).await;
    let service = || HealthCheckRequest {
        service: "connectors.wiz.v1.WizConnectorService".into(),
    };
    let mut health = HealthClient::new(server.client.channel().clone());
    let mut status = ServingStatus::Unknown as i32;
    for _ in 0..100 {
        status = health.check(service()).await.unwrap().into_inner().status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, ServingStatus::NotServing as i32);
    let events = collect(open(&server, request(full())).await).await;
    assert_eq!(upserts(&events), Vec::new());
    assert_eq!(
        scope_message(&events, "tenant"),
        (
            ScopeState::Failed as i32,
            "UPSTREAM_PERMISSION_DENIED".to_owned(),
            "cloudResources: wiz answered 1 graphql error(s): Access denied: the service account's API scopes do not include read:resources".to_owned()
        )
    );
    assert_eq!(upstream.stats().requests(), 2);
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    upstream.shutdown();
}

#[tokio::test]
async fn a_rejected_ready_token_ends_the_sync_with_failed_precondition() {
    // WIZ_TOKEN cannot be renewed: page 2 answers 401 to token A and the sync ends.
    let upstream = ReplayServer::start(with_scenario("token-expiry"), ReplayOptions::default())
        .await
        .unwrap();
    let server = live(&upstream, false).await;
    settle(&upstream, 1).await;
    let mut stream = open(&server, request(full())).await.unwrap();
    let mut upserted = 0;
    let status = loop {
        match stream.next().await {
            Some(Ok(event)) => {
                if matches!(event.event, Some(Event::Upsert(_))) {
                    upserted += 1;
                }
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without an error"),
        }
    };
    assert_eq!(upserted, 12, "page 1 was sent before the 401");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("401"), "{}", status.message());
    upstream.shutdown();
}

#[tokio::test]
async fn live_mode_without_credentials_is_a_failed_precondition_naming_the_variables() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    let server = TestServer::with_config(config).await;
    let entry = server.client.get_connector("wiz").await.unwrap();
    assert_eq!(entry.availability, ConnectorAvailability::Unavailable as i32);
    let status = open(&server, request(full())).await.expect_err("not configured");
    assert_eq!(status.code(), Code::FailedPrecondition);
    for var in ["WIZ_CLIENT_ID", "WIZ_CLIENT_SECRET", "WIZ_TOKEN"] {
        assert!(status.message().contains(var), "{}", status.message());
    }
}

#[tokio::test]
async fn the_registry_lists_wiz_as_fixture_with_what_to_set() {
    let server = TestServer::start().await;
    let entry = server.client.get_connector("wiz").await.unwrap();
    assert_eq!(entry.service, "connectors.wiz.v1.WizConnectorService");
    assert_eq!(entry.availability, ConnectorAvailability::Fixture as i32);
    assert_eq!(entry.kinds, vec![EntityKind::Asset as i32]);
    assert!(!entry.supports_incremental);
    assert_eq!(entry.auth_modes, vec!["client_credentials", "token"]);
}

/// The cursor the tenant's first page ends at.
const PAGE_1_END: &str = "YXJyYXljb25uZWN0aW9uOjEx";

/// The fixtures with the tenant's `endCursor` of page 1 expired: Wiz
/// answers the query resuming after it with a GraphQL error coded as bad
/// input and no data (Wiz does not publish how it words or codes a refused
/// cursor; `BAD_USER_INPUT` is the GraphQL servers' code for an invalid
/// argument, the message is written for the fixture).
fn refusing(refusal: Refusal) -> FixtureSet {
    let fresh = "YXJyYXljb25uZWN0aW9uOjExOmZyZXNo";
    let mut set = FixtureSet::load_provider(&fixtures_root(), "wiz").unwrap();
    refuse_page_token(
        &mut set,
        "/graphql",
        refusal,
        |exchange| {
            let variables = &exchange.request.body_json.as_ref()?["variables"];
            let tenant = variables["filterBy"] == serde_json::json!({}) && variables["first"] == 12;
            match variables.get("after").and_then(|a| a.as_str()) {
                None if tenant => Some(Page::First),
                Some(PAGE_1_END) => Some(Page::Next),
                _ => None,
            }
        },
        |exchange| {
            exchange.response.body = Some(serde_json::json!({
                "errors": [{
                    "message": "invalid cursor: the cursor is malformed or has expired",
                    "path": ["cloudResources"],
                    "extensions": {"code": "BAD_USER_INPUT"}
                }],
                "data": null
            }));
        },
        |exchange, page| match page {
            Page::First => {
                let body = exchange.response.body.as_mut().unwrap();
                body["data"]["cloudResources"]["pageInfo"]["endCursor"] = fresh.into();
            }
            Page::Next => exchange.request.body_json.as_mut().unwrap()["variables"]["after"] = fresh.into(),
        },
    );
    set
}

/// Resuming from a checkpoint whose cursor Wiz refuses (expired) queries
/// the tenant again from its first page: the scope ends OK, and what the
/// broken stream had sent is not sent again. A refusal after that restart
/// fails the scope.
#[tokio::test]
async fn an_expired_cursor_on_resume_queries_again_from_the_first_page() {
    let run = crate::conformance::stale_page_token::<Wiz>(PAGE_1_END, "tenant", refusing).await;
    let urns = |events: &[SyncEvent]| -> Vec<String> { upserts(events).into_iter().map(|(u, _)| u).collect() };
    let expected: Vec<String> = estate().iter().map(|r| urn(&r.id)).collect();
    assert_eq!(urns(&run.before), expected[..12]);
    assert_eq!(urns(&run.resumed), expected[12..]);
    // The refused query, page 1 again, pages 2 to 4; the refused query,
    // page 1 and the refused query again; the refused query and page 1.
    assert_eq!(run.requests, [5, 3, 2]);
    for events in &run.bounded {
        let (state, reason, message) = scope_message(events, "tenant");
        assert_eq!(state, ScopeState::Failed as i32);
        assert_eq!(reason, "UPSTREAM_GRAPHQL_ERROR");
        assert!(message.contains("invalid cursor"), "{message}");
    }
}
