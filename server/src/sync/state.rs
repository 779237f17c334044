//! Per-scope entity state in the cache: for each entity of a scope its urn,
//! content hash, parent and upstream version, saved under the generation (sync
//! id) that produced it. INCREMENTAL syncs diff against it.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{CacheError, SharedCache};

/// Entries per state chunk: a scope's state is written to the cache as it
/// grows, so a sync holds at most this many entries of it in memory.
pub const CHUNK_ENTRIES: usize = 1024;

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

/// What is stored under a scope's state key: the state itself (as written
/// before chunked states), or how many chunks of the generation hold it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Chunked { chunks: u32 },
    Whole(ScopeState),
}

#[derive(Serialize)]
struct Manifest {
    chunks: u32,
}

/// One entity of a baseline, and whether this sync has pushed (or retained)
/// it. Kept compactly: a baseline holds every entity of its scope while an
/// INCREMENTAL sync of it runs. Its urn is not kept here, only 128 bits
/// identifying it ([`Baseline::urn_at`] gives it whole when the baseline
/// keeps details).
#[derive(Debug)]
pub struct Prior {
    /// Two randomly keyed 64-bit hashes of the urn by two algorithms
    /// (foldhash, SipHash): two urns of a scope share both with a chance of
    /// about n² / 2^129 (4e-28 at 500k); SipHash alone, a keyed function,
    /// keeps it below n² / 2^65 (7e-9) whatever the urns.
    id: [u64; 2],
    /// The first 16 bytes of the content hash (saved as 64 hex digits): an
    /// entity is unchanged when they are the same.
    hash: [u8; 16],
    /// Entity kind (proto enum value).
    pub kind: i32,
    /// Seen again in this sync.
    pub seen: bool,
}

/// What a baseline that keeps details holds of one entity besides its
/// [`Prior`]: enough to save it again as it was, for connectors that read
/// their baseline back ([`crate::sync::Connector::reads_baseline`]).
#[derive(Debug)]
struct Detail {
    /// The urn past its first `shared` bytes.
    urn_rest: Box<str>,
    /// How many first bytes of the urn are those of its parent's urn (an ECR
    /// image's urn is its repository's and `@sha256:...`): they are not
    /// stored again.
    shared: u16,
    /// Index of its parent in `Details::parents`; `NO_PARENT` when none.
    parent: u32,
    /// The last 16 bytes of the content hash.
    hash_rest: [u8; 16],
    /// Upstream version marker ("" when none).
    version: Box<str>,
}

const NO_PARENT: u32 = u32::MAX;

/// The first bytes of `urn` that are those of `parent` (at a character
/// boundary, at most `u16::MAX`).
fn shared_prefix(parent: &str, urn: &str) -> usize {
    let mut n = parent
        .bytes()
        .zip(urn.bytes())
        .take_while(|(a, b)| a == b)
        .count()
        .min(usize::from(u16::MAX));
    while !urn.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// The bytes of a hex content hash; `None` when it is not 64 hex digits.
fn hash_bytes(hex_hash: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut bytes).ok()?;
    Some(bytes)
}

/// The halves of a 32-byte hash.
fn halves(bytes: [u8; 32]) -> ([u8; 16], [u8; 16]) {
    let mut head = [0u8; 16];
    let mut rest = [0u8; 16];
    head.copy_from_slice(&bytes[..16]);
    rest.copy_from_slice(&bytes[16..]);
    (head, rest)
}

impl Prior {
    /// Whether the content hash `hex_hash` (64 hex digits) is this entity's.
    pub fn same_hash(&self, hex_hash: &str) -> bool {
        hash_bytes(hex_hash).is_some_and(|bytes| halves(bytes).0 == self.hash)
    }
}

/// The details of a baseline's entities, in the same order, and their
/// parents.
#[derive(Default)]
struct Details {
    entries: Vec<Detail>,
    /// Distinct parent urns, with the positions of their children.
    parents: Vec<(Box<str>, Vec<u32>)>,
    /// Positions in `parents`, by urn.
    by_parent: hashbrown::HashTable<u32>,
    hasher: foldhash::quality::RandomState,
}

impl Details {
    fn parent_position(&mut self, parent: String) -> u32 {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(&*parent);
        let parents = &self.parents;
        if let Some(&i) = self.by_parent.find(hash, |&i| *parents[i as usize].0 == *parent) {
            return i;
        }
        let i = u32::try_from(self.parents.len()).unwrap_or(u32::MAX);
        self.parents.push((parent.into_boxed_str(), Vec::new()));
        let (parents, hasher) = (&self.parents, &self.hasher);
        self.by_parent
            .insert_unique(hash, i, |&j| hasher.hash_one(&*parents[j as usize].0));
        i
    }

    /// The detail of `entry`, its parent noted.
    fn detail(&mut self, entry: StateEntry, hash_rest: [u8; 16]) -> Detail {
        let parent = if entry.parent.is_empty() {
            NO_PARENT
        } else {
            self.parent_position(entry.parent)
        };
        let shared = self
            .parents
            .get(parent as usize)
            .map_or(0, |(parent, _)| shared_prefix(parent, &entry.urn));
        Detail {
            urn_rest: Box::from(&entry.urn[shared..]),
            shared: u16::try_from(shared).unwrap_or(0),
            parent,
            hash_rest,
            version: entry.version.into_boxed_str(),
        }
    }

    fn parent_of(&self, detail: &Detail) -> &str {
        self.parents.get(detail.parent as usize).map_or("", |(urn, _)| urn)
    }

    fn urn_of<'a>(&'a self, detail: &'a Detail) -> std::borrow::Cow<'a, str> {
        let head = self
            .parents
            .get(detail.parent as usize)
            .and_then(|(parent, _)| parent.get(..usize::from(detail.shared)))
            .unwrap_or_default();
        match head {
            "" => std::borrow::Cow::Borrowed(&detail.urn_rest),
            head => std::borrow::Cow::Owned([head, &detail.urn_rest].concat()),
        }
    }
}

/// The baseline of one scope, indexed for diffs: per entity 128 bits
/// identifying its urn, half its content hash, its kind and a flag (40
/// bytes, and about 6 in the index), found by urn through an index of
/// positions. Its urns are not held: the deletions are found by reading
/// the saved state again ([`StateStore::visit_urns`]), only when the sync
/// has left some of the baseline's entities unseen. After a no-change
/// INCREMENTAL sync of the 1M-entity estate (its AWS half one scope of 500k)
/// the server's peak was 132 MiB with urns held, 71 MiB without (README,
/// "Performance", seventeenth round).
///
/// A baseline with details (for connectors that read it back: GitHub's
/// tree entries by blob sha, GitLab's pipelines by project activity) keeps
/// besides each urn (less what it shares with its parent's urn), the rest
/// of the hash, the version and each parent's children, so that an entity
/// can be retained (saved again as it was) and its deletions are found in
/// memory.
pub struct Baseline {
    entries: Vec<Prior>,
    /// Positions in `entries`, by the first half of their id.
    by_urn: hashbrown::HashTable<u32>,
    details: Option<Details>,
    ids: (foldhash::quality::RandomState, std::hash::RandomState),
    /// The generation the baseline was read from.
    generation: String,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("entries", &self.entries.len())
            .field("details", &self.details.is_some())
            .field("generation", &self.generation)
            .finish()
    }
}

