//! Graceful shutdown: health first, open syncs get the drain timeout, the rest
//! end with UNAVAILABLE right after their last checkpoint.

use std::time::Duration;

use connectors_proto::github::v1::SyncRequest;
use connectors_proto::v1::sync_event::Event;
use connectors_server::config::Config;
use connectors_server::replay::ReplayOptions;
use futures::StreamExt;
use tonic::Code;

use crate::conformance::full;
use crate::support::{TestServer, summary};

async fn slow_server(drain: Duration, latency: Duration) -> TestServer {
    let mut config = Config::for_tests();
    config.drain_timeout = drain;
    let server = TestServer::with_config(config).await;
    server.server.replay("github").unwrap().set_options(ReplayOptions {
        latency,
        ..Default::default()
    });
    server
}

fn request() -> SyncRequest {
    SyncRequest {
        options: Some(full()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_sync_that_finishes_within_the_drain_timeout_completes() {
    let server = slow_server(Duration::from_secs(20), Duration::from_millis(2)).await;
    let mut stream = server.client.github().sync(request()).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    server.server.shutdown();
    let mut events = vec![first];
    while let Some(event) = stream.next().await {
        events.push(event.expect("no error during a drain that has time"));
    }
    assert_eq!(crate::support::upserts(&events).len(), 102);
    assert!(summary(&events).complete);
    // After it, new syncs are refused: the listener closed at the shutdown,
    // so the client cannot connect again (UNAVAILABLE from its transport).
    let refused = server
        .client
        .github()
        .sync(request())
        .await
        .expect_err("a sync after the shutdown");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::Unavailable, "tcp connect error"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_sync_outliving_the_drain_timeout_ends_unavailable_after_its_last_checkpoint() {
    let server = slow_server(Duration::from_millis(300), Duration::from_millis(50)).await;
    let mut stream = server.client.github().sync(request()).await.unwrap().into_inner();
    let mut events = Vec::new();
    // Shut down once the first checkpoint (end of the first page) arrived.
    loop {
        let event = stream.next().await.unwrap().unwrap();
        let is_checkpoint = matches!(event.event, Some(Event::Checkpoint(_)));
        events.push(event);
        if is_checkpoint {
            break;
        }
    }
    server.server.shutdown();
    let status = loop {
        match stream.next().await {
            Some(Ok(event)) => events.push(event),
            Some(Err(status)) => break status,
            None => panic!("stream ended without a status"),
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("resume from the last checkpoint"),
        "{}",
        status.message()
    );
    let checkpoints: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Checkpoint(c)) => Some(c.token.clone()),
            _ => None,
        })
        .collect();
    assert!(checkpoints.len() >= 2, "a checkpoint during the sync and the final one");
    assert!(matches!(
        events.last().and_then(|e| e.event.as_ref()),
        Some(Event::Checkpoint(_))
    ));
    assert_eq!(checkpoints[checkpoints.len() - 1], checkpoints[checkpoints.len() - 2]);
    assert!(!events.iter().any(|e| matches!(e.event, Some(Event::Summary(_)))));
}

#[tokio::test]
async fn a_draining_server_closes_its_listener_at_once_while_its_open_syncs_finish() {
    // 150 ms per upstream request: the sync takes seconds.
    let server = slow_server(Duration::from_secs(20), Duration::from_millis(150)).await;
    let addr = server.server.addr;
    let mut stream = server.client.github().sync(request()).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    server.server.shutdown();
    let shut_at = std::time::Instant::now();
    let sync = tokio::spawn(async move {
        let mut events = vec![first];
        while let Some(event) = stream.next().await {
            events.push(event.expect("no error during a drain that has time"));
        }
        (events, std::time::Instant::now())
    });
    // New connections are refused within moments, not after the drain: a
    // client's next stream goes to another replica (or waits for this one's
    // successor) instead of being refused UNAVAILABLE here for 20 s.
    let refused = async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                break std::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let refused_at = tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("the listener closed within 5 s of the shutdown");
    // The open sync was still running then, and ran on to its summary.
    let (events, finished_at) = sync.await.unwrap();
    assert!(summary(&events).complete);
    assert!(
        refused_at - shut_at < Duration::from_secs(1) && refused_at < finished_at,
        "the listener closed {:?} after the shutdown, the open sync finished {:?} after it",
        refused_at - shut_at,
        finished_at - shut_at
    );
}
