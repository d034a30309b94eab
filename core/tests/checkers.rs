//! Canaries: each checker is fed a bad history and must fail; and a real cluster run passes them.

use kubedst_core::api::ObjectKey;
use kubedst_core::checkers::{Change, Checker, CheckerSet, NodeCapacity, PodBindsOnce, RevisionsGrow};
use kubedst_core::cluster::{standard_controllers, standard_scheduler, Cluster, ClusterConfig};
use kubedst_core::etcd::Etcd;
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::NodeConfig;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;
use std::rc::Rc;

fn object(yaml: &str) -> Object {
    load_manifests("test.yaml", yaml).unwrap().objects.remove(0).object
}

fn pod(uid: &str, node: Option<&str>, cpu: &str, revision: u64) -> Rc<Object> {
    let mut pod = object(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{uid}, namespace: default}}\nspec:\n  containers: [{{name: c, image: i, resources: {{requests: {{cpu: {cpu}}}}}}}]\n"
    ));
    if let Object::Pod(p) = &mut pod {
        p.metadata.uid = Some(uid.to_string());
        p.metadata.resource_version = Some(revision.to_string());
        p.spec.node_name = node.map(str::to_string);
    }
    Rc::new(pod)
}

fn node(name: &str, cpu: &str, revision: u64) -> Rc<Object> {
    let mut node = object(&format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{allocatable: {{cpu: {cpu}, memory: 1Gi, pods: \"10\"}}}}\n"));
    node.meta_mut().resource_version = Some(revision.to_string());
    Rc::new(node)
}

fn change(revision: u64, object: Rc<Object>, previous: Option<Rc<Object>>) -> Change {
    Change { revision, at_ns: revision * 1_000, key: ObjectKey::of(&object), object: Some(object), previous }
}

fn run(checker: &mut dyn Checker, history: &[Change]) -> Vec<String> {
    history.iter().flat_map(|change| checker.observe(change)).map(|violation| violation.to_string()).collect()
}

#[test]
fn canary_a_pod_that_moves_is_caught() {
    let history = [
        change(2, pod("u1", None, "100m", 2), None),
        change(3, pod("u1", Some("node-a"), "100m", 3), Some(pod("u1", None, "100m", 2))),
        change(4, pod("u1", Some("node-b"), "100m", 4), Some(pod("u1", Some("node-a"), "100m", 3))),
    ];
    let violations = run(&mut PodBindsOnce::default(), &history);
    assert_eq!(violations, ["pod-binds-once violated at revision 4 (4000 ns): pod Pod/default/p-u1 (uid u1) moved from node node-a to node node-b"]);
    // The good prefix passes.
    assert!(run(&mut PodBindsOnce::default(), &history[..2]).is_empty());
}

#[test]
fn canary_an_overcommitted_node_is_caught() {
    let history = [
        change(2, node("node-a", "1000m", 2), None),
        change(3, pod("u1", Some("node-a"), "600m", 3), None),
        change(4, pod("u2", Some("node-a"), "600m", 4), None),
    ];
    let violations = run(&mut NodeCapacity::default(), &history);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("node node-a is overcommitted: cpu 1200m > 1000m"), "{violations:?}");
    assert!(run(&mut NodeCapacity::default(), &history[..2]).is_empty());
}

#[test]
fn canary_a_revision_going_back_is_caught() {
    let history = [change(5, pod("u1", None, "1m", 5), None), change(4, pod("u2", None, "1m", 4), None)];
    let violations = run(&mut RevisionsGrow::default(), &history);
    assert_eq!(violations, ["revisions-grow violated at revision 4 (4000 ns): revision 4 came after revision 5"]);
    let mismatched = [change(6, pod("u3", None, "1m", 7), None)];
    assert_eq!(run(&mut RevisionsGrow::default(), &mismatched).len(), 1);
}

#[test]
fn a_real_cluster_run_keeps_the_safety_properties() {
    let mut config = ClusterConfig::new(3);
    config.controllers = Some(standard_controllers());
    config.scheduler = Some(standard_scheduler());
    // Small nodes, so that the scheduler works against capacity.
    config.nodes = (0..3u8)
        .map(|i| {
            let mut node = NodeConfig::new(&format!("node-{i}"), i);
            node.cpu_millicores = 1_000;
            node
        })
        .collect();
    let mut cluster = Cluster::build(config);
    cluster.sim.run_until(Time::from_secs(2)).unwrap();
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 12
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:v1", resources: {requests: {cpu: 300m}}}]
"#;
    for loaded in load_manifests("web.yaml", yaml).unwrap().objects {
        cluster.create(loaded.object);
    }
    let mut checkers = CheckerSet::new(kubedst_core::checkers::safety_checkers());
    for second in 3..120 {
        cluster.sim.run_until(Time::from_secs(second)).unwrap();
        let etcd = cluster.sim.component::<Etcd>(cluster.etcd).unwrap();
        checkers.check(etcd, cluster.sim.now().as_nanos()).unwrap();
    }
    assert!(checkers.violations.is_empty(), "{:?}", checkers.violations);
    // 3 nodes x 1000m fit 9 pods of 300m (3 per node); the other 3 stay Pending.
    let bound = cluster
        .stored_all(Kind::Pod)
        .iter()
        .filter(|pod| matches!(&***pod, Object::Pod(p) if p.spec.node_name.is_some()))
        .count();
    assert_eq!(bound, 9);
    assert!(checkers.observed[&Kind::Pod] > 30, "{:?}", checkers.observed);
}
