//! Eventually (liveness): the promises a healed cluster must keep within the liveness bound,
//! each reported in words when unmet. The harness asks every second of the liveness phase.
//!
//! - `deployment-converges`: every Deployment has exactly `spec.replicas` ready pods of its
//!   current template (the pod-template-hash of its current ReplicaSet) and no other pods;
//!   ready means Ready in etcd *and* really serving in its node's container runtime.
//! - `replicaset-converges`: every ReplicaSet owns exactly `spec.replicas` pods, all ready.
//! - `endpoints-match`: every Service's EndpointSlices list exactly its ready pods as ready.
//! - `proxies-match`: every running kube-proxy routes each Service to exactly its ready pods.
//! - `dead-node-pods-replaced`: no pod stays bound, and not being deleted, on a dead machine.
//! - `no-orphans`: no object keeps an ownerReference to an owner (by uid) that no longer exists.
//! - `jobs-complete`: every Job ends Complete with exactly `completions` successes.
//!
//! Unready pods get a line each: their phase, and why (the scheduler's `0/N nodes are available`
//! message, the container's waiting reason).

use crate::api::ObjectKey;
use crate::cluster::Cluster;
use crate::controllers::deployment::{equal_ignore_hash, POD_TEMPLATE_HASH_LABEL};
use crate::controllers::Scheduler;
use crate::host::ControllerHost;
use crate::node::{KubeProxy, Kubelet};
use crate::objects::pod::PodPhase;
use crate::objects::{Kind, Object, Pod, StringMap};
use crate::proxy::SERVICE_NAME_LABEL;
use kubedst_sim::MachineStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// One unmet eventual promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmet {
    pub invariant: &'static str,
    pub message: String,
}

/// The names of the eventual promises, for reports of what was checked.
pub const EVENTUAL_PROMISES: [&str; 7] = [
    "deployment-converges",
    "replicaset-converges",
    "endpoints-match",
    "proxies-match",
    "dead-node-pods-replaced",
    "no-orphans",
    "jobs-complete",
];

fn namespaced(namespace: &Option<String>, name: &str) -> String {
    format!("{}/{name}", namespace.as_deref().unwrap_or("default"))
}

/// What the liveness checks need of the cluster, read once.
struct Snapshot<'a> {
    cluster: &'a Cluster,
    now_ns: u64,
    pods: Vec<Rc<Object>>,
    /// Node name -> whether its machine is down or lost.
    dead_nodes: BTreeSet<String>,
}

