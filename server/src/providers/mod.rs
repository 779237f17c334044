//! The explicit connector registry: each provider is registered at start-up
//! from configuration, live with credentials or on its fixtures without them.
//! A provider compiled out (cargo feature off) is listed as unavailable.

#[cfg(feature = "github")]
pub mod github;
#[cfg(feature = "gitlab")]
pub mod gitlab;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::SharedCache;
use crate::config::{Config, ConnectorsMode};
use crate::replay::{FixtureSet, ReplayOptions, ReplayServer};
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
    /// The GitHub connector, when available.
    #[cfg(feature = "github")]
    pub github: Option<Arc<github::GithubConnector>>,
    /// The GitLab connector, when available.
    #[cfg(feature = "gitlab")]
    pub gitlab: Option<Arc<gitlab::GitlabConnector>>,
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
    let server = ReplayServer::start(fixtures, options)
        .await
        .map_err(|e| RegistryError::Fixtures {
            provider,
            message: format!("starting the replay server: {e}"),
        })?;
    tracing::info!(provider, url = server.base_url(), "replay server serving fixtures");
    Ok((server, fixture_config))
}

impl Registry {
    /// Builds every connector from configuration.
    pub async fn build(config: &Config, cache: SharedCache) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        registry.register_github(config, cache.clone()).await?;
        registry.register_gitlab(config, cache.clone()).await?;
        registry.entries.sort_by_key(|e| e.id);
        Ok(registry)
    }

    /// The entry of a connector.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    #[cfg(not(feature = "github"))]
    async fn register_github(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry {
            id: "github",
            display_name: "GitHub",
            descriptor: None,
            availability: Availability::Unavailable {
                reason: "compiled without the github feature".into(),
            },
            service: "connectors.github.v1.GithubConnectorService",
        });
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
                    start_replay(&config.fixtures_dir, "github", ReplayOptions::default()).await?;
                let base = url::Url::parse(server.base_url()).map_err(|e| RegistryError::Fixtures {
                    provider: "github",
                    message: e.to_string(),
                })?;
                self.replay.insert("github", server);
                (
                    Availability::Fixture {
                        reason: if mode == ConnectorsMode::Fixtures {
                            "CONNECTORS_MODE=fixtures (unset it and configure credentials to sync live)".to_owned()
                        } else {
                            format!("no GitHub credentials configured ({needs} to sync live)")
                        },
                    },
                    GithubAuth::None,
                    base,
                    fixture_config.default_orgs,
                    fixture_config.page_size.unwrap_or(100),
                )
            }
        };
        let mut upstream = UpstreamConfig::new(github::ID, base_url);
        if let GithubAuth::App { app_id, .. } = &auth {
            upstream.credential_id = Some(format!("github-app:{app_id}"));
        }
        if matches!(availability, Availability::Fixture { .. }) {
            // Loopback replay: fail fast.
            upstream.request_timeout = std::time::Duration::from_secs(5);
            upstream.base_backoff = std::time::Duration::from_millis(20);
            upstream.max_backoff = std::time::Duration::from_millis(200);
        }
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
            repo_concurrency: 8,
        };
        let connector = github::GithubConnector::new(settings, upstream).map_err(|e| RegistryError::Connector {
            provider: "github",
            message: e.to_string(),
        })?;
        let descriptor = crate::sync::Connector::descriptor(&connector);
        self.entries.push(Entry {
            id: descriptor.id,
            display_name: descriptor.display_name,
            descriptor: Some(descriptor),
            availability,
            service: descriptor.service,
        });
        self.github = Some(Arc::new(connector));
        Ok(())
    }

    #[cfg(not(feature = "gitlab"))]
    async fn register_gitlab(&mut self, _config: &Config, _cache: SharedCache) -> Result<(), RegistryError> {
        self.entries.push(Entry {
            id: "gitlab",
            display_name: "GitLab",
            descriptor: None,
            availability: Availability::Unavailable {
                reason: "compiled without the gitlab feature".into(),
            },
            service: "connectors.gitlab.v1.GitlabConnectorService",
        });
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
                    start_replay(&config.fixtures_dir, "gitlab", ReplayOptions::default()).await?;
                let base = url::Url::parse(server.base_url()).map_err(|e| RegistryError::Fixtures {
                    provider: "gitlab",
                    message: e.to_string(),
                })?;
                self.replay.insert("gitlab", server);
                (
                    Availability::Fixture {
                        reason: if mode == ConnectorsMode::Fixtures {
                            "CONNECTORS_MODE=fixtures (unset it and configure credentials to sync live)".to_owned()
                        } else {
                            format!("no GitLab credentials configured ({needs}, to sync live)")
                        },
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
            // Loopback replay: fail fast.
            upstream.request_timeout = std::time::Duration::from_secs(5);
            upstream.base_backoff = std::time::Duration::from_millis(20);
            upstream.max_backoff = std::time::Duration::from_millis(200);
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
        let descriptor = crate::sync::Connector::descriptor(&connector);
        self.entries.push(Entry {
            id: descriptor.id,
            display_name: descriptor.display_name,
            descriptor: Some(descriptor),
            availability,
            service: descriptor.service,
        });
        self.gitlab = Some(Arc::new(connector));
        Ok(())
    }
}
