//! The Deployment controller (`pkg/controller/deployment/`: `deployment_controller.go`,
//! `sync.go`, `rolling.go`, `recreate.go`, `progress.go`, `util/deployment_util.go`) and the
//! client-side rollback of `kubectl rollout undo` (`kubectl/pkg/polymorphichelpers/rollback.go`).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::api::{ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::workloads::{DeploymentStatus, DeploymentStrategyType, ReplicaSetSpec};
use crate::objects::{
    Condition, ConditionStatus, Deployment, IntOrString, Kind, LabelSelector, Object, ObjectMeta, PodTemplateSpec,
    ReplicaSet, StringMap,
};
use crate::rules::deployment::{self as rules_deployment, IntOrPercent, RsInfo, ScaleDecision};
use crate::rules::RulesError;

use super::{controller_ref_to, is_controlled_by, NS_PER_SECOND};

/// The label a Deployment adds to its ReplicaSets' selector and template (`DefaultDeploymentUniqueLabelKey`).
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Earlier revisions a ReplicaSet took before a rollback made it current again.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// Most characters of the revision-history annotation (`maxRevHistoryLengthInChars`).
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;
/// Reason of Progressing when the controller created the new ReplicaSet.
pub const NEW_RS_CREATED_REASON: &str = "NewReplicaSetCreated";
/// Reason of Progressing when the new ReplicaSet already existed without a condition.
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
/// Reason of Progressing while the rollout makes progress.
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
/// Reason of Progressing (Unknown) while paused.
pub const PAUSED_REASON: &str = "DeploymentPaused";
/// Reason of Progressing (Unknown) after a resume.
pub const RESUMED_REASON: &str = "DeploymentResumed";
/// Reason of Available True.
pub const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
/// Reason of Available False.
pub const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";

/// Annotations that stay with their object: never copied from a Deployment to its ReplicaSets nor
/// back by a rollback (`annotationsToSkip` in both upstream places).
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    rules_deployment::REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    rules_deployment::DESIRED_REPLICAS_ANNOTATION,
    rules_deployment::MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

fn map_rules_error(error: RulesError) -> String {
    error.to_string()
}

/// The Deployment's strategy in the rules' terms (API defaults: RollingUpdate 25%/25%).
pub fn rules_strategy(deployment: &Deployment) -> rules_deployment::DeploymentStrategy {
    let strategy = deployment.spec.strategy.clone().unwrap_or_default();
    let convert = |value: Option<&IntOrString>| match value {
        None => IntOrPercent::percent(25),
        Some(IntOrString::Int(count)) => IntOrPercent::Int(*count),
        Some(IntOrString::String(text)) => IntOrPercent::String(text.clone()),
    };
    match strategy.strategy_type {
        DeploymentStrategyType::Recreate => rules_deployment::DeploymentStrategy::Recreate,
        DeploymentStrategyType::RollingUpdate => {
            let rolling = strategy.rolling_update.unwrap_or_default();
            rules_deployment::DeploymentStrategy::RollingUpdate {
                max_surge: convert(rolling.max_surge.as_ref()),
                max_unavailable: convert(rolling.max_unavailable.as_ref()),
            }
        }
    }
}

/// A template with the pod-template-hash label removed, for `EqualIgnoreHash`.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    template.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
    template
}

/// `EqualIgnoreHash` (`util/deployment_util.go`): templates equal once the pod-template-hash
/// label is dropped from both.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// `ComputeHash` of the Deployment's template: `rules::deployment::pod_template_hash` over its
/// canonical JSON (maps are BTreeMaps, so the bytes are the same on every run).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).expect("a pod template always serializes to JSON");
    rules_deployment::pod_template_hash(&bytes, None)
}

fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    rules_deployment::parse_revision(
        rs.metadata.annotations.get(rules_deployment::REVISION_ANNOTATION).map(String::as_str),
    )
    .ok()
}

fn annotation_i32(meta: &ObjectMeta, name: &str) -> Option<i32> {
    meta.annotations.get(name).and_then(|value| value.parse().ok())
}

fn rs_info(rs: &ReplicaSet) -> RsInfo {
    RsInfo {
        name: rs.metadata.name.clone(),
        created_ns: rs.metadata.creation_timestamp_ns.unwrap_or(0),
        spec_replicas: rs.spec.replicas.unwrap_or(0),
        available_replicas: rs.status.available_replicas,
        desired_replicas_annotation: annotation_i32(&rs.metadata, rules_deployment::DESIRED_REPLICAS_ANNOTATION),
        max_replicas_annotation: annotation_i32(&rs.metadata, rules_deployment::MAX_REPLICAS_ANNOTATION),
    }
}

fn find_condition<'a>(status: &'a DeploymentStatus, condition_type: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|condition| condition.condition_type == condition_type)
}

