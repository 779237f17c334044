//! Tests of the shared upstream client against the fixture replay server:
//! conditional requests, credentials in cache keys, retries, broken bodies,
//! rate limits, origin safety, per-sync figures and the tower adapter.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use url::Url;

use super::*;
use crate::cache::SharedCache;
use crate::replay::{Exchange, Fault, FixtureSet, ReplayOptions, ReplayServer};

fn exchange(value: Value) -> Exchange {
    serde_json::from_value(value).expect("valid exchange json")
}

async fn replay(exchanges: impl IntoIterator<Item = Exchange>, options: ReplayOptions) -> ReplayServer {
    let mut set = FixtureSet::default();
    for exchange in exchanges {
        set.insert(exchange);
    }
    ReplayServer::start(set, options).await.expect("start replay server")
}

fn config(base_url: &str) -> UpstreamConfig {
    let mut config = UpstreamConfig::new("test", Url::parse(base_url).expect("valid base url"));
    config.base_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    config.request_timeout = Duration::from_secs(2);
    config
}

fn client_with(config: UpstreamConfig) -> UpstreamClient {
    UpstreamClient::new(config, SharedCache::memory(16 << 20)).expect("build upstream client")
}

fn client(server: &ReplayServer) -> UpstreamClient {
    client_with(config(server.base_url()))
}

fn get(uri: &str) -> ::http::Request<Bytes> {
    ::http::Request::get(uri).body(Bytes::new()).expect("valid request")
}

fn get_with(uri: &str, headers: &[(&str, &str)]) -> ::http::Request<Bytes> {
    let mut builder = ::http::Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::new()).expect("valid request")
}

/// Runs `future` with a fresh per-sync [`RequestStats`] in scope.
async fn scoped<F: Future>(future: F) -> (F::Output, Arc<RequestStats>) {
    let stats = Arc::new(RequestStats::default());
    let output = SYNC_STATS.scope(stats.clone(), future).await;
    (output, stats)
}

fn retries(stats: &RequestStats) -> u64 {
    stats.retries.load(Ordering::Relaxed)
}

fn json_body(response: &::http::Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).expect("json body")
}

fn header<'a>(response: &'a ::http::Response<Bytes>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().expect("ascii header"))
}

/// One GET exchange per path `/items/{i}`, each answering `{"n": i}` with an etag.
fn numbered(count: usize) -> Vec<Exchange> {
    (0..count)
        .map(|i| {
            exchange(json!({
                "request": { "path": format!("/items/{i}") },
                "response": { "headers": { "etag": format!("\"e{i}\"") }, "body": { "n": i } }
            }))
        })
        .collect()
}

fn repo_exchange() -> Exchange {
    exchange(json!({
        "request": { "path": "/repos/acme/app" },
        "response": {
            "headers": {
                "content-type": "application/json; charset=utf-8",
                "etag": "W/\"v1\"",
                "link": "<{{base_url}}/repos/acme/app?page=2>; rel=\"next\"",
                "x-ratelimit-remaining": "4990"
            },
            "body": { "id": 1, "name": "app" }
        }
    }))
}

// ---------------------------------------------------------------------------
// Conditional requests

