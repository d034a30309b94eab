//! The simulated container runtime of one node: the ground truth of what really runs.
//!
//! A kubelet (see [`crate::kubelet_logic`]) tells the runtime to run, restart, stop and kill
//! containers; the runtime decides, from each image's [`ImageBehavior`], when a container has pulled
//! its image, started, begun serving, crashed or exited. Invariant checkers and the pod network ask
//! the runtime (never the API) whether a pod really serves: [`ContainerRuntime::is_serving`].
//!
//! Sans-IO: every operation takes `now_ns` (virtual integer nanoseconds); nothing reads a clock or
//! draws randomness, so the same calls give the same timeline. State changes happen in
//! [`ContainerRuntime::advance`], which applies every transition due by `now_ns` in time order and
//! reports them as [`RuntimeEvent`]s; [`ContainerRuntime::next_deadline_ns`] tells the owning
//! component when to call it next.

use crate::objects::PodSpec;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

const MS: u64 = 1_000_000;

/// Exit code of a process killed with SIGKILL (128 + 9), as container runtimes report it.
pub const EXIT_CODE_SIGKILL: i32 = 137;

/// How a simulated image behaves once the kubelet runs it. Durations in a scenario file are an
/// integer number of milliseconds or a duration string such as `"500ms"` or `"2s"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageBehavior {
    /// How long pulling the image takes (once per node: a pulled image stays cached).
    #[serde(rename = "pull_time", deserialize_with = "ms_or_duration")]
    pub pull_time_ns: u64,
    /// From "create and start" to the process running.
    #[serde(rename = "start_latency", deserialize_with = "ms_or_duration")]
    pub start_latency_ns: u64,
    /// After the process starts, how long until the app serves (and so passes readiness probes).
    #[serde(rename = "time_to_ready", deserialize_with = "ms_or_duration")]
    pub time_to_ready_ns: u64,
    /// The process exits on its own after running this long (a crash, or a Job's work finishing).
    #[serde(rename = "crash_after", deserialize_with = "option_ms_or_duration")]
    pub crash_after_ns: Option<u64>,
    /// The exit code when `crash_after` fires (default 1, a crash): 0 means the work completed, as
    /// a Job's pod does.
    pub exit_code: i32,
    /// The process deadlocks after running this long: it keeps running but stops serving and
    /// fails readiness and liveness probes, so only a liveness probe gets it restarted.
    #[serde(rename = "hang_after", deserialize_with = "option_ms_or_duration")]
    pub hang_after_ns: Option<u64>,
    /// Every pull fails (a typo in the tag, a private registry): ErrImagePull, ImagePullBackOff.
    pub pull_fails: bool,
    /// Runs but never serves nor passes readiness, like a broken `web:v2` in a rollout.
    pub never_ready: bool,
    /// How long the app takes to exit after SIGTERM (draining connections); it serves meanwhile.
    /// The default 0 exits at once, as an app that does not trap SIGTERM. A graceful exit reports
    /// code 0; reaching the end of the grace period first means SIGKILL and code 137.
    #[serde(rename = "sigterm_exit_after", deserialize_with = "ms_or_duration")]
    pub sigterm_exit_after_ns: u64,
    /// CPU each served request costs, in millicore-seconds (CPU milliseconds): a pod serving one
    /// request per second uses this many millicores on top of its idle use. It feeds the
    /// resource metrics (kubelet summary, metrics-server, HPA); the runtime's behaviour does not
    /// depend on it.
    pub cpu_millicores_per_request: u64,
    /// CPU the running process uses while it serves nothing, in millicores.
    pub cpu_millicores_idle: u64,
}

impl Default for ImageBehavior {
    /// An unknown image: pulls in 1 s, starts in 500 ms, serves 2 s later, never crashes.
    fn default() -> Self {
        ImageBehavior {
            pull_time_ns: 1_000 * MS,
            start_latency_ns: 500 * MS,
            time_to_ready_ns: 2_000 * MS,
            crash_after_ns: None,
            exit_code: 1,
            hang_after_ns: None,
            pull_fails: false,
            never_ready: false,
            sigterm_exit_after_ns: 0,
            cpu_millicores_per_request: 0,
            cpu_millicores_idle: 0,
        }
    }
}

/// An integer is milliseconds; a string is a `kubedst_sim::serde_duration` such as `"500ms"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MsOrDuration {
    Millis(u64),
    Text(String),
}

