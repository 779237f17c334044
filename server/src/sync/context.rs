//! What a connector sees while it crawls one scope.

use connectors_proto::v1::{Deletion, Entity, EntityKind, Provenance, SyncEvent, SyncMode, sync_event::Event};
use tokio::sync::mpsc;

use super::ScopeError;
use super::checkpoint::DeferredFailure;
use super::encoded::EncodedEvent;
use super::engine::{RunInfo, ScopeItem};
use super::hash::content_hash_of;
use super::state::{Baseline, CHUNK_ENTRIES, PendingChunk, Prior, PushedUrns, SeenUrns};

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

/// Whether a resumed scope's listing starts again from its first page after
/// its first request, which carried a provider page token from the
/// checkpoint, was refused. Providers expire their page tokens (Google's
/// live 1 h to 72 h, depending on the API), so a client that resumes late
/// would otherwise have that scope fail for good. Entities the broken stream
/// sent are not sent again (the scope's saved chunks mark them pushed), and
/// the restarted listing sees every entity that is still there, so an
/// INCREMENTAL sync deletes none of them.
#[derive(Debug)]
pub struct ResumedCursor {
    /// The next request is the scope's first and carries the checkpoint's token.
    pending: bool,
}

impl ResumedCursor {
    /// `carries_token`: the scope resumes from a checkpoint whose cursor
    /// holds a provider page token (not a listing's first page).
    pub fn new(carries_token: bool) -> Self {
        Self { pending: carries_token }
    }

    /// Called after every listing request of the scope, in order, with
    /// whether the provider refused it as a bad request: true, once, when
    /// that was the first request and it carried the checkpoint's token.
    /// Then the caller lists again from the first page; a refusal after
    /// that (or in a scope not resumed) fails the scope as any error does.
    pub fn restart(&mut self, connector: &'static str, scope: &str, refused: bool) -> bool {
        let first = std::mem::take(&mut self.pending);
        if first && refused {
            tracing::warn!(
                connector,
                scope,
                "the page token of the checkpoint was refused (expired?); listing again from the first page"
            );
        }
        first && refused
    }
}

/// The engine's side of one scope: connectors push into it.
pub struct ScopeContext<'a> {
    pub(super) run: &'a RunInfo,
    /// Where this scope's items go, in order (the sync sends them in scope order).
    pub(super) items: mpsc::Sender<ScopeItem>,
    pub(super) scope_key: String,
    pub(super) region: String,
    pub(super) baseline: Option<Baseline>,
    pub(super) resume_cursor: Option<String>,
    /// Entities of this scope (the new state) pushed since the last saved
    /// chunk, in order; earlier ones are in the chunks `0..chunks`.
    pub(super) pending: PendingChunk,
    /// The urns pushed in this scope (saved or not).
    pub(super) seen: SeenUrns,
    /// The urns pushed in this scope, exactly: `None` until a match in
    /// `seen` first needs the saved chunks (see `pushed_before`).
    pub(super) pushed: Option<PushedUrns>,
    /// Reads of the saved chunks for `pushed` that failed.
    pub(super) failed_reads: u8,
    /// State chunks saved.
    pub(super) chunks: u32,
    /// False once a chunk could not be saved: the scope's state is then not
    /// saved, and no checkpoint points into it.
    pub(super) state_intact: bool,
    /// Entities in the state so far.
    pub(super) total: u64,
    pub(super) emitted: u64,
    /// Entities found unchanged and not yet reported, by kind.
    pub(super) unchanged: std::collections::BTreeMap<i32, u64>,
    /// The encoding of the entity being upserted (a buffer reused across upserts).
    pub(super) encoded: Vec<u8>,
    /// The provenance template of this scope's upserts (see `provenance_of`).
    pub(super) provenance: Option<Provenance>,
    /// A failure met in one item and gone past (`fail_when_done`).
    pub(super) failure: Option<DeferredFailure>,
}

/// Unchanged entities reported in one item at most.
const UNCHANGED_BATCH: u64 = 64;

/// Reads of a scope's saved chunks, to confirm that an entity was pushed,
/// that may fail before the scope stops trying: with the cache down each
/// would wait for it again, for every entity listed again.
const CHUNK_READS: u8 = 3;

