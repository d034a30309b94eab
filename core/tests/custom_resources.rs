//! Custom resources end to end: a user-defined kind registered with the cluster is stored,
//! listed, watched and garbage-collected like a built-in one, under Kubernetes' rule that a
//! custom resource is never updated unconditionally.

use kubedst_core::api::{ApiErrorReason, ApiOk, ApiRequest, ListFrom, ObjectKey};
use kubedst_core::cache::{Cache, CacheEvent};
use kubedst_core::cluster::{ok_object, Cluster, ClusterConfig, ReconcilerFactory};
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::manifest::{load_manifests, load_manifests_with};
use kubedst_core::objects::networking::ServicePort;
use kubedst_core::objects::{CustomKind, CustomObject, Kind, Object, ObjectMeta, OwnerReference, Service};
use kubedst_sim::Time;
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;

const APP: CustomKind = CustomKind::namespaced("example.kubedst.dev/v1", "App", "apps");
const APP_KIND: Kind = Kind::Custom(APP);

const APP_YAML: &str = r#"
apiVersion: example.kubedst.dev/v1
kind: App
metadata: {name: web, namespace: default, labels: {team: a}}
spec:
  replicas: 3
  image: "web:v1"
  ports: [80, 443]
"#;

fn app_object() -> Object {
    load_manifests_with("app.yaml", APP_YAML, &[APP]).expect("a registered kind loads").objects.remove(0).object
}

fn app_key() -> ObjectKey {
    ObjectKey::new(APP_KIND, "default", "web")
}

fn config(seed: u64) -> ClusterConfig {
    ClusterConfig::new(seed).with_custom_kind(APP).expect("a valid kind")
}

fn settle(cluster: &mut Cluster) {
    let until = cluster.sim.now() + Duration::from_secs(30);
    cluster.run_until_answered(until).unwrap();
}

fn last_error(cluster: &Cluster) -> (ApiErrorReason, String) {
    match cluster.last_result().unwrap() {
        Err(error) => (error.reason, error.message.clone()),
        Ok(ok) => panic!("expected an error, got {ok:?}"),
    }
}

fn started(config: ClusterConfig) -> Cluster {
    let mut cluster = Cluster::build(config);
    cluster.sim.run_until(Time::from_secs(1)).unwrap();
    cluster
}

fn created_app(cluster: &mut Cluster) -> Rc<Object> {
    cluster.create(app_object());
    settle(cluster);
    ok_object(cluster.last_result().unwrap()).expect("created").clone()
}

fn custom(object: &Object) -> &CustomObject {
    match object {
        Object::Custom(custom) => custom,
        other => panic!("expected a custom object, got {other:?}"),
    }
}

#[test]
fn a_registered_kind_loads_from_a_manifest_and_an_unregistered_one_stays_an_error() {
    let object = app_object();
    let app = custom(&object);
    assert_eq!(app.kind, APP);
    assert_eq!(app.spec["replicas"], json!(3));
    assert_eq!(app.spec["ports"], json!([80, 443]));
    assert_eq!(app.metadata.labels.get("team").map(String::as_str), Some("a"));

    let unregistered = load_manifests("app.yaml", APP_YAML).unwrap_err().to_string();
    assert!(unregistered.contains("app.yaml:3:7: kind: unknown kind \"App\""), "{unregistered}");

    let wrong_version = APP_YAML.replace("example.kubedst.dev/v1", "example.kubedst.dev/v2");
    let error = load_manifests_with("app.yaml", &wrong_version, &[APP]).unwrap_err().to_string();
    assert!(error.contains("app.yaml:2:13: apiVersion:"), "{error}");
    assert!(error.contains("not a registered version of the custom kind App; use example.kubedst.dev/v1"), "{error}");

    // Floats stay out of the model: the loader says where one is.
    let float = APP_YAML.replace("replicas: 3", "replicas: 2.5");
    let error = load_manifests_with("app.yaml", &float, &[APP]).unwrap_err().to_string();
    assert!(error.contains("spec.replicas") && error.contains("floating-point"), "{error}");

    // A spec that is not a mapping is refused too.
    let scalar = "apiVersion: example.kubedst.dev/v1\nkind: App\nmetadata: {name: x}\nspec: 3\n";
    let error = load_manifests_with("app.yaml", scalar, &[APP]).unwrap_err().to_string();
    assert!(error.contains("spec") && error.contains("must be an object"), "{error}");
}