impl MsOrDuration {
    fn into_nanos<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            MsOrDuration::Millis(ms) => {
                ms.checked_mul(MS).ok_or_else(|| E::custom(format!("duration of {ms} ms is too large")))
            }
            MsOrDuration::Text(text) => kubedst_sim::serde_duration::parse(&text)
                .map_err(E::custom)
                .and_then(|span| u64::try_from(span.as_nanos()).map_err(|_| E::custom("duration too large"))),
        }
    }
}

fn ms_or_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    MsOrDuration::deserialize(deserializer)?.into_nanos()
}

fn option_ms_or_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<MsOrDuration>::deserialize(deserializer)?.map(MsOrDuration::into_nanos).transpose()
}

/// Behaviours by image name, with a fallback for images nobody described.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageBehaviors {
    /// Exact image names (`web:v2`).
    pub images: BTreeMap<String, ImageBehavior>,
    /// Every other image.
    pub default: ImageBehavior,
}

impl ImageBehaviors {
    /// The behaviour of `image`: its own entry, or the default.
    pub fn get(&self, image: &str) -> &ImageBehavior {
        self.images.get(image).unwrap_or(&self.default)
    }

    /// Adds or replaces one image's behaviour (builder style, for tests and scenario code).
    pub fn with(mut self, image: &str, behavior: ImageBehavior) -> Self {
        self.images.insert(image.to_string(), behavior);
        self
    }
}

/// A fault injected into a running app from outside (a scenario's verb), on top of its image's
/// behaviour. It lasts until cleared or until the container restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppFault {
    /// Healthy.
    #[default]
    None,
    /// Overloaded: stops serving and fails readiness, but passes liveness.
    Unready,
    /// Deadlocked: stops serving and fails both probes.
    Hung,
}

/// Why an exited container exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitCause {
    /// It exited by itself (`crash_after`); exit code 0 is `Completed`, anything else `Error`.
    OnItsOwn,
    /// It exited after SIGTERM, within the grace period.
    Sigterm,
    /// It was killed: the grace period ended, or the kubelet killed it at once.
    Killed,
    /// It never ran: stopped while pulling or starting.
    NeverStarted,
}

/// The state of one container in the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerRunState {
    /// Pulling its image until `done_at_ns`.
    Pulling { done_at_ns: u64 },
    /// The last pull failed at `at_ns`; the kubelet retries with [`ContainerRuntime::restart_container`].
    PullFailed { at_ns: u64 },
    /// Created; the process runs from `running_at_ns`.
    Starting { running_at_ns: u64 },
    /// The process runs since `started_at_ns`.
    Running { started_at_ns: u64 },
    /// SIGTERM was sent at `sigterm_at_ns`; the process (running since `started_at_ns`) exits at
    /// `exit_at_ns`, which is no later than the SIGKILL at `kill_at_ns`. It serves until it exits.
    Terminating { started_at_ns: u64, sigterm_at_ns: u64, exit_at_ns: u64, kill_at_ns: u64 },
    /// The process ended.
    Exited { exit_code: i32, started_at_ns: Option<u64>, finished_at_ns: u64, cause: ExitCause },
}

impl ContainerRunState {
    /// When the process started, while it runs (including during graceful termination).
    pub fn started_at_ns(&self) -> Option<u64> {
        match *self {
            ContainerRunState::Running { started_at_ns } | ContainerRunState::Terminating { started_at_ns, .. } => {
                Some(started_at_ns)
            }
            _ => None,
        }
    }

    /// Whether the process exists (running or draining after SIGTERM).
    pub fn is_running(&self) -> bool {
        self.started_at_ns().is_some()
    }
}

/// What a readiness or liveness probe of one container depends on, for a kubelet that skips probes
/// whose result cannot differ from the last one ([`ContainerRuntime::probe_inputs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeInputs {
    /// The container's state (as settled at the query time).
    pub state: ContainerRunState,
    /// The injected fault.
    pub fault: AppFault,
    /// While `state` and `fault` stay as they are, probe results are the same at every time before
    /// this one (the next own transition, the app's `time_to_ready` or its `hang_after`); `None`:
    /// forever.
    pub stable_until_ns: Option<u64>,
}

impl ProbeInputs {
    /// Whether a probe would see the same container (ignoring the time).
    pub fn same_container(&self, other: &ProbeInputs) -> bool {
        self.state == other.state && self.fault == other.fault
    }
}

