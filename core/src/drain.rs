//! `kubectl cordon` and `kubectl drain` (`k8s.io/kubectl/pkg/drain`) as a pure state machine that
//! [`crate::kubectl::Kubectl`] drives: cordon the node (spec.unschedulable, a read-modify-write
//! retried on 409), list its pods, evict each through the Eviction API (retrying a 429 every
//! [`EVICTION_RETRY_INTERVAL`], as `evictPods` does), then poll until every evicted pod is gone
//! (`waitForDelete`, every [`DELETE_POLL_INTERVAL`]), all within the drain's timeout.
//!
//! Pods are skipped as `kubectl drain --ignore-daemonsets` skips them: DaemonSet-owned pods and
//! mirror pods (annotation `kubernetes.io/config.mirror`). Pods without a controller stop the drain
//! unless it is forced (`--force`), and terminal pods are evicted like the others.

use crate::api::{ApiErrorReason, ApiOk, ApiRequest, ApiResult, ListFrom, ObjectKey};
use crate::objects::{Kind, Object, Pod};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// `kubectl drain` retries an eviction refused with 429 after this long.
pub const EVICTION_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// `waitForDelete` polls this often.
pub const DELETE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A 409 on the cordon update is retried after this long.
const CORDON_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// The annotation of a static pod's mirror.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What the user asked kubectl to do to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeCommand {
    /// `kubectl cordon` (true) or `kubectl uncordon` (false).
    Cordon { node: String, unschedulable: bool },
    /// `kubectl drain --ignore-daemonsets --timeout=<timeout>` (and `--force` if `force`).
    Drain { node: String, timeout: Duration, force: bool },
}

/// What a call of the state machine was for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainCall {
    GetNode,
    UpdateNode,
    ListPods,
    Evict { pod: String },
    WaitDeleted { pod: String, uid: Option<String> },
}

/// What the state machine asks its driver to do.
#[derive(Clone, Debug)]
pub enum DrainAction {
    Send {
        request: ApiRequest,
        call: DrainCall,
    },
    /// Call [`Drain::on_timer`] with `call` after `after`.
    After {
        after: Duration,
        call: DrainCall,
    },
}

/// How a cordon or drain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainResult {
    /// The node is cordoned and (for a drain) empty of the pods it had to evict.
    Done,
    /// The timeout passed first; the pods named were still there.
    TimedOut { remaining: Vec<String> },
    /// An error that ends the drain, as kubectl prints it.
    Failed(String),
}

/// The log of one cordon or drain.
#[derive(Clone, Debug)]
pub struct DrainReport {
    pub command: NodeCommand,
    pub started_ns: u64,
    pub finished_ns: Option<u64>,
    /// Pods whose eviction the API server accepted.
    pub evicted: Vec<String>,
    /// Evictions refused with 429 TooManyRequests (each retried).
    pub too_many_requests: u32,
    pub result: Option<DrainResult>,
}

/// One cordon or drain in progress.
#[derive(Clone, Debug)]
pub struct Drain {
    pub report: DrainReport,
    namespace_of_pod: BTreeMap<String, String>,
    /// Pods still to evict or to see gone, by name, with their uid.
    outstanding: BTreeMap<String, Option<String>>,
    deadline_ns: u64,
}

impl Drain {
    /// Starts `command` at `now_ns`: the first step is reading the node.
    pub fn start(command: NodeCommand, now_ns: u64) -> (Drain, Vec<DrainAction>) {
        let timeout = match &command {
            NodeCommand::Drain { timeout, .. } => *timeout,
            NodeCommand::Cordon { .. } => Duration::from_secs(60),
        };
        let deadline_ns = now_ns.saturating_add(kubedst_sim::time::duration_nanos(timeout));
        let drain = Drain {
            report: DrainReport {
                command,
                started_ns: now_ns,
                finished_ns: None,
                evicted: Vec::new(),
                too_many_requests: 0,
                result: None,
            },
            namespace_of_pod: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            deadline_ns,
        };
        let actions = vec![drain.get_node()];
        (drain, actions)
    }

    pub fn is_finished(&self) -> bool {
        self.report.result.is_some()
    }

    fn node(&self) -> &str {
        match &self.report.command {
            NodeCommand::Cordon { node, .. } | NodeCommand::Drain { node, .. } => node,
        }
    }

