//! A small workload and a fault schedule, both decoded from the fuzzer's bytes, run through the
//! harness's two phases with every checker on. A safety violation is always a finding; a
//! liveness failure is one only where the plan promises liveness (no worker node lost for good:
//! its pods stay Terminating, as upstream leaves them until the Node object goes).
//!
//! The workload: 1-3 nodes, 1-2 control-plane replicas, a Deployment of 0-6 replicas with an
//! arbitrary maxSurge/maxUnavailable behind a Service, then up to four image changes and scale
//! actions in the fault phase. A traffic source calls the Service every 100 ms when every replica
//! count the workload sets keeps at least one pod available during a rollout
//! (`replicas - maxUnavailable >= 1`), since only then does Kubernetes promise zero downtime.
//! The fault phase is 30 s so one execution stays short.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use kubedst_core::cluster::{ClusterConfig, TrafficConfig};
use kubedst_core::harness::{Action, Harness, RunSpec, TimedAction};
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::Kind;
use kubedst_core::rules::deployment::{resolve_fenceposts, IntOrPercent};
use kubedst_core::runtime::{ImageBehavior, ImageBehaviors};
use kubedst_scenarios::generators::{describe, plan_from_bytes, ClusterShape, FaultClass};
use kubedst_sim::Fault;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const APPLY_AT: Duration = Duration::from_secs(1);
/// Faults and actions happen from here on: the workload is up by then.
const WINDOW_START: Duration = Duration::from_secs(6);
const FAULT_PHASE: Duration = Duration::from_secs(30);
/// Long enough for a node that crashed at the end of the fault phase to be marked not ready and
/// its pods replaced; a run that converges sooner ends sooner.
const LIVENESS_BOUND: Duration = Duration::from_secs(300);
const LIVENESS_BOUND_AFTER_NODE_LOSS: Duration = Duration::from_secs(60);
const IMAGES: [&str; 3] = ["web:v1", "web:v2", "web:v3"];

/// A maxSurge or maxUnavailable value as a Deployment spells it.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Budget {
    Count(u8),
    Percent(u8),
}

impl Budget {
    fn yaml(self) -> String {
        match self {
            Budget::Count(count) => (count % 4).to_string(),
            Budget::Percent(percent) => format!("\"{}%\"", percent % 101),
        }
    }

    fn is_zero(self) -> bool {
        match self {
            Budget::Count(count) => count % 4 == 0,
            Budget::Percent(percent) => percent % 101 == 0,
        }
    }

    fn rule(self) -> IntOrPercent {
        match self {
            Budget::Count(count) => IntOrPercent::Int(i32::from(count % 4)),
            Budget::Percent(percent) => IntOrPercent::percent(i32::from(percent % 101)),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum UserAction {
    SetImage { image: u8 },
    Scale { replicas: u8 },
}

#[derive(Arbitrary, Debug)]
struct Workload {
    seed: u64,
    nodes: u8,
    two_control_planes: bool,
    replicas: u8,
    max_surge: Budget,
    max_unavailable: Budget,
    /// (seconds after the window's start, action), at most four.
    actions: Vec<(u8, UserAction)>,
    class: FaultClass,
}

impl Workload {
    /// maxSurge and maxUnavailable; both 0 is invalid (upstream's validation rejects it), so
    /// maxUnavailable becomes 1 then.
    fn budgets(&self) -> (Budget, Budget) {
        if self.max_surge.is_zero() && self.max_unavailable.is_zero() {
            (self.max_surge, Budget::Count(1))
        } else {
            (self.max_surge, self.max_unavailable)
        }
    }

    fn nodes(&self) -> u8 {
        1 + self.nodes % 3
    }

    fn replicas(&self) -> i32 {
        i32::from(self.replicas % 7)
    }

    fn actions(&self) -> Vec<(Duration, UserAction)> {
        let span = (FAULT_PHASE - WINDOW_START).as_secs();
        self.actions
            .iter()
            .take(4)
            .map(|(at, action)| (WINDOW_START + Duration::from_secs(u64::from(*at) % span), *action))
            .collect()
    }

    /// Every replica count the workload sets.
    fn replica_counts(&self) -> Vec<i32> {
        let scaled = self.actions().into_iter().filter_map(|(_, action)| match action {
            UserAction::Scale { replicas } => Some(i32::from(replicas % 9)),
            UserAction::SetImage { .. } => None,
        });
        std::iter::once(self.replicas()).chain(scaled).collect()
    }

    /// Whether every rollout keeps a pod serving: `replicas - maxUnavailable >= 1` for every
    /// replica count (maxUnavailable resolved as upstream's ResolveFenceposts and capped at
    /// replicas).
    fn promises_zero_downtime(&self) -> bool {
        self.replica_counts().into_iter().all(|replicas| {
            let (surge, unavailable) = self.budgets();
            match resolve_fenceposts(&surge.rule(), &unavailable.rule(), replicas) {
                Ok((_, unavailable)) => replicas - unavailable.min(replicas) >= 1,
                Err(_) => false,
            }
        })
    }

    fn manifests(&self) -> String {
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
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 15
      containers:
      - name: web
        image: "web:v1"
        ports: [{{containerPort: 8080}}]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
"#,
            replicas = self.replicas(),
            surge = self.budgets().0.yaml(),
            unavailable = self.budgets().1.yaml(),
        )
    }

    fn cluster(&self) -> ClusterConfig {
        let mut config = ClusterConfig::standard(self.seed, self.nodes());
        config.control_plane_replicas = if self.two_control_planes { 2 } else { 1 };
        // Apps drain for 8 s after SIGTERM, as an app that traps it does: what a zero-downtime
        // rollout needs (endpoints and proxies take a moment to drop a terminating pod).
        let draining = ImageBehavior { sigterm_exit_after_ns: 8_000_000_000, ..ImageBehavior::default() };
        let mut images = ImageBehaviors::default();
        for image in IMAGES {
            images = images.with(image, draining.clone());
        }
        for node in &mut config.nodes {
            node.images = images.clone();
        }
        if self.promises_zero_downtime() {
            config.traffic =
                vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(100) }];
        }
        // A run that goes wild is a finding of its own ("budget"), not a hang of the fuzzer.
        config.sim.max_events = 20_000_000;
        config
    }
}

