//! Server configuration from the environment (see docs/Connectors.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The list in `$var`, a default scope, checked by [`default_scope`] as the
/// request field `$field` of a `$module` connector's `SyncRequest` is (by its
/// conversion into `providers::$module::$request`); unchecked when that
/// connector is compiled out.
macro_rules! default_scope_list {
    ($feature:literal, $var:literal, $module:ident :: $request:ident, $field:ident) => {{
        #[cfg(feature = $feature)]
        let values = {
            let mut request = connectors_proto::$module::v1::SyncRequest::default();
            request.$field = list(var($var));
            default_scope($var, crate::providers::$module::$request::try_from(&request))?.$field
        };
        #[cfg(not(feature = $feature))]
        let values = list(var($var));
        values
    }};
}

/// How connectors choose between live upstreams and fixtures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorsMode {
    /// Live where credentials are configured, fixtures elsewhere.
    Auto,
    /// Fixtures everywhere, even with credentials.
    Fixtures,
    /// Live only: a connector without credentials is unavailable.
    Live,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration error; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong.
    pub message: String,
}

/// GitHub settings from the environment.
#[derive(Clone, Default)]
pub struct GithubEnv {
    /// `GITHUB_API_URL`.
    pub api_url: Option<url::Url>,
    /// `GITHUB_TOKEN`.
    pub token: Option<String>,
    /// `GITHUB_APP_ID`.
    pub app_id: Option<u64>,
    /// `GITHUB_APP_PRIVATE_KEY` (PEM, or a path to a PEM file).
    pub app_private_key: Option<String>,
    /// `GITHUB_ORGS`.
    pub orgs: Vec<String>,
    /// `GITHUB_PAGE_SIZE`.
    pub page_size: Option<u8>,
    /// `GITHUB_CONCURRENCY`: upstream requests in flight (1 to 100, default 8).
    pub concurrency: Option<usize>,
    /// `GITHUB_BLOB_BATCH`: manifest blobs per GraphQL read (0 to 100,
    /// default 100; 0 reads each blob over REST).
    pub blob_batch: Option<usize>,
    /// `GITHUB_SBOM_REPORT_WAIT_SECS`: how long GitHub may take to generate a
    /// repository's SBOM report (at least 1, default 120).
    pub sbom_report_wait: Option<Duration>,
}

impl std::fmt::Debug for GithubEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubEnv")
            .field("api_url", &self.api_url.as_ref().map(|u| u.as_str()))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("app_id", &self.app_id)
            .field("app_private_key", &self.app_private_key.as_ref().map(|_| "<redacted>"))
            .field("orgs", &self.orgs)
            .field("page_size", &self.page_size)
            .field("concurrency", &self.concurrency)
            .field("blob_batch", &self.blob_batch)
            .field("sbom_report_wait", &self.sbom_report_wait)
            .finish()
    }
}

/// GCP settings from the environment. Holds no secret: credentials are read
/// by google-cloud-auth from the file `GOOGLE_APPLICATION_CREDENTIALS` names
/// or from the ADC sources.
#[derive(Debug, Clone, Default)]
pub struct GcpEnv {
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a service account key or an
    /// external account (workload identity federation) JSON file.
    pub credentials_file: Option<PathBuf>,
    /// `GCP_USE_ADC=true`: use application default credentials (gcloud ADC,
    /// the metadata server on GCE/GKE/Cloud Run) without a credentials file.
    pub use_adc: bool,
    /// `GCP_PROJECT_IDS`: projects synced when a request names none.
    pub project_ids: Vec<String>,
    /// `GCP_LOCATIONS`: regions listed for Artifact Registry and Cloud Run
    /// (GKE lists every location with `-`).
    pub locations: Vec<String>,
    /// `GCP_ARTIFACTREGISTRY_URL` (default `https://artifactregistry.googleapis.com`).
    pub artifactregistry_url: Option<url::Url>,
    /// `GCP_RUN_URL` (default `https://run.googleapis.com`).
    pub run_url: Option<url::Url>,
    /// `GCP_CONTAINER_URL` (default `https://container.googleapis.com`).
    pub container_url: Option<url::Url>,
    /// `GCP_PAGE_SIZE` (1 to 1000).
    pub page_size: Option<u32>,
}

impl GcpEnv {
    /// Reads `GCP_*` and `GOOGLE_APPLICATION_CREDENTIALS`.
    fn from_env() -> Result<Self, ConfigError> {
        let url_var = |name: &'static str| -> Result<Option<url::Url>, ConfigError> {
            var(name)
                .map(|raw| {
                    let url = url::Url::parse(&raw).map_err(|e| ConfigError {
                        var: name,
                        message: format!("not a url: {e}"),
                    })?;
                    if !matches!(url.scheme(), "https" | "http") || url.query().is_some() || url.fragment().is_some() {
                        return Err(ConfigError {
                            var: name,
                            message: "must be an http or https url without query or fragment".into(),
                        });
                    }
                    Ok(url)
                })
                .transpose()
        };
        let page_size: Option<u32> = parse("GCP_PAGE_SIZE")?;
        if page_size.is_some_and(|n| n == 0 || n > 1000) {
            return Err(ConfigError {
                var: "GCP_PAGE_SIZE",
                message: "must be 1 to 1000".into(),
            });
        }
        let project_ids = default_scope_list!("gcp", "GCP_PROJECT_IDS", gcp::GcpRequest, project_ids);
        Ok(Self {
            credentials_file: var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
            use_adc: parse::<bool>("GCP_USE_ADC")?.unwrap_or(false),
            project_ids,
            locations: list(var("GCP_LOCATIONS")),
            artifactregistry_url: url_var("GCP_ARTIFACTREGISTRY_URL")?,
            run_url: url_var("GCP_RUN_URL")?,
            container_url: url_var("GCP_CONTAINER_URL")?,
            page_size,
        })
    }
}

