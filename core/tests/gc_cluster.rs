//! The garbage collector in the whole cluster: a Deployment of 3 replicas on 2 nodes is deleted
//! with each propagation policy, and ground truth (etcd) shows what went and what stayed.

use kubedst_core::api::{ApiRequest, ObjectKey, Propagation};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "web:v1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
"#;

/// Every deletion below completes within this long. Measured (seeds 1-8): background 408-411ms (two
/// levels, each waiting one `VERIFY_POLL` of 200ms for the owner's quorum read), foreground 14-18ms,
/// orphan 5-10ms; the fake runtime stops containers at once.
const BOUND_MS: u64 = 2_000;

fn deployment_key() -> ObjectKey {
    ObjectKey::new(Kind::Deployment, "default", "web")
}

/// A cluster whose Deployment has settled: 1 ReplicaSet, 3 pods.
fn settled_cluster(seed: u64) -> Cluster {
    let config = ClusterConfig::standard(seed, 2);
    let mut cluster = Cluster::build(config);
    for loaded in load_manifests("web.yaml", MANIFESTS).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster.sim.run_until(Time::from_secs(20)).unwrap();
    assert_eq!(cluster.stored_all(Kind::ReplicaSet).len(), 1);
    assert_eq!(cluster.stored_all(Kind::Pod).len(), 3);
    cluster
}

fn delete(cluster: &mut Cluster, propagation: Option<Propagation>) {
    cluster.submit(ApiRequest::Delete { key: deployment_key(), uid: None, grace_period_seconds: None, propagation });
}

/// Steps until `done` holds (or BOUND_MS after `start`), checking `invariant` after every step;
/// returns how long it took in ms.
fn run_until(
    cluster: &mut Cluster,
    mut done: impl FnMut(&Cluster) -> bool,
    mut invariant: impl FnMut(&Cluster),
) -> Option<u64> {
    let start = cluster.sim.now().as_millis();
    while cluster.sim.now().as_millis() < start + BOUND_MS {
        if !cluster.sim.step() {
            break;
        }
        invariant(cluster);
        if done(cluster) {
            return Some(cluster.sim.now().as_millis() - start);
        }
    }
    None
}

#[test]
fn background_deletion_removes_replica_sets_and_pods() {
    for seed in 1..=8 {
        background_deletion(seed);
    }
}

fn background_deletion(seed: u64) {
    let mut cluster = settled_cluster(seed);
    delete(&mut cluster, None);
    let took = run_until(
        &mut cluster,
        |c| {
            c.stored(&deployment_key()).is_none()
                && c.stored_all(Kind::ReplicaSet).is_empty()
                && c.stored_all(Kind::Pod).is_empty()
        },
        |_| {},
    );
    let took = took.unwrap_or_else(|| {
        panic!(
            "not collected within {BOUND_MS}ms: {} ReplicaSets, {} pods",
            cluster.stored_all(Kind::ReplicaSet).len(),
            cluster.stored_all(Kind::Pod).len()
        )
    });
    eprintln!("background (seed {seed}): everything gone after {took}ms");
}

#[test]
fn foreground_deletion_keeps_the_deployment_until_its_dependents_are_gone() {
    for seed in 1..=8 {
        foreground_deletion(seed);
    }
}

fn foreground_deletion(seed: u64) {
    let mut cluster = settled_cluster(seed);
    delete(&mut cluster, Some(Propagation::Foreground));
    let mut saw_terminating_deployment = false;
    let mut timeline: Vec<String> = Vec::new();
    let took = run_until(
        &mut cluster,
        |c| c.stored(&deployment_key()).is_none(),
        |c| {
            let dependents = c.stored_all(Kind::ReplicaSet).len() + c.stored_all(Kind::Pod).len();
            let line = format!(
                "deploy={:?} rs={:?} pods={:?}",
                c.stored(&deployment_key()).map(|d| d.meta().finalizers.clone()),
                c.stored_all(Kind::ReplicaSet).iter().map(|o| o.meta().finalizers.clone()).collect::<Vec<_>>(),
                c.stored_all(Kind::Pod).iter().map(|o| o.meta().deletion_timestamp_ns.is_some()).collect::<Vec<_>>()
            );
            if timeline.last() != Some(&line) {
                timeline.push(line);
            }
            match c.stored(&deployment_key()) {
                None => assert_eq!(dependents, 0, "the Deployment went before its dependents"),
                Some(d) => saw_terminating_deployment |= d.meta().deletion_timestamp_ns.is_some(),
            }
        },
    )
    .expect("the Deployment is deleted in time");
    assert!(saw_terminating_deployment);
    assert!(
        timeline.iter().any(|line| line.contains(r#"rs=[["foregroundDeletion"]]"#)),
        "the ReplicaSet itself is deleted in the foreground: {timeline:#?}"
    );
    assert!(cluster.stored_all(Kind::ReplicaSet).is_empty());
    assert!(cluster.stored_all(Kind::Pod).is_empty());
    eprintln!("foreground (seed {seed}): Deployment gone after {took}ms, after its ReplicaSet and pods");
}

#[test]
fn orphan_deletion_leaves_the_replica_set_without_owner_reference() {
    for seed in 1..=8 {
        orphan_deletion(seed);
    }
}

fn orphan_deletion(seed: u64) {
    let mut cluster = settled_cluster(seed);
    delete(&mut cluster, Some(Propagation::Orphan));
    let took = run_until(&mut cluster, |c| c.stored(&deployment_key()).is_none(), |_| {})
        .expect("the Deployment is deleted in time");
    eprintln!("orphan (seed {seed}): Deployment gone after {took}ms");
    // Let the collector see the Deployment's deletion; nothing may be collected.
    let until = cluster.sim.now() + std::time::Duration::from_secs(10);
    cluster.sim.run_until(until).unwrap();
    let sets = cluster.stored_all(Kind::ReplicaSet);
    assert_eq!(sets.len(), 1, "the ReplicaSet survives");
    let Object::ReplicaSet(rs) = &*sets[0] else { unreachable!() };
    assert!(rs.metadata.owner_references.is_empty(), "{:?}", rs.metadata.owner_references);
    assert!(rs.metadata.deletion_timestamp_ns.is_none());
    assert_eq!(cluster.stored_all(Kind::Pod).len(), 3, "its pods survive too");
}
