//! The cloud controller manager's reconcilers and PodGC driven by hand: a Cache built from
//! objects, call and write results fed back as the host would.

use std::rc::Rc;
use std::time::Duration;

use kubedst_core::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, Msg, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::cloud::{CloudProfile, CloudRequest, CloudResponse};
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::cloud::{load_balancer_name, retry_delay, LOAD_BALANCER_CLEANUP_FINALIZER};
use kubedst_core::controllers::{CloudNodeLifecycleController, PodGarbageCollector, ServiceLoadBalancerController};
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::meta::ConditionStatus;
use kubedst_core::objects::{Condition, Kind, Object};
use kubedst_sim::{ComponentId, SimRng};

const S: u64 = 1_000_000_000;
const CLOUD: ComponentId = ComponentId(99);

fn object(text: &str) -> Object {
    let mut object = load_manifests("o.yaml", text).unwrap().objects.remove(0).object;
    object.apply_defaults();
    object
}

fn service(finalizer: bool, deleting: bool) -> Object {
    let mut object = object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: shop, namespace: default, uid: 1234-abcd}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n",
    );
    if finalizer {
        object.meta_mut().finalizers.push(LOAD_BALANCER_CLEANUP_FINALIZER.into());
    }
    if deleting {
        object.meta_mut().deletion_timestamp_ns = Some(S);
    }
    object
}

fn run(reconciler: &mut dyn Reconciler, key: &ObjectKey, cache: &Cache, now_s: u64) -> Reconcile {
    let mut rng = SimRng::for_stream(1, "test");
    reconciler.reconcile(key, cache, &mut ReconcileContext { now_ns: now_s * S, rng: &mut rng })
}

fn cache_of(objects: Vec<Object>) -> Cache {
    let mut cache = Cache::new();
    for object in objects {
        cache.upsert(Rc::new(object));
    }
    cache
}

#[test]
fn retry_backoff_and_names_follow_upstream() {
    let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
    assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
    let Object::Service(svc) = service(false, false) else { unreachable!() };
    assert_eq!(load_balancer_name(&svc), "a1234abcd");
    assert!(CloudProfile::by_name("fast-reliable").is_ok());
    let error = CloudProfile::by_name("azure").unwrap_err();
    assert!(error.contains("fast-reliable or slow-flaky"), "{error}");
    assert!(CloudProfile::slow_flaky().provision_latency > CloudProfile::fast_reliable().provision_latency);
}

#[test]
fn the_service_controller_adds_the_finalizer_then_provisions_then_writes_the_address() {
    let key = ObjectKey::new(Kind::Service, "default", "shop");
    let mut controller = ServiceLoadBalancerController::new(CLOUD);
    // Without the finalizer: add it first, call nothing.
    let step = run(&mut controller, &key, &cache_of(vec![service(false, false)]), 1);
    assert!(step.calls.is_empty());
    assert!(
        matches!(&step.writes[..], [ApiRequest::Update { object }] if object.meta().finalizers == [LOAD_BALANCER_CLEANUP_FINALIZER])
    );
    // With it: ensure the load balancer.
    let cache = cache_of(vec![service(true, false)]);
    let step = run(&mut controller, &key, &cache, 2);
    assert!(
        matches!(&step.calls[..], [call] if call.to == CLOUD && matches!(&call.msg, Msg::Cloud(CloudRequest::EnsureLoadBalancer { name }) if name == "a1234abcd"))
    );
    // The cloud fails: back off 5 s, then 10 s, retrying each time.
    let failed = Msg::CloudResult(CloudResponse::Failed { reason: "quota".into() });
    controller.on_call_result(&key, &step.calls[0], Some(&failed));
    let wait = run(&mut controller, &key, &cache, 3);
    assert_eq!((wait.calls.len(), wait.requeue_after), (0, Some(Duration::from_secs(5))));
    let early = run(&mut controller, &key, &cache, 6);
    assert_eq!((early.calls.len(), early.requeue_after), (0, Some(Duration::from_secs(2))));
    let retry = run(&mut controller, &key, &cache, 8);
    assert_eq!(retry.calls.len(), 1);
    controller.on_call_result(&key, &retry.calls[0], None); // a timeout counts as a failure
    assert_eq!(run(&mut controller, &key, &cache, 70).requeue_after, Some(Duration::from_secs(10)));
    let retry = run(&mut controller, &key, &cache, 80);
    let provisioned =
        Msg::CloudResult(CloudResponse::LoadBalancer { name: "a1234abcd".into(), ip: "203.0.113.1".into() });
    controller.on_call_result(&key, &retry.calls[0], Some(&provisioned));
    assert_eq!((controller.failures, controller.retries), (2, 2));
    let status = run(&mut controller, &key, &cache, 81);
    let [ApiRequest::UpdateStatus { object }] = &status.writes[..] else { panic!("{:?}", status.writes) };
    let Object::Service(written) = &**object else { unreachable!() };
    assert_eq!(written.status.load_balancer.ingress[0].ip.as_deref(), Some("203.0.113.1"));
    // Once the status shows it, nothing more to do.
    let done = run(&mut controller, &key, &cache_of(vec![(**object).clone()]), 82);
    assert!(done.writes.is_empty() && done.calls.is_empty());
}