impl Baseline {
    /// An empty baseline of the state saved at `generation`; with
    /// `details`, it keeps each entity's urn, version and parent.
    pub fn empty(generation: &str, details: bool) -> Self {
        Baseline {
            entries: Vec::new(),
            by_urn: hashbrown::HashTable::new(),
            details: details.then(Details::default),
            ids: Default::default(),
            generation: generation.to_owned(),
        }
    }

    /// Indexes a saved state, with details.
    #[cfg(test)]
    pub fn new(state: ScopeState) -> Self {
        let mut baseline = Baseline::empty("", true);
        baseline.extend(state.entries);
        baseline
    }

    fn id(&self, urn: &str) -> [u64; 2] {
        use std::hash::BuildHasher;
        [self.ids.0.hash_one(urn), self.ids.1.hash_one(urn)]
    }

    /// Adds saved entries (a later entry of the same urn replaces the earlier).
    pub fn extend(&mut self, entries: Vec<StateEntry>) {
        self.entries.reserve(entries.len());
        for entry in entries {
            let id = self.id(&entry.urn);
            let existing = &self.entries;
            let found = self.by_urn.find(id[0], |&i| existing[i as usize].id == id).copied();
            let (hash, hash_rest) = halves(hash_bytes(&entry.hash).unwrap_or_default());
            let prior = Prior {
                id,
                hash,
                kind: entry.kind,
                seen: false,
            };
            let detail = self.details.as_mut().map(|details| details.detail(entry, hash_rest));
            let position = match found {
                Some(i) => {
                    self.entries[i as usize] = prior;
                    i
                }
                None => {
                    let i = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
                    self.entries.push(prior);
                    let entries = &self.entries;
                    self.by_urn.insert_unique(id[0], i, |&j| entries[j as usize].id[0]);
                    i
                }
            };
            if let (Some(details), Some(detail)) = (self.details.as_mut(), detail) {
                if let Some((_, children)) = details.parents.get_mut(detail.parent as usize) {
                    children.push(position);
                }
                match details.entries.get_mut(position as usize) {
                    Some(slot) => *slot = detail,
                    None => details.entries.push(detail),
                }
            }
        }
    }

    /// The generation the baseline was read from.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// Whether the baseline keeps its entities' urns, versions and parents.
    pub fn has_details(&self) -> bool {
        self.details.is_some()
    }

    /// The position of the entity `urn`, if the baseline has it.
    pub fn position(&self, urn: &str) -> Option<u32> {
        let id = self.id(urn);
        let entries = &self.entries;
        self.by_urn.find(id[0], |&i| entries[i as usize].id == id).copied()
    }

    /// The entity `urn`, if the baseline has it.
    pub fn get(&self, urn: &str) -> Option<&Prior> {
        self.at(self.position(urn)?)
    }

    /// Marks the entities at `positions` (from [`Self::position`]) seen.
    pub fn mark_seen(&mut self, positions: &[u32]) {
        for &i in positions {
            if let Some(prior) = self.entries.get_mut(i as usize) {
                prior.seen = true;
            }
        }
    }

    /// The entity `urn`, if the baseline has it, to mark it seen.
    pub fn get_mut(&mut self, urn: &str) -> Option<&mut Prior> {
        let i = self.position(urn)?;
        self.entries.get_mut(i as usize)
    }

    /// The entity at `position` (from [`Self::position`] or [`Self::children_of`]).
    pub fn at(&self, position: u32) -> Option<&Prior> {
        self.entries.get(position as usize)
    }

    /// The entity at `position`, to mark it seen.
    pub fn at_mut(&mut self, position: u32) -> Option<&mut Prior> {
        self.entries.get_mut(position as usize)
    }

    fn detail_at(&self, position: u32) -> Option<(&Details, &Detail)> {
        let details = self.details.as_ref()?;
        Some((details, details.entries.get(position as usize)?))
    }

    /// The urn of the entity at `position`; `None` without details.
    pub fn urn_at(&self, position: u32) -> Option<std::borrow::Cow<'_, str>> {
        self.detail_at(position).map(|(details, detail)| details.urn_of(detail))
    }

    /// The parent urn of the entity at `position` ("" when none); `None`
    /// without details.
    pub fn parent_at(&self, position: u32) -> Option<&str> {
        self.detail_at(position)
            .map(|(details, detail)| details.parent_of(detail))
    }

    /// The upstream version of the entity at `position` ("" when none);
    /// `None` without details.
    pub fn version_at(&self, position: u32) -> Option<&str> {
        self.detail_at(position).map(|(_, detail)| &*detail.version)
    }

    /// The positions of the children of `parent_urn`, in state order (none
    /// without details).
    pub fn children_of(&self, parent_urn: &str) -> &[u32] {
        use std::hash::BuildHasher;
        let Some(details) = &self.details else {
            return &[];
        };
        let parents = &details.parents;
        details
            .by_parent
            .find(details.hasher.hash_one(parent_urn), |&i| {
                *parents[i as usize].0 == *parent_urn
            })
            .map(|&i| parents[i as usize].1.as_slice())
            .unwrap_or_default()
    }

    /// Every entity, in state order.
    pub fn entries(&self) -> &[Prior] {
        &self.entries
    }

    /// Appends the entity at `position` to a chunk of the new state, as it
    /// was saved; false without details.
    pub fn save_at(&self, position: u32, chunk: &mut PendingChunk) -> bool {
        let (Some(prior), Some((details, detail))) = (self.at(position), self.detail_at(position)) else {
            return false;
        };
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&prior.hash);
        bytes[16..].copy_from_slice(&detail.hash_rest);
        let mut hex_hash = [0u8; 64];
        // 32 bytes always fit 64 hex digits, which are ASCII.
        let hash = match hex::encode_to_slice(bytes, &mut hex_hash) {
            Ok(()) => std::str::from_utf8(&hex_hash).unwrap_or_default(),
            Err(_) => "",
        };
        chunk.push(
            prior.kind,
            &details.urn_of(detail),
            hash,
            details.parent_of(detail),
            &detail.version,
        );
        true
    }
}

