//! Model-checked properties of the store over random operation sequences on a small key space.
//!
//! The model is a plain `BTreeMap` per revision: simple enough to be obviously right, so any
//! disagreement is a store bug.

use std::collections::BTreeMap;

use kubedst_core::store::{Compare, KeyValue, Store, StoreError, TxnOp, WatchEvent};
use proptest::prelude::*;

const KEYS: [&str; 5] = ["/a/0", "/a/1", "/a/10", "/b/0", "/b/1"];
const PREFIXES: [&str; 4] = ["", "/a/", "/a/1", "/b/"];

/// What the caller claims about the key's current `mod_revision`.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// No precondition.
    Any,
    /// The right value (when the key exists).
    Current,
    /// A value that is certainly wrong: below the current one by `1 + n`, or any value for an
    /// absent key.
    Stale(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Create(usize, u8),
    Update(usize, u8, Expect),
    Delete(usize, Expect),
    Put(usize, u8),
    /// Put the first key and delete the second in one transaction guarded on the first key.
    Txn(usize, u8, usize, Expect),
    /// Compact to the given per-mille of the way from the compaction point to the current revision.
    Compact(u16),
    /// Let virtual time pass.
    Advance(u8),
    /// Compact history written more than this long ago.
    CompactOlderThan(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let expect = prop_oneof![Just(Expect::Any), Just(Expect::Current), any::<u8>().prop_map(Expect::Stale)];
    prop_oneof![
        3 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        3 => (key.clone(), any::<u8>(), expect.clone()).prop_map(|(k, v, e)| Op::Update(k, v, e)),
        2 => (key.clone(), expect.clone()).prop_map(|(k, e)| Op::Delete(k, e)),
        1 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (key.clone(), any::<u8>(), key, expect).prop_map(|(k, v, d, e)| Op::Txn(k, v, d, e)),
        1 => (0u16..=1000).prop_map(Op::Compact),
        2 => any::<u8>().prop_map(Op::Advance),
        1 => any::<u8>().prop_map(Op::CompactOlderThan),
    ]
}

type State = BTreeMap<String, KeyValue<u8>>;

/// The model: the full state after every revision, starting with the empty store at revision 1.
struct Model {
    states: BTreeMap<u64, State>,
    /// The virtual time each revision was written at.
    written_at_ns: BTreeMap<u64, u64>,
    compacted: u64,
    now_ns: u64,
}

impl Model {
    fn new() -> Self {
        Model { states: BTreeMap::from([(1, State::new())]), written_at_ns: BTreeMap::new(), compacted: 0, now_ns: 0 }
    }

    fn revision(&self) -> u64 {
        *self.states.keys().next_back().unwrap()
    }

    fn latest(&self) -> &State {
        self.states.values().next_back().unwrap()
    }

    fn mod_revision(&self, key: &str) -> u64 {
        self.latest().get(key).map_or(0, |kv| kv.mod_revision)
    }

    /// The precondition value to send, and whether the store must reject it as stale.
    fn expected(&self, key: &str, expect: Expect) -> (Option<u64>, bool) {
        let current = self.mod_revision(key);
        match expect {
            Expect::Any => (None, false),
            Expect::Current => (Some(current), false),
            Expect::Stale(n) if current == 0 => (Some(u64::from(n) + 1), true),
            Expect::Stale(n) => (Some(current.saturating_sub(1 + u64::from(n))), true),
        }
    }

    /// Commits one revision made of `puts` and `deletes` (keys known to exist).
    fn commit(&mut self, puts: &[(&str, u8)], deletes: &[&str]) -> u64 {
        let revision = self.revision() + 1;
        let mut state = self.latest().clone();
        for &(key, value) in puts {
            let prev = state.get(key);
            let kv = KeyValue {
                key: key.to_string(),
                value,
                create_revision: prev.map_or(revision, |kv| kv.create_revision),
                mod_revision: revision,
                version: prev.map_or(1, |kv| kv.version + 1),
                lease: None,
            };
            state.insert(key.to_string(), kv);
        }
        for key in deletes {
            state.remove(*key);
        }
        self.states.insert(revision, state);
        self.written_at_ns.insert(revision, self.now_ns);
        revision
    }
}

/// Applies `op` to both, checking the store's answer against the model (properties 1 and 4).
fn step(store: &mut Store<u8>, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let before = store.current_revision();
    prop_assert_eq!(before, model.revision());
    match *op {
        Op::Create(k, value) => {
            let key = KEYS[k];
            let result = store.create(key, value, None, model.now_ns);
            if model.latest().contains_key(key) {
                let mod_revision = model.mod_revision(key);
                prop_assert_eq!(result, Err(StoreError::AlreadyExists { key: key.to_string(), mod_revision }));
            } else {
                prop_assert_eq!(result, Ok(model.commit(&[(key, value)], &[])));
            }
        }
        Op::Update(k, value, expect) => {
            let key = KEYS[k];
            let (expected, stale) = model.expected(key, expect);
            let result = store.update(key, value, expected, None, model.now_ns);
            let prev = model.latest().get(key).cloned();
            match prev {
                None => prop_assert_eq!(result, Err(StoreError::NotFound { key: key.to_string() })),
                // Property 4: no lost update.
                Some(prev) if stale => prop_assert_eq!(
                    result,
                    Err(StoreError::Conflict {
                        key: key.to_string(),
                        expected_mod_revision: expected.unwrap(),
                        current_mod_revision: prev.mod_revision
                    })
                ),
                Some(prev) => {
                    let outcome = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(outcome.revision, model.commit(&[(key, value)], &[]));
                    prop_assert_eq!(outcome.prev_kv, Some(prev));
                }
            }
        }
        Op::Delete(k, expect) => {
            let key = KEYS[k];
            let (expected, stale) = model.expected(key, expect);
            let result = store.delete(key, expected, model.now_ns);
            let prev = model.latest().get(key).cloned();
            match prev {
                None => prop_assert_eq!(result, Err(StoreError::NotFound { key: key.to_string() })),
                Some(prev) if stale => prop_assert_eq!(
                    result,
                    Err(StoreError::Conflict {
                        key: key.to_string(),
                        expected_mod_revision: expected.unwrap(),
                        current_mod_revision: prev.mod_revision
                    })
                ),
                Some(prev) => {
                    let outcome = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(outcome.revision, model.commit(&[], &[key]));
                    prop_assert_eq!(outcome.prev_kv, Some(prev));
                }
            }
        }
        Op::Put(k, value) => {
            let key = KEYS[k];
            let prev = model.latest().get(key).cloned();
            let outcome = store.put(key, value, None, model.now_ns).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(outcome.revision, model.commit(&[(key, value)], &[]));
            prop_assert_eq!(outcome.prev_kv, prev);
        }
        Op::Txn(k, value, d, expect) => {
            let (key, delete_key) = (KEYS[k], KEYS[d]);
            let guard = match model.expected(key, expect) {
                (None, _) => vec![],
                (Some(mod_revision), _) => vec![Compare::ModRevisionEquals { key: key.to_string(), mod_revision }],
            };
            let (_, stale) = model.expected(key, expect);
            let ops = vec![
                TxnOp::Put { key: key.to_string(), value, lease: None },
                TxnOp::Delete { key: delete_key.to_string() },
            ];
            let result = store.txn(&guard, ops, model.now_ns);
            if key == delete_key {
                prop_assert_eq!(result, Err(StoreError::DuplicateKeyInTxn { key: key.to_string() }));
            } else {
                let outcome = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(outcome.succeeded, !stale);
                if stale {
                    prop_assert_eq!(outcome.revision, before);
                } else {
                    let prevs = vec![model.latest().get(key).cloned(), model.latest().get(delete_key).cloned()];
                    let deletes: Vec<&str> = prevs[1].iter().map(|_| delete_key).collect();
                    prop_assert_eq!(outcome.revision, model.commit(&[(key, value)], &deletes));
                    prop_assert_eq!(outcome.prev_kvs, prevs);
                }
            }
        }
        Op::Compact(per_mille) => {
            let from = model.compacted.max(1);
            let target = from + (model.revision() - from) * u64::from(per_mille) / 1000;
            prop_assert_eq!(store.compact(target), Ok(()));
            model.compacted = model.compacted.max(target);
            prop_assert_eq!(store.compacted_revision(), model.compacted);
        }
        Op::Advance(ns) => model.now_ns += u64::from(ns),
        Op::CompactOlderThan(retention_ns) => {
            // The oldest revision still in history written inside the window, else the newest.
            let cutoff_ns = model.now_ns.saturating_sub(u64::from(retention_ns));
            let target = model
                .written_at_ns
                .range(model.compacted..)
                .find(|(_, written_at_ns)| **written_at_ns >= cutoff_ns)
                .map_or(model.revision(), |(revision, _)| *revision);
            model.compacted = model.compacted.max(target);
            let retention_ns = u64::from(retention_ns);
            prop_assert_eq!(store.compact_older_than(model.now_ns, retention_ns), model.compacted);
        }
    }
    // Property 1: a successful write adds exactly one revision; a failed one adds none.
    prop_assert_eq!(store.current_revision(), model.revision());
    prop_assert!(store.current_revision() - before <= 1);
    store.assert_invariants();
    Ok(())
}

fn apply_event(state: &mut State, event: &WatchEvent<u8>) -> Result<(), TestCaseError> {
    match event {
        WatchEvent::Put { kv, prev_kv } => {
            // The event's prev value is exactly what the watcher holds: no gap in the history.
            prop_assert_eq!(state.get(&kv.key), prev_kv.as_ref());
            state.insert(kv.key.clone(), kv.clone());
        }
        WatchEvent::Delete { key, prev_kv, .. } => {
            let removed = state.remove(key);
            prop_assert_eq!(removed.as_ref(), Some(prev_kv));
        }
    }
    Ok(())
}

fn owned(items: Vec<&KeyValue<u8>>) -> State {
    items.into_iter().map(|kv| (kv.key.clone(), kv.clone())).collect()
}

fn with_prefix(state: &State, prefix: &str) -> State {
    state.iter().filter(|(key, _)| key.starts_with(prefix)).map(|(key, kv)| (key.clone(), kv.clone())).collect()
}

/// Properties 2, 3 and 5 on the final store.
fn check_history(store: &Store<u8>, model: &Model) -> Result<(), TestCaseError> {
    let compacted = store.compacted_revision();
    let current = store.current_revision();
    for prefix in PREFIXES {
        // Property 2: list at the compaction point (empty before any compaction), then replay
        // the watch: the result is exactly the latest state, and the events' revisions increase.
        let (mut state, start) = if compacted == 0 {
            (State::new(), 1)
        } else {
            (owned(store.list_at(prefix, compacted).unwrap()), compacted + 1)
        };
        let events = store.watch_from(prefix, start).unwrap();
        let mut last_revision = start - 1;
        for event in &events {
            prop_assert!(event.revision() >= last_revision && event.revision() >= start);
            prop_assert!(event.key().starts_with(prefix));
            last_revision = event.revision();
            apply_event(&mut state, event)?;
        }
        prop_assert_eq!(&state, &with_prefix(model.latest(), prefix));
        prop_assert_eq!(owned(store.list(prefix)), with_prefix(model.latest(), prefix));

        // The step-by-step API delivers the same events.
        for limit in [0, 1, 3] {
            let mut stepped = Vec::new();
            let mut after = start - 1;
            for _ in 0..=events.len() + 1 {
                let batch = store.events_since(prefix, after, limit).unwrap();
                prop_assert!(batch.progress_revision >= after);
                after = batch.progress_revision;
                stepped.extend(batch.events);
                if after == current {
                    break;
                }
            }
            prop_assert_eq!(after, current);
            prop_assert_eq!(&stepped, &events);
        }

        // Property 3: below the compaction point every read fails whole, never partially.
        let gone = StoreError::Compacted { compact_revision: compacted };
        for revision in 0..compacted {
            prop_assert_eq!(store.watch_from(prefix, revision), Err(gone.clone()));
            prop_assert_eq!(store.list_at(prefix, revision), Err(gone.clone()));
            if revision >= 1 {
                prop_assert_eq!(store.events_since(prefix, revision - 1, 1), Err(gone.clone()));
            }
        }
    }
    // Property 5: every key at every readable revision matches the model.
    for revision in compacted.max(1)..=current {
        let state = &model.states[&revision];
        for key in KEYS {
            prop_assert_eq!(store.get_at(key, revision).unwrap(), state.get(key));
        }
        prop_assert_eq!(owned(store.list_at("", revision).unwrap()), state.clone());
    }
    for key in KEYS {
        prop_assert_eq!(store.get_at(key, compacted.saturating_sub(1)).is_err(), compacted >= 1);
    }
    // Compaction bounds memory: nothing older than the compaction point stays in the log.
    let logged_since: usize = model
        .states
        .range(compacted.max(2)..)
        .map(|(revision, state)| {
            let previous = &model.states[&(revision - 1)];
            KEYS.iter().filter(|key| state.get(**key) != previous.get(**key)).count()
        })
        .sum();
    prop_assert_eq!(store.stats().history_len, logged_since);
    prop_assert_eq!(store.stats().live_keys, model.latest().len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Failures print their minimal input; no regression file outside the test sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 0..60)) {
        let mut store = Store::new();
        let mut model = Model::new();
        for op in &ops {
            step(&mut store, &mut model, op)?;
        }
        check_history(&store, &model)?;
    }
}

