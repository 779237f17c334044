//! The sync engine every connector runs through.
//!
//! A connector implements [`Connector`]: its descriptor, how it authenticates,
//! how a request resolves to scopes, and how one scope is crawled. It pushes
//! entities, page checkpoints and "unchanged subtree" hints into a
//! [`ScopeContext`]; the engine stamps provenance, hashes entities, diffs them
//! against the prior state for INCREMENTAL syncs, emits deletions, progress,
//! scope statuses, checkpoints and the summary, and applies backpressure
//! through a bounded channel. Connectors never see tonic types; the entity
//! messages of `connectors.v1` are the domain model (one definition, and the
//! canonical encoding the content hash is taken over).

mod checkpoint;
mod coalesce;
mod context;
mod encoded;
mod engine;
mod hash;
mod state;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connectors_proto::v1::{EntityKind, SourceMode};

pub use checkpoint::{CheckpointError, Token};
pub use context::{ResumedCursor, ScopeContext, UpsertMeta};
pub use encoded::EncodedEvent;
pub use engine::{Engine, EngineConfig, Shard, SyncOptions, SyncStream};
pub use hash::{content_hash, urn};

/// What a connector is, for the registry and provenance.
#[derive(Debug)]
pub struct Descriptor {
    /// Stable id ("github"); the `<connector>` segment of urns.
    pub id: &'static str,
    /// Human readable name.
    pub display_name: &'static str,
    /// Implementation version, stamped into provenance.
    pub version: &'static str,
    /// Kinds the connector emits.
    pub kinds: &'static [EntityKind],
    /// Whether the upstream offers a native change feed the connector uses.
    pub native_incremental: bool,
    /// Authentication modes supported.
    pub auth_modes: &'static [&'static str],
    /// Fully qualified gRPC service name.
    pub service: &'static str,
}

/// Whether a connector runs live, on fixtures, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Live with server-configured credentials.
    Live {
        /// The authentication mode in use ("pat", "github_app").
        auth_mode: String,
    },
    /// On recorded fixtures through the real client.
    Fixture {
        /// Why (names the env vars that would make it live).
        reason: String,
    },
    /// Cannot sync.
    Unavailable {
        /// Why, naming what to configure.
        reason: String,
    },
}

impl Availability {
    /// The provenance source mode of this availability.
    pub fn source_mode(&self) -> SourceMode {
        match self {
            Availability::Live { .. } => SourceMode::Live,
            Availability::Fixture { .. } | Availability::Unavailable { .. } => SourceMode::Fixture,
        }
    }
}

/// One unit of a sync (an org, a region, a subscription): the granularity of
/// ordering, failure reporting, checkpoints and incremental state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `<type>:<id>`, for example "org:acme-corp" or "repo:acme-corp/api".
    pub key: String,
    /// Cloud region, when regional.
    pub region: String,
}

impl Scope {
    /// A scope without a region.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            region: String::new(),
        }
    }
}

/// A failure of the whole request: ends the stream with a gRPC status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// Bad input; the message names the field.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The request field, as a path (`orgs[2]`, `options.checkpoint`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The connector cannot run as configured (names the env vars to set).
    #[error("{message}")]
    FailedPrecondition {
        /// UPPER_SNAKE reason.
        reason: &'static str,
        /// What to do.
        message: String,
    },
    /// The server's upstream credentials were rejected.
    #[error("upstream rejected the configured credentials: {0}")]
    UpstreamUnauthenticated(String),
    /// The server's upstream credentials lack a permission for the whole request.
    #[error("upstream denied access: {0}")]
    UpstreamPermissionDenied(String),
    /// The server is draining or the upstream is unreachable for the whole request.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's deadline passed before the sync finished.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SyncError {
    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SyncError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How one scope ended, when not OK.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// The scope could not be fully fetched; reported as a FAILED scope_status.
    #[error("{message}")]
    Failed {
        /// UPPER_SNAKE reason ("UPSTREAM_UNAVAILABLE", "NOT_FOUND", ...).
        reason: &'static str,
        /// Lower-case description, without secrets.
        message: String,
    },
    /// The upstream rate limit is exhausted; reported as RATE_LIMITED.
    #[error("{message}")]
    RateLimited {
        /// When it resets.
        reset_time: Option<DateTime<Utc>>,
        /// Lower-case description.
        message: String,
    },
    /// A failure of the whole request; ends the stream.
    #[error(transparent)]
    Fatal(#[from] SyncError),
    /// The client went away or the server is shutting down: stop all work.
    #[error("sync cancelled")]
    Cancelled,
}

