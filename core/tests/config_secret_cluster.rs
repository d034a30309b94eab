//! ConfigMaps, Secrets and who may read them, in the whole cluster: a pod whose ConfigMap or
//! Secret is missing does not start (CreateContainerConfigError, not ready, nothing in the runtime)
//! and starts once it exists; an `optional` reference does not block; Secrets are readable only by
//! the identities whose role allows it (403 otherwise), and a kubelet reads the Secrets and
//! ConfigMaps of its own pods only (the Node authorizer). Ground truth: etcd and the nodes' runtimes.

use kubedst_core::api::{ApiErrorReason, ApiRequest, ListFrom, ObjectKey};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::manifest::load_manifests;
use kubedst_core::node::Kubelet;
use kubedst_core::objects::pod::Pod;
use kubedst_core::objects::{Kind, Object};
use kubedst_core::rbac::{self, Verb};
use kubedst_sim::Time;
use std::time::Duration;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: needs-secret}
spec:
  containers:
  - name: app
    image: "app:v1"
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
---
apiVersion: v1
kind: Pod
metadata: {name: needs-config}
spec:
  containers:
  - name: app
    image: "app:v1"
    envFrom:
    - configMapRef: {name: settings}
---
apiVersion: v1
kind: Pod
metadata: {name: optional-only}
spec:
  containers:
  - name: app
    image: "app:v1"
    env:
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: absent, key: token, optional: true}}
"#;

const CONFIG: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: hunter2}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast}
"#;

fn pod(cluster: &Cluster, name: &str) -> Pod {
    match cluster.stored(&ObjectKey::new(Kind::Pod, "default", name)).as_deref() {
        Some(Object::Pod(pod)) => pod.clone(),
        other => panic!("pod {name}: {other:?}"),
    }
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .container_statuses
        .first()
        .and_then(|status| status.state.waiting.as_ref())
        .and_then(|w| w.reason.clone())
}

/// Ground truth: whether the pod's node runs it.
fn runs(cluster: &Cluster, pod: &Pod) -> bool {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    cluster.kubelets.iter().any(|&id| cluster.sim.component::<Kubelet>(id).is_some_and(|k| k.runtime().has_pod(&uid)))
}

#[test]
fn a_pod_waits_for_its_config_map_and_secret_then_starts() {
    for seed in 1..=3 {
        waits_then_starts(seed);
    }
}

fn waits_then_starts(seed: u64) {
    let mut cluster = Cluster::build(ClusterConfig::standard(seed, 2));
    for loaded in load_manifests("pods.yaml", PODS).unwrap().objects {
        cluster.create(loaded.object);
    }
    cluster.sim.run_until(Time::from_secs(15)).unwrap();
    for name in ["needs-secret", "needs-config"] {
        let blocked = pod(&cluster, name);
        assert!(blocked.spec.node_name.is_some(), "seed {seed}: {name} is scheduled");
        assert_eq!(waiting_reason(&blocked).as_deref(), Some("CreateContainerConfigError"), "seed {seed}: {name}");
        assert!(!blocked.is_ready(), "seed {seed}: {name} is not ready");
        assert!(!runs(&cluster, &blocked), "seed {seed}: {name} has no containers");
    }
    let optional = pod(&cluster, "optional-only");
    assert!(optional.is_ready() && runs(&cluster, &optional), "seed {seed}: an optional reference does not block");

    let created_at = cluster.sim.now();
    for loaded in load_manifests("config.yaml", CONFIG).unwrap().objects {
        cluster.create(loaded.object);
    }
    // The kubelet reads a missing Secret or ConfigMap again every 10 s (SECRET_RETRY_INTERVAL).
    let bound = created_at + Duration::from_secs(15);
    let mut started_after = None;
    while cluster.sim.now() < bound {
        if !cluster.sim.step() {
            break;
        }
        let ready = ["needs-secret", "needs-config"].iter().all(|name| pod(&cluster, name).is_ready());
        if ready {
            started_after = Some(cluster.sim.now() - created_at);
            break;
        }
    }
    let took = started_after.unwrap_or_else(|| panic!("seed {seed}: not started within 15 s"));
    for name in ["needs-secret", "needs-config"] {
        assert!(runs(&cluster, &pod(&cluster, name)), "seed {seed}: {name} runs");
    }
    eprintln!("seed {seed}: both pods ready {}ms after their ConfigMap and Secret were created", took.as_millis());
}

