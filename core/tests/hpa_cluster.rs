//! The horizontal pod autoscaler in the whole cluster: load from traffic sources becomes CPU use
//! (kubelet summary -> metrics-server -> metrics.k8s.io through the API server -> HPA); a traffic
//! spike scales the Deployment up, and its end scales it back down only after the 300 s
//! stabilization window. Ground truth is etcd's Deployment (`spec.replicas`, what the HPA wrote).

use kubedst_core::api::ObjectKey;
use kubedst_core::cluster::{Cluster, ClusterConfig, TrafficConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::metrics::MetricsServer;
use kubedst_core::objects::{Kind, Object};
use kubedst_core::runtime::{ImageBehavior, ImageBehaviors};
use kubedst_sim::Time;
use std::time::Duration;

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "web:v1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
"#;

/// Each request costs 10 millicore-seconds; a running container idles at 5 millicores.
const COST_PER_REQUEST: u64 = 10;
const IDLE: u64 = 5;
/// Two sources: at 400 ms each (5 requests/s in all, 25 m per pod of 2: 30% with idle) the HPA
/// stays at its minimum; at 50 ms each (40 requests/s, 400 m) it needs 9 pods at 50%.
const CALM: Duration = Duration::from_millis(400);
const SPIKE: Duration = Duration::from_millis(50);
const SPIKE_START_S: u64 = 60;
const SPIKE_END_S: u64 = 240;
const END_S: u64 = 660;

/// Scale-up follows the spike within this long: up to 30 s for a metrics window wholly in the
/// spike (15 s scrapes) plus 15 s to the next HPA sync, and 15 s for the first sync after the HPA
/// appeared. Measured (seeds 1-3): 16.0 s to the first scale-up (2 -> 6), 46 s to the peak of 9.
const SCALE_UP_BOUND_S: u64 = 60;
/// The first scale-down after the spike: no sooner than the 300 s window after the last high
/// recommendation, which is no earlier than the last sync before the spike ended (up to 15 s
/// before it); no later than the window after the last high recommendation, which is at most
/// 45 s after the end (a window wholly after the spike plus one sync), plus one sync. Measured
/// (seeds 1-3): 301.1 s, straight from 9 to 2 (the default scale-down policy allows -100%).
const SCALE_DOWN_MIN_S: u64 = 300 - 15;
const SCALE_DOWN_MAX_S: u64 = 300 + 45 + 15;

/// The Deployment's `spec.replicas` in etcd (None before kubectl's create lands).
fn deployment_replicas(cluster: &Cluster) -> Option<i32> {
    match cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")).as_deref() {
        Some(Object::Deployment(deployment)) => Some(deployment.spec.replicas.unwrap_or(1)),
        _ => None,
    }
}

fn build(seed: u64) -> Cluster {
    let mut config = ClusterConfig::standard(seed, 3);
    config.autoscaling = true;
    let behavior = ImageBehavior {
        cpu_millicores_per_request: COST_PER_REQUEST,
        cpu_millicores_idle: IDLE,
        ..ImageBehavior::default()
    };
    for node in &mut config.nodes {
        node.images = ImageBehaviors::default().with("web:v1", behavior.clone());
    }
    config.traffic = vec![
        TrafficConfig { service: "default/web".into(), node: 0, interval: CALM },
        TrafficConfig { service: "default/web".into(), node: 1, interval: CALM },
    ];
    let mut cluster = Cluster::build(config);
    for loaded in load_manifests("web.yaml", MANIFESTS).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster
}

/// What one run showed: every change of `spec.replicas` as (time s, replicas).
struct Run {
    changes: Vec<(f64, i32)>,
}

