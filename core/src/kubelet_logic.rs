//! The kubelet's pod workers as a pure state machine (`pkg/kubelet/pod_workers.go`,
//! `kubelet_pods.go`, `prober/`, `status/status_manager.go`).
//!
//! [`PodWorkers::sync`] takes the pods bound to the node (from the kubelet's informer cache), the
//! node's [`ContainerRuntime`] and the time, and returns what the kubelet would send: pod statuses
//! to post, final deletions to request, and when to call `sync` again. The component that owns a
//! `PodWorkers` and a `ContainerRuntime` sends the requests and sets one timer. Nothing here reads a
//! clock or draws randomness.
//!
//! What the model does, per pod: allocate a pod IP; wait for the ConfigMaps and Secrets its
//! containers reference; start the containers; run readiness and liveness probes on a fixed grid;
//! restart exited containers by restart policy with CrashLoopBackOff; retry failed pulls with the
//! image backoff; compute phase, conditions and container statuses as `getPhase` and
//! `generateAPIPodStatus` do; stop a deleted pod with its grace period and then request the final
//! delete (grace 0); kill and forget pods that are no longer desired.
//!
//! Simplified or missing, on purpose for now:
//! - Probe times are `start + initialDelaySeconds + k * periodSeconds`. Upstream ticks from the
//!   probe worker's creation (with a random first delay after a kubelet restart) and skips ticks
//!   before the initial delay; a late sync runs one probe at its own time, as a Go ticker drops
//!   missed ticks. Probes stop once the pod is terminating. No startup probes, no `timeoutSeconds`.
//! - A liveness failure kills the container at once (upstream honours the grace period).
//! - Pods no longer desired are killed without grace.
//! - No init containers, sidecars, readiness gates, PodReadyToStartContainers condition, in-place
//!   spec updates (a changed image is ignored) or eviction by resource pressure.
//! - A missing env reference reports CreateContainerConfigError; a missing volume source keeps the
//!   pod ContainerCreating (upstream: FailedMount events). The pod starts at the first sync after
//!   they exist: the component must call `sync` when ConfigMaps or Secrets change.
//! - After a kubelet restart, pods still in the runtime are adopted with their IP, but restart
//!   counts and backoffs start again from zero (upstream reads them back from the runtime).

use crate::api::ObjectKey;
use crate::cache::Cache;
use crate::objects::meta::find_condition;
use crate::objects::pod::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodPhase,
    PodStatus, Probe, RestartPolicy,
};
use crate::objects::{Condition, ConditionStatus, Kind, Object, Pod, PodSpec};
use crate::rules::kubelet::CrashLoopBackOff;
use crate::runtime::{ContainerRunState, ContainerRuntime, ProbeInputs, RuntimeEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

const SECOND_NS: u64 = 1_000_000_000;

/// How long the kubelet waits before re-sending a status or final delete that the informer does
/// not yet reflect (the request may have been lost). Upstream's status manager resyncs every 10 s.
pub const RESEND_INTERVAL_NS: u64 = 10 * SECOND_NS;

/// Default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;

/// What one `sync` decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubeletActions {
    /// Pods whose status should be written (the status subresource), in pod uid order. Send them
    /// before `final_deletes`: a pod's terminal status is posted in the same sync as its delete.
    pub status_updates: Vec<StatusUpdate>,
    /// Terminating pods whose containers have all stopped: delete with grace 0 and this uid as the
    /// precondition, as the kubelet's status manager does.
    pub final_deletes: Vec<FinalDelete>,
    /// When to call `sync` again if nothing else happens first; `None` when nothing is pending.
    pub next_wakeup_ns: Option<u64>,
    /// What the runtime did since the last sync, for the trace.
    pub runtime_events: Vec<RuntimeEvent>,
}

/// A status to post. `pod` is the informer's object with the new status: its resourceVersion is
/// the one the kubelet last saw, so a strict update may conflict; upstream patches the status.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// The pod.
    pub key: ObjectKey,
    /// The pod with its new status.
    pub pod: Pod,
}

/// A final delete: `DELETE` with `gracePeriodSeconds: 0` and `preconditions.uid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalDelete {
    /// The pod.
    pub key: ObjectKey,
    /// Only this incarnation of the name.
    pub uid: String,
}

/// Pod IPs of one node: host-local IPAM over a /16. Allocation is round-robin from the last
/// address handed out (as the `host-local` CNI plugin does), so an address is reused only after
/// it was released and the rest of the range was used: a stale endpoint rarely points at a new pod,
/// and when it does, that is a real Kubernetes hazard the simulation may reach.
#[derive(Clone, Debug)]
pub struct PodIpPool {
    /// The first two octets, such as `10.130`.
    prefix: String,
    in_use: BTreeSet<u32>,
    /// The host index after the last one allocated.
    cursor: u32,
}

/// Usable host indices of a /16: `.0.1` to `.255.254`.
const POOL_FIRST: u32 = 1;
const POOL_LAST: u32 = 65_534;

