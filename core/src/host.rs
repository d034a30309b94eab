//! The controller host: a component that runs reconcilers the way kube-controller-manager and
//! kube-scheduler run theirs, over shared informers, one work queue per reconciler, and one API
//! client. Users run their own reconcilers in it too.
//!
//! With leader election ([`ControllerHost::with_leader_election`]) the host is one replica of an
//! HA control plane: its informers always run (a warm standby, as kube-scheduler starts its
//! informers before it elects; kube-controller-manager starts its controllers and their informers
//! only in `OnStartedLeading`), but its reconcilers see events, reconcile and write only while it
//! leads. Becoming leader builds fresh reconcilers and hands them every cached object as an
//! addition (what a handler added to a synced informer receives). Losing the lease ends the process
//! upstream (`klog.Fatalf("leaderelection lost")` in kube-controller-manager's and kube-scheduler's
//! `OnStoppedLeading`) and the kubelet restarts it: the host models that by dropping every
//! reconciler, queue and write in flight (their results are ignored), rebuilding the reconcilers
//! from the factory and going back to candidate. The informer cache survives that restart (a
//! simplification: a real restart relists).
//!
//! A user's controller gets a host of its own with
//! [`crate::cluster::ClusterConfig::with_controller`] (one per control-plane replica, leader-elected
//! when there are several); the reconciler API is in [`crate::controller`].

#![warn(missing_docs)]

use crate::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, Msg, ObjectKey, Timer};
use crate::cache::{Cache, CacheEvent};
use crate::client::{ApiClient, Informer, InformerOutcome, WorkQueue};
use crate::cluster::ReconcilerFactory;
use crate::controller::{ExternalCall, ReconcileContext, Reconciler};
use crate::leader::{ElectorEffect, LeaderElectionConfig, LeaderElector};
use crate::objects::Kind;
use kubedst_sim::{Component, ComponentId, Ctx, Input, RequestId, TimerId};
use std::collections::{BTreeMap, BTreeSet};

/// A write in flight: which reconciler asked for it, for which key.
struct InFlight {
    controller: usize,
    key: ObjectKey,
    request: ApiRequest,
}

/// Runs reconcilers inside the simulation.
pub struct ControllerHost {
    client: ApiClient,
    informers: Vec<Informer>,
    cache: Cache,
    reconcilers: Vec<Box<dyn Reconciler>>,
    /// For each reconciler, the kinds it watches.
    watched: Vec<BTreeSet<Kind>>,
    queues: Vec<WorkQueue>,
    in_flight: BTreeMap<RequestId, InFlight>,
    /// External calls in flight: which reconciler, for which key.
    calls_in_flight: BTreeMap<RequestId, (usize, ObjectKey, ExternalCall)>,
    /// Per reconciler, keys whose writes are still in flight, with how many. client-go's sync
    /// handlers make their API calls synchronously, so a key stays "processing" until its calls
    /// return, and events meanwhile only mark it dirty: it is synced once more afterwards.
    processing: Vec<BTreeMap<ObjectKey, usize>>,
    dirty: Vec<BTreeSet<ObjectKey>>,
    /// Keys waiting for a requeue timer, with the timer and its deadline on this machine's clock:
    /// like client-go's delaying queue, a key waits once, for the earliest time asked.
    waiting: BTreeMap<(usize, ObjectKey), (TimerId, u64)>,
    /// Builds the reconcilers again after a (modelled) restart; `None`: they are kept.
    factory: Option<ReconcilerFactory>,
    /// The leader elector, if the host is one of several replicas.
    elector: Option<LeaderElector>,
    /// The elector's API call in flight.
    elector_request: Option<RequestId>,
    /// Reconciles run (counters for reports and tests).
    pub reconciles: u64,
    /// Writes the reconcilers asked for (the elector's lease requests are not counted).
    pub writes: u64,
    /// Of those, writes that failed (conflicts, timeouts, refusals).
    pub write_errors: u64,
    /// Times the host started or stopped leading (each counts one).
    pub leader_transitions: u64,
    /// API calls the elector made (Get, Create, Update of the Lease).
    pub lease_requests: u64,
}