/// Azure settings from the environment.
#[derive(Clone, Default)]
pub struct AzureEnv {
    /// `AZURE_ARM_ENDPOINT`: Resource Manager (`https://management.azure.com` by
    /// default; `https://management.usgovcloudapi.net`, `https://management.chinacloudapi.cn`
    /// for sovereign clouds). Tokens are requested for `<endpoint>/.default`.
    pub arm_endpoint: Option<url::Url>,
    /// `AZURE_SUBSCRIPTION_IDS`: default subscriptions.
    pub subscription_ids: Vec<String>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `AZURE_CLIENT_ID` (app registration, workload identity, or user-assigned managed identity).
    pub client_id: Option<String>,
    /// `AZURE_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE` (workload identity).
    pub federated_token_file: Option<String>,
    /// `AZURE_CREDENTIAL`: `client_secret`, `workload_identity`,
    /// `managed_identity` or `azure_cli`; unset = detected from the variables above
    /// (and the managed identity variables of App Service and Container Apps).
    pub credential: Option<String>,
    /// The managed identity the host's variables announce.
    pub managed_identity_host: ManagedIdentityHost,
}

/// The managed identity a host announces with `IDENTITY_ENDPOINT`, told
/// apart the way azure_identity 1.0 does (`ManagedIdentityCredential::new`),
/// which serves only App Service (and Container Apps) and IMDS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ManagedIdentityHost {
    /// `IDENTITY_ENDPOINT` unset, or set alone: azure_identity asks IMDS (VMs,
    /// VM scale sets, AKS nodes).
    #[default]
    Imds,
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`: App Service, Container Apps.
    AppService,
    /// `IDENTITY_ENDPOINT` and `IMDS_ENDPOINT`: Azure Arc (not served by azure_identity).
    AzureArc,
    /// `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` and `IDENTITY_SERVER_THUMBPRINT`:
    /// Service Fabric (not served by azure_identity).
    ServiceFabric,
}

impl ManagedIdentityHost {
    /// From the variables azure_identity reads (set, even empty, counts).
    fn from_env() -> Self {
        let set = |name: &str| std::env::var(name).is_ok();
        match (
            set("IDENTITY_ENDPOINT"),
            set("IDENTITY_HEADER"),
            set("IDENTITY_SERVER_THUMBPRINT"),
            set("IMDS_ENDPOINT"),
        ) {
            (true, true, true, _) => Self::ServiceFabric,
            (true, true, false, _) => Self::AppService,
            (true, false, _, true) => Self::AzureArc,
            _ => Self::Imds,
        }
    }

    /// The host's name when `IDENTITY_ENDPOINT` announces a managed identity
    /// azure_identity cannot use.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            Self::AzureArc => Some("Azure Arc"),
            Self::ServiceFabric => Some("Service Fabric"),
            Self::Imds | Self::AppService => None,
        }
    }
}

impl std::fmt::Debug for AzureEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureEnv")
            .field("arm_endpoint", &self.arm_endpoint.as_ref().map(|u| u.as_str()))
            .field("subscription_ids", &self.subscription_ids)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("federated_token_file", &self.federated_token_file)
            .field("credential", &self.credential)
            .field("managed_identity_host", &self.managed_identity_host)
            .finish()
    }
}

impl AzureEnv {
    /// The credential kind to use, if any is configured.
    pub fn credential_kind(&self) -> Option<&'static str> {
        match self.credential.as_deref() {
            Some("client_secret") => Some("client_secret"),
            Some("workload_identity") => Some("workload_identity"),
            Some("managed_identity") => Some("managed_identity"),
            Some("azure_cli") => Some("azure_cli"),
            Some(_) => None,
            None if self.tenant_id.is_some() && self.client_id.is_some() && self.client_secret.is_some() => {
                Some("client_secret")
            }
            None if self.federated_token_file.is_some() => Some("workload_identity"),
            // Not Azure Arc or Service Fabric (IDENTITY_ENDPOINT too): azure_identity cannot use theirs.
            None if self.managed_identity_host == ManagedIdentityHost::AppService => Some("managed_identity"),
            None => None,
        }
    }

    /// Reads `AZURE_*`.
    fn from_env() -> Result<Self, ConfigError> {
        let arm_endpoint = match var("AZURE_ARM_ENDPOINT") {
            Some(raw) => {
                let url = url::Url::parse(&raw).map_err(|e| ConfigError {
                    var: "AZURE_ARM_ENDPOINT",
                    message: format!("not a url: {e}"),
                })?;
                if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError {
                        var: "AZURE_ARM_ENDPOINT",
                        message: "must be an https url without query or fragment".into(),
                    });
                }
                Some(url)
            }
            None => None,
        };
        let credential = var("AZURE_CREDENTIAL");
        if let Some(kind) = &credential
            && !matches!(
                kind.as_str(),
                "client_secret" | "workload_identity" | "managed_identity" | "azure_cli"
            )
        {
            return Err(ConfigError {
                var: "AZURE_CREDENTIAL",
                message: "must be client_secret, workload_identity, managed_identity or azure_cli".into(),
            });
        }
        // Lower-cased, as a request's are.
        let subscription_ids =
            default_scope_list!("azure", "AZURE_SUBSCRIPTION_IDS", azure::AzureRequest, subscription_ids);
        if credential.as_deref() == Some("client_secret")
            && [
                var("AZURE_TENANT_ID"),
                var("AZURE_CLIENT_ID"),
                var("AZURE_CLIENT_SECRET"),
            ]
            .iter()
            .any(Option::is_none)
        {
            return Err(ConfigError {
                var: "AZURE_CREDENTIAL",
                message: "client_secret needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".into(),
            });
        }
        Ok(Self {
            arm_endpoint,
            subscription_ids,
            tenant_id: var("AZURE_TENANT_ID"),
            client_id: var("AZURE_CLIENT_ID"),
            client_secret: var("AZURE_CLIENT_SECRET"),
            federated_token_file: var("AZURE_FEDERATED_TOKEN_FILE"),
            credential,
            managed_identity_host: ManagedIdentityHost::from_env(),
        })
    }
}

/// The role of an `AWS_ACCOUNTS` entry: its ARN, and the external id
/// (`sts:ExternalId`) its trust policy may require of whoever assumes it,
/// which `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsRole {
    /// The role's ARN.
    pub arn: String,
    /// `;externalId=<id>` of the entry: AssumeRole's `ExternalId`.
    pub external_id: Option<String>,
}

impl From<String> for AwsRole {
    /// A role assumed without an external id.
    fn from(arn: String) -> Self {
        Self { arn, external_id: None }
    }
}

