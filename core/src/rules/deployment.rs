//! Deployment controller arithmetic (`pkg/controller/deployment/`: `util/deployment_util.go`,
//! `rolling.go`, `sync.go`, `progress.go`).
//!
//! ReplicaSets are passed as a slice of [`RsInfo`]; decisions refer to them by index into that
//! slice ([`ScaleDecision`]), in the order upstream would issue the scale calls.

use std::cmp::Ordering;

use super::{to_i32, RulesError};

/// Annotation on a ReplicaSet with the Deployment's `replicas + maxSurge` at its last scaling
/// (`deployment.kubernetes.io/max-replicas`), read by proportional scaling.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// Annotation with the Deployment's replicas at the ReplicaSet's last scaling.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation with the ReplicaSet's revision number.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Reason of the Progressing condition once the new ReplicaSet is available.
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
/// Reason of the Progressing condition once the progress deadline passed.
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";

/// An IntOrString field such as maxSurge, maxUnavailable or a PDB's minAvailable: an absolute
/// number, or a string that must be a percentage like `"25%"` (parsed when used, as upstream does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    /// An absolute number.
    Int(i32),
    /// A string; valid only as `"<integer>%"`.
    String(String),
}

impl IntOrPercent {
    /// A percentage value, e.g. `IntOrPercent::percent(25)` is `"25%"`.
    pub fn percent(value: i32) -> Self {
        IntOrPercent::String(format!("{value}%"))
    }

    /// The value scaled against `total`, as `intstr.GetScaledValueFromIntOrPercent`
    /// (apimachinery `util/intstr/intstr.go`): an Int is returned as is; a percentage is
    /// `value * total / 100`, rounded up when `round_up`, else down (exact integer math; upstream
    /// uses `math.Ceil`/`math.Floor` on float64, which is exact for these magnitudes).
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, RulesError> {
        match self {
            IntOrPercent::Int(v) => Ok(*v),
            IntOrPercent::String(s) => {
                let invalid = || RulesError::InvalidIntOrPercent { value: s.clone() };
                let digits = s.strip_suffix('%').ok_or_else(invalid)?;
                let percent: i64 = digits.parse().map_err(|_| invalid())?;
                // i128: an i64 percentage times an i32 total cannot overflow.
                let product = i128::from(percent) * i128::from(total);
                let scaled = if round_up { -((-product).div_euclid(100)) } else { product.div_euclid(100) };
                i32::try_from(scaled).map_err(|_| RulesError::Overflow { what: "percentage of total" })
            }
        }
    }
}

/// A Deployment's strategy (`spec.strategy`), after API defaulting (25%/25% for RollingUpdate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentStrategy {
    /// Kill all old pods before creating new ones.
    Recreate,
    /// Replace pods gradually within maxSurge and maxUnavailable.
    RollingUpdate {
        /// Pods allowed above the desired count.
        max_surge: IntOrPercent,
        /// Pods allowed to be unavailable below the desired count.
        max_unavailable: IntOrPercent,
    },
}

impl DeploymentStrategy {
    /// The API default: RollingUpdate with maxSurge 25% and maxUnavailable 25%.
    pub fn default_rolling_update() -> Self {
        DeploymentStrategy::RollingUpdate {
            max_surge: IntOrPercent::percent(25),
            max_unavailable: IntOrPercent::percent(25),
        }
    }
}