fn run(seed: u64) -> Run {
    let mut cluster = build(seed);
    let mut changes = Vec::new();
    let mut last = 2;
    let mut spike_started = false;
    let mut spike_ended = false;
    while cluster.sim.now() < Time::from_secs(END_S) {
        let now_s = cluster.sim.now().as_millis() / 1000;
        if !spike_started && now_s >= SPIKE_START_S {
            spike_started = true;
            cluster.set_traffic_interval(0, Some(SPIKE));
            cluster.set_traffic_interval(1, Some(SPIKE));
        }
        if !spike_ended && now_s >= SPIKE_END_S {
            spike_ended = true;
            cluster.set_traffic_interval(0, Some(CALM));
            cluster.set_traffic_interval(1, Some(CALM));
        }
        if !cluster.sim.step() {
            break;
        }
        let Some(replicas) = deployment_replicas(&cluster) else {
            assert!(now_s < 5, "seed {seed}: the Deployment is gone at {now_s}s");
            continue;
        };
        if replicas != last {
            let at = cluster.sim.now().as_millis() as f64 / 1000.0;
            // Always: within min and max; each scale-up within the default rate rule (double or
            // +4 pods per 15 s, whichever is more; one change per 15 s sync here).
            assert!((2..=10).contains(&replicas), "seed {seed}: {replicas} replicas at {at}s");
            if replicas > last {
                assert!(replicas <= (2 * last).max(last + 4), "seed {seed}: {last} -> {replicas} at {at}s");
            }
            changes.push((at, replicas));
            last = replicas;
        }
    }
    let metrics = cluster.sim.component::<MetricsServer>(cluster.metrics_server.unwrap()).unwrap();
    assert!(metrics.cycles >= (END_S / 15) - 1, "seed {seed}: {} scrape cycles", metrics.cycles);
    assert!(metrics.queries > 0, "seed {seed}: the HPA never queried metrics");
    Run { changes }
}

#[test]
fn a_traffic_spike_scales_up_and_its_end_scales_down_after_the_window() {
    for seed in 1..=3 {
        let Run { changes } = run(seed);
        let spike_start = SPIKE_START_S as f64;
        let spike_end = SPIKE_END_S as f64;
        // Nothing changes before the spike: the calm load is below the target.
        assert!(changes.iter().all(|(at, _)| *at > spike_start), "seed {seed}: {changes:?}");
        let (up_at, _) = *changes.first().unwrap_or_else(|| panic!("seed {seed}: never scaled"));
        assert!(up_at - spike_start <= SCALE_UP_BOUND_S as f64, "seed {seed}: scale-up {up_at}s: {changes:?}");
        // The spike's peak: 400 m over pods at 50% of 100 m each, with idle use, is 9 pods.
        let peak = changes.iter().filter(|(at, _)| *at <= spike_end + 30.0).map(|(_, r)| *r).max().unwrap();
        assert!((8..=10).contains(&peak), "seed {seed}: peak {peak}: {changes:?}");
        let down = changes.iter().find(|(at, r)| *at > spike_end && *r < peak);
        let (down_at, _) = *down.unwrap_or_else(|| panic!("seed {seed}: never scaled down: {changes:?}"));
        let after_end = down_at - spike_end;
        assert!(
            after_end >= SCALE_DOWN_MIN_S as f64 && after_end <= SCALE_DOWN_MAX_S as f64,
            "seed {seed}: first scale-down {after_end}s after the spike: {changes:?}"
        );
        // And no scale-down at all during the spike.
        let mut previous = 2;
        for (at, replicas) in &changes {
            if *at <= spike_end + SCALE_DOWN_MIN_S as f64 {
                assert!(*replicas >= previous, "seed {seed}: scaled down at {at}s: {changes:?}");
            }
            previous = *replicas;
        }
        assert_eq!(changes.last().unwrap().1, 2, "seed {seed}: back at the minimum: {changes:?}");
        println!(
            "seed {seed}: scale-up {:.1}s after the spike, down {after_end:.1}s after its end: {changes:?}",
            up_at - spike_start
        );
    }
}

