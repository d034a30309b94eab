//! Scheduler filters and scores (`pkg/scheduler/framework/plugins/`: `nodeunschedulable`,
//! `tainttoleration`, `nodeaffinity`, `noderesources/fit.go`, `noderesources/least_allocated.go`),
//! the unschedulable summary (`framework/types.go` `FitError.Error`), taints and tolerations
//! (`k8s.io/api/core/v1/toleration.go`), and the NoExecute eviction delay
//! (`pkg/controller/tainteviction/taint_eviction.go` `getMinTolerationTime`).

use std::collections::BTreeMap;

/// The taint a cordoned node carries (`spec.unschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node whose Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Reason of NodeResourcesFit when the node's pod count is full.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// Reason of NodeResourcesFit for CPU.
pub const REASON_INSUFFICIENT_CPU: &str = "Insufficient cpu";
/// Reason of NodeResourcesFit for memory.
pub const REASON_INSUFFICIENT_MEMORY: &str = "Insufficient memory";
/// Reason of NodeAffinity (`ErrReasonPod`) when nodeSelector or affinity does not match.
pub const REASON_NODE_SELECTOR_MISMATCH: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason of NodeUnschedulable (`ErrReasonUnschedulable`).
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

/// The most a score plugin gives (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;
/// CPU a container without a request counts as when scoring (`DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a request counts as when scoring (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST_BYTES: i64 = 200 * 1024 * 1024;

/// A taint's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node (scoring only).
    PreferNoSchedule,
    /// Pods that do not tolerate it are evicted, tolerating pods after tolerationSeconds.
    NoExecute,
}

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    /// taint.key.
    pub key: String,
    /// taint.value (may be empty).
    pub value: String,
    /// taint.effect.
    pub effect: TaintEffect,
}

/// A toleration's operator. Upstream's empty operator means Equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationOperator {
    /// Key and value must match.
    Equal,
    /// Key must match (or be empty, matching every key); value ignored.
    Exists,
}

/// A pod toleration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    /// toleration.key; empty matches every key.
    pub key: String,
    /// toleration.operator.
    pub operator: TolerationOperator,
    /// toleration.value.
    pub value: String,
    /// toleration.effect; `None` (empty) matches every effect.
    pub effect: Option<TaintEffect>,
    /// toleration.tolerationSeconds (NoExecute only); `None` tolerates forever.
    pub toleration_seconds: Option<i64>,
}

/// `Toleration.ToleratesTaint` (`k8s.io/api/core/v1/toleration.go`): the effect matches (or the
/// toleration's is empty), the key matches (or the toleration's is empty), and with Equal the
/// values are equal; Exists matches any value.
pub fn toleration_tolerates_taint(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.is_some_and(|e| e != taint.effect) {
        return false;
    }
    if !toleration.key.is_empty() && toleration.key != taint.key {
        return false;
    }
    match toleration.operator {
        TolerationOperator::Equal => toleration.value == taint.value,
        TolerationOperator::Exists => true,
    }
}

/// `TolerationsTolerateTaint`: some toleration tolerates the taint.
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| toleration_tolerates_taint(t, taint))
}

/// `FindMatchingUntoleratedTaint` with `DoNotScheduleTaintsFilterFunc`: the first NoSchedule or
/// NoExecute taint, in the node's order, that no toleration tolerates.
pub fn find_untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints.iter().find(|taint| {
        matches!(taint.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
            && !tolerations_tolerate_taint(tolerations, taint)
    })
}

