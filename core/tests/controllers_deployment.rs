//! The Deployment controller stepped by hand: the test plays the API server (applies the writes to
//! the cache) and the ReplicaSet controller (makes each ReplicaSet's pods exist and be available).

use std::rc::Rc;
use std::time::Duration;

use kubedst_core::api::{ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::deployment::{rollback_request, template_hash, POD_TEMPLATE_HASH_LABEL};
use kubedst_core::controllers::DeploymentController;
use kubedst_core::objects::pod::{Container, PodPhase, PodStatus};
use kubedst_core::objects::workloads::{
    DeploymentSpec, DeploymentStatus, DeploymentStrategy, DeploymentStrategyType, ReplicaSetSpec,
};
use kubedst_core::objects::{
    Condition, ConditionStatus, Deployment, Kind, LabelSelector, Object, ObjectMeta, OwnerReference, Pod, PodSpec,
    PodTemplateSpec, ReplicaSet, StringMap,
};
use kubedst_sim::SimRng;

const S: u64 = 1_000_000_000;

fn labels() -> StringMap {
    [("app".to_string(), "web".to_string())].into()
}

fn template(image: &str) -> PodTemplateSpec {
    let mut template = PodTemplateSpec {
        metadata: ObjectMeta { labels: labels(), ..ObjectMeta::default() },
        spec: PodSpec {
            containers: vec![Container { name: "c".into(), image: image.into(), ..Container::default() }],
            ..PodSpec::default()
        },
    };
    template.apply_defaults();
    template
}

fn deployment(replicas: i32, image: &str, strategy: DeploymentStrategyType) -> Deployment {
    let mut deployment = Deployment {
        metadata: ObjectMeta {
            name: "web".into(),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector::from_labels(labels()),
            template: template(image),
            strategy: Some(DeploymentStrategy { strategy_type: strategy, rolling_update: None }),
            ..DeploymentSpec::default()
        },
        status: DeploymentStatus::default(),
    };
    deployment.apply_defaults();
    deployment
}

/// An old ReplicaSet of the Deployment, with `replicas` pods all available.
fn old_rs(image: &str, revision: i64, replicas: i32, created_s: u64) -> ReplicaSet {
    let hash = template_hash(&template(image));
    let mut template = template(image);
    template.metadata.labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let mut selector = LabelSelector::from_labels(labels());
    selector.match_labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: format!("web-{hash}"),
            namespace: Some("default".into()),
            uid: Some(format!("rs-{revision}")),
            generation: Some(1),
            resource_version: Some("1".into()),
            creation_timestamp_ns: Some(created_s * S),
            annotations: [("deployment.kubernetes.io/revision".to_string(), revision.to_string())].into(),
            owner_references: vec![owner()],
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec { replicas: Some(replicas), selector, template, min_ready_seconds: Some(0) },
        status: Default::default(),
    }
    .with_available(replicas)
}

trait WithAvailable {
    fn with_available(self, available: i32) -> Self;
}

impl WithAvailable for ReplicaSet {
    fn with_available(mut self, available: i32) -> ReplicaSet {
        self.status.replicas = available;
        self.status.ready_replicas = available;
        self.status.available_replicas = available;
        self.status.fully_labeled_replicas = available;
        self.status.observed_generation = self.metadata.generation;
        self
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        uid: "d-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn key() -> ObjectKey {
    ObjectKey::new(Kind::Deployment, "default", "web")
}

/// The cluster as the test plays it.
struct World {
    cache: Cache,
    controller: DeploymentController,
    revision: u64,
    now_ns: u64,
}

impl World {
    fn new(objects: Vec<Object>) -> World {
        let mut world = World { cache: Cache::new(), controller: DeploymentController::new(), revision: 10, now_ns: 0 };
        for object in objects {
            world.cache.upsert(Rc::new(object));
        }
        world
    }

