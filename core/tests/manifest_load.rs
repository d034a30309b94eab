//! The manifest loader on real-world-style manifests, bad inputs and arbitrary text.

use kubedst_core::manifest::{load_manifests, LoadedManifests};
use kubedst_core::objects::pod::{ProbeHandlerKind, RestartPolicy, TaintEffect, TolerationOperator};
use kubedst_core::objects::workloads::DeploymentStrategyType;
use kubedst_core::objects::{Bytes, IntOrString, Kind, Millicores, Object};
use proptest::prelude::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/data/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn load_ok(name: &str) -> LoadedManifests {
    load_manifests(name, &fixture(name)).unwrap_or_else(|error| panic!("{name} should load:\n{error}"))
}

#[test]
fn full_deployment_and_service_load_with_their_values() {
    let loaded = load_ok("web.yaml");
    assert_eq!(loaded.warnings, []);
    let kinds: Vec<Kind> = loaded.objects.iter().map(|o| o.object.kind()).collect();
    assert_eq!(kinds, [Kind::Deployment, Kind::Service]);
    assert_eq!((loaded.objects[0].location.line, loaded.objects[1].location.line), (2, 107));

    let Object::Deployment(deployment) = &loaded.objects[0].object else { panic!("not a Deployment") };
    assert_eq!(deployment.metadata.namespace.as_deref(), Some("shop"));
    let spec = &deployment.spec;
    assert_eq!(
        (spec.replicas, spec.revision_history_limit, spec.min_ready_seconds, spec.progress_deadline_seconds),
        (Some(3), Some(5), Some(5), Some(120))
    );
    assert_eq!(spec.selector.match_expressions[0].values, ["canary"]);
    let strategy = spec.strategy.as_ref().expect("strategy");
    assert_eq!(strategy.strategy_type, DeploymentStrategyType::RollingUpdate);
    let rolling = strategy.rolling_update.as_ref().expect("rollingUpdate");
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(rolling.max_unavailable, Some(IntOrString::String("25%".into())));

    let pod = &spec.template.spec;
    assert_eq!(pod.termination_grace_period_seconds, Some(45));
    assert_eq!(pod.node_selector.get("topology.kubernetes.io/zone").map(String::as_str), Some("zone-a"));
    assert_eq!(pod.tolerations[1].operator, Some(TolerationOperator::Exists));
    assert_eq!(pod.tolerations[1].effect, Some(TaintEffect::NoExecute));
    assert_eq!(pod.tolerations[1].toleration_seconds, Some(60));
    let web = &pod.containers[0];
    assert_eq!(web.resources.requests.cpu, Some(Millicores(250)));
    assert_eq!(web.resources.requests.memory, Some(Bytes(128 * 1024 * 1024)));
    assert_eq!(web.resources.limits.cpu, Some(Millicores(1000)));
    assert_eq!(web.resources.limits.memory, Some(Bytes(1 << 30)));
    assert_eq!(
        web.env[1].value_from.as_ref().and_then(|s| s.config_map_key_ref.as_ref()).map(|r| r.key.as_str()),
        Some("db-host")
    );
    assert_eq!(
        web.env[2].value_from.as_ref().and_then(|s| s.secret_key_ref.as_ref()).map(|r| r.name.as_str()),
        Some("web-secret")
    );
    assert_eq!(web.env_from[0].config_map_ref.as_ref().map(|r| r.name.as_str()), Some("web-config"));
    let readiness = web.readiness_probe.as_ref().expect("readiness probe");
    assert_eq!(readiness.handler_kind(), Some(ProbeHandlerKind::HttpGet));
    assert_eq!(
        (readiness.initial_delay_seconds, readiness.period_seconds, readiness.failure_threshold),
        (Some(5), Some(2), Some(2))
    );
    assert_eq!(web.liveness_probe.as_ref().and_then(|p| p.handler_kind()), Some(ProbeHandlerKind::TcpSocket));
    let sidecar = &pod.containers[1];
    assert_eq!(sidecar.resources.requests.cpu, Some(Millicores(100)), "cpu: 0.1 as a YAML float");
    assert_eq!(sidecar.resources.requests.memory, Some(Bytes(64_000_000)));
    assert_eq!(sidecar.readiness_probe.as_ref().and_then(|p| p.handler_kind()), Some(ProbeHandlerKind::Exec));
    assert_eq!(pod.volumes[1].secret.as_ref().map(|s| s.secret_name.as_str()), Some("web-secret"));

    let Object::Service(service) = &loaded.objects[1].object else { panic!("not a Service") };
    assert_eq!(service.spec.ports[0].target_port, Some(IntOrString::String("http".into())));
    assert_eq!(service.spec.ports[1].target_port, None, "defaults are the API server's job");
    assert_eq!(service.spec.selector.get("app").map(String::as_str), Some("web"));
}

