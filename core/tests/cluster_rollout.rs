//! The whole cluster: a Deployment of 10 replicas behind a Service with traffic, rolled from v1 to
//! v2, on 3 nodes, with every component running on the engine.

use kubedst_core::api::{ApiRequest, HttpOutcome, ObjectKey};
use kubedst_core::cluster::{standard_controllers, standard_scheduler, Cluster, ClusterConfig, TrafficConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::{Kubelet, NodeConfig, Traffic};
use kubedst_core::objects::{Kind, Object};
use kubedst_core::runtime::{ImageBehavior, ImageBehaviors};
use kubedst_sim::Time;
use std::collections::BTreeMap;
use std::rc::Rc;
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
  replicas: 10
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

fn cluster(seed: u64, images: ImageBehaviors) -> Cluster {
    let mut config = ClusterConfig::new(seed);
    config.controllers = Some(standard_controllers());
    config.scheduler = Some(standard_scheduler());
    config.nodes = (0..3u8)
        .map(|index| {
            let mut node = NodeConfig::new(&format!("node-{index}"), index);
            node.images = images.clone();
            node
        })
        .collect();
    config.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(100) }];
    Cluster::build(config)
}

fn apply_manifests(cluster: &mut Cluster, text: &str) {
    for loaded in load_manifests("web.yaml", text).unwrap().objects {
        cluster.create(loaded.object);
    }
}

fn deployment(cluster: &Cluster) -> kubedst_core::objects::Deployment {
    match &*cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")).unwrap() {
        Object::Deployment(deployment) => deployment.clone(),
        _ => unreachable!(),
    }
}

/// ReplicaSets of the Deployment, oldest first: (name, spec.replicas, status.readyReplicas).
fn replica_sets(cluster: &Cluster) -> Vec<(String, i32, i32)> {
    let mut sets: Vec<(u64, String, i32, i32)> = cluster
        .stored_all(Kind::ReplicaSet)
        .iter()
        .filter_map(|object| match &**object {
            Object::ReplicaSet(rs) => Some((
                rs.metadata.creation_timestamp_ns.unwrap_or(0),
                rs.metadata.name.clone(),
                rs.spec.replicas.unwrap_or(0),
                rs.status.ready_replicas,
            )),
            _ => None,
        })
        .collect();
    sets.sort();
    sets.into_iter().map(|(_, name, spec, ready)| (name, spec, ready)).collect()
}

