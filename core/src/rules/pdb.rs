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