/// `NewDeploymentCondition`: both times now.
fn new_condition(
    condition_type: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    now_ns: u64,
) -> Condition {
    Condition {
        condition_type: condition_type.to_string(),
        status,
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time_ns: Some(now_ns),
        last_update_time_ns: Some(now_ns),
        last_heartbeat_time_ns: None,
    }
}

/// `SetDeploymentCondition`: no change when status and reason are the same; the transition time
/// is kept when only the reason changes.
fn set_condition(status: &mut DeploymentStatus, mut condition: Condition) {
    if let Some(current) = find_condition(status, &condition.condition_type) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time_ns = current.last_transition_time_ns;
        }
    }
    status.conditions.retain(|c| c.condition_type != condition.condition_type);
    status.conditions.push(condition);
}

fn has_progress_deadline(deployment: &Deployment) -> bool {
    deployment.spec.progress_deadline_seconds.is_some_and(|seconds| seconds != i32::MAX)
}

fn counts(status: &DeploymentStatus) -> rules_deployment::DeploymentStatusCounts {
    rules_deployment::DeploymentStatusCounts {
        replicas: status.replicas,
        updated_replicas: status.updated_replicas,
        ready_replicas: status.ready_replicas,
        available_replicas: status.available_replicas,
        observed_generation: status.observed_generation.unwrap_or(0),
    }
}

/// The ReplicaSets of one Deployment as one sync sees and changes them: upstream issues one
/// update per change and reads back the result; we apply every change to a working copy and
/// write each changed ReplicaSet once, conditioned on the resourceVersion the cache had.
struct WorkingSet {
    rss: Vec<ReplicaSet>,
    dirty: Vec<bool>,
    new_index: Option<usize>,
}

impl WorkingSet {
    fn infos(&self) -> Vec<RsInfo> {
        self.rss.iter().map(rs_info).collect()
    }

    fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len()).filter(|&i| Some(i) != self.new_index).collect()
    }

    /// `scaleReplicaSet`: sets the size and the desired/max-replicas annotations; marks the
    /// ReplicaSet for an update only if something changed. Returns whether the size changed.
    fn scale(&mut self, index: usize, replicas: i32, deployment_replicas: i32, max_surge: i32) -> bool {
        let rs = &mut self.rss[index];
        let size_changed = rs.spec.replicas.unwrap_or(0) != replicas;
        let desired = deployment_replicas.to_string();
        let max = deployment_replicas.saturating_add(max_surge).to_string();
        let annotations = &mut rs.metadata.annotations;
        let annotations_changed = annotations.get(rules_deployment::DESIRED_REPLICAS_ANNOTATION) != Some(&desired)
            || annotations.get(rules_deployment::MAX_REPLICAS_ANNOTATION) != Some(&max);
        if size_changed || annotations_changed {
            rs.spec.replicas = Some(replicas);
            annotations.insert(rules_deployment::DESIRED_REPLICAS_ANNOTATION.to_string(), desired);
            annotations.insert(rules_deployment::MAX_REPLICAS_ANNOTATION.to_string(), max);
            self.dirty[index] = true;
        }
        size_changed
    }

    fn apply(&mut self, decisions: &[ScaleDecision], deployment_replicas: i32, max_surge: i32) -> bool {
        let mut changed = false;
        for decision in decisions {
            changed |= self.scale(decision.index, decision.replicas, deployment_replicas, max_surge);
        }
        changed
    }
}

/// `DeploymentController`: rolls a Deployment's pods from ReplicaSet to ReplicaSet
/// (`syncDeployment`).
///
/// Adaptations to asynchronous writes, each documented where it happens:
/// - The new ReplicaSet is created and the reconcile ends there (with the status update);
///   upstream goes on in the same sync with the object the create returned. The ReplicaSet's
///   Added event brings the Deployment back, so old ReplicaSets are never scaled down on the
///   strength of a create that may have failed.
/// - Several changes to one ReplicaSet within a sync (annotations, then a cleanup scale-down, then
///   a rolling scale-down) become one Update carrying the final state.
/// - One status write per reconcile: conditions that upstream writes separately
///   (`checkPausedConditions`, FoundNewReplicaSet, NewReplicaSetCreated) are folded into it.
/// - A 409 on a write is not retried here: the fresher object's watch event requeues the
///   Deployment.
///
/// Not modelled: adoption and release of ReplicaSets by selector (a Deployment owns the
/// ReplicaSets whose controller reference has its uid), `status.collisionCount` (a hash
/// collision surfaces as a failed create), the ReplicaFailure condition, and the Deployment's own
/// revision annotation (upstream writes it with the status; our status write carries status only).
/// Rollbacks are done client side by [`rollback_request`], as `kubectl rollout undo` does.
#[derive(Clone, Debug, Default)]
pub struct DeploymentController {
    mutants: crate::mutants::Mutants,
}

impl DeploymentController {
    /// A controller with no state yet: no expectations, assumptions or backoffs.
    pub fn new() -> DeploymentController {
        DeploymentController::default()
    }

