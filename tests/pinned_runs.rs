//! Pinned behaviour: the trace hash and a short summary of a canonical seed of each standard
//! workload, as insta snapshots. Any change of behaviour shows as a snapshot diff to review
//! (`INSTA_UPDATE=always cargo test --test pinned_runs`, then read the `.snap` diff).

mod support;

use kubedst_core::harness::{run, Action, FaultPlan, ModelFault, RunReport, RunSpec, TimedAction, TimedModelFault};
use kubedst_core::manifest::load_manifests;
use kubedst_core::mutants::Mutants;
use kubedst_core::objects::{Kind, Object};
use kubedst_core::runtime::{ImageBehavior, ImageBehaviors};
use kubedst_sim::{Fault, FaultSchedule, TimedFault};
use std::collections::BTreeMap;
use std::time::Duration;

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 6
  parallelism: 2
  backoffLimit: 6
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: "work:v1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
"#;

/// The summary that is pinned: verdict, events, virtual time, faults fired, the final pods by
/// phase and image, and the trace hash.
fn summary(report: &RunReport, pods: BTreeMap<String, usize>) -> String {
    let violations: Vec<String> =
        report.violations.iter().map(|violation| format!("{}: {}", violation.invariant, violation.message)).collect();
    format!(
        "verdict: {:?}\ntrace_hash: {}\nevents: {}\nvirtual_time_ms: {}\nfaults_fired: {:?}\nfinal_pods: {:?}\nviolations: {:?}\n",
        report.verdict,
        report.trace_hash,
        report.events,
        report.virtual_time_ns / 1_000_000,
        report.faults_fired,
        pods,
        violations
    )
}

/// Runs through the harness in library mode to read the final pods from etcd.
fn run_and_summarize(spec: RunSpec) -> String {
    let again = spec.clone();
    let mut harness = kubedst_core::harness::Harness::new(spec).unwrap();
    harness.run_fault_phase();
    harness.heal();
    harness.run_liveness_phase();
    let report = harness.report();
    let mut pods = BTreeMap::new();
    for object in harness.cluster.stored_all(Kind::Pod) {
        let Object::Pod(pod) = &*object else { continue };
        let image = pod.spec.containers.first().map(|container| container.image.clone()).unwrap_or_default();
        *pods.entry(format!("{:?} {image}", pod.status.phase)).or_insert(0) += 1;
    }
    // The pinned numbers are only worth pinning if the run repeats.
    assert_eq!(run(again).unwrap().trace_hash, report.trace_hash, "the canonical run is not deterministic");
    summary(&report, pods)
}

#[test]
fn pinned_rollout() {
    let spec = support::run_spec(1, FaultPlan::default(), Mutants::NONE);
    insta::assert_snapshot!(run_and_summarize(spec));
}

#[test]
fn pinned_rollout_under_a_node_crash() {
    let faults = FaultPlan {
        engine: FaultSchedule::new(vec![TimedFault {
            at: Duration::from_secs(22),
            fault: Fault::Crash { machine: "node-1".into(), restart_after: Some(Duration::from_secs(10)) },
        }]),
        model: vec![TimedModelFault { at: Duration::from_secs(30), fault: ModelFault::CompactNow }],
    };
    insta::assert_snapshot!(run_and_summarize(support::run_spec(2, faults, Mutants::NONE)));
}

#[test]
fn pinned_rollout_under_model_faults() {
    let faults = FaultPlan {
        engine: FaultSchedule::default(),
        model: vec![
            TimedModelFault {
                at: Duration::from_secs(15),
                fault: ModelFault::ContainerCrash { node: "node-2".into(), nth: 0 },
            },
            TimedModelFault {
                at: Duration::from_secs(19),
                fault: ModelFault::PullFailure { image: "web:v2".into(), duration: Duration::from_secs(10) },
            },
            TimedModelFault {
                at: Duration::from_secs(21),
                fault: ModelFault::WatchCacheLag { server: "control-plane-0".into(), duration: Duration::from_secs(5) },
            },
        ],
    };
    let summary = run_and_summarize(support::run_spec(3, faults, Mutants::NONE));
    assert!(summary.contains("\"container_crash\": 1"), "{summary}");
    assert!(summary.contains("\"pull_failure\": 1"), "{summary}");
    assert!(summary.contains("\"watch_cache_lag\": 1"), "{summary}");
    insta::assert_snapshot!(summary);
}

#[test]
fn pinned_job() {
    let mut cluster = support::cluster_config(4, Mutants::NONE);
    let work = ImageBehavior { crash_after_ns: Some(3_000_000_000), exit_code: 0, ..ImageBehavior::default() };
    for node in &mut cluster.nodes {
        node.images = ImageBehaviors::default().with("work:v1", work.clone());
    }
    cluster.traffic.clear();
    let objects: Vec<Object> = load_manifests("job.yaml", JOB).unwrap().objects.into_iter().map(|l| l.object).collect();
    let faults = FaultPlan {
        engine: FaultSchedule::new(vec![TimedFault {
            at: Duration::from_secs(6),
            fault: Fault::Crash { machine: "node-0".into(), restart_after: Some(Duration::from_secs(5)) },
        }]),
        model: Vec::new(),
    };
    let spec = RunSpec {
        cluster,
        actions: vec![TimedAction { at: Duration::from_secs(1), action: Action::Apply(objects) }],
        faults,
        fault_phase: Duration::from_secs(30),
        liveness_bound: Duration::from_secs(300),
    };
    insta::assert_snapshot!(run_and_summarize(spec));
}

#[test]
fn pinned_scale_storm() {
    let mut spec = support::run_spec(5, FaultPlan::default(), Mutants::NONE);
    spec.actions.truncate(1);
    for (index, replicas) in [12, 2, 9, 0, 7, 3, 6].into_iter().enumerate() {
        spec.actions.push(TimedAction {
            at: Duration::from_secs(10 + 3 * index as u64),
            action: Action::Scale { kind: Kind::Deployment, namespace: "default".into(), name: "web".into(), replicas },
        });
    }
    insta::assert_snapshot!(run_and_summarize(spec));
}