    fn get_node(&self) -> DrainAction {
        let key = ObjectKey::new(Kind::Node, "", self.node());
        DrainAction::Send { request: ApiRequest::Get { key }, call: DrainCall::GetNode }
    }

    fn finish(&mut self, now_ns: u64, result: DrainResult) -> Vec<DrainAction> {
        if self.report.result.is_none() {
            self.report.result = Some(result);
            self.report.finished_ns = Some(now_ns);
        }
        Vec::new()
    }

    fn evict(&self, pod: &str) -> DrainAction {
        let namespace = self.namespace_of_pod.get(pod).cloned().unwrap_or_else(|| "default".to_string());
        DrainAction::Send {
            request: ApiRequest::Evict { namespace, pod: pod.to_string() },
            call: DrainCall::Evict { pod: pod.to_string() },
        }
    }

    fn timed_out(&mut self, now_ns: u64) -> Option<Vec<DrainAction>> {
        if now_ns < self.deadline_ns {
            return None;
        }
        let remaining = self.outstanding.keys().cloned().collect();
        Some(self.finish(now_ns, DrainResult::TimedOut { remaining }))
    }

    /// An answer to a call the machine made.
    pub fn on_result(&mut self, call: DrainCall, result: &ApiResult, now_ns: u64) -> Vec<DrainAction> {
        if self.is_finished() {
            return Vec::new();
        }
        if let Some(actions) = self.timed_out(now_ns) {
            return actions;
        }
        let retriable = |result: &ApiResult| matches!(result, Err(e) if matches!(e.reason, ApiErrorReason::Timeout | ApiErrorReason::ServiceUnavailable));
        match call {
            DrainCall::GetNode => match result {
                Ok(ApiOk::Object(object)) => {
                    let Object::Node(node) = object.as_ref() else {
                        return self.finish(now_ns, DrainResult::Failed("not a node".into()));
                    };
                    let unschedulable = match &self.report.command {
                        NodeCommand::Cordon { unschedulable, .. } => *unschedulable,
                        NodeCommand::Drain { .. } => true,
                    };
                    if node.spec.unschedulable == unschedulable {
                        return self.after_cordon(now_ns);
                    }
                    let mut node = node.clone();
                    node.spec.unschedulable = unschedulable;
                    let request = ApiRequest::Update { object: Rc::new(Object::Node(node)) };
                    vec![DrainAction::Send { request, call: DrainCall::UpdateNode }]
                }
                _ if retriable(result) => {
                    vec![DrainAction::After { after: CORDON_RETRY_INTERVAL, call: DrainCall::GetNode }]
                }
                Err(error) => self.finish(now_ns, DrainResult::Failed(error.to_string())),
                Ok(_) => self.finish(now_ns, DrainResult::Failed("unexpected answer".into())),
            },
            DrainCall::UpdateNode => match result {
                Ok(_) => self.after_cordon(now_ns),
                Err(error) if error.reason == ApiErrorReason::Conflict || retriable(result) => {
                    vec![DrainAction::After { after: CORDON_RETRY_INTERVAL, call: DrainCall::GetNode }]
                }
                Err(error) => self.finish(now_ns, DrainResult::Failed(error.to_string())),
            },
            DrainCall::ListPods => match result {
                Ok(ApiOk::List { items, .. }) => self.evict_all(items, now_ns),
                _ if retriable(result) => {
                    vec![DrainAction::After { after: CORDON_RETRY_INTERVAL, call: DrainCall::ListPods }]
                }
                Err(error) => self.finish(now_ns, DrainResult::Failed(error.to_string())),
                Ok(_) => self.finish(now_ns, DrainResult::Failed("unexpected answer".into())),
            },
            DrainCall::Evict { pod } => match result {
                Ok(_) => {
                    self.report.evicted.push(pod.clone());
                    let uid = self.outstanding.get(&pod).cloned().flatten();
                    vec![DrainAction::After { after: DELETE_POLL_INTERVAL, call: DrainCall::WaitDeleted { pod, uid } }]
                }
                Err(error) if error.reason == ApiErrorReason::NotFound => self.gone(&pod, now_ns),
                Err(error) if error.reason == ApiErrorReason::TooManyRequests => {
                    self.report.too_many_requests += 1;
                    vec![DrainAction::After { after: EVICTION_RETRY_INTERVAL, call: DrainCall::Evict { pod } }]
                }
                _ if retriable(result) => {
                    vec![DrainAction::After { after: EVICTION_RETRY_INTERVAL, call: DrainCall::Evict { pod } }]
                }
                Err(error) => {
                    self.finish(now_ns, DrainResult::Failed(format!("error when evicting pod {pod:?}: {error}")))
                }
            },
            DrainCall::WaitDeleted { pod, uid } => {
                let gone = match result {
                    Err(error) => error.reason == ApiErrorReason::NotFound,
                    Ok(ApiOk::Object(object)) => object.meta().uid != uid,
                    Ok(_) => false,
                };
                if gone {
                    self.gone(&pod, now_ns)
                } else {
                    vec![DrainAction::After { after: DELETE_POLL_INTERVAL, call: DrainCall::WaitDeleted { pod, uid } }]
                }
            }
        }
    }

