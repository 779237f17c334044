//! The Wiz connector: the cloud resource inventory of a Wiz tenant (GraphQL
//! `cloudResources`, Relay cursors) as asset entities.
//!
//! Wiz has no change feed for the inventory: INCREMENTAL syncs refetch every
//! page and the engine diffs the scope against its saved state. A page's
//! `endCursor` is the checkpoint cursor; a resumed scope passes it as `after`.

pub mod client;

use std::sync::Arc;

use async_trait::async_trait;
use connectors_proto::v1::{CloudAsset, Entity, EntityKind, Label, entity::Body};
use serde_json::{Map, Value, json};

use self::client::{ClientError, CloudResource, WizAuth, WizClient};
use crate::http::UpstreamClient;
use crate::sync::{
    Availability, Connector, Descriptor, ResumedCursor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn,
};

/// The connector id.
pub const ID: &str = "wiz";

/// The upstream operation stamped into provenance.
pub const OPERATION: &str = "cloudResources";

/// Cloud platforms a request may name (Wiz's `CloudPlatform` values).
pub const CLOUD_PLATFORMS: &[&str] = &[
    "AWS",
    "Azure",
    "GCP",
    "OCI",
    "Alibaba",
    "Kubernetes",
    "OpenShift",
    "vSphere",
    "Linode",
];

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "Wiz",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Asset],
    native_incremental: false,
    auth_modes: &["client_credentials", "token"],
    service: "connectors.wiz.v1.WizConnectorService",
};

/// A validated Wiz sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WizRequest {
    /// Cloud platforms, one scope each; empty = the whole tenant.
    pub cloud_platforms: Vec<String>,
    /// Graph entity types to keep; empty = all.
    pub resource_types: Vec<String>,
    /// Account external ids to keep; empty = all.
    pub subscription_ids: Vec<String>,
}

/// Settings of the Wiz connector.
#[derive(Debug, Clone)]
pub struct WizSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Credentials.
    pub auth: WizAuth,
    /// Resources per page (`first`).
    pub page_size: u16,
}

/// The Wiz connector.
#[derive(Debug)]
pub struct WizConnector {
    settings: WizSettings,
    client: WizClient,
}

impl WizConnector {
    /// A connector: `api` is based at the GraphQL endpoint (`WIZ_API_URL`),
    /// `auth_http` at the token endpoint (`WIZ_AUTH_URL`).
    pub fn new(settings: WizSettings, api: Arc<UpstreamClient>, auth_http: Arc<UpstreamClient>) -> Self {
        let client = WizClient::new(api, auth_http, settings.auth.clone());
        Self { settings, client }
    }

    fn variables(&self, filter_by: &Value, after: Option<&str>) -> Value {
        let mut variables = json!({ "first": self.settings.page_size, "filterBy": filter_by });
        if let Some(after) = after {
            variables["after"] = Value::String(after.to_owned());
        }
        variables
    }
}

/// `filterBy` of a scope: the scope's platform and the request's filters.
fn filter_by(request: &WizRequest, scope: &Scope) -> Value {
    let mut filter = Map::new();
    if let Some(platform) = scope.key.strip_prefix("platform:") {
        filter.insert("cloudPlatform".into(), json!([platform]));
    }
    if !request.resource_types.is_empty() {
        filter.insert("type".into(), json!(request.resource_types));
    }
    if !request.subscription_ids.is_empty() {
        filter.insert("subscriptionExternalId".into(), json!(request.subscription_ids));
    }
    Value::Object(filter)
}

fn scope_error(error: ClientError) -> ScopeError {
    match error {
        ClientError::Upstream(upstream) => {
            ScopeError::from_upstream(&upstream, "cloudResources", "wiz rate limit exhausted")
        }
        ClientError::Unauthorized(message) => ScopeError::Fatal(SyncError::UpstreamUnauthenticated(message)),
        ClientError::Forbidden(message) => ScopeError::Failed {
            reason: "UPSTREAM_PERMISSION_DENIED",
            message,
        },
        ClientError::Status { status } => ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: format!("cloudResources: wiz answered {status}"),
        },
        ClientError::Malformed(message) => ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message,
        },
    }
}

