//! Unit tests of each store operation and each error, with exact revisions pinned.

use kubedst_core::store::{Compare, KeyValue, Store, StoreError, TxnOp, WatchEvent, INITIAL_REVISION};

const SECOND_NS: u64 = 1_000_000_000;

fn store() -> Store<&'static str> {
    Store::new()
}

fn kv(key: &str, value: &'static str, create_revision: u64, mod_revision: u64, version: u64) -> KeyValue<&'static str> {
    KeyValue { key: key.to_string(), value, create_revision, mod_revision, version, lease: None }
}

#[test]
fn empty_store_is_at_revision_one_like_etcd() {
    let s = store();
    assert_eq!(s.current_revision(), INITIAL_REVISION);
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.compacted_revision(), 0);
    assert_eq!(s.get("/a"), None);
    assert_eq!(s.list(""), Vec::<&KeyValue<&str>>::new());
    assert_eq!(s.get_at("/a", 1), Ok(None));
    s.assert_invariants();
}

#[test]
fn create_sets_metadata_and_bumps_revision() {
    let mut s = store();
    assert_eq!(s.create("/pods/a", "v1", None, 0), Ok(2));
    assert_eq!(s.get("/pods/a"), Some(&kv("/pods/a", "v1", 2, 2, 1)));
    assert_eq!(s.current_revision(), 2);
    s.assert_invariants();
}

#[test]
fn create_of_existing_key_fails_and_changes_nothing() {
    let mut s = store();
    s.create("/a", "v1", None, 0).unwrap();
    assert_eq!(
        s.create("/a", "v2", None, 0),
        Err(StoreError::AlreadyExists { key: "/a".to_string(), mod_revision: 2 })
    );
    assert_eq!(s.current_revision(), 2);
    assert_eq!(s.get("/a").unwrap().value, "v1");
}

#[test]
fn empty_key_is_rejected() {
    let mut s = store();
    assert_eq!(s.create("", "v", None, 0), Err(StoreError::EmptyKey));
    assert_eq!(s.current_revision(), 1);
}

#[test]
fn update_returns_prev_and_increments_version() {
    let mut s = store();
    s.create("/a", "v1", None, 0).unwrap();
    let outcome = s.update("/a", "v2", Some(2), None, 0).unwrap();
    assert_eq!(outcome.revision, 3);
    assert_eq!(outcome.prev_kv, Some(kv("/a", "v1", 2, 2, 1)));
    assert_eq!(s.get("/a"), Some(&kv("/a", "v2", 2, 3, 2)));
    // Unconditional update, as Kubernetes allows for pods.
    let outcome = s.update("/a", "v3", None, None, 0).unwrap();
    assert_eq!(outcome.revision, 4);
    assert_eq!(s.get("/a"), Some(&kv("/a", "v3", 2, 4, 3)));
}

#[test]
fn update_with_stale_revision_conflicts() {
    let mut s = store();
    s.create("/a", "v1", None, 0).unwrap();
    s.update("/a", "v2", Some(2), None, 0).unwrap();
    assert_eq!(
        s.update("/a", "lost", Some(2), None, 0),
        Err(StoreError::Conflict { key: "/a".to_string(), expected_mod_revision: 2, current_mod_revision: 3 })
    );
    assert_eq!(s.current_revision(), 3);
    assert_eq!(s.get("/a").unwrap().value, "v2");
}

#[test]
fn update_and_delete_of_missing_key_are_not_found() {
    let mut s = store();
    let not_found = Err(StoreError::NotFound { key: "/a".to_string() });
    assert_eq!(s.update("/a", "v", None, None, 0), not_found);
    assert_eq!(s.update("/a", "v", Some(5), None, 0), not_found);
    assert_eq!(s.delete("/a", None, 0), not_found);
    assert_eq!(s.current_revision(), 1);
}