/// Something that happened in the runtime, reported by [`ContainerRuntime::advance`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// When it happened (not when `advance` noticed it).
    pub at_ns: u64,
    /// The pod's uid.
    pub uid: String,
    /// What happened.
    pub kind: RuntimeEventKind,
}

/// What happened to a container or pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeEventKind {
    /// The image of `container` is now on the node.
    Pulled { container: String },
    /// The image pull of `container` failed.
    PullFailed { container: String },
    /// The process of `container` started.
    Started { container: String },
    /// The app in `container` began serving (it would pass a readiness probe now).
    AppReady { container: String },
    /// The process of `container` ended.
    Exited { container: String, exit_code: i32, cause: ExitCause },
    /// Every container of a pod being stopped has exited.
    PodStopped,
}

/// One container as the runtime runs it.
#[derive(Clone, Debug)]
struct RuntimeContainer {
    name: String,
    image: String,
    behavior: ImageBehavior,
    state: ContainerRunState,
    fault: AppFault,
    /// Whether `AppReady` was reported for the current run.
    ready_reported: bool,
    /// The pull in progress started during an injected registry outage and will fail.
    pull_doomed: bool,
}

impl RuntimeContainer {
    fn ready_at_ns(&self) -> Option<u64> {
        let started = self.state.started_at_ns()?;
        (!self.behavior.never_ready).then(|| started.saturating_add(self.behavior.time_to_ready_ns))
    }

    fn is_hung(&self, now_ns: u64) -> bool {
        if self.fault == AppFault::Hung {
            return true;
        }
        match (self.state.started_at_ns(), self.behavior.hang_after_ns) {
            (Some(started), Some(after)) => now_ns >= started.saturating_add(after),
            _ => false,
        }
    }

    /// The app answers requests and readiness probes.
    fn is_serving(&self, now_ns: u64) -> bool {
        self.ready_at_ns().is_some_and(|ready_at| now_ns >= ready_at)
            && self.fault == AppFault::None
            && !self.is_hung(now_ns)
    }

    /// The earliest pending transition (including the `AppReady` report).
    fn next_transition_ns(&self) -> Option<u64> {
        let ready = self.ready_at_ns().filter(|_| !self.ready_reported);
        [ready, self.own_transition_ns()].into_iter().flatten().min()
    }

    /// The next change of state by itself (not counting the `AppReady` report).
    fn own_transition_ns(&self) -> Option<u64> {
        match self.state {
            ContainerRunState::Pulling { done_at_ns } => Some(done_at_ns),
            ContainerRunState::Starting { running_at_ns } => Some(running_at_ns),
            ContainerRunState::Running { started_at_ns } => {
                self.behavior.crash_after_ns.map(|after| started_at_ns.saturating_add(after))
            }
            ContainerRunState::Terminating { exit_at_ns, .. } => Some(exit_at_ns),
            ContainerRunState::PullFailed { .. } | ContainerRunState::Exited { .. } => None,
        }
    }

    /// Probe results depend on the state, the fault and the time; with the first two fixed, the
    /// time matters only at these instants: the next state transition, becoming ready, hanging.
    fn probe_stable_until_ns(&self, now_ns: u64) -> Option<u64> {
        let ready = self.ready_at_ns().filter(|at| *at > now_ns);
        let hang = match (self.state.started_at_ns(), self.behavior.hang_after_ns) {
            (Some(started), Some(after)) => Some(started.saturating_add(after)).filter(|at| *at > now_ns),
            _ => None,
        };
        [ready, hang, self.own_transition_ns()].into_iter().flatten().min()
    }

