//! The Job controller (`pkg/controller/job/job_controller.go`, `backoff_utils.go`), NonIndexed
//! completion mode, with its arithmetic from [`crate::rules::job`].

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::api::{ApiError, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::pod::{PodPhase, RestartPolicy};
use crate::objects::workloads::JobStatus;
use crate::objects::{Condition, ConditionStatus, Job, Kind, Object, ObjectMeta, Pod};
use crate::rules::job as rules;

use super::replicaset::{Expectations, EXPECTATIONS_TIMEOUT_NS};
use super::{controller_ref_to, is_controlled_by, is_pod_active};

/// The Complete condition type.
pub const CONDITION_COMPLETE: &str = "Complete";
/// The Failed condition type.
pub const CONDITION_FAILED: &str = "Failed";
/// The reason of a Failed condition set because too many pods failed.
pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";

/// What the controller remembers about one Job between syncs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobRecord {
    /// Creations and deletions not yet observed.
    pub expectations: Expectations,
    /// Every owned pod seen in a terminal phase, by uid: true for Succeeded, false for Failed.
    /// Stands in for upstream's tracking finalizers and `uncountedTerminatedPods`: a pod counts
    /// once, even after it has left the cache.
    pub finished: BTreeMap<String, bool>,
    /// `backoffRecord.failuresAfterLastSuccess`.
    pub failures_after_last_success: u32,
    /// `backoffRecord.lastFailureTime`: here the virtual time at which a sync first saw the
    /// failure (upstream reads the pod's finish time).
    pub last_failure_ns: Option<u64>,
}

impl JobRecord {
    fn count(&self, succeeded: bool) -> i32 {
        i32::try_from(self.finished.values().filter(|&&s| s == succeeded).count()).unwrap_or(i32::MAX)
    }
}

/// `JobController`: runs pods from a Job's template until `completions` of them succeeded, or
/// more than `backoffLimit` failed (`syncJob`, `manageJob`, `newBackoffRecord`).
///
/// Simplifications, each deliberate:
/// - Pods are counted by a per-Job tally of pods seen in a terminal phase ([`JobRecord::finished`])
///   instead of tracking finalizers; the status counts are the larger of the tally and the stored
///   status, so a restarted controller (empty tally) never lowers them. A pod deleted while
///   running (by scale-down or by the node lifecycle controller) is not counted as failed unless
///   its Failed phase is observed before it goes.
/// - Terminal conditions are set at once: no interim `FailureTarget`/`SuccessCriteriaMet`
///   condition waiting for the remaining pods to terminate (upstream 1.31+).
/// - No podFailurePolicy, successPolicy, activeDeadlineSeconds, suspend, Indexed mode, ttl, or
///   orphan adoption: a Job owns exactly the pods whose controller reference carries its uid.
/// - The failure backoff counts from when a sync first saw the failed pod.
#[derive(Clone, Debug, Default)]
pub struct JobController {
    records: BTreeMap<ObjectKey, JobRecord>,
    mutants: crate::mutants::Mutants,
}

impl JobController {
    /// A controller with no state yet.
    pub fn new() -> JobController {
        JobController::default()
    }

    /// The controller with deliberate bugs switched on (negative controls).
    pub fn with_mutants(mut self, mutants: crate::mutants::Mutants) -> JobController {
        self.mutants = mutants;
        self
    }

    /// What the controller remembers about a Job, for tests and liveness reports.
    pub fn record(&self, key: &ObjectKey) -> Option<&JobRecord> {
        self.records.get(key)
    }

    fn satisfied_expectations(&self, key: &ObjectKey, now_ns: u64) -> bool {
        self.records.get(key).is_none_or(|record| {
            record.expectations.fulfilled()
                || now_ns.saturating_sub(record.expectations.set_at_ns) > EXPECTATIONS_TIMEOUT_NS
        })
    }

    fn creation_observed(&mut self, key: &ObjectKey) {
        if let Some(record) = self.records.get_mut(key) {
            record.expectations.add -= 1;
        }
    }

    fn deletion_observed(&mut self, key: &ObjectKey, uid: Option<&str>) {
        if let (Some(record), Some(uid)) = (self.records.get_mut(key), uid) {
            if record.expectations.deleting_uids.remove(uid) {
                record.expectations.del -= 1;
            }
        }
    }

    /// The Job key a pod's controller reference names, if that Job is in the cache with the same
    /// uid (`resolveControllerRef`).
    fn owner_key(pod: &Pod, cache: &Cache) -> Option<ObjectKey> {
        let reference = pod.metadata.controller_ref().filter(|r| r.kind == "Job")?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let key = ObjectKey::new(Kind::Job, &namespace, &reference.name);
        let job = cache.get(&key)?;
        (job.meta().uid.as_deref() == Some(reference.uid.as_str())).then_some(key)
    }