impl std::fmt::Debug for AwsRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRole")
            .field("arn", &self.arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The characters AWS allows in an external id (`[\w+=,.@:/-]`), but the
/// comma, which separates `AWS_ACCOUNTS` entries.
fn external_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_+=.@:/-".contains(&b)
}

/// Parses `AWS_ACCOUNTS`: comma-separated `<12-digit id>=<role arn>` pairs,
/// each optionally followed by `;externalId=<id>` (2 to 1224 characters, as
/// STS allows). An error names the entry and quotes at most its pair, never
/// what follows the `;`.
pub fn aws_accounts(value: Option<String>) -> Result<Vec<(String, AwsRole)>, ConfigError> {
    let error = |entry: usize, message: String| ConfigError {
        var: "AWS_ACCOUNTS",
        message: format!("entry {}: {message}", entry + 1),
    };
    let mut accounts = Vec::new();
    for (i, entry) in list(value).iter().enumerate() {
        let (pair, option) = match entry.split_once(';') {
            Some((pair, option)) => (pair.trim(), Some(option.trim())),
            None => (entry.as_str(), None),
        };
        let Some((id, role)) = pair.split_once('=') else {
            return Err(error(i, format!("{pair:?} is not <account id>=<role arn>")));
        };
        let (id, role) = (id.trim(), role.trim());
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) || !role.starts_with("arn:aws") {
            return Err(error(
                i,
                format!("{pair:?} is not <12-digit account id>=arn:aws...:iam::<id>:role/<name>"),
            ));
        }
        let external_id = match option {
            None => None,
            Some(option) => {
                let Some(external_id) = option.strip_prefix("externalId=") else {
                    return Err(error(
                        i,
                        "what follows ';' must be externalId=<external id> (not shown)".into(),
                    ));
                };
                if !(2..=1224).contains(&external_id.len()) || !external_id.bytes().all(external_id_char) {
                    return Err(error(
                        i,
                        "the externalId must be 2 to 1224 characters of A-Z, a-z, 0-9 and _+=.@:/- \
                         (a comma separates entries; the value is not shown)"
                            .into(),
                    ));
                }
                Some(external_id.to_owned())
            }
        };
        accounts.push((
            id.to_owned(),
            AwsRole {
                arn: role.to_owned(),
                external_id,
            },
        ));
    }
    Ok(accounts)
}

