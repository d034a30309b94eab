//! The API machinery end to end: kubectl -> API server -> etcd, and informers back.

use kubedst_core::api::{ApiErrorReason, ApiOk, ApiRequest, ListFrom, ObjectKey};
use kubedst_core::cache::{Cache, CacheEvent};
use kubedst_core::cluster::{ok_object, Cluster, ClusterConfig};
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::host::ControllerHost;
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;
use std::rc::Rc;
use std::time::Duration;

fn object(yaml: &str) -> Object {
    load_manifests("test.yaml", yaml).expect("valid manifest").objects.remove(0).object
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:v1"}]
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {generateName: web-, namespace: default}
spec:
  containers: [{name: web, image: "web:v1"}]
"#;

fn settle(cluster: &mut Cluster) {
    let until = cluster.sim.now() + Duration::from_secs(30);
    cluster.run_until_answered(until).unwrap();
}

fn last_error(cluster: &Cluster) -> ApiErrorReason {
    match cluster.last_result().unwrap() {
        Err(error) => error.reason,
        Ok(ok) => panic!("expected an error, got {ok:?}"),
    }
}

#[test]
fn create_applies_defaults_and_refuses_a_taken_name() {
    let mut cluster = Cluster::build(ClusterConfig::new(1));
    cluster.sim.run_until(Time::from_secs(1)).unwrap();
    cluster.create(object(DEPLOYMENT));
    settle(&mut cluster);
    let created = ok_object(cluster.last_result().unwrap()).expect("created").clone();
    let Object::Deployment(deployment) = &*created else { panic!() };
    assert!(deployment.metadata.uid.is_some());
    assert_eq!(deployment.metadata.generation, Some(1));
    assert_eq!(deployment.spec.revision_history_limit, Some(10));
    assert_eq!(deployment.spec.progress_deadline_seconds, Some(600));
    let stored = cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")).expect("stored");
    assert_eq!(stored.meta().resource_version, created.meta().resource_version);

    cluster.create(object(DEPLOYMENT));
    settle(&mut cluster);
    assert_eq!(last_error(&cluster), ApiErrorReason::AlreadyExists);
}

#[test]
fn updates_are_guarded_by_resource_version_and_bump_generation() {
    let mut cluster = Cluster::build(ClusterConfig::new(2));
    cluster.sim.run_until(Time::from_secs(1)).unwrap();
    cluster.create(object(DEPLOYMENT));
    settle(&mut cluster);
    let created = ok_object(cluster.last_result().unwrap()).unwrap().clone();

    // A conditional update from the current version succeeds and bumps generation.
    let mut scaled = (*created).clone();
    if let Object::Deployment(d) = &mut scaled {
        d.spec.replicas = Some(5);
    }
    cluster.submit(ApiRequest::Update { object: Rc::new(scaled.clone()) });
    settle(&mut cluster);
    let updated = ok_object(cluster.last_result().unwrap()).expect("updated").clone();
    assert_eq!(updated.meta().generation, Some(2));

    // The same update again carries a stale resourceVersion: 409 Conflict, nothing written.
    cluster.submit(ApiRequest::Update { object: Rc::new(scaled.clone()) });
    settle(&mut cluster);
    assert_eq!(last_error(&cluster), ApiErrorReason::Conflict);

    // Without a resourceVersion the update is unconditional.
    let mut unconditional = scaled;
    unconditional.meta_mut().resource_version = None;
    if let Object::Deployment(d) = &mut unconditional {
        d.spec.replicas = Some(7);
    }
    cluster.submit(ApiRequest::Update { object: Rc::new(unconditional) });
    settle(&mut cluster);
    let last = ok_object(cluster.last_result().unwrap()).expect("unconditional update").clone();
    assert_eq!(last.meta().generation, Some(3));
    let Object::Deployment(stored) = &*cluster.stored(&ObjectKey::new(Kind::Deployment, "default", "web")).unwrap()
    else {
        panic!()
    };
    assert_eq!(stored.spec.replicas, Some(7));
}

#[test]
fn pods_get_names_tolerations_and_graceful_deletion() {
    let mut cluster = Cluster::build(ClusterConfig::new(3));
    cluster.sim.run_until(Time::from_secs(1)).unwrap();
    cluster.create(object(POD));
    settle(&mut cluster);
    let pod = ok_object(cluster.last_result().unwrap()).expect("created").clone();
    let name = pod.meta().name.clone();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    let Object::Pod(typed) = &*pod else { panic!() };
    let tolerations: Vec<_> =
        typed.spec.tolerations.iter().map(|t| (t.key.clone().unwrap(), t.toleration_seconds)).collect();
    assert_eq!(
        tolerations,
        vec![
            ("node.kubernetes.io/not-ready".to_string(), Some(300)),
            ("node.kubernetes.io/unreachable".to_string(), Some(300))
        ]
    );

    // Bind it, once.
    let bind = ApiRequest::Bind { namespace: "default".into(), pod: name.clone(), uid: None, node: "node-0".into() };
    cluster.submit(bind.clone());
    settle(&mut cluster);
    assert!(cluster.last_result().unwrap().is_ok());
    cluster.submit(bind);
    settle(&mut cluster);
    assert_eq!(last_error(&cluster), ApiErrorReason::Conflict);

    // A bound pod terminates gracefully: it stays, with a deletion timestamp 30 s ahead.
    let key = ObjectKey::new(Kind::Pod, "default", &name);
    let delete =
        |grace| ApiRequest::Delete { key: key.clone(), uid: None, grace_period_seconds: grace, propagation: None };
    cluster.submit(delete(None));
    settle(&mut cluster);
    let deleted_at = cluster.sim.now().as_nanos();
    let terminating = cluster.stored(&key).expect("still stored while terminating");
    let deadline = terminating.meta().deletion_timestamp_ns.expect("terminating");
    assert!(deadline > deleted_at + 29_000_000_000 && deadline <= deleted_at + 30_000_000_000);
    // The kubelet's final delete with grace 0 removes it.
    cluster.submit(delete(Some(0)));
    settle(&mut cluster);
    assert!(cluster.stored(&key).is_none());
    cluster.submit(delete(Some(0)));
    settle(&mut cluster);
    assert_eq!(last_error(&cluster), ApiErrorReason::NotFound);
}

/// Records every cache event it is shown.
#[derive(Default)]
struct Recorder {
    seen: Vec<String>,
}

impl Reconciler for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn watches(&self) -> Vec<Kind> {
        vec![Kind::ConfigMap]
    }
    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        let (what, object) = match event {
            CacheEvent::Added(o) => ("added", o),
            CacheEvent::Updated(_, o) => ("updated", o),
            CacheEvent::Deleted(o) => ("deleted", o),
        };
        self.seen.push(format!("{what} {}", object.meta().name));
        Vec::new()
    }
    fn reconcile(&mut self, _key: &ObjectKey, _cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        Reconcile::done()
    }
}

