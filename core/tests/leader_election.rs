//! Leader election of an HA control plane (3 control-plane machines, each with an API server, a
//! controller manager and a scheduler): one replica of each acts; a partitioned leader is replaced
//! within a lease duration and stops acting before its successor starts; clock offsets do not
//! matter; a clock that runs slow breaks the guarantee (client-go assumes bounded drift).
//!
//! Ground truth is [`ControllerHost::is_leader`] of every replica, read after every engine step.

use kubedst_core::api::{ApiRequest, ObjectKey};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::host::ControllerHost;
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::pod::PodPhase;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::{ComponentId, MachineId, Time};
use std::rc::Rc;
use std::time::Duration;

const DEPLOYMENT: &str = r#"
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

fn cluster(seed: u64) -> Cluster {
    let mut config = ClusterConfig::standard(seed, 3);
    config.control_plane_replicas = 3;
    let mut cluster = Cluster::build(config);
    for loaded in load_manifests("web.yaml", DEPLOYMENT).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster
}

fn host(cluster: &Cluster, id: ComponentId) -> Option<&ControllerHost> {
    cluster.sim.component::<ControllerHost>(id)
}

/// The replicas that lead (act) now.
fn leaders(cluster: &Cluster, replicas: &[ComponentId]) -> Vec<usize> {
    (0..replicas.len()).filter(|&index| host(cluster, replicas[index]).is_some_and(ControllerHost::is_leader)).collect()
}

/// What the ground-truth check saw over a stretch of steps.
#[derive(Debug, Default)]
struct Watch {
    /// The most replicas of one lease that led at one instant.
    max_leaders: usize,
    /// When (true time) two replicas of one lease first led at once, and for how long in all.
    first_violation: Option<Time>,
    violation_ns: u64,
    /// When the controller-manager lease was first held by a replica other than `old`.
    takeover: Option<Time>,
    /// When `old` first stopped leading.
    old_stopped: Option<Time>,
}

/// Steps the engine to `until`, counting after every step the leaders of each lease.
fn run_checked(cluster: &mut Cluster, until: Time, old: Option<usize>, watch: &mut Watch) {
    let leases = [cluster.controller_managers.clone(), cluster.schedulers.clone()];
    let mut last = cluster.sim.now();
    while cluster.sim.now() < until && cluster.sim.step() {
        let now = cluster.sim.now();
        let mut violated = false;
        for replicas in &leases {
            let leading = leaders(cluster, replicas);
            watch.max_leaders = watch.max_leaders.max(leading.len());
            violated |= leading.len() > 1;
        }
        if violated {
            watch.first_violation.get_or_insert(now);
            watch.violation_ns += now.as_nanos() - last.as_nanos();
        }
        if let (None, Some(old)) = (watch.old_stopped, old) {
            if !host(cluster, leases[0][old]).is_some_and(ControllerHost::is_leader) {
                watch.old_stopped = Some(now);
            }
        }
        if watch.takeover.is_none() {
            let leading = leaders(cluster, &leases[0]);
            if leading.iter().any(|&index| Some(index) != old) {
                watch.takeover = Some(now);
            }
        }
        last = now;
    }
}

fn the_leader(cluster: &Cluster, replicas: &[ComponentId]) -> usize {
    let leading = leaders(cluster, replicas);
    assert_eq!(leading.len(), 1, "expected exactly one leader, got {leading:?}");
    leading[0]
}

fn writes(cluster: &Cluster, replicas: &[ComponentId]) -> Vec<u64> {
    replicas.iter().map(|&id| host(cluster, id).map_or(0, |host| host.writes)).collect()
}

/// Ground truth: pods of the Deployment that are Running and Ready in etcd.
fn ready_pods(cluster: &Cluster) -> usize {
    cluster
        .stored_all(Kind::Pod)
        .iter()
        .filter(|object| match &***object {
            Object::Pod(pod) => {
                pod.metadata.deletion_timestamp_ns.is_none()
                    && pod.status.phase == Some(PodPhase::Running)
                    && pod.status.conditions.iter().any(|condition| condition.is_true("Ready"))
            }
            _ => false,
        })
        .count()
}

fn scale(cluster: &mut Cluster, replicas: i32) {
    let Some(object) = cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")) else { panic!("no web") };
    let Object::Deployment(mut deployment) = (*object).clone() else { unreachable!() };
    deployment.spec.replicas = Some(replicas);
    deployment.metadata.resource_version = None;
    cluster.submit(ApiRequest::Update { object: Rc::new(Object::Deployment(deployment)) });
}

