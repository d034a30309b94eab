//! kube-scheduler's scheduling cycle as a reconciler (`pkg/scheduler/schedule_one.go`,
//! `internal/cache` assumed pods, `internal/queue` backoff), with the filters and scores of
//! [`crate::rules::scheduling`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{ApiError, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::pod::{TaintEffect as ObjectTaintEffect, TolerationOperator as ObjectTolerationOperator};
use crate::objects::{Kind, Node, Object, Pod};
use crate::rules::scheduling::{self as rules_scheduling, NodeFitInfo, PodFitInfo, Resources, TaintEffect};

use super::is_pod_terminal;

/// First retry of an unschedulable pod (`podInitialBackoffDuration`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry interval (`podMaxBackoffDuration`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often to look again at a pod whose binding has not answered yet.
pub const BIND_POLL: Duration = Duration::from_secs(1);
/// Pods a node takes when its status does not say (the kubelet's default `maxPods`).
pub const DEFAULT_MAX_PODS: i64 = 110;
/// Upstream's message when the cluster has no node at all (`ErrNoNodesAvailable`).
pub const NO_NODES_MESSAGE: &str = "no nodes available to schedule pods";

/// Weights of the score plugins in the default profile that are modelled.
const WEIGHT_RESOURCES: i64 = 1;
const WEIGHT_SPREAD: i64 = 2;
const WEIGHT_TAINTS: i64 = 3;

/// A pod this scheduler bound (or is binding) that the cache does not show bound yet.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Assumed {
    uid: Option<String>,
    node: String,
    fit: PodFitInfo,
    /// The owner uid, for spreading.
    owner_uid: Option<String>,
    /// The bind succeeded; waiting for the watch to show it.
    bound: bool,
}

/// Why a pod waits, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Unschedulable {
    message: String,
    attempts: u32,
    retry_at_ns: u64,
}

/// `Scheduler`: places each unassigned pod on a node that fits, by binding it (`scheduleOne`).
///
/// One reconcile is one scheduling cycle for one pod: filter every node (NodeUnschedulable,
/// TaintToleration, NodeAffinity's nodeSelector, NodeResourcesFit), score the fitting ones, pick
/// uniformly among the best with the host's seeded stream (`selectHost`), emit a Bind and assume
/// the pod on that node so that the next cycles count its requests. Node readiness is seen
/// through the `node.kubernetes.io/not-ready` and `unreachable` taints, as upstream (the node
/// lifecycle controller sets them); there is no separate check of the Ready condition.
///
/// Scores: NodeResourcesFit LeastAllocated (weight 1), spreading of pods with the same
/// controller (the node part of SelectorSpread, weight 2, standing in for PodTopologySpread's
/// system default), TaintToleration on PreferNoSchedule taints (weight 3). Not modelled:
/// affinity and anti-affinity, topology spread constraints, preemption, priority ordering of the
/// queue, scheduler names (every pod is ours), image locality, balanced allocation.
///
/// When no node fits, the pod keeps upstream's `0/N nodes are available: ...` message
/// ([`Scheduler::last_failure`]) and is retried after a backoff of 1 s doubling to 10 s; a node
/// change or the deletion of an assigned pod makes it eligible again once its backoff passes.
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    assumed: BTreeMap<ObjectKey, Assumed>,
    unschedulable: BTreeMap<ObjectKey, Unschedulable>,
    /// Pods seen bound (not terminal), with their node, requests and owner: the scheduler cache,
    /// kept up to date from events so that a cycle need not scan every pod.
    bound: BTreeMap<ObjectKey, (String, PodFitInfo, Option<String>)>,
    /// The sums of `bound` per node.
    usage: BTreeMap<String, NodeUsage>,
    /// The nodes in the rules' terms, rebuilt after a node event.
    nodes: Option<Vec<NodeFitInfo>>,
    mutants: crate::mutants::Mutants,
}

/// What the bound pods of one node add up to.
#[derive(Clone, Debug, Default)]
struct NodeUsage {
    on_node: NodeFitInfo,
    by_owner: BTreeMap<String, i64>,
}

fn taint_effect(effect: ObjectTaintEffect) -> TaintEffect {
    match effect {
        ObjectTaintEffect::NoSchedule => TaintEffect::NoSchedule,
        ObjectTaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
        ObjectTaintEffect::NoExecute => TaintEffect::NoExecute,
    }
}