/// `getMinTolerationTime` after `GetMatchingTolerations` (`taint_eviction.go`
/// `processPodOnNode`): how long a pod may stay on a node with these taints.
///
/// Only NoExecute taints count; with none, `None` (never evicted). If one is not tolerated,
/// `Some(0)` (evict now). Otherwise each taint uses the *first* toleration that tolerates it; the
/// smallest tolerationSeconds among those is the answer (`<= 0` means now), `None` if none of them
/// sets tolerationSeconds (tolerated forever). Seconds are counted from when the taint was added.
pub fn min_toleration_seconds(tolerations: &[Toleration], node_taints: &[Taint]) -> Option<i64> {
    let mut min_seconds: Option<i64> = None;
    for taint in node_taints.iter().filter(|t| t.effect == TaintEffect::NoExecute) {
        let Some(used) = tolerations.iter().find(|t| toleration_tolerates_taint(t, taint)) else {
            return Some(0);
        };
        if let Some(seconds) = used.toleration_seconds {
            if seconds <= 0 {
                return Some(0);
            }
            min_seconds = Some(min_seconds.map_or(seconds, |m| m.min(seconds)));
        }
    }
    min_seconds
}

/// [`min_toleration_seconds`] with the untolerated case made explicit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoExecuteVerdict {
    /// No NoExecute taint, or all tolerated without a time limit.
    Stay,
    /// Some NoExecute taint is not tolerated, or tolerated for 0 seconds or less.
    EvictNow,
    /// Evict after this many seconds.
    EvictAfterSeconds(i64),
}

/// The eviction verdict for a pod on a node (see [`min_toleration_seconds`]).
pub fn no_execute_verdict(tolerations: &[Toleration], node_taints: &[Taint]) -> NoExecuteVerdict {
    let no_execute: Vec<&Taint> = node_taints.iter().filter(|t| t.effect == TaintEffect::NoExecute).collect();
    if no_execute.is_empty() {
        return NoExecuteVerdict::Stay;
    }
    if no_execute.iter().any(|taint| !tolerations_tolerate_taint(tolerations, taint)) {
        return NoExecuteVerdict::EvictNow;
    }
    match min_toleration_seconds(tolerations, node_taints) {
        None => NoExecuteVerdict::Stay,
        Some(0) => NoExecuteVerdict::EvictNow,
        Some(seconds) => NoExecuteVerdict::EvictAfterSeconds(seconds),
    }
}

/// Resource amounts: CPU in millicores, memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU, millicores.
    pub cpu_millis: i64,
    /// Memory, bytes.
    pub memory_bytes: i64,
}

/// What the filters need to know of the pod being scheduled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFitInfo {
    /// Sum of the pod's resource requests (effective requests, as `PodRequests` computes them).
    pub requests: Resources,
    /// spec.nodeSelector.
    pub node_selector: BTreeMap<String, String>,
    /// spec.tolerations.
    pub tolerations: Vec<Toleration>,
}

impl PodFitInfo {
    /// Requests as the scoring plugins count them: a zero CPU or memory request counts as 100m or
    /// 200 MiB (`NonMissingContainerRequests`). Upstream applies this per container; with pod
    /// totals we apply it to the pod, which matches for single-container pods.
    pub fn nonzero_requests(&self) -> Resources {
        Resources {
            cpu_millis: if self.requests.cpu_millis == 0 {
                DEFAULT_MILLI_CPU_REQUEST
            } else {
                self.requests.cpu_millis
            },
            memory_bytes: if self.requests.memory_bytes == 0 {
                DEFAULT_MEMORY_REQUEST_BYTES
            } else {
                self.requests.memory_bytes
            },
        }
    }
}

/// What the filters need to know of a node and the pods already on it (the scheduler's NodeInfo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFitInfo {
    /// metadata.name.
    pub name: String,
    /// metadata.labels.
    pub labels: BTreeMap<String, String>,
    /// spec.taints (including not-ready/unreachable taints set by the node lifecycle controller).
    pub taints: Vec<Taint>,
    /// spec.unschedulable (cordoned).
    pub unschedulable: bool,
    /// status.allocatable cpu and memory.
    pub allocatable: Resources,
    /// status.allocatable pods.
    pub allocatable_pods: i64,
    /// Sum of requests of the pods on the node (including assumed pods).
    pub requested: Resources,
    /// The same sum with the scoring defaults for zero requests ([`PodFitInfo::nonzero_requests`]).
    pub nonzero_requested: Resources,
    /// Number of pods on the node.
    pub pod_count: i64,
}

