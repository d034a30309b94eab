//! The controller host: a component that runs reconcilers the way kube-controller-manager and
//! kube-scheduler run theirs, over shared informers, one work queue per reconciler, and one API
//! client. Users run their own reconcilers in it too.

use crate::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, Msg, ObjectKey, Timer};
use crate::cache::{Cache, CacheEvent};
use crate::client::{ApiClient, Informer, InformerOutcome, WorkQueue};
use crate::controller::{ReconcileContext, Reconciler};
use crate::objects::Kind;
use kubedst_sim::{Component, ComponentId, Ctx, Input, RequestId};
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
    /// Per reconciler, keys whose writes are still in flight, with how many. client-go's sync
    /// handlers make their API calls synchronously, so a key stays "processing" until its calls
    /// return, and events meanwhile only mark it dirty: it is synced once more afterwards.
    processing: Vec<BTreeMap<ObjectKey, usize>>,
    dirty: Vec<BTreeSet<ObjectKey>>,
    /// Counters for reports and tests.
    pub reconciles: u64,
    pub writes: u64,
    pub write_errors: u64,
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
            processing,
            dirty,
            reconciles: 0,
            writes: 0,
            write_errors: 0,
        }
    }

    /// The host's view of the cluster (possibly stale).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

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

    pub fn synced(&self) -> bool {
        self.informers.iter().all(|informer| informer.synced)
    }

    fn dispatch_events(&mut self, events: Vec<CacheEvent>) {
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
        if !self.synced() {
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
                if !decision.writes.is_empty() {
                    self.processing[index].insert(key.clone(), decision.writes.len());
                }
                for request in decision.writes {
                    self.writes += 1;
                    let id = self.client.send(ctx, request.clone());
                    self.in_flight.insert(id, InFlight { controller: index, key: key.clone(), request });
                }
                if let Some(after) = decision.requeue_after {
                    ctx.set_timer(after, Timer::Requeue { controller: index, key: key.clone() });
                }
            }
        }
    }

    fn finish_write(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: RequestId, result: Result<ApiOk, ApiError>) {
        let Some(write) = self.in_flight.remove(&id) else { return };
        let processing = &mut self.processing[write.controller];
        if let Some(outstanding) = processing.get_mut(&write.key) {
            *outstanding -= 1;
            if *outstanding == 0 {
                processing.remove(&write.key);
                if self.dirty[write.controller].remove(&write.key) {
                    self.queues[write.controller].add(write.key.clone());
                }
            }
        }
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
            ctx.set_timer(delay, Timer::Requeue { controller: write.controller, key: write.key });
        }
    }
}

impl Component<Msg, Timer> for ControllerHost {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        if let Input::Start = input {
            for informer in &mut self.informers {
                informer.start(ctx, &mut self.client);
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
            Input::Response { id, msg: Msg::ApiResult(result) } => self.finish_write(ctx, id, result),
            Input::RequestTimedOut { id } => {
                let error = ApiError::new(ApiErrorReason::Timeout, "the request timed out");
                self.finish_write(ctx, id, Err(error));
            }
            Input::Timer { timer: Timer::Requeue { controller, key }, .. } => {
                if controller < self.queues.len() {
                    self.queues[controller].add(key);
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