    fn reconcile(&mut self) -> Reconcile {
        let mut rng = SimRng::for_stream(1, "deployment");
        let result = self.controller.reconcile(
            &key(),
            &self.cache,
            &mut ReconcileContext { now_ns: self.now_ns, rng: &mut rng },
        );
        for write in &result.writes {
            self.apply(write);
        }
        result
    }

    /// The API server: stores what the controller writes, with uids, times and revisions.
    fn apply(&mut self, write: &ApiRequest) {
        self.revision += 1;
        let rv = Some(self.revision.to_string());
        match write {
            ApiRequest::Create { object } | ApiRequest::Update { object } => {
                let mut object = (**object).clone();
                if let ApiRequest::Create { .. } = write {
                    let meta = object.meta_mut();
                    meta.uid = Some(format!("uid-{}", self.revision));
                    meta.creation_timestamp_ns = Some(self.now_ns);
                    meta.generation = Some(1);
                }
                object.meta_mut().resource_version = rv;
                self.cache.upsert(Rc::new(object));
            }
            ApiRequest::UpdateStatus { object } => {
                let Object::Deployment(written) = &**object else { panic!("status of a deployment") };
                let mut current = self.deployment();
                current.status = written.status.clone();
                current.metadata.resource_version = rv;
                self.cache.upsert(Rc::new(Object::Deployment(current)));
            }
            ApiRequest::Delete { key, .. } => {
                self.cache.remove(key);
            }
            other => panic!("unexpected write {other:?}"),
        }
    }

    fn deployment(&self) -> Deployment {
        match &**self.cache.get(&key()).unwrap() {
            Object::Deployment(d) => d.clone(),
            _ => unreachable!(),
        }
    }

    fn replica_sets(&self) -> Vec<ReplicaSet> {
        let mut rss: Vec<ReplicaSet> = self
            .cache
            .list(Kind::ReplicaSet, Some("default"))
            .into_iter()
            .map(|o| match &**o {
                Object::ReplicaSet(rs) => rs.clone(),
                _ => unreachable!(),
            })
            .collect();
        rss.sort_by_key(|rs| rs.metadata.creation_timestamp_ns);
        rss
    }

    /// Plays the ReplicaSet controller: each ReplicaSet gets `spec` pods, available if asked.
    fn settle_replica_sets(&mut self, new_pods_available: bool, new_image: &str) {
        for rs in self.replica_sets() {
            let is_new = rs.spec.template.spec.containers[0].image == new_image;
            let spec = rs.spec.replicas.unwrap_or(0);
            let available = if is_new && !new_pods_available { 0 } else { spec };
            let mut updated = rs.with_available(available);
            updated.status.replicas = spec;
            self.revision += 1;
            updated.metadata.resource_version = Some(self.revision.to_string());
            self.cache.upsert(Rc::new(Object::ReplicaSet(updated)));
        }
    }

    fn sizes(&self, new_image: &str) -> (i32, i32) {
        let (mut new, mut old) = (0, 0);
        for rs in self.replica_sets() {
            if rs.spec.template.spec.containers[0].image == new_image {
                new += rs.spec.replicas.unwrap_or(0);
            } else {
                old += rs.spec.replicas.unwrap_or(0);
            }
        }
        (new, old)
    }
}

fn condition<'a>(status: &'a DeploymentStatus, condition_type: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.condition_type == condition_type).expect("condition present")
}

