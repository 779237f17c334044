//! Client authentication (API keys) and stream limits.

use std::time::Duration;

use connectors_client::ConnectorsClient;
use connectors_proto::github::v1::SyncRequest;
use connectors_proto::github::v1::github_connector_service_client::GithubConnectorServiceClient;
use connectors_proto::v1::sync_event::Event;
use connectors_proto::v1::{EntityKind, SyncEvent, SyncMode, SyncOptions};
use connectors_server::config::Config;
use connectors_server::grpc::auth::ApiKeys;
use connectors_server::replay::ReplayOptions;
use futures::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::conformance::{collect, full};
use crate::support::{TestServer, deletions, summary, upserts};

const ALL: &str = "all-access-key-0123456789";
const GITLAB_ONLY: &str = "gitlab-only-key-0123456789";

fn request() -> SyncRequest {
    SyncRequest {
        options: Some(full()),
        ..Default::default()
    }
}

#[tokio::test]
async fn api_keys_guard_every_connector_and_registry_rpc() {
    let mut config = Config::for_tests();
    config.api_keys = ApiKeys::parse(&format!("{ALL},{GITLAB_ONLY}=gitlab")).unwrap();
    let server = TestServer::with_config(config).await;
    let endpoint = server.server.endpoint();

    // No key: UNAUTHENTICATED on the registry and on Sync.
    let anonymous = ConnectorsClient::connect(endpoint.clone()).await.unwrap();
    let status = anonymous.list_connectors().await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = anonymous.github().sync(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "missing API key: send authorization: Bearer <key> or x-api-key: <key>"
    );

    // A wrong key: UNAUTHENTICATED, and the key is not echoed.
    let wrong = ConnectorsClient::connect(endpoint.clone())
        .await
        .unwrap()
        .with_api_key("wrong-key-0123456789abcd")
        .unwrap();
    let status = wrong.list_connectors().await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("wrong-key"));

    // The full key as a bearer token: everything works.
    let client = ConnectorsClient::connect(endpoint.clone())
        .await
        .unwrap()
        .with_api_key(ALL)
        .unwrap();
    let ids: Vec<String> = client
        .list_connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(ids.contains(&"github".to_owned()), "{ids:?}");
    let events = collect(client.github().sync(request()).await.map(|r| r.into_inner())).await;
    assert!(summary(&events).complete);

    // The same key as x-api-key.
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = GithubConnectorServiceClient::new(channel.clone());
    let mut with_header = tonic::Request::new(request());
    with_header.metadata_mut().insert("x-api-key", ALL.parse().unwrap());
    let events = collect(raw.sync(with_header).await.map(|r| r.into_inner())).await;
    assert!(summary(&events).complete);

    // A key limited to GitLab may list connectors but not sync GitHub.
    let limited = ConnectorsClient::connect(endpoint.clone())
        .await
        .unwrap()
        .with_api_key(GITLAB_ONLY)
        .unwrap();
    assert!(limited.list_connectors().await.is_ok());
    let status = limited.github().sync(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "this API key may not use connector github");

    // Health stays open by default (probes carry no key).
    let mut health = HealthClient::new(channel);
    let response = health
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(response.into_inner().status, 1);
}

