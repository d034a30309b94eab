//! Service (v1) and EndpointSlice (discovery.k8s.io/v1).

use super::meta::{IntOrString, ObjectMeta, StringMap};
use super::pod::Protocol;
use super::validation::{is_iana_service_name, validate_port_number, FieldPath, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A Service: a stable address for the ready pods its selector picks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    /// Name (a DNS-1123 label) and labels.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: ServiceSpec,
    /// Load balancer addresses from the cloud controller.
    pub status: ServiceStatus,
}

/// How a Service is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum ServiceType {
    /// A cluster-internal virtual IP (the default).
    #[default]
    ClusterIP,
    /// A port on every node, plus a ClusterIP.
    NodePort,
    /// An external load balancer from the cloud, plus a NodePort.
    LoadBalancer,
}

/// The desired state of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// Defaults to ClusterIP.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Pods with all these labels back the Service; empty means endpoints are managed by hand.
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub selector: StringMap,
    /// The ports it serves.
    pub ports: Vec<ServicePort>,
    /// The virtual IP; allocated by the API server when absent, "None" for a headless Service.
    #[serde(rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// Publish endpoints of pods that are not ready.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publish_not_ready_addresses: bool,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Required when there is more than one port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port the Service listens on.
    pub port: i32,
    /// The pod's port: a number or a named container port; defaults to `port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Defaults to TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The node port for NodePort and LoadBalancer Services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// What the cloud controller reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceStatus {
    /// The load balancer, once provisioned.
    pub load_balancer: LoadBalancerStatus,
}

/// The addresses of a provisioned load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerStatus {
    /// Empty until the load balancer exists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// One address of a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerIngress {
    /// An IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A DNS name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl Service {
    /// Applies v1 defaults: type ClusterIP, protocol TCP, targetPort equal to port.
    pub fn apply_defaults(&mut self) {
        self.spec.service_type.get_or_insert(ServiceType::ClusterIP);
        for port in &mut self.spec.ports {
            port.protocol.get_or_insert(Protocol::Tcp);
            port.target_port.get_or_insert(IntOrString::Int(port.port));
        }
    }

    /// Validates ports: at least one, numbers in range, names unique and present when there
    /// are several, target ports numbers or IANA names, node ports only where they apply.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let ports_path = FieldPath::root().key("spec").key("ports");
        let headless = self.spec.cluster_ip.as_deref() == Some("None");
        if self.spec.ports.is_empty() && !headless {
            errors.push(ValidationError::required(&ports_path, "a Service needs at least one port"));
        }
        let mut names = BTreeSet::new();
        let several = self.spec.ports.len() > 1;
        for (index, port) in self.spec.ports.iter().enumerate() {
            let port_path = ports_path.index(index);
            validate_port_number(port.port, &port_path.key("port"), errors);
            match &port.name {
                None if several => errors.push(ValidationError::required(
                    &port_path.key("name"),
                    "each port needs a name when there is more than one",
                )),
                None => {}
                Some(name) if !names.insert(name.as_str()) => {
                    errors.push(ValidationError::duplicate(&port_path.key("name"), format!("{name:?}")));
                }
                Some(_) => {}
            }
            match &port.target_port {
                Some(IntOrString::Int(number)) => validate_port_number(*number, &port_path.key("targetPort"), errors),
                Some(IntOrString::String(name)) if !is_iana_service_name(name) => errors.push(ValidationError::invalid(
                    &port_path.key("targetPort"),
                    format!("{name:?}: must be a port number or an IANA service name (at most 15 lowercase alphanumerics or '-', with a letter)"),
                )),
                _ => {}
            }
            if let Some(node_port) = port.node_port {
                if matches!(self.spec.service_type, None | Some(ServiceType::ClusterIP)) {
                    errors.push(ValidationError::forbidden(
                        &port_path.key("nodePort"),
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                } else {
                    validate_port_number(node_port, &port_path.key("nodePort"), errors);
                }
            }
        }
    }
}

/// An EndpointSlice: the addresses behind a Service, kept by the EndpointSlice controller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSlice {
    /// Name; the `kubernetes.io/service-name` label names the Service.
    pub metadata: ObjectMeta,
    /// The address family of every endpoint.
    pub address_type: AddressType,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// The ports every endpoint serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// The address family of an EndpointSlice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum AddressType {
    /// IPv4 addresses.
    #[default]
    IPv4,
    /// IPv6 addresses.
    IPv6,
    /// Domain names.
    #[serde(rename = "FQDN")]
    Fqdn,
}

/// One endpoint, usually one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    /// Its addresses (a pod has one).
    pub addresses: Vec<String>,
    /// Ready, serving, terminating.
    pub conditions: EndpointConditions,
    /// The node it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The pod behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
    /// The zone of its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// The state of an endpoint: serving = pod Ready, terminating = pod being deleted,
/// ready = serving and not terminating. `None` is read as "unknown" by consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointConditions {
    /// Traffic may go here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The pod is Ready, terminating or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// The pod is being deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

/// A reference to an object (an endpoint's pod).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    /// The kind, such as Pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// A port of an EndpointSlice (the resolved target port of the Service).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    /// The Service port's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port number on the endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

impl EndpointSlice {
    /// EndpointSlices have no defaults of interest to the simulation.
    pub fn apply_defaults(&mut self) {
        for port in &mut self.ports {
            port.protocol.get_or_insert(Protocol::Tcp);
        }
    }

    /// Validates addresses (1 to 100 per endpoint) and ports.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            if !(1..=100).contains(&endpoint.addresses.len()) {
                errors.push(ValidationError::invalid(
                    &FieldPath::root().key("endpoints").index(index).key("addresses"),
                    "must have between 1 and 100 addresses",
                ));
            }
        }
        for (index, port) in self.ports.iter().enumerate() {
            if let Some(number) = port.port {
                validate_port_number(number, &FieldPath::root().key("ports").index(index).key("port"), errors);
            }
        }
    }
}
