//! The node lifecycle controller of kube-controller-manager
//! (`pkg/controller/nodelifecycle/node_lifecycle_controller.go`, 1.32+) with the NoExecute taint
//! manager it drives (`pkg/controller/tainteviction/taint_eviction.go`).
//!
//! Three jobs, as upstream:
//! - Health (`monitorNodeHealth`, `tryUpdateNodeHealth`): a node whose Lease renewTime and Ready
//!   heartbeat this controller has not *seen change* for `nodeMonitorGracePeriod` (50 s) gets every
//!   condition set to Unknown (reason `NodeStatusUnknown`). Staleness is judged by a probe
//!   timestamp on this controller's own clock, so skew between machines does not matter.
//! - Taints: `node.kubernetes.io/unreachable` (Ready Unknown) or `node.kubernetes.io/not-ready`
//!   (Ready False), as NoSchedule at once (`doNodeProcessingPass`, TaintNodesByCondition) and as
//!   NoExecute through a per-zone rate-limited queue (`doNoExecuteTaintingPass`); both go when the
//!   node is Ready again. Zones are Normal, PartialDisruption or FullDisruption
//!   (`ComputeZoneState`); the queue's rate follows the zone (`setLimiterInZone`), and when every
//!   zone is fully disrupted no NoExecute taint is applied and existing ones are removed
//!   (`handleDisruption`).
//! - Eviction (`NoExecuteTaintManager`): each pod bound to a node with NoExecute taints is deleted
//!   (gracefully, with its uid as precondition) when its tolerations run out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use crate::api::{resource_version_of, ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::cluster::Taint;
use crate::objects::pod::TaintEffect;
use crate::objects::{Condition, ConditionStatus, Kind, Node, Object};
use crate::rules::scheduling::{self as rules_scheduling, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE};

use super::scheduler::{node_fit_info, pod_fit_info};
use super::NS_PER_SECOND;

/// How often every node is looked at (`--node-monitor-period`, 5 s).
pub const NODE_MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// How long without a lease renewal or heartbeat before a node is Unknown
/// (`--node-monitor-grace-period`, 50 s since 1.32).
pub const NODE_MONITOR_GRACE_PERIOD: Duration = Duration::from_secs(50);
/// The grace period of a node that never reported Ready (`--node-startup-grace-period`, 60 s).
pub const NODE_STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// How often the NoExecute tainting queue is worked (`scheduler.NodeEvictionPeriod`, 100 ms).
pub const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// One node tainted per this long in a healthy zone (`--node-eviction-rate` 0.1 per second).
pub const EVICTION_INTERVAL: Duration = Duration::from_secs(10);
/// One node tainted per this long in a partially disrupted large zone
/// (`--secondary-node-eviction-rate` 0.01 per second).
pub const SECONDARY_EVICTION_INTERVAL: Duration = Duration::from_secs(100);
/// Zones with more nodes than this keep evicting, slowly, when partially disrupted
/// (`--large-cluster-size-threshold`).
pub const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// A zone is partially disrupted when at least this percentage of its nodes (and more than 2)
/// is unhealthy (`--unhealthy-zone-threshold` 0.55).
pub const UNHEALTHY_ZONE_THRESHOLD_PERCENT: usize = 55;
/// The namespace of the kubelets' Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Reason of a condition the controller set to Unknown.
pub const REASON_NODE_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// Reason of a Ready condition the controller added to a node that never reported one.
pub const REASON_NODE_STATUS_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";

fn ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A zone's health (`ZoneState`: `stateNormal`, `statePartialDisruption`, `stateFullDisruption`;
/// upstream's transient `stateInitial` is not kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ZoneState {
    /// Evictions at the normal rate.
    Normal,
    /// At least 55% (and more than 2) of the zone's nodes are unhealthy: evictions slow down (large
    /// zones) or stop (small zones).
    PartialDisruption,
    /// No node of the zone is Ready.
    FullDisruption,
}

