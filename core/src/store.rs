//! The etcd-like MVCC store: "the disk" of the simulated control plane.
//!
//! [`Store`] is a pure, deterministic data structure. It does no I/O and reads no clock: virtual
//! time comes in as a `now_ns` argument where a rule needs it (leases, time-based compaction).
//! A simulated etcd component wraps it later; API server replicas talk to that component. Because
//! the store models what etcd keeps on disk, it survives API-server crashes unchanged.
//!
//! # Semantics (as etcd's `mvcc` package)
//!
//! - One global revision. The empty store is at revision 1, as etcd's is, so the first write gets
//!   revision 2. Every successful write (or transaction that changes something) increments it by
//!   one; a failed or no-op write leaves it alone.
//! - Each key carries `create_revision` (the revision that created this incarnation of the key),
//!   `mod_revision` (the revision of its last change) and `version` (writes since creation,
//!   starting at 1; a delete resets the key so a re-create starts at 1 again).
//! - All operations of one transaction share one revision, as in etcd. A transaction may touch a
//!   key at most once, so every key's history has strictly increasing revisions.
//! - `compact(r)` keeps revision `r` readable and drops everything older: reads and watches from a
//!   revision below the compaction point fail with [`StoreError::Compacted`], which the API server
//!   maps to 410 Gone.
//!
//! # Layout and costs
//!
//! - `index: BTreeMap<String, Vec<KeyVersion>>`: every version of every key still in history
//!   (a deleted key keeps a tombstone until compaction drops it). Point reads and writes are
//!   `O(log n)` in the number of keys plus `O(log v)` in the versions of that key.
//! - `log: VecDeque<LogEntry>`: one entry `(revision, key, written_at_ns)` per changed key, sorted by
//!   revision. `watch_from` binary-searches its start, `O(log h)`, then reconstructs each event from
//!   the key index, `O(log n + log v)` per scanned entry. Entries of other prefixes are scanned
//!   but skipped, so a narrow watcher pays for the whole window; a per-prefix log is left for later.
//! - A write (or a transaction of `k` operations) costs `O(k (log n + log v))`: one index
//!   lookup, one push on the key's versions and one push on the log; nothing scans the store.
//! - Compaction touches only the keys written since the previous compaction point, so its cost is
//!   proportional to the history it drops, not to the store size.
//! - Memory: after `compact(r)` the store holds one version per live key plus the versions and
//!   log entries written at `r` or later; [`StoreStats`] exposes both counts.
//! - Leases: `expire` and `next_lease_expiry_ns` scan the lease table, `O(leases)`; etcd leases
//!   are few in Kubernetes (node heartbeats are `Lease` objects, not etcd leases).
//!
//! Architecture invariant: the store knows nothing of Kubernetes objects; `V` is opaque.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// A global store revision. Kubernetes exposes it as `resourceVersion`.
pub type Revision = u64;

/// The id of a lease; ids are handed out in order from 1, so runs are reproducible.
pub type LeaseId = u64;

/// The revision of the empty store; etcd starts there too, so the first write is revision 2.
pub const INITIAL_REVISION: Revision = 1;

/// One key with its value and MVCC metadata, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue<V> {
    /// The full key, for example `/pods/default/web-1`.
    pub key: String,
    /// The stored value; opaque to the store.
    pub value: V,
    /// The revision that created this incarnation of the key (reset by delete then create).
    pub create_revision: Revision,
    /// The revision of the last write to this key; Kubernetes' `resourceVersion` of the object.
    pub mod_revision: Revision,
    /// The number of writes since creation, starting at 1.
    pub version: u64,
    /// The lease the key is attached to; the key is deleted when the lease expires.
    pub lease: Option<LeaseId>,
}

/// A change seen by a watcher. Both kinds carry the previous value, as an etcd watch with
/// `prev_kv` does, because Kubernetes' watch cache needs it to filter by old labels and fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent<V> {
    /// The key was created or updated; `kv.mod_revision` is the event's revision.
    Put {
        /// The key after the write.
        kv: KeyValue<V>,
        /// The key before the write; `None` when this write created it.
        prev_kv: Option<KeyValue<V>>,
    },
    /// The key was deleted at `revision`.
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the deletion.
        revision: Revision,
        /// The value the key had just before deletion.
        prev_kv: KeyValue<V>,
    },
}