#[test]
fn secrets_are_readable_only_by_roles_that_allow_it() {
    let mut cluster = Cluster::build(ClusterConfig::standard(4, 2));
    for loaded in load_manifests("config.yaml", CONFIG).unwrap().objects {
        cluster.create(loaded.object);
    }
    let needs_secret = load_manifests("pods.yaml", PODS).unwrap().objects.remove(0).object;
    cluster.create(needs_secret);
    cluster.sim.run_until(Time::from_secs(10)).unwrap();
    let started = pod(&cluster, "needs-secret");
    assert!(started.is_ready() && runs(&cluster, &started), "the pod needing the Secret started on its node");
    let node = started.spec.node_name.clone().unwrap();
    let other = if node == "node-0" { "node-1" } else { "node-0" };

    let get = ApiRequest::Get { key: ObjectKey::new(Kind::Secret, "default", "db") };
    let list = ApiRequest::List { kind: Kind::Secret, namespace: Some("default".into()), from: ListFrom::Quorum };
    let cases = [
        (rbac::SCHEDULER.to_string(), get.clone(), false),
        (rbac::SCHEDULER.to_string(), list.clone(), false),
        (rbac::KUBE_PROXY.to_string(), get.clone(), false),
        (rbac::ANONYMOUS.to_string(), get.clone(), false),
        (rbac::node_user(other), get.clone(), false),
        (rbac::node_user(&node), list.clone(), false),
        (rbac::node_user(&node), get.clone(), true),
        (rbac::CONTROLLER_MANAGER.to_string(), list.clone(), true),
        (rbac::ADMIN.to_string(), get.clone(), true),
    ];
    for (user, request, allowed) in &cases {
        cluster.submit_as(user, request.clone());
        cluster.run_until_answered(cluster.sim.now() + Duration::from_secs(5)).unwrap();
        let result = cluster.last_result().expect("answered");
        match (allowed, result) {
            (true, Ok(_)) => {}
            (false, Err(error)) => {
                assert_eq!(error.reason, ApiErrorReason::Forbidden, "{user} {}: {error}", request.verb());
                assert_eq!(error.code(), 403);
                assert!(error.message.contains(&format!("User \"{user}\"")), "{error}");
            }
            (allowed, result) => panic!("{user} {}: expected allowed={allowed}, got {result:?}", request.verb()),
        }
    }
    // Other kinds stay open to every component.
    cluster.submit_as(rbac::SCHEDULER, ApiRequest::Get { key: ObjectKey::new(Kind::ConfigMap, "default", "settings") });
    cluster.run_until_answered(cluster.sim.now() + Duration::from_secs(5)).unwrap();
    assert!(cluster.last_result().unwrap().is_ok());
}