#[test]
fn multi_document_file_loads_every_kind_and_skips_empty_documents() {
    let loaded = load_ok("all-kinds.yaml");
    assert_eq!(loaded.warnings, []);
    let kinds: Vec<&str> = loaded.objects.iter().map(|o| o.object.kind().as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ConfigMap",
            "Secret",
            "Pod",
            "ReplicaSet",
            "EndpointSlice",
            "Node",
            "Lease",
            "Job",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler"
        ]
    );
    for loaded_object in &loaded.objects {
        let object = &loaded_object.object;
        assert_eq!(object.api_version(), object.kind().api_version());
    }
    let find = |kind: Kind| &loaded.objects.iter().find(|o| o.object.kind() == kind).expect("kind present").object;
    let Object::Pod(pod) = find(Kind::Pod) else { unreachable!() };
    assert_eq!(pod.spec.restart_policy, Some(RestartPolicy::Never));
    assert!(pod.is_ready());
    assert_eq!(pod.status.container_statuses[0].restart_count, 2);
    assert!(pod.status.container_statuses[0].state.running.is_some());
    assert_eq!(pod.status.pod_ip.as_deref(), Some("10.1.0.5"));
    let Object::ReplicaSet(replica_set) = find(Kind::ReplicaSet) else { unreachable!() };
    let owner = replica_set.metadata.controller_ref().expect("controller ref");
    assert_eq!((owner.uid.as_str(), owner.block_owner_deletion), ("0b6c-1", Some(true)));
    let Object::Node(node) = find(Kind::Node) else { unreachable!() };
    assert_eq!(node.zone(), Some("zone-a"));
    assert_eq!(node.status.allocatable.cpu, Some(Millicores(3800)));
    assert_eq!(node.status.capacity.memory, Some(Bytes(16 << 30)));
    assert_eq!(node.status.capacity.pods, Some(Bytes(110)));
    let Object::Job(job) = find(Kind::Job) else { unreachable!() };
    assert_eq!((job.spec.completions, job.spec.parallelism, job.spec.backoff_limit), (Some(5), Some(2), Some(3)));
    let Object::PodDisruptionBudget(budget) = find(Kind::PodDisruptionBudget) else { unreachable!() };
    assert_eq!(budget.spec.max_unavailable, Some(IntOrString::String("25%".into())));
    let Object::HorizontalPodAutoscaler(autoscaler) = find(Kind::HorizontalPodAutoscaler) else { unreachable!() };
    assert_eq!((autoscaler.spec.min_replicas, autoscaler.spec.max_replicas), (Some(2), 10));
    assert_eq!(autoscaler.spec.metrics[0].resource.as_ref().and_then(|r| r.target.average_utilization), Some(70));
    assert_eq!(
        autoscaler
            .spec
            .behavior
            .as_ref()
            .and_then(|b| b.scale_down.as_ref())
            .and_then(|s| s.stabilization_window_seconds),
        Some(120)
    );
    let Object::EndpointSlice(slice) = find(Kind::EndpointSlice) else { unreachable!() };
    assert_eq!(slice.endpoints[0].conditions.ready, Some(true));
    assert_eq!(slice.endpoints[0].target_ref.as_ref().and_then(|r| r.name.as_deref()), Some("web-5d4f-x"));
    let Object::Lease(lease) = find(Kind::Lease) else { unreachable!() };
    assert_eq!(lease.spec.lease_duration_seconds, Some(40));
}

