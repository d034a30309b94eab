//! Always: during a rollout, a Deployment's available pods never fall below
//! `replicas - maxUnavailable`, except by losses a fault caused, each attributed to its fault.
//!
//! A rollout starts with a write that changes a Deployment's pod template and ends with the
//! status write that shows it complete (observedGeneration caught up; replicas, updatedReplicas
//! and availableReplicas all at `spec.replicas`). Availability is read from etcd's pod status, as
//! upstream's `IsPodAvailable` reads it: Ready for `minReadySeconds`, not terminating, not
//! finished. That is what the Deployment controller may know, so what its promise is about.
//!
//! The promise is about what the controller removes: a scale-up or a slow start never breaks it.
//! So the checker judges every loss (a pod that was available and is not any more). A loss on a
//! node or pod that a fault touched within [`super::FAULT_ATTRIBUTION_BOUND`] is attributed to the
//! fault and excused until the Deployment is fully available again; any other loss, while the
//! available pods plus the excused ones are below the floor, is a violation.

use super::faults::Harm;
use super::{Cadence, Change, Checker, Label, Violation, World};
use crate::objects::{LabelSelector, Object, StringMap};
use crate::rules::pod::is_pod_available;
use std::collections::BTreeMap;

/// What the checkers keep of a pod.
#[derive(Clone, Debug)]
pub(super) struct PodState {
    pub name: String,
    pub namespace: String,
    pub labels: StringMap,
    pub node: Option<String>,
    pub ready: bool,
    pub ready_since_ns: Option<u64>,
    /// Terminating or finished: never available again.
    pub gone: bool,
}

impl PodState {
    pub fn of(pod: &crate::objects::Pod) -> PodState {
        let ready = pod.is_ready();
        let finished = matches!(
            pod.status.phase,
            Some(crate::objects::pod::PodPhase::Succeeded) | Some(crate::objects::pod::PodPhase::Failed)
        );
        PodState {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            labels: pod.metadata.labels.clone(),
            node: pod.spec.node_name.clone().filter(|node| !node.is_empty()),
            ready,
            ready_since_ns: pod.status.ready_condition().and_then(|condition| condition.last_transition_time_ns),
            gone: pod.metadata.deletion_timestamp_ns.is_some() || finished,
        }
    }

    fn available(&self, min_ready_seconds: i32, now_ns: u64) -> bool {
        !self.gone && is_pod_available(self.ready, self.ready_since_ns, min_ready_seconds, now_ns)
    }
}

/// What the checkers keep of a Deployment.
#[derive(Clone, Debug)]
pub(super) struct DeploymentState {
    pub namespace: String,
    pub name: String,
    pub selector: LabelSelector,
    pub template_labels: StringMap,
    pub replicas: i32,
    pub max_unavailable: i32,
    pub min_ready_seconds: i32,
    /// When the current rollout started, if one is under way.
    pub rollout_since_ns: Option<u64>,
    /// Every rollout so far: (start, end; `None` while it lasts).
    pub rollouts: Vec<(u64, Option<u64>)>,
}

impl DeploymentState {
    pub fn selects(&self, pod: &PodState) -> bool {
        pod.namespace == self.namespace && self.selector.matches(&pod.labels)
    }
}

/// Follows Deployments and pods through the history, and when each rollout ran.
#[derive(Debug, Default)]
pub(super) struct RolloutTracker {
    /// By `namespace/name`.
    pub deployments: BTreeMap<String, DeploymentState>,
    /// By uid.
    pub pods: BTreeMap<String, PodState>,
}

fn complete(deployment: &crate::objects::Deployment) -> bool {
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let status = &deployment.status;
    status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
        && status.replicas == replicas
        && status.updated_replicas == replicas
        && status.available_replicas == replicas
}