/// `ResolveFenceposts` (`util/deployment_util.go`): maxSurge as a percentage of `replicas` rounds
/// up, maxUnavailable rounds down; if both resolve to 0, maxUnavailable becomes 1 ("surge might
/// not work due to quota").
///
/// This is the raw upstream function: it neither caps maxUnavailable at `replicas` nor special-cases
/// `replicas == 0` (with 0 replicas, percentages give (0, 0) and so (0, 1)). Upstream applies the
/// cap and the zero case in its `MaxUnavailable(deployment)` wrapper: see [`max_unavailable`].
/// Returns `(surge, unavailable)`.
pub fn resolve_fenceposts(
    max_surge: &IntOrPercent,
    max_unavailable: &IntOrPercent,
    replicas: i32,
) -> Result<(i32, i32), RulesError> {
    let surge = max_surge.scaled_value(replicas, true)?;
    let mut unavailable = max_unavailable.scaled_value(replicas, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// `MaxUnavailable(deployment)` (`util/deployment_util.go`): 0 for Recreate or when `replicas` is
/// 0; otherwise the resolved maxUnavailable capped at `replicas`.
pub fn max_unavailable(strategy: &DeploymentStrategy, replicas: i32) -> Result<i32, RulesError> {
    match strategy {
        DeploymentStrategy::Recreate => Ok(0),
        DeploymentStrategy::RollingUpdate { .. } if replicas == 0 => Ok(0),
        DeploymentStrategy::RollingUpdate { max_surge, max_unavailable } => {
            let (_, unavailable) = resolve_fenceposts(max_surge, max_unavailable, replicas)?;
            Ok(unavailable.min(replicas))
        }
    }
}

/// `MaxSurge(deployment)` (`util/deployment_util.go`): 0 for Recreate; otherwise the resolved
/// maxSurge (not capped).
pub fn max_surge(strategy: &DeploymentStrategy, replicas: i32) -> Result<i32, RulesError> {
    match strategy {
        DeploymentStrategy::Recreate => Ok(0),
        DeploymentStrategy::RollingUpdate { max_surge, max_unavailable } => {
            Ok(resolve_fenceposts(max_surge, max_unavailable, replicas)?.0)
        }
    }
}

/// What the rules need to know of a ReplicaSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsInfo {
    /// metadata.name; breaks ties between equal creation times.
    pub name: String,
    /// metadata.creationTimestamp, virtual nanoseconds.
    pub created_ns: u64,
    /// spec.replicas.
    pub spec_replicas: i32,
    /// status.availableReplicas.
    pub available_replicas: i32,
    /// The `deployment.kubernetes.io/desired-replicas` annotation, if present and an integer.
    pub desired_replicas_annotation: Option<i32>,
    /// The `deployment.kubernetes.io/max-replicas` annotation, if present and an integer.
    pub max_replicas_annotation: Option<i32>,
}

/// One scale call: set `rss[index].spec.replicas` to `replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleDecision {
    /// Index of the ReplicaSet in the slice passed in.
    pub index: usize,
    /// The new spec.replicas.
    pub replicas: i32,
}

fn sum_spec(rss: &[RsInfo], indices: impl Iterator<Item = usize>) -> i64 {
    indices.map(|i| i64::from(rss[i].spec_replicas)).sum()
}

fn check_index(rss: &[RsInfo], index: usize) -> Result<(), RulesError> {
    if index < rss.len() {
        Ok(())
    } else {
        Err(RulesError::InvalidArgument {
            reason: format!("new ReplicaSet index {index} out of range ({} ReplicaSets)", rss.len()),
        })
    }
}

/// `controller.ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn cmp_by_creation(a: &RsInfo, b: &RsInfo) -> Ordering {
    a.created_ns.cmp(&b.created_ns).then_with(|| a.name.cmp(&b.name))
}

/// `NewRSNewReplicas` (`util/deployment_util.go`): the new ReplicaSet's next size.
///
/// RollingUpdate: with `max_total = replicas + maxSurge` and `current` the sum of all ReplicaSets'
/// spec.replicas, no growth when `current >= max_total`; else grow by
/// `min(max_total - current, replicas - new.spec)`. Recreate: `replicas`. (Upstream resolves
/// maxSurge here directly, without the "both zero" adjustment, which only affects maxUnavailable.)
pub fn new_rs_new_replicas(
    replicas: i32,
    strategy: &DeploymentStrategy,
    rss: &[RsInfo],
    new_rs_index: usize,
) -> Result<i32, RulesError> {
    check_index(rss, new_rs_index)?;
    match strategy {
        DeploymentStrategy::Recreate => Ok(replicas),
        DeploymentStrategy::RollingUpdate { max_surge, .. } => {
            let surge = max_surge.scaled_value(replicas, true)?;
            let current = sum_spec(rss, 0..rss.len());
            let max_total = i64::from(replicas) + i64::from(surge);
            let new_spec = i64::from(rss[new_rs_index].spec_replicas);
            if current >= max_total {
                return Ok(rss[new_rs_index].spec_replicas);
            }
            let scale_up = (max_total - current).min(i64::from(replicas) - new_spec);
            to_i32(new_spec + scale_up, "new ReplicaSet replicas")
        }
    }
}

