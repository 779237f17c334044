//! Clusters: one kube `Client` per kubeconfig context (or the in-cluster
//! service account), each over its own shared [`UpstreamClient`] whose base
//! URL is that context's server from the server's kubeconfig.
//!
//! kube's own auth layer (static bearer tokens, token files re-read as they
//! rotate, exec plugins) runs over [`TowerAdapter`]; TLS settings of the
//! context (cluster CA, client certificate, `insecure-skip-tls-verify`) go into
//! the upstream client's TLS configuration.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kube::Client;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use tower::ServiceBuilder;

use crate::cache::SharedCache;
use crate::http::{ClientIdentity, ProxyUrl, TowerAdapter, UpstreamClient, UpstreamConfig};

/// The name of the in-cluster "context" unless `KUBERNETES_CLUSTER_NAME`
/// gives one.
pub const IN_CLUSTER: &str = "in-cluster";

/// One cluster the connector can sync.
#[derive(Clone)]
pub struct Cluster {
    /// The context name (the `cluster` of provenance and urns).
    pub name: String,
    /// kube over the shared upstream layer.
    pub client: Client,
    /// The upstream client (base URL = the context's server).
    pub upstream: Arc<UpstreamClient>,
    /// "bearer_token", "token_file", "exec", "client_certificate" or "none".
    pub auth_mode: &'static str,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("server", &self.upstream.config().base_url.as_str())
            .field("auth_mode", &self.auth_mode)
            .finish_non_exhaustive()
    }
}

/// Errors building clusters from configuration (no secrets in messages).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or parsed.
    #[error("KUBECONFIG: {0}")]
    Kubeconfig(String),
    /// A context could not be turned into a client (its CA file deleted, its
    /// cluster entry removed, ...).
    #[error("kubeconfig context {context:?} cannot be used: {message}")]
    Context {
        /// Context name.
        context: String,
        /// Cause.
        message: String,
    },
    /// The in-cluster service account could not be used.
    #[error("in-cluster service account: {0}")]
    InCluster(String),
}

/// Settings shared by every cluster's upstream client.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTuning {
    /// Fast timeouts and backoff for the loopback replay server.
    pub fixture: bool,
}

fn auth_mode(config: &kube::Config) -> &'static str {
    let auth = &config.auth_info;
    if auth.exec.is_some() || auth.auth_provider.is_some() {
        "exec"
    } else if auth.token_file.is_some() {
        "token_file"
    } else if auth.token.is_some() {
        "bearer_token"
    } else if auth.client_certificate_data.is_some() || auth.client_certificate.is_some() {
        "client_certificate"
    } else {
        "none"
    }
}

/// The PEM client certificate and key of a kubeconfig user, if it has one.
fn identity(config: &kube::Config) -> Result<Option<ClientIdentity>, String> {
    let auth = &config.auth_info;
    let decode = |data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| "client certificate data is not base64".to_owned())
    };
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("reading a client certificate file: {e}"));
    let cert = match (&auth.client_certificate_data, &auth.client_certificate) {
        (Some(data), _) => Some(decode(data)?),
        (None, Some(path)) => Some(read(path)?),
        (None, None) => None,
    };
    let key = match (&auth.client_key_data, &auth.client_key) {
        (Some(data), _) => Some(decode(data.expose_secret())?),
        (None, Some(path)) => Some(read(path)?),
        (None, None) => None,
    };
    match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            Ok(Some(ClientIdentity(cert)))
        }
        (None, None) => Ok(None),
        _ => Err("a client certificate needs both the certificate and the key".into()),
    }
}

