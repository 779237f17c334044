//! `connectors.azure.v1.AzureConnectorService`.

use std::sync::Arc;

use super::stubs::azure::azure_connector_service_server::AzureConnectorService;
use connectors_proto::azure::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::azure::{AzureConnector, AzureRequest, is_guid};
use crate::sync::SyncError;

/// The Azure connector service.
#[derive(Debug, Clone)]
pub struct AzureService {
    connector: Arc<AzureConnector>,
    gate: SyncGate,
}

impl AzureService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<AzureConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

impl TryFrom<&SyncRequest> for AzureRequest {
    type Error = SyncError;

    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        let ids: Vec<String> = request
            .subscription_ids
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if !is_guid(id) {
                return Err(SyncError::invalid(
                    format!("subscription_ids[{i}]"),
                    format!(
                        "{:?} is not a subscription id (a GUID: 8-4-4-4-12 hexadecimal digits)",
                        validate::truncate(&request.subscription_ids[i])
                    ),
                ));
            }
        }
        validate::list_len("subscription_ids", &ids, validate::MAX_SCOPES)?;
        Ok(AzureRequest { subscription_ids: ids })
    }
}

#[tonic::async_trait]
impl AzureConnectorService for AzureService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = AzureRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(ids: &[&str]) -> Option<String> {
        let request = SyncRequest {
            subscription_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        match AzureRequest::try_from(&request) {
            Ok(_) => None,
            Err(SyncError::InvalidArgument { field, .. }) => Some(field),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn subscription_ids_are_guids_named_by_index() {
        let a = "2f8a0e8c-5a7b-4f3e-9d1c-0a1b2c3d4e5f";
        assert_eq!(field_of(&[a]), None);
        assert_eq!(field_of(&[a, "prod"]).as_deref(), Some("subscription_ids[1]"));
        assert_eq!(field_of(&["/subscriptions/x"]).as_deref(), Some("subscription_ids[0]"));
        assert_eq!(
            field_of(&[a, &a.to_ascii_uppercase()]).as_deref(),
            Some("subscription_ids[1]")
        );
        let many: Vec<String> = (0..101).map(|i| format!("00000000-0000-0000-0000-{i:012}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(field_of(&many).as_deref(), Some("subscription_ids"));
    }
}
