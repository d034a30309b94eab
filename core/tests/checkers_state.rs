//! Canaries of the checkers that read the components' state (watch order, one leader per lease,
//! rollout availability, zero downtime) and of the eventual promises: each is fed a known-bad
//! history or a doctored cluster state and must fail, and holds (exercised) on a good one.

use kubedst_core::api::{HttpOutcome, ObjectKey};
use kubedst_core::apiserver::ApiServer;
use kubedst_core::checkers::faults::Harm;
use kubedst_core::checkers::{
    Cadence, Change, Checker, CheckerSet, FaultLog, OneLeaderPerLease, RolloutAvailability, Violation, WatchInOrder,
    World, ZeroDowntime,
};
use kubedst_core::cluster::{Cluster, ClusterConfig, TrafficConfig};
use kubedst_core::etcd::Etcd;
use kubedst_core::harness::{run, Action, FaultPlan, RunSpec, TimedAction, Verdict};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::{RequestRecord, Traffic};
use kubedst_core::objects::meta::ConditionStatus;
use kubedst_core::objects::{Condition, Object};
use kubedst_sim::Time;
use std::rc::Rc;
use std::time::Duration;

const S: u64 = 1_000_000_000;

fn object(yaml: &str) -> Object {
    load_manifests("test.yaml", yaml).unwrap().objects.remove(0).object
}

fn deployment(image: &str) -> Rc<Object> {
    Rc::new(object(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\nspec:\n  replicas: 4\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{image}\"}}]\n"
    )))
}

fn service() -> Rc<Object> {
    Rc::new(object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    ))
}

/// A pod of the web Deployment on `node`, Ready since 0 s, or terminating.
fn pod(uid: &str, node: &str, ip: &str, terminating: bool) -> Rc<Object> {
    let mut pod = object(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{uid}, namespace: default, labels: {{app: web}}}}\nspec:\n  containers: [{{name: web, image: v1}}]\n"
    ));
    if let Object::Pod(p) = &mut pod {
        p.metadata.uid = Some(uid.to_string());
        p.spec.node_name = Some(node.to_string());
        p.status.pod_ip = Some(ip.to_string());
        p.status.conditions.push(Condition {
            condition_type: "Ready".into(),
            status: ConditionStatus::True,
            last_transition_time_ns: Some(0),
            ..Condition::default()
        });
        if terminating {
            p.metadata.deletion_timestamp_ns = Some(1);
        }
    }
    Rc::new(pod)
}

fn change(revision: u64, at_ns: u64, object: Rc<Object>, previous: Option<Rc<Object>>) -> Change {
    Change { revision, at_ns, key: ObjectKey::of(&object), object: Some(object), previous }
}

/// A cluster that is never run: the state checkers only need its components to exist.
fn idle_cluster() -> Cluster {
    let mut config = ClusterConfig::standard(1, 2);
    config.traffic = vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_secs(1) }];
    Cluster::build(config)
}

/// Feeds one change to a checker and lets it look at the world at the change's time.
fn feed(checker: &mut dyn Checker, cluster: &Cluster, faults: &FaultLog, change: &Change) -> Vec<Violation> {
    let mut violations = checker.observe(change);
    let world = World { cluster, faults, now_ns: change.at_ns, revision: change.revision };
    violations.extend(checker.inspect(&world));
    violations
}

/// Four available pods, then a rollout that takes two of them away at once (on node-1).
fn rollout_history() -> Vec<Change> {
    let mut history = vec![change(2, S, deployment("v1"), None)];
    let nodes = ["node-0", "node-0", "node-1", "node-1"];
    for (index, node) in nodes.iter().enumerate() {
        let uid = format!("u{index}");
        history.push(change(3 + index as u64, 2 * S, pod(&uid, node, &format!("10.0.0.{index}"), false), None));
    }
    history.push(change(10, 10 * S, deployment("v2"), Some(deployment("v1"))));
    for (revision, uid) in [(11, "u2"), (12, "u3")] {
        let ip = if uid == "u2" { "10.0.0.2" } else { "10.0.0.3" };
        history.push(change(revision, 12 * S, pod(uid, "node-1", ip, true), Some(pod(uid, "node-1", ip, false))));
    }
    history
}

