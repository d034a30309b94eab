//! The simulated container runtime: timelines per image behaviour and `is_serving` ground truth.

use kubedst_core::objects::pod::Container;
use kubedst_core::objects::PodSpec;
use kubedst_core::runtime::{
    AppFault, ContainerRunState, ContainerRuntime, ExitCause, ImageBehavior, ImageBehaviors, RuntimeEventKind,
    EXIT_CODE_SIGKILL,
};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn spec(images: &[(&str, &str)]) -> PodSpec {
    PodSpec {
        containers: images
            .iter()
            .map(|(name, image)| Container { name: name.to_string(), image: image.to_string(), ..Container::default() })
            .collect(),
        ..PodSpec::default()
    }
}

/// Runs the runtime from deadline to deadline until `end_ns`, returning `(time, uid, event)` lines.
fn run_until(runtime: &mut ContainerRuntime, end_ns: u64) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(at) = runtime.next_deadline_ns().filter(|at| *at <= end_ns) {
        for event in runtime.advance(at) {
            lines.push(format!("{}ms {} {:?}", event.at_ns / MS, event.uid, event.kind));
        }
    }
    for event in runtime.advance(end_ns) {
        lines.push(format!("{}ms {} {:?}", event.at_ns / MS, event.uid, event.kind));
    }
    lines
}

#[test]
fn default_image_pulls_starts_and_becomes_ready() {
    let mut runtime = ContainerRuntime::new(ImageBehaviors::default());
    runtime.run_pod("u1", "10.128.0.1", &spec(&[("app", "nginx")]), 0);
    assert_eq!(runtime.next_deadline_ns(), Some(S));
    assert_eq!(
        run_until(&mut runtime, 10 * S),
        [
            "1000ms u1 Pulled { container: \"app\" }",
            "1500ms u1 Started { container: \"app\" }",
            "3500ms u1 AppReady { container: \"app\" }",
        ]
    );
    assert_eq!(runtime.next_deadline_ns(), None, "a healthy app has nothing pending");
    assert_eq!(runtime.container_state("u1", "app"), Some(ContainerRunState::Running { started_at_ns: 1500 * MS }));
    assert!(runtime.has_image("nginx"));

    // A second pod of the same image skips the pull.
    runtime.run_pod("u2", "10.128.0.2", &spec(&[("app", "nginx")]), 20 * S);
    assert_eq!(
        run_until(&mut runtime, 30 * S),
        ["20500ms u2 Started { container: \"app\" }", "22500ms u2 AppReady { container: \"app\" }"]
    );
}

#[test]
fn is_serving_is_ground_truth_across_the_lifecycle() {
    let behaviors = ImageBehaviors::default()
        .with("web:v1", ImageBehavior { sigterm_exit_after_ns: 5 * S, ..ImageBehavior::default() });
    let mut runtime = ContainerRuntime::new(behaviors);
    runtime.run_pod("u1", "10.128.0.1", &spec(&[("web", "web:v1"), ("sidecar", "nginx")]), 0);
    // Both images pull in 1 s and start 500 ms later: the pod serves at 3.5 s, without `advance`.
    assert!(!runtime.is_serving("10.128.0.1", 3500 * MS - 1));
    assert!(runtime.is_serving("10.128.0.1", 3500 * MS));
    assert!(!runtime.is_serving("10.128.0.9", 3500 * MS), "no pod at that address");
    run_until(&mut runtime, 10 * S);

    // Graceful stop at 10 s: the app drains for 5 s, serving, then exits with 0; the sidecar that
    // does not trap SIGTERM exits at once, and the pod stops serving with it.
    runtime.stop_pod("u1", 30 * S, 10 * S);
    assert!(runtime.is_serving("10.128.0.1", 10 * S - 1));
    assert!(!runtime.is_serving("10.128.0.1", 10 * S));
    assert_eq!(
        run_until(&mut runtime, 40 * S),
        [
            "10000ms u1 Exited { container: \"sidecar\", exit_code: 0, cause: Sigterm }",
            "15000ms u1 Exited { container: \"web\", exit_code: 0, cause: Sigterm }",
            "15000ms u1 PodStopped",
        ]
    );
    runtime.remove_pod("u1");
    assert!(runtime.pod_ips().is_empty());
}