    /// The controller with deliberate bugs switched on (negative controls).
    pub fn with_mutants(mut self, mutants: crate::mutants::Mutants) -> DeploymentController {
        self.mutants = mutants;
        self
    }

    fn deployment_key_of(meta: &ObjectMeta, namespace: &str) -> Option<ObjectKey> {
        let reference = meta.controller_ref().filter(|r| r.kind == "Deployment")?;
        Some(ObjectKey::new(Kind::Deployment, namespace, &reference.name))
    }
}

/// What a sync decided besides ReplicaSet updates.
#[derive(Default)]
struct Plan {
    creates: Vec<ApiRequest>,
    deletes: Vec<ApiRequest>,
    /// Run `syncRolloutStatus` (progress conditions) rather than `syncDeploymentStatus`.
    rollout_status: bool,
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Deployment, Kind::ReplicaSet, Kind::Pod]
    }

    /// The Deployment handlers; ReplicaSet events go to the controlling Deployment; a deleted pod
    /// of a Recreate Deployment wakes it (`deletePod`), since it waits for old pods to be gone.
    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        let namespace = crate::api::namespace_of(object);
        match &**object {
            Object::Deployment(_) => vec![ObjectKey::of(object)],
            Object::ReplicaSet(rs) => {
                let mut keys: Vec<ObjectKey> = Self::deployment_key_of(&rs.metadata, &namespace).into_iter().collect();
                if let CacheEvent::Updated(old, _) = event {
                    if let Some(old_key) = Self::deployment_key_of(old.meta(), &namespace) {
                        if !keys.contains(&old_key) {
                            keys.push(old_key);
                        }
                    }
                }
                keys
            }
            Object::Pod(pod) if matches!(event, CacheEvent::Deleted(_)) => {
                let Some(rs_ref) = pod.metadata.controller_ref().filter(|r| r.kind == "ReplicaSet") else {
                    return Vec::new();
                };
                let Some(rs) = cache.get_by(Kind::ReplicaSet, &namespace, &rs_ref.name) else { return Vec::new() };
                let Some(key) = Self::deployment_key_of(rs.meta(), &namespace) else { return Vec::new() };
                match cache.get(&key).map(|d| &**d) {
                    Some(Object::Deployment(d))
                        if d.spec
                            .strategy
                            .as_ref()
                            .is_some_and(|s| s.strategy_type == DeploymentStrategyType::Recreate) =>
                    {
                        vec![key]
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// `syncDeployment`.
    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else { return Reconcile::done() };
        let Object::Deployment(deployment) = &**object else { return Reconcile::done() };
        match sync_deployment(deployment, cache, ctx.now_ns, self.mutants) {
            Ok(result) => result,
            // Only a malformed maxSurge/maxUnavailable gets here; validation rejects those, so
            // there is nothing to retry.
            Err(_) => Reconcile::done(),
        }
    }
}

fn sync_deployment(
    deployment: &Deployment,
    cache: &Cache,
    now_ns: u64,
    mutants: crate::mutants::Mutants,
) -> Result<Reconcile, String> {
    let mut result = Reconcile::done();
    if deployment.spec.selector.is_empty() {
        // Upstream refuses to act on a Deployment that would select every pod.
        return Ok(result);
    }
    let namespace = deployment.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let uid = deployment.metadata.uid.as_deref();
    let mut rss: Vec<ReplicaSet> = match uid {
        Some(uid) => cache
            .controlled_by(Kind::ReplicaSet, uid)
            .into_iter()
            .filter_map(|object| match &**object {
                Object::ReplicaSet(rs) if is_controlled_by(&rs.metadata, "Deployment", Some(uid)) => Some(rs.clone()),
                _ => None,
            })
            .filter(|rs| rs.metadata.namespace.as_deref().unwrap_or("default") == namespace)
            .collect(),
        None => Vec::new(),
    };
    // `ReplicaSetsByCreationTimestamp`: FindNewReplicaSet takes the oldest matching one.
    rss.sort_by(|a, b| {
        a.metadata
            .creation_timestamp_ns
            .cmp(&b.metadata.creation_timestamp_ns)
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    let new_index = rss.iter().position(|rs| equal_ignore_hash(&rs.spec.template, &deployment.spec.template));
    let count = rss.len();
    let mut work = WorkingSet { rss, dirty: vec![false; count], new_index };

    let replicas = deployment.spec.replicas.unwrap_or(1);
    let strategy = rules_strategy(deployment);
    let max_surge = rules_deployment::max_surge(&strategy, replicas).map_err(map_rules_error)?;
    // The status as this sync found it, with the condition updates upstream writes on the way.
    let mut base = deployment.status.clone();
    let mut plan = Plan::default();

    if deployment.metadata.is_terminating() {
        // syncStatusOnly
        finish(deployment, &work, base, &plan, now_ns, &mut result)?;
        return Ok(result);
    }

    check_paused_conditions(deployment, &mut base, now_ns);

    let scaling_event = work.rss.iter().filter(|rs| rs.spec.replicas.unwrap_or(0) > 0).any(|rs| {
        annotation_i32(&rs.metadata, rules_deployment::DESIRED_REPLICAS_ANNOTATION).is_some_and(|d| d != replicas)
    });

    if deployment.spec.paused || scaling_event {
        // sync(): no new ReplicaSet is created; the existing one is brought up to date.
        sync_new_replica_set(deployment, &mut work, &mut base, now_ns);
        let decisions = rules_deployment::proportional_scale(
            replicas,
            &strategy,
            deployment.status.replicas,
            &work.infos(),
            work.new_index,
        )
        .map_err(map_rules_error)?;
        work.apply(&decisions, replicas, max_surge);
        if deployment.spec.paused {
            cleanup_deployment(deployment, &work, &mut plan);
        }
    } else {
        plan.rollout_status = true;
        match strategy {
            rules_deployment::DeploymentStrategy::Recreate => {
                rollout_recreate(deployment, cache, &mut work, &mut base, &mut plan, replicas, max_surge, now_ns)?
            }
            rules_deployment::DeploymentStrategy::RollingUpdate { .. } => rollout_rolling(
                deployment, &mut work, &mut base, &mut plan, replicas, max_surge, &strategy, now_ns, mutants,
            )?,
        }
    }
    finish(deployment, &work, base, &plan, now_ns, &mut result)?;
    Ok(result)
}

/// `checkPausedConditions`: Progressing Unknown with DeploymentPaused / DeploymentResumed,
/// never over a ProgressDeadlineExceeded.
fn check_paused_conditions(deployment: &Deployment, status: &mut DeploymentStatus, now_ns: u64) {
    if !has_progress_deadline(deployment) {
        return;
    }
    let reason = find_condition(status, "Progressing").and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(rules_deployment::TIMED_OUT_REASON) {
        return;
    }
    let paused_exists = reason.as_deref() == Some(PAUSED_REASON);
    if deployment.spec.paused && !paused_exists {
        let condition = new_condition(
            "Progressing",
            ConditionStatus::Unknown,
            PAUSED_REASON,
            "Deployment is paused".into(),
            now_ns,
        );
        set_condition(status, condition);
    } else if !deployment.spec.paused && paused_exists {
        let condition = new_condition(
            "Progressing",
            ConditionStatus::Unknown,
            RESUMED_REASON,
            "Deployment is resumed".into(),
            now_ns,
        );
        set_condition(status, condition);
    }
}

/// `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises the revision to
/// `new_revision` (keeping the earlier one in revision-history when it had one: a rollback), and
/// for a ReplicaSet about to be created sets the desired/max-replicas annotations.
fn set_new_replica_set_annotations(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = false;
    for (name, value) in &deployment.metadata.annotations {
        if ANNOTATIONS_TO_SKIP.contains(&name.as_str()) || rs.metadata.annotations.get(name) == Some(value) {
            continue;
        }
        rs.metadata.annotations.insert(name.clone(), value.clone());
        changed = true;
    }
    let annotations = &mut rs.metadata.annotations;
    let old_revision = annotations.get(rules_deployment::REVISION_ANNOTATION).cloned();
    let old_revision_number = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(number) => number,
            Err(_) => return changed,
        },
    };
    if old_revision_number < new_revision {
        annotations.insert(rules_deployment::REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old_revision) = old_revision.filter(|r| !r.is_empty()) {
            let history = annotations.get(REVISION_HISTORY_ANNOTATION).cloned().unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), old_revision);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old_revision.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    revisions = revisions.split_off(start);
                    revisions.push(&old_revision);
                    let joined = revisions.join(",");
                    annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), joined);
                }
            }
        }
    }
    if !exists {
        let replicas = deployment.spec.replicas.unwrap_or(1);
        annotations.insert(rules_deployment::DESIRED_REPLICAS_ANNOTATION.to_string(), replicas.to_string());
        annotations.insert(
            rules_deployment::MAX_REPLICAS_ANNOTATION.to_string(),
            replicas.saturating_add(max_surge).to_string(),
        );
        changed = true;
    }
    changed
}

