//! The ReplicaSet controller driven by hand: a Cache built from objects, writes applied (or
//! failed) by the test as the host and the API server would.

use std::rc::Rc;
use std::time::Duration;

use kubedst_core::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::ReplicaSetController;
use kubedst_core::objects::pod::{Container, PodPhase, PodStatus};
use kubedst_core::objects::workloads::ReplicaSetSpec;
use kubedst_core::objects::{
    Condition, ConditionStatus, Kind, LabelSelector, Object, ObjectMeta, OwnerReference, Pod, PodSpec, PodTemplateSpec,
    ReplicaSet, StringMap,
};
use kubedst_sim::SimRng;

const S: u64 = 1_000_000_000;

fn labels() -> StringMap {
    [("app".to_string(), "web".to_string())].into()
}

fn replica_set(replicas: i32, min_ready_seconds: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: "web".into(),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector::from_labels(labels()),
            template: PodTemplateSpec {
                metadata: ObjectMeta { labels: labels(), ..ObjectMeta::default() },
                spec: PodSpec {
                    containers: vec![Container { name: "c".into(), image: "v1".into(), ..Container::default() }],
                    ..PodSpec::default()
                },
            },
            min_ready_seconds: Some(min_ready_seconds),
        },
        status: Default::default(),
    }
}

/// A pod owned by the ReplicaSet: `node` empty for unscheduled, `ready_since_s` for Ready=True.
fn pod(name: &str, node: &str, phase: PodPhase, ready_since_s: Option<u64>, created_s: u64) -> Pod {
    let conditions = match ready_since_s {
        Some(since) => vec![Condition {
            condition_type: "Ready".into(),
            status: ConditionStatus::True,
            last_transition_time_ns: Some(since * S),
            ..Condition::default()
        }],
        None => vec![],
    };
    Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            creation_timestamp_ns: Some(created_s * S),
            labels: labels(),
            owner_references: vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..ObjectMeta::default()
        },
        spec: PodSpec { node_name: (!node.is_empty()).then(|| node.to_string()), ..PodSpec::default() },
        status: PodStatus { phase: Some(phase), conditions, ..PodStatus::default() },
    }
}

fn rs_key() -> ObjectKey {
    ObjectKey::new(Kind::ReplicaSet, "default", "web")
}

fn reconcile(controller: &mut ReplicaSetController, cache: &Cache, now_ns: u64) -> Reconcile {
    let mut rng = SimRng::for_stream(1, "replicaset");
    controller.reconcile(&rs_key(), cache, &mut ReconcileContext { now_ns, rng: &mut rng })
}

fn creates(result: &Reconcile) -> Vec<&ApiRequest> {
    result.writes.iter().filter(|w| matches!(w, ApiRequest::Create { .. })).collect()
}

fn deletes(result: &Reconcile) -> Vec<(String, Option<String>)> {
    result
        .writes
        .iter()
        .filter_map(|w| match w {
            ApiRequest::Delete { key, uid, .. } => Some((key.name.clone(), uid.clone())),
            _ => None,
        })
        .collect()
}

fn insert(controller: &mut ReplicaSetController, cache: &mut Cache, object: Object) {
    if let Some(event) = cache.upsert(Rc::new(object)) {
        controller.on_event(&event, cache);
    }
}

/// Plays the API server for a create: the pod gets a name and uid, and the watch shows it.
fn complete_creates(controller: &mut ReplicaSetController, cache: &mut Cache, result: &Reconcile, next: &mut u32) {
    for write in creates(result) {
        let ApiRequest::Create { object } = write else { unreachable!() };
        let Object::Pod(template) = &**object else { panic!("the ReplicaSet controller creates pods") };
        let mut created = template.clone();
        created.metadata.name = format!("{}{next}", template.metadata.generate_name.clone().unwrap());
        created.metadata.uid = Some(format!("uid-{next}"));
        created.metadata.resource_version = Some("1".into());
        *next += 1;
        let created = Rc::new(Object::Pod(created));
        controller.on_write_result(&rs_key(), write, &Ok(ApiOk::Object(created.clone())));
        let event = cache.upsert(created).unwrap();
        controller.on_event(&event, cache);
    }
}

