//! The built-in controllers as [`Reconciler`](crate::controller::Reconciler)s: the ReplicaSet,
//! Deployment and EndpointSlice controllers of kube-controller-manager, and kube-scheduler.
//!
//! Each reconciler mirrors the upstream sync function (kubernetes/kubernetes 1.32+) named in its
//! rustdoc, and gets its arithmetic from [`crate::rules`]. Upstream syncs make their API calls
//! one after another and see each result before the next; here a reconcile returns its writes as
//! data and learns their outcome later through `on_write_result`. Where that changes a control
//! flow (slow-start batches, creating a Deployment's new ReplicaSet), the reconciler takes one
//! step per reconcile and says so.
//!
//! Code map:
//! - `replicaset`: `ReplicaSetController`, with its expectations.
//! - `deployment`: `DeploymentController` and the `kubectl rollout undo` helper [`deployment::rollback_request`].
//! - `endpointslice`: `EndpointSliceController`.
//! - `scheduler`: `Scheduler`, with assumed pods and unschedulable backoff.
//! - `garbagecollector`: `GarbageCollector`: background, foreground and orphaning deletion.
//! - `hpa`: `HorizontalPodAutoscalerController` (autoscaling/v2, Resource cpu metrics).
//! - `podgc`: `PodGarbageCollector`: pods bound to nodes that no longer exist.
//! - `cloud`: the cloud controller manager's service (LoadBalancer) and node lifecycle controllers.
//! - `disruption`: `DisruptionController`: PodDisruptionBudget status.
//! - `namespace`: `NamespaceController`: empties and finalizes deleted namespaces.
//!
//! Architecture invariant: no reconciler reads a clock or draws randomness except through the
//! `ReconcileContext` it is given, and all state is in BTreeMaps, so a reconciler fed the same
//! events and results makes the same decisions.

pub mod cloud;
pub mod deployment;
pub mod disruption;
pub mod endpointslice;
pub mod garbagecollector;
pub mod hpa;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod scheduler;

pub use cloud::{CloudNodeLifecycleController, ServiceLoadBalancerController};
pub use deployment::{rollback_request, DeploymentController};
pub use disruption::DisruptionController;
pub use endpointslice::EndpointSliceController;
pub use garbagecollector::GarbageCollector;
pub use hpa::HorizontalPodAutoscalerController;
pub use job::JobController;
pub use namespace::NamespaceController;
pub use nodelifecycle::NodeLifecycleController;
pub use podgc::PodGarbageCollector;
pub use replicaset::ReplicaSetController;
pub use scheduler::Scheduler;

use crate::objects::pod::PodPhase as ObjectPodPhase;
use crate::objects::{ObjectMeta, OwnerReference, Pod};
use crate::rules;

pub(crate) const NS_PER_SECOND: u64 = 1_000_000_000;

/// The controller reference a controller sets on what it creates (`metav1.NewControllerRef`):
/// controller and blockOwnerDeletion true, so foreground deletion of the owner waits for it.
pub fn controller_ref_to(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the owner with this kind and uid (`metav1.GetControllerOf`
/// compared by uid, as `resolveControllerRef` does: a recreated owner with the same name is
/// another owner).
pub(crate) fn is_controlled_by(meta: &ObjectMeta, owner_kind: &str, owner_uid: Option<&str>) -> bool {
    match (meta.controller_ref(), owner_uid) {
        (Some(reference), Some(uid)) => reference.kind == owner_kind && reference.uid == uid,
        _ => false,
    }
}

/// The pod's phase in the rules' terms (an unreported phase is Pending, as the API defaults it).
pub(crate) fn rules_phase(pod: &Pod) -> rules::pod::PodPhase {
    match pod.status.phase.unwrap_or_default() {
        ObjectPodPhase::Pending => rules::pod::PodPhase::Pending,
        ObjectPodPhase::Running => rules::pod::PodPhase::Running,
        ObjectPodPhase::Succeeded => rules::pod::PodPhase::Succeeded,
        ObjectPodPhase::Failed => rules::pod::PodPhase::Failed,
        ObjectPodPhase::Unknown => rules::pod::PodPhase::Unknown,
    }
}

/// `podutil.IsPodTerminal`: Succeeded or Failed.
pub(crate) fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(pod.status.phase, Some(ObjectPodPhase::Succeeded | ObjectPodPhase::Failed))
}

/// `controller.IsPodActive`: not terminal and not being deleted.
pub(crate) fn is_pod_active(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && !pod.metadata.is_terminating()
}

/// The lastTransitionTime of a True Ready condition (`None` when not ready or unset).
pub(crate) fn ready_since_ns(pod: &Pod) -> Option<u64> {
    pod.status.ready_condition().filter(|condition| condition.is_true("Ready")).and_then(|c| c.last_transition_time_ns)
}

/// `podutil.IsPodAvailable` on a pod object.
pub(crate) fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now_ns: u64) -> bool {
    rules::pod::is_pod_available(pod.is_ready(), ready_since_ns(pod), min_ready_seconds, now_ns)
}
