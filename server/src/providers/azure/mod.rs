//! The Azure connector: container registries (ACR), AKS managed clusters and
//! App Service sites of each subscription, as cloud assets, over Azure
//! Resource Manager REST through the shared HTTP layer (see `client.rs` for
//! why not the management crates).
//!
//! One scope per subscription; its three listings are read in order, each
//! following `nextLink`. A checkpoint's cursor is the next page (or the next
//! listing's first page), relative to the ARM endpoint. ARM has no change
//! feed for these lists: INCREMENTAL syncs refetch them and the engine diffs
//! the scope against its saved state.

pub mod client;

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use connectors_proto::v1::{CloudAsset, ContainerImage, Entity, EntityKind, Label, entity::Body};
use serde_json::Value;

use self::client::{ArmClient, ArmError};
use crate::http::UpstreamClient;
use crate::sync::{
    Availability, Connector, Descriptor, ResumedCursor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn,
};

/// The connector id.
pub const ID: &str = "azure";

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "Azure",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Asset],
    native_incremental: false,
    auth_modes: &["client_secret", "workload_identity", "managed_identity", "azure_cli"],
    service: "connectors.azure.v1.AzureConnectorService",
};

/// One ARM listing of a subscription.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// Provenance operation.
    pub operation: &'static str,
    /// `Microsoft.X/type` under `/subscriptions/{id}/providers/`.
    pub resource_type: &'static str,
    /// The api-version requested.
    pub api_version: &'static str,
}

/// The listings of a subscription, in sync order.
pub const LISTINGS: &[Listing] = &[
    Listing {
        operation: "registries/list",
        resource_type: "Microsoft.ContainerRegistry/registries",
        api_version: "2023-07-01",
    },
    Listing {
        operation: "managedClusters/list",
        resource_type: "Microsoft.ContainerService/managedClusters",
        api_version: "2024-02-01",
    },
    Listing {
        operation: "sites/list",
        resource_type: "Microsoft.Web/sites",
        api_version: "2023-12-01",
    },
];

impl Listing {
    /// `/subscriptions/{sub}/providers/{type}`: every page of the listing starts so.
    fn prefix(&self, subscription: &str) -> String {
        format!("/subscriptions/{subscription}/providers/{}", self.resource_type)
    }

    fn first_page(&self, subscription: &str) -> String {
        format!("{}?api-version={}", self.prefix(subscription), self.api_version)
    }

    /// True when `route` is a page of this listing (case-insensitive path,
    /// as ARM echoes paths with its own casing).
    fn owns(&self, subscription: &str, route: &str) -> bool {
        let prefix = self.prefix(subscription).to_ascii_lowercase();
        let lower = route.to_ascii_lowercase();
        !route.contains("://") && lower.strip_prefix(&prefix).is_some_and(|rest| rest.starts_with('?'))
    }
}

/// A validated Azure sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureRequest {
    /// Subscription ids (lower-case GUIDs); empty = the server default.
    pub subscription_ids: Vec<String>,
}

/// Settings of the Azure connector.
#[derive(Debug, Clone)]
pub struct AzureSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Subscriptions synced when a request names none.
    pub default_subscriptions: Vec<String>,
}

/// The Azure connector.
#[derive(Debug)]
pub struct AzureConnector {
    settings: AzureSettings,
    client: ArmClient,
}

