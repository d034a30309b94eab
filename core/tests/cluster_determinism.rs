//! The whole model is deterministic: the same seed gives the same trace hash, run after run in one
//! process (so per-process hash seeds or addresses would show), and other seeds give other runs.

use kubedst_core::cluster::{standard_controllers, standard_scheduler, Cluster, ClusterConfig, TrafficConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::NodeConfig;
use kubedst_sim::{check_determinism, Time};
use std::time::Duration;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
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
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
"#;

/// A cluster with a lossy, jittery network and a crash of one node, so that seeds matter.
fn run(seed: u64) -> u64 {
    let mut config = ClusterConfig::new(seed);
    config.sim.link.latency.jitter = Duration::from_millis(3);
    config.sim.link.loss = kubedst_sim::Ratio::new(1, 100);
    config.controllers = Some(standard_controllers());
    config.scheduler = Some(standard_scheduler());
    config.nodes = (0..3u8).map(|i| NodeConfig::new(&format!("node-{i}"), i)).collect();
    config.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 1, interval: Duration::from_millis(200) }];
    let mut cluster = Cluster::build(config);
    cluster.sim.run_until(Time::from_secs(2)).unwrap();
    for loaded in load_manifests("web.yaml", MANIFESTS).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster.sim.run_until(Time::from_secs(40)).unwrap();
    let node = cluster.node_machines[2];
    cluster.sim.crash(node);
    cluster.sim.run_until(Time::from_secs(50)).unwrap();
    cluster.sim.restart(node);
    cluster.sim.run_until(Time::from_secs(90)).unwrap();
    cluster.sim.trace_hash()
}

#[test]
fn the_same_seed_gives_the_same_cluster_run() {
    let mut hashes = std::collections::BTreeSet::new();
    for seed in 0..4 {
        hashes.insert(check_determinism(seed, run).expect("deterministic"));
    }
    assert_eq!(hashes.len(), 4, "four seeds, four different runs");
}
