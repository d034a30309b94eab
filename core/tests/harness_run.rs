//! The two-phase harness: a rollout under a node crash passes, reports its faults, and a broken
//! promise fails with what is pending.

use kubedst_core::cluster::{ClusterConfig, TrafficConfig};
use kubedst_core::harness::{run, Action, FaultPlan, ModelFault, RunSpec, TimedAction, TimedModelFault, Verdict};
use kubedst_core::objects::Object;
use kubedst_sim::{Fault, FaultSchedule, TimedFault};
use std::time::Duration;

fn spec(seed: u64, faults: FaultPlan, liveness_bound: Duration) -> RunSpec {
    let mut cluster = ClusterConfig::standard(seed, 3);
    // With its readiness probe, a pod gets traffic only once its app serves; and the app drains for 5 s after SIGTERM (as a preStop sleep makes it), so that the proxies can
    // stop routing to a terminating pod before it exits: a workload built for zero downtime.
    for node in &mut cluster.nodes {
        node.images.default.sigterm_exit_after_ns = 5_000_000_000;
    }
    cluster.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(200) }];
    let objects: Vec<Object> = kubedst_core::fixtures::web_objects(4);
    RunSpec {
        cluster,
        actions: vec![
            TimedAction { at: Duration::from_secs(1), action: Action::Apply(objects) },
            TimedAction {
                at: Duration::from_secs(30),
                action: Action::SetImage {
                    namespace: "default".into(),
                    deployment: "web".into(),
                    container: "web".into(),
                    image: "web:v2".into(),
                },
            },
        ],
        faults,
        fault_phase: Duration::from_secs(60),
        liveness_bound,
    }
}

#[test]
fn a_rollout_under_a_node_crash_converges_and_counts_its_faults() {
    let faults = FaultPlan {
        engine: FaultSchedule::new(vec![TimedFault {
            at: Duration::from_secs(32),
            fault: Fault::Crash { machine: "node-1".into(), restart_after: Some(Duration::from_secs(5)) },
        }]),
        model: vec![TimedModelFault { at: Duration::from_secs(40), fault: ModelFault::CompactNow }],
    };
    let report = run(spec(7, faults.clone(), Duration::from_secs(600))).unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{:#?}", report.violations);
    assert_eq!(report.faults_fired.get("crash"), Some(&1));
    assert_eq!(report.faults_fired.get("compact_now"), Some(&1));
    assert!(report.observed_writes.get("Pod").copied().unwrap_or(0) > 20, "{:?}", report.observed_writes);
    // Every always-checker and every eventual promise was exercised.
    for invariant in [
        "pod-binds-once",
        "node-capacity",
        "revisions-grow",
        "watch-in-order",
        "one-leader-per-lease",
        "rollout-availability",
        "zero-downtime",
        "deployment-converges",
        "jobs-complete",
    ] {
        assert!(report.exercised.get(invariant).copied().unwrap_or(0) > 0, "{invariant}: {:?}", report.exercised);
    }
    eprintln!("exercised: {:?}", report.exercised);
    let again = run(spec(7, faults, Duration::from_secs(600))).unwrap();
    assert_eq!(report.trace_hash, again.trace_hash, "same seed, same run");
}

#[test]
fn a_cluster_that_cannot_converge_fails_and_says_what_is_pending() {
    // Every node is lost for good: nothing can run the pods.
    let lost: Vec<TimedFault> = (0..3)
        .map(|index| TimedFault {
            at: Duration::from_secs(20),
            fault: Fault::Lose { machine: format!("node-{index}") },
        })
        .collect();
    let faults = FaultPlan { engine: FaultSchedule::new(lost), model: Vec::new() };
    let report = run(spec(3, faults, Duration::from_secs(30))).unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report.pending.iter().any(|line| line.starts_with("deployment default/web: ") && line.contains("/4 ready")),
        "{:?}",
        report.pending
    );
}

#[test]
fn a_rollout_under_a_node_loss_loses_only_requests_to_the_lost_node_and_replaces_its_pods() {
    let faults = FaultPlan {
        engine: FaultSchedule::new(vec![TimedFault {
            at: Duration::from_secs(31),
            fault: Fault::Lose { machine: "node-2".into() },
        }]),
        model: Vec::new(),
    };
    let report = run(spec(11, faults, Duration::from_secs(900))).unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{:#?} {:?}", report.violations, report.pending);
    assert_eq!(report.faults_fired.get("lose"), Some(&1));
    assert!(report.exercised["zero-downtime"] > 100, "{:?}", report.exercised);
    assert!(report.exercised["rollout-availability"] > 0, "{:?}", report.exercised);
}
