//! The load-to-metrics pipeline's pure parts (runtime CPU accounting, metrics-server's storage)
//! and the HPA controller driven by hand (a Cache built from objects, results fed back as the host
//! would), plus the HPA object as it loads from YAML.

use std::rc::Rc;
use std::time::Duration;

use kubedst_core::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{ReconcileContext, Reconciler};
use kubedst_core::controllers::HorizontalPodAutoscalerController;
use kubedst_core::manifest::load_manifests;
use kubedst_core::metrics::{MetricsStore, NodeSummary, PodMetrics, PodStats};
use kubedst_core::objects::meta::ConditionStatus;
use kubedst_core::objects::pod::PodPhase;
use kubedst_core::objects::{Condition, Kind, Millicores, Object, Pod};
use kubedst_core::runtime::{ContainerRuntime, ImageBehavior, ImageBehaviors};
use kubedst_sim::SimRng;

const S: u64 = 1_000_000_000;

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, uid: d1, resourceVersion: "5"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "web:v1", resources: {requests: {cpu: 100m}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default, uid: h1, resourceVersion: "6"}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#;

#[test]
fn served_requests_become_cumulative_cpu_use() {
    let behavior = ImageBehavior { cpu_millicores_per_request: 10, cpu_millicores_idle: 5, ..ImageBehavior::default() };
    let mut runtime = ContainerRuntime::new(ImageBehaviors::default().with("web:v1", behavior));
    let pod = &pod("p0", 0, true);
    runtime.run_pod("uid-p0", "10.0.0.5", &pod.spec, 0);
    // Pull 1 s, start 0.5 s, ready 2 s later: not serving at 2 s, so not charged.
    assert!(!runtime.serve("10.0.0.5", 2 * S));
    assert_eq!(runtime.served_requests("uid-p0"), Some(0));
    for second in 10..20 {
        assert!(runtime.serve("10.0.0.5", second * S));
    }
    // 10 requests at 10 millicore-seconds, and 5 m idle since the process started at 1.5 s.
    let usage = runtime.cpu_usage_millicore_ns("uid-p0", 21 * S).unwrap();
    assert_eq!(usage, 10 * 10 * S + 5 * (21 * S - 1_500_000_000));
    assert_eq!(runtime.served_requests("uid-p0"), Some(10));
    assert_eq!(runtime.cpu_usage_millicore_ns("nobody", 21 * S), None);
}

fn summary(node: &str, time_s: u64, pods: &[(&str, &str, u64)]) -> Rc<NodeSummary> {
    Rc::new(NodeSummary {
        node: node.into(),
        time_ns: time_s * S,
        pods: pods
            .iter()
            .map(|(name, uid, usage)| PodStats {
                namespace: "default".into(),
                name: (*name).into(),
                uid: (*uid).into(),
                cpu_usage_millicore_ns: *usage,
            })
            .collect(),
    })
}

#[test]
fn metrics_server_reports_the_rate_between_its_last_two_points() {
    let mut store = MetricsStore::default();
    store.store(&[summary("n0", 15, &[("a", "ua", 0)])]);
    assert!(store.pod_metrics("default").is_empty(), "one point is no rate");
    // 1.5 core-seconds over 15 s: 100 m.
    store.store(&[summary("n0", 30, &[("a", "ua", 1_500 * S)])]);
    assert_eq!(
        store.pod_metrics("default"),
        vec![PodMetrics {
            namespace: "default".into(),
            name: "a".into(),
            timestamp_ns: 30 * S,
            window_ns: 15 * S,
            cpu_millicores: 100
        }]
    );
    assert!(store.pod_metrics("other").is_empty());
    // The node did not answer this cycle: its pods drop out until it does, then need two points.
    store.store(&[]);
    assert!(store.is_empty());
    store.store(&[summary("n0", 60, &[("a", "ua", 4_500 * S)])]);
    assert!(store.pod_metrics("default").is_empty());
    // A counter reset (container restart) or a new pod under the same name starts over.
    store.store(&[summary("n0", 75, &[("a", "ua", 0)])]);
    assert!(store.pod_metrics("default").is_empty());
    store.store(&[summary("n0", 90, &[("a", "ub", 10 * S)])]);
    assert!(store.pod_metrics("default").is_empty());
}

fn pod(name: &str, usage_start_s: u64, ready: bool) -> Pod {
    let mut pod: Pod = match &load_manifests(
        "pod.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, uid: uid-{name}, labels: {{app: web}}}}\nspec:\n  containers:\n  - {{name: web, image: \"web:v1\", resources: {{requests: {{cpu: 100m}}}}}}\n"
        ),
    )
    .unwrap()
    .objects[0]
        .object
    {
        Object::Pod(pod) => pod.clone(),
        _ => unreachable!(),
    };
    pod.spec.node_name = Some("node-0".into());
    pod.status.phase = Some(PodPhase::Running);
    pod.status.start_time_ns = Some(usage_start_s * S);
    pod.status.conditions.push(Condition {
        condition_type: "Ready".into(),
        status: if ready { ConditionStatus::True } else { ConditionStatus::False },
        last_transition_time_ns: Some(usage_start_s * S + 3 * S),
        ..Condition::default()
    });
    pod
}

