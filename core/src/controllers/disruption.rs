//! The disruption controller (`pkg/controller/disruption/disruption.go`, `trySync`), 1.32+: it
//! keeps every PodDisruptionBudget's status (currentHealthy, desiredHealthy, expectedPods,
//! disruptionsAllowed, disruptedPods and the DisruptionAllowed condition) from the pods it covers
//! and the scale of their controllers. The Eviction API in the API server spends the budget.
//!
//! Simplifications, each deliberate:
//! - Expected scale is found for pods controlled by a ReplicaSet (the owning Deployment's
//!   spec.replicas when the ReplicaSet has one, as upstream's `getPodReplicaSet` finder does) or by
//!   a Deployment. Any other controller kind (a Job, say) has no scale: the sync fails and the
//!   budget fails safe (disruptionsAllowed 0, reason SyncFailed), as upstream does for a controller
//!   without a scale subresource. Pods without a controller are left out of the expected scale.
//! - No events, no `unhealthyPodEvictionPolicy` (the default IfHealthyBudget is what the Eviction
//!   API implements), no stale-DisruptionTarget-condition cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::api::{namespace_of, ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::meta::ConditionStatus;
use crate::objects::{IntOrString, Kind, Object, Pod, PodDisruptionBudget};
use crate::rules::deployment::IntOrPercent;
use crate::rules::pdb::{self as rules, PdbPod, PdbSpec};

/// The condition the controller and the Eviction API keep on a budget.
pub const CONDITION_DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Its reasons (`policy.SufficientPodsReason`, `InsufficientPodsReason`, `SyncFailedReason`).
pub const REASON_SUFFICIENT_PODS: &str = "SufficientPods";
pub const REASON_INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const REASON_SYNC_FAILED: &str = "SyncFailed";
/// How soon a budget whose status write failed is looked at again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Whether a budget covers a pod: same namespace and the selector matches (a nil selector covers
/// nothing; an empty one covers every pod of the namespace, as policy/v1 defines).
pub fn budget_covers(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let same_namespace = pdb.metadata.namespace.as_deref().unwrap_or("default")
        == pod.metadata.namespace.as_deref().unwrap_or("default");
    same_namespace && pdb.spec.selector.as_ref().is_some_and(|selector| selector.matches(&pod.metadata.labels))
}

/// The budget in the rules' terms.
pub fn rules_spec(pdb: &PodDisruptionBudget) -> PdbSpec {
    let convert = |value: &Option<IntOrString>| {
        value.as_ref().map(|value| match value {
            IntOrString::Int(count) => IntOrPercent::Int(*count),
            IntOrString::String(text) => IntOrPercent::String(text.clone()),
        })
    };
    PdbSpec { min_available: convert(&pdb.spec.min_available), max_unavailable: convert(&pdb.spec.max_unavailable) }
}

/// What the arithmetic needs of a pod.
pub fn pdb_pod(pod: &Pod) -> PdbPod {
    PdbPod { name: pod.metadata.name.clone(), terminating: pod.metadata.is_terminating(), ready: pod.is_ready() }
}

/// Sets the DisruptionAllowed condition as `pdbhelper.UpdateDisruptionAllowedCondition` does.
pub fn set_disruption_allowed_condition(pdb: &mut PodDisruptionBudget, reason: &str, now_ns: u64) {
    let status = if pdb.status.disruptions_allowed > 0 { ConditionStatus::True } else { ConditionStatus::False };
    crate::apiserver::set_condition(&mut pdb.status.conditions, CONDITION_DISRUPTION_ALLOWED, status, now_ns);
    if let Some(condition) =
        pdb.status.conditions.iter_mut().find(|condition| condition.condition_type == CONDITION_DISRUPTION_ALLOWED)
    {
        condition.reason = Some(reason.to_string());
    }
}

/// `DisruptionController`.
#[derive(Clone, Debug, Default)]
pub struct DisruptionController {
    /// Status writes made, for tests and reports.
    pub status_writes: u64,
}