#[test]
fn delete_then_recreate_resets_create_revision_and_version() {
    let mut s = store();
    s.create("/a", "v1", None, 0).unwrap();
    assert_eq!(
        s.delete("/a", Some(1), 0),
        Err(StoreError::Conflict { key: "/a".to_string(), expected_mod_revision: 1, current_mod_revision: 2 })
    );
    let outcome = s.delete("/a", Some(2), 0).unwrap();
    assert_eq!(outcome.revision, 3);
    assert_eq!(outcome.prev_kv, Some(kv("/a", "v1", 2, 2, 1)));
    assert_eq!(s.get("/a"), None);
    assert_eq!(s.create("/a", "v2", None, 0), Ok(4));
    assert_eq!(s.get("/a"), Some(&kv("/a", "v2", 4, 4, 1)));
    assert_eq!(s.stats().live_keys, 1);
    s.assert_invariants();
}

#[test]
fn put_creates_or_overwrites() {
    let mut s = store();
    assert_eq!(s.put("/a", "v1", None, 0).unwrap().prev_kv, None);
    assert_eq!(s.put("/a", "v2", None, 0).unwrap().prev_kv, Some(kv("/a", "v1", 2, 2, 1)));
}

#[test]
fn get_at_sees_history_and_rejects_future_revisions() {
    let mut s = store();
    s.create("/a", "v1", None, 0).unwrap(); // 2
    s.update("/a", "v2", None, None, 0).unwrap(); // 3
    s.delete("/a", None, 0).unwrap(); // 4
    assert_eq!(s.get_at("/a", 1), Ok(None));
    assert_eq!(s.get_at("/a", 2).unwrap().unwrap().value, "v1");
    assert_eq!(s.get_at("/a", 3).unwrap().unwrap().value, "v2");
    assert_eq!(s.get_at("/a", 4), Ok(None));
    assert_eq!(s.get_at("/a", 5), Err(StoreError::FutureRevision { requested: 5, current: 4 }));
}

#[test]
fn list_by_prefix_in_key_order_at_latest_and_past_revisions() {
    let mut s = store();
    s.create("/pods/ns1/b", "b", None, 0).unwrap(); // 2
    s.create("/pods/ns1/a", "a", None, 0).unwrap(); // 3
    s.create("/pods/ns2/c", "c", None, 0).unwrap(); // 4
    s.create("/services/ns1/x", "x", None, 0).unwrap(); // 5
    s.delete("/pods/ns1/b", None, 0).unwrap(); // 6
    let values =
        |items: Vec<&KeyValue<&'static str>>| -> Vec<&'static str> { items.iter().map(|kv| kv.value).collect() };
    assert_eq!(values(s.list("/pods/")), vec!["a", "c"]);
    assert_eq!(values(s.list("/pods/ns1/")), vec!["a"]);
    assert_eq!(values(s.list("")), vec!["a", "c", "x"]);
    assert_eq!(values(s.list_at("/pods/", 5).unwrap()), vec!["a", "b", "c"]);
    assert_eq!(values(s.list_at("/pods/", 2).unwrap()), vec!["b"]);
    assert_eq!(values(s.list("/nothing/")), Vec::<&str>::new());
}

#[test]
fn txn_compare_mod_revision_then_ops_at_one_revision() {
    let mut s = store();
    s.create("/a", "a1", None, 0).unwrap(); // 2
                                            // Kubernetes' create: guarded by mod_revision == 0 (absent).
    let failed = s
        .txn(
            &[Compare::ModRevisionEquals { key: "/a".to_string(), mod_revision: 0 }],
            vec![TxnOp::Put { key: "/a".to_string(), value: "lost", lease: None }],
            0,
        )
        .unwrap();
    assert!(!failed.succeeded);
    assert_eq!(failed.revision, 2);
    assert_eq!(s.get("/a").unwrap().value, "a1");

    let ok = s
        .txn(
            &[Compare::ModRevisionEquals { key: "/a".to_string(), mod_revision: 2 }],
            vec![
                TxnOp::Put { key: "/b".to_string(), value: "b1", lease: None },
                TxnOp::Delete { key: "/a".to_string() },
                TxnOp::Delete { key: "/absent".to_string() },
            ],
            0,
        )
        .unwrap();
    assert!(ok.succeeded);
    assert_eq!(ok.revision, 3);
    assert_eq!(ok.prev_kvs, vec![None, Some(kv("/a", "a1", 2, 2, 1)), None]);
    // Both changes carry the same revision, in operation order.
    let events = s.watch_from("", 3).unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|event| event.revision() == 3));
    assert_eq!(events[0].key(), "/b");
    assert_eq!(events[1].key(), "/a");
    s.assert_invariants();
}