impl PodIpPool {
    /// A pool over `<prefix>.0.0/16`; `prefix` is two octets such as `"10.130"`.
    pub fn new(prefix: &str) -> Self {
        PodIpPool { prefix: prefix.to_string(), in_use: BTreeSet::new(), cursor: POOL_FIRST }
    }

    /// The pool of the node with `index`: `10.(128 + index).0.0/16`. The pod ranges sit in
    /// 10.128.0.0/9, clear of the Service range 10.96.0.0/12 and of each other.
    pub fn for_node_index(index: u8) -> Self {
        assert!(index < 128, "node index {index} out of range: pod ranges are 10.128.0.0/16 to 10.255.0.0/16");
        PodIpPool::new(&format!("10.{}", 128 + u32::from(index)))
    }

    fn address(&self, host: u32) -> String {
        format!("{}.{}.{}", self.prefix, host / 256, host % 256)
    }

    fn host_of(&self, ip: &str) -> Option<u32> {
        let rest = ip.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        let (high, low) = rest.split_once('.')?;
        let host = high.parse::<u32>().ok()? * 256 + low.parse::<u32>().ok()?;
        (POOL_FIRST..=POOL_LAST).contains(&host).then_some(host)
    }

    /// The next free address, or `None` when all 65,534 are in use.
    pub fn allocate(&mut self) -> Option<String> {
        let size = POOL_LAST - POOL_FIRST + 1;
        for step in 0..size {
            let host = POOL_FIRST + (self.cursor - POOL_FIRST + step) % size;
            if self.in_use.insert(host) {
                self.cursor = if host == POOL_LAST { POOL_FIRST } else { host + 1 };
                return Some(self.address(host));
            }
        }
        None
    }

    /// Marks an address as used (a pod adopted from the runtime after a kubelet restart).
    /// Addresses outside the pool are ignored.
    pub fn reserve(&mut self, ip: &str) {
        if let Some(host) = self.host_of(ip) {
            self.in_use.insert(host);
        }
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, ip: &str) {
        if let Some(host) = self.host_of(ip) {
            self.in_use.remove(&host);
        }
    }

    /// How many addresses are allocated.
    pub fn in_use_count(&self) -> usize {
        self.in_use.len()
    }
}

/// A probe's settings in nanoseconds, defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProbeTiming {
    initial_delay_ns: u64,
    period_ns: u64,
    success_threshold: u32,
    failure_threshold: u32,
}