fn config_map(name: &str) -> Object {
    object(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"))
}

#[test]
fn informers_follow_changes_and_relist_after_410() {
    let mut config = ClusterConfig::new(4);
    // A tiny watch cache: a watcher that is away for a few writes comes back to 410 Gone.
    config.watch_cache_capacity = 3;
    let mut cluster = Cluster::build(config);
    let observer_machine = cluster.sim.add_machine("observer");
    let servers = cluster.api_servers.clone();
    let host_id = cluster.sim.add_component(observer_machine, "observer", move |_| {
        Box::new(ControllerHost::new(servers.clone(), vec![Box::new(Recorder::default())]))
    });
    cluster.sim.run_until(Time::from_secs(2)).unwrap();
    for name in ["a", "b"] {
        cluster.create(config_map(name));
        settle(&mut cluster);
    }
    cluster.sim.run_for(Duration::from_secs(1)).unwrap();
    let seen = |cluster: &Cluster| {
        cluster.sim.component::<ControllerHost>(host_id).unwrap().reconciler_of::<Recorder>().unwrap().seen.clone()
    };
    assert_eq!(seen(&cluster), vec!["added a", "added b"]);
    // (The first list may have met an API server whose cache was not synced yet, and retried.)
    let lists_before = cluster.sim.component::<ControllerHost>(host_id).unwrap().informer_lists();

    // Cut the observer off from the API server while five writes and a delete happen.
    let pairs = cluster.sim.partition(&[observer_machine], &[cluster.control_plane_machines[0]], false);
    for name in ["c", "d", "e", "f", "g"] {
        cluster.create(config_map(name));
        settle(&mut cluster);
    }
    cluster.submit(ApiRequest::Delete {
        key: ObjectKey::new(Kind::ConfigMap, "default", "a"),
        uid: None,
        grace_period_seconds: None,
        propagation: None,
    });
    settle(&mut cluster);
    cluster.sim.repair(&pairs);
    cluster.sim.run_for(Duration::from_secs(60)).unwrap();
    let seen = seen(&cluster);
    let host = cluster.sim.component::<ControllerHost>(host_id).unwrap();
    // The rewatch from the old revision got 410 Gone, and the informer listed again.
    assert_eq!(host.informer_lists(), lists_before + 1, "{seen:?} {:?}", cluster.sim.pending());
    let api = cluster.sim.component::<kubedst_core::apiserver::ApiServer>(cluster.api_servers[0]).unwrap();
    assert_eq!(api.watches_gone, 1);
    let names: Vec<String> = host.cache().list(Kind::ConfigMap, None).iter().map(|o| o.meta().name.clone()).collect();
    assert_eq!(names, vec!["b", "c", "d", "e", "f", "g"]);
    // The relist's differences reached the handlers, the deletion of "a" included.
    assert_eq!(seen, vec!["added a", "added b", "deleted a", "added c", "added d", "added e", "added f", "added g"]);

    // A quorum list agrees.
    cluster.submit(ApiRequest::List { kind: Kind::ConfigMap, namespace: None, from: ListFrom::Quorum });
    settle(&mut cluster);
    match cluster.last_result().unwrap() {
        Ok(ApiOk::List { items, .. }) => assert_eq!(items.len(), 6),
        other => panic!("{other:?}"),
    }
}