/// The pod's requests, nodeSelector and tolerations in the rules' terms.
pub fn pod_fit_info(pod: &Pod) -> PodFitInfo {
    let (cpu, memory) = pod.total_requests();
    PodFitInfo {
        requests: Resources {
            cpu_millis: i64::try_from(cpu.0).unwrap_or(i64::MAX),
            memory_bytes: i64::try_from(memory.0).unwrap_or(i64::MAX),
        },
        node_selector: pod.spec.node_selector.clone(),
        tolerations: pod
            .spec
            .tolerations
            .iter()
            .map(|t| rules_scheduling::Toleration {
                key: t.key.clone().unwrap_or_default(),
                operator: match t.operator.unwrap_or_default() {
                    ObjectTolerationOperator::Equal => rules_scheduling::TolerationOperator::Equal,
                    ObjectTolerationOperator::Exists => rules_scheduling::TolerationOperator::Exists,
                },
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.map(taint_effect),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
    }
}

/// The node in the rules' terms, with nothing on it yet.
pub fn node_fit_info(node: &Node) -> NodeFitInfo {
    let allocatable = &node.status.allocatable;
    NodeFitInfo {
        name: node.metadata.name.clone(),
        labels: node.metadata.labels.clone(),
        taints: node
            .spec
            .taints
            .iter()
            .map(|t| rules_scheduling::Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: taint_effect(t.effect),
            })
            .collect(),
        unschedulable: node.spec.unschedulable,
        allocatable: Resources {
            cpu_millis: allocatable.cpu.map_or(0, |v| i64::try_from(v.0).unwrap_or(i64::MAX)),
            memory_bytes: allocatable.memory.map_or(0, |v| i64::try_from(v.0).unwrap_or(i64::MAX)),
        },
        allocatable_pods: allocatable.pods.map_or(DEFAULT_MAX_PODS, |v| i64::try_from(v.0).unwrap_or(i64::MAX)),
        ..NodeFitInfo::default()
    }
}

fn owner_uid(pod: &Pod) -> Option<String> {
    pod.metadata.controller_ref().map(|owner| owner.uid.clone())
}

/// `DefaultNormalizeScore(MaxNodeScore, reverse=true)` of the PreferNoSchedule counts.
fn taint_scores(counts: &[i64]) -> Vec<i64> {
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&count| {
            if max == 0 {
                rules_scheduling::MAX_NODE_SCORE
            } else {
                rules_scheduling::MAX_NODE_SCORE - rules_scheduling::MAX_NODE_SCORE * count / max
            }
        })
        .collect()
}

impl Scheduler {
    /// A controller with no state yet: no expectations, assumptions or backoffs.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// The scheduler with deliberate bugs switched on (negative controls).
    pub fn with_mutants(mut self, mutants: crate::mutants::Mutants) -> Scheduler {
        self.mutants = mutants;
        self
    }

    /// Why the pod could not be scheduled on its last attempt (`0/N nodes are available: ...`),
    /// for liveness reports; `None` once it is scheduled or gone.
    pub fn last_failure(&self, pod: &ObjectKey) -> Option<&str> {
        self.unschedulable.get(pod).map(|u| u.message.as_str())
    }

    /// Pods waiting because no node fits, with their messages, in key order.
    pub fn unschedulable_pods(&self) -> impl Iterator<Item = (&ObjectKey, &str)> {
        self.unschedulable.iter().map(|(key, u)| (key, u.message.as_str()))
    }

    /// The node the scheduler assumed a pod on (bound or binding, not yet seen bound).
    pub fn assumed_node(&self, pod: &ObjectKey) -> Option<&str> {
        self.assumed.get(pod).map(|a| a.node.as_str())
    }

