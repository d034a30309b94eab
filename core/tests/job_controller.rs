//! The Job controller driven by hand: a Cache built from objects, writes applied by the test as
//! the host and the API server would.

use std::rc::Rc;
use std::time::Duration;

use kubedst_core::api::{ApiOk, ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::JobController;
use kubedst_core::objects::pod::{Container, PodPhase, RestartPolicy};
use kubedst_core::objects::workloads::JobSpec;
use kubedst_core::objects::{Job, Kind, Object, ObjectMeta, PodSpec, PodTemplateSpec, StringMap};
use kubedst_sim::SimRng;

const S: u64 = 1_000_000_000;

fn labels() -> StringMap {
    [("job-name".to_string(), "work".to_string())].into()
}

fn job(completions: i32, parallelism: i32, backoff_limit: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: "work".into(),
            namespace: Some("default".into()),
            uid: Some("job-uid".into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: JobSpec {
            completions: Some(completions),
            parallelism: Some(parallelism),
            backoff_limit: Some(backoff_limit),
            selector: None,
            template: PodTemplateSpec {
                metadata: ObjectMeta { labels: labels(), ..ObjectMeta::default() },
                spec: PodSpec {
                    containers: vec![Container { name: "c".into(), image: "job:v1".into(), ..Container::default() }],
                    restart_policy: Some(RestartPolicy::Never),
                    ..PodSpec::default()
                },
            },
        },
        status: Default::default(),
    }
}

fn key() -> ObjectKey {
    ObjectKey::new(Kind::Job, "default", "work")
}

struct Harness {
    controller: JobController,
    cache: Cache,
    next: u32,
}

impl Harness {
    fn new(job: Job) -> Harness {
        let mut harness = Harness { controller: JobController::new(), cache: Cache::new(), next: 0 };
        harness.upsert(Object::Job(job));
        harness
    }

    fn upsert(&mut self, object: Object) {
        if let Some(event) = self.cache.upsert(Rc::new(object)) {
            self.controller.on_event(&event, &self.cache);
        }
    }

    /// Reconciles at `now_s`, and plays the API server for every write: creates get a name and
    /// uid, status updates land in the cache.
    fn sync(&mut self, now_s: u64) -> Reconcile {
        let mut rng = SimRng::for_stream(1, "job");
        let result =
            self.controller.reconcile(&key(), &self.cache, &mut ReconcileContext { now_ns: now_s * S, rng: &mut rng });
        for write in &result.writes {
            match write {
                ApiRequest::Create { object } => {
                    let Object::Pod(template) = &**object else { panic!("the Job controller creates pods") };
                    let mut created = template.clone();
                    created.metadata.name =
                        format!("{}{}", template.metadata.generate_name.clone().unwrap(), self.next);
                    created.metadata.uid = Some(format!("uid-{}", self.next));
                    created.metadata.creation_timestamp_ns = Some(now_s * S);
                    self.next += 1;
                    let created = Rc::new(Object::Pod(created));
                    self.controller.on_write_result(&key(), write, &Ok(ApiOk::Object(created.clone())));
                    self.upsert((*created).clone());
                }
                ApiRequest::UpdateStatus { object } => self.upsert((**object).clone()),
                ApiRequest::Delete { key, .. } => {
                    if let Some(event) = self.cache.remove(key) {
                        self.controller.on_event(&event, &self.cache);
                    }
                }
                other => panic!("unexpected write {other:?}"),
            }
        }
        result
    }

    fn creates(result: &Reconcile) -> usize {
        result.writes.iter().filter(|w| matches!(w, ApiRequest::Create { .. })).count()
    }

    /// Names of the owned pods not yet finished.
    fn running(&self) -> Vec<String> {
        self.cache
            .list(Kind::Pod, Some("default"))
            .into_iter()
            .filter_map(|object| match &**object {
                Object::Pod(pod) if !matches!(pod.status.phase, Some(PodPhase::Succeeded | PodPhase::Failed)) => {
                    Some(pod.metadata.name.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn finish(&mut self, name: &str, phase: PodPhase) {
        let Object::Pod(pod) = &**self.cache.get_by(Kind::Pod, "default", name).unwrap() else { unreachable!() };
        let mut pod = pod.clone();
        pod.status.phase = Some(phase);
        self.upsert(Object::Pod(pod));
    }

    fn job(&self) -> Job {
        match &**self.cache.get(&key()).unwrap() {
            Object::Job(job) => job.clone(),
            _ => unreachable!(),
        }
    }
}

fn condition(job: &Job) -> Option<(String, Option<String>)> {
    job.status.conditions.first().map(|c| (c.condition_type.clone(), c.reason.clone()))
}

#[test]
fn creates_min_of_parallelism_and_completions() {
    let mut h = Harness::new(job(5, 2, 6));
    assert_eq!(Harness::creates(&h.sync(0)), 2);
    assert_eq!(h.job().status.active, 2);
    // Observed, nothing more to do.
    assert_eq!(Harness::creates(&h.sync(1)), 0);

    let mut h = Harness::new(job(2, 5, 6));
    assert_eq!(Harness::creates(&h.sync(0)), 2);
}

#[test]
fn unobserved_creations_block_further_creations() {
    let mut h = Harness::new(job(3, 3, 6));
    let mut rng = SimRng::for_stream(1, "job");
    let result = h.controller.reconcile(&key(), &h.cache, &mut ReconcileContext { now_ns: 0, rng: &mut rng });
    assert_eq!(Harness::creates(&result), 3);
    // The results never arrive, the pods never show: a second sync creates nothing.
    let again = h.controller.reconcile(&key(), &h.cache, &mut ReconcileContext { now_ns: S, rng: &mut rng });
    assert_eq!(Harness::creates(&again), 0);
}

#[test]
fn completes_at_completions_with_replacements_for_successes() {
    let mut h = Harness::new(job(3, 2, 6));
    h.sync(0);
    for (t, name) in [(5, "work-0"), (6, "work-1")] {
        h.finish(name, PodPhase::Succeeded);
        h.sync(t);
    }
    // Two succeeded: one more pod for the last completion, not two.
    assert_eq!(h.running(), vec!["work-2".to_string()]);
    assert_eq!(h.job().status.succeeded, 2);
    h.finish("work-2", PodPhase::Succeeded);
    let last = h.sync(10);
    assert_eq!(Harness::creates(&last), 0);
    let job = h.job();
    assert_eq!((job.status.succeeded, job.status.failed, job.status.active), (3, 0, 0));
    assert_eq!(condition(&job), Some(("Complete".into(), Some("CompletionsReached".into()))));
    assert_eq!(job.status.completion_time_ns, Some(10 * S));
    // Finished: later syncs do nothing.
    assert!(h.sync(20).writes.is_empty());
}

#[test]
fn failures_are_replaced_after_backoff_of_10_then_20_seconds() {
    let mut h = Harness::new(job(1, 1, 6));
    h.sync(0);
    h.finish("work-0", PodPhase::Failed);
    let first = h.sync(5);
    assert_eq!(Harness::creates(&first), 0);
    assert_eq!(first.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(h.job().status.failed, 1);
    assert_eq!(Harness::creates(&h.sync(14)), 0, "still backing off");
    assert_eq!(Harness::creates(&h.sync(15)), 1, "10 s after the first failure");

    h.finish("work-1", PodPhase::Failed);
    let second = h.sync(20);
    assert_eq!(second.requeue_after, Some(Duration::from_secs(20)));
    assert_eq!(Harness::creates(&h.sync(39)), 0);
    assert_eq!(Harness::creates(&h.sync(40)), 1, "20 s after the second failure");

    // A success resets the backoff; the job is then complete.
    h.finish("work-2", PodPhase::Succeeded);
    h.sync(41);
    assert_eq!(h.controller.record(&key()).unwrap().failures_after_last_success, 0);
    assert_eq!(condition(&h.job()).unwrap().0, "Complete");
}

#[test]
fn fails_with_backoff_limit_exceeded_and_deletes_active_pods() {
    let mut h = Harness::new(job(4, 2, 1));
    h.sync(0);
    h.finish("work-0", PodPhase::Failed);
    h.sync(1);
    assert_eq!(condition(&h.job()), None, "1 failure is within backoffLimit 1");
    assert_eq!(Harness::creates(&h.sync(11)), 1);
    assert_eq!(h.running().len(), 2);
    h.finish("work-1", PodPhase::Failed);
    let last = h.sync(12);
    let deleted: Vec<String> = last
        .writes
        .iter()
        .filter_map(|w| match w {
            ApiRequest::Delete { key, .. } => Some(key.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec!["work-2".to_string()]);
    let job = h.job();
    assert_eq!((job.status.failed, job.status.active), (2, 0));
    assert_eq!(condition(&job), Some(("Failed".into(), Some("BackoffLimitExceeded".into()))));
    assert!(h.sync(100).writes.is_empty());
}

#[test]
fn lowering_parallelism_deletes_extra_active_pods() {
    let mut h = Harness::new(job(10, 3, 6));
    h.sync(0);
    let mut lowered = h.job();
    lowered.spec.parallelism = Some(1);
    h.upsert(Object::Job(lowered));
    let result = h.sync(1);
    let deletes = result.writes.iter().filter(|w| matches!(w, ApiRequest::Delete { .. })).count();
    assert_eq!(deletes, 2);
    assert_eq!(h.running().len(), 1);
}