/// Starts a cluster and runs it until the Deployment is up, checking leaders all along.
fn started(seed: u64) -> (Cluster, Watch) {
    let mut cluster = cluster(seed);
    let mut watch = Watch::default();
    run_checked(&mut cluster, Time::from_secs(30), None, &mut watch);
    assert_eq!(watch.max_leaders, 1, "{watch:?}");
    assert_eq!(ready_pods(&cluster), 3, "{:?}", cluster.sim.pending());
    (cluster, watch)
}

/// The other control-plane machines and etcd: the side a partitioned leader is cut from.
fn others(cluster: &Cluster, machine: MachineId) -> Vec<MachineId> {
    let mut others: Vec<MachineId> =
        cluster.control_plane_machines.iter().copied().filter(|&other| other != machine).collect();
    others.push(cluster.etcd_machine);
    others
}

#[test]
fn exactly_one_controller_manager_leads_and_only_it_writes() {
    let (mut cluster, _) = started(1);
    let managers = cluster.controller_managers.clone();
    let leader = the_leader(&cluster, &managers);
    the_leader(&cluster, &cluster.schedulers.clone());
    let before = writes(&cluster, &managers);
    scale(&mut cluster, 5);
    let mut watch = Watch::default();
    run_checked(&mut cluster, Time::from_secs(60), None, &mut watch);
    assert_eq!(watch.max_leaders, 1);
    assert_eq!(the_leader(&cluster, &managers), leader);
    let after = writes(&cluster, &managers);
    for (index, (&b, &a)) in before.iter().zip(&after).enumerate() {
        if index == leader {
            assert!(a > b, "the leader's writes did not grow: {before:?} -> {after:?}");
        } else {
            assert_eq!(a, 0, "follower {index} wrote: {after:?}");
        }
    }
    assert_eq!(ready_pods(&cluster), 5);
    // One transition each: the leader started leading once; the followers never did.
    let transitions: Vec<u64> = managers.iter().map(|&id| host(&cluster, id).unwrap().leader_transitions).collect();
    let expected: Vec<u64> = (0..managers.len()).map(|index| u64::from(index == leader)).collect();
    assert_eq!(transitions, expected);
    let lease = cluster.stored(&ObjectKey::new(Kind::Lease, "kube-system", "kube-controller-manager")).unwrap();
    let Object::Lease(lease) = &*lease else { unreachable!() };
    assert_eq!(lease.spec.holder_identity.as_deref(), Some(format!("kube-controller-manager-{leader}").as_str()));
    assert_eq!(lease.spec.lease_duration_seconds, Some(15));
}

/// Partitions the controller-manager leader's machine (skewed by `skew_ns`, drifting by
/// `drift_ppm`) from the rest of the control plane and etcd for `span`; returns what the ground
/// truth check saw, with the old leader's index, the partition's start and the cluster.
fn fail_over(seed: u64, skew_ns: i64, drift_ppm: i32, span: Duration) -> (Cluster, Watch, usize, Time) {
    let (mut cluster, _) = started(seed);
    let managers = cluster.controller_managers.clone();
    let leader = the_leader(&cluster, &managers);
    let machine = cluster.sim.machine_of(managers[leader]);
    if skew_ns != 0 {
        cluster.sim.skew_clock(machine, skew_ns);
    }
    if drift_ppm != 0 {
        cluster.sim.set_clock_drift(machine, drift_ppm);
    }
    let cut_at = cluster.sim.now();
    let others = others(&cluster, machine);
    let pairs = cluster.sim.partition(&[machine], &others, false);
    let mut watch = Watch::default();
    run_checked(&mut cluster, cut_at + span, Some(leader), &mut watch);
    cluster.sim.repair(&pairs);
    (cluster, watch, leader, cut_at)
}

fn assert_fail_over_is_safe(seed: u64, skew_ns: i64) {
    let (mut cluster, mut watch, old, cut_at) = fail_over(seed, skew_ns, 0, Duration::from_secs(40));
    let managers = cluster.controller_managers.clone();
    assert_eq!(watch.max_leaders, 1, "two leaders at once: {watch:?}");
    let takeover = watch.takeover.expect("no replica took over");
    let seconds_after_cut = |at: Time| (at.as_nanos() - cut_at.as_nanos()) as f64 / 1e9;
    let takeover_s = seconds_after_cut(takeover);
    let stopped_s = seconds_after_cut(watch.old_stopped.expect("the old leader never stopped"));
    // The lease expires 15 s after a follower last saw it renewed, which was up to a RetryPeriod
    // (2 s) before the cut; then the candidate retries every 2-4.4 s.
    assert!((13.0..=25.0).contains(&takeover_s), "took over after {takeover_s} s");
    assert!(stopped_s < takeover_s, "stopped after {stopped_s} s, taken over after {takeover_s} s");
    let new = the_leader(&cluster, &managers);
    assert_ne!(new, old);
    let old_host = host(&cluster, managers[old]).unwrap();
    // The old leader stopped (and restarted as a candidate).
    assert_eq!(old_host.leader_transitions, 2);
    // The Deployment still converges under the new leader.
    scale(&mut cluster, 6);
    watch = Watch::default();
    let until = cluster.sim.now() + Duration::from_secs(60);
    run_checked(&mut cluster, until, None, &mut watch);
    assert_eq!(watch.max_leaders, 1, "{watch:?}");
    assert_eq!(ready_pods(&cluster), 6, "{:?}", cluster.sim.pending());
    // After the repair the old leader stays a follower.
    assert_eq!(the_leader(&cluster, &managers), new);
    assert_eq!(host(&cluster, managers[old]).unwrap().leader_transitions, 2);
    eprintln!(
        "seed {seed} skew {skew_ns} ns: old leader stopped {stopped_s:.3} s and new one took over {takeover_s:.3} s \
         after the cut; writes {:?}",
        writes(&cluster, &managers)
    );
}