impl NodeFitInfo {
    /// Accounts a pod placed (or assumed) on this node.
    pub fn add_pod(&mut self, pod: &PodFitInfo) {
        let nonzero = pod.nonzero_requests();
        self.requested.cpu_millis = self.requested.cpu_millis.saturating_add(pod.requests.cpu_millis);
        self.requested.memory_bytes = self.requested.memory_bytes.saturating_add(pod.requests.memory_bytes);
        self.nonzero_requested.cpu_millis = self.nonzero_requested.cpu_millis.saturating_add(nonzero.cpu_millis);
        self.nonzero_requested.memory_bytes = self.nonzero_requested.memory_bytes.saturating_add(nonzero.memory_bytes);
        self.pod_count = self.pod_count.saturating_add(1);
    }
}

/// NodeUnschedulable `Filter`: a cordoned node rejects pods that do not tolerate the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub fn filter_node_unschedulable(pod: &PodFitInfo, node: &NodeFitInfo) -> Vec<String> {
    let taint =
        Taint { key: TAINT_NODE_UNSCHEDULABLE.to_string(), value: String::new(), effect: TaintEffect::NoSchedule };
    if node.unschedulable && !tolerations_tolerate_taint(&pod.tolerations, &taint) {
        vec![REASON_UNSCHEDULABLE.to_string()]
    } else {
        Vec::new()
    }
}

/// TaintToleration `Filter`: the first untolerated NoSchedule/NoExecute taint gives
/// `node(s) had untolerated taint {key: value}`. Not-ready and unreachable nodes are rejected this
/// way, through the taints the node lifecycle controller puts on them.
pub fn filter_taint_toleration(pod: &PodFitInfo, node: &NodeFitInfo) -> Vec<String> {
    match find_untolerated_taint(&node.taints, &pod.tolerations) {
        Some(taint) => vec![format!("node(s) had untolerated taint {{{}: {}}}", taint.key, taint.value)],
        None => Vec::new(),
    }
}

/// NodeAffinity `Filter`, nodeSelector part: every selector label must be on the node.
pub fn filter_node_selector(pod: &PodFitInfo, node: &NodeFitInfo) -> Vec<String> {
    let matches = pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v));
    if matches {
        Vec::new()
    } else {
        vec![REASON_NODE_SELECTOR_MISMATCH.to_string()]
    }
}

/// NodeResourcesFit `Filter` (`fitsRequest`): "Too many pods" when the node's pod count is full;
/// then, for a pod requesting something, "Insufficient cpu" / "Insufficient memory" for each
/// positive request above `allocatable - requested`. Several reasons can come from one node.
pub fn filter_resources(pod: &PodFitInfo, node: &NodeFitInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pod_count.saturating_add(1) > node.allocatable_pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    let request = pod.requests;
    if request.cpu_millis == 0 && request.memory_bytes == 0 {
        return reasons;
    }
    let free_cpu = node.allocatable.cpu_millis.saturating_sub(node.requested.cpu_millis);
    if request.cpu_millis > 0 && request.cpu_millis > free_cpu {
        reasons.push(REASON_INSUFFICIENT_CPU.to_string());
    }
    let free_memory = node.allocatable.memory_bytes.saturating_sub(node.requested.memory_bytes);
    if request.memory_bytes > 0 && request.memory_bytes > free_memory {
        reasons.push(REASON_INSUFFICIENT_MEMORY.to_string());
    }
    reasons
}

/// Runs the filters in the default profile's order (NodeUnschedulable, TaintToleration,
/// NodeAffinity, NodeResourcesFit) and, as the framework does, stops at the first plugin that
/// rejects the node. Empty: the node fits.
pub fn filter_node(pod: &PodFitInfo, node: &NodeFitInfo) -> Vec<String> {
    let filters: [fn(&PodFitInfo, &NodeFitInfo) -> Vec<String>; 4] =
        [filter_node_unschedulable, filter_taint_toleration, filter_node_selector, filter_resources];
    for filter in filters {
        let reasons = filter(pod, node);
        if !reasons.is_empty() {
            return reasons;
        }
    }
    Vec::new()
}