#[test]
fn a_fresh_deployment_gets_its_new_replica_set() {
    let mut world = World::new(vec![Object::Deployment(deployment(10, "v1", DeploymentStrategyType::RollingUpdate))]);
    world.now_ns = 5 * S;
    let result = world.reconcile();
    let created: Vec<&ReplicaSet> = result
        .writes
        .iter()
        .filter_map(|w| match w {
            ApiRequest::Create { object } => match &**object {
                Object::ReplicaSet(rs) => Some(rs),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1);
    let rs = created[0];
    let hash = template_hash(&template("v1"));
    assert_eq!(rs.metadata.name, format!("web-{hash}"));
    assert_eq!(rs.metadata.owner_references, vec![owner()]);
    assert_eq!(rs.spec.template.metadata.labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert_eq!(rs.spec.selector.match_labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert_eq!(rs.metadata.labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert_eq!(rs.metadata.labels.get("app").map(String::as_str), Some("web"));
    let annotation = |name: &str| rs.metadata.annotations.get(name).map(String::as_str);
    assert_eq!(annotation("deployment.kubernetes.io/revision"), Some("1"));
    assert_eq!(annotation("deployment.kubernetes.io/desired-replicas"), Some("10"));
    assert_eq!(annotation("deployment.kubernetes.io/max-replicas"), Some("13"));
    // No old pods: the new ReplicaSet may take every replica at once.
    assert_eq!(rs.spec.replicas, Some(10));

    let status = world.deployment().status;
    let progressing = condition(&status, "Progressing");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(progressing.last_update_time_ns, Some(5 * S));
    assert_eq!(condition(&status, "Available").status, ConditionStatus::False);
    assert_eq!(status.observed_generation, Some(1));
}

/// Steps a rollout to quiescence; returns (new, old) sizes after every reconcile that changed them.
fn roll(world: &mut World, new_pods_available: bool, new_image: &str) -> Vec<(i32, i32)> {
    let mut steps = Vec::new();
    for _ in 0..20 {
        let before = world.sizes(new_image);
        world.reconcile();
        world.settle_replica_sets(new_pods_available, new_image);
        world.now_ns += S;
        let after = world.sizes(new_image);
        if after != before || (steps.is_empty() && after.0 > 0) {
            steps.push(after);
        }
    }
    steps
}

#[test]
fn rolling_update_10_replicas_25_25_with_instant_availability() {
    let mut world = World::new(vec![
        Object::Deployment(deployment(10, "v2", DeploymentStrategyType::RollingUpdate)),
        Object::ReplicaSet(old_rs("v1", 1, 10, 0)),
    ]);
    world.now_ns = 100 * S;
    // Matches core/tests/rules_deployment.rs: (old, new) (10,3) (5,3) (5,8) (0,8) (0,10).
    assert_eq!(roll(&mut world, true, "v2"), vec![(3, 10), (3, 5), (8, 5), (8, 0), (10, 0)]);
    let rss = world.replica_sets();
    assert_eq!(rss[1].metadata.annotations.get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
    let status = world.deployment().status;
    assert_eq!((status.replicas, status.updated_replicas, status.available_replicas), (10, 10, 10));
    assert_eq!(condition(&status, "Progressing").reason.as_deref(), Some("NewReplicaSetAvailable"));
    assert_eq!(condition(&status, "Available").status, ConditionStatus::True);
}

#[test]
fn rolling_update_stalls_at_min_available_when_new_pods_never_become_available() {
    let mut world = World::new(vec![
        Object::Deployment(deployment(10, "v2", DeploymentStrategyType::RollingUpdate)),
        Object::ReplicaSet(old_rs("v1", 1, 10, 0)),
    ]);
    // As the rules pin it: (old, new) (10,3) (8,3) (8,5).
    assert_eq!(roll(&mut world, false, "v2"), vec![(3, 10), (3, 8), (5, 8)]);
}

#[test]
fn recreate_scales_old_to_zero_waits_for_old_pods_then_creates_the_new_one() {
    let old = old_rs("v1", 1, 3, 0);
    let old_uid = old.metadata.uid.clone().unwrap();
    let old_pod = |name: &str| Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            owner_references: vec![OwnerReference {
                kind: "ReplicaSet".into(),
                name: old.metadata.name.clone(),
                uid: old_uid.clone(),
                controller: Some(true),
                ..OwnerReference::default()
            }],
            ..ObjectMeta::default()
        },
        spec: PodSpec::default(),
        status: PodStatus { phase: Some(PodPhase::Running), ..PodStatus::default() },
    };
    let mut world = World::new(vec![
        Object::Deployment(deployment(3, "v2", DeploymentStrategyType::Recreate)),
        Object::ReplicaSet(old.clone()),
        Object::Pod(old_pod("p1")),
        Object::Pod(old_pod("p2")),
    ]);
    world.reconcile();
    assert_eq!(world.sizes("v2"), (0, 0), "old scaled to 0, nothing new yet");
    // The old ReplicaSet reports no pods, but a terminating pod still runs: keep waiting.
    world.settle_replica_sets(true, "v2");
    world.cache.remove(&ObjectKey::new(Kind::Pod, "default", "p1"));
    world.reconcile();
    assert_eq!(world.replica_sets().len(), 1, "no new ReplicaSet while an old pod runs");
    world.cache.remove(&ObjectKey::new(Kind::Pod, "default", "p2"));
    world.reconcile();
    assert_eq!(world.sizes("v2"), (3, 0), "new ReplicaSet created at full size");
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut d = deployment(20, "v2", DeploymentStrategyType::RollingUpdate);
    d.status.replicas = 13;
    let with_annotations = |mut rs: ReplicaSet| {
        rs.metadata.annotations.insert("deployment.kubernetes.io/desired-replicas".into(), "10".into());
        rs.metadata.annotations.insert("deployment.kubernetes.io/max-replicas".into(), "13".into());
        rs
    };
    let mut world = World::new(vec![
        Object::Deployment(d),
        Object::ReplicaSet(with_annotations(old_rs("v1", 1, 5, 0))),
        Object::ReplicaSet(with_annotations(old_rs("v2", 2, 8, 1))),
    ]);
    world.reconcile();
    // 12 more allowed (20 + 5 surge - 13): 8 * 25/13 rounds to 15, 5 * 25/13 to 10.
    assert_eq!(world.sizes("v2"), (15, 10));
    for rs in world.replica_sets() {
        assert_eq!(rs.metadata.annotations.get("deployment.kubernetes.io/desired-replicas").unwrap(), "20");
        assert_eq!(rs.metadata.annotations.get("deployment.kubernetes.io/max-replicas").unwrap(), "25");
    }
}

#[test]
fn a_paused_deployment_does_not_roll_out() {
    let mut d = deployment(4, "v2", DeploymentStrategyType::RollingUpdate);
    d.spec.paused = true;
    let mut world = World::new(vec![Object::Deployment(d), Object::ReplicaSet(old_rs("v1", 1, 4, 0))]);
    world.reconcile();
    assert_eq!(world.replica_sets().len(), 1, "no new ReplicaSet while paused");
    assert_eq!(world.sizes("v2"), (0, 4));
    let status = world.deployment().status;
    let progressing = condition(&status, "Progressing");
    assert_eq!(
        (progressing.status, progressing.reason.as_deref()),
        (ConditionStatus::Unknown, Some("DeploymentPaused"))
    );
}

#[test]
fn old_replica_sets_beyond_the_history_limit_are_deleted_oldest_revision_first() {
    let mut d = deployment(2, "v5", DeploymentStrategyType::RollingUpdate);
    d.spec.revision_history_limit = Some(2);
    // Complete: the cleanup runs only then.
    d.status = DeploymentStatus {
        observed_generation: Some(1),
        replicas: 2,
        updated_replicas: 2,
        ready_replicas: 2,
        available_replicas: 2,
        ..DeploymentStatus::default()
    };
    let mut world = World::new(vec![
        Object::Deployment(d),
        // Creation order differs from revision order: revision decides.
        Object::ReplicaSet(old_rs("v2", 2, 0, 1)),
        Object::ReplicaSet(old_rs("v1", 1, 0, 2)),
        Object::ReplicaSet(old_rs("v3", 3, 0, 3)),
        Object::ReplicaSet(old_rs("v4", 4, 0, 4)),
        Object::ReplicaSet(old_rs("v5", 5, 2, 5)),
    ]);
    let result = world.reconcile();
    let deleted: Vec<String> = result
        .writes
        .iter()
        .filter_map(|w| match w {
            ApiRequest::Delete { uid, .. } => uid.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec!["rs-1".to_string(), "rs-2".to_string()]);
}

#[test]
fn progress_deadline_exceeded_when_the_new_replica_set_never_becomes_available() {
    let mut d = deployment(2, "v2", DeploymentStrategyType::RollingUpdate);
    d.spec.progress_deadline_seconds = Some(60);
    // The steady state of the old template.
    d.status =
        DeploymentStatus { replicas: 2, ready_replicas: 2, available_replicas: 2, ..DeploymentStatus::default() };
    let mut world = World::new(vec![Object::Deployment(d), Object::ReplicaSet(old_rs("v1", 1, 2, 0))]);
    world.reconcile();
    world.settle_replica_sets(false, "v2");
    let created = condition(&world.deployment().status, "Progressing").clone();
    assert_eq!(created.reason.as_deref(), Some("NewReplicaSetCreated"));
    // New pods exist but never become available; the old ones cannot go below minAvailable.
    world.now_ns = 30 * S;
    let result = world.reconcile();
    world.settle_replica_sets(false, "v2");
    let status = world.deployment().status;
    assert_ne!(condition(&status, "Progressing").reason.as_deref(), Some("ProgressDeadlineExceeded"));
    let last_update_ns = condition(&status, "Progressing").last_update_time_ns.unwrap();
    assert_eq!(result.requeue_after, Some(Duration::from_nanos(last_update_ns + 61 * S - 30 * S)));
    world.now_ns = 30 * S;
    world.reconcile();
    world.now_ns = last_update_ns + 61 * S;
    world.reconcile();
    let status = world.deployment().status;
    let progressing = condition(&status, "Progressing");
    assert_eq!(progressing.status, ConditionStatus::False);
    assert_eq!(progressing.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"web-{}\" has timed out progressing.", template_hash(&template("v2"))).as_str())
    );
    // Timed out: no further deadline checks.
    assert_eq!(world.reconcile().requeue_after, None);
}

#[test]
fn rollback_request_restores_the_previous_revision_template() {
    let mut current = deployment(3, "v2", DeploymentStrategyType::RollingUpdate);
    current.metadata.annotations.insert("deployment.kubernetes.io/revision".into(), "2".into());
    current.metadata.annotations.insert("team".into(), "a".into());
    let mut v1 = old_rs("v1", 1, 0, 0);
    v1.metadata.annotations.insert("kubernetes.io/change-cause".into(), "first".into());
    let v2 = old_rs("v2", 2, 3, 1);
    let mut stranger = old_rs("v0", 9, 0, 0);
    stranger.metadata.owner_references[0].uid = "someone-else".into();

    let ApiRequest::Update { object } = rollback_request(&current, &[&v1, &v2, &stranger], None).unwrap() else {
        panic!("an update")
    };
    let Object::Deployment(rolled) = &*object else { panic!("a deployment") };
    assert_eq!(rolled.spec.template, template("v1"), "the template without pod-template-hash");
    assert_eq!(rolled.metadata.resource_version.as_deref(), Some("1"));
    let expected: StringMap = [
        ("deployment.kubernetes.io/revision".to_string(), "2".to_string()),
        ("kubernetes.io/change-cause".to_string(), "first".to_string()),
    ]
    .into();
    assert_eq!(rolled.metadata.annotations, expected);

    assert_eq!(
        rollback_request(&current, &[&v1, &v2], Some(2)).unwrap_err(),
        "skipped rollback (current template already matches revision 2)"
    );
    assert_eq!(
        rollback_request(&current, &[&v1, &v2], Some(7)).unwrap_err(),
        "unable to find specified revision 7 in history"
    );
    assert_eq!(
        rollback_request(&current, &[&v2], None).unwrap_err(),
        "no rollout history found for deployment \"web\""
    );
    let mut paused = current.clone();
    paused.spec.paused = true;
    assert!(rollback_request(&paused, &[&v1, &v2], None).unwrap_err().starts_with("you cannot rollback a paused"));
}
