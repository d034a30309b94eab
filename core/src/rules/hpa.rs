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
/// `currentUtilization`). [`resource_replicas`] handles unready pods and missing metrics.
///
/// Upstream multiplies in float64; we compute the same double exactly with integers (round the
/// quotient to a double, round the product to a double, take the ceiling), so results are
/// bit-identical, including where float error pushes an exact integer product up by one ulp.
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
    ceil_ratio_times(current_utilization.unsigned_abs(), target_utilization.unsigned_abs(), ready_pod_count)
}

/// `int32(math.Ceil(float64(num) / float64(den) * float64(count)))`, computed exactly.
fn ceil_ratio_times(num: u32, den: u32, count: i32) -> Result<i32, RulesError> {
    let Some(ratio) = round_quotient(num.into(), den.into()) else {
        return Ok(0);
    };
    let product = u128::from(ratio.significand) * u128::from(count.unsigned_abs());
    let Some(mut rounded) = round_quotient(product, 1) else {
        return Ok(0);
    };
    rounded.exponent += ratio.exponent;
    i32::try_from(ceil(rounded)).map_err(|_| RulesError::Overflow { what: "desired replicas" })
}

/// Upstream's `cpuInitializationPeriod` default (`--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const CPU_INITIALIZATION_PERIOD_NS: u64 = 300 * 1_000_000_000;
/// Upstream's `delayOfInitialReadinessStatus` default
/// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
pub const INITIAL_READINESS_DELAY_NS: u64 = 30 * 1_000_000_000;

/// What the HPA needs to know of one selected pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpaPod {
    pub name: String,
    /// Being deleted, or phase Failed: ignored.
    pub deleted_or_failed: bool,
    /// Phase Pending: counted as unready.
    pub pending: bool,
    /// The Ready condition: (is True, lastTransitionTime); `None` if the pod has none.
    pub ready: Option<(bool, u64)>,
    /// `status.startTime`.
    pub start_time_ns: Option<u64>,
    /// The sum of the containers' CPU requests in millicores; `None` if a container has none.
    pub cpu_request_millis: Option<i64>,
}

/// One pod's metric sample (from PodMetrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricSample {
    pub value_millis: i64,
    pub timestamp_ns: u64,
    pub window_ns: u64,
}

/// How `groupPods` classifies a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodGroup {
    Ready,
    /// Pending, or not ready yet for CPU purposes: ignored unless scaling up.
    Unready,
    /// No metrics: assumed at 100% on scale-down and 0% on scale-up.
    Missing,
    /// Being deleted or failed.
    Ignored,
}

/// `groupPods` (replica_calculator.go) for the CPU resource, at the controller's `now_ns`.
pub fn group_pod(pod: &HpaPod, metric: Option<&MetricSample>, now_ns: u64) -> PodGroup {
    if pod.deleted_or_failed {
        return PodGroup::Ignored;
    }
    if pod.pending {
        return PodGroup::Unready;
    }
    let Some(metric) = metric else { return PodGroup::Missing };
    let (Some((ready, transition_ns)), Some(start_ns)) = (pod.ready, pod.start_time_ns) else {
        return PodGroup::Unready;
    };
    let unready = if start_ns.saturating_add(CPU_INITIALIZATION_PERIOD_NS) > now_ns {
        // Within the initialization period: ignore an unready pod, or a sample whose window
        // started before the pod's last readiness transition.
        !ready || metric.timestamp_ns < transition_ns.saturating_add(metric.window_ns)
    } else {
        // Afterwards, ignore only a pod that is unready and has never been ready.
        !ready && start_ns.saturating_add(INITIAL_READINESS_DELAY_NS) > transition_ns
    };
    if unready {
        PodGroup::Unready
    } else {
        PodGroup::Ready
    }
}

/// A Resource metric's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceTarget {
    /// averageUtilization: percent of the requests.
    Utilization(i32),
    /// averageValue, in millicores per pod.
    AverageValueMillis(i64),
}

