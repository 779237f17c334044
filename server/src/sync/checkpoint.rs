//! The checkpoint token: opaque to clients, versioned JSON to the server.
//!
//! A token carries the baseline (for each scope, the generation of the
//! per-scope entity state the client holds) and, for a mid-stream checkpoint,
//! where the interrupted sync stood (scopes done, the scope in progress, its
//! page cursor and how many state chunks of it were saved).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The largest token accepted.
pub const MAX_TOKEN_BYTES: usize = 1024 * 1024;

const MAGIC: &[u8] = b"ckpt1:";

/// Why a token was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not a token this server issued.
    #[error("not a checkpoint issued by this service")]
    Malformed,
    /// Too large.
    #[error("checkpoint is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Issued by another connector.
    #[error("checkpoint was issued by connector {0:?}")]
    OtherConnector(String),
    /// Issued for another request (scopes, kinds or filters differ).
    #[error("checkpoint was issued for a different request (scopes, kinds or filters changed)")]
    OtherRequest,
}

/// Where an interrupted sync stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The interrupted sync.
    pub sync_id: String,
    /// Its mode (1 = FULL, 2 = INCREMENTAL).
    pub mode: i32,
    /// Scopes finished, with the generation of their new state (absent when
    /// the scope failed without a prior state).
    pub done: Vec<(String, Option<String>)>,
    /// The scope in progress.
    pub current: Option<String>,
    /// The connector's page cursor within it.
    pub cursor: Option<String>,
    /// State chunks of the scope in progress saved so far.
    pub chunks: u32,
    /// The generation those chunks (and the states of the scopes the
    /// stream finished) were written under, when not `sync_id`: each resumed
    /// stream writes a generation of its own, so that two resumes from one
    /// checkpoint (the followers of a coalesced crawl that ended early all
    /// hold the same one) never write each other's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// What the sync had sent and counted up to this checkpoint, so that the
    /// summary of a resumed sync covers the whole sync (tokens issued before
    /// it was added read as nothing counted).
    #[serde(default)]
    pub tally: Tally,
    /// A failure the scope in progress met in one of its items and went on
    /// past (`ScopeContext::fail_when_done`): the resumed scope still ends
    /// FAILED with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<DeferredFailure>,
}

/// A failure a scope met in one of its items (one repository's SBOM whose
/// body does not parse) and went on past: the scope sends the rest, then
/// ends FAILED with it, so it keeps its baseline and deletes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredFailure {
    /// The reason, one of [`DeferredFailure::REASONS`].
    pub reason: String,
    /// The first such failure's message.
    pub message: String,
    /// How many more the scope met after it.
    #[serde(default)]
    pub more: u64,
}

impl DeferredFailure {
    /// The reasons a failure may be deferred with (a reason read back from a
    /// token is one of these, whatever the token says).
    pub const REASONS: &'static [&'static str] = &[
        "UPSTREAM_MALFORMED",
        "UPSTREAM_ERROR",
        "UPSTREAM_PERMISSION_DENIED",
        "UPSTREAM_NOT_FOUND",
        "UPSTREAM_UNAVAILABLE",
    ];

    /// The longest message kept (a token comes back from a client).
    const MAX_MESSAGE: usize = 1024;

    /// The scope error it ends its scope with.
    pub fn into_error(self) -> super::ScopeError {
        let reason = Self::REASONS
            .iter()
            .copied()
            .find(|r| *r == self.reason)
            .unwrap_or("UPSTREAM_ERROR");
        // Read back from a client's token: printable and bounded, as logged.
        let mut message: String = self
            .message
            .chars()
            .filter(|c| !c.is_control())
            .take(Self::MAX_MESSAGE)
            .collect();
        if self.more > 0 {
            message.push_str(&format!(" (and {} more such failures in this scope)", self.more));
        }
        super::ScopeError::Failed { reason, message }
    }
}

/// The running totals of a sync, as its summary reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Per kind (proto enum value): upserts sent, entities found unchanged.
    pub counts: Vec<(i32, u64, u64)>,
    /// Deletions sent.
    pub deletions: u64,
    /// Scopes ended OK.
    pub scopes_ok: u32,
    /// Scopes ended FAILED or RATE_LIMITED.
    pub scopes_failed: u32,
    /// Upstream requests sent.
    pub requests: u64,
    /// Upstream responses answered from the cache (304).
    pub cache_hits: u64,
}

/// A decoded checkpoint token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Connector id.
    pub connector: String,
    /// Request fingerprint.
    pub fingerprint: String,
    /// Scope key -> generation (sync id) of the state the client holds.
    pub baseline: BTreeMap<String, String>,
    /// Present in mid-stream checkpoints.
    pub resume: Option<ResumePoint>,
}

fn valid_generation(value: &str) -> bool {
    uuid::Uuid::parse_str(value).is_ok()
}

impl Token {
    /// Encodes the token.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        // Serializing plain owned data cannot fail.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// Decodes and checks a token for `connector` and `fingerprint`.
    pub fn decode(bytes: &[u8], connector: &str, fingerprint: &str) -> Result<Self, CheckpointError> {
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        let json = bytes.strip_prefix(MAGIC).ok_or(CheckpointError::Malformed)?;
        let token: Token = serde_json::from_slice(json).map_err(|_| CheckpointError::Malformed)?;
        let generations_ok = token.baseline.values().all(|g| valid_generation(g))
            && token.resume.as_ref().is_none_or(|r| {
                valid_generation(&r.sync_id)
                    && r.generation.as_deref().is_none_or(valid_generation)
                    && matches!(r.mode, 1 | 2)
                    && r.done.iter().all(|(_, g)| g.as_deref().is_none_or(valid_generation))
            });
        if !generations_ok {
            return Err(CheckpointError::Malformed);
        }
        if token.connector != connector {
            return Err(CheckpointError::OtherConnector(token.connector));
        }
        if token.fingerprint != fingerprint {
            return Err(CheckpointError::OtherRequest);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token {
            connector: "github".into(),
            fingerprint: "abc".into(),
            baseline: BTreeMap::from([("org:acme".into(), "0190f5a4-8c4e-7a6b-9d2e-1f0a2b3c4d5e".into())]),
            resume: None,
        }
    }

    #[test]
    fn round_trips() {
        let t = token();
        assert_eq!(Token::decode(&t.encode(), "github", "abc"), Ok(t));
    }

    #[test]
    fn rejects_garbage_foreign_and_oversized_tokens() {
        assert_eq!(
            Token::decode(b"garbage", "github", "abc"),
            Err(CheckpointError::Malformed)
        );
        assert_eq!(
            Token::decode(b"ckpt1:{not json", "github", "abc"),
            Err(CheckpointError::Malformed)
        );
        assert_eq!(
            Token::decode(&token().encode(), "gitlab", "abc"),
            Err(CheckpointError::OtherConnector("github".into()))
        );
        assert_eq!(
            Token::decode(&token().encode(), "github", "xyz"),
            Err(CheckpointError::OtherRequest)
        );
        assert_eq!(
            Token::decode(&vec![b'x'; MAX_TOKEN_BYTES + 1], "github", "abc"),
            Err(CheckpointError::TooLarge)
        );
        let mut bad = token();
        bad.baseline.insert("org:x".into(), "../../etc".into());
        assert_eq!(
            Token::decode(&bad.encode(), "github", "abc"),
            Err(CheckpointError::Malformed)
        );
    }
}
