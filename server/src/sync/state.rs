//! Per-scope entity state in the cache: for each entity of a scope its urn,
//! content hash, parent and upstream version, saved under the generation (sync
//! id) that produced it. INCREMENTAL syncs diff against it.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::SharedCache;

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

/// One entity of a baseline, and whether this sync has pushed (or retained) it.
#[derive(Debug)]
pub struct BaselineEntry {
    /// The entry as saved.
    pub entry: StateEntry,
    /// Seen again in this sync.
    pub seen: bool,
}

/// The baseline of one scope, indexed for diffs.
#[derive(Debug, Default)]
pub struct Baseline {
    /// urn -> entry.
    pub by_urn: HashMap<String, BaselineEntry, foldhash::quality::RandomState>,
    /// parent urn -> child urns.
    pub children: HashMap<String, Vec<String>, foldhash::quality::RandomState>,
}

impl Baseline {
    /// Indexes a saved state.
    pub fn new(state: ScopeState) -> Self {
        let mut baseline = Baseline::default();
        baseline.by_urn.reserve(state.entries.len());
        for entry in state.entries {
            if !entry.parent.is_empty() {
                baseline
                    .children
                    .entry(entry.parent.clone())
                    .or_default()
                    .push(entry.urn.clone());
            }
            baseline
                .by_urn
                .insert(entry.urn.clone(), BaselineEntry { entry, seen: false });
        }
        baseline
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

    /// Whether a urn with this fingerprint may have been seen.
    #[cfg(test)]
    fn may_contain(&self, fingerprint: u64) -> bool {
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
        let mut bytes = self.buf.clone();
        bytes[CHUNK_MAGIC.len()..CHUNK_MAGIC.len() + 4].copy_from_slice(&self.count.to_le_bytes());
        let mut entries = Vec::new();
        decode_chunk(&bytes, &mut entries).is_some() && entries.iter().any(|e| e.urn == urn)
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
        match serde_json::from_slice(&bytes).ok()? {
            Stored::Whole(state) => Some(state),
            Stored::Chunked { chunks } => Some(ScopeState {
                entries: self.load_chunks(connector, generation, scope, chunks).await?,
            }),
        }
    }

    /// Saves the state of a scope at a generation: its entries are the
    /// generation's chunks `0..chunks` (written by [`Self::save_chunk`] while the
    /// scope was synced). False when the cache refused it.
    pub async fn save(&self, connector: &str, fingerprint: &str, scope: &str, generation: &str, chunks: u32) -> bool {
        let Ok(bytes) = serde_json::to_vec(&Manifest { chunks }) else {
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

    /// Saves a chunk of the state of a scope in progress. Chunks are the
    /// state of the scope once it completes (and what a resume restarts
    /// from before that), so they live as long as states.
    pub async fn save_chunk(&self, connector: &str, sync_id: &str, scope: &str, chunk: u32, bytes: Bytes) -> bool {
        self.cache
            .set(
                &Self::chunk_key(connector, sync_id, scope, chunk),
                bytes,
                Some(self.ttl),
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
            decode_chunk(&bytes, &mut entries)?;
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

#[cfg(test)]
mod tests {
    use super::{PendingChunk, SeenUrns, StateEntry, StateStore, decode_chunk, encode_chunk};

    #[test]
    fn state_chunks_and_checkpoints_are_kept_apart_from_fetched_bodies() {
        use crate::cache::is_kept;
        assert!(is_kept(&StateStore::state_key("github", "f00d", "org:acme", "g1")));
        assert!(is_kept(&StateStore::chunk_key("github", "sync-1", "org:acme", 3)));
        assert!(is_kept(&StateStore::checkpoint_key("github", "nightly")));
    }

    fn entry(i: u32) -> StateEntry {
        StateEntry {
            urn: format!("urn:connectors:aws:asset:arn:aws:ecr:us-east-1:1:repository/r@sha256:{i:064}"),
            kind: 7,
            hash: format!("{i:064x}"),
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