/// What [`resource_replicas`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceRecommendation {
    /// The metric's proposal.
    pub replicas: i32,
    /// Current utilization of the ready pods with metrics (percent; Utilization targets only).
    pub utilization: Option<i32>,
    /// Their average use, millicores per pod.
    pub average_value_millis: i64,
}

/// The usage ratio `current / target` as exact integers, with the current value it comes from.
/// Utilization: `(sum(metric) * 100 / sum(request), target)`; AverageValue:
/// `(sum(metric) / count, target)` (`GetResourceUtilizationRatio`, `GetMetricUsageRatio`).
fn usage_ratio(samples: &[(i64, i64)], target: ResourceTarget) -> Result<(i64, i64, Option<i32>, i64), RulesError> {
    let total: i64 = samples.iter().map(|(value, _)| value).sum();
    let count = samples.len() as i64;
    let average = if count == 0 { 0 } else { total / count };
    match target {
        ResourceTarget::Utilization(target) => {
            let requests: i64 = samples.iter().map(|(_, request)| request).sum();
            if requests == 0 {
                return Err(RulesError::InvalidArgument { reason: "no metrics returned matched known pods".into() });
            }
            let utilization = super::to_i32(total * 100 / requests, "current utilization")?;
            Ok((i64::from(utilization), i64::from(target), Some(utilization), average))
        }
        ResourceTarget::AverageValueMillis(target) => Ok((average, target, None, average)),
    }
}

fn within(current: i64, target: i64) -> bool {
    let (c, t) = (i128::from(current), i128::from(target));
    9 * t <= 10 * c && 10 * c <= 11 * t
}

fn ceil_ratio_i64(num: i64, den: i64, count: usize) -> Result<i32, RulesError> {
    let num = u32::try_from(num).map_err(|_| RulesError::Overflow { what: "metric value" })?;
    let den = u32::try_from(den).map_err(|_| RulesError::Overflow { what: "metric target" })?;
    let count = i32::try_from(count).map_err(|_| RulesError::Overflow { what: "pod count" })?;
    ceil_ratio_times(num, den, count)
}

