//! The two-phase run: a cluster, a timeline of user actions, a fault plan and the invariant
//! checkers, run as TigerBeetle's VOPR runs a seed.
//!
//! 1. **Fault phase** (safety): the timeline's actions are carried out at their times, the fault
//!    plan strikes, and the always-checkers look at every committed write.
//! 2. **Heal**: [`kubedst_sim::Sim::end_fault_phase`] repairs the network, restarts crashed
//!    machines and sets clocks right; model-level faults end too.
//! 3. **Liveness phase**: the cluster must converge within `liveness_bound`; the eventually-checkers
//!    are asked every second of virtual time and the run ends as soon as they all hold. If the bound
//!    passes first, each unmet promise is a violation and `pending` says, in words, what is missing.
//!
//! This is the one entry point that the property suites (`tests/`), the `kubedst` command and
//! library users share, so that a seed means the same run everywhere.

use crate::api::{ApiRequest, ObjectKey, Propagation};
use crate::checkers::{Cadence, CheckerSet, FaultLog, Violation, World};
use crate::cluster::{Cluster, ClusterConfig};
use crate::etcd::Etcd;
use crate::objects::{Kind, Object};
use kubedst_sim::{FaultSchedule, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// A user action of the scenario's timeline: what someone at a terminal would type.
#[derive(Clone, Debug)]
pub enum Action {
    /// `kubectl apply -f`: each object is created, or replaces the stored one's spec if it exists.
    Apply(Vec<Object>),
    /// `kubectl set image deployment/NAME CONTAINER=IMAGE`.
    SetImage { namespace: String, deployment: String, container: String, image: String },
    /// `kubectl scale KIND/NAME --replicas=N` (Deployment, ReplicaSet or Job parallelism).
    Scale { kind: Kind, namespace: String, name: String, replicas: i32 },
    /// `kubectl rollout undo deployment/NAME [--to-revision=N]`.
    RolloutUndo { namespace: String, deployment: String, to_revision: Option<i64> },
    /// `kubectl rollout pause|resume deployment/NAME`.
    SetPaused { namespace: String, deployment: String, paused: bool },
    /// `kubectl delete KIND/NAME [--cascade=...]`.
    Delete { key: ObjectKey, propagation: Option<Propagation> },
    /// `kubectl cordon|uncordon NODE`.
    Cordon { node: String, unschedulable: bool },
    /// `kubectl drain NODE`: cordon, then evict every pod on it through the Eviction API.
    Drain { node: String },
    /// Traffic source `source` (an index into `ClusterConfig::traffic`) now sends one request per
    /// `interval`; `None` stops it.
    SetTraffic { source: usize, interval: Option<Duration> },
}

/// An action at a virtual time (from the start of the run).
#[derive(Clone, Debug)]
pub struct TimedAction {
    pub at: Duration,
    pub action: Action,
}

/// A fault of the Kubernetes model that the engine cannot express (the engine's own faults act on
/// machines and links only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelFault {
    /// etcd compacts its history up to its current revision at once, so every watch that has not
    /// caught up gets 410 Gone and its informer relists.
    CompactNow,
    /// The watch cache of the API server on machine `server` (`control-plane-<i>`) stops applying
    /// etcd's events for `duration`: it serves stale reads and stale watches meanwhile, then
    /// applies everything it held back at once (a slow apiserver under load).
    WatchCacheLag {
        server: String,
        #[serde(with = "kubedst_sim::serde_duration")]
        duration: Duration,
    },
    /// One running container on `node` crashes (exit code 1) as an app bug would make it; the
    /// kubelet restarts it per the pod's restartPolicy with its back-off. `nth` picks the
    /// container among those running, in (pod uid, container) order, modulo their number.
    ContainerCrash { node: String, nth: u32 },
    /// Every pull of `image` that starts within `duration` fails (a registry outage) on every
    /// node: ErrImagePull, then ImagePullBackOff until a retry after the outage succeeds.
    PullFailure {
        image: String,
        #[serde(with = "kubedst_sim::serde_duration")]
        duration: Duration,
    },
}

impl ModelFault {
    /// The name under which [`RunReport::faults_fired`] counts the fault.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ModelFault::CompactNow => "compact_now",
            ModelFault::WatchCacheLag { .. } => "watch_cache_lag",
            ModelFault::ContainerCrash { .. } => "container_crash",
            ModelFault::PullFailure { .. } => "pull_failure",
        }
    }

    /// How long the fault lasts, for faults that end by themselves.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            ModelFault::WatchCacheLag { duration, .. } | ModelFault::PullFailure { duration, .. } => Some(*duration),
            ModelFault::CompactNow | ModelFault::ContainerCrash { .. } => None,
        }
    }
}