impl ControllerHost {
    /// A host for `reconcilers`, talking to `api_servers` (the first is tried first).
    pub fn new(api_servers: Vec<ComponentId>, reconcilers: Vec<Box<dyn Reconciler>>) -> ControllerHost {
        let watched: Vec<BTreeSet<Kind>> =
            reconcilers.iter().map(|reconciler| reconciler.watches().into_iter().collect()).collect();
        let kinds: BTreeSet<Kind> = watched.iter().flatten().copied().collect();
        let informers = kinds.into_iter().enumerate().map(|(index, kind)| Informer::new(index, kind)).collect();
        let queues = reconcilers.iter().map(|_| WorkQueue::default()).collect();
        let processing = reconcilers.iter().map(|_| BTreeMap::new()).collect();
        let dirty = reconcilers.iter().map(|_| BTreeSet::new()).collect();
        ControllerHost {
            client: ApiClient::new(api_servers),
            informers,
            cache: Cache::new(),
            reconcilers,
            watched,
            queues,
            in_flight: BTreeMap::new(),
            calls_in_flight: BTreeMap::new(),
            processing,
            dirty,
            waiting: BTreeMap::new(),
            factory: None,
            elector: None,
            elector_request: None,
            reconciles: 0,
            writes: 0,
            write_errors: 0,
            leader_transitions: 0,
            lease_requests: 0,
        }
    }

    /// A host whose reconcilers `factory` builds (and builds again after a restart).
    pub fn from_factory(api_servers: Vec<ComponentId>, factory: ReconcilerFactory) -> ControllerHost {
        let mut host = ControllerHost::new(api_servers, factory());
        host.factory = Some(factory);
        host
    }

    /// The identity the host's requests carry (see [`crate::rbac`]).
    pub fn with_user(mut self, user: &str) -> ControllerHost {
        self.client.user = std::rc::Rc::from(user);
        self
    }

    /// Switches deliberate bugs on in the host's informers (negative controls; see
    /// [`crate::mutants`]; the leader elector takes them in its config).
    pub fn with_mutants(mut self, mutants: crate::mutants::Mutants) -> ControllerHost {
        for informer in &mut self.informers {
            informer.mutants = mutants;
        }
        self
    }

    /// Makes the host a candidate for the lease `config` names: it acts only while it leads.
    pub fn with_leader_election(mut self, config: LeaderElectionConfig) -> ControllerHost {
        self.elector = Some(LeaderElector::new(config));
        self
    }

    /// Whether the host acts now: it leads its lease, or it runs without leader election. This is
    /// the ground truth behind "at most one leader acts at any instant".
    pub fn is_leader(&self) -> bool {
        self.elector.as_ref().is_none_or(LeaderElector::is_leading)
    }

    /// The host's informers (for the watch checker's counters).
    pub fn informers(&self) -> &[Informer] {
        &self.informers
    }

    /// The elector, if the host runs leader election.
    pub fn elector(&self) -> Option<&LeaderElector> {
        self.elector.as_ref()
    }

    fn run_elector(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, effects: Vec<ElectorEffect>) {
        let mut work: std::collections::VecDeque<ElectorEffect> = effects.into();
        while let Some(effect) = work.pop_front() {
            match effect {
                ElectorEffect::Send(request) => {
                    self.lease_requests += 1;
                    self.elector_request = Some(self.client.send(ctx, request));
                }
                ElectorEffect::SetTimer { after, token } => {
                    ctx.set_timer(after, Timer::User(token));
                }
                ElectorEffect::StartedLeading => {
                    self.leader_transitions += 1;
                    self.start_leading();
                }
                ElectorEffect::StoppedLeading => {
                    self.leader_transitions += 1;
                    self.elector_request = None;
                    self.restart_reconcilers();
                    let now_ns = ctx.now().as_nanos();
                    if let Some(elector) = self.elector.as_mut() {
                        work.extend(elector.restart(now_ns));
                    }
                }
            }
        }
    }

    /// `OnStartedLeading`: the reconcilers see every cached object, as handlers added to synced
    /// informers do.
    fn start_leading(&mut self) {
        let mut events = Vec::new();
        for informer in &self.informers {
            events.extend(
                self.cache.list(informer.kind, None).into_iter().map(|object| CacheEvent::Added(object.clone())),
            );
        }
        self.dispatch_events(events);
    }