#[test]
fn custom_kinds_are_checked_like_a_crd() {
    assert!(APP.check().is_ok());
    let no_dot = CustomKind::namespaced("example/v1", "App", "apps");
    assert!(no_dot.check().unwrap_err().contains("at least one dot"));
    let builtin_name = CustomKind::namespaced("example.com/v1", "Pod", "pods");
    assert!(builtin_name.check().unwrap_err().contains("built-in"));
    let upper_plural = CustomKind::namespaced("example.com/v1", "Widget", "Widgets");
    assert!(upper_plural.check().unwrap_err().contains("plural"));
    assert!(ClusterConfig::new(1).with_custom_kind(no_dot).is_err());
}

#[test]
fn a_custom_object_is_stored_under_its_group_and_plural_with_server_fields() {
    let mut cluster = started(config(1));
    let created = created_app(&mut cluster);
    let app = custom(&created);
    assert!(app.metadata.uid.is_some());
    assert_eq!(app.metadata.generation, Some(1));
    assert_eq!(app_key().store_key(), "/registry/example.kubedst.dev/apps/default/web");
    let stored = cluster.stored(&app_key()).expect("stored in etcd");
    assert_eq!(stored.meta().resource_version, created.meta().resource_version);
    assert_eq!(cluster.stored_all(APP_KIND).len(), 1);

    // Lists from etcd and from the watch cache both hold it.
    for from in [ListFrom::Quorum, ListFrom::Cache] {
        cluster.submit(ApiRequest::List { kind: APP_KIND, namespace: Some("default".into()), from });
        settle(&mut cluster);
        let Ok(ApiOk::List { items, .. }) = cluster.last_result().unwrap() else { panic!("a list") };
        assert_eq!(items.len(), 1, "{from:?}");
        assert_eq!(custom(&items[0]).spec["image"], json!("web:v1"));
    }

    cluster.create(app_object());
    settle(&mut cluster);
    assert_eq!(last_error(&cluster).0, ApiErrorReason::AlreadyExists);
}

#[test]
fn an_update_without_resource_version_is_rejected_with_422() {
    let mut cluster = started(config(2));
    let created = created_app(&mut cluster);

    // No resourceVersion: 422 Invalid, as apiextensions-apiserver answers (AllowUnconditionalUpdate
    // is false for custom resources), and nothing is written.
    let mut unconditional = (*created).clone();
    unconditional.meta_mut().resource_version = None;
    if let Object::Custom(app) = &mut unconditional {
        app.spec["replicas"] = json!(5);
    }
    cluster.submit(ApiRequest::Update { object: Rc::new(unconditional.clone()) });
    settle(&mut cluster);
    let (reason, message) = last_error(&cluster);
    assert_eq!((reason, reason.code()), (ApiErrorReason::Invalid, 422));
    assert_eq!(
        message,
        "apps.example.kubedst.dev \"web\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    assert_eq!(custom(&cluster.stored(&app_key()).unwrap()).spec["replicas"], json!(3));

    // The status subresource follows the same rule.
    cluster.submit(ApiRequest::UpdateStatus { object: Rc::new(unconditional) });
    settle(&mut cluster);
    assert_eq!(last_error(&cluster).0, ApiErrorReason::Invalid);

    // With the current resourceVersion the update goes through and bumps generation.
    let mut conditional = (*created).clone();
    if let Object::Custom(app) = &mut conditional {
        app.spec["replicas"] = json!(5);
    }
    cluster.submit(ApiRequest::Update { object: Rc::new(conditional.clone()) });
    settle(&mut cluster);
    let updated = ok_object(cluster.last_result().unwrap()).expect("updated").clone();
    assert_eq!(updated.meta().generation, Some(2));
    assert_eq!(custom(&updated).spec["replicas"], json!(5));

    // The same write again is stale: 409 Conflict.
    cluster.submit(ApiRequest::Update { object: Rc::new(conditional) });
    settle(&mut cluster);
    let (reason, _) = last_error(&cluster);
    assert_eq!((reason, reason.code()), (ApiErrorReason::Conflict, 409));
}

#[test]
fn a_status_write_changes_only_the_status_and_a_main_write_never_the_status() {
    let mut cluster = started(config(3));
    let created = created_app(&mut cluster);

    let mut with_status = (*created).clone();
    if let Object::Custom(app) = &mut with_status {
        app.status = json!({"readyReplicas": 2});
        app.spec["replicas"] = json!(9);
    }
    cluster.submit(ApiRequest::UpdateStatus { object: Rc::new(with_status) });
    settle(&mut cluster);
    let after_status = ok_object(cluster.last_result().unwrap()).expect("status written").clone();
    let app = custom(&after_status);
    assert_eq!(app.status, json!({"readyReplicas": 2}));
    assert_eq!(app.spec["replicas"], json!(3), "a status write leaves the spec alone");
    assert_eq!(app.metadata.generation, Some(1), "a status write does not bump generation");

    let mut main_write = (*after_status).clone();
    if let Object::Custom(app) = &mut main_write {
        app.status = json!({"readyReplicas": 99});
        app.metadata.labels.insert("tier".into(), "front".into());
    }
    cluster.submit(ApiRequest::Update { object: Rc::new(main_write) });
    settle(&mut cluster);
    let after_main = ok_object(cluster.last_result().unwrap()).expect("labels written").clone();
    assert_eq!(custom(&after_main).status, json!({"readyReplicas": 2}), "a main write leaves the status alone");
    assert_eq!(after_main.meta().generation, Some(1), "a label change does not bump generation");
    assert_eq!(after_main.meta().labels.get("tier").map(String::as_str), Some("front"));
}

#[test]
fn an_unregistered_custom_kind_is_not_served() {
    let mut cluster = started(ClusterConfig::new(4));
    cluster.create(app_object());
    settle(&mut cluster);
    let (reason, message) = last_error(&cluster);
    assert_eq!(reason, ApiErrorReason::NotFound);
    assert!(message.contains("the server could not find the requested resource (apps.example.kubedst.dev)"));

    // A float that slipped past the loader (built in code) is refused by the server.
    let mut cluster = started(config(4));
    let float = CustomObject::new(APP, "default", "f", json!({"ratio": 0.5}));
    cluster.create(Object::Custom(float));
    settle(&mut cluster);
    assert_eq!(last_error(&cluster).0, ApiErrorReason::Invalid);
}

/// Records what its informer shows it: the events of the watched custom kind.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
}