impl ProbeTiming {
    fn of(probe: &Probe) -> Self {
        let seconds = |value: Option<i32>, default: i32| u64::try_from(value.unwrap_or(default)).unwrap_or(0);
        let count = |value: Option<i32>, default: i32| u32::try_from(value.unwrap_or(default)).unwrap_or(1).max(1);
        ProbeTiming {
            initial_delay_ns: seconds(probe.initial_delay_seconds, 0) * SECOND_NS,
            period_ns: seconds(probe.period_seconds, 10).max(1) * SECOND_NS,
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// One probe worker: consecutive results on a fixed grid from the container's start.
///
/// Skipped probes. A probe's result is a pure function of the runtime's container (its state and
/// injected fault) and of the time, and with the container fixed the time matters only at instants
/// the runtime knows ([`ProbeInputs::stable_until_ns`]: the next transition, becoming ready,
/// hanging). When the last result is one whose repetition changes nothing the kubelet reports (a
/// readiness result equal to the current readiness, a liveness success), every later grid time
/// before that instant would record the same no-op result, as long as the container stays the
/// same. The kubelet then does not wake for those probes: it marks the worker quiet at the end of
/// a sync, wakes at the first grid time at or after the instant (so the first probe that may
/// differ runs exactly when it did before), and a sync in between skips the grid times before
/// its own time (the container only changes at syncs: runtime transitions are wake-ups, the
/// kubelet's own operations happen in syncs, and the owner syncs right after injecting a fault).
/// A grid time at the sync's own time is probed unless the container is still the one of the last
/// probe. Results and readiness land at exactly the same times as with every probe run.
#[derive(Clone, Debug)]
struct ProbeWorker {
    timing: ProbeTiming,
    /// The run being probed (its start time); a new run resets the worker.
    run_started_at_ns: Option<u64>,
    next_probe_ns: u64,
    successes: u32,
    failures: u32,
    /// What the last probe run saw.
    last_inputs: Option<ProbeInputs>,
    /// Set at the end of a sync when probes before this time (`u64::MAX`: ever) would repeat the
    /// last result to no effect.
    quiet_until_ns: Option<u64>,
}

impl ProbeWorker {
    fn new(probe: &Probe) -> Self {
        ProbeWorker {
            timing: ProbeTiming::of(probe),
            run_started_at_ns: None,
            next_probe_ns: 0,
            successes: 0,
            failures: 0,
            last_inputs: None,
            quiet_until_ns: None,
        }
    }

    /// Follows the container's current run; returns true if this is a new run.
    fn track(&mut self, started_at_ns: u64) -> bool {
        if self.run_started_at_ns == Some(started_at_ns) {
            return false;
        }
        self.run_started_at_ns = Some(started_at_ns);
        self.next_probe_ns = started_at_ns.saturating_add(self.timing.initial_delay_ns);
        self.successes = 0;
        self.failures = 0;
        self.last_inputs = None;
        self.quiet_until_ns = None;
        true
    }

    /// The last result of this run, if any.
    fn last_result(&self) -> Option<bool> {
        if self.successes > 0 {
            Some(true)
        } else if self.failures > 0 {
            Some(false)
        } else {
            None
        }
    }

    /// The first grid time at or after `at_ns` (from the next probe on).
    fn grid_at_or_after(&self, at_ns: u64) -> u64 {
        if at_ns <= self.next_probe_ns {
            return self.next_probe_ns;
        }
        let period = self.timing.period_ns;
        let steps = (at_ns - self.next_probe_ns).div_ceil(period);
        self.next_probe_ns.saturating_add(steps.saturating_mul(period))
    }

    /// Runs the probe due at `now_ns`, or skips it (and quiet grid times before it) when its result
    /// cannot differ from the last one (see the type's comment). `repeat_is_noop` says whether
    /// recording the last result again would change nothing. Returns the result if it ran.
    fn probe(
        &mut self,
        repeat_is_noop: bool,
        now_ns: u64,
        inputs: impl FnOnce() -> Option<ProbeInputs>,
        run: impl FnOnce() -> bool,
    ) -> Option<bool> {
        self.run_started_at_ns?;
        if let Some(until_ns) = self.quiet_until_ns.filter(|_| repeat_is_noop) {
            // Grid times before this sync (and before the container could change) repeated the
            // last result.
            self.next_probe_ns = self.grid_at_or_after(now_ns.min(until_ns));
        }
        if !self.due(now_ns) {
            return None;
        }
        let inputs = inputs();
        let unchanged = match (&self.last_inputs, &inputs) {
            (Some(last), Some(current)) => last.same_container(current),
            _ => false,
        };
        if repeat_is_noop && unchanged && self.quiet_until_ns.is_some_and(|until_ns| now_ns < until_ns) {
            self.skip(now_ns);
            return None;
        }
        let success = run();
        self.last_inputs = inputs;
        self.record(success, now_ns);
        Some(success)
    }

    /// At the end of a sync: whether the worker is quiet until the container may change.
    fn settle(&mut self, repeat_is_noop: bool, current: Option<ProbeInputs>) {
        let unchanged = match (&self.last_inputs, &current) {
            (Some(last), Some(current)) => last.same_container(current),
            _ => false,
        };
        self.quiet_until_ns = (repeat_is_noop && unchanged)
            .then(|| self.last_inputs.and_then(|last| last.stable_until_ns).unwrap_or(u64::MAX));
    }

    /// When this worker needs the kubelet next: the next grid time, or for a quiet worker the
    /// first grid time at or after the container may change.
    fn wakeup_ns(&self) -> Option<u64> {
        match self.quiet_until_ns {
            Some(u64::MAX) => None,
            Some(until_ns) => Some(self.grid_at_or_after(until_ns)),
            None => Some(self.next_probe_ns),
        }
    }

    /// Moves past a grid time without a probe, as `record` does.
    fn skip(&mut self, now_ns: u64) {
        let period = self.timing.period_ns;
        let missed = (now_ns - self.next_probe_ns) / period;
        self.next_probe_ns += (missed + 1) * period;
    }

    /// Whether a probe is due at `now_ns`.
    fn due(&self, now_ns: u64) -> bool {
        self.run_started_at_ns.is_some() && self.next_probe_ns <= now_ns
    }

    /// Records one result at `now_ns` and moves to the next grid time after it (a late sync runs
    /// one probe, not the missed ones, as a Go ticker drops missed ticks).
    fn record(&mut self, success: bool, now_ns: u64) {
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let period = self.timing.period_ns;
        let missed = (now_ns - self.next_probe_ns) / period;
        self.next_probe_ns += (missed + 1) * period;
    }
}

/// The kubelet's view of one container.
#[derive(Clone, Debug)]
struct ContainerWorker {
    name: String,
    image: String,
    restart_count: i32,
    backoff: CrashLoopBackOff,
    /// The image pull backoff (same 10 s doubling to 300 s as container restarts upstream).
    pull_backoff: CrashLoopBackOff,
    /// The failed pull the backoff was advanced for.
    pull_failed_at_ns: Option<u64>,
    readiness: Option<ProbeWorker>,
    liveness: Option<ProbeWorker>,
    /// The readiness result for the current run (without a probe: running means ready).
    ready: bool,
    /// The container ran before and exited (upstream's lastTerminationState is set).
    terminated_before: bool,
    /// Exited and will not run again (restart policy, or the pod is terminal or terminating).
    done: bool,
    /// In CrashLoopBackOff until this time.
    restart_at_ns: Option<u64>,
}

/// The kubelet's view of one pod.
#[derive(Clone, Debug)]
struct PodWorker {
    key: ObjectKey,
    uid: String,
    spec: PodSpec,
    pod_ip: String,
    start_time_ns: u64,
    /// Whether `run_pod` was called (the ConfigMaps and Secrets resolved).
    started: bool,
    containers: Vec<ContainerWorker>,
    /// The grace period the pod is being stopped with, once it is.
    stopping_grace_ns: Option<u64>,
    /// Succeeded or Failed: final, never left.
    terminal_phase: Option<PodPhase>,
    last_posted: Option<(PodStatus, u64)>,
    last_delete_request_ns: Option<u64>,
    /// Incremental syncs: what the worker last worked from. A worker whose pod object (the same
    /// `Rc`) and runtime pod (its version) did not change and whose own wake-up has not come would
    /// decide nothing new and compute the same status, so `sync` skips it.
    seen: Option<Rc<Object>>,
    seen_runtime_version: Option<u64>,
    /// The earliest of this worker's wake-up times after its last visit.
    wakeup_ns: Option<u64>,
    /// The status depends on more than the pod and the runtime (the ConfigMaps and Secrets before
    /// the start, the time while reporting ErrImagePull): visit at every sync.
    volatile: bool,
    /// Visited in the current sync.
    visit: bool,
}

/// A missing ConfigMap or Secret and what it does to the pod's containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConfigProblem {
    /// An environment variable needs it: `CreateContainerConfigError`.
    Env,
    /// A volume needs it: the mount waits, the pod stays `ContainerCreating`.
    Volume,
}

/// The kubelet's pod workers for one node.
#[derive(Clone, Debug)]
pub struct PodWorkers {
    node_name: String,
    host_ip: String,
    ips: PodIpPool,
    workers: BTreeMap<String, PodWorker>,
    /// Deliberate bugs (negative controls; see [`crate::mutants`]); none by default.
    pub mutants: crate::mutants::Mutants,
}

impl PodWorkers {
    /// Workers for the node `node_name` at `host_ip`, handing out pod IPs from `ips`.
    pub fn new(node_name: &str, host_ip: &str, ips: PodIpPool) -> Self {
        PodWorkers {
            node_name: node_name.to_string(),
            host_ip: host_ip.to_string(),
            ips,
            workers: BTreeMap::new(),
            mutants: crate::mutants::Mutants::NONE,
        }
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The uids of the pods the kubelet is working on.
    /// Whether a pod worker exists for the pod with this uid.
    pub fn has_worker(&self, uid: &str) -> bool {
        self.workers.contains_key(uid)
    }

    pub fn pod_uids(&self) -> Vec<String> {
        self.workers.keys().cloned().collect()
    }

    /// The IP pool (for checkers: addresses in use).
    pub fn ip_pool(&self) -> &PodIpPool {
        &self.ips
    }

    /// One pass of every pod worker at `now_ns`. `desired` is every pod the informer holds for
    /// this node (other objects and pods bound elsewhere are ignored). `config` holds the
    /// ConfigMaps and Secrets the kubelet can see; `None` skips the check. The caller should call
    /// `sync` at `next_wakeup_ns`, and whenever the informer's pods, ConfigMaps or Secrets change.
    pub fn sync(
        &mut self,
        now_ns: u64,
        desired: &[Rc<Object>],
        runtime: &mut ContainerRuntime,
        config: Option<&Cache>,
    ) -> KubeletActions {
        let mut actions = KubeletActions { runtime_events: runtime.advance(now_ns), ..KubeletActions::default() };

        let mut wanted: BTreeMap<&str, (&Rc<Object>, &Pod)> = BTreeMap::new();
        for object in desired {
            if let Object::Pod(pod) = object.as_ref() {
                let bound_here = pod.spec.node_name.as_deref() == Some(self.node_name.as_str());
                if let (true, Some(uid)) = (bound_here, pod.metadata.uid.as_deref()) {
                    wanted.insert(uid, (object, pod));
                }
            }
        }

        // Pods no longer desired (deleted from the API, bound elsewhere) and runtime pods nobody
        // knows (left over from before a kubelet restart) are killed at once and forgotten.
        let gone: Vec<String> = self.workers.keys().filter(|uid| !wanted.contains_key(uid.as_str())).cloned().collect();
        for uid in gone {
            let worker = self.workers.remove(&uid).expect("listed above");
            runtime.kill_pod(&uid, now_ns);
            runtime.remove_pod(&uid);
            self.ips.release(&worker.pod_ip);
        }
        let unknown: Vec<String> =
            runtime.pod_uids().filter(|uid| !wanted.contains_key(uid)).map(str::to_string).collect();
        for uid in unknown {
            runtime.kill_pod(&uid, now_ns);
            runtime.remove_pod(&uid);
        }

        // Lifecycle decisions: start, stop, probe, restart. Only workers with something new.
        for (&uid, &(object, pod)) in &wanted {
            if !self.workers.contains_key(uid) {
                let terminal = matches!(pod.status.phase, Some(PodPhase::Succeeded | PodPhase::Failed));
                let started_elsewhere = runtime.has_pod(uid);
                if terminal && !started_elsewhere {
                    // A finished pod is never run again; only its final delete remains.
                    if pod.metadata.is_terminating() {
                        actions.final_deletes.push(FinalDelete { key: pod_key(pod), uid: uid.to_string() });
                    }
                    continue;
                }
                let Some(worker) = self.new_worker(uid, pod, runtime, now_ns) else { continue };
                self.workers.insert(uid.to_string(), worker);
            }
            let worker = self.workers.get_mut(uid).expect("inserted above");
            worker.visit = worker.volatile
                || !worker.seen.as_ref().is_some_and(|seen| Rc::ptr_eq(seen, object))
                || worker.seen_runtime_version != runtime.pod_version(uid)
                || worker.wakeup_ns.is_some_and(|at| at <= now_ns);
            if worker.visit {
                worker.act(pod, runtime, config, now_ns);
            }
        }

        // Stops with grace 0 and starts with zero latency take effect now.
        actions.runtime_events.extend(runtime.advance(now_ns));

        // Statuses, final deletes, and the next wake-up.
        let mut next_wakeup_ns = runtime.next_deadline_ns().filter(|at| *at > now_ns);
        let mut wakeups: Vec<u64> = Vec::new();
        for (&uid, &(object, pod)) in &wanted {
            let Some(worker) = self.workers.get_mut(uid) else { continue };
            if worker.visit {
                worker.visit = false;
                wakeups.clear();
                worker.observe(runtime, now_ns, self.mutants);
                let status = worker.status(pod, runtime, config, now_ns, &self.host_ip);
                let api_has_it = status == pod.status;
                let resend_due = |last: Option<(&PodStatus, u64)>| match last {
                    None => true,
                    Some((posted, at)) => *posted != status || now_ns >= at.saturating_add(RESEND_INTERVAL_NS),
                };
                if !api_has_it && resend_due(worker.last_posted.as_ref().map(|(s, at)| (s, *at))) {
                    let mut updated = Pod::clone(pod);
                    updated.status = status.clone();
                    worker.last_posted = Some((status, now_ns));
                    actions.status_updates.push(StatusUpdate { key: worker.key.clone(), pod: updated });
                }
                if !api_has_it {
                    if let Some((_, at)) = worker.last_posted {
                        wakeups.push(at.saturating_add(RESEND_INTERVAL_NS));
                    }
                }
                if pod.metadata.is_terminating() && worker.stopped(runtime) {
                    let due =
                        worker.last_delete_request_ns.is_none_or(|at| now_ns >= at.saturating_add(RESEND_INTERVAL_NS));
                    if due {
                        worker.last_delete_request_ns = Some(now_ns);
                        actions.final_deletes.push(FinalDelete { key: worker.key.clone(), uid: uid.to_string() });
                    }
                    if let Some(at) = worker.last_delete_request_ns {
                        wakeups.push(at.saturating_add(RESEND_INTERVAL_NS));
                    }
                }
                worker.wakeups(runtime, &mut wakeups);
                worker.wakeup_ns = wakeups.iter().copied().filter(|at| *at > now_ns).min();
                worker.seen = Some(Rc::clone(object));
                worker.seen_runtime_version = runtime.pod_version(uid);
                worker.volatile = !worker.started || worker.reports_err_image_pull(runtime, now_ns);
            }
            next_wakeup_ns = match (next_wakeup_ns, worker.wakeup_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        actions.next_wakeup_ns = next_wakeup_ns;
        actions
    }

    fn new_worker(&mut self, uid: &str, pod: &Pod, runtime: &ContainerRuntime, now_ns: u64) -> Option<PodWorker> {
        // A pod the runtime already runs (the kubelet restarted) keeps its sandbox and IP.
        let pod_ip = match runtime.pod_ip(uid) {
            Some(ip) => {
                self.ips.reserve(ip);
                ip.to_string()
            }
            None => self.ips.allocate()?,
        };
        let mut spec = pod.spec.clone();
        spec.apply_defaults();
        let containers = spec
            .containers
            .iter()
            .map(|container| ContainerWorker {
                name: container.name.clone(),
                image: container.image.clone(),
                restart_count: 0,
                backoff: CrashLoopBackOff::new(),
                pull_backoff: CrashLoopBackOff::new(),
                pull_failed_at_ns: None,
                readiness: container.readiness_probe.as_ref().map(ProbeWorker::new),
                liveness: container.liveness_probe.as_ref().map(ProbeWorker::new),
                ready: false,
                terminated_before: false,
                done: false,
                restart_at_ns: None,
            })
            .collect();
        Some(PodWorker {
            key: pod_key(pod),
            uid: uid.to_string(),
            spec,
            pod_ip,
            start_time_ns: pod.status.start_time_ns.unwrap_or(now_ns),
            started: runtime.has_pod(uid),
            containers,
            stopping_grace_ns: None,
            terminal_phase: None,
            last_posted: None,
            last_delete_request_ns: None,
            seen: None,
            seen_runtime_version: None,
            wakeup_ns: None,
            volatile: false,
            visit: false,
        })
    }
}

fn pod_key(pod: &Pod) -> ObjectKey {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    ObjectKey::new(Kind::Pod, &namespace, &pod.metadata.name)
}

/// Which referenced ConfigMap or Secret is missing, if any (`optional: true` references may be).
fn config_problem(pod: &Pod, spec: &PodSpec, config: &Cache) -> Option<ConfigProblem> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let data_has = |kind: Kind, name: &str, key: Option<&str>| -> bool {
        match config.get_by(kind, namespace, name).map(|object| object.as_ref()) {
            Some(Object::ConfigMap(map)) => key.is_none_or(|key| map.data.contains_key(key)),
            Some(Object::Secret(secret)) => {
                key.is_none_or(|key| secret.data.contains_key(key) || secret.string_data.contains_key(key))
            }
            _ => false,
        }
    };
    for container in &spec.containers {
        for env in &container.env {
            let Some(source) = &env.value_from else { continue };
            let refs = [(Kind::ConfigMap, &source.config_map_key_ref), (Kind::Secret, &source.secret_key_ref)];
            for (kind, selector) in refs {
                if let Some(selector) = selector {
                    if selector.optional != Some(true) && !data_has(kind, &selector.name, Some(&selector.key)) {
                        return Some(ConfigProblem::Env);
                    }
                }
            }
        }
        for source in &container.env_from {
            let refs = [(Kind::ConfigMap, &source.config_map_ref), (Kind::Secret, &source.secret_ref)];
            for (kind, reference) in refs {
                if let Some(reference) = reference {
                    if reference.optional != Some(true) && !data_has(kind, &reference.name, None) {
                        return Some(ConfigProblem::Env);
                    }
                }
            }
        }
    }
    for volume in &spec.volumes {
        if let Some(reference) = &volume.config_map {
            if reference.optional != Some(true) && !data_has(Kind::ConfigMap, &reference.name, None) {
                return Some(ConfigProblem::Volume);
            }
        }
        if let Some(source) = &volume.secret {
            if source.optional != Some(true) && !data_has(Kind::Secret, &source.secret_name, None) {
                return Some(ConfigProblem::Volume);
            }
        }
    }
    None
}

impl PodWorker {
    fn restart_policy(&self) -> RestartPolicy {
        self.spec.restart_policy.unwrap_or_default()
    }

    /// Start, stop, probe and restart, as due at `now_ns`.
    fn act(&mut self, pod: &Pod, runtime: &mut ContainerRuntime, config: Option<&Cache>, now_ns: u64) {
        if pod.metadata.is_terminating() {
            let grace_seconds = pod
                .metadata
                .deletion_grace_period_seconds
                .or(self.spec.termination_grace_period_seconds)
                .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS);
            let grace_ns = u64::try_from(grace_seconds).unwrap_or(0).saturating_mul(SECOND_NS);
            // A second delete with a shorter grace period shortens the stop; a longer one does not.
            if self.stopping_grace_ns.is_none_or(|current| grace_ns < current) {
                self.stopping_grace_ns = Some(grace_ns);
                runtime.stop_pod(&self.uid, grace_ns, now_ns);
            }
            for container in &mut self.containers {
                container.restart_at_ns = None;
            }
            return;
        }
        if self.terminal_phase.is_some() {
            return;
        }
        if !self.started {
            if config.is_some_and(|config| config_problem(pod, &self.spec, config).is_some()) {
                return;
            }
            runtime.run_pod(&self.uid, &self.pod_ip, &self.spec, now_ns);
            self.started = true;
            return;
        }
        let policy = self.restart_policy();
        for container in &mut self.containers {
            let Some(state) = runtime.container_state(&self.uid, &container.name) else { continue };
            // Probes of the current run.
            if let Some(started_at_ns) = state.started_at_ns() {
                let (uid, name) = (self.uid.as_str(), container.name.as_str());
                if let Some(readiness) = &mut container.readiness {
                    if readiness.track(started_at_ns) {
                        container.ready = false;
                    }
                    let repeat_is_noop = readiness.last_result() == Some(container.ready);
                    let result = readiness.probe(
                        repeat_is_noop,
                        now_ns,
                        || runtime.probe_inputs(uid, name, now_ns),
                        || runtime.probe_readiness(uid, name, now_ns),
                    );
                    if result.is_some() {
                        if !container.ready && readiness.successes >= readiness.timing.success_threshold {
                            container.ready = true;
                        } else if container.ready && readiness.failures >= readiness.timing.failure_threshold {
                            container.ready = false;
                        }
                    }
                }
                if let Some(liveness) = &mut container.liveness {
                    liveness.track(started_at_ns);
                    let repeat_is_noop = liveness.last_result() == Some(true);
                    let result = liveness.probe(
                        repeat_is_noop,
                        now_ns,
                        || runtime.probe_inputs(uid, name, now_ns),
                        || runtime.probe_liveness(uid, name, now_ns),
                    );
                    if result.is_some() && liveness.failures >= liveness.timing.failure_threshold {
                        // Killed now; the restart below follows the policy and the backoff.
                        runtime.kill_container(uid, name, now_ns);
                        container.ready = false;
                    }
                }
            }
            let state = runtime.container_state(&self.uid, &container.name).unwrap_or(state);
            match state {
                ContainerRunState::Exited { exit_code, finished_at_ns, .. } if !container.done => {
                    container.terminated_before = true;
                    container.ready = false;
                    let restart = match policy {
                        RestartPolicy::Always => true,
                        RestartPolicy::OnFailure => exit_code != 0,
                        RestartPolicy::Never => false,
                    };
                    if !restart {
                        container.done = true;
                        container.restart_at_ns = None;
                        continue;
                    }
                    match container.backoff.on_sync_after_exit(finished_at_ns, now_ns) {
                        Some(at_ns) => container.restart_at_ns = Some(at_ns),
                        None => {
                            container.restart_at_ns = None;
                            container.restart_count = container.restart_count.saturating_add(1);
                            runtime.restart_container(&self.uid, &container.name, now_ns);
                        }
                    }
                }
                ContainerRunState::PullFailed { at_ns } => {
                    if container.pull_failed_at_ns != Some(at_ns) {
                        container.pull_failed_at_ns = Some(at_ns);
                        container.pull_backoff.next(at_ns, now_ns);
                    } else if !container.pull_backoff.is_in_backoff_since(at_ns, now_ns) {
                        runtime.restart_container(&self.uid, &container.name, now_ns);
                    }
                }
                _ => {}
            }
        }
    }

    /// Updates per-container readiness from the runtime after this sync's operations.
    fn observe(&mut self, runtime: &ContainerRuntime, now_ns: u64, mutants: crate::mutants::Mutants) {
        for container in &mut self.containers {
            let state = runtime.container_state(&self.uid, &container.name);
            let running = state.is_some_and(|s| s.is_running());
            if let (Some(started_at_ns), Some(readiness)) =
                (state.and_then(|s| s.started_at_ns()), &mut container.readiness)
            {
                // A run that began in this sync gets its probe worker now (its first probe is due
                // after the initial delay).
                if readiness.track(started_at_ns) {
                    container.ready = false;
                }
            }
            if container.readiness.is_none() || mutants.contains(crate::mutants::Mutant::KubeletReadyBeforeProbe) {
                container.ready = running;
            } else if !running {
                container.ready = false;
            }
            if let Some(liveness) = &mut container.liveness {
                if let Some(started_at_ns) = state.and_then(|s| s.started_at_ns()) {
                    liveness.track(started_at_ns);
                }
            }
            if container.readiness.is_some() || container.liveness.is_some() {
                let current = runtime.probe_inputs(&self.uid, &container.name, now_ns);
                if let Some(readiness) = &mut container.readiness {
                    readiness.settle(readiness.last_result() == Some(container.ready), current);
                }
                if let Some(liveness) = &mut container.liveness {
                    liveness.settle(liveness.last_result() == Some(true), current);
                }
            }
        }
    }

    /// Whether a container status says ErrImagePull, which only the sync at the failure reports.
    fn reports_err_image_pull(&self, runtime: &ContainerRuntime, now_ns: u64) -> bool {
        self.containers.iter().any(|container| {
            matches!(runtime.container_state(&self.uid, &container.name),
                Some(ContainerRunState::PullFailed { at_ns }) if at_ns == now_ns)
        })
    }

    /// Whether every container has stopped (or never ran).
    fn stopped(&self, runtime: &ContainerRuntime) -> bool {
        self.containers.iter().all(|container| {
            runtime.container_state(&self.uid, &container.name).is_none_or(|state| !state.is_running())
        })
    }

    /// Times at which this worker has something to do (added to `times`).
    fn wakeups(&self, runtime: &ContainerRuntime, times: &mut Vec<u64>) {
        for container in &self.containers {
            let running = runtime.container_state(&self.uid, &container.name).is_some_and(|s| s.is_running());
            if running && self.stopping_grace_ns.is_none() {
                for probe in [&container.readiness, &container.liveness].into_iter().flatten() {
                    if probe.run_started_at_ns.is_some() {
                        times.extend(probe.wakeup_ns());
                    }
                }
            }
            times.extend(container.restart_at_ns);
            if let (Some(at_ns), Some(backoff_ns)) = (container.pull_failed_at_ns, container.pull_backoff.backoff_ns())
            {
                if matches!(
                    runtime.container_state(&self.uid, &container.name),
                    Some(ContainerRunState::PullFailed { .. })
                ) {
                    times.push(at_ns.saturating_add(backoff_ns));
                }
            }
        }
    }

    /// The status the kubelet would report now (`generateAPIPodStatus` and `getPhase`).
    fn status(
        &mut self,
        pod: &Pod,
        runtime: &ContainerRuntime,
        config: Option<&Cache>,
        now_ns: u64,
        host_ip: &str,
    ) -> PodStatus {
        let problem =
            if self.started { None } else { config.and_then(|config| config_problem(pod, &self.spec, config)) };
        let terminating = pod.metadata.is_terminating();
        let mut statuses = Vec::new();
        // getPhase's counts: a waiting container that terminated before counts as stopped.
        let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for container in &self.containers {
            let state = runtime.container_state(&self.uid, &container.name);
            let waiting_reason = |reason: &str| ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some(reason.to_string()) }),
                ..ContainerState::default()
            };
            let retrying_pull = container.pull_failed_at_ns.is_some();
            let container_state = match state {
                None => waiting_reason(match problem {
                    Some(ConfigProblem::Env) => "CreateContainerConfigError",
                    _ => "ContainerCreating",
                }),
                Some(ContainerRunState::Pulling { .. }) if retrying_pull => waiting_reason("ImagePullBackOff"),
                Some(ContainerRunState::Pulling { .. } | ContainerRunState::Starting { .. }) => {
                    waiting_reason("ContainerCreating")
                }
                // The sync that sees the failure reports ErrImagePull; later ones, ImagePullBackOff.
                Some(ContainerRunState::PullFailed { at_ns }) => {
                    waiting_reason(if now_ns == at_ns { "ErrImagePull" } else { "ImagePullBackOff" })
                }
                Some(
                    ContainerRunState::Running { started_at_ns } | ContainerRunState::Terminating { started_at_ns, .. },
                ) => ContainerState {
                    running: Some(ContainerStateRunning { started_at_ns: Some(started_at_ns) }),
                    ..ContainerState::default()
                },
                Some(ContainerRunState::Exited { .. }) if container.restart_at_ns.is_some() && !terminating => {
                    waiting_reason("CrashLoopBackOff")
                }
                Some(ContainerRunState::Exited { exit_code, finished_at_ns, .. }) => ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code,
                        reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.to_string()),
                        finished_at_ns: Some(finished_at_ns),
                    }),
                    ..ContainerState::default()
                },
            };
            if container_state.running.is_some() {
                running += 1;
            } else if let Some(terminated) = &container_state.terminated {
                stopped += 1;
                if terminated.exit_code == 0 {
                    succeeded += 1;
                }
            } else if container.terminated_before {
                stopped += 1;
            } else {
                waiting += 1;
            }
            statuses.push(ContainerStatus {
                name: container.name.clone(),
                ready: container.ready && container_state.running.is_some(),
                restart_count: container.restart_count,
                state: container_state,
                image: container.image.clone(),
            });
        }

        let all_done = self.containers.iter().all(|c| c.done);
        let pod_is_terminal = (terminating && self.stopped(runtime) && self.started) || (all_done && self.started);
        let phase = match self.terminal_phase {
            Some(phase) => phase,
            None if waiting > 0 => PodPhase::Pending,
            None if running > 0 => PodPhase::Running,
            None if stopped > 0 => {
                if pod_is_terminal {
                    if stopped == succeeded {
                        PodPhase::Succeeded
                    } else {
                        PodPhase::Failed
                    }
                } else if self.restart_policy() == RestartPolicy::Always {
                    PodPhase::Running
                } else if stopped == succeeded {
                    PodPhase::Succeeded
                } else if self.restart_policy() == RestartPolicy::Never {
                    PodPhase::Failed
                } else {
                    PodPhase::Running
                }
            }
            None => PodPhase::Pending,
        };
        if matches!(phase, PodPhase::Succeeded | PodPhase::Failed) {
            self.terminal_phase = Some(phase);
            for container in &mut self.containers {
                container.done = true;
                container.restart_at_ns = None;
            }
        }
        let terminal = self.terminal_phase.is_some();

        let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
        let previous = self.last_posted.as_ref().map_or(&pod.status.conditions, |(status, _)| &status.conditions);
        let condition = |condition_type: &str, holds: bool, reason: Option<&str>| {
            let status = if holds { ConditionStatus::True } else { ConditionStatus::False };
            let since = find_condition(previous, condition_type)
                .filter(|old| old.status == status)
                .and_then(|old| old.last_transition_time_ns)
                .unwrap_or(now_ns);
            Condition {
                condition_type: condition_type.to_string(),
                status,
                reason: if holds { None } else { reason.map(str::to_string) },
                last_transition_time_ns: Some(since),
                ..Condition::default()
            }
        };
        let not_ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
        let conditions = vec![
            condition("PodScheduled", true, None),
            condition("Initialized", true, None),
            condition("ContainersReady", all_ready && !terminal, Some(not_ready_reason)),
            condition("Ready", all_ready && !terminal, Some(not_ready_reason)),
        ];

        PodStatus {
            phase: Some(phase),
            conditions,
            container_statuses: statuses,
            host_ip: Some(host_ip.to_string()),
            pod_ip: Some(self.pod_ip.clone()),
            start_time_ns: Some(self.start_time_ns),
        }
    }
}