fn max_old_revision(work: &WorkingSet) -> i64 {
    rules_deployment::max_revision(
        work.old_indices()
            .into_iter()
            .map(|i| work.rss[i].metadata.annotations.get(rules_deployment::REVISION_ANNOTATION).map(String::as_str)),
    )
}

/// The existing-ReplicaSet half of `getNewReplicaSet`: bring its annotations and
/// minReadySeconds up to date, and add FoundNewReplicaSet when there is no Progressing condition.
fn sync_new_replica_set(deployment: &Deployment, work: &mut WorkingSet, base: &mut DeploymentStatus, now_ns: u64) {
    let Some(index) = work.new_index else { return };
    let new_revision = max_old_revision(work).saturating_add(1);
    let strategy = rules_strategy(deployment);
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let max_surge = rules_deployment::max_surge(&strategy, replicas).unwrap_or(0);
    let rs = &mut work.rss[index];
    let annotations_changed = set_new_replica_set_annotations(deployment, rs, new_revision, true, max_surge);
    let min_ready = deployment.spec.min_ready_seconds;
    let min_ready_changed = rs.spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
    if min_ready_changed {
        rs.spec.min_ready_seconds = min_ready;
    }
    if annotations_changed || min_ready_changed {
        work.dirty[index] = true;
    }
    if has_progress_deadline(deployment) && find_condition(base, "Progressing").is_none() {
        let message = format!("Found new replica set {:?}", work.rss[index].metadata.name);
        set_condition(base, new_condition("Progressing", ConditionStatus::True, FOUND_NEW_RS_REASON, message, now_ns));
    }
}