/// AWS settings from the environment. Credentials are the SDK's default
/// chain (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, web identity, container or
/// instance roles); nothing secret is kept here.
#[derive(Clone, Default)]
pub struct AwsEnv {
    /// `AWS_ACCOUNTS`: `<12-digit id>=<role arn>[;externalId=<id>]` entries,
    /// comma separated; each account is synced through its role (assumed from
    /// the default chain, with the external id when one is given).
    pub accounts: Vec<(String, AwsRole)>,
    /// `AWS_REGIONS`: regions synced when a request names none (default
    /// `AWS_REGION`, then `us-east-1`).
    pub regions: Vec<String>,
    /// The default chain has something to work with (`AWS_ACCESS_KEY_ID`,
    /// `AWS_PROFILE`, `AWS_WEB_IDENTITY_TOKEN_FILE` or a container
    /// credentials URI is set), or `AWS_USE_DEFAULT_CHAIN=true` says to rely on
    /// it regardless (EC2 instance profiles, ECS-on-EC2 host roles and EKS
    /// node roles set no variable).
    pub credentials: bool,
    /// `AWS_ENDPOINT_URL`: every service at one endpoint (emulators, private endpoints).
    pub endpoint_url: Option<url::Url>,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`,
    /// when set: the static keys of the default chain, given explicitly.
    pub static_keys: Option<(String, String, Option<String>)>,
    /// `AWS_CONCURRENCY`: (account, region, service) scopes of one sync
    /// crawled at once (1 to 64, default 8).
    pub concurrency: Option<usize>,
    /// `AWS_ECR_PAGE_SIZE`: `maxResults` of ECR's DescribeRepositories and
    /// DescribeImages (1 to 1000, default 1000, the largest ECR serves).
    pub ecr_page_size: Option<i32>,
}

impl std::fmt::Debug for AwsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEnv")
            .field("accounts", &self.accounts)
            .field("regions", &self.regions)
            .field("credentials", &self.credentials)
            .field("concurrency", &self.concurrency)
            .field("ecr_page_size", &self.ecr_page_size)
            .field("endpoint_url", &self.endpoint_url.as_ref().map(|u| u.as_str()))
            .field(
                "static_keys",
                &self.static_keys.as_ref().map(|(id, _, _)| (id, "<redacted>")),
            )
            .finish()
    }
}

impl AwsEnv {
    fn from_env() -> Result<Self, ConfigError> {
        let accounts = aws_accounts(var("AWS_ACCOUNTS"))?;
        let mut regions = default_scope_list!("aws", "AWS_REGIONS", aws::AwsRequest, regions);
        if regions.is_empty() {
            regions = var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .into_iter()
                .collect();
        }
        let credentials = [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ]
        .into_iter()
        .any(|name| var(name).is_some())
            || parse::<bool>("AWS_USE_DEFAULT_CHAIN")?.unwrap_or(false);
        both_or_neither(
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "static keys need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )?;
        let concurrency: Option<usize> = parse("AWS_CONCURRENCY")?;
        if concurrency.is_some_and(|c| c == 0 || c > 64) {
            return Err(ConfigError {
                var: "AWS_CONCURRENCY",
                message: "must be 1 to 64".into(),
            });
        }
        let ecr_page_size: Option<i32> = parse("AWS_ECR_PAGE_SIZE")?;
        if ecr_page_size.is_some_and(|n| !(1..=1000).contains(&n)) {
            return Err(ConfigError {
                var: "AWS_ECR_PAGE_SIZE",
                message: "must be 1 to 1000".into(),
            });
        }
        Ok(Self {
            accounts,
            regions,
            credentials,
            concurrency,
            ecr_page_size,
            endpoint_url: http_url("AWS_ENDPOINT_URL")?,
            static_keys: match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => Some((id, secret, var("AWS_SESSION_TOKEN"))),
                _ => None,
            },
        })
    }
}

/// GitLab settings from the environment.
#[derive(Clone, Default)]
pub struct GitlabEnv {
    /// `GITLAB_BASE_URL` (the instance, without `/api/v4`).
    pub base_url: Option<url::Url>,
    /// `GITLAB_TOKEN` (personal, group or project access token).
    pub token: Option<String>,
    /// `GITLAB_GROUPS`.
    pub groups: Vec<String>,
    /// `GITLAB_PIPELINES_PER_PROJECT` (1 to 100).
    pub pipelines_per_project: Option<u32>,
}

impl std::fmt::Debug for GitlabEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabEnv")
            .field("base_url", &self.base_url.as_ref().map(|u| u.as_str()))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("groups", &self.groups)
            .field("pipelines_per_project", &self.pipelines_per_project)
            .finish()
    }
}

impl GitlabEnv {
    /// Reads `GITLAB_*`.
    fn from_env() -> Result<Self, ConfigError> {
        let base_url = match var("GITLAB_BASE_URL") {
            Some(raw) => {
                let url = url::Url::parse(&raw).map_err(|e| ConfigError {
                    var: "GITLAB_BASE_URL",
                    message: format!("not a url: {e}"),
                })?;
                if !matches!(url.scheme(), "https" | "http") || url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError {
                        var: "GITLAB_BASE_URL",
                        message: "must be an http or https url without query or fragment".into(),
                    });
                }
                Some(url)
            }
            None => None,
        };
        let pipelines_per_project: Option<u32> = parse("GITLAB_PIPELINES_PER_PROJECT")?;
        if pipelines_per_project.is_some_and(|n| n == 0 || n > 100) {
            return Err(ConfigError {
                var: "GITLAB_PIPELINES_PER_PROJECT",
                message: "must be 1 to 100".into(),
            });
        }
        let groups = default_scope_list!("gitlab", "GITLAB_GROUPS", gitlab::GitlabRequest, groups);
        Ok(Self {
            base_url,
            token: var("GITLAB_TOKEN"),
            groups,
            pipelines_per_project,
        })
    }
}

/// Kubernetes settings from the environment.
#[derive(Debug, Clone, Default)]
pub struct KubernetesEnv {
    /// `KUBECONFIG`: kubeconfig paths (separated like `PATH`), merged as kubectl does.
    pub kubeconfig: Option<String>,
    /// The in-cluster service account is present (`KUBERNETES_SERVICE_HOST`
    /// and the mounted token); used when `KUBECONFIG` is unset.
    pub in_cluster: bool,
    /// `KUBERNETES_CONTEXTS`: contexts synced when a request names none.
    pub contexts: Vec<String>,
    /// `KUBERNETES_PAGE_SIZE`: objects per list page (1 to 5000).
    pub page_size: Option<u32>,
    /// `KUBERNETES_CLUSTER_NAME`: the name of the in-cluster service
    /// account's cluster in urns, provenance and requests, instead of
    /// `in-cluster` (replicas in two clusters would emit the same urns).
    pub cluster_name: Option<String>,
}

/// `KUBERNETES_CLUSTER_NAME`, checked: it stands in urns
/// (`<cluster>/<namespace>/<kind>/<name>`), so 1 to 253 of A-Z, a-z, 0-9,
/// '.', '_' and '-', alphanumeric at both ends. Set but empty is an error,
/// not the default.
fn kubernetes_cluster_name(value: Option<std::ffi::OsString>) -> Result<Option<String>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let error = |message: String| ConfigError {
        var: "KUBERNETES_CLUSTER_NAME",
        message,
    };
    let value = value.into_string().map_err(|_| error("is not UTF-8".into()))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(error("is empty (unset it for the default name `in-cluster`)".into()));
    }
    let safe = value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric();
    if !safe {
        return Err(error(format!(
            "{:?} is not a cluster name for urns (1 to 253 characters of A-Z, a-z, 0-9, '.', '_' and '-', alphanumeric at both ends)",
            value.chars().take(80).collect::<String>()
        )));
    }
    Ok(Some(value.to_owned()))
}

/// Wiz settings from the environment.
#[derive(Clone, Default)]
pub struct WizEnv {
    /// `WIZ_API_URL` (the tenant's GraphQL endpoint, e.g. `https://api.us17.app.wiz.io/graphql`).
    pub api_url: Option<url::Url>,
    /// `WIZ_AUTH_URL` (the OAuth token endpoint, default `https://auth.app.wiz.io/oauth/token`).
    pub auth_url: Option<url::Url>,
    /// `WIZ_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `WIZ_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// `WIZ_TOKEN` (a ready bearer token, used when no client credentials are set).
    pub token: Option<String>,
    /// `WIZ_PAGE_SIZE` (resources per GraphQL page, 1 to 500).
    pub page_size: Option<u16>,
}

impl std::fmt::Debug for WizEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WizEnv")
            .field("api_url", &self.api_url.as_ref().map(|u| u.as_str()))
            .field("auth_url", &self.auth_url.as_ref().map(|u| u.as_str()))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("page_size", &self.page_size)
            .finish()
    }
}

fn http_url(name: &'static str) -> Result<Option<url::Url>, ConfigError> {
    let Some(raw) = var(name) else {
        return Ok(None);
    };
    let url = url::Url::parse(&raw).map_err(|e| ConfigError {
        var: name,
        message: format!("not a url: {e}"),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ConfigError {
            var: name,
            message: "must be an http or https url".into(),
        });
    }
    Ok(Some(url))
}

impl WizEnv {
    fn from_env() -> Result<Self, ConfigError> {
        let page_size: Option<u16> = parse("WIZ_PAGE_SIZE")?;
        if page_size.is_some_and(|p| p == 0 || p > 500) {
            return Err(ConfigError {
                var: "WIZ_PAGE_SIZE",
                message: "must be 1 to 500".into(),
            });
        }
        both_or_neither(
            "WIZ_CLIENT_ID",
            "WIZ_CLIENT_SECRET",
            "client credentials need both WIZ_CLIENT_ID and WIZ_CLIENT_SECRET",
        )?;
        Ok(Self {
            api_url: http_url("WIZ_API_URL")?,
            auth_url: http_url("WIZ_AUTH_URL")?,
            client_id: var("WIZ_CLIENT_ID"),
            client_secret: var("WIZ_CLIENT_SECRET"),
            token: var("WIZ_TOKEN"),
            page_size,
        })
    }
}

/// PEM files of the gRPC server's TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA whose client certificates are required (mTLS), if any.
    pub client_ca: Option<PathBuf>,
}

