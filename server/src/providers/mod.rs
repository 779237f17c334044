//! The explicit connector registry: each provider is registered at start-up
//! from configuration, live with credentials or on its fixtures without them.
//! A provider compiled out (cargo feature off) is listed as unavailable.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "github")]
pub mod github;
#[cfg(feature = "gitlab")]
pub mod gitlab;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "wiz")]
pub mod wiz;

use std::collections::BTreeMap;
#[cfg(any_connector)]
use std::path::Path;
#[cfg(any_connector)]
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::SharedCache;
use crate::config::{Config, ConnectorsMode};
use crate::replay::ReplayServer;
#[cfg(any_connector)]
use crate::replay::github_graphql::FixtureGraphql;
#[cfg(any_connector)]
use crate::replay::{FixtureSet, ReplayOptions};
use crate::sync::{Availability, Descriptor};

/// A registered connector as the registry and health see it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Connector id.
    pub id: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// The descriptor, when compiled in.
    pub descriptor: Option<&'static Descriptor>,
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// gRPC service name.
    pub service: &'static str,
}

/// Every connector of this server.
#[derive(Debug, Default)]
pub struct Registry {
    /// Entries sorted by id.
    pub entries: Vec<Entry>,
    /// The GCP connector, when available.
    #[cfg(feature = "gcp")]
    pub gcp: Option<Arc<gcp::GcpConnector>>,
    /// The Azure connector, when available.
    #[cfg(feature = "azure")]
    pub azure: Option<Arc<azure::AzureConnector>>,
    /// The AWS connector, when available.
    #[cfg(feature = "aws")]
    pub aws: Option<Arc<aws::AwsConnector>>,
    /// The GitHub connector, when available.
    #[cfg(feature = "github")]
    pub github: Option<Arc<github::GithubConnector>>,
    /// The GitLab connector, when available.
    #[cfg(feature = "gitlab")]
    pub gitlab: Option<Arc<gitlab::GitlabConnector>>,
    /// The Kubernetes connector, when available.
    #[cfg(feature = "kubernetes")]
    pub kubernetes: Option<Arc<kubernetes::KubernetesConnector>>,
    /// The Wiz connector, when available.
    #[cfg(feature = "wiz")]
    pub wiz: Option<Arc<wiz::WizConnector>>,
    /// Replay servers of connectors in fixture mode, by connector id.
    pub replay: BTreeMap<&'static str, ReplayServer>,
}

/// Fixture-mode settings from `fixtures/<provider>/config.json`.
#[derive(Debug, Default, Deserialize)]
pub struct FixtureConfig {
    /// The default scope in fixture mode.
    #[serde(default)]
    pub default_orgs: Vec<String>,
    /// Page size the fixtures were recorded with.
    #[serde(default)]
    pub page_size: Option<u8>,
    /// The default scope in fixture mode, for connectors scoped by groups (GitLab).
    #[serde(default)]
    pub default_groups: Vec<String>,
    /// Pipelines per project the fixtures were recorded with (GitLab).
    #[serde(default)]
    pub pipelines_per_project: Option<u32>,
    /// The default scope in fixture mode (Kubernetes contexts).
    #[serde(default)]
    pub default_contexts: Vec<String>,
    /// The default scope in fixture mode (GCP projects).
    #[serde(default)]
    pub default_projects: Vec<String>,
    /// Locations the fixtures were recorded with (GCP).
    #[serde(default)]
    pub locations: Vec<String>,
    /// The default scope in fixture mode (Azure subscription ids).
    #[serde(default)]
    pub default_subscriptions: Vec<String>,
    /// The regions of the fixtures (AWS).
    #[serde(default)]
    pub default_regions: Vec<String>,
}

/// Errors building the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Fixtures could not be loaded.
    #[error("fixtures of {provider}: {message}")]
    Fixtures {
        /// Provider.
        provider: &'static str,
        /// Cause.
        message: String,
    },
    /// A connector could not be built from its configuration.
    #[error("{provider}: {message}")]
    Connector {
        /// Provider.
        provider: &'static str,
        /// Cause.
        message: String,
    },
}

/// Latency injected by the replay servers of fixture mode (`CONNECTORS_FIXTURE_LATENCY_MS`).
#[cfg(any_connector)]
fn fixture_options(config: &Config) -> ReplayOptions {
    ReplayOptions {
        latency: config.fixture_latency,
        ..Default::default()
    }
}

#[cfg(any_connector)]
async fn start_replay(
    dir: &Path,
    provider: &'static str,
    options: ReplayOptions,
) -> Result<(ReplayServer, FixtureConfig), RegistryError> {
    let fixtures = FixtureSet::load_provider(dir, provider).map_err(|e| RegistryError::Fixtures {
        provider,
        message: e.to_string(),
    })?;
    let config_path = dir.join(provider).join("config.json");
    let fixture_config = match std::fs::read_to_string(&config_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| RegistryError::Fixtures {
            provider,
            message: format!("{}: {e}", config_path.display()),
        })?,
        Err(_) => FixtureConfig::default(),
    };
    // GitHub's GraphQL reads of the recorded git blobs (the connector batches them).
    let server = match provider {
        "github" => ReplayServer::start_synthetic(fixtures, FixtureGraphql::shared(), options).await,
        _ => ReplayServer::start(fixtures, options).await,
    }
    .map_err(|e| RegistryError::Fixtures {
        provider,
        message: format!("starting the replay server: {e}"),
    })?;
    tracing::info!(provider, url = server.base_url(), "replay server serving fixtures");
    Ok((server, fixture_config))
}

