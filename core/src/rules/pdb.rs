//! PodDisruptionBudget status arithmetic (`pkg/controller/disruption/disruption.go`
//! `getExpectedPodCount`, `updatePdbStatus`).

use super::deployment::IntOrPercent;
use super::RulesError;

/// A PDB's budget: minAvailable or maxUnavailable (maxUnavailable wins when both are set, as
/// upstream checks it first; validation forbids both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdbSpec {
    /// spec.minAvailable.
    pub min_available: Option<IntOrPercent>,
    /// spec.maxUnavailable.
    pub max_unavailable: Option<IntOrPercent>,
}

/// The numbers a PDB's status carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdbNumbers {
    /// status.expectedPods.
    pub expected_pods: i32,
    /// status.desiredHealthy.
    pub desired_healthy: i32,
    /// status.disruptionsAllowed.
    pub disruptions_allowed: i32,
}

/// `getExpectedPodCount` and the disruptionsAllowed computation.
///
/// - maxUnavailable: expected = the controllers' scale (`expected_scale`, the sum of the owning
///   controllers' spec.replicas); desiredHealthy = expected - maxUnavailable (a percentage of
///   expected rounded *up*), floored at 0.
/// - minAvailable as an integer: desiredHealthy = it; expected = the number of matching pods.
/// - minAvailable as a percentage: expected = the controllers' scale; desiredHealthy = the
///   percentage of expected rounded up.
/// - neither: expected 0, desiredHealthy 0.
///
/// disruptionsAllowed = currentHealthy - desiredHealthy, 0 when negative or when expected <= 0.
pub fn pdb_numbers(
    spec: &PdbSpec,
    expected_scale: i32,
    matching_pods: i32,
    current_healthy: i32,
) -> Result<PdbNumbers, RulesError> {
    let (expected, desired) = if let Some(max_unavailable) = &spec.max_unavailable {
        let unavailable = max_unavailable.scaled_value(expected_scale, true)?;
        (expected_scale, (i64::from(expected_scale) - i64::from(unavailable)).max(0))
    } else if let Some(min_available) = &spec.min_available {
        match min_available {
            IntOrPercent::Int(v) => (matching_pods, i64::from(*v)),
            IntOrPercent::String(_) => (expected_scale, i64::from(min_available.scaled_value(expected_scale, true)?)),
        }
    } else {
        (0, 0)
    };
    let allowed = i64::from(current_healthy) - desired;
    let disruptions_allowed = if expected <= 0 || allowed <= 0 { 0 } else { allowed };
    Ok(PdbNumbers {
        expected_pods: expected,
        desired_healthy: super::to_i32(desired, "desiredHealthy")?,
        disruptions_allowed: super::to_i32(disruptions_allowed, "disruptionsAllowed")?,
    })
}

/// How long after an eviction a disrupted pod that is still not deleted stops counting as
/// disrupted (`disruption.DeletionTimeout`, 2 minutes).
pub const DELETION_TIMEOUT_NS: u64 = 120 * 1_000_000_000;

/// What the budget arithmetic needs of one covered pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdbPod {
    /// metadata.name: disruptedPods is keyed by it.
    pub name: String,
    /// metadata.deletionTimestamp is set.
    pub terminating: bool,
    /// The Ready condition is True (`podutil.IsPodReady`, upstream's "healthy").
    pub ready: bool,
}

/// `buildDisruptedPodMap`: the entries of status.disruptedPods (pod name -> eviction time, ns)
/// to keep: those of covered pods not yet being deleted whose eviction is younger than
/// [`DELETION_TIMEOUT_NS`]. Entries of pods that are gone or terminating are dropped (the
/// eviction took effect), and so are expired ones (upstream warns `NotDeleted`). Also returns the
/// earliest time an entry expires, when the controller must look again.
pub fn build_disrupted_pod_map(
    pods: &[PdbPod],
    disrupted_pods: &std::collections::BTreeMap<String, u64>,
    now_ns: u64,
) -> (std::collections::BTreeMap<String, u64>, Option<u64>) {
    let mut kept = std::collections::BTreeMap::new();
    let mut recheck_ns: Option<u64> = None;
    for pod in pods {
        if pod.terminating {
            continue;
        }
        let Some(&evicted_ns) = disrupted_pods.get(&pod.name) else { continue };
        let expected_deletion_ns = evicted_ns.saturating_add(DELETION_TIMEOUT_NS);
        if expected_deletion_ns < now_ns {
            continue;
        }
        recheck_ns = Some(recheck_ns.map_or(expected_deletion_ns, |at| at.min(expected_deletion_ns)));
        kept.insert(pod.name.clone(), evicted_ns);
    }
    (kept, recheck_ns)
}

/// `countHealthyPods`: covered pods that are ready, not being deleted, and not evicted within the
/// last [`DELETION_TIMEOUT_NS`].
pub fn count_healthy_pods(
    pods: &[PdbPod],
    disrupted_pods: &std::collections::BTreeMap<String, u64>,
    now_ns: u64,
) -> i32 {
    let healthy = pods
        .iter()
        .filter(|pod| !pod.terminating)
        .filter(|pod| disrupted_pods.get(&pod.name).is_none_or(|&at| at.saturating_add(DELETION_TIMEOUT_NS) <= now_ns))
        .filter(|pod| pod.ready)
        .count();
    i32::try_from(healthy).unwrap_or(i32::MAX)
}

/// What the Eviction API decides for a budget (`checkAndDecrement` in
/// `pkg/registry/core/pod/storage/eviction.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionVerdict {
    /// Decrement disruptionsAllowed to this value, record the pod, then delete it.
    Decrement { disruptions_allowed: i32 },
    /// 429: the controller has not processed the budget's latest generation.
    BudgetNotProcessed,
    /// 429: the budget allows no disruption now.
    NoDisruptionAllowed,
    /// 403: disruptionsAllowed is negative (a corrupt status).
    NegativeAllowed,
    /// 403: too many evictions not yet confirmed by the controller.
    TooManyDisrupted,
}

/// `MaxDisruptedPodSize`: the Eviction API refuses once disruptedPods holds more.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// `checkAndDecrement`'s decision, from the budget's generation and status.
pub fn check_and_decrement(
    generation: i64,
    observed_generation: i64,
    disruptions_allowed: i32,
    disrupted_pods: usize,
) -> EvictionVerdict {
    if observed_generation < generation {
        EvictionVerdict::BudgetNotProcessed
    } else if disruptions_allowed < 0 {
        EvictionVerdict::NegativeAllowed
    } else if disrupted_pods > MAX_DISRUPTED_POD_SIZE {
        EvictionVerdict::TooManyDisrupted
    } else if disruptions_allowed == 0 {
        EvictionVerdict::NoDisruptionAllowed
    } else {
        EvictionVerdict::Decrement { disruptions_allowed: disruptions_allowed - 1 }
    }
}

/// Whether an eviction may delete a pod without looking at budgets (`canIgnorePDB`): it is
/// terminal, still Pending, or already being deleted.
pub fn can_ignore_pdb(phase: super::pod::PodPhase, terminating: bool) -> bool {
    use super::pod::PodPhase;
    terminating || matches!(phase, PodPhase::Succeeded | PodPhase::Failed | PodPhase::Pending)
}

/// Whether an unready pod may be evicted without spending the budget (the default
/// `unhealthyPodEvictionPolicy: IfHealthyBudget`): the budget is met without it.
pub fn unready_pod_fits_budget(current_healthy: i32, desired_healthy: i32) -> bool {
    current_healthy >= desired_healthy && desired_healthy > 0
}