#[test]
fn canary_a_rollout_that_drops_below_max_unavailable_is_caught() {
    let cluster = idle_cluster();
    let mut checker = RolloutAvailability::default();
    let violations: Vec<Violation> = rollout_history()
        .iter()
        .flat_map(|change| feed(&mut checker, &cluster, &FaultLog::default(), change))
        .collect();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(
        violations[0].message,
        "deployment default/web: 2 available pods during its rollout, below replicas 4 - maxUnavailable 1 = 3; lost with no fault to blame: web-u3 on node-1"
    );
    assert_eq!(violations[0].revision, 12);
    assert!(checker.exercised() >= 2);
    // The first loss alone (3 left) is within maxUnavailable.
    let mut checker = RolloutAvailability::default();
    let history = rollout_history();
    let prefix: Vec<Violation> = history[..history.len() - 1]
        .iter()
        .flat_map(|change| feed(&mut checker, &cluster, &FaultLog::default(), change))
        .collect();
    assert!(prefix.is_empty(), "{prefix:?}");
}

#[test]
fn a_rollout_loss_on_a_crashed_node_is_attributed_to_the_crash() {
    let cluster = idle_cluster();
    let mut faults = FaultLog::default();
    faults.machine_fault("node-1", Harm::Unreachable, "crash node-1", 11 * S, None);
    let mut checker = RolloutAvailability::default();
    let violations: Vec<Violation> =
        rollout_history().iter().flat_map(|change| feed(&mut checker, &cluster, &faults, change)).collect();
    assert!(violations.is_empty(), "{violations:?}");
    // A fault of another node, or of this node after the loss, is no excuse.
    for (machine, start_ns) in [("node-0", 11 * S), ("node-1", 13 * S)] {
        let mut faults = FaultLog::default();
        faults.machine_fault(machine, Harm::Unreachable, "partition", start_ns, Some(start_ns + 1_000 * S));
        let mut checker = RolloutAvailability::default();
        let violations: Vec<Violation> =
            rollout_history().iter().flat_map(|change| feed(&mut checker, &cluster, &faults, change)).collect();
        assert_eq!(violations.len(), 1, "{machine} at {start_ns}: {violations:?}");
    }
}

/// Writes a request record into the idle cluster's traffic log, as the client would.
fn log_request(cluster: &mut Cluster, id: u64, outcome: HttpOutcome, pod_ip: &str) {
    let source = cluster.traffic[0];
    let traffic = cluster.sim.component_mut::<Traffic>(source).expect("the traffic source runs");
    traffic.log.push(RequestRecord { id, sent_ns: 0, done_ns: 100_000_000, outcome, pod_ip: pod_ip.into() });
}

/// Runs the zero-downtime checker over: a Service, pods, a request before the rollout (fails:
/// warm-up), one that succeeds, the rollout at 10 s, and a refused request at 12 s to the pod at
/// 10.0.0.2 on node-1.
fn zero_downtime_run(faults: &FaultLog) -> (Vec<Violation>, ZeroDowntime) {
    let mut cluster = idle_cluster();
    let mut checker = ZeroDowntime::default();
    let mut violations = Vec::new();
    let look = |checker: &mut ZeroDowntime, cluster: &Cluster, now_ns: u64| {
        checker.inspect(&World { cluster, faults, now_ns, revision: 0 })
    };
    let mut history = vec![change(1, S, service(), None)];
    history.extend(rollout_history().into_iter().take(5));
    for change in &history {
        violations.extend(checker.observe(change));
    }
    log_request(&mut cluster, 0, HttpOutcome::NoEndpoints, "");
    log_request(&mut cluster, 1, HttpOutcome::Ok, "10.0.0.0");
    violations.extend(look(&mut checker, &cluster, 5 * S));
    violations.extend(checker.observe(&change(10, 10 * S, deployment("v2"), Some(deployment("v1")))));
    log_request(&mut cluster, 2, HttpOutcome::Ok, "10.0.0.1");
    violations.extend(look(&mut checker, &cluster, 11 * S));
    log_request(&mut cluster, 3, HttpOutcome::Refused, "10.0.0.2");
    violations.extend(look(&mut checker, &cluster, 12 * S));
    (violations, checker)
}