/// The urns pushed in a scope, exactly, in about 4 bytes each. Each urn has
/// a 64-bit fingerprint (foldhash's quality hasher, randomly seeded per
/// scope) whose top 44 bits are its key: new keys go into a small set of
/// recent fingerprints, which is merged now and then into a sorted sequence.
/// A key match is only a candidate: the caller confirms it against the
/// entries themselves, so a collision (about n² / 2^45 of them in a scope of
/// n urns: 0.007 at 500k) costs a lookup, never an entity.
///
/// The sorted sequence is bucketed on the keys' top [`BUCKET_BITS`] bits: an
/// index gives each bucket's range, and the sequence stores only the 32 bits
/// below (the bucket is where an entry is). A lookup reads one index slot and
/// searches one bucket, instead of a binary search over megabytes whose every
/// step missed the cache (4% of the server's CPU in an AWS-shaped sync). The
/// prefix is fixed so that no bit is ever dropped (an index that grew its
/// prefix would lose the low bits it no longer stored).
#[derive(Debug, Default)]
pub struct SeenUrns {
    keys: foldhash::quality::RandomState,
    /// The 32 bits of each key below its bucket, bucket by bucket, sorted.
    sorted: Segmented,
    /// `index[b]..index[b + 1]` holds bucket `b`; empty until the first merge.
    index: Vec<u32>,
    /// Fingerprints are uniform already: the fast hasher is enough.
    recent: std::collections::HashSet<u64, foldhash::fast::RandomState>,
}

/// The urns pushed (or retained) in one scope, each as the first 128 bits of
/// its SHA-256: what confirms a [`SeenUrns`] match once the scope's saved
/// chunks were needed, without reading them again. A listing that restarts
/// from its first page after a resume (Kubernetes' 410, a stale page token)
/// lists again every entity already sent; reading every chunk to confirm each
/// one was quadratic in the scope's size.
///
/// Built only when a match first needs the chunks, so a scope whose urns
/// do not come again pays nothing for it; then 16 bytes per urn of the
/// scope, 19 to 39 with the hash set's control bytes and spare room (17 MiB
/// for 500k urns, and the old table beside the new while it grows): an
/// INCREMENTAL sync's baseline holds more per entity. Digests rather than
/// urns (80 bytes or more each), and 128 bits rather than 64: two urns share
/// a digest with a chance of about n² / 2^129 (4e-28 at 500k), and the
/// second would then be dropped; at 64 bits that was 0.007.
#[derive(Debug, Default)]
pub struct PushedUrns(std::collections::HashSet<u128, foldhash::fast::RandomState>);

impl PushedUrns {
    /// Room for `capacity` urns.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(std::collections::HashSet::with_capacity_and_hasher(
            capacity,
            foldhash::fast::RandomState::default(),
        ))
    }

    fn digest(urn: &str) -> u128 {
        let sha = Sha256::digest(urn.as_bytes());
        let mut head = [0u8; 16];
        head.copy_from_slice(&sha[..16]);
        u128::from_le_bytes(head)
    }

    /// Records `urn`.
    pub fn insert(&mut self, urn: &str) {
        self.0.insert(Self::digest(urn));
    }

    /// Whether `urn` was recorded (exact but for a shared digest, above).
    pub fn contains(&self, urn: &str) -> bool {
        self.0.contains(&Self::digest(urn))
    }
}

/// The urns pushed or retained in any scope of one INCREMENTAL sync, shared
/// by its scope tasks (which run concurrently): a scope's baseline entity
/// that another scope of the sync has pushed moved there (a GitHub
/// repository transferred between two requested orgs keeps its urn) and is
/// not deleted. A [`SeenUrns`], so about 4 bytes per entity of the sync (1M
/// entities: 4 MiB, plus a 16 KiB index), besides each scope's own. Not
/// confirmed against the entries (they are in other scopes' chunks): an
/// entity really gone matches another urn's key with a chance of about n /
/// 2^44 (n entities in the sync: 6e-8 at 1M), and its deletion is then not
/// sent.
#[derive(Debug, Default)]
pub struct SyncUrns(std::sync::Mutex<SeenUrns>);

impl SyncUrns {
    fn seen(&self) -> std::sync::MutexGuard<'_, SeenUrns> {
        // The set stays consistent whatever a panicking holder did (an
        // insert either happened or not).
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `urn` was pushed (or retained) in a scope of the sync.
    pub fn insert(&self, urn: &str) {
        let mut seen = self.seen();
        let fingerprint = seen.fingerprint(urn);
        seen.insert(fingerprint);
    }

    /// The fingerprint of `urn`, for [`Self::insert_fingerprints`].
    pub fn fingerprint(&self, urn: &str) -> u64 {
        self.seen().fingerprint(urn)
    }

    /// Records urns by their fingerprints.
    pub fn insert_fingerprints(&self, fingerprints: &[u64]) {
        let mut seen = self.seen();
        for &fingerprint in fingerprints {
            seen.insert(fingerprint);
        }
    }

    /// Whether `urn` was pushed (or retained) in a scope of the sync.
    pub fn contains(&self, urn: &str) -> bool {
        let seen = self.seen();
        seen.may_contain(seen.fingerprint(urn))
    }
}

/// The bucket prefix of a key: 4,096 buckets (a 16 KiB index, only for a
/// scope of at least 4,096 urns).
const BUCKET_BITS: u32 = 12;
/// The bits of a fingerprint that make its key.
const KEY_BITS: u32 = BUCKET_BITS + 32;

/// The bucket and the stored 32 bits of a fingerprint's key.
fn split_key(fingerprint: u64) -> (usize, u32) {
    let key = fingerprint >> (64 - KEY_BITS);
    // Both fit: the bucket has BUCKET_BITS bits, the rest 32.
    ((key >> 32) as usize, key as u32)
}

/// Entries per full segment of [`Segmented`] (256 KiB).
const SEGMENT: usize = 1 << 16;

/// A sequence of 32-bit entries in segments of [`SEGMENT`] (the last one
/// shorter): it grows by adding a segment, never by moving what it holds. (A
/// `Vec` moves everything when it grows and, for that moment, holds both
/// copies: for a scope of 500k urns, 2 MiB more at the peak on every merge.)
#[derive(Debug, Default)]
struct Segmented {
    segments: Vec<Vec<u32>>,
    len: usize,
}

impl Segmented {
    fn get(&self, pos: usize) -> u32 {
        self.segments[pos / SEGMENT][pos % SEGMENT]
    }

    fn set(&mut self, pos: usize, value: u32) {
        self.segments[pos / SEGMENT][pos % SEGMENT] = value;
    }

    /// Extends the sequence to `len` (the new places hold zeros).
    fn grow(&mut self, len: usize) {
        while self.len < len {
            let last = match self.segments.last_mut() {
                Some(last) if last.len() < SEGMENT => last,
                _ => {
                    self.segments.push(Vec::new());
                    self.segments.last_mut().expect("just pushed")
                }
            };
            let add = (SEGMENT - last.len()).min(len - self.len);
            last.reserve_exact(add);
            last.resize(last.len() + add, 0);
            self.len += add;
        }
    }

