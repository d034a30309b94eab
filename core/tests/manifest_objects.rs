//! Defaults and validation of the object model, on objects loaded from small manifests.

use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::pod::{Protocol, RestartPolicy};
use kubedst_core::objects::workloads::DeploymentStrategyType;
use kubedst_core::objects::{IntOrString, Object, ValidationErrorKind};

fn load_one(text: &str) -> Object {
    let mut loaded = load_manifests("test.yaml", text).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(loaded.objects.len(), 1);
    loaded.objects.remove(0).object
}

const MINIMAL_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        - name: web\n          image: nginx\n          ports: [{containerPort: 80}]\n          readinessProbe: {httpGet: {port: 80}}\n";

#[test]
fn deployment_defaults_match_kubernetes() {
    let mut object = load_one(MINIMAL_DEPLOYMENT);
    object.apply_defaults();
    let Object::Deployment(deployment) = object else { panic!("not a Deployment") };
    let spec = &deployment.spec;
    assert_eq!(
        (spec.replicas, spec.revision_history_limit, spec.progress_deadline_seconds, spec.min_ready_seconds),
        (Some(1), Some(10), Some(600), Some(0))
    );
    let strategy = spec.strategy.as_ref().expect("strategy defaulted");
    assert_eq!(strategy.strategy_type, DeploymentStrategyType::RollingUpdate);
    let rolling = strategy.rolling_update.as_ref().expect("rollingUpdate defaulted");
    assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
    assert_eq!(rolling.max_unavailable, Some(IntOrString::String("25%".into())));
    let pod = &spec.template.spec;
    assert_eq!((pod.restart_policy, pod.termination_grace_period_seconds), (Some(RestartPolicy::Always), Some(30)));
    let probe = pod.containers[0].readiness_probe.as_ref().expect("probe");
    assert_eq!(
        (probe.period_seconds, probe.timeout_seconds, probe.success_threshold, probe.failure_threshold),
        (Some(10), Some(1), Some(1), Some(3))
    );
    assert_eq!(pod.containers[0].ports[0].protocol, Some(Protocol::Tcp));
}

#[test]
fn defaults_keep_what_the_manifest_set_and_recreate_gets_no_rolling_update() {
    let text = MINIMAL_DEPLOYMENT
        .replace("spec:\n  selector", "spec:\n  replicas: 0\n  strategy: {type: Recreate}\n  selector");
    let mut object = load_one(&text);
    object.apply_defaults();
    let Object::Deployment(deployment) = object else { panic!("not a Deployment") };
    assert_eq!(deployment.spec.replicas, Some(0));
    assert_eq!(deployment.spec.strategy.and_then(|s| s.rolling_update), None);
}

#[test]
fn job_service_and_autoscaler_defaults() {
    let mut job = load_one("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: a, image: b}]\n");
    job.apply_defaults();
    let Object::Job(job) = job else { panic!() };
    assert_eq!((job.spec.completions, job.spec.parallelism, job.spec.backoff_limit), (Some(1), Some(1), Some(6)));
    assert_eq!(job.spec.template.spec.restart_policy, Some(RestartPolicy::Never));

    let mut service = load_one("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, name: http}, {port: 443, name: https, targetPort: 8443}]\n");
    service.apply_defaults();
    let Object::Service(service) = service else { panic!() };
    assert_eq!(service.spec.service_type, Some(kubedst_core::objects::networking::ServiceType::ClusterIP));
    assert_eq!(service.spec.ports[0].target_port, Some(IntOrString::Int(80)));
    assert_eq!(service.spec.ports[1].target_port, Some(IntOrString::Int(8443)));
    assert_eq!(service.spec.ports[1].protocol, Some(Protocol::Tcp));

    let mut autoscaler = load_one("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  maxReplicas: 4\n");
    autoscaler.apply_defaults();
    let Object::HorizontalPodAutoscaler(autoscaler) = autoscaler else { panic!() };
    assert_eq!(autoscaler.spec.min_replicas, Some(1));
    let window = autoscaler.spec.behavior.and_then(|b| b.scale_down).and_then(|s| s.stabilization_window_seconds);
    assert_eq!(window, Some(300));
}

#[test]
fn validation_reports_structured_errors() {
    let mut object = load_one(MINIMAL_DEPLOYMENT);
    let Object::Deployment(deployment) = &mut object else { panic!() };
    deployment.spec.replicas = Some(-1);
    deployment.spec.template.spec.containers.push(deployment.spec.template.spec.containers[0].clone());
    deployment.spec.template.metadata.labels.clear();
    let errors = object.validate().expect_err("invalid");
    let summary: Vec<(String, ValidationErrorKind)> = errors.iter().map(|e| (e.path.clone(), e.kind)).collect();
    assert_eq!(
        summary,
        [
            ("spec.replicas".to_string(), ValidationErrorKind::Invalid),
            ("spec.template.metadata.labels".to_string(), ValidationErrorKind::Invalid),
            ("spec.template.spec.containers[1].name".to_string(), ValidationErrorKind::Duplicate),
        ]
    );
}

#[test]
fn pdb_needs_exactly_one_budget_and_hpa_bounds_are_ordered() {
    let both = load_manifests("pdb.yaml", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {minAvailable: 1, maxUnavailable: 1}\n").expect_err("both set");
    assert_eq!(
        both.to_string(),
        "pdb.yaml:4:7: spec: Invalid value: minAvailable and maxUnavailable cannot be both set"
    );
    let bounds = load_manifests("hpa.yaml", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  minReplicas: 5\n  maxReplicas: 2\n").expect_err("max below min");
    assert_eq!(bounds.to_string(), "hpa.yaml:7:16: spec.maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5) and at least 1");
}
