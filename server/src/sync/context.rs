//! What a connector sees while it crawls one scope.

use std::collections::HashSet;

use connectors_proto::v1::{Deletion, Entity, EntityKind, Provenance, SyncEvent, SyncMode, Upsert, sync_event::Event};

use super::ScopeError;
use super::engine::Run;
use super::hash::content_hash;
use super::state::{Baseline, StateEntry};

/// Provenance details of one upsert that only the connector knows.
#[derive(Debug, Clone, Default)]
pub struct UpsertMeta {
    /// The upstream API operation ("repos/list-for-org").
    pub operation: &'static str,
    /// Upstream version marker (ETag, resourceVersion, push time).
    pub upstream_version: String,
}

impl UpsertMeta {
    /// Meta with an operation and a version.
    pub fn new(operation: &'static str, upstream_version: impl Into<String>) -> Self {
        Self {
            operation,
            upstream_version: upstream_version.into(),
        }
    }
}

/// The engine's side of one scope: connectors push into it.
pub struct ScopeContext<'a> {
    pub(super) run: &'a mut Run,
    pub(super) scope_key: String,
    pub(super) region: String,
    pub(super) baseline: Option<Baseline>,
    pub(super) resume_cursor: Option<String>,
    /// Entities of this scope so far (the new state), in order.
    pub(super) entries: Vec<StateEntry>,
    pub(super) seen: HashSet<String>,
    /// Entries already saved as resume chunks.
    pub(super) saved_entries: usize,
    pub(super) chunks: u32,
    pub(super) emitted: u64,
}

impl std::fmt::Debug for ScopeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeContext")
            .field("scope", &self.scope_key)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl ScopeContext<'_> {
    /// The effective mode: INCREMENTAL only when there is a baseline for this scope.
    pub fn mode(&self) -> SyncMode {
        if self.baseline.is_some() {
            SyncMode::Incremental
        } else {
            SyncMode::Full
        }
    }

    /// Whether the request wants entities of `kind` (fetch nothing for kinds it does not).
    pub fn wants(&self, kind: EntityKind) -> bool {
        self.run.kinds.contains(&kind)
    }

    /// The page cursor to resume this scope from, when resuming.
    pub fn resume_cursor(&self) -> Option<&str> {
        self.resume_cursor.as_deref()
    }

    /// The upstream version recorded for `urn` by the baseline sync
    /// (INCREMENTAL only): a connector whose upstream version of a parent is
    /// unchanged may skip refetching its children and call [`Self::retain_children`].
    pub fn prior_version(&self, urn: &str) -> Option<&str> {
        self.baseline
            .as_ref()?
            .by_urn
            .get(urn)
            .map(|entry| entry.version.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Declares that the children of `parent_urn` are unchanged since the
    /// baseline: they stay in the state without being refetched or emitted.
    /// Returns how many were retained.
    pub fn retain_children(&mut self, parent_urn: &str) -> usize {
        let Some(baseline) = &self.baseline else {
            return 0;
        };
        let Some(children) = baseline.children.get(parent_urn) else {
            return 0;
        };
        let mut retained = 0;
        for urn in children {
            if let Some(entry) = baseline.by_urn.get(urn) {
                if !self.run.kinds.iter().any(|k| *k as i32 == entry.kind) {
                    continue;
                }
                if self.seen.insert(urn.clone()) {
                    self.entries.push(entry.clone());
                    self.run.count_unchanged(entry.kind);
                    retained += 1;
                }
            }
        }
        retained
    }

    /// Whether the sync was cancelled (client gone, server draining).
    pub fn is_cancelled(&self) -> bool {
        self.run.events.is_closed()
    }

    fn provenance(&self, meta: &UpsertMeta, hash: String) -> Provenance {
        self.run.provenance(
            &self.scope_key,
            &self.region,
            meta.operation,
            meta.upstream_version.clone(),
            hash,
        )
    }

    /// Pushes one entity. Entities of kinds the request does not want are
    /// dropped; an entity already pushed in this scope is ignored; in an
    /// INCREMENTAL sync an entity whose hash equals the baseline's is counted
    /// as unchanged and not sent.
    pub async fn upsert(&mut self, entity: Entity, meta: UpsertMeta) -> Result<(), ScopeError> {
        let kind = EntityKind::try_from(entity.kind).unwrap_or(EntityKind::Unspecified);
        if !self.wants(kind) {
            return Ok(());
        }
        if !self.seen.insert(entity.urn.clone()) {
            tracing::debug!(urn = %entity.urn, "entity pushed twice in one scope; ignored");
            return Ok(());
        }
        let hash = content_hash(&entity);
        self.entries.push(StateEntry {
            urn: entity.urn.clone(),
            kind: entity.kind,
            hash: hash.clone(),
            parent: entity.parent_urn.clone(),
            version: meta.upstream_version.clone(),
        });
        let unchanged = self
            .baseline
            .as_ref()
            .and_then(|b| b.by_urn.get(&entity.urn))
            .is_some_and(|prior| prior.hash == hash);
        if unchanged {
            self.run.count_unchanged(entity.kind);
            return self.run.maybe_progress().await;
        }
        let provenance = self.provenance(&meta, hash);
        self.run.count_upsert(entity.kind);
        self.emitted += 1;
        let event = Event::Upsert(Upsert {
            entity: Some(entity),
            provenance: Some(provenance),
        });
        self.run.send(SyncEvent { event: Some(event) }).await?;
        self.run.maybe_progress().await
    }

    /// Marks a page boundary: everything pushed so far is durable, and a
    /// client that resumes from here restarts the scope at `cursor`.
    pub async fn checkpoint(&mut self, cursor: impl Into<String>) -> Result<(), ScopeError> {
        let cursor = cursor.into();
        let new_entries = &self.entries[self.saved_entries..];
        if !new_entries.is_empty() {
            let saved = self
                .run
                .store
                .save_chunk(
                    self.run.connector_id,
                    &self.run.sync_id,
                    &self.scope_key,
                    self.chunks,
                    new_entries,
                )
                .await;
            if !saved {
                // Without the chunk a resume could not account for these
                // entities; skip this checkpoint (the scope-end one still comes).
                return Ok(());
            }
            self.chunks += 1;
            self.saved_entries = self.entries.len();
        }
        let token = self.run.resume_token(Some((&self.scope_key, cursor, self.chunks)));
        self.run.send_checkpoint(token, &self.scope_key).await
    }

    /// Emits deletions for baseline entities not seen in this scope.
    pub(super) async fn emit_deletions(&mut self) -> Result<(), ScopeError> {
        let Some(baseline) = self.baseline.take() else {
            return Ok(());
        };
        let mut gone: Vec<&StateEntry> = baseline
            .by_urn
            .values()
            .filter(|entry| !self.seen.contains(&entry.urn))
            .filter(|entry| self.run.kinds.iter().any(|k| *k as i32 == entry.kind))
            .collect();
        gone.sort_by(|a, b| a.urn.cmp(&b.urn));
        for entry in gone {
            let provenance = self
                .run
                .provenance(&self.scope_key, &self.region, "", String::new(), String::new());
            self.run.deletions += 1;
            let event = Event::Deletion(Deletion {
                urn: entry.urn.clone(),
                kind: entry.kind,
                provenance: Some(provenance),
            });
            self.run.send(SyncEvent { event: Some(event) }).await?;
        }
        Ok(())
    }
}
