//! The kubelet's pod workers against the simulated runtime, with an ideal API (every status post
//! and final delete lands at once): exact timelines of phases, readiness, restarts and deletion.

use kubedst_core::cache::Cache;
use kubedst_core::kubelet_logic::{PodIpPool, PodWorkers};
use kubedst_core::objects::cluster::ConfigMap;
use kubedst_core::objects::pod::{
    Container, EnvVar, EnvVarSource, ExecAction, KeySelector, PodPhase, Probe, RestartPolicy,
};
use kubedst_core::objects::{ConditionStatus, Object, ObjectMeta, Pod, PodSpec};
use kubedst_core::runtime::{AppFault, ContainerRuntime, ImageBehavior, ImageBehaviors, RuntimeEventKind};
use std::collections::BTreeMap;
use std::rc::Rc;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const NODE: &str = "node-0";

fn pod(name: &str, image: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: Some("default".to_string()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            containers: vec![Container { name: "app".to_string(), image: image.to_string(), ..Container::default() }],
            node_name: Some(NODE.to_string()),
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

fn probe(initial_delay_seconds: i32, period_seconds: i32, success_threshold: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction { command: vec!["check".to_string()] }),
        initial_delay_seconds: Some(initial_delay_seconds),
        period_seconds: Some(period_seconds),
        success_threshold: Some(success_threshold),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// A node: pod workers, a runtime, and an ideal API that applies every request at once.
struct Node {
    workers: PodWorkers,
    runtime: ContainerRuntime,
    pods: BTreeMap<String, Pod>,
    config: Option<Cache>,
    now_ns: u64,
    next_wakeup_ns: Option<u64>,
    /// `time phase ready container-state restarts` for every status posted.
    statuses: Vec<String>,
    final_deletes: Vec<(u64, String)>,
    events: Vec<(u64, RuntimeEventKind)>,
}

impl Node {
    fn new(behaviors: ImageBehaviors) -> Self {
        Node {
            workers: PodWorkers::new(NODE, "192.168.0.10", PodIpPool::for_node_index(0)),
            runtime: ContainerRuntime::new(behaviors),
            pods: BTreeMap::new(),
            config: None,
            now_ns: 0,
            next_wakeup_ns: None,
            statuses: Vec::new(),
            final_deletes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// One sync, and again while it changed the API (the informer delivers the kubelet's own
    /// writes back, which triggers a sync): the second pass must be quiet.
    fn sync(&mut self) {
        for _ in 0..3 {
            if !self.sync_once() {
                return;
            }
        }
        panic!("the kubelet kept writing at {} ns", self.now_ns);
    }

    fn sync_once(&mut self) -> bool {
        let desired: Vec<Rc<Object>> = self.pods.values().map(|pod| Rc::new(Object::Pod(pod.clone()))).collect();
        let actions = self.workers.sync(self.now_ns, &desired, &mut self.runtime, self.config.as_ref());
        let changed = !actions.status_updates.is_empty() || !actions.final_deletes.is_empty();
        self.events.extend(actions.runtime_events.into_iter().map(|event| (event.at_ns, event.kind)));
        for update in actions.status_updates {
            let status = &update.pod.status;
            let container = &status.container_statuses[0];
            let state = if let Some(waiting) = &container.state.waiting {
                waiting.reason.clone().unwrap_or_default()
            } else if container.state.running.is_some() {
                "running".to_string()
            } else {
                let terminated = container.state.terminated.as_ref().expect("one state is set");
                format!("terminated({})", terminated.exit_code)
            };
            self.statuses.push(format!(
                "{}ms {:?} ready={} {} restarts={}",
                self.now_ns / MS,
                status.phase.expect("phase is set"),
                update.pod.is_ready(),
                state,
                container.restart_count
            ));
            self.pods.insert(update.key.name.clone(), update.pod);
        }
        for delete in actions.final_deletes {
            self.final_deletes.push((self.now_ns, delete.key.name.clone()));
            self.pods.remove(&delete.key.name);
        }
        self.next_wakeup_ns = actions.next_wakeup_ns;
        changed
    }

    /// Syncs now, then at every wake-up up to `end_ns`; leaves the clock at `end_ns`.
    fn run_until(&mut self, end_ns: u64) {
        self.sync();
        while let Some(at) = self.next_wakeup_ns.filter(|at| *at <= end_ns) {
            assert!(at > self.now_ns, "wake-ups move forward");
            self.now_ns = at;
            self.sync();
        }
        self.now_ns = end_ns;
    }

    fn pod(&self, name: &str) -> &Pod {
        &self.pods[name]
    }

    fn ready_since(&self, name: &str) -> Option<(ConditionStatus, Option<u64>)> {
        self.pod(name).status.ready_condition().map(|c| (c.status, c.last_transition_time_ns))
    }
}

#[test]
fn pending_running_ready_with_exact_probe_times() {
    // The default image pulls in 1 s and starts 500 ms later; the app serves at 3.5 s. The probe
    // first runs 5 s after the start (6.5 s) and needs two successes 10 s apart: Ready at 16.5 s.
    let mut node = Node::new(ImageBehaviors::default());
    let mut web = pod("web", "nginx");
    web.spec.containers[0].readiness_probe = Some(probe(5, 10, 2, 3));
    node.pods.insert("web".into(), web);
    node.run_until(30 * S);
    assert_eq!(
        node.statuses,
        [
            "0ms Pending ready=false ContainerCreating restarts=0",
            "1500ms Running ready=false running restarts=0",
            "16500ms Running ready=true running restarts=0",
        ]
    );
    let status = &node.pod("web").status;
    assert_eq!(status.pod_ip.as_deref(), Some("10.128.0.1"));
    assert_eq!(status.host_ip.as_deref(), Some("192.168.0.10"));
    assert_eq!(status.start_time_ns, Some(0));
    assert_eq!(node.ready_since("web"), Some((ConditionStatus::True, Some(16500 * MS))));
    let conditions: Vec<(String, ConditionStatus, Option<u64>)> =
        status.conditions.iter().map(|c| (c.condition_type.clone(), c.status, c.last_transition_time_ns)).collect();
    assert_eq!(
        conditions,
        [
            ("PodScheduled".into(), ConditionStatus::True, Some(0)),
            ("Initialized".into(), ConditionStatus::True, Some(0)),
            ("ContainersReady".into(), ConditionStatus::True, Some(16500 * MS)),
            ("Ready".into(), ConditionStatus::True, Some(16500 * MS)),
        ]
    );
}

#[test]
fn without_a_readiness_probe_a_running_container_is_ready() {
    let mut node = Node::new(ImageBehaviors::default());
    node.pods.insert("web".into(), pod("web", "nginx"));
    node.run_until(30 * S);
    assert_eq!(
        node.statuses,
        ["0ms Pending ready=false ContainerCreating restarts=0", "1500ms Running ready=true running restarts=0"]
    );
    assert_eq!(node.next_wakeup_ns, None, "nothing to do for a healthy pod without probes");
}

#[test]
fn readiness_flaps_with_failure_and_success_thresholds() {
    let mut node = Node::new(ImageBehaviors::default());
    let mut web = pod("web", "nginx");
    web.spec.containers[0].readiness_probe = Some(probe(0, 1, 1, 2));
    node.pods.insert("web".into(), web);
    // Probes at 1.5, 2.5, 3.5 s...: the app serves from 3.5 s.
    node.run_until(10 * S);
    assert_eq!(node.ready_since("web"), Some((ConditionStatus::True, Some(3500 * MS))));
    node.runtime.set_app_fault("uid-web", "app", AppFault::Unready);
    // Failures at 10.5 and 11.5 s: unready after the second.
    node.run_until(20 * S);
    assert_eq!(node.ready_since("web"), Some((ConditionStatus::False, Some(11500 * MS))));
    node.runtime.set_app_fault("uid-web", "app", AppFault::None);
    node.run_until(30 * S);
    assert_eq!(node.ready_since("web"), Some((ConditionStatus::True, Some(20500 * MS))));
    assert_eq!(
        node.statuses,
        [
            "0ms Pending ready=false ContainerCreating restarts=0",
            "1500ms Running ready=false running restarts=0",
            "3500ms Running ready=true running restarts=0",
            "11500ms Running ready=false running restarts=0",
            "20500ms Running ready=true running restarts=0",
        ]
    );
}

#[test]
fn liveness_failures_restart_the_container_with_backoff() {
    // The app hangs 10 s after each start; liveness every 5 s, 3 failures.
    let behaviors = ImageBehaviors::default()
        .with("leaky", ImageBehavior { hang_after_ns: Some(10 * S), ..ImageBehavior::default() });
    let mut node = Node::new(behaviors);
    let mut app = pod("app", "leaky");
    app.spec.containers[0].liveness_probe = Some(probe(0, 5, 1, 3));
    node.pods.insert("app".into(), app);
    node.run_until(60 * S);
    let starts: Vec<u64> = node
        .events
        .iter()
        .filter(|(_, kind)| matches!(kind, RuntimeEventKind::Started { .. }))
        .map(|(at, _)| at / MS)
        .collect();
    let kills: Vec<(u64, i32)> = node
        .events
        .iter()
        .filter_map(|(at, kind)| match kind {
            RuntimeEventKind::Exited { exit_code, .. } => Some((at / MS, *exit_code)),
            _ => None,
        })
        .collect();
    // Started 1.5 s; hung from 11.5 s; failures at 11.5, 16.5, 21.5: killed and restarted at once
    // (the first restart has no backoff), running at 22 s; hung from 32 s, killed at 42 s; the
    // second restart waits 10 s: 52 s, running at 52.5 s.
    assert_eq!(starts, [1500, 22000, 52500]);
    assert_eq!(kills, [(21500, 137), (42000, 137)]);
    assert_eq!(node.pod("app").status.container_statuses[0].restart_count, 2);
    assert!(node.statuses.contains(&"42000ms Running ready=false CrashLoopBackOff restarts=1".to_string()));
}

#[test]
fn crash_loop_backoff_waits_10_20_40_seconds() {
    let behaviors = ImageBehaviors::default()
        .with("crasher", ImageBehavior { crash_after_ns: Some(S), exit_code: 1, ..ImageBehavior::default() });
    let mut node = Node::new(behaviors);
    node.pods.insert("app".into(), pod("app", "crasher"));
    node.run_until(100 * S);
    let exits: Vec<u64> = node
        .events
        .iter()
        .filter(|(_, kind)| matches!(kind, RuntimeEventKind::Exited { .. }))
        .map(|(at, _)| *at)
        .collect();
    let starts: Vec<u64> = node
        .events
        .iter()
        .filter(|(_, kind)| matches!(kind, RuntimeEventKind::Started { .. }))
        .map(|(at, _)| *at)
        .collect();
    // Each restart is created when the backoff ends and runs 500 ms later.
    let waits_s: Vec<u64> = exits.iter().zip(&starts[1..]).map(|(exit, start)| (start - 500 * MS - exit) / S).collect();
    assert_eq!(waits_s, [0, 10, 20, 40], "the first restart is immediate, then 10 s doubling");
    assert_eq!(starts.iter().map(|at| at / MS).collect::<Vec<_>>(), [1500, 3000, 14500, 36000, 77500]);
    assert_eq!(
        node.statuses[..6],
        [
            "0ms Pending ready=false ContainerCreating restarts=0",
            "1500ms Running ready=true running restarts=0",
            "2500ms Running ready=false ContainerCreating restarts=1",
            "3000ms Running ready=true running restarts=1",
            "4000ms Running ready=false CrashLoopBackOff restarts=1",
            "14000ms Running ready=false ContainerCreating restarts=2",
        ]
    );
}

#[test]
fn job_pods_with_restart_policy_never_succeed_or_fail() {
    let behaviors = ImageBehaviors::default()
        .with("ok", ImageBehavior { crash_after_ns: Some(5 * S), exit_code: 0, ..ImageBehavior::default() })
        .with("bad", ImageBehavior { crash_after_ns: Some(5 * S), exit_code: 3, ..ImageBehavior::default() });
    let mut node = Node::new(behaviors);
    for (name, image, policy) in [
        ("ok", "ok", RestartPolicy::Never),
        ("bad", "bad", RestartPolicy::Never),
        ("retry", "bad", RestartPolicy::OnFailure),
    ] {
        let mut job = pod(name, image);
        job.spec.restart_policy = Some(policy);
        node.pods.insert(name.into(), job);
    }
    node.run_until(30 * S);
    let ok = &node.pod("ok").status;
    assert_eq!(ok.phase, Some(PodPhase::Succeeded));
    let terminated = ok.container_statuses[0].state.terminated.as_ref().expect("terminated");
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(terminated.finished_at_ns, Some(6500 * MS));
    let ready = ok.ready_condition().expect("Ready condition");
    assert_eq!((ready.status, ready.reason.as_deref()), (ConditionStatus::False, Some("PodCompleted")));
    let bad = &node.pod("bad").status;
    assert_eq!(bad.phase, Some(PodPhase::Failed));
    assert_eq!(bad.container_statuses[0].state.terminated.as_ref().map(|t| t.exit_code), Some(3));
    assert_eq!(bad.container_statuses[0].restart_count, 0);
    let retry = &node.pod("retry").status;
    assert_eq!(retry.phase, Some(PodPhase::Running), "OnFailure restarts a failed container");
    assert!(retry.container_statuses[0].restart_count >= 1);
    assert!(node.final_deletes.is_empty(), "finished pods stay until someone deletes them");
}

#[test]
fn graceful_termination_posts_status_then_requests_the_final_delete() {
    let behaviors = ImageBehaviors::default()
        .with("drain", ImageBehavior { sigterm_exit_after_ns: 5 * S, ..ImageBehavior::default() })
        .with("stubborn", ImageBehavior { sigterm_exit_after_ns: 600 * S, ..ImageBehavior::default() });
    let mut node = Node::new(behaviors);
    node.pods.insert("drain".into(), pod("drain", "drain"));
    node.pods.insert("stubborn".into(), pod("stubborn", "stubborn"));
    node.run_until(20 * S);
    for (name, grace) in [("drain", 30), ("stubborn", 30)] {
        let pod = node.pods.get_mut(name).expect("exists");
        pod.metadata.deletion_timestamp_ns = Some(20 * S + grace * S);
        pod.metadata.deletion_grace_period_seconds = Some(grace as i64);
    }
    node.run_until(21 * S);
    let drain_ip = node.pod("drain").status.pod_ip.clone().expect("ip");
    assert!(node.runtime.is_serving(&drain_ip, 25 * S - 1), "drains while terminating");
    node.run_until(100 * S);
    assert_eq!(node.final_deletes, [(25 * S, "drain".to_string()), (50 * S, "stubborn".to_string())]);
    let drain: Vec<&String> = node.statuses.iter().filter(|line| line.starts_with("25000ms")).collect();
    assert_eq!(drain, ["25000ms Succeeded ready=false terminated(0) restarts=0"]);
    assert!(node.statuses.contains(&"50000ms Failed ready=false terminated(137) restarts=0".to_string()));
    // The next sync after the deletes forgot both pods and released their addresses.
    assert!(node.runtime.pod_ips().is_empty());
    assert_eq!(node.workers.ip_pool().in_use_count(), 0);
}

#[test]
fn a_pod_no_longer_desired_is_killed_and_forgotten() {
    let mut node = Node::new(ImageBehaviors::default());
    node.pods.insert("a".into(), pod("a", "nginx"));
    node.pods.insert("b".into(), pod("b", "nginx"));
    node.run_until(10 * S);
    assert_eq!(node.runtime.running_pods(), ["uid-a", "uid-b"]);
    // Force-deleted from the API, and another one re-bound elsewhere: both go at the next sync.
    node.pods.remove("a");
    node.pods.get_mut("b").expect("b").spec.node_name = Some("node-1".into());
    node.run_until(11 * S);
    assert!(node.runtime.running_pods().is_empty());
    assert_eq!(node.workers.ip_pool().in_use_count(), 0);
    assert!(node.workers.pod_uids().is_empty());
}

#[test]
fn a_restarted_kubelet_adopts_running_pods_and_kills_unknown_ones() {
    let mut node = Node::new(ImageBehaviors::default());
    node.pods.insert("keep".into(), pod("keep", "nginx"));
    node.pods.insert("gone".into(), pod("gone", "nginx"));
    node.run_until(10 * S);
    let keep_ip = node.pod("keep").status.pod_ip.clone();
    // The kubelet restarts (volatile state lost); meanwhile "gone" was deleted from the API.
    node.workers = PodWorkers::new(NODE, "192.168.0.10", PodIpPool::for_node_index(0));
    node.pods.remove("gone");
    node.events.clear();
    node.run_until(20 * S);
    assert_eq!(node.runtime.running_pods(), ["uid-keep"]);
    assert_eq!(node.pod("keep").status.pod_ip, keep_ip, "same sandbox, same IP");
    assert!(
        !node.events.iter().any(|(_, kind)| matches!(kind, RuntimeEventKind::Started { .. })),
        "the adopted pod was not restarted"
    );
}

#[test]
fn a_missing_config_map_blocks_the_start_until_it_appears() {
    let mut node = Node::new(ImageBehaviors::default());
    node.config = Some(Cache::new());
    let mut web = pod("web", "nginx");
    web.spec.containers[0].env = vec![EnvVar {
        name: "MODE".into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(KeySelector { name: "settings".into(), key: "mode".into(), optional: None }),
            secret_key_ref: None,
        }),
        value: None,
    }];
    node.pods.insert("web".into(), web);
    node.run_until(10 * S);
    assert_eq!(node.statuses, ["0ms Pending ready=false CreateContainerConfigError restarts=0"]);
    assert!(node.runtime.running_pods().is_empty());
    // The ConfigMap appears without the key: still blocked. Then with it: the pod starts.
    let mut settings = ConfigMap {
        metadata: ObjectMeta { name: "settings".into(), namespace: Some("default".into()), ..ObjectMeta::default() },
        ..ConfigMap::default()
    };
    node.config.as_mut().expect("cache").upsert(Rc::new(Object::ConfigMap(settings.clone())));
    node.run_until(20 * S);
    assert!(node.runtime.running_pods().is_empty());
    settings.data.insert("mode".into(), "fast".into());
    node.config.as_mut().expect("cache").upsert(Rc::new(Object::ConfigMap(settings)));
    node.run_until(30 * S);
    assert_eq!(
        node.statuses,
        [
            "0ms Pending ready=false CreateContainerConfigError restarts=0",
            "20000ms Pending ready=false ContainerCreating restarts=0",
            "21500ms Running ready=true running restarts=0",
        ]
    );
}

#[test]
fn a_failing_pull_reports_err_image_pull_and_image_pull_back_off() {
    let behaviors =
        ImageBehaviors::default().with("typo", ImageBehavior { pull_fails: true, ..ImageBehavior::default() });
    let mut node = Node::new(behaviors);
    node.pods.insert("web".into(), pod("web", "typo"));
    node.run_until(60 * S);
    // Pull fails at 1 s; retries at 11 s (fails 12 s) and 32 s (fails 33 s).
    assert_eq!(
        node.statuses,
        [
            "0ms Pending ready=false ContainerCreating restarts=0",
            "1000ms Pending ready=false ErrImagePull restarts=0",
            "11000ms Pending ready=false ImagePullBackOff restarts=0",
            "12000ms Pending ready=false ErrImagePull restarts=0",
            "32000ms Pending ready=false ImagePullBackOff restarts=0",
            "33000ms Pending ready=false ErrImagePull restarts=0",
        ]
    );
}

#[test]
fn pod_ips_are_handed_out_round_robin() {
    let mut pool = PodIpPool::for_node_index(3);
    assert_eq!(pool.allocate().as_deref(), Some("10.131.0.1"));
    assert_eq!(pool.allocate().as_deref(), Some("10.131.0.2"));
    pool.release("10.131.0.1");
    assert_eq!(pool.allocate().as_deref(), Some("10.131.0.3"), "a released address is not reused at once");
    let mut small = PodIpPool::new("10.200");
    for _ in 0..300 {
        small.allocate();
    }
    assert_eq!(small.allocate().as_deref(), Some("10.200.1.45"));
}

#[test]
fn the_same_inputs_give_the_same_statuses() {
    let run = || {
        let behaviors = ImageBehaviors::default()
            .with("crasher", ImageBehavior { crash_after_ns: Some(3 * S), ..ImageBehavior::default() });
        let mut node = Node::new(behaviors);
        for index in 0..4 {
            let mut web = pod(&format!("p{index}"), if index % 2 == 0 { "crasher" } else { "nginx" });
            web.spec.containers[0].readiness_probe = Some(probe(index, 3, 1, 2));
            node.pods.insert(format!("p{index}"), web);
        }
        node.run_until(200 * S);
        node.statuses
    };
    assert_eq!(run(), run());
}

#[test]
fn backoff_resets_after_ten_minutes_of_running() {
    // Each run lasts 700 s, more than twice the 300 s cap since the last backoff update: every
    // exit restarts at once.
    let behaviors = ImageBehaviors::default()
        .with("slowcrash", ImageBehavior { crash_after_ns: Some(700 * S), ..ImageBehavior::default() });
    let mut node = Node::new(behaviors);
    node.pods.insert("app".into(), pod("app", "slowcrash"));
    node.run_until(2200 * S);
    let starts: Vec<u64> = node
        .events
        .iter()
        .filter(|(_, kind)| matches!(kind, RuntimeEventKind::Started { .. }))
        .map(|(at, _)| at / MS)
        .collect();
    assert_eq!(starts, [1_500, 702_000, 1_402_500, 2_103_000]);
    assert!(!node.statuses.iter().any(|line| line.contains("CrashLoopBackOff")));
}

#[test]
fn a_missing_secret_volume_keeps_the_pod_container_creating_unless_optional() {
    use kubedst_core::objects::pod::{SecretVolumeSource, Volume};
    let mut node = Node::new(ImageBehaviors::default());
    node.config = Some(Cache::new());
    for (name, optional) in [("strict", None), ("relaxed", Some(true))] {
        let mut web = pod(name, "nginx");
        web.spec.volumes = vec![Volume {
            name: "certs".into(),
            secret: Some(SecretVolumeSource { secret_name: "tls".into(), optional }),
            config_map: None,
        }];
        node.pods.insert(name.into(), web);
    }
    node.run_until(10 * S);
    assert_eq!(node.pod("strict").status.phase, Some(PodPhase::Pending));
    let waiting = node.pod("strict").status.container_statuses[0].state.waiting.clone().expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    assert_eq!(node.pod("relaxed").status.phase, Some(PodPhase::Running));
    assert_eq!(node.runtime.running_pods(), ["uid-relaxed"]);
}