/// `reconcileNewReplicaSet` (`rolling.go`): `None` when the new ReplicaSet already has `replicas`;
/// scale down to `replicas` when above; otherwise [`new_rs_new_replicas`] (`None` if unchanged).
pub fn reconcile_new_replica_set(
    replicas: i32,
    strategy: &DeploymentStrategy,
    rss: &[RsInfo],
    new_rs_index: usize,
) -> Result<Option<ScaleDecision>, RulesError> {
    check_index(rss, new_rs_index)?;
    let spec = rss[new_rs_index].spec_replicas;
    if spec == replicas {
        return Ok(None);
    }
    let target = if spec > replicas { replicas } else { new_rs_new_replicas(replicas, strategy, rss, new_rs_index)? };
    Ok((target != spec).then_some(ScaleDecision { index: new_rs_index, replicas: target }))
}

/// `reconcileOldReplicaSets` (`rolling.go`) with its two steps, returning the scale calls in order.
///
/// `maxScaledDown = allPods - minAvailable - (new.spec - new.available)` where
/// `minAvailable = replicas - MaxUnavailable`; nothing when it is `<= 0` or old ReplicaSets have no
/// replicas. Then `cleanupUnhealthyReplicas`: old ReplicaSets oldest first, each scaled down by
/// `min(maxScaledDown - cleanedSoFar, spec - available)`. Then
/// `scaleDownOldReplicaSetsForRollingUpdate`: with `available` summed over all ReplicaSets
/// (status, unchanged by the cleanup), scale old ones oldest first by
/// `min(spec, available - minAvailable - scaledSoFar)`. A ReplicaSet may get two calls (cleanup,
/// then scale-down), as upstream issues two updates.
///
/// Upstream stops silently (keeping the calls already made) when a cleanup would scale *up*
/// (status.availableReplicas above spec.replicas, possible transiently); so does this function.
pub fn reconcile_old_replica_sets(
    replicas: i32,
    strategy: &DeploymentStrategy,
    rss: &[RsInfo],
    new_rs_index: usize,
) -> Result<Vec<ScaleDecision>, RulesError> {
    check_index(rss, new_rs_index)?;
    let mut decisions = Vec::new();
    let mut old: Vec<usize> = (0..rss.len()).filter(|&i| i != new_rs_index).collect();
    let old_pods = sum_spec(rss, old.iter().copied());
    if old_pods == 0 {
        return Ok(decisions);
    }
    let all_pods = sum_spec(rss, 0..rss.len());
    let min_available = i64::from(replicas) - i64::from(max_unavailable(strategy, replicas)?);
    let new_rs = &rss[new_rs_index];
    let new_unavailable = i64::from(new_rs.spec_replicas) - i64::from(new_rs.available_replicas);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(decisions);
    }
    old.sort_by(|&a, &b| cmp_by_creation(&rss[a], &rss[b]));
    // Current spec per old ReplicaSet, as updated by the cleanup step.
    let mut spec: Vec<i64> = rss.iter().map(|rs| i64::from(rs.spec_replicas)).collect();

    // cleanupUnhealthyReplicas
    let mut cleaned = 0i64;
    for &i in &old {
        if cleaned >= max_scaled_down {
            break;
        }
        let available = i64::from(rss[i].available_replicas);
        if spec[i] == 0 || spec[i] == available {
            continue;
        }
        let count = (max_scaled_down - cleaned).min(spec[i] - available);
        if count < 0 {
            // Upstream: "got invalid request to scale down"; the error is swallowed.
            return Ok(decisions);
        }
        spec[i] -= count;
        decisions.push(ScaleDecision { index: i, replicas: to_i32(spec[i], "old ReplicaSet replicas")? });
        cleaned += count;
    }

    // scaleDownOldReplicaSetsForRollingUpdate
    let available_pods: i64 = rss.iter().map(|rs| i64::from(rs.available_replicas)).sum();
    if available_pods <= min_available {
        return Ok(decisions);
    }
    let total_scale_down = available_pods - min_available;
    let mut scaled = 0i64;
    for &i in &old {
        if scaled >= total_scale_down {
            break;
        }
        if spec[i] == 0 {
            continue;
        }
        let count = spec[i].min(total_scale_down - scaled);
        spec[i] -= count;
        decisions.push(ScaleDecision { index: i, replicas: to_i32(spec[i], "old ReplicaSet replicas")? });
        scaled += count;
    }
    Ok(decisions)
}