/// A model fault at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedModelFault {
    #[serde(with = "kubedst_sim::serde_duration")]
    pub at: Duration,
    pub fault: ModelFault,
}

/// Every fault of a run: the engine's schedule and the model's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub engine: FaultSchedule,
    #[serde(default)]
    pub model: Vec<TimedModelFault>,
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.engine.is_empty() && self.model.is_empty()
    }

    /// How many faults the plan holds.
    pub fn len(&self) -> usize {
        self.engine.len() + self.model.len()
    }
}

/// Everything a run needs besides the seed (which is in `cluster.sim.seed`).
#[derive(Clone)]
pub struct RunSpec {
    pub cluster: ClusterConfig,
    pub actions: Vec<TimedAction>,
    pub faults: FaultPlan,
    /// When the fault phase ends and everything heals (virtual time from the start).
    pub fault_phase: Duration,
    /// How long after the heal the cluster has to converge.
    pub liveness_bound: Duration,
}

/// A run's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// What a run found. Wall-clock time is not here: nothing inside a run reads the OS clock; the
/// caller measures it.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub verdict: Verdict,
    pub trace_hash: String,
    pub virtual_time_ns: u64,
    pub events: u64,
    pub violations: Vec<ViolationReport>,
    /// Fault kind (engine and model) to how many times it really struck.
    pub faults_fired: BTreeMap<String, u64>,
    /// What was still unfinished when the liveness bound passed, in words.
    pub pending: Vec<String>,
    /// How many committed writes of each kind the checkers looked at.
    pub observed_writes: BTreeMap<String, u64>,
    /// Invariant name -> how many observations of it could have failed (writes, states,
    /// requests judged by the always-checkers; times asked, for the eventual promises). A zero
    /// means the promise was not exercised by this run.
    pub exercised: BTreeMap<String, u64>,
}

/// One broken invariant, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViolationReport {
    pub invariant: String,
    pub at_ns: u64,
    pub message: String,
}

impl From<&Violation> for ViolationReport {
    fn from(violation: &Violation) -> ViolationReport {
        ViolationReport {
            invariant: violation.invariant.to_string(),
            at_ns: violation.at_ns,
            message: violation.message.clone(),
        }
    }
}

/// An eventual promise of a user's (library mode): asked every second of the liveness phase with
/// the cluster's ground truth, it says in words what is still unmet; the run converges when every
/// built-in promise and every added one holds.
pub trait EventualPromise {
    /// The invariant's name in reports (`app-ready`).
    fn name(&self) -> &'static str;
    /// What is still unmet, one sentence each; empty when the promise holds.
    fn unmet(&self, cluster: &Cluster) -> Vec<String>;
}

/// A run in progress, for callers that want to look between the phases (library mode).
pub struct Harness {
    pub cluster: Cluster,
    pub checkers: CheckerSet,
    /// Which machines and pods the faults touched, and when: what the checkers attribute losses
    /// to. Model faults that hit a pod or a machine record themselves here when they strike.
    pub fault_log: FaultLog,
    /// How many times each eventual promise was asked.
    eventual_asked: BTreeMap<&'static str, u64>,
    /// Whether any checker looks after every engine step.
    every_step: bool,
    spec: RunSpec,
    /// The timeline, actions and model faults merged, in time order (stable for ties).
    timeline: Vec<(Duration, Step)>,
    next_step: usize,
    model_faults_fired: BTreeMap<String, u64>,
    errors: Vec<ViolationReport>,
    pending: Vec<String>,
    /// The unmet eventual promises behind `pending`.
    unmet: Vec<crate::checkers::Unmet>,
    /// The run hit its budget and cannot go on.
    stopped: bool,
    /// Users' eventual promises, asked with the built-in ones.
    promises: Vec<Box<dyn EventualPromise>>,
}

#[derive(Clone, Debug)]
enum Step {
    Action(Action),
    Fault(ModelFault),
}

