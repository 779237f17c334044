//! Typed gRPC client of the connectors service, with sync streams that resume
//! from their last checkpoint when the connection breaks.
//!
//! [`ConnectorsClient`] wraps one [`Channel`] and gives the registry calls
//! ([`list_connectors`](ConnectorsClient::list_connectors),
//! [`get_connector`](ConnectorsClient::get_connector)), the generated typed
//! client of each connector ([`github`](ConnectorsClient::github)) and
//! resumable syncs ([`sync_github`](ConnectorsClient::sync_github)). The
//! resume logic itself ([`resumable`], [`SyncStream`], [`ResumePolicy`]) is
//! generic over the call that starts a stream, so every connector reuses it.
//!
//! The protobuf messages are re-exported as [`v1`] and [`github::v1`]; they
//! implement proto3 JSON with serde, so `serde_json::to_string(&event)` gives
//! the canonical JSON of an event.
//!
//! # Example
//!
//! ```no_run
//! use connectors_client::github::v1::SyncRequest;
//! use connectors_client::v1::sync_event::Event;
//! use connectors_client::{ConnectorsClient, Error};
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), Error> {
//! let client = ConnectorsClient::connect("http://127.0.0.1:50051")
//!     .await?
//!     .with_api_key("secret")?;
//!
//! let request = SyncRequest {
//!     orgs: vec!["acme".to_owned()],
//!     ..Default::default()
//! };
//! let mut events = client.sync_github(request);
//! while let Some(event) = events.next().await {
//!     match event?.event {
//!         Some(Event::Upsert(upsert)) => {
//!             println!("{}", upsert.entity.map(|e| e.urn).unwrap_or_default());
//!         }
//!         Some(Event::Summary(summary)) => {
//!             println!("done: {} deletions", summary.deletions);
//!         }
//!         _ => {}
//!     }
//! }
//! println!("resumed {} times", events.resumes());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod error;
mod resume;

use std::time::Duration;

use connectors_proto::azure::v1::azure_connector_service_client::AzureConnectorServiceClient;
use connectors_proto::gcp::v1::gcp_connector_service_client::GcpConnectorServiceClient;
use connectors_proto::github::v1::github_connector_service_client::GithubConnectorServiceClient;
use connectors_proto::gitlab::v1::gitlab_connector_service_client::GitlabConnectorServiceClient;
use connectors_proto::v1::registry_service_client::RegistryServiceClient;
use connectors_proto::wiz::v1::wiz_connector_service_client::WizConnectorServiceClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub use connectors_proto::v1::SyncEvent;
pub use connectors_proto::{aws, azure, gcp, github, gitlab, kubernetes, v1, wiz};
pub use error::{Error, code_name};
pub use resume::{ResumePolicy, SyncStream, is_retryable, resumable, resumable_from, retry_delay};
/// The status a health check reports.
pub use tonic_health::pb::health_check_response::ServingStatus;

/// The default endpoint of the connectors server.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

/// Adds `authorization: Bearer <key>` to every call when an API key is set.
#[derive(Clone, Default)]
pub struct AuthInterceptor {
    authorization: Option<AsciiMetadataValue>,
}

impl AuthInterceptor {
    /// An interceptor that sends `key` as a bearer token.
    pub fn bearer(key: &str) -> Result<Self, Error> {
        if key.is_empty() {
            return Err(Error::InvalidApiKey("the key is empty".to_owned()));
        }
        let invalid = || Error::InvalidApiKey("the key must be visible ascii characters".to_owned());
        if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(invalid());
        }
        let mut value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {key}")).map_err(|_| invalid())?;
        value.set_sensitive(true);
        Ok(Self {
            authorization: Some(value),
        })
    }
}