/// Builds one cluster from a resolved kube config.
pub fn cluster(
    name: &str,
    config: kube::Config,
    cache: SharedCache,
    tuning: UpstreamTuning,
) -> Result<Cluster, String> {
    let base_url = url::Url::parse(&config.cluster_url.to_string()).map_err(|e| format!("server url: {e}"))?;
    if !matches!(base_url.scheme(), "https" | "http") {
        return Err("server must be an http or https url".into());
    }
    let mut upstream = UpstreamConfig::new(super::ID, base_url);
    // Kubernetes lists carry no ETags: conditional requests would only cost
    // cache writes.
    upstream.conditional_requests = false;
    upstream.credential_id = Some(format!("kubernetes:{name}"));
    upstream.extra_root_certificates = config.root_cert.clone().unwrap_or_default();
    if let Some(path) = &config.root_cert_file
        && config.root_cert.is_none()
    {
        let pem = std::fs::read(path).map_err(|e| format!("reading the cluster ca file: {e}"))?;
        upstream.extra_root_certificates = pem_to_der(&pem);
    }
    // client-go trusts the cluster's CA alone when the kubeconfig names one
    // (a certificate another CA signed, publicly trusted or not, is refused);
    // without one, the system's roots.
    if config.root_cert.is_some() || config.root_cert_file.is_some() {
        if upstream.extra_root_certificates.is_empty() {
            return Err("the cluster ca holds no certificate".into());
        }
        upstream.built_in_roots = false;
    }
    upstream.client_identity = identity(&config)?;
    upstream.tls_server_name = config.tls_server_name.clone().filter(|n| !n.is_empty());
    if let Some(proxy) = &config.proxy_url {
        let url = url::Url::parse(&proxy.to_string()).map_err(|_| "proxy-url is not a valid url".to_owned())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "proxy-url: {} proxies are not supported (http and https are)",
                url.scheme()
            ));
        }
        upstream.proxy = Some(ProxyUrl(url));
    }
    upstream.accept_invalid_certs = config.accept_invalid_certs;
    if config.accept_invalid_certs {
        tracing::warn!(
            connector = super::ID,
            context = name,
            "insecure-skip-tls-verify is set: the server certificate is not verified"
        );
    }
    if tuning.fixture {
        upstream.request_timeout = Duration::from_secs(5);
        upstream.base_backoff = Duration::from_millis(20);
        upstream.max_backoff = Duration::from_millis(200);
    }
    let upstream = Arc::new(UpstreamClient::new(upstream, cache).map_err(|e| e.to_string())?);
    let auth = config.auth_layer().map_err(|e| format!("credentials: {e}"))?;
    let headers = config.extra_headers_layer().map_err(|e| format!("headers: {e}"))?;
    let service = ServiceBuilder::new()
        .layer(headers)
        .option_layer(auth)
        .map_err(|e: tower::BoxError| e)
        .service(TowerAdapter::new(upstream.clone()));
    let client = Client::new(service, config.default_namespace.clone());
    Ok(Cluster {
        name: name.to_owned(),
        client,
        upstream,
        auth_mode: auth_mode(&config),
    })
}

fn pem_to_der(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END CERTIFICATE") {
            inside = false;
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&body) {
                out.push(der);
            }
        } else if inside {
            body.push_str(line);
        }
    }
    out
}

/// Reads `KUBECONFIG` (a path list, merged as kubectl does).
pub fn read_kubeconfig(paths: &str) -> Result<Kubeconfig, ClusterError> {
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths) {
        if path.as_os_str().is_empty() {
            continue;
        }
        let config =
            Kubeconfig::read_from(&path).map_err(|e| ClusterError::Kubeconfig(format!("{}: {e}", path.display())))?;
        merged = Some(match merged {
            Some(m) => m.merge(config).map_err(|e| ClusterError::Kubeconfig(e.to_string()))?,
            None => config,
        });
    }
    merged.ok_or_else(|| ClusterError::Kubeconfig("no file named".into()))
}

/// An error and its sources, as one line ("failed to load certificate
/// authority: failed to read file ..."); a source the line already holds is
/// not repeated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        source = cause.source();
    }
    line
}