impl Harness {
    /// Builds the cluster and installs the engine's fault schedule. An engine schedule that names
    /// machines the cluster does not have is an error.
    pub fn new(spec: RunSpec) -> Result<Harness, String> {
        let mut cluster = Cluster::build(spec.cluster.clone());
        cluster.sim.install_faults(&spec.faults.engine).map_err(|err| err.to_string())?;
        let mut timeline: Vec<(Duration, Step)> = spec
            .actions
            .iter()
            .map(|timed| (timed.at, Step::Action(timed.action.clone())))
            .chain(spec.faults.model.iter().map(|timed| (timed.at, Step::Fault(timed.fault.clone()))))
            .collect();
        timeline.sort_by_key(|(at, _)| *at);
        let checkers = CheckerSet::new(crate::checkers::safety_checkers());
        Ok(Harness {
            cluster,
            every_step: checkers.wants_every_step(),
            checkers,
            fault_log: FaultLog::from_schedule(&spec.faults.engine),
            eventual_asked: BTreeMap::new(),
            spec,
            timeline,
            next_step: 0,
            model_faults_fired: BTreeMap::new(),
            errors: Vec::new(),
            pending: Vec::new(),
            unmet: Vec::new(),
            stopped: false,
            promises: Vec::new(),
        })
    }

    /// Runs every step up to `until`, carrying out the timeline and feeding the checkers after
    /// every engine step that committed a write.
    fn run_to(&mut self, until: Time) {
        while !self.stopped {
            let next_timeline = self.timeline.get(self.next_step).map(|(at, _)| Time::from_nanos(at.as_nanos() as u64));
            let stop = match next_timeline {
                Some(at) if at <= until => at,
                _ => until,
            };
            self.run_engine_to(stop);
            if stop == until && next_timeline.is_none_or(|at| at > until) {
                return;
            }
            let (_, step) = self.timeline[self.next_step].clone();
            self.next_step += 1;
            self.carry_out(step);
        }
    }

