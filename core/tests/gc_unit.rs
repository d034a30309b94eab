//! The garbage collector driven by hand: a Cache built from objects, the collector's writes
//! answered by the test as the host and the API server would.

use std::rc::Rc;

use kubedst_core::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey, Propagation};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::garbagecollector::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, VERIFY_POLL};
use kubedst_core::controllers::GarbageCollector;
use kubedst_core::objects::{Deployment, Kind, Object, ObjectMeta, OwnerReference, Pod, ReplicaSet};
use kubedst_sim::SimRng;

fn owner_ref(kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(block),
    }
}

fn meta(name: &str, uid: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: Some("default".into()),
        uid: Some(uid.into()),
        resource_version: Some("7".into()),
        owner_references: owners,
        ..ObjectMeta::default()
    }
}

fn pod(name: &str, owners: Vec<OwnerReference>) -> Object {
    Object::Pod(Pod { metadata: meta(name, &format!("uid-{name}"), owners), ..Pod::default() })
}

/// A ReplicaSet being deleted with `finalizer`.
fn deleting_rs(finalizer: &str) -> Object {
    let mut metadata = meta("web", "rs-uid", vec![]);
    metadata.deletion_timestamp_ns = Some(1);
    metadata.deletion_grace_period_seconds = Some(0);
    metadata.finalizers = vec![finalizer.to_string()];
    Object::ReplicaSet(ReplicaSet { metadata, ..ReplicaSet::default() })
}

fn upsert(gc: &mut GarbageCollector, cache: &mut Cache, object: Object) -> Vec<ObjectKey> {
    let event = cache.upsert(Rc::new(object)).expect("a change");
    gc.on_event(&event, cache)
}

fn remove(gc: &mut GarbageCollector, cache: &mut Cache, key: &ObjectKey) -> Vec<ObjectKey> {
    let event = cache.remove(key).expect("present");
    gc.on_event(&event, cache)
}

fn reconcile(gc: &mut GarbageCollector, cache: &Cache, key: &ObjectKey) -> Reconcile {
    let mut rng = SimRng::for_stream(1, "gc");
    gc.reconcile(key, cache, &mut ReconcileContext { now_ns: 0, rng: &mut rng })
}

fn pod_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Pod, "default", name)
}

fn rs_key() -> ObjectKey {
    ObjectKey::new(Kind::ReplicaSet, "default", "web")
}

#[test]
fn a_dangling_pod_is_deleted_only_after_a_read_confirms_its_owner_is_gone() {
    let mut gc = GarbageCollector::new();
    let mut cache = Cache::new();
    let keys = upsert(&mut gc, &mut cache, pod("orphaned", vec![owner_ref("ReplicaSet", "web", "rs-uid", true)]));
    assert_eq!(keys, vec![pod_key("orphaned")]);

    // The owner is not in the cache: first ask the API server (a quorum read), do not delete.
    let first = reconcile(&mut gc, &cache, &pod_key("orphaned"));
    assert_eq!(first.writes.len(), 1);
    let ApiRequest::Get { key } = &first.writes[0] else { panic!("expected a Get, got {:?}", first.writes) };
    assert_eq!(key, &rs_key());
    assert_eq!(first.requeue_after, Some(VERIFY_POLL));
    // While the read is in flight, no second read and no delete.
    let waiting = reconcile(&mut gc, &cache, &pod_key("orphaned"));
    assert!(waiting.writes.is_empty(), "{:?}", waiting.writes);

    gc.on_write_result(
        &pod_key("orphaned"),
        &first.writes[0],
        &Err(ApiError::new(ApiErrorReason::NotFound, "replicasets \"web\" not found")),
    );
    assert!(gc.is_confirmed_absent("rs-uid"));
    let second = reconcile(&mut gc, &cache, &pod_key("orphaned"));
    match &second.writes[..] {
        [ApiRequest::Delete { key, uid, propagation, .. }] => {
            assert_eq!(key, &pod_key("orphaned"));
            assert_eq!(uid.as_deref(), Some("uid-orphaned"));
            assert_eq!(*propagation, Some(Propagation::Background));
        }
        other => panic!("expected one delete, got {other:?}"),
    }
}