    /// Whether `value` is in the sorted range `lo..hi`.
    fn contains(&self, mut lo: usize, mut hi: usize, value: u32) -> bool {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(&value) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

impl SeenUrns {
    /// The fingerprint of `urn`.
    pub fn fingerprint(&self, urn: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.keys, urn)
    }

    /// Whether a urn with this fingerprint may have been seen (its key is
    /// there: a urn never inserted matches with a chance of about n / 2^44).
    pub fn may_contain(&self, fingerprint: u64) -> bool {
        self.recent.contains(&fingerprint) || self.in_sorted(fingerprint)
    }

    fn in_sorted(&self, fingerprint: u64) -> bool {
        if self.index.is_empty() {
            return false;
        }
        let (bucket, low) = split_key(fingerprint);
        self.sorted
            .contains(self.index[bucket] as usize, self.index[bucket + 1] as usize, low)
    }

    /// Records a fingerprint; true when it is certainly new: its key is not
    /// in the sorted sequence, and it is not among the recent fingerprints
    /// (one lookup for both questions).
    pub fn insert(&mut self, fingerprint: u64) -> bool {
        if self.in_sorted(fingerprint) || !self.recent.insert(fingerprint) {
            return false;
        }
        // Merging when `recent` reaches a sixteenth of `sorted` keeps merges
        // O(n log n) overall and `recent` small.
        if self.recent.len() >= (self.sorted.len / 16).max(4096) {
            self.merge();
        }
        true
    }

    /// Moves `recent` into `sorted`, in place from the back, and rebuilds
    /// the index from the buckets' new sizes.
    fn merge(&mut self) {
        let buckets = 1usize << BUCKET_BITS;
        if self.index.is_empty() {
            self.index = vec![0; buckets + 1];
        }
        let mut new: Vec<u64> = self.recent.drain().map(|fp| fp >> (64 - KEY_BITS)).collect();
        new.sort_unstable();
        let mut sizes: Vec<u32> = self.index.windows(2).map(|w| w[1] - w[0]).collect();
        for key in &new {
            sizes[(key >> 32) as usize] += 1;
        }
        let old_len = self.sorted.len;
        self.sorted.grow(old_len + new.len());
        // `bucket` is the bucket of the old entry at `i - 1` (walking down).
        let (mut i, mut j, mut k) = (old_len, new.len(), self.sorted.len);
        let mut bucket = buckets - 1;
        while j > 0 {
            let old = (i > 0).then(|| {
                while self.index[bucket] as usize > i - 1 {
                    bucket -= 1;
                }
                ((bucket as u64) << 32) | u64::from(self.sorted.get(i - 1))
            });
            // Keys are BUCKET_BITS + 32 bits: the low 32 are what is stored.
            match old {
                Some(old) if old > new[j - 1] => {
                    self.sorted.set(k - 1, old as u32);
                    i -= 1;
                }
                _ => {
                    self.sorted.set(k - 1, new[j - 1] as u32);
                    j -= 1;
                }
            }
            k -= 1;
        }
        let mut start = 0u32;
        for (b, size) in sizes.into_iter().enumerate() {
            self.index[b] = start;
            start += size;
        }
        self.index[buckets] = start;
    }
}

/// The first bytes of a binary state chunk (a JSON chunk, as written by
/// older servers, starts with `[`).
const CHUNK_MAGIC: &[u8] = b"\xC5SC1";

/// A state chunk: the magic, the number of entries (u32), then per entry its
/// kind (i32) and urn, hash, parent and version, each a u32 length and UTF-8
/// (integers little endian).
/// No escaping or parsing of JSON on the hot path.
#[cfg(test)]
fn encode_chunk(entries: &[StateEntry]) -> Vec<u8> {
    let mut chunk = PendingChunk::default();
    for entry in entries {
        chunk.push_entry(entry);
    }
    chunk.take().to_vec()
}

/// The entries of a scope not saved yet, written as the chunk they will be
/// saved as, one upsert at a time: no `StateEntry` (four strings) per entity,
/// and no copy when the chunk is saved.
#[derive(Debug)]
pub struct PendingChunk {
    buf: Vec<u8>,
    count: u32,
}

impl Default for PendingChunk {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl PendingChunk {
    fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(CHUNK_MAGIC.len() + 4));
        buf.extend_from_slice(CHUNK_MAGIC);
        // The count, written by `take`.
        buf.extend_from_slice(&[0; 4]);
        Self { buf, count: 0 }
    }

    /// Appends an entry.
    pub fn push(&mut self, kind: i32, urn: &str, hash: &str, parent: &str, version: &str) {
        self.buf.extend_from_slice(&kind.to_le_bytes());
        for field in [urn, hash, parent, version] {
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf.extend_from_slice(&field.as_bytes()[..len as usize]);
        }
        self.count += 1;
    }

    /// Appends a copy of `entry`.
    #[cfg(test)]
    pub fn push_entry(&mut self, entry: &StateEntry) {
        self.push(entry.kind, &entry.urn, &entry.hash, &entry.parent, &entry.version);
    }

    /// Entries pushed since the last `take`.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no entry was pushed since the last `take`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether an entry with this urn was pushed since the last `take` (a
    /// rare question: it decodes the chunk).
    pub fn contains_urn(&self, urn: &str) -> bool {
        self.entries().iter().any(|e| e.urn == urn)
    }

    /// The entries pushed since the last `take`, decoded.
    pub fn entries(&self) -> Vec<StateEntry> {
        let mut bytes = self.buf.clone();
        bytes[CHUNK_MAGIC.len()..CHUNK_MAGIC.len() + 4].copy_from_slice(&self.count.to_le_bytes());
        let mut entries = Vec::new();
        // Written by `push`: it decodes.
        let _ = decode_chunk(&bytes, &mut entries);
        entries
    }

    /// The chunk of the entries pushed so far; the next one starts empty,
    /// with room for as many bytes.
    pub fn take(&mut self) -> Bytes {
        let count = self.count.to_le_bytes();
        self.buf[CHUNK_MAGIC.len()..CHUNK_MAGIC.len() + 4].copy_from_slice(&count);
        let next = Self::with_capacity(self.buf.len());
        Bytes::from(std::mem::replace(self, next).buf)
    }
}

/// Appends the entries of a chunk (binary, or JSON from older servers) to
/// `entries`; `None` when it is malformed.
fn decode_chunk(bytes: &[u8], entries: &mut Vec<StateEntry>) -> Option<()> {
    let Some(mut rest) = bytes.strip_prefix(CHUNK_MAGIC) else {
        let mut part: Vec<StateEntry> = serde_json::from_slice(bytes).ok()?;
        entries.append(&mut part);
        return Some(());
    };
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        *rest = tail;
        Some(head)
    }
    fn text(rest: &mut &[u8]) -> Option<String> {
        let len = u32::from_le_bytes(take(rest, 4)?.try_into().ok()?);
        String::from_utf8(take(rest, usize::try_from(len).ok()?)?.to_vec()).ok()
    }
    let count = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
    for _ in 0..count {
        let kind = i32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
        entries.push(StateEntry {
            kind,
            urn: text(&mut rest)?,
            hash: text(&mut rest)?,
            parent: text(&mut rest)?,
            version: text(&mut rest)?,
        });
    }
    rest.is_empty().then_some(())
}

