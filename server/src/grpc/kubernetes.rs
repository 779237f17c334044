//! `connectors.kubernetes.v1.KubernetesConnectorService`.

use std::sync::Arc;

use super::stubs::kubernetes::kubernetes_connector_service_server::KubernetesConnectorService;
use connectors_proto::kubernetes::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::kubernetes::{KubernetesConnector, KubernetesRequest, selector};
use crate::sync::SyncError;

/// The Kubernetes connector service.
#[derive(Debug, Clone)]
pub struct KubernetesService {
    connector: Arc<KubernetesConnector>,
    gate: SyncGate,
}

impl KubernetesService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<KubernetesConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

impl TryFrom<&SyncRequest> for KubernetesRequest {
    type Error = SyncError;

    /// Checks the shape of every field; whether each context is configured on
    /// this server is checked when the request resolves to scopes.
    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        validate::list_len("contexts", &request.contexts, validate::MAX_SCOPES)?;
        validate::list_len("namespaces", &request.namespaces, validate::MAX_SCOPES)?;
        for (i, context) in request.contexts.iter().enumerate() {
            if context.is_empty() || context.len() > 253 || context.chars().any(char::is_control) {
                return Err(SyncError::invalid(
                    format!("contexts[{i}]"),
                    "must be 1 to 253 characters without control characters",
                ));
            }
        }
        for (i, namespace) in request.namespaces.iter().enumerate() {
            if !selector::is_dns1123_label(namespace) {
                return Err(SyncError::invalid(
                    format!("namespaces[{i}]"),
                    format!(
                        "{:?} is not a namespace name (a DNS-1123 label: 1 to 63 characters of a-z, 0-9 and '-', alphanumeric at both ends)",
                        validate::truncate(namespace)
                    ),
                ));
            }
        }
        selector::label_selector(&request.label_selector).map_err(|e| SyncError::invalid("label_selector", e))?;
        selector::field_selector(&request.field_selector).map_err(|e| SyncError::invalid("field_selector", e))?;
        Ok(KubernetesRequest {
            contexts: request.contexts.clone(),
            namespaces: request.namespaces.clone(),
            label_selector: request.label_selector.trim().to_owned(),
            field_selector: request.field_selector.trim().to_owned(),
        })
    }
}

#[tonic::async_trait]
impl KubernetesConnectorService for KubernetesService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = KubernetesRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}
