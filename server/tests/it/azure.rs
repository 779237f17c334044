//! The Azure connector: the conformance suite on fixtures, and the
//! Azure-specific behaviour (scopes, pagination, throttling, errors).

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use connectors_proto::azure::v1::SyncRequest;
use connectors_proto::v1::{EntityKind, ScopeState, SyncEvent, SyncOptions, entity::Body, sync_event::Event};
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::replay::{Exchange, FixtureSet};
use serde::Deserialize;
use tonic::{Code, Status};

use crate::conformance::{FaultRun, Harness, Page, Refusal, collect, full, incremental, refuse_page_token};
use crate::support::{TestServer, scope_errors, scope_statuses, summary, upserts};

const PROD: &str = "2f8a0e8c-5a7b-4f3e-9d1c-0a1b2c3d4e5f";
const DEV: &str = "7c1d3e5f-9a2b-4c6d-8e0f-1a2b3c4d5e6f";
const DENIED: &str = "0b9e8d7c-6f5a-4b3c-9d2e-1f0a9b8c7d6e";
const FOREIGN: &str = "5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716";

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

/// fixtures/azure/estate.json: subscription -> listing -> urns in listing order.
fn estate() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(fixtures_root().join("azure/estate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Debug, Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Azure;

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.azure().sync(request).await.map(|r| r.into_inner())
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        options: Some(options),
        ..Default::default()
    }
}

fn subscriptions(ids: &[&str], options: SyncOptions) -> SyncRequest {
    SyncRequest {
        subscription_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        options: Some(options),
    }
}

fn urns(events: &[SyncEvent]) -> Vec<String> {
    upserts(events).into_iter().map(|(u, _)| u).collect()
}