    /// The process exits and restarts: reconcilers, queues and writes in flight are gone.
    fn restart_reconcilers(&mut self) {
        if let Some(factory) = &self.factory {
            self.reconcilers = factory();
            self.watched =
                self.reconcilers.iter().map(|reconciler| reconciler.watches().into_iter().collect()).collect();
        }
        self.queues = self.reconcilers.iter().map(|_| WorkQueue::default()).collect();
        self.processing = self.reconcilers.iter().map(|_| BTreeMap::new()).collect();
        self.dirty = self.reconcilers.iter().map(|_| BTreeSet::new()).collect();
        self.waiting.clear();
        self.in_flight.clear();
        self.calls_in_flight.clear();
    }

    /// The host's view of the cluster (possibly stale).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The reconciler at `index`, in the order the factory built them.
    pub fn reconciler(&self, index: usize) -> &dyn Reconciler {
        self.reconcilers[index].as_ref()
    }

    /// The reconciler of type `R`, if the host runs one.
    pub fn reconciler_of<R: Reconciler + 'static>(&self) -> Option<&R> {
        self.reconcilers.iter().find_map(|reconciler| {
            let any: &dyn std::any::Any = reconciler.as_ref();
            any.downcast_ref::<R>()
        })
    }

    /// How many lists the informers have made (1 each at start; more after 410 Gone).
    pub fn informer_lists(&self) -> u64 {
        self.informers.iter().map(|informer| informer.relists).sum()
    }

    /// Whether every informer has listed once (reconciles wait for it, as
    /// `cache.WaitForCacheSync` makes controllers wait).
    pub fn synced(&self) -> bool {
        self.informers.iter().all(|informer| informer.synced)
    }

    fn dispatch_events(&mut self, events: Vec<CacheEvent>) {
        if !self.is_leader() {
            return;
        }
        for event in events {
            let kind = event.object().kind();
            for (index, reconciler) in self.reconcilers.iter_mut().enumerate() {
                if self.watched[index].contains(&kind) {
                    for key in reconciler.on_event(&event, &self.cache) {
                        self.queues[index].add(key);
                    }
                }
            }
        }
    }

    fn process_queues(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        if !self.synced() || !self.is_leader() {
            return;
        }
        let now_ns = ctx.now().as_nanos();
        for index in 0..self.reconcilers.len() {
            while let Some(key) = self.queues[index].pop() {
                if self.processing[index].contains_key(&key) {
                    self.dirty[index].insert(key);
                    continue;
                }
                self.reconciles += 1;
                let decision = {
                    let mut reconcile_ctx = ReconcileContext { now_ns, rng: ctx.rng() };
                    self.reconcilers[index].reconcile(&key, &self.cache, &mut reconcile_ctx)
                };
                let outstanding = decision.writes.len() + decision.calls.len();
                if outstanding > 0 {
                    self.processing[index].insert(key.clone(), outstanding);
                }
                for call in decision.calls {
                    let id = ctx.request(call.to, call.msg.clone(), call.timeout);
                    self.calls_in_flight.insert(id, (index, key.clone(), call));
                }
                for request in decision.writes {
                    self.writes += 1;
                    let id = self.client.send(ctx, request.clone());
                    self.in_flight.insert(id, InFlight { controller: index, key: key.clone(), request });
                }
                if let Some(after) = decision.requeue_after {
                    self.add_after(ctx, index, key.clone(), after);
                }
            }
        }
    }

    fn elector_result(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, result: Result<ApiOk, ApiError>) {
        self.elector_request = None;
        if let Err(error) = &result {
            if matches!(error.reason, ApiErrorReason::Timeout | ApiErrorReason::ServiceUnavailable) {
                self.client.fail_over();
            }
        }
        let Some(elector) = self.elector.as_mut() else { return };
        let effects = elector.on_result(&result, ctx.rng());
        self.run_elector(ctx, effects);
    }

    /// Queues `key` again after `after`, unless it already waits for an earlier time.
    fn add_after(
        &mut self,
        ctx: &mut Ctx<'_, Msg, Timer>,
        controller: usize,
        key: ObjectKey,
        after: std::time::Duration,
    ) {
        let deadline_ns = ctx.now().as_nanos().saturating_add(kubedst_sim::time::duration_nanos(after));
        let slot = (controller, key);
        if let Some((timer, existing_ns)) = self.waiting.get(&slot) {
            if *existing_ns <= deadline_ns {
                return;
            }
            ctx.cancel_timer(*timer);
        }
        let timer = ctx.set_timer(after, Timer::Requeue { controller, key: slot.1.clone() });
        self.waiting.insert(slot, (timer, deadline_ns));
    }

    /// One of the key's writes or calls has ended: once all have, a key marked dirty meanwhile is
    /// queued again.
    fn release(&mut self, controller: usize, key: &ObjectKey) {
        let processing = &mut self.processing[controller];
        if let Some(outstanding) = processing.get_mut(key) {
            *outstanding -= 1;
            if *outstanding == 0 {
                processing.remove(key);
                if self.dirty[controller].remove(key) {
                    self.queues[controller].add(key.clone());
                }
            }
        }
    }

    fn finish_call(&mut self, id: RequestId, answer: Option<&Msg>) {
        let Some((controller, key, call)) = self.calls_in_flight.remove(&id) else { return };
        self.release(controller, &key);
        self.reconcilers[controller].on_call_result(&key, &call, answer);
    }

    fn finish_write(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: RequestId, result: Result<ApiOk, ApiError>) {
        let Some(write) = self.in_flight.remove(&id) else { return };
        self.release(write.controller, &write.key);
        let retry = match &result {
            Ok(_) => {
                self.queues[write.controller].forget(&write.key);
                false
            }
            Err(error) => {
                self.write_errors += 1;
                if matches!(error.reason, ApiErrorReason::Timeout | ApiErrorReason::ServiceUnavailable) {
                    self.client.fail_over();
                }
                // A missing object or an existing name is an answer, not a reason to retry.
                !matches!(error.reason, ApiErrorReason::NotFound | ApiErrorReason::AlreadyExists)
            }
        };
        self.reconcilers[write.controller].on_write_result(&write.key, &write.request, &result);
        if retry {
            let delay = self.queues[write.controller].backoff(&write.key);
            self.add_after(ctx, write.controller, write.key, delay);
        }
    }
}

