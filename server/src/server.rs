//! Assembles and runs the gRPC server: registry, engine, health, reflection,
//! and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::cache::{RedisCache, SharedCache};
use crate::config::Config;
use crate::providers::Registry;
use crate::replay::ReplayServer;
use crate::sync::{Availability, Engine, EngineConfig};

/// How long a client has to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server.
pub struct RunningServer {
    /// The gRPC address it listens on.
    pub addr: SocketAddr,
    /// The registry (connectors, replay servers in fixture mode).
    pub registry: Arc<Registry>,
    /// The cache.
    pub cache: SharedCache,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// `http://<addr>` for clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The replay server of a connector in fixture mode.
    pub fn replay(&self, connector: &str) -> Option<&ReplayServer> {
        self.registry.replay.get(connector)
    }

    /// Starts a graceful shutdown (health NOT_SERVING, open syncs end with UNAVAILABLE).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server stopped.
    pub async fn wait(self) -> Result<(), tonic::transport::Error> {
        match self.handle.await {
            Ok(result) => result,
            Err(_) => Ok(()),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The registry could not be built.
    #[error(transparent)]
    Registry(#[from] crate::providers::RegistryError),
    /// The cache could not be configured.
    #[error("REDIS_URL: {0}")]
    Cache(String),
    /// The TLS files could not be read.
    #[error("TLS: {0}")]
    Tls(String),
    /// Reflection could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
}

/// Builds the cache from configuration.
pub fn build_cache(config: &Config) -> Result<SharedCache, StartError> {
    match &config.redis_url {
        Some(url) => {
            let read = |var: &str, path: &std::path::Path| {
                std::fs::read(path).map_err(|e| StartError::Cache(format!("{var} {}: {e}", path.display())))
            };
            let redis = if config.redis_ca_file.is_some() || config.redis_client_identity.is_some() {
                let tls = crate::cache::RedisTls {
                    root_pem: config
                        .redis_ca_file
                        .as_deref()
                        .map(|path| read("REDIS_CA_FILE", path))
                        .transpose()?,
                    client: match &config.redis_client_identity {
                        Some((cert, key)) => Some((read("REDIS_CLIENT_CERT", cert)?, read("REDIS_CLIENT_KEY", key)?)),
                        None => None,
                    },
                };
                RedisCache::with_tls(url, "connectors:", tls)
            } else {
                RedisCache::new(url, "connectors:")
            }
            .map_err(|e| StartError::Cache(e.to_string()))?;
            Ok(SharedCache::new(Arc::new(redis)))
        }
        None => Ok(SharedCache::memory(config.memory_cache_bytes)),
    }
}

async fn set_connector_health(
    reporter: HealthReporter,
    registry: Arc<Registry>,
    interval: Option<Duration>,
    shutdown: CancellationToken,
) {
    for entry in &registry.entries {
        let status = match &entry.availability {
            Availability::Unavailable { .. } => ServingStatus::NotServing,
            _ => ServingStatus::Serving,
        };
        reporter.set_service_status(entry.service, status).await;
    }
    #[cfg(any_connector)]
    check_live_credentials(&reporter, &registry, interval, &shutdown).await;
    #[cfg(not(any_connector))]
    let _ = (interval, shutdown);
}

/// Checks the live connectors' credentials against their upstreams, at
/// start-up and then every `interval` (none: start-up only), until shutdown.
#[cfg(any_connector)]
async fn check_live_credentials(
    reporter: &HealthReporter,
    registry: &Registry,
    interval: Option<Duration>,
    shutdown: &CancellationToken,
) {
    // One line per connector compiled in: (feature, registry field, service).
    macro_rules! check_each {
        ($last:ident: $($feature:literal $field:ident $service:literal),* $(,)?) => {$(
            #[cfg(feature = $feature)]
            if let Some(connector) = &registry.$field {
                check_credentials(reporter, connector.as_ref(), $service, shutdown, &mut $last).await;
            }
        )*};
    }
    let mut last = std::collections::HashMap::new();
    loop {
        check_each!(last:
            "github" github "connectors.github.v1.GithubConnectorService",
            "gcp" gcp "connectors.gcp.v1.GcpConnectorService",
            "azure" azure "connectors.azure.v1.AzureConnectorService",
            "gitlab" gitlab "connectors.gitlab.v1.GitlabConnectorService",
            "kubernetes" kubernetes "connectors.kubernetes.v1.KubernetesConnectorService",
            "aws" aws "connectors.aws.v1.AwsConnectorService",
            "wiz" wiz "connectors.wiz.v1.WizConnectorService",
        );
        let Some(interval) = interval else { return };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Checks a live connector's credentials and sets its service's health:
/// NOT_SERVING when the upstream rejects them, SERVING when it accepts them
/// (again). Logs only changes; sets nothing once the server is shutting down
/// (the drain has set NOT_SERVING).
#[cfg(any_connector)]
async fn check_credentials<C: crate::sync::Connector>(
    reporter: &HealthReporter,
    connector: &C,
    service: &'static str,
    shutdown: &CancellationToken,
    last: &mut std::collections::HashMap<&'static str, ServingStatus>,
) {
    if !matches!(connector.availability(), Availability::Live { .. }) {
        return;
    }
    let id = connector.descriptor().id;
    let (status, error) = match connector.authenticate().await {
        Ok(()) => (ServingStatus::Serving, None),
        Err(error) => (ServingStatus::NotServing, Some(error)),
    };
    let previous = last.insert(service, status);
    if previous == Some(status) || shutdown.is_cancelled() {
        return;
    }
    match error {
        Some(error) => tracing::warn!(connector = id, %error, "authentication failed; connector not serving"),
        None if previous.is_some() => tracing::info!(connector = id, "credentials accepted again; connector serving"),
        None => {}
    }
    reporter.set_service_status(service, status).await;
}

/// The health service that reports the cache: NOT_SERVING while its backend
/// fails (the server keeps serving, uncached), SERVING again when it recovers.
pub const CACHE_HEALTH_SERVICE: &str = "connectors.v1.Cache";

/// Probes the cache every few seconds so an outage (and the recovery) shows in
/// health and metrics even when no sync touches the cache.
async fn watch_cache(reporter: HealthReporter, cache: SharedCache, shutdown: CancellationToken) {
    let mut last = None;
    loop {
        cache.probe().await;
        let degraded = cache.is_degraded();
        if last != Some(degraded) {
            let status = if degraded {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            reporter.set_service_status(CACHE_HEALTH_SERVICE, status).await;
            last = Some(degraded);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Picks the process's rustls crypto backend: several crates pull in rustls
/// with different ones (ring, aws-lc-rs), and then rustls cannot choose. A
/// second call (another server in tests) is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts the server.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    install_crypto_provider();
    let cache = build_cache(&config)?;
    tracing::info!(backend = cache.backend(), "cache configured");
    let registry = Arc::new(Registry::build(&config, cache.clone()).await?);
    let shutdown = CancellationToken::new();
    let engine_config = EngineConfig {
        coalesce_log_max_bytes: config.coalesce_log_max_bytes,
        state_ttl: config.state_ttl,
        // Never longer than the state would have lived anyway.
        superseded_state_ttl: config.superseded_state_ttl.min(config.state_ttl),
        resume_ttl: config.resume_ttl,
        kept_generations: config.kept_generations,
        ..EngineConfig::default()
    };
    let engine = Engine::new(engine_config, cache.clone(), CancellationToken::new());

    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", ServingStatus::Serving).await;
    reporter
        .set_serving::<connectors_proto::v1::registry_service_server::RegistryServiceServer<crate::grpc::RegistryApi>>()
        .await;
    tokio::spawn(set_connector_health(
        reporter.clone(),
        registry.clone(),
        config.credential_check_interval,
        shutdown.clone(),
    ));
    tokio::spawn(watch_cache(reporter.clone(), cache.clone(), shutdown.clone()));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(connectors_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(connectors_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    let max_message = 4 * 1024 * 1024;
    // Unused only in a build without connectors.
    #[cfg_attr(not(any_connector), allow(unused_variables))]
    let gate = crate::grpc::SyncGate {
        engine: engine.clone(),
        limits: Arc::new(
            crate::grpc::limits::StreamLimits::new(config.max_streams, config.max_streams_per_client)
                .with_identity_header(config.client_identity_header.clone()),
        ),
    };
    let mut api_keys = config.api_keys.clone();
    for entry in &registry.entries {
        api_keys = api_keys.with_service(entry.service, entry.id);
    }
    let registry_service = connectors_proto::v1::registry_service_server::RegistryServiceServer::new(
        crate::grpc::RegistryApi::new(registry.clone()),
    )
    .max_decoding_message_size(max_message);
    #[allow(unused_mut)]
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| StartError::Tls(format!("reading {}: {e}", path.display())))
        };
        let mut tls_config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
            // A connection that never finishes its handshake (it came before
            // any API key is checked) is closed, not held.
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        if let Some(ca) = &tls.client_ca {
            tls_config = tls_config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        builder = builder
            .tls_config(tls_config)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        tracing::info!(mtls = tls.client_ca.is_some(), "serving gRPC over TLS");
    }
    #[cfg_attr(not(any_connector), allow(unused_mut))]
    let mut router = builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(crate::grpc::auth::AuthLayer::new(api_keys))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry_service);
    #[cfg(feature = "github")]
    if let Some(github) = &registry.github {
        let service = crate::grpc::stubs::github::github_connector_service_server::GithubConnectorServiceServer::new(
            crate::grpc::GithubService::new(github.clone(), gate.clone()),
        )
        .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }
    #[cfg(feature = "gcp")]
    if let Some(gcp) = &registry.gcp {
        let service = crate::grpc::stubs::gcp::gcp_connector_service_server::GcpConnectorServiceServer::new(
            crate::grpc::GcpService::new(gcp.clone(), gate.clone()),
        )
        .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }
    #[cfg(feature = "azure")]
    if let Some(azure) = &registry.azure {
        let service = crate::grpc::stubs::azure::azure_connector_service_server::AzureConnectorServiceServer::new(
            crate::grpc::AzureService::new(azure.clone(), gate.clone()),
        )
        .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }
    #[cfg(feature = "gitlab")]
    if let Some(gitlab) = &registry.gitlab {
        let service = crate::grpc::stubs::gitlab::gitlab_connector_service_server::GitlabConnectorServiceServer::new(
            crate::grpc::GitlabService::new(gitlab.clone(), gate.clone()),
        )
        .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }
    #[cfg(feature = "kubernetes")]
    if let Some(kubernetes) = &registry.kubernetes {
        let service =
            crate::grpc::stubs::kubernetes::kubernetes_connector_service_server::KubernetesConnectorServiceServer::new(
                crate::grpc::KubernetesService::new(kubernetes.clone(), gate.clone()),
            )
            .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }
    #[cfg(feature = "aws")]
    if let Some(aws) = &registry.aws {
        let service = crate::grpc::stubs::aws::aws_connector_service_server::AwsConnectorServiceServer::new(
            crate::grpc::AwsService::new(aws.clone(), gate.clone()),
        )
        .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }
    #[cfg(feature = "wiz")]
    if let Some(wiz) = &registry.wiz {
        let service = crate::grpc::stubs::wiz::wiz_connector_service_server::WizConnectorServiceServer::new(
            crate::grpc::WizService::new(wiz.clone(), gate.clone()),
        )
        .max_decoding_message_size(max_message);
        router = router.add_service(service);
    }

    let drain = config.drain_timeout;
    let token = shutdown.clone();
    let health = reporter.clone();
    let registry_for_shutdown = registry.clone();
    let handle = tokio::spawn(async move {
        let signal = async move {
            token.cancelled().await;
            // Every health entry first, for balancers that watch it.
            health.set_service_status("", ServingStatus::NotServing).await;
            health
                .set_not_serving::<connectors_proto::v1::registry_service_server::RegistryServiceServer<crate::grpc::RegistryApi>>()
                .await;
            health
                .set_service_status(CACHE_HEALTH_SERVICE, ServingStatus::NotServing)
                .await;
            for entry in &registry_for_shutdown.entries {
                health
                    .set_service_status(entry.service, ServingStatus::NotServing)
                    .await;
            }
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                open_syncs = engine.active_syncs(),
                "shutting down"
            );
            // Open syncs get the drain timeout to finish before they are
            // ended with UNAVAILABLE after their last checkpoint. That runs
            // beside the server's own graceful shutdown, which starts when
            // this future ends: the listener closes and every connection gets
            // a GOAWAY at once, so clients open their next streams on another
            // replica (or wait for this one's successor) instead of being
            // refused here for the whole drain, while the open streams carry on.
            tokio::spawn(async move {
                let finished = engine.drain(drain).await;
                tracing::info!(finished_in_time = finished, "open syncs drained");
            });
        };
        router
            .serve_with_incoming_shutdown(
                // tonic applies its TCP options only to listeners it binds:
                // Nagle off (events are small writes), and keepalive probes
                // that find peers gone without a word.
                TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(Some(Duration::from_secs(60))),
                signal,
            )
            .await
    });
    tracing::info!(%addr, "grpc server listening");
    Ok(RunningServer {
        addr,
        registry,
        cache,
        shutdown,
        handle,
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The `connectors-server` binary: reads the environment, starts every
/// connector, serves until SIGTERM/SIGINT, then drains. (The benchmark runs
/// its server processes through this too.)
pub async fn run_from_env() -> std::process::ExitCode {
    let thp_off = crate::allocator_tuning();
    let config = match crate::config::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("connectors-server: configuration error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let telemetry = match crate::telemetry::init_tracing(config.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("connectors-server: configuration error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if telemetry.exporting() {
        tracing::info!("exporting OpenTelemetry traces over OTLP");
    }
    // mimalloc read these when the process started (docs/Connectors.md).
    let purge_delay = std::env::var("MIMALLOC_PURGE_DELAY").unwrap_or_else(|_| "mimalloc's default".into());
    tracing::info!(purge_delay_ms = %purge_delay, transparent_huge_pages_off = thp_off, "allocator");
    let code = serve(config).await;
    // Flushing blocks until the exporter task (on this runtime) is done.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve(config: crate::config::Config) -> std::process::ExitCode {
    if let Some(addr) = config.metrics_listen {
        match crate::telemetry::init_metrics(addr) {
            Ok(()) => tracing::info!(%addr, "metrics listening on /metrics"),
            Err(error) => {
                tracing::error!(%error, %addr, "cannot serve metrics");
                return std::process::ExitCode::from(1);
            }
        }
    }
    if config.api_keys.is_open() {
        tracing::warn!("CONNECTORS_API_KEYS is not set: the API is open to every client that can reach it");
    }
    tracing::info!(mode = ?config.mode, listen = %config.listen, "starting");
    let drain = config.drain_timeout;
    let server = match crate::server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return std::process::ExitCode::from(1);
        }
    };
    wait_for_signal().await;
    server.shutdown();
    match tokio::time::timeout(drain + std::time::Duration::from_secs(5), server.wait()).await {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "server error");
            std::process::ExitCode::from(1)
        }
        Err(_) => {
            tracing::warn!("drain timeout passed; exiting");
            std::process::ExitCode::SUCCESS
        }
    }
}
