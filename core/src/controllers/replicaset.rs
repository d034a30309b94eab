//! The ReplicaSet controller (`pkg/controller/replicaset/replica_set.go`), with the expectations
//! of `pkg/controller/controller_utils.go` (`ControllerExpectations`,
//! `UIDTrackingControllerExpectations`).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::api::{namespace_of, ApiError, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::workloads::ReplicaSetStatus;
use crate::objects::{Kind, LabelSelector, Object, ObjectMeta, Pod, ReplicaSet};
use crate::rules;

use super::{controller_ref_to, is_controlled_by, is_pod_active, is_pod_available, ready_since_ns, rules_phase};

/// Most creations or deletions one sync issues (`burstReplicas`, kube-controller-manager's default).
pub const BURST_REPLICAS: i64 = 500;
/// How long unmet expectations hold a ReplicaSet back (`ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT_NS: u64 = 5 * 60 * super::NS_PER_SECOND;
/// How often a reconcile looks again while a slow-start batch still awaits write results.
pub const SLOW_START_POLL: Duration = Duration::from_secs(1);

/// What one ReplicaSet waits to observe (`ControlleeExpectations` plus the uid set of
/// `UIDTrackingControllerExpectations`). Deletions are tracked by pod uid, so a pod deleted twice
/// (a terminating pod that then disappears) lowers the count once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Pod creations not yet observed.
    pub add: i64,
    /// Pod deletions not yet observed (the size of `deleting_uids` when set).
    pub del: i64,
    /// The uids of pods this ReplicaSet asked to delete and has not yet seen go.
    pub deleting_uids: BTreeSet<String>,
    /// Virtual time at which they were set; they expire [`EXPECTATIONS_TIMEOUT_NS`] later.
    pub set_at_ns: u64,
}

impl Expectations {
    /// `Fulfilled`: nothing left to observe.
    pub fn fulfilled(&self) -> bool {
        self.add <= 0 && self.del <= 0
    }
}

/// A slow-start creation run in progress (`slowStartBatch`), spread over reconciles.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlowStart {
    /// Creations not yet issued.
    remaining: i64,
    /// Size of the next batch.
    next_batch: i64,
    /// Creations issued whose results have not come back.
    in_flight: i64,
    /// Some creation of the current batch failed: no more batches.
    failed: bool,
}

/// `ReplicaSetController`: keeps `spec.replicas` active pods for each ReplicaSet and reports
/// their counts in its status (`syncReplicaSet`, `manageReplicas`, `calculateStatus`).
///
/// Adaptation of `slowStartBatch`: upstream issues batches of 1, 2, 4, ... creations within one
/// sync, waiting for each batch's results and stopping after a batch with a failure. Here a
/// reconcile issues one batch; the next batch goes out on a later reconcile of the same key, once
/// every result of the batch has come back through `on_write_result` without a failure (the
/// pods' Added events enqueue the key; while results are outstanding the reconcile asks to look
/// again after [`SLOW_START_POLL`]). After a failed batch the creations never issued are
/// subtracted from the expectations, as upstream lowers them for `skippedPods`.
///
/// Orphan adoption and release (`ClaimPods`) is not modelled: a ReplicaSet owns exactly the pods
/// whose controller reference carries its uid. The ReplicaFailure condition is not set.
#[derive(Clone, Debug, Default)]
pub struct ReplicaSetController {
    expectations: BTreeMap<ObjectKey, Expectations>,
    slow_starts: BTreeMap<ObjectKey, SlowStart>,
    mutants: crate::mutants::Mutants,
}

impl ReplicaSetController {
    /// A controller with no state yet: no expectations, assumptions or backoffs.
    pub fn new() -> ReplicaSetController {
        ReplicaSetController::default()
    }

    /// The controller with deliberate bugs switched on (negative controls).
    pub fn with_mutants(mut self, mutants: crate::mutants::Mutants) -> ReplicaSetController {
        self.mutants = mutants;
        self
    }

    /// The expectations recorded for a ReplicaSet, for tests and liveness reports.
    pub fn expectations(&self, key: &ObjectKey) -> Option<&Expectations> {
        self.expectations.get(key)
    }

    /// `SatisfiedExpectations`: no record, fulfilled, or older than five minutes.
    pub fn satisfied_expectations(&self, key: &ObjectKey, now_ns: u64) -> bool {
        if self.mutants.contains(crate::mutants::Mutant::ReplicaSetIgnoresExpectations) {
            return true;
        }
        match self.expectations.get(key) {
            None => true,
            Some(expectations) => {
                expectations.fulfilled() || now_ns.saturating_sub(expectations.set_at_ns) > EXPECTATIONS_TIMEOUT_NS
            }
        }
    }