/// `FitError.Error` (`framework/types.go`): `"0/N nodes are available: "` followed by each reason's
/// count and text, `"<count> <reason>"`, sorted as strings (Go's `sort.Strings`, so "10 x" sorts
/// before "2 y") and joined by ", ", then ".". Without reasons: `"0/N nodes are available."`.
///
/// Upstream appends the preemption plugin's own message (" preemption: 0/N nodes are available:
/// ...") after this; that part is not produced here.
pub fn summarize_unschedulable(num_all_nodes: usize, per_node_reasons: &[Vec<String>]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reasons in per_node_reasons {
        for reason in reasons {
            *counts.entry(reason.as_str()).or_insert(0) += 1;
        }
    }
    let mut parts: Vec<String> = counts.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
    parts.sort();
    let mut message = format!("0/{num_all_nodes} nodes are available:");
    if parts.is_empty() {
        message.pop();
        message.push('.');
    } else {
        message.push_str(&format!(" {}.", parts.join(", ")));
    }
    message
}

/// `leastRequestedScore`: `(capacity - requested) * 100 / capacity`; 0 when capacity is 0 or
/// requested exceeds it.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    let free = i128::from(capacity) - i128::from(requested);
    i64::try_from(free * i128::from(MAX_NODE_SCORE) / i128::from(capacity)).unwrap_or(0)
}

/// NodeResourcesFit score with the LeastAllocated strategy (the default): for cpu and memory,
/// [`least_requested_score`] of (node's non-zero requested + pod's non-zero request) against
/// allocatable, then the weighted mean with weight 1 each, in integer division.
pub fn least_allocated_score(pod: &PodFitInfo, node: &NodeFitInfo) -> i64 {
    let pod_request = pod.nonzero_requests();
    let cpu = least_requested_score(
        node.nonzero_requested.cpu_millis.saturating_add(pod_request.cpu_millis),
        node.allocatable.cpu_millis,
    );
    let memory = least_requested_score(
        node.nonzero_requested.memory_bytes.saturating_add(pod_request.memory_bytes),
        node.allocatable.memory_bytes,
    );
    (cpu + memory) / 2
}

/// A spreading score per node from the number of pods of the same workload on it: fewer pods,
/// higher score, `100 * (max - count) / max` (all 100 when no node has one). This is the node part
/// of the retired SelectorSpread plugin, in integer math; the default profile now spreads with
/// PodTopologySpread's system defaults, which this does not reproduce.
pub fn spread_scores(workload_pods_per_node: &[i64]) -> Vec<i64> {
    let max = workload_pods_per_node.iter().copied().max().unwrap_or(0);
    workload_pods_per_node
        .iter()
        .map(|&count| {
            if max <= 0 {
                MAX_NODE_SCORE
            } else {
                let score = i128::from(MAX_NODE_SCORE) * i128::from(max - count.max(0)) / i128::from(max);
                i64::try_from(score).unwrap_or(0)
            }
        })
        .collect()
}

/// TaintToleration score input: the number of PreferNoSchedule taints the pod does not tolerate
/// (`countIntolerableTaintsPreferNoSchedule`); upstream then normalizes in reverse (fewer is better).
pub fn count_intolerable_prefer_no_schedule(taints: &[Taint], tolerations: &[Toleration]) -> i64 {
    let prefer: Vec<&Toleration> =
        tolerations.iter().filter(|t| t.effect.is_none() || t.effect == Some(TaintEffect::PreferNoSchedule)).collect();
    let count = taints
        .iter()
        .filter(|taint| taint.effect == TaintEffect::PreferNoSchedule)
        .filter(|taint| !prefer.iter().any(|t| toleration_tolerates_taint(t, taint)))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}