impl Entry {
    /// A connector this build does not include (its cargo feature is off).
    #[allow(dead_code)] // unused when every connector feature is on
    fn compiled_out(id: &'static str, display_name: &'static str, service: &'static str) -> Self {
        Self {
            id,
            display_name,
            descriptor: None,
            availability: Availability::Unavailable {
                reason: format!("compiled without the {id} feature"),
            },
            service,
        }
    }

    /// A built connector.
    #[allow(dead_code)] // unused when every connector feature is off
    fn of(connector: &impl crate::sync::Connector, availability: Availability) -> Self {
        let descriptor = connector.descriptor();
        Self {
            id: descriptor.id,
            display_name: descriptor.display_name,
            descriptor: Some(descriptor),
            availability,
            service: descriptor.service,
        }
    }
}

/// Why a connector runs on its fixtures: forced by `CONNECTORS_MODE`, or no
/// credentials (`needs` says which to set).
#[allow(dead_code)] // unused when every connector feature is off
fn fixture_reason(mode: ConnectorsMode, provider: &str, needs: &str) -> String {
    if mode == ConnectorsMode::Fixtures {
        "CONNECTORS_MODE=fixtures (unset it and configure credentials to sync live)".to_owned()
    } else {
        format!("no {provider} credentials configured ({needs}, to sync live)")
    }
}