#[test]
fn a_deleted_service_loses_its_load_balancer_before_its_finalizer() {
    let key = ObjectKey::new(Kind::Service, "default", "shop");
    let mut controller = ServiceLoadBalancerController::new(CLOUD);
    let cache = cache_of(vec![service(true, true)]);
    let step = run(&mut controller, &key, &cache, 1);
    assert!(step.writes.is_empty(), "the finalizer stays until the load balancer is gone");
    assert!(matches!(&step.calls[0].msg, Msg::Cloud(CloudRequest::EnsureLoadBalancerDeleted { .. })));
    let deleted = Msg::CloudResult(CloudResponse::LoadBalancerDeleted { name: "a1234abcd".into() });
    controller.on_call_result(&key, &step.calls[0], Some(&deleted));
    let release = run(&mut controller, &key, &cache, 2);
    assert!(matches!(&release.writes[..], [ApiRequest::Update { object }] if object.meta().finalizers.is_empty()));
    // A Service that was never a LoadBalancer is not the controller's business.
    let mut plain = service(false, false);
    if let Object::Service(svc) = &mut plain {
        svc.spec.service_type = None;
    }
    let step = run(&mut controller, &key, &cache_of(vec![plain]), 3);
    assert!(step.writes.is_empty() && step.calls.is_empty());
}

fn node(ready: bool) -> Object {
    let mut node = object("apiVersion: v1\nkind: Node\nmetadata: {name: node-1, uid: n1}\n");
    if let Object::Node(n) = &mut node {
        n.status.conditions.push(Condition {
            condition_type: "Ready".into(),
            status: if ready { ConditionStatus::True } else { ConditionStatus::Unknown },
            ..Condition::default()
        });
    }
    node
}

#[test]
fn the_cloud_node_controller_deletes_only_unready_nodes_whose_instance_is_gone() {
    let key = ObjectKey::new(Kind::Node, "", "node-1");
    let mut controller = CloudNodeLifecycleController::new(CLOUD);
    let ready = run(&mut controller, &key, &cache_of(vec![node(true)]), 1);
    assert!(ready.calls.is_empty() && ready.writes.is_empty());
    assert_eq!(ready.requeue_after, Some(Duration::from_secs(5)));
    let cache = cache_of(vec![node(false)]);
    let ask = run(&mut controller, &key, &cache, 2);
    assert!(matches!(&ask.calls[0].msg, Msg::Cloud(CloudRequest::InstanceExists { node }) if node == "node-1"));
    // The instance still exists: ask again next period, delete nothing.
    let exists = Msg::CloudResult(CloudResponse::Instance { node: "node-1".into(), exists: true });
    controller.on_call_result(&key, &ask.calls[0], Some(&exists));
    let again = run(&mut controller, &key, &cache, 7);
    assert!(again.writes.is_empty() && again.calls.len() == 1);
    let gone = Msg::CloudResult(CloudResponse::Instance { node: "node-1".into(), exists: false });
    controller.on_call_result(&key, &again.calls[0], Some(&gone));
    let delete = run(&mut controller, &key, &cache, 12);
    assert!(
        matches!(&delete.writes[..], [ApiRequest::Delete { key: k, uid: Some(uid), .. }] if *k == key && uid == "n1")
    );
    assert_eq!(controller.nodes_deleted, 1);
}

