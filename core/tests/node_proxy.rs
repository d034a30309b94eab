//! kube-proxy's routing table and the ClusterIP allocator.

use kubedst_core::objects::networking::{Endpoint, EndpointConditions, ServiceSpec};
use kubedst_core::objects::{EndpointSlice, Object, ObjectMeta, Service};
use kubedst_core::proxy::{ClusterIpAllocator, ClusterIpError, ProxyTable, SERVICE_NAME_LABEL};
use kubedst_sim::SimRng;
use std::collections::BTreeMap;
use std::rc::Rc;

fn service(name: &str, cluster_ip: &str) -> Rc<Object> {
    Rc::new(Object::Service(Service {
        metadata: ObjectMeta { name: name.into(), namespace: Some("default".into()), ..ObjectMeta::default() },
        spec: ServiceSpec { cluster_ip: Some(cluster_ip.into()), ..ServiceSpec::default() },
        ..Service::default()
    }))
}

/// One endpoint: `(address, ready, serving, terminating)`.
type EndpointRow<'a> = (&'a str, Option<bool>, Option<bool>, Option<bool>);

fn slice(name: &str, service: &str, endpoints: &[EndpointRow]) -> Rc<Object> {
    let mut labels = BTreeMap::new();
    labels.insert(SERVICE_NAME_LABEL.to_string(), service.to_string());
    Rc::new(Object::EndpointSlice(EndpointSlice {
        metadata: ObjectMeta { name: name.into(), namespace: Some("default".into()), labels, ..ObjectMeta::default() },
        endpoints: endpoints
            .iter()
            .map(|(address, ready, serving, terminating)| Endpoint {
                addresses: vec![address.to_string()],
                conditions: EndpointConditions { ready: *ready, serving: *serving, terminating: *terminating },
                ..Endpoint::default()
            })
            .collect(),
        ..EndpointSlice::default()
    }))
}

fn draws(table: &ProxyTable, service: &str, seed: u64, count: usize) -> Vec<Option<String>> {
    let mut rng = SimRng::for_stream(seed, "proxy");
    (0..count).map(|_| table.route(service, &mut rng)).collect()
}

#[test]
fn routes_only_to_ready_endpoints_uniformly_and_deterministically() {
    let mut table = ProxyTable::new();
    table.rebuild(
        &[service("web", "10.96.0.5")],
        &[
            slice(
                "web-abc",
                "web",
                &[
                    ("10.128.0.1", Some(true), Some(true), Some(false)),
                    ("10.128.0.2", Some(false), Some(false), Some(false)),
                    ("10.128.0.3", Some(false), Some(true), Some(true)),
                ],
            ),
            slice("web-def", "web", &[("10.129.0.1", None, None, None)]),
        ],
    );
    assert_eq!(table.cluster_ip("default/web"), Some("10.96.0.5"));
    assert_eq!(table.service_for_cluster_ip("10.96.0.5"), Some("default/web"));
    assert_eq!(table.endpoints("default/web").len(), 4);
    // Absent conditions count as ready, as kube-proxy reads them.
    assert_eq!(table.usable_endpoints("default/web"), ["10.128.0.1", "10.129.0.1"]);
    let picks = draws(&table, "default/web", 7, 200);
    assert_eq!(picks, draws(&table, "default/web", 7, 200), "same seed, same choices");
    let to_first = picks.iter().filter(|p| p.as_deref() == Some("10.128.0.1")).count();
    let to_second = picks.iter().filter(|p| p.as_deref() == Some("10.129.0.1")).count();
    assert_eq!(to_first + to_second, 200, "never a not-ready or terminating endpoint");
    assert!((70..=130).contains(&to_first), "roughly uniform: {to_first}");
    assert_ne!(picks, draws(&table, "default/web", 8, 200), "another seed, other choices");
}