/// The creating half of `getNewReplicaSet`: `<deployment>-<hash>` with the hash label on selector
/// and template, size `NewRSNewReplicas`, revision `max old + 1`; Progressing NewReplicaSetCreated.
fn create_new_replica_set(
    deployment: &Deployment,
    work: &WorkingSet,
    base: &mut DeploymentStatus,
    plan: &mut Plan,
    max_surge: i32,
    now_ns: u64,
) -> Result<(), String> {
    let hash = template_hash(&deployment.spec.template);
    let mut template = deployment.spec.template.clone();
    template.metadata.labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    let mut selector: LabelSelector = deployment.spec.selector.clone();
    selector.match_labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    let name = format!("{}-{}", deployment.metadata.name, hash);
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: name.clone(),
            namespace: Some(deployment.metadata.namespace.clone().unwrap_or_else(|| "default".to_string())),
            labels: template.metadata.labels.clone(),
            owner_references: vec![controller_ref_to("apps/v1", "Deployment", &deployment.metadata)],
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(0),
            selector,
            template,
            min_ready_seconds: deployment.spec.min_ready_seconds,
        },
        status: Default::default(),
    };
    let mut infos = work.infos();
    infos.push(rs_info(&rs));
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let size = rules_deployment::new_rs_new_replicas(replicas, &rules_strategy(deployment), &infos, infos.len() - 1)
        .map_err(map_rules_error)?;
    rs.spec.replicas = Some(size);
    let new_revision = rules_deployment::next_revision(max_old_revision(work)).map_err(map_rules_error)?;
    set_new_replica_set_annotations(deployment, &mut rs, new_revision, false, max_surge);
    plan.creates.push(ApiRequest::Create { object: Rc::new(Object::ReplicaSet(rs)) });
    if has_progress_deadline(deployment) {
        let message = format!("Created new replica set {name:?}");
        set_condition(
            base,
            new_condition("Progressing", ConditionStatus::True, NEW_RS_CREATED_REASON, message, now_ns),
        );
    }
    Ok(())
}

/// `rolloutRolling`: create the new ReplicaSet if missing (and stop: see [`DeploymentController`]),
/// else scale it up and stop if it grew, else scale old ones down (`reconcileOldReplicaSets`),
/// and once the Deployment is complete, clean up history.
#[allow(clippy::too_many_arguments)]
fn rollout_rolling(
    deployment: &Deployment,
    work: &mut WorkingSet,
    base: &mut DeploymentStatus,
    plan: &mut Plan,
    replicas: i32,
    max_surge: i32,
    strategy: &rules_deployment::DeploymentStrategy,
    now_ns: u64,
    mutants: crate::mutants::Mutants,
) -> Result<(), String> {
    let Some(new_index) = work.new_index else {
        return create_new_replica_set(deployment, work, base, plan, max_surge, now_ns);
    };
    sync_new_replica_set(deployment, work, base, now_ns);
    if let Some(decision) = rules_deployment::reconcile_new_replica_set(replicas, strategy, &work.infos(), new_index)
        .map_err(map_rules_error)?
    {
        if work.scale(decision.index, decision.replicas, replicas, max_surge) {
            return Ok(());
        }
    }
    let ignoring;
    let old_strategy = match strategy {
        rules_deployment::DeploymentStrategy::RollingUpdate { max_surge, .. }
            if mutants.contains(crate::mutants::Mutant::DeploymentIgnoresMaxUnavailable) =>
        {
            ignoring = rules_deployment::DeploymentStrategy::RollingUpdate {
                max_surge: max_surge.clone(),
                max_unavailable: IntOrPercent::percent(100),
            };
            &ignoring
        }
        rules_deployment::DeploymentStrategy::RollingUpdate { max_surge, max_unavailable }
            if mutants.contains(crate::mutants::Mutant::DeploymentRoundsMaxUnavailableUp) =>
        {
            ignoring = rules_deployment::DeploymentStrategy::RollingUpdate {
                max_surge: max_surge.clone(),
                max_unavailable: IntOrPercent::Int(max_unavailable.scaled_value(replicas, true).unwrap_or(0)),
            };
            &ignoring
        }
        _ => strategy,
    };
    let mut infos = work.infos();
    if mutants.contains(crate::mutants::Mutant::DeploymentCountsReadyAsAvailable) {
        for (info, rs) in infos.iter_mut().zip(&work.rss) {
            info.available_replicas = rs.status.ready_replicas;
        }
    }
    let decisions = rules_deployment::reconcile_old_replica_sets(replicas, old_strategy, &infos, new_index)
        .map_err(map_rules_error)?;
    if work.apply(&decisions, replicas, max_surge) {
        return Ok(());
    }
    if rules_deployment::deployment_complete(
        replicas,
        deployment.metadata.generation.unwrap_or(0),
        &counts(&deployment.status),
    ) {
        cleanup_deployment(deployment, work, plan);
    }
    Ok(())
}

