//! `connectors.gcp.v1.GcpConnectorService`.

use std::sync::Arc;

use super::stubs::gcp::gcp_connector_service_server::GcpConnectorService;
use connectors_proto::gcp::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::gcp::{GcpConnector, GcpRequest};
use crate::sync::SyncError;

/// The GCP connector service.
#[derive(Debug, Clone)]
pub struct GcpService {
    connector: Arc<GcpConnector>,
    gate: SyncGate,
}

impl GcpService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<GcpConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

/// A GCP project id: 6 to 30 characters of [a-z0-9-], starting with a letter
/// and not ending with '-' (`[a-z][a-z0-9-]{4,28}[a-z0-9]`).
pub fn project_id_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    (6..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-'
}

/// Validates a project id, naming `field`.
pub fn project_id(field: &str, value: &str) -> Result<(), SyncError> {
    if project_id_ok(value) {
        Ok(())
    } else {
        Err(SyncError::invalid(
            field,
            format!(
                "{:?} is not a GCP project id (6 to 30 characters of a-z, 0-9 and '-', starting with a letter, not ending with '-')",
                validate::truncate(value)
            ),
        ))
    }
}

impl TryFrom<&SyncRequest> for GcpRequest {
    type Error = SyncError;

    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        validate::list_len("project_ids", &request.project_ids, validate::MAX_SCOPES)?;
        for (i, project) in request.project_ids.iter().enumerate() {
            project_id(&format!("project_ids[{i}]"), project)?;
        }
        Ok(GcpRequest {
            project_ids: request.project_ids.clone(),
        })
    }
}

#[tonic::async_trait]
impl GcpConnectorService for GcpService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = GcpRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(projects: &[&str]) -> Option<String> {
        let request = SyncRequest {
            project_ids: projects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        match GcpRequest::try_from(&request) {
            Ok(_) => None,
            Err(SyncError::InvalidArgument { field, .. }) => Some(field),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn project_ids_are_validated_by_index() {
        assert_eq!(field_of(&["acme-prod-4821", "abcdef", &"a".repeat(30)]), None);
        for (projects, field) in [
            (vec![""], "project_ids[0]"),
            (vec!["acme-prod-4821", "short"], "project_ids[1]"),
            (vec![&"a".repeat(31) as &str], "project_ids[0]"),
            (vec!["1project"], "project_ids[0]"),
            (vec!["Acme-prod"], "project_ids[0]"),
            (vec!["acme-prod-"], "project_ids[0]"),
            (vec!["acme_prod_1"], "project_ids[0]"),
            (vec!["acme-prod/../x"], "project_ids[0]"),
            (vec!["acme-prod-4821", "acme-prod-4821"], "project_ids[1]"),
        ] {
            assert_eq!(field_of(&projects).as_deref(), Some(field), "{projects:?}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("project-{i:03}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(field_of(&many).as_deref(), Some("project_ids"));
    }
}