/// A checkpoint kept under a `state_key` belongs to the API key that kept
/// it: another key syncing under the same name neither starts from it nor
/// moves it on.
#[tokio::test]
async fn a_state_key_keeps_one_checkpoint_per_api_key() {
    const OTHER: &str = "other-all-access-key-0123456789";
    let mut config = Config::for_tests();
    config.api_keys = ApiKeys::parse(&format!("{ALL},{OTHER}")).unwrap();
    let server = TestServer::with_config(config).await;
    let sync = |key: &'static str, mode: SyncMode| {
        let endpoint = server.server.endpoint();
        async move {
            let client = ConnectorsClient::connect(endpoint)
                .await
                .unwrap()
                .with_api_key(key)
                .unwrap();
            let request = SyncRequest {
                options: Some(SyncOptions {
                    mode: mode as i32,
                    state_key: "nightly".into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            collect(client.github().sync(request).await.map(|r| r.into_inner())).await
        }
    };
    let first_checkpoint = |events: &[SyncEvent]| match &events[0].event {
        Some(Event::Checkpoint(checkpoint)) => String::from_utf8_lossy(&checkpoint.token).into_owned(),
        other => panic!("the first event is not a checkpoint: {other:?}"),
    };
    let kept = sync(ALL, SyncMode::Full).await;
    assert!(summary(&kept).complete);
    assert_eq!(upserts(&kept).len(), 102);
    let kept_checkpoint = String::from_utf8_lossy(&summary(&kept).checkpoint).into_owned();

    // The other key under the same name: nothing is kept for it, so its
    // INCREMENTAL sync sends everything, from a checkpoint of its own.
    let other = sync(OTHER, SyncMode::Incremental).await;
    assert_ne!(first_checkpoint(&other), kept_checkpoint);
    assert_eq!(upserts(&other), upserts(&kept));
    assert_eq!(deletions(&other), Vec::<String>::new());

    // The first key goes on from its own checkpoint: nothing changed.
    let next = sync(ALL, SyncMode::Incremental).await;
    assert_eq!(first_checkpoint(&next), kept_checkpoint);
    assert_eq!(upserts(&next), Vec::new());
    assert_eq!(deletions(&next), Vec::<String>::new());
    assert!(summary(&next).complete);
}

#[tokio::test]
async fn excess_streams_are_shed_with_retry_info() {
    let mut config = Config::for_tests();
    config.max_streams_per_client = 2;
    let server = TestServer::with_config(config).await;
    server.server.replay("github").unwrap().set_options(ReplayOptions {
        latency: Duration::from_millis(200),
        ..Default::default()
    });
    let github = server.client.github();
    let mut first = github.clone().sync(request()).await.unwrap().into_inner();
    let _second = github.clone().sync(request()).await.unwrap().into_inner();
    let status = github.clone().sync(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "this client has 2 open streams, the most allowed; retry later"
    );
    let details = status.get_error_details();
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("CLIENT_STREAM_LIMIT")
    );
    // Closing a stream frees its slot.
    first.next().await.unwrap().unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(github.clone().sync(request()).await.is_ok());
}

/// Behind a service mesh every connection comes from the sidecar's loopback
/// address: without API keys the per-client limit would make all clients
/// one. With `CONNECTORS_CLIENT_IDENTITY_HEADER` the identity the mesh's
/// proxy puts in that header (Linkerd's `l5d-client-id` here) tells them
/// apart: two schedulers each get their stream, a second stream of the same
/// one is shed.
#[tokio::test]
async fn clients_behind_a_mesh_are_limited_per_identity_header() {
    let mut config = Config::for_tests();
    config.max_streams_per_client = 1;
    config.client_identity_header = Some(http::HeaderName::from_static("l5d-client-id"));
    let server = TestServer::with_config(config).await;
    server.server.replay("github").unwrap().set_options(ReplayOptions {
        latency: Duration::from_millis(200),
        ..Default::default()
    });
    let channel = tonic::transport::Endpoint::from_shared(server.server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let open = |identity: &'static str| {
        let mut client = GithubConnectorServiceClient::new(channel.clone());
        async move {
            let mut sync = tonic::Request::new(request());
            sync.metadata_mut().insert("l5d-client-id", identity.parse().unwrap());
            client.sync(sync).await.map(|r| r.into_inner())
        }
    };
    const A: &str = "scheduler-a.jobs.serviceaccount.identity.linkerd.cluster.local";
    const B: &str = "scheduler-b.jobs.serviceaccount.identity.linkerd.cluster.local";
    let first = open(A).await.unwrap();
    let other = open(B).await.unwrap();
    let status = open(A).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "this client has 1 open streams, the most allowed; retry later"
    );
    assert_eq!(
        status.get_error_details().error_info().map(|i| i.reason.as_str()),
        Some("CLIENT_STREAM_LIMIT")
    );
    drop((first, other));
}

#[tokio::test]
async fn two_hundred_concurrent_streams_complete() {
    let mut config = Config::for_tests();
    config.max_streams_per_client = 256;
    let server = TestServer::with_config(config).await;
    let kinds = [
        vec![],
        vec![EntityKind::Repository as i32],
        vec![EntityKind::Manifest as i32],
        vec![EntityKind::Sbom as i32],
    ];
    let expected = [102usize, 34, 37, 31];
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let mut github = server.client.github();
        let mut options = full();
        options.kinds = kinds[i % 4].clone();
        tasks.push(tokio::spawn(async move {
            let events = collect(
                github
                    .sync(SyncRequest {
                        options: Some(options),
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner()),
            )
            .await;
            (i, crate::support::upserts(&events).len(), summary(&events).complete)
        }));
    }
    let mut done = 0;
    for task in tasks {
        let (i, upserts, complete) = task.await.unwrap();
        assert!(complete, "stream {i}");
        assert_eq!(upserts, expected[i % 4], "stream {i}");
        done += 1;
    }
    assert_eq!(done, 200);
}

#[tokio::test]
async fn oversized_requests_are_refused_before_decoding() {
    let server = TestServer::start().await;
    // About 6 MiB of repository names: over the 4 MiB message limit.
    let huge = SyncRequest {
        repositories: (0..10_000).map(|i| format!("acme/{i:0>600}")).collect(),
        ..Default::default()
    };
    let status = server.client.github().sync(huge).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{}",
        status.message()
    );
    // Under the size limit but over the list limit: INVALID_ARGUMENT naming the field.
    let long = SyncRequest {
        repositories: (0..1001).map(|i| format!("acme/r{i}")).collect(),
        ..Default::default()
    };
    let status = server.client.github().sync(long).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "repositories: at most 1000 entries, got 1001");
}
