//! The scheduler on hand-built nodes and pods.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kubedst_core::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::Scheduler;
use kubedst_core::objects::cluster::{NodeResources, NodeSpec, NodeStatus, Taint};
use kubedst_core::objects::pod::{
    Container, ResourceList, ResourceRequirements, TaintEffect, Toleration, TolerationOperator,
};
use kubedst_core::objects::{
    Bytes, Kind, Millicores, Node, Object, ObjectMeta, OwnerReference, Pod, PodSpec, StringMap,
};
use kubedst_sim::SimRng;

const GI: u64 = 1 << 30;

fn node(name: &str, cpu_millis: u64) -> Node {
    Node {
        metadata: ObjectMeta { name: name.into(), resource_version: Some("1".into()), ..ObjectMeta::default() },
        spec: NodeSpec::default(),
        status: NodeStatus {
            allocatable: NodeResources {
                cpu: Some(Millicores(cpu_millis)),
                memory: Some(Bytes(4 * GI)),
                pods: Some(Bytes(110)),
            },
            ..NodeStatus::default()
        },
    }
}

fn tainted(mut node: Node, key: &str, value: &str, effect: TaintEffect) -> Node {
    node.spec.taints.push(Taint { key: key.into(), value: Some(value.into()), effect, time_added_ns: None });
    node
}

fn pod(name: &str, cpu_millis: u64) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            owner_references: vec![OwnerReference {
                kind: "ReplicaSet".into(),
                name: "web".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                ..OwnerReference::default()
            }],
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: "v1".into(),
                resources: ResourceRequirements {
                    requests: ResourceList { cpu: Some(Millicores(cpu_millis)), memory: Some(Bytes(GI / 4)) },
                    ..ResourceRequirements::default()
                },
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        status: Default::default(),
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Pod, "default", name)
}

fn cache_of(objects: Vec<Object>) -> Cache {
    let mut cache = Cache::new();
    for object in objects {
        cache.upsert(Rc::new(object));
    }
    cache
}

fn schedule(scheduler: &mut Scheduler, cache: &Cache, name: &str, now_ns: u64, rng: &mut SimRng) -> Reconcile {
    scheduler.reconcile(&key(name), cache, &mut ReconcileContext { now_ns, rng })
}

fn bound_node(result: &Reconcile) -> Option<String> {
    result.writes.iter().find_map(|w| match w {
        ApiRequest::Bind { node, .. } => Some(node.clone()),
        _ => None,
    })
}

fn restricted_cluster(extra: Pod) -> Cache {
    let zone_b: StringMap = [("zone".to_string(), "b".to_string())].into();
    let mut cordoned = node("n3-cordoned", 4000);
    cordoned.spec.unschedulable = true;
    let mut labelled = node("n4-zone-b", 1000);
    labelled.metadata.labels = zone_b;
    cache_of(vec![
        Object::Node(node("n1-small", 1000)),
        Object::Node(tainted(node("n2-gpu", 4000), "dedicated", "gpu", TaintEffect::NoSchedule)),
        Object::Node(cordoned),
        Object::Node(labelled),
        Object::Pod(extra),
    ])
}

#[test]
fn binds_only_to_a_node_that_fits() {
    let mut rng = SimRng::for_stream(7, "x");
    // 2 CPUs: only the tainted and the cordoned nodes are big enough; with a toleration, the tainted one.
    let mut gpu_pod = pod("gpu", 2000);
    gpu_pod.spec.tolerations = vec![Toleration {
        key: Some("dedicated".into()),
        operator: Some(TolerationOperator::Equal),
        value: Some("gpu".into()),
        effect: Some(TaintEffect::NoSchedule),
        toleration_seconds: None,
    }];
    let cache = restricted_cluster(gpu_pod);
    let mut scheduler = Scheduler::new();
    let result = schedule(&mut scheduler, &cache, "gpu", 0, &mut rng);
    assert_eq!(bound_node(&result).as_deref(), Some("n2-gpu"));
    assert!(matches!(&result.writes[0], ApiRequest::Bind { uid: Some(uid), .. } if uid == "uid-gpu"));
    assert_eq!(scheduler.assumed_node(&key("gpu")), Some("n2-gpu"));

    // A nodeSelector leaves one node.
    let mut zoned = pod("zoned", 500);
    zoned.spec.node_selector = [("zone".to_string(), "b".to_string())].into();
    let cache = restricted_cluster(zoned);
    let mut scheduler = Scheduler::new();
    assert_eq!(bound_node(&schedule(&mut scheduler, &cache, "zoned", 0, &mut rng)).as_deref(), Some("n4-zone-b"));
}