/// The `proxy-url` of a context's cluster entry, if it names one.
fn cluster_proxy_url<'a>(kubeconfig: &'a Kubeconfig, context: &str) -> Option<&'a str> {
    let named = kubeconfig.contexts.iter().find(|c| c.name == context)?;
    let cluster = &named.context.as_ref()?.cluster;
    let entry = kubeconfig.clusters.iter().find(|c| &c.name == cluster)?;
    entry.cluster.as_ref()?.proxy_url.as_deref().filter(|p| !p.is_empty())
}

/// A context of the kubeconfig: its name, and its cluster or why it cannot
/// be used.
pub type Context = (String, Result<Cluster, ClusterError>);

/// Every context of a kubeconfig, in the kubeconfig's order. A context that
/// cannot be built is kept with its error: a merged KUBECONFIG often holds
/// stale contexts, and one of them must not stop the others.
pub async fn from_kubeconfig(kubeconfig: &Kubeconfig, cache: SharedCache, tuning: UpstreamTuning) -> Vec<Context> {
    let mut contexts = Vec::new();
    for named in &kubeconfig.contexts {
        let options = KubeConfigOptions {
            context: Some(named.name.clone()),
            ..Default::default()
        };
        let context_error = |message: String| ClusterError::Context {
            context: named.name.clone(),
            message,
        };
        let built = match kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options).await {
            Ok(mut config) => {
                // kube falls back to HTTPS_PROXY, which the HTTP client
                // already honours, with NO_PROXY: keep only the cluster's own.
                if cluster_proxy_url(kubeconfig, &named.name).is_none() {
                    config.proxy_url = None;
                }
                cluster(&named.name, config, cache.clone(), tuning).map_err(context_error)
            }
            Err(error) => Err(context_error(error_chain(&error))),
        };
        contexts.push((named.name.clone(), built));
    }
    contexts
}

/// The in-cluster service account as the cluster `name`
/// (`KUBERNETES_CLUSTER_NAME`, else [`IN_CLUSTER`]): its name and the cluster.
pub fn in_cluster(name: Option<&str>, cache: SharedCache) -> Context {
    let built = kube::Config::incluster()
        .map_err(|e| ClusterError::InCluster(e.to_string()))
        .and_then(|config| in_cluster_from(config, name, cache));
    (name.unwrap_or(IN_CLUSTER).to_owned(), built)
}

/// The cluster of an in-cluster configuration, named `name` or [`IN_CLUSTER`].
fn in_cluster_from(config: kube::Config, name: Option<&str>, cache: SharedCache) -> Result<Cluster, ClusterError> {
    let name = name.unwrap_or(IN_CLUSTER);
    cluster(name, config, cache, UpstreamTuning { fixture: false }).map_err(ClusterError::InCluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_cluster_cluster_takes_the_configured_name_in_urns_and_provenance() {
        // What kube's `Config::incluster` gives: the API server's service
        // address, the mounted CA, the projected token file.
        let dir = std::env::temp_dir().join(format!("in-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "service-account-token").unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut config = kube::Config::new("https://10.96.0.1:443".parse().unwrap());
        config.root_cert = Some(vec![ca.self_signed(&key).unwrap().der().to_vec()]);
        config.auth_info.token_file = Some(dir.join("token").display().to_string());
        let cache = SharedCache::memory(1 << 20);

        let named = in_cluster_from(config.clone(), Some("prod-eu-1"), cache.clone()).unwrap();
        assert_eq!((named.name.as_str(), named.auth_mode), ("prod-eu-1", "token_file"));
        // The cluster's name is the `cluster` of urns, workloads and (as the
        // scope `context:<name>`) provenance.
        let deployment: k8s_openapi::api::apps::v1::Deployment =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "api", "namespace": "payments"}})).unwrap();
        let entity = super::super::deployment_entity(&named.name, &deployment);
        assert_eq!(
            entity.urn,
            "urn:connectors:kubernetes:workload:prod-eu-1/payments/deployment/api"
        );
        // Unset: `in-cluster`, as before, so the urns clients hold stay.
        assert_eq!(in_cluster_from(config, None, cache).unwrap().name, "in-cluster");
        std::fs::remove_dir_all(&dir).ok();
    }
}