impl<V> WatchEvent<V> {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv, .. } => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// A batch of events for a live watcher, from [`Store::events_since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchBatch<V> {
    /// Matching events in revision order.
    pub events: Vec<WatchEvent<V>>,
    /// Every revision up to and including this one has been delivered (or did not match the
    /// prefix). Pass it back as `after_revision`; the API server can also send it as a bookmark.
    pub progress_revision: Revision,
}

/// The outcome of a successful single-key write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome<V> {
    /// The revision of the write: the new `resourceVersion`.
    pub revision: Revision,
    /// The key's value before the write, as etcd returns with `prev_kv`.
    pub prev_kv: Option<KeyValue<V>>,
}

/// A transaction guard. etcd compares many things; Kubernetes only ever compares `mod_revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Holds when the key's `mod_revision` equals `mod_revision`; 0 means "the key does not
    /// exist", which is how Kubernetes' create guards against an existing name.
    ModRevisionEquals {
        /// The key to compare.
        key: String,
        /// The expected `mod_revision`, or 0 for absent.
        mod_revision: Revision,
    },
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp<V> {
    /// Create or overwrite `key`, optionally attached to a lease.
    Put {
        /// The key to write.
        key: String,
        /// The new value.
        value: V,
        /// The lease to attach the key to, if any.
        lease: Option<LeaseId>,
    },
    /// Delete `key`; deleting an absent key changes nothing.
    Delete {
        /// The key to delete.
        key: String,
    },
}

/// The outcome of [`Store::txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOutcome<V> {
    /// Whether every compare held, so the operations ran.
    pub succeeded: bool,
    /// The store revision after the transaction: the new revision if something changed, else the
    /// current one (which Kubernetes uses to report a conflict).
    pub revision: Revision,
    /// For each operation, in order, the key's value before it; empty when the compares failed.
    pub prev_kvs: Vec<Option<KeyValue<V>>>,
}

/// Counters for reports and for bounding memory in long runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Keys that exist at the latest revision.
    pub live_keys: usize,
    /// Keys in the index, including deleted ones whose tombstone is still in history.
    pub indexed_keys: usize,
    /// Stored versions over all keys (live values and tombstones).
    pub versions: usize,
    /// Entries in the change log: one per changed key per revision since the compaction point.
    pub history_len: usize,
    /// The latest revision.
    pub current_revision: Revision,
    /// The compaction point: revisions below it are gone; 0 when never compacted.
    pub compacted_revision: Revision,
    /// Leases granted and not yet revoked or expired.
    pub leases: usize,
}

/// Errors a caller can cause. None of them changes the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Create of a key that exists (Kubernetes: 409 AlreadyExists).
    AlreadyExists {
        /// The key.
        key: String,
        /// Its current `mod_revision`.
        mod_revision: Revision,
    },
    /// Update or delete of a key that does not exist (Kubernetes: 404).
    NotFound {
        /// The key.
        key: String,
    },
    /// The precondition's `mod_revision` is stale (Kubernetes: 409 Conflict).
    Conflict {
        /// The key.
        key: String,
        /// The `mod_revision` the caller expected.
        expected_mod_revision: Revision,
        /// The key's actual `mod_revision`.
        current_mod_revision: Revision,
    },
    /// The requested revision was compacted away (Kubernetes: 410 Gone; the client relists).
    Compacted {
        /// The compaction point: the oldest revision still readable.
        compact_revision: Revision,
    },
    /// The requested revision is newer than the store's.
    FutureRevision {
        /// The requested revision.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The lease does not exist or has expired.
    LeaseNotFound {
        /// The lease id.
        lease: LeaseId,
    },
    /// A transaction touched the same key twice, which etcd rejects too.
    DuplicateKeyInTxn {
        /// The key.
        key: String,
    },
    /// Keys must not be empty, as in etcd.
    EmptyKey,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::AlreadyExists { key, mod_revision } => {
                write!(f, "key {key} already exists (mod_revision {mod_revision})")
            }
            StoreError::NotFound { key } => write!(f, "key {key} not found"),
            StoreError::Conflict { key, expected_mod_revision, current_mod_revision } => write!(
                f,
                "conflict on {key}: expected mod_revision {expected_mod_revision}, \
                 current is {current_mod_revision}"
            ),
            StoreError::Compacted { compact_revision } => {
                write!(f, "required revision has been compacted (compaction point {compact_revision})")
            }
            StoreError::FutureRevision { requested, current } => {
                write!(f, "revision {requested} is newer than the current revision {current}")
            }
            StoreError::LeaseNotFound { lease } => write!(f, "lease {lease} not found"),
            StoreError::DuplicateKeyInTxn { key } => {
                write!(f, "transaction touches key {key} more than once")
            }
            StoreError::EmptyKey => write!(f, "empty key"),
        }
    }
}

