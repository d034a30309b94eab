//! A complete library-mode example: a custom kind `App` (`example.kubedst.dev/v1`), the operator
//! that runs it, the promise it makes, and how to test it under faults.
//!
//! An App says "run `replicas` copies of `image`, serving on `port`". Its operator owns a
//! Deployment and a Service of the App's name (with controlling ownerReferences, so deleting the
//! App deletes them through the garbage collector), keeps them matching the spec, and reports in
//! the App's status how many replicas are ready. The promise ([`AppsReady`]): once faults heal,
//! every App's status reports `readyReplicas == spec.replicas` for its current generation, and the
//! objects it owns exist and are ready.
//!
//! The operator is a [`Reconciler`]: sans-IO, its reads come from an informer cache that may be
//! stale, and its writes are data that the host sends. A write can fail with 409 Conflict (the
//! cached App is older than the stored one) or time out with an unknown outcome; the host then
//! requeues the key with per-key backoff and the next reconcile starts again from the cache, which
//! by then holds the newer object. Writes are always conditional on the cached resourceVersion,
//! as custom resources require.
//!
//! [`Bug`] switches on a deliberately wrong variant for the negative control in the tests.
//!
//! For fuzzing, [`run_app_from_bytes`] runs one input and panics on any violated invariant.

use kubedst_core::api::{namespace_of, ApiError, ApiOk, ApiRequest, ObjectKey};
use kubedst_core::cache::{Cache, CacheEvent};
use kubedst_core::cluster::Cluster;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::harness::{EventualPromise, RunReport, Verdict};
use kubedst_core::objects::{CustomKind, CustomObject, Deployment, Kind, Object, ObjectMeta, OwnerReference, Service};
use kubedst_scenarios::library::{describe_failure, Simulation};
use kubedst_scenarios::ScenarioError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;

/// The custom kind.
pub const APP: CustomKind = CustomKind::namespaced("example.kubedst.dev/v1", "App", "apps");

/// The kind as the cache and the API name it.
pub const APP_KIND: Kind = Kind::Custom(APP);

/// The operator's controller name (its component and lease).
pub const OPERATOR: &str = "app-operator";

/// The image the example's App runs (so that the container-fault class can fail its pulls).
pub const IMAGE: &str = "shop:v1";

/// How soon an App that is not ready yet is looked at again, in case no event comes.
pub const NOT_READY_POLL: Duration = Duration::from_secs(5);

/// An App's desired state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    pub replicas: i32,
    pub image: String,
    pub port: i32,
}

/// An App's observed state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppStatus {
    /// The generation this status describes.
    pub observed_generation: i64,
    /// Replicas asked of the Deployment.
    pub replicas: i32,
    /// Replicas the Deployment reports ready.
    pub ready_replicas: i32,
}

/// Deliberate bugs, for negative controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Writes the status without a resourceVersion ("last write wins"), as if conflicts could not
    /// happen. Custom resources refuse such updates (422), so the status never arrives.
    UnconditionalStatus,
}

/// The App operator.
#[derive(Debug, Default)]
pub struct AppController {
    bug: Option<Bug>,
    /// Writes that came back 409 Conflict (each one was retried by a requeue).
    pub conflicts: u64,
    /// Writes whose outcome is unknown (timeouts).
    pub unknown_outcomes: u64,
}

impl AppController {
    /// The correct operator.
    pub fn new() -> AppController {
        AppController::default()
    }

    /// The operator with `bug`.
    pub fn with_bug(bug: Bug) -> AppController {
        AppController { bug: Some(bug), ..AppController::default() }
    }
}

/// The labels of an App's pods.
fn pod_labels(name: &str) -> serde_json::Value {
    json!({"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": OPERATOR})
}

fn owner_reference(app: &CustomObject) -> OwnerReference {
    OwnerReference {
        api_version: APP.api_version.to_string(),
        kind: APP.kind.to_string(),
        name: app.metadata.name.clone(),
        uid: app.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Deployment an App asks for.
pub fn desired_deployment(app: &CustomObject, spec: &AppSpec) -> Result<Deployment, String> {
    let name = &app.metadata.name;
    let mut deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace_of(&Object::Custom(app.clone()))},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": pod_labels(name)},
            "template": {
                "metadata": {"labels": pod_labels(name)},
                "spec": {"containers": [{
                    "name": "app",
                    "image": spec.image,
                    "ports": [{"containerPort": spec.port}],
                }]},
            },
        },
    }))
    .map_err(|error| format!("the Deployment of App {name}: {error}"))?;
    deployment.metadata.owner_references = vec![owner_reference(app)];
    Ok(deployment)
}