#[test]
fn draining_app_serves_until_it_exits_and_sigkill_ends_the_grace_period() {
    let behaviors = ImageBehaviors::default()
        .with("slow", ImageBehavior { sigterm_exit_after_ns: 60 * S, ..ImageBehavior::default() })
        .with("drain", ImageBehavior { sigterm_exit_after_ns: 5 * S, ..ImageBehavior::default() });
    let mut runtime = ContainerRuntime::new(behaviors);
    runtime.run_pod("slow", "10.128.0.1", &spec(&[("app", "slow")]), 0);
    runtime.run_pod("drain", "10.128.0.2", &spec(&[("app", "drain")]), 0);
    run_until(&mut runtime, 10 * S);
    runtime.stop_pod("slow", 30 * S, 10 * S);
    runtime.stop_pod("drain", 30 * S, 10 * S);
    assert!(runtime.is_serving("10.128.0.2", 15 * S - 1), "draining still serves");
    assert!(!runtime.is_serving("10.128.0.2", 15 * S));
    assert!(runtime.is_serving("10.128.0.1", 40 * S - 1));
    assert_eq!(
        run_until(&mut runtime, 60 * S),
        [
            "15000ms drain Exited { container: \"app\", exit_code: 0, cause: Sigterm }",
            "15000ms drain PodStopped",
            "40000ms slow Exited { container: \"app\", exit_code: 137, cause: Killed }",
            "40000ms slow PodStopped",
        ]
    );
    assert!(matches!(
        runtime.container_state("slow", "app"),
        Some(ContainerRunState::Exited { exit_code: EXIT_CODE_SIGKILL, finished_at_ns, .. }) if finished_at_ns == 40 * S
    ));
}

#[test]
fn crash_after_exits_with_its_code_and_restart_runs_again() {
    let behaviors = ImageBehaviors::default()
        .with("job", ImageBehavior { crash_after_ns: Some(5 * S), exit_code: 0, ..ImageBehavior::default() })
        .with("crasher", ImageBehavior { crash_after_ns: Some(S), exit_code: 2, ..ImageBehavior::default() });
    let mut runtime = ContainerRuntime::new(behaviors);
    runtime.run_pod("job", "10.128.0.1", &spec(&[("work", "job")]), 0);
    runtime.run_pod("crash", "10.128.0.2", &spec(&[("app", "crasher")]), 0);
    assert_eq!(
        run_until(&mut runtime, 10 * S),
        [
            "1000ms crash Pulled { container: \"app\" }",
            "1000ms job Pulled { container: \"work\" }",
            "1500ms crash Started { container: \"app\" }",
            "1500ms job Started { container: \"work\" }",
            "2500ms crash Exited { container: \"app\", exit_code: 2, cause: OnItsOwn }",
            "3500ms job AppReady { container: \"work\" }",
            "6500ms job Exited { container: \"work\", exit_code: 0, cause: OnItsOwn }",
        ]
    );
    assert!(runtime.restart_container("crash", "app", 20 * S));
    assert_eq!(
        run_until(&mut runtime, 30 * S),
        [
            "20500ms crash Started { container: \"app\" }",
            "21500ms crash Exited { container: \"app\", exit_code: 2, cause: OnItsOwn }",
        ]
    );
}

#[test]
fn a_failing_pull_fails_every_time_and_never_runs() {
    let behaviors = ImageBehaviors::default()
        .with("typo:v1", ImageBehavior { pull_fails: true, pull_time_ns: 2 * S, ..ImageBehavior::default() });
    let mut runtime = ContainerRuntime::new(behaviors);
    runtime.run_pod("u1", "10.128.0.1", &spec(&[("app", "typo:v1")]), 0);
    assert_eq!(run_until(&mut runtime, 10 * S), ["2000ms u1 PullFailed { container: \"app\" }"]);
    assert_eq!(runtime.container_state("u1", "app"), Some(ContainerRunState::PullFailed { at_ns: 2 * S }));
    assert_eq!(runtime.next_deadline_ns(), None);
    assert!(runtime.restart_container("u1", "app", 10 * S), "a retry pulls again");
    assert_eq!(run_until(&mut runtime, 20 * S), ["12000ms u1 PullFailed { container: \"app\" }"]);
    assert!(!runtime.is_serving("10.128.0.1", 20 * S));
    assert!(!runtime.has_image("typo:v1"));
}

#[test]
fn never_ready_runs_but_never_serves() {
    let behaviors =
        ImageBehaviors::default().with("web:v2", ImageBehavior { never_ready: true, ..ImageBehavior::default() });
    let mut runtime = ContainerRuntime::new(behaviors);
    runtime.run_pod("u1", "10.128.0.1", &spec(&[("web", "web:v2")]), 0);
    assert_eq!(
        run_until(&mut runtime, 600 * S),
        ["1000ms u1 Pulled { container: \"web\" }", "1500ms u1 Started { container: \"web\" }"]
    );
    assert!(!runtime.is_serving("10.128.0.1", 600 * S));
    assert!(!runtime.probe_readiness("u1", "web", 600 * S));
    assert!(runtime.probe_liveness("u1", "web", 600 * S), "the process is alive");
}

