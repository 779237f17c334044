//! `connectors.github.v1.GithubConnectorService`.

use std::sync::Arc;

use super::stubs::github::github_connector_service_server::GithubConnectorService;
use connectors_proto::github::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::github::{GithubConnector, GithubRequest};
use crate::sync::SyncError;

/// The GitHub connector service.
#[derive(Debug, Clone)]
pub struct GithubService {
    connector: Arc<GithubConnector>,
    gate: SyncGate,
}

impl GithubService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<GithubConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

impl TryFrom<&SyncRequest> for GithubRequest {
    type Error = SyncError;

    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        validate::list_len("orgs", &request.orgs, validate::MAX_SCOPES)?;
        validate::list_len("repositories", &request.repositories, validate::MAX_RESOURCES)?;
        for (i, org) in request.orgs.iter().enumerate() {
            validate::login(&format!("orgs[{i}]"), org)?;
        }
        let mut repositories = Vec::with_capacity(request.repositories.len());
        for (i, full) in request.repositories.iter().enumerate() {
            let field = format!("repositories[{i}]");
            let Some((owner, name)) = full.split_once('/') else {
                return Err(SyncError::invalid(
                    field,
                    format!("{:?} is not of the form owner/name", validate::truncate(full)),
                ));
            };
            validate::login(&field, owner)?;
            validate::repo_name(&field, name)?;
            repositories.push((owner.to_owned(), name.to_owned()));
        }
        Ok(GithubRequest {
            orgs: request.orgs.clone(),
            repositories,
            exclude_archived: request.exclude_archived,
            exclude_forks: request.exclude_forks,
        })
    }
}

#[tonic::async_trait]
impl GithubConnectorService for GithubService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = GithubRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}