fn cache_with_pods(count: usize) -> Cache {
    let mut cache = Cache::new();
    for loaded in load_manifests("objects.yaml", OBJECTS).unwrap().objects {
        let mut object = loaded.object;
        object.apply_defaults();
        cache.upsert(Rc::new(object));
    }
    for i in 0..count {
        cache.upsert(Rc::new(Object::Pod(pod(&format!("p{i}"), 0, true))));
    }
    cache
}

fn metrics(millicores: &[u64], at_s: u64) -> ApiOk {
    ApiOk::PodMetrics(Rc::new(
        millicores
            .iter()
            .enumerate()
            .map(|(i, m)| PodMetrics {
                namespace: "default".into(),
                name: format!("p{i}"),
                timestamp_ns: at_s * S - S,
                window_ns: 15 * S,
                cpu_millicores: *m,
            })
            .collect(),
    ))
}

/// One sync at `now_s` with the metrics query answered by `answer`: the writes it made.
fn sync(
    controller: &mut HorizontalPodAutoscalerController,
    cache: &Cache,
    now_s: u64,
    answer: Result<ApiOk, ApiError>,
) -> Vec<ApiRequest> {
    let key = ObjectKey::new(Kind::HorizontalPodAutoscaler, "default", "web");
    let mut rng = SimRng::for_stream(1, "test");
    let first = controller.reconcile(&key, cache, &mut ReconcileContext { now_ns: now_s * S, rng: &mut rng });
    assert!(
        matches!(first.writes.as_slice(), [ApiRequest::ListPodMetrics { namespace }] if namespace == "default"),
        "a sync starts with the metrics query: {:?}",
        first.writes
    );
    controller.on_write_result(&key, &first.writes[0], &answer);
    let second = controller.reconcile(&key, cache, &mut ReconcileContext { now_ns: now_s * S, rng: &mut rng });
    assert_eq!(second.requeue_after, Some(Duration::from_secs(15)));
    for write in &second.writes {
        controller.on_write_result(&key, write, &Ok(ApiOk::Object(Rc::new(Object::Namespace(Default::default())))));
    }
    second.writes
}

fn scaled_to(writes: &[ApiRequest]) -> Option<i32> {
    writes.iter().find_map(|write| match write {
        ApiRequest::Update { object } => match &**object {
            Object::Deployment(deployment) => deployment.spec.replicas,
            _ => None,
        },
        _ => None,
    })
}

