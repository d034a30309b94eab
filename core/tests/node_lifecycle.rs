//! The node lifecycle controller on a hand-built cache with fake times: health, taints, eviction
//! deadlines, zone disruption and rate limiting.

use std::rc::Rc;

use kubedst_core::api::{ApiOk, ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::nodelifecycle::{compute_zone_state, ZoneState};
use kubedst_core::controllers::NodeLifecycleController;
use kubedst_core::objects::cluster::{LeaseSpec, ZONE_LABEL};
use kubedst_core::objects::pod::{TaintEffect, Toleration, TolerationOperator};
use kubedst_core::objects::{Condition, ConditionStatus, Kind, Lease, Node, Object, ObjectMeta, Pod, PodSpec};
use kubedst_sim::SimRng;

const S: u64 = 1_000_000_000;
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn node(name: &str, zone: &str, ready: ConditionStatus, rv: u64) -> Object {
    let mut labels = kubedst_core::objects::StringMap::new();
    labels.insert(ZONE_LABEL.to_string(), zone.to_string());
    let mut node = Node {
        metadata: ObjectMeta {
            name: name.into(),
            labels,
            resource_version: Some(rv.to_string()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    node.status.conditions.push(Condition {
        condition_type: "Ready".into(),
        status: ready,
        last_heartbeat_time_ns: Some(0),
        ..Condition::default()
    });
    Object::Node(node)
}

fn lease(name: &str, renew_ns: u64, rv: u64) -> Object {
    Object::Lease(Lease {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("kube-node-lease".into()),
            resource_version: Some(rv.to_string()),
            ..ObjectMeta::default()
        },
        spec: LeaseSpec { renew_time_ns: Some(renew_ns), ..LeaseSpec::default() },
    })
}

fn toleration(seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some(UNREACHABLE.into()),
        operator: Some(TolerationOperator::Exists),
        value: None,
        effect: Some(TaintEffect::NoExecute),
        toleration_seconds: seconds,
    }
}

fn pod(name: &str, node: &str, tolerations: Vec<Toleration>) -> Object {
    Object::Pod(Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: PodSpec { node_name: Some(node.into()), tolerations, ..PodSpec::default() },
        status: Default::default(),
    })
}

/// A controller and its cache; events go through `on_event` like the host's informers.
struct Harness {
    controller: NodeLifecycleController,
    cache: Cache,
    rng: SimRng,
}

impl Harness {
    fn new(objects: Vec<Object>) -> Harness {
        let mut harness = Harness {
            controller: NodeLifecycleController::new(),
            cache: Cache::new(),
            rng: SimRng::for_stream(1, "test"),
        };
        for object in objects {
            harness.put(object);
        }
        harness
    }

    fn put(&mut self, object: Object) {
        if let Some(event) = self.cache.upsert(Rc::new(object)) {
            self.controller.on_event(&event, &self.cache);
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, now_ns: u64) -> Reconcile {
        self.controller.reconcile(key, &self.cache, &mut ReconcileContext { now_ns, rng: &mut self.rng })
    }

    fn node(&mut self, name: &str, now_ns: u64) -> Reconcile {
        self.reconcile(&ObjectKey::new(Kind::Node, "", name), now_ns)
    }

    fn pod(&mut self, name: &str, now_ns: u64) -> Reconcile {
        self.reconcile(&ObjectKey::new(Kind::Pod, "default", name), now_ns)
    }

    /// Applies a node write as the API server would (bumping the resourceVersion) and feeds the
    /// result back, both to `on_write_result` and the cache.
    fn apply(&mut self, key: &ObjectKey, result: &Reconcile) {
        for write in &result.writes {
            let (ApiRequest::Update { object } | ApiRequest::UpdateStatus { object }) = write else { continue };
            let mut written = (**object).clone();
            let rv = kubedst_core::api::resource_version_of(&written) + 1;
            written.meta_mut().resource_version = Some(rv.to_string());
            let written = Rc::new(written);
            self.controller.on_write_result(key, write, &Ok(ApiOk::Object(written.clone())));
            self.put((*written).clone());
        }
    }

    /// Reconciles the node and applies its writes.
    fn step_node(&mut self, name: &str, now_ns: u64) -> Reconcile {
        let result = self.node(name, now_ns);
        self.apply(&ObjectKey::new(Kind::Node, "", name), &result);
        result
    }

    fn taints(&self, name: &str) -> Vec<(String, TaintEffect, Option<u64>)> {
        match &**self.cache.get_by(Kind::Node, "", name).unwrap() {
            Object::Node(node) => node.spec.taints.iter().map(|t| (t.key.clone(), t.effect, t.time_added_ns)).collect(),
            _ => unreachable!(),
        }
    }

    fn ready(&self, name: &str) -> ConditionStatus {
        match &**self.cache.get_by(Kind::Node, "", name).unwrap() {
            Object::Node(node) => node.status.conditions[0].status,
            _ => unreachable!(),
        }
    }
}

fn deleted_pods(result: &Reconcile) -> Vec<(String, Option<String>)> {
    result
        .writes
        .iter()
        .filter_map(|w| match w {
            ApiRequest::Delete { key, uid, .. } => Some((key.name.clone(), uid.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn zone_states_follow_upstream_thresholds() {
    assert_eq!(compute_zone_state(3, 0), ZoneState::Normal);
    assert_eq!(compute_zone_state(0, 1), ZoneState::FullDisruption);
    assert_eq!(compute_zone_state(1, 2), ZoneState::Normal, "2 unhealthy is never partial");
    assert_eq!(compute_zone_state(2, 3), ZoneState::PartialDisruption, "60%");
    assert_eq!(compute_zone_state(9, 11), ZoneState::PartialDisruption, "exactly 55%");
    assert_eq!(compute_zone_state(10, 11), ZoneState::Normal, "52%");
    assert_eq!(compute_zone_state(0, 0), ZoneState::Normal);
}

/// Two healthy nodes in zone a and `victim` with a lease renewed at 0.
fn three_nodes() -> Harness {
    Harness::new(vec![
        node("n0", "a", ConditionStatus::True, 1),
        node("n1", "a", ConditionStatus::True, 1),
        node("n2", "a", ConditionStatus::True, 1),
        lease("n0", 0, 1),
        lease("n1", 0, 1),
        lease("n2", 0, 1),
    ])
}

/// Keeps n1 and n2 alive: renews their leases at `now_ns` and reconciles them.
fn renew_others(h: &mut Harness, now_ns: u64, rv: u64) {
    for name in ["n1", "n2"] {
        h.put(lease(name, now_ns, rv));
        h.step_node(name, now_ns);
    }
}

#[test]
fn a_silent_node_is_marked_unknown_and_tainted_then_untainted_when_it_renews() {
    let mut h = three_nodes();
    let first = h.step_node("n0", 0);
    assert!(first.writes.is_empty());
    assert_eq!(first.requeue_after, Some(std::time::Duration::from_secs(5)));
    // Silent until exactly the grace period: nothing.
    for t in (5..=50).step_by(5) {
        renew_others(&mut h, t * S, t);
        assert!(h.step_node("n0", t * S).writes.is_empty(), "at {t} s");
    }
    // Past it (the next monitor period): Ready Unknown via UpdateStatus, then the taints.
    renew_others(&mut h, 55 * S, 55);
    let status = h.step_node("n0", 55 * S);
    assert!(matches!(status.writes.as_slice(), [ApiRequest::UpdateStatus { .. }]));
    assert_eq!(h.ready("n0"), ConditionStatus::Unknown);
    let taint = h.step_node("n0", 55 * S + S / 10);
    assert!(
        matches!(taint.writes.as_slice(), [ApiRequest::Update { object }] if object.meta().resource_version.as_deref() == Some("2"))
    );
    let at = Some(55 * S + S / 10);
    assert_eq!(
        h.taints("n0"),
        vec![(UNREACHABLE.into(), TaintEffect::NoSchedule, at), (UNREACHABLE.into(), TaintEffect::NoExecute, at)]
    );
    assert_eq!(h.controller.status_updates(), 1);
    // Nothing more while it stays silent.
    assert!(h.step_node("n0", 60 * S).writes.is_empty());
    // The kubelet is back: lease renewed and Ready posted; both taints go.
    h.put(lease("n0", 61 * S, 100));
    h.put(node("n0", "a", ConditionStatus::True, 101).clone_with_taints_of(&h.cache));
    let untaint = h.step_node("n0", 61 * S);
    assert_eq!(untaint.writes.len(), 1);
    assert!(h.taints("n0").is_empty());
}

/// The kubelet's status post keeps the spec (taints): builds the node with the cached taints.
trait WithTaints {
    fn clone_with_taints_of(self, cache: &Cache) -> Object;
}

impl WithTaints for Object {
    fn clone_with_taints_of(mut self, cache: &Cache) -> Object {
        let name = self.meta().name.clone();
        if let (Object::Node(node), Some(cached)) = (&mut self, cache.get_by(Kind::Node, "", &name)) {
            if let Object::Node(cached) = &**cached {
                node.spec.taints = cached.spec.taints.clone();
            }
        }
        self
    }
}

#[test]
fn pods_are_evicted_when_their_tolerations_run_out() {
    let mut h = three_nodes();
    h.put(pod("none", "n0", vec![]));
    h.put(pod("five-minutes", "n0", vec![toleration(Some(300))]));
    h.put(pod("forever", "n0", vec![toleration(None)]));
    h.put(pod("elsewhere", "n1", vec![]));
    // Untainted: nobody goes.
    for name in ["none", "five-minutes", "forever", "elsewhere"] {
        assert!(h.pod(name, 0).writes.is_empty());
    }
    h.step_node("n0", 0);
    for t in (5..=55).step_by(5) {
        renew_others(&mut h, t * S, t);
        h.step_node("n0", t * S);
    }
    let taint_ns = 55 * S + S / 10;
    h.step_node("n0", taint_ns);
    assert_eq!(h.taints("n0").len(), 2);
    // No toleration: at once, with the uid as precondition.
    assert_eq!(deleted_pods(&h.pod("none", taint_ns)), vec![("none".into(), Some("uid-none".into()))]);
    assert!(h.pod("none", taint_ns).writes.is_empty(), "sent once");
    // 300 s: requeued to exactly taint time + 300 s.
    let wait = h.pod("five-minutes", taint_ns + 10 * S);
    assert!(wait.writes.is_empty());
    assert_eq!(wait.requeue_after, Some(std::time::Duration::from_secs(290)));
    assert!(h.pod("five-minutes", taint_ns + 300 * S - 1).writes.is_empty());
    assert_eq!(deleted_pods(&h.pod("five-minutes", taint_ns + 300 * S)).len(), 1);
    // Forever: never.
    let forever = h.pod("forever", taint_ns + 10_000 * S);
    assert!(forever.writes.is_empty() && forever.requeue_after.is_none());
    assert!(h.pod("elsewhere", taint_ns + 10_000 * S).writes.is_empty());
    assert_eq!(h.controller.eviction_log().len(), 2);
    assert_eq!(h.controller.eviction_log()[1].at_ns, taint_ns + 300 * S);
}

#[test]
fn pods_of_a_node_that_comes_back_in_time_stay() {
    let mut h = three_nodes();
    h.put(pod("five-minutes", "n0", vec![toleration(Some(300))]));
    h.step_node("n0", 0);
    for t in (5..=55).step_by(5) {
        renew_others(&mut h, t * S, t);
        h.step_node("n0", t * S);
    }
    let taint_ns = 55 * S + S / 10;
    h.step_node("n0", taint_ns);
    assert!(h.pod("five-minutes", taint_ns).requeue_after.is_some());
    h.put(lease("n0", 100 * S, 100));
    h.put(node("n0", "a", ConditionStatus::True, 101).clone_with_taints_of(&h.cache));
    h.step_node("n0", 100 * S);
    assert!(h.taints("n0").is_empty());
    let at_deadline = h.pod("five-minutes", taint_ns + 300 * S);
    assert!(at_deadline.writes.is_empty() && at_deadline.requeue_after.is_none());
    assert_eq!(h.controller.evictions(), 0);
}

#[test]
fn when_every_zone_is_fully_disrupted_nothing_is_tainted_or_evicted() {
    // Every node silent (a control-plane partition, say): all zones fully disrupted.
    let mut h = Harness::new(vec![
        node("n0", "a", ConditionStatus::True, 1),
        node("n1", "b", ConditionStatus::True, 1),
        lease("n0", 0, 1),
        lease("n1", 0, 1),
        pod("none", "n0", vec![]),
    ]);
    for t in (0..=55).step_by(5) {
        h.step_node("n0", t * S);
        h.step_node("n1", t * S);
    }
    assert_eq!(h.ready("n0"), ConditionStatus::Unknown);
    assert_eq!(h.ready("n1"), ConditionStatus::Unknown);
    for t in 56..=120 {
        h.step_node("n0", t * S);
        h.step_node("n1", t * S);
    }
    let states = h.controller.zone_states();
    assert_eq!(states.get("a"), Some(&ZoneState::FullDisruption));
    assert_eq!(states.get("b"), Some(&ZoneState::FullDisruption));
    // NoSchedule (TaintNodesByCondition) only; no NoExecute taint, so no eviction.
    for name in ["n0", "n1"] {
        assert_eq!(h.taints(name), vec![(UNREACHABLE.into(), TaintEffect::NoSchedule, Some(56 * S))], "{name}");
    }
    assert!(h.pod("none", 120 * S).writes.is_empty());
    // n1 comes back: zone b is Normal, zone a may be tainted again, at the normal rate.
    h.put(lease("n1", 121 * S, 200));
    h.put(node("n1", "b", ConditionStatus::True, 201).clone_with_taints_of(&h.cache));
    h.step_node("n1", 121 * S);
    assert_eq!(h.controller.zone_states().get("b"), Some(&ZoneState::Normal));
    // SwapLimiter from the stopped limiter drains the new bucket: the first token comes 10 s on.
    h.step_node("n0", 130 * S);
    assert_eq!(h.taints("n0").len(), 1, "not before 131 s");
    h.step_node("n0", 131 * S);
    assert_eq!(h.taints("n0").len(), 2, "unreachable NoSchedule and NoExecute");
    assert_eq!(deleted_pods(&h.pod("none", 131 * S)).len(), 1);
}

/// A zone of `size` nodes of which the first `silent` stop renewing at 0 and the rest renew
/// every 5 s; runs the monitor loop to `until_s` and returns when each silent node got its
/// NoExecute taint.
fn run_zone(size: usize, silent: usize, until_s: u64) -> Vec<Option<u64>> {
    let names: Vec<String> = (0..size).map(|i| format!("n{i:02}")).collect();
    let mut objects = Vec::new();
    for name in &names {
        objects.push(node(name, "a", ConditionStatus::True, 1));
        objects.push(lease(name, 0, 1));
    }
    let mut h = Harness::new(objects);
    let mut tainted = vec![None; silent];
    for t in 0..=until_s * 10 {
        // Every 100 ms: nodes whose requeue is due (approximated by 5 s periods + 100 ms retries).
        let now = t * S / 10;
        for (i, name) in names.iter().enumerate() {
            if i >= silent && now.is_multiple_of(5 * S) {
                h.put(lease(name, now, 10 + t));
            }
            h.step_node(name, now);
            if i < silent && tainted[i].is_none() && h.taints(name).iter().any(|t| t.1 == TaintEffect::NoExecute) {
                tainted[i] = Some(now);
            }
        }
    }
    tainted
}

#[test]
fn normal_zone_taints_one_node_every_10_s() {
    // 2 of 10 silent: Normal, rate 0.1 per second.
    let tainted = run_zone(10, 2, 80);
    let first = tainted[0].expect("first tainted");
    let second = tainted[1].expect("second tainted");
    assert_eq!(second - first, 10 * S);
}

#[test]
fn small_partially_disrupted_zone_stops_tainting() {
    // 6 of 10 silent (60% > 55%, more than 2), zone not larger than 50: rate 0.
    let tainted = run_zone(10, 6, 120);
    assert!(tainted.iter().all(Option::is_none), "{tainted:?}");
}

#[test]
fn large_partially_disrupted_zone_taints_one_node_every_100_s() {
    // 30 of 52 silent (58%) in a zone above the 50-node threshold: rate 0.01 per second.
    let tainted = run_zone(52, 30, 320);
    let mut times: Vec<u64> = tainted.iter().flatten().copied().collect();
    times.sort();
    assert_eq!(times.len(), 3, "{times:?}");
    assert_eq!(times[1] - times[0], 100 * S);
    assert_eq!(times[2] - times[1], 100 * S);
}
