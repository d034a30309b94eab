//! Disruption budgets and drain, namespace deletion and Secret authorization in the whole cluster
//! while the control plane is under faults, over several seeds: the links between the nodes and
//! `control-plane-0` (and between it and etcd) delay, lose and reorder messages (and would
//! duplicate datagrams, which the API does not use); the
//! controller-manager leader's machine crashes (an API server replica with it, so the controller
//! manager fails over); another API server replica crashes later; one watch cache lags and etcd
//! compacts its history. The promises are checked on ground truth (etcd's store and the nodes'
//! runtimes) and every fault is checked to have fired (engine counters, model-fault verbs).

use kubedst_core::api::{ApiErrorReason, ApiRequest, ObjectKey};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::drain::DrainResult;
use kubedst_core::host::ControllerHost;
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::Kubelet;
use kubedst_core::objects::{Kind, Object};
use kubedst_core::rbac;
use kubedst_sim::{Fault, FaultKind, FaultSchedule, LatencyModel, LinkConfig, Ratio, Time, TimedFault};
use std::time::Duration;

/// How long the faults last from the start of the action under test; then everything heals.
const FAULT_PHASE: Duration = Duration::from_secs(60);
const SEEDS: std::ops::RangeInclusive<u64> = 1..=3;

fn build(seed: u64) -> Cluster {
    let mut config = ClusterConfig::standard(seed, 3);
    config.control_plane_replicas = 3;
    Cluster::build(config)
}

fn apply(cluster: &mut Cluster, manifests: &str) {
    for loaded in load_manifests("objects.yaml", manifests).unwrap().objects {
        cluster.create(loaded.object);
        cluster.run_until_answered(cluster.sim.now() + Duration::from_secs(5)).unwrap();
    }
}

fn kcm_leader(cluster: &Cluster) -> Option<usize> {
    cluster
        .controller_managers
        .iter()
        .position(|&id| cluster.sim.component::<ControllerHost>(id).is_some_and(ControllerHost::is_leader))
}

fn bad_link() -> LinkConfig {
    LinkConfig {
        latency: LatencyModel {
            floor: Duration::from_millis(20),
            jitter: Duration::from_millis(30),
            tail_chance: Ratio::new(1, 20),
            tail_max: Duration::from_millis(500),
        },
        loss: Ratio::new(1, 20),
        duplicate: Ratio::new(1, 10),
        reorder: Ratio::new(1, 10),
        reorder_window: Duration::from_millis(50),
    }
}

/// The faults of one run and what they must have done.
struct Chaos {
    start: Time,
    /// The controller-manager leader when the faults began (its machine crashes first).
    first_leader: usize,
    /// Some other controller-manager replica led afterwards.
    failed_over: bool,
    lagged: bool,
    compacted: bool,
    healed: bool,
}

impl Chaos {
    /// Installs the engine's faults from now on.
    fn install(cluster: &mut Cluster, seed: u64) -> Chaos {
        let start = cluster.sim.now();
        let first_leader = kcm_leader(cluster).unwrap_or_else(|| panic!("seed {seed}: a controller manager leads"));
        let at = |secs: u64| Duration::from_nanos(start.as_nanos()) + Duration::from_secs(secs);
        let leader_machine = format!("control-plane-{first_leader}");
        let other_machine = format!("control-plane-{}", (first_leader + 1) % 3);
        let mut faults = Vec::new();
        let mut degrade = |from: &str, to: &str| {
            faults.push(TimedFault {
                at: at(0),
                fault: Fault::DegradeLink { from: from.into(), to: to.into(), link: bad_link(), duration: FAULT_PHASE },
            });
        };
        for node in ["node-0", "node-1", "node-2", "etcd-0"] {
            degrade(node, "control-plane-0");
            degrade("control-plane-0", node);
        }
        faults.push(TimedFault {
            at: at(3),
            fault: Fault::Crash { machine: leader_machine, restart_after: Some(Duration::from_secs(25)) },
        });
        faults.push(TimedFault {
            at: at(35),
            fault: Fault::Crash { machine: other_machine, restart_after: Some(Duration::from_secs(20)) },
        });
        cluster.sim.install_faults(&FaultSchedule::new(faults)).unwrap();
        Chaos { start, first_leader, failed_over: false, lagged: false, compacted: false, healed: false }
    }