fn status(writes: &[ApiRequest]) -> kubedst_core::objects::policy::HorizontalPodAutoscalerStatus {
    writes
        .iter()
        .find_map(|write| match write {
            ApiRequest::UpdateStatus { object } => match &**object {
                Object::HorizontalPodAutoscaler(hpa) => Some(hpa.status.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("every sync writes the status")
}

#[test]
fn the_controller_syncs_every_fifteen_seconds_and_scales_the_deployment() {
    let mut controller = HorizontalPodAutoscalerController::new();
    let cache = cache_with_pods(2);
    let key = ObjectKey::new(Kind::HorizontalPodAutoscaler, "default", "web");
    let mut rng = SimRng::for_stream(1, "test");
    // The first sync waits one period after the HPA appears, and an event meanwhile does not
    // bring it forward.
    let early = controller.reconcile(&key, &cache, &mut ReconcileContext { now_ns: 300 * S, rng: &mut rng });
    assert!(early.writes.is_empty());
    assert_eq!(early.requeue_after, Some(Duration::from_secs(15)));
    let still = controller.reconcile(&key, &cache, &mut ReconcileContext { now_ns: 310 * S, rng: &mut rng });
    assert_eq!((still.writes.len(), still.requeue_after), (0, Some(Duration::from_secs(5))));

    // 100% of requests against 50%: ceil(2 * 2) = 4, within the +4 rate.
    let writes = sync(&mut controller, &cache, 315, Ok(metrics(&[100, 100], 315)));
    assert_eq!(scaled_to(&writes), Some(4));
    let written = status(&writes);
    assert_eq!((written.desired_replicas, written.last_scale_time_ns), (4, Some(315 * S)));
    let current = written.current_metrics[0].resource.as_ref().unwrap().current.clone();
    assert_eq!((current.average_utilization, current.average_value), (Some(100), Some(Millicores(100))));
    assert!(written
        .conditions
        .iter()
        .any(|c| c.condition_type == "ScalingActive" && c.status == ConditionStatus::True));
    assert_eq!(controller.rescales, 1);

    // The scale landed; 15 s later the load is gone, but the window holds the recommendation of 4.
    let mut cache = cache;
    let scaled = match &**cache.get(&ObjectKey::new(Kind::Deployment, "default", "web")).unwrap() {
        Object::Deployment(deployment) => {
            let mut deployment = deployment.clone();
            deployment.spec.replicas = Some(4);
            deployment
        }
        _ => unreachable!(),
    };
    cache.upsert(Rc::new(Object::Deployment(scaled)));
    let writes = sync(&mut controller, &cache, 330, Ok(metrics(&[10, 10], 330)));
    assert_eq!(scaled_to(&writes), None, "the stabilization window keeps the highest recommendation");
    assert_eq!(status(&writes).desired_replicas, 4);

    // A failed metrics query changes nothing and says why.
    let unavailable = ApiError::new(ApiErrorReason::ServiceUnavailable, "metrics-server did not answer");
    let writes = sync(&mut controller, &cache, 345, Err(unavailable));
    assert_eq!(scaled_to(&writes), None);
    let written = status(&writes);
    let active = written.conditions.iter().find(|c| c.condition_type == "ScalingActive").unwrap();
    assert_eq!((active.status, active.reason.as_deref()), (ConditionStatus::False, Some("FailedGetResourceMetric")));
    assert_eq!(controller.metric_failures, 1);
}

#[test]
fn a_fresh_controller_does_not_scale_down_for_one_window() {
    let mut controller = HorizontalPodAutoscalerController::new();
    let mut cache = cache_with_pods(4);
    // The Deployment runs 4 but needs 2 (10% of requests): the first window holds the 4.
    let mut deployment = match &**cache.get(&ObjectKey::new(Kind::Deployment, "default", "web")).unwrap() {
        Object::Deployment(deployment) => deployment.clone(),
        _ => unreachable!(),
    };
    deployment.spec.replicas = Some(4);
    cache.upsert(Rc::new(Object::Deployment(deployment)));
    let key = ObjectKey::new(Kind::HorizontalPodAutoscaler, "default", "web");
    let mut rng = SimRng::for_stream(1, "test");
    controller.reconcile(&key, &cache, &mut ReconcileContext { now_ns: 0, rng: &mut rng });
    let mut first_scale_down = None;
    for step in 1..=30 {
        let now_s = 15 * step;
        let writes = sync(&mut controller, &cache, now_s, Ok(metrics(&[10, 10, 10, 10], now_s)));
        if now_s == 15 {
            // The pods started at 0 and became ready at 3 s: within the CPU initialization
            // period a sample whose 15 s window began before that is not used, so no metric counts.
            let active = status(&writes).conditions.into_iter().find(|c| c.condition_type == "ScalingActive").unwrap();
            assert!(active.message.unwrap().contains("pods might be unready"));
        }
        if let Some(replicas) = scaled_to(&writes) {
            assert_eq!(replicas, 2, "down to the minimum at once (-100% per 15 s)");
            first_scale_down = Some(now_s);
            break;
        }
    }
    // Initialized at the first sync with metrics (30 s) with the current 4; that record leaves the
    // window strictly after 300 s: at the sync at 330 s.
    assert_eq!(first_scale_down, Some(330));
}

#[test]
fn the_hpa_loads_from_yaml_with_autoscaling_v2_defaults() {
    let text = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: AverageValue, averageValue: 250m}}
  behavior:
    scaleUp:
      policies: [{type: Pods, value: 1, periodSeconds: 60}]
      selectPolicy: Min
"#;
    let loaded = load_manifests("hpa.yaml", text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut object = loaded.objects[0].object.clone();
    object.apply_defaults();
    object.validate().unwrap();
    let Object::HorizontalPodAutoscaler(hpa) = object else { panic!("not an HPA") };
    assert_eq!(hpa.spec.min_replicas, Some(1));
    assert_eq!(hpa.spec.metrics[0].resource.as_ref().unwrap().target.average_value, Some(Millicores(250)));
    let behavior = hpa.spec.behavior.unwrap();
    let up = behavior.scale_up.unwrap();
    assert_eq!((up.policies.len(), up.select_policy.as_deref()), (1, Some("Min")));
    let down = behavior.scale_down.unwrap();
    assert_eq!((down.stabilization_window_seconds, down.policies.len()), (Some(300), 1));

    let bad = text.replace("value: 1,", "value: 0,").replace("AverageValue, averageValue: 250m", "Value");
    let error = load_manifests("hpa.yaml", &bad).unwrap_err();
    let errors: Vec<String> = error.diagnostics.iter().map(|d| format!("{:?} {}", d.path, d.message)).collect();
    assert!(errors.iter().any(|e| e.contains("target.type")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("policies[0].value")), "{errors:?}");
}