impl Component<Msg, Timer> for ControllerHost {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        if let Input::Start = input {
            for informer in &mut self.informers {
                informer.start(ctx, &mut self.client);
            }
            let now_ns = ctx.now().as_nanos();
            if let Some(effects) = self.elector.as_mut().map(|elector| elector.start(now_ns)) {
                self.run_elector(ctx, effects);
            }
            return;
        }
        for informer in &mut self.informers {
            if let InformerOutcome::Events(events) = informer.handle(ctx, &mut self.client, &mut self.cache, &input) {
                self.dispatch_events(events);
                self.process_queues(ctx);
                return;
            }
        }
        match input {
            Input::Response { id, msg: Msg::ApiResult(result) } if self.elector_request == Some(id) => {
                self.elector_result(ctx, result);
            }
            Input::RequestTimedOut { id } if self.elector_request == Some(id) => {
                let error = ApiError::new(ApiErrorReason::Timeout, "the request timed out");
                self.elector_result(ctx, Err(error));
            }
            Input::Response { id, msg } if self.calls_in_flight.contains_key(&id) => self.finish_call(id, Some(&msg)),
            Input::RequestTimedOut { id } if self.calls_in_flight.contains_key(&id) => self.finish_call(id, None),
            Input::Response { id, msg: Msg::ApiResult(result) } => self.finish_write(ctx, id, result),
            Input::RequestTimedOut { id } => {
                let error = ApiError::new(ApiErrorReason::Timeout, "the request timed out");
                self.finish_write(ctx, id, Err(error));
            }
            Input::Timer { id, timer: Timer::Requeue { controller, key } } => {
                let slot = (controller, key);
                if self.waiting.get(&slot).is_some_and(|(timer, _)| *timer == id) {
                    self.waiting.remove(&slot);
                }
                let (controller, key) = slot;
                if controller < self.queues.len() && self.is_leader() {
                    self.queues[controller].add(key);
                }
            }
            Input::Timer { timer: Timer::User(token), .. } => {
                let now_ns = ctx.now().as_nanos();
                if let Some(effects) = self.elector.as_mut().map(|elector| elector.on_timer(token, now_ns)) {
                    self.run_elector(ctx, effects);
                }
            }
            _ => {}
        }
        self.process_queues(ctx);
    }

    fn pending(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for informer in &self.informers {
            if !informer.synced {
                lines.push(format!("the {} informer has not synced", informer.kind.as_str()));
            }
        }
        for (index, queue) in self.queues.iter().enumerate() {
            if !queue.is_empty() {
                lines.push(format!("{} has {} queued keys", self.reconcilers[index].name(), queue.len()));
            }
        }
        lines
    }
}
