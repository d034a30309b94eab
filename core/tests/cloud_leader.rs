//! Several cloud-controller-manager replicas elect a leader through the Lease
//! `kube-system/cloud-controller-manager`. When the leader's machine is cut off, at most one
//! replica acts at any instant (every replica's belief, after every engine step, and the calls
//! that reached the cloud) and the LoadBalancer Service still gets its address. The one-leader
//! checker judges the new lease: a leader whose clock runs slow is caught.

use kubedst_core::api::ObjectKey;
use kubedst_core::checkers::{Cadence, CheckerSet, FaultLog, OneLeaderPerLease, World};
use kubedst_core::cloud::{CloudProfile, CloudProvider};
use kubedst_core::cluster::{Cluster, ClusterConfig, CLOUD_CONTROLLER_MANAGER_LEASE};
use kubedst_core::etcd::Etcd;
use kubedst_core::host::ControllerHost;
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::{ComponentId, Time};
use std::time::Duration;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  type: LoadBalancer
  selector: {app: shop}
  ports: [{port: 80}]
"#;

fn build(seed: u64, profile: CloudProfile) -> Cluster {
    let mut config = ClusterConfig::standard(seed, 2);
    config.control_plane_replicas = 3;
    config.cloud = Some(profile);
    config.cloud_controller_manager_replicas = 2;
    Cluster::build(config)
}

fn leaders(cluster: &Cluster) -> Vec<ComponentId> {
    cluster
        .cloud_controller_managers
        .iter()
        .copied()
        .filter(|&id| cluster.sim.component::<ControllerHost>(id).is_some_and(ControllerHost::is_leader))
        .collect()
}

fn ingress_ip(cluster: &Cluster) -> Option<String> {
    match cluster.stored(&ObjectKey::new(Kind::Service, "default", "shop")).as_deref() {
        Some(Object::Service(service)) => service.status.load_balancer.ingress.first().and_then(|i| i.ip.clone()),
        _ => None,
    }
}

fn create_service(cluster: &mut Cluster) {
    for loaded in load_manifests("shop.yaml", SERVICE).unwrap().objects {
        cluster.create(loaded.object);
    }
}

#[test]
fn the_cloud_controller_managers_elect_one_leader_through_their_lease() {
    let mut cluster = build(3, CloudProfile::fast_reliable());
    assert_eq!(cluster.cloud_controller_managers.len(), 2);
    assert_eq!(cluster.cloud_controller_manager, Some(cluster.cloud_controller_managers[0]));
    cluster.sim.run_until(Time::from_secs(20)).unwrap();
    let leader = leaders(&cluster);
    assert_eq!(leader.len(), 1, "one leader after 20 s");
    let elector = cluster.sim.component::<ControllerHost>(leader[0]).unwrap().elector().expect("elects");
    let config = elector.config();
    assert_eq!((config.namespace.as_str(), config.name.as_str()), ("kube-system", CLOUD_CONTROLLER_MANAGER_LEASE));
    assert_eq!(
        (config.lease_duration, config.renew_deadline, config.retry_period),
        (Duration::from_secs(15), Duration::from_secs(10), Duration::from_secs(2))
    );
    // Ground truth: etcd's Lease names the leader.
    let Some(Object::Lease(lease)) =
        cluster.stored(&ObjectKey::new(Kind::Lease, "kube-system", CLOUD_CONTROLLER_MANAGER_LEASE)).as_deref().cloned()
    else {
        panic!("the lease exists")
    };
    assert_eq!(lease.spec.holder_identity.as_deref(), Some(cluster.sim.component_name(leader[0])));
}