    fn creation_observed(&mut self, key: &ObjectKey) {
        if let Some(expectations) = self.expectations.get_mut(key) {
            expectations.add -= 1;
        }
    }

    fn deletion_observed(&mut self, key: &ObjectKey, uid: Option<&str>) {
        if let (Some(expectations), Some(uid)) = (self.expectations.get_mut(key), uid) {
            if expectations.deleting_uids.remove(uid) {
                expectations.del -= 1;
            }
        }
    }

    /// Issues the next slow-start batch of `key`, if one is due.
    fn next_batch(&mut self, key: &ObjectKey, rs: &ReplicaSet, writes: &mut Vec<ApiRequest>) {
        let Some(slow) = self.slow_starts.get_mut(key) else { return };
        if slow.in_flight > 0 || slow.failed || slow.remaining <= 0 {
            return;
        }
        let batch = slow.next_batch.min(slow.remaining);
        slow.remaining -= batch;
        slow.next_batch = (2 * batch).min(slow.remaining.max(1));
        slow.in_flight = batch;
        for _ in 0..batch {
            writes.push(ApiRequest::Create { object: Rc::new(Object::Pod(pod_from_template(rs))) });
        }
    }

    /// `manageReplicas`: create or delete pods towards spec.replicas (at most [`BURST_REPLICAS`]).
    fn manage_replicas(
        &mut self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        active: &[&Pod],
        cache: &Cache,
        now_ns: u64,
        writes: &mut Vec<ApiRequest>,
    ) {
        let replicas = i64::from(rs.spec.replicas.unwrap_or(1));
        let diff = i64::try_from(active.len()).unwrap_or(i64::MAX) - replicas;
        if diff < 0 {
            let count = (-diff).min(BURST_REPLICAS);
            self.expectations.insert(
                key.clone(),
                Expectations { add: count, del: 0, deleting_uids: BTreeSet::new(), set_at_ns: now_ns },
            );
            self.slow_starts
                .insert(key.clone(), SlowStart { remaining: count, next_batch: 1, in_flight: 0, failed: false });
            self.next_batch(key, rs, writes);
        } else if diff > 0 {
            let count = usize::try_from(diff.min(BURST_REPLICAS)).unwrap_or(usize::MAX);
            let victims = pods_to_delete(rs, active, cache, count, now_ns);
            let deleting_uids: BTreeSet<String> = victims.iter().filter_map(|pod| pod.metadata.uid.clone()).collect();
            self.expectations.insert(
                key.clone(),
                Expectations {
                    add: 0,
                    del: i64::try_from(deleting_uids.len()).unwrap_or(i64::MAX),
                    deleting_uids,
                    set_at_ns: now_ns,
                },
            );
            for pod in victims {
                writes.push(ApiRequest::Delete {
                    key: ObjectKey::new(Kind::Pod, &key.namespace, &pod.metadata.name),
                    uid: pod.metadata.uid.clone(),
                    grace_period_seconds: None,
                    propagation: None,
                });
            }
        }
    }

    /// The ReplicaSet key a pod's controller reference names, if that ReplicaSet is in the cache
    /// with the same uid (`resolveControllerRef`).
    fn owner_key(pod: &Pod, cache: &Cache) -> Option<ObjectKey> {
        let reference = pod.metadata.controller_ref().filter(|r| r.kind == "ReplicaSet")?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let key = ObjectKey::new(Kind::ReplicaSet, &namespace, &reference.name);
        let rs = cache.get(&key)?;
        (rs.meta().uid.as_deref() == Some(reference.uid.as_str())).then_some(key)
    }
}

/// `GetPodFromTemplate` (`controller_utils.go`): a pod named by the API server from
/// `<rs-name>-`, with the template's labels, annotations and finalizers and a controller
/// reference to the ReplicaSet.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = &rs.spec.template;
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name)),
            namespace: Some(rs.metadata.namespace.clone().unwrap_or_else(|| "default".to_string())),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            finalizers: template.metadata.finalizers.clone(),
            owner_references: vec![controller_ref_to("apps/v1", "ReplicaSet", &rs.metadata)],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: Default::default(),
    }
}

