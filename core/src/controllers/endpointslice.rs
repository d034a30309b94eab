//! The EndpointSlice controller (`pkg/controller/endpointslice/endpointslice_controller.go`,
//! `staging/src/k8s.io/endpointslice/reconciler.go` and `utils.go`).

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::api::{namespace_of, ApiError, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::meta::IntOrString;
use crate::objects::networking::{
    AddressType, Endpoint, EndpointConditions, EndpointPort, ObjectReference, ServicePort,
};
use crate::objects::pod::Protocol;
use crate::objects::selector::map_selector_matches;
use crate::objects::{EndpointSlice, Kind, Object, ObjectMeta, Pod, Service, StringMap};
use crate::rules::deployment::pod_template_hash;

use super::{controller_ref_to, is_controlled_by, is_pod_terminal};

/// The label naming a slice's Service (`discovery.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice (`discovery.LabelManagedBy`).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The label a headless Service's slices carry (`v1.IsHeadlessService`).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Most endpoints in one slice (`--max-endpoints-per-slice`, default 100).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// `EndpointSliceController`: publishes, for each Service with a selector, the addresses of the
/// pods it selects and whether each is ready, serving or terminating (`syncService`).
///
/// Simplifications of upstream's reconciler: the desired slices are computed whole and compared
/// with the cached ones (no churn minimisation). Endpoints are grouped by their resolved ports, as
/// upstream groups them by port mapping; each group gets slices of at most
/// [`MAX_ENDPOINTS_PER_SLICE`] endpoints, sorted by pod namespace and name, named
/// `<service>-<hash of the Service uid and the ports>` (then `-1`, `-2`, ... for more slices of a
/// group) instead of a generated name. A Service without matching pods gets one empty placeholder
/// slice, as upstream. IPv4 only; zones and hostnames are not filled in; no EndpointSlice tracker
/// (a stale cache shows up as a 409 and is repaired by the following watch event).
#[derive(Clone, Debug, Default)]
pub struct EndpointSliceController {
    /// The resourceVersion of each slice as this controller last wrote it, so that the watch
    /// echo of its own write does not trigger another sync (upstream's endpointSliceTracker).
    written: BTreeMap<(String, String), Option<String>>,
    mutants: crate::mutants::Mutants,
}

impl EndpointSliceController {
    /// A controller with no state yet: no expectations, assumptions or backoffs.
    pub fn new() -> EndpointSliceController {
        EndpointSliceController::default()
    }

    /// The controller with deliberate bugs switched on (negative controls).
    pub fn with_mutants(mut self, mutants: crate::mutants::Mutants) -> EndpointSliceController {
        self.mutants = mutants;
        self
    }
}

/// `FindPort` (`pkg/api/v1/pod/util.go`): a numeric targetPort as is; a named one is the
/// container port of that name and the Service port's protocol; `None` when the pod has none.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.clone().unwrap_or(IntOrString::Int(port.port)) {
        IntOrString::Int(number) => Some(number),
        IntOrString::String(name) => {
            let protocol = port.protocol.unwrap_or(Protocol::Tcp);
            pod.spec.containers.iter().flat_map(|c| &c.ports).find_map(|container_port| {
                (container_port.name.as_deref() == Some(name.as_str())
                    && container_port.protocol.unwrap_or(Protocol::Tcp) == protocol)
                    .then_some(container_port.container_port)
            })
        }
    }
}

/// `getEndpointPorts`: the Service's ports resolved for one pod (ports the pod lacks are left out).
fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    service
        .spec
        .ports
        .iter()
        .filter_map(|port| {
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(find_port(pod, port)?),
                protocol: Some(port.protocol.unwrap_or(Protocol::Tcp)),
            })
        })
        .collect()
}

/// `podToEndpoint`: serving = Ready, terminating = deletionTimestamp set, ready = serving and not
/// terminating, or always with publishNotReadyAddresses.
pub fn pod_to_endpoint(service: &Service, pod: &Pod) -> Endpoint {
    let serving = pod.is_ready();
    let terminating = pod.metadata.is_terminating();
    let ready = service.spec.publish_not_ready_addresses || (serving && !terminating);
    Endpoint {
        addresses: pod.status.pod_ip.iter().cloned().collect(),
        conditions: EndpointConditions { ready: Some(ready), serving: Some(serving), terminating: Some(terminating) },
        node_name: pod.spec.node_name.clone().filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_string()),
            name: Some(pod.metadata.name.clone()),
            namespace: Some(pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string())),
            uid: pod.metadata.uid.clone(),
        }),
        zone: None,
    }
}

