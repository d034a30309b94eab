//! The pod garbage collector (`pkg/controller/podgc/gc_controller.go`): two of its rules.
//!
//! - **Orphaned pods** (`gcOrphaned`): pods bound to a node that no longer exists. As upstream, a
//!   node missing from the informer is quarantined for [`QUARANTINE`] (40 s), then confirmed absent
//!   by a GET against the API server (the informer may lag); only then are its pods collected.
//! - **Terminating pods on out-of-service nodes** (`gcTerminating`): a pod being deleted whose node
//!   is not Ready and carries the `node.kubernetes.io/out-of-service` taint (an operator's word
//!   that the node is shut down) is collected, since no kubelet will ever finish its deletion.
//!
//! Collecting is upstream's `markFailedAndDeletePodWithCondition`: a pod not yet Succeeded or
//! Failed first has its status patched to phase Failed (so that a pod whose kubelet is gone does not
//! stay Running for ever and its Job or ReplicaSet counts it as failed); an orphan also gets the
//! condition `DisruptionTarget=True` with reason `DeletionByPodGC` (the terminating rule passes no
//! condition upstream, so neither does the model). Only when the patch succeeded is the pod
//! force-deleted (grace period 0); a failed patch is retried and nothing is deleted meanwhile.
//!
//! Simplified: upstream scans every 20 s (`gcCheckPeriod`); the model reacts to informer events,
//! so it may act up to that much earlier. The patch is a status update with the pod's uid as
//! precondition and no resourceVersion, as upstream's strategic merge patch carries none. The
//! terminated-pod threshold and unscheduled terminating pods are not modelled.

use crate::api::{ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::meta::ConditionStatus;
use crate::objects::pod::PodPhase;
use crate::objects::{Condition, Kind, Node, Object, Pod};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// `quarantineTime`: how long a node must be missing before its pods count as orphaned.
pub const QUARANTINE: Duration = Duration::from_secs(40);
const QUARANTINE_NS: u64 = 40_000_000_000;

/// `v1.DisruptionTarget`: the pod is about to be deleted because of a disruption.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// The DisruptionTarget reason PodGC gives an orphan.
pub const REASON_DELETION_BY_POD_GC: &str = "DeletionByPodGC";
/// The DisruptionTarget message PodGC gives an orphan.
pub const ORPHAN_MESSAGE: &str = "PodGC: node no longer exists";
/// `v1.TaintNodeOutOfService`.
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// A missing node's verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// First seen missing at this time (the controller's clock).
    Since(u64),
    /// The GET is in flight.
    Verifying,
    /// The API server confirmed it does not exist.
    Confirmed,
}

/// PodGC's orphan and out-of-service collection.
#[derive(Debug, Default)]
pub struct PodGarbageCollector {
    missing: BTreeMap<String, Missing>,
    /// Pods deleted for their node's absence, for tests.
    pub orphans_deleted: u64,
    /// Terminating pods deleted because their node is out of service, for tests.
    pub out_of_service_deleted: u64,
    /// Pods whose status PodGC patched to Failed, for tests.
    pub marked_failed: u64,
    /// Pods with a status patch or a delete in flight.
    in_flight: BTreeSet<ObjectKey>,
    /// Pods whose Failed patch succeeded: the delete comes next.
    marked: BTreeSet<ObjectKey>,
}

impl PodGarbageCollector {
    pub fn new() -> Self {
        Self::default()
    }
}

fn node_of(object: &Object) -> Option<&str> {
    match object {
        Object::Pod(pod) => pod.spec.node_name.as_deref(),
        _ => None,
    }
}

/// `gcTerminating`'s node test: not Ready (`nodeutil.IsNodeReady`) and tainted out-of-service.
fn out_of_service(node: &Node) -> bool {
    let ready = crate::objects::meta::find_condition(&node.status.conditions, "Ready")
        .is_some_and(|condition| condition.status == ConditionStatus::True);
    !ready && node.spec.taints.iter().any(|taint| taint.key == OUT_OF_SERVICE_TAINT)
}

fn node_out_of_service(cache: &Cache, name: &str) -> bool {
    matches!(cache.get_by(Kind::Node, "", name).map(|object| &**object), Some(Object::Node(node)) if out_of_service(node))
}

/// The status upstream's patch produces: phase Failed and, if given, the condition set as
/// `apipod.UpdatePodCondition` sets it (lastTransitionTime moves only when the status changes).
pub fn failed_status(pod: &Pod, condition: Option<Condition>, now_ns: u64) -> Pod {
    let mut failed = pod.clone();
    failed.status.phase = Some(PodPhase::Failed);
    if let Some(mut condition) = condition {
        let conditions = &mut failed.status.conditions;
        match conditions.iter_mut().find(|existing| existing.condition_type == condition.condition_type) {
            Some(existing) => {
                condition.last_transition_time_ns =
                    if existing.status == condition.status { existing.last_transition_time_ns } else { Some(now_ns) };
                *existing = condition;
            }
            None => {
                condition.last_transition_time_ns = Some(now_ns);
                conditions.push(condition);
            }
        }
    }
    // A patch carries no resourceVersion; the uid stays as the precondition.
    failed.metadata.resource_version = None;
    failed
}

/// The orphan's DisruptionTarget condition.
pub fn orphan_condition() -> Condition {
    Condition {
        condition_type: DISRUPTION_TARGET.to_string(),
        status: ConditionStatus::True,
        reason: Some(REASON_DELETION_BY_POD_GC.to_string()),
        message: Some(ORPHAN_MESSAGE.to_string()),
        ..Condition::default()
    }
}