/// The leader is isolated 3 s after the Service is created (its cloud call in flight on the slow
/// cloud) for 40 s. Measured (seeds 1-4): see the println! lines.
#[test]
fn a_cloud_controller_manager_failover_keeps_one_leader_and_provisions() {
    for seed in 1..=4 {
        let mut cluster = build(seed, CloudProfile::slow_flaky());
        cluster.sim.run_until(Time::from_secs(20)).unwrap();
        let [old] = leaders(&cluster)[..] else { panic!("seed {seed}: one leader at 20 s") };
        create_service(&mut cluster);
        cluster.sim.run_until(Time::from_secs(23)).unwrap();
        let machine = cluster.sim.machine_of(old);
        let pairs = cluster.sim.isolate(machine);
        let isolated_at = cluster.sim.now();
        let (mut most_leaders, mut steps, mut new_leader_at) = (0, 0u64, None);
        let limit = Time::from_secs(400);
        while ingress_ip(&cluster).is_none() && cluster.sim.now() < limit {
            if cluster.sim.now() >= isolated_at + Duration::from_secs(40) && !pairs.is_empty() {
                cluster.sim.repair(&pairs);
            }
            assert!(cluster.sim.step(), "seed {seed}: the run went idle");
            steps += 1;
            let now_leading = leaders(&cluster);
            most_leaders = most_leaders.max(now_leading.len());
            assert!(now_leading.len() <= 1, "seed {seed}: {} leaders at {:?}", now_leading.len(), cluster.sim.now());
            if new_leader_at.is_none() && now_leading.first().is_some_and(|&id| id != old) {
                new_leader_at = Some(cluster.sim.now());
            }
        }
        let address = ingress_ip(&cluster).unwrap_or_else(|| panic!("seed {seed}: no address by {limit:?}"));
        let took_over = new_leader_at.unwrap_or_else(|| panic!("seed {seed}: no other replica took over"));
        let cloud = cluster.sim.component::<CloudProvider>(cluster.cloud.unwrap()).unwrap();
        assert_eq!(cloud.state().load_balancers.values().collect::<Vec<_>>(), vec![&address], "seed {seed}");
        // What reached the cloud: the new leader's first call comes after the old one's last.
        let new = cluster.cloud_controller_managers.iter().copied().find(|&id| id != old).unwrap();
        let (old_calls, new_calls) = (cloud.callers.get(&old).copied(), cloud.callers[&new]);
        if let Some(old_calls) = old_calls {
            assert!(old_calls.last_ns < new_calls.first_ns, "seed {seed}: {old_calls:?} overlaps {new_calls:?}");
        }
        assert_eq!(most_leaders, 1, "seed {seed}: a leader acted during the {steps} steps judged");
        println!(
            "seed {seed}: new leader {:.1}s after the isolation, address {:.1}s after it, {} provisioning attempts, old leader's calls {:?}, {steps} steps judged",
            (took_over.as_nanos() - isolated_at.as_nanos()) as f64 / 1e9,
            (cluster.sim.now().as_nanos() - isolated_at.as_nanos()) as f64 / 1e9,
            cloud.provision_attempts,
            old_calls.map(|c| c.requests)
        );
    }
}

#[test]
fn the_leader_checker_catches_two_cloud_controller_manager_leaders() {
    // As the checker's own canary does for the controller manager: a leader whose clock runs at
    // half speed keeps acting after its successor took the lease; without the drift, the same
    // failover never overlaps.
    for (drift_ppm, overlaps) in [(0, false), (-500_000, true)] {
        let mut cluster = build(7, CloudProfile::fast_reliable());
        let mut checkers = CheckerSet::new(vec![Box::<OneLeaderPerLease>::default()]);
        let faults = FaultLog::default();
        run_checked(&mut cluster, &mut checkers, &faults, Time::from_secs(30));
        assert!(checkers.violations.is_empty(), "{:?}", checkers.violations);
        let [leader] = leaders(&cluster)[..] else { panic!("one leader") };
        let machine = cluster.sim.machine_of(leader);
        cluster.sim.set_clock_drift(machine, drift_ppm);
        let mut others: Vec<_> = cluster.control_plane_machines.iter().copied().filter(|&m| m != machine).collect();
        others.push(cluster.etcd_machine);
        cluster.sim.partition(&[machine], &others, false);
        run_checked(&mut cluster, &mut checkers, &faults, Time::from_secs(70));
        let caught = checkers.violations.iter().any(|violation| {
            violation.message.starts_with("lease kube-system/cloud-controller-manager has 2 acting leaders: ")
        });
        assert_eq!(caught, overlaps, "drift {drift_ppm}: {:?}", checkers.violations);
    }
}

fn run_checked(cluster: &mut Cluster, checkers: &mut CheckerSet, faults: &FaultLog, until: Time) {
    while cluster.sim.now() < until && cluster.sim.step() {
        let revision =
            cluster.sim.component::<Etcd>(cluster.etcd).map(|etcd| etcd.store().current_revision()).unwrap_or(0);
        let world = World { cluster, faults, now_ns: cluster.sim.now().as_nanos(), revision };
        checkers.inspect(&world, Cadence::EveryStep);
    }
}