    /// Applies the transition due at `at_ns`.
    fn step(&mut self, at_ns: u64, images: &mut BTreeSet<String>) -> RuntimeEventKind {
        let name = self.name.clone();
        if self.ready_at_ns() == Some(at_ns) && !self.ready_reported {
            // An app that exits at the moment it would be ready reports the exit instead.
            let exits_now = match self.state {
                ContainerRunState::Running { started_at_ns } => {
                    self.behavior.crash_after_ns.is_some_and(|after| started_at_ns.saturating_add(after) <= at_ns)
                }
                ContainerRunState::Terminating { exit_at_ns, .. } => exit_at_ns <= at_ns,
                _ => false,
            };
            if !exits_now {
                self.ready_reported = true;
                return RuntimeEventKind::AppReady { container: name };
            }
        }
        match self.state {
            ContainerRunState::Pulling { .. } if self.behavior.pull_fails || self.pull_doomed => {
                self.state = ContainerRunState::PullFailed { at_ns };
                RuntimeEventKind::PullFailed { container: name }
            }
            ContainerRunState::Pulling { .. } => {
                images.insert(self.image.clone());
                self.state =
                    ContainerRunState::Starting { running_at_ns: at_ns.saturating_add(self.behavior.start_latency_ns) };
                RuntimeEventKind::Pulled { container: name }
            }
            ContainerRunState::Starting { .. } => {
                self.state = ContainerRunState::Running { started_at_ns: at_ns };
                self.ready_reported = false;
                RuntimeEventKind::Started { container: name }
            }
            ContainerRunState::Running { started_at_ns } => {
                let exit_code = self.behavior.exit_code;
                self.state = ContainerRunState::Exited {
                    exit_code,
                    started_at_ns: Some(started_at_ns),
                    finished_at_ns: at_ns,
                    cause: ExitCause::OnItsOwn,
                };
                RuntimeEventKind::Exited { container: name, exit_code, cause: ExitCause::OnItsOwn }
            }
            ContainerRunState::Terminating { started_at_ns, exit_at_ns, kill_at_ns, .. } => {
                let (exit_code, cause) = if exit_at_ns < kill_at_ns {
                    (0, ExitCause::Sigterm)
                } else {
                    (EXIT_CODE_SIGKILL, ExitCause::Killed)
                };
                self.state = ContainerRunState::Exited {
                    exit_code,
                    started_at_ns: Some(started_at_ns),
                    finished_at_ns: at_ns,
                    cause,
                };
                RuntimeEventKind::Exited { container: name, exit_code, cause }
            }
            ContainerRunState::PullFailed { .. } | ContainerRunState::Exited { .. } => {
                unreachable!("a container with no pending transition was stepped")
            }
        }
    }

    /// Starts a new run of the container: pull if the image is not on the node, else create. A
    /// pull that starts while `failing_pulls` says its image's registry is out will fail.
    fn begin(&mut self, now_ns: u64, images: &BTreeSet<String>, failing_pulls: &BTreeMap<String, u64>) {
        self.fault = AppFault::None;
        self.ready_reported = false;
        self.pull_doomed = failing_pulls.get(&self.image).is_some_and(|until_ns| now_ns < *until_ns);
        self.state = if images.contains(&self.image) {
            ContainerRunState::Starting { running_at_ns: now_ns.saturating_add(self.behavior.start_latency_ns) }
        } else {
            ContainerRunState::Pulling { done_at_ns: now_ns.saturating_add(self.behavior.pull_time_ns) }
        };
    }

    /// Ends the container now with SIGKILL (or records that it never started).
    fn kill(&mut self, now_ns: u64) -> Option<RuntimeEventKind> {
        let (exit_code, cause) = match self.state {
            ContainerRunState::Exited { .. } => return None,
            ContainerRunState::Running { .. } | ContainerRunState::Terminating { .. } => {
                (EXIT_CODE_SIGKILL, ExitCause::Killed)
            }
            _ => (EXIT_CODE_SIGKILL, ExitCause::NeverStarted),
        };
        self.state = ContainerRunState::Exited {
            exit_code,
            started_at_ns: self.state.started_at_ns(),
            finished_at_ns: now_ns,
            cause,
        };
        Some(RuntimeEventKind::Exited { container: self.name.clone(), exit_code, cause })
    }
}

/// One pod sandbox: its IP and containers, in spec order.
#[derive(Clone, Debug)]
struct RuntimePod {
    pod_ip: String,
    containers: Vec<RuntimeContainer>,
    /// Set by `stop_pod`; `PodStopped` is reported once every container has exited.
    stopping: bool,
    stopped_reported: bool,
    /// Changes whenever anything about the pod changes (see [`ContainerRuntime::pod_version`]).
    version: u64,
    /// Requests the pod served.
    served_requests: u64,
    /// CPU those requests cost, in millicore-nanoseconds (cumulative, as cgroup CPU accounting).
    request_cpu_millicore_ns: u64,
}

/// The container runtime of one node (containerd, CRI-O): pods by uid, the image cache, and the
/// behaviour of every image.
#[derive(Clone, Debug, Default)]
pub struct ContainerRuntime {
    behaviors: ImageBehaviors,
    pods: BTreeMap<String, RuntimePod>,
    /// Images pulled on this node; later runs skip the pull (imagePullPolicy IfNotPresent).
    images: BTreeSet<String>,
    /// Events produced by operations (kills) rather than by time, returned by the next `advance`.
    pending_events: Vec<RuntimeEvent>,
    /// The last version handed to a pod: versions never repeat, even for a re-created uid.
    last_version: u64,
    /// Injected registry outages: pulls of these images that start before the time fail.
    failing_pulls: BTreeMap<String, u64>,
}

