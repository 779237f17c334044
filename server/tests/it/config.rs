//! Start-up configuration from the environment: what stops the server (exit
//! code 2, an error naming the variable) and what a variable changes.

use std::time::{Duration, Instant};

use connectors_server::config::Config;

use crate::conformance::{collect, full};
use crate::support::{TestServer, start_with_env, summary};

fn stops(vars: &[(&str, &str)], error: &str) {
    assert_eq!(
        start_with_env(vars),
        (Some(2), format!("connectors-server: configuration error: {error}")),
        "{vars:?}"
    );
}

/// `AWS_USE_DEFAULT_CHAIN` is a boolean like `GCP_USE_ADC`.
#[test]
fn aws_use_default_chain_must_be_true_or_false() {
    stops(
        &[("AWS_USE_DEFAULT_CHAIN", "yes")],
        "AWS_USE_DEFAULT_CHAIN: invalid value: provided string was not `true` or `false`",
    );
}

/// A default scope from the environment is checked with the rules of the
/// request field it stands for, so it cannot fail every sync later.
#[test]
fn default_scopes_from_the_environment_follow_the_request_rules() {
    stops(
        &[("AWS_REGIONS", "us-east-1,us east 1")],
        "AWS_REGIONS: entry 2: \"us east 1\" is not an AWS region name (e.g. us-east-1)",
    );
    stops(
        &[("AWS_REGIONS", "us-east-1,eu-west-1,us-east-1")],
        "AWS_REGIONS: entry 3: duplicate entry",
    );
    stops(
        &[("AZURE_SUBSCRIPTION_IDS", "prod")],
        "AZURE_SUBSCRIPTION_IDS: entry 1: \"prod\" is not a subscription id (a GUID: 8-4-4-4-12 hexadecimal digits)",
    );
    stops(
        &[("GCP_PROJECT_IDS", "acme-prod,Acme_Dev")],
        "GCP_PROJECT_IDS: entry 2: \"Acme_Dev\" is not a GCP project id (6 to 30 characters of a-z, 0-9 and '-', starting with a letter, not ending with '-')",
    );
    stops(
        &[("GITLAB_GROUPS", "acme,acme/../x")],
        "GITLAB_GROUPS: entry 2: \"acme/../x\" is not a GitLab group path (1 to 20 segments separated by '/', each 1 to 255 characters of A-Z, a-z, 0-9, '_', '.' and '-', not starting with '-' or '.', not ending with '.', '.git' or '.atom', without '..')",
    );
}

/// An `AWS_ACCOUNTS` entry may end with `;externalId=<id>`, the
/// `sts:ExternalId` its role's trust policy asks for. A malformed one stops
/// the server naming the entry; nothing after the `;` is ever echoed.
#[test]
fn an_aws_accounts_external_id_is_checked_at_start_up_and_never_shown() {
    let first = "123456789012=arn:aws:iam::123456789012:role/inventory";
    let second = "111111111111=arn:aws:iam::111111111111:role/inventory";
    stops(
        &[("AWS_ACCOUNTS", &format!("{first};externalId=s"))],
        "AWS_ACCOUNTS: entry 1: the externalId must be 2 to 1224 characters of A-Z, a-z, 0-9 and _+=.@:/- \
         (a comma separates entries; the value is not shown)",
    );
    stops(
        &[("AWS_ACCOUNTS", &format!("{first},{second};externalID=s3cret-Ext"))],
        "AWS_ACCOUNTS: entry 2: what follows ';' must be externalId=<external id> (not shown)",
    );
    stops(
        &[("AWS_ACCOUNTS", &format!("{first};externalId=s3cret Ext;x"))],
        "AWS_ACCOUNTS: entry 1: the externalId must be 2 to 1224 characters of A-Z, a-z, 0-9 and _+=.@:/- \
         (a comma separates entries; the value is not shown)",
    );
    // The pair itself is quoted as before, without what follows the ';'.
    stops(
        &[(
            "AWS_ACCOUNTS",
            "1234=arn:aws:iam::1234:role/inventory;externalId=s3cret-Ext",
        )],
        "AWS_ACCOUNTS: entry 1: \"1234=arn:aws:iam::1234:role/inventory\" is not \
         <12-digit account id>=arn:aws...:iam::<id>:role/<name>",
    );
}