    /// The scheduler cache's NodeInfos: every node with the non-terminal pods bound to it and
    /// the assumed pods.
    fn node_infos(&mut self, cache: &Cache, owner: Option<&str>) -> (Vec<NodeFitInfo>, Vec<i64>) {
        // Nodes change rarely: their rules' view is rebuilt only after a node event.
        let nodes = self.nodes.get_or_insert_with(|| {
            cache
                .list(Kind::Node, None)
                .into_iter()
                .filter_map(|object| match &**object {
                    Object::Node(node) => Some(node_fit_info(node)),
                    _ => None,
                })
                .collect()
        });
        let mut infos = nodes.clone();
        let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, node)| (node.name.as_str(), i)).collect();
        let mut same_owner = vec![0i64; infos.len()];
        for (node, usage) in &self.usage {
            if let Some(&i) = index.get(node.as_str()) {
                let info = &mut infos[i];
                info.requested = usage.on_node.requested;
                info.nonzero_requested = usage.on_node.nonzero_requested;
                info.pod_count = usage.on_node.pod_count;
                if let Some(owner) = owner {
                    same_owner[i] = usage.by_owner.get(owner).copied().unwrap_or(0);
                }
            }
        }
        for assumed in self.assumed.values() {
            if let Some(&i) = index.get(assumed.node.as_str()) {
                infos[i].add_pod(&assumed.fit);
                if owner.is_some() && assumed.owner_uid.as_deref() == owner {
                    same_owner[i] += 1;
                }
            }
        }
        if self.mutants.contains(crate::mutants::Mutant::SchedulerIgnoresTaints) {
            for info in &mut infos {
                info.taints.retain(|taint| taint.effect == crate::rules::scheduling::TaintEffect::PreferNoSchedule);
                info.unschedulable = false;
            }
        }
        if self.mutants.contains(crate::mutants::Mutant::SchedulerIgnoresRequestedResources) {
            for info in &mut infos {
                info.requested = Default::default();
            }
        }
        (infos, same_owner)
    }

    /// Keeps `bound` and `usage` in step with a pod's latest state.
    fn track(&mut self, key: &ObjectKey, pod: Option<&Pod>) {
        if let Some((node, fit, owner)) = self.bound.remove(key) {
            let usage = self.usage.entry(node.clone()).or_default();
            let nonzero = fit.nonzero_requests();
            let info = &mut usage.on_node;
            info.requested.cpu_millis -= fit.requests.cpu_millis;
            info.requested.memory_bytes -= fit.requests.memory_bytes;
            info.nonzero_requested.cpu_millis -= nonzero.cpu_millis;
            info.nonzero_requested.memory_bytes -= nonzero.memory_bytes;
            info.pod_count -= 1;
            if let Some(owner) = owner {
                if let Some(count) = usage.by_owner.get_mut(&owner) {
                    *count -= 1;
                    if *count == 0 {
                        usage.by_owner.remove(&owner);
                    }
                }
            }
            if usage.on_node.pod_count == 0 {
                self.usage.remove(&node);
            }
        }
        let Some(pod) = pod else { return };
        let Some(node) = pod.spec.node_name.as_deref().filter(|n| !n.is_empty()) else { return };
        if is_pod_terminal(pod) {
            return;
        }
        let fit = pod_fit_info(pod);
        let owner = owner_uid(pod);
        let usage = self.usage.entry(node.to_string()).or_default();
        usage.on_node.add_pod(&fit);
        if let Some(owner) = &owner {
            *usage.by_owner.entry(owner.clone()).or_insert(0) += 1;
        }
        self.bound.insert(key.clone(), (node.to_string(), fit, owner));
    }

    fn backoff(&mut self, key: &ObjectKey, message: String, now_ns: u64) -> Duration {
        let attempts = self.unschedulable.get(key).map_or(0, |u| u.attempts).saturating_add(1);
        let shift = attempts.saturating_sub(1).min(8);
        let delay = INITIAL_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF);
        let retry_at_ns = now_ns.saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
        self.unschedulable.insert(key.clone(), Unschedulable { message, attempts, retry_at_ns });
        delay
    }
}

