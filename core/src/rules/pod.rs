//! Pod availability (`pkg/api/v1/pod/util.go`) and the deletion ranking of active pods
//! (`pkg/controller/controller_utils.go` `ActivePodsWithRanks`, `pkg/controller/replicaset/
//! replica_set.go` `getPodsRankedByRelatedPodsOnSameNode`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::float_emulation::floor_log2_as_f64;

/// The annotation holding a pod's deletion cost.
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

const NS_PER_SECOND: u64 = 1_000_000_000;

/// `IsPodAvailable` (`pkg/api/v1/pod/util.go`): ready, and either `min_ready_seconds == 0` or the
/// Ready condition's lastTransitionTime is set and `ready_since + min_ready_seconds <= now`.
///
/// Current upstream compares with `Compare(now) <= 0`, so a pod ready for exactly minReadySeconds
/// is available (older releases used a strict `Before`). A zero (absent) lastTransitionTime is
/// never available when `min_ready_seconds > 0`. A negative `min_ready_seconds` (rejected by
/// validation) makes the deadline precede the transition, as in Go.
pub fn is_pod_available(ready: bool, ready_since_ns: Option<u64>, min_ready_seconds: i32, now_ns: u64) -> bool {
    if !ready {
        return false;
    }
    if min_ready_seconds == 0 {
        return true;
    }
    match ready_since_ns {
        None => false,
        Some(since) => {
            i128::from(since) + i128::from(min_ready_seconds) * i128::from(NS_PER_SECOND) <= i128::from(now_ns)
        }
    }
}

/// The moment a pod becomes available, for scheduling a resync: `None` if it never will by time
/// alone (not ready, or no transition time with `min_ready_seconds > 0`).
pub fn pod_available_at_ns(ready: bool, ready_since_ns: Option<u64>, min_ready_seconds: i32) -> Option<u64> {
    if !ready {
        return None;
    }
    if min_ready_seconds <= 0 {
        return Some(ready_since_ns.unwrap_or(0));
    }
    ready_since_ns?.checked_add(u64::from(min_ready_seconds.unsigned_abs()).checked_mul(NS_PER_SECOND)?)
}

/// A pod's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodPhase {
    /// Accepted, not all containers running.
    Pending,
    /// Bound and running.
    Running,
    /// All containers terminated successfully.
    Succeeded,
    /// All containers terminated, at least one failed.
    Failed,
    /// State unknown (node unreachable).
    Unknown,
}

impl PodPhase {
    /// `podPhaseToOrdinal` in `controller_utils.go`: Pending 0, Unknown 1, Running 2; phases absent
    /// from the Go map (Succeeded, Failed) read as 0.
    pub fn deletion_ordinal(self) -> u8 {
        match self {
            PodPhase::Pending | PodPhase::Succeeded | PodPhase::Failed => 0,
            PodPhase::Unknown => 1,
            PodPhase::Running => 2,
        }
    }
}

/// What the deletion ranking needs to know of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRankInfo {
    /// metadata.uid; upstream's tie-break inside a logarithmic bucket.
    pub uid: String,
    /// metadata.name; our final tie-break (with the uid).
    pub name: String,
    /// spec.nodeName; empty when unassigned.
    pub node_name: String,
    /// status.phase.
    pub phase: PodPhase,
    /// The Ready condition is True.
    pub ready: bool,
    /// lastTransitionTime of the Ready=True condition; `None` when zero/absent.
    pub ready_since_ns: Option<u64>,
    /// The pod-deletion-cost annotation, parsed with [`parse_pod_deletion_cost`] (0 if absent).
    pub deletion_cost: i32,
    /// Active pods of the same owner (and its sibling ReplicaSets) on this pod's node, this pod
    /// included: see [`ranks_by_related_pods_on_same_node`].
    pub related_pods_on_node: i32,
    /// The highest restartCount among the pod's regular containers.
    pub max_container_restarts: i32,
    /// The highest restartCount among its restartable init containers (sidecars).
    pub max_sidecar_restarts: i32,
    /// metadata.creationTimestamp; `None` when zero.
    pub created_ns: Option<u64>,
}

/// `GetDeletionCostFromPodAnnotations` (`pkg/apis/core/helper`): the annotation as an `int32`;
/// 0 when absent or invalid. A value must start with `-`, a digit 1-9, or be exactly `"0"` (no `+`,
/// no leading zeros), then parse as base-10 `int32`.
pub fn parse_pod_deletion_cost(annotation: Option<&str>) -> i32 {
    let Some(value) = annotation else { return 0 };
    let valid_first = match value.as_bytes().first() {
        None => false,
        Some(b'-') => true,
        Some(b'0') => value == "0",
        Some(b) => b.is_ascii_digit(),
    };
    if !valid_first {
        return 0;
    }
    value.parse::<i32>().unwrap_or(0)
}

/// `getPodsRankedByRelatedPodsOnSameNode` (`replica_set.go`): for each pod to rank, the number of
/// active related pods on its node (unassigned pods share the node name `""`). `related_active_nodes`
/// holds the node name of every active related pod (pods of all ReplicaSets of the same owner,
/// including the pods to rank).
pub fn ranks_by_related_pods_on_same_node(pods_to_rank_nodes: &[&str], related_active_nodes: &[&str]) -> Vec<i32> {
    let mut per_node: BTreeMap<&str, i32> = BTreeMap::new();
    for node in related_active_nodes {
        let count = per_node.entry(node).or_insert(0);
        *count = count.saturating_add(1);
    }
    pods_to_rank_nodes.iter().map(|node| per_node.get(node).copied().unwrap_or(0)).collect()
}

