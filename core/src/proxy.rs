//! kube-proxy's routing table, pure: which pod IPs a Service's traffic may go to, as this node's
//! kube-proxy last programmed them from its (possibly stale) view of Services and EndpointSlices.
//! Also the API server's ClusterIP allocator.
//!
//! Endpoint selection follows upstream `pkg/proxy/topology.go` `CategorizeEndpoints` for a
//! Service with the Cluster traffic policy (the only policy modelled: Services here carry no
//! `internalTrafficPolicy`/`externalTrafficPolicy` and no topology hints):
//! - the ready endpoints;
//! - if there are none, the endpoints that are serving and terminating. This fallback
//!   (KEP-1669, `ProxyTerminatingEndpoints`, GA in 1.28 and the gate removed since) applies to the
//!   Cluster policy too in current kube-proxy, not only to `externalTrafficPolicy: Local`;
//! - otherwise none: the connection is rejected (`HttpOutcome::NoEndpoints`).
//!
//! Conditions are read as kube-proxy's `endpointslicecache.go` reads them: an absent `ready` or
//! `serving` counts as true, an absent `terminating` as false.
//! A request picks uniformly among the usable endpoints (iptables' `statistic --mode random`,
//! nftables' `numgen random`), from the caller's seeded stream.

use crate::objects::networking::Endpoint;
use crate::objects::Object;
use kubedst_sim::SimRng;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// The label by which an EndpointSlice names its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint as kube-proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyEndpoint {
    /// The pod IP.
    pub address: String,
    /// Ready for traffic (absent counts as true).
    pub ready: bool,
    /// Serving, terminating or not (absent counts as `ready`).
    pub serving: bool,
    /// Being deleted (absent counts as false).
    pub terminating: bool,
    /// The node it runs on.
    pub node_name: Option<String>,
}

impl ProxyEndpoint {
    fn from_endpoint(endpoint: &Endpoint, address: &str) -> Self {
        let ready = endpoint.conditions.ready.unwrap_or(true);
        ProxyEndpoint {
            address: address.to_string(),
            ready,
            serving: endpoint.conditions.serving.unwrap_or(ready),
            terminating: endpoint.conditions.terminating.unwrap_or(false),
            node_name: endpoint.node_name.clone(),
        }
    }
}

/// A Service as programmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ProxyService {
    /// `None` for a headless Service or one without an IP yet: kube-proxy programs nothing.
    cluster_ip: Option<String>,
}

/// kube-proxy's rules of one node: Services by `namespace/name`, and endpoints from every
/// EndpointSlice labelled with the Service's name.
///
/// Slices are kept as the shared objects the informer delivered, and a Service's usable
/// endpoints are computed only when traffic to it is routed after a change: every node's proxy
/// sees every slice update (as in Kubernetes), but only the proxies that route to a Service pay
/// for reading its slices.
#[derive(Clone, Debug, Default)]
pub struct ProxyTable {
    services: BTreeMap<String, ProxyService>,
    /// (namespace, slice name) -> (service `namespace/name`, the slice).
    slices: BTreeMap<(String, String), (String, Rc<Object>)>,
    /// Per Service, the endpoints a new connection may use (address, node), as last computed.
    usable: BTreeMap<String, Vec<(String, Option<String>)>>,
    /// Services whose Service object or slices changed since `usable` was computed.
    dirty: BTreeSet<String>,
}

fn namespaced(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{}", namespace.unwrap_or("default"), name)
}

impl ProxyTable {
    /// An empty table: every Service is unknown.
    pub fn new() -> Self {
        ProxyTable::default()
    }

    /// Rebuilds the whole table from the informers' Services and EndpointSlices (other kinds are
    /// ignored), as a kube-proxy sync does after a relist.
    pub fn rebuild(&mut self, services: &[Rc<Object>], slices: &[Rc<Object>]) {
        *self = ProxyTable::new();
        for object in services.iter().chain(slices) {
            self.upsert_shared(object);
        }
    }

    /// Applies one added or updated Service or EndpointSlice.
    pub fn upsert(&mut self, object: &Object) {
        self.upsert_shared(&Rc::new(object.clone()));
    }