#[test]
fn hangs_and_faults_fail_probes() {
    let behaviors = ImageBehaviors::default()
        .with("leaky", ImageBehavior { hang_after_ns: Some(10 * S), ..ImageBehavior::default() });
    let mut runtime = ContainerRuntime::new(behaviors);
    runtime.run_pod("u1", "10.128.0.1", &spec(&[("app", "leaky")]), 0);
    runtime.run_pod("u2", "10.128.0.2", &spec(&[("app", "nginx")]), 0);
    run_until(&mut runtime, 5 * S);
    assert!(runtime.probe_liveness("u1", "app", 11500 * MS - 1));
    assert!(!runtime.probe_liveness("u1", "app", 11500 * MS), "hung 10 s after its 1.5 s start");
    assert!(!runtime.is_serving("10.128.0.1", 11500 * MS));

    assert!(runtime.set_app_fault("u2", "app", AppFault::Unready));
    assert!(!runtime.probe_readiness("u2", "app", 6 * S));
    assert!(runtime.probe_liveness("u2", "app", 6 * S));
    assert!(runtime.set_app_fault("u2", "app", AppFault::Hung));
    assert!(!runtime.probe_liveness("u2", "app", 6 * S));
    assert!(runtime.set_app_fault("u2", "app", AppFault::None));
    assert!(runtime.is_serving("10.128.0.2", 6 * S));
    assert!(!runtime.set_app_fault("u2", "nope", AppFault::Hung));
}

#[test]
fn kill_pod_and_kill_container_end_processes_at_once() {
    let mut runtime = ContainerRuntime::new(ImageBehaviors::default());
    runtime.run_pod("u1", "10.128.0.1", &spec(&[("a", "nginx"), ("b", "redis")]), 0);
    run_until(&mut runtime, 5 * S);
    runtime.kill_container("u1", "a", 6 * S);
    assert!(!runtime.is_serving("10.128.0.1", 6 * S));
    runtime.kill_pod("u1", 7 * S);
    assert_eq!(
        run_until(&mut runtime, 8 * S),
        [
            "6000ms u1 Exited { container: \"a\", exit_code: 137, cause: Killed }",
            "7000ms u1 Exited { container: \"b\", exit_code: 137, cause: Killed }",
            "7000ms u1 PodStopped",
        ]
    );
    assert!(matches!(
        runtime.container_state("u1", "b"),
        Some(ContainerRunState::Exited { cause: ExitCause::Killed, started_at_ns: Some(_), .. })
    ));
    // A stopped pod cannot restart containers: the kubelet must run a new pod.
    assert!(!runtime.restart_container("u1", "a", 9 * S));
    // Stopping while pulling drops the container without a process.
    runtime.run_pod("u2", "10.128.0.2", &spec(&[("c", "postgres")]), 10 * S);
    runtime.stop_pod("u2", 30 * S, 10 * S + 1);
    let events = runtime.advance(10 * S + 1);
    assert!(events.iter().any(|e| matches!(&e.kind, RuntimeEventKind::Exited { cause: ExitCause::NeverStarted, .. })));
    assert!(events.iter().any(|e| e.kind == RuntimeEventKind::PodStopped));
}

#[test]
fn image_behaviors_load_from_a_scenario_file() {
    let behaviors: ImageBehaviors = serde_json::from_str(
        r#"{
            "images": {
                "web:v2": { "never_ready": true, "pull_time": "2s", "start_latency": 250 },
                "batch": { "crash_after": "30s", "exit_code": 0, "sigterm_exit_after": "1500ms" }
            },
            "default": { "pull_time": 0 }
        }"#,
    )
    .expect("valid");
    let web = behaviors.get("web:v2");
    assert!(web.never_ready);
    assert_eq!((web.pull_time_ns, web.start_latency_ns, web.time_to_ready_ns), (2 * S, 250 * MS, 2 * S));
    let batch = behaviors.get("batch");
    assert_eq!((batch.crash_after_ns, batch.exit_code, batch.sigterm_exit_after_ns), (Some(30 * S), 0, 1500 * MS));
    assert_eq!(behaviors.get("unknown").pull_time_ns, 0);
    assert_eq!(ImageBehavior::default().pull_time_ns, S);
    let error = serde_json::from_str::<ImageBehaviors>(r#"{"images": {"x": {"pull_time": "soon"}}}"#).unwrap_err();
    assert!(error.to_string().contains("did not match") || error.to_string().contains("duration"), "{error}");
    assert!(serde_json::from_str::<ImageBehaviors>(r#"{"images": {"x": {"pul_time": 1}}}"#).is_err());
}

#[test]
fn same_calls_same_timeline() {
    let run = || {
        let behaviors = ImageBehaviors::default()
            .with("crasher", ImageBehavior { crash_after_ns: Some(700 * MS), ..ImageBehavior::default() });
        let mut runtime = ContainerRuntime::new(behaviors);
        for index in 0..5u64 {
            let image = if index % 2 == 0 { "crasher" } else { "nginx" };
            runtime.run_pod(
                &format!("u{index}"),
                &format!("10.128.0.{index}"),
                &spec(&[("c", image)]),
                index * 300 * MS,
            );
        }
        run_until(&mut runtime, 20 * S)
    };
    assert_eq!(run(), run());
}
