//! `connectors.wiz.v1.WizConnectorService`.

use std::sync::Arc;

use super::stubs::wiz::wiz_connector_service_server::WizConnectorService;
use connectors_proto::wiz::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::wiz::{CLOUD_PLATFORMS, WizConnector, WizRequest};
use crate::sync::SyncError;

/// Most cloud platforms in one request.
const MAX_PLATFORMS: usize = 16;
/// Most resource types or subscription ids in one request.
const MAX_FILTERS: usize = 100;

/// The Wiz connector service.
#[derive(Debug, Clone)]
pub struct WizService {
    connector: Arc<WizConnector>,
    gate: SyncGate,
}

impl WizService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<WizConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

fn token(field: String, value: &str, max: usize, allowed: fn(char) -> bool, what: &str) -> Result<(), SyncError> {
    if !value.is_empty() && value.len() <= max && value.chars().all(allowed) {
        Ok(())
    } else {
        Err(SyncError::invalid(
            field,
            format!("{:?} is not {what}", validate::truncate(value)),
        ))
    }
}

impl TryFrom<&SyncRequest> for WizRequest {
    type Error = SyncError;

    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        validate::list_len("cloud_platforms", &request.cloud_platforms, MAX_PLATFORMS)?;
        validate::list_len("resource_types", &request.resource_types, MAX_FILTERS)?;
        validate::list_len("subscription_ids", &request.subscription_ids, MAX_FILTERS)?;
        for (i, platform) in request.cloud_platforms.iter().enumerate() {
            if !CLOUD_PLATFORMS.contains(&platform.as_str()) {
                return Err(SyncError::invalid(
                    format!("cloud_platforms[{i}]"),
                    format!(
                        "{:?} is not a Wiz cloud platform (one of {})",
                        validate::truncate(platform),
                        CLOUD_PLATFORMS.join(", ")
                    ),
                ));
            }
        }
        for (i, kind) in request.resource_types.iter().enumerate() {
            token(
                format!("resource_types[{i}]"),
                kind,
                64,
                |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_',
                "a Wiz resource type (1 to 64 characters of A-Z, 0-9 and '_', e.g. VIRTUAL_MACHINE)",
            )?;
        }
        for (i, id) in request.subscription_ids.iter().enumerate() {
            token(
                format!("subscription_ids[{i}]"),
                id,
                128,
                |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'),
                "a cloud account id (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-')",
            )?;
        }
        Ok(WizRequest {
            cloud_platforms: request.cloud_platforms.clone(),
            resource_types: request.resource_types.clone(),
            subscription_ids: request.subscription_ids.clone(),
        })
    }
}

#[tonic::async_trait]
impl WizConnectorService for WizService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = WizRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(request: SyncRequest) -> String {
        match WizRequest::try_from(&request) {
            Err(SyncError::InvalidArgument { field, .. }) => field,
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let platforms = |p: &[&str]| SyncRequest {
            cloud_platforms: p.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        assert_eq!(field_of(platforms(&["AWS", "aws"])), "cloud_platforms[1]");
        assert_eq!(field_of(platforms(&["GCP", "GCP"])), "cloud_platforms[1]");
        let types = SyncRequest {
            resource_types: vec!["BUCKET".into(), "virtual machine".into()],
            ..Default::default()
        };
        assert_eq!(field_of(types), "resource_types[1]");
        let subs = SyncRequest {
            subscription_ids: vec!["../x".into()],
            ..Default::default()
        };
        assert_eq!(field_of(subs), "subscription_ids[0]");
        let many = SyncRequest {
            subscription_ids: (0..101).map(|i| format!("acct-{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(field_of(many), "subscription_ids");
        let ok = SyncRequest {
            cloud_platforms: vec!["AWS".into(), "Azure".into(), "GCP".into()],
            resource_types: vec!["VIRTUAL_MACHINE".into()],
            subscription_ids: vec!["5f1d3c2b-8e7a-4b6c-9d0e-1a2b3c4d5e6f".into(), "acme-prod-331".into()],
            options: None,
        };
        assert_eq!(WizRequest::try_from(&ok).unwrap().cloud_platforms.len(), 3);
    }
}