#[test]
fn canary_a_failed_request_during_a_rollout_is_caught() {
    let (violations, checker) = zero_downtime_run(&FaultLog::default());
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(
        violations[0].message,
        "traffic-0: request 3 to default/web failed (connection refused, pod 10.0.0.2 on node-1) during the rollout of deployment default/web, and no fault of the machine or container that served it explains it"
    );
    assert_eq!(violations[0].at_ns, 12 * S);
    // Request 0 (warm-up) and 1 (before the rollout) are not judged; 2 and 3 are.
    assert_eq!(checker.exercised(), 2);
}

#[test]
fn only_a_fault_of_the_serving_machine_excuses_a_failed_request() {
    let mut crash = FaultLog::default();
    crash.machine_fault("node-1", Harm::Unreachable, "crash node-1", 11 * S, Some(13 * S));
    let (violations, checker) = zero_downtime_run(&crash);
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(checker.excused_failures, 1);
    let mut container = FaultLog::default();
    container.pod_fault("node-1", Some("u2"), "container web of web-u2 crashed", 11 * S);
    assert!(zero_downtime_run(&container).0.is_empty());
    // A control-plane crash, a skewed clock on the serving node, a fault of another node or of
    // another pod are no excuse (the zero-downtime table); nor is a fault of the serving node
    // that came after the request.
    let mut others = FaultLog::default();
    others.machine_fault("control-plane-0", Harm::Unreachable, "crash control-plane-0", 11 * S, None);
    others.machine_fault("node-1", Harm::Degraded, "skew node-1's clock", 11 * S, None);
    others.machine_fault("node-2", Harm::Unreachable, "crash node-2", 11 * S, None);
    others.machine_fault("node-1", Harm::Unreachable, "crash node-1", 13 * S, None);
    others.pod_fault("node-1", Some("u3"), "container web of web-u3 crashed", 11 * S);
    let (violations, _) = zero_downtime_run(&others);
    assert_eq!(violations.len(), 1, "{violations:?}");
}

/// Steps a cluster to `until` with `checkers` looking as the harness has them look.
fn run_checked(cluster: &mut Cluster, checkers: &mut CheckerSet, faults: &FaultLog, until: Time) {
    let mut last_revision = 0;
    while cluster.sim.now() < until && cluster.sim.step() {
        let revision = cluster.sim.component::<Etcd>(cluster.etcd).map_or(0, |etcd| etcd.store().current_revision());
        let now_ns = cluster.sim.now().as_nanos();
        if revision != last_revision {
            last_revision = revision;
            let etcd = cluster.sim.component::<Etcd>(cluster.etcd).unwrap();
            checkers.check(etcd, now_ns).unwrap();
            checkers.inspect(&World { cluster, faults, now_ns, revision }, Cadence::Writes);
        }
        checkers.inspect(&World { cluster, faults, now_ns, revision }, Cadence::EveryStep);
    }
}

fn web_cluster(seed: u64, control_plane_replicas: u32) -> Cluster {
    let mut config = ClusterConfig::standard(seed, 2);
    config.control_plane_replicas = control_plane_replicas;
    let mut cluster = Cluster::build(config);
    cluster.create((*deployment("web:v1")).clone());
    cluster
}

#[test]
fn canary_a_watch_cache_gap_is_caught_and_a_clean_run_is_exercised() {
    let mut cluster = web_cluster(3, 1);
    let mut checkers = CheckerSet::new(vec![Box::<WatchInOrder>::default()]);
    let faults = FaultLog::default();
    run_checked(&mut cluster, &mut checkers, &faults, Time::from_secs(20));
    assert!(checkers.violations.is_empty(), "{:?}", checkers.violations);
    let judged = checkers.exercised()["watch-in-order"];
    assert!(judged > 50, "watch events judged: {judged}");
    // Doctor the ground truth: the API server counts one event that skipped one of its key.
    let server = cluster.api_servers[0];
    cluster.sim.component_mut::<ApiServer>(server).unwrap().watch_cache_gaps += 1;
    run_checked(&mut cluster, &mut checkers, &faults, Time::from_secs(21));
    let messages: Vec<&str> = checkers.violations.iter().map(|violation| violation.message.as_str()).collect();
    assert_eq!(messages, ["kube-apiserver-0: 1 watch-cache event that skipped one of its key"]);
}

