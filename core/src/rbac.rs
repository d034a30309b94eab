//! A minimal authorizer for the API server: who may read Secrets and ConfigMaps. kube-apiserver
//! runs the Node authorizer and RBAC (`--authorization-mode=Node,RBAC`); this models the part of
//! their default policy that concerns Secrets, and the Node authorizer's rule for ConfigMaps, and
//! allows everything else.
//!
//! - `system:masters` users (the admin's kubectl) and `system:kube-controller-manager` may do
//!   anything (the controller manager's controllers, such as the namespace controller, list and
//!   delete Secrets).
//! - A kubelet (`system:node:<name>`) may `get` a Secret only if a pod bound to its node references
//!   it (the Node authorizer's graph: env `secretKeyRef`, `envFrom.secretRef`, secret volumes); it
//!   may not list or watch Secrets, and may not write them.
//! - Every other identity (`system:kube-scheduler`, `system:kube-proxy`, CoreDNS's service
//!   account, `system:anonymous`) is denied every verb on Secrets.
//! - ConfigMaps: a kubelet is held to the same rule as for Secrets (`get` only of a ConfigMap a
//!   pod bound to its node references: env `configMapKeyRef`, `envFrom.configMapRef`, configMap
//!   volumes); every other identity may read them.
//!
//! Denials are 403 Forbidden with upstream's message shape.

use crate::api::{ApiError, ApiErrorReason};
use crate::objects::{Kind, Pod};

/// The admin's identity (kubeadm's `kubernetes-admin`, in group `system:masters`).
pub const ADMIN: &str = "kubernetes-admin";
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// The cloud controller manager's identity (it reads no Secrets or ConfigMaps).
pub const CLOUD_CONTROLLER_MANAGER: &str = "system:cloud-controller-manager";
pub const SCHEDULER: &str = "system:kube-scheduler";
pub const KUBE_PROXY: &str = "system:kube-proxy";
pub const COREDNS: &str = "system:serviceaccount:kube-system:coredns";
pub const ANONYMOUS: &str = "system:anonymous";

/// A kubelet's identity (`system:node:<name>`).
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// What a request does, as the authorizer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }
}

/// The objects of `kind` (Secret or ConfigMap) a pod references, in order, without repeats:
/// volumes (`secret.secretName`, `configMap.name`), env `secretKeyRef` / `configMapKeyRef` and
/// `envFrom.secretRef` / `configMapRef`. These are the Node authorizer's pod -> object edges
/// (`plugin/pkg/auth/authorizer/node/graph_populator.go` via `podutil.VisitPodSecretNames` and
/// `VisitPodConfigmapNames`). Other kinds reference nothing.
pub fn referenced(pod: &Pod, kind: Kind) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !names.iter().any(|existing| existing == name) {
            names.push(name.to_string());
        }
    };
    for volume in &pod.spec.volumes {
        match kind {
            Kind::Secret => volume.secret.iter().for_each(|source| add(&source.secret_name)),
            Kind::ConfigMap => volume.config_map.iter().for_each(|reference| add(&reference.name)),
            _ => {}
        }
    }
    for container in &pod.spec.containers {
        for env in &container.env {
            let Some(source) = &env.value_from else { continue };
            let selector = match kind {
                Kind::Secret => source.secret_key_ref.as_ref(),
                Kind::ConfigMap => source.config_map_key_ref.as_ref(),
                _ => None,
            };
            if let Some(selector) = selector {
                add(&selector.name);
            }
        }
        for source in &container.env_from {
            let reference = match kind {
                Kind::Secret => source.secret_ref.as_ref(),
                Kind::ConfigMap => source.config_map_ref.as_ref(),
                _ => None,
            };
            if let Some(reference) = reference {
                add(&reference.name);
            }
        }
    }
    names
}

/// The Secrets a pod references (see [`referenced`]).
pub fn referenced_secrets(pod: &Pod) -> Vec<String> {
    referenced(pod, Kind::Secret)
}

/// The ConfigMaps a pod references (see [`referenced`]).
pub fn referenced_config_maps(pod: &Pod) -> Vec<String> {
    referenced(pod, Kind::ConfigMap)
}

/// Whether `pod` references the Secret `name` (the Node authorizer's pod -> secret edges).
pub fn pod_references_secret(pod: &Pod, name: &str) -> bool {
    referenced(pod, Kind::Secret).iter().any(|referenced| referenced == name)
}

/// Whether `pod` references the ConfigMap `name` (the Node authorizer's pod -> configmap edges).
pub fn pod_references_config_map(pod: &Pod, name: &str) -> bool {
    referenced(pod, Kind::ConfigMap).iter().any(|referenced| referenced == name)
}

/// Decides a request of `user` with `verb` on `kind` (`namespace`, `name`). `pods_of_node` gives
/// the pods bound to a node in a namespace, for the Node authorizer.
pub fn authorize<'a>(
    user: &str,
    verb: Verb,
    kind: Kind,
    namespace: &str,
    name: &str,
    pods_of_node: impl Fn(&str, &str) -> Vec<&'a Pod>,
) -> Result<(), ApiError> {
    let node = user.strip_prefix("system:node:");
    let restricted = match kind {
        Kind::Secret => user != ADMIN && user != CONTROLLER_MANAGER,
        // Only the Node authorizer restricts ConfigMaps here: the default RBAC roles of the other
        // components grant what they read, and a user's own controllers are not narrowed.
        Kind::ConfigMap => node.is_some(),
        _ => false,
    };
    if !restricted {
        return Ok(());
    }
    let allowed = match node {
        // The Node authorizer: `get` of an object a pod bound to this node references. The kubelet
        // model reads them one by one; a list or watch of the whole kind is refused.
        Some(node) => {
            verb == Verb::Get
                && pods_of_node(node, namespace).iter().any(|pod| referenced(pod, kind).iter().any(|r| r == name))
        }
        None => false,
    };
    if allowed {
        return Ok(());
    }
    let resource = match kind {
        Kind::ConfigMap => "configmaps",
        _ => "secrets",
    };
    let subject = if name.is_empty() { resource.to_string() } else { format!("{resource} \"{name}\"") };
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{namespace}\"")
    };
    Err(ApiError::new(
        ApiErrorReason::Forbidden,
        format!(
            "{subject} is forbidden: User \"{user}\" cannot {} resource \"{resource}\" in API group \"\" {scope}",
            verb.as_str()
        ),
    ))
}
