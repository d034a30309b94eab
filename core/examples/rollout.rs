//! A rolling update on a simulated cluster, printed as a `kubectl get -w` timeline.
//!
//! `cargo run --release -p kubedst-core --example rollout -- [--seed S] [--replicas R] [--nodes N]`
//!
//! Three nodes run a Deployment `web` behind a Service with traffic. At 60 s its image changes from
//! `web:v1` to `web:v2`; the run ends at 180 s. The same seed prints the same timeline, outcome and
//! trace hash on every run.

use kubedst_core::api::{ApiRequest, HttpOutcome, ObjectKey};
use kubedst_core::cluster::{standard_controllers, standard_scheduler, Cluster, ClusterConfig, TrafficConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::{NodeConfig, Traffic};
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

fn manifests(replicas: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: "web:v1"
        ports: [{{containerPort: 8080}}]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
        readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
"#
    )
}

fn main() -> ExitCode {
    let mut seed = 1u64;
    let mut replicas = 10u32;
    let mut nodes = 3u8;
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let value = words.next().unwrap_or_default();
        let parsed = match word.as_str() {
            "--seed" => value.parse().map(|v| seed = v).is_ok(),
            "--replicas" => value.parse().map(|v| replicas = v).is_ok(),
            "--nodes" => value.parse().map(|v: u8| nodes = v.clamp(1, 100)).is_ok(),
            _ => false,
        };
        if !parsed {
            eprintln!("rollout: bad argument {word} {value:?}\nusage: rollout [--seed S] [--replicas R] [--nodes N]");
            return ExitCode::from(2);
        }
    }
    let mut config = ClusterConfig::new(seed);
    config.controllers = Some(standard_controllers());
    config.scheduler = Some(standard_scheduler());
    config.nodes = (0..nodes).map(|index| NodeConfig::new(&format!("node-{index}"), index)).collect();
    config.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(100) }];
    let mut cluster = Cluster::build(config);
    cluster.sim.run_until(Time::from_secs(5)).unwrap();
    for loaded in load_manifests("web.yaml", &manifests(replicas)).unwrap().objects {
        cluster.create(loaded.object);
    }
    let key = ObjectKey::new(Kind::Deployment, "default", "web");
    let mut last = String::new();
    let mut rolled = false;
    while cluster.sim.now() < Time::from_secs(180) {
        if !rolled && cluster.sim.now() >= Time::from_secs(60) {
            rolled = true;
            if let Some(Object::Deployment(mut deployment)) = cluster.stored(&key).map(|o| (*o).clone()) {
                deployment.spec.template.spec.containers[0].image = "web:v2".into();
                deployment.metadata.resource_version = None;
                println!("{:>8}  kubectl set image deployment/web web=web:v2", format_ms(cluster.sim.now()));
                cluster.submit(ApiRequest::Update { object: Rc::new(Object::Deployment(deployment)) });
            }
        }
        cluster.sim.run_for(Duration::from_millis(250)).unwrap();
        let line = describe(&cluster);
        if line != last {
            println!("{:>8}  {line}", format_ms(cluster.sim.now()));
            last = line;
        }
    }
    let log = &cluster.sim.component::<Traffic>(cluster.traffic[0]).unwrap().log;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for record in log {
        *outcomes.entry(format!("{:?}", record.outcome)).or_insert(0) += 1;
    }
    let ok = outcomes.get(&format!("{:?}", HttpOutcome::Ok)).copied().unwrap_or(0);
    println!("requests: {} ({ok} ok) {outcomes:?}", log.len());
    println!("seed={seed} events={} trace_hash={:016x}", cluster.sim.events_processed(), cluster.sim.trace_hash());
    ExitCode::SUCCESS
}

fn format_ms(time: Time) -> String {
    format!("{}.{}s", time.as_secs(), (time.as_millis() % 1000) / 100)
}

/// The Deployment's status and its ReplicaSets' desired/ready counts, oldest first.
fn describe(cluster: &Cluster) -> String {
    let Some(object) = cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")) else {
        return "deployment/web not created yet".into();
    };
    let Object::Deployment(deployment) = &*object else { unreachable!() };
    let status = &deployment.status;
    let mut line = format!(
        "deploy/web ready={} up-to-date={} available={}",
        status.ready_replicas, status.updated_replicas, status.available_replicas
    );
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
    for (_, name, desired, ready) in sets {
        line.push_str(&format!(" | rs/{name} {desired}/{ready}"));
    }
    line
}