#[async_trait]
impl Harness for Azure {
    const ID: &'static str = "azure";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(server, request(options)).await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        let total: usize = estate().values().flat_map(|l| l.values()).map(Vec::len).sum();
        // The estate fixtures/azure/generate.py wrote.
        assert_eq!(total, 20);
        vec![(EntityKind::Asset, total as u64)]
    }

    fn apply_change(server: &TestServer) {
        let root = fixtures_root();
        let mut set = FixtureSet::load_provider(&root, "azure").unwrap();
        set.overlay_dir(&root.join("azure/scenarios/changed/exchanges"))
            .unwrap();
        server.server.replay("azure").unwrap().set_fixtures(set);
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let text = std::fs::read_to_string(fixtures_root().join("azure/scenarios/changed/expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        crate::conformance::malformed_fails(
            run,
            format!("subscription:{PROD}"),
            format!("Microsoft.Web/sites of subscription {PROD}: EOF while parsing a value at line 1 column 20"),
        )
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let many: Vec<String> = (0..101).map(|i| format!("00000000-0000-0000-0000-{i:012}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (subscriptions(&[""], full()), "subscription_ids[0]"),
            (subscriptions(&[PROD, "acme-prod"], full()), "subscription_ids[1]"),
            (
                subscriptions(&[&format!("/subscriptions/{PROD}")], full()),
                "subscription_ids[0]",
            ),
            (
                subscriptions(&["https://management.azure.com/subscriptions/x"], full()),
                "subscription_ids[0]",
            ),
            (
                subscriptions(&[PROD, &PROD.to_ascii_uppercase()], full()),
                "subscription_ids[1]",
            ),
            (subscriptions(&many, full()), "subscription_ids"),
            (
                request(SyncOptions {
                    kinds: vec![EntityKind::Repository as i32],
                    ..Default::default()
                }),
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

crate::conformance_suite!(conformance, crate::azure::Azure);

#[tokio::test]
async fn a_full_sync_follows_next_links_and_maps_exact_assets() {
    let server = TestServer::start().await;
    let events = collect(open(&server, request(full())).await).await;
    let s = summary(&events);
    // prod: registries 1 page, clusters 2, sites 2; dev: 1, 1, 2.
    assert_eq!(s.upstream_requests, 9);
    let expected: Vec<String> = [PROD, DEV]
        .iter()
        .flat_map(|sub| {
            let listings = &estate()[*sub];
            ["registries", "managedClusters", "sites"]
                .into_iter()
                .flat_map(|l| listings[l].clone())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(urns(&events), expected, "listing order, subscription by subscription");
    assert_eq!(
        scope_statuses(&events),
        vec![
            (format!("subscription:{PROD}"), ScopeState::Ok as i32),
            (format!("subscription:{DEV}"), ScopeState::Ok as i32),
        ]
    );
    let site = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) if u.entity.as_ref()?.display_name == "acme-storefront" => u.entity.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        site.urn,
        format!(
            "urn:connectors:azure:asset:/subscriptions/{PROD}/resourcegroups/web-rg/providers/microsoft.web/sites/acme-storefront"
        )
    );
    let labels: Vec<(&str, &str)> = site.labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).collect();
    assert_eq!(labels, [("env", "prod"), ("team", "web")]);
    let Some(Body::Asset(asset)) = &site.body else { panic!() };
    assert_eq!(asset.asset_type, "azure.web.site");
    assert_eq!(asset.native_type, "Microsoft.Web/sites");
    assert_eq!(asset.account, PROD);
    assert_eq!(
        (asset.region.as_str(), asset.status.as_str()),
        ("West Europe", "Running")
    );
    let images: Vec<(&str, &str)> = asset
        .images
        .iter()
        .map(|i| (i.container.as_str(), i.image.as_str()))
        .collect();
    assert_eq!(images, [("acme-storefront", "acmeprod.azurecr.io/storefront:2.14.1")]);
    assert_eq!(
        asset.external_id,
        format!("/subscriptions/{PROD}/resourceGroups/web-rg/providers/Microsoft.Web/sites/acme-storefront")
    );
    let stopped = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) if u.entity.as_ref()?.display_name == "aks-batch" => u.entity.clone(),
            _ => None,
        })
        .unwrap();
    let Some(Body::Asset(asset)) = &stopped.body else {
        panic!()
    };
    assert_eq!(asset.asset_type, "azure.containerservice.managedcluster");
    assert_eq!(asset.native_type, "Microsoft.ContainerService/ManagedClusters");
    assert_eq!(asset.status, "Stopped");
    assert!(
        asset
            .attributes
            .iter()
            .any(|a| a.key == "azure.node_pools" && a.value == "system:1xStandard_D2s_v5:System:Linux:1.28.9")
    );
    assert_eq!(server.unmatched("azure"), Vec::<String>::new());
}

#[tokio::test]
async fn a_requested_subscription_replaces_the_default_scope() {
    let server = TestServer::start().await;
    let events = collect(open(&server, subscriptions(&[&DEV.to_ascii_uppercase()], full())).await).await;
    assert_eq!(urns(&events).len(), 8);
    assert_eq!(
        scope_statuses(&events),
        vec![(format!("subscription:{DEV}"), ScopeState::Ok as i32)]
    );
    assert_eq!(summary(&events).upstream_requests, 4);
}

#[tokio::test]
async fn a_subscription_without_reader_fails_its_scope_only() {
    let server = TestServer::start().await;
    let events = collect(open(&server, subscriptions(&[DENIED, DEV], full())).await).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            (format!("subscription:{DENIED}"), ScopeState::Failed as i32),
            (format!("subscription:{DEV}"), ScopeState::Ok as i32)
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![(
            format!("subscription:{DENIED}"),
            "UPSTREAM_PERMISSION_DENIED".to_owned(),
            format!(
                "Microsoft.ContainerRegistry/registries of subscription {DENIED}: azure resource manager answered 403: \
                 AuthorizationFailed: The client '4b1c0d9e-8f7a-4e6d-9c5b-3a2f1e0d9c8b' with object id \
                 '4b1c0d9e-8f7a-4e6d-9c5b-3a2f1e0d9c8b' does not have authorization to perform action \
                 'Microsoft.ContainerRegistry/registries/read' over scope '/subscriptions/{DENIED}' or the scope \
                 is invalid. If access was recently granted, please refresh your credentials."
            )
        )]
    );
    assert_eq!(urns(&events).len(), 8);
    assert!(!summary(&events).complete);
}