impl std::fmt::Debug for ScopeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeContext")
            .field("scope", &self.scope_key)
            .field("entries", &self.total)
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
        self.run.wants_kind(kind as i32)
    }

    /// Notes a failure confined to one item of the scope (one repository's
    /// SBOM whose body does not parse) and lets the crawl go on: the rest of
    /// the scope is sent, then the scope ends FAILED with the first such
    /// failure (its message says how many more there were), so it keeps its
    /// baseline and sends no deletion. Checkpoints carry it, so a resumed
    /// scope ends so too. Only `ScopeError::Failed` with a reason of
    /// `DeferredFailure::REASONS` (`UPSTREAM_MALFORMED`, `_ERROR`,
    /// `_PERMISSION_DENIED`, `_NOT_FOUND`, `_UNAVAILABLE`) is deferred; any
    /// other error comes back as `Err`, to end the scope at once
    /// (`ctx.fail_when_done(e)?`). The
    /// connector keeps what the baseline has of the item (`retain`) and
    /// saves the item without its upstream version, so that the next sync
    /// fetches it again.
    pub fn fail_when_done(&mut self, error: ScopeError) -> Result<(), ScopeError> {
        let (reason, message) = match error {
            ScopeError::Failed { reason, message } if DeferredFailure::REASONS.contains(&reason) => (reason, message),
            other => return Err(other),
        };
        tracing::warn!(connector = self.run.connector_id, scope = %self.scope_key, reason, %message, "an item of the scope failed; the scope goes on and will end failed");
        match &mut self.failure {
            Some(first) => first.more += 1,
            None => {
                self.failure = Some(DeferredFailure {
                    reason: reason.to_owned(),
                    message,
                    more: 0,
                })
            }
        }
        Ok(())
    }

    /// The failure the scope ends with once the rest is sent, if any.
    pub(super) fn deferred_failure(&mut self) -> Option<ScopeError> {
        self.failure.take().map(DeferredFailure::into_error)
    }

    /// The page cursor to resume this scope from, when resuming.
    pub fn resume_cursor(&self) -> Option<&str> {
        self.resume_cursor.as_deref()
    }

    /// The upstream version recorded for `urn` by the baseline sync
    /// (INCREMENTAL only): a connector whose upstream version of a parent is
    /// unchanged may skip refetching its children and call [`Self::retain_children`].
    ///
    /// This and the other methods that read the baseline back
    /// (`retain_children`, `retain`, `prior_children`, `prior_unseen`) need
    /// a connector that says it does ([`super::Connector::reads_baseline`]):
    /// otherwise its baseline holds no urns nor versions, and they find nothing.
    pub fn prior_version(&self, urn: &str) -> Option<&str> {
        let baseline = self.baseline.as_ref()?;
        baseline.version_at(baseline.position(urn)?).filter(|v| !v.is_empty())
    }

    /// Declares that the children of `parent_urn` are unchanged since the
    /// baseline: they stay in the state without being refetched or emitted.
    /// Returns how many were retained.
    pub fn retain_children(&mut self, parent_urn: &str) -> usize {
        let children = match &self.baseline {
            Some(baseline) => baseline.children_of(parent_urn).to_vec(),
            None => return 0,
        };
        children
            .into_iter()
            .filter(|&position| self.retain_at(position))
            .count()
    }

    /// Declares that the baseline's entity `urn` is unchanged (a connector
    /// knows it from an upstream version, such as a blob sha): it stays in
    /// the state without being refetched or emitted. False when the baseline
    /// has no such entity, or it was pushed or retained already.
    pub fn retain(&mut self, urn: &str) -> bool {
        match self.baseline.as_ref().and_then(|b| b.position(urn)) {
            Some(position) => self.retain_at(position),
            None => false,
        }
    }

    /// [`Self::retain`] of the baseline's entity at `position`.
    fn retain_at(&mut self, position: u32) -> bool {
        debug_assert!(
            self.baseline.as_ref().is_none_or(Baseline::has_details),
            "retain needs a connector that reads its baseline (Connector::reads_baseline)"
        );
        if !self.baseline.as_ref().is_some_and(Baseline::has_details) {
            return false;
        }
        let Some(prior) = self.baseline.as_mut().and_then(|b| b.at_mut(position)) else {
            return false;
        };
        // Seen already (pushed, or retained before): the baseline's flag is exact.
        if prior.seen || !self.run.wants_kind(prior.kind) {
            return false;
        }
        prior.seen = true;
        let kind = prior.kind;
        if let Some(baseline) = &self.baseline
            && let Some(urn) = baseline.urn_at(position)
        {
            self.seen.insert(self.seen.fingerprint(&urn));
            if let Some(pushed) = &mut self.pushed {
                pushed.insert(&urn);
            }
            self.run.note_pushed(&urn);
            baseline.save_at(position, &mut self.pending);
        }
        self.note_unchanged(kind);
        self.total += 1;
        true
    }

    /// The baseline's children of `parent_urn` with their upstream versions.
    pub fn prior_children(&self, parent_urn: &str) -> impl Iterator<Item = (String, String)> + '_ {
        let children = self.baseline.as_ref().map(|b| (b, b.children_of(parent_urn)));
        children.into_iter().flat_map(|(b, positions)| {
            positions
                .iter()
                .filter_map(move |&i| Some((b.urn_at(i)?.into_owned(), b.version_at(i)?.to_owned())))
        })
    }

    /// The baseline's entities of `kind` not pushed or retained in this
    /// scope so far, as (urn, parent urn) in the baseline's order: what the
    /// scope's deletions would hold if it ended now. Empty without a baseline
    /// or for a kind the request does not want. A connector whose listing
    /// may skip entries (offset pagination while earlier rows are deleted)
    /// confirms these upstream before it returns, and pushes those still there.
    pub fn prior_unseen(&self, kind: EntityKind) -> Vec<(String, String)> {
        let Some(baseline) = self.baseline.as_ref().filter(|_| self.wants(kind)) else {
            return Vec::new();
        };
        (0..u32::try_from(baseline.entries().len()).unwrap_or(u32::MAX))
            .filter(|&i| {
                baseline
                    .at(i)
                    .is_some_and(|prior| !prior.seen && prior.kind == kind as i32)
            })
            .filter_map(|i| Some((baseline.urn_at(i)?.into_owned(), baseline.parent_at(i)?.to_owned())))
            .collect()
    }

    fn note_unchanged(&mut self, kind: i32) {
        *self.unchanged.entry(kind).or_default() += 1;
    }

    /// Reports the unchanged entities noted so far.
    pub(super) async fn flush_unchanged(&mut self) -> Result<(), ScopeError> {
        for (kind, count) in std::mem::take(&mut self.unchanged) {
            self.items
                .send(ScopeItem::Unchanged(kind, count))
                .await
                .map_err(|_| ScopeError::Cancelled)?;
        }
        Ok(())
    }

    /// Hands an item to the sync, after the unchanged entities noted before it.
    async fn send(&mut self, item: ScopeItem) -> Result<(), ScopeError> {
        self.flush_unchanged().await?;
        self.items.send(item).await.map_err(|_| ScopeError::Cancelled)
    }

    /// Whether `urn` was pushed (or retained) in this scope already, and
    /// records it as pushed. Exact: a fingerprint match is confirmed against
    /// the baseline's flags, the unsaved entries or the saved chunks.
    ///
    /// The saved chunks are read once, the first time a match needs them,
    /// into `pushed`, which every urn pushed after joins: a listing that
    /// restarts from its first page lists again every entity already sent,
    /// and reading the chunks for each was quadratic in the scope's size.
    /// A scope that never needs them builds nothing.
    async fn pushed_before(&mut self, urn: &str) -> bool {
        let fingerprint = self.seen.fingerprint(urn);
        let new = self.seen.insert(fingerprint);
        let before = !new && self.confirm_pushed(urn).await;
        if !before && let Some(pushed) = &mut self.pushed {
            pushed.insert(urn);
        }
        before
    }

    /// Whether `urn`, whose fingerprint matched, was pushed in this scope.
    async fn confirm_pushed(&mut self, urn: &str) -> bool {
        if let Some(prior) = self.baseline.as_ref().and_then(|b| b.get(urn)) {
            return prior.seen;
        }
        if let Some(pushed) = &self.pushed {
            return pushed.contains(urn);
        }
        if self.pending.contains_urn(urn) {
            return true;
        }
        match self.read_pushed().await {
            Some(pushed) => self.pushed.insert(pushed).contains(urn),
            // Without the chunks, sending an entity twice beats losing one.
            None => false,
        }
    }

    /// The urns of the saved chunks and the unsaved entries; `None` when the
    /// chunks could not be read (a failure counts towards [`CHUNK_READS`]).
    async fn read_pushed(&mut self) -> Option<PushedUrns> {
        if self.failed_reads >= CHUNK_READS {
            return None;
        }
        let mut pushed = PushedUrns::with_capacity(usize::try_from(self.total).unwrap_or_default());
        let read = self
            .run
            .store
            .visit_chunk_urns(
                self.run.connector_id,
                &self.run.generation,
                &self.scope_key,
                self.chunks,
                |urn| pushed.insert(urn),
            )
            .await;
        if !matches!(read, Ok(true)) {
            self.failed_reads += 1;
            tracing::warn!(connector = self.run.connector_id, scope = %self.scope_key, "the saved state chunks of the scope could not be read; entities listed again are sent again");
            return None;
        }
        for entry in self.pending.entries() {
            pushed.insert(&entry.urn);
        }
        Some(pushed)
    }

    /// Saves the unsaved entries as the next chunk of the scope's state.
    pub(super) async fn save_entries(&mut self) -> bool {
        if self.pending.is_empty() {
            return self.state_intact;
        }
        // Taken either way: memory stays bounded.
        let chunk = self.pending.take();
        let saved = self.state_intact
            && self
                .run
                .store
                .save_chunk(
                    self.run.connector_id,
                    &self.run.generation,
                    &self.scope_key,
                    self.chunks,
                    chunk,
                )
                .await;
        if saved {
            self.chunks += 1;
        } else if self.state_intact {
            tracing::warn!(connector = self.run.connector_id, scope = %self.scope_key, "a chunk of the scope state was not saved; the new state of the scope will not be saved");
            self.state_intact = false;
        }
        saved
    }

    /// Whether the sync was cancelled (client gone, server draining).
    pub fn is_cancelled(&self) -> bool {
        self.items.is_closed()
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
        if self.pushed_before(&entity.urn).await {
            tracing::debug!(urn = %entity.urn, "entity pushed twice in one scope; ignored");
            return Ok(());
        }
        self.run.note_pushed(&entity.urn);
        // The entity is encoded once: these bytes are hashed, then written
        // into the event as they are.
        super::encoded::encode_entity(&entity, &mut self.encoded);
        let hex = content_hash_of(&self.encoded);
        let hash = std::str::from_utf8(&hex).unwrap_or_default();
        let unchanged = match self.baseline.as_mut().and_then(|b| b.get_mut(&entity.urn)) {
            Some(prior) => {
                prior.seen = true;
                prior.same_hash(hash)
            }
            None => false,
        };
        let event = (!unchanged).then(|| {
            let provenance = provenance_of(
                &mut self.provenance,
                self.run,
                &self.scope_key,
                &self.region,
                &meta,
                hash,
            );
            super::encoded::upsert_event(&self.encoded, provenance)
        });
        self.pending.push(
            entity.kind,
            &entity.urn,
            hash,
            &entity.parent_urn,
            &meta.upstream_version,
        );
        self.total += 1;
        if self.pending.len() >= CHUNK_ENTRIES {
            self.save_entries().await;
        }
        let Some(event) = event else {
            self.note_unchanged(entity.kind);
            if self.unchanged.values().sum::<u64>() >= UNCHANGED_BATCH {
                self.flush_unchanged().await?;
            }
            return Ok(());
        };
        self.emitted += 1;
        self.send(ScopeItem::Upsert(entity.kind, event)).await
    }

    /// Marks a page boundary: everything pushed so far is durable, and a
    /// client that resumes from here restarts the scope at `cursor`.
    pub async fn checkpoint(&mut self, cursor: impl Into<String>) -> Result<(), ScopeError> {
        let cursor = cursor.into();
        if !self.save_entries().await {
            // Without every chunk a resume could not account for the entities
            // sent; skip this checkpoint (the scope-end one still comes).
            return Ok(());
        }
        let chunks = self.chunks;
        let failure = self.failure.clone();
        self.send(ScopeItem::Checkpoint {
            cursor,
            chunks,
            failure,
        })
        .await
    }

    /// Emits deletions for baseline entities not seen in this scope, except
    /// those another scope of the sync has pushed (or retained) by now: they
    /// moved there; and those another scope's baseline holds: that scope
    /// deletes them if they are gone. (One that another scope, which did not
    /// hold it, pushes later is deleted here and upserted there after, in
    /// scope order: the client ends up with it.)
    pub(super) async fn emit_deletions(&mut self) -> Result<(), ScopeError> {
        let Some(baseline) = self.baseline.take() else {
            return Ok(());
        };
        let mut gone = self.unseen(baseline).await?;
        gone.retain(|(urn, _)| !self.run.pushed_in_sync(urn));
        let held = if gone.is_empty() {
            None
        } else {
            self.run.held_urns().await.map_err(|error| ScopeError::Failed {
                reason: "STATE_UNAVAILABLE",
                message: format!(
                    "the states of the request's other scopes could not be read ({error}), so the deletions of scope {} could not be checked against them; sync again",
                    self.scope_key
                ),
            })?
        };
        if let Some(held) = held {
            let scope = self.scope_key.as_str();
            gone.retain(|(urn, _)| {
                !held
                    .iter()
                    .any(|(other, urns)| other != scope && urns.may_contain(urns.fingerprint(urn)))
            });
        }
        gone.sort_unstable();
        for (urn, kind) in gone {
            let provenance = self
                .run
                .provenance(&self.scope_key, &self.region, "", String::new(), String::new());
            let event = Event::Deletion(Deletion {
                urn,
                kind,
                provenance: Some(provenance),
            });
            self.send(ScopeItem::Deletion(EncodedEvent::from(SyncEvent {
                event: Some(event),
            })))
            .await?;
        }
        Ok(())
    }

    /// The baseline's entities of wanted kinds this scope did not push or
    /// retain, as (urn, kind). A baseline without details holds no urns:
    /// they are read again from the saved state, only when some entity was
    /// left unseen; when it cannot be read (gone from the cache since the
    /// scope began) the scope fails, keeping its baseline, rather than send
    /// no deletion.
    async fn unseen(&self, mut baseline: Baseline) -> Result<Vec<(String, i32)>, ScopeError> {
        let wanted = |prior: &Prior| !prior.seen && self.run.wants_kind(prior.kind);
        if baseline.has_details() {
            return Ok((0..u32::try_from(baseline.entries().len()).unwrap_or(u32::MAX))
                .filter(|&i| baseline.at(i).is_some_and(wanted))
                .filter_map(|i| Some((baseline.urn_at(i)?.into_owned(), baseline.at(i)?.kind)))
                .collect());
        }
        if !baseline.entries().iter().any(wanted) {
            return Ok(Vec::new());
        }
        let mut gone = Vec::new();
        let generation = baseline.generation().to_owned();
        let read = self
            .run
            .store
            .visit_urns(
                self.run.connector_id,
                &self.run.fingerprint,
                &self.scope_key,
                &generation,
                |urn| {
                    // Marked seen once taken: a urn saved twice is one deletion.
                    if let Some(prior) = baseline.get_mut(urn).filter(|prior| wanted(prior)) {
                        prior.seen = true;
                        gone.push((urn.to_owned(), prior.kind));
                    }
                },
            )
            .await;
        let why = match read {
            Ok(true) => return Ok(gone),
            Ok(false) => "it is no longer in the cache".to_owned(),
            Err(error) => error.to_string(),
        };
        Err(ScopeError::Failed {
            reason: "STATE_UNAVAILABLE",
            message: format!(
                "the baseline state of scope {} could not be read again to find its deletions ({why}); sync again",
                self.scope_key
            ),
        })
    }
}

/// The provenance of an upsert: the scope's template (the fields every upsert
/// of the scope shares, made at its first upsert) with this upsert's fields
/// written in place, so that no string is allocated per upsert.
fn provenance_of<'t>(
    template: &'t mut Option<Provenance>,
    run: &RunInfo,
    scope: &str,
    region: &str,
    meta: &UpsertMeta,
    hash: &str,
) -> &'t Provenance {
    let template = template.get_or_insert_with(|| run.provenance(scope, region, "", String::new(), String::new()));
    template.fetch_time = Some(super::engine::now());
    for (field, value) in [
        (&mut template.operation, meta.operation),
        (&mut template.upstream_version, meta.upstream_version.as_str()),
        (&mut template.content_hash, hash),
    ] {
        field.clear();
        field.push_str(value);
    }
    template
}
