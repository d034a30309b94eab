//! The cloud controller manager's controllers (`k8s.io/cloud-provider/controllers`), calling the
//! simulated cloud ([`crate::cloud`]) as external calls of their host.
//!
//! - [`ServiceLoadBalancerController`] (`service/controller.go`): a `type: LoadBalancer` Service
//!   gets the finalizer `service.kubernetes.io/load-balancer-cleanup`, then a load balancer from
//!   the cloud (`EnsureLoadBalancer`), then `status.loadBalancer.ingress[].ip`. A failed or
//!   timed-out call is retried with the service controller's per-key exponential backoff
//!   (5 s doubling to 300 s). A Service being deleted (or no longer of type LoadBalancer) that
//!   still carries the finalizer has its load balancer deleted (`EnsureLoadBalancerDeleted`), then
//!   the finalizer removed, which lets the deletion complete.
//! - [`CloudNodeLifecycleController`] (`nodelifecycle/node_lifecycle_controller.go`): every 5 s
//!   (`--node-monitor-period`), each node whose Ready condition is not True is looked up in the
//!   cloud (`InstanceExists`); a node whose instance is gone is deleted. Ready nodes are left
//!   alone, as upstream does.

use crate::api::{ApiRequest, Msg, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::cloud::{CloudRequest, CloudResponse};
use crate::controller::{ExternalCall, Reconcile, ReconcileContext, Reconciler};
use crate::objects::meta::ConditionStatus;
use crate::objects::networking::{LoadBalancerIngress, ServiceType};
use crate::objects::{Kind, Object, Service};
use kubedst_sim::ComponentId;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// The finalizer that keeps a LoadBalancer Service until its load balancer is deleted.
pub const LOAD_BALANCER_CLEANUP_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
/// The service controller's retry backoff (`minRetryDelay`, `maxRetryDelay`).
pub const MIN_RETRY_DELAY: Duration = Duration::from_secs(5);
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// How long a load balancer call may take before the controller gives up on it (longer than
/// any profile's provisioning latency).
pub const LOAD_BALANCER_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// `--node-monitor-period` of the cloud node lifecycle controller.
pub const NODE_MONITOR_PERIOD: Duration = Duration::from_secs(5);
const INSTANCE_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Look again right after a call ends (the host re-runs a key whose call was in flight).
const CALL_POLL: Duration = Duration::from_millis(1);

/// The retry delay after `failures` consecutive failures: 5 s, 10 s, 20 s, ... capped at 300 s.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    (MIN_RETRY_DELAY * (1u32 << exponent)).min(MAX_RETRY_DELAY)
}

/// The cloud's name for a Service's load balancer (`cloudprovider.DefaultLoadBalancerName`): "a"
/// and the uid without dashes, at most 32 characters.
pub fn load_balancer_name(service: &Service) -> String {
    let uid: String = service.metadata.uid.as_deref().unwrap_or_default().chars().filter(|c| *c != '-').collect();
    let mut name = format!("a{uid}");
    name.truncate(32);
    name
}

/// Where one Service's load balancer stands, as this controller knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LbPhase {
    Idle,
    Calling,
    Provisioned(String),
    Deleted,
    /// The last call failed; the next one is due at this time.
    BackingOff {
        until_ns: u64,
    },
    /// A call failed and the backoff is not set yet (the result handler has no clock).
    Failed,
}

#[derive(Clone, Debug)]
struct LbState {
    uid: Option<String>,
    phase: LbPhase,
    failures: u32,
}

/// The cloud controller manager's service controller.
pub struct ServiceLoadBalancerController {
    cloud: ComponentId,
    services: BTreeMap<ObjectKey, LbState>,
    /// Counters for tests: calls made, failed (or timed out), and retries after a failure.
    pub calls: u64,
    pub failures: u64,
    pub retries: u64,
}

impl ServiceLoadBalancerController {
    pub fn new(cloud: ComponentId) -> Self {
        ServiceLoadBalancerController { cloud, services: BTreeMap::new(), calls: 0, failures: 0, retries: 0 }
    }

    fn call(&mut self, request: CloudRequest) -> ExternalCall {
        self.calls += 1;
        ExternalCall { to: self.cloud, msg: Msg::Cloud(request), timeout: LOAD_BALANCER_CALL_TIMEOUT }
    }
}

fn wants_load_balancer(service: &Service) -> bool {
    service.spec.service_type == Some(ServiceType::LoadBalancer) && !service.metadata.is_terminating()
}

fn has_cleanup_finalizer(service: &Service) -> bool {
    service.metadata.finalizers.iter().any(|f| f == LOAD_BALANCER_CLEANUP_FINALIZER)
}

