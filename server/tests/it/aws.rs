//! The AWS connector: the conformance suite on fixtures/aws (replayed
//! through the real SDK), and live against a moto server (PyPI `moto[server]`, started
//! on a free port and seeded through the AWS API): every seeded repository,
//! image, cluster, service, task definition, function and tag appears with
//! its urn; an unchanged estate gives no events and a deleted function
//! exactly one deletion; request validation names the field.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use connectors_proto::aws::v1::SyncRequest;
use connectors_proto::v1::{ConnectorAvailability, EntityKind, ScopeState, SyncEvent, SyncOptions};
use connectors_server::cache::SharedCache;
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::http::UpstreamConfig;
use connectors_server::providers::aws::http::SharedUpstreamHttp;
use connectors_server::replay::{FixtureSet, ReplayOptions};
use connectors_server::testing::MotoServer;
use tonic::{Code, Status};

use crate::conformance::{FaultRun, Harness, collect, full, incremental};
use crate::support::{TestServer, deletions, scope_errors, scope_statuses, summary, upserts};

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[derive(Debug, serde::Deserialize)]
struct FixtureCounts {
    assets: u64,
    tags: u64,
}

#[derive(Debug, serde::Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Aws;

#[async_trait]
impl Harness for Aws {
    const ID: &'static str = "aws";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(
            server,
            SyncRequest {
                options: Some(options),
                ..Default::default()
            },
        )
        .await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        // What fixtures/aws/generate.py wrote.
        let text = std::fs::read_to_string(fixtures_root().join("aws/config.json")).unwrap();
        let counts: FixtureCounts = serde_json::from_str(&text).unwrap();
        assert_eq!((counts.assets, counts.tags), (18, 8));
        vec![(EntityKind::Tag, 8), (EntityKind::Asset, 18)]
    }

    fn apply_change(server: &TestServer) {
        let root = fixtures_root();
        let mut set = FixtureSet::load_provider(&root, "aws").unwrap();
        set.overlay_dir(&root.join("aws/scenarios/changed/exchanges")).unwrap();
        server.server.replay("aws").unwrap().set_fixtures(set);
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let text = std::fs::read_to_string(fixtures_root().join("aws/scenarios/changed/expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        let malformed = |service: &str, operation: &str| {
            (
                format!("account:default/region:us-east-1/service:{service}"),
                ScopeState::Failed,
                "UPSTREAM_MALFORMED".to_owned(),
                format!(
                    "{operation}: aws returned a body that does not parse: Error at offset 20: unexpected end of stream"
                ),
            )
        };
        match run {
            // Every fault retried, the replay's bare 429s and 503s (no AWS
            // error code) too.
            FaultRun::Retryable => Vec::new(),
            FaultRun::MalformedBodies => vec![
                malformed("ecr", "ecr:DescribeImages worker"),
                malformed(
                    "ecs",
                    "ecs:DescribeTaskDefinition arn:aws:ecs:us-east-1:123456789012:task-definition/api:1",
                ),
            ],
        }
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (
                SyncRequest {
                    regions: vec!["us-east-1".into(), "Mars".into()],
                    ..Default::default()
                },
                "regions[1]",
            ),
            (
                SyncRequest {
                    services: vec!["lambda".into(), "lambda".into()],
                    ..Default::default()
                },
                "services[1]",
            ),
            (
                SyncRequest {
                    services: vec!["s3".into()],
                    ..Default::default()
                },
                "services[0]",
            ),
            (
                SyncRequest {
                    account_ids: vec!["1234".into()],
                    ..Default::default()
                },
                "account_ids[0]",
            ),
            (
                SyncRequest {
                    account_ids: vec!["123456789012".into()],
                    ..Default::default()
                },
                "account_ids[0]",
            ),
        ];
        let mut out = Vec::new();
        for (request, field) in cases {
            out.push((open(server, request).await, field));
        }
        out
    }
}

crate::conformance_suite!(conformance, crate::aws::Aws);