/// An RFC 3339 time (as most upstream JSON carries it) as a protobuf timestamp.
#[allow(dead_code)] // unused when every connector feature is off
pub(crate) fn rfc3339_timestamp(value: Option<&str>) -> Option<pbjson_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(value?).ok()?;
    Some(pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

/// Upstream settings against the loopback replay server: fail fast.
#[allow(dead_code)] // unused when every connector feature is off
fn fail_fast(upstream: &mut crate::http::UpstreamConfig) {
    upstream.request_timeout = std::time::Duration::from_secs(5);
    upstream.base_backoff = std::time::Duration::from_millis(20);
    upstream.max_backoff = std::time::Duration::from_millis(200);
}

impl Registry {
    /// Builds every connector from configuration.
    pub async fn build(config: &Config, cache: SharedCache) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        registry.register_github(config, cache.clone()).await?;
        registry.register_gitlab(config, cache.clone()).await?;
        registry.register_kubernetes(config, cache.clone()).await?;
        registry.register_wiz(config, cache.clone()).await?;
        registry.register_gcp(config, cache.clone()).await?;
        registry.register_azure(config, cache.clone()).await?;
        registry.register_aws(config, cache.clone()).await?;
        registry.entries.sort_by_key(|e| e.id);
        Ok(registry)
    }

    /// The entry of a connector.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    #[cfg(not(feature = "github"))]
    async fn register_github(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "github",
            "GitHub",
            "connectors.github.v1.GithubConnectorService",
        ));
        Ok(())
    }

    #[cfg(not(feature = "gcp"))]
    async fn register_gcp(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "gcp",
            "Google Cloud",
            "connectors.gcp.v1.GcpConnectorService",
        ));
        Ok(())
    }

    #[cfg(feature = "gcp")]
    async fn register_gcp(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use crate::http::{UpstreamClient, UpstreamConfig};

        let env = &config.gcp;
        let needs = "set GOOGLE_APPLICATION_CREDENTIALS (a service account key or workload identity federation file) or GCP_USE_ADC=true, and GCP_PROJECT_IDS";
        let has_credentials = env.credentials_file.is_some() || env.use_adc;
        let locations = if env.locations.is_empty() {
            vec!["us-central1".to_owned()]
        } else {
            env.locations.clone()
        };
        let page_size = env.page_size.unwrap_or(100);
        let error = |message: String| RegistryError::Connector {
            provider: "gcp",
            message,
        };
        let (availability, tokens, credential_id, roots, settings_scope) = match (config.mode, has_credentials) {
            (ConnectorsMode::Live | ConnectorsMode::Auto, true) => {
                let (tokens, kind, identity) = gcp_credentials(env).map_err(error)?;
                let url = |configured: &Option<url::Url>, default: &str| {
                    configured
                        .clone()
                        .unwrap_or_else(|| url::Url::parse(default).expect("static url"))
                };
                (
                    Availability::Live {
                        auth_mode: kind.to_owned(),
                    },
                    tokens,
                    Some(format!("gcp-{kind}:{identity}")),
                    [
                        url(&env.artifactregistry_url, "https://artifactregistry.googleapis.com"),
                        url(&env.run_url, "https://run.googleapis.com"),
                        url(&env.container_url, "https://container.googleapis.com"),
                    ],
                    (env.project_ids.clone(), locations, page_size),
                )
            }
            (ConnectorsMode::Live, false) => {
                let nowhere = url::Url::parse("http://127.0.0.1:9").expect("static url");
                (
                    Availability::Unavailable {
                        reason: format!("CONNECTORS_MODE=live and no GCP credentials: {needs}"),
                    },
                    gcp::client::TokenSource::None,
                    None,
                    [nowhere.clone(), nowhere.clone(), nowhere],
                    (Vec::new(), locations, page_size),
                )
            }
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "gcp", fixture_options(config)).await?;
                // One replay server; each API under its host name as a path prefix.
                let base = server.base_url().trim_end_matches('/').to_owned();
                self.replay.insert("gcp", server);
                let at = |host: &str| {
                    url::Url::parse(&format!("{base}/{host}")).map_err(|e| RegistryError::Fixtures {
                        provider: "gcp",
                        message: e.to_string(),
                    })
                };
                (
                    Availability::Fixture {
                        reason: fixture_reason(mode, "GCP", needs),
                    },
                    gcp::client::TokenSource::None,
                    None,
                    [at(gcp::ARTIFACT_REGISTRY)?, at(gcp::RUN)?, at(gcp::CONTAINER)?],
                    (
                        fixture_config.default_projects,
                        fixture_config.locations,
                        u32::from(fixture_config.page_size.unwrap_or(100)),
                    ),
                )
            }
        };
        let fixture = matches!(availability, Availability::Fixture { .. });
        let [ar_url, run_url, container_url] = roots;
        let api = |host: &'static str, root: url::Url| -> Result<gcp::client::GcpApi, RegistryError> {
            let mut upstream = UpstreamConfig::new(gcp::ID, root);
            // Each Google API has quotas of its own.
            upstream.budget = crate::http::Budget::Named(host);
            // Tokens rotate hourly: key cache entries on the credential's identity.
            upstream.credential_id = credential_id.clone();
            // Google's list calls send no ETags: nothing to revalidate.
            upstream.conditional_requests = false;
            if fixture {
                fail_fast(&mut upstream);
            }
            let upstream = UpstreamClient::new(upstream, cache.clone()).map_err(|e| RegistryError::Connector {
                provider: "gcp",
                message: e.to_string(),
            })?;
            Ok(gcp::client::GcpApi::new(host, Arc::new(upstream), tokens.clone()))
        };
        let apis = gcp::GcpApis {
            artifact_registry: api(gcp::ARTIFACT_REGISTRY, ar_url)?,
            run: api(gcp::RUN, run_url)?,
            container: api(gcp::CONTAINER, container_url)?,
        };
        let (default_projects, locations, page_size) = settings_scope;
        let settings = gcp::GcpSettings {
            availability: availability.clone(),
            default_projects,
            locations,
            page_size: page_size.clamp(1, 1000),
        };
        let connector = gcp::GcpConnector::new(settings, apis, tokens);
        self.entries.push(Entry::of(&connector, availability));
        self.gcp = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(not(feature = "azure"))]
    async fn register_azure(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "azure",
            "Azure",
            "connectors.azure.v1.AzureConnectorService",
        ));
        Ok(())
    }

    #[cfg(feature = "azure")]
    async fn register_azure(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use crate::http::{UpstreamClient, UpstreamConfig};

        let env = &config.azure;
        let error = |message: String| RegistryError::Connector {
            provider: "azure",
            message,
        };
        let needs = "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or AZURE_FEDERATED_TOKEN_FILE (workload identity), or AZURE_CREDENTIAL=managed_identity|azure_cli; and AZURE_SUBSCRIPTION_IDS";
        // Why IDENTITY_ENDPOINT did not make the connector live, if it is set.
        let not_detected = env
            .managed_identity_host
            .unsupported()
            .map(|host| {
                format!("; IDENTITY_ENDPOINT is set, but azure_identity cannot use this host's {host} managed identity")
            })
            .unwrap_or_default();
        let arm = env
            .arm_endpoint
            .clone()
            .unwrap_or_else(|| url::Url::parse("https://management.azure.com").expect("static url"));
        let nowhere = || url::Url::parse("http://127.0.0.1:9").expect("static url");
        let (availability, credential, base, default_subscriptions) = match (config.mode, env.credential_kind()) {
            // A credential that cannot be built (azure_identity refuses this
            // host's managed identity, ...) leaves this connector unavailable,
            // not the server down.
            (ConnectorsMode::Live | ConnectorsMode::Auto, Some(kind)) => match azure_credential(env, kind) {
                Ok(credential) => (
                    Availability::Live {
                        auth_mode: kind.to_owned(),
                    },
                    Some(credential),
                    arm,
                    env.subscription_ids.clone(),
                ),
                Err(cause) => {
                    tracing::error!(connector = "azure", credential = kind, %cause, "credential cannot be built");
                    (
                        Availability::Unavailable {
                            reason: format!("the {kind} credential cannot be built: {cause}"),
                        },
                        None,
                        nowhere(),
                        Vec::new(),
                    )
                }
            },
            (ConnectorsMode::Live, None) => (
                Availability::Unavailable {
                    reason: format!("CONNECTORS_MODE=live and no Azure credentials: {needs}{not_detected}"),
                },
                None,
                nowhere(),
                Vec::new(),
            ),
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "azure", fixture_options(config)).await?;
                let base = url::Url::parse(server.base_url()).map_err(|e| RegistryError::Fixtures {
                    provider: "azure",
                    message: e.to_string(),
                })?;
                self.replay.insert("azure", server);
                let reason = match mode {
                    ConnectorsMode::Fixtures => fixture_reason(mode, "Azure", needs),
                    _ => format!("{}{not_detected}", fixture_reason(mode, "Azure", needs)),
                };
                (
                    Availability::Fixture { reason },
                    None,
                    base,
                    fixture_config.default_subscriptions,
                )
            }
        };
        let mut upstream = UpstreamConfig::new(azure::ID, base);
        // ARM throttles each subscription apart: one subscription's 429 must
        // not hold back the others.
        upstream.budget = crate::http::Budget::PerSegmentAfter("subscriptions");
        // The bearer token rotates: key conditional-request entries and the
        // shared rate-limit budget on the identity instead.
        if credential.is_some() {
            upstream.credential_id = Some(format!(
                "azure:{}:{}:{}",
                env.credential_kind().unwrap_or_default(),
                env.tenant_id.as_deref().unwrap_or_default(),
                env.client_id.as_deref().unwrap_or_default()
            ));
        }
        if matches!(availability, Availability::Fixture { .. }) {
            fail_fast(&mut upstream);
        }
        let upstream = Arc::new(UpstreamClient::new(upstream, cache).map_err(|e| error(e.to_string()))?);
        let settings = azure::AzureSettings {
            availability: availability.clone(),
            default_subscriptions,
        };
        let connector = azure::AzureConnector::new(settings, upstream, credential);
        self.entries.push(Entry::of(&connector, availability));
        self.azure = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(feature = "github")]
    async fn register_github(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use crate::http::{UpstreamClient, UpstreamConfig};
        use github::client::GithubAuth;

        let env = &config.github;
        let auth = match (&env.token, env.app_id, &env.app_private_key) {
            (_, Some(app_id), Some(key)) => Some(GithubAuth::App {
                app_id,
                private_key_pem: key.clone(),
            }),
            (Some(token), _, _) => Some(GithubAuth::Token(token.clone())),
            _ => None,
        };
        let needs = "set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY";
        let (availability, auth, base_url, default_orgs, page_size) = match (config.mode, auth) {
            (ConnectorsMode::Live | ConnectorsMode::Auto, Some(auth)) => {
                let base = env
                    .api_url
                    .clone()
                    .unwrap_or_else(|| url::Url::parse("https://api.github.com").expect("static url"));
                (
                    Availability::Live {
                        auth_mode: auth.mode().to_owned(),
                    },
                    auth,
                    base,
                    env.orgs.clone(),
                    env.page_size.unwrap_or(100),
                )
            }
            (ConnectorsMode::Live, None) => (
                Availability::Unavailable {
                    reason: format!("CONNECTORS_MODE=live and no GitHub credentials: {needs}"),
                },
                GithubAuth::None,
                url::Url::parse("http://127.0.0.1:9").expect("static url"),
                Vec::new(),
                100,
            ),
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "github", fixture_options(config)).await?;
                let base = url::Url::parse(server.base_url()).map_err(|e| RegistryError::Fixtures {
                    provider: "github",
                    message: e.to_string(),
                })?;
                self.replay.insert("github", server);
                (
                    Availability::Fixture {
                        reason: fixture_reason(mode, "GitHub", needs),
                    },
                    GithubAuth::None,
                    base,
                    fixture_config.default_orgs,
                    fixture_config.page_size.unwrap_or(100),
                )
            }
        };
        // GitHub.com's API serves GraphQL at /graphql. A GitHub Enterprise
        // Server base (https://ghe.example.com/api/v3) has it at /api/graphql,
        // outside the REST base: the connector asks for /graphql either way.
        let graphql_path = match base_url.path().trim_end_matches('/') {
            "" => None,
            rest => Some(format!("{}/graphql", rest.strip_suffix("/v3").unwrap_or(rest))),
        };
        let blob_batch = env.blob_batch.unwrap_or(github::DEFAULT_BLOB_BATCH);
        let mut upstream = UpstreamConfig::new(github::ID, base_url);
        upstream
            .rerooted_paths
            .extend(graphql_path.map(|path| ("/graphql", path)));
        // GitHub's GraphQL points and SBOM requests are budgets apart from
        // its REST requests.
        upstream.separate_budget = github::separate_budget;
        // A secondary rate limit may come as a bare 403 that only says so.
        upstream.rate_limit_message = Some("rate limit");
        if let Some(concurrency) = env.concurrency {
            upstream.concurrency = concurrency;
        }
        let concurrency = upstream.concurrency;
        if let GithubAuth::App { app_id, .. } = &auth {
            upstream.credential_id = Some(format!("github-app:{app_id}"));
        }
        let fixture = matches!(availability, Availability::Fixture { .. });
        if fixture {
            fail_fast(&mut upstream);
        }
        // GitHub Enterprise Server releases without the asynchronous SBOM
        // reports still have the export github.com closed.
        let legacy_sbom_export = base_url_is_enterprise(&upstream.base_url);
        let upstream = Arc::new(
            UpstreamClient::new(upstream, cache).map_err(|e| RegistryError::Connector {
                provider: "github",
                message: e.to_string(),
            })?,
        );
        let settings = github::GithubSettings {
            availability: availability.clone(),
            auth,
            default_orgs,
            page_size,
            repo_concurrency: concurrency,
            blob_batch,
            sbom_reports: {
                let wait = if fixture {
                    github::SbomReportWait::FIXTURE
                } else {
                    github::SbomReportWait::LIVE
                };
                github::SbomReportWait {
                    at_most: env.sbom_report_wait.unwrap_or(wait.at_most),
                    ..wait
                }
            },
            legacy_sbom_export,
        };
        let connector = github::GithubConnector::new(settings, upstream).map_err(|e| RegistryError::Connector {
            provider: "github",
            message: e.to_string(),
        })?;
        self.entries.push(Entry::of(&connector, availability));
        self.github = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(not(feature = "gitlab"))]
    async fn register_gitlab(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "gitlab",
            "GitLab",
            "connectors.gitlab.v1.GitlabConnectorService",
        ));
        Ok(())
    }

    #[cfg(feature = "gitlab")]
    async fn register_gitlab(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use crate::http::{UpstreamClient, UpstreamConfig};
        use sha2::Digest;

        let env = &config.gitlab;
        let needs = "set GITLAB_TOKEN, and GITLAB_BASE_URL for a self-managed instance";
        let default_pipelines = env.pipelines_per_project.unwrap_or(20);
        let (availability, token, instance, default_groups, page_size, pipelines) = match (config.mode, &env.token) {
            (ConnectorsMode::Live | ConnectorsMode::Auto, Some(token)) => (
                Availability::Live {
                    auth_mode: "token".to_owned(),
                },
                Some(token.clone()),
                env.base_url
                    .clone()
                    .unwrap_or_else(|| url::Url::parse("https://gitlab.com").expect("static url")),
                env.groups.clone(),
                100,
                default_pipelines,
            ),
            (ConnectorsMode::Live, None) => (
                Availability::Unavailable {
                    reason: format!("CONNECTORS_MODE=live and no GitLab credentials: {needs}"),
                },
                None,
                url::Url::parse("http://127.0.0.1:9").expect("static url"),
                Vec::new(),
                100,
                default_pipelines,
            ),
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "gitlab", fixture_options(config)).await?;
                let base = url::Url::parse(server.base_url()).map_err(|e| RegistryError::Fixtures {
                    provider: "gitlab",
                    message: e.to_string(),
                })?;
                self.replay.insert("gitlab", server);
                (
                    Availability::Fixture {
                        reason: fixture_reason(mode, "GitLab", needs),
                    },
                    None,
                    base,
                    fixture_config.default_groups,
                    u32::from(fixture_config.page_size.unwrap_or(100)),
                    fixture_config.pipelines_per_project.unwrap_or(20),
                )
            }
        };
        // The API lives under /api/v4 of the instance (also behind a path
        // prefix, https://example.com/gitlab/api/v4).
        // A base URL given with its /api/v4 already is accepted as well.
        let root = instance.as_str().trim_end_matches('/');
        let root = root.strip_suffix("/api/v4").unwrap_or(root);
        let api = url::Url::parse(&format!("{root}/api/v4")).map_err(|e| RegistryError::Connector {
            provider: "gitlab",
            message: format!("GITLAB_BASE_URL: {e}"),
        })?;
        let mut upstream = UpstreamConfig::new(gitlab::ID, api);
        // The token travels in PRIVATE-TOKEN, which the shared cache key does
        // not read: key conditional-request entries on a hash of it instead.
        if let Some(token) = &token {
            let digest = sha2::Sha256::digest(token.as_bytes());
            upstream.credential_id = Some(format!("gitlab-token:{}", hex::encode(&digest[..16])));
        }
        if matches!(availability, Availability::Fixture { .. }) {
            fail_fast(&mut upstream);
        }
        let upstream = Arc::new(
            UpstreamClient::new(upstream, cache).map_err(|e| RegistryError::Connector {
                provider: "gitlab",
                message: e.to_string(),
            })?,
        );
        let settings = gitlab::GitlabSettings {
            availability: availability.clone(),
            default_groups,
            page_size,
            pipelines_per_project: pipelines,
            project_concurrency: 8,
        };
        let connector = gitlab::GitlabConnector::new(settings, upstream, token.as_deref()).map_err(|e| {
            RegistryError::Connector {
                provider: "gitlab",
                message: e.to_string(),
            }
        })?;
        self.entries.push(Entry::of(&connector, availability));
        self.gitlab = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(not(feature = "kubernetes"))]
    async fn register_kubernetes(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "kubernetes",
            "Kubernetes",
            "connectors.kubernetes.v1.KubernetesConnectorService",
        ));
        Ok(())
    }

    #[cfg(feature = "kubernetes")]
    async fn register_kubernetes(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use kubernetes::client::{self as kclient, UpstreamTuning};

        let env = &config.kubernetes;
        let error = |message: String| RegistryError::Connector {
            provider: "kubernetes",
            message,
        };
        let needs = "set KUBECONFIG, or run in a pod with a service account";
        let credentials = env.kubeconfig.is_some() || env.in_cluster;
        let (availability, clusters, default_contexts, page_size) = match (config.mode, credentials) {
            (ConnectorsMode::Live | ConnectorsMode::Auto, true) => {
                let tuning = UpstreamTuning { fixture: false };
                let (clusters, current, auth_mode) = match &env.kubeconfig {
                    Some(paths) => {
                        if env.cluster_name.is_some() {
                            tracing::warn!(
                                connector = "kubernetes",
                                "KUBERNETES_CLUSTER_NAME names the in-cluster service account's cluster; KUBECONFIG is set, so contexts keep their names"
                            );
                        }
                        let kubeconfig = kclient::read_kubeconfig(paths).map_err(|e| error(e.to_string()))?;
                        let clusters = kclient::from_kubeconfig(&kubeconfig, cache.clone(), tuning).await;
                        (clusters, kubeconfig.current_context.clone(), "kubeconfig")
                    }
                    None => {
                        let (name, built) = kclient::in_cluster(env.cluster_name.as_deref(), cache.clone());
                        (vec![(name.clone(), built)], Some(name), "in_cluster")
                    }
                };
                let names: Vec<&str> = clusters.iter().map(|(name, _)| name.as_str()).collect();
                let mut defaults: Vec<String> = if env.contexts.is_empty() {
                    current.into_iter().collect()
                } else {
                    env.contexts.clone()
                };
                let mut seen = std::collections::BTreeSet::new();
                defaults.retain(|c| seen.insert(c.clone()));
                if let Some(unknown) = defaults.iter().find(|c| !names.contains(&c.as_str())) {
                    return Err(error(format!(
                        "KUBERNETES_CONTEXTS names {unknown:?}, which is not a context of the kubeconfig"
                    )));
                }
                // A context that cannot be built fails the syncs that name
                // it; only a default context's failure leaves the connector
                // unavailable (never the server down).
                let mut unavailable = None;
                for (name, built) in &clusters {
                    let Err(cause) = built else { continue };
                    if defaults.contains(name) {
                        tracing::error!(connector = "kubernetes", context = %name, %cause, "default context cannot be used; connector unavailable");
                        unavailable.get_or_insert_with(|| cause.to_string());
                    } else {
                        tracing::warn!(connector = "kubernetes", context = %name, %cause, "context cannot be used; syncs that name it fail");
                    }
                }
                let availability = match unavailable {
                    Some(reason) => Availability::Unavailable { reason },
                    None => Availability::Live {
                        auth_mode: auth_mode.to_owned(),
                    },
                };
                (availability, clusters, defaults, env.page_size.unwrap_or(500))
            }
            (ConnectorsMode::Live, false) => (
                Availability::Unavailable {
                    reason: format!("CONNECTORS_MODE=live and no Kubernetes credentials: {needs}"),
                },
                Vec::new(),
                Vec::new(),
                500,
            ),
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "kubernetes", fixture_options(config)).await?;
                // The fixtures' kubeconfig points every context at the replay
                // server, each under its own path prefix.
                let path = config.fixtures_dir.join("kubernetes").join("kubeconfig.yaml");
                let text = std::fs::read_to_string(&path).map_err(|e| RegistryError::Fixtures {
                    provider: "kubernetes",
                    message: format!("{}: {e}", path.display()),
                })?;
                let kubeconfig = kube::config::Kubeconfig::from_yaml(&text.replace("{{base_url}}", server.base_url()))
                    .map_err(|e| RegistryError::Fixtures {
                        provider: "kubernetes",
                        message: format!("{}: {e}", path.display()),
                    })?;
                self.replay.insert("kubernetes", server);
                let clusters =
                    kclient::from_kubeconfig(&kubeconfig, cache.clone(), UpstreamTuning { fixture: true }).await;
                if let Some((_, Err(cause))) = clusters.iter().find(|(_, built)| built.is_err()) {
                    return Err(RegistryError::Fixtures {
                        provider: "kubernetes",
                        message: cause.to_string(),
                    });
                }
                (
                    Availability::Fixture {
                        reason: fixture_reason(mode, "Kubernetes", needs),
                    },
                    clusters,
                    fixture_config.default_contexts,
                    u32::from(fixture_config.page_size.unwrap_or(100)),
                )
            }
        };
        let settings = kubernetes::KubernetesSettings {
            availability: availability.clone(),
            default_contexts,
            page_size,
        };
        let connector = kubernetes::KubernetesConnector::new(settings, clusters);
        self.entries.push(Entry::of(&connector, availability));
        self.kubernetes = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(not(feature = "wiz"))]
    async fn register_wiz(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "wiz",
            "Wiz",
            "connectors.wiz.v1.WizConnectorService",
        ));
        Ok(())
    }

    #[cfg(feature = "wiz")]
    async fn register_wiz(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use crate::http::{UpstreamClient, UpstreamConfig};
        use wiz::client::WizAuth;

        let env = &config.wiz;
        let auth = match (&env.client_id, &env.client_secret, &env.token) {
            (Some(client_id), Some(client_secret), _) => Some(WizAuth::ClientCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            }),
            (_, _, Some(token)) => Some(WizAuth::Token(token.clone())),
            _ => None,
        };
        let needs = "set WIZ_CLIENT_ID and WIZ_CLIENT_SECRET, or WIZ_TOKEN (and WIZ_API_URL for the tenant's region)";
        let parse = |raw: &str| url::Url::parse(raw).expect("static url");
        let (availability, auth, api_url, auth_url, page_size) = match (config.mode, auth) {
            (ConnectorsMode::Live | ConnectorsMode::Auto, Some(auth)) => (
                Availability::Live {
                    auth_mode: auth.mode().to_owned(),
                },
                auth,
                env.api_url
                    .clone()
                    .unwrap_or_else(|| parse("https://api.us17.app.wiz.io/graphql")),
                env.auth_url
                    .clone()
                    .unwrap_or_else(|| parse("https://auth.app.wiz.io/oauth/token")),
                env.page_size.unwrap_or(500),
            ),
            (ConnectorsMode::Live, None) => (
                Availability::Unavailable {
                    reason: format!("CONNECTORS_MODE=live and no Wiz credentials: {needs}"),
                },
                WizAuth::None,
                parse("http://127.0.0.1:9/graphql"),
                parse("http://127.0.0.1:9/oauth/token"),
                500,
            ),
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "wiz", fixture_options(config)).await?;
                let join = |path: &str| {
                    url::Url::parse(&format!("{}{path}", server.base_url())).map_err(|e| RegistryError::Fixtures {
                        provider: "wiz",
                        message: e.to_string(),
                    })
                };
                let (api, token) = (join("/graphql")?, join("/oauth/token")?);
                self.replay.insert("wiz", server);
                (
                    Availability::Fixture {
                        reason: fixture_reason(mode, "Wiz", needs),
                    },
                    WizAuth::None,
                    api,
                    token,
                    fixture_config.page_size.map(u16::from).unwrap_or(500),
                )
            }
        };
        let fixture = matches!(availability, Availability::Fixture { .. });
        let build = |base: url::Url| {
            let mut upstream = UpstreamConfig::new(wiz::ID, base);
            upstream.conditional_requests = false;
            if fixture {
                fail_fast(&mut upstream);
            }
            UpstreamClient::new(upstream, cache.clone())
                .map(Arc::new)
                .map_err(|e| RegistryError::Connector {
                    provider: "wiz",
                    message: e.to_string(),
                })
        };
        let (api, auth_http) = (build(api_url)?, build(auth_url)?);
        let settings = wiz::WizSettings {
            availability: availability.clone(),
            auth,
            page_size,
        };
        let connector = wiz::WizConnector::new(settings, api, auth_http);
        self.entries.push(Entry::of(&connector, availability));
        self.wiz = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(not(feature = "aws"))]
    async fn register_aws(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry::compiled_out(
            "aws",
            "AWS",
            "connectors.aws.v1.AwsConnectorService",
        ));
        Ok(())
    }

    #[cfg(feature = "aws")]
    async fn register_aws(&mut self, config: &Config, cache: SharedCache) -> Result<(), RegistryError> {
        use crate::http::UpstreamConfig;

        let env = &config.aws;
        let needs = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or AWS_WEB_IDENTITY_TOKEN_FILE, \
                     or AWS_USE_DEFAULT_CHAIN=true for an instance, task or node role \
                     (and AWS_ACCOUNTS, AWS_REGIONS; AWS_ENDPOINT_URL for an emulator or private endpoint)";
        let mut regions = env.regions.clone();
        let mut endpoint_url = env
            .endpoint_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned());
        let mut static_keys = env.static_keys.clone();
        let mut ecr_page_size = env.ecr_page_size;
        let availability = match (config.mode, env.credentials) {
            (ConnectorsMode::Live | ConnectorsMode::Auto, true) => Availability::Live {
                auth_mode: if env.accounts.is_empty() {
                    "default_chain".into()
                } else {
                    "assume_role".into()
                },
            },
            (ConnectorsMode::Live, false) => Availability::Unavailable {
                reason: format!("CONNECTORS_MODE=live and no AWS credentials: {needs}"),
            },
            (mode @ (ConnectorsMode::Fixtures | ConnectorsMode::Auto), _) => {
                let (server, fixture_config) =
                    start_replay(&config.fixtures_dir, "aws", fixture_options(config)).await?;
                // The real SDK against the replay server: AWS_ENDPOINT_URL's
                // mechanism, fixed keys (signatures are not matched).
                endpoint_url = Some(server.base_url().trim_end_matches('/').to_owned());
                static_keys = Some(("AKIDFIXTURES".into(), "fixtures".into(), None));
                regions = fixture_config.default_regions;
                ecr_page_size = fixture_config.page_size.map(i32::from);
                self.replay.insert("aws", server);
                Availability::Fixture {
                    reason: fixture_reason(mode, "AWS", needs),
                }
            }
        };
        let live = matches!(availability, Availability::Live { .. });
        let template: aws::http::Template = Arc::new(move |base: url::Url| {
            let endpoint = base.origin().ascii_serialization();
            let mut upstream = UpstreamConfig::new(aws::ID, base);
            // POSTs and signed GETs: no conditional requests. The SDK retries
            // (its standard mode, 4 attempts): 429 and 5xx answers reach it as
            // answers, whose error codes (ThrottlingException,
            // TooManyRequestsException, ServiceUnavailableException...) it
            // reads, and transport failures as I/O errors, which it retries
            // as transient; the shared layer retries neither, so that no
            // request is retried twice over.
            upstream.conditional_requests = false;
            upstream.status_retries = false;
            upstream.max_attempts = 1;
            // SigV4 signs every request anew: keyed on its Authorization
            // header, each request would be a rate-limit budget of its own
            // (a cache lookup each, and a memo entry). AWS's throttling is
            // the SDK's to handle, so one budget per endpoint will do.
            upstream.credential_id = Some(format!("aws-sdk:{endpoint}"));
            if !live {
                fail_fast(&mut upstream);
            }
            upstream
        });
        if regions.is_empty() {
            regions.push("us-east-1".into());
        }
        let settings = aws::AwsSettings {
            availability: availability.clone(),
            accounts: env.accounts.iter().cloned().collect(),
            regions,
            endpoint_url,
            static_keys,
            fast_retries: !live,
            scope_concurrency: env.concurrency.unwrap_or(aws::DEFAULT_SCOPE_CONCURRENCY),
            ecr_page_size: ecr_page_size.unwrap_or(aws::DEFAULT_ECR_PAGE_SIZE),
        };
        let connector = aws::AwsConnector::new(settings, aws::http::SharedUpstreamHttp::new(template, cache));
        self.entries.push(Entry::of(&connector, availability));
        self.aws = Some(Arc::new(connector));
        Ok(())
    }
}