#[tokio::test]
async fn a_subscription_of_another_tenant_fails_its_scope_only() {
    // ARM answers 401 InvalidAuthenticationTokenTenant for a subscription
    // the credential's tenant does not own (or one just transferred): the
    // credential itself is good for the others.
    let server = TestServer::start().await;
    let events = collect(open(&server, subscriptions(&[FOREIGN, DEV], full())).await).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            (format!("subscription:{FOREIGN}"), ScopeState::Failed as i32),
            (format!("subscription:{DEV}"), ScopeState::Ok as i32),
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![(
            format!("subscription:{FOREIGN}"),
            "UPSTREAM_PERMISSION_DENIED".to_owned(),
            format!(
                "Microsoft.ContainerRegistry/registries of subscription {FOREIGN}: azure resource manager answered 401: InvalidAuthenticationTokenTenant: The access token is from the wrong issuer 'https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/'. It must match the tenant 'https://sts.windows.net/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' to get the token. Note, if the subscription is transferred to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). If you just transferred your subscription and see this error message, please try back later."
            ),
        )]
    );
    assert_eq!(urns(&events).len(), 8);
    let summary = summary(&events);
    assert!(!summary.complete);
    assert_eq!((summary.scopes_ok, summary.scopes_failed), (1, 1));
    assert_eq!(server.unmatched("azure"), Vec::<String>::new());
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_retried() {
    let server = TestServer::start().await;
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "azure").unwrap();
    let text = std::fs::read_to_string(root.join(format!(
        "azure/scenarios/throttled/exchanges/subscriptions/{DEV}/registries-429.json"
    )))
    .unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exchange: Exchange = serde_json::from_value(file["exchanges"][0].clone()).unwrap();
    let path = exchange.request.path.clone();
    set.exchanges_mut(&path).unwrap().push(exchange);
    let replay = server.server.replay("azure").unwrap();
    replay.set_fixtures(set);
    let started = std::time::Instant::now();
    let events = collect(open(&server, subscriptions(&[DEV], full())).await).await;
    let s = summary(&events);
    assert!(s.complete);
    assert_eq!(urns(&events).len(), 8);
    // The 429, its retry after Retry-After: 1, then the 3 other pages.
    assert_eq!(s.upstream_requests, 5);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(server.unmatched("azure"), Vec::<String>::new());
}

#[tokio::test]
async fn an_incremental_sync_across_the_change_reports_exactly_the_change() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    <Azure as Harness>::apply_change(&server);
    let events = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    let s = summary(&events);
    assert_eq!(s.counts[0].upserts, 3);
    assert_eq!(s.deletions, 1);
    // dev registries now fit one page; the rest is unchanged: 9 requests.
    assert_eq!(s.upstream_requests, 9);
}

#[tokio::test]
async fn without_credentials_live_mode_is_unavailable_and_names_the_variables() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    let server = TestServer::with_config(config).await;
    let entry = server.client.get_connector("azure").await.unwrap();
    assert_eq!(
        entry.availability,
        connectors_proto::v1::ConnectorAvailability::Unavailable as i32
    );
    assert!(entry.reason.contains("AZURE_CLIENT_SECRET"), "{}", entry.reason);
    assert!(entry.reason.contains("AZURE_SUBSCRIPTION_IDS"), "{}", entry.reason);
    let status = open(&server, request(full())).await.expect_err("unavailable");
    assert_eq!(status.code(), Code::FailedPrecondition);
}

/// The resuming client stream of the `connectors-client` crate, its
/// connection cut after the first scope (see `support::resume_over_a_cut`).
#[tokio::test]
async fn the_client_crate_resumes_an_azure_sync_whose_connection_was_cut() {
    let server = TestServer::start().await;
    let unbroken = collect(open(&server, request(full())).await).await;
    crate::support::resume_over_a_cut(&server, "azure", &unbroken, |client| client.sync_azure(request(full()))).await;
}