    /// Applies one added or updated Service or EndpointSlice, keeping the shared object.
    pub fn upsert_shared(&mut self, object: &Rc<Object>) {
        match &**object {
            Object::Service(service) => {
                let key = namespaced(service.metadata.namespace.as_deref(), &service.metadata.name);
                let cluster_ip = service.spec.cluster_ip.clone().filter(|ip| !ip.is_empty() && ip != "None");
                self.services.insert(key.clone(), ProxyService { cluster_ip });
                self.dirty.insert(key);
            }
            Object::EndpointSlice(slice) => {
                let namespace = slice.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
                let slot = (namespace.clone(), slice.metadata.name.clone());
                let Some(service_name) = slice.metadata.labels.get(SERVICE_NAME_LABEL) else {
                    // Not (or no longer) a Service's slice.
                    if let Some((owner, _)) = self.slices.remove(&slot) {
                        self.dirty.insert(owner);
                    }
                    return;
                };
                let owner = namespaced(Some(&namespace), service_name);
                if let Some((previous, _)) = self.slices.insert(slot, (owner.clone(), object.clone())) {
                    if previous != owner {
                        self.dirty.insert(previous);
                    }
                }
                self.dirty.insert(owner);
            }
            _ => {}
        }
    }

    /// Applies one deleted Service or EndpointSlice.
    pub fn remove(&mut self, object: &Object) {
        match object {
            Object::Service(service) => {
                let key = namespaced(service.metadata.namespace.as_deref(), &service.metadata.name);
                self.services.remove(&key);
                self.dirty.insert(key);
            }
            Object::EndpointSlice(slice) => {
                let namespace = slice.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
                if let Some((owner, _)) = self.slices.remove(&(namespace, slice.metadata.name.clone())) {
                    self.dirty.insert(owner);
                }
            }
            _ => {}
        }
    }

    /// The Service's ClusterIP, if it has one and kube-proxy knows the Service.
    pub fn cluster_ip(&self, service: &str) -> Option<&str> {
        self.services.get(service)?.cluster_ip.as_deref()
    }

    /// The Service (`namespace/name`) that owns a ClusterIP.
    pub fn service_for_cluster_ip(&self, cluster_ip: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|(_, service)| service.cluster_ip.as_deref() == Some(cluster_ip))
            .map(|(name, _)| name.as_str())
    }

    /// Every endpoint of the Service, one per address, ordered by address. An address that appears
    /// in several slices (during a slice update) is taken from the first slice by name, as
    /// kube-proxy's slice cache deduplicates.
    pub fn endpoints(&self, service: &str) -> Vec<ProxyEndpoint> {
        let mut by_address: BTreeMap<&str, ProxyEndpoint> = BTreeMap::new();
        for (owner, slice) in self.slices.values() {
            if owner != service {
                continue;
            }
            let Object::EndpointSlice(slice) = &**slice else { continue };
            for endpoint in &slice.endpoints {
                for address in &endpoint.addresses {
                    by_address
                        .entry(address.as_str())
                        .or_insert_with(|| ProxyEndpoint::from_endpoint(endpoint, address));
                }
            }
        }
        by_address.into_values().collect()
    }

    /// The usable endpoints of a Service, computed from the slices: ready ones, else serving
    /// terminating ones.
    fn compute_usable(&self, service: &str) -> Vec<(String, Option<String>)> {
        if self.cluster_ip(service).is_none() {
            return Vec::new();
        }
        let endpoints = self.endpoints(service);
        let ready: Vec<&ProxyEndpoint> = endpoints.iter().filter(|e| e.ready).collect();
        let chosen =
            if ready.is_empty() { endpoints.iter().filter(|e| e.serving && e.terminating).collect() } else { ready };
        chosen.into_iter().map(|e| (e.address.clone(), e.node_name.clone())).collect()
    }

    /// The endpoints a new connection may go to (see the module docs): ready ones, else serving
    /// terminating ones. Empty when the Service is unknown, has no ClusterIP, or has none usable.
    pub fn usable_endpoints(&self, service: &str) -> Vec<String> {
        self.compute_usable(service).into_iter().map(|(address, _)| address).collect()
    }

    /// Picks the pod IP for one new connection to `service` (`namespace/name`), uniformly among
    /// the usable endpoints; `None` means no endpoints (kube-proxy rejects the connection). Draws
    /// from `rng` only when there is a choice to make.
    pub fn route(&self, service: &str, rng: &mut SimRng) -> Option<String> {
        pick(&self.compute_usable(service), rng).map(|(address, _)| address)
    }

    /// Like [`ProxyTable::route`], with the node the chosen pod runs on; reuses the usable
    /// endpoints computed after the last change (the same choice, computed once per change).
    pub fn route_with_node(&mut self, service: &str, rng: &mut SimRng) -> Option<(String, Option<String>)> {
        if self.dirty.remove(service) {
            let usable = self.compute_usable(service);
            self.usable.insert(service.to_string(), usable);
        }
        pick(self.usable.get(service)?, rng)
    }

    /// Every Service kube-proxy knows, by `namespace/name`.
    pub fn services(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }
}