/// Everything the server reads at start-up. Its Debug output shows no
/// secret (the Redis URL's password is redacted).
#[derive(Clone)]
pub struct Config {
    /// `CONNECTORS_LISTEN`.
    pub listen: SocketAddr,
    /// `CONNECTORS_METRICS_LISTEN`; `None` disables the endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// `CONNECTORS_MODE`.
    pub mode: ConnectorsMode,
    /// `CONNECTORS_CREDENTIAL_CHECK_SECS`: how often live connectors'
    /// credentials are checked again after start-up (health); `None` (0):
    /// at start-up only.
    pub credential_check_interval: Option<std::time::Duration>,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `REDIS_CA_FILE`: PEM certificates a `rediss://` Redis's certificate is
    /// verified against instead of the system's roots (a private CA).
    pub redis_ca_file: Option<PathBuf>,
    /// `REDIS_CLIENT_CERT` and `REDIS_CLIENT_KEY` (PEM files): the client
    /// certificate a `rediss://` Redis that requires one is shown.
    pub redis_client_identity: Option<(PathBuf, PathBuf)>,
    /// `CONNECTORS_CACHE_MAX_BYTES` for the in-memory cache.
    pub memory_cache_bytes: u64,
    /// `CONNECTORS_COALESCE_LOG_MAX_BYTES`: a crawl's coalescing log stops
    /// there unless a follower has joined.
    pub coalesce_log_max_bytes: usize,
    /// `CONNECTORS_STATE_TTL_SECS`: how long scope state and kept checkpoints
    /// live in the cache.
    pub state_ttl: Duration,
    /// `CONNECTORS_STATE_GRACE_SECS`: how long a scope's state lives on once
    /// a sync from the checkpoint holding it has saved a newer one.
    pub superseded_state_ttl: Duration,
    /// `CONNECTORS_RESUME_TTL_SECS`: how long a sync that stopped before its
    /// scopes completed can be resumed.
    pub resume_ttl: Duration,
    /// `CONNECTORS_STATE_GENERATIONS`: how many of the newest saved states of
    /// each scope live the state TTL (older ones, the grace period).
    pub kept_generations: usize,
    /// `CONNECTORS_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `CONNECTORS_FIXTURES_DIR`.
    pub fixtures_dir: PathBuf,
    /// `CONNECTORS_DRAIN_TIMEOUT_SECS`.
    pub drain_timeout: Duration,
    /// `CONNECTORS_TLS_CERT` / `CONNECTORS_TLS_KEY` (PEM files): serve gRPC over TLS;
    /// with `CONNECTORS_TLS_CLIENT_CA`, require client certificates it signed (mTLS).
    pub tls: Option<TlsFiles>,
    /// `CONNECTORS_FIXTURE_LATENCY_MS`: latency the fixture replay servers add to every
    /// upstream request (demos, tests and benchmarks of latency-bound crawls).
    pub fixture_latency: Duration,
    /// `CONNECTORS_API_KEYS` (digests only), `CONNECTORS_AUTH_HEALTH`, `CONNECTORS_AUTH_REFLECTION`.
    pub api_keys: crate::grpc::auth::ApiKeys,
    /// `CONNECTORS_MAX_STREAMS`: open Sync streams on this server.
    pub max_streams: usize,
    /// `CONNECTORS_MAX_STREAMS_PER_CLIENT`: per API key (or, without keys,
    /// per identity header value, else per peer IP).
    pub max_streams_per_client: usize,
    /// `CONNECTORS_CLIENT_IDENTITY_HEADER`: a header a service mesh's proxy
    /// sets to the client's identity (`l5d-client-id`,
    /// `x-forwarded-client-cert`); clients without an API key are limited
    /// per its value instead of per peer IP (the proxy's, behind a mesh).
    pub client_identity_header: Option<http::HeaderName>,
    /// GitHub.
    pub github: GithubEnv,
    /// Wiz.
    pub wiz: WizEnv,
    /// Kubernetes.
    pub kubernetes: KubernetesEnv,
    /// GitLab.
    pub gitlab: GitlabEnv,
    /// GCP.
    pub gcp: GcpEnv,
    /// Azure.
    pub azure: AzureEnv,
    /// AWS.
    pub aws: AwsEnv,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("mode", &self.mode)
            .field("credential_check_interval", &self.credential_check_interval)
            .field("redis_url", &self.redis_url.as_deref().map(redact_redis_url))
            .field("redis_ca_file", &self.redis_ca_file)
            .field("redis_client_identity", &self.redis_client_identity)
            .field("memory_cache_bytes", &self.memory_cache_bytes)
            .field("coalesce_log_max_bytes", &self.coalesce_log_max_bytes)
            .field("state_ttl", &self.state_ttl)
            .field("superseded_state_ttl", &self.superseded_state_ttl)
            .field("resume_ttl", &self.resume_ttl)
            .field("kept_generations", &self.kept_generations)
            .field("log_format", &self.log_format)
            .field("fixtures_dir", &self.fixtures_dir)
            .field("drain_timeout", &self.drain_timeout)
            .field("tls", &self.tls)
            .field("fixture_latency", &self.fixture_latency)
            .field("api_keys", &self.api_keys)
            .field("max_streams", &self.max_streams)
            .field("max_streams_per_client", &self.max_streams_per_client)
            .field("github", &self.github)
            .field("wiz", &self.wiz)
            .field("kubernetes", &self.kubernetes)
            .field("gitlab", &self.gitlab)
            .field("gcp", &self.gcp)
            .field("azure", &self.azure)
            .field("aws", &self.aws)
            .finish()
    }
}

