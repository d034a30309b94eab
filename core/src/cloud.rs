//! A simulated cloud provider: the API that a cloud controller manager calls to provision load
//! balancers and to ask whether a node's instance still exists.
//!
//! The provider runs as one component ([`CloudProvider`]) on its own machine (`cloud-api`), so the
//! network between the control plane and the cloud (partitions, loss, latency) is part of what a
//! run exercises. A [`CloudProfile`] stands for one cloud: how long provisioning takes and how
//! often it fails. Failures are drawn from the component's seeded stream with integer ratios.
//!
//! Calls are synchronous request/response, as cloud SDK calls made by the cloud-provider plugins
//! are: `EnsureLoadBalancer` answers once the load balancer exists (after the profile's latency)
//! or provisioning failed; the caller's timeout must exceed the latency.
//!
//! The cloud's state (instances, load balancers) is the provider's, not the simulated machine's:
//! it survives a crash of `cloud-api` (operations in flight are lost; callers time out and retry).

use crate::api::{Msg, Timer};
use kubedst_sim::{stable_hash_str, Component, ComponentId, Ctx, Input, Ratio, ReplyTo};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One cloud's behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudProfile {
    /// A name for reports (`fast-reliable`, `slow-flaky`).
    pub name: String,
    /// How long provisioning one load balancer takes, successful or not.
    pub provision_latency: Duration,
    /// How long deleting one takes.
    pub deprovision_latency: Duration,
    /// The chance that one provisioning attempt fails.
    pub provision_failure: Ratio,
}

impl CloudProfile {
    /// A cloud that provisions in 2 s and never fails.
    pub fn fast_reliable() -> CloudProfile {
        CloudProfile {
            name: "fast-reliable".to_string(),
            provision_latency: Duration::from_secs(2),
            deprovision_latency: Duration::from_secs(1),
            provision_failure: Ratio::ZERO,
        }
    }

    /// A cloud that takes 20 s per attempt and fails half of them.
    pub fn slow_flaky() -> CloudProfile {
        CloudProfile {
            name: "slow-flaky".to_string(),
            provision_latency: Duration::from_secs(20),
            deprovision_latency: Duration::from_secs(10),
            provision_failure: Ratio::new(1, 2),
        }
    }

    /// A profile by name: `fast-reliable` or `slow-flaky`.
    pub fn by_name(name: &str) -> Result<CloudProfile, String> {
        match name {
            "fast-reliable" => Ok(CloudProfile::fast_reliable()),
            "slow-flaky" => Ok(CloudProfile::slow_flaky()),
            other => Err(format!("unknown cloud profile {other:?}: expected fast-reliable or slow-flaky")),
        }
    }
}

/// A call of the cloud's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudRequest {
    /// Create the load balancer `name` if it does not exist; answer with its address.
    EnsureLoadBalancer { name: String },
    /// Delete the load balancer `name` (done if it does not exist).
    EnsureLoadBalancerDeleted { name: String },
    /// Whether the instance behind node `node` exists (InstancesV2 `InstanceExists`).
    InstanceExists { node: String },
    /// The harness (or a fault): the instance is gone, as if terminated in the cloud console.
    RemoveInstance { node: String },
}

impl CloudRequest {
    pub fn trace_digest(&self) -> u64 {
        match self {
            CloudRequest::EnsureLoadBalancer { name } => 1 ^ stable_hash_str(name) << 4,
            CloudRequest::EnsureLoadBalancerDeleted { name } => 2 ^ stable_hash_str(name) << 4,
            CloudRequest::InstanceExists { node } => 3 ^ stable_hash_str(node) << 4,
            CloudRequest::RemoveInstance { node } => 4 ^ stable_hash_str(node) << 4,
        }
    }
}

/// The cloud's answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudResponse {
    /// The load balancer exists, at `ip`.
    LoadBalancer { name: String, ip: String },
    /// The load balancer is gone.
    LoadBalancerDeleted { name: String },
    /// Whether the instance exists.
    Instance { node: String, exists: bool },
    /// The operation failed (a quota, a transient API error): retry later.
    Failed { reason: String },
}

impl CloudResponse {
    pub fn trace_digest(&self) -> u64 {
        match self {
            CloudResponse::LoadBalancer { name, ip } => 1 ^ (stable_hash_str(name) ^ stable_hash_str(ip) << 1) << 4,
            CloudResponse::LoadBalancerDeleted { name } => 2 ^ stable_hash_str(name) << 4,
            CloudResponse::Instance { node, exists } => 3 ^ (stable_hash_str(node) ^ u64::from(*exists)) << 4,
            CloudResponse::Failed { reason } => 4 ^ stable_hash_str(reason) << 4,
        }
    }
}

/// What survives a crash of the cloud's machine: the cloud itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudState {
    /// Instances by node name.
    pub instances: BTreeSet<String>,
    /// Load balancers by name, with their addresses.
    pub load_balancers: BTreeMap<String, String>,
    /// The next address to hand out (203.0.113.0/24 and on, documentation ranges).
    pub next_address: u32,
}