/// A uniform choice, drawing nothing when there is no choice.
fn pick(usable: &[(String, Option<String>)], rng: &mut SimRng) -> Option<(String, Option<String>)> {
    match usable.len() {
        0 => None,
        1 => Some(usable[0].clone()),
        n => Some(usable[rng.below(n as u64) as usize].clone()),
    }
}

/// The Service CIDR: 10.96.0.0/12, kubeadm's default `--service-cluster-ip-range`.
const SERVICE_RANGE_BASE: u32 = (10 << 24) | (96 << 16);
/// Host offsets 1 ..= 2^20 - 2 (the network and broadcast addresses are not handed out).
const SERVICE_RANGE_LAST: u32 = (1 << 20) - 2;

/// Error from a ClusterIP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterIpError {
    /// Not an IPv4 address in 10.96.0.0/12 (upstream: "the provided IP is not in the valid range").
    OutOfRange(String),
    /// Already assigned to another Service (upstream: "provided IP is already allocated").
    AlreadyAllocated(String),
    /// Every address is in use.
    Exhausted,
}

impl std::fmt::Display for ClusterIpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterIpError::OutOfRange(ip) => {
                write!(f, "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range 10.96.0.0/12")
            }
            ClusterIpError::AlreadyAllocated(ip) => {
                write!(f, "failed to allocate IP {ip}: provided IP is already allocated")
            }
            ClusterIpError::Exhausted => f.write_str("failed to allocate a serviceIP: range is full"),
        }
    }
}

impl std::error::Error for ClusterIpError {}

/// ClusterIP assignment for the API server, deterministic: sequential from 10.96.0.1 (which
/// upstream reserves for the `kubernetes` Service, the first one created), wrapping round and
/// skipping addresses in use, so a released address is reused only after the rest of the range.
/// Upstream draws a random free address (preferring the upper part of the range for dynamic
/// allocation); sequential keeps traces readable, and no Kubernetes behaviour depends on the choice.
#[derive(Clone, Debug, Default)]
pub struct ClusterIpAllocator {
    in_use: BTreeSet<u32>,
    /// The offset after the last one allocated (0 means start at 1).
    cursor: u32,
}

impl ClusterIpAllocator {
    /// An allocator with every address free.
    pub fn new() -> Self {
        ClusterIpAllocator::default()
    }

    fn format(offset: u32) -> String {
        let ip = SERVICE_RANGE_BASE + offset;
        format!("{}.{}.{}.{}", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff)
    }

    fn parse(ip: &str) -> Option<u32> {
        let octets: Vec<u32> =
            ip.split('.').map(|part| part.parse::<u8>().ok().map(u32::from)).collect::<Option<_>>()?;
        let [a, b, c, d] = octets.as_slice() else { return None };
        let value = (a << 24) | (b << 16) | (c << 8) | d;
        let offset = value.checked_sub(SERVICE_RANGE_BASE)?;
        (1..=SERVICE_RANGE_LAST).contains(&offset).then_some(offset)
    }

    /// The next free address.
    pub fn allocate(&mut self) -> Result<String, ClusterIpError> {
        let size = SERVICE_RANGE_LAST;
        for step in 0..size {
            let offset = 1 + (self.cursor.saturating_sub(1) + step) % size;
            if self.in_use.insert(offset) {
                self.cursor = offset % size + 1;
                return Ok(Self::format(offset));
            }
        }
        Err(ClusterIpError::Exhausted)
    }

    /// Claims an address a Service asked for (`spec.clusterIP` set by the user).
    pub fn reserve(&mut self, ip: &str) -> Result<(), ClusterIpError> {
        let offset = Self::parse(ip).ok_or_else(|| ClusterIpError::OutOfRange(ip.to_string()))?;
        if self.in_use.insert(offset) {
            Ok(())
        } else {
            Err(ClusterIpError::AlreadyAllocated(ip.to_string()))
        }
    }

    /// Frees an address (its Service was deleted); addresses outside the range are ignored.
    pub fn release(&mut self, ip: &str) {
        if let Some(offset) = Self::parse(ip) {
            self.in_use.remove(&offset);
        }
    }

    /// Whether the address is assigned.
    pub fn is_allocated(&self, ip: &str) -> bool {
        Self::parse(ip).is_some_and(|offset| self.in_use.contains(&offset))
    }

    /// How many addresses are assigned.
    pub fn allocated_count(&self) -> usize {
        self.in_use.len()
    }
}