/// `ShouldPodBeInEndpoints(pod, includeTerminating=true)`: not terminal and has an IP.
fn should_pod_be_in_endpoints(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && pod.status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
}

/// Endpoints are grouped by their resolved ports (name, number, protocol of each).
type PortsKey = Vec<(Option<String>, Option<i32>, Option<Protocol>)>;

/// The slices the Service should have, by name.
pub fn desired_slices(service: &Service, cache: &Cache) -> BTreeMap<String, EndpointSlice> {
    let namespace = service.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let mut groups: BTreeMap<PortsKey, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    // The label index yields exactly the pods the selector matches, in name order.
    for object in cache.matching_labels(Kind::Pod, &namespace, &service.spec.selector) {
        let Object::Pod(pod) = &**object else { continue };
        if !should_pod_be_in_endpoints(pod) {
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let group_key = ports.iter().map(|p| (p.name.clone(), p.port, p.protocol)).collect();
        groups.entry(group_key).or_insert_with(|| (ports, Vec::new())).1.push(pod_to_endpoint(service, pod));
    }
    let mut labels: StringMap = service.metadata.labels.clone();
    labels.insert(SERVICE_NAME_LABEL.to_string(), service.metadata.name.clone());
    labels.insert(MANAGED_BY_LABEL.to_string(), CONTROLLER_NAME.to_string());
    if service.spec.cluster_ip.as_deref() == Some("None") {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    let uid = service.metadata.uid.clone().unwrap_or_default();
    let slice = |name: String, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>| EndpointSlice {
        metadata: ObjectMeta {
            name,
            namespace: Some(namespace.clone()),
            labels: labels.clone(),
            owner_references: vec![controller_ref_to("v1", "Service", &service.metadata)],
            ..ObjectMeta::default()
        },
        address_type: AddressType::IPv4,
        endpoints,
        ports,
    };
    let name_for = |ports: &[EndpointPort], index: usize| {
        let bytes = serde_json::to_vec(&(uid.as_str(), ports)).expect("ports serialize to JSON");
        let base = format!("{}-{}", service.metadata.name, pod_template_hash(&bytes, None));
        if index == 0 {
            base
        } else {
            format!("{base}-{index}")
        }
    };
    let mut slices = BTreeMap::new();
    if groups.is_empty() {
        let name = name_for(&[], 0);
        slices.insert(name.clone(), slice(name, Vec::new(), Vec::new()));
    }
    for (_, (ports, mut endpoints)) in groups {
        // Pods come from the cache in namespace/name order, so chunks are stable. The endpoints
        // move into their slices in chunks of at most MAX_ENDPOINTS_PER_SLICE, without copies.
        let mut index = 0;
        while !endpoints.is_empty() {
            let rest = endpoints.split_off(endpoints.len().min(MAX_ENDPOINTS_PER_SLICE));
            let chunk = std::mem::replace(&mut endpoints, rest);
            let name = name_for(&ports, index);
            slices.insert(name.clone(), slice(name, ports.clone(), chunk));
            index += 1;
        }
    }
    slices
}

/// Whether a cached slice already says what the desired one says.
fn same_content(current: &EndpointSlice, desired: &EndpointSlice) -> bool {
    current.endpoints == desired.endpoints
        && current.ports == desired.ports
        && current.address_type == desired.address_type
        && current.metadata.labels == desired.metadata.labels
        && current.metadata.owner_references == desired.metadata.owner_references
}

impl Reconciler for EndpointSliceController {
    fn name(&self) -> &'static str {
        "endpointslice"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Service, Kind::Pod, Kind::EndpointSlice]
    }

    /// Services name themselves; a pod names every Service in its namespace whose selector
    /// matches its old or new labels (`getPodServiceMemberships`); a slice names its Service.
    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        let namespace = namespace_of(object);
        match &**object {
            Object::Service(_) => vec![ObjectKey::of(object)],
            Object::EndpointSlice(slice)
                if !matches!(event, CacheEvent::Deleted(_))
                    && self.written.get(&(namespace.clone(), slice.metadata.name.clone()))
                        == Some(&slice.metadata.resource_version) =>
            {
                Vec::new()
            }
            Object::EndpointSlice(slice) => match slice.metadata.labels.get(SERVICE_NAME_LABEL) {
                Some(service)
                    if slice.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME) =>
                {
                    vec![ObjectKey::new(Kind::Service, &namespace, service)]
                }
                _ => Vec::new(),
            },
            Object::Pod(pod) => {
                // `podEndpointsChanged`: an update that changes nothing an endpoint shows (address,
                // readiness, termination, node, phase) and no label concerns no Service.
                if let CacheEvent::Updated(old, _) = event {
                    if let Object::Pod(old_pod) = &**old {
                        let unchanged = old_pod.metadata.labels == pod.metadata.labels
                            && old_pod.status.pod_ip == pod.status.pod_ip
                            && old_pod.is_ready() == pod.is_ready()
                            && old_pod.metadata.is_terminating() == pod.metadata.is_terminating()
                            && old_pod.spec.node_name == pod.spec.node_name
                            && is_pod_terminal(old_pod) == is_pod_terminal(pod);
                        if unchanged {
                            return Vec::new();
                        }
                    }
                }
                let mut label_sets = vec![&pod.metadata.labels];
                if let CacheEvent::Updated(old, _) = event {
                    if let Object::Pod(old_pod) = &**old {
                        label_sets.push(&old_pod.metadata.labels);
                    }
                }
                cache
                    .list(Kind::Service, Some(&namespace))
                    .into_iter()
                    .filter(|service| match &***service {
                        Object::Service(service) => {
                            label_sets.iter().any(|labels| map_selector_matches(&service.spec.selector, labels))
                        }
                        _ => false,
                    })
                    .map(|service| ObjectKey::of(service))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn on_write_result(&mut self, _key: &ObjectKey, _request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        if let Ok(ApiOk::Object(object)) = result {
            if let Object::EndpointSlice(slice) = &**object {
                let slot = (namespace_of(object), slice.metadata.name.clone());
                self.written.insert(slot, slice.metadata.resource_version.clone());
            }
        }
    }

    /// `syncService`: create, update or delete this controller's slices until they match.
    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else { return Reconcile::done() };
        let Object::Service(service) = &**object else { return Reconcile::done() };
        if service.spec.selector.is_empty() || service.metadata.is_terminating() {
            return Reconcile::done();
        }
        let mut desired = desired_slices(service, cache);
        if self.mutants.contains(crate::mutants::Mutant::EndpointSliceKeepsNotReadyEndpoints) {
            for endpoint in desired.values_mut().flat_map(|slice| slice.endpoints.iter_mut()) {
                endpoint.conditions.ready = Some(true);
            }
        }
        let current: Vec<&EndpointSlice> = cache
            .list(Kind::EndpointSlice, Some(&key.namespace))
            .into_iter()
            .filter_map(|object| match &**object {
                Object::EndpointSlice(slice)
                    if slice.metadata.labels.get(SERVICE_NAME_LABEL) == Some(&service.metadata.name)
                        && slice.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME) =>
                {
                    Some(slice)
                }
                _ => None,
            })
            .collect();
        // Deletions are decided first (they need every desired name) but sent after the creates
        // and updates, which then take the desired slices by value instead of copying them.
        let mut deletes = Vec::new();
        for slice in &current {
            let ours = is_controlled_by(&slice.metadata, "Service", service.metadata.uid.as_deref());
            if !desired.contains_key(&slice.metadata.name) && (ours || slice.metadata.controller_ref().is_none()) {
                deletes.push(ApiRequest::Delete {
                    key: ObjectKey::new(Kind::EndpointSlice, &key.namespace, &slice.metadata.name),
                    uid: slice.metadata.uid.clone(),
                    grace_period_seconds: None,
                    propagation: None,
                });
            }
        }
        let mut result = Reconcile::done();
        for (name, slice) in desired {
            match current.iter().find(|c| c.metadata.name == name) {
                Some(existing) if same_content(existing, &slice) => {}
                Some(existing) => {
                    let mut updated = (*existing).clone();
                    updated.endpoints = slice.endpoints;
                    updated.ports = slice.ports;
                    updated.address_type = slice.address_type;
                    updated.metadata.labels = slice.metadata.labels;
                    updated.metadata.owner_references = slice.metadata.owner_references;
                    result.writes.push(ApiRequest::Update { object: Rc::new(Object::EndpointSlice(updated)) });
                }
                None => result.writes.push(ApiRequest::Create { object: Rc::new(Object::EndpointSlice(slice)) }),
            }
        }
        result.writes.extend(deletes);
        result
    }
}
