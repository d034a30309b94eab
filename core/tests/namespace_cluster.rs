//! Namespaces in the whole cluster: the system namespaces exist from the start; creating into a
//! missing namespace is a 404 and into a terminating one a 403 (NamespaceLifecycle admission);
//! deleting a namespace deletes what is in it, then the namespace (ground truth: etcd).

use kubedst_core::api::{ApiErrorReason, ApiRequest, ObjectKey};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::cluster::SYSTEM_NAMESPACES;
use kubedst_core::objects::{Kind, Object};
use kubedst_sim::Time;
use std::time::Duration;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: "web:v1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: fast}
"#;

/// Everything in the namespace, and the namespace, are gone within this long of the delete.
/// Measured (seeds 1-4): see the eprintln! lines; the pods' 5 s grace period dominates.
const BOUND: Duration = Duration::from_secs(30);

fn in_namespace(cluster: &Cluster, namespace: &str) -> Vec<String> {
    Kind::ALL
        .iter()
        .filter(|kind| kind.is_namespaced())
        .flat_map(|kind| cluster.stored_all(*kind))
        .filter(|object| object.meta().namespace.as_deref() == Some(namespace))
        .map(|object| ObjectKey::of(&object).to_string())
        .collect()
}

fn namespace_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Namespace, "", name)
}

#[test]
fn deleting_a_namespace_deletes_its_content_then_itself() {
    for seed in 1..=4 {
        delete_namespace(seed);
    }
}

fn delete_namespace(seed: u64) {
    let mut cluster = Cluster::build(ClusterConfig::standard(seed, 2));
    for loaded in load_manifests("shop.yaml", MANIFESTS).unwrap().objects {
        cluster.create(loaded.object);
        // The namespace first: its creation must be visible before content is admitted.
        cluster.run_until_answered(Time::from_secs(5)).unwrap();
    }
    cluster.sim.run_until(Time::from_secs(20)).unwrap();
    for name in SYSTEM_NAMESPACES {
        assert!(cluster.stored(&namespace_key(name)).is_some(), "seed {seed}: {name} exists from the start");
    }
    let content = in_namespace(&cluster, "shop");
    assert!(
        content.len() >= 8,
        "seed {seed}: deployment, replica set, 3 pods, service, slice, config map: {content:?}"
    );
    assert!(cluster.kubectl_log().iter().all(|entry| entry.result.is_ok()), "seed {seed}: every create was admitted");

    let start = cluster.sim.now();
    cluster.submit(ApiRequest::Delete {
        key: namespace_key("shop"),
        uid: None,
        grace_period_seconds: None,
        propagation: None,
    });
    let mut terminating_at = None;
    let mut late_submitted = false;
    let mut took = None;
    while cluster.sim.now() < start + BOUND {
        if !cluster.sim.step() {
            break;
        }
        match cluster.stored(&namespace_key("shop")).as_deref() {
            Some(Object::Namespace(namespace)) => {
                if namespace.status.phase.as_deref() == Some("Terminating") && terminating_at.is_none() {
                    assert!(namespace.spec.finalizers.contains(&"kubernetes".to_string()));
                    terminating_at = Some(cluster.sim.now());
                }
            }
            Some(_) => unreachable!(),
            None => {
                let left = in_namespace(&cluster, "shop");
                assert!(left.is_empty(), "seed {seed}: the namespace went before its content: {left:?}");
                took = Some(cluster.sim.now() - start);
                break;
            }
        }
        // Half a second after the namespace turned Terminating (every watch cache has seen it by then),
        // a create into it is refused.
        if terminating_at.is_some_and(|at| cluster.sim.now() >= at + Duration::from_millis(500)) && !late_submitted {
            late_submitted = true;
            let late = kubedst_core::objects::ConfigMap {
                metadata: kubedst_core::objects::ObjectMeta {
                    name: "late".into(),
                    namespace: Some("shop".into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            cluster.create(Object::ConfigMap(late));
        }
    }
    let took =
        took.unwrap_or_else(|| panic!("seed {seed}: not gone within {BOUND:?}: {:?}", in_namespace(&cluster, "shop")));
    assert!(terminating_at.is_some(), "seed {seed}: the namespace was Terminating first");
    let late = cluster.kubectl_log().last().expect("the late create was answered");
    let error = late.result.as_ref().expect_err("refused");
    assert_eq!(error.reason, ApiErrorReason::Forbidden, "seed {seed}: {error}");
    assert_eq!(error.message, "unable to create new content in namespace shop because it is being terminated");
    // Nothing of the namespace comes back (the ReplicaSet controller's recreations are refused).
    cluster.sim.run_until(cluster.sim.now() + Duration::from_secs(10)).unwrap();
    assert!(in_namespace(&cluster, "shop").is_empty(), "seed {seed}");
    assert!(cluster.stored_all(Kind::Pod).is_empty(), "seed {seed}: no pod anywhere");
    eprintln!("seed {seed}: namespace shop and its content gone after {}ms", took.as_millis());
}

#[test]
fn creating_into_a_missing_namespace_is_404_and_system_namespaces_cannot_be_deleted() {
    let mut cluster = Cluster::build(ClusterConfig::standard(9, 1));
    cluster.sim.run_until(Time::from_secs(2)).unwrap();
    let orphan = kubedst_core::objects::ConfigMap {
        metadata: kubedst_core::objects::ObjectMeta {
            name: "x".into(),
            namespace: Some("nowhere".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cluster.create(Object::ConfigMap(orphan));
    cluster.run_until_answered(Time::from_secs(5)).unwrap();
    let error = cluster.last_result().unwrap().as_ref().expect_err("refused");
    assert_eq!((error.code(), error.message.as_str()), (404, "namespaces \"nowhere\" not found"));
    cluster.submit(ApiRequest::Delete {
        key: namespace_key("default"),
        uid: None,
        grace_period_seconds: None,
        propagation: None,
    });
    cluster.run_until_answered(Time::from_secs(8)).unwrap();
    let error = cluster.last_result().unwrap().as_ref().expect_err("refused");
    assert_eq!(error.code(), 403, "{error}");
    let Some(Object::Namespace(default)) = cluster.stored(&namespace_key("default")).as_deref().cloned() else {
        panic!("default exists")
    };
    assert_eq!(default.status.phase.as_deref(), Some("Active"));
}