/// `rolloutRecreate`: scale every old ReplicaSet to 0; wait until no old pod runs
/// (`oldPodsRunning`, read from the pods in the cache); then create or scale up the new one.
#[allow(clippy::too_many_arguments)]
fn rollout_recreate(
    deployment: &Deployment,
    cache: &Cache,
    work: &mut WorkingSet,
    base: &mut DeploymentStatus,
    plan: &mut Plan,
    replicas: i32,
    max_surge: i32,
    now_ns: u64,
) -> Result<(), String> {
    sync_new_replica_set(deployment, work, base, now_ns);
    let mut scaled_down = false;
    for index in work.old_indices() {
        if work.rss[index].spec.replicas.unwrap_or(0) > 0 {
            scaled_down |= work.scale(index, 0, replicas, max_surge);
        }
    }
    if scaled_down || old_pods_running(work, cache) {
        return Ok(());
    }
    let Some(new_index) = work.new_index else {
        return create_new_replica_set(deployment, work, base, plan, max_surge, now_ns);
    };
    work.scale(new_index, replicas, replicas, max_surge);
    if rules_deployment::deployment_complete(
        replicas,
        deployment.metadata.generation.unwrap_or(0),
        &counts(&deployment.status),
    ) {
        cleanup_deployment(deployment, work, plan);
    }
    Ok(())
}

/// `oldPodsRunning`: old ReplicaSets still report pods, or a pod of one is not terminal
/// (terminating pods count: their containers may still run).
fn old_pods_running(work: &WorkingSet, cache: &Cache) -> bool {
    let old = work.old_indices();
    if old.iter().any(|&i| work.rss[i].status.replicas > 0) {
        return true;
    }
    old.iter().filter_map(|&i| work.rss[i].metadata.uid.as_deref()).any(|uid| {
        cache.controlled_by(Kind::Pod, uid).into_iter().any(|object| match &**object {
            Object::Pod(pod) => !super::is_pod_terminal(pod),
            _ => false,
        })
    })
}