#[test]
fn canary_two_leaders_of_one_lease_are_caught() {
    // As in `leader_election.rs`: a leader whose clock runs at half speed keeps acting after its
    // successor took the lease. Without the drift, the same failover never overlaps.
    for (drift_ppm, overlaps) in [(0, false), (-500_000, true)] {
        let mut cluster = web_cluster(7, 3);
        let mut checkers = CheckerSet::new(vec![Box::<OneLeaderPerLease>::default()]);
        let faults = FaultLog::default();
        run_checked(&mut cluster, &mut checkers, &faults, Time::from_secs(30));
        assert!(checkers.violations.is_empty(), "{:?}", checkers.violations);
        let managers = cluster.controller_managers.clone();
        let leader = managers
            .iter()
            .copied()
            .find(|&id| cluster.sim.component::<kubedst_core::host::ControllerHost>(id).unwrap().is_leader())
            .expect("a leader");
        let machine = cluster.sim.machine_of(leader);
        cluster.sim.set_clock_drift(machine, drift_ppm);
        let mut others: Vec<_> = cluster.control_plane_machines.iter().copied().filter(|&m| m != machine).collect();
        others.push(cluster.etcd_machine);
        cluster.sim.partition(&[machine], &others, false);
        run_checked(&mut cluster, &mut checkers, &faults, Time::from_secs(70));
        assert_eq!(!checkers.violations.is_empty(), overlaps, "drift {drift_ppm}: {:?}", checkers.violations);
        assert!(checkers.exercised()["one-leader-per-lease"] > 1_000);
        if overlaps {
            // The drifting machine may lead the scheduler's lease too; the controller manager's
            // overlap must be among what is caught.
            assert!(
                checkers.violations.iter().any(|violation| violation
                    .message
                    .starts_with("lease kube-system/kube-controller-manager has 2 acting leaders: ")),
                "{:?}",
                checkers.violations
            );
        }
    }
}

#[test]
fn unmet_eventual_promises_are_reported_in_words() {
    let mut cluster = ClusterConfig::standard(5, 3);
    for node in &mut cluster.nodes {
        node.cpu_millicores = 1_000;
    }
    let manifests = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 4
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      containers: [{name: big, image: "big:v1", resources: {requests: {cpu: 600m}}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: forever}
spec:
  completions: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: run, image: "server:v1"}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: orphan
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: gone, uid: no-such-uid}]
"#;
    let objects: Vec<Object> =
        load_manifests("big.yaml", manifests).unwrap().objects.into_iter().map(|loaded| loaded.object).collect();
    let spec = RunSpec {
        cluster,
        actions: vec![TimedAction { at: Duration::from_secs(1), action: Action::Apply(objects) }],
        faults: FaultPlan::default(),
        fault_phase: Duration::from_secs(20),
        liveness_bound: Duration::from_secs(10),
    };
    let report = run(spec).unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    let pending = report.pending.join("\n");
    // 3 nodes of 1000m fit 3 pods of 600m; the fourth waits, and says why.
    assert!(pending.contains("deployment default/big: 3/4 ready pods of the current template"), "{pending}");
    assert!(pending.contains(": Pending, 0/3 nodes are available: 3 Insufficient cpu"), "{pending}");
    assert!(pending.contains("replicaset default/big-"), "{pending}");
    assert!(pending.contains("job default/forever: 0/1 completions succeeded, 1 active"), "{pending}");
    assert!(
        pending
            .contains("ConfigMap default/orphan: its owner Deployment gone (uid no-such-uid) is gone, yet it remains"),
        "{pending}"
    );
    let invariants: std::collections::BTreeSet<&str> =
        report.violations.iter().map(|violation| violation.invariant.as_str()).collect();
    for invariant in ["deployment-converges", "replicaset-converges", "jobs-complete", "no-orphans"] {
        assert!(invariants.contains(invariant), "{invariants:?}");
    }
    assert!(!invariants.contains("endpoints-match"), "{pending}");
}
