//! The `connectors-server` binary as an operator runs it: environment
//! configuration, JSON logs, Prometheus metrics, and a clean exit on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connectors_client::ConnectorsClient;
use connectors_proto::github::v1::SyncRequest;
use connectors_server::testing::free_port;

use crate::conformance::{collect, full};
use crate::support::{connect_when_listening, fixture_server, summary, terminate};

fn metric(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(name_and_labels) && line[name_and_labels.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn binary_serves_metrics_logs_json_and_exits_cleanly_on_sigterm() {
    let grpc_port = free_port();
    let metrics_port = free_port();
    let secret = "ghp_NOT_A_REAL_TOKEN_0123456789";
    let mut child = Command::new(env!("CARGO_BIN_EXE_connectors-server"))
        .env("CONNECTORS_LISTEN", format!("127.0.0.1:{grpc_port}"))
        .env("CONNECTORS_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .env("CONNECTORS_MODE", "fixtures")
        .env(
            "CONNECTORS_FIXTURES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"),
        )
        .env("CONNECTORS_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("GITHUB_TOKEN", secret)
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn connectors-server");

    let client = connect_when_listening(grpc_port).await;
    let events = collect(
        client
            .github()
            .sync(SyncRequest {
                options: Some(full()),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner()),
    )
    .await;
    assert!(summary(&events).complete);

    let body = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&body, r#"connectors_syncs_total{connector="github",outcome="ok"}"#),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        metric(
            &body,
            r#"connectors_entities_total{connector="github",kind="repository"}"#
        ),
        Some(34.0)
    );
    assert_eq!(
        metric(
            &body,
            r#"connectors_entities_total{connector="github",kind="manifest"}"#
        ),
        Some(37.0)
    );
    assert_eq!(
        metric(&body, r#"connectors_entities_total{connector="github",kind="sbom"}"#),
        Some(31.0)
    );
    assert_eq!(
        metric(
            &body,
            r#"connectors_upstream_requests_total{connector="github",status="200"}"#
        ),
        // A FULL sync's requests but 3 404s (SBOM reports), a 409 (an empty
        // repository's tree) and the 31 redirects of SBOM reports to storage.
        Some((crate::github::FULL_REQUESTS - 4 - 31) as f64)
    );
    assert_eq!(
        metric(
            &body,
            r#"connectors_upstream_requests_total{connector="github",status="404"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &body,
            r#"connectors_upstream_requests_total{connector="github",status="409"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&body, r#"connectors_active_streams{connector="github"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric(&body, r#"connectors_sync_duration_seconds_count{connector="github"}"#),
        Some(1.0)
    );

    let exit = terminate(&mut child).await;
    assert_eq!(exit.code(), Some(0));

    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not json ({e}): {line}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"grpc server listening"), "{messages:?}");
    assert!(messages.contains(&"sync ended"), "{messages:?}");
    assert!(messages.contains(&"shutting down"), "{messages:?}");
    assert!(messages.contains(&"open syncs drained"), "{messages:?}");
    assert!(messages.contains(&"stopped"), "{messages:?}");
    assert!(!logs.contains(secret), "the token appears in the logs");
}

/// Two server processes sharing one Redis, both live against the same
/// upstream: identical syncs started together crawl the upstream once.
#[tokio::test]
async fn two_replicas_sharing_redis_crawl_the_upstream_once() {
    use connectors_server::replay::github_graphql::FixtureGraphql;
    use connectors_server::replay::{FixtureSet, ReplayOptions, ReplayServer};

    let Some(redis) = connectors_server::testing::RedisServer::start_or_skip() else {
        return;
    };
    let fixtures = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"));
    let upstream = ReplayServer::start_synthetic(
        FixtureSet::load_provider(&fixtures, "github").unwrap(),
        FixtureGraphql::shared(),
        ReplayOptions {
            latency: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A prefix of our own, so that a shared REDIS_URL does not mix runs.
    let mut children = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_connectors-server"))
            .env("CONNECTORS_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONNECTORS_METRICS_LISTEN", "off")
            .env("CONNECTORS_MODE", "live")
            .env("GITHUB_TOKEN", "ghp_NOT_A_REAL_TOKEN")
            .env("GITHUB_API_URL", upstream.base_url())
            .env("GITHUB_ORGS", "acme-corp,globex")
            .env("GITHUB_PAGE_SIZE", "10")
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn connectors-server");
        children.push(child);
        clients.push(connect_when_listening(port).await);
    }
    // The start-up credential checks (GET /user, no fixture: one per replica)
    // are not part of a crawl; wait until both were answered.
    let matched = || upstream.stats().requests() - upstream.stats().unmatched();
    let deadline = Instant::now() + Duration::from_secs(15);
    while upstream.stats().unmatched() < 2 {
        assert!(
            Instant::now() < deadline,
            "the replicas did not check their credentials"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = matched();
    let sync = |client: ConnectorsClient| async move {
        collect(
            client
                .github()
                .sync(SyncRequest {
                    options: Some(full()),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner()),
        )
        .await
    };
    let (a, b) = tokio::join!(sync(clients[0].clone()), sync(clients[1].clone()));
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let upserts = |events: &[connectors_proto::v1::SyncEvent]| crate::support::upserts(events);
    assert_eq!(upserts(&a).len(), 102);
    assert_eq!(upserts(&a), upserts(&b));
    let crawl_requests = matched() - before;
    assert_eq!(
        crawl_requests,
        crate::github::FULL_REQUESTS,
        "the two replicas crawled the upstream once"
    );
}

fn spawn_fixture_server(port: u16, redis_url: &str) -> std::process::Child {
    fixture_server(port)
        .env("CONNECTORS_FIXTURE_LATENCY_MS", "15")
        .env("REDIS_URL", redis_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn connectors-server")
}

/// The server is killed (SIGKILL) mid-sync and started again on the same
/// port with the same Redis: the client's resuming stream ends with exactly
/// the set of an unbroken sync, and nothing of a scope finished before the
/// kill is sent twice.
#[tokio::test]
async fn a_client_resumes_across_a_server_kill_and_restart() {
    use std::collections::{BTreeMap, BTreeSet};

    use connectors_client::ResumePolicy;
    use connectors_proto::v1::sync_event::Event;
    use futures::StreamExt;

    let Some(redis) = connectors_server::testing::RedisServer::start_or_skip() else {
        return;
    };
    let port = free_port();
    let mut server = spawn_fixture_server(port, &redis.url());
    let client = connect_when_listening(port).await;
    let request = SyncRequest {
        options: Some(full()),
        ..Default::default()
    };
    let reference: BTreeSet<(String, String)> =
        crate::support::upserts(&collect(client.github().sync(request.clone()).await.map(|r| r.into_inner())).await)
            .into_iter()
            .collect();
    assert_eq!(reference.len(), 102);

    let client = client.with_resume_policy(
        ResumePolicy::default()
            .with_max_attempts(30)
            .with_max_backoff(Duration::from_millis(300)),
    );
    let mut stream = client.sync_github(request);
    let mut events = Vec::new();
    let mut finished_before_kill = BTreeSet::new();
    loop {
        let event = stream.next().await.unwrap().unwrap();
        if let Some(Event::ScopeStatus(s)) = &event.event {
            finished_before_kill.insert(s.scope.clone());
        }
        let checkpoint = matches!(event.event, Some(Event::Checkpoint(_)));
        events.push(event);
        // Kill once the first scope is complete (its scope-end checkpoint arrived).
        if checkpoint && !finished_before_kill.is_empty() {
            break;
        }
    }
    assert_eq!(finished_before_kill.len(), 1);
    server.kill().unwrap();
    server.wait().unwrap();
    let mut restarted = spawn_fixture_server(port, &redis.url());
    while let Some(event) = stream.next().await {
        events.push(event.expect("the client resumes across the restart"));
    }
    let _ = restarted.kill();
    let _ = restarted.wait();
    assert!(stream.resumes() >= 1, "the stream was resumed");
    assert!(summary(&events).complete);
    let got = crate::support::upserts(&events);
    let set: BTreeSet<(String, String)> = got.iter().cloned().collect();
    assert_eq!(set, reference, "exactly the fault-free set");
    // No upsert of a scope finished before the kill was sent twice.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &events {
        if let Some(Event::Upsert(u)) = &event.event
            && finished_before_kill.contains(&u.provenance.as_ref().unwrap().source)
        {
            *counts.entry(u.entity.as_ref().unwrap().urn.as_str()).or_default() += 1;
        }
    }
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

/// Secrets (client API keys, provider tokens and client secrets) set in the
/// environment appear neither in the logs (at debug level) nor in any error
/// a client receives, including errors about those very credentials.
#[tokio::test]
async fn secrets_never_reach_logs_or_errors() {
    let port = free_port();
    let api_key = "sk-live-API-KEY-0123456789abcdef";
    let secrets = [
        api_key,
        "ghp_GITHUB_TOKEN_SECRET_0123456789",
        "glpat-GITLAB_TOKEN_SECRET_01234",
        "WIZ_CLIENT_SECRET_0123456789abcdef",
    ];
    let mut child = fixture_server(port)
        .env("CONNECTORS_API_KEYS", api_key)
        .env("GITHUB_TOKEN", secrets[1])
        .env("GITLAB_TOKEN", secrets[2])
        .env("WIZ_CLIENT_ID", "wiz-client-id")
        .env("WIZ_CLIENT_SECRET", secrets[3])
        .env("RUST_LOG", "debug")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn connectors-server");
    // Read the logs while the server runs (a full pipe would block it).
    let mut stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        let _ = stdout.read_to_string(&mut logs);
        logs
    });
    let anonymous = connect_when_listening(port).await;
    let mut errors = Vec::new();
    // Wrong keys, including near misses of the real one.
    for wrong in [&api_key[..api_key.len() - 1], "sk-live-API-KEY-0123456789abcdeX"] {
        let client = anonymous.clone().with_api_key(wrong).unwrap();
        errors.push(client.list_connectors().await.unwrap_err().to_string());
    }
    errors.push(anonymous.list_connectors().await.unwrap_err().to_string());
    let client = anonymous.clone().with_api_key(api_key).unwrap();
    // Bad input and a whole sync.
    let bad = client
        .github()
        .sync(SyncRequest {
            orgs: vec![format!("{}/x", secrets[1])],
            ..Default::default()
        })
        .await
        .unwrap_err();
    errors.push(format!("{bad:?}"));
    let events = collect(
        client
            .github()
            .sync(SyncRequest {
                options: Some(full()),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner()),
    )
    .await;
    assert!(summary(&events).complete);
    let listed = format!("{:?}", client.list_connectors().await.unwrap());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = log_reader.join().unwrap();
    assert!(logs.lines().count() > 20, "debug logs were written");
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret appears in the logs");
        assert!(!listed.contains(secret), "a secret appears in ListConnectors");
        for error in &errors {
            // The bad-input error quotes the (invalid) org the client sent, which
            // embeds the token on purpose; only the server's secrets matter there.
            if error.contains("orgs[0]") && secret == secrets[1] {
                continue;
            }
            assert!(!error.contains(secret), "a secret appears in an error: {error}");
        }
    }
}

/// A figure of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} figure in {path}"))
}

/// 50 clients that read slowly, 20 ms per event, each get their whole
/// stream: the bounded per-stream channels hold the producers back without
/// dropping or reordering anything. (What that does to memory is measured by
/// the benchmark; the figures are printed here only.)
#[tokio::test]
async fn fifty_slow_readers_each_receive_their_whole_sync() {
    use connectors_proto::v1::EntityKind;
    use futures::StreamExt;

    let port = free_port();
    let mut child = fixture_server(port)
        .env("CONNECTORS_CACHE_MAX_BYTES", "33554432")
        .env("CONNECTORS_MAX_STREAMS_PER_CLIENT", "64")
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn connectors-server");
    let pid = child.id();
    let client = connect_when_listening(port).await;
    let baseline = status_kib(pid, "VmRSS:");
    // Upserts of each kinds filter (as in two_hundred_concurrent_streams_complete).
    let kinds = [
        (vec![], 102),
        (vec![EntityKind::Repository as i32], 34),
        (vec![EntityKind::Manifest as i32], 37),
        (vec![EntityKind::Sbom as i32], 31),
    ];
    let mut readers = Vec::new();
    for i in 0..50usize {
        let mut github = client.github();
        let mut options = full();
        options.kinds = kinds[i % 4].0.clone();
        readers.push(tokio::spawn(async move {
            let mut stream = github
                .sync(SyncRequest {
                    options: Some(options),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut events = Vec::new();
            while let Some(event) = stream.next().await {
                events.push(event.unwrap());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            events
        }));
    }
    for (i, reader) in readers.into_iter().enumerate() {
        let events = reader.await.unwrap();
        assert_eq!(crate::support::upserts(&events).len(), kinds[i % 4].1, "reader {i}");
        assert!(summary(&events).complete, "reader {i}");
    }
    let peak = status_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "50 slow readers: server RSS at start {} MiB, peak {} MiB",
        baseline / 1024,
        peak / 1024
    );
}

/// A malformed `GITHUB_ORGS` stops the server at start-up with an error that
/// names the variable and the login (exit code 2), instead of failing syncs later.
#[test]
fn an_invalid_github_orgs_login_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("GITHUB_ORGS", "acme-corp,acme corp"),
        (
            Some(2),
            "connectors-server: configuration error: GITHUB_ORGS: \"acme corp\" is not an organization or user login (1 to 39 characters of A-Z, a-z, 0-9 and '-')".to_owned()
        )
    );
}

/// `CONNECTORS_CLIENT_IDENTITY_HEADER` must name a header: one that is not
/// stops the server naming the variable.
#[test]
fn an_invalid_client_identity_header_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("CONNECTORS_CLIENT_IDENTITY_HEADER", "l5d client id"),
        (
            Some(2),
            "connectors-server: configuration error: CONNECTORS_CLIENT_IDENTITY_HEADER: \"l5d client id\" is not an HTTP header name".to_owned()
        )
    );
}

/// The exit code and standard error of the server started in fixture mode
/// with `var` set to `value` (and nothing else of the environment but PATH).
fn start_with(var: &str, value: &str) -> (Option<i32>, String) {
    crate::support::start_with_env(&[(var, value)])
}

/// A GraphQL batch above GitHub's 100 stops the server naming the variable.
#[test]
fn a_blob_batch_over_100_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("GITHUB_BLOB_BATCH", "101"),
        (
            Some(2),
            "connectors-server: configuration error: GITHUB_BLOB_BATCH: must be 0 (REST reads) to 100".to_owned()
        )
    );
}