/// metrics-server's machine crashes as the spike starts and restarts 60 s later: while it is down
/// the HPA's metrics queries fail (503 from the API server's aggregation layer), it reports
/// ScalingActive False and does not scale; once metrics-server is back it needs two scrapes for
/// a rate, and the HPA scales up at its next sync.
#[test]
fn a_metrics_server_outage_pauses_scaling_until_it_is_back() {
    const CRASH_S: u64 = 55;
    const RESTART_S: u64 = 115;
    // Two scrape cycles (the first at the restart) for a rate, then up to one sync.
    const RESUME_BOUND_S: u64 = 15 + 15 + 1;
    for seed in 1..=3 {
        let mut cluster = build(seed);
        let machine = cluster.sim.machine_id("metrics-server").unwrap();
        cluster.sim.run_until(Time::from_secs(CRASH_S)).unwrap();
        assert_eq!(deployment_replicas(&cluster), Some(2));
        assert!(cluster.sim.crash(machine));
        cluster.sim.run_until(Time::from_secs(SPIKE_START_S)).unwrap();
        cluster.set_traffic_interval(0, Some(SPIKE));
        cluster.set_traffic_interval(1, Some(SPIKE));
        cluster.sim.run_until(Time::from_secs(RESTART_S)).unwrap();
        assert_eq!(deployment_replicas(&cluster), Some(2), "seed {seed}: scaled without metrics");
        let hpa = cluster.stored(&ObjectKey::new(Kind::HorizontalPodAutoscaler, "default", "web")).unwrap();
        let Object::HorizontalPodAutoscaler(hpa) = &*hpa else { unreachable!() };
        let active = hpa.status.conditions.iter().find(|c| c.condition_type == "ScalingActive").unwrap();
        assert_eq!(active.reason.as_deref(), Some("FailedGetResourceMetric"), "seed {seed}: {active:?}");
        assert!(cluster.sim.restart(machine));
        let mut resumed = None;
        while cluster.sim.now() < Time::from_secs(RESTART_S + 120) {
            assert!(cluster.sim.step());
            if deployment_replicas(&cluster).is_some_and(|r| r > 2) {
                resumed = Some(cluster.sim.now().as_millis() as f64 / 1000.0 - RESTART_S as f64);
                break;
            }
        }
        let resumed = resumed.unwrap_or_else(|| panic!("seed {seed}: no scale-up after metrics-server came back"));
        assert!(resumed <= RESUME_BOUND_S as f64, "seed {seed}: scaled {resumed}s after the restart");
        println!("seed {seed}: scaled up {resumed:.1}s after metrics-server restarted");
    }
}

/// With the metrics pipeline, the HPA and a cloud on a lossy, jittery network, the same seed
/// gives the same trace hash and other seeds give other runs; the spike still scales up.
#[test]
fn autoscaling_and_cloud_runs_are_deterministic_on_a_lossy_network() {
    fn run(seed: u64) -> u64 {
        let mut cluster = {
            let mut config = ClusterConfig::standard(seed, 3);
            config.sim.link.latency.jitter = Duration::from_millis(3);
            config.sim.link.loss = kubedst_sim::Ratio::new(1, 100);
            config.autoscaling = true;
            config.cloud = Some(kubedst_core::cloud::CloudProfile::slow_flaky());
            let behavior = ImageBehavior {
                cpu_millicores_per_request: COST_PER_REQUEST,
                cpu_millicores_idle: IDLE,
                ..ImageBehavior::default()
            };
            for node in &mut config.nodes {
                node.images = ImageBehaviors::default().with("web:v1", behavior.clone());
            }
            config.traffic = vec![TrafficConfig { service: "default/web".into(), node: 0, interval: CALM }];
            let mut cluster = Cluster::build(config);
            for loaded in load_manifests(
                "web.yaml",
                &MANIFESTS
                    .replace("selector: {app: web}\n  ports", "type: LoadBalancer\n  selector: {app: web}\n  ports"),
            )
            .unwrap()
            .objects
            {
                cluster.create(loaded.object);
            }
            cluster
        };
        cluster.sim.run_until(Time::from_secs(SPIKE_START_S)).unwrap();
        cluster.set_traffic_interval(0, Some(SPIKE / 2));
        cluster.sim.run_until(Time::from_secs(SPIKE_START_S + 120)).unwrap();
        assert!(deployment_replicas(&cluster).unwrap() > 2, "seed {seed}: no scale-up on a lossy network");
        let cloud = cluster.sim.component::<kubedst_core::cloud::CloudProvider>(cluster.cloud.unwrap()).unwrap();
        assert!(cloud.provision_attempts > 0, "seed {seed}: the LoadBalancer Service was never provisioned");
        cluster.sim.trace_hash()
    }
    let hash = kubedst_sim::check_determinism(7, run).unwrap();
    assert_ne!(hash, run(8), "another seed gives another run");
}