#[test]
fn txn_rejects_duplicate_keys_and_noop_does_not_bump_revision() {
    let mut s = store();
    let dup = s.txn(
        &[],
        vec![TxnOp::Put { key: "/a".to_string(), value: "1", lease: None }, TxnOp::Delete { key: "/a".to_string() }],
        0,
    );
    assert_eq!(dup, Err(StoreError::DuplicateKeyInTxn { key: "/a".to_string() }));
    let noop = s.txn(&[], vec![TxnOp::Delete { key: "/a".to_string() }], 0).unwrap();
    assert!(noop.succeeded);
    assert_eq!(noop.revision, 1);
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.stats().history_len, 0);
}

#[test]
fn watch_from_returns_puts_and_deletes_with_prev_values() {
    let mut s = store();
    s.create("/pods/a", "a1", None, 0).unwrap(); // 2
    s.create("/other/x", "x", None, 0).unwrap(); // 3
    s.update("/pods/a", "a2", None, None, 0).unwrap(); // 4
    s.delete("/pods/a", None, 0).unwrap(); // 5
    assert_eq!(
        s.watch_from("/pods/", 1).unwrap(),
        vec![
            WatchEvent::Put { kv: kv("/pods/a", "a1", 2, 2, 1), prev_kv: None },
            WatchEvent::Put { kv: kv("/pods/a", "a2", 2, 4, 2), prev_kv: Some(kv("/pods/a", "a1", 2, 2, 1)) },
            WatchEvent::Delete { key: "/pods/a".to_string(), revision: 5, prev_kv: kv("/pods/a", "a2", 2, 4, 2) },
        ]
    );
    assert_eq!(s.watch_from("/pods/", 5).unwrap().len(), 1);
    assert_eq!(s.watch_from("/pods/", 6).unwrap(), vec![]);
    assert_eq!(s.watch_from("/pods/", 100).unwrap(), vec![]);
}

#[test]
fn events_since_drives_a_watcher_in_bounded_steps() {
    let mut s = store();
    for (i, key) in ["/p/a", "/p/b", "/q/c", "/p/d", "/p/e"].iter().enumerate() {
        s.create(key, "v", None, i as u64).unwrap(); // revisions 2..=6
    }
    let batch = s.events_since("/p/", 1, 2).unwrap();
    let revisions: Vec<u64> = batch.events.iter().map(WatchEvent::revision).collect();
    assert_eq!(revisions, vec![2, 3]);
    assert_eq!(batch.progress_revision, 3);
    let batch = s.events_since("/p/", batch.progress_revision, 2).unwrap();
    let revisions: Vec<u64> = batch.events.iter().map(WatchEvent::revision).collect();
    assert_eq!(revisions, vec![5, 6]);
    // Everything delivered: progress reaches the current revision even with no new events.
    let batch = s.events_since("/p/", 6, 2).unwrap();
    assert!(batch.events.is_empty());
    assert_eq!(batch.progress_revision, 6);
    // A limit of 0 still makes progress by one revision.
    let batch = s.events_since("/p/", 1, 0).unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.progress_revision, 2);
}

#[test]
fn events_since_never_splits_a_transaction() {
    let mut s = store();
    let ops =
        ["/a", "/b", "/c"].iter().map(|key| TxnOp::Put { key: key.to_string(), value: "v", lease: None }).collect();
    s.txn(&[], ops, 0).unwrap(); // 2, three events
    s.create("/d", "v", None, 0).unwrap(); // 3
    let batch = s.events_since("", 1, 1).unwrap();
    assert_eq!(batch.events.len(), 3);
    assert_eq!(batch.progress_revision, 2);
}