    /// `newBackoffRecord`: folds the pods newly seen finished into the tally and the backoff. A
    /// new success resets the failure count (upstream compares finish times when both arrive in
    /// one sync; here a success seen in the same sync as failures resets first, then the failures
    /// count).
    fn observe_finished(&mut self, key: &ObjectKey, owned: &[&Pod], now_ns: u64) {
        let failed_counts_as_success = self.mutants.contains(crate::mutants::Mutant::JobCountsFailedAsSucceeded);
        let record = self.records.entry(key.clone()).or_default();
        let mut new_succeeded = 0u32;
        let mut new_failed = 0u32;
        for pod in owned {
            let succeeded = match pod.status.phase {
                Some(PodPhase::Succeeded) => true,
                Some(PodPhase::Failed) => failed_counts_as_success,
                _ => continue,
            };
            let Some(uid) = pod.metadata.uid.clone() else { continue };
            if let std::collections::btree_map::Entry::Vacant(entry) = record.finished.entry(uid) {
                entry.insert(succeeded);
                if succeeded {
                    new_succeeded += 1;
                } else {
                    new_failed += 1;
                }
            }
        }
        if new_succeeded > 0 {
            record.failures_after_last_success = 0;
            record.last_failure_ns = None;
        }
        if new_failed > 0 {
            record.failures_after_last_success = record.failures_after_last_success.saturating_add(new_failed);
            record.last_failure_ns = Some(now_ns);
        }
    }
}

/// `GetPodFromTemplate`: a pod named by the API server from `<job-name>-`, with the template's
/// labels, annotations and finalizers and a controller reference to the Job.
pub fn pod_from_template(job: &Job) -> Pod {
    let template = &job.spec.template;
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", job.metadata.name)),
            namespace: Some(job.metadata.namespace.clone().unwrap_or_else(|| "default".to_string())),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            finalizers: template.metadata.finalizers.clone(),
            owner_references: vec![controller_ref_to("batch/v1", "Job", &job.metadata)],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: Default::default(),
    }
}

/// Whether the Job has a True Complete or Failed condition (`IsJobFinished`).
pub fn is_job_finished(job: &Job) -> bool {
    job.status.conditions.iter().any(|c| c.is_true(CONDITION_COMPLETE) || c.is_true(CONDITION_FAILED))
}

fn condition(condition_type: &str, reason: &str, message: &str, now_ns: u64) -> Condition {
    Condition {
        condition_type: condition_type.to_string(),
        status: ConditionStatus::True,
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time_ns: Some(now_ns),
        last_update_time_ns: Some(now_ns),
        last_heartbeat_time_ns: None,
    }
}

