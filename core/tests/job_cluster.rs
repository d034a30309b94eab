//! Jobs in the whole cluster: the Job controller, the scheduler and kubelets on 3 nodes.

use kubedst_core::api::ObjectKey;
use kubedst_core::cluster::{standard_controllers, standard_scheduler, Cluster, ClusterConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::NodeConfig;
use kubedst_core::objects::pod::PodPhase;
use kubedst_core::objects::{Job, Kind, Object};
use kubedst_core::runtime::{ImageBehavior, ImageBehaviors};
use kubedst_sim::Time;

const S: u64 = 1_000_000_000;

fn cluster(seed: u64, exit_code: i32) -> Cluster {
    let behavior = ImageBehavior { crash_after_ns: Some(5 * S), exit_code, ..ImageBehavior::default() };
    let images = ImageBehaviors::default().with("job:v1", behavior);
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
    Cluster::build(config)
}

fn manifest(completions: i32, parallelism: i32, backoff_limit: i32) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: work}}
spec:
  completions: {completions}
  parallelism: {parallelism}
  backoffLimit: {backoff_limit}
  template:
    metadata: {{labels: {{app: work}}}}
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: "job:v1"
"#
    )
}

fn job(cluster: &Cluster) -> Job {
    match &*cluster.stored(&ObjectKey::new(Kind::Job, "default", "work")).unwrap() {
        Object::Job(job) => job.clone(),
        _ => unreachable!(),
    }
}

fn finished(job: &Job) -> bool {
    job.status.conditions.iter().any(|c| c.is_true("Complete") || c.is_true("Failed"))
}

/// Runs the Job to a terminal condition (or `limit_s`): the seconds it took from creation.
fn run_job(cluster: &mut Cluster, text: &str, limit_s: u64) -> u64 {
    cluster.sim.run_until(Time::from_secs(5)).unwrap();
    for loaded in load_manifests("job.yaml", text).unwrap().objects {
        cluster.create(loaded.object);
    }
    let start = cluster.sim.now().as_nanos();
    while cluster.sim.now() < Time::from_secs(5 + limit_s) {
        if !cluster.sim.step() {
            break;
        }
        if cluster.stored(&ObjectKey::new(Kind::Job, "default", "work")).is_some_and(|o| match &*o {
            Object::Job(job) => finished(job),
            _ => false,
        }) {
            break;
        }
    }
    (cluster.sim.now().as_nanos() - start) / S
}

/// (Succeeded, Failed, other) pods in the store.
fn pod_phases(cluster: &Cluster) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for object in cluster.stored_all(Kind::Pod) {
        let Object::Pod(pod) = &*object else { continue };
        match pod.status.phase {
            Some(PodPhase::Succeeded) => counts.0 += 1,
            Some(PodPhase::Failed) => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    counts
}

#[test]
fn a_job_of_5_completions_2_at_a_time_completes_with_exactly_5_pods() {
    let mut cluster = cluster(11, 0);
    let took = run_job(&mut cluster, &manifest(5, 2, 6), 120);
    let job = job(&cluster);
    let complete = job.status.conditions.iter().find(|c| c.is_true("Complete"));
    assert!(complete.is_some(), "after {took}s: {:?}", job.status);
    // Three waves of 5 s pods (2, 2, 1) plus scheduling and startup.
    assert!((15..=40).contains(&took), "took {took}s");
    assert_eq!((job.status.succeeded, job.status.failed, job.status.active), (5, 0, 0));
    assert_eq!(pod_phases(&cluster), (5, 0, 0));
    println!("completed in {took}s");
}

#[test]
fn a_job_whose_pods_always_fail_ends_failed_at_backoff_limit() {
    let mut cluster = cluster(12, 1);
    let took = run_job(&mut cluster, &manifest(1, 1, 2), 300);
    let job = job(&cluster);
    let failed = job.status.conditions.iter().find(|c| c.is_true("Failed"));
    assert_eq!(failed.and_then(|c| c.reason.as_deref()), Some("BackoffLimitExceeded"), "{:?}", job.status);
    assert_eq!(job.status.failed, 3, "backoffLimit 2: the third failure fails the Job");
    // 3 runs of 5 s with backoffs of 10 s and 20 s between them, plus startup.
    assert!((45..=90).contains(&took), "took {took}s");
    assert_eq!(pod_phases(&cluster), (0, 3, 0));
    println!("failed in {took}s");
}

/// Issue 4's promise: a Job finishes with exactly `completions` successes while its pods' nodes
/// crash (and come back). Pods lost with a node are evicted by the node lifecycle controller after
/// the 300 s default toleration and replaced.
#[test]
fn a_job_completes_exactly_while_its_nodes_crash() {
    let mut cluster = cluster(21, 0);
    cluster.sim.run_until(Time::from_secs(5)).unwrap();
    for loaded in load_manifests("job.yaml", &manifest(6, 3, 6)).unwrap().objects {
        cluster.create(loaded.object);
    }
    // Crash a node while the first pods run (it comes back within its pods' 300 s toleration),
    // and another one that stays down long enough for its pods to be evicted and replaced.
    cluster.sim.run_until(Time::from_secs(9)).unwrap();
    let (first, second) = (cluster.node_machines[0], cluster.node_machines[1]);
    cluster.sim.crash(first);
    // Crash node-1 at a moment when a Job pod runs there.
    let running_on_second = |cluster: &Cluster| {
        cluster.stored_all(Kind::Pod).iter().any(|pod| {
            matches!(&**pod, Object::Pod(p) if p.spec.node_name.as_deref() == Some("node-1")
                && p.status.phase == Some(PodPhase::Running))
        })
    };
    while !running_on_second(&cluster) && cluster.sim.now() < Time::from_secs(60) {
        cluster.sim.run_for(std::time::Duration::from_millis(100)).unwrap();
    }
    assert!(running_on_second(&cluster), "a running Job pod is on the node about to crash");
    cluster.sim.crash(second);
    cluster.sim.run_until(Time::from_secs(70)).unwrap();
    cluster.sim.restart(first);
    while cluster.sim.now() < Time::from_secs(1_500) && !finished(&job(&cluster)) {
        if cluster.sim.now() >= Time::from_secs(500) {
            cluster.sim.restart(second);
        }
        cluster.sim.run_for(std::time::Duration::from_secs(1)).unwrap();
    }
    // It finished while node-1 was still down, its pod there lost.
    assert!(cluster.sim.now() < Time::from_secs(500), "finished at {}", cluster.sim.now());
    let job = job(&cluster);
    assert!(job.status.conditions.iter().any(|c| c.is_true("Complete")), "{:?}", job.status);
    assert_eq!(job.status.succeeded, 6, "{:?}", job.status);
    let succeeded_pods = cluster
        .stored_all(Kind::Pod)
        .iter()
        .filter(|pod| matches!(&***pod, Object::Pod(p) if p.status.phase == Some(PodPhase::Succeeded)))
        .count();
    assert_eq!(succeeded_pods, 6, "exactly `completions` pods succeeded");
}