#[test]
fn an_owner_missing_only_from_a_stale_cache_saves_its_dependent() {
    let mut gc = GarbageCollector::new();
    let mut cache = Cache::new();
    upsert(&mut gc, &mut cache, pod("p", vec![owner_ref("ReplicaSet", "web", "rs-uid", true)]));
    let first = reconcile(&mut gc, &cache, &pod_key("p"));
    // etcd has the owner with that uid: nothing is absent and nothing is deleted.
    let owner = Rc::new(deleting_rs(FOREGROUND_FINALIZER));
    gc.on_write_result(&pod_key("p"), &first.writes[0], &Ok(ApiOk::Object(owner)));
    assert!(!gc.is_confirmed_absent("rs-uid"));
    let again = reconcile(&mut gc, &cache, &pod_key("p"));
    assert!(again.writes.iter().all(|w| matches!(w, ApiRequest::Get { .. })), "{:?}", again.writes);

    // A recreated owner of the same name (another uid) does not own the pod.
    let mut recreated = deleting_rs(FOREGROUND_FINALIZER);
    recreated.meta_mut().uid = Some("other-uid".into());
    gc.on_write_result(&pod_key("p"), &again.writes[0], &Ok(ApiOk::Object(Rc::new(recreated))));
    assert!(gc.is_confirmed_absent("rs-uid"));
    let last = reconcile(&mut gc, &cache, &pod_key("p"));
    assert!(matches!(&last.writes[..], [ApiRequest::Delete { .. }]), "{:?}", last.writes);
}

#[test]
fn a_pod_with_its_owner_in_the_cache_is_left_alone() {
    let mut gc = GarbageCollector::new();
    let mut cache = Cache::new();
    upsert(
        &mut gc,
        &mut cache,
        Object::ReplicaSet(ReplicaSet { metadata: meta("web", "rs-uid", vec![]), ..ReplicaSet::default() }),
    );
    upsert(&mut gc, &mut cache, pod("p", vec![owner_ref("ReplicaSet", "web", "rs-uid", true)]));
    assert!(reconcile(&mut gc, &cache, &pod_key("p")).writes.is_empty());
    // The owner's deletion enqueues its dependents.
    assert_eq!(remove(&mut gc, &mut cache, &rs_key()), vec![pod_key("p")]);
}

#[test]
fn foreground_deletes_dependents_and_waits_for_the_blocking_ones_before_removing_the_finalizer() {
    let mut gc = GarbageCollector::new();
    let mut cache = Cache::new();
    upsert(&mut gc, &mut cache, pod("blocking", vec![owner_ref("ReplicaSet", "web", "rs-uid", true)]));
    upsert(&mut gc, &mut cache, pod("loose", vec![owner_ref("ReplicaSet", "web", "rs-uid", false)]));
    let keys = upsert(&mut gc, &mut cache, deleting_rs(FOREGROUND_FINALIZER));
    assert_eq!(keys, vec![rs_key()]);

    let first = reconcile(&mut gc, &cache, &rs_key());
    let deleted: Vec<(String, Option<Propagation>)> = first
        .writes
        .iter()
        .map(|w| match w {
            ApiRequest::Delete { key, propagation, .. } => (key.name.clone(), *propagation),
            other => panic!("only deletes while dependents block, got {other:?}"),
        })
        .collect();
    assert_eq!(
        deleted,
        vec![("blocking".into(), Some(Propagation::Background)), ("loose".into(), Some(Propagation::Background))]
    );

    // The blocking pod is terminating (the kubelet stops it): the owner still waits.
    let mut terminating = pod("blocking", vec![owner_ref("ReplicaSet", "web", "rs-uid", true)]);
    terminating.meta_mut().deletion_timestamp_ns = Some(5);
    terminating.meta_mut().resource_version = Some("8".into());
    let keys = upsert(&mut gc, &mut cache, terminating);
    assert!(keys.contains(&rs_key()), "a dependent's change enqueues its deleting owner: {keys:?}");
    let waiting = reconcile(&mut gc, &cache, &rs_key());
    assert!(waiting.writes.iter().all(|w| matches!(w, ApiRequest::Delete { .. })), "{:?}", waiting.writes);

    // The blocking pod is gone; the non-blocking one does not hold the owner back.
    let keys = remove(&mut gc, &mut cache, &pod_key("blocking"));
    assert_eq!(keys, vec![rs_key()]);
    let done = reconcile(&mut gc, &cache, &rs_key());
    let update = done
        .writes
        .iter()
        .find_map(|w| match w {
            ApiRequest::Update { object } => Some(object.clone()),
            _ => None,
        })
        .expect("the finalizer is removed");
    assert_eq!(update.meta().name, "web");
    assert!(update.meta().finalizers.is_empty());
    assert_eq!(update.meta().resource_version.as_deref(), Some("7"), "a conditional update");
}