/// `REDIS_CA_FILE` is for Redis over TLS: set beside no `rediss://` URL, it
/// stops the server naming the variable.
#[test]
fn a_redis_ca_file_without_a_tls_redis_url_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("REDIS_CA_FILE", "/etc/ssl/private-ca.pem"),
        (
            Some(2),
            "connectors-server: configuration error: REDIS_CA_FILE: needs a REDIS_URL with the rediss:// scheme (Redis over TLS)".to_owned()
        )
    );
}

/// `#insecure` on a `rediss://` URL would turn certificate verification off
/// (the redis crate's convention), which this build cannot do: every
/// connection would fail. It stops the server naming the variable, without
/// quoting the URL (it may hold a password).
#[test]
fn a_redis_url_asking_not_to_verify_certificates_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("REDIS_URL", "rediss://:s3cret@redis.internal:6380/0#insecure"),
        (
            Some(2),
            "connectors-server: configuration error: REDIS_URL: the #insecure fragment (no certificate verification) is not supported; trust a private CA with REDIS_CA_FILE instead".to_owned()
        )
    );
}

/// A client certificate for Redis needs its key (and the other way round).
#[test]
fn a_redis_client_certificate_without_its_key_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("REDIS_CLIENT_CERT", "/etc/connectors/redis-client.pem"),
        (
            Some(2),
            "connectors-server: configuration error: REDIS_CLIENT_CERT: needs REDIS_CLIENT_CERT and REDIS_CLIENT_KEY both".to_owned()
        )
    );
}

/// Scope state that expired at once would make every INCREMENTAL sync fail:
/// a state TTL of 0 stops the server naming the variable, and so does one
/// that is not a number of seconds.
#[test]
fn a_state_ttl_or_generations_of_zero_or_not_a_number_stops_the_server_naming_the_variable() {
    assert_eq!(
        start_with("CONNECTORS_STATE_TTL_SECS", "0"),
        (
            Some(2),
            "connectors-server: configuration error: CONNECTORS_STATE_TTL_SECS: must be at least 1 (INCREMENTAL syncs need the state the last sync saved)".to_owned()
        )
    );
    assert_eq!(
        start_with("CONNECTORS_STATE_GRACE_SECS", "1h"),
        (
            Some(2),
            "connectors-server: configuration error: CONNECTORS_STATE_GRACE_SECS: invalid value: invalid digit found in string".to_owned()
        )
    );
    assert_eq!(
        start_with("CONNECTORS_STATE_GENERATIONS", "0"),
        (
            Some(2),
            "connectors-server: configuration error: CONNECTORS_STATE_GENERATIONS: must be at least 1 (the state the last sync saved is the one INCREMENTAL syncs need)".to_owned()
        )
    );
}