impl ScopeError {
    /// Whether this is an answer that did not parse (`UPSTREAM_MALFORMED`):
    /// a failure of that one page or item, which says nothing of the next,
    /// so a connector may note it (`ScopeContext::fail_when_done`) and go on.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            ScopeError::Failed {
                reason: "UPSTREAM_MALFORMED",
                ..
            }
        )
    }

    /// A failure of the shared upstream layer: an exhausted rate limit
    /// (`rate_limited` says whose, e.g. "github rate limit exhausted") or the
    /// upstream unavailable (server errors, transport failures, a refused URL).
    pub fn from_upstream(error: &crate::http::UpstreamError, what: &str, rate_limited: &str) -> Self {
        match error {
            crate::http::UpstreamError::RateLimited { reset_time, .. } => ScopeError::RateLimited {
                reset_time: *reset_time,
                message: format!("{what}: {rate_limited}"),
            },
            other => ScopeError::Failed {
                reason: "UPSTREAM_UNAVAILABLE",
                message: format!("{what}: {other}"),
            },
        }
    }

    /// An upstream's error status: 401 ends the sync (the server's credential
    /// was rejected), 403 and 404 fail the scope as permission denied and not
    /// found, anything else as `UPSTREAM_ERROR`.
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            401 => ScopeError::Fatal(SyncError::UpstreamUnauthenticated(message)),
            403 => ScopeError::Failed {
                reason: "UPSTREAM_PERMISSION_DENIED",
                message,
            },
            404 => ScopeError::Failed {
                reason: "UPSTREAM_NOT_FOUND",
                message,
            },
            _ => ScopeError::Failed {
                reason: "UPSTREAM_ERROR",
                message,
            },
        }
    }
}

/// A connector: one upstream, its client, and the mapping to entities.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connector's request type (validated, domain form).
    type Request: Send + Sync + 'static;

    /// What the connector is.
    fn descriptor(&self) -> &'static Descriptor;

    /// Live, fixture or unavailable.
    fn availability(&self) -> Availability;

    /// Checks the configured credentials against the upstream.
    async fn authenticate(&self) -> Result<(), SyncError>;

    /// Resolves the request to its scopes, in sync order (defaults applied).
    fn scopes(&self, request: &Self::Request) -> Result<Vec<Scope>, SyncError>;

    /// Identifies the request's filters (beyond scopes and kinds), so that a
    /// checkpoint is only accepted for the request it was issued for.
    fn request_fingerprint(&self, request: &Self::Request) -> String;

    /// How many scopes of one sync may be crawled at once. The engine still
    /// sends their events in scope order: a scope behind the one being sent
    /// buffers a bounded number of events, then waits.
    fn scope_concurrency(&self) -> usize {
        1
    }

    /// Whether the connector reads its baseline back during a scope
    /// (`ScopeContext::prior_version`, `prior_children`, `prior_unseen`,
    /// `retain`, `retain_children`): an INCREMENTAL sync then holds each
    /// baseline entity's urn, version and parent in memory. Without, it
    /// holds 128 bits of its urn and half its content hash, and those
    /// methods find nothing (a debug build panics on `retain`).
    fn reads_baseline(&self) -> bool {
        false
    }

    /// Crawls one scope, pushing its entities into `ctx`.
    async fn sync_scope(
        &self,
        request: &Self::Request,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError>;
}