#[test]
fn pod_gc_deletes_pods_of_a_missing_node_after_quarantine_and_a_confirming_get() {
    let mut pod = object("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default, uid: p1}\nspec:\n  containers: [{name: c, image: x}]\n");
    if let Object::Pod(p) = &mut pod {
        p.spec.node_name = Some("node-1".into());
    }
    let key = ObjectKey::new(Kind::Pod, "default", "p");
    let mut gc = PodGarbageCollector::new();
    // The node exists: nothing.
    let step = run(&mut gc, &key, &cache_of(vec![pod.clone(), node(true)]), 1);
    assert!(step.writes.is_empty() && step.requeue_after.is_none());
    let cache = cache_of(vec![pod]);
    let first = run(&mut gc, &key, &cache, 10);
    assert_eq!((first.writes.len(), first.requeue_after), (0, Some(Duration::from_secs(40))));
    assert!(run(&mut gc, &key, &cache, 49).writes.is_empty(), "still quarantined");
    let verify = run(&mut gc, &key, &cache, 50);
    let [get @ ApiRequest::Get { key: node_key }] = &verify.writes[..] else { panic!("{:?}", verify.writes) };
    assert_eq!(node_key.name, "node-1");
    // The GET finds the node after all (the informer lagged): the pod stays.
    gc.on_write_result(&key, get, &Ok(ApiOk::Object(Rc::new(node(true)))));
    let lagging = run(&mut gc, &key, &cache, 51);
    assert!(lagging.writes.is_empty(), "the quarantine starts again: {:?}", lagging.writes);
    let verify = run(&mut gc, &key, &cache, 91);
    gc.on_write_result(
        &key,
        &verify.writes[0],
        &Err(ApiError::new(ApiErrorReason::NotFound, "nodes \"node-1\" not found")),
    );
    // Upstream's markFailedAndDeletePodWithCondition: the status patch to Failed comes first.
    let mark = run(&mut gc, &key, &cache, 92);
    let [patch @ ApiRequest::UpdateStatus { object }] = &mark.writes[..] else { panic!("{:?}", mark.writes) };
    assert_orphan_marked_failed(object, 92 * S);
    assert_eq!(gc.orphans_deleted, 0, "nothing is deleted before the patch succeeds");
    gc.on_write_result(&key, patch, &Ok(ApiOk::Object(object.clone())));
    let delete = run(&mut gc, &key, &cache, 92);
    assert!(
        matches!(&delete.writes[..], [ApiRequest::Delete { grace_period_seconds: Some(0), uid: Some(uid), .. }] if uid == "p1"),
        "{:?}",
        delete.writes
    );
    assert_eq!((gc.orphans_deleted, gc.marked_failed), (1, 1));
}

/// The patch PodGC sends for an orphan: phase Failed, DisruptionTarget=True with reason
/// DeletionByPodGC, the uid kept as precondition and no resourceVersion.
fn assert_orphan_marked_failed(object: &Object, now_ns: u64) {
    let Object::Pod(pod) = object else { panic!("{object:?}") };
    assert_eq!(pod.status.phase, Some(kubedst_core::objects::pod::PodPhase::Failed));
    let condition = pod.status.conditions.iter().find(|c| c.condition_type == "DisruptionTarget").expect("condition");
    assert_eq!(condition.status, ConditionStatus::True);
    assert_eq!(condition.reason.as_deref(), Some("DeletionByPodGC"));
    assert_eq!(condition.message.as_deref(), Some("PodGC: node no longer exists"));
    assert_eq!(condition.last_transition_time_ns, Some(now_ns));
    assert_eq!((pod.metadata.uid.as_deref(), pod.metadata.resource_version.as_deref()), (Some("p1"), None));
}

fn bound_pod(phase: Option<kubedst_core::objects::pod::PodPhase>, terminating: bool) -> Object {
    let mut pod = object("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default, uid: p1}\nspec:\n  containers: [{name: c, image: x}]\n");
    if let Object::Pod(p) = &mut pod {
        p.spec.node_name = Some("node-1".into());
        p.status.phase = phase;
        if terminating {
            p.metadata.deletion_timestamp_ns = Some(S);
            p.metadata.deletion_grace_period_seconds = Some(30);
        }
    }
    pod
}

/// Quarantine and the confirming GET, so that the next reconcile collects the pod.
fn confirm_missing(gc: &mut PodGarbageCollector, key: &ObjectKey, cache: &Cache) {
    assert!(run(gc, key, cache, 1).writes.is_empty());
    let verify = run(gc, key, cache, 41);
    gc.on_write_result(key, &verify.writes[0], &Err(ApiError::new(ApiErrorReason::NotFound, "not found")));
}

