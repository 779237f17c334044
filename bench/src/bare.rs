//! The bare limit: a plain tonic server streaming pre-built `SyncEvent`s.
//!
//! It serves `GithubConnectorService/Sync` (so the client side is the same
//! call as for the real server) from a process of its own, through a bounded
//! channel of the engine's capacity, with every message built before the
//! first request: what is left is tonic, HTTP/2, prost encoding and loopback.

use std::sync::Mutex;

use connectors_proto::github::v1::SyncRequest;
use connectors_proto::github::v1::github_connector_service_server::{
    GithubConnectorService, GithubConnectorServiceServer,
};
use connectors_proto::v1::{Summary, SyncEvent, sync_event::Event};
use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Reads length-delimited `SyncEvent`s.
pub fn read_samples(bytes: &[u8]) -> anyhow::Result<Vec<SyncEvent>> {
    let mut buf = bytes;
    let mut samples = Vec::new();
    while !buf.is_empty() {
        samples.push(SyncEvent::decode_length_delimited(&mut buf)?);
    }
    anyhow::ensure!(!samples.is_empty(), "no sample events");
    Ok(samples)
}

/// Writes length-delimited `SyncEvent`s.
pub fn write_samples(samples: &[SyncEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for sample in samples {
        // Writing into a Vec cannot fail.
        let _ = sample.encode_length_delimited(&mut out);
    }
    out
}

struct Bare {
    /// Built before serving; each Sync call takes one set.
    prebuilt: Mutex<Vec<Vec<SyncEvent>>>,
}

#[tonic::async_trait]
impl GithubConnectorService for Bare {
    type SyncStream = ReceiverStream<Result<SyncEvent, Status>>;

    async fn sync(&self, _request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let events = self
            .prebuilt
            .lock()
            .ok()
            .and_then(|mut sets| sets.pop())
            .ok_or_else(|| Status::resource_exhausted("no pre-built event set left"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            for event in events {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            let summary = SyncEvent {
                event: Some(Event::Summary(Summary {
                    complete: true,
                    ..Default::default()
                })),
            };
            let _ = tx.send(Ok(summary)).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves `sets` streams of `count` events (the samples, cycled) on `listen`.
pub async fn serve(
    listen: std::net::SocketAddr,
    samples: Vec<SyncEvent>,
    count: u64,
    sets: usize,
) -> anyhow::Result<()> {
    let prebuilt = (0..sets)
        .map(|_| {
            samples
                .iter()
                .cycle()
                .take(usize::try_from(count).unwrap_or(usize::MAX))
                .cloned()
                .collect()
        })
        .collect();
    let service = GithubConnectorServiceServer::new(Bare {
        prebuilt: Mutex::new(prebuilt),
    });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve(listen)
        .await?;
    Ok(())
}