/// `getPodsToDelete` with `getIndirectlyRelatedPods`: ranks the active pods by
/// `rules::pod::rank_pods_for_deletion`, counting related pods per node over every ReplicaSet
/// with the same controller (the Deployment's other ReplicaSets), and returns the first `count`.
fn pods_to_delete<'a>(rs: &ReplicaSet, active: &[&'a Pod], cache: &Cache, count: usize, now_ns: u64) -> Vec<&'a Pod> {
    let namespace = rs.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let sibling_uids: Vec<String> = match rs.metadata.controller_ref() {
        Some(owner) => cache
            .controlled_by(Kind::ReplicaSet, &owner.uid)
            .into_iter()
            .filter(|object| namespace_of(object) == namespace)
            .filter_map(|object| object.meta().uid.clone())
            .collect(),
        None => rs.metadata.uid.iter().cloned().collect(),
    };
    let related_nodes: Vec<String> = sibling_uids
        .iter()
        .flat_map(|uid| cache.controlled_by(Kind::Pod, uid))
        .filter_map(|object| match &**object {
            Object::Pod(pod) if is_pod_active(pod) => Some(pod.spec.node_name.clone().unwrap_or_default()),
            _ => None,
        })
        .collect();
    let related_refs: Vec<&str> = related_nodes.iter().map(String::as_str).collect();
    let pod_nodes: Vec<&str> = active.iter().map(|pod| pod.spec.node_name.as_deref().unwrap_or("")).collect();
    let ranks = rules::pod::ranks_by_related_pods_on_same_node(&pod_nodes, &related_refs);
    let infos: Vec<rules::pod::PodRankInfo> = active
        .iter()
        .zip(ranks)
        .map(|(pod, related)| rules::pod::PodRankInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            name: pod.metadata.name.clone(),
            node_name: pod.spec.node_name.clone().unwrap_or_default(),
            phase: rules_phase(pod),
            ready: pod.is_ready(),
            ready_since_ns: ready_since_ns(pod),
            deletion_cost: rules::pod::parse_pod_deletion_cost(
                pod.metadata.annotations.get(rules::pod::POD_DELETION_COST_ANNOTATION).map(String::as_str),
            ),
            related_pods_on_node: related,
            max_container_restarts: pod.status.container_statuses.iter().map(|c| c.restart_count).max().unwrap_or(0),
            max_sidecar_restarts: 0,
            created_ns: pod.metadata.creation_timestamp_ns,
        })
        .collect();
    rules::pod::rank_pods_for_deletion(&infos, now_ns).into_iter().take(count).map(|index| active[index]).collect()
}

/// `calculateStatus` (`replica_set_utils.go`): counts over the active owned pods.
pub fn calculate_status(rs: &ReplicaSet, active: &[&Pod], now_ns: u64) -> ReplicaSetStatus {
    calculate_status_with(rs, active, rs.spec.min_ready_seconds.unwrap_or(0), now_ns)
}