/// The registry entry of `id` and the health of its service, from a server
/// process.
async fn entry_and_health(
    client: &connectors_client::ConnectorsClient,
    id: &str,
) -> (
    connectors_proto::v1::Connector,
    tonic_health::pb::health_check_response::ServingStatus,
) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let entry = client.get_connector(id).await.unwrap();
    let mut health = HealthClient::new(client.channel().clone());
    let status = health
        .check(HealthCheckRequest {
            service: entry.service.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    (entry, ServingStatus::try_from(status).unwrap())
}

/// On an Azure Arc host (IDENTITY_ENDPOINT and IMDS_ENDPOINT) azure_identity
/// 1.0 cannot build a managed identity credential. Asked for one, the Azure
/// connector is unavailable, naming the cause, and the server serves the
/// other connectors; it used to exit at start-up, taking every connector down.
#[tokio::test]
async fn an_unbuildable_azure_credential_leaves_azure_unavailable_and_the_server_serving() {
    use connectors_proto::v1::ConnectorAvailability;
    use tonic_health::pb::health_check_response::ServingStatus;

    let (_server, client) = crate::support::serve_with_env(&[
        ("CONNECTORS_MODE", "auto"),
        ("AZURE_CREDENTIAL", "managed_identity"),
        ("AZURE_SUBSCRIPTION_IDS", PROD),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/metadata/identity/oauth2/token"),
        ("IMDS_ENDPOINT", "http://127.0.0.1:9"),
    ])
    .await;
    let (entry, health) = entry_and_health(&client, "azure").await;
    assert_eq!(
        (
            ConnectorAvailability::try_from(entry.availability).unwrap(),
            entry.reason.as_str(),
            health
        ),
        (
            ConnectorAvailability::Unavailable,
            "the managed_identity credential cannot be built: Azure Arc managed identity isn't supported",
            ServingStatus::NotServing
        )
    );
    let status = client.azure().sync(request(full())).await.expect_err("unavailable");
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::FailedPrecondition,
            "the managed_identity credential cannot be built: Azure Arc managed identity isn't supported"
        )
    );
    // The other connectors serve.
    let events = crate::support::github_full_sync(&client).await;
    assert_eq!(upserts(&events).len(), 102);
}