#[test]
fn compaction_drops_history_but_keeps_latest_values() {
    let mut s = store();
    s.create("/a", "a1", None, 0).unwrap(); // 2
    s.update("/a", "a2", None, None, 0).unwrap(); // 3
    s.create("/b", "b1", None, 0).unwrap(); // 4
    s.delete("/b", None, 0).unwrap(); // 5
    s.create("/c", "c1", None, 0).unwrap(); // 6
    assert_eq!(s.stats().history_len, 5);
    s.compact(5).unwrap();
    let stats = s.stats();
    assert_eq!(stats.compacted_revision, 5);
    assert_eq!(stats.history_len, 2); // revisions 5 and 6
    assert_eq!(stats.live_keys, 2);
    // The compaction point itself stays readable.
    assert_eq!(s.get_at("/a", 5).unwrap().unwrap().value, "a2");
    assert_eq!(s.get_at("/b", 5), Ok(None));
    assert_eq!(s.get_at("/a", 4), Err(StoreError::Compacted { compact_revision: 5 }));
    assert_eq!(s.list_at("", 4), Err(StoreError::Compacted { compact_revision: 5 }));
    assert_eq!(s.watch_from("", 4), Err(StoreError::Compacted { compact_revision: 5 }));
    assert_eq!(s.events_since("", 3, 10), Err(StoreError::Compacted { compact_revision: 5 }));
    // The delete at the compaction point still carries its previous value.
    let events = s.watch_from("", 5).unwrap();
    assert_eq!(events[0], WatchEvent::Delete { key: "/b".to_string(), revision: 5, prev_kv: kv("/b", "b1", 4, 4, 1) });
    // Compacting again lower is a no-op; in the future is an error.
    assert_eq!(s.compact(3), Ok(()));
    assert_eq!(s.compacted_revision(), 5);
    assert_eq!(s.compact(7), Err(StoreError::FutureRevision { requested: 7, current: 6 }));
    s.compact(6).unwrap();
    // "/a" keeps its one live version; "/b" is gone entirely.
    assert_eq!(s.stats().indexed_keys, 2);
    assert_eq!(s.stats().versions, 2);
    // An update after compaction still reports the compacted-away value as prev.
    let outcome = s.update("/a", "a3", Some(3), None, 0).unwrap();
    assert_eq!(outcome.prev_kv, Some(kv("/a", "a2", 2, 3, 2)));
    assert_eq!(
        s.watch_from("/a", 7).unwrap()[0],
        WatchEvent::Put { kv: kv("/a", "a3", 2, 7, 3), prev_kv: Some(kv("/a", "a2", 2, 3, 2)) }
    );
    s.assert_invariants();
}

#[test]
fn compact_older_than_keeps_the_retention_window() {
    let mut s = store();
    let minute_ns = 60 * SECOND_NS;
    s.create("/a", "1", None, 0).unwrap(); // 2 at 0 min
    s.create("/b", "1", None, 2 * minute_ns).unwrap(); // 3 at 2 min
    s.create("/c", "1", None, 4 * minute_ns).unwrap(); // 4 at 4 min
                                                       // At 6 min with 5 min retention, writes before 1 min go.
    assert_eq!(s.compact_older_than(6 * minute_ns, 5 * minute_ns), 3);
    assert_eq!(s.stats().history_len, 2);
    // A clock that steps back is clamped: the write counts as written at 4 min.
    s.create("/d", "1", None, minute_ns).unwrap(); // 5
    assert_eq!(s.compact_older_than(8 * minute_ns, 5 * minute_ns), 4);
    // Long idle: everything is old, but the newest change stays watchable.
    assert_eq!(s.compact_older_than(60 * minute_ns, 5 * minute_ns), 5);
    assert_eq!(s.watch_from("", 5).unwrap().len(), 1);
    assert_eq!(s.list("").len(), 4);
    s.assert_invariants();
}