impl ContainerRuntime {
    /// A runtime with no pods and no cached images.
    pub fn new(behaviors: ImageBehaviors) -> Self {
        ContainerRuntime { behaviors, ..ContainerRuntime::default() }
    }

    /// Creates the pod sandbox with `pod_ip` and starts every container of `spec` (pulling images
    /// not yet on the node). Running a uid that already runs is a no-op: the kubelet may re-sync.
    pub fn run_pod(&mut self, uid: &str, pod_ip: &str, spec: &PodSpec, now_ns: u64) {
        if self.pods.contains_key(uid) {
            return;
        }
        let containers = spec
            .containers
            .iter()
            .map(|container| {
                let mut record = RuntimeContainer {
                    name: container.name.clone(),
                    image: container.image.clone(),
                    behavior: self.behaviors.get(&container.image).clone(),
                    state: ContainerRunState::Exited {
                        exit_code: 0,
                        started_at_ns: None,
                        finished_at_ns: now_ns,
                        cause: ExitCause::NeverStarted,
                    },
                    fault: AppFault::None,
                    ready_reported: false,
                    pull_doomed: false,
                };
                record.begin(now_ns, &self.images, &self.failing_pulls);
                record
            })
            .collect();
        self.last_version += 1;
        let version = self.last_version;
        self.pods.insert(
            uid.to_string(),
            RuntimePod {
                pod_ip: pod_ip.to_string(),
                containers,
                stopping: false,
                stopped_reported: false,
                version,
                served_requests: 0,
                request_cpu_millicore_ns: 0,
            },
        );
    }

    /// Starts a new run of an exited container (or retries a failed pull). A container that still
    /// runs is killed first, as the kubelet does after a failed liveness probe. Returns false if
    /// there is no such container or its pod is being stopped.
    pub fn restart_container(&mut self, uid: &str, name: &str, now_ns: u64) -> bool {
        let Some(pod) = self.pods.get_mut(uid) else { return false };
        if pod.stopping {
            return false;
        }
        self.last_version += 1;
        pod.version = self.last_version;
        let Some(container) = pod.containers.iter_mut().find(|c| c.name == name) else { return false };
        if !matches!(container.state, ContainerRunState::PullFailed { .. }) {
            if let Some(kind) = container.kill(now_ns) {
                self.pending_events.push(RuntimeEvent { at_ns: now_ns, uid: uid.to_string(), kind });
            }
        }
        container.begin(now_ns, &self.images, &self.failing_pulls);
        true
    }

    /// Kills one container at once with SIGKILL (liveness failure). The kubelet restarts it later.
    pub fn kill_container(&mut self, uid: &str, name: &str, now_ns: u64) {
        let Some(pod) = self.pods.get_mut(uid) else { return };
        self.last_version += 1;
        pod.version = self.last_version;
        let Some(container) = pod.containers.iter_mut().find(|c| c.name == name) else { return };
        if let Some(kind) = container.kill(now_ns) {
            self.pending_events.push(RuntimeEvent { at_ns: now_ns, uid: uid.to_string(), kind });
        }
    }

    /// Graceful stop: SIGTERM to every running container now, SIGKILL at `now_ns + grace_ns`.
    /// Each app exits after its `sigterm_exit_after` (serving until then) or at the kill, whichever
    /// comes first. Containers not yet running are simply dropped. Calling it again does not
    /// extend the deadline (a shorter grace may shorten it, as a second delete can).
    pub fn stop_pod(&mut self, uid: &str, grace_ns: u64, now_ns: u64) {
        let Some(pod) = self.pods.get_mut(uid) else { return };
        pod.stopping = true;
        self.last_version += 1;
        pod.version = self.last_version;
        let kill_at_ns = now_ns.saturating_add(grace_ns);
        for container in &mut pod.containers {
            match container.state {
                ContainerRunState::Running { started_at_ns } => {
                    let exit_at_ns = now_ns.saturating_add(container.behavior.sigterm_exit_after_ns).min(kill_at_ns);
                    container.state =
                        ContainerRunState::Terminating { started_at_ns, sigterm_at_ns: now_ns, exit_at_ns, kill_at_ns };
                }
                ContainerRunState::Terminating { started_at_ns, sigterm_at_ns, exit_at_ns, kill_at_ns: old_kill } => {
                    let kill_at_ns = old_kill.min(kill_at_ns);
                    container.state = ContainerRunState::Terminating {
                        started_at_ns,
                        sigterm_at_ns,
                        exit_at_ns: exit_at_ns.min(kill_at_ns),
                        kill_at_ns,
                    };
                }
                ContainerRunState::Exited { .. } => {}
                ContainerRunState::Pulling { .. }
                | ContainerRunState::PullFailed { .. }
                | ContainerRunState::Starting { .. } => {
                    if let Some(kind) = container.kill(now_ns) {
                        self.pending_events.push(RuntimeEvent { at_ns: now_ns, uid: uid.to_string(), kind });
                    }
                }
            }
        }
    }