impl Snapshot<'_> {
    fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter_map(|object| match &**object {
            Object::Pod(pod) => Some(pod),
            _ => None,
        })
    }

    /// Ground truth: the pod's container runtime serves it now.
    fn serving(&self, pod: &Pod) -> bool {
        let (Some(node), Some(ip)) = (pod.spec.node_name.as_deref(), pod.status.pod_ip.as_deref()) else {
            return false;
        };
        let Some(id) = self.cluster.sim.component_id(&format!("kubelet/{node}")) else { return false };
        self.cluster.sim.component::<Kubelet>(id).is_some_and(|kubelet| kubelet.runtime().is_serving(ip, self.now_ns))
    }

    fn terminating(pod: &Pod) -> bool {
        pod.metadata.deletion_timestamp_ns.is_some()
    }

    fn finished(pod: &Pod) -> bool {
        matches!(pod.status.phase, Some(PodPhase::Succeeded) | Some(PodPhase::Failed))
    }

    /// Ready in etcd, not terminating, and really serving.
    fn ready(&self, pod: &Pod) -> bool {
        pod.is_ready() && !Snapshot::terminating(pod) && self.serving(pod)
    }

    /// A pod that still counts as a pod of its owner: not finished, and not a terminating pod on
    /// a dead node (which only the node's return or its deletion can finish).
    fn counts(&self, pod: &Pod) -> bool {
        if Snapshot::finished(pod) {
            return false;
        }
        let on_dead_node = pod.spec.node_name.as_ref().is_some_and(|node| self.dead_nodes.contains(node));
        !(Snapshot::terminating(pod) && on_dead_node)
    }

    /// Why a pod is not ready, in words.
    fn describe(&self, pod: &Pod) -> String {
        let name = &pod.metadata.name;
        let phase = match pod.status.phase {
            Some(PodPhase::Pending) | None => "Pending",
            Some(PodPhase::Running) => "Running",
            Some(PodPhase::Succeeded) => "Succeeded",
            Some(PodPhase::Failed) => "Failed",
            Some(PodPhase::Unknown) => "Unknown",
        };
        let Some(node) = pod.spec.node_name.as_deref().filter(|node| !node.is_empty()) else {
            let written = crate::objects::meta::find_condition(&pod.status.conditions, "PodScheduled")
                .and_then(|condition| condition.message.clone());
            let why = written.or_else(|| self.scheduler_message(pod)).unwrap_or_else(|| "not scheduled yet".into());
            return format!("pod {name}: {phase}, {why}");
        };
        if Snapshot::terminating(pod) {
            return format!("pod {name}: terminating on {node}");
        }
        if self.dead_nodes.contains(node) {
            return format!("pod {name}: {phase} on dead node {node}");
        }
        let waiting: Vec<String> = pod
            .status
            .container_statuses
            .iter()
            .filter(|status| !status.ready)
            .map(|status| {
                let reason = status
                    .state
                    .waiting
                    .as_ref()
                    .and_then(|waiting| waiting.reason.clone())
                    .or_else(|| status.state.terminated.as_ref().and_then(|terminated| terminated.reason.clone()))
                    .unwrap_or_else(|| "not ready".into());
                format!("container {}: {reason}", status.name)
            })
            .collect();
        let truth = match (pod.is_ready(), self.serving(pod)) {
            (true, false) => ", Ready in etcd but not serving",
            (false, true) => ", serving but not Ready in etcd",
            _ => "",
        };
        let detail = if waiting.is_empty() { String::new() } else { format!(", {}", waiting.join(", ")) };
        format!("pod {name}: {phase} on {node}, not ready{detail}{truth}")
    }

    /// The leading scheduler's last `0/N nodes are available: ...` for the pod (words only: the
    /// verdict comes from etcd; upstream writes this message into the PodScheduled condition).
    fn scheduler_message(&self, pod: &Pod) -> Option<String> {
        let key = ObjectKey::new(Kind::Pod, pod.metadata.namespace.as_deref().unwrap_or("default"), &pod.metadata.name);
        self.cluster.schedulers.iter().find_map(|&id| {
            let host = self.cluster.sim.component::<ControllerHost>(id).filter(|host| host.is_leader())?;
            host.reconciler_of::<Scheduler>()?.last_failure(&key).map(str::to_string)
        })
    }

    fn selected<'s>(
        &'s self,
        namespace: &'s Option<String>,
        selects: impl Fn(&StringMap) -> bool + 's,
    ) -> impl Iterator<Item = &'s Pod> + 's {
        let namespace = namespace.as_deref().unwrap_or("default");
        self.pods()
            .filter(move |pod| pod.metadata.namespace.as_deref().unwrap_or("default") == namespace)
            .filter(move |pod| selects(&pod.metadata.labels))
    }
}

fn owned_by(object: &crate::objects::ObjectMeta, uid: Option<&String>) -> bool {
    uid.is_some_and(|uid| object.owner_references.iter().any(|owner| &owner.uid == uid))
}

