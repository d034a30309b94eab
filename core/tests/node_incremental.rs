//! The kubelet's incremental syncs and skipped probes change nothing observable: the same
//! statuses at the same times whether the pod objects are shared `Rc`s or fresh copies, and
//! whether the kubelet is also synced at times it did not ask for.

use kubedst_core::kubelet_logic::{PodIpPool, PodWorkers};
use kubedst_core::objects::pod::{Container, ExecAction, Probe};
use kubedst_core::objects::{Object, ObjectMeta, Pod, PodSpec};
use kubedst_core::runtime::{AppFault, ContainerRuntime, ImageBehavior, ImageBehaviors};
use std::collections::BTreeMap;
use std::rc::Rc;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const NODE: &str = "node-0";

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

fn pod(index: usize, image: &str) -> Pod {
    let mut container = Container { name: "app".to_string(), image: image.to_string(), ..Container::default() };
    let i = index as i32;
    if index % 3 != 2 {
        container.readiness_probe = Some(probe(i % 4, 1 + i % 5, 1 + i % 2, 1 + i % 3));
    }
    if index % 2 == 1 {
        container.liveness_probe = Some(probe(i % 3, 2 + i % 4, 1, 2 + i % 2));
    }
    Pod {
        metadata: ObjectMeta {
            name: format!("p{index}"),
            namespace: Some("default".to_string()),
            uid: Some(format!("uid-p{index}")),
            ..ObjectMeta::default()
        },
        spec: PodSpec { containers: vec![container], node_name: Some(NODE.to_string()), ..PodSpec::default() },
        ..Pod::default()
    }
}

fn behaviors() -> ImageBehaviors {
    ImageBehaviors::default()
        .with("hangs", ImageBehavior { hang_after_ns: Some(17 * S), ..ImageBehavior::default() })
        .with("crashes", ImageBehavior { crash_after_ns: Some(23 * S), ..ImageBehavior::default() })
        .with("never", ImageBehavior { never_ready: true, ..ImageBehavior::default() })
        .with("slow", ImageBehavior { time_to_ready_ns: 12_345 * MS, ..ImageBehavior::default() })
}

/// Runs the scenario; `fresh` rebuilds every pod object at each sync, `extra_every_ns` adds syncs.
fn run(fresh: bool, extra_every_ns: Option<u64>) -> Vec<String> {
    let images = ["nginx", "hangs", "crashes", "never", "slow"];
    let mut workers = PodWorkers::new(NODE, "192.168.0.10", PodIpPool::for_node_index(0));
    let mut runtime = ContainerRuntime::new(behaviors());
    let mut pods: BTreeMap<String, Rc<Object>> = BTreeMap::new();
    for index in 0..15 {
        let pod = pod(index, images[index % images.len()]);
        pods.insert(pod.metadata.name.clone(), Rc::new(Object::Pod(pod)));
    }
    let mut log = Vec::new();
    let mut now_ns = 0;
    let mut next_wakeup_ns: Option<u64> = None;
    let faults =
        [(40 * S, "uid-p0", AppFault::Unready), (55 * S, "uid-p0", AppFault::None), (70 * S, "uid-p5", AppFault::Hung)];
    let end_ns = 200 * S;
    let mut last_extra_ns = 0;
    let mut first = true;
    loop {
        if !first {
            let fault_due = faults.iter().map(|(at, _, _)| *at).filter(|at| *at > now_ns).min();
            let extra = extra_every_ns.map(|every| last_extra_ns + every);
            let next = [next_wakeup_ns, fault_due, extra].into_iter().flatten().filter(|at| *at > now_ns).min();
            let Some(at) = next.filter(|at| *at <= end_ns) else { break };
            now_ns = at;
            if extra == Some(at) {
                last_extra_ns = at;
            }
        }
        first = false;
        let at = now_ns;
        for (_, uid, fault) in faults.iter().filter(|(fault_at, _, _)| *fault_at == at) {
            runtime.set_app_fault(uid, "app", *fault);
        }
        // Sync, and again while the kubelet wrote (its own writes come back through the informer).
        for _ in 0..3 {
            let desired: Vec<Rc<Object>> = if fresh {
                pods.values().map(|object| Rc::new(Object::clone(object))).collect()
            } else {
                pods.values().cloned().collect()
            };
            let actions = workers.sync(now_ns, &desired, &mut runtime, None);
            next_wakeup_ns = actions.next_wakeup_ns;
            if actions.status_updates.is_empty() && actions.final_deletes.is_empty() {
                break;
            }
            for update in actions.status_updates {
                let container = &update.pod.status.container_statuses[0];
                log.push(format!(
                    "{}ms {} {:?} ready={} restarts={} {:?}",
                    now_ns / MS,
                    update.key.name,
                    update.pod.status.phase,
                    update.pod.is_ready(),
                    container.restart_count,
                    container.state
                ));
                pods.insert(update.key.name.clone(), Rc::new(Object::Pod(update.pod)));
            }
        }
    }
    log
}

#[test]
fn shared_pod_objects_give_the_same_statuses_as_fresh_copies() {
    let reference = run(true, None);
    assert!(reference.len() > 30, "the scenario does something: {reference:?}");
    let log = run(false, None);
    let first_difference = log.iter().zip(&reference).position(|(a, b)| a != b);
    assert_eq!((first_difference, log.len()), (None, reference.len()));
}

#[test]
fn syncs_the_kubelet_did_not_ask_for_change_nothing() {
    let reference = run(false, None);
    for (fresh, every_ns) in [(false, 700 * MS), (true, 1_300 * MS), (false, 250 * MS)] {
        let log = run(fresh, Some(every_ns));
        let first_difference = log.iter().zip(&reference).position(|(a, b)| a != b);
        assert_eq!((first_difference, log.len()), (None, reference.len()), "extra syncs every {every_ns} ns");
    }
}
