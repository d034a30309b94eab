//! PodDisruptionBudgets in the whole cluster: draining a node evicts its pods through the
//! Eviction API, which refuses (429) any eviction that would take the Deployment below the budget.
//! Ground truth (etcd) is checked after every engine step.

use kubedst_core::api::{ApiErrorReason, ApiRequest, ObjectKey};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::drain::DrainResult;
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;
use std::collections::BTreeMap;
use std::time::Duration;

const REPLICAS: usize = 4;
const MIN_AVAILABLE: usize = REPLICAS - 1;

fn manifests() -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: "web:v1"
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web}}
spec:
  minAvailable: {MIN_AVAILABLE}
  selector: {{matchLabels: {{app: web}}}}
"#
    )
}

/// The drain ends within this long. Measured (seeds 1-6): see the eprintln! lines.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Ground truth: the deployment's pods that are ready and not being deleted, and every pod's node.
fn ready_pods(cluster: &Cluster) -> (usize, BTreeMap<String, usize>) {
    let mut ready = 0;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for object in cluster.stored_all(Kind::Pod) {
        let Object::Pod(pod) = object.as_ref() else { continue };
        if let Some(node) = &pod.spec.node_name {
            *per_node.entry(node.clone()).or_default() += 1;
        }
        if pod.is_ready() && !pod.metadata.is_terminating() {
            ready += 1;
        }
    }
    (ready, per_node)
}

fn settled_cluster(seed: u64) -> Cluster {
    let mut cluster = Cluster::build(ClusterConfig::standard(seed, 3));
    for loaded in load_manifests("web.yaml", &manifests()).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster.sim.run_until(Time::from_secs(20)).unwrap();
    let (ready, _) = ready_pods(&cluster);
    assert_eq!(ready, REPLICAS, "seed {seed}: the Deployment is ready before the drain");
    let Some(Object::PodDisruptionBudget(pdb)) =
        cluster.stored(&ObjectKey::new(Kind::PodDisruptionBudget, "default", "web")).as_deref().cloned()
    else {
        panic!("the budget exists")
    };
    assert_eq!(
        (
            pdb.status.current_healthy,
            pdb.status.desired_healthy,
            pdb.status.expected_pods,
            pdb.status.disruptions_allowed
        ),
        (REPLICAS as i32, MIN_AVAILABLE as i32, REPLICAS as i32, 1),
        "seed {seed}: the disruption controller's status"
    );
    cluster
}

#[test]
fn draining_a_node_never_breaks_the_budget() {
    for seed in 1..=6 {
        drain_busiest_node(seed);
    }
}

fn drain_busiest_node(seed: u64) {
    let mut cluster = settled_cluster(seed);
    let (_, per_node) = ready_pods(&cluster);
    let (node, on_node) =
        per_node.iter().max_by_key(|(name, count)| (**count, std::cmp::Reverse((*name).clone()))).unwrap();
    let (node, on_node) = (node.clone(), *on_node);
    assert!(on_node >= 2, "seed {seed}: 4 pods on 3 nodes put two on one node: {per_node:?}");
    let start = cluster.sim.now();
    cluster.drain(&node, DRAIN_TIMEOUT);
    let mut lowest = REPLICAS;
    let limit = start + DRAIN_TIMEOUT + Duration::from_secs(10);
    while cluster.sim.now() < limit {
        if !cluster.sim.step() {
            break;
        }
        let (ready, _) = ready_pods(&cluster);
        lowest = lowest.min(ready);
        assert!(
            ready >= MIN_AVAILABLE,
            "seed {seed}: at {:?} only {ready} pods are ready and not terminating (budget {MIN_AVAILABLE})",
            cluster.sim.now()
        );
        if cluster.drains().first().is_some_and(|report| report.result.is_some()) {
            break;
        }
    }
    let report = cluster.drains().into_iter().next().expect("the drain ran");
    assert_eq!(report.result, Some(DrainResult::Done), "seed {seed}: {report:?}");
    assert!(report.too_many_requests >= 1, "seed {seed}: the second eviction must wait for a replacement: {report:?}");
    assert_eq!(report.evicted.len(), on_node, "seed {seed}: {report:?}");
    // Let the last replacement become ready, then check where everything is.
    cluster.sim.run_until(cluster.sim.now() + Duration::from_secs(10)).unwrap();
    let (ready, per_node) = ready_pods(&cluster);
    assert_eq!(ready, REPLICAS, "seed {seed}: every pod rescheduled and ready: {per_node:?}");
    assert_eq!(per_node.get(&node), None, "seed {seed}: the drained node is empty");
    let Some(Object::Node(drained)) = cluster.stored(&ObjectKey::new(Kind::Node, "", &node)).as_deref().cloned() else {
        panic!("the node exists")
    };
    assert!(drained.spec.unschedulable, "seed {seed}: the node stays cordoned");
    let took_ms = report.finished_ns.unwrap().saturating_sub(report.started_ns) / 1_000_000;
    eprintln!(
        "seed {seed}: drained {node} ({on_node} pods) in {took_ms}ms, {} evictions refused with 429, lowest ready {lowest}",
        report.too_many_requests
    );
}

#[test]
fn an_eviction_the_budget_forbids_is_a_429_and_deletes_nothing() {
    let mut cluster = settled_cluster(7);
    let pods: Vec<String> = cluster.stored_all(Kind::Pod).iter().map(|pod| pod.meta().name.clone()).collect();
    // Two evictions at once: the budget allows one.
    for pod in &pods[..2] {
        cluster.submit(ApiRequest::Evict { namespace: "default".into(), pod: pod.clone() });
    }
    cluster.run_until_answered(Time::from_secs(25)).unwrap();
    let log = cluster.kubectl_log();
    let results: Vec<_> =
        log[log.len() - 2..].iter().map(|entry| entry.result.as_ref().err().map(|e| e.reason)).collect();
    assert_eq!(results.iter().filter(|r| r.is_none()).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| **r == Some(ApiErrorReason::TooManyRequests)).count(), 1, "{results:?}");
    let terminating = cluster.stored_all(Kind::Pod).iter().filter(|pod| pod.meta().is_terminating()).count();
    assert!(terminating <= 1, "only the allowed eviction deleted a pod");
    let Some(Object::PodDisruptionBudget(pdb)) =
        cluster.stored(&ObjectKey::new(Kind::PodDisruptionBudget, "default", "web")).as_deref().cloned()
    else {
        panic!("the budget exists")
    };
    assert_eq!(pdb.status.disruptions_allowed, 0);
}

#[test]
fn a_pod_covered_by_two_budgets_cannot_be_evicted() {
    let mut cluster = settled_cluster(8);
    let second = r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web-too}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
"#;
    for loaded in load_manifests("pdb.yaml", second).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster.sim.run_until(Time::from_secs(22)).unwrap();
    let pod = cluster.stored_all(Kind::Pod)[0].meta().name.clone();
    cluster.submit(ApiRequest::Evict { namespace: "default".into(), pod });
    cluster.run_until_answered(Time::from_secs(25)).unwrap();
    let error = cluster.last_result().unwrap().as_ref().expect_err("refused");
    assert_eq!(error.code(), 500, "{error}");
    assert!(cluster.stored_all(Kind::Pod).iter().all(|pod| !pod.meta().is_terminating()));
}