#[test]
fn pod_gc_deletes_nothing_while_the_failed_patch_fails() {
    let key = ObjectKey::new(Kind::Pod, "default", "p");
    let cache = cache_of(vec![bound_pod(Some(kubedst_core::objects::pod::PodPhase::Running), false)]);
    let mut gc = PodGarbageCollector::new();
    confirm_missing(&mut gc, &key, &cache);
    for attempt in 0..3 {
        let mark = run(&mut gc, &key, &cache, 42 + attempt);
        assert!(matches!(&mark.writes[..], [ApiRequest::UpdateStatus { .. }]), "attempt {attempt}: {:?}", mark.writes);
        // While the patch is in flight, nothing more is sent.
        assert!(run(&mut gc, &key, &cache, 42 + attempt).writes.is_empty());
        gc.on_write_result(&key, &mark.writes[0], &Err(ApiError::new(ApiErrorReason::Timeout, "timed out")));
    }
    assert_eq!((gc.orphans_deleted, gc.marked_failed), (0, 0));
}

#[test]
fn pod_gc_deletes_an_already_finished_orphan_without_patching_it() {
    for phase in [kubedst_core::objects::pod::PodPhase::Succeeded, kubedst_core::objects::pod::PodPhase::Failed] {
        let key = ObjectKey::new(Kind::Pod, "default", "p");
        let cache = cache_of(vec![bound_pod(Some(phase), false)]);
        let mut gc = PodGarbageCollector::new();
        confirm_missing(&mut gc, &key, &cache);
        let delete = run(&mut gc, &key, &cache, 42);
        assert!(
            matches!(&delete.writes[..], [ApiRequest::Delete { grace_period_seconds: Some(0), .. }]),
            "{phase:?}: {:?}",
            delete.writes
        );
        assert_eq!((gc.orphans_deleted, gc.marked_failed), (1, 0));
    }
}

/// `gcTerminating`: a terminating pod on a NotReady node tainted `node.kubernetes.io/out-of-service`
/// is marked Failed (no condition: upstream passes none for this rule) and force-deleted; the
/// taint alone on a Ready node, or a pod not being deleted, is left alone.
#[test]
fn pod_gc_collects_terminating_pods_on_out_of_service_nodes_only() {
    let taint = |mut node: Object| {
        if let Object::Node(n) = &mut node {
            n.spec.taints.push(kubedst_core::objects::cluster::Taint {
                key: "node.kubernetes.io/out-of-service".into(),
                value: Some("nodeshutdown".into()),
                effect: kubedst_core::objects::pod::TaintEffect::NoExecute,
                time_added_ns: None,
            });
        }
        node
    };
    let key = ObjectKey::new(Kind::Pod, "default", "p");
    let running = Some(kubedst_core::objects::pod::PodPhase::Running);
    let cases = [
        ("not ready, tainted, terminating", taint(node(false)), true, true),
        ("ready, tainted, terminating", taint(node(true)), true, false),
        ("not ready, untainted, terminating", node(false), true, false),
        ("not ready, tainted, not terminating", taint(node(false)), false, false),
    ];
    for (name, node_object, terminating, collected) in cases {
        let mut gc = PodGarbageCollector::new();
        let mut cache = Cache::new();
        cache.upsert(Rc::new(bound_pod(running, terminating)));
        // The taint arrives as a node update: that is what queues the pod.
        let event = cache.upsert(Rc::new(node_object)).unwrap();
        let queued = gc.on_event(&event, &cache);
        assert_eq!(queued == vec![key.clone()], collected, "{name}: queued {queued:?}");
        let mark = run(&mut gc, &key, &cache, 5);
        if !collected {
            assert!(mark.writes.is_empty(), "{name}: {:?}", mark.writes);
            continue;
        }
        let [patch @ ApiRequest::UpdateStatus { object }] = &mark.writes[..] else {
            panic!("{name}: {:?}", mark.writes)
        };
        let Object::Pod(pod) = &**object else { unreachable!() };
        assert_eq!(pod.status.phase, Some(kubedst_core::objects::pod::PodPhase::Failed), "{name}");
        assert!(pod.status.conditions.iter().all(|c| c.condition_type != "DisruptionTarget"), "{name}");
        gc.on_write_result(&key, patch, &Ok(ApiOk::Object(object.clone())));
        let delete = run(&mut gc, &key, &cache, 5);
        assert!(
            matches!(&delete.writes[..], [ApiRequest::Delete { grace_period_seconds: Some(0), uid: Some(uid), .. }] if uid == "p1"),
            "{name}"
        );
        assert_eq!((gc.out_of_service_deleted, gc.orphans_deleted), (1, 0), "{name}");
    }
}