/// `getReplicaSetFraction` (`util/deployment_util.go`): how many replicas this ReplicaSet gains
/// (or loses, negative) when the Deployment is resized mid-rollout.
///
/// Replicas 0: `-spec`. Otherwise `round(spec * (replicas + maxSurge) / before) - spec` where
/// `before` is the max-replicas annotation, or `deployment_status_replicas` when it is absent or 0.
/// Upstream computes `math.Round(float64(spec) * (float64(max) / float64(before)))`; we use the
/// exact rational rounded half away from zero. The two agree except possibly at an exact .5 where
/// float error in the factor tips the rounding. When `before` is 0 too (upstream divides by zero,
/// "should never happen") the fraction is 0.
pub fn replica_set_fraction(
    rs: &RsInfo,
    replicas: i32,
    strategy: &DeploymentStrategy,
    deployment_status_replicas: i32,
) -> Result<i32, RulesError> {
    if replicas == 0 {
        return to_i32(-i64::from(rs.spec_replicas), "replica set fraction");
    }
    let deployment_max = i64::from(replicas) + i64::from(max_surge(strategy, replicas)?);
    let before = match rs.max_replicas_annotation {
        Some(v) if v != 0 => i64::from(v),
        _ => i64::from(deployment_status_replicas),
    };
    if before == 0 {
        return Ok(0);
    }
    // i128: the product of two 32-bit counts and its doubling cannot overflow.
    let (spec, before) = (i128::from(rs.spec_replicas), i128::from(before));
    let num = spec * i128::from(deployment_max);
    // Round num / before half away from zero.
    let (num_abs, den_abs) = (num.abs(), before.abs());
    let magnitude = (2 * num_abs + den_abs) / (2 * den_abs);
    let rounded = if (num < 0) != (before < 0) { -magnitude } else { magnitude };
    i32::try_from(rounded - spec).map_err(|_| RulesError::Overflow { what: "replica set fraction" })
}

/// `GetProportion` (`util/deployment_util.go`): the ReplicaSet's fraction bounded by what is left
/// to distribute (`to_add - added`): min when scaling up, max when scaling down; 0 when the
/// ReplicaSet has 0 replicas or nothing is left.
pub fn proportion(
    rs: &RsInfo,
    replicas: i32,
    strategy: &DeploymentStrategy,
    deployment_status_replicas: i32,
    to_add: i32,
    added: i32,
) -> Result<i32, RulesError> {
    if rs.spec_replicas == 0 || to_add == 0 || to_add == added {
        return Ok(0);
    }
    let fraction = replica_set_fraction(rs, replicas, strategy, deployment_status_replicas)?;
    let allowed = to_i32(i64::from(to_add) - i64::from(added), "replicas left to add")?;
    Ok(if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) })
}

/// `FindActiveOrLatest` (`util/deployment_util.go`): the only ReplicaSet with replicas, or when
/// none has any, the new one (else the newest old one); `None` when several have replicas.
pub fn find_active_or_latest(rss: &[RsInfo], new_rs_index: Option<usize>) -> Option<usize> {
    let active: Vec<usize> = (0..rss.len()).filter(|&i| rss[i].spec_replicas > 0).collect();
    match active.len() {
        0 => new_rs_index.filter(|&i| i < rss.len()).or_else(|| {
            (0..rss.len()).filter(|&i| Some(i) != new_rs_index).max_by(|&a, &b| cmp_by_creation(&rss[a], &rss[b]))
        }),
        1 => Some(active[0]),
        _ => None,
    }
}

/// `IsSaturated` (`util/deployment_util.go`): the new ReplicaSet has `replicas` in spec, in its
/// desired-replicas annotation and available.
pub fn is_saturated(replicas: i32, rs: &RsInfo) -> bool {
    rs.spec_replicas == replicas
        && rs.desired_replicas_annotation == Some(replicas)
        && rs.available_replicas == replicas
}