impl DisruptionController {
    pub fn new() -> DisruptionController {
        DisruptionController::default()
    }

    /// The sum of the scales of the controllers of `pods` (`getExpectedScale`), each controller
    /// counted once; an error names a controller without a scale.
    fn expected_scale(pods: &[&Pod], cache: &Cache) -> Result<i32, String> {
        let mut controllers: BTreeMap<String, i32> = BTreeMap::new();
        for pod in pods {
            let Some(reference) = pod.metadata.controller_ref() else { continue };
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let scale = match reference.kind.as_str() {
                "ReplicaSet" => {
                    let Some(Object::ReplicaSet(replica_set)) =
                        cache.get_by(Kind::ReplicaSet, namespace, &reference.name).map(|o| o.as_ref())
                    else {
                        return Err(format!("the ReplicaSet {namespace}/{} of a pod is not known", reference.name));
                    };
                    if replica_set.metadata.uid.as_deref() != Some(reference.uid.as_str()) {
                        return Err(format!("the ReplicaSet {namespace}/{} has another uid", reference.name));
                    }
                    match replica_set.metadata.controller_ref().filter(|owner| owner.kind == "Deployment") {
                        Some(owner) => match cache.get_by(Kind::Deployment, namespace, &owner.name).map(|o| o.as_ref())
                        {
                            Some(Object::Deployment(deployment))
                                if deployment.metadata.uid.as_deref() == Some(owner.uid.as_str()) =>
                            {
                                (owner.uid.clone(), deployment.spec.replicas.unwrap_or(1))
                            }
                            _ => return Err(format!("the Deployment {namespace}/{} is not known", owner.name)),
                        },
                        None => (reference.uid.clone(), replica_set.spec.replicas.unwrap_or(1)),
                    }
                }
                "Deployment" => match cache.get_by(Kind::Deployment, namespace, &reference.name).map(|o| o.as_ref()) {
                    Some(Object::Deployment(deployment)) => {
                        (reference.uid.clone(), deployment.spec.replicas.unwrap_or(1))
                    }
                    _ => return Err(format!("the Deployment {namespace}/{} is not known", reference.name)),
                },
                other => return Err(format!("{other} {namespace}/{} has no scale subresource", reference.name)),
            };
            controllers.insert(scale.0, scale.1);
        }
        Ok(controllers.values().fold(0i32, |sum, scale| sum.saturating_add(*scale)))
    }

    /// The status `trySync` computes, or an error for `failSafe`.
    fn compute(
        pdb: &PodDisruptionBudget,
        cache: &Cache,
        now_ns: u64,
    ) -> Result<(PodDisruptionBudget, Option<u64>), String> {
        let namespace = pdb.metadata.namespace.as_deref().unwrap_or("default");
        let pods: Vec<&Pod> = cache
            .list(Kind::Pod, Some(namespace))
            .into_iter()
            .filter_map(|object| match object.as_ref() {
                Object::Pod(pod) if budget_covers(pdb, pod) => Some(pod),
                _ => None,
            })
            .collect();
        let spec = rules_spec(pdb);
        let needs_scale = spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrPercent::String(_)));
        let expected_scale = if needs_scale { Self::expected_scale(&pods, cache)? } else { 0 };
        let arithmetic: Vec<PdbPod> = pods.iter().map(|pod| pdb_pod(pod)).collect();
        let (disrupted, recheck_ns) = rules::build_disrupted_pod_map(&arithmetic, &pdb.status.disrupted_pods, now_ns);
        let current_healthy = rules::count_healthy_pods(&arithmetic, &disrupted, now_ns);
        let matching = i32::try_from(pods.len()).unwrap_or(i32::MAX);
        let numbers = rules::pdb_numbers(&spec, expected_scale, matching, current_healthy)
            .map_err(|error| format!("the budget cannot be computed: {error:?}"))?;
        let mut updated = pdb.clone();
        updated.status.current_healthy = current_healthy;
        updated.status.desired_healthy = numbers.desired_healthy;
        updated.status.expected_pods = numbers.expected_pods;
        updated.status.disruptions_allowed = numbers.disruptions_allowed;
        updated.status.disrupted_pods = disrupted;
        updated.status.observed_generation = pdb.metadata.generation;
        let reason = if numbers.disruptions_allowed > 0 { REASON_SUFFICIENT_PODS } else { REASON_INSUFFICIENT_PODS };
        set_disruption_allowed_condition(&mut updated, reason, now_ns);
        Ok((updated, recheck_ns))
    }
}