#[test]
fn leases_attach_keys_and_expiry_deletes_them_in_one_revision() {
    let mut s = store();
    let lease = s.grant_lease(10 * SECOND_NS, 0);
    assert_eq!(lease, 1);
    assert_eq!(s.next_lease_expiry_ns(), Some(10 * SECOND_NS));
    s.create("/events/a", "a", Some(lease), 0).unwrap(); // 2
    s.create("/events/b", "b", Some(lease), 0).unwrap(); // 3
    s.create("/keep", "k", None, 0).unwrap(); // 4
    assert_eq!(s.get("/events/a").unwrap().lease, Some(lease));
    assert_eq!(s.lease_keys(lease).unwrap(), vec!["/events/a", "/events/b"]);
    // Overwriting without the lease detaches the key.
    s.put("/events/b", "b2", None, 0).unwrap(); // 5
    assert_eq!(s.lease_keys(lease).unwrap(), vec!["/events/a"]);
    s.put("/events/b", "b3", Some(lease), 0).unwrap(); // 6

    assert_eq!(s.keepalive(lease, 5 * SECOND_NS), Ok(15 * SECOND_NS));
    assert_eq!(s.expire(14 * SECOND_NS), Vec::<u64>::new());
    assert_eq!(s.expire(15 * SECOND_NS), vec![lease]);
    assert_eq!(s.current_revision(), 7);
    assert_eq!(s.get("/events/a"), None);
    assert_eq!(s.get("/events/b"), None);
    assert!(s.get("/keep").is_some());
    let deletes = s.watch_from("/events/", 7).unwrap();
    assert_eq!(deletes.len(), 2);
    assert!(deletes.iter().all(|event| matches!(event, WatchEvent::Delete { revision: 7, .. })));
    assert_eq!(s.stats().leases, 0);
    assert_eq!(s.keepalive(lease, 15 * SECOND_NS), Err(StoreError::LeaseNotFound { lease }));
    s.assert_invariants();
}

#[test]
fn lease_errors_and_revoke() {
    let mut s = store();
    assert_eq!(s.create("/a", "a", Some(9), 0), Err(StoreError::LeaseNotFound { lease: 9 }));
    let lease = s.grant_lease(SECOND_NS, 0);
    // A lease past its expiry is dead even before expire() collects it.
    assert_eq!(s.keepalive(lease, SECOND_NS), Err(StoreError::LeaseNotFound { lease }));
    assert_eq!(s.create("/a", "a", Some(lease), SECOND_NS), Err(StoreError::LeaseNotFound { lease }));
    assert_eq!(s.current_revision(), 1);
    let lease2 = s.grant_lease(SECOND_NS, 0);
    assert_eq!(lease2, 2);
    assert_eq!(s.revoke_lease(lease2, 0), Ok(None));
    let lease3 = s.grant_lease(SECOND_NS, 0);
    s.create("/a", "a", Some(lease3), 0).unwrap(); // 2
    assert_eq!(s.revoke_lease(lease3, 0), Ok(Some(3)));
    assert_eq!(s.revoke_lease(lease3, 0), Err(StoreError::LeaseNotFound { lease: lease3 }));
    // Deleting a leased key detaches it.
    let lease4 = s.grant_lease(SECOND_NS, 0);
    s.create("/b", "b", Some(lease4), 0).unwrap();
    s.delete("/b", None, 0).unwrap();
    assert_eq!(s.lease_keys(lease4).unwrap(), Vec::<&str>::new());
    s.assert_invariants();
}

#[test]
fn errors_display_for_humans() {
    let err = StoreError::Compacted { compact_revision: 7 };
    assert_eq!(err.to_string(), "required revision has been compacted (compaction point 7)");
}

#[test]
fn same_operations_give_identical_stores() {
    let run = || {
        let mut s = store();
        let lease = s.grant_lease(5, 0);
        for i in 0..20u64 {
            let key = format!("/k/{}", i % 4);
            let _ = s.put(&key, "v", (i % 3 == 0).then_some(lease), i);
            if i % 5 == 0 {
                let _ = s.delete(&key, None, i);
            }
        }
        s.expire(6);
        s.compact_older_than(20, 10);
        format!("{:?}", s.watch_from("", s.compacted_revision()))
    };
    assert_eq!(run(), run());
}