/// Why a pod is collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Orphaned,
    TerminatingOutOfService,
}

impl PodGarbageCollector {
    /// `markFailedAndDeletePodWithCondition`: the Failed patch first, then the forced delete.
    fn collect(&mut self, key: &ObjectKey, pod: &Pod, rule: Rule, now_ns: u64) -> Reconcile {
        if self.in_flight.contains(key) {
            return Reconcile::done();
        }
        let finished = matches!(pod.status.phase, Some(PodPhase::Succeeded) | Some(PodPhase::Failed));
        if !finished && !self.marked.contains(key) {
            let condition = (rule == Rule::Orphaned).then(orphan_condition);
            let object = Rc::new(Object::Pod(failed_status(pod, condition, now_ns)));
            self.in_flight.insert(key.clone());
            // Looked at again once the patch is answered (the host holds the requeue until then).
            return Reconcile::write(ApiRequest::UpdateStatus { object }).requeue_after(Duration::from_millis(1));
        }
        self.in_flight.insert(key.clone());
        match rule {
            Rule::Orphaned => self.orphans_deleted += 1,
            Rule::TerminatingOutOfService => self.out_of_service_deleted += 1,
        }
        Reconcile::write(ApiRequest::Delete {
            key: key.clone(),
            uid: pod.metadata.uid.clone(),
            grace_period_seconds: Some(0),
            propagation: None,
        })
    }
}

impl Reconciler for PodGarbageCollector {
    fn name(&self) -> &'static str {
        "pod-garbage-collector"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Pod, Kind::Node]
    }

    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        match event {
            CacheEvent::Added(object) | CacheEvent::Updated(_, object) if object.kind() == Kind::Pod => {
                match node_of(object) {
                    Some(node) if cache.get_by(Kind::Node, "", node).is_none() => vec![ObjectKey::of(object)],
                    Some(node) if object.meta().is_terminating() && node_out_of_service(cache, node) => {
                        vec![ObjectKey::of(object)]
                    }
                    _ => Vec::new(),
                }
            }
            CacheEvent::Added(object) | CacheEvent::Updated(_, object) if object.kind() == Kind::Node => {
                let name = &object.meta().name;
                if matches!(event, CacheEvent::Added(_)) {
                    self.missing.remove(name);
                }
                if !node_out_of_service(cache, name) {
                    return Vec::new();
                }
                cache
                    .list(Kind::Pod, None)
                    .into_iter()
                    .filter(|pod| node_of(pod) == Some(name.as_str()) && pod.meta().is_terminating())
                    .map(|pod| ObjectKey::of(pod))
                    .collect()
            }
            CacheEvent::Deleted(object) if object.kind() == Kind::Node => {
                let name = &object.meta().name;
                cache
                    .list(Kind::Pod, None)
                    .into_iter()
                    .filter(|pod| node_of(pod) == Some(name.as_str()))
                    .map(|pod| ObjectKey::of(pod))
                    .collect()
            }
            CacheEvent::Deleted(object) if object.kind() == Kind::Pod => {
                let key = ObjectKey::of(object);
                self.in_flight.remove(&key);
                self.marked.remove(&key);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else { return Reconcile::done() };
        let Object::Pod(pod) = &**object else { return Reconcile::done() };
        let Some(node) = pod.spec.node_name.as_deref() else { return Reconcile::done() };
        let now_ns = ctx.now_ns;
        if cache.get_by(Kind::Node, "", node).is_some() {
            self.missing.remove(node);
            if pod.metadata.is_terminating() && node_out_of_service(cache, node) {
                return self.collect(key, pod, Rule::TerminatingOutOfService, now_ns);
            }
            return Reconcile::done();
        }
        match *self.missing.entry(node.to_string()).or_insert(Missing::Since(now_ns)) {
            Missing::Since(since) if now_ns < since.saturating_add(QUARANTINE_NS) => {
                Reconcile::done().requeue_after(Duration::from_nanos(since + QUARANTINE_NS - now_ns))
            }
            Missing::Since(_) => {
                self.missing.insert(node.to_string(), Missing::Verifying);
                Reconcile::write(ApiRequest::Get { key: ObjectKey::new(Kind::Node, "", node) })
                    .requeue_after(Duration::from_millis(1))
            }
            Missing::Verifying => Reconcile::done().requeue_after(Duration::from_secs(1)),
            Missing::Confirmed => self.collect(key, pod, Rule::Orphaned, now_ns),
        }
    }

    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, crate::api::ApiError>) {
        match request {
            ApiRequest::Get { key: node_key } => {
                let verdict = match result {
                    Err(error) if error.reason == ApiErrorReason::NotFound => Some(Missing::Confirmed),
                    // The node exists after all (the informer lags): forget it.
                    Ok(_) => None,
                    // Could not tell: start the quarantine again.
                    Err(_) => Some(Missing::Since(0)),
                };
                match verdict {
                    Some(verdict) => {
                        self.missing.insert(node_key.name.clone(), verdict);
                    }
                    None => {
                        self.missing.remove(&node_key.name);
                    }
                }
            }
            ApiRequest::UpdateStatus { .. } => {
                self.in_flight.remove(key);
                if result.is_ok() {
                    self.marked_failed += 1;
                    self.marked.insert(key.clone());
                }
            }
            // A deleted pod stays in flight until the informer reports it gone.
            ApiRequest::Delete { .. } if result.is_err() => {
                self.in_flight.remove(key);
            }
            _ => {}
        }
    }
}
