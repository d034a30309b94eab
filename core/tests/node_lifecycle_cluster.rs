//! The node lifecycle controller in a whole cluster: a node that goes silent (its machine crashes,
//! or it is cut off from the control plane) is marked Unknown, tainted, and its pods are evicted
//! and replaced on the other nodes; when it comes back it loses the stale pods.

use kubedst_core::api::ObjectKey;
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::controllers::NodeLifecycleController;
use kubedst_core::host::ControllerHost;
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::Kubelet;
use kubedst_core::objects::{ConditionStatus, Kind, Object};
use kubedst_sim::Time;
use std::time::Duration;

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "web:v1"
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 100m, memory: 64Mi}}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
"#;

fn cluster(seed: u64) -> Cluster {
    let config = ClusterConfig::standard(seed, 3);
    let mut cluster = Cluster::build(config);
    for loaded in load_manifests("web.yaml", MANIFESTS).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster
}

/// Ground truth: pods serving on each node's runtime.
fn serving_per_node(cluster: &Cluster) -> Vec<usize> {
    let now_ns = cluster.sim.now().as_nanos();
    cluster
        .kubelets
        .iter()
        .map(|&kubelet| {
            let Some(kubelet) = cluster.sim.component::<Kubelet>(kubelet) else { return 0 };
            let runtime = kubelet.runtime();
            runtime.pod_ips().values().filter(|ip| runtime.is_serving(ip, now_ns)).count()
        })
        .collect()
}

/// Ground truth: containers (running or not) the node's runtime holds.
fn runtime_pods(cluster: &Cluster, node: usize) -> usize {
    cluster.sim.component::<Kubelet>(cluster.kubelets[node]).map_or(0, |kubelet| kubelet.runtime().pod_uids().count())
}

/// Stored pods bound to `node`: (total, terminating).
fn stored_pods_on(cluster: &Cluster, node: &str) -> (usize, usize) {
    let pods: Vec<_> = cluster
        .stored_all(Kind::Pod)
        .into_iter()
        .filter_map(|object| match &*object {
            Object::Pod(pod) if pod.spec.node_name.as_deref() == Some(node) => Some(pod.clone()),
            _ => None,
        })
        .collect();
    let terminating = pods.iter().filter(|pod| pod.metadata.is_terminating()).count();
    (pods.len(), terminating)
}

fn stored_node(cluster: &Cluster, name: &str) -> kubedst_core::objects::Node {
    match &*cluster.stored(&ObjectKey::new(Kind::Node, "", name)).unwrap() {
        Object::Node(node) => node.clone(),
        _ => unreachable!(),
    }
}

fn ready_of(cluster: &Cluster, name: &str) -> ConditionStatus {
    let node = stored_node(cluster, name);
    node.status.conditions.iter().find(|c| c.condition_type == "Ready").unwrap().status
}

fn taint_keys(cluster: &Cluster, name: &str) -> Vec<String> {
    stored_node(cluster, name).spec.taints.iter().map(|t| format!("{}:{:?}", t.key, t.effect)).collect()
}

fn controller(cluster: &Cluster) -> &NodeLifecycleController {
    cluster
        .sim
        .component::<ControllerHost>(cluster.controller_managers[0])
        .unwrap()
        .reconciler_of::<NodeLifecycleController>()
        .unwrap()
}

/// Runs until `done` holds (checked every 100 ms of virtual time) or `limit`; returns the time.
fn run_until(cluster: &mut Cluster, limit: Time, done: impl Fn(&Cluster) -> bool) -> Option<Time> {
    while cluster.sim.now() < limit {
        if done(cluster) {
            return Some(cluster.sim.now());
        }
        let next = cluster.sim.now() + Duration::from_millis(100);
        cluster.sim.run_until(next).unwrap();
    }
    done(cluster).then(|| cluster.sim.now())
}

/// Settles 6 replicas; returns the index of a node holding at least one pod, and how many.
fn settle(cluster: &mut Cluster) -> (usize, usize) {
    let settled = run_until(cluster, Time::from_secs(60), |c| serving_per_node(c).iter().sum::<usize>() == 6);
    assert!(settled.is_some(), "6 replicas serve within 60 s: {:?}", serving_per_node(cluster));
    let per_node = serving_per_node(cluster);
    let victim = (0..3).max_by_key(|&i| (per_node[i], std::cmp::Reverse(i))).unwrap();
    assert!(per_node[victim] >= 2, "{per_node:?}");
    (victim, per_node[victim])
}

