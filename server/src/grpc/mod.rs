//! Thin gRPC handlers: validate, convert, call the engine, map errors.

pub mod auth;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
pub mod deadline;
mod errors;
#[cfg(feature = "gcp")]
mod gcp;
#[cfg(feature = "github")]
mod github;
#[cfg(feature = "gitlab")]
mod gitlab;
#[cfg(feature = "kubernetes")]
mod kubernetes;
pub mod limits;
mod registry;
pub(crate) mod stubs;
pub mod validate;
#[cfg(feature = "wiz")]
mod wiz;

#[cfg(feature = "azure")]
pub use azure::AzureService;
pub use errors::status_from;
#[cfg(feature = "gcp")]
pub use gcp::GcpService;
#[cfg(feature = "github")]
pub use github::GithubService;
#[cfg(feature = "gitlab")]
pub use gitlab::GitlabService;
#[cfg(feature = "kubernetes")]
pub use kubernetes::KubernetesService;
pub use registry::RegistryApi;

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The response stream of every connector's Sync: events encoded once (see
/// `stubs`), written to the wire as they are.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<crate::sync::EncodedEvent, tonic::Status>> + Send>>;

/// What every connector's handler shares: the engine and the stream limits.
#[derive(Debug, Clone)]
pub struct SyncGate {
    /// The engine.
    pub engine: crate::sync::Engine,
    /// Open-stream caps.
    pub limits: Arc<limits::StreamLimits>,
}

impl SyncGate {
    /// Takes the client's stream slots, starts the sync, maps errors. The slots
    /// are held until the response stream ends or is dropped.
    pub async fn start<C: crate::sync::Connector, T>(
        &self,
        request: &tonic::Request<T>,
        connector: Arc<C>,
        domain: C::Request,
        mut options: crate::sync::SyncOptions,
    ) -> Result<tonic::Response<EventStream>, tonic::Status> {
        // A checkpoint kept under `state_key` belongs to the API key that
        // kept it: the same name under another key is another checkpoint.
        // Without keys (an open server) the name alone, as before. A
        // client's `state_key` cannot hold a `/`, so no client names another
        // key's checkpoint, nor an open server's one.
        if let (Some(auth::ClientId(id)), Some(key)) =
            (request.extensions().get::<auth::ClientId>(), options.state_key.as_mut())
        {
            *key = format!("{id}/{key}");
        }
        let timeout = deadline::timeout_of(request.metadata()).map_err(status_from)?;
        options.deadline = timeout.and_then(deadline::deadline_after);
        let permits = self.limits.acquire(&self.limits.client_of(request))?;
        // The sync's span: a child of the caller's trace, if it sent one. The
        // engine records its id, mode and outcome, and runs the sync in it.
        let span = tracing::info_span!(
            "sync",
            otel.name = %format_args!("sync {}", connector.descriptor().id),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            connector = connector.descriptor().id,
            sync.id = tracing::field::Empty,
            sync.mode = tracing::field::Empty,
            sync.coalesced = tracing::field::Empty,
            sync.outcome = tracing::field::Empty,
            sync.entities = tracing::field::Empty,
            sync.upstream_requests = tracing::field::Empty,
        );
        // Without a tracer (export off) there is nothing to parent.
        let _ = span.set_parent(crate::telemetry::remote_context(request.metadata()));
        let deadline = options.deadline;
        let stream = self
            .engine
            .start(connector, domain, options)
            .instrument(span.clone())
            .await
            .map_err(status_from)?;
        // The slots go with the response stream, or at the deadline: a
        // client that stops reading leaves the response unpolled, and it is
        // not dropped before the connection goes.
        let permits = Arc::new(std::sync::Mutex::new(Some(permits)));
        let released_at_deadline = deadline.map(|at| {
            let done = tokio_util::sync::CancellationToken::new();
            let (permits, ended) = (permits.clone(), done.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        if let Ok(mut held) = permits.lock() {
                            held.take();
                        }
                    }
                    () = ended.cancelled() => {}
                }
            });
            done.drop_guard()
        });
        let stream = stream.map(move |item| {
            let _held = (&permits, &released_at_deadline);
            item.map_err(status_from)
        });
        Ok(tonic::Response::new(match (deadline, timeout) {
            (Some(at), Some(timeout)) => deadline::bounded(stream, at, timeout, span),
            _ => Box::pin(stream),
        }))
    }
}
#[cfg(feature = "aws")]
pub use aws::AwsService;
#[cfg(feature = "wiz")]
pub use wiz::WizService;