fn delete_request(namespace: &str, pod: &Pod) -> ApiRequest {
    ApiRequest::Delete {
        key: ObjectKey::new(Kind::Pod, namespace, &pod.metadata.name),
        uid: pod.metadata.uid.clone(),
        grace_period_seconds: None,
        propagation: None,
    }
}

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Job, Kind::Pod]
    }

    /// `addPod`/`updatePod`/`deletePod` and the Job handlers.
    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        let mut keys = Vec::new();
        match &**object {
            Object::Job(_) => {
                let key = ObjectKey::of(object);
                if let CacheEvent::Deleted(_) = event {
                    self.records.remove(&key);
                }
                keys.push(key);
            }
            Object::Pod(pod) => {
                let Some(key) = Self::owner_key(pod, cache) else { return keys };
                match event {
                    CacheEvent::Added(_) if pod.metadata.is_terminating() => {
                        self.deletion_observed(&key, pod.metadata.uid.as_deref());
                    }
                    CacheEvent::Added(_) => self.creation_observed(&key),
                    CacheEvent::Updated(_, _) if pod.metadata.is_terminating() => {
                        self.deletion_observed(&key, pod.metadata.uid.as_deref());
                    }
                    CacheEvent::Updated(_, _) => {}
                    CacheEvent::Deleted(_) => self.deletion_observed(&key, pod.metadata.uid.as_deref()),
                }
                keys.push(key);
            }
            _ => {}
        }
        keys
    }

    /// `syncJob` with `manageJob`.
    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else {
            self.records.remove(key);
            return Reconcile::done();
        };
        let Object::Job(job) = &**object else { return Reconcile::done() };
        if is_job_finished(job) || job.metadata.is_terminating() {
            return Reconcile::done();
        }
        let now_ns = ctx.now_ns;
        let namespace = key.namespace.clone();
        let owned: Vec<&Pod> = match job.metadata.uid.as_deref() {
            Some(uid) => cache
                .controlled_by(Kind::Pod, uid)
                .into_iter()
                .filter_map(|object| match &**object {
                    Object::Pod(pod) if is_controlled_by(&pod.metadata, "Job", Some(uid)) => Some(pod),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        self.observe_finished(key, &owned, now_ns);
        let active: Vec<&Pod> = owned.iter().copied().filter(|pod| is_pod_active(pod)).collect();
        let record = self.records.get(key).cloned().unwrap_or_default();
        let succeeded = record.count(true).max(job.status.succeeded);
        let failed = record.count(false).max(job.status.failed);
        let active_count = i32::try_from(active.len()).unwrap_or(i32::MAX);
        let completions = job.spec.completions.unwrap_or(1);
        let parallelism = job.spec.parallelism.unwrap_or(1);
        let backoff_limit = job.spec.backoff_limit.unwrap_or(rules::DEFAULT_BACKOFF_LIMIT);

        let mut result = Reconcile::done();
        let mut status = JobStatus {
            active: active_count,
            succeeded,
            failed,
            conditions: job.status.conditions.clone(),
            start_time_ns: job.status.start_time_ns.or(Some(now_ns)),
            completion_time_ns: job.status.completion_time_ns,
        };

        let on_failure_restarts: i64 = if job.spec.template.spec.restart_policy == Some(RestartPolicy::OnFailure) {
            active.iter().flat_map(|pod| pod.status.container_statuses.iter().map(|c| i64::from(c.restart_count))).sum()
        } else {
            0
        };
        let exceeds = rules::backoff_limit_exceeded(failed, backoff_limit)
            || (on_failure_restarts > 0 && rules::past_backoff_limit_on_failure(on_failure_restarts, backoff_limit));
        if exceeds {
            // The Job failed: delete what still runs, and say so.
            for pod in &active {
                result.writes.push(delete_request(&namespace, pod));
            }
            status.active = 0;
            status.conditions.push(condition(
                CONDITION_FAILED,
                REASON_BACKOFF_LIMIT_EXCEEDED,
                "Job has reached the specified backoff limit",
                now_ns,
            ));
        } else if succeeded >= completions {
            for pod in &active {
                result.writes.push(delete_request(&namespace, pod));
            }
            status.active = 0;
            status.completion_time_ns = Some(now_ns);
            status.conditions.push(condition(
                CONDITION_COMPLETE,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now_ns,
            ));
        } else if self.satisfied_expectations(key, now_ns) {
            let want = rules::want_active(parallelism, Some(completions), active_count, succeeded, false);
            match rules::job_pod_action(want, active_count, 0) {
                rules::JobPodAction::Create(count) => {
                    let remaining = match record.last_failure_ns {
                        Some(last) => {
                            rules::pod_failure_backoff_remaining_ns(record.failures_after_last_success, last, now_ns)
                        }
                        None => 0,
                    };
                    if remaining > 0 {
                        result = result.requeue_after(Duration::from_nanos(remaining));
                    } else {
                        let entry = self.records.entry(key.clone()).or_default();
                        entry.expectations = Expectations {
                            add: i64::from(count),
                            del: 0,
                            deleting_uids: BTreeSet::new(),
                            set_at_ns: now_ns,
                        };
                        // Upstream counts the pods it creates as active at once.
                        status.active = active_count.saturating_add(count);
                        for _ in 0..count {
                            result
                                .writes
                                .push(ApiRequest::Create { object: Rc::new(Object::Pod(pod_from_template(job))) });
                        }
                    }
                }
                rules::JobPodAction::Delete(count) => {
                    // Upstream deletes the least advanced pods first (`activePodsForRemoval`):
                    // not yet running before running, then the youngest.
                    let mut victims = active.clone();
                    victims.sort_by_key(|pod| {
                        (
                            pod.status.phase == Some(PodPhase::Running),
                            std::cmp::Reverse(pod.metadata.creation_timestamp_ns),
                            pod.metadata.name.clone(),
                        )
                    });
                    victims.truncate(usize::try_from(count).unwrap_or(0));
                    let deleting_uids: BTreeSet<String> =
                        victims.iter().filter_map(|pod| pod.metadata.uid.clone()).collect();
                    let entry = self.records.entry(key.clone()).or_default();
                    entry.expectations = Expectations {
                        add: 0,
                        del: i64::try_from(deleting_uids.len()).unwrap_or(i64::MAX),
                        deleting_uids,
                        set_at_ns: now_ns,
                    };
                    status.active = active_count.saturating_sub(count);
                    for pod in victims {
                        result.writes.push(delete_request(&namespace, pod));
                    }
                }
                rules::JobPodAction::None => {}
            }
        }

        if status != job.status {
            let mut updated = job.clone();
            updated.status = status;
            result.writes.push(ApiRequest::UpdateStatus { object: Rc::new(Object::Job(updated)) });
        }
        result
    }

    /// Lowers expectations for writes that failed (a timeout included, as upstream does).
    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        if result.is_ok() {
            return;
        }
        match request {
            ApiRequest::Create { object } if object.kind() == Kind::Pod => self.creation_observed(key),
            ApiRequest::Delete { key: pod_key, uid, .. } if pod_key.kind == Kind::Pod => {
                self.deletion_observed(key, uid.as_deref());
            }
            _ => {}
        }
    }
}