/// Reads and writes scope state and server-kept checkpoints.
#[derive(Debug, Clone)]
pub struct StateStore {
    cache: SharedCache,
    ttl: Duration,
    /// How long the chunks of a scope in progress live until the scope
    /// completes (then they are its state, and live `ttl`).
    resume_ttl: Duration,
    /// How many of the newest saved states of each scope live `ttl`.
    generations: usize,
}

/// How long a sync that stopped before its scopes completed can be resumed,
/// unless configured (`CONNECTORS_RESUME_TTL_SECS`).
pub const DEFAULT_RESUME_TTL: Duration = Duration::from_secs(24 * 3600);

/// How many of the newest saved states of each scope are kept for the state
/// TTL, unless configured (`CONNECTORS_STATE_GENERATIONS`).
pub const DEFAULT_GENERATIONS: usize = 8;

fn short_hash(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..12])
}

impl StateStore {
    /// A store on `cache` whose entries live for `ttl`; the chunks of scopes
    /// in progress for [`DEFAULT_RESUME_TTL`] (at most `ttl`).
    pub fn new(cache: SharedCache, ttl: Duration) -> Self {
        Self {
            cache,
            ttl,
            resume_ttl: DEFAULT_RESUME_TTL.min(ttl),
            generations: DEFAULT_GENERATIONS,
        }
    }

    /// The same store, keeping the newest `generations` (at least 1) saved
    /// states of each scope for the state TTL (see [`Self::retain`]).
    pub fn with_generations(mut self, generations: usize) -> Self {
        self.generations = generations.max(1);
        self
    }

    /// The same store, with the chunks of scopes in progress living
    /// `resume_ttl` (at most the state's TTL) until their scope completes.
    pub fn with_resume_ttl(mut self, resume_ttl: Duration) -> Self {
        self.resume_ttl = resume_ttl.min(self.ttl);
        self
    }

    fn state_key(connector: &str, fingerprint: &str, scope: &str, generation: &str) -> String {
        format!("state:v1:{connector}:{fingerprint}:{}:{generation}", short_hash(scope))
    }

    fn generations_key(connector: &str, fingerprint: &str, scope: &str) -> String {
        format!("generations:v1:{connector}:{fingerprint}:{}", short_hash(scope))
    }

    fn chunk_key(connector: &str, sync_id: &str, scope: &str, chunk: u32) -> String {
        format!("pending:v1:{connector}:{sync_id}:{}:{chunk}", short_hash(scope))
    }

    fn shared_key(generation: &str) -> String {
        format!("generations:v1:shared:{generation}")
    }

    /// Marks `generation` as held by more than one client (a coalesced
    /// crawl's followers got the same checkpoints as its leader): a sync
    /// that moves past it does not make it expire early, since another
    /// client may still go on from it; it expires once beyond the scope's
    /// newest generations, or at the state TTL.
    pub async fn mark_shared(&self, generation: &str) {
        self.cache
            .set(&Self::shared_key(generation), Bytes::from_static(b"1"), Some(self.ttl))
            .await;
    }

    fn checkpoint_key(connector: &str, state_key: &str) -> String {
        format!("checkpoint:v1:{connector}:{state_key}")
    }