impl std::fmt::Debug for AuthInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthInterceptor")
            .field("api_key", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The channel of every typed client: the connection plus the API key.
pub type AuthChannel = InterceptedService<Channel, AuthInterceptor>;

/// The generated client of `connectors.v1.RegistryService`.
pub type RegistryClient = RegistryServiceClient<AuthChannel>;

/// The generated client of `connectors.github.v1.GithubConnectorService`.
pub type GithubClient = GithubConnectorServiceClient<AuthChannel>;

/// The generated client of `connectors.gcp.v1.GcpConnectorService`.
pub type GcpClient = GcpConnectorServiceClient<AuthChannel>;

/// The generated client of `connectors.azure.v1.AzureConnectorService`.
pub type AzureClient = AzureConnectorServiceClient<AuthChannel>;

/// The generated client of `connectors.gitlab.v1.GitlabConnectorService`.
pub type GitlabClient = GitlabConnectorServiceClient<AuthChannel>;

/// The generated client of `connectors.aws.v1.AwsConnectorService`.
pub type AwsClient = connectors_proto::aws::v1::aws_connector_service_client::AwsConnectorServiceClient<AuthChannel>;

/// The generated client of `connectors.wiz.v1.WizConnectorService`.
pub type WizClient = WizConnectorServiceClient<AuthChannel>;
/// The generated client of `connectors.kubernetes.v1.KubernetesConnectorService`.
pub type KubernetesClient =
    connectors_proto::kubernetes::v1::kubernetes_connector_service_client::KubernetesConnectorServiceClient<
        AuthChannel,
    >;

/// A client of the connectors service.
///
/// Cloning is cheap: clones share the connection.
#[derive(Clone, Debug)]
pub struct ConnectorsClient {
    channel: Channel,
    auth: AuthInterceptor,
    policy: ResumePolicy,
}

impl ConnectorsClient {
    /// Connects to `endpoint` (`http://host:port`; `host:port` implies
    /// `http://`, and `unix:/path` is a Unix socket).
    ///
    /// The channel reconnects by itself after the connection drops.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        let channel = endpoint_from(endpoint.into())?.connect().await?;
        Ok(Self::from_channel(channel))
    }

    /// Like [`connect`](Self::connect), but connects on the first call.
    pub fn connect_lazy(endpoint: impl Into<String>) -> Result<Self, Error> {
        Ok(Self::from_channel(endpoint_from(endpoint.into())?.connect_lazy()))
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            channel,
            auth: AuthInterceptor::default(),
            policy: ResumePolicy::default(),
        }
    }

    /// Sends `authorization: Bearer <key>` with every call.
    ///
    /// Fails if the key is empty or is not visible ASCII.
    pub fn with_api_key(mut self, key: impl AsRef<str>) -> Result<Self, Error> {
        self.auth = AuthInterceptor::bearer(key.as_ref())?;
        Ok(self)
    }

    /// Sets the resume policy of the sync streams (default:
    /// [`ResumePolicy::default`]).
    #[must_use]
    pub fn with_resume_policy(mut self, policy: ResumePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The underlying channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    fn auth_channel(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// The typed client of the registry service.
    pub fn registry(&self) -> RegistryClient {
        RegistryServiceClient::new(self.auth_channel())
    }

    /// The typed client of the GitHub connector service (single `Sync` calls,
    /// without resuming).
    pub fn github(&self) -> GithubClient {
        GithubConnectorServiceClient::new(self.auth_channel())
    }

    /// The typed client of the GCP connector service (single `Sync` calls,
    /// without resuming).
    pub fn gcp(&self) -> GcpClient {
        GcpConnectorServiceClient::new(self.auth_channel())
    }

    /// The typed client of the GitLab connector service (single `Sync` calls,
    /// without resuming).
    pub fn gitlab(&self) -> GitlabClient {
        GitlabConnectorServiceClient::new(self.auth_channel())
    }

    /// The typed client of the Azure connector service (single `Sync` calls,
    /// without resuming).
    pub fn azure(&self) -> AzureClient {
        AzureConnectorServiceClient::new(self.auth_channel())
    }

    /// The typed client of the Wiz connector service (single `Sync` calls,
    /// without resuming).
    pub fn wiz(&self) -> WizClient {
        WizConnectorServiceClient::new(self.auth_channel())
    }

    /// The typed client of the AWS connector service (single `Sync` calls,
    /// without resuming).
    pub fn aws(&self) -> AwsClient {
        AwsClient::new(self.auth_channel())
    }

    /// The typed client of the Kubernetes connector service (single `Sync`
    /// calls, without resuming).
    pub fn kubernetes(&self) -> KubernetesClient {
        KubernetesClient::new(self.auth_channel())
    }

    /// Lists the connectors the server runs, sorted by id.
    pub async fn list_connectors(&self) -> Result<Vec<v1::Connector>, Error> {
        let response = self.registry().list_connectors(v1::ListConnectorsRequest {}).await?;
        Ok(response.into_inner().connectors)
    }

    /// Checks one health service of the server (`grpc.health.v1.Health/Check`):
    /// `""` is the server as a whole, each connector's `service` (see
    /// [`v1::Connector::service`]) its own, and `connectors.v1.Cache` the
    /// cache. An unknown service is `Error::Status` with `NOT_FOUND`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), connectors_client::Error> {
    /// use connectors_client::{ConnectorsClient, ServingStatus};
    ///
    /// let client = ConnectorsClient::connect("http://127.0.0.1:50051").await?;
    /// let status = client.health("connectors.github.v1.GithubConnectorService").await?;
    /// assert_eq!(status, ServingStatus::Serving);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn health(&self, service: impl Into<String>) -> Result<ServingStatus, Error> {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.auth_channel());
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?;
        Ok(response.into_inner().status())
    }

    /// Describes one connector (`Error::Status` with `NOT_FOUND` for an
    /// unknown id).
    pub async fn get_connector(&self, id: impl Into<String>) -> Result<v1::Connector, Error> {
        let response = self
            .registry()
            .get_connector(v1::GetConnectorRequest { id: id.into() })
            .await?;
        response
            .into_inner()
            .connector
            .ok_or(Error::MalformedResponse("GetConnectorResponse.connector is missing"))
    }

    /// Syncs GitHub, resuming from the last checkpoint when the stream breaks
    /// (see [`SyncStream`] and [`with_resume_policy`](Self::with_resume_policy)).
    ///
    /// The first call sends `request` as is (with its own
    /// `options.checkpoint`, if any); each resume sends it again with
    /// `options.checkpoint` set to the newest token received.
    pub fn sync_github(&self, request: github::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.github(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// Syncs GitLab, resuming from the last checkpoint when the stream breaks
    /// (like [`sync_github`](Self::sync_github)).
    pub fn sync_gitlab(&self, request: gitlab::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.gitlab(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// Syncs AWS, resuming from the last checkpoint when the stream breaks
    /// (like [`sync_github`](Self::sync_github)).
    pub fn sync_aws(&self, request: aws::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.aws(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// Syncs Azure, resuming from the last checkpoint when the stream breaks
    /// (like [`sync_github`](Self::sync_github)).
    pub fn sync_azure(&self, request: azure::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.azure(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// Syncs GCP projects, resuming from the last checkpoint when the stream
    /// breaks (like [`sync_github`](Self::sync_github)).
    pub fn sync_gcp(&self, request: gcp::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.gcp(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// Syncs Kubernetes workloads, resuming from the last checkpoint when the
    /// stream breaks (like [`sync_github`](Self::sync_github)).
    pub fn sync_kubernetes(&self, request: kubernetes::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.kubernetes(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// Syncs the Wiz inventory, resuming from the last checkpoint when the
    /// stream breaks (like [`sync_github`](Self::sync_github)).
    pub fn sync_wiz(&self, request: wiz::v1::SyncRequest) -> SyncStream {
        self.resuming(request, self.wiz(), |mut client, request| async move {
            client.sync(request).await
        })
    }

    /// A [`SyncStream`] that starts with `request` as is and resumes by
    /// calling `call` again with `options.checkpoint` set to the newest token.
    fn resuming<R, C, F, Fut>(&self, request: R, client: C, call: F) -> SyncStream
    where
        R: ConnectorSyncRequest,
        C: Clone + Send + 'static,
        F: Fn(C, R) -> Fut + Send + 'static,
        Fut: Future<Output = Result<tonic::Response<tonic::Streaming<SyncEvent>>, tonic::Status>> + Send + 'static,
    {
        let initial = request
            .options()
            .map(|options| options.checkpoint.clone())
            .unwrap_or_default();
        resumable_from(
            initial,
            move |checkpoint| {
                let mut request = request.clone();
                let options = request.options_mut();
                *options = with_options_checkpoint(options.take(), checkpoint);
                let call = call(client.clone(), request);
                async move { call.await.map(tonic::Response::into_inner) }
            },
            self.policy.clone(),
        )
    }
}

/// A connector's `SyncRequest`: each carries the shared [`v1::SyncOptions`].
trait ConnectorSyncRequest: Clone + Send + 'static {
    fn options(&self) -> Option<&v1::SyncOptions>;
    fn options_mut(&mut self) -> &mut Option<v1::SyncOptions>;
}

macro_rules! connector_sync_request {
    ($($request:ty),+ $(,)?) => {$(
        impl ConnectorSyncRequest for $request {
            fn options(&self) -> Option<&v1::SyncOptions> {
                self.options.as_ref()
            }
            fn options_mut(&mut self) -> &mut Option<v1::SyncOptions> {
                &mut self.options
            }
        }
    )+};
}

connector_sync_request!(
    github::v1::SyncRequest,
    gitlab::v1::SyncRequest,
    aws::v1::SyncRequest,
    azure::v1::SyncRequest,
    gcp::v1::SyncRequest,
    kubernetes::v1::SyncRequest,
    wiz::v1::SyncRequest,
);

/// Parses and configures the endpoint (timeouts and keepalives that detect a
/// dead server, so that its streams break and resume instead of hanging).
fn endpoint_from(endpoint: String) -> Result<Endpoint, Error> {
    let invalid = |reason: String| Error::InvalidEndpoint {
        endpoint: endpoint.clone(),
        reason,
    };
    let uri = if endpoint.contains("://") || endpoint.starts_with("unix:") {
        endpoint.clone()
    } else {
        format!("http://{endpoint}")
    };
    if uri.starts_with("https://") {
        return Err(invalid(
            "https is not supported (this client is built without tls)".to_owned(),
        ));
    }
    let parsed = Endpoint::from_shared(uri).map_err(|err| invalid(error::with_sources(&err)))?;
    if !endpoint.starts_with("unix:") {
        let target = parsed.uri();
        if target.scheme_str() != Some("http") {
            return Err(invalid("the scheme must be http".to_owned()));
        }
        if target.host().is_none_or(str::is_empty) {
            return Err(invalid("the host is missing".to_owned()));
        }
    }
    Ok(parsed
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(false))
}

#[cfg(test)]
mod tests;

/// `options` with `checkpoint` set (options are only added when there is a
/// checkpoint to send).
fn with_options_checkpoint(options: Option<v1::SyncOptions>, checkpoint: Vec<u8>) -> Option<v1::SyncOptions> {
    match options {
        Some(mut options) => {
            options.checkpoint = checkpoint;
            Some(options)
        }
        None if checkpoint.is_empty() => None,
        None => Some(v1::SyncOptions {
            checkpoint,
            ..Default::default()
        }),
    }
}
