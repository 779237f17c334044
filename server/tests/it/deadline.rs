//! The caller's deadline (`grpc-timeout`) bounds a Sync stream, not only its
//! response headers: when it passes, the upstream work stops and the stream
//! ends DEADLINE_EXCEEDED; the last checkpoint received resumes the sync.

use std::time::Duration;

use connectors_proto::github::v1::SyncRequest;
use connectors_proto::v1::{SyncEvent, sync_event::Event};
use connectors_server::replay::ReplayOptions;
use futures::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use crate::conformance::{collect, full};
use crate::support::{TestServer, summary, upserts};

fn request(checkpoint: Vec<u8>, timeout: Duration) -> tonic::Request<SyncRequest> {
    let mut options = full();
    options.checkpoint = checkpoint;
    let mut request = tonic::Request::new(SyncRequest {
        options: Some(options),
        ..Default::default()
    });
    request.set_timeout(timeout);
    request
}

#[tokio::test]
async fn a_sync_past_the_callers_deadline_ends_deadline_exceeded_stops_upstream_and_resumes() {
    let server = TestServer::start().await;
    let at_start = server.upstream_requests("github");
    let unbroken = collect(
        server
            .client
            .github()
            .sync(request(Vec::new(), Duration::from_secs(60)))
            .await
            .map(|r| r.into_inner()),
    )
    .await;
    let whole = summary(&unbroken);
    assert!(whole.complete, "a deadline far off changes nothing");
    let after_full = server.upstream_requests("github");
    let full_requests = after_full - at_start;

    // The caller waits 3 s. The sync runs at full speed up to its first
    // checkpoint (the end of acme-corp's first listing page); once that has
    // arrived, every upstream answer takes 30 s, so the sync cannot finish
    // before the deadline, whatever the machine's speed.
    let replay = server.server.replay("github").unwrap();
    let started = std::time::Instant::now();
    let mut stream = server
        .client
        .github()
        .sync(request(Vec::new(), Duration::from_millis(3000)))
        .await
        .unwrap()
        .into_inner();
    let mut events: Vec<SyncEvent> = Vec::new();
    let status = loop {
        match stream.next().await {
            Some(Ok(event)) => {
                if !events.iter().any(|e| matches!(e.event, Some(Event::Checkpoint(_))))
                    && matches!(event.event, Some(Event::Checkpoint(_)))
                {
                    replay.set_options(ReplayOptions {
                        latency: Duration::from_secs(30),
                        ..Default::default()
                    });
                }
                events.push(event);
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without a status after {} events", events.len()),
        }
    };
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "ended before the deadline"
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        status.message(),
        "the call's deadline (3000 ms) passed before the sync finished; resume from the last checkpoint"
    );
    assert_eq!(
        status.get_error_details().error_info().map(|info| info.reason.clone()),
        Some("DEADLINE_EXCEEDED".to_owned())
    );
    assert!(stream.next().await.is_none(), "nothing follows the status");
    assert!(!events.iter().any(|e| matches!(e.event, Some(Event::Summary(_)))));

    // The sync's upstream work stopped with the stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = replay.stats().requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replay.stats().requests(),
        settled,
        "upstream requests after the deadline"
    );
    let cut_requests = settled - after_full;
    assert!(
        cut_requests > 0 && cut_requests < full_requests,
        "{cut_requests} of {full_requests} requests"
    );

    // The first checkpoint resumes it: what came up to that checkpoint and the
    // resumed stream are the unbroken sync, and its summary is the whole
    // sync's, under the same sync id.
    replay.set_options(ReplayOptions::default());
    let (first, checkpoint) = events
        .iter()
        .enumerate()
        .find_map(|(at, e)| match &e.event {
            Some(Event::Checkpoint(checkpoint)) => Some((at, checkpoint)),
            _ => None,
        })
        .expect("a checkpoint before the deadline");
    let sent = &events[..=first];
    assert_eq!(
        upserts(sent).len(),
        32,
        "acme-corp's first page of repositories, their manifests and SBOMs"
    );
    let resumed = collect(
        server
            .client
            .github()
            .sync(request(checkpoint.token.clone(), Duration::from_secs(60)))
            .await
            .map(|r| r.into_inner()),
    )
    .await;
    let mut combined = upserts(sent);
    combined.extend(upserts(&resumed));
    assert_eq!(combined, upserts(&unbroken));
    let after = summary(&resumed);
    assert_eq!(after.sync_id, events_sync_id(&events), "the resumed sync keeps its id");
    assert_eq!(
        (after.counts, after.complete, after.scopes_ok),
        (whole.counts, true, whole.scopes_ok)
    );
}

/// The sync id the first upsert of `events` carries.
fn events_sync_id(events: &[SyncEvent]) -> String {
    events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) => u.provenance.as_ref().map(|p| p.sync_id.clone()),
            _ => None,
        })
        .expect("an upsert before the deadline")
}

#[tokio::test]
async fn a_grpc_timeout_that_is_not_one_is_refused_naming_the_header_before_any_upstream_request() {
    let server = TestServer::start().await;
    let at_start = server.upstream_requests("github");
    let mut bad = request(Vec::new(), Duration::from_secs(1));
    bad.metadata_mut().insert("grpc-timeout", "10x".parse().unwrap());
    let status = server.client.github().sync(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        "grpc-timeout: \"10x\" is not a gRPC timeout (1 to 8 digits and a unit: H, M, S, m, u or n)"
    );
    assert_eq!(
        status.get_error_details().bad_request().map(|b| b
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect::<Vec<_>>()),
        Some(vec!["grpc-timeout".to_owned()])
    );
    assert_eq!(server.upstream_requests("github"), at_start);
}

#[tokio::test]
async fn a_client_that_stops_reading_gives_its_stream_slot_back_at_its_deadline() {
    let mut config = connectors_server::config::Config::for_tests();
    config.max_streams_per_client = 1;
    let server = TestServer::with_config(config).await;
    // A 1 KiB window: the server can send a few events, then the stream
    // waits for the client to read, which it never does.
    let channel = tonic::transport::Endpoint::from_shared(server.server.endpoint())
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let reader = connectors_client::ConnectorsClient::from_channel(channel);
    // Long enough for the first event on a loaded machine (500 ms once was not).
    let deadline = Duration::from_secs(2);
    let started = tokio::time::Instant::now();
    let mut stalled = reader
        .github()
        .sync(request(Vec::new(), deadline))
        .await
        .unwrap()
        .into_inner();
    stalled.next().await.unwrap().unwrap();
    let refused = reader
        .github()
        .sync(request(Vec::new(), Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Past the deadline the slot is free again, though the stalled stream is
    // still open on the connection.
    tokio::time::sleep_until(started + deadline + Duration::from_millis(500)).await;
    let next = collect(
        reader
            .github()
            .sync(request(Vec::new(), Duration::from_secs(60)))
            .await
            .map(|r| r.into_inner()),
    )
    .await;
    assert!(summary(&next).complete);
    drop(stalled);
}
