//! `connectors.gitlab.v1.GitlabConnectorService`.

use std::sync::Arc;

use super::stubs::gitlab::gitlab_connector_service_server::GitlabConnectorService;
use connectors_proto::gitlab::v1::SyncRequest;
use tonic::{Request, Response, Status};

use super::validate;
use super::{EventStream, SyncGate};
use crate::providers::gitlab::{GitlabConnector, GitlabRequest, MAX_PIPELINES_PER_PROJECT};
use crate::sync::SyncError;

/// Most segments of a group path (GitLab allows 20 levels of nesting).
const MAX_GROUP_DEPTH: usize = 20;
/// Most characters of one path segment (GitLab's limit on `path`).
const MAX_SEGMENT: usize = 255;

/// The GitLab connector service.
#[derive(Debug, Clone)]
pub struct GitlabService {
    connector: Arc<GitlabConnector>,
    gate: SyncGate,
}

impl GitlabService {
    /// Serves `connector` through the gate.
    pub fn new(connector: Arc<GitlabConnector>, gate: SyncGate) -> Self {
        Self { connector, gate }
    }
}

/// One segment of a GitLab namespace or project path: 1 to 255 characters of
/// [A-Za-z0-9_.-], not starting with '-' or '.', not ending with '.', without
/// "..", and not ending in ".git" or ".atom" (GitLab's path rules).
fn segment_ok(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= MAX_SEGMENT
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !segment.starts_with(['-', '.'])
        && !segment.ends_with('.')
        && !segment.contains("..")
        && !segment.ends_with(".git")
        && !segment.ends_with(".atom")
}

/// A full path of `min..=max` segments separated by '/'.
pub fn gitlab_path(field: &str, value: &str, min: usize, max: usize, what: &str) -> Result<(), SyncError> {
    let segments: Vec<&str> = value.split('/').collect();
    let ok = (min..=max).contains(&segments.len()) && segments.iter().all(|s| segment_ok(s));
    if ok {
        Ok(())
    } else {
        Err(SyncError::invalid(
            field,
            format!(
                "{:?} is not a GitLab {what} path ({min} to {max} segments separated by '/', each 1 to {MAX_SEGMENT} characters of A-Z, a-z, 0-9, '_', '.' and '-', not starting with '-' or '.', not ending with '.', '.git' or '.atom', without '..')",
                validate::truncate(value)
            ),
        ))
    }
}

impl TryFrom<&SyncRequest> for GitlabRequest {
    type Error = SyncError;

    fn try_from(request: &SyncRequest) -> Result<Self, SyncError> {
        validate::list_len("groups", &request.groups, validate::MAX_SCOPES)?;
        validate::list_len("projects", &request.projects, validate::MAX_RESOURCES)?;
        for (i, group) in request.groups.iter().enumerate() {
            gitlab_path(&format!("groups[{i}]"), group, 1, MAX_GROUP_DEPTH, "group")?;
        }
        for (i, project) in request.projects.iter().enumerate() {
            gitlab_path(&format!("projects[{i}]"), project, 2, MAX_GROUP_DEPTH + 1, "project")?;
        }
        let pipelines_per_project = match request.pipelines_per_project {
            0 => None,
            n if n <= MAX_PIPELINES_PER_PROJECT => Some(n),
            n => {
                return Err(SyncError::invalid(
                    "pipelines_per_project",
                    format!("must be 0 (server default) to {MAX_PIPELINES_PER_PROJECT}, got {n}"),
                ));
            }
        };
        Ok(GitlabRequest {
            groups: request.groups.clone(),
            projects: request.projects.clone(),
            pipelines_per_project,
            include_child_pipelines: request.include_child_pipelines,
        })
    }
}

#[tonic::async_trait]
impl GitlabConnectorService for GitlabService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        let message = request.get_ref();
        let domain = GitlabRequest::try_from(message).map_err(super::status_from)?;
        let options = validate::options(message.options.clone()).map_err(super::status_from)?;
        self.gate.start(&request, self.connector.clone(), domain, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(groups: &[&str], projects: &[&str]) -> SyncRequest {
        SyncRequest {
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            projects: projects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn field_of(request: &SyncRequest) -> Option<String> {
        match GitlabRequest::try_from(request) {
            Ok(_) => None,
            Err(SyncError::InvalidArgument { field, .. }) => Some(field),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn valid_paths_pass() {
        let ok = request(
            &["acme-corp", "acme-corp/platform", "a_b.c", "gitlab-org"],
            &["acme-corp/platform/gateway", "g/p.js"],
        );
        assert_eq!(field_of(&ok), None);
    }

    #[test]
    fn bad_paths_name_their_field() {
        for (groups, projects, field) in [
            (vec![""], vec![], "groups[0]"),
            (vec!["ok", "https://evil.example/x"], vec![], "groups[1]"),
            (vec!["/leading"], vec![], "groups[0]"),
            (vec!["trailing/"], vec![], "groups[0]"),
            (vec!["a//b"], vec![], "groups[0]"),
            (vec![".hidden"], vec![], "groups[0]"),
            (vec!["-dash"], vec![], "groups[0]"),
            (vec!["dot."], vec![], "groups[0]"),
            (vec!["a..b"], vec![], "groups[0]"),
            (vec!["repo.git"], vec![], "groups[0]"),
            (vec!["feed.atom"], vec![], "groups[0]"),
            (vec!["sp ace"], vec![], "groups[0]"),
            (vec!["a%2Fb"], vec![], "groups[0]"),
            (vec!["a", "a"], vec![], "groups[1]"),
            (vec![], vec!["single"], "projects[0]"),
            (vec![], vec!["g/p", "g/../etc"], "projects[1]"),
            (vec![], vec!["g/p?x=1"], "projects[0]"),
        ] {
            assert_eq!(
                field_of(&request(&groups, &projects)).as_deref(),
                Some(field),
                "{groups:?} {projects:?}"
            );
        }
        let deep = vec!["a"; 21].join("/");
        assert_eq!(field_of(&request(&[&deep], &[])).as_deref(), Some("groups[0]"));
        let long = "a".repeat(256);
        assert_eq!(field_of(&request(&[&long], &[])).as_deref(), Some("groups[0]"));
        let many: Vec<String> = (0..101).map(|i| format!("g{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(field_of(&request(&many, &[])).as_deref(), Some("groups"));
        let mut limit = request(&["g"], &[]);
        limit.pipelines_per_project = 101;
        assert_eq!(field_of(&limit).as_deref(), Some("pipelines_per_project"));
        limit.pipelines_per_project = 100;
        assert_eq!(field_of(&limit), None);
    }
}
