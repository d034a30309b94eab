//! Cluster and configuration kinds: Node, Namespace, Lease (coordination.k8s.io/v1), ConfigMap,
//! Secret.

use super::meta::{Condition, ObjectMeta, StringMap};
use super::pod::TaintEffect;
use super::quantity::{Bytes, Millicores};
use super::validation::{validate_non_negative, FieldPath, ValidationError};
use serde::{Deserialize, Serialize};

/// The label that carries a node's zone; zones drive the node lifecycle's disruption modes.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// A Node: a machine that runs pods.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Node {
    /// Name and labels (zone, hostname, ...).
    pub metadata: ObjectMeta,
    /// Taints, cordon.
    pub spec: NodeSpec,
    /// What the kubelet reports.
    pub status: NodeStatus,
}

/// The desired state of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSpec {
    /// Cordoned: no new pods are scheduled here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Taints that repel pods without a matching toleration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// The pod address range of the node.
    #[serde(rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// The cloud's id of the machine; the cloud controller deletes nodes gone from the cloud.
    #[serde(rename = "providerID", skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

/// A taint on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Its key, such as `node.kubernetes.io/unreachable`.
    pub key: String,
    /// An optional value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What it does to pods.
    pub effect: TaintEffect,
    /// Virtual time at which a NoExecute taint was added; tolerationSeconds count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added_ns: Option<u64>,
}

/// What a node offers: CPU, memory and a pod count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeResources {
    /// CPU, in millicores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Millicores>,
    /// Memory, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    /// Most pods the node runs (a plain count, written as a quantity such as "110").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<Bytes>,
}

/// What the kubelet reports about its node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStatus {
    /// The machine's total resources.
    pub capacity: NodeResources,
    /// What pods may request: capacity less system reservations.
    pub allocatable: NodeResources,
    /// Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// InternalIP, Hostname, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
}

/// An address of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeAddress {
    /// InternalIP, ExternalIP, Hostname, ...
    #[serde(rename = "type")]
    pub address_type: String,
    /// The address.
    pub address: String,
}

impl Node {
    /// The node's zone, from its `topology.kubernetes.io/zone` label.
    pub fn zone(&self) -> Option<&str> {
        self.metadata.labels.get(ZONE_LABEL).map(String::as_str)
    }

    /// Nodes have no defaults of interest to the simulation.
    pub fn apply_defaults(&mut self) {}

    /// Validates taints (keys are qualified names, no duplicate key and effect).
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let mut seen = std::collections::BTreeSet::new();
        for (index, taint) in self.spec.taints.iter().enumerate() {
            let path = FieldPath::root().key("spec").key("taints").index(index);
            super::validation::validate_label_key(&taint.key, &path.key("key"), errors);
            if !seen.insert((taint.key.as_str(), taint.effect)) {
                errors.push(ValidationError::duplicate(
                    &path,
                    format!("taint {:?} with effect {:?}", taint.key, taint.effect),
                ));
            }
        }
    }
}

/// A Namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Namespace {
    /// Name (a DNS-1123 label) and labels.
    pub metadata: ObjectMeta,
    /// The finalizers that must finish before the namespace goes.
    pub spec: NamespaceSpec,
    /// Active or Terminating.
    pub status: NamespaceStatus,
}

/// What must happen before a namespace is removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceSpec {
    /// `kubernetes` (added at creation) is removed by the namespace controller once the namespace
    /// is empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// The finalizer the API server puts on every namespace (`v1.FinalizerKubernetes`).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// The phases of a namespace.
pub const NAMESPACE_ACTIVE: &str = "Active";
pub const NAMESPACE_TERMINATING: &str = "Terminating";
/// The namespaces kube-apiserver creates at start (`systemnamespaces` controller).
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
/// The namespaces NamespaceLifecycle admission refuses to delete.
pub const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

impl Namespace {
    /// Whether the namespace is being deleted (phase Terminating or a deletionTimestamp).
    pub fn is_terminating(&self) -> bool {
        self.metadata.is_terminating() || self.status.phase.as_deref() == Some(NAMESPACE_TERMINATING)
    }
}

/// The phase of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceStatus {
    /// Active or Terminating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// A Lease (coordination.k8s.io/v1): node heartbeats and leader election.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lease {
    /// Name (the node's, or the component's).
    pub metadata: ObjectMeta,
    /// Holder and times.
    pub spec: LeaseSpec,
}

/// Who holds a lease and until when.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaseSpec {
    /// The current holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long after renewTime the lease expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    /// Virtual time at which the holder acquired it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquire_time_ns: Option<u64>,
    /// Virtual time of the holder's last renewal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_time_ns: Option<u64>,
    /// How many times the lease changed hands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i32>,
}

impl Lease {
    /// Leases have no defaults.
    pub fn apply_defaults(&mut self) {}

    /// Validates the duration (positive) and the transition count (not negative).
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let spec_path = FieldPath::root().key("spec");
        if let Some(duration) = self.spec.lease_duration_seconds.filter(|d| *d <= 0) {
            errors.push(ValidationError::invalid(
                &spec_path.key("leaseDurationSeconds"),
                format!("{duration}: must be greater than 0"),
            ));
        }
        if let Some(transitions) = self.spec.lease_transitions {
            validate_non_negative(i64::from(transitions), &spec_path.key("leaseTransitions"), errors);
        }
    }
}

/// A ConfigMap: configuration that pods read as environment variables or files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMap {
    /// Name and labels.
    pub metadata: ObjectMeta,
    /// The entries.
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub data: StringMap,
    /// An immutable ConfigMap cannot be updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// A Secret; the simulation keeps its values as written and never decodes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Secret {
    /// Name and labels.
    pub metadata: ObjectMeta,
    /// Opaque, kubernetes.io/tls, ...
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Base64-encoded entries.
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub data: StringMap,
    /// Plain-text entries, merged into data by the API server.
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub string_data: StringMap,
    /// An immutable Secret cannot be updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// Reports ConfigMap and Secret keys that are not valid file names (`[-._a-zA-Z0-9]+`).
fn validate_data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    for key in keys {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && key != "."
            && key != "..";
        if !valid {
            errors.push(ValidationError::invalid(
                &path.key(key),
                format!("{key:?}: a data key must consist of alphanumerics, '-', '_' or '.'"),
            ));
        }
    }
}

impl ConfigMap {
    /// ConfigMaps have no defaults.
    pub fn apply_defaults(&mut self) {}

    /// Validates data keys.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        validate_data_keys(self.data.keys(), &FieldPath::root().key("data"), errors);
    }
}

impl Secret {
    /// Defaults type to Opaque.
    pub fn apply_defaults(&mut self) {
        self.secret_type.get_or_insert_with(|| "Opaque".to_string());
    }

    /// Validates data keys.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        validate_data_keys(self.data.keys(), &FieldPath::root().key("data"), errors);
        validate_data_keys(self.string_data.keys(), &FieldPath::root().key("stringData"), errors);
    }
}