/// Whether a GitHub API URL is a GitHub Enterprise Server's (`/api/v3`), not
/// github.com's (nor a replay server standing in for it).
#[cfg(feature = "github")]
fn base_url_is_enterprise(base: &url::Url) -> bool {
    base.path().trim_end_matches('/').ends_with("/api/v3")
}

/// GCP credentials from the environment: the file GOOGLE_APPLICATION_CREDENTIALS
/// names (a service account key or an external account, that is workload
/// identity federation, else whatever ADC accepts), or application default
/// credentials. Returns the token source, the auth mode and a stable identity
/// of the credential (never the token).
#[cfg(feature = "gcp")]
fn gcp_credentials(env: &crate::config::GcpEnv) -> Result<(gcp::client::TokenSource, &'static str, String), String> {
    use google_cloud_auth::credentials::{Builder, external_account, service_account};

    let adc = || {
        Builder::default()
            .build_access_token_credentials()
            .map_err(|e| format!("application default credentials: {e}"))
    };
    let Some(path) = &env.credentials_file else {
        return Ok((
            gcp::client::TokenSource::Credentials(adc()?),
            "application_default",
            "adc".to_owned(),
        ));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS: cannot read {}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS: {} is not JSON: {e}", path.display()))?;
    let field = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match field("type").as_str() {
        "service_account" => {
            let identity = field("client_email");
            let credentials = service_account::Builder::new(json)
                .build_access_token_credentials()
                .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS: service account key: {e}"))?;
            Ok((
                gcp::client::TokenSource::Credentials(credentials),
                "service_account",
                identity,
            ))
        }
        "external_account" => {
            let identity = field("audience");
            let credentials = external_account::Builder::new(json)
                .build_access_token_credentials()
                .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS: external account: {e}"))?;
            Ok((
                gcp::client::TokenSource::Credentials(credentials),
                "external_account",
                identity,
            ))
        }
        other => {
            // authorized_user, impersonated_service_account, ...: ADC reads the file.
            let identity = format!("{other}:{}", field("client_id"));
            Ok((
                gcp::client::TokenSource::Credentials(adc()?),
                "application_default",
                identity,
            ))
        }
    }
}

/// The azure_identity credential of `kind` (see `AzureEnv::credential_kind`).
/// Sovereign clouds: the crate reads `AZURE_AUTHORITY_HOST` for the login endpoint.
#[cfg(feature = "azure")]
fn azure_credential(
    env: &crate::config::AzureEnv,
    kind: &str,
) -> Result<Arc<dyn azure_core::credentials::TokenCredential>, String> {
    use azure_identity::{
        AzureCliCredential, AzureCliCredentialOptions, ClientSecretCredential, ManagedIdentityCredential,
        ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
        WorkloadIdentityCredentialOptions,
    };
    let credential: Arc<dyn azure_core::credentials::TokenCredential> = match kind {
        "client_secret" => {
            // Config checks that AZURE_CREDENTIAL=client_secret comes with all three.
            let (Some(tenant), Some(client), Some(secret)) = (&env.tenant_id, &env.client_id, &env.client_secret)
            else {
                return Err("needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".into());
            };
            ClientSecretCredential::new(tenant, client.clone(), secret.clone().into(), None)
                .map_err(|e| e.to_string())?
        }
        "workload_identity" => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            client_id: env.client_id.clone(),
            tenant_id: env.tenant_id.clone(),
            token_file_path: env.federated_token_file.clone().map(Into::into),
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?,
        "managed_identity" => ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: env.client_id.clone().map(UserAssignedId::ClientId),
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?,
        "azure_cli" => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: env.tenant_id.clone(),
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?,
        other => return Err(format!("unknown AZURE_CREDENTIAL {other}")),
    };
    Ok(credential)
}