#[test]
fn unsimulated_fields_are_warnings_with_their_location() {
    let loaded = load_ok("unsimulated.yaml");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(warnings.join("\n"), @r"
    unsimulated.yaml:14:7: warning: spec.template.metadata.creationTimestamp is not simulated and is ignored (times in the simulation are virtual)
    unsimulated.yaml:16:7: warning: spec.template.spec.affinity is not simulated and is ignored
    unsimulated.yaml:21:11: warning: spec.template.spec.containers[0].imagePullPolicy is not simulated and is ignored
    unsimulated.yaml:24:15: warning: spec.template.spec.containers[0].resources.requests.ephemeral-storage is not simulated and is ignored
    ");
    assert_eq!(loaded.objects.len(), 1, "warnings do not stop the object from loading");
}

/// Each bad input, as a file label and text, and the errors it produces, pinned in one snapshot.
fn errors_of(cases: &[(&str, &str)]) -> String {
    cases
        .iter()
        .map(|(label, text)| match load_manifests(label, text) {
            Ok(loaded) => format!("{label}: unexpectedly loaded {} objects", loaded.objects.len()),
            Err(error) => error.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const DEPLOYMENT_HEAD: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

fn deployment(spec: &str) -> String {
    format!("{DEPLOYMENT_HEAD}spec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: nginx\n{spec}")
}

#[test]
fn bad_inputs_are_errors_with_file_line_column_and_path() {
    let wrong_type = format!("{DEPLOYMENT_HEAD}spec:\n  replicas: three\n");
    let bad_quantity = deployment("          resources:\n            requests:\n              memory: 12Mb\n");
    let bad_surge_type = deployment("  strategy:\n    rollingUpdate:\n      maxSurge: [1]\n");
    let bad_surge_text = deployment("  strategy:\n    rollingUpdate:\n      maxSurge: lots\n");
    let zero_zero = deployment("  strategy:\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 0%\n");
    let negative_replicas = deployment("  replicas: -2\n");
    let duplicate_container = deployment("        - name: web\n          image: nginx\n");
    let unknown_enum = deployment("  strategy:\n    type: BlueGreen\n");
    let cases: Vec<(&str, &str)> = vec![
        ("wrong-type.yaml", &wrong_type),
        ("bad-quantity.yaml", &bad_quantity),
        ("missing-kind.yaml", "apiVersion: v1\nmetadata:\n  name: x\n"),
        ("unknown-kind.yaml", "apiVersion: example.com/v1\nkind: Widget\n"),
        ("old-api.yaml", "apiVersion: extensions/v1beta1\nkind: Deployment\n"),
        ("indentation.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   labels: {}\n"),
        ("unclosed.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: {a: 1\n"),
        ("bad-int-or-string.yaml", &bad_surge_type),
        ("bad-percent.yaml", &bad_surge_text),
        ("zero-surge.yaml", &zero_zero),
        ("negative-replicas.yaml", &negative_replicas),
        ("invalid-name.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Web_Config\n"),
        ("service-name.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web.shop\nspec:\n  ports:\n    - port: 70000\n"),
        ("duplicate-container.yaml", &duplicate_container),
        ("unknown-enum.yaml", &unknown_enum),
        ("not-a-mapping.yaml", "- apiVersion: v1\n  kind: Pod\n"),
        ("selector-mismatch.yaml", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      containers: [{name: db, image: postgres}]\n"),
        ("job-restart.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b}]\n"),
        ("second-document.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [not, a, string]\n"),
    ];
    insta::assert_snapshot!(errors_of(&cases));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in any::<String>()) {
        let _ = load_manifests("fuzz.yaml", &text);
    }

    #[test]
    fn yaml_like_text_never_panics_the_loader(text in "(apiVersion: (v1|apps/v1)\n|kind: (Pod|Deployment|Service)\n|metadata:\n|  name: [a-z-]{0,5}\n|spec:\n|  replicas: [-0-9a-z]{0,3}\n|---\n|  - [a-z: \\[\\]{}]{0,6}\n| {0,4}[a-zA-Z]{1,8}: [0-9a-zA-Z%.\"]{0,6}\n){0,14}") {
        let _ = load_manifests("fuzz.yaml", &text);
    }
}

#[test]
fn unsimulated_volume_sources_are_warnings_and_the_pod_still_loads() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: db}\nspec:\n  containers:\n    - name: db\n      image: postgres\n      volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /tmp}]\n  volumes:\n    - name: data\n      persistentVolumeClaim: {claimName: db-data}\n    - name: scratch\n";
    let loaded = load_manifests("db.yaml", text).unwrap_or_else(|error| panic!("the pod loads:\n{error}"));
    assert_eq!(loaded.objects.len(), 1);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["db.yaml:11:7: warning: spec.volumes[0].persistentVolumeClaim is not simulated and is ignored"]
    );
}

#[test]
fn a_volume_with_two_simulated_sources_is_an_error() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: both}\nspec:\n  containers: [{name: c, image: app}]\n  volumes:\n    - name: config\n      configMap: {name: a}\n      secret: {secretName: b}\n";
    let error = load_manifests("both.yaml", text)
        .map(|loaded| loaded.objects.len())
        .expect_err("two sources are refused")
        .to_string();
    assert!(
        error.contains("spec.volumes[0].secret") && error.contains("may not specify more than 1 volume type"),
        "{error}"
    );
}
