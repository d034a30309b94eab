//! Horizontal pod autoscaler arithmetic (`pkg/controller/podautoscaler/replica_calculator.go`,
//! `horizontal.go`).

use super::float_emulation::{ceil, round_quotient};
use super::RulesError;

/// Default scale-down stabilization window (`--horizontal-pod-autoscaler-downscale-stabilization`
/// and the default `behavior.scaleDown.stabilizationWindowSeconds`).
pub const DEFAULT_SCALE_DOWN_WINDOW_NS: u64 = 300 * 1_000_000_000;
/// Default scale-up stabilization window (none).
pub const DEFAULT_SCALE_UP_WINDOW_NS: u64 = 0;

/// Whether a usage ratio `current / target` is inside the default 10% tolerance.
///
/// Current upstream (`Tolerances.isWithin`, 1.33+) tests `0.9 <= ratio <= 1.1` on float64 values:
/// `fl(1 - 0.1) <= fl(current / target) <= fl(1 + 0.1)`, and those bounds are the doubles nearest
/// 0.9 and 1.1. For 32-bit integer operands a ratio differs from 9/10 or 11/10 by at least
/// `1 / (10 * target)`, far more than half a unit in the last place, so the float test equals the
/// exact one `9 * target <= 10 * current <= 11 * target`, which we compute. (1.32 tested
/// `|1 - ratio| <= 0.1` instead, which differs only at exactly 1.1: 1.32 scales, 1.33+ does not.)
pub fn within_tolerance(current_utilization: i32, target_utilization: i32) -> bool {
    let (c, t) = (i64::from(current_utilization), i64::from(target_utilization));
    9 * t <= 10 * c && 10 * c <= 11 * t
}

/// `GetResourceReplicas` for the plain case (every pod ready with metrics): the current replicas
/// when within tolerance, else `ceil(usageRatio * readyPodCount)` with
/// `usageRatio = current / target` (utilization percentages, as upstream's integer
/// `currentUtilization`).
///
/// Upstream multiplies in float64; we compute the same double exactly with integers (round the
/// quotient to a double, round the product to a double, take the ceiling), so results are
/// bit-identical, including where float error pushes an exact integer product up by one ulp.
/// The unready/missing-pod adjustments of upstream are not modelled.
pub fn replicas_for_utilization(
    current_replicas: i32,
    ready_pod_count: i32,
    current_utilization: i32,
    target_utilization: i32,
) -> Result<i32, RulesError> {
    if target_utilization <= 0 {
        return Err(RulesError::InvalidArgument {
            reason: format!("target utilization {target_utilization} must be positive"),
        });
    }
    if current_utilization < 0 || ready_pod_count < 0 {
        return Err(RulesError::InvalidArgument {
            reason: "utilization and pod count must not be negative".to_string(),
        });
    }
    if within_tolerance(current_utilization, target_utilization) {
        return Ok(current_replicas);
    }
    let Some(ratio) =
        round_quotient(current_utilization.unsigned_abs().into(), target_utilization.unsigned_abs().into())
    else {
        return Ok(0);
    };
    let product = u128::from(ratio.significand) * u128::from(ready_pod_count.unsigned_abs());
    let Some(mut rounded) = round_quotient(product, 1) else {
        return Ok(0);
    };
    rounded.exponent += ratio.exponent;
    i32::try_from(ceil(rounded)).map_err(|_| RulesError::Overflow { what: "desired replicas" })
}

/// One timestamped recommendation (`timestampedRecommendation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    /// When it was recorded.
    pub time_ns: u64,
    /// The unstabilized desired replicas.
    pub replicas: i32,
}

/// The stabilization windows of one HPA (`stabilizeRecommendationWithBehaviors`): the
/// recommendation is at least the *lowest* recommendation within the scale-up window and at most
/// the *highest* within the scale-down window, starting from the current replicas. With the
/// defaults (up 0 s, down 300 s) scale-up follows the newest recommendation at once, and scale-down
/// goes no lower than the highest recommendation of the last 300 s.
///
/// Records are kept as upstream does: a record older than both windows is overwritten by the new
/// one, else the new one is appended, so storage stays bounded by the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stabilizer {
    /// Scale-up window.
    pub scale_up_window_ns: u64,
    /// Scale-down window.
    pub scale_down_window_ns: u64,
    records: Vec<Recommendation>,
}

impl Default for Stabilizer {
    fn default() -> Self {
        Self::new(DEFAULT_SCALE_UP_WINDOW_NS, DEFAULT_SCALE_DOWN_WINDOW_NS)
    }
}

impl Stabilizer {
    /// A stabilizer with these windows and no history.
    pub fn new(scale_up_window_ns: u64, scale_down_window_ns: u64) -> Self {
        Stabilizer { scale_up_window_ns, scale_down_window_ns, records: Vec::new() }
    }

    /// The recorded recommendations.
    pub fn records(&self) -> &[Recommendation] {
        &self.records
    }

    /// Stabilizes `desired` at `now_ns` given `current` replicas, then records `desired`.
    /// A record counts when strictly after `now - window` (Go's `After`).
    pub fn stabilize(&mut self, now_ns: u64, current: i32, desired: i32) -> i32 {
        let up_cutoff = i128::from(now_ns) - i128::from(self.scale_up_window_ns);
        let down_cutoff = i128::from(now_ns) - i128::from(self.scale_down_window_ns);
        let mut up = desired;
        let mut down = desired;
        let mut old_index = None;
        for (i, record) in self.records.iter().enumerate() {
            let t = i128::from(record.time_ns);
            if t > up_cutoff {
                up = up.min(record.replicas);
            }
            if t > down_cutoff {
                down = down.max(record.replicas);
            }
            if t < up_cutoff && t < down_cutoff {
                old_index = Some(i);
            }
        }
        let recommendation = current.max(up).min(down);
        let record = Recommendation { time_ns: now_ns, replicas: desired };
        match old_index {
            Some(i) => self.records[i] = record,
            None => self.records.push(record),
        }
        recommendation
    }
}

/// Clamps to `[min_replicas, max_replicas]` (`normalizeDesiredReplicasWithBehaviors`).
pub fn clamp_replicas(desired: i32, min_replicas: i32, max_replicas: i32) -> i32 {
    desired.max(min_replicas).min(max_replicas)
}