#[derive(Clone, Debug)]
enum LeaseOp {
    Grant(u8),
    /// Put a key, attached to the n-th granted lease if there is one.
    Put(usize, Option<usize>),
    Delete(usize),
    KeepAlive(usize),
    Revoke(usize),
    Advance(u8),
    Expire,
}

fn lease_op() -> impl Strategy<Value = LeaseOp> {
    let key = 0..KEYS.len();
    prop_oneof![
        1 => any::<u8>().prop_map(LeaseOp::Grant),
        3 => (key.clone(), proptest::option::of(0usize..4)).prop_map(|(k, l)| LeaseOp::Put(k, l)),
        1 => key.prop_map(LeaseOp::Delete),
        1 => (0usize..4).prop_map(LeaseOp::KeepAlive),
        1 => (0usize..4).prop_map(LeaseOp::Revoke),
        2 => any::<u8>().prop_map(LeaseOp::Advance),
        2 => Just(LeaseOp::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// After `expire(now)` no lease at or past its expiry remains, every live key's lease exists
    /// and lists it, and the deletions leases cause are visible to watchers like any other.
    #[test]
    fn expired_leases_leave_no_keys(ops in proptest::collection::vec(lease_op(), 0..60)) {
        let mut store: Store<u8> = Store::new();
        let mut granted = Vec::new();
        let mut now_ns = 0u64;
        for op in &ops {
            let before = store.current_revision();
            match *op {
                LeaseOp::Grant(ttl_ns) => granted.push(store.grant_lease(u64::from(ttl_ns), now_ns)),
                LeaseOp::Put(k, lease) => {
                    let lease = lease.and_then(|n| granted.get(n).copied());
                    match store.put(KEYS[k], 0, lease, now_ns) {
                        Ok(outcome) => prop_assert_eq!(outcome.revision, before + 1),
                        Err(StoreError::LeaseNotFound { .. }) => {
                            prop_assert_eq!(store.current_revision(), before)
                        }
                        Err(other) => return Err(TestCaseError::fail(other.to_string())),
                    }
                }
                LeaseOp::Delete(k) => {
                    let _ = store.delete(KEYS[k], None, now_ns);
                }
                LeaseOp::KeepAlive(n) => {
                    if let Some(&lease) = granted.get(n) {
                        let _ = store.keepalive(lease, now_ns);
                    }
                }
                LeaseOp::Revoke(n) => {
                    if let Some(&lease) = granted.get(n) {
                        let _ = store.revoke_lease(lease, now_ns);
                    }
                }
                LeaseOp::Advance(ns) => now_ns += u64::from(ns),
                LeaseOp::Expire => {
                    let expired = store.expire(now_ns);
                    prop_assert!(store.current_revision() - before <= expired.len() as u64);
                    // Whatever survives expire() is still alive now.
                    prop_assert!(store.next_lease_expiry_ns().is_none_or(|at| at > now_ns));
                }
            }
            prop_assert!(store.current_revision() >= before);
            store.assert_invariants();
            // Every live key's lease exists (revoking deletes the keys).
            for kv in store.list("") {
                if let Some(lease) = kv.lease {
                    prop_assert!(store.lease_keys(lease).unwrap().contains(&kv.key.as_str()));
                }
            }
        }
        // The watch history replays to the final state (leased deletions included).
        let mut state = State::new();
        for event in store.watch_from("", 1).unwrap() {
            apply_event(&mut state, &event)?;
        }
        prop_assert_eq!(state, owned(store.list("")));
    }
}