    fn run_engine_to(&mut self, until: Time) {
        let mut last_revision = self.etcd_revision();
        while self.cluster.sim.now() < until {
            match self.cluster.sim.step_until(until) {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    // The run's own event or time budget ran out: that is a failure of the run,
                    // reported with what was still pending, and the run goes no further.
                    let at_ns = self.cluster.sim.now().as_nanos();
                    self.errors.push(ViolationReport { invariant: "budget".into(), at_ns, message: error.to_string() });
                    self.stopped = true;
                    break;
                }
            }
            let revision = self.etcd_revision();
            if revision != last_revision {
                last_revision = revision;
                self.check();
                self.inspect(Cadence::Writes, revision);
            }
            if self.every_step {
                self.inspect(Cadence::EveryStep, revision);
            }
        }
    }

    fn etcd_revision(&self) -> crate::store::Revision {
        self.cluster.sim.component::<Etcd>(self.cluster.etcd).map_or(0, |etcd| etcd.store().current_revision())
    }

    fn check(&mut self) {
        let now_ns = self.cluster.sim.now().as_nanos();
        let Some(etcd) = self.cluster.sim.component::<Etcd>(self.cluster.etcd) else { return };
        if let Err(message) = self.checkers.check(etcd, now_ns) {
            self.errors.push(ViolationReport { invariant: "harness".into(), at_ns: now_ns, message });
        }
    }

    /// Lets the checkers of `cadence` look at the components' state.
    fn inspect(&mut self, cadence: Cadence, revision: crate::store::Revision) {
        let world = World {
            cluster: &self.cluster,
            faults: &self.fault_log,
            now_ns: self.cluster.sim.now().as_nanos(),
            revision,
        };
        self.checkers.inspect(&world, cadence);
    }

    /// Replaces the checkers (for example with a subset, or with users' own); call before the run.
    pub fn set_checkers(&mut self, checkers: CheckerSet) {
        self.every_step = checkers.wants_every_step();
        self.checkers = checkers;
    }

    /// Adds a user's eventual promise; call before the liveness phase.
    pub fn add_promise(&mut self, promise: Box<dyn EventualPromise>) {
        self.promises.push(promise);
    }

    fn carry_out(&mut self, step: Step) {
        match step {
            Step::Action(action) => self.act(action),
            Step::Fault(fault) => {
                let name = fault.kind_name();
                let struck = match fault {
                    ModelFault::CompactNow => self.cluster.compact_now(),
                    ModelFault::WatchCacheLag { server, duration } => self.cluster.lag_watch_cache(&server, duration),
                    ModelFault::ContainerCrash { node, nth } => {
                        let struck = self.cluster.crash_container(&node, nth);
                        if struck {
                            // The checkers may excuse a loss on that node's pods: which container
                            // the kubelet picks is its choice, so the fault names the node only.
                            let at_ns = self.cluster.sim.now().as_nanos();
                            self.fault_log.pod_fault(&node, None, "container crash", at_ns);
                        }
                        struck
                    }
                    ModelFault::PullFailure { image, duration } => self.cluster.fail_pulls(&image, duration),
                };
                if struck {
                    *self.model_faults_fired.entry(name.to_string()).or_insert(0) += 1;
                }
            }
        }
    }

    /// Carries out one user action as kubectl would: read the object (a quorum read: etcd's
    /// current value), change it, send the write.
    fn act(&mut self, action: Action) {
        let cluster = &mut self.cluster;
        match action {
            Action::Apply(objects) => {
                for object in objects {
                    let key = ObjectKey::of(&object);
                    match cluster.stored(&key) {
                        None => cluster.create(object),
                        Some(stored) => {
                            let mut object = object;
                            // kubectl apply patches, which the server applies to the current
                            // object. A custom resource refuses an update without a
                            // resourceVersion, so its update carries the one just read.
                            object.meta_mut().resource_version = match &object {
                                Object::Custom(_) => stored.meta().resource_version.clone(),
                                _ => None,
                            };
                            cluster.submit(ApiRequest::Update { object: Rc::new(object) });
                        }
                    }
                }
            }
            Action::SetImage { namespace, deployment, container, image } => {
                let key = ObjectKey::new(Kind::Deployment, &namespace, &deployment);
                update_stored(cluster, &key, |object| {
                    let Object::Deployment(deployment) = object else { return };
                    for spec in &mut deployment.spec.template.spec.containers {
                        if spec.name == container {
                            spec.image = image.clone();
                        }
                    }
                });
            }
            Action::Scale { kind, namespace, name, replicas } => {
                let key = ObjectKey::new(kind, &namespace, &name);
                update_stored(cluster, &key, |object| match object {
                    Object::Deployment(deployment) => deployment.spec.replicas = Some(replicas),
                    Object::ReplicaSet(replica_set) => replica_set.spec.replicas = Some(replicas),
                    Object::Job(job) => job.spec.parallelism = Some(replicas),
                    _ => {}
                });
            }
            Action::RolloutUndo { namespace, deployment, to_revision } => {
                let key = ObjectKey::new(Kind::Deployment, &namespace, &deployment);
                let Some(stored) = cluster.stored(&key) else { return };
                let Object::Deployment(deployment) = &*stored else { return };
                let sets = cluster.stored_all(Kind::ReplicaSet);
                let owned: Vec<&crate::objects::ReplicaSet> = sets
                    .iter()
                    .filter_map(|object| match &**object {
                        Object::ReplicaSet(set)
                            if set.metadata.namespace == deployment.metadata.namespace
                                && set
                                    .metadata
                                    .owner_references
                                    .iter()
                                    .any(|owner| Some(&owner.uid) == deployment.metadata.uid.as_ref()) =>
                        {
                            Some(set)
                        }
                        _ => None,
                    })
                    .collect();
                if let Ok(request) = crate::controllers::rollback_request(deployment, &owned, to_revision) {
                    cluster.submit(request);
                }
            }
            Action::SetPaused { namespace, deployment, paused } => {
                let key = ObjectKey::new(Kind::Deployment, &namespace, &deployment);
                update_stored(cluster, &key, |object| {
                    if let Object::Deployment(deployment) = object {
                        deployment.spec.paused = paused;
                    }
                });
            }
            Action::Delete { key, propagation } => {
                cluster.submit(ApiRequest::Delete { key, uid: None, grace_period_seconds: None, propagation });
            }
            Action::Cordon { node, unschedulable } => {
                let key = ObjectKey::new(Kind::Node, "", &node);
                update_stored(cluster, &key, |object| {
                    if let Object::Node(node) = object {
                        node.spec.unschedulable = unschedulable;
                    }
                });
            }
            Action::Drain { node } => {
                let key = ObjectKey::new(Kind::Node, "", &node);
                update_stored(cluster, &key, |object| {
                    if let Object::Node(node) = object {
                        node.spec.unschedulable = true;
                    }
                });
                for object in cluster.stored_all(Kind::Pod) {
                    let Object::Pod(pod) = &*object else { continue };
                    if pod.spec.node_name.as_deref() == Some(node.as_str()) {
                        cluster.submit(ApiRequest::Evict {
                            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                            pod: pod.metadata.name.clone(),
                        });
                    }
                }
            }
            Action::SetTraffic { source, interval } => cluster.set_traffic(source, interval),
        }
    }

    /// The fault phase: runs to `spec.fault_phase`.
    pub fn run_fault_phase(&mut self) {
        self.run_to(Time::from_nanos(self.spec.fault_phase.as_nanos() as u64));
    }

    /// Ends every fault.
    pub fn heal(&mut self) {
        self.cluster.sim.end_fault_phase();
        // Model faults with a duration end too; runs that had none send nothing, so their traces
        // stay as they were.
        if self.spec.faults.model.iter().any(|timed| timed.fault.duration().is_some()) {
            self.cluster.heal_model_faults();
        }
        self.fault_log.heal(self.cluster.sim.now().as_nanos());
    }

    /// The liveness phase: runs until the cluster has converged or the bound passes. Returns
    /// whether it converged.
    pub fn run_liveness_phase(&mut self) -> bool {
        let deadline = self.cluster.sim.now() + self.spec.liveness_bound;
        loop {
            let next = (self.cluster.sim.now() + Duration::from_secs(1)).min(deadline);
            self.run_to(next);
            crate::checkers::liveness::count_asked(&mut self.eventual_asked);
            self.unmet = crate::checkers::unmet_promises(&self.cluster);
            for promise in &self.promises {
                *self.eventual_asked.entry(promise.name()).or_insert(0) += 1;
                let messages = promise.unmet(&self.cluster);
                self.unmet.extend(
                    messages.into_iter().map(|message| crate::checkers::Unmet { invariant: promise.name(), message }),
                );
            }
            self.pending = self.unmet.iter().map(|unmet| unmet.message.clone()).collect();
            if self.pending.is_empty() {
                return true;
            }
            if self.cluster.sim.now() >= deadline || self.stopped {
                return false;
            }
        }
    }

    /// The report of the run so far.
    pub fn report(&self) -> RunReport {
        let mut violations: Vec<ViolationReport> = self.checkers.violations.iter().map(ViolationReport::from).collect();
        violations.extend(self.errors.iter().cloned());
        let now_ns = self.cluster.sim.now().as_nanos();
        violations.extend(self.unmet.iter().map(|unmet| ViolationReport {
            invariant: unmet.invariant.into(),
            at_ns: now_ns,
            message: unmet.message.clone(),
        }));
        let mut faults_fired: BTreeMap<String, u64> = self
            .cluster
            .sim
            .accounting()
            .faults_fired
            .iter()
            .map(|(kind, count)| (kind.as_str().to_string(), *count))
            .collect();
        faults_fired.extend(self.model_faults_fired.iter().map(|(kind, count)| (kind.clone(), *count)));
        RunReport {
            seed: self.cluster.sim.seed(),
            verdict: if violations.is_empty() { Verdict::Pass } else { Verdict::Fail },
            trace_hash: format!("{:016x}", self.cluster.sim.trace_hash()),
            virtual_time_ns: now_ns,
            events: self.cluster.sim.events_processed(),
            violations,
            faults_fired,
            pending: self.pending.clone(),
            observed_writes: self
                .checkers
                .observed
                .iter()
                .map(|(kind, count)| (kind.as_str().to_string(), *count))
                .collect(),
            exercised: self
                .checkers
                .exercised()
                .into_iter()
                .chain(self.eventual_asked.iter().map(|(name, count)| (*name, *count)))
                .map(|(name, count)| (name.to_string(), count))
                .collect(),
        }
    }
}

/// Reads the stored object, changes it and sends it back as an unconditional update (kubectl's
/// read-modify-write). Nothing happens if the object is gone.
fn update_stored(cluster: &mut Cluster, key: &ObjectKey, change: impl FnOnce(&mut Object)) {
    let Some(stored) = cluster.stored(key) else { return };
    let mut object = (*stored).clone();
    change(&mut object);
    object.meta_mut().resource_version = None;
    cluster.submit(ApiRequest::Update { object: Rc::new(object) });
}

/// Runs a spec through both phases and reports.
pub fn run(spec: RunSpec) -> Result<RunReport, String> {
    let mut harness = Harness::new(spec)?;
    harness.run_fault_phase();
    harness.heal();
    harness.run_liveness_phase();
    Ok(harness.report())
}