/// `KUBERNETES_CLUSTER_NAME` stands in urns in place of `in-cluster`: a
/// value that would break them (a '/' splits the native id) or is set but
/// empty stops the server.
#[test]
fn a_kubernetes_cluster_name_that_does_not_fit_in_urns_stops_the_server() {
    stops(
        &[("KUBERNETES_CLUSTER_NAME", "prod/eu")],
        "KUBERNETES_CLUSTER_NAME: \"prod/eu\" is not a cluster name for urns (1 to 253 characters of A-Z, a-z, 0-9, '.', '_' and '-', alphanumeric at both ends)",
    );
    stops(
        &[("KUBERNETES_CLUSTER_NAME", " ")],
        "KUBERNETES_CLUSTER_NAME: is empty (unset it for the default name `in-cluster`)",
    );
}

/// Static AWS keys need both halves, like the GitHub App and Wiz pairs; the
/// secret is never echoed.
#[test]
fn half_a_static_aws_key_pair_stops_the_server_naming_the_missing_half() {
    stops(
        &[("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")],
        "AWS_SECRET_ACCESS_KEY: static keys need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    );
    stops(
        &[("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")],
        "AWS_ACCESS_KEY_ID: static keys need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    );
}

/// Limits of 0 used to become 1 (streams) or a cache that keeps nothing.
#[test]
fn zero_stream_limits_or_cache_size_stop_the_server_naming_the_variable() {
    stops(
        &[("CONNECTORS_MAX_STREAMS", "0")],
        "CONNECTORS_MAX_STREAMS: must be at least 1 (0 would refuse every sync)",
    );
    stops(
        &[("CONNECTORS_MAX_STREAMS_PER_CLIENT", "0")],
        "CONNECTORS_MAX_STREAMS_PER_CLIENT: must be at least 1 (0 would refuse every sync)",
    );
    stops(
        &[("CONNECTORS_CACHE_MAX_BYTES", "0")],
        "CONNECTORS_CACHE_MAX_BYTES: must be at least 1 (a cache of 0 bytes keeps nothing: no INCREMENTAL sync, no resume)",
    );
}

/// An invalid `RUST_LOG` directive used to fall back to `info` silently.
#[test]
fn an_invalid_rust_log_stops_the_server_naming_it() {
    use std::os::unix::ffi::OsStrExt as _;

    stops(
        &[("RUST_LOG", "info,connectors_server=verbose")],
        "RUST_LOG: \"connectors_server=verbose\": error parsing level filter: expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5",
    );
    assert_eq!(
        start_with_env(&[("RUST_LOG", std::ffi::OsStr::from_bytes(b"info,\xff"))]),
        (
            Some(2),
            "connectors-server: configuration error: RUST_LOG: not valid UTF-8".to_owned()
        )
    );
}

/// `CONNECTORS_API_KEYS` that is not UTF-8 used to read as unset: an open API.
#[test]
fn api_keys_that_are_not_utf8_stop_the_server_instead_of_opening_the_api() {
    use std::os::unix::ffi::OsStrExt as _;
    assert_eq!(
        start_with_env(&[(
            "CONNECTORS_API_KEYS",
            std::ffi::OsStr::from_bytes(b"sk-live-0123456789abcdef\xff")
        )]),
        (
            Some(2),
            "connectors-server: configuration error: CONNECTORS_API_KEYS: not valid UTF-8".to_owned()
        )
    );
}

/// `CONNECTORS_FIXTURE_LATENCY_MS` applies to every connector's replay
/// server: each request of a GCP, Azure or AWS fixture sync waits it out, so
/// a sync takes at least that long (a lower bound, not a speed figure).
#[tokio::test]
async fn fixture_latency_applies_to_gcp_azure_and_aws() {
    let latency = Duration::from_millis(200);
    let mut config = Config::for_tests();
    config.fixture_latency = latency;
    let server = TestServer::with_config(config).await;
    let client = &server.client;
    /// How long a sync (opening and reading its stream to the end) took.
    async fn took(sync: impl std::future::Future<Output = Vec<connectors_proto::v1::SyncEvent>>) -> Duration {
        let started = Instant::now();
        let events = sync.await;
        assert!(summary(&events).complete);
        started.elapsed()
    }
    /// A FULL sync of `$connector` in the default scope, read to its end.
    macro_rules! full_sync {
        ($connector:ident) => {
            async {
                let request = connectors_proto::$connector::v1::SyncRequest {
                    options: Some(full()),
                    ..Default::default()
                };
                collect(client.$connector().sync(request).await.map(|r| r.into_inner())).await
            }
        };
    }
    let gcp = took(full_sync!(gcp)).await;
    let azure = took(full_sync!(azure)).await;
    let aws = took(full_sync!(aws)).await;
    for (connector, took) in [("gcp", gcp), ("azure", azure), ("aws", aws)] {
        assert!(
            took >= latency,
            "a {connector} fixture sync took {took:?}, less than the latency of one request"
        );
    }
}
