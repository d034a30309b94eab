//! The EndpointSlice controller on a hand-built cache.

use std::rc::Rc;

use kubedst_core::api::{ApiRequest, ObjectKey};
use kubedst_core::cache::Cache;
use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
use kubedst_core::controllers::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use kubedst_core::controllers::EndpointSliceController;
use kubedst_core::objects::meta::IntOrString;
use kubedst_core::objects::networking::{EndpointConditions, EndpointPort, ServicePort, ServiceSpec};
use kubedst_core::objects::pod::{Container, ContainerPort, PodPhase, PodStatus, Protocol};
use kubedst_core::objects::{
    Condition, ConditionStatus, EndpointSlice, Kind, Object, ObjectMeta, Pod, PodSpec, Service, StringMap,
};
use kubedst_sim::SimRng;

fn labels(app: &str) -> StringMap {
    [("app".to_string(), app.to_string())].into()
}

fn service(publish_not_ready: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: "web".into(),
            namespace: Some("default".into()),
            uid: Some("svc-uid".into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            selector: labels("web"),
            ports: vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("web-port".into())),
                protocol: Some(Protocol::Tcp),
                node_port: None,
            }],
            publish_not_ready_addresses: publish_not_ready,
            ..ServiceSpec::default()
        },
        status: Default::default(),
    }
}

fn pod(name: &str, app: &str, ip: Option<&str>, ready: bool, terminating: bool, phase: PodPhase) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            labels: labels(app),
            deletion_timestamp_ns: terminating.then_some(1),
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Container {
                name: "c".into(),
                image: "v1".into(),
                ports: vec![ContainerPort { name: Some("web-port".into()), container_port: 8080, protocol: None }],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        status: PodStatus {
            phase: Some(phase),
            pod_ip: ip.map(str::to_string),
            conditions: vec![Condition {
                condition_type: "Ready".into(),
                status: if ready { ConditionStatus::True } else { ConditionStatus::False },
                ..Condition::default()
            }],
            ..PodStatus::default()
        },
    }
}

fn reconcile(controller: &mut EndpointSliceController, cache: &Cache) -> Reconcile {
    let mut rng = SimRng::for_stream(1, "endpointslice");
    let key = ObjectKey::new(Kind::Service, "default", "web");
    controller.reconcile(&key, cache, &mut ReconcileContext { now_ns: 0, rng: &mut rng })
}

fn written_slice(result: &Reconcile) -> EndpointSlice {
    assert_eq!(result.writes.len(), 1, "{:?}", result.writes);
    match &result.writes[0] {
        ApiRequest::Create { object } | ApiRequest::Update { object } => match &**object {
            Object::EndpointSlice(slice) => slice.clone(),
            other => panic!("not a slice: {other:?}"),
        },
        other => panic!("not a create or update: {other:?}"),
    }
}

/// (pod name, ready, serving, terminating) per endpoint.
fn conditions(slice: &EndpointSlice) -> Vec<(String, EndpointConditions)> {
    slice.endpoints.iter().map(|e| (e.target_ref.as_ref().unwrap().name.clone().unwrap(), e.conditions)).collect()
}

fn c(ready: bool, serving: bool, terminating: bool) -> EndpointConditions {
    EndpointConditions { ready: Some(ready), serving: Some(serving), terminating: Some(terminating) }
}

fn cluster(publish_not_ready: bool) -> Cache {
    let mut cache = Cache::new();
    cache.upsert(Rc::new(Object::Service(service(publish_not_ready))));
    for p in [
        pod("a-ready", "web", Some("10.0.0.1"), true, false, PodPhase::Running),
        pod("b-not-ready", "web", Some("10.0.0.2"), false, false, PodPhase::Running),
        pod("c-terminating", "web", Some("10.0.0.3"), true, true, PodPhase::Running),
        pod("d-no-ip", "web", None, false, false, PodPhase::Pending),
        pod("e-succeeded", "web", Some("10.0.0.5"), false, false, PodPhase::Succeeded),
        pod("f-other-app", "db", Some("10.0.0.6"), true, false, PodPhase::Running),
    ] {
        cache.upsert(Rc::new(Object::Pod(p)));
    }
    cache
}