/// `afterOrZero`: t1 is after t2, a zero time counting as after any non-zero time.
fn after_or_zero(t1: Option<u64>, t2: Option<u64>) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// `logarithmicRankDiff`: floor(log2(now - t)) of each (-1 when not positive), subtracted.
fn logarithmic_rank_diff(t1: u64, t2: u64, now_ns: u64) -> i64 {
    let rank = |t: u64| {
        if now_ns > t {
            floor_log2_as_f64(now_ns - t)
        } else {
            -1
        }
    };
    rank(t1) - rank(t2)
}

/// Compares two timestamps under LogarithmicScaleDown: `None` when equal (fall through), else
/// whether `a` goes first.
fn log_scale_less(a_time: Option<u64>, b_time: Option<u64>, a_uid: &str, b_uid: &str, now_ns: u64) -> Option<bool> {
    if a_time == b_time {
        return None;
    }
    match (a_time, b_time) {
        (Some(t1), Some(t2)) => {
            let diff = logarithmic_rank_diff(t1, t2, now_ns);
            Some(if diff == 0 { a_uid < b_uid } else { diff < 0 })
        }
        _ => Some(after_or_zero(a_time, b_time)),
    }
}

/// `ActivePodsWithRanks.Less` (`controller_utils.go`): whether `a` should be deleted before `b`.
///
/// 1. Unassigned before assigned.
/// 2. Pending < Unknown < Running.
/// 3. Not ready before ready.
/// 4. Lower pod-deletion-cost first (PodDeletionCost, on by default).
/// 5. More related pods on the same node first.
/// 6. Both ready with different ready times: ready for less time first, by LogarithmicScaleDown
///    (on by default since 1.22; always on here): times are bucketed by
///    `floor(log2(now - t in ns))` and, within one bucket, upstream decides by uid *and returns*,
///    skipping the later criteria. A zero ready time goes first.
/// 7. More restarts first: highest restart count of regular containers, then of sidecar
///    (restartable init) containers; upstream compares maxima, not sums, and without log scale.
/// 8. Newer first, log-bucketed as in 6 (a zero creation time goes first).
pub fn deletion_less(a: &PodRankInfo, b: &PodRankInfo, now_ns: u64) -> bool {
    if a.node_name != b.node_name && (a.node_name.is_empty() || b.node_name.is_empty()) {
        return a.node_name.is_empty();
    }
    let (pa, pb) = (a.phase.deletion_ordinal(), b.phase.deletion_ordinal());
    if pa != pb {
        return pa < pb;
    }
    if a.ready != b.ready {
        return !a.ready;
    }
    if a.deletion_cost != b.deletion_cost {
        return a.deletion_cost < b.deletion_cost;
    }
    if a.related_pods_on_node != b.related_pods_on_node {
        return a.related_pods_on_node > b.related_pods_on_node;
    }
    if a.ready && b.ready {
        if let Some(less) = log_scale_less(a.ready_since_ns, b.ready_since_ns, &a.uid, &b.uid, now_ns) {
            return less;
        }
    }
    if a.max_container_restarts != b.max_container_restarts {
        return a.max_container_restarts > b.max_container_restarts;
    }
    if a.max_sidecar_restarts != b.max_sidecar_restarts {
        return a.max_sidecar_restarts > b.max_sidecar_restarts;
    }
    if let Some(less) = log_scale_less(a.created_ns, b.created_ns, &a.uid, &b.uid, now_ns) {
        return less;
    }
    false
}

/// The order in which to delete `pods` (indices, first to delete first), as the ReplicaSet
/// controller's `getPodsToDelete` sorts `ActivePodsWithRanks`.
///
/// Pods are first put in (uid, name) order, then sorted by [`deletion_less`] with a stable merge
/// sort of our own: the result is deterministic even for pairs upstream leaves equal, and even
/// where upstream's comparison is not transitive (the uid shortcut of step 6 can make a cycle, on
/// which Go's `sort.Sort` also gives some order); std's sort may panic on such a comparison.
pub fn rank_pods_for_deletion(pods: &[PodRankInfo], now_ns: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by(|&x, &y| pods[x].uid.cmp(&pods[y].uid).then_with(|| pods[x].name.cmp(&pods[y].name)).then(x.cmp(&y)));
    merge_sort_by_less(&mut order, &|x, y| deletion_less(&pods[x], &pods[y], now_ns));
    order
}

/// A stable, bottom-up merge sort driven by a `less` predicate; total on any predicate.
fn merge_sort_by_less(items: &mut Vec<usize>, less: &dyn Fn(usize, usize) -> bool) {
    let n = items.len();
    let mut width = 1;
    let mut buffer = Vec::with_capacity(n);
    while width < n {
        buffer.clear();
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j) = (start, mid);
            while i < mid && j < end {
                // Take from the right only when strictly less: stability.
                if less(items[j], items[i]) {
                    buffer.push(items[j]);
                    j += 1;
                } else {
                    buffer.push(items[i]);
                    i += 1;
                }
            }
            buffer.extend_from_slice(&items[i..mid]);
            buffer.extend_from_slice(&items[j..end]);
            start = end;
        }
        std::mem::swap(items, &mut buffer);
        width *= 2;
    }
}

/// [`deletion_less`] as an `Ordering` (Less: `a` goes first), for callers that compare pairs.
pub fn deletion_cmp(a: &PodRankInfo, b: &PodRankInfo, now_ns: u64) -> Ordering {
    if deletion_less(a, b, now_ns) {
        Ordering::Less
    } else if deletion_less(b, a, now_ns) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}