#[test]
fn falls_back_to_serving_terminating_endpoints_only_when_none_is_ready() {
    let mut table = ProxyTable::new();
    table.rebuild(
        &[service("web", "10.96.0.5")],
        &[slice(
            "web-abc",
            "web",
            &[
                ("10.128.0.1", Some(false), Some(true), Some(true)),
                ("10.128.0.2", Some(false), Some(false), Some(true)),
            ],
        )],
    );
    let mut rng = SimRng::for_stream(1, "proxy");
    assert_eq!(table.route("default/web", &mut rng).as_deref(), Some("10.128.0.1"));
    // Once nothing serves, there is nowhere to go.
    table.upsert(&slice("web-abc", "web", &[("10.128.0.2", Some(false), Some(false), Some(true))]));
    assert_eq!(table.route("default/web", &mut rng), None);
}

#[test]
fn unknown_headless_and_removed_services_route_nowhere() {
    let mut table = ProxyTable::new();
    let slices = [slice("web-abc", "web", &[("10.128.0.1", Some(true), Some(true), Some(false))])];
    table.rebuild(&[service("web", "10.96.0.5"), service("headless", "None")], &slices);
    let mut rng = SimRng::for_stream(1, "proxy");
    assert_eq!(table.route("default/nope", &mut rng), None);
    assert_eq!(table.route("default/headless", &mut rng), None);
    assert_eq!(table.cluster_ip("default/headless"), None);
    assert_eq!(table.route("default/web", &mut rng).as_deref(), Some("10.128.0.1"));
    table.remove(&slices[0]);
    assert_eq!(table.route("default/web", &mut rng), None);
    table.upsert(&slices[0]);
    table.remove(&service("web", "10.96.0.5"));
    assert_eq!(table.route("default/web", &mut rng), None);
    assert_eq!(table.services(), ["default/headless"]);
}

#[test]
fn an_address_in_two_slices_counts_once() {
    let mut table = ProxyTable::new();
    table.rebuild(
        &[service("web", "10.96.0.5")],
        &[
            slice("web-a", "web", &[("10.128.0.1", Some(true), Some(true), Some(false))]),
            slice("web-b", "web", &[("10.128.0.1", Some(false), Some(true), Some(true))]),
        ],
    );
    let endpoints = table.endpoints("default/web");
    assert_eq!(endpoints.len(), 1);
    assert!(endpoints[0].ready, "the first slice by name wins");
}

#[test]
fn cluster_ips_are_sequential_unique_and_in_range() {
    let mut allocator = ClusterIpAllocator::new();
    assert_eq!(allocator.allocate().as_deref(), Ok("10.96.0.1"));
    assert_eq!(allocator.allocate().as_deref(), Ok("10.96.0.2"));
    assert_eq!(allocator.reserve("10.96.0.3"), Ok(()));
    assert_eq!(allocator.allocate().as_deref(), Ok("10.96.0.4"), "skips a reserved address");
    assert_eq!(allocator.reserve("10.96.0.3"), Err(ClusterIpError::AlreadyAllocated("10.96.0.3".into())));
    assert_eq!(allocator.reserve("10.112.0.1"), Err(ClusterIpError::OutOfRange("10.112.0.1".into())));
    assert_eq!(allocator.reserve("10.96.0.0"), Err(ClusterIpError::OutOfRange("10.96.0.0".into())));
    assert_eq!(allocator.reserve("not-an-ip"), Err(ClusterIpError::OutOfRange("not-an-ip".into())));
    assert!(allocator.reserve("10.111.255.254").is_ok(), "the last usable address");
    allocator.release("10.96.0.1");
    assert!(!allocator.is_allocated("10.96.0.1"));
    assert_eq!(allocator.allocate().as_deref(), Ok("10.96.0.5"), "a released address is not reused at once");
    assert_eq!(allocator.allocated_count(), 5);
    for _ in 0..300 {
        allocator.allocate().expect("room");
    }
    assert_eq!(allocator.allocate().as_deref(), Ok("10.96.1.50"));
}