/// The Service an App asks for.
pub fn desired_service(app: &CustomObject, spec: &AppSpec) -> Result<Service, String> {
    let name = &app.metadata.name;
    let mut service: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace_of(&Object::Custom(app.clone()))},
        "spec": {
            "selector": pod_labels(name),
            "ports": [{"port": 80, "targetPort": spec.port}],
        },
    }))
    .map_err(|error| format!("the Service of App {name}: {error}"))?;
    service.metadata.owner_references = vec![owner_reference(app)];
    Ok(service)
}

/// Whether the object with `meta` is controlled by the App with `uid`.
fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.controller_ref().is_some_and(|owner| owner.uid == uid)
}

impl Reconciler for AppController {
    fn name(&self) -> &'static str {
        OPERATOR
    }

    fn watches(&self) -> Vec<Kind> {
        vec![APP_KIND, Kind::Deployment, Kind::Service]
    }

    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        if object.kind() == APP_KIND {
            return vec![ObjectKey::of(object)];
        }
        // A change of an owned object: reconcile its App.
        match object.meta().controller_ref() {
            Some(owner) if owner.kind == APP.kind && owner.api_version == APP.api_version => {
                vec![ObjectKey::new(APP_KIND, &namespace_of(object), &owner.name)]
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        // Gone or going: the garbage collector removes what the App owned.
        let Some(object) = cache.get(key) else { return Reconcile::done() };
        let Object::Custom(app) = &**object else { return Reconcile::done() };
        if app.metadata.is_terminating() {
            return Reconcile::done();
        }
        // A spec that does not parse is the user's mistake; nothing to do until it is fixed.
        let Ok(spec) = app.spec_as::<AppSpec>() else { return Reconcile::done() };
        let uid = app.metadata.uid.clone().unwrap_or_default();
        let (Ok(deployment), Ok(service)) = (desired_deployment(app, &spec), desired_service(app, &spec)) else {
            return Reconcile::done();
        };
        let mut writes = Vec::new();

        let deployment_key = ObjectKey::new(Kind::Deployment, &key.namespace, &key.name);
        let current_deployment = cache.get(&deployment_key);
        match current_deployment.map(|object| &**object) {
            None => writes.push(ApiRequest::Create { object: Rc::new(Object::Deployment(deployment.clone())) }),
            Some(Object::Deployment(current)) if controlled_by(&current.metadata, &uid) => {
                if current.spec.replicas != deployment.spec.replicas
                    || current.spec.template.spec.containers != deployment.spec.template.spec.containers
                {
                    // A conditional update: the cached resourceVersion stays on the object.
                    let mut updated = current.clone();
                    updated.spec.replicas = deployment.spec.replicas;
                    updated.spec.template.spec.containers = deployment.spec.template.spec.containers.clone();
                    writes.push(ApiRequest::Update { object: Rc::new(Object::Deployment(updated)) });
                }
            }
            // Someone else's Deployment of that name: never adopt it.
            Some(_) => {}
        }

        let service_key = ObjectKey::new(Kind::Service, &key.namespace, &key.name);
        match cache.get(&service_key).map(|object| &**object) {
            None => writes.push(ApiRequest::Create { object: Rc::new(Object::Service(service)) }),
            Some(Object::Service(current)) if controlled_by(&current.metadata, &uid) => {
                if current.spec.selector != service.spec.selector || current.spec.ports != service.spec.ports {
                    let mut updated = current.clone();
                    updated.spec.selector = service.spec.selector.clone();
                    updated.spec.ports = service.spec.ports.clone();
                    writes.push(ApiRequest::Update { object: Rc::new(Object::Service(updated)) });
                }
            }
            Some(_) => {}
        }

        let ready_replicas = match current_deployment.map(|object| &**object) {
            Some(Object::Deployment(current)) if controlled_by(&current.metadata, &uid) => {
                // Ready replicas of the current spec only: a Deployment that has not yet seen
                // the latest change reports on the old one.
                let observed = current.status.observed_generation >= current.metadata.generation;
                if observed && current.spec.replicas == deployment.spec.replicas {
                    current.status.ready_replicas
                } else {
                    0
                }
            }
            _ => 0,
        };
        let status = AppStatus {
            observed_generation: app.metadata.generation.unwrap_or(0),
            replicas: spec.replicas,
            ready_replicas,
        };
        if app.status_as::<AppStatus>().ok().as_ref() != Some(&status) {
            let mut updated = app.clone();
            if updated.set_status(&status).is_ok() {
                if self.bug == Some(Bug::UnconditionalStatus) {
                    updated.metadata.resource_version = None;
                }
                writes.push(ApiRequest::UpdateStatus { object: Rc::new(Object::Custom(updated)) });
            }
        }
        let decision = Reconcile { writes, ..Reconcile::default() };
        if ready_replicas < spec.replicas {
            decision.requeue_after(NOT_READY_POLL)
        } else {
            decision
        }
    }

    fn on_write_result(&mut self, _key: &ObjectKey, _request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        // The host already requeues the key with backoff on any failure; the counters show
        // that the failure paths ran.
        if let Err(error) = result {
            if error.is_conflict() {
                self.conflicts += 1;
            } else if error.is_outcome_unknown() {
                self.unknown_outcomes += 1;
            }
        }
    }
}