    /// Loads the state of a scope at a generation as a baseline, a chunk at a
    /// time (the decoded entries of one chunk at most are held beside it),
    /// with or without `details` ([`Baseline`]); `None` when missing (expired
    /// or evicted), an error when the cache could not be read.
    pub async fn load_baseline(
        &self,
        connector: &str,
        fingerprint: &str,
        scope: &str,
        generation: &str,
        details: bool,
    ) -> Result<Option<Baseline>, CacheError> {
        let Some(bytes) = self
            .cache
            .read(&Self::state_key(connector, fingerprint, scope, generation))
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes).ok() {
            None => Ok(None),
            Some(Stored::Whole(state)) => {
                let mut baseline = Baseline::empty(generation, details);
                baseline.extend(state.entries);
                Ok(Some(baseline))
            }
            Some(Stored::Chunked { chunks }) => {
                let mut baseline = Baseline::empty(generation, details);
                let read = self
                    .read_chunks(connector, generation, scope, chunks, |entries| {
                        baseline.extend(std::mem::take(entries));
                    })
                    .await?;
                Ok(read.map(|()| baseline))
            }
        }
    }

    /// Hands the urn of every entity of the state of a scope at a generation
    /// to `each`, a chunk at a time; false when it is missing (expired or
    /// evicted), an error when the cache could not be read.
    pub async fn visit_urns(
        &self,
        connector: &str,
        fingerprint: &str,
        scope: &str,
        generation: &str,
        mut each: impl FnMut(&str),
    ) -> Result<bool, CacheError> {
        let Some(bytes) = self
            .cache
            .read(&Self::state_key(connector, fingerprint, scope, generation))
            .await?
        else {
            return Ok(false);
        };
        match serde_json::from_slice(&bytes) {
            Ok(Stored::Whole(state)) => {
                state.entries.iter().for_each(|entry| each(&entry.urn));
                Ok(true)
            }
            Ok(Stored::Chunked { chunks }) => Ok(self
                .read_chunks(connector, generation, scope, chunks, |entries| {
                    entries.iter().for_each(|entry| each(&entry.urn));
                })
                .await?
                .is_some()),
            Err(_) => Ok(false),
        }
    }

    /// Saves the state of a scope at a generation: its entries are the
    /// generation's chunks `0..chunks` (written by [`Self::save_chunk`] while the
    /// scope was synced). False when the cache refused it.
    pub async fn save(&self, connector: &str, fingerprint: &str, scope: &str, generation: &str, chunks: u32) -> bool {
        let Ok(bytes) = serde_json::to_vec(&Manifest { chunks }) else {
            return false;
        };
        // The chunks become the state: they live as long as it does. One
        // already gone (a scope that ran past the resume TTL) is no state.
        let kept = futures::stream::iter(0..chunks)
            .map(|chunk| async move {
                self.cache
                    .expire(&Self::chunk_key(connector, generation, scope, chunk), self.ttl)
                    .await
            })
            .buffer_unordered(16)
            .all(|kept| async move { kept })
            .await;
        if !kept {
            return false;
        }
        self.cache
            .set(
                &Self::state_key(connector, fingerprint, scope, generation),
                Bytes::from(bytes),
                Some(self.ttl),
            )
            .await
    }

    /// Makes the state of a scope at `generation` (its manifest and chunks)
    /// expire `ttl` from now; a zero `ttl` removes it. For the state a
    /// client's checkpoint has moved past: without this every sync's state
    /// stayed for the whole state TTL, although only the newest is read.
    pub async fn supersede(&self, connector: &str, fingerprint: &str, scope: &str, generation: &str, ttl: Duration) {
        let key = Self::state_key(connector, fingerprint, scope, generation);
        let Some(bytes) = self.cache.get(&key).await else {
            return;
        };
        if let Ok(Stored::Chunked { chunks }) = serde_json::from_slice(&bytes) {
            futures::stream::iter(0..chunks)
                .for_each_concurrent(16, |chunk| async move {
                    self.cache
                        .expire(&Self::chunk_key(connector, generation, scope, chunk), ttl)
                        .await;
                })
                .await;
        }
        self.cache.expire(&key, ttl).await;
    }

    /// Records `generation`, just saved, as the newest state of a scope, and
    /// makes the states it replaces expire `grace` from now: `moved_past`
    /// (the one the sync's checkpoint held, unless other clients hold it too:
    /// [`Self::mark_shared`]) and every one beyond the scope's
    /// newest `generations`. Without the second, the state of every sync no
    /// checkpoint was sent on from (FULL syncs without one, a checkpoint a
    /// client dropped) lived the whole state TTL.
    ///
    /// The scope's list of generations is read, then written: of two
    /// replicas recording the same scope at the same moment one may miss the
    /// other's generation, which then lives the state TTL (as every one did
    /// before); none is removed early.
    pub async fn retain(
        &self,
        connector: &str,
        fingerprint: &str,
        scope: &str,
        generation: &str,
        moved_past: Option<&str>,
        grace: Duration,
    ) {
        let key = Self::generations_key(connector, fingerprint, scope);
        let listed = self.cache.get(&key).await.unwrap_or_default();
        // A generation other clients hold stays one of the newest.
        let moved_past = match moved_past {
            Some(old) if self.cache.get(&Self::shared_key(old)).await.is_some() => None,
            other => other,
        };
        let mut newest = vec![generation];
        for older in std::str::from_utf8(&listed).unwrap_or_default().lines() {
            if !newest.contains(&older) && Some(older) != moved_past {
                newest.push(older);
            }
        }
        let beyond = newest.split_off(self.generations.min(newest.len()));
        self.cache
            .set(&key, Bytes::from(newest.join("\n")), Some(self.ttl))
            .await;
        for old in moved_past.into_iter().chain(beyond) {
            self.supersede(connector, fingerprint, scope, old, grace).await;
        }
    }

    /// Saves a chunk of the state of a scope in progress: what a resume
    /// restarts from, kept for the resume TTL. Once the scope completes,
    /// [`Self::save`] keeps its chunks as long as states: the chunks of a sync
    /// that never completed (its client gone, never resumed) used to be kept
    /// that long too.
    pub async fn save_chunk(&self, connector: &str, sync_id: &str, scope: &str, chunk: u32, bytes: Bytes) -> bool {
        self.cache
            .set(
                &Self::chunk_key(connector, sync_id, scope, chunk),
                bytes,
                Some(self.resume_ttl),
            )
            .await
    }

    /// Copies chunks `0..count` of a scope in progress from generation
    /// `from` to `to` (a resumed stream goes on under a generation of its
    /// own); an error when one could not be read or stored.
    pub async fn copy_chunks(
        &self,
        connector: &str,
        from: &str,
        to: &str,
        scope: &str,
        count: u32,
    ) -> Result<(), CacheError> {
        for chunk in 0..count {
            let bytes = self
                .cache
                .read(&Self::chunk_key(connector, from, scope, chunk))
                .await?
                .ok_or_else(|| CacheError::Backend(format!("chunk {chunk} is gone")))?;
            if !self.save_chunk(connector, to, scope, chunk, bytes).await {
                return Err(CacheError::Backend(format!("chunk {chunk} was not stored")));
            }
        }
        Ok(())
    }

    /// The entries of chunks `0..count` of a scope in progress; `None` when
    /// one is missing (expired or evicted), an error when the cache could
    /// not be read.
    #[cfg(test)]
    pub async fn load_chunks(
        &self,
        connector: &str,
        sync_id: &str,
        scope: &str,
        count: u32,
    ) -> Result<Option<Vec<StateEntry>>, CacheError> {
        let mut all = Vec::new();
        let read = self
            .read_chunks(connector, sync_id, scope, count, |entries| all.append(entries))
            .await?;
        Ok(read.map(|()| all))
    }

    /// Hands the urn of every entity of chunks `0..count` of a scope in
    /// progress to `each`, a chunk at a time (the decoded entries of one
    /// chunk at most are held); false when one is missing (expired or
    /// evicted), an error when the cache could not be read.
    pub async fn visit_chunk_urns(
        &self,
        connector: &str,
        sync_id: &str,
        scope: &str,
        count: u32,
        mut each: impl FnMut(&str),
    ) -> Result<bool, CacheError> {
        let read = self
            .read_chunks(connector, sync_id, scope, count, |entries| {
                entries.iter().for_each(|entry| each(&entry.urn));
            })
            .await?;
        Ok(read.is_some())
    }

    /// Reads the chunks 0..count of a generation in order, handing each
    /// one's decoded entries to `each`; `None` if any is missing or
    /// malformed, an error when the cache could not be read.
    async fn read_chunks(
        &self,
        connector: &str,
        generation: &str,
        scope: &str,
        count: u32,
        mut each: impl FnMut(&mut Vec<StateEntry>),
    ) -> Result<Option<()>, CacheError> {
        let mut entries = Vec::new();
        for chunk in 0..count {
            let Some(bytes) = self
                .cache
                .read(&Self::chunk_key(connector, generation, scope, chunk))
                .await?
            else {
                return Ok(None);
            };
            if decode_chunk(&bytes, &mut entries).is_none() {
                return Ok(None);
            }
            each(&mut entries);
            entries.clear();
        }
        Ok(Some(()))
    }

    /// The checkpoint kept for a `state_key`; an error when the cache could
    /// not be read.
    pub async fn load_checkpoint(&self, connector: &str, state_key: &str) -> Result<Option<Bytes>, CacheError> {
        self.cache.read(&Self::checkpoint_key(connector, state_key)).await
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

#[cfg(test)]
mod tests {
    use super::{PendingChunk, SeenUrns, StateEntry, StateStore, decode_chunk, encode_chunk};
    use sha2::{Digest, Sha256};

    #[test]
    fn state_chunks_and_checkpoints_are_kept_apart_from_fetched_bodies() {
        use crate::cache::is_kept;
        assert!(is_kept(&StateStore::state_key("github", "f00d", "org:acme", "g1")));
        assert!(is_kept(&StateStore::chunk_key("github", "sync-1", "org:acme", 3)));
        assert!(is_kept(&StateStore::generations_key("github", "f00d", "org:acme")));
        assert!(is_kept(&StateStore::checkpoint_key("github", "nightly")));
    }

    fn entry(i: u32) -> StateEntry {
        StateEntry {
            urn: format!("urn:connectors:aws:asset:arn:aws:ecr:us-east-1:1:repository/r@sha256:{i:064}"),
            kind: 7,
            // A content hash is a SHA-256 digest.
            hash: hex::encode(Sha256::digest(i.to_le_bytes())),
            parent: if i.is_multiple_of(2) {
                String::new()
            } else {
                "urn:connectors:aws:asset:p \"q\" ü".into()
            },
            version: if i.is_multiple_of(3) {
                "W/\"e\"".into()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn a_baseline_finds_each_entity_and_its_children_and_saves_them_as_they_were() {
        use super::Baseline;
        let entries: Vec<StateEntry> = (0..100).map(entry).collect();
        let mut baseline = Baseline::empty("", true);
        // Two chunks, as a baseline is loaded.
        baseline.extend(entries[..60].to_vec());
        baseline.extend(entries[60..].to_vec());
        assert_eq!(baseline.entries().len(), 100);
        for original in &entries {
            let position = baseline.position(&original.urn).expect("every urn is found");
            let prior = baseline.at(position).unwrap();
            assert_eq!(
                (
                    &*baseline.urn_at(position).unwrap(),
                    prior.kind,
                    baseline.version_at(position).unwrap()
                ),
                (original.urn.as_str(), 7, original.version.as_str())
            );
            assert_eq!(baseline.parent_at(position), Some(original.parent.as_str()));
            assert!(prior.same_hash(&original.hash));
            assert!(!prior.same_hash(&entry(1000).hash));
            // Retained entries go into the next state exactly as they were saved.
            let mut chunk = PendingChunk::default();
            assert!(baseline.save_at(position, &mut chunk));
            let mut saved = Vec::new();
            assert_eq!(decode_chunk(&chunk.take(), &mut saved), Some(()));
            assert_eq!(saved, std::slice::from_ref(original));
        }
        assert!(baseline.get("urn:connectors:aws:asset:absent").is_none());
        // The 50 odd entries share one parent: its children, in state order.
        let children: Vec<String> = baseline
            .children_of("urn:connectors:aws:asset:p \"q\" ü")
            .iter()
            .map(|&i| baseline.urn_at(i).unwrap().into_owned())
            .collect();
        let odd: Vec<&str> = entries.iter().skip(1).step_by(2).map(|e| e.urn.as_str()).collect();
        assert_eq!(children, odd);
        assert_eq!(baseline.children_of("urn:connectors:aws:asset:absent"), &[] as &[u32]);
        // Seen flags are per entity.
        baseline.get_mut(&entries[3].urn).unwrap().seen = true;
        let seen: Vec<String> = (0..100)
            .filter(|&i| baseline.at(i).unwrap().seen)
            .map(|i| baseline.urn_at(i).unwrap().into_owned())
            .collect();
        assert_eq!(seen, [entries[3].urn.as_str()]);
    }

    #[test]
    fn a_baseline_without_details_finds_each_entity_by_urn_and_hash_only() {
        use super::Baseline;
        let entries: Vec<StateEntry> = (0..100).map(entry).collect();
        let mut baseline = Baseline::empty("g1", false);
        baseline.extend(entries[..60].to_vec());
        baseline.extend(entries[60..].to_vec());
        assert_eq!((baseline.entries().len(), baseline.generation()), (100, "g1"));
        for (i, original) in entries.iter().enumerate() {
            let position = baseline.position(&original.urn).expect("every urn is found");
            assert_eq!(position as usize, i);
            let prior = baseline.at(position).unwrap();
            assert!(prior.same_hash(&original.hash) && !prior.same_hash(&entry(1000).hash));
            // Nothing to read back, nor to save again.
            assert_eq!(
                (
                    baseline.urn_at(position),
                    baseline.version_at(position),
                    baseline.parent_at(position)
                ),
                (None, None, None)
            );
            assert!(!baseline.save_at(position, &mut PendingChunk::default()));
        }
        assert_eq!(
            baseline.children_of("urn:connectors:aws:asset:p \"q\" ü"),
            &[] as &[u32]
        );
        assert!(baseline.get("urn:connectors:aws:asset:absent").is_none());
        // Only the first half of the hash is kept: one differing in its last
        // byte only is the same.
        let mut near = entries[5].hash.clone();
        near.replace_range(62.., "ff");
        assert_ne!(near, entries[5].hash);
        assert!(baseline.get(&entries[5].urn).unwrap().same_hash(&near));
    }

    #[test]
    fn a_urn_shares_with_its_parent_only_whole_characters() {
        use super::{Baseline, shared_prefix};
        // "é" and "è" share their first byte.
        assert_eq!(shared_prefix("urn:x:é", "urn:x:è/1"), 6);
        assert_eq!(shared_prefix("urn:x:repo", "urn:x:repo@sha256:0"), 10);
        assert_eq!(shared_prefix("urn:x:repo", "urn:y"), 4);
        assert_eq!(shared_prefix("", "urn:y"), 0);
        let mut child = entry(0);
        child.urn = "urn:x:è/1".into();
        child.parent = "urn:x:é".into();
        let mut image = entry(2);
        image.urn = "urn:x:repo@sha256:0".into();
        image.parent = "urn:x:repo".into();
        let baseline = Baseline::new(super::ScopeState {
            entries: vec![child.clone(), image.clone()],
        });
        for original in [&child, &image] {
            let position = baseline.position(&original.urn).unwrap();
            assert_eq!(baseline.urn_at(position).unwrap(), original.urn);
        }
        assert!(baseline.get("urn:x:è/").is_none() && baseline.get("urn:x:repo@sha256:").is_none());
    }

    #[test]
    fn a_urn_saved_twice_is_one_baseline_entity_the_later_one() {
        use super::Baseline;
        let first = entry(1);
        let mut later = entry(1);
        later.hash = entry(42).hash;
        later.parent = "urn:connectors:aws:asset:other".into();
        let baseline = Baseline::new(super::ScopeState {
            entries: vec![first.clone(), entry(2), later.clone()],
        });
        // One entity (one deletion if unseen), with the later hash and parent.
        assert_eq!(baseline.entries().len(), 2);
        let position = baseline.position(&first.urn).unwrap();
        let prior = baseline.at(position).unwrap();
        assert!(prior.same_hash(&later.hash) && !prior.same_hash(&first.hash));
        assert_eq!(baseline.parent_at(position), Some(later.parent.as_str()));
        let mut lean = Baseline::empty("", false);
        lean.extend(vec![first.clone(), entry(2), later.clone()]);
        assert_eq!(lean.entries().len(), 2);
        assert!(lean.get(&first.urn).unwrap().same_hash(&later.hash));
    }

    #[test]
    fn state_chunks_round_trip_and_json_chunks_still_load() {
        let entries: Vec<StateEntry> = (0..100).map(entry).collect();
        let bytes = encode_chunk(&entries);
        assert_eq!(&bytes[..8], b"\xC5SC1\x64\0\0\0");
        let mut decoded = Vec::new();
        assert_eq!(decode_chunk(&bytes, &mut decoded), Some(()));
        assert_eq!(decoded, entries);
        // Appends: two chunks read in a row are both there, in order.
        assert_eq!(decode_chunk(&bytes, &mut decoded), Some(()));
        assert_eq!(decoded.len(), 200);
        assert_eq!(decoded[100], entries[0]);
        // A chunk an older server wrote as JSON.
        let json = serde_json::to_vec(&entries[..3]).unwrap();
        let mut old = Vec::new();
        assert_eq!(decode_chunk(&json, &mut old), Some(()));
        assert_eq!(old, entries[..3]);
        // Truncated anywhere: malformed, never a short read taken as whole.
        // `first` ends the first entry exactly: the count catches that too.
        let e = &entries[0];
        let first = 8 + 4 + 4 * 4 + e.urn.len() + e.hash.len() + e.parent.len() + e.version.len();
        assert_eq!(encode_chunk(&entries[..1]).len(), first);
        let mut one = Vec::new();
        assert_eq!(decode_chunk(&[&bytes[..first], &[]].concat(), &mut one), None);
        for cut in [5, 9, first, bytes.len() - 1] {
            assert_eq!(decode_chunk(&bytes[..cut], &mut Vec::new()), None, "cut at {cut}");
        }
        // Trailing bytes are malformed too.
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_chunk(&longer, &mut Vec::new()), None);
        assert_eq!(encode_chunk(&[]), b"\xC5SC1\0\0\0\0");
    }

    #[test]
    fn a_pending_chunk_is_taken_whole_and_starts_again_empty() {
        let entries: Vec<StateEntry> = (0..10).map(entry).collect();
        let mut pending = PendingChunk::default();
        assert!(pending.is_empty());
        for e in &entries[..6] {
            pending.push(e.kind, &e.urn, &e.hash, &e.parent, &e.version);
        }
        assert_eq!(pending.len(), 6);
        assert!(pending.contains_urn(&entries[5].urn));
        assert!(!pending.contains_urn(&entries[6].urn));
        let first = pending.take();
        assert_eq!(&first[..], &encode_chunk(&entries[..6])[..]);
        assert!(pending.is_empty());
        assert!(!pending.contains_urn(&entries[0].urn), "taken with the chunk");
        for e in &entries[6..] {
            pending.push_entry(e);
        }
        let second = pending.take();
        let mut decoded = Vec::new();
        assert_eq!(decode_chunk(&first, &mut decoded), Some(()));
        assert_eq!(decode_chunk(&second, &mut decoded), Some(()));
        assert_eq!(decoded, entries);
        assert_eq!(&pending.take()[..], b"\xC5SC1\0\0\0\0");
    }

    /// The keys of `seen`'s sorted sequence, rebuilt from its buckets.
    fn sorted_keys(seen: &SeenUrns) -> Vec<u64> {
        let mut keys = Vec::new();
        for (bucket, range) in seen.index.windows(2).enumerate() {
            for pos in range[0] as usize..range[1] as usize {
                keys.push(((bucket as u64) << 32) | u64::from(seen.sorted.get(pos)));
            }
        }
        keys
    }

    /// The lowest bit of a fingerprint's key: fingerprints that differ there
    /// have different keys.
    const KEY_LOW_BIT: u64 = 1 << (64 - super::KEY_BITS);

    #[test]
    fn seen_urns_find_every_inserted_fingerprint_across_merges() {
        let mut seen = SeenUrns::default();
        let urns: Vec<String> = (0..20_000).map(|i| format!("urn:connectors:x:asset:{i}")).collect();
        for urn in &urns {
            let fp = seen.fingerprint(urn);
            assert!(seen.insert(fp), "{urn} is new");
            assert!(!seen.insert(fp), "{urn} was inserted already");
        }
        assert_eq!(seen.sorted.len + seen.recent.len(), urns.len());
        // Merged: 4,096 recent, then each sixteenth.
        assert!(seen.sorted.len >= 16_384, "{}", seen.sorted.len);
        assert_eq!(seen.index.len(), (1 << super::BUCKET_BITS) + 1);
        assert_eq!(*seen.index.last().unwrap() as usize, seen.sorted.len);
        assert!(urns.iter().all(|u| seen.may_contain(seen.fingerprint(u))));
        let absent = (20_000..21_000)
            .filter(|i| seen.may_contain(seen.fingerprint(&format!("urn:connectors:x:asset:{i}"))))
            .count();
        assert_eq!(absent, 0);
        let keys = sorted_keys(&seen);
        assert_eq!(keys.len(), seen.sorted.len);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn seen_urns_grow_by_whole_segments_without_moving_them() {
        let mut seen = SeenUrns::default();
        let count = 2 * super::SEGMENT as u64 + 12_345;
        let fingerprints = (0..count).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !KEY_LOW_BIT);
        let mut first_segment = None;
        for fp in fingerprints.clone() {
            assert!(seen.insert(fp));
            if first_segment.is_none() && seen.sorted.segments.first().is_some_and(|s| s.len() == super::SEGMENT) {
                first_segment = Some(seen.sorted.segments[0].as_ptr());
            }
        }
        // Every merge after the first segment filled left it where it was.
        assert_eq!(seen.sorted.segments[0].as_ptr(), first_segment.expect("a full segment"));
        let lengths: Vec<usize> = seen.sorted.segments.iter().map(Vec::len).collect();
        assert_eq!(lengths.len(), 3);
        assert_eq!(&lengths[..2], &[super::SEGMENT, super::SEGMENT]);
        assert_eq!(lengths.iter().sum::<usize>(), seen.sorted.len);
        assert_eq!(seen.sorted.len + seen.recent.len(), count as usize);
        let keys = sorted_keys(&seen);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for fp in fingerprints {
            assert!(seen.may_contain(fp), "{fp:#x} present");
            assert!(!seen.may_contain(fp | KEY_LOW_BIT), "{:#x} absent", fp | KEY_LOW_BIT);
            assert!(!seen.insert(fp));
        }
    }

    #[test]
    fn seen_urns_agree_with_a_hash_set_at_the_bucket_edges() {
        // Fingerprints spread over every bucket, both ends of the range and
        // the edges between buckets; absent ones differ in the key's lowest bit.
        let mut seen = SeenUrns::default();
        let mut model = std::collections::HashSet::new();
        let mut present = Vec::new();
        for i in 0u64..40_000 {
            present.push(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !KEY_LOW_BIT);
        }
        let bucket = 1u64 << (64 - super::BUCKET_BITS);
        present.extend([0, !KEY_LOW_BIT, bucket, bucket - 2 * KEY_LOW_BIT, 1 << 63]);
        for &fp in &present {
            assert_eq!(seen.insert(fp), model.insert(fp));
        }
        // Everything in the sorted sequence.
        seen.merge();
        assert!(seen.recent.is_empty());
        assert_eq!(seen.sorted.len, model.len());
        for &fp in &present {
            assert!(seen.may_contain(fp), "{fp:#x} present");
            // Below the key: the same key, found.
            assert!(seen.may_contain(fp ^ 1), "{:#x} shares a key", fp ^ 1);
            assert!(!seen.may_contain(fp | KEY_LOW_BIT), "{:#x} absent", fp | KEY_LOW_BIT);
        }
        // The first and the last bucket hold what they should.
        let keys = sorted_keys(&seen);
        assert_eq!(keys.first(), Some(&0));
        assert_eq!(keys.last(), Some(&(!KEY_LOW_BIT >> (64 - super::KEY_BITS))));
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