impl std::error::Error for StoreError {}

/// One version of a key: a value or a tombstone (`kv == None`) at `revision`.
#[derive(Clone, Debug)]
struct KeyVersion<V> {
    revision: Revision,
    kv: Option<KeyValue<V>>,
}

/// One change in the global log. Values live in the key index, so the log stays small.
#[derive(Clone, Debug)]
struct LogEntry {
    revision: Revision,
    key: String,
    /// Virtual time of the write; non-decreasing along the log (see [`Store::txn`]).
    written_at_ns: u64,
}

#[derive(Clone, Debug)]
struct Lease {
    ttl_ns: u64,
    expires_at_ns: u64,
    keys: BTreeSet<String>,
}

/// The MVCC store. See the module documentation for semantics and costs.
#[derive(Clone, Debug)]
pub struct Store<V> {
    index: BTreeMap<String, Vec<KeyVersion<V>>>,
    log: VecDeque<LogEntry>,
    current_revision: Revision,
    compacted_revision: Revision,
    live_keys: usize,
    versions: usize,
    /// The latest write time seen, so the log stays sorted by time even if a caller's clock
    /// steps back (a skewed machine); time-based compaction relies on that order.
    last_write_ns: u64,
    leases: BTreeMap<LeaseId, Lease>,
    next_lease_id: LeaseId,
}

impl<V: Clone> Default for Store<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> Store<V> {
    /// An empty store at revision [`INITIAL_REVISION`].
    pub fn new() -> Self {
        Store {
            index: BTreeMap::new(),
            log: VecDeque::new(),
            current_revision: INITIAL_REVISION,
            compacted_revision: 0,
            live_keys: 0,
            versions: 0,
            last_write_ns: 0,
            leases: BTreeMap::new(),
            next_lease_id: 1,
        }
    }

    /// The latest revision; a quorum read in Kubernetes reads at this revision.
    pub fn current_revision(&self) -> Revision {
        self.current_revision
    }

    /// The compaction point: the oldest revision still readable; 0 when never compacted.
    pub fn compacted_revision(&self) -> Revision {
        self.compacted_revision
    }