/// Every unmet eventual promise, read from etcd and the components' state; empty when the
/// cluster has converged.
pub fn unmet_promises(cluster: &Cluster) -> Vec<Unmet> {
    let dead_nodes = cluster
        .node_machines
        .iter()
        .filter(|&&machine| cluster.sim.machine_status(machine) != MachineStatus::Up)
        .map(|&machine| cluster.sim.machine_name(machine).to_string())
        .collect();
    let snapshot =
        Snapshot { cluster, now_ns: cluster.sim.now().as_nanos(), pods: cluster.stored_all(Kind::Pod), dead_nodes };
    let mut unmet = Vec::new();
    let mut push = |invariant: &'static str, message: String| unmet.push(Unmet { invariant, message });
    let replica_sets = cluster.stored_all(Kind::ReplicaSet);

    for object in cluster.stored_all(Kind::Deployment) {
        let Object::Deployment(deployment) = &*object else { continue };
        if deployment.metadata.deletion_timestamp_ns.is_some() {
            continue;
        }
        let name = namespaced(&deployment.metadata.namespace, &deployment.metadata.name);
        let want = deployment.spec.replicas.unwrap_or(1);
        let current = replica_sets.iter().find_map(|object| match &**object {
            Object::ReplicaSet(set)
                if owned_by(&set.metadata, deployment.metadata.uid.as_ref())
                    && equal_ignore_hash(&set.spec.template, &deployment.spec.template) =>
            {
                set.metadata.labels.get(POD_TEMPLATE_HASH_LABEL).cloned()
            }
            _ => None,
        });
        let Some(hash) = current else {
            push("deployment-converges", format!("deployment {name}: no ReplicaSet of the current template"));
            continue;
        };
        let (mut ready, mut other) = (0, 0);
        let mut lines = Vec::new();
        for pod in snapshot.selected(&deployment.metadata.namespace, |labels| deployment.spec.selector.matches(labels))
        {
            if !snapshot.counts(pod) {
                continue;
            }
            let of_current = pod.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) == Some(&hash);
            if of_current && snapshot.ready(pod) {
                ready += 1;
            } else {
                other += 1;
                lines.push(snapshot.describe(pod));
            }
        }
        if ready != want || other != 0 {
            let others = if other == 0 { String::new() } else { format!(", {other} other pods") };
            push(
                "deployment-converges",
                format!("deployment {name}: {ready}/{want} ready pods of the current template (pod-template-hash {hash}){others}"),
            );
            for line in lines {
                push("deployment-converges", line);
            }
        }
    }

    for object in &replica_sets {
        let Object::ReplicaSet(set) = &**object else { continue };
        if set.metadata.deletion_timestamp_ns.is_some() {
            continue;
        }
        let want = set.spec.replicas.unwrap_or(1);
        let owned: Vec<&Pod> = snapshot
            .pods()
            .filter(|pod| owned_by(&pod.metadata, set.metadata.uid.as_ref()) && snapshot.counts(pod))
            .collect();
        let ready = owned.iter().filter(|pod| snapshot.ready(pod)).count() as i32;
        if ready != want || owned.len() as i32 != want {
            push(
                "replicaset-converges",
                format!(
                    "replicaset {}: {ready}/{want} ready pods, {} pods",
                    namespaced(&set.metadata.namespace, &set.metadata.name),
                    owned.len()
                ),
            );
        }
    }

    let slices = cluster.stored_all(Kind::EndpointSlice);
    let proxies: Vec<(&str, &KubeProxy)> = cluster
        .proxies
        .iter()
        .filter_map(|&id| Some((cluster.sim.component_name(id), cluster.sim.component::<KubeProxy>(id)?)))
        .collect();
    for object in cluster.stored_all(Kind::Service) {
        let Object::Service(service) = &*object else { continue };
        if service.spec.selector.is_empty() {
            continue;
        }
        let name = namespaced(&service.metadata.namespace, &service.metadata.name);
        let ready: BTreeSet<String> = snapshot
            .selected(&service.metadata.namespace, |labels| {
                service.spec.selector.iter().all(|(key, value)| labels.get(key) == Some(value))
            })
            .filter(|pod| snapshot.ready(pod))
            .filter_map(|pod| pod.status.pod_ip.clone())
            .collect();
        let published: BTreeSet<String> = slices
            .iter()
            .filter_map(|object| match &**object {
                Object::EndpointSlice(slice)
                    if slice.metadata.namespace == service.metadata.namespace
                        && slice.metadata.labels.get(SERVICE_NAME_LABEL) == Some(&service.metadata.name) =>
                {
                    Some(slice)
                }
                _ => None,
            })
            .flat_map(|slice| slice.endpoints.iter())
            .filter(|endpoint| endpoint.conditions.ready.unwrap_or(true))
            .flat_map(|endpoint| endpoint.addresses.iter().cloned())
            .collect();
        if published != ready {
            push("endpoints-match", format!("service {name}: {}", difference("EndpointSlices", &published, &ready)));
        }
        for (proxy, component) in &proxies {
            let routes: BTreeSet<String> = component.table().usable_endpoints(&name).into_iter().collect();
            if routes != ready {
                push("proxies-match", format!("{proxy}: service {name}: {}", difference("routes", &routes, &ready)));
            }
        }
    }

    for pod in snapshot.pods() {
        let Some(node) = pod.spec.node_name.as_deref() else { continue };
        if snapshot.dead_nodes.contains(node) && !Snapshot::terminating(pod) && !Snapshot::finished(pod) {
            push(
                "dead-node-pods-replaced",
                format!(
                    "pod {}: still bound to dead node {node} and not being deleted",
                    namespaced(&pod.metadata.namespace, &pod.metadata.name)
                ),
            );
        }
    }

    let everything: Vec<Rc<Object>> =
        cluster.served_kinds().into_iter().flat_map(|kind| cluster.stored_all(kind)).collect();
    let uids: BTreeSet<&str> = everything.iter().filter_map(|object| object.meta().uid.as_deref()).collect();
    for object in &everything {
        let meta = object.meta();
        for owner in &meta.owner_references {
            if !uids.contains(owner.uid.as_str()) {
                push(
                    "no-orphans",
                    format!(
                        "{} {}: its owner {} {} (uid {}) is gone, yet it remains",
                        ObjectKey::of(object).kind.as_str(),
                        namespaced(&meta.namespace, &meta.name),
                        owner.kind,
                        owner.name,
                        owner.uid
                    ),
                );
            }
        }
    }

    for object in cluster.stored_all(Kind::Job) {
        let Object::Job(job) = &*object else { continue };
        let name = namespaced(&job.metadata.namespace, &job.metadata.name);
        let completions = job.spec.completions.unwrap_or(1);
        let condition = |kind: &str| job.status.conditions.iter().find(|condition| condition.is_true(kind));
        if let Some(failed) = condition("Failed") {
            let reason = failed.reason.clone().unwrap_or_else(|| "Failed".into());
            push(
                "jobs-complete",
                format!("job {name}: failed ({reason}) with {}/{completions} successes", job.status.succeeded),
            );
        } else if condition("Complete").is_none() || job.status.succeeded != completions {
            push(
                "jobs-complete",
                format!(
                    "job {name}: {}/{completions} completions succeeded, {} active",
                    job.status.succeeded, job.status.active
                ),
            );
        }
    }
    unmet
}

fn difference(what: &str, have: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    let missing: Vec<&str> = want.difference(have).map(String::as_str).collect();
    let extra: Vec<&str> = have.difference(want).map(String::as_str).collect();
    let mut parts = vec![format!("{what} hold {} ready addresses, {} ready pods", have.len(), want.len())];
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(" ")));
    }
    if !extra.is_empty() {
        parts.push(format!("not ready or gone {}", extra.join(" ")));
    }
    parts.join("; ")
}

/// The unmet promises as lines of words (what the harness reports as `pending`).
pub fn unconverged(cluster: &Cluster) -> Vec<String> {
    unmet_promises(cluster).into_iter().map(|unmet| unmet.message).collect()
}

/// How many times each eventual promise was asked, for reports.
pub fn count_asked(counts: &mut BTreeMap<&'static str, u64>) {
    for promise in EVENTUAL_PROMISES {
        *counts.entry(promise).or_insert(0) += 1;
    }
}