/// `GetResourceReplicas` / `GetRawResourceReplicas` (replica_calculator.go) for CPU: groups the
/// pods, computes the usage ratio of the ready pods with metrics, and when pods are missing
/// metrics or unready on a scale-up, recomputes with missing pods at 100% of their request (or
/// at the target, if higher; the target value for AverageValue) on a scale-down and at 0 on a
/// scale-up, unready pods at 0 on a scale-up, and keeps the current replicas if that reverses
/// the direction or lands within the tolerance.
///
/// Errors as upstream: no pods, a pod without a CPU request (Utilization), no usable metrics.
pub fn resource_replicas(
    current_replicas: i32,
    target: ResourceTarget,
    pods: &[(HpaPod, Option<MetricSample>)],
    now_ns: u64,
) -> Result<ResourceRecommendation, RulesError> {
    match target {
        ResourceTarget::Utilization(t) if t <= 0 => {
            return Err(RulesError::InvalidArgument { reason: format!("target utilization {t} must be positive") })
        }
        ResourceTarget::AverageValueMillis(t) if t <= 0 => {
            return Err(RulesError::InvalidArgument { reason: format!("target value {t}m must be positive") })
        }
        _ => {}
    }
    if pods.is_empty() {
        return Err(RulesError::InvalidArgument {
            reason: "no pods returned by selector while calculating replica count".into(),
        });
    }
    let utilization_target = matches!(target, ResourceTarget::Utilization(_));
    // (value, request) of the pods that count, plus the missing and unready ones' requests.
    let mut samples: Vec<(i64, i64)> = Vec::new();
    let mut missing: Vec<i64> = Vec::new();
    let mut unready: Vec<i64> = Vec::new();
    let mut ready_count = 0usize;
    for (pod, metric) in pods {
        let group = group_pod(pod, metric.as_ref(), now_ns);
        let request = match (pod.cpu_request_millis, utilization_target, group) {
            (_, _, PodGroup::Ignored) => 0,
            (Some(request), _, _) => request,
            (None, false, _) => 0,
            (None, true, _) => {
                return Err(RulesError::InvalidArgument {
                    reason: format!("missing request for cpu in pod {}", pod.name),
                })
            }
        };
        match group {
            PodGroup::Ready => {
                ready_count += 1;
                samples.push((metric.map_or(0, |m| m.value_millis), request));
            }
            PodGroup::Unready => unready.push(request),
            PodGroup::Missing => missing.push(request),
            PodGroup::Ignored => {}
        }
    }
    if samples.is_empty() {
        return Err(RulesError::InvalidArgument {
            reason: "did not receive metrics for targeted pods (pods might be unready)".into(),
        });
    }
    let (current, target_value, utilization, average) = usage_ratio(&samples, target)?;
    let result = |replicas| ResourceRecommendation { replicas, utilization, average_value_millis: average };
    let scale_up_with_unready = !unready.is_empty() && current > target_value;
    if !scale_up_with_unready && missing.is_empty() {
        if within(current, target_value) {
            return Ok(result(current_replicas));
        }
        return Ok(result(ceil_ratio_i64(current, target_value, ready_count)?));
    }
    if !missing.is_empty() {
        for request in &missing {
            let value = if current < target_value {
                match target {
                    ResourceTarget::Utilization(t) => request * i64::from(t.max(100)) / 100,
                    ResourceTarget::AverageValueMillis(t) => t,
                }
            } else {
                // Upstream assigns 0 when the ratio is above 1; at exactly 1 it leaves missing
                // pods out (they are neither scale-up nor scale-down), which the 0 here would
                // not change: a ratio of exactly 1 is within the tolerance either way.
                0
            };
            if current != target_value {
                samples.push((value, *request));
            }
        }
    }
    if scale_up_with_unready {
        samples.extend(unready.iter().map(|request| (0, *request)));
    }
    let (new_current, _, _, _) = usage_ratio(&samples, target)?;
    if within(new_current, target_value)
        || (current < target_value && new_current > target_value)
        || (current > target_value && new_current < target_value)
    {
        return Ok(result(current_replicas));
    }
    let replicas = ceil_ratio_i64(new_current, target_value, samples.len())?;
    if (new_current < target_value && replicas > current_replicas)
        || (new_current > target_value && replicas < current_replicas)
    {
        return Ok(result(current_replicas));
    }
    Ok(result(replicas))
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

/// Which policy's limit applies (`selectPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A rate limit: Pods or Percent per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalingPolicy {
    Pods { value: i32, period_seconds: i32 },
    Percent { value: i32, period_seconds: i32 },
}

impl ScalingPolicy {
    fn period_ns(self) -> u64 {
        let (ScalingPolicy::Pods { period_seconds, .. } | ScalingPolicy::Percent { period_seconds, .. }) = self;
        u64::from(period_seconds.unsigned_abs()) * 1_000_000_000
    }
}

/// The rate rules of one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRules {
    pub select: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

impl ScalingRules {
    /// The default scale-up rules: +100% or +4 pods per 15 s, the larger.
    pub fn default_scale_up() -> ScalingRules {
        ScalingRules {
            select: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy::Percent { value: 100, period_seconds: 15 },
                ScalingPolicy::Pods { value: 4, period_seconds: 15 },
            ],
        }
    }

    /// The default scale-down rules: -100% per 15 s.
    pub fn default_scale_down() -> ScalingRules {
        ScalingRules {
            select: SelectPolicy::Max,
            policies: vec![ScalingPolicy::Percent { value: 100, period_seconds: 15 }],
        }
    }

    /// The longest period of the policies (`getLongestPolicyPeriod`).
    pub fn longest_period_ns(&self) -> u64 {
        self.policies.iter().map(|policy| policy.period_ns()).max().unwrap_or(0)
    }
}

/// A scaling the controller made: `change` replicas (positive) at `time_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    pub time_ns: u64,
    pub change: i32,
}

/// `getReplicasChangePerPeriod`: the change of the events strictly after `now - period`.
fn change_in_period(period_ns: u64, events: &[ScaleEvent], now_ns: u64) -> i32 {
    let cutoff = i128::from(now_ns) - i128::from(period_ns);
    events.iter().filter(|event| i128::from(event.time_ns) > cutoff).map(|event| event.change).sum()
}