    /// Counters for reports and memory bounds.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            live_keys: self.live_keys,
            indexed_keys: self.index.len(),
            versions: self.versions,
            history_len: self.log.len(),
            current_revision: self.current_revision,
            compacted_revision: self.compacted_revision,
            leases: self.leases.len(),
        }
    }

    // ----- reads -----

    /// The latest value of `key`, or `None` if it does not exist. `O(log n)`.
    pub fn get(&self, key: &str) -> Option<&KeyValue<V>> {
        self.index.get(key)?.last()?.kv.as_ref()
    }

    /// The value of `key` as of `revision`, so a stale API-server cache can be compared against
    /// the truth. Fails below the compaction point and above the current revision.
    pub fn get_at(&self, key: &str, revision: Revision) -> Result<Option<&KeyValue<V>>, StoreError> {
        self.check_readable(revision)?;
        Ok(self.index.get(key).and_then(|versions| version_at(versions, revision)))
    }

    /// All keys under `prefix` at the latest revision, in key order.
    pub fn list(&self, prefix: &str) -> Vec<&KeyValue<V>> {
        self.keys_with_prefix(prefix).filter_map(|(_, versions)| versions.last()?.kv.as_ref()).collect()
    }

    /// All keys under `prefix` as of `revision`, in key order: a consistent snapshot for a
    /// paginated or "resourceVersion=N" list.
    pub fn list_at(&self, prefix: &str, revision: Revision) -> Result<Vec<&KeyValue<V>>, StoreError> {
        self.check_readable(revision)?;
        Ok(self.keys_with_prefix(prefix).filter_map(|(_, versions)| version_at(versions, revision)).collect())
    }

    fn keys_with_prefix<'s, 'p>(
        &'s self,
        prefix: &'p str,
    ) -> impl Iterator<Item = (&'s String, &'s Vec<KeyVersion<V>>)> + use<'s, 'p, V> {
        self.index
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }

    fn check_readable(&self, revision: Revision) -> Result<(), StoreError> {
        if revision < self.compacted_revision {
            return Err(StoreError::Compacted { compact_revision: self.compacted_revision });
        }
        if revision > self.current_revision {
            return Err(StoreError::FutureRevision { requested: revision, current: self.current_revision });
        }
        Ok(())
    }

    // ----- watch -----

    /// Every change under `prefix` with revision `>= start_revision`, in revision order (key
    /// order within one transaction). Fails with [`StoreError::Compacted`] rather than return a
    /// history with a hole when `start_revision` is below the compaction point. A start beyond
    /// the current revision yields no events: the watcher is simply ahead.
    pub fn watch_from(&self, prefix: &str, start_revision: Revision) -> Result<Vec<WatchEvent<V>>, StoreError> {
        if start_revision < self.compacted_revision {
            return Err(StoreError::Compacted { compact_revision: self.compacted_revision });
        }
        Ok(self.events_since(prefix, start_revision.saturating_sub(1), usize::MAX)?.events)
    }

    /// The changes under `prefix` after `after_revision`, at most about `limit` of them, so a
    /// live watcher can be driven step by step without copying the whole history. A transaction
    /// is never split: the batch may exceed `limit` to finish the last revision, and holds at
    /// least one revision's events if there are any. Call again with `progress_revision`.
    pub fn events_since(
        &self,
        prefix: &str,
        after_revision: Revision,
        limit: usize,
    ) -> Result<WatchBatch<V>, StoreError> {
        let start_revision = after_revision.saturating_add(1);
        if start_revision < self.compacted_revision {
            return Err(StoreError::Compacted { compact_revision: self.compacted_revision });
        }
        let start = self.log.partition_point(|entry| entry.revision < start_revision);
        let mut events: Vec<WatchEvent<V>> = Vec::new();
        let mut progress_revision = self.current_revision.max(after_revision);
        for entry in self.log.range(start..) {
            if let Some(last) = events.last() {
                if events.len() >= limit && entry.revision != last.revision() {
                    progress_revision = last.revision();
                    break;
                }
            }
            if entry.key.starts_with(prefix) {
                events.push(self.event_of(entry));
            }
        }
        Ok(WatchBatch { events, progress_revision })
    }

    /// Rebuilds the event of a log entry from the key index.
    fn event_of(&self, entry: &LogEntry) -> WatchEvent<V> {
        // A log entry at or above the compaction point always has its version in the index.
        let versions = &self.index[&entry.key];
        let at = versions
            .binary_search_by_key(&entry.revision, |version| version.revision)
            .expect("log entry without a version");
        let prev_kv = at.checked_sub(1).and_then(|prev| versions[prev].kv.clone());
        match &versions[at].kv {
            Some(kv) => WatchEvent::Put { kv: kv.clone(), prev_kv },
            None => WatchEvent::Delete {
                key: entry.key.clone(),
                revision: entry.revision,
                prev_kv: prev_kv.expect("a tombstone always follows a live value"),
            },
        }
    }

    // ----- writes -----

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it exists (Kubernetes' create).
    pub fn create(&mut self, key: &str, value: V, lease: Option<LeaseId>, now_ns: u64) -> Result<Revision, StoreError> {
        if let Some(kv) = self.get(key) {
            return Err(StoreError::AlreadyExists { key: key.to_string(), mod_revision: kv.mod_revision });
        }
        let op = TxnOp::Put { key: key.to_string(), value, lease };
        self.apply(vec![op], now_ns).map(|outcome| outcome.revision)
    }

    /// Updates an existing `key`. With `expected_mod_revision`, fails with
    /// [`StoreError::Conflict`] unless the key is unchanged since the caller read it, so no
    /// update is lost (Kubernetes' update with a resourceVersion). Without it, the write is
    /// unconditional, as Kubernetes allows for pods.
    pub fn update(
        &mut self,
        key: &str,
        value: V,
        expected_mod_revision: Option<Revision>,
        lease: Option<LeaseId>,
        now_ns: u64,
    ) -> Result<WriteOutcome<V>, StoreError> {
        self.check_precondition(key, expected_mod_revision)?;
        let op = TxnOp::Put { key: key.to_string(), value, lease };
        self.apply(vec![op], now_ns).map(single_outcome)
    }

    /// Creates or overwrites `key` unconditionally (etcd's plain put).
    pub fn put(
        &mut self,
        key: &str,
        value: V,
        lease: Option<LeaseId>,
        now_ns: u64,
    ) -> Result<WriteOutcome<V>, StoreError> {
        let op = TxnOp::Put { key: key.to_string(), value, lease };
        self.apply(vec![op], now_ns).map(single_outcome)
    }

    /// Deletes an existing `key`, with the same precondition as [`Store::update`].
    pub fn delete(
        &mut self,
        key: &str,
        expected_mod_revision: Option<Revision>,
        now_ns: u64,
    ) -> Result<WriteOutcome<V>, StoreError> {
        self.check_precondition(key, expected_mod_revision)?;
        let op = TxnOp::Delete { key: key.to_string() };
        self.apply(vec![op], now_ns).map(single_outcome)
    }

    fn check_precondition(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<(), StoreError> {
        let Some(kv) = self.get(key) else {
            return Err(StoreError::NotFound { key: key.to_string() });
        };
        match expected_mod_revision {
            Some(expected) if expected != kv.mod_revision => Err(StoreError::Conflict {
                key: key.to_string(),
                expected_mod_revision: expected,
                current_mod_revision: kv.mod_revision,
            }),
            _ => Ok(()),
        }
    }

    /// etcd's transaction: if every compare holds, run `ops` atomically at one new revision
    /// (no new revision when nothing changes, as when deleting absent keys). A failed compare
    /// is not an error: it returns `succeeded: false` with the current revision, which is how
    /// Kubernetes detects a conflict and then re-reads.
    pub fn txn(&mut self, compares: &[Compare], ops: Vec<TxnOp<V>>, now_ns: u64) -> Result<TxnOutcome<V>, StoreError> {
        // A malformed request fails whatever the compares say, as etcd validates first.
        self.validate(&ops, now_ns)?;
        let holds = compares.iter().all(|compare| match compare {
            Compare::ModRevisionEquals { key, mod_revision } => {
                self.get(key).map_or(0, |kv| kv.mod_revision) == *mod_revision
            }
        });
        if !holds {
            return Ok(TxnOutcome { succeeded: false, revision: self.current_revision, prev_kvs: Vec::new() });
        }
        self.apply(ops, now_ns)
    }

    /// Checks keys and leases of `ops` so that an error leaves the store untouched.
    fn validate(&self, ops: &[TxnOp<V>], now_ns: u64) -> Result<(), StoreError> {
        let mut seen = BTreeSet::new();
        for op in ops {
            let key = match op {
                TxnOp::Put { key, lease, .. } => {
                    if let Some(lease) = *lease {
                        if !self.lease_alive(lease, now_ns) {
                            return Err(StoreError::LeaseNotFound { lease });
                        }
                    }
                    key
                }
                TxnOp::Delete { key } => key,
            };
            if key.is_empty() {
                return Err(StoreError::EmptyKey);
            }
            if !seen.insert(key.as_str()) {
                return Err(StoreError::DuplicateKeyInTxn { key: key.clone() });
            }
        }
        Ok(())
    }

    /// Validates then applies `ops` at one revision.
    fn apply(&mut self, ops: Vec<TxnOp<V>>, now_ns: u64) -> Result<TxnOutcome<V>, StoreError> {
        self.validate(&ops, now_ns)?;

        let changes = ops.iter().any(|op| match op {
            TxnOp::Put { .. } => true,
            TxnOp::Delete { key } => self.get(key).is_some(),
        });
        if !changes {
            return Ok(TxnOutcome {
                succeeded: true,
                revision: self.current_revision,
                prev_kvs: ops.iter().map(|_| None).collect(),
            });
        }

        let revision = self.current_revision + 1;
        self.current_revision = revision;
        self.last_write_ns = self.last_write_ns.max(now_ns);
        let written_at_ns = self.last_write_ns;
        let mut prev_kvs = Vec::with_capacity(ops.len());
        for op in ops {
            prev_kvs.push(self.apply_one(op, revision, written_at_ns));
        }
        self.debug_check_tail();
        Ok(TxnOutcome { succeeded: true, revision, prev_kvs })
    }

    /// Applies one validated operation at `revision` and returns the previous value.
    fn apply_one(&mut self, op: TxnOp<V>, revision: Revision, written_at_ns: u64) -> Option<KeyValue<V>> {
        let (key, new_kv) = match op {
            TxnOp::Put { key, value, lease } => {
                let prev = self.get(&key);
                let kv = KeyValue {
                    key: key.clone(),
                    value,
                    create_revision: prev.map_or(revision, |prev| prev.create_revision),
                    mod_revision: revision,
                    version: prev.map_or(1, |prev| prev.version + 1),
                    lease,
                };
                (key, Some(kv))
            }
            TxnOp::Delete { key } => {
                // Deleting an absent key changes nothing and has no previous value.
                self.get(&key)?;
                (key, None)
            }
        };
        let prev_kv = self.get(&key).cloned();

        // Keep lease membership in step with the key's latest value.
        let old_lease = prev_kv.as_ref().and_then(|kv| kv.lease);
        let new_lease = new_kv.as_ref().and_then(|kv| kv.lease);
        if old_lease != new_lease {
            if let Some(lease) = old_lease.and_then(|id| self.leases.get_mut(&id)) {
                lease.keys.remove(&key);
            }
            if let Some(lease) = new_lease.and_then(|id| self.leases.get_mut(&id)) {
                lease.keys.insert(key.clone());
            }
        }

        match (prev_kv.is_some(), new_kv.is_some()) {
            (false, true) => self.live_keys += 1,
            (true, false) => self.live_keys -= 1,
            _ => {}
        }
        let versions = self.index.entry(key.clone()).or_default();
        debug_assert!(
            versions.last().is_none_or(|last| last.revision < revision),
            "a key's revisions must strictly increase"
        );
        versions.push(KeyVersion { revision, kv: new_kv });
        self.versions += 1;
        self.log.push_back(LogEntry { revision, key, written_at_ns });
        prev_kv
    }

    fn debug_check_tail(&self) {
        debug_assert!(self.compacted_revision <= self.current_revision);
        if let Some(last) = self.log.back() {
            debug_assert_eq!(last.revision, self.current_revision, "log ends at the current revision");
        }
        if let (Some(first), Some(last)) = (self.log.front(), self.log.back()) {
            debug_assert!(first.revision <= last.revision && first.written_at_ns <= last.written_at_ns);
            debug_assert!(first.revision >= self.compacted_revision, "log starts at the compaction point");
        }
    }

    // ----- compaction -----

    /// Drops history below `revision`, keeping `revision` itself readable and the latest value of
    /// every live key, so memory stays bounded. Compacting at or below the current compaction
    /// point is a no-op, so a periodic compactor need not track it.
    pub fn compact(&mut self, revision: Revision) -> Result<(), StoreError> {
        if revision > self.current_revision {
            return Err(StoreError::FutureRevision { requested: revision, current: self.current_revision });
        }
        if revision <= self.compacted_revision {
            return Ok(());
        }
        // Only keys written since the last compaction can have more than one version below
        // `revision`; every other key already has at most one, which must stay.
        let end = self.log.partition_point(|entry| entry.revision < revision);
        let touched: BTreeSet<String> = self.log.drain(..end).map(|entry| entry.key).collect();
        for key in touched {
            let Some(versions) = self.index.get_mut(&key) else {
                continue;
            };
            let below = versions.partition_point(|version| version.revision < revision);
            // Keep the newest version below `revision` if it is a live value: it is the key's
            // state at `revision` and the `prev_kv` of the key's next event.
            let keep_from = match below.checked_sub(1) {
                Some(newest_below) if versions[newest_below].kv.is_some() => newest_below,
                _ => below,
            };
            versions.drain(..keep_from);
            self.versions -= keep_from;
            if versions.is_empty() {
                self.index.remove(&key);
            }
        }
        self.compacted_revision = revision;
        self.debug_check_tail();
        Ok(())
    }

    /// Compacts away history written before `now_ns - retention_ns` (Kubernetes' API server
    /// compacts every 5 minutes). The newest change is always kept, so a store idle for longer
    /// than the window still serves a watch from its current revision. Returns the compaction
    /// point afterwards.
    pub fn compact_older_than(&mut self, now_ns: u64, retention_ns: u64) -> Revision {
        let cutoff_ns = now_ns.saturating_sub(retention_ns);
        let first_recent = self.log.partition_point(|entry| entry.written_at_ns < cutoff_ns);
        let revision = match self.log.get(first_recent) {
            Some(entry) => entry.revision,
            None => self.current_revision,
        };
        // `revision` is at most the current revision, so this cannot fail.
        let compacted = self.compact(revision);
        debug_assert!(compacted.is_ok());
        self.compacted_revision
    }

    // ----- leases -----

    /// Grants a lease living `ttl_ns` from `now_ns`; keys put with it die when it expires.
    pub fn grant_lease(&mut self, ttl_ns: u64, now_ns: u64) -> LeaseId {
        let id = self.next_lease_id;
        self.next_lease_id += 1;
        self.leases.insert(id, Lease { ttl_ns, expires_at_ns: now_ns.saturating_add(ttl_ns), keys: BTreeSet::new() });
        id
    }

    /// Extends a live lease to `now_ns + ttl` and returns the new expiry. A lease past its expiry
    /// is dead even before [`Store::expire`] collects it, as in etcd.
    pub fn keepalive(&mut self, lease: LeaseId, now_ns: u64) -> Result<u64, StoreError> {
        if !self.lease_alive(lease, now_ns) {
            return Err(StoreError::LeaseNotFound { lease });
        }
        let entry = self.leases.get_mut(&lease).ok_or(StoreError::LeaseNotFound { lease })?;
        entry.expires_at_ns = now_ns.saturating_add(entry.ttl_ns);
        Ok(entry.expires_at_ns)
    }

    /// Revokes a lease and deletes its keys in one transaction. Returns the revision of the
    /// deletion, or `None` if the lease held no keys.
    pub fn revoke_lease(&mut self, lease: LeaseId, now_ns: u64) -> Result<Option<Revision>, StoreError> {
        let entry = self.leases.remove(&lease).ok_or(StoreError::LeaseNotFound { lease })?;
        if entry.keys.is_empty() {
            return Ok(None);
        }
        let ops = entry.keys.into_iter().map(|key| TxnOp::Delete { key }).collect();
        let outcome = self.apply(ops, now_ns)?;
        Ok(Some(outcome.revision))
    }

    /// Revokes every lease whose expiry is at or before `now_ns`, in lease-id order, each as its
    /// own deletion transaction. Returns the expired lease ids.
    pub fn expire(&mut self, now_ns: u64) -> Vec<LeaseId> {
        let expired: Vec<LeaseId> =
            self.leases.iter().filter(|(_, lease)| lease.expires_at_ns <= now_ns).map(|(id, _)| *id).collect();
        for &id in &expired {
            // The lease exists and its keys are distinct and non-empty, so revoking cannot fail.
            let revoked = self.revoke_lease(id, now_ns);
            debug_assert!(revoked.is_ok());
        }
        expired
    }

    /// The earliest lease expiry, so the wrapping component can set its next timer.
    /// `O(leases)`: Kubernetes holds few etcd leases.
    pub fn next_lease_expiry_ns(&self) -> Option<u64> {
        self.leases.values().map(|lease| lease.expires_at_ns).min()
    }

    /// The keys attached to `lease`, in key order.
    pub fn lease_keys(&self, lease: LeaseId) -> Result<Vec<&str>, StoreError> {
        let entry = self.leases.get(&lease).ok_or(StoreError::LeaseNotFound { lease })?;
        Ok(entry.keys.iter().map(String::as_str).collect())
    }

    fn lease_alive(&self, lease: LeaseId, now_ns: u64) -> bool {
        self.leases.get(&lease).is_some_and(|entry| entry.expires_at_ns > now_ns)
    }

    // ----- invariants -----

    /// Checks every internal invariant in `O(size)`; for tests and checkers, not for every step
    /// (each write checks the cheap ones with `debug_assert!`). Panics on a violation, which only
    /// a bug in the store can cause.
    pub fn assert_invariants(&self) {
        assert!(self.current_revision >= INITIAL_REVISION);
        assert!(self.compacted_revision <= self.current_revision);
        let mut previous: Option<&LogEntry> = None;
        for entry in &self.log {
            assert!(entry.revision >= self.compacted_revision, "log below compaction point");
            assert!(entry.revision <= self.current_revision, "log beyond current revision");
            if let Some(previous) = previous {
                assert!(
                    (previous.revision, previous.written_at_ns) <= (entry.revision, entry.written_at_ns),
                    "log not sorted"
                );
                assert!(
                    previous.revision < entry.revision || previous.key != entry.key,
                    "a key changed twice in one revision"
                );
            }
            let versions = self.index.get(&entry.key).expect("log entry for unknown key");
            assert!(versions.binary_search_by_key(&entry.revision, |version| version.revision).is_ok());
            previous = Some(entry);
        }
        let mut live_keys = 0;
        let mut version_count = 0;
        for (key, versions) in &self.index {
            assert!(!versions.is_empty(), "empty version list for {key}");
            version_count += versions.len();
            for pair in versions.windows(2) {
                assert!(pair[0].revision < pair[1].revision, "versions of {key} not increasing");
            }
            let below = versions.iter().filter(|version| version.revision < self.compacted_revision).count();
            assert!(below <= 1, "{key} keeps {below} versions below the compaction point");
            if below == 1 {
                assert!(versions[0].kv.is_some(), "{key} keeps a compacted tombstone");
            }
            for version in versions {
                if let Some(kv) = &version.kv {
                    assert_eq!(&kv.key, key);
                    assert_eq!(kv.mod_revision, version.revision);
                    assert!(kv.create_revision <= kv.mod_revision && kv.version >= 1);
                }
            }
            if let Some(kv) = &versions.last().expect("non-empty").kv {
                live_keys += 1;
                if let Some(lease) = kv.lease {
                    if let Some(entry) = self.leases.get(&lease) {
                        assert!(entry.keys.contains(key), "{key} missing from lease {lease}");
                    }
                }
            }
        }
        assert_eq!(live_keys, self.live_keys, "live key count");
        assert_eq!(version_count, self.versions, "version count");
        for (id, lease) in &self.leases {
            for key in &lease.keys {
                assert_eq!(self.get(key).and_then(|kv| kv.lease), Some(*id), "lease {id} lists {key}");
            }
        }
    }
}

/// The version of a key visible at `revision`: its newest version at or below it, if live.
fn version_at<V>(versions: &[KeyVersion<V>], revision: Revision) -> Option<&KeyValue<V>> {
    let upto = versions.partition_point(|version| version.revision <= revision);
    versions[..upto].last()?.kv.as_ref()
}

fn single_outcome<V>(mut outcome: TxnOutcome<V>) -> WriteOutcome<V> {
    WriteOutcome { revision: outcome.revision, prev_kv: outcome.prev_kvs.pop().flatten() }
}