impl Reconciler for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Pod, Kind::Node]
    }

    /// Unassigned pods are queued; a pod seen bound or deleted leaves the assumed set; a node
    /// change or a deleted assigned pod (freed resources) requeues the unschedulable pods
    /// (`MoveAllToActiveOrBackoffQueue`).
    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        match &**object {
            Object::Node(_) => {
                self.nodes = None;
                self.unschedulable.keys().cloned().collect()
            }
            Object::Pod(pod) => {
                let key = ObjectKey::of(object);
                let current = match event {
                    CacheEvent::Deleted(_) => None,
                    _ => Some(pod),
                };
                self.track(&key, current);
                let assigned = pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
                match event {
                    CacheEvent::Deleted(_) => {
                        self.assumed.remove(&key);
                        self.unschedulable.remove(&key);
                        if assigned {
                            self.unschedulable.keys().cloned().collect()
                        } else {
                            Vec::new()
                        }
                    }
                    _ if assigned => {
                        self.assumed.remove(&key);
                        self.unschedulable.remove(&key);
                        Vec::new()
                    }
                    _ if pod.metadata.is_terminating() || is_pod_terminal(pod) => Vec::new(),
                    _ => vec![key],
                }
            }
            _ => Vec::new(),
        }
    }

    /// `scheduleOne`: one scheduling cycle for the pod.
    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else {
            self.assumed.remove(key);
            self.unschedulable.remove(key);
            return Reconcile::done();
        };
        let Object::Pod(pod) = &**object else { return Reconcile::done() };
        if pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
            || pod.metadata.is_terminating()
            || is_pod_terminal(pod)
        {
            self.unschedulable.remove(key);
            return Reconcile::done();
        }
        if let Some(assumed) = self.assumed.get(key) {
            // Bound (waiting for the watch) or binding (waiting for the answer).
            return if assumed.bound { Reconcile::done() } else { Reconcile::done().requeue_after(BIND_POLL) };
        }
        let now_ns = ctx.now_ns;
        if let Some(waiting) = self.unschedulable.get(key) {
            if waiting.retry_at_ns > now_ns {
                return Reconcile::done().requeue_after(Duration::from_nanos(waiting.retry_at_ns - now_ns));
            }
        }
        let fit = pod_fit_info(pod);
        let owner = owner_uid(pod);
        let (nodes, same_owner) = self.node_infos(cache, owner.as_deref());
        if nodes.is_empty() {
            let delay = self.backoff(key, NO_NODES_MESSAGE.to_string(), now_ns);
            return Reconcile::done().requeue_after(delay);
        }
        let mut feasible: Vec<usize> = Vec::new();
        let mut reasons: Vec<Vec<String>> = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let rejected = rules_scheduling::filter_node(&fit, node);
            if rejected.is_empty() {
                feasible.push(i);
            } else {
                reasons.push(rejected);
            }
        }
        if feasible.is_empty() {
            let message = rules_scheduling::summarize_unschedulable(nodes.len(), &reasons);
            let delay = self.backoff(key, message, now_ns);
            return Reconcile::done().requeue_after(delay);
        }
        let spread = rules_scheduling::spread_scores(&feasible.iter().map(|&i| same_owner[i]).collect::<Vec<_>>());
        let taints = taint_scores(
            &feasible
                .iter()
                .map(|&i| rules_scheduling::count_intolerable_prefer_no_schedule(&nodes[i].taints, &fit.tolerations))
                .collect::<Vec<_>>(),
        );
        let scores: Vec<i64> = feasible
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                WEIGHT_RESOURCES * rules_scheduling::least_allocated_score(&fit, &nodes[i])
                    + WEIGHT_SPREAD * spread[j]
                    + WEIGHT_TAINTS * taints[j]
            })
            .collect();
        let best = scores.iter().copied().max().unwrap_or(0);
        let best_nodes: Vec<usize> =
            feasible.iter().zip(&scores).filter(|(_, &score)| score == best).map(|(&i, _)| i).collect();
        let chosen = *ctx.rng.pick(&best_nodes).expect("at least one feasible node has the best score");
        let node = nodes[chosen].name.clone();
        self.assumed.insert(
            key.clone(),
            Assumed { uid: pod.metadata.uid.clone(), node: node.clone(), fit, owner_uid: owner, bound: false },
        );
        self.unschedulable.remove(key);
        Reconcile::write(ApiRequest::Bind {
            namespace: key.namespace.clone(),
            pod: key.name.clone(),
            uid: pod.metadata.uid.clone(),
            node,
        })
        .requeue_after(BIND_POLL)
    }

    /// A successful bind waits for the watch; a failed one forgets the assumption (`ForgetPod`)
    /// so the next cycle, after a backoff, schedules the pod again.
    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        let ApiRequest::Bind { uid, node, .. } = request else { return };
        let Some(assumed) = self.assumed.get_mut(key) else { return };
        if assumed.uid != *uid || assumed.node != *node {
            return;
        }
        match result {
            Ok(_) => assumed.bound = true,
            Err(error) => {
                self.assumed.remove(key);
                // No clock here: the backoff counts from the previous attempt.
                let attempts = self.unschedulable.get(key).map_or(0, |u| u.attempts).saturating_add(1);
                let message = format!("binding rejected: {error}");
                self.unschedulable.insert(key.clone(), Unschedulable { message, attempts, retry_at_ns: 0 });
            }
        }
    }
}