/// Whole seconds, as this connector has always emitted them.
fn timestamp(value: Option<&str>) -> Option<pbjson_types::Timestamp> {
    super::rfc3339_timestamp(value).map(|t| pbjson_types::Timestamp { nanos: 0, ..t })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Maps a Wiz cloud resource to an asset entity; returns it with its upstream
/// version (the resource's `updatedAt`, when Wiz has one).
pub fn asset_entity(resource: &CloudResource) -> (Entity, String) {
    let empty = Map::new();
    let graph = resource.graph_entity.as_ref();
    let props = graph.and_then(|g| g.properties.as_ref()).unwrap_or(&empty);
    let prop = |key: &str| props.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let kind = resource
        .kind
        .clone()
        .or_else(|| graph.and_then(|g| g.kind.clone()))
        .unwrap_or_default();
    let name = resource.name.clone().unwrap_or_else(|| prop("name"));
    let account = resource
        .subscription_external_id
        .clone()
        .unwrap_or_else(|| prop("subscriptionExternalId"));
    let external_id = Some(prop("externalId"))
        .filter(|id| !id.is_empty())
        .or_else(|| graph.and_then(|g| g.provider_unique_id.clone()))
        .unwrap_or_default();
    let mut labels: Vec<Label> = props
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .map(|(key, value)| Label {
                    key: key.clone(),
                    value: text(value),
                })
                .collect()
        })
        .unwrap_or_default();
    labels.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    let mut attributes = Vec::new();
    if let Some(id) = graph.and_then(|g| g.id.clone()) {
        attributes.push(Label {
            key: "wiz.graph_entity_id".into(),
            value: id,
        });
    }
    if let Some(id) = resource.subscription_id.clone() {
        attributes.push(Label {
            key: "wiz.subscription_id".into(),
            value: id,
        });
    }
    attributes.sort_by(|a, b| a.key.cmp(&b.key));
    let updated = props.get("updatedAt").and_then(Value::as_str);
    let entity = Entity {
        urn: urn(ID, EntityKind::Asset, &resource.id),
        kind: EntityKind::Asset as i32,
        native_id: resource.id.clone(),
        display_name: name,
        labels,
        parent_urn: String::new(),
        body: Some(Body::Asset(CloudAsset {
            asset_type: format!("wiz.{}", kind.to_lowercase()),
            native_type: prop("nativeType"),
            cloud_platform: prop("cloudPlatform").to_lowercase(),
            account,
            region: prop("region"),
            status: prop("status"),
            external_id,
            images: Vec::new(),
            attributes,
            create_time: timestamp(props.get("creationDate").and_then(Value::as_str)),
            update_time: timestamp(updated),
        })),
    };
    (entity, updated.unwrap_or_default().to_owned())
}

/// The scope failure of an answer with GraphQL errors: permission denied
/// when any of them says so (the service account lacks an API scope), else a
/// GraphQL error; the message holds every error's.
fn graphql_failure(errors: &[client::GraphqlError]) -> (&'static str, String) {
    let reason = if errors.iter().any(client::GraphqlError::is_denied) {
        "UPSTREAM_PERMISSION_DENIED"
    } else {
        "UPSTREAM_GRAPHQL_ERROR"
    };
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    let message = format!(
        "cloudResources: wiz answered {} graphql error(s): {}",
        messages.len(),
        messages.join("; ")
    );
    (reason, message)
}

/// A resume cursor from a checkpoint: Wiz cursors are short opaque strings.
fn valid_cursor(cursor: &str) -> bool {
    !cursor.is_empty() && cursor.len() <= 1024 && cursor.chars().all(|c| c.is_ascii_graphic())
}

