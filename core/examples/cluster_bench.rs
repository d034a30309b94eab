//! The model benchmark: a 100-node cluster with 30 Deployments of 100 replicas (3,000 pods) behind
//! Services with traffic. It converges, rolls every Deployment to a new image, and runs to one hour
//! of virtual time.
//!
//! `cargo run --release -p kubedst-core --example cluster_bench -- [--nodes N] [--deployments D]
//! [--replicas R] [--hours H] [--seed S]`
//!
//! Prints `events=... wall_s=... virtual_per_wall=...` and a summary of the cluster at the end.

// Wall-clock time is measured around the whole run, outside the simulation.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use kubedst_core::api::{ApiRequest, HttpOutcome};
use kubedst_core::cluster::{standard_controllers, standard_scheduler, Cluster, ClusterConfig, TrafficConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::{NodeConfig, Traffic};
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Args {
    nodes: u8,
    deployments: u32,
    replicas: u32,
    hours: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { nodes: 100, deployments: 30, replicas: 100, hours: 1, seed: 1 };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let value = words.next().ok_or(format!("{word} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{word}: {e}");
        match word.as_str() {
            "--nodes" => args.nodes = value.parse().map_err(bad)?,
            "--deployments" => args.deployments = value.parse().map_err(bad)?,
            "--replicas" => args.replicas = value.parse().map_err(bad)?,
            "--hours" => args.hours = value.parse().map_err(bad)?,
            "--seed" => args.seed = value.parse().map_err(bad)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.nodes == 0 || args.nodes > 127 {
        return Err("--nodes must be between 1 and 127".into());
    }
    Ok(args)
}

fn manifests(index: u32, replicas: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: app-{index}}}
spec:
  selector: {{app: app-{index}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{index}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: app-{index}}}}}
  template:
    metadata: {{labels: {{app: app-{index}}}}}
    spec:
      containers:
      - name: app
        image: "app:v1"
        ports: [{{containerPort: 8080}}]
        resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 10
"#
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("cluster_bench: {err}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut config = ClusterConfig::new(args.seed);
    config.sim.max_events = u64::MAX;
    config.controllers = Some(standard_controllers());
    config.scheduler = Some(standard_scheduler());
    config.nodes = (0..args.nodes).map(|index| NodeConfig::new(&format!("node-{index}"), index)).collect();
    config.traffic = (0..args.deployments)
        .map(|index| TrafficConfig {
            service: format!("default/app-{index}"),
            node: index as usize % args.nodes as usize,
            interval: Duration::from_secs(1),
        })
        .collect();
    let mut cluster = Cluster::build(config);
    let profile = std::env::var_os("KUBEDST_PROFILE").is_some();
    if profile {
        cluster.sim.keep_trace_records();
    }
    cluster.sim.run_until(Time::from_secs(5)).unwrap();
    for index in 0..args.deployments {
        for loaded in load_manifests("bench.yaml", &manifests(index, args.replicas)).unwrap().objects {
            cluster.create(loaded.object);
        }
    }
    cluster.sim.run_until(Time::from_secs(600)).unwrap();
    // Roll every Deployment to a new image.
    for index in 0..args.deployments {
        let key = kubedst_core::api::ObjectKey::new(Kind::Deployment, "default", &format!("app-{index}"));
        if let Some(object) = cluster.stored(&key) {
            if let Object::Deployment(mut deployment) = (*object).clone() {
                deployment.spec.template.spec.containers[0].image = "app:v2".into();
                deployment.metadata.resource_version = None;
                cluster.submit(ApiRequest::Update { object: Rc::new(Object::Deployment(deployment)) });
            }
        }
    }
    let end = Time::from_secs(3600 * args.hours);
    cluster.sim.run_until(end).unwrap();
    let wall = started.elapsed();
    let virtual_s = end.as_secs() as f64;
    println!(
        "events={} wall_s={:.3} virtual_per_wall={:.0}",
        cluster.sim.events_processed(),
        wall.as_secs_f64(),
        virtual_s / wall.as_secs_f64()
    );
    if profile {
        // Where the events went: by component (without its index) and kind of record.
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for record in cluster.sim.trace_records() {
            let component = if (record.subject as usize) < cluster.sim.component_count() {
                let name = cluster.sim.component_name(kubedst_sim::ComponentId(record.subject));
                name.split(['/', '-']).next().unwrap_or(name).to_string()
            } else {
                "engine".to_string()
            };
            *counts.entry((component, record.kind.name())).or_insert(0) += 1;
        }
        let mut sorted: Vec<_> = counts.into_iter().collect();
        sorted.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        for ((component, kind), count) in sorted.into_iter().take(25) {
            println!("{count:>10} {component} {kind}");
        }
    }
    let pods = cluster.stored_all(Kind::Pod);
    let v2_ready = pods
        .iter()
        .filter(|pod| match &***pod {
            Object::Pod(pod) => {
                pod.spec.containers[0].image == "app:v2"
                    && pod
                        .status
                        .ready_condition()
                        .is_some_and(|c| c.status == kubedst_core::objects::ConditionStatus::True)
            }
            _ => false,
        })
        .count();
    let (mut ok, mut failed) = (0u64, 0u64);
    for &traffic in &cluster.traffic {
        if let Some(traffic) = cluster.sim.component::<Traffic>(traffic) {
            for record in &traffic.log {
                if record.outcome == HttpOutcome::Ok {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
        }
    }
    println!(
        "pods={} ready_v2={} requests_ok={} requests_failed={} trace_hash={:016x}",
        pods.len(),
        v2_ready,
        ok,
        failed,
        cluster.sim.trace_hash()
    );
    ExitCode::SUCCESS
}