#[test]
fn scale_up_from_0_to_10_goes_in_slow_start_batches_of_1_2_4_3() {
    let mut controller = ReplicaSetController::new();
    let mut cache = Cache::new();
    insert(&mut controller, &mut cache, Object::ReplicaSet(replica_set(10, 0)));
    let mut batches = Vec::new();
    let mut next = 0;
    for step in 0..6 {
        let result = reconcile(&mut controller, &cache, step * S);
        if !creates(&result).is_empty() {
            assert_eq!(result.requeue_after, Some(Duration::from_secs(1)), "polls while results are out");
        }
        batches.push(creates(&result).len());
        complete_creates(&mut controller, &mut cache, &result, &mut next);
    }
    assert_eq!(batches, vec![1, 2, 4, 3, 0, 0]);
    assert_eq!(cache.len(Kind::Pod), 10);
    assert!(controller.satisfied_expectations(&rs_key(), 6 * S));

    // Every pod is stamped from the template with a controller reference.
    let first = cache.get_by(Kind::Pod, "default", "web-0").expect("named from generateName web-");
    let meta = first.meta();
    assert_eq!(meta.generate_name.as_deref(), Some("web-"));
    assert_eq!(meta.labels, labels());
    assert_eq!(
        meta.owner_references,
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "rs-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    );
}

#[test]
fn a_failed_batch_stops_the_slow_start_and_gives_back_the_skipped_creations() {
    let mut controller = ReplicaSetController::new();
    let mut cache = Cache::new();
    insert(&mut controller, &mut cache, Object::ReplicaSet(replica_set(10, 0)));
    let mut next = 0;
    let first = reconcile(&mut controller, &cache, 0);
    complete_creates(&mut controller, &mut cache, &first, &mut next);
    let second = reconcile(&mut controller, &cache, S);
    let batch = creates(&second);
    assert_eq!(batch.len(), 2);
    // One succeeds (and is observed), one times out.
    let ok = Reconcile { writes: vec![batch[0].clone()], requeue_after: None, calls: Vec::new() };
    complete_creates(&mut controller, &mut cache, &ok, &mut next);
    controller.on_write_result(&rs_key(), batch[1], &Err(ApiError::new(ApiErrorReason::Timeout, "etcd timeout")));
    // 10 expected - 2 observed - 1 failed - 7 never issued.
    assert_eq!(controller.expectations(&rs_key()).unwrap().add, 0);
    // The next sync starts over from the pods it sees: 2 exist, 8 missing, batch of 1 first.
    let third = reconcile(&mut controller, &cache, 2 * S);
    assert_eq!(creates(&third).len(), 1);
    assert_eq!(controller.expectations(&rs_key()).unwrap().add, 8);
}

#[test]
fn unobserved_creations_block_the_next_sync_for_five_minutes() {
    let mut controller = ReplicaSetController::new();
    let mut cache = Cache::new();
    insert(&mut controller, &mut cache, Object::ReplicaSet(replica_set(3, 0)));
    assert_eq!(creates(&reconcile(&mut controller, &cache, 0)).len(), 1);
    // No result, no pod: nothing more, however often the key is reconciled.
    assert_eq!(creates(&reconcile(&mut controller, &cache, 60 * S)).len(), 0);
    assert_eq!(creates(&reconcile(&mut controller, &cache, 300 * S)).len(), 0);
    assert!(!controller.satisfied_expectations(&rs_key(), 300 * S));
    // After five minutes the expectations expire and the sync starts over.
    assert!(controller.satisfied_expectations(&rs_key(), 300 * S + 1));
    assert_eq!(creates(&reconcile(&mut controller, &cache, 300 * S + 1)).len(), 1);
}

#[test]
fn scale_down_deletes_unscheduled_pending_not_ready_and_newest_ready_first() {
    let mut controller = ReplicaSetController::new();
    let mut cache = Cache::new();
    insert(&mut controller, &mut cache, Object::ReplicaSet(replica_set(2, 0)));
    let pods = [
        pod("old-ready-a", "n1", PodPhase::Running, Some(10), 1),
        pod("old-ready-b", "n2", PodPhase::Running, Some(10), 1),
        pod("unscheduled", "", PodPhase::Pending, None, 2),
        pod("not-ready", "n1", PodPhase::Running, None, 2),
        pod("new-ready", "n2", PodPhase::Running, Some(990), 3),
    ];
    for p in pods {
        insert(&mut controller, &mut cache, Object::Pod(p));
    }
    let now_ns = 1000 * S;
    let result = reconcile(&mut controller, &cache, now_ns);
    let victims = deletes(&result);
    assert_eq!(
        victims,
        vec![
            ("unscheduled".to_string(), Some("uid-unscheduled".to_string())),
            ("not-ready".to_string(), Some("uid-not-ready".to_string())),
            ("new-ready".to_string(), Some("uid-new-ready".to_string())),
        ]
    );
    let expectations = controller.expectations(&rs_key()).unwrap();
    assert_eq!(expectations.del, 3);

    // Until the deletions are observed, a sync deletes nothing more.
    assert!(deletes(&reconcile(&mut controller, &cache, now_ns + S)).is_empty());
    // A deletionTimestamp counts as observed; a failed delete gives its expectation back.
    let mut terminating = pod("unscheduled", "", PodPhase::Pending, None, 2);
    terminating.metadata.deletion_timestamp_ns = Some(now_ns + 30 * S);
    terminating.metadata.resource_version = Some("2".into());
    insert(&mut controller, &mut cache, Object::Pod(terminating));
    let delete_new_ready =
        result.writes.iter().find(|w| matches!(w, ApiRequest::Delete { key, .. } if key.name == "new-ready")).unwrap();
    controller.on_write_result(&rs_key(), delete_new_ready, &Err(ApiError::new(ApiErrorReason::Timeout, "timeout")));
    assert_eq!(controller.expectations(&rs_key()).unwrap().del, 1);
    assert!(deletes(&reconcile(&mut controller, &cache, now_ns + 2 * S)).is_empty());
    // The last one disappears: the controller syncs again and deletes the pod the timeout left.
    let removed = cache.remove(&ObjectKey::new(Kind::Pod, "default", "not-ready")).unwrap();
    controller.on_event(&removed, &cache);
    assert!(controller.satisfied_expectations(&rs_key(), now_ns + 3 * S));
    let again = reconcile(&mut controller, &cache, now_ns + 3 * S);
    assert_eq!(deletes(&again), vec![("new-ready".to_string(), Some("uid-new-ready".to_string()))]);
}

#[test]
fn status_counts_ready_and_available_and_requeues_for_min_ready_seconds() {
    let mut controller = ReplicaSetController::new();
    let mut cache = Cache::new();
    insert(&mut controller, &mut cache, Object::ReplicaSet(replica_set(3, 10)));
    insert(&mut controller, &mut cache, Object::Pod(pod("a", "n1", PodPhase::Running, Some(0), 0)));
    insert(&mut controller, &mut cache, Object::Pod(pod("b", "n1", PodPhase::Running, Some(96), 0)));
    let mut unlabeled = pod("c", "n1", PodPhase::Running, None, 0);
    unlabeled.metadata.labels.insert("app".into(), "other".into());
    insert(&mut controller, &mut cache, Object::Pod(unlabeled));
    let mut done = pod("d", "n1", PodPhase::Succeeded, None, 0);
    done.metadata.labels = labels();
    insert(&mut controller, &mut cache, Object::Pod(done));

    let result = reconcile(&mut controller, &cache, 100 * S);
    assert!(creates(&result).is_empty() && deletes(&result).is_empty(), "3 active pods for 3 replicas");
    let status = result
        .writes
        .iter()
        .find_map(|w| match w {
            ApiRequest::UpdateStatus { object } => match &**object {
                Object::ReplicaSet(rs) => Some(rs.status.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("the status changed");
    assert_eq!(
        (status.replicas, status.fully_labeled_replicas, status.ready_replicas, status.available_replicas),
        (3, 2, 2, 1)
    );
    assert_eq!(status.observed_generation, Some(1));
    // Pod b was ready at 96 s: available at 106 s, 6 s from now.
    assert_eq!(result.requeue_after, Some(Duration::from_secs(6)));

    // With that status in the cache, the same reconcile writes nothing.
    let mut current = replica_set(3, 10);
    current.status = status;
    current.metadata.resource_version = Some("2".into());
    insert(&mut controller, &mut cache, Object::ReplicaSet(current));
    assert!(reconcile(&mut controller, &cache, 100 * S).writes.is_empty());
}