impl RolloutTracker {
    /// Applies one write; returns whether it touched a pod or a Deployment.
    pub fn observe(&mut self, change: &Change) -> bool {
        match (change.object.as_deref(), change.previous.as_deref()) {
            (Some(Object::Pod(pod)), _) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                self.pods.insert(uid, PodState::of(pod));
                true
            }
            (None, Some(Object::Pod(pod))) => {
                self.pods.remove(pod.metadata.uid.as_deref().unwrap_or_default());
                true
            }
            (Some(Object::Deployment(deployment)), previous) => {
                let namespace = deployment.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                let key = format!("{namespace}/{}", deployment.metadata.name);
                let replicas = deployment.spec.replicas.unwrap_or(1);
                let strategy = crate::controllers::deployment::rules_strategy(deployment);
                let max_unavailable = crate::rules::deployment::max_unavailable(&strategy, replicas).unwrap_or(0);
                let template_changed = matches!(previous, Some(Object::Deployment(before))
                    if before.spec.template != deployment.spec.template);
                let state = self.deployments.entry(key).or_insert_with(|| DeploymentState {
                    namespace: namespace.clone(),
                    name: deployment.metadata.name.clone(),
                    selector: deployment.spec.selector.clone(),
                    template_labels: StringMap::new(),
                    replicas,
                    max_unavailable,
                    min_ready_seconds: 0,
                    rollout_since_ns: None,
                    rollouts: Vec::new(),
                });
                state.selector = deployment.spec.selector.clone();
                state.template_labels = deployment.spec.template.metadata.labels.clone();
                state.replicas = replicas;
                state.max_unavailable = max_unavailable;
                state.min_ready_seconds = deployment.spec.min_ready_seconds.unwrap_or(0);
                if template_changed && state.rollout_since_ns.is_none() {
                    state.rollout_since_ns = Some(change.at_ns);
                    state.rollouts.push((change.at_ns, None));
                }
                if state.rollout_since_ns.is_some() && !template_changed && complete(deployment) {
                    state.rollout_since_ns = None;
                    if let Some(last) = state.rollouts.last_mut() {
                        last.1 = Some(change.at_ns);
                    }
                }
                true
            }
            (None, Some(Object::Deployment(deployment))) => {
                let namespace = deployment.metadata.namespace.as_deref().unwrap_or("default");
                if let Some(state) = self.deployments.get_mut(&format!("{namespace}/{}", deployment.metadata.name)) {
                    state.rollout_since_ns = None;
                    if let Some(last) = state.rollouts.last_mut().filter(|last| last.1.is_none()) {
                        last.1 = Some(change.at_ns);
                    }
                }
                true
            }
            _ => false,
        }
    }
}

/// Per Deployment, what the availability checker remembers between looks.
#[derive(Debug, Default)]
struct Availability {
    /// Pods available at the last look (uid -> (node, name)).
    available: BTreeMap<String, (Option<String>, String)>,
    /// Losses attributed to a fault: uid -> the fault, in words.
    excused: BTreeMap<String, String>,
}

/// The rollout-availability checker.
#[derive(Debug, Default)]
pub struct RolloutAvailability {
    tracker: RolloutTracker,
    state: BTreeMap<String, Availability>,
    /// Whether a pod or Deployment changed since the last look.
    dirty: bool,
    /// Losses judged, and looks at a Deployment in rollout.
    judged: u64,
}

impl Checker for RolloutAvailability {
    fn name(&self) -> &'static str {
        "rollout-availability"
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn cadence(&self) -> Cadence {
        Cadence::Writes
    }

    fn exercised(&self) -> u64 {
        self.judged
    }

    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        self.dirty |= self.tracker.observe(change);
        Vec::new()
    }

    fn inspect(&mut self, world: &World<'_>) -> Vec<Violation> {
        if !std::mem::take(&mut self.dirty) {
            return Vec::new();
        }
        let now_ns = world.now_ns;
        let mut violations = Vec::new();
        for (key, deployment) in &self.tracker.deployments {
            let memory = self.state.entry(key.clone()).or_default();
            let available: BTreeMap<String, (Option<String>, String)> = self
                .tracker
                .pods
                .iter()
                .filter(|(_, pod)| deployment.selects(pod) && pod.available(deployment.min_ready_seconds, now_ns))
                .map(|(uid, pod)| (uid.clone(), (pod.node.clone(), pod.name.clone())))
                .collect();
            let lost: Vec<(String, (Option<String>, String))> = memory
                .available
                .iter()
                .filter(|(uid, _)| !available.contains_key(*uid))
                .map(|(uid, pod)| (uid.clone(), pod.clone()))
                .collect();
            memory.excused.retain(|uid, _| !available.contains_key(uid));
            if available.len() as i32 >= deployment.replicas {
                memory.excused.clear();
            }
            let floor = deployment.replicas - deployment.max_unavailable;
            let in_rollout = deployment.rollout_since_ns.is_some();
            let mut unexcused = Vec::new();
            for (uid, (node, name)) in lost {
                self.judged += 1;
                let explained = node.as_deref().and_then(|node| {
                    world.faults.explain(node, Some(&uid), Harm::Degraded, now_ns.saturating_sub(1), now_ns)
                });
                match explained {
                    Some(fault) => {
                        memory.excused.insert(uid, format!("{name}: {fault}"));
                    }
                    None => unexcused.push(format!("{name} on {}", node.as_deref().unwrap_or("no node"))),
                }
            }
            let counted = available.len() + memory.excused.len();
            if in_rollout && !unexcused.is_empty() && (counted as i32) < floor {
                violations.push(Violation {
                    invariant: "rollout-availability",
                    at_ns: now_ns,
                    revision: world.revision,
                    message: format!(
                        "deployment {key}: {} available pods during its rollout, below replicas {} - maxUnavailable {} = {floor}; lost with no fault to blame: {}{}",
                        available.len(),
                        deployment.replicas,
                        deployment.max_unavailable,
                        unexcused.join(", "),
                        if memory.excused.is_empty() {
                            String::new()
                        } else {
                            format!("; excused: {}", memory.excused.values().cloned().collect::<Vec<_>>().join(", "))
                        }
                    ),
                });
            }
            memory.available = available;
        }
        violations
    }
}