/// The promise: every App reports all its replicas ready for its current generation, and the
/// Deployment and Service it controls exist (the Deployment with that many ready replicas).
#[derive(Clone, Copy, Debug, Default)]
pub struct AppsReady;

impl EventualPromise for AppsReady {
    fn name(&self) -> &'static str {
        "app-ready"
    }

    fn unmet(&self, cluster: &Cluster) -> Vec<String> {
        let mut unmet = Vec::new();
        for object in cluster.stored_all(APP_KIND) {
            let Object::Custom(app) = &*object else { continue };
            let name = format!("{}/{}", namespace_of(&object), app.metadata.name);
            let Ok(spec) = app.spec_as::<AppSpec>() else {
                unmet.push(format!("App {name}: its spec does not parse"));
                continue;
            };
            let uid = app.metadata.uid.clone().unwrap_or_default();
            let status = app.status_as::<AppStatus>().unwrap_or_default();
            let generation = app.metadata.generation.unwrap_or(0);
            if status.observed_generation != generation || status.ready_replicas != spec.replicas {
                unmet.push(format!(
                    "App {name}: status reports {} of {} replicas ready for generation {} (current generation {generation})",
                    status.ready_replicas, spec.replicas, status.observed_generation
                ));
            }
            let namespace = namespace_of(&object);
            let deployment = cluster.stored(&ObjectKey::new(Kind::Deployment, &namespace, &app.metadata.name));
            match deployment.as_deref() {
                Some(Object::Deployment(deployment)) if controlled_by(&deployment.metadata, &uid) => {
                    if deployment.status.ready_replicas != spec.replicas {
                        unmet.push(format!(
                            "App {name}: its Deployment has {} of {} replicas ready",
                            deployment.status.ready_replicas, spec.replicas
                        ));
                    }
                }
                _ => unmet.push(format!("App {name}: no Deployment controlled by it")),
            }
            let service = cluster.stored(&ObjectKey::new(Kind::Service, &namespace, &app.metadata.name));
            if !service.as_deref().is_some_and(|service| controlled_by(service.meta(), &uid)) {
                unmet.push(format!("App {name}: no Service controlled by it"));
            }
        }
        unmet
    }
}

/// The example's scenario: three nodes; an App of 3 replicas created at the start and scaled to
/// 4 at 20 s (a spec change racing the operator's status writes); faults come from the caller.
pub const SCENARIO: &str = r#"name: app-operator
description: An App (example.kubedst.dev/v1) of 3 replicas, scaled to 4 at 20s; its operator owns a Deployment and a Service.
cluster:
  nodes:
    - count: 3
      cpu: 4
      memory: 16Gi
workload: |
  apiVersion: example.kubedst.dev/v1
  kind: App
  metadata: {name: shop}
  spec: {replicas: 3, image: "shop:v1", port: 8080}
timeline:
  - at: 20s
    apply: |
      apiVersion: example.kubedst.dev/v1
      kind: App
      metadata: {name: shop}
      spec: {replicas: 4, image: "shop:v1", port: 8080}
faults: none
fault_phase: 40s
liveness_bound: 90s
"#;

/// The example's simulation with the operator as given by `factory`.
pub fn simulation_with(
    factory: impl Fn() -> AppController + Send + Sync + 'static,
) -> Result<Simulation, ScenarioError> {
    Ok(Simulation::from_text("app-operator.yaml", SCENARIO, &[APP])?
        .with_controller(OPERATOR, move || vec![Box::new(factory()) as Box<dyn Reconciler>])?
        .with_promise(|| Box::new(AppsReady))
        .with_images(&[IMAGE]))
}

/// The example's simulation with the correct operator.
pub fn simulation() -> Simulation {
    simulation_with(AppController::new).expect("the example's scenario is valid")
}

/// The fuzz entry: decodes a seed, a fault class and its faults from `data` (any bytes are a
/// valid input), runs the example, and returns the report, or the failure in words.
pub fn check_app_from_bytes(data: &[u8]) -> Result<RunReport, String> {
    let (_, report) = simulation().run_from_bytes(data).map_err(|error| error.to_string())?;
    match report.verdict {
        Verdict::Pass => Ok(report),
        Verdict::Fail => Err(describe_failure(&report)),
    }
}

/// [`check_app_from_bytes`] for a cargo-fuzz target: panics when an invariant or the App's
/// promise is violated.
pub fn run_app_from_bytes(data: &[u8]) {
    if let Err(failure) = check_app_from_bytes(data) {
        panic!("{failure}");
    }
}