#[test]
fn a_crashed_node_is_tainted_its_pods_replaced_and_cleaned_up_on_restart() {
    let mut cluster = cluster(7);
    let (victim, victim_pods) = settle(&mut cluster);
    let name = format!("node-{victim}");
    let crash_at = cluster.sim.now();
    cluster.sim.crash(cluster.node_machines[victim]);

    // Unknown after the 50 s grace period (at most one monitor period late, 10 s lease slack).
    let unknown_at = run_until(&mut cluster, crash_at + Duration::from_secs(70), |c| {
        ready_of(c, &format!("node-{victim}")) == ConditionStatus::Unknown
    })
    .expect("the node is marked Unknown");
    let silent = unknown_at.as_nanos() - crash_at.as_nanos();
    assert!((40_000_000_000..=66_000_000_000).contains(&silent), "Unknown after {silent} ns");
    let tainted_at = run_until(&mut cluster, unknown_at + Duration::from_secs(5), |c| {
        taint_keys(c, &format!("node-{victim}")).len() == 2
    })
    .expect("both unreachable taints");
    assert_eq!(
        taint_keys(&cluster, &name),
        vec!["node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"]
    );
    assert_eq!(controller(&cluster).evictions(), 0, "default tolerations keep the pods for 300 s");

    // Evicted 300 s after the taint; replaced on the two other nodes.
    let replaced = run_until(&mut cluster, crash_at + Duration::from_secs(400), |c| {
        let per_node = serving_per_node(c);
        per_node.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n).sum::<usize>() == 6
    });
    let replaced = replaced.expect("6 ready replicas on the other nodes within 400 s of the crash");
    let lifecycle = controller(&cluster);
    assert_eq!(lifecycle.evictions(), victim_pods as u64);
    for eviction in lifecycle.eviction_log() {
        assert_eq!(eviction.node, name);
        let after_taint = eviction.at_ns - tainted_at.as_nanos();
        assert!((299_000_000_000..=301_000_000_000).contains(&after_taint), "evicted {after_taint} ns after taint");
    }
    assert!(replaced.as_nanos() - crash_at.as_nanos() <= 400_000_000_000);
    eprintln!(
        "crash at {crash_at:?}: {victim_pods} pods on {name}; Unknown after {silent} ns; tainted at {tainted_at:?}; replaced at {replaced:?}"
    );
    // The evicted pods stay Terminating while the node is away.
    assert_eq!(stored_pods_on(&cluster, &name), (victim_pods, victim_pods));

    // The machine restarts: the kubelet finishes the terminating pods; the taints go.
    cluster.sim.restart(cluster.node_machines[victim]);
    let back = cluster.sim.now();
    let cleaned = run_until(&mut cluster, back + Duration::from_secs(60), |c| {
        let name = format!("node-{victim}");
        stored_pods_on(c, &name) == (0, 0)
            && taint_keys(c, &name).is_empty()
            && ready_of(c, &name) == ConditionStatus::True
    });
    assert!(
        cleaned.is_some(),
        "stale pods {:?}, taints {:?}",
        stored_pods_on(&cluster, &name),
        taint_keys(&cluster, &name)
    );
    assert_eq!(runtime_pods(&cluster, victim), 0);
    assert_eq!(serving_per_node(&cluster).iter().sum::<usize>(), 6);
    assert_eq!(controller(&cluster).evictions(), victim_pods as u64, "no eviction after the node came back");
}

#[test]
fn a_partitioned_node_kills_its_replaced_pods_when_it_comes_back() {
    let mut cluster = cluster(11);
    let (victim, victim_pods) = settle(&mut cluster);
    let name = format!("node-{victim}");
    let cut_at = cluster.sim.now();
    let control_plane = cluster.control_plane_machines.clone();
    let pairs = cluster.sim.partition(&[cluster.node_machines[victim]], &control_plane, false);

    let replaced = run_until(&mut cluster, cut_at + Duration::from_secs(400), |c| {
        let per_node = serving_per_node(c);
        per_node.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n).sum::<usize>() == 6
    });
    assert!(replaced.is_some(), "replaced within 400 s: {:?}", serving_per_node(&cluster));
    assert_eq!(controller(&cluster).evictions(), victim_pods as u64);
    // Cut off, the node still runs its old pods: 6 + the stale ones serve.
    assert_eq!(runtime_pods(&cluster, victim), victim_pods);

    cluster.sim.repair(&pairs);
    let repaired = cluster.sim.now();
    let cleaned = run_until(&mut cluster, repaired + Duration::from_secs(120), |c| {
        runtime_pods(c, victim) == 0 && stored_pods_on(c, &format!("node-{victim}")) == (0, 0)
    });
    assert!(cleaned.is_some(), "node still runs {} pods", runtime_pods(&cluster, victim));
    let limit = cluster.sim.now() + Duration::from_secs(30);
    let settled = run_until(&mut cluster, limit, |c| {
        taint_keys(c, &format!("node-{victim}")).is_empty()
            && ready_of(c, &format!("node-{victim}")) == ConditionStatus::True
    });
    assert!(settled.is_some(), "taints {:?}", taint_keys(&cluster, &name));
    assert_eq!(serving_per_node(&cluster).iter().sum::<usize>(), 6);
    assert_eq!(controller(&cluster).evictions(), victim_pods as u64);
}