    /// Kills every container of the pod now (no grace), keeping the sandbox until `remove_pod`.
    pub fn kill_pod(&mut self, uid: &str, now_ns: u64) {
        let Some(pod) = self.pods.get_mut(uid) else { return };
        pod.stopping = true;
        self.last_version += 1;
        pod.version = self.last_version;
        for container in &mut pod.containers {
            if let Some(kind) = container.kill(now_ns) {
                self.pending_events.push(RuntimeEvent { at_ns: now_ns, uid: uid.to_string(), kind });
            }
        }
    }

    /// Forgets the pod (its sandbox and IP); whatever still ran is gone without events.
    pub fn remove_pod(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// Every container whose process runs now in a pod not being stopped, as (pod uid, container
    /// name) in uid order: the candidates of an injected crash.
    pub fn running_containers(&self, now_ns: u64) -> Vec<(String, String)> {
        let mut running = Vec::new();
        for (uid, pod) in &self.pods {
            if pod.stopping {
                continue;
            }
            for container in &pod.containers {
                if matches!(container.at(now_ns).state, ContainerRunState::Running { .. }) {
                    running.push((uid.clone(), container.name.clone()));
                }
            }
        }
        running
    }

    /// The running container crashes now, exit code 1, as an app bug would make it (an injected
    /// fault). False if it does not run.
    pub fn crash_container(&mut self, uid: &str, name: &str, now_ns: u64) -> bool {
        let Some(pod) = self.pods.get_mut(uid) else { return false };
        let Some(container) = pod.containers.iter_mut().find(|c| c.name == name) else { return false };
        // Transitions due by now happen first, so that the crash strikes the current state.
        while let Some(at) = container.next_transition_ns().filter(|at| *at <= now_ns) {
            let kind = container.step(at, &mut self.images);
            self.pending_events.push(RuntimeEvent { at_ns: at, uid: uid.to_string(), kind });
        }
        let ContainerRunState::Running { started_at_ns } = container.state else { return false };
        container.state = ContainerRunState::Exited {
            exit_code: 1,
            started_at_ns: Some(started_at_ns),
            finished_at_ns: now_ns,
            cause: ExitCause::OnItsOwn,
        };
        let kind = RuntimeEventKind::Exited { container: name.to_string(), exit_code: 1, cause: ExitCause::OnItsOwn };
        self.pending_events.push(RuntimeEvent { at_ns: now_ns, uid: uid.to_string(), kind });
        self.last_version += 1;
        pod.version = self.last_version;
        true
    }

    /// Pulls of `image` that start before `until_ns` fail (an injected registry outage).
    pub fn fail_pulls(&mut self, image: &str, until_ns: u64) {
        let until = self.failing_pulls.entry(image.to_string()).or_insert(0);
        *until = (*until).max(until_ns);
    }

    /// Ends every injected registry outage (pulls already doomed still fail; the kubelet's retry
    /// then succeeds).
    pub fn clear_pull_failures(&mut self) {
        self.failing_pulls.clear();
    }

    /// Sets or clears an injected app fault; false if there is no such container.
    ///
    /// A kubelet notices the change at its next sync (it skips probes whose result cannot change):
    /// the owner must sync it right after setting a fault, as it does when ConfigMaps change.
    pub fn set_app_fault(&mut self, uid: &str, name: &str, fault: AppFault) -> bool {
        let Some(pod) = self.pods.get_mut(uid) else { return false };
        let Some(container) = pod.containers.iter_mut().find(|c| c.name == name) else { return false };
        container.fault = fault;
        self.last_version += 1;
        pod.version = self.last_version;
        true
    }

    /// Applies every transition due at or before `now_ns`, in time order (ties by pod uid, then
    /// container order), and returns what happened, including the effects of kills since the
    /// last call.
    pub fn advance(&mut self, now_ns: u64) -> Vec<RuntimeEvent> {
        let mut events = std::mem::take(&mut self.pending_events);
        loop {
            // The earliest due transition across the node, found afresh each step: a pod's
            // transitions never affect another pod's, but this keeps the order obviously global.
            let mut earliest: Option<(u64, String, usize)> = None;
            for (uid, pod) in &self.pods {
                for (index, container) in pod.containers.iter().enumerate() {
                    if let Some(at) = container.next_transition_ns().filter(|at| *at <= now_ns) {
                        if earliest.as_ref().is_none_or(|(best, _, _)| at < *best) {
                            earliest = Some((at, uid.clone(), index));
                        }
                    }
                }
            }
            let Some((at_ns, uid, index)) = earliest else { break };
            let pod = self.pods.get_mut(&uid).expect("found above");
            self.last_version += 1;
            pod.version = self.last_version;
            let kind = pod.containers[index].step(at_ns, &mut self.images);
            events.push(RuntimeEvent { at_ns, uid: uid.clone(), kind });
        }
        for (uid, pod) in &mut self.pods {
            if pod.stopping && !pod.stopped_reported && pod.containers.iter().all(|c| !c.state.is_running()) {
                pod.stopped_reported = true;
                let at_ns = pod
                    .containers
                    .iter()
                    .filter_map(|c| match c.state {
                        ContainerRunState::Exited { finished_at_ns, .. } => Some(finished_at_ns),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(now_ns);
                events.push(RuntimeEvent { at_ns, uid: uid.clone(), kind: RuntimeEventKind::PodStopped });
            }
        }
        events.sort_by_key(|event| event.at_ns);
        events
    }

    /// The earliest time at which something will change by itself, for the owner's one timer.
    /// `None` when nothing is pending (only operations can change the runtime then).
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.pods.values().flat_map(|pod| pod.containers.iter()).filter_map(RuntimeContainer::next_transition_ns).min()
    }

    /// The IP of every pod sandbox, by uid.
    pub fn pod_ips(&self) -> BTreeMap<String, String> {
        self.pods.iter().map(|(uid, pod)| (uid.clone(), pod.pod_ip.clone())).collect()
    }

    /// The uid of every pod the runtime holds (running, stopping or stopped but not removed).
    pub fn running_pods(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// The same uids as [`ContainerRuntime::running_pods`], without copies.
    pub fn pod_uids(&self) -> impl Iterator<Item = &str> {
        self.pods.keys().map(String::as_str)
    }

    /// A number that changes whenever the pod's containers change: by `advance`, by an operation
    /// (run, restart, kill, stop) or by an injected fault. Never repeats, even after `remove_pod`
    /// and a new `run_pod` of the same uid. `None` without a sandbox.
    pub fn pod_version(&self, uid: &str) -> Option<u64> {
        self.pods.get(uid).map(|pod| pod.version)
    }

    /// Whether the pod holds a sandbox here.
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The pod's IP, if the runtime holds it.
    pub fn pod_ip(&self, uid: &str) -> Option<&str> {
        self.pods.get(uid).map(|pod| pod.pod_ip.as_str())
    }

    /// GROUND TRUTH for the pod network: the pod at `pod_ip` answers a request at `now_ns`. Every
    /// container's process runs (a draining one after SIGTERM still counts), is past its
    /// `time_to_ready`, is not `never_ready`, not hung and not faulted. Transitions at or before
    /// `now_ns` count even if `advance` has not been called yet: truth does not wait for the kubelet.
    pub fn is_serving(&self, pod_ip: &str, now_ns: u64) -> bool {
        self.pods.values().filter(|pod| pod.pod_ip == pod_ip).any(|pod| {
            !pod.containers.is_empty() && pod.containers.iter().all(|container| container.at(now_ns).is_serving(now_ns))
        })
    }

    /// A request arrives for `pod_ip` at `now_ns`: if the pod serves it ([`Self::is_serving`]), the
    /// request is counted and its CPU cost (the sum of its containers' `cpu_millicores_per_request`)
    /// charged to the pod. Returns whether it was served.
    pub fn serve(&mut self, pod_ip: &str, now_ns: u64) -> bool {
        if !self.is_serving(pod_ip, now_ns) {
            return false;
        }
        let Some(pod) = self.pods.values_mut().find(|pod| pod.pod_ip == pod_ip) else { return false };
        let cost_millicore_ns: u64 = pod
            .containers
            .iter()
            .map(|container| container.behavior.cpu_millicores_per_request.saturating_mul(1_000_000_000))
            .fold(0, u64::saturating_add);
        pod.served_requests += 1;
        pod.request_cpu_millicore_ns = pod.request_cpu_millicore_ns.saturating_add(cost_millicore_ns);
        true
    }

    /// Requests the pod served since its sandbox was created.
    pub fn served_requests(&self, uid: &str) -> Option<u64> {
        self.pods.get(uid).map(|pod| pod.served_requests)
    }

    /// The pod's cumulative CPU use at `now_ns`, in millicore-nanoseconds: the cost of the requests
    /// it served plus each container's idle use over its current run (as the pod cgroup's
    /// `cpuacct.usage`; a container restart starts its idle count again, so the total can drop,
    /// which metrics-server treats as a counter reset). `None` without a sandbox.
    pub fn cpu_usage_millicore_ns(&self, uid: &str, now_ns: u64) -> Option<u64> {
        let pod = self.pods.get(uid)?;
        let idle: u64 = pod
            .containers
            .iter()
            .filter_map(|container| {
                let view = container.at(now_ns);
                let started = view.state.started_at_ns()?;
                Some(container.behavior.cpu_millicores_idle.saturating_mul(now_ns.saturating_sub(started)))
            })
            .fold(0, u64::saturating_add);
        Some(pod.request_cpu_millicore_ns.saturating_add(idle))
    }

    /// A readiness probe of `container` at `now_ns`: it passes when the app serves.
    pub fn probe_readiness(&self, uid: &str, container: &str, now_ns: u64) -> bool {
        self.settled(uid, container, now_ns).is_some_and(|c| c.is_serving(now_ns))
    }

    /// A liveness probe at `now_ns`: it passes while the process runs and is not hung (the model
    /// lets a starting app answer liveness, as a health endpoint that comes up first would).
    pub fn probe_liveness(&self, uid: &str, container: &str, now_ns: u64) -> bool {
        self.settled(uid, container, now_ns).is_some_and(|c| c.state.is_running() && !c.is_hung(now_ns))
    }

    /// What a probe of the container at `now_ns` depends on, and until when it stays the same.
    pub fn probe_inputs(&self, uid: &str, container: &str, now_ns: u64) -> Option<ProbeInputs> {
        let container = self.settled(uid, container, now_ns)?;
        Some(ProbeInputs {
            state: container.state,
            fault: container.fault,
            stable_until_ns: container.probe_stable_until_ns(now_ns),
        })
    }

    /// The runtime state of one container, as of the last `advance`.
    pub fn container_state(&self, uid: &str, name: &str) -> Option<ContainerRunState> {
        self.pods.get(uid)?.containers.iter().find(|c| c.name == name).map(|c| c.state)
    }

    /// The behaviour of one container's image.
    pub fn container_behavior(&self, uid: &str, name: &str) -> Option<&ImageBehavior> {
        self.pods.get(uid)?.containers.iter().find(|c| c.name == name).map(|c| &c.behavior)
    }

    /// The image of the first container of the pod with `pod_ip` (for reports and checkers).
    pub fn pod_image(&self, pod_ip: &str) -> Option<String> {
        let pod = self.pods.values().find(|pod| pod.pod_ip == pod_ip)?;
        pod.containers.first().map(|container| container.image.clone())
    }

    /// Whether the image is cached on this node.
    pub fn has_image(&self, image: &str) -> bool {
        self.images.contains(image)
    }

    fn settled(&self, uid: &str, name: &str, now_ns: u64) -> Option<Cow<'_, RuntimeContainer>> {
        Some(self.pods.get(uid)?.containers.iter().find(|c| c.name == name)?.at(now_ns))
    }
}

impl RuntimeContainer {
    /// The container as it is at `now_ns`: itself if nothing is due, else a copy with the due
    /// transitions applied, for queries between `advance` calls.
    fn at(&self, now_ns: u64) -> Cow<'_, RuntimeContainer> {
        if self.next_transition_ns().is_none_or(|at| at > now_ns) {
            return Cow::Borrowed(self);
        }
        let mut view = self.clone();
        let mut images = BTreeSet::new();
        while let Some(at) = view.next_transition_ns().filter(|at| *at <= now_ns) {
            view.step(at, &mut images);
        }
        Cow::Owned(view)
    }
}