/// Managed identity is detected from the environment only where
/// azure_identity can serve it (App Service and Container Apps:
/// IDENTITY_ENDPOINT with IDENTITY_HEADER); on Azure Arc and Service Fabric
/// hosts the connector falls back as without credentials, saying why.
#[tokio::test]
async fn managed_identity_is_detected_only_where_azure_identity_serves_it() {
    use connectors_proto::v1::ConnectorAvailability;

    let arc = [
        ("CONNECTORS_MODE", "auto"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/metadata/identity/oauth2/token"),
        ("IMDS_ENDPOINT", "http://127.0.0.1:9"),
    ];
    let service_fabric = [
        ("CONNECTORS_MODE", "auto"),
        (
            "IDENTITY_ENDPOINT",
            "https://127.0.0.1:2377/metadata/identity/oauth2/token",
        ),
        ("IDENTITY_HEADER", "not-a-real-header-value"),
        ("IDENTITY_SERVER_THUMBPRINT", "0123456789abcdef0123456789abcdef01234567"),
    ];
    let needs = "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or AZURE_FEDERATED_TOKEN_FILE (workload identity), or AZURE_CREDENTIAL=managed_identity|azure_cli; and AZURE_SUBSCRIPTION_IDS";
    for (vars, host) in [(&arc[..], "Azure Arc"), (&service_fabric[..], "Service Fabric")] {
        let (_server, client) = crate::support::serve_with_env(vars).await;
        assert_eq!(
            crate::support::availability_of(&client, "azure").await,
            (
                ConnectorAvailability::Fixture,
                format!(
                    "no Azure credentials configured ({needs}, to sync live); IDENTITY_ENDPOINT is set, but azure_identity cannot use this host's {host} managed identity"
                )
            ),
            "{host}"
        );
    }
    // App Service and Container Apps.
    let (_server, client) = crate::support::serve_with_env(&[
        ("CONNECTORS_MODE", "auto"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ("IDENTITY_HEADER", "not-a-real-header-value"),
    ])
    .await;
    assert_eq!(
        crate::support::availability_of(&client, "azure").await,
        (ConnectorAvailability::Live, "managed_identity".to_owned())
    );
}

/// `AZURE_CREDENTIAL=client_secret` without its three variables is a
/// configuration error (an unbuildable credential of the host's making is not).
#[test]
fn a_client_secret_credential_without_its_variables_stops_the_server() {
    assert_eq!(
        crate::support::start_with_env(&[("AZURE_CREDENTIAL", "client_secret"), ("AZURE_CLIENT_ID", "inventory")]),
        (
            Some(2),
            "connectors-server: configuration error: AZURE_CREDENTIAL: client_secret needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".to_owned()
        )
    );
}

/// The fixtures with the `$skiptoken` of prod's AKS listing expired: ARM
/// answers its `nextLink` 400 (ARM documents neither the status nor the
/// code for an expired skip token; the body is ARM's error shape, its code
/// and wording written for the fixture).
/// A listing page that does not parse is that resource type's failure: the
/// subscription's other resource types are listed and sent, then its scope
/// ends FAILED `UPSTREAM_MALFORMED` naming the listing (nothing deleted).
#[tokio::test]
async fn a_listing_that_does_not_parse_fails_its_subscription_after_the_other_types() {
    let server = TestServer::start().await;
    let prod = || subscriptions(&[PROD], full());
    let clean = collect(open(&server, prod()).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "azure").unwrap();
    set.insert(crate::support::cut_short(
        &format!("/subscriptions/{PROD}/providers/Microsoft.ContainerRegistry/registries"),
        serde_json::json!({"api-version": "2023-07-01"}),
        r#"{"value": [{"id": "/subscriptions/"#,
    ));
    server.server.replay("azure").unwrap().set_fixtures(set);
    let events = collect(open(&server, prod()).await).await;
    let expected: Vec<String> = urns(&clean)
        .into_iter()
        .filter(|urn| {
            !urn.to_ascii_lowercase()
                .contains("/microsoft.containerregistry/registries/")
        })
        .collect();
    // The 3 registries left out; the clusters and sites sent.
    assert_eq!((urns(&clean).len(), expected.len()), (12, 9));
    assert_eq!(urns(&events), expected);
    assert_eq!(
        crate::support::scope_errors(&events),
        vec![(
            format!("subscription:{PROD}"),
            "UPSTREAM_MALFORMED".to_owned(),
            format!(
                "Microsoft.ContainerRegistry/registries of subscription {PROD}: EOF while parsing a string at line 1 column 34"
            )
        )]
    );
    assert_eq!(crate::support::deletions(&events), Vec::<String>::new());
}

fn refusing(refusal: Refusal) -> FixtureSet {
    let fresh = "fresh-after-expiry";
    let mut set = FixtureSet::load_provider(&fixtures_root(), "azure").unwrap();
    refuse_page_token(
        &mut set,
        &format!("/subscriptions/{PROD}/providers/Microsoft.ContainerService/managedClusters"),
        refusal,
        |exchange| {
            let next = exchange.request.query.contains_key("$skiptoken");
            Some(if next { Page::Next } else { Page::First })
        },
        |exchange| {
            exchange.response.status = 400;
            exchange.response.body_text = None;
            exchange.response.body = Some(serde_json::json!({"error": {
                "code": "BadRequest", "message": "The provided skip token is not valid or has expired."
            }}));
        },
        |exchange, page| match page {
            Page::First => {
                let text = exchange.response.body_text.as_mut().unwrap();
                *text = text.replace("$skiptoken=page2", &format!("$skiptoken={fresh}"));
            }
            Page::Next => {
                exchange.request.query.insert("$skiptoken".into(), fresh.into());
            }
        },
    );
    set
}

/// Resuming from a checkpoint whose `nextLink` ARM refuses (an expired
/// `$skiptoken`) lists that listing again from its first page: the scope
/// ends OK, and what the broken stream had sent is not sent again. A
/// refusal after that restart fails the scope.
#[tokio::test]
async fn an_expired_skip_token_on_resume_lists_again_from_the_first_page() {
    let scope = format!("subscription:{PROD}");
    let run = crate::conformance::stale_page_token::<Azure>("$skiptoken=", &scope, refusing).await;
    let prod = |events: &[SyncEvent]| -> Vec<String> {
        urns(events)
            .into_iter()
            .filter(|urn| urn.contains(&format!("/subscriptions/{PROD}/")))
            .collect()
    };
    let listings = &estate()[PROD];
    let mut resent = prod(&run.before);
    resent.extend(prod(&run.resumed));
    assert_eq!(resent, prod(&run.unbroken));
    // 3 registries, 4 clusters, 5 sites.
    assert_eq!(resent.len(), 12);
    // After the break: the cluster of page 2, then the sites.
    let mut expected = listings["managedClusters"][3..].to_vec();
    expected.extend(listings["sites"].clone());
    assert_eq!(prod(&run.resumed), expected);
    // The refused page, page 1 again, page 2, the 2 sites pages, dev (4);
    // the refused page, page 1 and the refused page again, or the refused
    // page and page 1 refused too, then dev.
    assert_eq!(run.requests, [3 + 2 + 4, 3 + 4, 2 + 4]);
    for events in &run.bounded {
        let errors = scope_errors(events);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].1, "UPSTREAM_ERROR");
        assert!(errors[0].2.contains("answered 400: BadRequest"), "{}", errors[0].2);
    }
}