/// A Redis URL with its password (user info, or the `pass` query parameter
/// of a socket URL) replaced by `redacted`; anything else is not shown at
/// all (a password may be anywhere in it).
fn redact_redis_url(raw: &str) -> String {
    let url = url::Url::parse(raw).ok().filter(|url| {
        matches!(
            url.scheme(),
            "redis" | "rediss" | "valkey" | "valkeys" | "unix" | "redis+unix" | "valkey+unix"
        )
    });
    let Some(mut url) = url else {
        return "<not a redis url, not shown>".to_owned();
    };
    if url.password().is_some() {
        // Fails only for URLs that cannot have a password, and this one has.
        let _ = url.set_password(Some("redacted"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if matches!(key.as_ref(), "pass" | "password") {
                    "redacted".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parse<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|v| {
            v.parse::<T>().map_err(|e| ConfigError {
                var: name,
                message: format!("invalid value: {e}"),
            })
        })
        .transpose()
}

/// `a` and `b` are set together or not at all; the error names the one
/// missing (never a value).
fn both_or_neither(a: &'static str, b: &'static str, message: &str) -> Result<(), ConfigError> {
    match (var(a).is_some(), var(b).is_some()) {
        (true, false) => Err(ConfigError {
            var: b,
            message: message.into(),
        }),
        (false, true) => Err(ConfigError {
            var: a,
            message: message.into(),
        }),
        _ => Ok(()),
    }
}

/// A number of at least 1 from `name` (why 0 is refused: `why`).
fn positive(name: &'static str, why: &str) -> Result<Option<u64>, ConfigError> {
    match parse::<u64>(name)? {
        Some(0) => Err(ConfigError {
            var: name,
            message: format!("must be at least 1 ({why})"),
        }),
        n => Ok(n),
    }
}

/// A number of seconds of at least 1 from `name` (why 0 is refused: `why`).
fn positive_secs(name: &'static str, why: &str) -> Result<Option<Duration>, ConfigError> {
    Ok(positive(name, why)?.map(Duration::from_secs))
}

/// Splits a comma-separated list.
pub fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A default scope from `var` (what a request naming no scope gets), checked
/// by the validation of the request field it stands for (`checked`); the
/// error names `var` and, for a list, the entry.
fn default_scope<T>(var: &'static str, checked: Result<T, crate::sync::SyncError>) -> Result<T, ConfigError> {
    checked.map_err(|error| ConfigError {
        var,
        message: match error {
            crate::sync::SyncError::InvalidArgument { field, message } => {
                // `regions[1]` is the second entry of the list.
                let index = field
                    .strip_suffix(']')
                    .and_then(|f| f.rsplit_once('['))
                    .and_then(|(_, i)| i.parse::<usize>().ok());
                match index {
                    Some(i) => format!("entry {}: {message}", i + 1),
                    None => message,
                }
            }
            other => other.to_string(),
        },
    })
}

fn default_fixtures_dir() -> PathBuf {
    let cwd = PathBuf::from("fixtures");
    if cwd.is_dir() {
        return cwd;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

impl Config {
    /// Defaults suited to tests: loopback, ephemeral port, fixtures, no metrics endpoint.
    pub fn for_tests() -> Self {
        Self {
            listen: "127.0.0.1:0"
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
            metrics_listen: None,
            mode: ConnectorsMode::Fixtures,
            credential_check_interval: None,
            redis_url: None,
            redis_ca_file: None,
            redis_client_identity: None,
            memory_cache_bytes: 64 * 1024 * 1024,
            coalesce_log_max_bytes: crate::sync::EngineConfig::default().coalesce_log_max_bytes,
            state_ttl: crate::sync::EngineConfig::default().state_ttl,
            superseded_state_ttl: crate::sync::EngineConfig::default().superseded_state_ttl,
            resume_ttl: crate::sync::EngineConfig::default().resume_ttl,
            kept_generations: crate::sync::EngineConfig::default().kept_generations,
            log_format: LogFormat::Text,
            fixtures_dir: default_fixtures_dir(),
            drain_timeout: Duration::from_secs(5),
            fixture_latency: Duration::ZERO,
            tls: None,
            api_keys: crate::grpc::auth::ApiKeys::default(),
            max_streams: 256,
            max_streams_per_client: 64,
            client_identity_header: None,
            github: GithubEnv::default(),
            wiz: WizEnv::default(),
            kubernetes: KubernetesEnv::default(),
            gitlab: GitlabEnv::default(),
            gcp: GcpEnv::default(),
            azure: AzureEnv::default(),
            aws: AwsEnv::default(),
        }
    }

    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mode = match var("CONNECTORS_MODE").as_deref() {
            None | Some("auto") => ConnectorsMode::Auto,
            Some("fixtures") | Some("fixture") => ConnectorsMode::Fixtures,
            Some("live") => ConnectorsMode::Live,
            Some(other) => {
                return Err(ConfigError {
                    var: "CONNECTORS_MODE",
                    message: format!("expected auto, fixtures or live, got {other:?}"),
                });
            }
        };
        let log_format = match var("CONNECTORS_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "CONNECTORS_LOG_FORMAT",
                    message: format!("expected text or json, got {other:?}"),
                });
            }
        };
        let metrics_listen = match var("CONNECTORS_METRICS_LISTEN").as_deref() {
            Some("off") | Some("none") => None,
            _ => Some(parse("CONNECTORS_METRICS_LISTEN")?.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 9464)))),
        };
        let api_url = match var("GITHUB_API_URL") {
            Some(raw) => {
                let url = url::Url::parse(&raw).map_err(|e| ConfigError {
                    var: "GITHUB_API_URL",
                    message: format!("not a url: {e}"),
                })?;
                if !matches!(url.scheme(), "https" | "http") {
                    return Err(ConfigError {
                        var: "GITHUB_API_URL",
                        message: "must be an http or https url".into(),
                    });
                }
                Some(url)
            }
            None => None,
        };
        let github_orgs = list(var("GITHUB_ORGS"));
        for org in &github_orgs {
            // The same rule as a request's `orgs`: the login becomes a path segment.
            default_scope("GITHUB_ORGS", crate::grpc::validate::login("GITHUB_ORGS", org))?;
        }
        let page_size: Option<u8> = parse("GITHUB_PAGE_SIZE")?;
        if page_size.is_some_and(|p| p == 0 || p > 100) {
            return Err(ConfigError {
                var: "GITHUB_PAGE_SIZE",
                message: "must be 1 to 100".into(),
            });
        }
        let github_concurrency: Option<usize> = parse("GITHUB_CONCURRENCY")?;
        if github_concurrency.is_some_and(|c| c == 0 || c > 100) {
            return Err(ConfigError {
                var: "GITHUB_CONCURRENCY",
                message: "must be 1 to 100".into(),
            });
        }
        let blob_batch: Option<usize> = parse("GITHUB_BLOB_BATCH")?;
        if blob_batch.is_some_and(|b| b > 100) {
            return Err(ConfigError {
                var: "GITHUB_BLOB_BATCH",
                message: "must be 0 (REST reads) to 100".into(),
            });
        }
        both_or_neither(
            "GITHUB_APP_ID",
            "GITHUB_APP_PRIVATE_KEY",
            "a GitHub App needs both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY",
        )?;
        let app_private_key = match var("GITHUB_APP_PRIVATE_KEY") {
            Some(value) if !value.starts_with("-----BEGIN") => {
                Some(std::fs::read_to_string(&value).map_err(|e| ConfigError {
                    var: "GITHUB_APP_PRIVATE_KEY",
                    message: format!("neither a PEM key nor a readable file: {e}"),
                })?)
            }
            other => other,
        };
        let kube_page_size: Option<u32> = parse("KUBERNETES_PAGE_SIZE")?;
        if kube_page_size.is_some_and(|p| p == 0 || p > 5000) {
            return Err(ConfigError {
                var: "KUBERNETES_PAGE_SIZE",
                message: "must be 1 to 5000".into(),
            });
        }
        let redis_url = var("REDIS_URL");
        // The redis crate reads a `#insecure` fragment as "do not verify the
        // server's certificate", which this build cannot do: every connection
        // would fail and the service would run uncached. (The URL itself is
        // never quoted: it may hold a password.)
        if redis_url
            .as_deref()
            .and_then(|url| url::Url::parse(url).ok())
            .is_some_and(|url| url.fragment() == Some("insecure"))
        {
            return Err(ConfigError {
                var: "REDIS_URL",
                message: "the #insecure fragment (no certificate verification) is not supported; trust a private CA with REDIS_CA_FILE instead".into(),
            });
        }
        let redis_tls = redis_url.as_deref().is_some_and(|url| url.starts_with("rediss://"));
        let redis_ca_file = var("REDIS_CA_FILE").map(PathBuf::from);
        let redis_client_identity = match (var("REDIS_CLIENT_CERT"), var("REDIS_CLIENT_KEY")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            (cert, _) => {
                return Err(ConfigError {
                    var: if cert.is_some() {
                        "REDIS_CLIENT_CERT"
                    } else {
                        "REDIS_CLIENT_KEY"
                    },
                    message: "needs REDIS_CLIENT_CERT and REDIS_CLIENT_KEY both".into(),
                });
            }
        };
        for (set, name) in [
            (redis_ca_file.is_some(), "REDIS_CA_FILE"),
            (redis_client_identity.is_some(), "REDIS_CLIENT_CERT"),
        ] {
            if set && !redis_tls {
                return Err(ConfigError {
                    var: name,
                    message: "needs a REDIS_URL with the rediss:// scheme (Redis over TLS)".into(),
                });
            }
        }
        Ok(Self {
            listen: parse("CONNECTORS_LISTEN")?.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 50051))),
            metrics_listen,
            mode,
            credential_check_interval: match parse::<u64>("CONNECTORS_CREDENTIAL_CHECK_SECS")?.unwrap_or(300) {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            redis_url,
            redis_ca_file,
            redis_client_identity,
            memory_cache_bytes: positive(
                "CONNECTORS_CACHE_MAX_BYTES",
                "a cache of 0 bytes keeps nothing: no INCREMENTAL sync, no resume",
            )?
            .unwrap_or(256 * 1024 * 1024),
            coalesce_log_max_bytes: parse("CONNECTORS_COALESCE_LOG_MAX_BYTES")?
                .unwrap_or(crate::sync::EngineConfig::default().coalesce_log_max_bytes),
            state_ttl: positive_secs(
                "CONNECTORS_STATE_TTL_SECS",
                "INCREMENTAL syncs need the state the last sync saved",
            )?
            .unwrap_or(crate::sync::EngineConfig::default().state_ttl),
            resume_ttl: positive_secs(
                "CONNECTORS_RESUME_TTL_SECS",
                "a scope's partial state must outlive the scope's crawl",
            )?
            .unwrap_or(crate::sync::EngineConfig::default().resume_ttl),
            kept_generations: positive(
                "CONNECTORS_STATE_GENERATIONS",
                "the state the last sync saved is the one INCREMENTAL syncs need",
            )?
            .map_or(crate::sync::EngineConfig::default().kept_generations, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
            superseded_state_ttl: parse::<u64>("CONNECTORS_STATE_GRACE_SECS")?
                .map(Duration::from_secs)
                .unwrap_or(crate::sync::EngineConfig::default().superseded_state_ttl),
            log_format,
            fixtures_dir: var("CONNECTORS_FIXTURES_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_fixtures_dir),
            drain_timeout: Duration::from_secs(parse("CONNECTORS_DRAIN_TIMEOUT_SECS")?.unwrap_or(20)),
            fixture_latency: Duration::from_millis(parse("CONNECTORS_FIXTURE_LATENCY_MS")?.unwrap_or(0)),
            tls: match (var("CONNECTORS_TLS_CERT"), var("CONNECTORS_TLS_KEY")) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: PathBuf::from(cert),
                    key: PathBuf::from(key),
                    client_ca: var("CONNECTORS_TLS_CLIENT_CA").map(PathBuf::from),
                }),
                (None, None) if var("CONNECTORS_TLS_CLIENT_CA").is_some() => {
                    return Err(ConfigError {
                        var: "CONNECTORS_TLS_CLIENT_CA",
                        message: "needs CONNECTORS_TLS_CERT and CONNECTORS_TLS_KEY".into(),
                    });
                }
                (None, None) => None,
                (cert, _) => {
                    return Err(ConfigError {
                        var: if cert.is_some() {
                            "CONNECTORS_TLS_KEY"
                        } else {
                            "CONNECTORS_TLS_CERT"
                        },
                        message: "TLS needs both CONNECTORS_TLS_CERT and CONNECTORS_TLS_KEY".into(),
                    });
                }
            },
            api_keys: {
                // Not read with `var`: a value that is not UTF-8 must not read as unset (an open API).
                let value = match std::env::var("CONNECTORS_API_KEYS") {
                    Ok(value) => value,
                    Err(std::env::VarError::NotPresent) => String::new(),
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(ConfigError {
                            var: "CONNECTORS_API_KEYS",
                            message: "not valid UTF-8".into(),
                        });
                    }
                };
                let mut keys = crate::grpc::auth::ApiKeys::parse(&value).map_err(|e| ConfigError {
                    var: "CONNECTORS_API_KEYS",
                    message: e.to_string(),
                })?;
                keys.protect_health = parse::<bool>("CONNECTORS_AUTH_HEALTH")?.unwrap_or(false);
                keys.protect_reflection = parse::<bool>("CONNECTORS_AUTH_REFLECTION")?.unwrap_or(false);
                keys
            },
            max_streams: positive("CONNECTORS_MAX_STREAMS", "0 would refuse every sync")?
                .map_or(256, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_streams_per_client: positive("CONNECTORS_MAX_STREAMS_PER_CLIENT", "0 would refuse every sync")?
                .map_or(32, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            client_identity_header: var("CONNECTORS_CLIENT_IDENTITY_HEADER")
                .map(|name| {
                    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConfigError {
                        var: "CONNECTORS_CLIENT_IDENTITY_HEADER",
                        message: format!("{name:?} is not an HTTP header name"),
                    })
                })
                .transpose()?,
            github: GithubEnv {
                api_url,
                token: var("GITHUB_TOKEN"),
                app_id: parse("GITHUB_APP_ID")?,
                app_private_key,
                orgs: github_orgs,
                page_size,
                concurrency: github_concurrency,
                blob_batch,
                sbom_report_wait: positive_secs(
                    "GITHUB_SBOM_REPORT_WAIT_SECS",
                    "GitHub needs some time to generate a report",
                )?,
            },
            gitlab: GitlabEnv::from_env()?,
            azure: AzureEnv::from_env()?,
            kubernetes: KubernetesEnv {
                kubeconfig: var("KUBECONFIG"),
                in_cluster: var("KUBERNETES_SERVICE_HOST").is_some()
                    && std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists(),
                contexts: list(var("KUBERNETES_CONTEXTS")),
                page_size: kube_page_size,
                cluster_name: kubernetes_cluster_name(std::env::var_os("KUBERNETES_CLUSTER_NAME"))?,
            },
            wiz: WizEnv::from_env()?,
            gcp: GcpEnv::from_env()?,
            aws: AwsEnv::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `AWS_ACCOUNTS` entries with and without `;externalId=`, and what
    /// `Debug` shows of them: never the external id.
    #[test]
    fn aws_accounts_take_an_optional_external_id_that_debug_never_shows() {
        let accounts = aws_accounts(Some(
            "111111111111=arn:aws:iam::111111111111:role/inventory ; externalId=Ext+id=1.a@b:c/d-e_f, \
             222222222222=arn:aws:iam::222222222222:role/inventory"
                .into(),
        ))
        .unwrap();
        assert_eq!(
            accounts,
            [
                (
                    "111111111111".to_owned(),
                    AwsRole {
                        arn: "arn:aws:iam::111111111111:role/inventory".into(),
                        external_id: Some("Ext+id=1.a@b:c/d-e_f".into()),
                    }
                ),
                (
                    "222222222222".to_owned(),
                    "arn:aws:iam::222222222222:role/inventory".to_owned().into()
                ),
            ]
        );
        let env = AwsEnv {
            accounts,
            ..AwsEnv::default()
        };
        let debug = format!("{env:?}");
        assert!(!debug.contains("Ext+id"), "{debug}");
        assert!(
            debug.contains(
                r#"("111111111111", AwsRole { arn: "arn:aws:iam::111111111111:role/inventory", external_id: Some("<redacted>") })"#
            ),
            "{debug}"
        );
        let refused = |value: &str| aws_accounts(Some(value.into())).unwrap_err().to_string();
        let role = "111111111111=arn:aws:iam::111111111111:role/inventory";
        for value in [
            format!("{role};externalId="),
            format!("{role};externalId=s3cret-{}", "x".repeat(1224)),
            format!("{role};externalId=s3cret\u{e9}"),
            format!("{role};externalId=s3cret;again"),
        ] {
            let error = refused(&value);
            assert_eq!(
                error,
                "AWS_ACCOUNTS: entry 1: the externalId must be 2 to 1224 characters of A-Z, a-z, 0-9 and _+=.@:/- \
                 (a comma separates entries; the value is not shown)",
                "{value}"
            );
        }
        assert_eq!(
            refused(&format!("{role};s3cret")),
            "AWS_ACCOUNTS: entry 1: what follows ';' must be externalId=<external id> (not shown)"
        );
    }

    #[test]
    fn a_kubernetes_cluster_name_must_be_safe_in_urns() {
        let name = |v: &str| kubernetes_cluster_name(Some(v.into())).map_err(|e| e.message);
        assert_eq!(kubernetes_cluster_name(None).map_err(|e| e.message), Ok(None));
        assert_eq!(name(" prod-eu-1 "), Ok(Some("prod-eu-1".into())));
        assert_eq!(name("gke_acme.europe-west1"), Ok(Some("gke_acme.europe-west1".into())));
        assert_eq!(
            name("  "),
            Err("is empty (unset it for the default name `in-cluster`)".into())
        );
        for bad in ["prod/eu", "prod:eu", "-prod", "prod.", "prod eu", &"a".repeat(254)] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    /// The password of a Redis URL (user info, or `?pass=` of a socket URL)
    /// never appears in the formatted configuration.
    #[test]
    fn debug_output_redacts_the_redis_password() {
        let mut config = Config::for_tests();
        config.redis_url = Some("rediss://inventory:s3cret-Redis-pw@redis.internal:6380/2".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-Redis-pw"), "{debug}");
        assert!(
            debug.contains(r#"redis_url: Some("rediss://inventory:redacted@redis.internal:6380/2")"#),
            "{debug}"
        );
        config.redis_url = Some("redis+unix:///run/redis.sock?db=1&pass=s3cret-Redis-pw".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-Redis-pw"), "{debug}");
        assert!(
            debug.contains(r#"redis_url: Some("redis+unix:///run/redis.sock?db=1&pass=redacted")"#),
            "{debug}"
        );
        config.redis_url = Some("inventory:s3cret-Redis-pw@redis.internal".into());
        let debug = format!("{config:?}");
        assert!(
            debug.contains(r#"redis_url: Some("<not a redis url, not shown>")"#),
            "{debug}"
        );
    }
}