/// [`calculate_status`] with the `minReadySeconds` to count availability by.
fn calculate_status_with(rs: &ReplicaSet, active: &[&Pod], min_ready_seconds: i32, now_ns: u64) -> ReplicaSetStatus {
    let template_labels = LabelSelector::from_labels(rs.spec.template.metadata.labels.clone());
    let count = |predicate: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|pod| predicate(pod)).count()).unwrap_or(i32::MAX)
    };
    ReplicaSetStatus {
        observed_generation: rs.metadata.generation,
        replicas: count(&|_| true),
        fully_labeled_replicas: count(&|pod| template_labels.matches(&pod.metadata.labels)),
        ready_replicas: count(&|pod| pod.is_ready()),
        available_replicas: count(&|pod| is_pod_available(pod, min_ready_seconds, now_ns)),
        conditions: rs.status.conditions.clone(),
    }
}

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::ReplicaSet, Kind::Pod]
    }

    /// `addPod`/`updatePod`/`deletePod` and the ReplicaSet handlers: lower expectations as pods
    /// are observed, and name the ReplicaSets to sync.
    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        let mut keys = Vec::new();
        match &**object {
            Object::ReplicaSet(_) => {
                let key = ObjectKey::of(object);
                if let CacheEvent::Deleted(_) = event {
                    self.expectations.remove(&key);
                    self.slow_starts.remove(&key);
                }
                keys.push(key);
            }
            Object::Pod(pod) => {
                let Some(key) = Self::owner_key(pod, cache) else {
                    if let CacheEvent::Updated(old, _) = event {
                        if let Object::Pod(old_pod) = &**old {
                            keys.extend(Self::owner_key(old_pod, cache));
                        }
                    }
                    return keys;
                };
                match event {
                    CacheEvent::Added(_) if pod.metadata.is_terminating() => {
                        self.deletion_observed(&key, pod.metadata.uid.as_deref());
                    }
                    CacheEvent::Added(_) => self.creation_observed(&key),
                    CacheEvent::Updated(old, _) => {
                        if pod.metadata.is_terminating() {
                            self.deletion_observed(&key, pod.metadata.uid.as_deref());
                        }
                        if let Object::Pod(old_pod) = &**old {
                            if let Some(old_key) = Self::owner_key(old_pod, cache).filter(|k| *k != key) {
                                keys.push(old_key);
                            }
                        }
                    }
                    CacheEvent::Deleted(_) => self.deletion_observed(&key, pod.metadata.uid.as_deref()),
                }
                keys.push(key);
            }
            _ => {}
        }
        keys
    }

    /// `syncReplicaSet`.
    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else {
            self.expectations.remove(key);
            self.slow_starts.remove(key);
            return Reconcile::done();
        };
        let Object::ReplicaSet(rs) = &**object else { return Reconcile::done() };
        let now_ns = ctx.now_ns;
        let owned: Vec<&Pod> = match rs.metadata.uid.as_deref() {
            Some(uid) => cache
                .controlled_by(Kind::Pod, uid)
                .into_iter()
                .filter_map(|object| match &**object {
                    Object::Pod(pod) if is_controlled_by(&pod.metadata, "ReplicaSet", Some(uid)) => Some(pod),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        let active: Vec<&Pod> = owned.into_iter().filter(|pod| is_pod_active(pod)).collect();
        let mut result = Reconcile::done();
        let satisfied = self.satisfied_expectations(key, now_ns);
        if satisfied {
            // Expired or fulfilled: a slow start still running is abandoned and recomputed.
            self.slow_starts.remove(key);
        }
        if self.slow_starts.contains_key(key) {
            if !rs.metadata.is_terminating() {
                self.next_batch(key, rs, &mut result.writes);
            }
            if self.slow_starts.get(key).is_some_and(|slow| slow.in_flight > 0) {
                result = result.requeue_after(SLOW_START_POLL);
            }
        } else if satisfied && !rs.metadata.is_terminating() {
            self.manage_replicas(key, rs, &active, cache, now_ns, &mut result.writes);
            if self.slow_starts.get(key).is_some_and(|slow| slow.in_flight > 0) {
                result = result.requeue_after(SLOW_START_POLL);
            }
        }
        let mut min_ready_seconds = rs.spec.min_ready_seconds.unwrap_or(0);
        if self.mutants.contains(crate::mutants::Mutant::ReplicaSetCountsReadyAsAvailable) {
            min_ready_seconds = 0;
        } else if self.mutants.contains(crate::mutants::Mutant::ReplicaSetMinReadyOffByOne) {
            min_ready_seconds = (min_ready_seconds - 1).max(0);
        }
        let status = calculate_status_with(rs, &active, min_ready_seconds, now_ns);
        if min_ready_seconds > 0 && status.ready_replicas != status.available_replicas {
            // Look again when the first ready pod becomes available (upstream: after the whole
            // minReadySeconds, which is never earlier than this).
            let remaining_ns = active
                .iter()
                .filter(|pod| pod.is_ready() && !is_pod_available(pod, min_ready_seconds, now_ns))
                .filter_map(|pod| rules::pod::pod_available_at_ns(true, ready_since_ns(pod), min_ready_seconds))
                .map(|at| at.saturating_sub(now_ns))
                .min()
                .unwrap_or(u64::from(min_ready_seconds.unsigned_abs()) * super::NS_PER_SECOND);
            result = result.requeue_after(Duration::from_nanos(remaining_ns.max(1)));
        }
        if status != rs.status {
            let mut updated = rs.clone();
            updated.status = status;
            result.writes.push(ApiRequest::UpdateStatus { object: Rc::new(Object::ReplicaSet(updated)) });
        }
        result
    }

    /// Lowers expectations for writes that failed (any error, a timeout included, as upstream
    /// does), and moves a slow start on.
    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        match request {
            ApiRequest::Create { object } if object.kind() == Kind::Pod => {
                if result.is_err() {
                    self.creation_observed(key);
                }
                let Some(slow) = self.slow_starts.get_mut(key) else { return };
                slow.in_flight -= 1;
                if result.is_err() {
                    slow.failed = true;
                }
                if slow.in_flight <= 0 && (slow.failed || slow.remaining <= 0) {
                    let skipped = if slow.failed { slow.remaining } else { 0 };
                    self.slow_starts.remove(key);
                    if let Some(expectations) = self.expectations.get_mut(key) {
                        expectations.add -= skipped;
                    }
                }
            }
            ApiRequest::Delete { key: pod_key, uid, .. } if pod_key.kind == Kind::Pod && result.is_err() => {
                self.deletion_observed(key, uid.as_deref());
            }
            _ => {}
        }
    }
}