fn timeline(workload: &Workload) -> Vec<TimedAction> {
    let objects = load_manifests("web.yaml", &workload.manifests())
        .expect("the generated manifest is valid")
        .objects
        .into_iter()
        .map(|loaded| loaded.object)
        .collect();
    let mut actions = vec![TimedAction { at: APPLY_AT, action: Action::Apply(objects) }];
    for (at, action) in workload.actions() {
        let action = match action {
            UserAction::SetImage { image } => Action::SetImage {
                namespace: "default".into(),
                deployment: "web".into(),
                container: "web".into(),
                image: IMAGES[usize::from(image) % IMAGES.len()].into(),
            },
            UserAction::Scale { replicas } => Action::Scale {
                kind: Kind::Deployment,
                namespace: "default".into(),
                name: "web".into(),
                replicas: i32::from(replicas % 9),
            },
        };
        actions.push(TimedAction { at, action });
    }
    actions
}

fn run(bytes: &[u8]) -> arbitrary::Result<()> {
    let mut unstructured = Unstructured::new(bytes);
    let workload = Workload::arbitrary(&mut unstructured)?;
    let cluster = workload.cluster();
    let images: Vec<&str> = IMAGES.to_vec();
    // Clock faults strike the control plane only, as in the suites: a worker node's clock stepping
    // back makes the model's container runtime, which times readiness on the node's wall clock,
    // stop serving (a known model bug; real processes keep serving across a wall-clock jump).
    let shape = ClusterShape::of(&cluster, FAULT_PHASE)
        .with_window_start(WINDOW_START)
        .with_images(&images)
        .with_clock_skew_on_control_plane_only();
    let faults = plan_from_bytes(workload.class, &shape, &mut unstructured)?;
    let node_lost = faults.engine.faults.iter().any(|timed| matches!(timed.fault, Fault::Lose { .. }));
    let spec = RunSpec {
        cluster,
        actions: timeline(&workload),
        faults: faults.clone(),
        fault_phase: FAULT_PHASE,
        // Liveness is not judged after a node loss; a short bound keeps such runs quick while
        // the safety checkers still watch the cluster settle.
        liveness_bound: if node_lost { LIVENESS_BOUND_AFTER_NODE_LOSS } else { LIVENESS_BOUND },
    };
    let mut harness = Harness::new(spec).expect("the generated plan names the cluster's machines");
    harness.run_fault_phase();
    harness.heal();
    harness.run_liveness_phase();
    let report = harness.report();
    let eventual = kubedst_core::checkers::liveness::EVENTUAL_PROMISES;
    let broken: Vec<String> = report
        .violations
        .iter()
        .filter(|violation| !(node_lost && eventual.contains(&violation.invariant.as_str())))
        .map(|violation| format!("{} at {} ns: {}", violation.invariant, violation.at_ns, violation.message))
        .collect();
    assert!(
        broken.is_empty(),
        "{} violations (zero downtime promised: {}, node lost: {node_lost})\nworkload: {workload:?}\nfaults: {}\n{}",
        broken.len(),
        workload.promises_zero_downtime(),
        describe(&faults),
        broken.join("\n")
    );
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let _ = run(bytes);
});
