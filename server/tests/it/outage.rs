//! A Redis outage mid-sync: syncs go on uncached, health reports it, and Redis
//! is used again when it returns.

use std::time::{Duration, Instant};

use connectors_proto::github::v1::SyncRequest;
use connectors_proto::v1::sync_event::Event;
use connectors_server::config::Config;
use connectors_server::replay::ReplayOptions;
use connectors_server::server::CACHE_HEALTH_SERVICE;
use connectors_server::testing::RedisServer;
use futures::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::conformance::{collect, full};
use crate::support::{TestServer, summary, upserts};

async fn cache_health(server: &TestServer) -> i32 {
    let mut health = HealthClient::new(server.client.channel().clone());
    health
        .check(HealthCheckRequest {
            service: CACHE_HEALTH_SERVICE.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

async fn wait_for(server: &TestServer, status: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache_health(server).await != status as i32 {
        assert!(Instant::now() < deadline, "cache health never became {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redis_outage_mid_sync_loses_nothing_and_is_reported() {
    // Needs a redis-server of its own to kill (not a shared REDIS_URL).
    let Ok(mut redis) = RedisServer::start() else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "redis-server is required under CI=true"
        );
        eprintln!("skipping: redis-server not available");
        return;
    };
    let mut config = Config::for_tests();
    config.redis_url = Some(redis.url());
    let server = TestServer::with_config(config).await;
    wait_for(&server, ServingStatus::Serving).await;
    server.server.replay("github").unwrap().set_options(ReplayOptions {
        latency: Duration::from_millis(10),
        ..Default::default()
    });
    let request = SyncRequest {
        options: Some(full()),
        ..Default::default()
    };
    let mut stream = server.client.github().sync(request.clone()).await.unwrap().into_inner();
    let mut events = Vec::new();
    loop {
        let event = stream.next().await.unwrap().unwrap();
        let checkpoint = matches!(event.event, Some(Event::Checkpoint(_)));
        events.push(event);
        if checkpoint {
            break;
        }
    }
    redis.kill();
    while let Some(event) = stream.next().await {
        events.push(event.expect("the sync goes on without Redis"));
    }
    assert!(summary(&events).complete);
    assert_eq!(upserts(&events).len(), 102);
    wait_for(&server, ServingStatus::NotServing).await;
    assert!(server.server.cache.is_degraded());
    // Overall health stays SERVING: the service works, uncached.
    let mut health = HealthClient::new(server.client.channel().clone());
    let overall = health
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(overall.into_inner().status, ServingStatus::Serving as i32);

    redis.restart().unwrap();
    wait_for(&server, ServingStatus::Serving).await;
    let events = collect(server.client.github().sync(request).await.map(|r| r.into_inner())).await;
    assert!(summary(&events).complete);
    assert!(!server.server.cache.is_degraded());
}
