//! A minimal authorizer for the API server: who may read Secrets. kube-apiserver runs the Node
//! authorizer and RBAC (`--authorization-mode=Node,RBAC`); this models the part of their default
//! policy that concerns Secrets, and allows everything else.
//!
//! - `system:masters` users (the admin's kubectl) and `system:kube-controller-manager` may do
//!   anything (the controller manager's controllers, such as the namespace controller, list and
//!   delete Secrets).
//! - A kubelet (`system:node:<name>`) may `get` a Secret only if a pod bound to its node references
//!   it (the Node authorizer's graph: env `secretKeyRef`, `envFrom.secretRef`, secret volumes); it
//!   may not list or watch Secrets, and may not write them.
//! - Every other identity (`system:kube-scheduler`, `system:kube-proxy`, CoreDNS's service
//!   account, `system:anonymous`) is denied every verb on Secrets.
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

/// The Secrets a pod references (volumes, env `secretKeyRef`, `envFrom.secretRef`), in order,
/// without repeats.
pub fn referenced_secrets(pod: &Pod) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !names.iter().any(|existing| existing == name) {
            names.push(name.to_string());
        }
    };
    for volume in &pod.spec.volumes {
        if let Some(source) = &volume.secret {
            add(&source.secret_name);
        }
    }
    for container in &pod.spec.containers {
        for env in &container.env {
            if let Some(selector) = env.value_from.as_ref().and_then(|source| source.secret_key_ref.as_ref()) {
                add(&selector.name);
            }
        }
        for source in &container.env_from {
            if let Some(reference) = &source.secret_ref {
                add(&reference.name);
            }
        }
    }
    names
}

/// Whether `pod` references the Secret `name` (the Node authorizer's pod -> secret edges).
pub fn pod_references_secret(pod: &Pod, name: &str) -> bool {
    let spec = &pod.spec;
    spec.volumes.iter().any(|volume| volume.secret.as_ref().is_some_and(|source| source.secret_name == name))
        || spec.containers.iter().any(|container| {
            container.env.iter().any(|env| {
                env.value_from
                    .as_ref()
                    .and_then(|source| source.secret_key_ref.as_ref())
                    .is_some_and(|selector| selector.name == name)
            }) || container
                .env_from
                .iter()
                .any(|source| source.secret_ref.as_ref().is_some_and(|reference| reference.name == name))
        })
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
    if kind != Kind::Secret || user == ADMIN || user == CONTROLLER_MANAGER {
        return Ok(());
    }
    let allowed = match user.strip_prefix("system:node:") {
        Some(node) => {
            verb == Verb::Get && pods_of_node(node, namespace).iter().any(|pod| pod_references_secret(pod, name))
        }
        None => false,
    };
    if allowed {
        return Ok(());
    }
    let subject = if name.is_empty() { "secrets".to_string() } else { format!("secrets \"{name}\"") };
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{namespace}\"")
    };
    Err(ApiError::new(
        ApiErrorReason::Forbidden,
        format!(
            "{subject} is forbidden: User \"{user}\" cannot {} resource \"secrets\" in API group \"\" {scope}",
            verb.as_str()
        ),
    ))
}