/// `calculateScaleUpLimitWithScalingRules`: the most replicas the rules allow now. Percent rounds
/// up (`math.Ceil(start * (1 + value/100))`, computed exactly).
pub fn scale_up_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    rules: &ScalingRules,
    now_ns: u64,
) -> i32 {
    let mut result = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i32::MAX,
        SelectPolicy::Max => i32::MIN,
    };
    for policy in &rules.policies {
        let added = change_in_period(policy.period_ns(), up_events, now_ns);
        let deleted = change_in_period(policy.period_ns(), down_events, now_ns);
        let start = i64::from(current) - i64::from(added) + i64::from(deleted);
        let proposed = match *policy {
            ScalingPolicy::Pods { value, .. } => start + i64::from(value),
            ScalingPolicy::Percent { value, .. } => {
                let scaled = start * (100 + i64::from(value));
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            }
        };
        let proposed = proposed.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        result = match rules.select {
            SelectPolicy::Min => result.min(proposed),
            _ => result.max(proposed),
        };
    }
    result
}

/// `calculateScaleDownLimitWithBehaviors`: the fewest replicas the rules allow now. Percent
/// truncates (`int32(start * (1 - value/100))`).
pub fn scale_down_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    rules: &ScalingRules,
    now_ns: u64,
) -> i32 {
    let mut result = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i32::MIN,
        SelectPolicy::Max => i32::MAX,
    };
    for policy in &rules.policies {
        let added = change_in_period(policy.period_ns(), up_events, now_ns);
        let deleted = change_in_period(policy.period_ns(), down_events, now_ns);
        let start = i64::from(current) - i64::from(added) + i64::from(deleted);
        let proposed = match *policy {
            ScalingPolicy::Pods { value, .. } => start - i64::from(value),
            // Go's conversion truncates toward zero.
            ScalingPolicy::Percent { value, .. } => start * (100 - i64::from(value)) / 100,
        };
        let proposed = proposed.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        result = match rules.select {
            SelectPolicy::Min => result.max(proposed),
            _ => result.min(proposed),
        };
    }
    result
}

/// `convertDesiredReplicasWithBehaviorRate`: bounds a stabilized recommendation by the rate
/// rules and by min/max replicas. Returns the replicas and, if a bound applied, which one
/// (`ScaleUpLimit`, `TooManyReplicas`, `ScaleDownLimit`, `TooFewReplicas`).
#[allow(clippy::too_many_arguments)]
pub fn limit_by_rate(
    current: i32,
    desired: i32,
    min_replicas: i32,
    max_replicas: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    up_rules: &ScalingRules,
    down_rules: &ScalingRules,
    now_ns: u64,
) -> (i32, Option<&'static str>) {
    if desired > current {
        let limit = scale_up_limit(current, up_events, down_events, up_rules, now_ns).max(current);
        let (maximum, reason) =
            if max_replicas > limit { (limit, "ScaleUpLimit") } else { (max_replicas, "TooManyReplicas") };
        if desired > maximum {
            return (maximum, Some(reason));
        }
    } else if desired < current {
        let limit = scale_down_limit(current, up_events, down_events, down_rules, now_ns).min(current);
        let (minimum, reason) =
            if min_replicas < limit { (limit, "ScaleDownLimit") } else { (min_replicas, "TooFewReplicas") };
        if desired < minimum {
            return (minimum, Some(reason));
        }
    }
    (desired, None)
}

/// Records a scaling for the rate rules, dropping events older than the longest policy period
/// (upstream marks them outdated and reuses their slots, which counts the same).
pub fn record_scale_event(events: &mut Vec<ScaleEvent>, rules: &ScalingRules, event: ScaleEvent) {
    let cutoff = i128::from(event.time_ns) - i128::from(rules.longest_period_ns());
    events.retain(|old| i128::from(old.time_ns) >= cutoff);
    events.push(event);
}