#[test]
fn endpoints_carry_ready_serving_and_terminating() {
    let mut controller = EndpointSliceController::new();
    let cache = cluster(false);
    let slice = written_slice(&reconcile(&mut controller, &cache));
    assert!(matches!(reconcile(&mut controller, &cache).writes[0], ApiRequest::Create { .. }));
    assert_eq!(
        conditions(&slice),
        vec![
            ("a-ready".to_string(), c(true, true, false)),
            ("b-not-ready".to_string(), c(false, false, false)),
            ("c-terminating".to_string(), c(false, true, true)),
        ]
    );
    assert_eq!(slice.endpoints[0].addresses, vec!["10.0.0.1".to_string()]);
    assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("n1"));
    assert_eq!(slice.endpoints[0].target_ref.as_ref().unwrap().uid.as_deref(), Some("uid-a-ready"));
    // The named target port resolves to the container's port.
    assert_eq!(
        slice.ports,
        vec![EndpointPort { name: Some("http".into()), port: Some(8080), protocol: Some(Protocol::Tcp) }]
    );
    assert_eq!(slice.metadata.labels.get(SERVICE_NAME_LABEL).map(String::as_str), Some("web"));
    assert_eq!(
        slice.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    let owner = slice.metadata.controller_ref().unwrap();
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "svc-uid"));
    assert!(slice.metadata.name.starts_with("web-"));
}

#[test]
fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let mut controller = EndpointSliceController::new();
    let slice = written_slice(&reconcile(&mut controller, &cluster(true)));
    assert_eq!(
        conditions(&slice),
        vec![
            ("a-ready".to_string(), c(true, true, false)),
            ("b-not-ready".to_string(), c(true, false, false)),
            ("c-terminating".to_string(), c(true, true, true)),
        ]
    );
}

#[test]
fn writes_only_when_the_slice_changes() {
    let mut controller = EndpointSliceController::new();
    let mut cache = cluster(false);
    let mut slice = written_slice(&reconcile(&mut controller, &cache));
    slice.metadata.uid = Some("slice-uid".into());
    slice.metadata.resource_version = Some("7".into());
    let event = cache.upsert(Rc::new(Object::EndpointSlice(slice))).unwrap();
    assert_eq!(controller.on_event(&event, &cache), vec![ObjectKey::new(Kind::Service, "default", "web")]);
    assert!(reconcile(&mut controller, &cache).writes.is_empty(), "in sync: no write");

    // b becomes ready: the pod's event names the Service, and the slice is updated in place.
    let mut b = pod("b-not-ready", "web", Some("10.0.0.2"), true, false, PodPhase::Running);
    b.metadata.resource_version = Some("2".into());
    let event = cache.upsert(Rc::new(Object::Pod(b))).unwrap();
    assert_eq!(controller.on_event(&event, &cache), vec![ObjectKey::new(Kind::Service, "default", "web")]);
    let result = reconcile(&mut controller, &cache);
    assert!(matches!(result.writes[0], ApiRequest::Update { .. }));
    let updated = written_slice(&result);
    assert_eq!(updated.metadata.resource_version.as_deref(), Some("7"), "conditional on the cached version");
    assert_eq!(updated.endpoints[1].conditions, c(true, true, false));
}

#[test]
fn a_service_without_pods_gets_an_empty_placeholder_slice() {
    let mut controller = EndpointSliceController::new();
    let mut cache = Cache::new();
    cache.upsert(Rc::new(Object::Service(service(false))));
    let slice = written_slice(&reconcile(&mut controller, &cache));
    assert!(slice.endpoints.is_empty() && slice.ports.is_empty());
}