/// The Deployment controller's `scale()` (`sync.go`), run when the Deployment's replicas changed
/// (or on a paused Deployment). Returns the scale calls in upstream's order.
///
/// 1. If one ReplicaSet is active (or none: the latest), set it to `replicas`.
/// 2. If the new ReplicaSet is saturated, scale every active old one to 0.
/// 3. RollingUpdate only: distribute `to_add = allowed - sum(spec)` over the active ReplicaSets,
///    where `allowed = replicas + maxSurge` (0 when replicas is 0). Scaling up they are sorted by
///    size descending, ties newest first (`ReplicaSetsBySizeNewer`); scaling down by size
///    descending, ties oldest first (`ReplicaSetsBySizeOlder`). Each gets [`proportion`]; the
///    leftover `to_add - added` goes to the first in that order, floored at 0. Every active
///    ReplicaSet gets a call (upstream also rewrites the desired/max-replicas annotations: callers
///    should set them to `replicas` and `replicas + maxSurge`), even when its size is unchanged.
pub fn proportional_scale(
    replicas: i32,
    strategy: &DeploymentStrategy,
    deployment_status_replicas: i32,
    rss: &[RsInfo],
    new_rs_index: Option<usize>,
) -> Result<Vec<ScaleDecision>, RulesError> {
    if let Some(i) = new_rs_index {
        check_index(rss, i)?;
    }
    if let Some(i) = find_active_or_latest(rss, new_rs_index) {
        if rss[i].spec_replicas == replicas {
            return Ok(Vec::new());
        }
        return Ok(vec![ScaleDecision { index: i, replicas }]);
    }
    if let Some(n) = new_rs_index {
        if is_saturated(replicas, &rss[n]) {
            return Ok((0..rss.len())
                .filter(|&i| i != n && rss[i].spec_replicas > 0)
                .map(|index| ScaleDecision { index, replicas: 0 })
                .collect());
        }
    }
    if matches!(strategy, DeploymentStrategy::Recreate) {
        return Ok(Vec::new());
    }
    let mut active: Vec<usize> = (0..rss.len()).filter(|&i| rss[i].spec_replicas > 0).collect();
    let total = sum_spec(rss, active.iter().copied());
    let allowed = if replicas > 0 { i64::from(replicas) + i64::from(max_surge(strategy, replicas)?) } else { 0 };
    let to_add = to_i32(allowed - total, "replicas to add")?;
    match to_add.cmp(&0) {
        Ordering::Greater => active.sort_by(|&a, &b| {
            rss[b].spec_replicas.cmp(&rss[a].spec_replicas).then_with(|| cmp_by_creation(&rss[b], &rss[a]))
        }),
        Ordering::Less => active.sort_by(|&a, &b| {
            rss[b].spec_replicas.cmp(&rss[a].spec_replicas).then_with(|| cmp_by_creation(&rss[a], &rss[b]))
        }),
        Ordering::Equal => {}
    }
    let mut added = 0i32;
    let mut sizes = Vec::with_capacity(active.len());
    for &i in &active {
        let size = if to_add != 0 {
            let p = proportion(&rss[i], replicas, strategy, deployment_status_replicas, to_add, added)?;
            added = added.checked_add(p).ok_or(RulesError::Overflow { what: "replicas added" })?;
            i64::from(rss[i].spec_replicas) + i64::from(p)
        } else {
            i64::from(rss[i].spec_replicas)
        };
        sizes.push(size);
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            *first = (*first + i64::from(to_add) - i64::from(added)).max(0);
        }
    }
    active
        .iter()
        .zip(sizes)
        .map(|(&index, size)| Ok(ScaleDecision { index, replicas: to_i32(size, "scaled replicas")? }))
        .collect()
}

/// The replica counts of a Deployment status that the progress predicates read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeploymentStatusCounts {
    /// status.replicas.
    pub replicas: i32,
    /// status.updatedReplicas.
    pub updated_replicas: i32,
    /// status.readyReplicas.
    pub ready_replicas: i32,
    /// status.availableReplicas.
    pub available_replicas: i32,
    /// status.observedGeneration.
    pub observed_generation: i64,
}

/// `DeploymentComplete` (`util/deployment_util.go`): updated, total and available replicas all
/// equal `replicas`, and the status observed the current generation.
pub fn deployment_complete(replicas: i32, generation: i64, new_status: &DeploymentStatusCounts) -> bool {
    new_status.updated_replicas == replicas
        && new_status.replicas == replicas
        && new_status.available_replicas == replicas
        && new_status.observed_generation >= generation
}