impl Reconciler for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::PodDisruptionBudget, Kind::Pod, Kind::ReplicaSet, Kind::Deployment]
    }

    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        let budgets_of_namespace = |namespace: &str| cache.list(Kind::PodDisruptionBudget, Some(namespace));
        match object.as_ref() {
            Object::PodDisruptionBudget(_) => vec![ObjectKey::of(object)],
            Object::Pod(_) => {
                // `getPdbForPod` on the pod as it is now (and, for an update, as it was, through
                // the old object the cache event carries).
                let mut keys = BTreeSet::new();
                let namespace = namespace_of(object);
                for candidate in event_pods(event) {
                    for budget in budgets_of_namespace(&namespace) {
                        if let Object::PodDisruptionBudget(pdb) = budget.as_ref() {
                            if budget_covers(pdb, candidate) {
                                keys.insert(ObjectKey::of(budget));
                            }
                        }
                    }
                }
                keys.into_iter().collect()
            }
            // A scale change changes expectedPods: every budget of the namespace looks again
            // (upstream maps the controller to its pods' budgets; this is a superset).
            Object::ReplicaSet(_) | Object::Deployment(_) => {
                budgets_of_namespace(&namespace_of(object)).into_iter().map(|b| ObjectKey::of(b)).collect()
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(Object::PodDisruptionBudget(pdb)) = cache.get(key).map(|object| object.as_ref()) else {
            return Reconcile::done();
        };
        let (updated, recheck_ns) = match Self::compute(pdb, cache, ctx.now_ns) {
            Ok(result) => result,
            Err(_) => {
                // `failSafe`: no disruption while the budget cannot be computed.
                let mut updated = pdb.clone();
                updated.status.disruptions_allowed = 0;
                set_disruption_allowed_condition(&mut updated, REASON_SYNC_FAILED, ctx.now_ns);
                (updated, None)
            }
        };
        let mut decision = if updated.status == pdb.status {
            Reconcile::done()
        } else {
            self.status_writes += 1;
            // Guarded by the cached resourceVersion: a status the Eviction API has just
            // decremented must not be overwritten from a stale view.
            Reconcile::write(ApiRequest::UpdateStatus { object: Rc::new(Object::PodDisruptionBudget(updated)) })
        };
        if let Some(at_ns) = recheck_ns {
            decision = decision.requeue_after(Duration::from_nanos(at_ns.saturating_sub(ctx.now_ns).max(1)));
        }
        decision
    }

    fn on_write_result(&mut self, _key: &ObjectKey, _request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        // A 409 (the Eviction API or another write got there first) is retried by the host's
        // backoff, which reconciles from the fresher cache; nothing to remember here.
        if let Err(error) = result {
            debug_assert!(error.reason != ApiErrorReason::Invalid, "the controller wrote an invalid status: {error}");
        }
    }
}

/// The pods a cache event is about: the new state, and the old one for an update.
fn event_pods(event: &CacheEvent) -> Vec<&Pod> {
    let mut pods = Vec::new();
    if let Object::Pod(pod) = event.object().as_ref() {
        pods.push(pod);
    }
    if let CacheEvent::Updated(old, _) = event {
        if let Object::Pod(pod) = old.as_ref() {
            pods.push(pod);
        }
    }
    pods
}
