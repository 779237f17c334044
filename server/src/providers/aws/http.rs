//! The SDK's HTTP goes through the shared [`UpstreamClient`]: an
//! `aws_smithy_runtime_api` `HttpClient` whose connector hands each signed
//! request to `UpstreamClient::execute` (metrics, per-connector concurrency).
//! One upstream client per origin, since every AWS service and region has its
//! own host (one, with `AWS_ENDPOINT_URL`).
//!
//! The SDK does the retrying: the AWS template turns the shared layer's
//! retries off (`status_retries`, `max_attempts`), so 429 and 5xx answers
//! come back as responses, whose error codes and statuses the SDK's
//! classifiers read (the status through the connector's own classifier,
//! `RetryableStatus`), and a transport failure as an I/O error, which they
//! retry as transient. What
//! the shared layer itself refuses (a URL off the origin, a rate limit it
//! already waited out) is not retried again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

use crate::cache::SharedCache;
use crate::http::{UpstreamClient, UpstreamConfig, UpstreamError};

/// Builds the upstream client of one origin.
pub type Template = Arc<dyn Fn(url::Url) -> UpstreamConfig + Send + Sync>;

/// An SDK HTTP client over the shared upstream clients.
#[derive(Clone)]
pub struct SharedUpstreamHttp {
    clients: Arc<Mutex<HashMap<String, Arc<UpstreamClient>>>>,
    template: Template,
    cache: SharedCache,
}

impl std::fmt::Debug for SharedUpstreamHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedUpstreamHttp").finish_non_exhaustive()
    }
}

impl SharedUpstreamHttp {
    /// A client building one upstream client per origin from `template`.
    pub fn new(template: Template, cache: SharedCache) -> Self {
        Self {
            clients: Arc::default(),
            template,
            cache,
        }
    }

    fn client_for(&self, uri: &http::Uri) -> Result<Arc<UpstreamClient>, ConnectorError> {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(ConnectorError::other("request without an absolute uri".into(), None));
        };
        let origin = format!("{scheme}://{authority}/");
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&origin) {
            return Ok(client.clone());
        }
        let base = url::Url::parse(&origin).map_err(|e| ConnectorError::other(e.into(), None))?;
        let client = UpstreamClient::new((self.template)(base), self.cache.clone())
            .map(Arc::new)
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        clients.insert(origin, client.clone());
        Ok(client)
    }
}

impl HttpConnector for SharedUpstreamHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = request.into_parts();
            let bytes = body.bytes().map(Bytes::copy_from_slice).unwrap_or_default();
            let client = this.client_for(&parts.uri)?;
            let response = client
                .execute(http::Request::from_parts(parts, bytes))
                .await
                .map_err(|e| match e {
                    UpstreamError::Transport { .. } => ConnectorError::io(e.into()),
                    other => ConnectorError::other(other.into(), None),
                })?;
            let (parts, body) = response.into_parts();
            HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(body)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for SharedUpstreamHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