#[test]
fn the_node_authorizer_follows_the_pods_references() {
    let pods = load_manifests("pods.yaml", PODS).unwrap().objects;
    let Object::Pod(mut bound) = pods[0].object.clone() else { panic!() };
    bound.spec.node_name = Some("node-0".into());
    let pods_of = |node: &str, _: &str| if node == "node-0" { vec![&bound] } else { Vec::new() };
    let decide = |user: &str, verb, name: &str| rbac::authorize(user, verb, Kind::Secret, "default", name, pods_of);
    assert!(decide("system:node:node-0", Verb::Get, "db").is_ok());
    assert!(decide("system:node:node-0", Verb::Get, "other").is_err(), "a Secret no pod of the node references");
    assert!(decide("system:node:node-0", Verb::Watch, "").is_err());
    assert!(decide("system:node:node-0", Verb::Update, "db").is_err());
    assert!(decide("system:node:node-1", Verb::Get, "db").is_err());
    assert!(decide(rbac::SCHEDULER, Verb::Get, "db").is_err());
    assert!(decide(rbac::ADMIN, Verb::Delete, "db").is_ok());
    let error = decide(rbac::SCHEDULER, Verb::List, "").unwrap_err();
    assert_eq!(
        error.message,
        "secrets is forbidden: User \"system:kube-scheduler\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    // Other kinds are not restricted.
    assert!(rbac::authorize(rbac::SCHEDULER, Verb::List, Kind::Pod, "default", "", pods_of).is_ok());
    assert_eq!(rbac::referenced_secrets(&bound), vec!["db".to_string()]);
}

/// The Node authorizer's rule for ConfigMaps in the whole cluster: the kubelet of the node that
/// runs `needs-config` reads `settings` (and the pod starts), the other kubelet gets 403, as does
/// a list or watch by either; other components still read ConfigMaps.
#[test]
fn config_maps_are_readable_by_a_kubelet_only_for_its_own_pods() {
    let mut cluster = Cluster::build(ClusterConfig::standard(6, 2));
    for loaded in load_manifests("config.yaml", CONFIG).unwrap().objects {
        cluster.create(loaded.object);
    }
    let needs_config = load_manifests("pods.yaml", PODS).unwrap().objects.remove(1).object;
    cluster.create(needs_config);
    cluster.sim.run_until(Time::from_secs(10)).unwrap();
    let started = pod(&cluster, "needs-config");
    assert!(started.is_ready() && runs(&cluster, &started), "the pod needing the ConfigMap started on its node");
    let node = started.spec.node_name.clone().unwrap();
    let other = if node == "node-0" { "node-1" } else { "node-0" };
    let get = ApiRequest::Get { key: ObjectKey::new(Kind::ConfigMap, "default", "settings") };
    let list = ApiRequest::List { kind: Kind::ConfigMap, namespace: Some("default".into()), from: ListFrom::Quorum };
    let cases = [
        (rbac::node_user(other), get.clone(), false),
        (rbac::node_user(&node), list.clone(), false),
        (rbac::node_user(&node), get.clone(), true),
        (rbac::SCHEDULER.to_string(), get.clone(), true),
        (rbac::CONTROLLER_MANAGER.to_string(), list.clone(), true),
        (rbac::ADMIN.to_string(), get.clone(), true),
    ];
    for (user, request, allowed) in &cases {
        cluster.submit_as(user, request.clone());
        cluster.run_until_answered(cluster.sim.now() + Duration::from_secs(5)).unwrap();
        match (allowed, cluster.last_result().expect("answered")) {
            (true, Ok(_)) => {}
            (false, Err(error)) => {
                assert_eq!((error.reason, error.code()), (ApiErrorReason::Forbidden, 403), "{user}: {error}");
                assert!(error.message.contains("resource \"configmaps\""), "{error}");
                assert!(error.message.contains(&format!("User \"{user}\"")), "{error}");
            }
            (allowed, result) => panic!("{user} {}: expected allowed={allowed}, got {result:?}", request.verb()),
        }
    }
    // The kubelets hold no ConfigMap informer any more: no watch of the whole kind to be refused.
    for &id in &cluster.kubelets {
        let kubelet = cluster.sim.component::<Kubelet>(id).unwrap();
        assert!(kubelet.informers().iter().all(|informer| informer.kind != Kind::ConfigMap));
    }
}

#[test]
fn the_node_authorizer_follows_the_pods_config_map_references() {
    let pods = load_manifests("pods.yaml", PODS).unwrap().objects;
    let Object::Pod(mut bound) = pods[1].object.clone() else { panic!() };
    bound.spec.node_name = Some("node-0".into());
    let pods_of = |node: &str, _: &str| if node == "node-0" { vec![&bound] } else { Vec::new() };
    let decide = |user: &str, verb, name: &str| rbac::authorize(user, verb, Kind::ConfigMap, "default", name, pods_of);
    assert!(decide("system:node:node-0", Verb::Get, "settings").is_ok());
    assert!(decide("system:node:node-0", Verb::Get, "other").is_err(), "a ConfigMap no pod of the node references");
    assert!(decide("system:node:node-0", Verb::Watch, "").is_err());
    assert!(decide("system:node:node-0", Verb::List, "").is_err());
    assert!(decide("system:node:node-0", Verb::Update, "settings").is_err());
    assert!(decide("system:node:node-1", Verb::Get, "settings").is_err());
    // The Secret rule does not leak into ConfigMaps: other components keep reading them.
    assert!(decide(rbac::SCHEDULER, Verb::Get, "settings").is_ok());
    assert!(decide(rbac::ANONYMOUS, Verb::List, "").is_ok());
    let error = decide("system:node:node-1", Verb::Get, "settings").unwrap_err();
    assert_eq!(
        error.message,
        "configmaps \"settings\" is forbidden: User \"system:node:node-1\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    // A Secret reference is not a ConfigMap reference, and the other way round.
    assert_eq!(rbac::referenced_config_maps(&bound), vec!["settings".to_string()]);
    assert!(rbac::referenced_secrets(&bound).is_empty());
    assert!(rbac::authorize("system:node:node-0", Verb::Get, Kind::Secret, "default", "settings", pods_of).is_err());
}