    /// A timer the machine asked for has fired.
    pub fn on_timer(&mut self, call: DrainCall, now_ns: u64) -> Vec<DrainAction> {
        if self.is_finished() {
            return Vec::new();
        }
        if let Some(actions) = self.timed_out(now_ns) {
            return actions;
        }
        match call {
            DrainCall::GetNode | DrainCall::UpdateNode => vec![self.get_node()],
            DrainCall::ListPods => vec![self.list_pods()],
            DrainCall::Evict { pod } => vec![self.evict(&pod)],
            DrainCall::WaitDeleted { pod, uid } => {
                let namespace = self.namespace_of_pod.get(&pod).cloned().unwrap_or_default();
                let key = ObjectKey::new(Kind::Pod, &namespace, &pod);
                vec![DrainAction::Send { request: ApiRequest::Get { key }, call: DrainCall::WaitDeleted { pod, uid } }]
            }
        }
    }

    fn list_pods(&self) -> DrainAction {
        let request = ApiRequest::List { kind: Kind::Pod, namespace: None, from: ListFrom::Quorum };
        DrainAction::Send { request, call: DrainCall::ListPods }
    }

    fn after_cordon(&mut self, now_ns: u64) -> Vec<DrainAction> {
        match self.report.command {
            NodeCommand::Cordon { .. } => self.finish(now_ns, DrainResult::Done),
            NodeCommand::Drain { .. } => vec![self.list_pods()],
        }
    }

    fn evict_all(&mut self, items: &[Rc<Object>], now_ns: u64) -> Vec<DrainAction> {
        let force = matches!(self.report.command, NodeCommand::Drain { force: true, .. });
        let node = self.node().to_string();
        let mut unmanaged = Vec::new();
        for object in items {
            let Object::Pod(pod) = object.as_ref() else { continue };
            if pod.spec.node_name.as_deref() != Some(node.as_str()) || skipped(pod) {
                continue;
            }
            if pod.metadata.controller_ref().is_none() && !force {
                unmanaged.push(pod.metadata.name.clone());
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
            self.namespace_of_pod.insert(pod.metadata.name.clone(), namespace);
            self.outstanding.insert(pod.metadata.name.clone(), pod.metadata.uid.clone());
        }
        if !unmanaged.is_empty() {
            let message = format!(
                "cannot delete Pods that declare no controller (use --force to override): {}",
                unmanaged.join(", ")
            );
            return self.finish(now_ns, DrainResult::Failed(message));
        }
        if self.outstanding.is_empty() {
            return self.finish(now_ns, DrainResult::Done);
        }
        let pods: Vec<String> = self.outstanding.keys().cloned().collect();
        pods.iter().map(|pod| self.evict(pod)).collect()
    }

    fn gone(&mut self, pod: &str, now_ns: u64) -> Vec<DrainAction> {
        self.outstanding.remove(pod);
        if self.outstanding.is_empty() {
            return self.finish(now_ns, DrainResult::Done);
        }
        Vec::new()
    }
}

/// Pods `kubectl drain --ignore-daemonsets` leaves alone: DaemonSet-owned and mirror pods.
fn skipped(pod: &Pod) -> bool {
    pod.metadata.controller_ref().is_some_and(|owner| owner.kind == "DaemonSet")
        || pod.metadata.annotations.contains_key(MIRROR_POD_ANNOTATION)
}
