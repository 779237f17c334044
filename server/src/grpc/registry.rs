//! `connectors.v1.RegistryService`.

use std::sync::Arc;

use connectors_proto::v1::registry_service_server::RegistryService;
use connectors_proto::v1::{
    Connector, ConnectorAvailability, GetConnectorRequest, GetConnectorResponse, ListConnectorsRequest,
    ListConnectorsResponse,
};
use tonic::{Request, Response, Status};

use crate::providers::{Entry, Registry};
use crate::sync::Availability;

/// The registry service.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    registry: Arc<Registry>,
}

impl RegistryApi {
    /// Serves `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

fn to_proto(entry: &Entry) -> Connector {
    let (availability, reason, auth_mode) = match &entry.availability {
        Availability::Live { auth_mode } => (ConnectorAvailability::Live, String::new(), auth_mode.clone()),
        Availability::Fixture { reason } => (ConnectorAvailability::Fixture, reason.clone(), String::new()),
        Availability::Unavailable { reason } => (ConnectorAvailability::Unavailable, reason.clone(), String::new()),
    };
    let descriptor = entry.descriptor;
    Connector {
        id: entry.id.to_owned(),
        display_name: entry.display_name.to_owned(),
        version: descriptor.map(|d| d.version).unwrap_or_default().to_owned(),
        kinds: descriptor
            .map(|d| d.kinds.iter().map(|k| *k as i32).collect())
            .unwrap_or_default(),
        supports_incremental: descriptor.is_some_and(|d| d.native_incremental),
        auth_modes: descriptor
            .map(|d| d.auth_modes.iter().map(|m| (*m).to_owned()).collect())
            .unwrap_or_default(),
        availability: availability as i32,
        reason,
        service: entry.service.to_owned(),
        auth_mode,
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn list_connectors(
        &self,
        _request: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        let connectors = self.registry.entries.iter().map(to_proto).collect();
        Ok(Response::new(ListConnectorsResponse { connectors }))
    }

    async fn get_connector(
        &self,
        request: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(crate::grpc::status_from(crate::sync::SyncError::invalid(
                "id",
                "must not be empty",
            )));
        }
        match self.registry.entry(&id) {
            Some(entry) => Ok(Response::new(GetConnectorResponse {
                connector: Some(to_proto(entry)),
            })),
            None => Err(Status::not_found(format!(
                "no connector {:?}; known: {}",
                crate::grpc::validate::truncate(&id),
                self.registry
                    .entries
                    .iter()
                    .map(|e| e.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}
