//! Per-scope entity state in the cache: for each entity of a scope its urn,
//! content hash, parent and upstream version, saved under the generation (sync
//! id) that produced it. INCREMENTAL syncs diff against it.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::SharedCache;

/// Partial state of a scope in progress is only needed to resume soon after a break.
const CHUNK_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the engine remembers of one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// Entity urn.
    pub urn: String,
    /// Entity kind (proto enum value).
    pub kind: i32,
    /// Content hash.
    pub hash: String,
    /// Parent urn ("" when none).
    pub parent: String,
    /// Upstream version marker ("" when none).
    pub version: String,
}

/// The state of one scope, in emission order.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ScopeState {
    /// Entries in the order they were emitted.
    pub entries: Vec<StateEntry>,
}

/// The baseline of one scope, indexed for diffs.
#[derive(Debug, Default)]
pub struct Baseline {
    /// urn -> entry.
    pub by_urn: HashMap<String, StateEntry>,
    /// parent urn -> child urns.
    pub children: HashMap<String, Vec<String>>,
}

impl Baseline {
    /// Indexes a saved state.
    pub fn new(state: ScopeState) -> Self {
        let mut baseline = Baseline::default();
        for entry in state.entries {
            if !entry.parent.is_empty() {
                baseline
                    .children
                    .entry(entry.parent.clone())
                    .or_default()
                    .push(entry.urn.clone());
            }
            baseline.by_urn.insert(entry.urn.clone(), entry);
        }
        baseline
    }
}

/// Reads and writes scope state and server-kept checkpoints.
#[derive(Debug, Clone)]
pub struct StateStore {
    cache: SharedCache,
    ttl: Duration,
}

fn short_hash(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..12])
}

impl StateStore {
    /// A store on `cache` whose entries live for `ttl`.
    pub fn new(cache: SharedCache, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    fn state_key(connector: &str, fingerprint: &str, scope: &str, generation: &str) -> String {
        format!("state:v1:{connector}:{fingerprint}:{}:{generation}", short_hash(scope))
    }

    fn chunk_key(connector: &str, sync_id: &str, scope: &str, chunk: u32) -> String {
        format!("pending:v1:{connector}:{sync_id}:{}:{chunk}", short_hash(scope))
    }

    fn checkpoint_key(connector: &str, state_key: &str) -> String {
        format!("checkpoint:v1:{connector}:{state_key}")
    }

    /// Loads the state of a scope at a generation; `None` when missing (expired or evicted).
    pub async fn load(&self, connector: &str, fingerprint: &str, scope: &str, generation: &str) -> Option<ScopeState> {
        let bytes = self
            .cache
            .get(&Self::state_key(connector, fingerprint, scope, generation))
            .await?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves the state of a scope at a generation. False when the cache refused it.
    pub async fn save(
        &self,
        connector: &str,
        fingerprint: &str,
        scope: &str,
        generation: &str,
        state: &ScopeState,
    ) -> bool {
        let Ok(bytes) = serde_json::to_vec(state) else {
            return false;
        };
        self.cache
            .set(
                &Self::state_key(connector, fingerprint, scope, generation),
                Bytes::from(bytes),
                Some(self.ttl),
            )
            .await
    }

    /// Saves a chunk of the state of a scope in progress (for resume).
    pub async fn save_chunk(
        &self,
        connector: &str,
        sync_id: &str,
        scope: &str,
        chunk: u32,
        entries: &[StateEntry],
    ) -> bool {
        let Ok(bytes) = serde_json::to_vec(entries) else {
            return false;
        };
        self.cache
            .set(
                &Self::chunk_key(connector, sync_id, scope, chunk),
                Bytes::from(bytes),
                Some(self.ttl.min(CHUNK_TTL)),
            )
            .await
    }

    /// Loads the chunks 0..count of a scope in progress; `None` if any is missing.
    pub async fn load_chunks(
        &self,
        connector: &str,
        sync_id: &str,
        scope: &str,
        count: u32,
    ) -> Option<Vec<StateEntry>> {
        let mut entries = Vec::new();
        for chunk in 0..count {
            let bytes = self
                .cache
                .get(&Self::chunk_key(connector, sync_id, scope, chunk))
                .await?;
            let mut part: Vec<StateEntry> = serde_json::from_slice(&bytes).ok()?;
            entries.append(&mut part);
        }
        Some(entries)
    }

    /// The checkpoint kept for a `state_key`.
    pub async fn load_checkpoint(&self, connector: &str, state_key: &str) -> Option<Bytes> {
        self.cache.get(&Self::checkpoint_key(connector, state_key)).await
    }

    /// Keeps the latest checkpoint for a `state_key`.
    pub async fn save_checkpoint(&self, connector: &str, state_key: &str, token: Vec<u8>) {
        self.cache
            .set(
                &Self::checkpoint_key(connector, state_key),
                Bytes::from(token),
                Some(self.ttl),
            )
            .await;
    }
}
