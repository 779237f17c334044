//! Puts [`UpstreamClient`] under tower-based clients (octocrab, kube): their
//! requests go through the shared conditional-request, retry and rate-limit
//! behaviour, and through nothing else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::UpstreamClient;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `tower::Service` over [`UpstreamClient`].
#[derive(Clone, Debug)]
pub struct TowerAdapter {
    client: Arc<UpstreamClient>,
}

impl TowerAdapter {
    /// Wraps a client.
    pub fn new(client: Arc<UpstreamClient>) -> Self {
        Self { client }
    }
}

impl<B> tower_service::Service<http::Request<B>> for TowerAdapter
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
    B::Data: Send,
{
    type Response = http::Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let response = client.execute(http::Request::from_parts(parts, body)).await?;
            Ok(response.map(Full::new))
        })
    }
}