/// `DeploymentProgressing` (`util/deployment_util.go`): more updated replicas, fewer old replicas
/// (`replicas - updated`), more ready or more available replicas than in the previous status.
pub fn deployment_progressing(old_status: &DeploymentStatusCounts, new_status: &DeploymentStatusCounts) -> bool {
    let old_old = i64::from(old_status.replicas) - i64::from(old_status.updated_replicas);
    let new_old = i64::from(new_status.replicas) - i64::from(new_status.updated_replicas);
    new_status.updated_replicas > old_status.updated_replicas
        || new_old < old_old
        || new_status.ready_replicas > old_status.ready_replicas
        || new_status.available_replicas > old_status.available_replicas
}

/// The Progressing condition as [`deployment_timed_out`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressingCondition {
    /// The condition's reason, e.g. [`NEW_RS_AVAILABLE_REASON`].
    pub reason: String,
    /// lastUpdateTime, virtual nanoseconds.
    pub last_update_ns: u64,
}

/// `DeploymentTimedOut` (`util/deployment_util.go`): false without a progress deadline
/// (`None`, or `i32::MAX` which upstream treats as none) or without a Progressing condition;
/// false when its reason is NewReplicaSetAvailable (a complete Deployment never times out); true
/// when it is already ProgressDeadlineExceeded; else `lastUpdateTime + deadline < now` (strictly).
pub fn deployment_timed_out(
    progress_deadline_seconds: Option<i32>,
    progressing: Option<&ProgressingCondition>,
    now_ns: u64,
) -> bool {
    let Some(deadline_seconds) = progress_deadline_seconds.filter(|&s| s != i32::MAX) else {
        return false;
    };
    let Some(condition) = progressing else {
        return false;
    };
    if condition.reason == NEW_RS_AVAILABLE_REASON {
        return false;
    }
    if condition.reason == TIMED_OUT_REASON {
        return true;
    }
    let deadline_ns = i128::from(condition.last_update_ns) + i128::from(deadline_seconds) * 1_000_000_000;
    deadline_ns < i128::from(now_ns)
}

/// `Revision` (`util/deployment_util.go`): the revision annotation parsed as a base-10 `int64`
/// (`strconv.ParseInt`); an error for a missing or malformed value.
pub fn parse_revision(annotation: Option<&str>) -> Result<i64, RulesError> {
    let value = annotation.unwrap_or("");
    value
        .parse::<i64>()
        .map_err(|_| RulesError::InvalidArgument { reason: format!("revision {value:?} is not an integer") })
}

/// `MaxRevision` (`util/deployment_util.go`): the largest parseable revision annotation, 0 if none;
/// unparseable ones are skipped.
pub fn max_revision<'a>(annotations: impl IntoIterator<Item = Option<&'a str>>) -> i64 {
    annotations.into_iter().filter_map(|a| parse_revision(a).ok()).fold(0, i64::max)
}

/// The revision a new ReplicaSet gets: `MaxRevision(old ReplicaSets) + 1` (`getNewReplicaSet`,
/// `sync.go`).
pub fn next_revision(max_old_revision: i64) -> Result<i64, RulesError> {
    max_old_revision.checked_add(1).ok_or(RulesError::Overflow { what: "revision" })
}

/// The alphabet of `rand.SafeEncodeString` (apimachinery `util/rand`): no vowels, no look-alikes.
const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits, over `bytes` (the same function as Go's `hash/fnv.New32a`).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// A pod-template-hash computed as `controller.ComputeHash` (`pkg/controller/controller_utils.go`)
/// does, over a caller-chosen stable byte encoding of the template.
///
/// Upstream also uses FNV-1a 32-bit: it hashes a `spew` dump of the template, then, if a
/// collisionCount is set, 8 bytes holding the count as little-endian `uint32` followed by four zero
/// bytes (it allocates 8 and fills 4). The 32-bit sum is printed in decimal and each digit mapped
/// through `rand.SafeEncodeString` (`alphabet[byte % 27]`). Our bytes are not spew's, so our hashes
/// differ from a real cluster's, but the algorithm and the format are upstream's and fixed.
pub fn pod_template_hash(template_bytes: &[u8], collision_count: Option<i32>) -> String {
    let mut bytes = template_bytes.to_vec();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(&u32::from_le_bytes(count.to_le_bytes()).to_le_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
    }
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|digit| char::from(SAFE_ALPHABET[usize::from(digit) % SAFE_ALPHABET.len()]))
        .collect()
}