#[test]
fn reports_upstreams_message_and_backs_off_when_nothing_fits() {
    let mut rng = SimRng::for_stream(7, "x");
    let cache = restricted_cluster(pod("big", 2000));
    let mut scheduler = Scheduler::new();
    let mut delays = Vec::new();
    let mut now_ns = 0;
    for _ in 0..6 {
        let result = schedule(&mut scheduler, &cache, "big", now_ns, &mut rng);
        assert!(result.writes.is_empty());
        let delay = result.requeue_after.unwrap();
        delays.push(delay.as_secs());
        now_ns += u64::try_from(delay.as_nanos()).unwrap();
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
    assert_eq!(
        scheduler.last_failure(&key("big")),
        Some(
            "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
             1 node(s) were unschedulable, 2 Insufficient cpu."
        )
    );
    // Reconciled early (an unrelated event): it waits out its backoff.
    let early = schedule(&mut scheduler, &cache, "big", now_ns - 1_000_000, &mut rng);
    assert_eq!((early.writes.len(), early.requeue_after), (0, Some(Duration::from_millis(1))));
}

#[test]
fn assumed_pods_hold_their_resources_until_the_bind_fails() {
    let mut rng = SimRng::for_stream(7, "x");
    let cache = cache_of(vec![Object::Node(node("n1", 1000)), Object::Pod(pod("a", 600)), Object::Pod(pod("b", 600))]);
    let mut scheduler = Scheduler::new();
    let first = schedule(&mut scheduler, &cache, "a", 0, &mut rng);
    assert_eq!(bound_node(&first).as_deref(), Some("n1"));
    // The cache does not show a bound yet, but the scheduler counts it.
    let second = schedule(&mut scheduler, &cache, "b", 0, &mut rng);
    assert!(second.writes.is_empty());
    assert_eq!(scheduler.last_failure(&key("b")), Some("0/1 nodes are available: 1 Insufficient cpu."));
    // a's bind fails: its assumption is forgotten, so b fits once its backoff passes.
    let bind = &first.writes[0];
    scheduler.on_write_result(&key("a"), bind, &Err(ApiError::new(ApiErrorReason::Conflict, "pod changed")));
    assert_eq!(scheduler.assumed_node(&key("a")), None);
    let retry = schedule(&mut scheduler, &cache, "b", 2_000_000_000, &mut rng);
    assert_eq!(bound_node(&retry).as_deref(), Some("n1"));
    assert_eq!(scheduler.last_failure(&key("b")), None);
    // A successful bind is kept until the watch shows the pod bound.
    scheduler.on_write_result(&key("b"), &retry.writes[0], &Ok(ApiOk::Object(Rc::new(Object::Pod(pod("b", 600))))));
    assert_eq!(scheduler.assumed_node(&key("b")), Some("n1"));
    let mut bound = pod("b", 600);
    bound.spec.node_name = Some("n1".into());
    bound.metadata.resource_version = Some("2".into());
    let mut cache = cache;
    let event = cache.upsert(Rc::new(Object::Pod(bound))).unwrap();
    scheduler.on_event(&event, &cache);
    assert_eq!(scheduler.assumed_node(&key("b")), None);
}

#[test]
fn pods_of_one_owner_spread_over_equal_nodes() {
    let mut rng = SimRng::for_stream(7, "x");
    let mut objects =
        vec![Object::Node(node("n1", 4000)), Object::Node(node("n2", 4000)), Object::Node(node("n3", 4000))];
    for i in 0..6 {
        objects.push(Object::Pod(pod(&format!("p{i}"), 100)));
    }
    let cache = cache_of(objects);
    let mut scheduler = Scheduler::new();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let node = bound_node(&schedule(&mut scheduler, &cache, &format!("p{i}"), 0, &mut rng)).unwrap();
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.into_values().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[test]
fn the_tie_break_is_seeded() {
    let cache =
        cache_of(vec![Object::Node(node("n1", 4000)), Object::Node(node("n2", 4000)), Object::Pod(pod("p", 100))]);
    let pick = |seed: u64| {
        let mut rng = SimRng::for_stream(seed, "x");
        bound_node(&schedule(&mut Scheduler::new(), &cache, "p", 0, &mut rng)).unwrap()
    };
    let picks: Vec<String> = (0..16).map(pick).collect();
    assert_eq!(picks, (0..16).map(pick).collect::<Vec<_>>(), "same seed, same node");
    assert!(picks.contains(&"n1".to_string()) && picks.contains(&"n2".to_string()), "both nodes get picked: {picks:?}");
}

#[test]
fn no_nodes_at_all() {
    let mut rng = SimRng::for_stream(7, "x");
    let cache = cache_of(vec![Object::Pod(pod("p", 100))]);
    let mut scheduler = Scheduler::new();
    assert!(schedule(&mut scheduler, &cache, "p", 0, &mut rng).writes.is_empty());
    assert_eq!(scheduler.last_failure(&key("p")), Some("no nodes available to schedule pods"));
    // A node appears: the waiting pod is named again.
    let mut cache = cache;
    let event = cache.upsert(Rc::new(Object::Node(node("n1", 1000)))).unwrap();
    assert_eq!(scheduler.on_event(&event, &cache), vec![key("p")]);
}