#[test]
fn a_partitioned_leader_is_replaced_and_never_overlaps() {
    for seed in [2, 3, 4] {
        assert_fail_over_is_safe(seed, 0);
    }
}

#[test]
fn clock_offsets_on_the_leader_do_not_matter() {
    for (seed, skew_ns) in [(5, 5_000_000_000), (6, -5_000_000_000)] {
        assert_fail_over_is_safe(seed, skew_ns);
    }
}

/// client-go's known limit: a leader whose clock runs at half speed measures its renew deadline
/// (10 s) over 20 s of true time, while its successor takes the lease after 15 s of its own clock.
/// The harness must catch the overlap.
#[test]
fn a_slow_clock_on_the_leader_makes_two_leaders_canary() {
    let (cluster, watch, old, cut_at) = fail_over(7, 0, -500_000, Duration::from_secs(40));
    let violation = watch.first_violation.expect("the drift canary did not fire: two leaders were expected");
    assert_eq!(watch.max_leaders, 2);
    let seconds_after_cut = |at: Time| (at.as_nanos() - cut_at.as_nanos()) as f64 / 1e9;
    eprintln!(
        "drift -500000 ppm: two leaders from {:.3} s after the cut, for {:.3} s; the old leader stopped after {:.3} s",
        seconds_after_cut(violation),
        watch.violation_ns as f64 / 1e9,
        seconds_after_cut(watch.old_stopped.expect("the old leader never stopped")),
    );
    assert!(watch.violation_ns > 0);
    assert_ne!(the_leader(&cluster, &cluster.controller_managers.clone()), old);
}

/// A follower whose wall clock jumps 5 s ahead still waits a full lease duration of its own
/// (monotonic) time after it last saw the record change: no overlap.
#[test]
fn a_clock_offset_on_the_followers_does_not_matter() {
    let (mut cluster, _) = started(8);
    let managers = cluster.controller_managers.clone();
    let leader = the_leader(&cluster, &managers);
    let machine = cluster.sim.machine_of(managers[leader]);
    for (index, &follower) in managers.iter().enumerate() {
        if index != leader {
            let follower_machine = cluster.sim.machine_of(follower);
            cluster.sim.skew_clock(follower_machine, 5_000_000_000);
        }
    }
    let others = others(&cluster, machine);
    let pairs = cluster.sim.partition(&[machine], &others, false);
    let mut watch = Watch::default();
    let until = cluster.sim.now() + Duration::from_secs(40);
    run_checked(&mut cluster, until, Some(leader), &mut watch);
    cluster.sim.repair(&pairs);
    assert_eq!(watch.max_leaders, 1, "{watch:?}");
    assert!(watch.old_stopped.unwrap() < watch.takeover.unwrap(), "{watch:?}");
    assert_ne!(the_leader(&cluster, &managers), leader);
}

/// The leader's wall clock jumps back 30 s at 6 s, before the clock has reached 30 s. Its Lease
/// renewals must still change the record (renewTime moves on), or the followers, which restart
/// their lease timers only on a changed record, take over from a leader that is renewing: two
/// leaders (found by the workload_faults fuzz target). Found with the clock stuck at its zero.
#[test]
fn a_backward_jump_past_the_clock_zero_on_the_leader_does_not_make_two_leaders() {
    for seed in 1..=4 {
        let mut cluster = cluster(seed);
        let mut watch = Watch::default();
        run_checked(&mut cluster, Time::from_secs(6), None, &mut watch);
        for &machine in &cluster.control_plane_machines.clone() {
            cluster.sim.skew_clock(machine, -30_000_000_000);
        }
        run_checked(&mut cluster, Time::from_secs(60), None, &mut watch);
        assert_eq!(watch.max_leaders, 1, "seed {seed}: {watch:?}");
    }
}