#[async_trait]
impl Connector for WizConnector {
    type Request = WizRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        match self.client.cloud_resources(json!({ "first": 1, "filterBy": {} })).await {
            // Wiz answers a query the token may not run with HTTP 200 and
            // GraphQL errors: a sync would fail every scope the same way.
            Ok(answer) if !answer.errors.is_empty() => {
                let (reason, message) = graphql_failure(&answer.errors);
                Err(if reason == "UPSTREAM_PERMISSION_DENIED" {
                    SyncError::UpstreamPermissionDenied(message)
                } else {
                    SyncError::Unavailable(message)
                })
            }
            Ok(_) => Ok(()),
            Err(ClientError::Unauthorized(message)) => Err(SyncError::UpstreamUnauthenticated(message)),
            Err(ClientError::Forbidden(message)) => Err(SyncError::UpstreamPermissionDenied(message)),
            Err(other) => Err(SyncError::Unavailable(other.to_string())),
        }
    }

    fn scopes(&self, request: &WizRequest) -> Result<Vec<Scope>, SyncError> {
        if request.cloud_platforms.is_empty() {
            return Ok(vec![Scope::new("tenant")]);
        }
        Ok(request
            .cloud_platforms
            .iter()
            .map(|platform| Scope::new(format!("platform:{platform}")))
            .collect())
    }

    fn request_fingerprint(&self, request: &WizRequest) -> String {
        format!(
            "types={};subscriptions={}",
            request.resource_types.join(","),
            request.subscription_ids.join(",")
        )
    }

    async fn sync_scope(
        &self,
        request: &WizRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let filter = filter_by(request, scope);
        let mut after = match ctx.resume_cursor() {
            Some(cursor) if !valid_cursor(cursor) => {
                return Err(ScopeError::Fatal(SyncError::invalid(
                    "options.checkpoint",
                    "the resume cursor is not a wiz page cursor",
                )));
            }
            cursor => cursor.map(str::to_owned),
        };
        let mut resumed = ResumedCursor::new(after.is_some());
        loop {
            if ctx.is_cancelled() {
                return Err(ScopeError::Cancelled);
            }
            let answer = self
                .client
                .cloud_resources(self.variables(&filter, after.as_deref()))
                .await;
            // A refused cursor: a GraphQL error coded as bad input, or HTTP
            // 400 (how GraphQL over HTTP answers a request error).
            let refused = match &answer {
                Ok(answer) => answer.refuses_input(),
                Err(error) => matches!(error, ClientError::Status { status: 400 }),
            };
            if resumed.restart(ID, &scope.key, refused) {
                after = None;
                continue;
            }
            let answer = answer.map_err(scope_error)?;
            let connection = answer.data.and_then(|data| data.cloud_resources);
            let (nodes, page_info) = match connection {
                Some(connection) => (connection.nodes, connection.page_info),
                None => (Vec::new(), None),
            };
            // Partial data is still data: emit it, then fail the scope.
            for node in nodes.iter().flatten() {
                let (entity, version) = asset_entity(node);
                ctx.upsert(entity, UpsertMeta::new(OPERATION, version)).await?;
            }
            if !answer.errors.is_empty() {
                let (reason, message) = graphql_failure(&answer.errors);
                tracing::warn!(connector = ID, scope = %scope.key, error = %message, "graphql errors");
                return Err(ScopeError::Failed { reason, message });
            }
            let Some(page_info) = page_info else {
                return Err(ScopeError::Failed {
                    reason: "UPSTREAM_MALFORMED",
                    message: "cloudResources: wiz answered without data.cloudResources.pageInfo".into(),
                });
            };
            if !page_info.has_next_page {
                return Ok(());
            }
            let Some(cursor) = page_info
                .end_cursor
                .filter(|c| valid_cursor(c) && after.as_ref() != Some(c))
            else {
                return Err(ScopeError::Failed {
                    reason: "UPSTREAM_MALFORMED",
                    message: "cloudResources: hasNextPage without a new endCursor".into(),
                });
            };
            ctx.checkpoint(cursor.clone()).await?;
            after = Some(cursor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(value: Value) -> CloudResource {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn maps_a_cloud_resource_to_an_asset() {
        let (entity, version) = asset_entity(&resource(json!({
            "id": "9c1b",
            "name": "orders-db",
            "type": "DB_SERVER",
            "subscriptionId": "sub-1",
            "subscriptionExternalId": "123456789012",
            "graphEntity": {
                "id": "g-1",
                "providerUniqueId": "arn:aws:rds:us-east-1:123456789012:orders-db",
                "name": "orders-db",
                "type": "DB_SERVER",
                "properties": {
                    "cloudPlatform": "AWS",
                    "nativeType": "AWS::RDS::DBInstance",
                    "region": "us-east-1",
                    "status": "Active",
                    "tags": { "team": "orders", "env": "prod", "cost": 12 },
                    "creationDate": "2024-06-07T10:00:00Z",
                    "updatedAt": "2025-07-01T12:00:00Z"
                },
                "firstSeen": "2025-03-02T08:00:00Z",
                "lastSeen": "2025-06-30T09:14:27Z"
            }
        })));
        assert_eq!(entity.urn, "urn:connectors:wiz:asset:9c1b");
        assert_eq!(entity.kind, EntityKind::Asset as i32);
        assert_eq!(entity.display_name, "orders-db");
        let labels: Vec<(&str, &str)> = entity
            .labels
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(labels, [("cost", "12"), ("env", "prod"), ("team", "orders")]);
        let Some(Body::Asset(asset)) = entity.body else {
            panic!("asset body")
        };
        assert_eq!(asset.asset_type, "wiz.db_server");
        assert_eq!(asset.native_type, "AWS::RDS::DBInstance");
        assert_eq!(asset.cloud_platform, "aws");
        assert_eq!(asset.account, "123456789012");
        assert_eq!(asset.region, "us-east-1");
        assert_eq!(asset.status, "Active");
        // No externalId property: the provider's unique id.
        assert_eq!(asset.external_id, "arn:aws:rds:us-east-1:123456789012:orders-db");
        let attributes: Vec<(&str, &str)> = asset
            .attributes
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            attributes,
            [("wiz.graph_entity_id", "g-1"), ("wiz.subscription_id", "sub-1")]
        );
        assert_eq!(asset.create_time.unwrap().seconds, 1_717_754_400);
        assert_eq!(version, "2025-07-01T12:00:00Z");
    }

    #[test]
    fn last_seen_does_not_change_the_entity() {
        let base = json!({
            "id": "r1", "name": "a", "type": "BUCKET",
            "graphEntity": { "properties": { "cloudPlatform": "GCP" }, "lastSeen": "2025-01-01T00:00:00Z" }
        });
        let mut rescanned = base.clone();
        rescanned["graphEntity"]["lastSeen"] = json!("2025-02-01T00:00:00Z");
        assert_eq!(asset_entity(&resource(base)).0, asset_entity(&resource(rescanned)).0);
    }

    #[test]
    fn a_minimal_resource_maps_without_panicking() {
        let (entity, version) = asset_entity(&resource(json!({ "id": "r2" })));
        assert_eq!(entity.urn, "urn:connectors:wiz:asset:r2");
        assert!(entity.labels.is_empty());
        assert_eq!(version, "");
    }

    #[test]
    fn filters_follow_the_scope_and_the_request() {
        let request = WizRequest {
            cloud_platforms: vec!["AWS".into()],
            resource_types: vec!["BUCKET".into()],
            subscription_ids: vec!["123456789012".into()],
        };
        assert_eq!(
            filter_by(&request, &Scope::new("platform:AWS")),
            json!({ "cloudPlatform": ["AWS"], "type": ["BUCKET"], "subscriptionExternalId": ["123456789012"] })
        );
        assert_eq!(filter_by(&WizRequest::default(), &Scope::new("tenant")), json!({}));
    }

    #[test]
    fn cursors_are_short_printable_strings() {
        assert!(valid_cursor("YXJyYXljb25uZWN0aW9uOjEx"));
        assert!(!valid_cursor(""));
        assert!(!valid_cursor("a b"));
        assert!(!valid_cursor(&"a".repeat(1025)));
    }
}