/// `cleanupDeployment`: beyond revisionHistoryLimit, delete the oldest (by revision) old
/// ReplicaSets that have no pods, are not being deleted and whose status is current.
fn cleanup_deployment(deployment: &Deployment, work: &WorkingSet, plan: &mut Plan) {
    let Some(limit) = deployment.spec.revision_history_limit else { return };
    let mut cleanable: Vec<&ReplicaSet> =
        work.old_indices().into_iter().map(|i| &work.rss[i]).filter(|rs| !rs.metadata.is_terminating()).collect();
    let excess = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
    if excess <= 0 {
        return;
    }
    // `ReplicaSetsByRevision`: an unparseable revision reads as 0, ties oldest first.
    cleanable.sort_by(|a, b| {
        revision_of(a)
            .unwrap_or(0)
            .cmp(&revision_of(b).unwrap_or(0))
            .then(a.metadata.creation_timestamp_ns.cmp(&b.metadata.creation_timestamp_ns))
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    for rs in cleanable.into_iter().take(usize::try_from(excess).unwrap_or(usize::MAX)) {
        let observed = rs.status.observed_generation.unwrap_or(0);
        if rs.status.replicas != 0
            || rs.spec.replicas.unwrap_or(0) != 0
            || rs.metadata.generation.unwrap_or(0) > observed
        {
            continue;
        }
        plan.deletes.push(ApiRequest::Delete {
            key: ObjectKey::new(
                Kind::ReplicaSet,
                rs.metadata.namespace.as_deref().unwrap_or("default"),
                &rs.metadata.name,
            ),
            uid: rs.metadata.uid.clone(),
            grace_period_seconds: None,
            propagation: None,
        });
    }
}

/// `calculateStatus` (`sync.go`): counts from the ReplicaSets (total from their specs as this
/// sync leaves them), and the Available condition against `replicas - maxUnavailable`.
fn calculate_status(
    deployment: &Deployment,
    work: &WorkingSet,
    base: &DeploymentStatus,
    now_ns: u64,
) -> Result<DeploymentStatus, String> {
    let available: i32 = work.rss.iter().map(|rs| rs.status.available_replicas).sum();
    let total: i32 = work.rss.iter().map(|rs| rs.spec.replicas.unwrap_or(0)).sum();
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: work.rss.iter().map(|rs| rs.status.replicas).sum(),
        updated_replicas: work.new_index.map_or(0, |i| work.rss[i].status.replicas),
        ready_replicas: work.rss.iter().map(|rs| rs.status.ready_replicas).sum(),
        available_replicas: available,
        unavailable_replicas: (total - available).max(0),
        conditions: base.conditions.clone(),
    };
    let max_unavailable =
        rules_deployment::max_unavailable(&rules_strategy(deployment), replicas).map_err(map_rules_error)?;
    let condition = if available >= replicas - max_unavailable {
        new_condition(
            "Available",
            ConditionStatus::True,
            MIN_AVAILABLE_REASON,
            "Deployment has minimum availability.".into(),
            now_ns,
        )
    } else {
        new_condition(
            "Available",
            ConditionStatus::False,
            MIN_UNAVAILABLE_REASON,
            "Deployment does not have minimum availability.".into(),
            now_ns,
        )
    };
    set_condition(&mut status, condition);
    Ok(status)
}

/// `syncRolloutStatus` (`progress.go`): the Progressing condition from complete / progressing /
/// timed out.
fn sync_rollout_status(
    deployment: &Deployment,
    work: &WorkingSet,
    base: &DeploymentStatus,
    status: &mut DeploymentStatus,
    now_ns: u64,
) {
    let current = find_condition(base, "Progressing").cloned();
    let complete_rollout = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(rules_deployment::NEW_RS_AVAILABLE_REASON);
    if !has_progress_deadline(deployment) || complete_rollout {
        return;
    }
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let new_name = work.new_index.map(|i| work.rss[i].metadata.name.clone());
    let subject = |what: &str| match &new_name {
        Some(name) => format!("ReplicaSet {name:?} {what}"),
        None => format!("Deployment {:?} {what}", deployment.metadata.name),
    };
    let progressing_now = status.conditions.iter().find(|c| c.condition_type == "Progressing").map(|c| {
        rules_deployment::ProgressingCondition {
            reason: c.reason.clone().unwrap_or_default(),
            last_update_ns: c.last_update_time_ns.unwrap_or(0),
        }
    });
    if rules_deployment::deployment_complete(replicas, generation, &counts(status)) {
        let condition = new_condition(
            "Progressing",
            ConditionStatus::True,
            rules_deployment::NEW_RS_AVAILABLE_REASON,
            subject("has successfully progressed."),
            now_ns,
        );
        set_condition(status, condition);
    } else if rules_deployment::deployment_progressing(&counts(base), &counts(status)) {
        let mut condition =
            new_condition("Progressing", ConditionStatus::True, RS_UPDATED_REASON, subject("is progressing."), now_ns);
        if let Some(current) = &current {
            if current.status == ConditionStatus::True {
                condition.last_transition_time_ns = current.last_transition_time_ns;
            }
        }
        // Replaced outright, so lastUpdateTime moves even when the reason stays the same.
        status.conditions.retain(|c| c.condition_type != "Progressing");
        status.conditions.push(condition);
    } else if rules_deployment::deployment_timed_out(
        deployment.spec.progress_deadline_seconds,
        progressing_now.as_ref(),
        now_ns,
    ) {
        let condition = new_condition(
            "Progressing",
            ConditionStatus::False,
            rules_deployment::TIMED_OUT_REASON,
            subject("has timed out progressing."),
            now_ns,
        );
        set_condition(status, condition);
    }
}

/// `requeueStuckDeployment`: when a rollout is neither complete nor timed out, look again when
/// its deadline passes (plus a second, as upstream adds).
fn stuck_requeue(deployment: &Deployment, status: &DeploymentStatus, now_ns: u64) -> Option<Duration> {
    if !has_progress_deadline(deployment) {
        return None;
    }
    let condition = find_condition(status, "Progressing")?;
    let replicas = deployment.spec.replicas.unwrap_or(1);
    if rules_deployment::deployment_complete(replicas, deployment.metadata.generation.unwrap_or(0), &counts(status))
        || condition.reason.as_deref() == Some(rules_deployment::TIMED_OUT_REASON)
    {
        return None;
    }
    let deadline_seconds = u64::from(deployment.spec.progress_deadline_seconds?.unsigned_abs());
    let deadline_ns = condition.last_update_time_ns.unwrap_or(0).saturating_add(deadline_seconds * NS_PER_SECOND);
    let after_ns = deadline_ns.saturating_sub(now_ns);
    Some(if after_ns < NS_PER_SECOND { Duration::from_secs(1) } else { Duration::from_nanos(after_ns + NS_PER_SECOND) })
}

/// Emits the ReplicaSet updates, creations, deletions and the status update of one sync.
fn finish(
    deployment: &Deployment,
    work: &WorkingSet,
    base: DeploymentStatus,
    plan: &Plan,
    now_ns: u64,
    result: &mut Reconcile,
) -> Result<(), String> {
    // A ReplicaSet being created counts in the status as upstream's in-memory copy does.
    let mut view = WorkingSet { rss: work.rss.clone(), dirty: work.dirty.clone(), new_index: work.new_index };
    for request in &plan.creates {
        if let ApiRequest::Create { object } = request {
            if let Object::ReplicaSet(rs) = &**object {
                view.rss.push(rs.clone());
                view.dirty.push(false);
                view.new_index = Some(view.rss.len() - 1);
            }
        }
    }
    for (rs, dirty) in work.rss.iter().zip(&work.dirty) {
        if *dirty {
            result.writes.push(ApiRequest::Update { object: Rc::new(Object::ReplicaSet(rs.clone())) });
        }
    }
    result.writes.extend(plan.creates.iter().cloned());
    result.writes.extend(plan.deletes.iter().cloned());
    let mut status = calculate_status(deployment, &view, &base, now_ns)?;
    if plan.rollout_status {
        sync_rollout_status(deployment, &view, &deployment_status_with(&base, &deployment.status), &mut status, now_ns);
    }
    if let Some(after) = stuck_requeue(deployment, &status, now_ns) {
        *result = std::mem::take(result).requeue_after(after);
    }
    if status != deployment.status {
        let mut updated = deployment.clone();
        updated.status = status;
        result.writes.push(ApiRequest::UpdateStatus { object: Rc::new(Object::Deployment(updated)) });
    }
    Ok(())
}

/// The status `syncRolloutStatus` compares against: the Deployment's counts with the conditions
/// this sync already set.
fn deployment_status_with(base: &DeploymentStatus, original: &DeploymentStatus) -> DeploymentStatus {
    DeploymentStatus { conditions: base.conditions.clone(), ..original.clone() }
}

/// What `kubectl rollout undo` does (client side, `DeploymentRollbacker.Rollback`): find the
/// ReplicaSet of `to_revision` (or, for `None`, of the revision before the latest), and update
/// the Deployment's template to its template without the pod-template-hash label, with its
/// annotations (except the bookkeeping ones, which the Deployment keeps). The Deployment
/// controller then rolls out that template like any other change, and gives its ReplicaSet the
/// next revision.
///
/// The request is an Update conditioned on the Deployment's resourceVersion (kubectl sends a
/// patch; a conflict here means "read again and retry"). Errors use kubectl's messages: a paused
/// Deployment, a revision not found, no history, and `skipped rollback (current template already
/// matches revision N)` (kubectl prints that and succeeds; the caller may treat it so).
pub fn rollback_request(
    deployment: &Deployment,
    replicasets: &[&ReplicaSet],
    to_revision: Option<i64>,
) -> Result<ApiRequest, String> {
    if deployment.spec.paused {
        return Err(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
                .to_string(),
        );
    }
    let uid = deployment.metadata.uid.as_deref();
    let owned = replicasets.iter().filter(|rs| is_controlled_by(&rs.metadata, "Deployment", uid));
    let target = match to_revision.filter(|&r| r != 0) {
        Some(revision) => owned
            .into_iter()
            .find(|rs| revision_of(rs) == Some(revision))
            .ok_or_else(|| format!("unable to find specified revision {revision} in history"))?,
        None => {
            // Latest and previous by revision, as `rsForRevision` scans.
            let mut latest: Option<(i64, &ReplicaSet)> = None;
            let mut previous: Option<(i64, &ReplicaSet)> = None;
            for rs in owned {
                let Some(revision) = revision_of(rs) else { continue };
                if latest.is_none_or(|(l, _)| l < revision) {
                    previous = latest;
                    latest = Some((revision, rs));
                } else if previous.is_none_or(|(p, _)| p < revision) {
                    previous = Some((revision, rs));
                }
            }
            previous
                .map(|(_, rs)| rs)
                .ok_or_else(|| format!("no rollout history found for deployment {:?}", deployment.metadata.name))?
        }
    };
    if equal_ignore_hash(&target.spec.template, &deployment.spec.template) {
        return Err(format!(
            "skipped rollback (current template already matches revision {})",
            revision_of(target).unwrap_or(0)
        ));
    }
    let mut updated = deployment.clone();
    updated.spec.template = without_hash(&target.spec.template);
    let mut annotations: StringMap = BTreeMap::new();
    for name in ANNOTATIONS_TO_SKIP {
        if let Some(value) = deployment.metadata.annotations.get(name) {
            annotations.insert(name.to_string(), value.clone());
        }
    }
    for (name, value) in &target.metadata.annotations {
        if !ANNOTATIONS_TO_SKIP.contains(&name.as_str()) {
            annotations.insert(name.clone(), value.clone());
        }
    }
    updated.metadata.annotations = annotations;
    Ok(ApiRequest::Update { object: Rc::new(Object::Deployment(updated)) })
}