#[tokio::test]
async fn second_get_is_conditional_and_served_from_the_cache_on_304() {
    let server = replay([repo_exchange()], ReplayOptions::default()).await;
    let client = client(&server);

    let ((first, second), stats) = scoped(async {
        let first = client.execute(get("/repos/acme/app")).await.expect("first get");
        let second = client.execute(get("/repos/acme/app")).await.expect("second get");
        (first, second)
    })
    .await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(json_body(&first), json!({ "id": 1, "name": "app" }));
    let link = format!("<{}/repos/acme/app?page=2>; rel=\"next\"", server.base_url());
    assert_eq!(header(&first, "link"), Some(link.as_str()));

    // The server answered 304; the client hands back the cached 200.
    assert_eq!(server.stats().requests(), 2);
    assert_eq!(server.stats().not_modified(), 1);
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.body(), first.body());
    assert_eq!(header(&second, "link"), Some(link.as_str()));
    assert_eq!(header(&second, "etag"), Some("W/\"v1\""));
    assert_eq!(header(&second, "content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(header(&second, "x-ratelimit-remaining"), Some("4990"));
    // The stored headers, updated with the 304's (its date, ETag and
    // rate-limit figures); the body keeps its own `content-length`.
    let mut expected = first.headers().clone();
    for name in ["date", "x-ratelimit-remaining", "etag"] {
        expected.remove(name);
    }
    let mut updated = second.headers().clone();
    for name in ["date", "x-ratelimit-remaining", "etag"] {
        assert!(updated.remove(name).is_some(), "no {name} on the revalidated answer");
    }
    assert_eq!(updated, expected);

    assert_eq!(stats.requests(), 2);
    assert_eq!(stats.not_modified(), 1);
    assert_eq!(retries(&stats), 0);
    assert_eq!(stats.rate_limit_remaining(), 4990);
}

#[tokio::test]
async fn a_no_store_request_is_neither_conditional_nor_cached() {
    let server = replay([repo_exchange()], ReplayOptions::default()).await;
    let client = client(&server);
    let (statuses, stats) = scoped(async {
        let mut statuses = Vec::new();
        // Two no-store GETs (one with other directives around it), then a plain one.
        for headers in [
            &[("cache-control", "no-store")][..],
            &[("cache-control", "max-age=0, No-Store")][..],
            &[][..],
        ] {
            let response = client.execute(get_with("/repos/acme/app", headers)).await.expect("get");
            assert_eq!(json_body(&response), json!({ "id": 1, "name": "app" }));
            statuses.push(response.status());
        }
        statuses
    })
    .await;
    assert_eq!(statuses, vec![StatusCode::OK; 3]);
    // No entry was stored by the no-store requests, so the plain GET after
    // them was not conditional either: three full answers, no 304.
    assert_eq!(server.stats().requests(), 3);
    assert_eq!(server.stats().not_modified(), 0);
    assert_eq!(stats.not_modified(), 0);
    // The plain GET stored its entry: the next one is answered 304.
    client.execute(get("/repos/acme/app")).await.expect("get");
    assert_eq!(server.stats().not_modified(), 1);
}

#[tokio::test]
async fn no_conditional_request_without_an_etag() {
    let server = replay(
        [exchange(json!({
            "request": { "path": "/plain" },
            "response": { "headers": { "content-type": "application/json" }, "body": { "ok": true } }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let (responses, stats) = scoped(async {
        let mut responses = Vec::new();
        for _ in 0..3 {
            responses.push(client.execute(get("/plain")).await.expect("get"));
        }
        responses
    })
    .await;
    for response in &responses {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json_body(response), json!({ "ok": true }));
    }
    assert_eq!(server.stats().requests(), 3);
    assert_eq!(server.stats().not_modified(), 0);
    assert_eq!(stats.requests(), 3);
    assert_eq!(stats.not_modified(), 0);
}

#[tokio::test]
async fn no_conditional_request_when_disabled() {
    let server = replay([repo_exchange()], ReplayOptions::default()).await;
    let mut config = config(server.base_url());
    config.conditional_requests = false;
    let client = client_with(config);
    let (statuses, stats) = scoped(async {
        let mut statuses = Vec::new();
        for _ in 0..2 {
            statuses.push(client.execute(get("/repos/acme/app")).await.expect("get").status());
        }
        statuses
    })
    .await;
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::OK]);
    assert_eq!(server.stats().requests(), 2);
    assert_eq!(server.stats().not_modified(), 0);
    assert_eq!(stats.not_modified(), 0);
}

#[tokio::test]
async fn post_requests_are_never_conditional() {
    let server = replay(
        [exchange(json!({
            "request": { "method": "POST", "path": "/graphql", "body_json": { "query": "{ viewer }" } },
            "response": { "headers": { "etag": "\"g1\"" }, "body": { "data": { "viewer": "octo" } } }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    for _ in 0..2 {
        let request = ::http::Request::post("/graphql")
            .header("content-type", "application/json")
            .body(Bytes::from_static(br#"{"query":"{ viewer }"}"#))
            .unwrap();
        let response = client.execute(request).await.expect("post");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json_body(&response), json!({ "data": { "viewer": "octo" } }));
    }
    assert_eq!(server.stats().requests(), 2);
    assert_eq!(server.stats().not_modified(), 0);
    assert_eq!(server.stats().unmatched(), 0);
}

#[tokio::test]
async fn credentials_get_separate_cache_entries() {
    let server = replay([repo_exchange()], ReplayOptions::default()).await;
    let client = client(&server);
    let token_a = [("authorization", "Bearer token-a")];
    let token_b = [("authorization", "Bearer token-b")];

    let (_, stats) = scoped(async {
        let response = client.execute(get_with("/repos/acme/app", &token_a)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(server.stats().not_modified(), 0);

        // The second token's first request is not conditional.
        let response = client.execute(get_with("/repos/acme/app", &token_b)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(server.stats().not_modified(), 0);

        // Each token's second request is.
        let response = client.execute(get_with("/repos/acme/app", &token_a)).await.unwrap();
        assert_eq!(json_body(&response), json!({ "id": 1, "name": "app" }));
        assert_eq!(server.stats().not_modified(), 1);
        let response = client.execute(get_with("/repos/acme/app", &token_b)).await.unwrap();
        assert_eq!(json_body(&response), json!({ "id": 1, "name": "app" }));
        assert_eq!(server.stats().not_modified(), 2);

        // No credential at all is a third entry.
        client.execute(get("/repos/acme/app")).await.unwrap();
        assert_eq!(server.stats().not_modified(), 2);
    })
    .await;
    assert_eq!(stats.requests(), 5);
    assert_eq!(stats.not_modified(), 2);
    assert_eq!(server.stats().requests(), 5);
}

#[test]
fn rate_limit_resets_are_kept_apart_and_bodies_are_not() {
    let client = client_with(config("http://127.0.0.1:1"));
    let url = Url::parse("http://127.0.0.1:1/repos/acme/app").unwrap();
    assert!(crate::cache::is_kept(&client.budget_key(
        &HeaderMap::new(),
        "/repos/acme/app",
        None
    )));
    assert!(!crate::cache::is_kept(&client.cache_key(&url, &HeaderMap::new())));
}

#[test]
fn cache_keys_hash_url_credentials_and_accept() {
    let client = client_with(config("http://127.0.0.1:1"));
    let url = Url::parse("http://127.0.0.1:1/repos/acme/app").unwrap();
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    };
    let plain = client.cache_key(&url, &HeaderMap::new());
    let token_a = client.cache_key(&url, &headers(&[("authorization", "Bearer secret-a")]));
    let token_b = client.cache_key(&url, &headers(&[("authorization", "Bearer secret-b")]));
    let accept = client.cache_key(&url, &headers(&[("accept", "application/vnd.github.raw+json")]));
    let other_url = client.cache_key(
        &Url::parse("http://127.0.0.1:1/repos/acme/lib").unwrap(),
        &HeaderMap::new(),
    );
    // Unrelated headers do not change the key.
    let user_agent = client.cache_key(&url, &headers(&[("user-agent", "x")]));

    assert_eq!(plain, user_agent);
    assert_eq!(
        token_a,
        client.cache_key(&url, &headers(&[("authorization", "Bearer secret-a")]))
    );
    let keys = [&plain, &token_a, &token_b, &accept, &other_url];
    for (i, a) in keys.iter().enumerate() {
        assert!(a.starts_with("http:v2:test:"), "{a}");
        assert_eq!(a.len(), "http:v2:test:".len() + 64, "{a}");
        assert!(!a.contains("secret"), "{a}");
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

// ---------------------------------------------------------------------------
// Retries and broken bodies

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let options = ReplayOptions {
        fault_rate: 1.0,
        faults: vec![Fault::ServerError],
        ..ReplayOptions::default()
    };
    let server = replay(numbered(1), options).await;
    let client = client(&server);
    let (result, stats) = scoped(client.execute(get("/items/0"))).await;
    match result {
        Err(UpstreamError::ServerError { status, attempts }) => {
            assert_eq!(status, 503);
            assert_eq!(attempts, 4);
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert_eq!(server.stats().requests(), 4);
    assert_eq!(server.stats().faults(), 4);
    assert_eq!(stats.requests(), 4);
    assert_eq!(retries(&stats), 3);
}

#[tokio::test]
async fn max_attempts_bounds_the_retries() {
    let options = ReplayOptions {
        fault_rate: 1.0,
        faults: vec![Fault::ServerError],
        ..ReplayOptions::default()
    };
    let server = replay(numbered(1), options).await;
    let mut config = config(server.base_url());
    config.max_attempts = 2;
    let client = client_with(config);
    let error = client.execute(get("/items/0")).await.expect_err("server error");
    assert!(
        matches!(
            error,
            UpstreamError::ServerError {
                status: 503,
                attempts: 2
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "upstream answered 503 after 2 attempts");
    assert_eq!(server.stats().requests(), 2);
}

#[tokio::test]
async fn intermittent_server_errors_are_retried_to_success() {
    // With seed 6 every one of the 20 requests succeeds within 4 attempts, after
    // 19 injected 503s in all (the replay server's fault choice is deterministic).
    let options = ReplayOptions {
        fault_rate: 0.5,
        faults: vec![Fault::ServerError],
        seed: 6,
        ..ReplayOptions::default()
    };
    let server = replay(numbered(20), options).await;
    let client = client(&server);
    let (results, stats) = scoped(async {
        let mut results = Vec::new();
        for i in 0..20 {
            results.push(client.execute(get(&format!("/items/{i}"))).await);
        }
        results
    })
    .await;
    for (i, result) in results.iter().enumerate() {
        let response = result.as_ref().unwrap_or_else(|e| panic!("request {i} failed: {e:?}"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json_body(response), json!({ "n": i }));
    }
    assert!(retries(&stats) > 0);
    assert_eq!(retries(&stats), 19);
    assert_eq!(server.stats().faults(), 19);
    assert_eq!(stats.requests(), 39);
    assert_eq!(server.stats().requests(), 39);
    assert_eq!(server.stats().unmatched(), 0);
}

#[tokio::test]
async fn truncated_bodies_are_retried_then_reported_as_transport_errors() {
    let options = ReplayOptions {
        fault_rate: 1.0,
        faults: vec![Fault::TruncatedBody],
        ..ReplayOptions::default()
    };
    let server = replay(
        [exchange(json!({
            "request": { "path": "/private", "query": { "sig": "s3cr3t" } },
            "response": { "body": { "ok": true } }
        }))],
        options,
    )
    .await;
    let client = client(&server);
    let (result, stats) = scoped(client.execute(get("/private?sig=s3cr3t"))).await;
    match result {
        Err(UpstreamError::Transport { message, attempts }) => {
            assert_eq!(attempts, 4);
            // "reading the 200 body: ..." when the head arrives before the
            // connection ends, "request failed: ..." when it does not (see the
            // replay server's TruncatedBody); never the URL or its query.
            assert!(
                message.starts_with("reading the 200 body: ") || message.starts_with("request failed: "),
                "{message}"
            );
            assert!(
                !message.contains("127.0.0.1") && !message.contains("s3cr3t"),
                "{message}"
            );
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(stats.requests(), 4);
    assert_eq!(retries(&stats), 3);
    assert_eq!(server.stats().faults(), 4);
    assert_eq!(server.stats().requests(), 4);
    assert_eq!(server.stats().unmatched(), 0);
}

#[tokio::test]
async fn a_truncated_body_then_a_good_one_succeeds() {
    let options = ReplayOptions {
        fault_rate: 1.0,
        faults: vec![Fault::TruncatedBody],
        ..ReplayOptions::default()
    };
    let server = replay(numbered(1), options).await;
    // A first retry delay of 100 to 200 ms leaves time to turn the faults off.
    let mut config = config(server.base_url());
    config.base_backoff = Duration::from_millis(200);
    config.max_backoff = Duration::from_millis(400);
    let client = Arc::new(client_with(config));
    let task = {
        let client = client.clone();
        tokio::spawn(SYNC_STATS.scope(Arc::new(RequestStats::default()), async move {
            let response = client.execute(get("/items/0")).await;
            let stats = SYNC_STATS.with(|s| (s.requests(), s.retries.load(Ordering::Relaxed)));
            (response, stats)
        }))
    };
    while server.stats().faults() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.set_options(ReplayOptions::default());
    let (response, (requests, retried)) = task.await.unwrap();
    let response = response.expect("succeeds once the faults stop");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(&response), json!({ "n": 0 }));
    assert_eq!(server.stats().faults(), 1);
    assert_eq!(server.stats().requests(), 2);
    assert_eq!(requests, 2);
    assert_eq!(retried, 1);
}

#[tokio::test]
async fn slow_answers_time_out_as_transport_errors() {
    let options = ReplayOptions {
        latency: Duration::from_millis(500),
        ..ReplayOptions::default()
    };
    let server = replay(numbered(1), options).await;
    let mut config = config(server.base_url());
    config.request_timeout = Duration::from_millis(100);
    config.max_attempts = 2;
    let client = client_with(config);
    let (result, stats) = scoped(client.execute(get("/items/0"))).await;
    match result {
        Err(UpstreamError::Transport { message, attempts }) => {
            assert_eq!(attempts, 2);
            assert!(message.starts_with("timed out"), "{message}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(stats.requests(), 2);
    assert_eq!(retries(&stats), 1);
}

#[tokio::test]
async fn connection_failures_are_transport_errors() {
    // A port nothing listens on: bind one, then release it.
    let port = crate::testing::free_port();
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    config.max_attempts = 2;
    let client = client_with(config);
    let (result, stats) = scoped(client.execute(get("/items/0"))).await;
    match result {
        Err(UpstreamError::Transport { message, attempts }) => {
            assert_eq!(attempts, 2);
            assert!(message.starts_with("connection failed"), "{message}");
        }
        other => panic!("expected a connection failure, got {other:?}"),
    }
    assert_eq!(stats.requests(), 2);
    assert_eq!(retries(&stats), 1);
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let mut config = config("http://127.0.0.1:1");
    config.base_backoff = Duration::from_millis(100);
    config.max_backoff = Duration::from_millis(1000);
    let client = client_with(config);
    for _ in 0..50 {
        let first = client.backoff(1);
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
            "{first:?}"
        );
        let third = client.backoff(3);
        assert!(
            third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
            "{third:?}"
        );
        let capped = client.backoff(30);
        assert!(
            capped >= Duration::from_millis(500) && capped <= Duration::from_millis(1000),
            "{capped:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Rate limits and client errors

/// Without `status_retries` (the AWS SDK retries by the answer's error code
/// itself), a 429 and a 5xx are sent once and returned as responses, with
/// their headers and body; metrics still count them.
#[tokio::test]
async fn without_status_retries_429_and_5xx_are_responses_sent_once() {
    let answer = |path: &str, status: u16, error_type: &str| {
        exchange(json!({
            "request": { "path": path },
            "response": {
                "status": status,
                "headers": { "x-amzn-errortype": error_type, "retry-after": "0" },
                "body": { "message": "Rate exceeded" }
            }
        }))
    };
    let server = replay(
        [
            answer("/limited", 429, "TooManyRequestsException"),
            answer("/unavailable", 503, "ServiceUnavailableException"),
        ],
        ReplayOptions::default(),
    )
    .await;
    let mut config = config(server.base_url());
    config.status_retries = false;
    let client = client_with(config);
    for (path, status, error_type) in [
        ("/limited", 429, "TooManyRequestsException"),
        ("/unavailable", 503, "ServiceUnavailableException"),
    ] {
        let (result, stats) = scoped(client.execute(get(path))).await;
        let response = result.expect("a response");
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["x-amzn-errortype"], error_type);
        assert_eq!(
            serde_json::from_slice::<Value>(response.body()).unwrap(),
            json!({ "message": "Rate exceeded" })
        );
        assert_eq!(stats.requests(), 1);
        assert_eq!(retries(&stats), 0);
    }
    assert_eq!(server.stats().requests(), 2);
}

#[tokio::test]
async fn recorded_429_with_retry_after_zero_is_retried_then_reported() {
    let server = replay(
        [exchange(json!({
            "request": { "path": "/limited" },
            "response": {
                "status": 429,
                "headers": { "retry-after": "0" },
                "body": { "message": "slow down" }
            }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let before = Utc::now();
    let (result, stats) = scoped(client.execute(get("/limited"))).await;
    let after = Utc::now();
    match result {
        Err(UpstreamError::RateLimited { status, reset_time }) => {
            assert_eq!(status, 429);
            // Retry-After 0: the limit resets "now".
            let reset = reset_time.expect("a reset time from retry-after");
            assert!(reset >= before && reset <= after, "{reset} not in {before}..{after}");
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert_eq!(server.stats().requests(), 4);
    assert_eq!(stats.requests(), 4);
    assert_eq!(retries(&stats), 3);
}

#[tokio::test]
async fn a_429_that_says_nothing_of_when_to_come_back_is_retried_with_backoff() {
    // Google's quota errors come so: the delay, if any, is in the body's
    // google.rpc.RetryInfo, not in a header.
    let server = replay(
        [
            exchange(json!({
                "request": { "path": "/quota" },
                "times": 2,
                "response": {
                    "status": 429,
                    "body": { "error": { "code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED" } }
                }
            })),
            exchange(json!({
                "request": { "path": "/quota" },
                "response": { "status": 200, "body": { "items": [] } }
            })),
        ],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let (result, stats) = scoped(client.execute(get("/quota"))).await;
    assert_eq!(result.expect("the third attempt's answer").status(), 200);
    assert_eq!(server.stats().requests(), 3);
    assert_eq!(retries(&stats), 2);

    // Always 429: reported after the attempts, with no reset time to give.
    let server = replay(
        [exchange(json!({
            "request": { "path": "/quota" },
            "response": { "status": 429, "body": { "error": { "code": 429, "status": "RESOURCE_EXHAUSTED" } } }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let (result, stats) = scoped(self::client(&server).execute(get("/quota"))).await;
    match result {
        Err(UpstreamError::RateLimited { status, reset_time }) => assert_eq!((status, reset_time), (429, None)),
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert_eq!(server.stats().requests(), 4);
    assert_eq!(retries(&stats), 3);
}

#[tokio::test]
async fn injected_rate_limits_are_reported_after_max_attempts() {
    let options = ReplayOptions {
        fault_rate: 1.0,
        faults: vec![Fault::RateLimited],
        ..ReplayOptions::default()
    };
    let server = replay(numbered(1), options).await;
    let client = client(&server);
    let (result, stats) = scoped(client.execute(get("/items/0"))).await;
    assert!(
        matches!(
            result,
            Err(UpstreamError::RateLimited {
                status: 429,
                reset_time: Some(_)
            })
        ),
        "{result:?}"
    );
    assert_eq!(server.stats().faults(), 4);
    assert_eq!(stats.requests(), 4);
    assert_eq!(retries(&stats), 3);
}

#[tokio::test]
async fn exhausted_rate_limit_resetting_later_than_the_wait_budget_is_reported_at_once() {
    let reset = Utc::now().timestamp() + 3600;
    let server = replay(
        [exchange(json!({
            "request": { "path": "/orgs/acme/repos" },
            "response": {
                "status": 403,
                "headers": {
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": reset.to_string()
                },
                "body": { "message": "API rate limit exceeded" }
            }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let started = Instant::now();
    let (result, stats) = scoped(client.execute(get("/orgs/acme/repos"))).await;
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    match result {
        Err(UpstreamError::RateLimited { status, reset_time }) => {
            assert_eq!(status, 403);
            assert_eq!(reset_time, Some(Utc.timestamp_opt(reset, 0).unwrap()));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert_eq!(server.stats().requests(), 1);
    assert_eq!(stats.requests(), 1);
    assert_eq!(retries(&stats), 0);
    assert_eq!(stats.rate_limit_remaining(), 0);
}

#[tokio::test]
async fn exhausted_rate_limit_resetting_within_the_wait_budget_is_waited_out() {
    // The reset is already due: the client waits 0 s (plus jitter) and retries.
    let reset = Utc::now().timestamp() - 10;
    let server = replay(
        [exchange(json!({
            "request": { "path": "/orgs/acme/repos" },
            "response": {
                "status": 403,
                "headers": { "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset.to_string() },
                "body": { "message": "API rate limit exceeded" }
            }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let (result, stats) = scoped(client.execute(get("/orgs/acme/repos"))).await;
    match result {
        Err(UpstreamError::RateLimited { status, reset_time }) => {
            assert_eq!(status, 403);
            assert_eq!(reset_time, DateTime::from_timestamp(reset, 0));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert_eq!(server.stats().requests(), 4);
    assert_eq!(retries(&stats), 3);
}

/// GitHub's answer to a request over a secondary rate limit, as its REST
/// documentation gives it, here without `Retry-After` or `x-ratelimit-*`.
const SECONDARY_LIMIT: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0A6B:2D4F:1B2E3C:1C5D6E:6747A1B2.";

#[test]
fn a_bare_403_that_says_rate_limit_is_a_limit_of_a_minute() {
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let body = serde_json::to_vec(&json!({
        "message": SECONDARY_LIMIT,
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
    }))
    .unwrap();
    let mut bare = RateLimit::default();
    bare.mark_bare_limit(StatusCode::FORBIDDEN, &body, "rate limit");
    assert_eq!(bare.retry_after, Some(60));
    assert!(bare.is_limited(StatusCode::FORBIDDEN));
    assert_eq!(bare.wait(now), Some(Duration::from_secs(60)));
    assert_eq!(bare.reset_time(now), Some(Utc.timestamp_opt(1_700_000_060, 0).unwrap()));

    // Other 403s, and the text under other statuses, are left as they are.
    let mut forbidden = RateLimit::default();
    forbidden.mark_bare_limit(
        StatusCode::FORBIDDEN,
        br#"{"message":"Forbidden","documentation_url":"https://docs.github.com/rest","status":"403"}"#,
        "rate limit",
    );
    assert_eq!(forbidden, RateLimit::default());
    let mut not_found = RateLimit::default();
    not_found.mark_bare_limit(StatusCode::NOT_FOUND, &body, "rate limit");
    assert_eq!(not_found, RateLimit::default());
    // A limit the headers already give keeps their reset time.
    let mut primary = RateLimit::from_headers(&headers(&[
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1700000600"),
    ]));
    primary.mark_bare_limit(
        StatusCode::FORBIDDEN,
        b"API rate limit exceeded for user ID 1.",
        "rate limit",
    );
    assert_eq!(primary.retry_after, None);
    assert_eq!(primary.wait(now), Some(Duration::from_secs(600)));
}

#[tokio::test]
async fn a_bare_secondary_limit_is_a_rate_limit_only_where_configured() {
    let answers = || {
        [
            exchange(json!({
                "request": { "path": "/repos/acme/busy/dependency-graph/sbom" },
                "response": {
                    "status": 403,
                    "body": {
                        "message": SECONDARY_LIMIT,
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                    }
                }
            })),
            exchange(json!({
                "request": { "path": "/repos/acme/fork/dependency-graph/sbom" },
                "response": {
                    "status": 403,
                    "body": { "message": "Forbidden", "documentation_url": "https://docs.github.com/rest", "status": "403" }
                }
            })),
        ]
    };
    let server = replay(answers(), ReplayOptions::default()).await;
    let marked = || {
        let mut marked = config(server.base_url());
        marked.rate_limit_message = Some("rate limit");
        // A minute is more than this client waits: the limit is reported at once.
        marked.max_rate_limit_wait = Duration::from_secs(30);
        client_with(marked)
    };
    let limited = marked();
    let before = Utc::now();
    let (result, stats) = scoped(limited.execute(get("/repos/acme/busy/dependency-graph/sbom"))).await;
    let after = Utc::now();
    match result {
        Err(UpstreamError::RateLimited { status, reset_time }) => {
            assert_eq!(status, 403);
            let reset = reset_time.expect("a minute from now");
            let window = (before + chrono::Duration::seconds(59))..=(after + chrono::Duration::seconds(60));
            assert!(window.contains(&reset), "{reset} not in {window:?}");
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert_eq!(stats.requests(), 1);
    // The limit holds for the credential's other requests: none is sent.
    let (held, stats) = scoped(limited.execute(get("/repos/acme/fork/dependency-graph/sbom"))).await;
    assert!(
        matches!(held, Err(UpstreamError::RateLimited { status: 429, .. })),
        "{held:?}"
    );
    assert_eq!(stats.requests(), 0);
    // A 403 that says nothing of a limit is the connector's to map.
    let fork = marked()
        .execute(get("/repos/acme/fork/dependency-graph/sbom"))
        .await
        .expect("a 403 without a limit is a response");
    assert_eq!(fork.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.stats().requests(), 2);

    // Without the setting the bare 403 is a response too.
    let server = replay(answers(), ReplayOptions::default()).await;
    let busy = client(&server)
        .execute(get("/repos/acme/busy/dependency-graph/sbom"))
        .await
        .expect("not a rate limit without the setting");
    assert_eq!(busy.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.stats().requests(), 1);
}

#[tokio::test]
async fn client_errors_are_responses_not_errors() {
    let server = replay(
        [
            exchange(json!({
                "request": { "path": "/repos/acme/gone" },
                "response": { "status": 404, "body": { "message": "Not Found" } }
            })),
            exchange(json!({
                "request": { "path": "/repos/acme/secret" },
                "response": {
                    "status": 403,
                    "headers": { "x-ratelimit-remaining": "4000" },
                    "body": { "message": "Resource not accessible by integration" }
                }
            })),
        ],
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let ((gone, secret), stats) = scoped(async {
        (
            client.execute(get("/repos/acme/gone")).await,
            client.execute(get("/repos/acme/secret")).await,
        )
    })
    .await;
    let gone = gone.expect("a 404 is a response");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(&gone), json!({ "message": "Not Found" }));
    // A 403 with quota left is a permissions error, not a rate limit.
    let secret = secret.expect("a 403 with quota left is a response");
    assert_eq!(secret.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json_body(&secret),
        json!({ "message": "Resource not accessible by integration" })
    );
    assert_eq!(server.stats().requests(), 2);
    assert_eq!(stats.requests(), 2);
    assert_eq!(retries(&stats), 0);
}

#[tokio::test]
async fn rate_limit_remaining_is_the_minimum_seen() {
    let remaining = ["4990", "4985", "4995"];
    let server = replay(
        remaining.iter().enumerate().map(|(i, remaining)| {
            exchange(json!({
                "request": { "path": format!("/items/{i}") },
                "response": {
                    "headers": { "etag": format!("\"e{i}\""), "x-ratelimit-remaining": remaining },
                    "body": { "n": i }
                }
            }))
        }),
        ReplayOptions::default(),
    )
    .await;
    let client = client(&server);
    let (seen, stats) = scoped(async {
        let mut seen = vec![SYNC_STATS.with(|s| s.rate_limit_remaining())];
        for i in 0..3 {
            client.execute(get(&format!("/items/{i}"))).await.unwrap();
            seen.push(SYNC_STATS.with(|s| s.rate_limit_remaining()));
        }
        seen
    })
    .await;
    assert_eq!(seen, vec![-1, 4990, 4985, 4985]);
    assert_eq!(stats.rate_limit_remaining(), 4985);
}

#[tokio::test]
async fn requests_outside_a_sync_scope_are_not_counted_anywhere() {
    let server = replay(numbered(1), ReplayOptions::default()).await;
    let client = client(&server);
    let response = client.execute(get("/items/0")).await.expect("get without a scope");
    assert_eq!(response.status(), StatusCode::OK);
    let (_, stats) = scoped(async {}).await;
    assert_eq!(stats.requests(), 0);
    assert_eq!(stats.rate_limit_remaining(), -1);
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn rate_limit_from_github_headers() {
    let rate = RateLimit::from_headers(&headers(&[
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4990"),
        ("x-ratelimit-reset", "1795000000"),
    ]));
    assert_eq!(
        rate,
        RateLimit {
            remaining: Some(4990),
            reset_epoch: Some(1_795_000_000),
            retry_after: None,
        }
    );
    assert!(!rate.is_limited(StatusCode::OK));
    assert!(!rate.is_limited(StatusCode::FORBIDDEN));
    assert!(rate.is_limited(StatusCode::TOO_MANY_REQUESTS));
    let now = Utc.timestamp_opt(1_794_999_900, 0).unwrap();
    // Requests left: the window's reset is not when a refused request may
    // come back (a secondary limit); nothing to wait for is known.
    assert_eq!((rate.wait(now), rate.reset_time(now)), (None, None));

    let exhausted = RateLimit::from_headers(&headers(&[
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1795000000"),
    ]));
    assert_eq!(exhausted.remaining, Some(0));
    assert_eq!(exhausted.wait(now), Some(Duration::from_secs(100)));
    assert_eq!(
        exhausted.reset_time(now),
        Some(Utc.timestamp_opt(1_795_000_000, 0).unwrap())
    );
    // A reset in the past means no wait.
    let later = Utc.timestamp_opt(1_795_000_500, 0).unwrap();
    assert_eq!(exhausted.wait(later), Some(Duration::ZERO));
    assert!(exhausted.is_limited(StatusCode::FORBIDDEN));
    assert!(!exhausted.is_limited(StatusCode::OK));
    assert!(!exhausted.is_limited(StatusCode::NOT_FOUND));
}

#[test]
fn rate_limit_from_gitlab_headers() {
    let rate = RateLimit::from_headers(&headers(&[
        ("ratelimit-limit", "2000"),
        ("ratelimit-remaining", " 0 "),
        ("ratelimit-reset", "1700000060"),
    ]));
    assert_eq!(
        rate,
        RateLimit {
            remaining: Some(0),
            reset_epoch: Some(1_700_000_060),
            retry_after: None,
        }
    );
    assert!(rate.is_limited(StatusCode::FORBIDDEN));
    assert_eq!(
        rate.wait(Utc.timestamp_opt(1_700_000_000, 0).unwrap()),
        Some(Duration::from_secs(60))
    );

    // GitHub's names win when both are present.
    let both = RateLimit::from_headers(&headers(&[
        ("x-ratelimit-remaining", "7"),
        ("ratelimit-remaining", "9"),
    ]));
    assert_eq!(both.remaining, Some(7));
}

#[test]
fn rate_limit_from_arm_headers_is_the_smallest_read_budget() {
    // Azure Resource Manager: per subscription, the newer global per
    // subscription, and per tenant.
    let rate = RateLimit::from_headers(&headers(&[
        ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        ("x-ms-ratelimit-remaining-subscription-global-reads", "249"),
        ("x-ms-ratelimit-remaining-tenant-reads", "11998"),
    ]));
    assert_eq!(rate.remaining, Some(249));
    let tenant_only = RateLimit::from_headers(&headers(&[("x-ms-ratelimit-remaining-tenant-reads", "0")]));
    assert_eq!(tenant_only.remaining, Some(0));
    assert!(tenant_only.is_limited(StatusCode::FORBIDDEN));
}

#[test]
fn retry_after_as_an_http_date_is_the_seconds_until_then() {
    let now = Utc.timestamp_opt(1_795_000_000, 0).unwrap();
    // 1795000000 is Wed, 18 Nov 2026 11:06:40 GMT.
    let rate = RateLimit::from_headers_at(&headers(&[("retry-after", "Wed, 18 Nov 2026 11:07:25 GMT")]), now);
    assert_eq!(rate.retry_after, Some(45));
    assert_eq!(rate.wait(now), Some(Duration::from_secs(45)));
    let past = RateLimit::from_headers_at(&headers(&[("retry-after", "Wed, 18 Nov 2026 11:00:00 GMT")]), now);
    assert_eq!(past.retry_after, Some(0));
    let garbage = RateLimit::from_headers_at(&headers(&[("retry-after", "soon")]), now);
    assert_eq!(garbage.retry_after, None);
    // The obsolete forms, which a recipient must still accept (RFC 9110
    // section 5.6.7): RFC 850 and asctime.
    for obsolete in ["Wednesday, 18-Nov-26 11:07:25 GMT", "Wed Nov 18 11:07:25 2026"] {
        let rate = RateLimit::from_headers_at(&headers(&[("retry-after", obsolete)]), now);
        assert_eq!(rate.retry_after, Some(45), "{obsolete}");
    }
}

#[test]
fn rate_limit_from_retry_after() {
    let rate = RateLimit::from_headers(&headers(&[("retry-after", "30"), ("x-ratelimit-reset", "1795000000")]));
    assert_eq!(
        rate,
        RateLimit {
            remaining: None,
            reset_epoch: Some(1_795_000_000),
            retry_after: Some(30),
        }
    );
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    // Retry-After wins over the reset epoch for the wait...
    assert_eq!(rate.wait(now), Some(Duration::from_secs(30)));
    // ... and a 403 with Retry-After (GitHub's secondary limit) is a rate limit.
    assert!(rate.is_limited(StatusCode::FORBIDDEN));

    let only_retry = RateLimit::from_headers(&headers(&[("retry-after", "0")]));
    assert_eq!(only_retry.retry_after, Some(0));
    assert_eq!(only_retry.wait(now), Some(Duration::ZERO));
    assert_eq!(only_retry.reset_time(now), Some(now));
    let in_a_minute = RateLimit::from_headers(&headers(&[("retry-after", "60")]));
    assert_eq!(
        in_a_minute.reset_time(now),
        Some(Utc.timestamp_opt(1_700_000_060, 0).unwrap())
    );
}

#[test]
fn rate_limit_without_headers() {
    let rate = RateLimit::from_headers(&HeaderMap::new());
    assert_eq!(rate, RateLimit::default());
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    assert_eq!(rate.wait(now), None);
    assert_eq!(rate.reset_time(now), None);
    assert!(rate.is_limited(StatusCode::TOO_MANY_REQUESTS));
    assert!(!rate.is_limited(StatusCode::FORBIDDEN));

    // Unparsable values are ignored.
    let junk = RateLimit::from_headers(&headers(&[
        ("x-ratelimit-remaining", "lots"),
        ("x-ratelimit-reset", ""),
        ("retry-after", "-5"),
    ]));
    assert_eq!(junk, RateLimit::default());
}

// ---------------------------------------------------------------------------
// Origin safety

fn resolve(base: &str, uri: &str) -> Result<String, UpstreamError> {
    let client = client_with(config(base));
    let uri: ::http::Uri = uri.parse().expect("valid uri");
    client.resolve(&uri).map(String::from)
}

fn assert_foreign(base: &str, uri: &str) {
    match resolve(base, uri) {
        Err(UpstreamError::ForeignOrigin) => {}
        other => panic!("{uri} against {base}: expected ForeignOrigin, got {other:?}"),
    }
}

#[test]
fn relative_paths_are_joined_to_the_base() {
    assert_eq!(
        resolve("http://127.0.0.1:1", "/orgs/x").unwrap(),
        "http://127.0.0.1:1/orgs/x"
    );
    assert_eq!(
        resolve("http://127.0.0.1:1/api/v3", "/orgs/x").unwrap(),
        "http://127.0.0.1:1/api/v3/orgs/x"
    );
    assert_eq!(
        resolve("http://127.0.0.1:1/api/v3/", "/orgs/x?per_page=10&page=2").unwrap(),
        "http://127.0.0.1:1/api/v3/orgs/x?per_page=10&page=2"
    );
}

#[test]
fn a_rerooted_path_resolves_on_the_base_origin_outside_its_prefix() {
    let mut rerooted = config("http://127.0.0.1:1/api/v3");
    rerooted.rerooted_paths.push(("/graphql", "/api/graphql".to_owned()));
    let client = client_with(rerooted);
    let resolve = |uri: &str| client.resolve(&uri.parse().expect("valid uri")).map(String::from);
    assert_eq!(resolve("/graphql").unwrap(), "http://127.0.0.1:1/api/graphql");
    assert_eq!(resolve("/graphql?x=1").unwrap(), "http://127.0.0.1:1/api/graphql?x=1");
    // Only that exact path; everything else stays under the prefix.
    assert_eq!(resolve("/graphql/x").unwrap(), "http://127.0.0.1:1/api/v3/graphql/x");
    assert_eq!(resolve("/orgs/x").unwrap(), "http://127.0.0.1:1/api/v3/orgs/x");
    // An absolute URL of the rerooted path is still off the prefix.
    assert!(matches!(
        resolve("http://127.0.0.1:1/api/graphql"),
        Err(UpstreamError::ForeignOrigin)
    ));
}

#[test]
fn absolute_urls_on_the_base_origin_and_prefix_are_accepted() {
    assert_eq!(
        resolve("http://127.0.0.1:1/api/v3", "http://127.0.0.1:1/api/v3/orgs/x?page=2").unwrap(),
        "http://127.0.0.1:1/api/v3/orgs/x?page=2"
    );
    assert_eq!(
        resolve(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/organizations/1001/repos?page=3"
        )
        .unwrap(),
        "http://127.0.0.1:1/organizations/1001/repos?page=3"
    );
}

#[test]
fn absolute_urls_off_the_base_origin_or_prefix_are_refused() {
    let base = "http://127.0.0.1:1/api/v3";
    // Another host.
    assert_foreign(base, "http://127.0.0.2:1/api/v3/orgs/x");
    assert_foreign(base, "http://localhost:1/api/v3/orgs/x");
    assert_foreign(base, "http://evil.example:1/api/v3/orgs/x");
    // Another port, including the scheme's default.
    assert_foreign(base, "http://127.0.0.1:2/api/v3/orgs/x");
    assert_foreign(base, "http://127.0.0.1/api/v3/orgs/x");
    // Another scheme.
    assert_foreign(base, "https://127.0.0.1:1/api/v3/orgs/x");
    // Same origin, outside the path prefix.
    assert_foreign(base, "http://127.0.0.1:1/orgs/x");
    assert_foreign(base, "http://127.0.0.1:1/api/orgs/x");
    assert_foreign(base, "http://127.0.0.1:1/api/v3/../../admin");
}

#[test]
fn relative_paths_whose_dot_segments_leave_the_base_path_are_refused() {
    let base = "http://127.0.0.1:1/api/v3";
    assert_foreign(base, "/../../admin");
    assert_foreign(base, "/orgs/x/../../../setup/api?page=2");
    assert_foreign(base, "/%2e%2e/%2E%2E/admin");
    assert_foreign(base, "/..");
    // Within the prefix once removed: the URL the upstream would see anyway.
    assert_eq!(
        resolve(base, "/orgs/x/../y/repos").unwrap(),
        "http://127.0.0.1:1/api/v3/orgs/y/repos"
    );
}

/// `/api/v30` is outside the base path `/api/v3` but passes the string-prefix check.
#[test]
fn a_sibling_path_sharing_the_prefix_string_is_refused() {
    assert_foreign("http://127.0.0.1:1/api/v3", "http://127.0.0.1:1/api/v30/orgs/x");
    assert_foreign("http://127.0.0.1:1/api/v3", "http://127.0.0.1:1/api/v3-internal");
}

#[tokio::test]
async fn execute_refuses_foreign_urls_without_sending() {
    let server = replay(numbered(1), ReplayOptions::default()).await;
    let client = client(&server);
    let other = replay(numbered(1), ReplayOptions::default()).await;
    let (result, stats) = scoped(client.execute(get(&format!("{}/items/0", other.base_url())))).await;
    assert!(matches!(result, Err(UpstreamError::ForeignOrigin)), "{result:?}");
    assert_eq!(stats.requests(), 0);
    assert_eq!(server.stats().requests(), 0);
    assert_eq!(other.stats().requests(), 0);

    // The same absolute URL on the client's own origin is followed.
    let response = client
        .execute(get(&format!("{}/items/0", server.base_url())))
        .await
        .expect("same-origin absolute url");
    assert_eq!(json_body(&response), json!({ "n": 0 }));
    assert_eq!(server.stats().requests(), 1);
}

// ---------------------------------------------------------------------------
// Concurrency, errors in chains, tower

#[tokio::test]
async fn concurrency_limits_requests_in_flight() {
    // Each answer takes 100 ms, so requests let through together overlap at
    // the replay server, which counts the most it answered at once.
    let options = ReplayOptions {
        latency: Duration::from_millis(100),
        ..ReplayOptions::default()
    };
    let server = replay(numbered(4), options).await;
    let mut config = config(server.base_url());
    config.concurrency = 2;
    let client = client_with(config);
    let results = futures::future::join_all((0..4).map(|i| client.execute(get(&format!("/items/{i}"))))).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(json_body(&result.expect("get")), json!({ "n": i }));
    }
    assert_eq!(server.stats().requests(), 4);
    assert_eq!(server.stats().max_in_flight(), 2);
}

#[derive(Debug)]
struct Wrapper(UpstreamError);

impl std::fmt::Display for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client wrapper")
    }
}

impl std::error::Error for Wrapper {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn upstream_errors_are_found_in_source_chains() {
    let wrapped = Wrapper(UpstreamError::ServerError {
        status: 502,
        attempts: 4,
    });
    assert!(matches!(
        UpstreamError::find(&wrapped),
        Some(UpstreamError::ServerError {
            status: 502,
            attempts: 4
        })
    ));
    let direct = UpstreamError::ForeignOrigin;
    assert!(matches!(
        UpstreamError::find(&direct),
        Some(UpstreamError::ForeignOrigin)
    ));
    let unrelated = std::io::Error::other("nope");
    assert!(UpstreamError::find(&unrelated).is_none());
}

#[tokio::test]
async fn tower_adapter_returns_the_body() {
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;

    let server = replay(
        [
            repo_exchange(),
            exchange(json!({
                "request": { "method": "POST", "path": "/graphql", "body_json": { "query": "{ viewer }" } },
                "response": { "body": { "data": { "viewer": "octo" } } }
            })),
        ],
        ReplayOptions::default(),
    )
    .await;
    let adapter = TowerAdapter::new(Arc::new(client(&server)));

    let request = ::http::Request::get("/repos/acme/app")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = adapter.clone().oneshot(request).await.expect("tower get");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("etag").map(|v| v.to_str().unwrap()),
        Some("W/\"v1\"")
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "id": 1, "name": "app" })
    );

    // The request body is forwarded.
    let request = ::http::Request::post("/graphql")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"query":"{ viewer }"}"#)))
        .unwrap();
    let response = adapter.clone().oneshot(request).await.expect("tower post");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "data": { "viewer": "octo" } })
    );

    // The shared behaviour applies: a second GET is a 304 served from the cache.
    let request = ::http::Request::get("/repos/acme/app")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = adapter.clone().oneshot(request).await.expect("tower conditional get");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "id": 1, "name": "app" })
    );
    assert_eq!(server.stats().not_modified(), 1);

    // Errors come back boxed, findable in the chain.
    let request = ::http::Request::get("http://127.0.0.2:1/elsewhere")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let error = adapter.oneshot(request).await.expect_err("foreign origin");
    assert!(matches!(
        UpstreamError::find(&*error),
        Some(UpstreamError::ForeignOrigin)
    ));
    assert_eq!(server.stats().requests(), 3);
}

/// Two clients on one cache stand for two replicas sharing Redis: a limit one
/// of them found exhausted is honoured by the other without a request.
#[tokio::test]
async fn a_rate_limit_learned_by_one_replica_is_respected_by_another() {
    let reset = Utc::now().timestamp() + 3600;
    let server = replay(
        [
            exchange(json!({
                "request": { "path": "/limited" },
                "response": {
                    "status": 403,
                    "headers": { "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset.to_string() },
                    "body": { "message": "API rate limit exceeded" }
                }
            })),
            exchange(json!({
                "request": { "path": "/other" },
                "response": { "status": 200, "body": { "ok": true } }
            })),
        ],
        ReplayOptions::default(),
    )
    .await;
    // Two replicas: two independent connections to one Redis (or, without
    // redis-server outside CI, one shared memory cache).
    let redis = crate::testing::RedisServer::start_or_skip();
    let (cache_a, cache_b) = match &redis {
        Some(redis) => {
            let prefix = format!("budget-{}:", uuid::Uuid::new_v4());
            (
                SharedCache::new(Arc::new(
                    crate::cache::RedisCache::new(&redis.url(), prefix.clone()).unwrap(),
                )),
                SharedCache::new(Arc::new(crate::cache::RedisCache::new(&redis.url(), prefix).unwrap())),
            )
        }
        None => {
            let shared = SharedCache::memory(16 << 20);
            (shared.clone(), shared)
        }
    };
    let token = [("authorization", "Bearer one-token")];
    let first = UpstreamClient::new(config(server.base_url()), cache_a).unwrap();
    let second = UpstreamClient::new(config(server.base_url()), cache_b).unwrap();
    assert!(matches!(
        first.execute(get_with("/limited", &token)).await,
        Err(UpstreamError::RateLimited { status: 403, .. })
    ));
    assert_eq!(server.stats().requests(), 1);
    match second.execute(get_with("/other", &token)).await {
        Err(UpstreamError::RateLimited { status, reset_time }) => {
            assert_eq!(status, 429);
            assert_eq!(reset_time, DateTime::from_timestamp(reset, 0));
        }
        other => panic!("expected the shared limit, got {other:?}"),
    }
    assert_eq!(
        server.stats().requests(),
        1,
        "no request spent on a known-exhausted limit"
    );
    // Another credential has its own budget.
    let other_token = [("authorization", "Bearer another-token")];
    let response = second.execute(get_with("/other", &other_token)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(server.stats().requests(), 2);
}

/// A download from where the upstream pointed carries no header of the
/// connector's (no credential reaches storage on another host); only https
/// or the API's own scheme, without user info, is fetched.
#[tokio::test]
async fn a_download_elsewhere_carries_no_credential_and_only_safe_urls_are_fetched() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let storage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!(
        "http://{}/reports/r1.json?sig=abc",
        storage.local_addr().unwrap()
    ))
    .unwrap();
    let head = tokio::spawn(async move {
        let (mut socket, _) = storage.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            received.extend_from_slice(&buf[..n]);
        }
        let body = br#"{"spdxVersion":"SPDX-2.3"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        socket.write_all(body).await.unwrap();
        String::from_utf8(received).unwrap().to_ascii_lowercase()
    });
    // The API client has a credential of its own (as GitHub's sessions send one).
    let client = client_with(config("http://127.0.0.1:9/api"));
    let answer = client.download(url).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(&answer.body()[..], br#"{"spdxVersion":"SPDX-2.3"}"#);
    let head = head.await.unwrap();
    assert!(head.starts_with("get /reports/r1.json?sig=abc http/1.1\r\n"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    assert!(!head.contains("private-token"), "{head}");

    let https_api = client_with(config("https://api.example.com"));
    for refused in [
        "http://storage.example.com/r.json",
        "ftp://storage.example.com/r.json",
        "https://user:pass@storage.example.com/r.json",
    ] {
        match https_api.download(Url::parse(refused).unwrap()).await {
            Err(UpstreamError::InvalidRequest(message)) => {
                assert!(message.starts_with("refusing to download from"), "{message}")
            }
            other => panic!("{refused}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_rate_limit_holds_back_only_the_requests_of_its_budget() {
    let throttled = |path: &str| {
        exchange(json!({
            "request": { "path": path },
            "response": { "status": 429, "headers": { "retry-after": "120" }, "body": { "error": { "code": "SubscriptionRequestsThrottled" } } }
        }))
    };
    let ok = |path: &str| {
        exchange(json!({
            "request": { "path": path },
            "response": { "status": 200, "body": { "value": [] } }
        }))
    };
    let server = replay(
        [
            throttled("/subscriptions/aaa/resources"),
            ok("/subscriptions/bbb/resources"),
            throttled("/limited"),
            ok("/other"),
        ],
        ReplayOptions::default(),
    )
    .await;
    let token = [("authorization", "Bearer one-token")];
    let limited = |result: Result<::http::Response<Bytes>, UpstreamError>| {
        matches!(result, Err(UpstreamError::RateLimited { status: 429, .. }))
    };

    // Azure Resource Manager throttles each subscription apart.
    let mut per_subscription = config(server.base_url());
    per_subscription.budget = Budget::PerSegmentAfter("subscriptions");
    let cache = SharedCache::memory(16 << 20);
    let arm = UpstreamClient::new(per_subscription, cache.clone()).unwrap();
    assert!(limited(
        arm.execute(get_with("/subscriptions/aaa/resources", &token)).await
    ));
    assert_eq!(server.stats().requests(), 1);
    let other = arm.execute(get_with("/subscriptions/bbb/resources", &token)).await;
    assert_eq!(other.unwrap().status().as_u16(), 200);
    assert_eq!(server.stats().requests(), 2);
    // The throttled subscription (ids are case-insensitive) waits, unsent.
    assert!(limited(
        arm.execute(get_with("/subscriptions/AAA/resources", &token)).await
    ));
    assert_eq!(server.stats().requests(), 2);

    // Each Google API has its own quotas: one client per API, one cache.
    let api = |name: &'static str| {
        let mut config = config(server.base_url());
        config.budget = Budget::Named(name);
        UpstreamClient::new(config, cache.clone()).unwrap()
    };
    assert!(limited(api("run").execute(get_with("/limited", &token)).await));
    assert_eq!(server.stats().requests(), 3);
    let container = api("container").execute(get_with("/other", &token)).await;
    assert_eq!(container.unwrap().status().as_u16(), 200);
    assert_eq!(server.stats().requests(), 4);
    assert!(limited(api("run").execute(get_with("/other", &token)).await));
    assert_eq!(server.stats().requests(), 4);

    // Each installation of a GitHub App has its own limit: requests scoped
    // to another installation go on, those of the limited one wait, unsent.
    let github = UpstreamClient::new(config(server.base_url()), cache.clone()).unwrap();
    let installation = |path: &str, id: &str| {
        let mut request = get_with(path, &token);
        request
            .extensions_mut()
            .insert(BudgetScope(format!("installation={id}")));
        request
    };
    assert!(limited(github.execute(installation("/limited", "1")).await));
    assert_eq!(server.stats().requests(), 5);
    let other = github.execute(installation("/other", "2")).await;
    assert_eq!(other.unwrap().status().as_u16(), 200);
    assert_eq!(server.stats().requests(), 6);
    assert!(limited(github.execute(installation("/other", "1")).await));
    assert_eq!(server.stats().requests(), 6);
}

#[tokio::test]
async fn a_shared_limit_that_resets_soon_is_waited_out() {
    let server = replay(
        [exchange(json!({
            "request": { "path": "/other" },
            "response": { "status": 200, "body": { "ok": true } }
        }))],
        ReplayOptions::default(),
    )
    .await;
    let shared = SharedCache::memory(16 << 20);
    let client = UpstreamClient::new(config(server.base_url()), shared.clone()).unwrap();
    // What another replica wrote: exhausted until 2 s from now.
    let reset = Utc::now().timestamp() + 2;
    shared
        .set(
            &client.budget_key(&HeaderMap::new(), "/other", None),
            Bytes::from(reset.to_string()),
            None,
        )
        .await;
    let started = Instant::now();
    let response = client.execute(get("/other")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.stats().requests(), 1);
}

#[test]
fn cached_responses_round_trip_in_their_binary_form() {
    let entry = super::CachedResponse {
        status: 200,
        headers: vec![
            ("etag".into(), "W/\"abc\"".into()),
            ("link".into(), "<http://x/repos?page=2>; rel=\"next\"".into()),
        ],
        body: bytes::Bytes::from_static(b"[{\"id\":1}]"),
    };
    let encoded = entry.encode();
    let decoded = super::CachedResponse::decode(encoded.clone()).expect("decodes");
    assert_eq!(decoded.status, 200);
    assert_eq!(decoded.headers, entry.headers);
    assert_eq!(decoded.body, entry.body);
    // The JSON entries of earlier versions, and truncated ones, are misses.
    assert!(super::CachedResponse::decode(bytes::Bytes::from_static(b"{\"status\":200,\"headers\":[]}")).is_none());
    assert!(super::CachedResponse::decode(encoded.slice(..12)).is_none());
}

#[test]
fn request_counters_count_by_status_once_looked_up() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let counters = RequestCounters::new("github");
    metrics::with_local_recorder(&recorder, || {
        counters.answered(StatusCode::OK);
        counters.answered(StatusCode::OK);
        counters.answered(StatusCode::NOT_FOUND);
        counters.answered(StatusCode::from_u16(999).unwrap());
        counters.failed();
        counters.not_modified();
        counters.answered(StatusCode::OK);
    });
    let mut counts: Vec<(String, Vec<String>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let DebugValue::Counter(n) = value else {
                panic!("not a counter: {value:?}")
            };
            (key.name().to_owned(), labels, n)
        })
        .collect();
    counts.sort();
    let labels = |status: &str| vec!["connector=github".to_owned(), format!("status={status}")];
    assert_eq!(
        counts,
        vec![
            (
                "connectors_upstream_not_modified_total".to_owned(),
                vec!["connector=github".to_owned()],
                1
            ),
            ("connectors_upstream_requests_total".to_owned(), labels("200"), 3),
            ("connectors_upstream_requests_total".to_owned(), labels("404"), 1),
            ("connectors_upstream_requests_total".to_owned(), labels("999"), 1),
            ("connectors_upstream_requests_total".to_owned(), labels("error"), 1),
        ]
    );
}

#[test]
fn a_cached_entry_keeps_the_resource_headers_and_not_the_exchange_ones() {
    // The headers of a real GitHub answer to `GET /repos/{owner}/{repo}/git/trees/{sha}`.
    let answer: &[(&str, &str)] = &[
        ("server", "github.com"),
        ("date", "Mon, 30 Nov 2026 20:00:00 GMT"),
        ("content-type", "application/json; charset=utf-8"),
        ("cache-control", "private, max-age=60, s-maxage=60"),
        (
            "vary",
            "Accept, Authorization, Cookie, X-GitHub-OTP,Accept-Encoding, Accept, X-Requested-With",
        ),
        ("etag", "W/\"6b4ea3d0a7c5d1ad1a2ba3f8e3bbf0b8\""),
        ("last-modified", "Fri, 27 Nov 2026 09:12:44 GMT"),
        ("x-oauth-scopes", "read:org, repo"),
        ("x-accepted-oauth-scopes", ""),
        ("github-authentication-token-expiration", "2027-01-01 00:00:00 UTC"),
        ("x-github-media-type", "github.v3; format=json"),
        ("x-github-api-version-selected", "2022-11-28"),
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4821"),
        ("x-ratelimit-reset", "1795000000"),
        ("x-ratelimit-used", "179"),
        ("x-ratelimit-resource", "core"),
        (
            "access-control-expose-headers",
            "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset",
        ),
        ("access-control-allow-origin", "*"),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubdomains; preload",
        ),
        ("x-frame-options", "deny"),
        ("x-content-type-options", "nosniff"),
        ("x-xss-protection", "0"),
        (
            "referrer-policy",
            "origin-when-cross-origin, strict-origin-when-cross-origin",
        ),
        ("content-security-policy", "default-src 'none'"),
        ("x-github-request-id", "C0DE:1F2E:3A4B5C:6D7E8F:6756A1B2"),
    ];
    let mut headers = HeaderMap::new();
    for (name, value) in answer {
        headers.append(http::HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let entry = CachedResponse::new(StatusCode::OK, &headers, &Bytes::from_static(b"{\"sha\":\"6b4e\"}"));
    let kept: Vec<&str> = entry.headers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        kept,
        [
            "content-type",
            "cache-control",
            "etag",
            "last-modified",
            "x-oauth-scopes",
            "x-accepted-oauth-scopes",
            "github-authentication-token-expiration",
            "x-github-media-type",
            "x-github-api-version-selected",
        ]
    );
    // 4 magic + 2 status + 4 count + 8 length bytes and the text of each
    // kept header (436) + 14 body: 458. The left-out headers were 987 more.
    let encoded = entry.encode();
    assert_eq!(encoded.len(), 458);
    // Revalidated by a 304 whose rate-limit figures have moved on.
    let mut not_modified = HeaderMap::new();
    for (name, value) in [
        ("date", "Mon, 30 Nov 2026 21:00:00 GMT"),
        ("etag", "W/\"6b4ea3d0a7c5d1ad1a2ba3f8e3bbf0b8\""),
        ("x-ratelimit-remaining", "4300"),
        ("x-ratelimit-used", "700"),
        ("content-length", "0"),
    ] {
        not_modified.append(http::HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let replayed = CachedResponse::decode(encoded)
        .expect("decodes")
        .into_response_updated(&not_modified);
    // A header map's order after a removal is its own: compare sorted.
    let mut headers: Vec<(&str, &str)> = replayed
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
        .collect();
    headers.sort();
    assert_eq!(
        headers,
        [
            ("cache-control", "private, max-age=60, s-maxage=60"),
            ("content-type", "application/json; charset=utf-8"),
            ("date", "Mon, 30 Nov 2026 21:00:00 GMT"),
            ("etag", "W/\"6b4ea3d0a7c5d1ad1a2ba3f8e3bbf0b8\""),
            ("github-authentication-token-expiration", "2027-01-01 00:00:00 UTC"),
            ("last-modified", "Fri, 27 Nov 2026 09:12:44 GMT"),
            ("x-accepted-oauth-scopes", ""),
            ("x-github-api-version-selected", "2022-11-28"),
            ("x-github-media-type", "github.v3; format=json"),
            ("x-oauth-scopes", "read:org, repo"),
            ("x-ratelimit-remaining", "4300"),
            ("x-ratelimit-used", "700"),
        ]
    );
    assert_eq!(replayed.body().as_ref(), b"{\"sha\":\"6b4e\"}");
}

#[test]
fn a_limit_with_budget_left_lifts_after_its_retry_after_not_at_the_budget_reset() {
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    // A GitHub secondary limit: Retry-After, with the primary budget far
    // from spent and its window resetting 45 minutes later.
    let secondary = RateLimit::from_headers(&headers(&[
        ("retry-after", "60"),
        ("x-ratelimit-remaining", "4990"),
        ("x-ratelimit-reset", "1700002700"),
    ]));
    assert!(secondary.is_limited(StatusCode::FORBIDDEN));
    assert_eq!(secondary.wait(now), Some(Duration::from_secs(60)));
    assert_eq!(
        secondary.reset_time(now),
        Some(Utc.timestamp_opt(1_700_000_060, 0).unwrap())
    );
    // Spent budget and Retry-After: the later of the two.
    let gitlab = RateLimit::from_headers(&headers(&[
        ("retry-after", "600"),
        ("ratelimit-remaining", "0"),
        ("ratelimit-reset", "1700000060"),
    ]));
    assert_eq!(gitlab.wait(now), Some(Duration::from_secs(600)));
    assert_eq!(
        gitlab.reset_time(now),
        Some(Utc.timestamp_opt(1_700_000_600, 0).unwrap())
    );
    let spent = RateLimit::from_headers(&headers(&[
        ("retry-after", "10"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1700000300"),
    ]));
    assert_eq!(spent.wait(now), Some(Duration::from_secs(300)));
    // A reset without a remaining count is taken as the budget's.
    let bare_reset = RateLimit::from_headers(&headers(&[("ratelimit-reset", "1700000030")]));
    assert_eq!(bare_reset.wait(now), Some(Duration::from_secs(30)));
    // A 429 with budget left and no Retry-After says nothing of when: none
    // (the client backs off); GitHub's with its secondary-limit message waits
    // a minute, as GitHub asks.
    let mut unsaid = RateLimit::from_headers(&headers(&[
        ("x-ratelimit-remaining", "4990"),
        ("x-ratelimit-reset", "1700002700"),
    ]));
    assert_eq!((unsaid.wait(now), unsaid.reset_time(now)), (None, None));
    unsaid.mark_bare_limit(StatusCode::TOO_MANY_REQUESTS, SECONDARY_LIMIT.as_bytes(), "rate limit");
    assert_eq!(unsaid.wait(now), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_secondary_limit_holds_the_credential_back_for_its_retry_after_only() {
    let server = replay(
        [
            exchange(json!({
                "request": { "path": "/repos/acme/busy/git/trees/main" },
                "times": 1,
                "response": {
                    "status": 403,
                    "headers": {
                        "retry-after": "1",
                        "x-ratelimit-limit": "5000",
                        "x-ratelimit-remaining": "4990",
                        "x-ratelimit-reset": (Utc::now().timestamp() + 3600).to_string(),
                        "x-ratelimit-resource": "core"
                    },
                    "body": {
                        "message": SECONDARY_LIMIT,
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                    }
                }
            })),
            exchange(json!({
                "request": { "path": "/repos/acme/busy/git/trees/main" },
                "response": { "status": 200, "body": { "sha": "main", "tree": [] } }
            })),
            exchange(json!({
                "request": { "path": "/repos/acme/other/git/trees/main" },
                "response": { "status": 200, "body": { "sha": "main", "tree": [] } }
            })),
        ],
        ReplayOptions::default(),
    )
    .await;
    let mut github = config(server.base_url());
    github.rate_limit_message = Some("rate limit");
    let client = client_with(github);
    let (result, stats) = scoped(client.execute(get("/repos/acme/busy/git/trees/main"))).await;
    assert_eq!(result.expect("answered after the second's wait").status(), 200);
    assert_eq!((stats.requests(), retries(&stats)), (2, 1));
    // The credential's other requests are sent: the limit lifted after a
    // second, not at the budget's reset an hour away.
    let other = client.execute(get("/repos/acme/other/git/trees/main")).await;
    assert_eq!(other.expect("not held back").status(), 200);
    assert_eq!(server.stats().requests(), 3);
}

#[tokio::test]
async fn the_budget_memo_stays_bounded_and_keeps_the_exhausted_budgets() {
    let client = client_with(config("http://127.0.0.1:9"));
    let exhausted_until = Utc::now().timestamp() + 600;
    client.share_reset("ratelimit:v1:test:spent", exhausted_until).await;
    // A budget per request (what SigV4-signed requests were, keyed on their
    // Authorization header): each looked up once.
    for i in 0..3 * BUDGET_MEMO_MAX {
        assert_eq!(client.shared_reset(&format!("ratelimit:v1:test:{i}")).await, None);
    }
    let memo = client.budget_memo.lock().unwrap();
    assert!(memo.len() <= BUDGET_MEMO_MAX, "{} budgets remembered", memo.len());
    assert_eq!(
        memo.get("ratelimit:v1:test:spent").map(|(_, reset)| *reset),
        Some(Some(exhausted_until))
    );
}

/// GitHub limits SBOM requests in a `dependency_sbom` budget of their own: a
/// spent one holds back SBOM requests only, and a response naming another
/// budget (`search`) shares its reset under that one.
#[cfg(feature = "github")]
#[tokio::test]
async fn a_spent_github_budget_holds_back_only_the_requests_counted_against_it() {
    let spent = |path: &str, resource: &str| {
        exchange(json!({
            "request": { "path": path },
            "response": {
                "status": 403,
                "headers": {
                    "x-ratelimit-limit": "100",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-used": "100",
                    "x-ratelimit-reset": (Utc::now().timestamp() + 3600).to_string(),
                    "x-ratelimit-resource": resource
                },
                "body": {
                    "message": "API rate limit exceeded for installation ID 7.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                }
            }
        }))
    };
    let server = replay(
        [
            spent("/repos/acme/api/dependency-graph/sbom/generate-report", "dependency_sbom"),
            spent("/search/code", "search"),
            exchange(json!({
                "request": { "path": "/orgs/acme/repos" },
                "response": { "status": 200, "headers": { "x-ratelimit-remaining": "4990", "x-ratelimit-resource": "core" }, "body": [] }
            })),
        ],
        ReplayOptions::default(),
    )
    .await;
    let mut github = config(server.base_url());
    github.separate_budget = crate::providers::github::separate_budget;
    let client = client_with(github);
    let token = [("authorization", "Bearer one-token")];
    let limited = |result: Result<::http::Response<Bytes>, UpstreamError>| {
        matches!(result, Err(UpstreamError::RateLimited { .. }))
    };
    assert!(limited(
        client
            .execute(get_with(
                "/repos/acme/api/dependency-graph/sbom/generate-report",
                &token
            ))
            .await
    ));
    assert_eq!(server.stats().requests(), 1);
    // The REST budget is not spent: its requests are sent.
    let repos = client.execute(get_with("/orgs/acme/repos", &token)).await;
    assert_eq!(repos.unwrap().status(), StatusCode::OK);
    assert_eq!(server.stats().requests(), 2);
    // Another repository's SBOM waits for the SBOM budget, unsent.
    assert!(limited(
        client
            .execute(get_with(
                "/repos/acme/web/dependency-graph/sbom/generate-report",
                &token
            ))
            .await
    ));
    assert_eq!(server.stats().requests(), 2);
    // A budget only the response names: its reset holds back neither REST
    // requests nor SBOMs' budget.
    assert!(limited(client.execute(get_with("/search/code", &token)).await));
    assert_eq!(server.stats().requests(), 3);
    let repos = client.execute(get_with("/orgs/acme/repos", &token)).await;
    assert_eq!(repos.unwrap().status(), StatusCode::OK);
    assert_eq!(server.stats().requests(), 4);
}

#[tokio::test]
async fn an_entry_revalidated_by_a_304_lives_another_ttl() {
    let server = replay([repo_exchange()], ReplayOptions::default()).await;
    let mut short = config(server.base_url());
    short.cache_ttl = Duration::from_millis(1500);
    let client = client_with(short);
    client.execute(get("/repos/acme/app")).await.expect("200, stored");
    // Revalidated at 1 s, then asked again at 2 s: past the entry's first
    // TTL, within the one the 304 gave it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    client.execute(get("/repos/acme/app")).await.expect("304");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let third = client.execute(get("/repos/acme/app")).await.expect("304 again");
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(json_body(&third), json!({ "id": 1, "name": "app" }));
    assert_eq!((server.stats().requests(), server.stats().not_modified()), (3, 2));
}

#[tokio::test]
async fn a_body_over_the_limit_is_an_error_sent_once_and_not_kept() {
    // With a length: refused before reading.
    let server = replay([repo_exchange()], ReplayOptions::default()).await;
    let mut small = config(server.base_url());
    small.max_body_bytes = 8;
    let client = client_with(small);
    for _ in 0..2 {
        match client.execute(get("/repos/acme/app")).await {
            Err(UpstreamError::BodyTooLarge { status, limit }) => assert_eq!((status, limit), (200, 8)),
            other => panic!("expected a body too large, got {other:?}"),
        }
    }
    // One request each (not retried), and neither conditional: nothing kept.
    assert_eq!((server.stats().requests(), server.stats().not_modified()), (2, 0));

    // Chunked, without a length: refused once the chunks read go past it.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let chunked = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", chunked.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = chunked.accept().await {
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buf = [0u8; 4096];
                while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    received.extend_from_slice(&buf[..n]);
                }
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                    )
                    .await;
                for _ in 0..4 {
                    let _ = socket
                        .write_all(format!("200\r\n{}\r\n", "x".repeat(512)).as_bytes())
                        .await;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    let limited = |max: u64| {
        let mut config = config(&base);
        config.max_body_bytes = max;
        client_with(config)
    };
    let (result, stats) = scoped(limited(1500).execute(get("/big"))).await;
    assert!(
        matches!(
            result,
            Err(UpstreamError::BodyTooLarge {
                status: 200,
                limit: 1500
            })
        ),
        "{result:?}"
    );
    assert_eq!(stats.requests(), 1);
    let whole = limited(2048).execute(get("/big")).await.expect("within the limit");
    assert_eq!(whole.body().len(), 2048);
}

#[test]
fn a_proxy_url_is_printed_without_its_password() {
    let proxy = super::ProxyUrl(Url::parse("http://inventory:s3cret@proxy.corp.example:3128/").unwrap());
    assert_eq!(format!("{proxy:?}"), "ProxyUrl(http://proxy.corp.example:3128)");
}