/// An operation waiting for its latency to pass.
#[derive(Debug)]
enum Operation {
    Provision { reply: ReplyTo, name: String },
    Deprovision { reply: ReplyTo, name: String },
}

/// The cloud provider's API endpoint.
pub struct CloudProvider {
    pub profile: CloudProfile,
    state: CloudState,
    operations: BTreeMap<u64, Operation>,
    next_operation: u64,
    /// Counters for tests and reports.
    pub provision_attempts: u64,
    pub provision_failures: u64,
    pub deprovisions: u64,
    /// Ground truth of who acted on the cloud: per calling component, its first and last
    /// request's arrival (the cloud machine's clock, ns) and how many it made. With several cloud controller
    /// managers, the leader checker reads beliefs; this reads what reached the cloud.
    pub callers: BTreeMap<ComponentId, CallerStats>,
}

/// One caller's requests, as the cloud saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallerStats {
    pub first_ns: u64,
    pub last_ns: u64,
    pub requests: u64,
}

impl CloudProvider {
    /// A cloud with `instances` (node names), or the state it had before a crash.
    pub fn new(profile: CloudProfile, instances: &[String], persisted: Option<Box<dyn std::any::Any>>) -> Self {
        let state = match persisted.and_then(|state| state.downcast::<CloudState>().ok()) {
            Some(state) => *state,
            None => CloudState { instances: instances.iter().cloned().collect(), ..CloudState::default() },
        };
        CloudProvider {
            profile,
            state,
            operations: BTreeMap::new(),
            next_operation: 0,
            provision_attempts: 0,
            provision_failures: 0,
            deprovisions: 0,
            callers: BTreeMap::new(),
        }
    }

    /// Ground truth: the cloud's instances and load balancers.
    pub fn state(&self) -> &CloudState {
        &self.state
    }

    fn start(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, after: Duration, operation: Operation) {
        let token = self.next_operation;
        self.next_operation += 1;
        self.operations.insert(token, operation);
        ctx.set_timer(after, Timer::User(token));
    }

    fn address(&mut self) -> String {
        let n = self.state.next_address;
        self.state.next_address += 1;
        format!("203.0.{}.{}", 113 + n / 254, n % 254 + 1)
    }
}

impl Component<Msg, Timer> for CloudProvider {
    fn crash(self: Box<Self>) -> Option<Box<dyn std::any::Any>> {
        Some(Box::new(self.state))
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Request { reply, msg: Msg::Cloud(request) } => {
                let now_ns = ctx.now().as_nanos();
                let stats = self
                    .callers
                    .entry(reply.from)
                    .or_insert(CallerStats { first_ns: now_ns, ..CallerStats::default() });
                stats.last_ns = now_ns;
                stats.requests += 1;
                match request {
                    CloudRequest::EnsureLoadBalancer { name } => {
                        if let Some(ip) = self.state.load_balancers.get(&name) {
                            let response = CloudResponse::LoadBalancer { name, ip: ip.clone() };
                            ctx.respond(reply, Msg::CloudResult(response));
                        } else {
                            let latency = self.profile.provision_latency;
                            self.start(ctx, latency, Operation::Provision { reply, name });
                        }
                    }
                    CloudRequest::EnsureLoadBalancerDeleted { name } => {
                        let latency = self.profile.deprovision_latency;
                        self.start(ctx, latency, Operation::Deprovision { reply, name });
                    }
                    CloudRequest::InstanceExists { node } => {
                        let exists = self.state.instances.contains(&node);
                        ctx.respond(reply, Msg::CloudResult(CloudResponse::Instance { node, exists }));
                    }
                    CloudRequest::RemoveInstance { node } => {
                        self.state.instances.remove(&node);
                    }
                }
            }
            // The harness injects a removal as a message to the cloud itself.
            Input::Message { msg: Msg::Cloud(CloudRequest::RemoveInstance { node }), .. } => {
                self.state.instances.remove(&node);
            }
            Input::Timer { timer: Timer::User(token), .. } => match self.operations.remove(&token) {
                Some(Operation::Provision { reply, name }) => {
                    self.provision_attempts += 1;
                    let failure = self.profile.provision_failure;
                    let response = if ctx.rng().chance(failure) {
                        self.provision_failures += 1;
                        CloudResponse::Failed { reason: format!("provisioning load balancer {name} failed") }
                    } else {
                        // A concurrent attempt may have created it meanwhile: keep one address.
                        let ip = match self.state.load_balancers.get(&name) {
                            Some(ip) => ip.clone(),
                            None => {
                                let ip = self.address();
                                self.state.load_balancers.insert(name.clone(), ip.clone());
                                ip
                            }
                        };
                        CloudResponse::LoadBalancer { name, ip }
                    };
                    ctx.respond(reply, Msg::CloudResult(response));
                }
                Some(Operation::Deprovision { reply, name }) => {
                    self.deprovisions += 1;
                    self.state.load_balancers.remove(&name);
                    ctx.respond(reply, Msg::CloudResult(CloudResponse::LoadBalancerDeleted { name }));
                }
                None => {}
            },
            _ => {}
        }
    }
}