impl Reconciler for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![APP_KIND]
    }

    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        let what = match event {
            CacheEvent::Added(_) => "added",
            CacheEvent::Updated(..) => "updated",
            CacheEvent::Deleted(_) => "deleted",
        };
        self.events.push(format!("{what} {}", event.object().meta().name));
        vec![ObjectKey::of(event.object())]
    }

    fn reconcile(&mut self, _key: &ObjectKey, _cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        Reconcile::done()
    }
}

#[test]
fn an_informer_over_a_custom_kind_sees_additions_updates_and_deletions() {
    let factory: ReconcilerFactory = Rc::new(|| vec![Box::new(Recorder::default()) as Box<dyn Reconciler>]);
    let mut cluster = started(config(5).with_controller("recorder", factory).unwrap());
    let created = created_app(&mut cluster);
    let mut changed = (*created).clone();
    if let Object::Custom(app) = &mut changed {
        app.spec["replicas"] = json!(4);
    }
    cluster.submit(ApiRequest::Update { object: Rc::new(changed) });
    settle(&mut cluster);
    cluster.submit(ApiRequest::Delete { key: app_key(), uid: None, grace_period_seconds: None, propagation: None });
    settle(&mut cluster);
    cluster.sim.run_for(Duration::from_secs(2)).unwrap();
    let host = cluster.user_controller("recorder", 0).expect("the user's controller runs");
    assert!(host.synced());
    let recorder = host.reconciler_of::<Recorder>().expect("the recorder");
    assert_eq!(recorder.events, vec!["added web", "updated web", "deleted web"]);
    assert_eq!(host.cache().len(APP_KIND), 0);
}

#[test]
fn the_garbage_collector_deletes_what_a_deleted_custom_object_owned() {
    let mut cluster = started(ClusterConfig::standard(6, 0).with_custom_kind(APP).unwrap());
    let app = created_app(&mut cluster);
    let owner = OwnerReference {
        api_version: APP.api_version.to_string(),
        kind: APP.kind.to_string(),
        name: "web".into(),
        uid: app.meta().uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut service = Service {
        metadata: ObjectMeta {
            name: "web".into(),
            namespace: Some("default".into()),
            owner_references: vec![owner],
            ..ObjectMeta::default()
        },
        ..Service::default()
    };
    service.spec.selector.insert("app".into(), "web".into());
    service.spec.ports.push(ServicePort { port: 80, ..ServicePort::default() });
    cluster.create(Object::Service(service));
    settle(&mut cluster);
    assert!(cluster.last_result().unwrap().is_ok(), "{:?}", cluster.last_result());
    let service_key = ObjectKey::new(Kind::Service, "default", "web");
    cluster.sim.run_for(Duration::from_secs(5)).unwrap();
    assert!(cluster.stored(&service_key).is_some(), "an owned object stays while its owner exists");

    cluster.submit(ApiRequest::Delete { key: app_key(), uid: None, grace_period_seconds: None, propagation: None });
    settle(&mut cluster);
    cluster.sim.run_for(Duration::from_secs(5)).unwrap();
    assert!(cluster.stored(&app_key()).is_none());
    assert!(cluster.stored(&service_key).is_none(), "the collector deletes the dependent of a deleted App");
}