impl Reconciler for ServiceLoadBalancerController {
    fn name(&self) -> &'static str {
        "service-lb"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Service]
    }

    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        match (event, &**object) {
            (CacheEvent::Deleted(_), _) => {
                self.services.remove(&ObjectKey::of(object));
                Vec::new()
            }
            (_, Object::Service(service)) if wants_load_balancer(service) || has_cleanup_finalizer(service) => {
                vec![ObjectKey::of(object)]
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(Object::Service(service)) = cache.get(key).map(|o| &**o) else {
            self.services.remove(key);
            return Reconcile::done();
        };
        let uid = service.metadata.uid.clone();
        let state = self.services.entry(key.clone()).or_insert_with(|| LbState {
            uid: uid.clone(),
            phase: LbPhase::Idle,
            failures: 0,
        });
        if state.uid != uid {
            *state = LbState { uid, phase: LbPhase::Idle, failures: 0 };
        }
        let wants = wants_load_balancer(service);
        if !wants && !has_cleanup_finalizer(service) {
            return Reconcile::done();
        }
        if wants && !has_cleanup_finalizer(service) {
            // addFinalizer comes before the load balancer, so deletion cannot outrun cleanup.
            let mut updated = service.clone();
            updated.metadata.finalizers.push(LOAD_BALANCER_CLEANUP_FINALIZER.to_string());
            return Reconcile::write(ApiRequest::Update { object: Rc::new(Object::Service(updated)) });
        }
        let now_ns = ctx.now_ns;
        if state.phase == LbPhase::Failed {
            state.failures += 1;
            let delay = retry_delay(state.failures);
            state.phase = LbPhase::BackingOff { until_ns: now_ns.saturating_add(delay.as_nanos() as u64) };
            return Reconcile::done().requeue_after(delay);
        }
        if let LbPhase::BackingOff { until_ns } = state.phase {
            if now_ns < until_ns {
                return Reconcile::done().requeue_after(Duration::from_nanos(until_ns - now_ns));
            }
            self.retries += 1;
            state.phase = LbPhase::Idle;
        }
        let name = load_balancer_name(service);
        match (wants, state.phase.clone()) {
            (_, LbPhase::Calling) => Reconcile::done().requeue_after(LOAD_BALANCER_CALL_TIMEOUT),
            (true, LbPhase::Provisioned(ip)) => {
                let ingress = vec![LoadBalancerIngress { ip: Some(ip), ..LoadBalancerIngress::default() }];
                if service.status.load_balancer.ingress == ingress {
                    return Reconcile::done();
                }
                let mut updated = service.clone();
                updated.status.load_balancer.ingress = ingress;
                Reconcile::write(ApiRequest::UpdateStatus { object: Rc::new(Object::Service(updated)) })
            }
            (true, _) => {
                state.phase = LbPhase::Calling;
                let call = self.call(CloudRequest::EnsureLoadBalancer { name });
                Reconcile::call(call).requeue_after(CALL_POLL)
            }
            (false, LbPhase::Deleted) => {
                // The load balancer is gone: release the Service.
                let mut updated = service.clone();
                updated.metadata.finalizers.retain(|f| f != LOAD_BALANCER_CLEANUP_FINALIZER);
                if !service.metadata.is_terminating() {
                    updated.status.load_balancer.ingress.clear();
                }
                state.phase = LbPhase::Idle;
                Reconcile::write(ApiRequest::Update { object: Rc::new(Object::Service(updated)) })
            }
            (false, _) => {
                state.phase = LbPhase::Calling;
                let call = self.call(CloudRequest::EnsureLoadBalancerDeleted { name });
                Reconcile::call(call).requeue_after(CALL_POLL)
            }
        }
    }

    fn on_call_result(&mut self, key: &ObjectKey, _call: &ExternalCall, answer: Option<&Msg>) {
        let Some(state) = self.services.get_mut(key) else { return };
        state.phase = match answer {
            Some(Msg::CloudResult(CloudResponse::LoadBalancer { ip, .. })) => {
                state.failures = 0;
                LbPhase::Provisioned(ip.clone())
            }
            Some(Msg::CloudResult(CloudResponse::LoadBalancerDeleted { .. })) => {
                state.failures = 0;
                LbPhase::Deleted
            }
            _ => {
                self.failures += 1;
                LbPhase::Failed
            }
        };
    }
}

/// The cloud controller manager's node lifecycle controller.
pub struct CloudNodeLifecycleController {
    cloud: ComponentId,
    /// Nodes the cloud reported gone, to delete.
    gone: BTreeMap<String, bool>,
    /// Nodes deleted because their instance was gone, for tests.
    pub nodes_deleted: u64,
}

impl CloudNodeLifecycleController {
    pub fn new(cloud: ComponentId) -> Self {
        CloudNodeLifecycleController { cloud, gone: BTreeMap::new(), nodes_deleted: 0 }
    }
}

impl Reconciler for CloudNodeLifecycleController {
    fn name(&self) -> &'static str {
        "cloud-node-lifecycle"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Node]
    }

    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        match event {
            CacheEvent::Added(object) => vec![ObjectKey::of(object)],
            CacheEvent::Deleted(object) => {
                self.gone.remove(&object.meta().name);
                Vec::new()
            }
            CacheEvent::Updated(..) => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(Object::Node(node)) = cache.get(key).map(|o| &**o) else {
            self.gone.remove(&key.name);
            return Reconcile::done();
        };
        let ready =
            node.status.conditions.iter().any(|c| c.condition_type == "Ready" && c.status == ConditionStatus::True);
        if ready {
            self.gone.remove(&key.name);
            return Reconcile::done().requeue_after(NODE_MONITOR_PERIOD);
        }
        if self.gone.remove(&key.name) == Some(true) {
            self.nodes_deleted += 1;
            return Reconcile::write(ApiRequest::Delete {
                key: key.clone(),
                uid: node.metadata.uid.clone(),
                grace_period_seconds: None,
                propagation: None,
            })
            .requeue_after(NODE_MONITOR_PERIOD);
        }
        let call = ExternalCall {
            to: self.cloud,
            msg: Msg::Cloud(CloudRequest::InstanceExists { node: key.name.clone() }),
            timeout: INSTANCE_CALL_TIMEOUT,
        };
        Reconcile::call(call).requeue_after(NODE_MONITOR_PERIOD)
    }

    fn on_call_result(&mut self, key: &ObjectKey, _call: &ExternalCall, answer: Option<&Msg>) {
        if let Some(Msg::CloudResult(CloudResponse::Instance { exists: false, .. })) = answer {
            self.gone.insert(key.name.clone(), true);
        }
    }
}