/// `ComputeZoneState`: FullDisruption when no node is Ready (and there is one), PartialDisruption
/// when more than 2 nodes are not Ready and they are at least 55% of the zone, else Normal.
/// Upstream compares `float32(notReady)/float32(total) >= 0.55`; this uses the integer
/// `100 * notReady >= 55 * total`, equal except at fractions within float32 rounding of 0.55.
pub fn compute_zone_state(ready_nodes: usize, not_ready_nodes: usize) -> ZoneState {
    let total = ready_nodes + not_ready_nodes;
    if ready_nodes == 0 && not_ready_nodes > 0 {
        ZoneState::FullDisruption
    } else if not_ready_nodes > 2 && 100 * not_ready_nodes >= UNHEALTHY_ZONE_THRESHOLD_PERCENT * total {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// `setLimiterInZone` with `HealthyQPSFunc` / `ReducedQPSFunc`: the interval between two
/// taintings in a zone, `None` when tainting stops.
pub fn tainting_interval(state: ZoneState, zone_size: usize) -> Option<Duration> {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => Some(EVICTION_INTERVAL),
        ZoneState::PartialDisruption if zone_size > LARGE_CLUSTER_THRESHOLD => Some(SECONDARY_EVICTION_INTERVAL),
        ZoneState::PartialDisruption => None,
    }
}

/// What this controller knows of one node's health (`nodeHealthData`).
#[derive(Clone, Debug)]
struct NodeHealth {
    /// When (on this controller's clock) the lease or heartbeat was last seen to change.
    probe_ns: u64,
    /// The last seen Ready heartbeat.
    heartbeat_ns: Option<u64>,
    /// The last seen lease renewTime.
    renew_ns: Option<u64>,
    /// The Ready status as this controller last saw or set it (None: no Ready condition).
    ready: Option<ConditionStatus>,
    zone: String,
}

/// A zone's NoExecute tainter: the queue of nodes to taint (`RateLimitedTimedQueue`) and its
/// token bucket of burst 1 (`EvictionRateLimiterBurst`).
#[derive(Clone, Debug)]
struct ZoneTainter {
    state: ZoneState,
    queue: VecDeque<String>,
    /// `None`: the limiter never accepts (`NewFakeNeverRateLimiter`).
    interval_ns: Option<u64>,
    /// The bucket holds a token from this time on.
    next_token_ns: u64,
}

impl ZoneTainter {
    fn new() -> ZoneTainter {
        ZoneTainter {
            state: ZoneState::Normal,
            queue: VecDeque::new(),
            interval_ns: Some(ns(EVICTION_INTERVAL)),
            next_token_ns: 0,
        }
    }

    /// `SwapLimiter`: a new bucket with the new rate; drained if the old one had no token.
    fn swap_limiter(&mut self, interval: Option<Duration>, now_ns: u64) {
        let interval_ns = interval.map(ns);
        if interval_ns == self.interval_ns {
            return;
        }
        let old_had_token = self.interval_ns.is_some() && self.next_token_ns <= now_ns;
        self.interval_ns = interval_ns;
        self.next_token_ns = match interval_ns {
            Some(interval_ns) if !old_had_token => now_ns.saturating_add(interval_ns),
            _ => now_ns,
        };
    }

    /// `TryAccept`.
    fn try_accept(&mut self, now_ns: u64) -> bool {
        match self.interval_ns {
            Some(interval_ns) if self.next_token_ns <= now_ns => {
                self.next_token_ns = now_ns.saturating_add(interval_ns);
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, node: &str) {
        self.queue.retain(|queued| queued != node);
    }
}

/// A pod evicted by the taint manager, for tests and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eviction {
    /// The pod.
    pub pod: ObjectKey,
    /// Its node.
    pub node: String,
    /// When the delete was sent (this controller's clock).
    pub at_ns: u64,
}

/// `NodeLifecycleController`: marks silent nodes Unknown, taints unhealthy nodes and evicts the
/// pods that do not tolerate the taints (upstream `nodelifecycle.Controller` with the
/// `NoExecuteTaintManager`).
///
/// Keys: a node's key runs its health check and taint decisions and comes back every
/// [`NODE_MONITOR_PERIOD`] (the reconciler cannot own a timer; `requeue_after` is the period); a
/// Lease event reconciles its node; a pod's key decides its eviction and comes back at its
/// deadline. Zone states are recomputed in every node reconcile from what this controller knows
/// of every node, so a transition takes effect within one monitor period.
///
/// Simplifications (documented): tolerationSeconds count from the taint's `timeAdded` (written by
/// this controller on its clock; upstream counts from when the taint manager first saw the pod on
/// the tainted node, which is the same unless the controller restarts); a lease counts as renewed
/// when its renewTime differs from the last seen (upstream: is later); pods are not marked
/// NotReady (`MarkPodsNotReady`); no events, metrics, label reconciliation or pod GC; the
/// `node.kubernetes.io/out-of-service` taint is not handled.
#[derive(Clone, Debug, Default)]
pub struct NodeLifecycleController {
    health: BTreeMap<String, NodeHealth>,
    zones: BTreeMap<String, ZoneTainter>,
    /// Whether every zone was fully disrupted at the last look (`allWasFullyDisrupted`).
    all_fully_disrupted: bool,
    /// Nodes as this controller last wrote them (newer than the cache until the watch catches up).
    written: BTreeMap<String, Rc<Object>>,
    /// Pods by node, kept from events.
    pods_by_node: BTreeMap<String, BTreeSet<ObjectKey>>,
    pod_node: BTreeMap<ObjectKey, String>,
    /// Pod uids whose eviction was sent or done.
    evicting: BTreeMap<ObjectKey, String>,
    eviction_log: Vec<Eviction>,
    evictions_done: u64,
    status_updates: u64,
}

/// The Ready condition's status, if any.
fn ready_status(node: &Node) -> Option<ConditionStatus> {
    crate::objects::meta::find_condition(&node.status.conditions, "Ready").map(|c| c.status)
}

fn zone_of(node: &Node) -> String {
    node.zone().unwrap_or_default().to_string()
}

fn is_controller_taint(taint: &Taint) -> bool {
    taint.key == TAINT_NODE_UNREACHABLE || taint.key == TAINT_NODE_NOT_READY
}

fn as_node(object: &Object) -> Option<&Node> {
    match object {
        Object::Node(node) => Some(node),
        _ => None,
    }
}

impl NodeLifecycleController {
    /// A controller that has seen nothing yet.
    pub fn new() -> NodeLifecycleController {
        NodeLifecycleController::default()
    }

    /// Every zone's state at the last look, by zone label value (`""` for nodes without one).
    pub fn zone_states(&self) -> BTreeMap<String, ZoneState> {
        self.zones.iter().map(|(zone, tainter)| (zone.clone(), tainter.state)).collect()
    }

    /// Pod evictions the API server accepted.
    pub fn evictions(&self) -> u64 {
        self.evictions_done
    }

    /// Every eviction sent, in order.
    pub fn eviction_log(&self) -> &[Eviction] {
        &self.eviction_log
    }

    /// How many times a node was marked Unknown (status writes sent).
    pub fn status_updates(&self) -> u64 {
        self.status_updates
    }

    /// Nodes waiting in their zone's NoExecute tainting queue, by zone.
    pub fn tainting_queue(&self) -> BTreeMap<String, Vec<String>> {
        self.zones.iter().map(|(zone, t)| (zone.clone(), t.queue.iter().cloned().collect())).collect()
    }

    /// The node as this controller knows it best: the cache's copy or its own last write,
    /// whichever is newer; `None` when the cache no longer has the node.
    fn node_view(&mut self, cache: &Cache, name: &str) -> Option<Rc<Object>> {
        let Some(cached) = cache.get_by(Kind::Node, "", name) else {
            self.written.remove(name);
            return None;
        };
        match self.written.get(name) {
            Some(written) if resource_version_of(written) > resource_version_of(cached) => Some(written.clone()),
            _ => {
                self.written.remove(name);
                Some(cached.clone())
            }
        }
    }

    /// `tryUpdateNodeHealth`: refreshes the probe timestamp from the lease and heartbeat; returns
    /// the status write when the node has been silent past its grace period.
    fn update_health(&mut self, node: &Node, cache: &Cache, now_ns: u64) -> Option<Node> {
        let name = node.metadata.name.clone();
        let heartbeat_ns = crate::objects::meta::find_condition(&node.status.conditions, "Ready")
            .and_then(|c| c.last_heartbeat_time_ns);
        let renew_ns = cache.get_by(Kind::Lease, NODE_LEASE_NAMESPACE, &name).and_then(|object| match &**object {
            Object::Lease(lease) => lease.spec.renew_time_ns,
            _ => None,
        });
        let ready = ready_status(node);
        let health = self.health.entry(name).or_insert_with(|| NodeHealth {
            probe_ns: now_ns,
            heartbeat_ns,
            renew_ns,
            ready,
            zone: zone_of(node),
        });
        health.zone = zone_of(node);
        if health.heartbeat_ns != heartbeat_ns {
            health.heartbeat_ns = heartbeat_ns;
            health.probe_ns = now_ns;
        }
        if renew_ns.is_some() && health.renew_ns != renew_ns {
            health.renew_ns = renew_ns;
            health.probe_ns = now_ns;
        }
        health.ready = ready;
        let grace_ns = if ready.is_none() { ns(NODE_STARTUP_GRACE_PERIOD) } else { ns(NODE_MONITOR_GRACE_PERIOD) };
        if now_ns <= health.probe_ns.saturating_add(grace_ns) {
            return None;
        }
        // Silent for too long: every condition becomes Unknown.
        let mut updated = node.clone();
        let mut changed = false;
        if ready.is_none() {
            updated.status.conditions.push(Condition {
                condition_type: "Ready".to_string(),
                status: ConditionStatus::Unknown,
                reason: Some(REASON_NODE_STATUS_NEVER_UPDATED.to_string()),
                message: Some("Kubelet never posted node status.".to_string()),
                last_transition_time_ns: Some(now_ns),
                ..Condition::default()
            });
            changed = true;
        }
        for condition in &mut updated.status.conditions {
            if condition.status != ConditionStatus::Unknown {
                condition.status = ConditionStatus::Unknown;
                condition.reason = Some(REASON_NODE_STATUS_UNKNOWN.to_string());
                condition.message = Some("Kubelet stopped posting node status.".to_string());
                condition.last_transition_time_ns = Some(now_ns);
                changed = true;
            }
        }
        health.ready = Some(ConditionStatus::Unknown);
        changed.then_some(updated)
    }

    /// `handleDisruption`: recomputes zone states from every known node and moves the limiters.
    fn handle_disruption(&mut self, cache: &Cache, now_ns: u64) {
        // Cluster-scoped nodes come out of the cache ordered by name, as `health` is keyed: one
        // merged walk finds each node's health without a lookup (this runs in every node reconcile).
        let mut per_zone: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut healths = self.health.iter().peekable();
        for object in cache.iter(Kind::Node, None) {
            let Some(node) = as_node(object) else { continue };
            let name = node.metadata.name.as_str();
            while healths.next_if(|(known, _)| known.as_str() < name).is_some() {}
            let health = match healths.next_if(|(known, _)| known.as_str() == name) {
                Some((_, health)) => Some(health),
                None => self.health.get(name),
            };
            let (ready, zone) = match health {
                Some(health) => (health.ready, health.zone.as_str()),
                None => (ready_status(node), node.zone().unwrap_or_default()),
            };
            let counts = per_zone.entry(zone).or_insert((0, 0));
            if ready == Some(ConditionStatus::True) {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        let per_zone: BTreeMap<String, (usize, usize)> =
            per_zone.into_iter().map(|(zone, counts)| (zone.to_string(), counts)).collect();
        self.zones.retain(|zone, _| per_zone.contains_key(zone));
        let new_states: BTreeMap<String, ZoneState> = per_zone
            .iter()
            .map(|(zone, &(ready, not_ready))| (zone.clone(), compute_zone_state(ready, not_ready)))
            .collect();
        let all_are = !new_states.is_empty() && new_states.values().all(|s| *s == ZoneState::FullDisruption);
        let mut unseen = false;
        for zone in per_zone.keys() {
            if !self.zones.contains_key(zone) {
                self.zones.insert(zone.clone(), ZoneTainter::new());
                unseen = true;
            }
        }
        let all_was = self.all_fully_disrupted && !unseen;
        if all_are && all_was {
            return;
        }
        if all_are {
            // Entering master disruption mode: stop tainting (taints are removed per node).
            for tainter in self.zones.values_mut() {
                tainter.swap_limiter(None, now_ns);
                tainter.state = ZoneState::FullDisruption;
            }
            self.all_fully_disrupted = true;
            return;
        }
        if all_was {
            // Exiting it: every node gets a fresh grace period.
            for health in self.health.values_mut() {
                health.probe_ns = now_ns;
            }
        }
        for (zone, state) in new_states {
            let size = per_zone.get(&zone).map_or(0, |&(ready, not_ready)| ready + not_ready);
            let tainter = self.zones.get_mut(&zone).expect("every zone has a tainter");
            if all_was || tainter.state != state || unseen {
                tainter.swap_limiter(tainting_interval(state, size), now_ns);
                tainter.state = state;
            }
        }
        self.all_fully_disrupted = false;
    }

    /// The taints the node should carry: its own taints with the controller's taints made to
    /// match `ready` (NoSchedule at once; NoExecute only if `no_execute` says so).
    fn desired_taints(
        node: &Node,
        ready: Option<ConditionStatus>,
        no_execute: Option<&str>,
        now_ns: u64,
    ) -> Vec<Taint> {
        let no_schedule = match ready {
            Some(ConditionStatus::False) => Some(TAINT_NODE_NOT_READY),
            Some(ConditionStatus::Unknown) => Some(TAINT_NODE_UNREACHABLE),
            _ => None,
        };
        let mut taints: Vec<Taint> = node
            .spec
            .taints
            .iter()
            .filter(|t| {
                !is_controller_taint(t)
                    || (t.effect == TaintEffect::NoSchedule && Some(t.key.as_str()) == no_schedule)
                    || (t.effect == TaintEffect::NoExecute && Some(t.key.as_str()) == no_execute)
            })
            .cloned()
            .collect();
        for (key, effect) in [(no_schedule, TaintEffect::NoSchedule), (no_execute, TaintEffect::NoExecute)] {
            let Some(key) = key else { continue };
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                taints.push(Taint { key: key.to_string(), value: None, effect, time_added_ns: Some(now_ns) });
            }
        }
        taints
    }

    fn reconcile_node(&mut self, name: &str, cache: &Cache, now_ns: u64) -> Reconcile {
        let period = Reconcile::done().requeue_after(NODE_MONITOR_PERIOD);
        let Some(object) = self.node_view(cache, name) else {
            if let Some(health) = self.health.remove(name) {
                if let Some(tainter) = self.zones.get_mut(&health.zone) {
                    tainter.remove(name);
                }
            }
            return Reconcile::done();
        };
        let Some(node) = as_node(&object) else { return Reconcile::done() };
        if let Some(updated) = self.update_health(node, cache, now_ns) {
            self.status_updates += 1;
            return Reconcile::write(ApiRequest::UpdateStatus { object: Rc::new(Object::Node(updated)) })
                .requeue_after(NODE_EVICTION_PERIOD);
        }
        self.handle_disruption(cache, now_ns);
        let ready = ready_status(node);
        let zone = zone_of(node);
        let mut wake = NODE_MONITOR_PERIOD;
        // processTaintBaseEviction and doNoExecuteTaintingPass for this node.
        let wanted = match ready {
            Some(ConditionStatus::False) => Some(TAINT_NODE_NOT_READY),
            Some(ConditionStatus::Unknown) => Some(TAINT_NODE_UNREACHABLE),
            _ => None,
        };
        let current_no_execute = node
            .spec
            .taints
            .iter()
            .find(|t| is_controller_taint(t) && t.effect == TaintEffect::NoExecute)
            .map(|t| t.key.clone());
        let tainter = self.zones.entry(zone).or_insert_with(ZoneTainter::new);
        let no_execute: Option<&str> = if self.all_fully_disrupted {
            // markNodeAsReachable on entering master disruption mode; the stopped limiter keeps
            // the queue from tainting again.
            if wanted.is_some() && !tainter.queue.iter().any(|n| n == name) {
                tainter.queue.push_back(name.to_string());
            }
            None
        } else {
            match wanted {
                None => {
                    tainter.remove(name);
                    None
                }
                // The other controller taint is swapped at once (SwapNodeControllerTaint).
                Some(key) if current_no_execute.is_some() => {
                    tainter.remove(name);
                    Some(key)
                }
                Some(key) => {
                    if !tainter.queue.iter().any(|n| n == name) {
                        tainter.queue.push_back(name.to_string());
                    }
                    // The queue's head goes when the zone's bucket has a token.
                    if tainter.queue.front().map(String::as_str) == Some(name) && tainter.try_accept(now_ns) {
                        tainter.queue.pop_front();
                        Some(key)
                    } else {
                        if let Some(interval_ns) = tainter.interval_ns {
                            let wait_ns = tainter
                                .next_token_ns
                                .saturating_sub(now_ns)
                                .clamp(ns(NODE_EVICTION_PERIOD), interval_ns);
                            wake = wake.min(Duration::from_nanos(wait_ns));
                        }
                        None
                    }
                }
            }
        };
        let taints = Self::desired_taints(node, ready, no_execute, now_ns);
        if taints == node.spec.taints {
            return period.requeue_after(wake);
        }
        let mut updated = node.clone();
        updated.spec.taints = taints;
        Reconcile::write(ApiRequest::Update { object: Rc::new(Object::Node(updated)) }).requeue_after(wake)
    }

    /// `processPodOnNode`: when the pod must leave its node, from the NoExecute taints' timeAdded
    /// and the first toleration that tolerates each; `None`: it may stay.
    fn eviction_time_ns(pod: &crate::objects::Pod, node: &Node, now_ns: u64) -> Option<u64> {
        let tolerations = pod_fit_info(pod).tolerations;
        let rules_taints = node_fit_info(node).taints;
        let mut earliest: Option<u64> = None;
        for (taint, rules_taint) in node.spec.taints.iter().zip(&rules_taints) {
            if taint.effect != TaintEffect::NoExecute {
                continue;
            }
            let at_ns = match tolerations.iter().find(|t| rules_scheduling::toleration_tolerates_taint(t, rules_taint))
            {
                None => now_ns,
                Some(toleration) => match toleration.toleration_seconds {
                    None => continue,
                    Some(seconds) if seconds <= 0 => now_ns,
                    Some(seconds) => taint
                        .time_added_ns
                        .unwrap_or(now_ns)
                        .saturating_add(u64::try_from(seconds).unwrap_or(0).saturating_mul(NS_PER_SECOND)),
                },
            };
            earliest = Some(earliest.map_or(at_ns, |e: u64| e.min(at_ns)));
        }
        earliest
    }

    fn reconcile_pod(&mut self, key: &ObjectKey, cache: &Cache, now_ns: u64) -> Reconcile {
        let Some(object) = cache.get(key) else {
            self.evicting.remove(key);
            return Reconcile::done();
        };
        let Object::Pod(pod) = &**object else { return Reconcile::done() };
        let Some(node_name) = pod.spec.node_name.clone().filter(|n| !n.is_empty()) else { return Reconcile::done() };
        if pod.metadata.is_terminating() || super::is_pod_terminal(pod) {
            return Reconcile::done();
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self.evicting.get(key) == Some(&uid) {
            return Reconcile::done();
        }
        let Some(node_object) = self.node_view(cache, &node_name) else { return Reconcile::done() };
        let Some(node) = as_node(&node_object) else { return Reconcile::done() };
        match Self::eviction_time_ns(pod, node, now_ns) {
            None => Reconcile::done(),
            Some(at_ns) if at_ns > now_ns => Reconcile::done().requeue_after(Duration::from_nanos(at_ns - now_ns)),
            Some(_) => {
                self.evicting.insert(key.clone(), uid.clone());
                self.eviction_log.push(Eviction { pod: key.clone(), node: node_name, at_ns: now_ns });
                Reconcile::write(ApiRequest::Delete {
                    key: key.clone(),
                    uid: Some(uid),
                    grace_period_seconds: None,
                    propagation: None,
                })
            }
        }
    }
}

impl Reconciler for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "nodelifecycle"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Node, Kind::Lease, Kind::Pod]
    }

    /// Node events reconcile the node and (when its taints changed) its pods; Lease events in
    /// `kube-node-lease` reconcile their node; a pod bound to a node is reconciled.
    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        match &**object {
            Object::Node(node) => {
                let name = &node.metadata.name;
                let mut keys = vec![ObjectKey::new(Kind::Node, "", name)];
                let taints_changed = match event {
                    CacheEvent::Updated(old, _) => as_node(old).is_none_or(|old| old.spec.taints != node.spec.taints),
                    _ => true,
                };
                if taints_changed {
                    keys.extend(self.pods_by_node.get(name).into_iter().flatten().cloned());
                }
                keys
            }
            Object::Lease(lease) if lease.metadata.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE) => {
                vec![ObjectKey::new(Kind::Node, "", &lease.metadata.name)]
            }
            Object::Pod(pod) => {
                let key = ObjectKey::of(object);
                if let Some(old) = self.pod_node.remove(&key) {
                    if let Some(pods) = self.pods_by_node.get_mut(&old) {
                        pods.remove(&key);
                        if pods.is_empty() {
                            self.pods_by_node.remove(&old);
                        }
                    }
                }
                let node = pod.spec.node_name.clone().filter(|n| !n.is_empty());
                match (event, node) {
                    (CacheEvent::Deleted(_), _) | (_, None) => Vec::new(),
                    (_, Some(node)) => {
                        self.pods_by_node.entry(node.clone()).or_default().insert(key.clone());
                        self.pod_node.insert(key.clone(), node);
                        vec![key]
                    }
                }
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        match key.kind {
            Kind::Node => self.reconcile_node(&key.name, cache, ctx.now_ns),
            Kind::Pod => self.reconcile_pod(key, cache, ctx.now_ns),
            _ => Reconcile::done(),
        }
    }

    /// Node writes that succeed are remembered until the cache catches up; a conflict forgets
    /// them (the host retries the key). A pod eviction that fails for another reason than
    /// NotFound is forgotten so the pod is looked at again.
    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        match (request, result) {
            (ApiRequest::Update { object } | ApiRequest::UpdateStatus { object }, Ok(ApiOk::Object(written))) => {
                if written.kind() == Kind::Node {
                    self.written.insert(written.meta().name.clone(), written.clone());
                }
                let _ = object;
            }
            (ApiRequest::Update { object } | ApiRequest::UpdateStatus { object }, Err(_)) => {
                self.written.remove(&object.meta().name);
            }
            (ApiRequest::Delete { .. }, Ok(_)) => self.evictions_done += 1,
            (ApiRequest::Delete { .. }, Err(error)) if error.reason != ApiErrorReason::NotFound => {
                self.evicting.remove(key);
            }
            _ => {}
        }
    }

    /// Every node on a resync (the monitor loop restarts after a controller restart).
    fn resync(&mut self, cache: &Cache) -> Vec<ObjectKey> {
        cache.list(Kind::Node, None).into_iter().map(|object| ObjectKey::of(object)).collect()
    }
}