#[test]
fn a_dependent_with_dependents_of_its_own_is_deleted_in_the_foreground() {
    let mut gc = GarbageCollector::new();
    let mut cache = Cache::new();
    // A Deployment `web` being deleted in the foreground owns ReplicaSet `web-1`, which owns a pod.
    let mut metadata = meta("web", "d-uid", vec![]);
    metadata.deletion_timestamp_ns = Some(1);
    metadata.finalizers = vec![FOREGROUND_FINALIZER.to_string()];
    let deployment = Object::Deployment(Deployment { metadata, ..Deployment::default() });
    upsert(
        &mut gc,
        &mut cache,
        Object::ReplicaSet(ReplicaSet {
            metadata: meta("web-1", "rs1-uid", vec![owner_ref("Deployment", "web", "d-uid", true)]),
            ..ReplicaSet::default()
        }),
    );
    upsert(&mut gc, &mut cache, pod("p", vec![owner_ref("ReplicaSet", "web-1", "rs1-uid", true)]));
    upsert(&mut gc, &mut cache, deployment);
    let result = reconcile(&mut gc, &cache, &ObjectKey::new(Kind::Deployment, "default", "web"));
    match &result.writes[..] {
        [ApiRequest::Delete { key, propagation, .. }] => {
            assert_eq!(key.name, "web-1");
            assert_eq!(*propagation, Some(Propagation::Foreground));
        }
        other => panic!("expected one foreground delete, got {other:?}"),
    }
}

#[test]
fn orphan_strips_owner_references_then_removes_the_finalizer() {
    let mut gc = GarbageCollector::new();
    let mut cache = Cache::new();
    let other_owner = owner_ref("Job", "j", "job-uid", false);
    upsert(&mut gc, &mut cache, pod("a", vec![owner_ref("ReplicaSet", "web", "rs-uid", true)]));
    upsert(&mut gc, &mut cache, pod("b", vec![other_owner.clone(), owner_ref("ReplicaSet", "web", "rs-uid", true)]));
    upsert(&mut gc, &mut cache, deleting_rs(ORPHAN_FINALIZER));

    let first = reconcile(&mut gc, &cache, &rs_key());
    assert_eq!(first.writes.len(), 2, "{:?}", first.writes);
    for write in &first.writes {
        let ApiRequest::Update { object } = write else { panic!("expected updates, got {write:?}") };
        assert!(matches!(&**object, Object::Pod(_)));
        assert_eq!(object.meta().resource_version.as_deref(), Some("7"));
        let expected = if object.meta().name == "b" { vec![other_owner.clone()] } else { vec![] };
        assert_eq!(object.meta().owner_references, expected);
        // The API server applies it; the watch shows it.
        let mut applied = (**object).clone();
        applied.meta_mut().resource_version = Some("9".into());
        upsert(&mut gc, &mut cache, applied);
    }
    assert!(gc.dependents_of("rs-uid").is_empty());

    let second = reconcile(&mut gc, &cache, &rs_key());
    match &second.writes[..] {
        [ApiRequest::Update { object }] => {
            assert_eq!(object.kind(), Kind::ReplicaSet);
            assert!(object.meta().finalizers.is_empty());
            assert_eq!(object.meta().resource_version.as_deref(), Some("7"));
        }
        other => panic!("expected the finalizer removal, got {other:?}"),
    }
    // The orphaned pods stay: their remaining owners are not this one.
    assert!(reconcile(&mut gc, &cache, &pod_key("a")).writes.is_empty());
}