impl AzureConnector {
    /// A connector on the shared upstream client based at the ARM endpoint;
    /// `credential` is `None` in fixture mode.
    pub fn new(
        settings: AzureSettings,
        upstream: Arc<UpstreamClient>,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Self {
        Self {
            settings,
            client: ArmClient::new(upstream, credential),
        }
    }
}

/// True for a GUID in canonical 8-4-4-4-12 hex form.
pub fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn scope_error(error: ArmError, what: &str) -> ScopeError {
    match error {
        ArmError::Upstream(upstream) => {
            ScopeError::from_upstream(&upstream, what, "azure resource manager throttled the requests")
        }
        ArmError::Credential(message) => ScopeError::Fatal(SyncError::UpstreamUnauthenticated(message)),
        ArmError::Status { status, code, message } => {
            let message = format!("{what}: azure resource manager answered {status}: {code}: {message}");
            // The token is good, but the subscription belongs to another
            // tenant (or was just transferred to one): this subscription's
            // failure alone, not a rejected credential.
            if status == 401 && code == "InvalidAuthenticationTokenTenant" {
                return ScopeError::Failed {
                    reason: "UPSTREAM_PERMISSION_DENIED",
                    message,
                };
            }
            ScopeError::from_status(status, message)
        }
        ArmError::Malformed(detail) => ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{what}: {detail}"),
        },
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The connector's asset type of an ARM resource type.
pub fn asset_type(native_type: &str) -> &'static str {
    match native_type.to_ascii_lowercase().as_str() {
        "microsoft.containerregistry/registries" => "azure.containerregistry.registry",
        "microsoft.containerservice/managedclusters" => "azure.containerservice.managedcluster",
        "microsoft.web/sites" => "azure.web.site",
        _ => "azure.resource",
    }
}

/// The container image of an App Service site's `linuxFxVersion` /
/// `windowsFxVersion` (`DOCKER|nginx:1.27`, `COMPOSE|...` has none).
fn container_image(fx_version: &str) -> Option<String> {
    let (kind, image) = fx_version.split_once('|')?;
    (kind.eq_ignore_ascii_case("DOCKER") && !image.is_empty()).then(|| image.to_owned())
}

/// A time as ARM writes it: RFC 3339, or, in App Service's
/// `lastModifiedTimeUtc`, UTC without an offset (`2024-09-24T12:51:45.283333`,
/// as `az webapp show` prints it).
fn arm_timestamp(value: Option<&str>) -> Option<pbjson_types::Timestamp> {
    super::rfc3339_timestamp(value).or_else(|| {
        let t = chrono::NaiveDateTime::parse_from_str(value?, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()?
            .and_utc();
        Some(pbjson_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        })
    })
}

/// Maps an ARM resource (a list item) of `subscription` to an asset entity;
/// returns it with its upstream version (`systemData.lastModifiedAt`, or the
/// site's `lastModifiedTimeUtc`, when ARM sends one).
pub fn asset_entity(subscription: &str, resource: &Value) -> Option<(Entity, String)> {
    let id = resource.get("id")?.as_str()?.to_owned();
    let native_type = text(resource.get("type"));
    let props = resource.get("properties").cloned().unwrap_or(Value::Null);
    let prop = |key: &str| text(props.get(key));
    let mut attributes: Vec<Label> = Vec::new();
    let mut attr = |key: &str, value: String| {
        if !value.is_empty() {
            attributes.push(Label {
                key: key.to_owned(),
                value,
            });
        }
    };
    attr("azure.provisioning_state", prop("provisioningState"));
    if let Some(identity) = resource.get("identity") {
        attr("azure.identity_type", text(identity.get("type")));
    }
    if let Some(sku) = resource.get("sku") {
        attr("azure.sku", text(sku.get("name")));
        attr("azure.sku_tier", text(sku.get("tier")));
    }
    let mut images = Vec::new();
    let kind = asset_type(&native_type);
    let status = match kind {
        "azure.containerregistry.registry" => {
            attr("azure.login_server", prop("loginServer"));
            attr("azure.admin_user_enabled", prop("adminUserEnabled"));
            attr("azure.public_network_access", prop("publicNetworkAccess"));
            prop("provisioningState")
        }
        "azure.containerservice.managedcluster" => {
            attr("azure.kubernetes_version", prop("kubernetesVersion"));
            attr("azure.current_kubernetes_version", prop("currentKubernetesVersion"));
            attr("azure.fqdn", prop("fqdn"));
            attr("azure.node_resource_group", prop("nodeResourceGroup"));
            let pools: Vec<String> = props
                .get("agentPoolProfiles")
                .and_then(Value::as_array)
                .map(|pools| {
                    let mut pools: Vec<String> = pools
                        .iter()
                        .map(|p| {
                            format!(
                                "{}:{}x{}:{}:{}:{}",
                                text(p.get("name")),
                                text(p.get("count")),
                                text(p.get("vmSize")),
                                text(p.get("mode")),
                                text(p.get("osType")),
                                text(
                                    p.get("currentOrchestratorVersion")
                                        .or_else(|| p.get("orchestratorVersion"))
                                ),
                            )
                        })
                        .collect();
                    pools.sort();
                    pools
                })
                .unwrap_or_default();
            attr("azure.node_pools", pools.join(","));
            let power = props.get("powerState").map(|p| text(p.get("code"))).unwrap_or_default();
            attr("azure.power_state", power.clone());
            if power.is_empty() {
                prop("provisioningState")
            } else {
                power
            }
        }
        "azure.web.site" => {
            attr("azure.kind", text(resource.get("kind")));
            attr("azure.default_host_name", prop("defaultHostName"));
            attr("azure.enabled", prop("enabled"));
            attr("azure.https_only", prop("httpsOnly"));
            attr("azure.server_farm_id", prop("serverFarmId"));
            let config = props.get("siteConfig");
            // ARM's list and GET answers often carry `siteConfig: null` and the
            // stack in the undocumented `siteProperties.properties` name/value
            // list instead (azure-rest-api-specs issue 1698).
            let site_property = |name: &str| {
                props
                    .get("siteProperties")?
                    .get("properties")?
                    .as_array()?
                    .iter()
                    .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))?
                    .get("value")
            };
            let fx = [
                config.and_then(|c| c.get("linuxFxVersion")),
                config.and_then(|c| c.get("windowsFxVersion")),
                site_property("LinuxFxVersion"),
                site_property("WindowsFxVersion"),
            ]
            .into_iter()
            .map(text)
            .find(|v| !v.is_empty())
            .unwrap_or_default();
            match container_image(&fx) {
                Some(image) => images.push(ContainerImage {
                    // A single-container site: App Service names it after the site.
                    container: text(resource.get("name")),
                    digest: image
                        .split_once('@')
                        .map(|(_, digest)| digest.to_owned())
                        .unwrap_or_default(),
                    image,
                }),
                None => attr("azure.runtime", fx),
            }
            prop("state")
        }
        _ => prop("provisioningState"),
    };
    attributes.sort_by(|a, b| a.key.cmp(&b.key));
    let mut labels: Vec<Label> = resource
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .map(|(key, value)| Label {
                    key: key.clone(),
                    value: text(Some(value)),
                })
                .collect()
        })
        .unwrap_or_default();
    labels.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    let system = resource.get("systemData");
    let created = system
        .and_then(|s| s.get("createdAt"))
        .or_else(|| props.get("creationDate"))
        .and_then(Value::as_str);
    let modified = system
        .and_then(|s| s.get("lastModifiedAt"))
        .or_else(|| props.get("lastModifiedTimeUtc"))
        .and_then(Value::as_str);
    let entity = Entity {
        urn: urn(ID, EntityKind::Asset, &id.to_ascii_lowercase()),
        kind: EntityKind::Asset as i32,
        native_id: id.clone(),
        display_name: text(resource.get("name")),
        labels,
        parent_urn: String::new(),
        body: Some(Body::Asset(CloudAsset {
            asset_type: kind.to_owned(),
            native_type,
            cloud_platform: "azure".into(),
            account: subscription.to_owned(),
            region: text(resource.get("location")),
            status,
            external_id: id,
            images,
            attributes,
            create_time: arm_timestamp(created),
            update_time: arm_timestamp(modified),
        })),
    };
    Some((entity, modified.unwrap_or_default().to_owned()))
}