    /// Called after every step: the model faults at their times, the heal at the phase's end.
    fn tick(&mut self, cluster: &mut Cluster) {
        let elapsed = Duration::from_nanos(cluster.sim.now().as_nanos() - self.start.as_nanos());
        if !self.lagged && elapsed >= Duration::from_secs(8) {
            // A server the crashes do not touch at this time: the third replica.
            let server = format!("control-plane-{}", (self.first_leader + 2) % 3);
            self.lagged = cluster.lag_watch_cache(&server, Duration::from_secs(10));
            assert!(self.lagged, "{server}'s API server is up to lag");
        }
        if !self.compacted && elapsed >= Duration::from_secs(15) {
            self.compacted = cluster.compact_now();
            assert!(self.compacted, "etcd is up to compact");
        }
        if !self.failed_over && kcm_leader(cluster).is_some_and(|leader| leader != self.first_leader) {
            self.failed_over = true;
        }
        if !self.healed && elapsed >= FAULT_PHASE {
            self.healed = true;
            cluster.sim.end_fault_phase();
            cluster.heal_model_faults();
        }
    }

    /// Every fault struck: two crashes, their restarts, the degraded links lost and reordered
    /// messages, the lag and the compaction happened, and another replica took the lead.
    fn assert_fired(&self, cluster: &Cluster, seed: u64) {
        let accounting = cluster.sim.accounting();
        assert_eq!(accounting.fired(FaultKind::Crash), 2, "seed {seed}: {accounting:?}");
        assert_eq!(accounting.fired(FaultKind::DegradeLink), 8, "seed {seed}");
        let on_bad_links = |stat: fn(&kubedst_sim::LinkStats) -> u64| -> u64 {
            accounting
                .links
                .iter()
                .filter(|((from, to), _)| from == "control-plane-0" || to == "control-plane-0")
                .map(|(_, stats)| stat(stats))
                .sum()
        };
        // Duplication is configured too, but the engine duplicates only datagrams, and the API
        // rides requests and streams (as over TCP): the counter stays 0, so it is not asserted.
        let (lost, held_back) = (on_bad_links(|s| s.dropped_loss), on_bad_links(|s| s.delayed));
        assert!(lost > 0 && held_back > 0, "seed {seed}: lost {lost}, reordered {held_back}");
        assert!(self.lagged && self.compacted && self.healed, "seed {seed}: the model faults and the heal ran");
        assert!(self.failed_over, "seed {seed}: the controller manager failed over");
    }
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: "web:v1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 3
  selector: {matchLabels: {app: web}}
"#;

/// Ground truth of readiness, twice: etcd's pods that are Ready and not being deleted (what the
/// budget counts), and the pods whose containers the nodes' runtimes really have serving.
fn ready(cluster: &Cluster) -> (usize, usize) {
    let now_ns = cluster.sim.now().as_nanos();
    let mut in_etcd = 0;
    let mut serving = 0;
    for object in cluster.stored_all(Kind::Pod) {
        let Object::Pod(pod) = &*object else { continue };
        if pod.is_ready() && !pod.metadata.is_terminating() {
            in_etcd += 1;
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let serves = cluster.kubelets.iter().any(|&id| {
            cluster.sim.component::<Kubelet>(id).is_some_and(|kubelet| {
                let runtime = kubelet.runtime();
                runtime.pod_ip(uid).is_some_and(|ip| runtime.is_serving(ip, now_ns))
            })
        });
        if serves && !pod.metadata.is_terminating() {
            serving += 1;
        }
    }
    (in_etcd, serving)
}

fn pods_per_node(cluster: &Cluster) -> std::collections::BTreeMap<String, usize> {
    let mut per_node = std::collections::BTreeMap::new();
    for object in cluster.stored_all(Kind::Pod) {
        if let Object::Pod(pod) = &*object {
            if let Some(node) = &pod.spec.node_name {
                *per_node.entry(node.clone()).or_default() += 1;
            }
        }
    }
    per_node
}

#[test]
fn a_drain_under_faults_never_breaks_the_budget_and_completes() {
    for seed in SEEDS {
        let mut cluster = build(seed);
        apply(&mut cluster, WEB);
        cluster.sim.run_until(Time::from_secs(30)).unwrap();
        assert_eq!(ready(&cluster), (4, 4), "seed {seed}: ready before the drain");
        let per_node = pods_per_node(&cluster);
        let (node, on_node) = per_node.iter().max_by_key(|(name, count)| (**count, std::cmp::Reverse(*name))).unwrap();
        let (node, on_node) = (node.clone(), *on_node);
        let mut chaos = Chaos::install(&mut cluster, seed);
        cluster.drain(&node, Duration::from_secs(300));
        let (mut lowest_etcd, mut lowest_serving) = (4, 4);
        let limit = chaos.start + Duration::from_secs(300);
        while cluster.sim.now() < limit && cluster.drains().first().is_none_or(|report| report.result.is_none()) {
            assert!(cluster.sim.step(), "seed {seed}: the run went idle");
            chaos.tick(&mut cluster);
            let (in_etcd, serving) = ready(&cluster);
            (lowest_etcd, lowest_serving) = (lowest_etcd.min(in_etcd), lowest_serving.min(serving));
            assert!(in_etcd >= 3, "seed {seed}: {in_etcd} ready pods in etcd at {:?}", cluster.sim.now());
            assert!(serving >= 3, "seed {seed}: {serving} pods serving at {:?}", cluster.sim.now());
        }
        let report = cluster.drains().into_iter().next().expect("the drain ran");
        assert_eq!(report.result, Some(DrainResult::Done), "seed {seed}: {report:?}");
        assert_eq!(report.evicted.len(), on_node, "seed {seed}: {report:?}");
        while !chaos.healed {
            assert!(cluster.sim.step());
            chaos.tick(&mut cluster);
        }
        chaos.assert_fired(&cluster, seed);
        cluster.sim.run_until(cluster.sim.now() + Duration::from_secs(30)).unwrap();
        assert_eq!(ready(&cluster), (4, 4), "seed {seed}: every pod back and ready");
        assert_eq!(pods_per_node(&cluster).get(&node), None, "seed {seed}: the drained node is empty");
        let took_s = (report.finished_ns.unwrap() - report.started_ns) as f64 / 1e9;
        println!(
            "seed {seed}: drained {node} ({on_node} pods) in {took_s:.1}s under faults, {} 429s, lowest ready {lowest_etcd} in etcd / {lowest_serving} serving",
            report.too_many_requests
        );
    }
}

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: "web:v1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
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
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {mode: slow}
"#;

/// (key, uid) of every stored object in `namespace`.
fn in_namespace(cluster: &Cluster, namespace: &str) -> Vec<(String, String)> {
    Kind::ALL
        .iter()
        .filter(|kind| kind.is_namespaced())
        .flat_map(|kind| cluster.stored_all(*kind))
        .filter(|object| object.meta().namespace.as_deref() == Some(namespace))
        .map(|object| (ObjectKey::of(&object).to_string(), object.meta().uid.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn deleting_a_namespace_under_faults_removes_everything_in_it_and_nothing_else() {
    for seed in SEEDS {
        let mut cluster = build(seed);
        apply(&mut cluster, SHOP);
        cluster.sim.run_until(Time::from_secs(30)).unwrap();
        let content = in_namespace(&cluster, "shop");
        assert!(content.len() >= 9, "seed {seed}: {content:?}");
        // Outside: the default Deployment, its ReplicaSet and pods, the ConfigMap (pods are replaced
        // by name only if they die, which nothing here makes them do).
        let outside = in_namespace(&cluster, "default");
        let outside_system: Vec<_> = ["kube-system", "kube-node-lease", "kube-public"]
            .iter()
            .flat_map(|namespace| in_namespace(&cluster, namespace))
            .filter(|(key, _)| !key.starts_with("Lease/"))
            .collect();
        let mut chaos = Chaos::install(&mut cluster, seed);
        cluster.submit(ApiRequest::Delete {
            key: ObjectKey::new(Kind::Namespace, "", "shop"),
            uid: None,
            grace_period_seconds: None,
            propagation: None,
        });
        let limit = chaos.start + FAULT_PHASE + Duration::from_secs(120);
        let mut gone_at = None;
        while cluster.sim.now() < limit && (gone_at.is_none() || !chaos.healed) {
            assert!(cluster.sim.step(), "seed {seed}: the run went idle");
            chaos.tick(&mut cluster);
            if gone_at.is_none()
                && cluster.stored(&ObjectKey::new(Kind::Namespace, "", "shop")).is_none()
                && in_namespace(&cluster, "shop").is_empty()
            {
                gone_at = Some(cluster.sim.now());
            }
        }
        let gone_at = gone_at
            .unwrap_or_else(|| panic!("seed {seed}: still there after the heal: {:?}", in_namespace(&cluster, "shop")));
        chaos.assert_fired(&cluster, seed);
        // Nothing comes back, and everything outside is still there with the same uids.
        cluster.sim.run_until(cluster.sim.now() + Duration::from_secs(20)).unwrap();
        assert_eq!(in_namespace(&cluster, "shop"), Vec::new(), "seed {seed}");
        assert!(cluster.stored(&ObjectKey::new(Kind::Namespace, "", "shop")).is_none(), "seed {seed}");
        let now_outside = in_namespace(&cluster, "default");
        for object in &outside {
            assert!(now_outside.contains(object), "seed {seed}: {object:?} outside the namespace is gone");
        }
        for object in &outside_system {
            let kind_name = object.0.split('/').collect::<Vec<_>>();
            let still = in_namespace(&cluster, kind_name[1]).contains(object);
            assert!(still, "seed {seed}: {object:?} is gone");
        }
        println!(
            "seed {seed}: namespace shop ({} objects) gone {:.1}s after the delete under faults; {} objects outside kept",
            content.len(),
            (gone_at.as_nanos() - chaos.start.as_nanos()) as f64 / 1e9,
            outside.len() + outside_system.len()
        );
    }
}

const NEEDS_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Pod
metadata: {name: needs-secret}
spec:
  containers:
  - name: app
    image: "app:v1"
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
"#;

#[test]
fn secret_reads_under_faults_stay_denied_or_eventually_succeed_as_allowed() {
    for seed in SEEDS {
        let mut cluster = build(seed);
        apply(&mut cluster, NEEDS_SECRET);
        cluster.sim.run_until(Time::from_secs(20)).unwrap();
        let Some(Object::Pod(pod)) =
            cluster.stored(&ObjectKey::new(Kind::Pod, "default", "needs-secret")).as_deref().cloned()
        else {
            panic!("seed {seed}: the pod exists")
        };
        let node = pod.spec.node_name.clone().unwrap_or_else(|| panic!("seed {seed}: scheduled"));
        let other = ["node-0", "node-1", "node-2"].into_iter().find(|n| *n != node).unwrap();
        let mut chaos = Chaos::install(&mut cluster, seed);
        let get = ApiRequest::Get { key: ObjectKey::new(Kind::Secret, "default", "db") };
        // (user, allowed).
        let askers = [
            (rbac::node_user(&node), true),
            (rbac::node_user(other), false),
            (rbac::SCHEDULER.to_string(), false),
            (rbac::KUBE_PROXY.to_string(), false),
        ];
        // One read at a time, the askers in turn, until the phase and 30 s after it are over:
        // kubectl's log then pairs each answer with its asker.
        let mut answers: Vec<(usize, Result<(), ApiErrorReason>)> = Vec::new();
        let limit = chaos.start + FAULT_PHASE + Duration::from_secs(30);
        let mut turn = 0;
        while cluster.sim.now() < limit {
            let index = turn % askers.len();
            turn += 1;
            let answered = cluster.kubectl_log().len();
            cluster.submit_as(&askers[index].0, get.clone());
            while cluster.kubectl_log().len() == answered {
                assert!(cluster.sim.step(), "seed {seed}: the run went idle");
                chaos.tick(&mut cluster);
            }
            let result = &cluster.kubectl_log()[answered].result;
            answers.push((index, result.as_ref().map(|_| ()).map_err(|error| error.reason)));
            // The next read half a second later.
            let pause_until = cluster.sim.now() + Duration::from_millis(500);
            while cluster.sim.now() < pause_until {
                assert!(cluster.sim.step(), "seed {seed}: the run went idle");
                chaos.tick(&mut cluster);
            }
        }
        chaos.assert_fired(&cluster, seed);
        for (index, (user, allowed)) in askers.iter().enumerate() {
            let mine: Vec<_> = answers.iter().filter(|(i, _)| *i == index).map(|(_, r)| *r).collect();
            let ok = mine.iter().filter(|r| r.is_ok()).count();
            let forbidden = mine.iter().filter(|r| *r == &Err(ApiErrorReason::Forbidden)).count();
            let other_errors = mine.len() - ok - forbidden;
            if *allowed {
                assert_eq!(forbidden, 0, "seed {seed}: {user} was refused: {mine:?}");
                assert!(mine.last() == Some(&Ok(())), "seed {seed}: {user}'s last read failed: {mine:?}");
            } else {
                assert_eq!(ok, 0, "seed {seed}: {user} read the Secret under faults: {mine:?}");
                assert!(mine.last() == Some(&Err(ApiErrorReason::Forbidden)), "seed {seed}: {user}: {mine:?}");
            }
            println!(
                "seed {seed}: {user}: {} reads, {ok} ok, {forbidden} 403, {other_errors} failed otherwise",
                mine.len()
            );
        }
        // The kubelet's own read worked: the pod runs.
        let Some(Object::Pod(pod)) =
            cluster.stored(&ObjectKey::new(Kind::Pod, "default", "needs-secret")).as_deref().cloned()
        else {
            panic!()
        };
        assert!(pod.is_ready(), "seed {seed}: the pod needing the Secret is ready");
    }
}