#[tokio::test]
async fn fixtures_paginate_every_service_and_map_exact_values() {
    let server = TestServer::start().await;
    let events = collect(<Aws as Harness>::open(&server, full()).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    // A function's state comes from GetFunction's Configuration (image) or
    // GetFunctionConfiguration (zip): ListFunctions has none.
    let function =
        |name: &str| format!("urn:connectors:aws:asset:arn:aws:lambda:us-east-1:123456789012:function:{name}");
    assert_eq!(
        ["orders", "billing", "thumbnails"].map(|name| asset_of(&events, &function(name)).status),
        ["Active", "Inactive", "Active"]
    );
    // 2 DescribeRepositories pages, 4 DescribeImages, ECS 1+1+2+2+2+1, EKS 2+2, Lambda 2
    // ListFunctions pages + 1 GetFunction (the container image function) + 2
    // GetFunctionConfiguration (the others' state, which ListFunctions leaves out) + 3
    // ListAliases, tagging 2.
    assert_eq!(server.upstream_requests("aws"), 6 + 9 + 4 + 8 + 2);
    assert_eq!(summary(&events).upstream_requests, 29);
    // A container image function's image comes from GetFunction's Code.
    assert_eq!(
        images_of(
            &events,
            "urn:connectors:aws:asset:arn:aws:lambda:us-east-1:123456789012:function:thumbnails"
        ),
        [(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/thumbnails:latest".to_owned(),
            "sha256:0000000000000000000000000000000000000000000000000000000000abc05a".to_owned()
        )]
    );
    assert_eq!(
        images_of(
            &events,
            "urn:connectors:aws:asset:arn:aws:lambda:us-east-1:123456789012:function:orders"
        ),
        []
    );
    // A function's attributes: runtime, package type, architecture, layers
    // (ListFunctions) and its aliases (ListAliases), sorted.
    let attributes = |name: &str| -> Vec<(String, String)> {
        asset_of(&events, &function(name))
            .attributes
            .into_iter()
            .map(|l| (l.key, l.value))
            .collect()
    };
    let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    assert_eq!(
        attributes("orders"),
        pairs(&[
            ("aws.lambda.alias", "live=7"),
            ("aws.lambda.alias", "staging=8"),
            ("aws.lambda.architecture", "x86_64"),
            (
                "aws.lambda.layer",
                "arn:aws:lambda:us-east-1:123456789012:layer:shared:3"
            ),
            ("aws.lambda.package_type", "Zip"),
            ("aws.lambda.runtime", "python3.12"),
        ])
    );
    assert_eq!(
        attributes("thumbnails"),
        pairs(&[
            ("aws.lambda.architecture", "x86_64"),
            ("aws.lambda.package_type", "Image"),
        ])
    );
    let urns: Vec<String> = upserts(&events).into_iter().map(|(urn, _)| urn).collect();
    for urn in [
        "urn:connectors:aws:asset:arn:aws:ecr:us-east-1:123456789012:repository/web",
        "urn:connectors:aws:asset:arn:aws:ecs:us-east-1:123456789012:service/prod/worker",
        "urn:connectors:aws:asset:arn:aws:ecs:us-east-1:123456789012:task-definition/worker:1",
        "urn:connectors:aws:asset:arn:aws:eks:us-east-1:123456789012:cluster/staging-eks",
        "urn:connectors:aws:asset:arn:aws:lambda:us-east-1:123456789012:function:thumbnails",
        "urn:connectors:aws:tag:arn:aws:lambda:us-east-1:123456789012:function:billing#cost-center",
    ] {
        assert!(urns.iter().any(|u| u == urn), "{urn} missing");
    }
    assert_eq!(
        scope_statuses(&events)
            .into_iter()
            .map(|(scope, _)| scope)
            .collect::<Vec<_>>(),
        ["ecr", "ecs", "eks", "lambda", "tagging"]
            .iter()
            .map(|s| format!("account:default/region:us-east-1/service:{s}"))
            .collect::<Vec<_>>()
    );
}

/// An ECR image's status is its `imageStatus` (DescribeImages asks for
/// every status: without the filter ECR answers ACTIVE images only), and its
/// attributes are its tags, its manifest and artifact media types and, for a
/// referrer (here a Notation signature), its subject's digest.
#[tokio::test]
async fn ecr_images_carry_their_status_media_types_and_subject() {
    let server = TestServer::start().await;
    let events = collect(open(&server, full_of(&["ecr"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    let digest = |n: u32| format!("sha256:{n:064x}");
    let image = |n: u32| {
        asset_of(
            &events,
            &format!(
                "urn:connectors:aws:asset:arn:aws:ecr:us-east-1:123456789012:repository/api@{}",
                digest(0xabc000 + n)
            ),
        )
    };
    let labels = |asset: &connectors_proto::v1::CloudAsset| -> Vec<(String, String)> {
        asset
            .attributes
            .iter()
            .map(|l| (l.key.clone(), l.value.clone()))
            .collect()
    };
    let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let docker = [
        (
            "aws.ecr.artifact_media_type",
            "application/vnd.docker.container.image.v1+json",
        ),
        (
            "aws.ecr.image_manifest_media_type",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ];
    let archived = image(1);
    assert_eq!(archived.status, "ARCHIVED");
    assert_eq!(
        labels(&archived),
        pairs(&[docker[0], docker[1], ("aws.ecr.image_tag", "v1")])
    );
    let signature = image(2);
    assert_eq!(signature.status, "ACTIVE");
    let subject = digest(0xabc003);
    assert_eq!(
        labels(&signature),
        pairs(&[
            ("aws.ecr.artifact_media_type", "application/vnd.cncf.notary.signature"),
            (
                "aws.ecr.image_manifest_media_type",
                "application/vnd.oci.image.manifest.v1+json"
            ),
            ("aws.ecr.subject_manifest_digest", &subject),
        ])
    );
    let latest = image(3);
    assert_eq!(latest.status, "ACTIVE");
    assert_eq!(
        labels(&latest),
        pairs(&[
            docker[0],
            docker[1],
            ("aws.ecr.image_tag", "latest"),
            ("aws.ecr.image_tag", "v3")
        ])
    );
}

#[tokio::test]
async fn services_are_crawled_at_once_under_aws_concurrency_and_sent_in_scope_order() {
    let mut streams = Vec::new();
    let mut peaks = Vec::new();
    for concurrency in [1, 5] {
        let mut config = Config::for_tests();
        config.aws.concurrency = Some(concurrency);
        let server = TestServer::with_config(config).await;
        let replay = server.server.replay("aws").unwrap();
        // Every answer takes 50 ms: the scopes' requests overlap only when
        // the scopes are crawled at once.
        replay.set_options(ReplayOptions {
            latency: Duration::from_millis(50),
            ..Default::default()
        });
        let events = collect(<Aws as Harness>::open(&server, full()).await).await;
        assert_eq!(server.unmatched("aws"), Vec::<String>::new());
        assert_eq!(summary(&events).upstream_requests, 29);
        peaks.push(replay.stats().max_in_flight());
        streams.push((upserts(&events), scope_statuses(&events)));
    }
    // One scope's requests at a time without concurrency (two at once only for
    // the details of Lambda's first page: its two zip functions'
    // GetFunctionConfiguration, up to 4 at a time); the five services' at
    // once with it (six while Lambda asks for those two), and the same stream
    // either way.
    assert_eq!(peaks, [2, 6]);
    assert_eq!(streams[0], streams[1]);
    assert_eq!(streams[0].0.len(), 26);
}

/// An exchange answering the awsJson 1.1 request `target` with `body_json`
/// by the protocol's error shape (400, `__type`), its first `times` matches.
fn aws_json_error(
    times: u64,
    target: &str,
    body_json: serde_json::Value,
    error_type: &str,
    message: &str,
) -> connectors_server::replay::Exchange {
    serde_json::from_value(serde_json::json!({
        "times": times,
        "request": {"method": "POST", "path": "/", "headers": {"x-amz-target": target}, "body_json": body_json},
        "response": {
            "status": 400,
            "headers": {"content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "fixture-error"},
            "body": {"__type": error_type, "message": message}
        }
    }))
    .unwrap()
}

/// The fixtures' one ECS cluster.
const PROD_CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";

/// ListServices of [`PROD_CLUSTER`] answered with the error `error_type`.
fn list_services_of_prod(error_type: &str, message: &str) -> connectors_server::replay::Exchange {
    aws_json_error(
        100,
        "AmazonEC2ContainerServiceV20141113.ListServices",
        serde_json::json!({"cluster": PROD_CLUSTER}),
        error_type,
        message,
    )
}

/// The body of the first DescribeImages request for `repository` in fixture
/// mode (every status: without the filter ECR answers ACTIVE images only).
fn describe_images(repository: &str) -> serde_json::Value {
    serde_json::json!({"repositoryName": repository, "maxResults": 2, "filter": {"imageStatus": "ANY"}})
}

#[tokio::test]
async fn a_throttled_service_is_retried_and_failing_ones_fail_alone() {
    let server = TestServer::start().await;
    let baseline = collect(<Aws as Harness>::open(&server, full()).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let lambda_requests = set
        .exchanges()
        .filter(|e| e.request.path.starts_with("/2015-03-31/"))
        .count() as u64;
    assert_eq!(lambda_requests, 8);
    // ECS throttles ListClusters twice (awsJson 1.1 error shape), then answers.
    set.insert(aws_json_error(
        2,
        "AmazonEC2ContainerServiceV20141113.ListClusters",
        serde_json::json!({}),
        "ThrottlingException",
        "Rate exceeded",
    ));
    // Lambda denies ListFunctions (restJson1 error shape) every time.
    set.insert(
        serde_json::from_value(serde_json::json!({
            "times": 100,
            "request": {"method": "GET", "path": "/2015-03-31/functions"},
            "response": {
                "status": 403,
                "headers": {
                    "content-type": "application/json",
                    "x-amzn-errortype": "AccessDeniedException",
                    "x-amzn-requestid": "fixture-denied"
                },
                "body": {
                    "Message": "User: arn:aws:iam::123456789012:user/inventory is not authorized to perform: lambda:ListFunctions"
                }
            }
        }))
        .unwrap(),
    );
    // ECR: a repository policy denies reading the second repository's images
    // (a modeled awsJson error, not retried): the other repositories are
    // read and sent, then the scope fails naming the denied one.
    set.insert(aws_json_error(
        100,
        "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
        describe_images("worker"),
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/inventory is not authorized to perform: ecr:DescribeImages on resource: \
         arn:aws:ecr:us-east-1:123456789012:repository/worker with an explicit deny in a resource-based policy",
    ));
    let replay = server.server.replay("aws").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(<Aws as Harness>::open(&server, full()).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());

    let scope = |service: &str| format!("account:default/region:us-east-1/service:{service}");
    assert_eq!(
        scope_statuses(&events),
        vec![
            (scope("ecr"), ScopeState::Failed as i32),
            (scope("ecs"), ScopeState::Ok as i32),
            (scope("eks"), ScopeState::Ok as i32),
            (scope("lambda"), ScopeState::Failed as i32),
            (scope("tagging"), ScopeState::Ok as i32),
        ]
    );
    let failures: Vec<_> = events
        .iter()
        .filter_map(|event| match &event.event {
            Some(connectors_proto::v1::sync_event::Event::ScopeStatus(status))
                if status.state == ScopeState::Failed as i32 =>
            {
                Some(status.clone())
            }
            _ => None,
        })
        .collect();
    // The service's code and message, not the SDK's dump of the raw response.
    assert_eq!(
        (failures[0].reason.as_str(), failures[0].error.as_str()),
        (
            "UPSTREAM_PERMISSION_DENIED",
            "ecr:DescribeImages worker: AccessDeniedException: User: arn:aws:iam::123456789012:user/inventory is \
             not authorized to perform: ecr:DescribeImages on resource: \
             arn:aws:ecr:us-east-1:123456789012:repository/worker with an explicit deny in a resource-based policy"
        )
    );
    assert_eq!(
        (failures[1].reason.as_str(), failures[1].error.as_str()),
        (
            "UPSTREAM_PERMISSION_DENIED",
            "lambda:ListFunctions: AccessDeniedException: User: arn:aws:iam::123456789012:user/inventory is not \
             authorized to perform: lambda:ListFunctions"
        )
    );
    assert!(!summary(&events).complete);
    // The full sync's upserts, in its order, without the three functions and
    // worker's images (worker itself, listed, is sent; so are web and its
    // images).
    let worker_images = "urn:connectors:aws:asset:arn:aws:ecr:us-east-1:123456789012:repository/worker@";
    let expected: Vec<(String, String)> = upserts(&baseline)
        .into_iter()
        .filter(|(urn, _)| !urn.starts_with("urn:connectors:aws:asset:arn:aws:lambda:"))
        .filter(|(urn, _)| !urn.starts_with(worker_images))
        .collect();
    assert_eq!(expected.len(), 26 - 3 - 1);
    assert_eq!(upserts(&events), expected);
    assert!(expected.iter().any(|(urn, _)| urn.ends_with("repository/web")));
    // The two throttled answers were retried; neither failure was.
    let requests = 29 + 2 - lambda_requests + 1;
    assert_eq!(replay.stats().requests() - before, requests);
    assert_eq!(summary(&events).upstream_requests, requests);
}

/// 429 and 5xx answers reach the SDK as answers: it reads their error code
/// and retries them under its own retry config (4 attempts), and the shared
/// layer does not retry them again underneath. A throttled call ends its scope
/// RATE_LIMITED, in the service's words; a server error FAILED.
#[tokio::test]
async fn throttling_and_server_errors_are_retried_once_by_the_sdk_and_reported_in_its_words() {
    let server = TestServer::start().await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let error = |path: &str, status: u16, error_type: &str, message: &str| -> connectors_server::replay::Exchange {
        serde_json::from_value(serde_json::json!({
            "times": 100,
            "request": {"method": "GET", "path": path},
            "response": {
                "status": status,
                "headers": {
                    "content-type": "application/json",
                    "x-amzn-errortype": error_type,
                    "x-amzn-requestid": "fixture-error"
                },
                "body": {"message": message}
            }
        }))
        .unwrap()
    };
    set.insert(error(
        "/2015-03-31/functions",
        429,
        "TooManyRequestsException",
        "Rate exceeded",
    ));
    set.insert(error(
        "/clusters/prod-eks",
        503,
        "ServiceUnavailableException",
        "Service Unavailable",
    ));
    let replay = server.server.replay("aws").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(open(&server, full_of(&["eks", "lambda"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    let statuses: Vec<(String, i32, String, String)> = events
        .iter()
        .filter_map(|event| match &event.event {
            Some(connectors_proto::v1::sync_event::Event::ScopeStatus(status)) => Some((
                status.scope.clone(),
                status.state,
                status.reason.clone(),
                status.error.clone(),
            )),
            _ => None,
        })
        .collect();
    let scope = |service: &str| format!("account:default/region:us-east-1/service:{service}");
    assert_eq!(
        statuses,
        [
            (
                scope("eks"),
                ScopeState::Failed as i32,
                "UPSTREAM_ERROR".to_owned(),
                "eks:DescribeCluster prod-eks: ServiceUnavailableException: Service Unavailable".to_owned()
            ),
            (
                scope("lambda"),
                ScopeState::RateLimited as i32,
                "UPSTREAM_RATE_LIMITED".to_owned(),
                "lambda:ListFunctions: TooManyRequestsException: Rate exceeded".to_owned()
            ),
        ]
    );
    // EKS: 2 ListClusters pages, then DescribeCluster prod-eks 4 times (the
    // SDK's max attempts); Lambda: ListFunctions 4 times.
    assert_eq!(replay.stats().requests() - before, 2 + 4 + 4);
    assert_eq!(summary(&events).upstream_requests, 2 + 4 + 4);
}

/// An item whose own call AWS denies while the listing that named it was
/// allowed (an IAM condition on the resource) is left out and its scope goes
/// on: the EKS cluster prod-eks, the Lambda function orders, the services of
/// the ECS cluster prod. The rest is sent, then each scope ends FAILED
/// `UPSTREAM_PERMISSION_DENIED` naming the item (keeping its baseline).
#[tokio::test]
async fn an_item_aws_denies_is_left_out_and_fails_its_scope_after_the_rest() {
    let server = TestServer::start().await;
    let baseline = collect(<Aws as Harness>::open(&server, full()).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let denied = |path: &str, action: &str| -> connectors_server::replay::Exchange {
        serde_json::from_value(serde_json::json!({
            "times": 100,
            "request": {"method": "GET", "path": path},
            "response": {
                "status": 403,
                "headers": {"content-type": "application/json", "x-amzn-errortype": "AccessDeniedException"},
                "body": {"message": format!("User: arn:aws:iam::123456789012:user/inventory is not authorized to perform: {action}")}
            }
        }))
        .unwrap()
    };
    set.insert(denied("/clusters/prod-eks", "eks:DescribeCluster"));
    set.insert(denied(
        "/2015-03-31/functions/orders/configuration",
        "lambda:GetFunctionConfiguration",
    ));
    let prod = PROD_CLUSTER;
    set.insert(list_services_of_prod(
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/inventory is not authorized to perform: ecs:ListServices",
    ));
    let replay = server.server.replay("aws").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(open(&server, full_of(&["ecs", "eks", "lambda"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    let asset = |arn: &str| format!("urn:connectors:aws:asset:arn:aws:{arn}");
    let left_out = [
        asset("eks:us-east-1:123456789012:cluster/prod-eks"),
        asset("lambda:us-east-1:123456789012:function:orders"),
        asset("ecs:us-east-1:123456789012:service/prod/api"),
        asset("ecs:us-east-1:123456789012:service/prod/worker"),
    ];
    let expected: Vec<(String, String)> = upserts(&baseline)
        .into_iter()
        .filter(|(urn, _)| ["ecs:", "eks:", "lambda:"].iter().any(|s| urn.starts_with(&asset(s))))
        .filter(|(urn, _)| !left_out.contains(urn))
        .collect();
    // ECS: the cluster and the 2 task definitions; EKS: staging-eks;
    // Lambda: billing and thumbnails.
    assert_eq!(expected.len(), 3 + 1 + 2);
    assert_eq!(upserts(&events), expected);
    let scope = |service: &str| format!("account:default/region:us-east-1/service:{service}");
    let not = "User: arn:aws:iam::123456789012:user/inventory is not authorized to perform";
    assert_eq!(
        scope_errors(&events),
        [
            (
                scope("ecs"),
                "UPSTREAM_PERMISSION_DENIED".to_owned(),
                format!("ecs:ListServices {prod}: AccessDeniedException: {not}: ecs:ListServices")
            ),
            (
                scope("eks"),
                "UPSTREAM_PERMISSION_DENIED".to_owned(),
                format!("eks:DescribeCluster prod-eks: AccessDeniedException: {not}: eks:DescribeCluster")
            ),
            (
                scope("lambda"),
                "UPSTREAM_PERMISSION_DENIED".to_owned(),
                format!(
                    "lambda:GetFunctionConfiguration orders: AccessDeniedException: {not}: \
                     lambda:GetFunctionConfiguration"
                )
            ),
        ]
    );
    assert_eq!(
        scope_statuses(&events),
        ["ecs", "eks", "lambda"].map(|s| (scope(s), ScopeState::Failed as i32))
    );
    // Nothing deleted: a failed scope keeps its baseline.
    assert_eq!(deletions(&events), Vec::<String>::new());
    // ECS 9 less the second ListServices page and DescribeServices, EKS 4,
    // Lambda 8 less the denied function's ListAliases: each denial answered
    // once, not retried.
    assert_eq!(replay.stats().requests() - before, 9 - 2 + 4 + 8 - 1);
}

/// A policy written before the connector asked for aliases denies
/// ListAliases: every function is still sent (without aliases), and the
/// Lambda scope ends FAILED naming the first denial, so that the missing
/// permission shows (and nothing is deleted on a partial view).
#[tokio::test]
async fn functions_whose_aliases_aws_denies_are_sent_without_them_and_fail_lambda() {
    let server = TestServer::start().await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let not = "User: arn:aws:iam::123456789012:user/inventory is not authorized to perform: lambda:ListAliases";
    for name in ["orders", "billing", "thumbnails"] {
        set.insert(
            serde_json::from_value(serde_json::json!({
                "times": 100,
                "request": {"method": "GET", "path": format!("/2015-03-31/functions/{name}/aliases")},
                "response": {
                    "status": 403,
                    "headers": {"content-type": "application/json", "x-amzn-errortype": "AccessDeniedException"},
                    "body": {"message": not}
                }
            }))
            .unwrap(),
        );
    }
    server.server.replay("aws").unwrap().set_fixtures(set);
    let events = collect(open(&server, full_of(&["lambda"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    let function =
        |name: &str| format!("urn:connectors:aws:asset:arn:aws:lambda:us-east-1:123456789012:function:{name}");
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        ["orders", "billing", "thumbnails"].map(function)
    );
    assert!(
        asset_of(&events, &function("orders"))
            .attributes
            .iter()
            .all(|l| l.key != "aws.lambda.alias")
    );
    assert_eq!(
        scope_errors(&events),
        [(
            "account:default/region:us-east-1/service:lambda".to_owned(),
            "UPSTREAM_PERMISSION_DENIED".to_owned(),
            format!("lambda:ListAliases orders: AccessDeniedException: {not} (and 2 more such failures in this scope)")
        )]
    );
}

/// ECS's DescribeTaskDefinition of one revision and DescribeClusters, denied
/// (an IAM condition on the resource), leave out that revision and the
/// cluster: the other revision and the cluster's services are still read
/// and sent (the service that runs the denied revision without images, as
/// it is not asked again), then the scope ends FAILED naming the first
/// denial and counting the other. Both used to end the scope at once.
#[tokio::test]
async fn a_task_definition_and_a_cluster_aws_denies_are_left_out_and_fail_ecs_after_the_rest() {
    let server = TestServer::start().await;
    let baseline = collect(open(&server, full_of(&["ecs"])).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let not = "User: arn:aws:iam::123456789012:user/inventory is not authorized to perform";
    let worker = "arn:aws:ecs:us-east-1:123456789012:task-definition/worker:1";
    set.insert(aws_json_error(
        100,
        "AmazonEC2ContainerServiceV20141113.DescribeTaskDefinition",
        serde_json::json!({"taskDefinition": worker}),
        "AccessDeniedException",
        &format!("{not}: ecs:DescribeTaskDefinition"),
    ));
    set.insert(aws_json_error(
        100,
        "AmazonEC2ContainerServiceV20141113.DescribeClusters",
        serde_json::json!({"clusters": [PROD_CLUSTER]}),
        "AccessDeniedException",
        &format!("{not}: ecs:DescribeClusters"),
    ));
    let replay = server.server.replay("aws").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(open(&server, full_of(&["ecs"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    let asset = |arn: &str| format!("urn:connectors:aws:asset:{arn}");
    let urns = |events: &[SyncEvent]| upserts(events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>();
    assert_eq!(
        urns(&baseline),
        [
            asset("arn:aws:ecs:us-east-1:123456789012:task-definition/api:1"),
            asset(worker),
            asset(PROD_CLUSTER),
            asset("arn:aws:ecs:us-east-1:123456789012:service/prod/api"),
            asset("arn:aws:ecs:us-east-1:123456789012:service/prod/worker"),
        ]
    );
    let sent: Vec<String> = urns(&baseline)
        .into_iter()
        .filter(|urn| *urn != asset(worker) && *urn != asset(PROD_CLUSTER))
        .collect();
    assert_eq!(urns(&events), sent);
    // The worker service, without its revision's images; api as before.
    let service = |name: &str| asset(&format!("arn:aws:ecs:us-east-1:123456789012:service/prod/{name}"));
    let images = |events: &[SyncEvent], name: &str| images_of(events, &service(name)).len();
    assert_eq!((images(&baseline, "worker"), images(&events, "worker")), (2, 0));
    assert_eq!((images(&baseline, "api"), images(&events, "api")), (2, 2));
    assert_eq!(
        scope_errors(&events),
        [(
            "account:default/region:us-east-1/service:ecs".to_owned(),
            "UPSTREAM_PERMISSION_DENIED".to_owned(),
            format!(
                "ecs:DescribeTaskDefinition {worker}: AccessDeniedException: {not}: \
                 ecs:DescribeTaskDefinition (and 1 more such failures in this scope)"
            )
        )]
    );
    assert_eq!(deletions(&events), Vec::<String>::new());
    // Every ECS request once: the denied revision is not described again
    // for the service that runs it.
    assert_eq!(replay.stats().requests() - before, 9);
}

/// A 429 is throttling whether or not its answer names an AWS error code (a
/// proxy or an AWS-compatible endpoint in front of AWS may send none): the
/// SDK retries it, and a call still answered 429 after its 4 attempts ends
/// the scope RATE_LIMITED, until the answer's `Retry-After`.
#[tokio::test]
async fn a_429_without_an_error_code_is_retried_and_reported_rate_limited() {
    let server = TestServer::start().await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let too_many = |times: u64, path: &str, retry_after: Option<&str>| -> connectors_server::replay::Exchange {
        let mut headers = serde_json::json!({"content-type": "application/json"});
        if let Some(seconds) = retry_after {
            headers["retry-after"] = seconds.into();
        }
        serde_json::from_value(serde_json::json!({
            "times": times,
            "request": {"method": "GET", "path": path},
            "response": {"status": 429, "headers": headers, "body": {"message": "Too many requests"}}
        }))
        .unwrap()
    };
    // Lambda's first ListFunctions is refused once; EKS's DescribeCluster of
    // prod-eks every time, saying to come back in a second.
    set.insert(too_many(1, "/2015-03-31/functions", None));
    set.insert(too_many(100, "/clusters/prod-eks", Some("1")));
    let replay = server.server.replay("aws").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let start = chrono::Utc::now().timestamp();
    let events = collect(open(&server, full_of(&["eks", "lambda"])).await).await;
    let end = chrono::Utc::now().timestamp();
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    let statuses: Vec<_> = events
        .iter()
        .filter_map(|event| match &event.event {
            Some(connectors_proto::v1::sync_event::Event::ScopeStatus(status)) => Some(status.clone()),
            _ => None,
        })
        .collect();
    let scope = |service: &str| format!("account:default/region:us-east-1/service:{service}");
    assert_eq!(
        statuses
            .iter()
            .map(|s| (s.scope.clone(), s.state, s.reason.clone(), s.error.clone()))
            .collect::<Vec<_>>(),
        [
            (
                scope("eks"),
                ScopeState::RateLimited as i32,
                "UPSTREAM_RATE_LIMITED".to_owned(),
                "eks:DescribeCluster prod-eks: HTTP 429: Too many requests".to_owned()
            ),
            (scope("lambda"), ScopeState::Ok as i32, String::new(), String::new()),
        ]
    );
    // Retry-After: 1 from the last answer.
    let retry = statuses[0].retry_time.as_ref().expect("a retry time").seconds;
    assert!(
        (start + 1..=end + 1).contains(&retry),
        "{retry} not in {}..={}",
        start + 1,
        end + 1
    );
    // Every function, as a clean sync sends them.
    let functions = upserts(&events)
        .into_iter()
        .filter(|(urn, _)| urn.starts_with("urn:connectors:aws:asset:arn:aws:lambda:"))
        .count();
    assert_eq!(functions, 3);
    // EKS: 2 ListClusters pages, DescribeCluster prod-eks 4 times (the SDK's
    // attempts); Lambda: its 8 requests and the one retried.
    assert_eq!(replay.stats().requests() - before, 2 + 4 + 8 + 1);
    assert_eq!(summary(&events).upstream_requests, 2 + 4 + 8 + 1);
}

/// Resources deleted between the listing that named them and the request
/// that describes them are answered "not found": an ECR repository
/// (`RepositoryNotFoundException` to DescribeImages), an ECS cluster
/// (`ClusterNotFoundException` to ListServices), an EKS cluster and a Lambda
/// function (404 `ResourceNotFoundException` to DescribeCluster, GetFunction
/// and GetFunctionConfiguration). Each is left out (the ECS cluster, already described, is
/// sent without services) and its scope goes on; nothing is retried.
#[tokio::test]
async fn resources_deleted_since_they_were_listed_are_left_out_and_their_scopes_go_on() {
    let server = TestServer::start().await;
    let baseline = collect(<Aws as Harness>::open(&server, full()).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    set.insert(aws_json_error(
        100,
        "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
        describe_images("worker"),
        "RepositoryNotFoundException",
        "The repository with name 'worker' does not exist in the registry with id '123456789012'",
    ));
    set.insert(list_services_of_prod("ClusterNotFoundException", "Cluster not found."));
    let not_found = |path: &str, body: serde_json::Value| -> connectors_server::replay::Exchange {
        serde_json::from_value(serde_json::json!({
            "times": 100,
            "request": {"method": "GET", "path": path},
            "response": {
                "status": 404,
                "headers": {
                    "content-type": "application/json",
                    "x-amzn-errortype": "ResourceNotFoundException",
                    "x-amzn-requestid": "fixture-not-found"
                },
                "body": body
            }
        }))
        .unwrap()
    };
    set.insert(not_found(
        "/clusters/staging-eks",
        serde_json::json!({"clusterName": "staging-eks", "message": "No cluster found for name: staging-eks."}),
    ));
    for name in ["thumbnails", "billing/configuration"] {
        let function = name.trim_end_matches("/configuration");
        set.insert(not_found(
            &format!("/2015-03-31/functions/{name}"),
            serde_json::json!({"Type": "User",
                "Message": format!("Function not found: arn:aws:lambda:us-east-1:123456789012:function:{function}")}),
        ));
    }
    let replay = server.server.replay("aws").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(<Aws as Harness>::open(&server, full()).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    let gone = [
        "arn:aws:ecr:us-east-1:123456789012:repository/worker",
        "arn:aws:ecs:us-east-1:123456789012:service/prod/",
        "arn:aws:eks:us-east-1:123456789012:cluster/staging-eks",
        "arn:aws:lambda:us-east-1:123456789012:function:thumbnails",
        "arn:aws:lambda:us-east-1:123456789012:function:billing",
    ];
    let is_gone = |urn: &str| {
        let arn = urn.strip_prefix("urn:connectors:aws:asset:").unwrap_or_default();
        gone.iter().any(|g| arn.starts_with(g))
    };
    let expected: Vec<(String, String)> = upserts(&baseline)
        .into_iter()
        .filter(|(urn, _)| !is_gone(urn))
        .collect();
    // The repository and its 1 image, the 2 services, the cluster, the 2 functions.
    assert_eq!(upserts(&baseline).len() - expected.len(), 7);
    assert_eq!(upserts(&events), expected);
    // The tags of the function still come from the tagging API, which lists
    // what it knows; only asset requests were answered "not found".
    assert!(
        upserts(&events)
            .iter()
            .any(|(urn, _)| urn.starts_with("urn:connectors:aws:tag:"))
    );
    // Each "not found" once, and no DescribeServices for the cluster: the
    // 29 requests of the FULL sync less the second ListServices page and the
    // DescribeServices call, and the two gone functions' ListAliases.
    assert_eq!(replay.stats().requests() - before, 29 - 2 - 2);
}

/// The fixtures with the answer to ECS's `operation` (DescribeClusters or
/// DescribeServices) changed by `change`: its `failures[]` entries stand for
/// resources ECS did not describe.
fn with_ecs_answer(operation: &str, change: impl Fn(&mut serde_json::Value)) -> FixtureSet {
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let target = format!("AmazonEC2ContainerServiceV20141113.{operation}");
    let exchange = set
        .exchanges_mut("/")
        .unwrap()
        .iter_mut()
        .find(|e| e.request.headers.get("x-amz-target") == Some(&target))
        .unwrap();
    change(exchange.response.body.as_mut().unwrap());
    set
}

/// DescribeClusters and DescribeServices answer what they could not describe
/// in `failures[]` (ARN, reason, detail) beside what they did. `MISSING`
/// (the ECS API reference's one documented reason) is a resource deleted
/// since it was listed: left out, its scope OK (a missing cluster's services
/// are not listed). Any other reason fails the scope, naming the ARN and the
/// reason, after the rest of it was sent: otherwise the next INCREMENTAL sync
/// would delete a service that may well still exist.
#[tokio::test]
async fn ecs_failures_leave_missing_resources_out_and_fail_the_scope_for_any_other_reason() {
    let prefix = "arn:aws:ecs:us-east-1:123456789012";
    let worker = format!("{prefix}:service/prod/worker");
    let server = TestServer::start().await;
    let baseline = collect(open(&server, full_of(&["ecs"])).await).await;
    assert_eq!(upserts(&baseline).len(), 5);
    let without = |events: &[SyncEvent], gone: &[String]| -> Vec<(String, String)> {
        upserts(events)
            .into_iter()
            .filter(|(urn, _)| !gone.iter().any(|g| urn == &format!("urn:connectors:aws:asset:{g}")))
            .collect()
    };
    let scope = "account:default/region:us-east-1/service:ecs".to_owned();
    let replay = server.server.replay("aws").unwrap();
    let failure = |arn: &str, reason: &str| serde_json::json!({"arn": arn, "reason": reason});

    // The worker service deleted between ListServices and DescribeServices.
    replay.set_fixtures(with_ecs_answer("DescribeServices", |body| {
        body["services"].as_array_mut().unwrap().pop();
        body["failures"] = serde_json::json!([failure(&worker, "MISSING")]);
    }));
    let events = collect(open(&server, full_of(&["ecs"])).await).await;
    assert_eq!(scope_statuses(&events), [(scope.clone(), ScopeState::Ok as i32)]);
    assert_eq!(upserts(&events), without(&baseline, std::slice::from_ref(&worker)));

    // Another reason (a stand-in: the API reference documents only MISSING):
    // the scope fails once the rest is sent.
    replay.set_fixtures(with_ecs_answer("DescribeServices", |body| {
        body["services"].as_array_mut().unwrap().pop();
        let mut entry = failure(&worker, "INTERNAL_ERROR");
        entry["detail"] = "the service could not be described".into();
        body["failures"] = serde_json::json!([entry]);
    }));
    let events = collect(open(&server, full_of(&["ecs"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    let failed: Vec<(String, String, String)> = events
        .iter()
        .filter_map(|event| match &event.event {
            Some(connectors_proto::v1::sync_event::Event::ScopeStatus(status)) => {
                Some((status.scope.clone(), status.reason.clone(), status.error.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [(
            scope.clone(),
            "UPSTREAM_ERROR".to_owned(),
            format!("ecs:DescribeServices: {worker}: INTERNAL_ERROR (the service could not be described)")
        )]
    );
    assert_eq!(upserts(&events), without(&baseline, std::slice::from_ref(&worker)));
    assert!(!summary(&events).complete);

    // The cluster deleted between ListClusters and DescribeClusters: neither
    // it nor its services are sent, and they are not listed.
    let cluster = format!("{prefix}:cluster/prod");
    replay.set_fixtures(with_ecs_answer("DescribeClusters", |body| {
        body["clusters"] = serde_json::json!([]);
        body["failures"] = serde_json::json!([failure(&cluster, "MISSING")]);
    }));
    let before = replay.stats().requests();
    let events = collect(open(&server, full_of(&["ecs"])).await).await;
    assert_eq!(scope_statuses(&events), [(scope, ScopeState::Ok as i32)]);
    assert_eq!(
        upserts(&events),
        without(
            &baseline,
            &[cluster, format!("{prefix}:service/prod/api"), worker.clone()]
        )
    );
    // ListClusters, 2 ListTaskDefinitions pages, 2 DescribeTaskDefinition,
    // DescribeClusters; no ListServices nor DescribeServices.
    assert_eq!(replay.stats().requests() - before, 6);
}

/// ListClusters lists EKS Connector (connected) clusters only with
/// `include=all`: a connected cluster is an asset like the others, its
/// connector's provider an attribute (its activation code is not read).
#[tokio::test]
async fn eks_connected_clusters_are_listed_with_their_provider() {
    let server = TestServer::start().await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    let arn = "arn:aws:eks:us-east-1:123456789012:cluster/onprem";
    for exchange in [
        serde_json::json!({
            "request": {"path": "/clusters", "query": {"include": "all", "nextToken": "eks-clusters-2"}},
            "response": {"headers": {"content-type": "application/json"}, "body": {"clusters": ["staging-eks", "onprem"]}}
        }),
        // DescribeCluster of a connected cluster (the API reference's
        // Cluster shape: connectorConfig, no endpoint nor version).
        serde_json::json!({
            "request": {"path": "/clusters/onprem"},
            "response": {"headers": {"content-type": "application/json"}, "body": {"cluster": {
                "name": "onprem", "arn": arn, "createdAt": 1714809600, "status": "ACTIVE", "tags": {},
                "connectorConfig": {
                    "activationId": "d8bc2a9f-0000-4000-8000-000000000001",
                    "activationExpiry": 1715068800,
                    "provider": "EKS_ANYWHERE",
                    "roleArn": "arn:aws:iam::123456789012:role/AmazonEKSConnectorAgentRole"
                }
            }}}
        }),
    ] {
        set.insert(serde_json::from_value(exchange).unwrap());
    }
    server.server.replay("aws").unwrap().set_fixtures(set);
    let events = collect(open(&server, full_of(&["eks"])).await).await;
    assert_eq!(server.unmatched("aws"), Vec::<String>::new());
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        ["prod-eks", "staging-eks", "onprem"]
            .map(|name| format!("urn:connectors:aws:asset:arn:aws:eks:us-east-1:123456789012:cluster/{name}"))
    );
    let connected = asset_of(&events, &format!("urn:connectors:aws:asset:{arn}"));
    assert_eq!(connected.status, "ACTIVE");
    assert_eq!(
        connected
            .attributes
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect::<Vec<_>>(),
        [("aws.eks.connector_provider", "EKS_ANYWHERE")]
    );
}

/// An asset's `account` is the account of its ARN, also for the server's own
/// credentials (no AWS_ACCOUNTS), whose scopes stay `account:default/...`:
/// scope keys are what saved states and checkpoints are keyed by, and
/// provenance `source` is the scope key.
#[tokio::test]
async fn assets_of_the_default_credentials_name_their_account() {
    use connectors_proto::v1::entity::Body;
    use connectors_proto::v1::sync_event::Event;
    let server = TestServer::start().await;
    let events = collect(<Aws as Harness>::open(&server, full()).await).await;
    let assets: Vec<(String, String)> = events
        .iter()
        .filter_map(|event| match &event.event {
            Some(Event::Upsert(upsert)) => match &upsert.entity.as_ref()?.body {
                Some(Body::Asset(asset)) => Some((
                    asset.account.clone(),
                    upsert.provenance.as_ref()?.source.split("/region:").next()?.to_owned(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        assets,
        vec![("123456789012".to_owned(), "account:default".to_owned()); 18]
    );
}

/// (image, digest) of the container images of the asset `urn` upserted in `events`.
fn images_of(events: &[SyncEvent], urn: &str) -> Vec<(String, String)> {
    asset_of(events, urn)
        .images
        .iter()
        .map(|image| (image.image.clone(), image.digest.clone()))
        .collect()
}

/// The body of the asset `urn` upserted in `events`.
fn asset_of(events: &[SyncEvent], urn: &str) -> connectors_proto::v1::CloudAsset {
    use connectors_proto::v1::entity::Body;
    use connectors_proto::v1::sync_event::Event;
    let entity = events
        .iter()
        .find_map(|event| match &event.event {
            Some(Event::Upsert(upsert)) => upsert.entity.as_ref().filter(|entity| entity.urn == urn),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{urn} not upserted"));
    match &entity.body {
        Some(Body::Asset(asset)) => asset.clone(),
        other => panic!("{urn} is not an asset: {other:?}"),
    }
}

const ACCOUNT: &str = "123456789012";
/// A second account (moto keeps each account's resources apart).
const OTHER: &str = "111111111111";
const REGION: &str = "us-east-1";

/// The role `inventory` of `account`.
fn role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/inventory")
}

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.aws().sync(request).await.map(|r| r.into_inner())
}

/// A FULL sync of `services` (in the default regions).
fn full_of(services: &[&str]) -> SyncRequest {
    SyncRequest {
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        options: Some(full()),
        ..Default::default()
    }
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        regions: vec![REGION.into()],
        options: Some(options),
        ..Default::default()
    }
}

fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_in(endpoint, REGION)
}

fn sdk_config_in(endpoint: &str, region: &str) -> SdkConfig {
    let http = SharedUpstreamHttp::new(
        Arc::new(|base| UpstreamConfig::new("aws-seed", base)),
        SharedCache::memory(1 << 20),
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .http_client(http)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("testing", "testing", None, None, "test"),
        ))
        .build()
}

/// IAM is a query-protocol service without an SDK crate here: one form POST
/// of `action` with `params`; the answer's XML.
async fn iam(endpoint: &str, action: &str, params: &[(&str, &str)]) -> String {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    body.append_pair("Action", action).append_pair("Version", "2010-05-08");
    for (name, value) in params {
        body.append_pair(name, value);
    }
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.finish())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{action}: {text}");
    text
}

async fn create_role(endpoint: &str) -> String {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam(
        endpoint,
        "CreateRole",
        &[("RoleName", "inventory-lambda"), ("AssumeRolePolicyDocument", policy)],
    )
    .await;
    format!("arn:aws:iam::{ACCOUNT}:role/inventory-lambda")
}

/// An empty zip archive (end of central directory only).
fn empty_zip() -> Vec<u8> {
    let mut zip = vec![0x50, 0x4b, 0x05, 0x06];
    zip.extend([0u8; 18]);
    zip
}

/// Creates an EKS cluster through the API; returns its ARN.
async fn create_eks_cluster(config: &SdkConfig, account: &str, name: &str) -> String {
    let cluster = aws_sdk_eks::Client::new(config)
        .create_cluster()
        .name(name)
        .role_arn(format!("arn:aws:iam::{account}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    cluster.cluster().unwrap().arn().unwrap().to_owned()
}

struct Seeded {
    urns: Vec<String>,
    function: String,
    /// The urn of the container image function, and its image.
    image_function: String,
    image: String,
}

async fn seed(endpoint: &str) -> Seeded {
    let config = sdk_config(endpoint);
    let mut urns = Vec::new();
    let asset = |arn: &str| format!("urn:connectors:aws:asset:{arn}");

    let ecr = aws_sdk_ecr::Client::new(&config);
    for name in ["api", "worker"] {
        let repository = ecr
            .create_repository()
            .repository_name(name)
            .tags(
                aws_sdk_ecr::types::Tag::builder()
                    .key("team")
                    .value("platform")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let arn = repository.repository().unwrap().repository_arn().unwrap().to_owned();
        urns.push(asset(&arn));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:{}"}},"layers":[]}}"#,
            "a".repeat(63) + if name == "api" { "1" } else { "2" }
        );
        let image = ecr
            .put_image()
            .repository_name(name)
            .image_manifest(manifest)
            .image_tag("v1")
            .send()
            .await
            .unwrap();
        let digest = image
            .image()
            .unwrap()
            .image_id()
            .unwrap()
            .image_digest()
            .unwrap()
            .to_owned();
        urns.push(asset(&format!("{arn}@{digest}")));
    }

    let ecs = aws_sdk_ecs::Client::new(&config);
    let cluster = ecs.create_cluster().cluster_name("prod").send().await.unwrap();
    let cluster_arn = cluster.cluster().unwrap().cluster_arn().unwrap().to_owned();
    urns.push(asset(&cluster_arn));
    let definition = ecs
        .register_task_definition()
        .family("api")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("api")
                .image(format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/api:v1"))
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let definition_arn = definition
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    urns.push(asset(&definition_arn));
    let service = ecs
        .create_service()
        .cluster("prod")
        .service_name("api")
        .task_definition("api:1")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    urns.push(asset(service.service().unwrap().service_arn().unwrap()));

    urns.push(asset(&create_eks_cluster(&config, ACCOUNT, "prod-eks").await));

    let role = create_role(endpoint).await;
    let lambda = aws_sdk_lambda::Client::new(&config);
    let mut function = String::new();
    for name in ["orders", "billing"] {
        let created = lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .role(&role)
            .handler("index.handler")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_smithy_types::Blob::new(empty_zip()))
                    .build(),
            )
            .tags("team", "payments")
            .send()
            .await
            .unwrap();
        let arn = created.function_arn().unwrap().to_owned();
        urns.push(asset(&arn));
        if name == "orders" {
            function = arn;
            // Version 1, and the alias `live` on it.
            let version = lambda.publish_version().function_name(name).send().await.unwrap();
            lambda
                .create_alias()
                .function_name(name)
                .name("live")
                .function_version(version.version().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    // A container image function, on the image pushed above.
    let image = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/api:v1");
    let created = lambda
        .create_function()
        .function_name("resizer")
        .package_type(aws_sdk_lambda::types::PackageType::Image)
        .role(&role)
        .code(aws_sdk_lambda::types::FunctionCode::builder().image_uri(&image).build())
        .send()
        .await
        .unwrap();
    let image_function = asset(created.function_arn().unwrap());
    urns.push(image_function.clone());
    Seeded {
        urns,
        function,
        image_function,
        image,
    }
}

async fn live(moto: &MotoServer) -> TestServer {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.aws.credentials = true;
    config.aws.regions = vec![REGION.into()];
    config.aws.endpoint_url = Some(url::Url::parse(&moto.url()).unwrap());
    config.aws.static_keys = Some(("testing".into(), "testing".into(), None));
    TestServer::with_config(config).await
}

#[tokio::test]
async fn every_seeded_resource_appears_with_its_urn_against_moto() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    let seeded = seed(&moto.url()).await;
    let server = live(&moto).await;
    let listed = server.client.get_connector("aws").await.unwrap();
    assert_eq!(listed.availability, ConnectorAvailability::Live as i32);

    let events = collect(open(&server, request(full())).await).await;
    let statuses = scope_statuses(&events);
    let services = ["ecr", "ecs", "eks", "lambda", "tagging"];
    assert_eq!(
        statuses,
        services
            .iter()
            .map(|s| (
                format!("account:default/region:{REGION}/service:{s}"),
                ScopeState::Ok as i32
            ))
            .collect::<Vec<_>>(),
        "scope errors: {:?}",
        scope_errors(&events)
    );
    let got: Vec<String> = upserts(&events).into_iter().map(|(urn, _)| urn).collect();
    let mut assets: Vec<String> = got.iter().filter(|u| u.contains(":asset:")).cloned().collect();
    assets.sort();
    let mut expected = seeded.urns.clone();
    expected.sort();
    assert_eq!(assets, expected);
    // The tags moto's Resource Groups Tagging API reports: each a Tag entity.
    let tags: Vec<&String> = got.iter().filter(|u| u.contains(":tag:")).collect();
    let function_tag = format!("urn:connectors:aws:tag:{}#team", seeded.function);
    let images: Vec<String> = images_of(&events, &seeded.image_function)
        .into_iter()
        .map(|(image, _)| image)
        .collect();
    assert_eq!(images, std::slice::from_ref(&seeded.image));
    // Each function's state (from GetFunctionConfiguration, or GetFunction's
    // Configuration for the image function).
    for urn in [
        &seeded.image_function,
        &format!("urn:connectors:aws:asset:{}", seeded.function),
    ] {
        assert_eq!(asset_of(&events, urn).status, "Active", "{urn}");
    }
    // Its aliases (ListAliases), as moto answers them.
    let aliases: Vec<String> = asset_of(&events, &format!("urn:connectors:aws:asset:{}", seeded.function))
        .attributes
        .into_iter()
        .filter(|l| l.key == "aws.lambda.alias")
        .map(|l| l.value)
        .collect();
    assert_eq!(aliases, ["live=1"]);
    assert!(tags.contains(&&function_tag), "{tags:?}");
    assert!(summary(&events).upstream_requests > 0);

    // Unchanged estate: an incremental sync gives no upserts and no deletions.
    let again = collect(open(&server, request(incremental(summary(&events).checkpoint))).await).await;
    assert_eq!(upserts(&again), vec![]);
    assert_eq!(deletions(&again), Vec::<String>::new());

    // One function deleted: exactly its deletion (and its tag's).
    aws_sdk_lambda::Client::new(&sdk_config(&moto.url()))
        .delete_function()
        .function_name("orders")
        .send()
        .await
        .unwrap();
    let changed = collect(open(&server, request(incremental(summary(&again).checkpoint))).await).await;
    assert_eq!(upserts(&changed), vec![]);
    let mut gone = deletions(&changed);
    gone.sort();
    let asset_urn = format!("urn:connectors:aws:asset:{}", seeded.function);
    let mut want = vec![asset_urn];
    if tags.contains(&&function_tag) {
        want.push(function_tag.clone());
    }
    want.sort();
    assert_eq!(gone, want);
}

/// ListTaskDefinitions lists only ACTIVE revisions: a service still running a
/// deregistered (INACTIVE) one gets its images from a DescribeTaskDefinition
/// of its own, made once however many services run it, and the revision is
/// sent as an asset with its INACTIVE status.
#[tokio::test]
async fn services_on_a_deregistered_task_definition_keep_its_images_against_moto() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    seed(&moto.url()).await;
    let ecs = aws_sdk_ecs::Client::new(&sdk_config(&moto.url()));
    ecs.create_service()
        .cluster("prod")
        .service_name("api-canary")
        .task_definition("api:1")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    ecs.deregister_task_definition()
        .task_definition("api:1")
        .send()
        .await
        .unwrap();
    let server = live(&moto).await;
    let events = collect(
        open(
            &server,
            SyncRequest {
                services: vec!["ecs".into()],
                ..request(full())
            },
        )
        .await,
    )
    .await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    let asset = |rest: &str| format!("urn:connectors:aws:asset:arn:aws:ecs:{REGION}:{ACCOUNT}:{rest}");
    let definition = asset("task-definition/api:1");
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        [
            asset("cluster/prod"),
            definition.clone(),
            asset("service/prod/api"),
            asset("service/prod/api-canary"),
        ]
    );
    let image = vec![(
        format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/api:v1"),
        String::new(),
    )];
    let body = asset_of(&events, &definition);
    assert_eq!(
        (body.asset_type.as_str(), body.status.as_str(), body.images.len()),
        ("aws.ecs.task-definition", "INACTIVE", 1)
    );
    assert_eq!(body.images[0].container, "api");
    assert_eq!(images_of(&events, &definition), image);
    assert_eq!(images_of(&events, &asset("service/prod/api")), image);
    assert_eq!(images_of(&events, &asset("service/prod/api-canary")), image);
    // ListClusters, ListTaskDefinitions (empty), DescribeClusters,
    // ListServices, DescribeServices and one DescribeTaskDefinition.
    assert_eq!(summary(&events).upstream_requests, 6);
}

#[tokio::test]
async fn validation_names_the_field_and_unconfigured_accounts_are_rejected() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    let server = live(&moto).await;
    for (request, field) in [
        (
            SyncRequest {
                regions: vec!["moon-1".into()],
                ..Default::default()
            },
            "regions[0]",
        ),
        (
            SyncRequest {
                services: vec!["s3".into()],
                ..Default::default()
            },
            "services[0]",
        ),
        (
            SyncRequest {
                account_ids: vec!["123".into()],
                ..Default::default()
            },
            "account_ids[0]",
        ),
        (
            SyncRequest {
                account_ids: vec![ACCOUNT.into()],
                ..Default::default()
            },
            "account_ids[0]",
        ),
    ] {
        let status = match open(&server, request).await {
            Err(status) => status,
            Ok(mut stream) => {
                use futures::StreamExt;
                stream.next().await.unwrap().expect_err("invalid")
            }
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
}

/// The SDK config of `region` with the credentials of `role`, assumed
/// through STS (moto keeps each account's resources apart by them).
async fn assumed(endpoint: &str, region: &str, role: &str) -> SdkConfig {
    // The loader (unlike a bare builder) gives STS a time source and a sleep.
    let plain = sdk_config_in(endpoint, region);
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .http_client(plain.http_client().unwrap())
        .credentials_provider(plain.credentials_provider().unwrap())
        .load()
        .await;
    connectors_server::providers::aws::assume_role(base, &role.to_owned().into(), region, "seed").await
}

#[tokio::test]
async fn every_account_and_region_is_its_own_scope_against_moto() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    let endpoint = moto.url();
    // Seeded through the AWS API, each account by its assumed role.
    let mut expected = Vec::new();
    for (account, region, name) in [
        (ACCOUNT, "us-east-1", "east"),
        (ACCOUNT, "eu-west-1", "west"),
        (OTHER, "eu-west-1", "shared"),
    ] {
        let config = assumed(&endpoint, region, &role(account)).await;
        let created = aws_sdk_ecr::Client::new(&config)
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .unwrap();
        let arn = created.repository().unwrap().repository_arn().unwrap().to_owned();
        assert_eq!(arn, format!("arn:aws:ecr:{region}:{account}:repository/{name}"));
        expected.push((
            format!("urn:connectors:aws:asset:{arn}"),
            format!("account:{account}/region:{region}/service:ecr"),
        ));
    }
    let config = assumed(&endpoint, "us-east-1", &role(OTHER)).await;
    let arn = create_eks_cluster(&config, OTHER, "other-eks").await;
    assert_eq!(arn, format!("arn:aws:eks:us-east-1:{OTHER}:cluster/other-eks"));
    expected.push((
        format!("urn:connectors:aws:asset:{arn}"),
        format!("account:{OTHER}/region:us-east-1/service:eks"),
    ));

    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.aws.credentials = true;
    config.aws.accounts = vec![
        (ACCOUNT.into(), role(ACCOUNT).into()),
        (OTHER.into(), role(OTHER).into()),
    ];
    config.aws.regions = vec!["us-east-1".into(), "eu-west-1".into()];
    config.aws.concurrency = Some(4);
    config.aws.endpoint_url = Some(url::Url::parse(&endpoint).unwrap());
    config.aws.static_keys = Some(("testing".into(), "testing".into(), None));
    let server = TestServer::with_config(config).await;
    let events = collect(open(&server, full_of(&["ecr", "eks"])).await).await;
    // Accounts in order (AWS_ACCOUNTS sorted by id), then regions as
    // configured, then services.
    let mut scopes = Vec::new();
    for account in [OTHER, ACCOUNT] {
        for region in ["us-east-1", "eu-west-1"] {
            for service in ["ecr", "eks"] {
                scopes.push((
                    format!("account:{account}/region:{region}/service:{service}"),
                    ScopeState::Ok as i32,
                ));
            }
        }
    }
    assert_eq!(scope_statuses(&events), scopes);
    // Each resource once, from the scope of its own account and region.
    let got: Vec<(String, String)> = events
        .iter()
        .filter_map(|event| match &event.event {
            Some(connectors_proto::v1::sync_event::Event::Upsert(upsert)) => Some((
                upsert.entity.as_ref()?.urn.clone(),
                upsert.provenance.as_ref()?.source.clone(),
            )),
            _ => None,
        })
        .collect();
    let order = |source: &str| scopes.iter().position(|(scope, _)| scope == source).unwrap();
    expected.sort_by_key(|(_, source)| order(source));
    assert_eq!(got, expected);
    assert!(summary(&events).complete);
}

/// A replay server answering fixtures/aws and `exchanges`, and the server
/// binary live against it (`AWS_ENDPOINT_URL`, `AWS_REGIONS` us-east-1)
/// with `vars`, in whose values `{base}` stands for the replay server's URL.
async fn live_on_replay(
    exchanges: Vec<serde_json::Value>,
    vars: &[(&str, &str)],
) -> (
    connectors_server::replay::ReplayServer,
    crate::support::ServerProcess,
    connectors_client::ConnectorsClient,
) {
    let mut set = FixtureSet::load_provider(&fixtures_root(), "aws").unwrap();
    for exchange in exchanges {
        set.insert(serde_json::from_value(exchange).unwrap());
    }
    let upstream = connectors_server::replay::ReplayServer::start(set, ReplayOptions::default())
        .await
        .unwrap();
    let base = upstream.base_url().trim_end_matches('/').to_owned();
    let vars: Vec<(&str, String)> = [
        ("CONNECTORS_MODE", "live"),
        ("AWS_ENDPOINT_URL", "{base}"),
        ("AWS_REGIONS", REGION),
    ]
    .iter()
    .chain(vars)
    .map(|(name, value)| (*name, value.replace("{base}", &base)))
    .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let (process, client) = crate::support::serve_with_env(&vars).await;
    (upstream, process, client)
}

/// EC2 instance profiles, ECS-on-EC2 host roles and EKS node roles set no
/// variable: with `AWS_USE_DEFAULT_CHAIN=true` the connector runs live on
/// what the SDK's default chain finds, here the instance role from IMDS (the
/// replay server answers the IMDSv2 exchanges and the AWS APIs). Without it
/// such a server was unavailable under CONNECTORS_MODE=live.
#[tokio::test]
async fn aws_use_default_chain_syncs_live_with_an_instance_role() {
    let fixture_server = TestServer::start().await;
    let expected = upserts(&collect(<Aws as Harness>::open(&fixture_server, full()).await).await);
    assert_eq!(expected.len(), 26);

    let token = "imds-session-token-0123456789";
    let exchanges = vec![
        serde_json::json!({
            "request": {
                "method": "PUT",
                "path": "/latest/api/token",
                "headers": {"x-aws-ec2-metadata-token-ttl-seconds": "21600"}
            },
            "response": {
                "headers": {"x-aws-ec2-metadata-token-ttl-seconds": "21600"},
                "body_text": token
            }
        }),
        serde_json::json!({
            "request": {
                "path": "/latest/meta-data/iam/security-credentials/",
                "headers": {"x-aws-ec2-metadata-token": token}
            },
            "response": {"body_text": "inventory-node-role"}
        }),
        serde_json::json!({
            "request": {
                "path": "/latest/meta-data/iam/security-credentials/inventory-node-role",
                "headers": {"x-aws-ec2-metadata-token": token}
            },
            "response": {"body": {
                "Code": "Success",
                "LastUpdated": "2026-12-01T00:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAINSTANCEROLE0001",
                "SecretAccessKey": "instance-role-secret-not-real",
                "Token": "instance-role-session-token",
                "Expiration": "2099-01-01T00:00:00Z"
            }}
        }),
        // The start-up credential check (STS's query protocol).
        serde_json::json!({
            "request": {
                "method": "POST",
                "path": "/",
                "headers": {"content-type": "application/x-www-form-urlencoded"}
            },
            "response": {
                "headers": {"content-type": "text/xml"},
                "body_text": format!(r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::{ACCOUNT}:assumed-role/inventory-node-role/i-0123456789abcdef0</Arn><UserId>AROACKCEVSQ6C2EXAMPLE:i-0123456789abcdef0</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#)
            }
        }),
    ];
    let (upstream, _server, client) = live_on_replay(
        exchanges,
        &[
            ("AWS_USE_DEFAULT_CHAIN", "true"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "{base}"),
            ("AWS_ECR_PAGE_SIZE", "2"),
        ],
    )
    .await;
    assert_eq!(
        crate::support::availability_of(&client, "aws").await,
        (ConnectorAvailability::Live, "default_chain".to_owned())
    );
    let events = collect(client.aws().sync(request(full())).await.map(|r| r.into_inner())).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(upserts(&events), expected);
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    // The start-up credential check's STS GetCallerIdentity, the three IMDS
    // requests (token, role name, credentials) of the instance role's
    // credentials, and the 29 API requests of a full sync: the connector
    // keeps its SDK config per region, credentials cache included, so its 5
    // scopes (and the check) fetch the credentials once.
    assert_eq!(upstream.stats().requests(), 1 + 3 + 29);
}

/// An account of `AWS_ACCOUNTS` whose entry ends with `;externalId=<id>`:
/// every AssumeRole into its role, the credential check's and the syncs',
/// carries that `ExternalId` (the replay server matches the form bodies of
/// STS's query protocol exactly, so one without it, or with the id left in
/// the role ARN, finds no answer).
#[tokio::test]
async fn the_external_id_of_an_account_goes_with_each_assume_role() {
    let external_id = "Inventory+Ext=1.a@b:c/d-e_f";
    let role = role(ACCOUNT);
    let sts_version = ("Version", "2011-06-15");
    let sts = |form: &[(&str, &str)], body: String| -> serde_json::Value {
        let form: serde_json::Map<String, serde_json::Value> = form
            .iter()
            .chain([&sts_version])
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        serde_json::json!({
            "request": {"method": "POST", "path": "/", "body_form": form},
            "response": {"headers": {"content-type": "text/xml"}, "body_text": body}
        })
    };
    let identity = format!(
        r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/inventory</Arn><UserId>AIDACKCEVSQ6C2EXAMPLE</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#
    );
    // STS's AssumeRole answer (its API reference), credentials that outlive the test.
    let assumed = |session: &str| {
        format!(
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::{ACCOUNT}:assumed-role/inventory/{session}</Arn><AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId><SecretAccessKey>assumed-secret-not-real</SecretAccessKey><SessionToken>assumed-session-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><PackedPolicySize>6</PackedPolicySize></AssumeRoleResult><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></AssumeRoleResponse>"#
        )
    };
    let exchanges = vec![
        sts(&[("Action", "GetCallerIdentity")], identity),
        sts(
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", &role),
                ("RoleSessionName", "connectors-credential-check"),
                ("DurationSeconds", "900"),
                ("ExternalId", external_id),
            ],
            assumed("connectors-credential-check"),
        ),
        sts(
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", &role),
                ("RoleSessionName", "connectors-inventory"),
                ("ExternalId", external_id),
            ],
            assumed("connectors-inventory"),
        ),
    ];
    let (upstream, _server, client) = live_on_replay(
        exchanges,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-secret"),
            ("AWS_ACCOUNTS", &format!("{ACCOUNT}={role};externalId={external_id}")),
        ],
    )
    .await;
    let events = collect(client.aws().sync(full_of(&["eks"])).await.map(|r| r.into_inner())).await;
    assert_eq!(
        scope_statuses(&events),
        [(
            format!("account:{ACCOUNT}/region:{REGION}/service:eks"),
            ScopeState::Ok as i32
        )],
        "{:?}",
        scope_errors(&events)
    );
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        ["prod-eks", "staging-eks"]
            .map(|name| format!("urn:connectors:aws:asset:arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{name}"))
    );
    // The start-up check (GetCallerIdentity, AssumeRole) runs beside the
    // sync (AssumeRole, 2 ListClusters pages, 2 DescribeCluster).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while upstream.stats().requests() < 2 + 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    assert_eq!(upstream.stats().requests(), 2 + 5);
}

/// The text of the first `<name>` element of an XML answer.
fn xml_element<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml
        .find(&format!("<{name}>"))
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + name.len()
        + 2;
    let end = start + xml[start..].find(&format!("</{name}>")).unwrap();
    &xml[start..end]
}

/// A live server against `moto` with `keys` and the accounts `accounts`
/// (id, role ARN); its connector's credential check, called once more.
async fn credential_check(moto: &MotoServer, keys: (&str, &str), accounts: &[(&str, String)]) -> (TestServer, String) {
    use connectors_server::sync::Connector as _;
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.aws.credentials = true;
    config.aws.regions = vec![REGION.into()];
    config.aws.endpoint_url = Some(url::Url::parse(&moto.url()).unwrap());
    config.aws.static_keys = Some((keys.0.into(), keys.1.into(), None));
    config.aws.accounts = accounts
        .iter()
        .map(|(id, role)| ((*id).to_owned(), role.clone().into()))
        .collect();
    let server = TestServer::with_config(config).await;
    let connector = server.server.registry.aws.clone().expect("aws compiled in");
    let outcome = format!("{:?}", connector.authenticate().await);
    (server, outcome)
}

/// The credential check behind the AWS service's health: STS
/// GetCallerIdentity with the server's credentials, then AssumeRole into each
/// role of AWS_ACCOUNTS. Moto checks signatures and IAM policies once told to
/// (`/moto-api/reset-auth`, what moto's `set_initial_no_auth_action_count`
/// does): keys it does not know are InvalidClientTokenId (NOT_SERVING),
/// a user whose policy does not allow assuming a configured role is
/// refused, and a user that may assume it passes.
#[tokio::test]
async fn the_credential_check_fails_unknown_keys_and_a_role_that_may_not_be_assumed_against_moto() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    let endpoint = moto.url();
    // Before authorization is enforced: a user with keys, allowed to assume
    // its account's role `inventory`, which trusts it.
    let user = format!("arn:aws:iam::{ACCOUNT}:user/inventory");
    iam(&endpoint, "CreateUser", &[("UserName", "inventory")]).await;
    let created = iam(&endpoint, "CreateAccessKey", &[("UserName", "inventory")]).await;
    let (key_id, secret) = (
        xml_element(&created, "AccessKeyId").to_owned(),
        xml_element(&created, "SecretAccessKey").to_owned(),
    );
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{user}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    iam(
        &endpoint,
        "CreateRole",
        &[("RoleName", "inventory"), ("AssumeRolePolicyDocument", &trust)],
    )
    .await;
    let allowed = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{}"}}]}}"#,
        role(ACCOUNT)
    );
    iam(
        &endpoint,
        "PutUserPolicy",
        &[
            ("UserName", "inventory"),
            ("PolicyName", "assume-inventory"),
            ("PolicyDocument", &allowed),
        ],
    )
    .await;
    let enforced = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/reset-auth"))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(enforced.status().is_success());

    // Keys moto does not know.
    let (server, outcome) = credential_check(&moto, ("AKIDUNKNOWN", "not-a-secret"), &[]).await;
    // Moto answers `<ErrorResponse><Errors><Error>` (EC2's error shape), in
    // which the SDK finds no code: the status says it (the answer STS itself
    // gives is checked with a replay, below).
    assert_eq!(
        outcome,
        r#"Err(UpstreamPermissionDenied("sts:GetCallerIdentity: HTTP 403 without an error code"))"#
    );
    // The start-up check set the health of the service from the same answer.
    server
        .wait_for_health("connectors.aws.v1.AwsConnectorService", ServingStatus::NotServing)
        .await;
    drop(server);

    // The user's keys, and a role of another account its policy does not allow.
    let (_server, outcome) = credential_check(
        &moto,
        (&key_id, &secret),
        &[(ACCOUNT, role(ACCOUNT)), (OTHER, role(OTHER))],
    )
    .await;
    assert_eq!(
        outcome,
        format!(
            r#"Err(UpstreamPermissionDenied("account {OTHER}: sts:AssumeRole {}: HTTP 403 without an error code"))"#,
            role(OTHER)
        )
    );
    // Its own account's role only: the check passes.
    let (_server, outcome) = credential_check(&moto, (&key_id, &secret), &[(ACCOUNT, role(ACCOUNT))]).await;
    assert_eq!(outcome, "Ok(())");
}

/// STS's own answers (query protocol, the `ErrorResponse` of its API
/// reference) to a connector against a replay server: the error code decides
/// the kind, and the message is STS's. One request per call, not retried,
/// but for a 429 without a code.
#[tokio::test]
async fn the_credential_check_reads_the_error_codes_sts_answers() {
    use connectors_server::providers::aws::{AwsConnector, AwsSettings};
    use connectors_server::replay::ReplayServer;
    use connectors_server::sync::{Availability, Connector as _};
    let role = role(OTHER);
    // Exchanges differ by their request only: the first answers once, the
    // second every request after it.
    let sts = |times: Option<u64>, status: u16, body: String| -> connectors_server::replay::Exchange {
        serde_json::from_value(serde_json::json!({
            "times": times,
            "request": {"method": "POST", "path": "/"},
            "response": {
                "status": status,
                "headers": {"content-type": "text/xml", "x-amzn-requestid": "c6104cbe-af31-11e0-8154-cbc7ccf896c7"},
                "body_text": body
            }
        }))
        .unwrap()
    };
    let error = |code: &str, message: &str| {
        format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"#
        )
    };
    let identity = format!(
        r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/inventory</Arn><UserId>AIDACKCEVSQ6C2EXAMPLE</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#
    );
    let denied = format!(
        "User: arn:aws:iam::{ACCOUNT}:user/inventory is not authorized to perform: sts:AssumeRole on resource: {role}"
    );
    let cases = [
        (
            vec![sts(
                None,
                403,
                error("InvalidClientTokenId", "The security token included in the request is invalid."),
            )],
            1,
            r#"Err(UpstreamUnauthenticated("sts:GetCallerIdentity: InvalidClientTokenId: The security token included in the request is invalid."))"#.to_owned(),
        ),
        (
            vec![sts(Some(1), 200, identity.clone()), sts(None, 403, error("AccessDenied", &denied))],
            2,
            format!(r#"Err(UpstreamPermissionDenied("account {OTHER}: sts:AssumeRole {role}: AccessDenied: {denied}"))"#),
        ),
        // A 429 without an error code (a proxy's) is retried, as the other
        // services' are: the check goes on to the role.
        (
            vec![
                {
                    // Told apart from the next by its form (an exchange's
                    // identity is its request and `times`).
                    let mut throttled = sts(Some(1), 429, String::new());
                    throttled.request.body_form = Some(
                        [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .into(),
                    );
                    throttled
                },
                sts(Some(1), 200, identity),
                sts(None, 403, error("AccessDenied", &denied)),
            ],
            3,
            format!(r#"Err(UpstreamPermissionDenied("account {OTHER}: sts:AssumeRole {role}: AccessDenied: {denied}"))"#),
        ),
    ];
    for (exchanges, requests, expected) in cases {
        let mut set = FixtureSet::default();
        for exchange in exchanges {
            set.insert(exchange);
        }
        let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
        let http = SharedUpstreamHttp::new(
            Arc::new(|base| UpstreamConfig::new("aws", base)),
            SharedCache::memory(1 << 20),
        );
        let connector = AwsConnector::new(
            AwsSettings {
                availability: Availability::Live {
                    auth_mode: "assume_role".into(),
                },
                accounts: [(OTHER.to_owned(), role.clone().into())].into(),
                regions: vec![REGION.into()],
                endpoint_url: Some(upstream.base_url().trim_end_matches('/').to_owned()),
                static_keys: Some(("AKIDEXAMPLE".into(), "not-a-secret".into(), None)),
                fast_retries: true,
                scope_concurrency: 1,
                ecr_page_size: 1000,
            },
            http,
        );
        assert_eq!(format!("{:?}", connector.authenticate().await), expected);
        assert_eq!(upstream.stats().requests(), requests);
        assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    }
}