#[async_trait]
impl Connector for AzureConnector {
    type Request = AzureRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    async fn authenticate(&self) -> Result<(), SyncError> {
        // A token for ARM proves the credential; reading needs Reader on each
        // subscription, which a sync reports per scope.
        self.client
            .bearer()
            .await
            .map(|_| ())
            .map_err(|e| SyncError::UpstreamUnauthenticated(e.to_string()))
    }

    fn scopes(&self, request: &AzureRequest) -> Result<Vec<Scope>, SyncError> {
        let ids = if request.subscription_ids.is_empty() {
            &self.settings.default_subscriptions
        } else {
            &request.subscription_ids
        };
        if ids.is_empty() {
            return Err(SyncError::invalid(
                "subscription_ids",
                "no subscriptions given and AZURE_SUBSCRIPTION_IDS is not set on the server",
            ));
        }
        Ok(ids.iter().map(|id| Scope::new(format!("subscription:{id}"))).collect())
    }

    fn request_fingerprint(&self, _request: &AzureRequest) -> String {
        String::new()
    }

    async fn sync_scope(
        &self,
        _request: &AzureRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let Some(subscription) = scope.key.strip_prefix("subscription:") else {
            return Err(ScopeError::Fatal(SyncError::Internal(format!(
                "unknown scope {}",
                scope.key
            ))));
        };
        let (mut index, mut route) = match ctx.resume_cursor() {
            None => (0, LISTINGS[0].first_page(subscription)),
            Some(cursor) => match LISTINGS.iter().position(|l| l.owns(subscription, cursor)) {
                Some(index) => (index, cursor.to_owned()),
                None => {
                    return Err(ScopeError::Fatal(SyncError::invalid(
                        "options.checkpoint",
                        "the page cursor it holds is not an ARM listing of this subscription",
                    )));
                }
            },
        };
        // A resume cursor other than a listing's first page is a `nextLink`
        // with a `$skiptoken`; ARM documents no lifetime for those, nor what
        // it answers one it no longer accepts: any 400 restarts the listing.
        let mut resumed = ResumedCursor::new(route != LISTINGS[index].first_page(subscription));
        loop {
            let listing = LISTINGS[index];
            let what = format!("{} of subscription {subscription}", listing.resource_type);
            loop {
                if ctx.is_cancelled() {
                    return Err(ScopeError::Cancelled);
                }
                let answer = self.client.list(&route).await;
                let refused = matches!(answer, Err(ArmError::Status { status: 400, .. }));
                if resumed.restart(ID, &scope.key, refused) {
                    route = listing.first_page(subscription);
                    continue;
                }
                let (items, next) = match answer.map_err(|e| scope_error(e, &what)) {
                    Ok(page) => page,
                    // A page that does not parse is this resource type's
                    // failure: the other types are listed, and the scope
                    // ends FAILED after them.
                    Err(error) if error.is_malformed() => {
                        ctx.fail_when_done(error)?;
                        break;
                    }
                    Err(error) => return Err(error),
                };
                for item in &items {
                    match asset_entity(subscription, item) {
                        Some((entity, version)) => {
                            ctx.upsert(entity, UpsertMeta::new(listing.operation, version)).await?
                        }
                        None => tracing::warn!(
                            connector = ID,
                            listing = listing.operation,
                            "resource without an id skipped"
                        ),
                    }
                }
                let Some(next) = next else { break };
                if !listing.owns(subscription, &next) || next == route {
                    ctx.fail_when_done(ScopeError::Failed {
                        reason: "UPSTREAM_MALFORMED",
                        message: format!("{what}: nextLink outside the listing refused"),
                    })?;
                    break;
                }
                ctx.checkpoint(next.clone()).await?;
                route = next;
            }
            index += 1;
            let Some(listing) = LISTINGS.get(index) else {
                return Ok(());
            };
            route = listing.first_page(subscription);
            ctx.checkpoint(route.clone()).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arm_times_without_an_offset_are_utc() {
        let seconds = |value: &str| arm_timestamp(Some(value)).map(|t| (t.seconds, t.nanos));
        assert_eq!(
            seconds("2024-09-24T12:51:45.283333"),
            Some((1_727_182_305, 283_333_000))
        );
        assert_eq!(seconds("2024-09-24T12:51:45"), Some((1_727_182_305, 0)));
        assert_eq!(
            seconds("2024-09-24T14:51:45.5+02:00"),
            Some((1_727_182_305, 500_000_000))
        );
        assert_eq!(seconds("yesterday"), None);
    }

    const SUB: &str = "2f8a0e8c-5a7b-4f3e-9d1c-0a1b2c3d4e5f";

    fn asset(entity: &Entity) -> &CloudAsset {
        match &entity.body {
            Some(Body::Asset(asset)) => asset,
            _ => panic!("not an asset"),
        }
    }

    fn pairs(labels: &[Label]) -> Vec<(&str, &str)> {
        labels.iter().map(|l| (l.key.as_str(), l.value.as_str())).collect()
    }

    #[test]
    fn a_registry_maps_to_an_asset() {
        let (entity, version) = asset_entity(
            SUB,
            &json!({
                "id": format!("/subscriptions/{SUB}/resourceGroups/Platform-RG/providers/Microsoft.ContainerRegistry/registries/acmeProd"),
                "name": "acmeProd",
                "type": "Microsoft.ContainerRegistry/registries",
                "location": "westeurope",
                "tags": {"team": "platform", "env": "prod"},
                "sku": {"name": "Premium", "tier": "Premium"},
                "systemData": {"createdAt": "2024-03-01T10:00:00Z", "lastModifiedAt": "2025-01-02T03:04:05.5Z"},
                "properties": {"loginServer": "acmeprod.azurecr.io", "provisioningState": "Succeeded",
                               "adminUserEnabled": false, "publicNetworkAccess": "Enabled"}
            }),
        )
        .unwrap();
        assert_eq!(
            entity.urn,
            format!(
                "urn:connectors:azure:asset:/subscriptions/{SUB}/resourcegroups/platform-rg/providers/microsoft.containerregistry/registries/acmeprod"
            )
        );
        assert_eq!(entity.display_name, "acmeProd");
        assert_eq!(pairs(&entity.labels), [("env", "prod"), ("team", "platform")]);
        let a = asset(&entity);
        assert_eq!(a.asset_type, "azure.containerregistry.registry");
        assert_eq!(a.native_type, "Microsoft.ContainerRegistry/registries");
        assert_eq!((a.cloud_platform.as_str(), a.account.as_str()), ("azure", SUB));
        assert_eq!((a.region.as_str(), a.status.as_str()), ("westeurope", "Succeeded"));
        assert!(a.external_id.ends_with("/registries/acmeProd"));
        assert_eq!(
            pairs(&a.attributes),
            [
                ("azure.admin_user_enabled", "false"),
                ("azure.login_server", "acmeprod.azurecr.io"),
                ("azure.provisioning_state", "Succeeded"),
                ("azure.public_network_access", "Enabled"),
                ("azure.sku", "Premium"),
                ("azure.sku_tier", "Premium"),
            ]
        );
        assert_eq!(a.create_time.unwrap().seconds, 1_709_287_200);
        assert_eq!(version, "2025-01-02T03:04:05.5Z");
    }

    #[test]
    fn a_cluster_reports_power_state_node_pools_and_identity() {
        let (entity, _) = asset_entity(
            SUB,
            &json!({
                "id": "/subscriptions/x/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1",
                "name": "aks1",
                "type": "Microsoft.ContainerService/ManagedClusters",
                "location": "eastus",
                "identity": {"type": "SystemAssigned"},
                "properties": {
                    "provisioningState": "Succeeded",
                    "powerState": {"code": "Stopped"},
                    "kubernetesVersion": "1.29",
                    "currentKubernetesVersion": "1.29.2",
                    "agentPoolProfiles": [
                        {"name": "user", "count": 5, "vmSize": "Standard_D8s_v5", "mode": "User", "osType": "Linux", "currentOrchestratorVersion": "1.29.2"},
                        {"name": "system", "count": 3, "vmSize": "Standard_D4s_v5", "mode": "System", "osType": "Linux", "orchestratorVersion": "1.29.2"}
                    ]
                }
            }),
        )
        .unwrap();
        let a = asset(&entity);
        assert_eq!(a.asset_type, "azure.containerservice.managedcluster");
        assert_eq!(a.status, "Stopped");
        let attrs = pairs(&a.attributes);
        assert!(attrs.contains(&(
            "azure.node_pools",
            "system:3xStandard_D4s_v5:System:Linux:1.29.2,user:5xStandard_D8s_v5:User:Linux:1.29.2"
        )));
        assert!(attrs.contains(&("azure.identity_type", "SystemAssigned")));
        assert!(attrs.contains(&("azure.current_kubernetes_version", "1.29.2")));
        assert!(attrs.contains(&("azure.power_state", "Stopped")));
    }

    #[test]
    fn a_container_site_has_its_image_and_a_code_site_its_runtime() {
        let site = |fx: &str| {
            json!({
                "id": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/web1",
                "name": "web1", "type": "Microsoft.Web/sites", "kind": "app,linux,container",
                "location": "West Europe",
                "properties": {"state": "Running", "siteConfig": {"linuxFxVersion": fx}}
            })
        };
        let (entity, _) = asset_entity(SUB, &site("DOCKER|acmeprod.azurecr.io/web:1.4.2")).unwrap();
        let a = asset(&entity);
        assert_eq!(
            a.images,
            [ContainerImage {
                container: "web1".into(),
                image: "acmeprod.azurecr.io/web:1.4.2".into(),
                digest: String::new(),
            }]
        );
        assert_eq!(a.status, "Running");
        assert!(!pairs(&a.attributes).iter().any(|(k, _)| *k == "azure.runtime"));
        let (entity, _) = asset_entity(SUB, &site("PYTHON|3.12")).unwrap();
        let a = asset(&entity);
        assert!(a.images.is_empty());
        assert!(pairs(&a.attributes).contains(&("azure.runtime", "PYTHON|3.12")));
        assert!(asset_entity(SUB, &json!({"name": "no id"})).is_none());
    }

    #[test]
    fn a_site_listed_without_site_config_has_its_stack_from_site_properties() {
        // As ARM answers a list: siteConfig null, the stack in siteProperties.
        let site = json!({
            "id": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/web2",
            "name": "web2", "type": "Microsoft.Web/sites", "kind": "app,linux,container",
            "location": "West Europe",
            "properties": {
                "state": "Stopped",
                "siteConfig": null,
                "siteProperties": {
                    "metadata": null,
                    "properties": [
                        {"name": "LinuxFxVersion", "value": "DOCKER|acmeprod.azurecr.io/api:2.0.1"},
                        {"name": "WindowsFxVersion", "value": null}
                    ],
                    "appSettings": null
                }
            }
        });
        let (entity, _) = asset_entity(SUB, &site).unwrap();
        let a = asset(&entity);
        assert_eq!(
            a.images,
            [ContainerImage {
                container: "web2".into(),
                image: "acmeprod.azurecr.io/api:2.0.1".into(),
                digest: String::new(),
            }]
        );
        assert_eq!(a.status, "Stopped");
    }

    #[test]
    fn guids_are_canonical() {
        assert!(is_guid(SUB));
        assert!(is_guid("2F8A0E8C-5A7B-4F3E-9D1C-0A1B2C3D4E5F"));
        assert!(!is_guid("2f8a0e8c5a7b4f3e9d1c0a1b2c3d4e5f"));
        assert!(!is_guid("{2f8a0e8c-5a7b-4f3e-9d1c-0a1b2c3d4e5f}"));
        assert!(!is_guid("2f8a0e8c-5a7b-4f3e-9d1c-0a1b2c3d4e5g"));
        assert!(!is_guid(""));
    }

    #[test]
    fn listing_pages_are_recognised() {
        let l = LISTINGS[1];
        assert_eq!(
            l.first_page(SUB),
            format!("/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters?api-version=2024-02-01")
        );
        assert!(l.owns(SUB, &format!("/subscriptions/{SUB}/providers/microsoft.containerservice/managedclusters?api-version=2024-02-01&$skiptoken=abc")));
        assert!(!l.owns(
            SUB,
            &format!("/subscriptions/{SUB}/providers/Microsoft.Web/sites?api-version=2023-12-01")
        ));
        assert!(!l.owns("other", &l.first_page(SUB)));
        assert!(!l.owns(
            SUB,
            &format!("https://evil.example/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters?x")
        ));
    }
}