/// Ground truth: pods that really run and serve, by image.
fn serving_by_image(cluster: &Cluster) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let now_ns = cluster.sim.now().as_nanos();
    for &kubelet in &cluster.kubelets {
        let Some(kubelet) = cluster.sim.component::<Kubelet>(kubelet) else { continue };
        let runtime = kubelet.runtime();
        for (_uid, ip) in runtime.pod_ips() {
            if runtime.is_serving(&ip, now_ns) {
                let image = runtime.pod_image(&ip).unwrap_or_default();
                *counts.entry(image).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn set_image(cluster: &mut Cluster, image: &str) {
    let mut updated = deployment(cluster);
    updated.spec.template.spec.containers[0].image = image.to_string();
    updated.metadata.resource_version = None;
    cluster.submit(ApiRequest::Update { object: Rc::new(Object::Deployment(updated)) });
}

/// Runs to `until`, recording a `kubectl get -w`-style line whenever the ReplicaSets or the
/// Deployment's status change, and every distinct (new, old) pair of ReplicaSet sizes.
fn watch(cluster: &mut Cluster, until: Time, timeline: &mut Vec<String>, sizes: &mut Vec<(i32, i32)>) {
    let mut last_line = timeline.last().map(|line| line.split_once(' ').unwrap().1.to_string());
    let mut last_revision = 0;
    while cluster.sim.now() < until {
        // Step event by event, looking at the store whenever its revision moves.
        if !cluster.sim.step() {
            break;
        }
        let revision = cluster
            .sim
            .component::<kubedst_core::etcd::Etcd>(cluster.etcd)
            .map_or(0, |etcd| etcd.store().current_revision());
        if revision == last_revision {
            continue;
        }
        last_revision = revision;
        if cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")).is_none() {
            continue;
        }
        let sets = replica_sets(cluster);
        let d = deployment(cluster);
        let status = &d.status;
        let mut line = format!(
            "deploy/web ready={} up-to-date={} available={}",
            status.ready_replicas, status.updated_replicas, status.available_replicas
        );
        for (name, spec, ready) in &sets {
            line.push_str(&format!(" | rs/{name} {spec}/{ready}"));
        }
        if last_line.as_deref() != Some(line.as_str()) {
            timeline.push(format!("{:>7} {line}", format!("{}ms", cluster.sim.now().as_millis())));
            last_line = Some(line);
        }
        if sets.len() == 2 {
            let pair = (sets[1].1, sets[0].1);
            if sizes.last() != Some(&pair) {
                sizes.push(pair);
            }
        }
    }
}

#[test]
fn a_rolling_update_converges_in_kubernetes_steps() {
    let mut cluster = cluster(7, ImageBehaviors::default());
    cluster.sim.run_until(Time::from_secs(5)).unwrap();
    apply_manifests(&mut cluster, MANIFESTS);
    let mut timeline = Vec::new();
    let mut sizes = Vec::new();
    watch(&mut cluster, Time::from_secs(60), &mut timeline, &mut sizes);
    assert_eq!(serving_by_image(&cluster).get("web:v1"), Some(&10), "{timeline:#?}");

    set_image(&mut cluster, "web:v2");
    watch(&mut cluster, Time::from_secs(180), &mut timeline, &mut sizes);

    // Converged: 10 serving v2 pods, the old ReplicaSet at 0.
    let serving = serving_by_image(&cluster);
    assert_eq!(serving.get("web:v2"), Some(&10), "{serving:?}\n{}", timeline.join("\n"));
    assert_eq!(serving.get("web:v1"), None);
    let sets = replica_sets(&cluster);
    assert_eq!((sets[0].1, sets[1].1), (0, 10), "{sets:?}");
    let d = deployment(&cluster);
    assert_eq!(d.status.available_replicas, 10);
    assert_eq!(d.status.updated_replicas, 10);

    // The steps are Kubernetes' (maxSurge 3, maxUnavailable 2 for 10 replicas): first the new
    // ReplicaSet surges to 3, then the old one drops to 8 (13 pods - 8 min available - 3 new
    // unavailable = 2 may go); never more than 13 pods; old never grows, new never shrinks.
    // When the old one drops to 8 the total is 11, so the new one grows to 5 at once.
    assert_eq!(sizes[..3], [(3, 10), (3, 8), (5, 8)], "{sizes:?}");
    assert_eq!(*sizes.last().unwrap(), (10, 0));
    for pair in sizes.windows(2) {
        assert!(pair[1].0 >= pair[0].0 && pair[1].1 <= pair[0].1, "{sizes:?}");
    }
    assert!(sizes.iter().all(|(new, old)| new + old <= 13), "{sizes:?}");

    insta::assert_snapshot!(format!("sizes: {sizes:?}\n{}", timeline.join("\n")));
}

#[test]
fn a_rollout_to_an_image_that_never_becomes_ready_stalls_without_downtime() {
    let bad = ImageBehavior { never_ready: true, ..ImageBehavior::default() };
    let images = ImageBehaviors::default().with("web:v2", bad);
    let mut cluster = cluster(8, images);
    cluster.sim.run_until(Time::from_secs(5)).unwrap();
    let manifests = MANIFESTS.replace(
        "  replicas: 10\n",
        "  replicas: 10\n  progressDeadlineSeconds: 60\n  strategy: {rollingUpdate: {maxUnavailable: 0}}\n",
    );
    apply_manifests(&mut cluster, &manifests);
    let (mut timeline, mut sizes) = (Vec::new(), Vec::new());
    watch(&mut cluster, Time::from_secs(60), &mut timeline, &mut sizes);
    let traffic_before = traffic_log(&cluster).len();

    set_image(&mut cluster, "web:v2");
    watch(&mut cluster, Time::from_secs(200), &mut timeline, &mut sizes);

    // The rollout stalls: 3 surge pods that never become ready, the old ReplicaSet kept whole.
    let sets = replica_sets(&cluster);
    assert_eq!((sets[0].1, sets[1].1), (10, 3), "{}", timeline.join("\n"));
    let d = deployment(&cluster);
    let progressing = d.status.conditions.iter().find(|c| c.condition_type == "Progressing").unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("ProgressDeadlineExceeded"), "{progressing:?}");
    assert_eq!(serving_by_image(&cluster).get("web:v1"), Some(&10));

    // No request failed, before, during or after.
    let log = traffic_log(&cluster);
    assert!(log.len() > traffic_before + 1_000, "{} requests", log.len());
    let failures: Vec<_> = log.iter().filter(|record| record.outcome != HttpOutcome::Ok).collect();
    // Requests before the Service had endpoints fail with NoEndpoints or DNS failures; count only
    // those after the first success.
    let first_ok = log.iter().position(|record| record.outcome == HttpOutcome::Ok).unwrap();
    let late_failures: Vec<_> = log[first_ok..].iter().filter(|record| record.outcome != HttpOutcome::Ok).collect();
    assert!(
        late_failures.is_empty(),
        "{} failures after the first success: {:?}",
        late_failures.len(),
        &late_failures[..late_failures.len().min(5)]
    );
    assert!(failures.len() < 200);
}

fn traffic_log(cluster: &Cluster) -> Vec<kubedst_core::node::RequestRecord> {
    cluster.sim.component::<Traffic>(cluster.traffic[0]).unwrap().log.clone()
}
