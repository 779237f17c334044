//! `connectors.aws.v1.AwsConnectorService`.

use std::sync::Arc;

use super::stubs::aws::aws_connector_service_server::AwsConnectorService;
use connectors_proto::aws::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::aws::{AwsConnector, AwsRequest, SERVICES, valid_account, valid_region};
use crate::sync::SyncError;

/// Most account ids in one request.
const MAX_ACCOUNTS: usize = 50;
/// Most regions in one request.
const MAX_REGIONS: usize = 32;

/// The AWS connector service.
#[derive(Debug, Clone)]
pub struct AwsService {
    connector: Arc<AwsConnector>,
    gate: SyncGate,
}

impl AwsService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<AwsConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

fn check(name: &str, values: &[String], max: usize, valid: impl Fn(&str) -> bool, what: &str) -> Result<(), SyncError> {
    validate::list_len(name, values, max)?;
    for (i, value) in values.iter().enumerate() {
        if !valid(value) {
            return Err(SyncError::invalid(
                format!("{name}[{i}]"),
                format!("{:?} is not {what}", validate::truncate(value)),
            ));
        }
    }
    Ok(())
}

impl TryFrom<&SyncRequest> for AwsRequest {
    type Error = SyncError;

    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        check(
            "account_ids",
            &request.account_ids,
            MAX_ACCOUNTS,
            valid_account,
            "an AWS account id (12 digits)",
        )?;
        check(
            "regions",
            &request.regions,
            MAX_REGIONS,
            valid_region,
            "an AWS region name (e.g. us-east-1)",
        )?;
        check(
            "services",
            &request.services,
            SERVICES.len(),
            |s| SERVICES.contains(&s),
            &format!("a service (one of {})", SERVICES.join(", ")),
        )?;
        Ok(AwsRequest {
            account_ids: request.account_ids.clone(),
            regions: request.regions.clone(),
            services: request.services.clone(),
        })
    }
}

#[tonic::async_trait]
impl AwsConnectorService for AwsService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = AwsRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(request: SyncRequest) -> String {
        match AwsRequest::try_from(&request) {
            Err(SyncError::InvalidArgument { field, .. }) => field,
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let accounts = SyncRequest {
            account_ids: vec!["123456789012".into(), "12345".into()],
            ..Default::default()
        };
        assert_eq!(field_of(accounts), "account_ids[1]");
        let regions = SyncRequest {
            regions: vec!["eu-west-1".into(), "mars".into()],
            ..Default::default()
        };
        assert_eq!(field_of(regions), "regions[1]");
        let services = SyncRequest {
            services: vec!["s3".into()],
            ..Default::default()
        };
        assert_eq!(field_of(services), "services[0]");
        let duplicates = SyncRequest {
            services: vec!["ecr".into(), "ecr".into()],
            ..Default::default()
        };
        assert_eq!(field_of(duplicates), "services[1]");
        let ok = SyncRequest {
            account_ids: vec!["123456789012".into()],
            regions: vec!["us-east-1".into(), "us-gov-west-1".into()],
            services: vec!["lambda".into(), "tagging".into()],
            options: None,
        };
        assert_eq!(AwsRequest::try_from(&ok).unwrap().regions.len(), 2);
    }
}
