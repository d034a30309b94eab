//! The API server: validation, defaults and admission; guarded writes to etcd; and a watch cache,
//! fed by an etcd watch, that serves lists with `resourceVersion=0` and every client watch.
//!
//! Several replicas may run, each with its own watch cache. Each cache lags etcd by the network
//! between them, and stops (serving stale data) while that watch is broken: Kubernetes' "time
//! travel" and stale-read bugs come from exactly this.
//!
//! Writes follow kube-apiserver's GuaranteedUpdate: compute the new object from the cached one,
//! write it to etcd guarded by the cached revision, and on a failed compare recompute from what
//! etcd returned (up to [`MAX_UPDATE_ATTEMPTS`] times). A client's own resourceVersion is a
//! precondition that fails with 409 Conflict instead.
//!
//! Also here: the Eviction API (`ApiServer::evict`: 429 when the covering budget allows no
//! disruption, else decrement it and delete the pod), namespace lifecycle (system namespaces
//! created at start, NamespaceLifecycle admission: 404 for a missing and 403 for a terminating
//! namespace, Terminating phase on delete) and authorization of Secrets ([`crate::rbac`]).

use crate::api::{
    namespace_of, resource_version_of, store_prefix, ApiError, ApiErrorReason, ApiOk, ApiRequest, ApiResult, EtcdEvent,
    EtcdRequest, EtcdResponse, InjectedFault, ListFrom, Msg, ObjectKey, Propagation, Timer, WatchEvent, WatchRequest,
};
use crate::objects::cluster::{
    IMMORTAL_NAMESPACES, NAMESPACE_ACTIVE, NAMESPACE_FINALIZER, NAMESPACE_TERMINATING, SYSTEM_NAMESPACES,
};
use crate::objects::meta::ConditionStatus;
use crate::objects::pod::{PodPhase, TaintEffect, Toleration, TolerationOperator};
use crate::objects::{Condition, CustomKind, Kind, Namespace, Object};
use crate::store::Revision;
use kubedst_sim::{Component, ComponentId, Ctx, Input, ReplyTo, RequestId, StreamId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

/// GuaranteedUpdate's retries on a failed compare before answering 409.
pub const MAX_UPDATE_ATTEMPTS: u32 = 5;
/// How long the API server waits for etcd before answering 504 (outcome unknown).
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(3);
/// Bookmarks go to every watcher this often, as kube-apiserver sends them about once a minute.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
/// The default toleration of not-ready and unreachable nodes (DefaultTolerationSeconds admission).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Settings of one API server replica.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    pub etcd: ComponentId,
    /// Events the watch cache keeps; a watch from before them gets 410 Gone.
    pub watch_cache_capacity: usize,
    /// The backend of the aggregated metrics.k8s.io API (the APIService
    /// `v1beta1.metrics.k8s.io`, which points at metrics-server), filled in once the cluster is
    /// built; unset, metrics requests get 503.
    pub metrics_api: Rc<std::cell::OnceCell<ComponentId>>,
    /// The custom kinds served (what the cluster's CustomResourceDefinitions declare). A request
    /// about any other custom kind gets 404, as for a resource the server does not know.
    pub custom_kinds: Rc<BTreeSet<CustomKind>>,
}

impl ApiServerConfig {
    pub fn new(etcd: ComponentId) -> ApiServerConfig {
        ApiServerConfig { etcd, watch_cache_capacity: 10_000, metrics_api: Rc::default(), custom_kinds: Rc::default() }
    }
}

/// How long the API server waits for an aggregated API's backend before answering 503.
pub const AGGREGATED_API_TIMEOUT: Duration = Duration::from_secs(3);

/// One change in the watch cache's history.
#[derive(Clone, Debug)]
struct CachedEvent {
    revision: Revision,
    key: String,
    object: Option<Rc<Object>>,
    prev: Option<Rc<Object>>,
}

#[derive(Debug)]
struct ClientWatch {
    request: WatchRequest,
    prefix: String,
}

/// What to do when etcd answers.
#[derive(Debug)]
enum Pending {
    /// A write computed by [`ApiServer::mutate`]; on a failed compare, recompute with etcd's value.
    Write {
        reply: ReplyTo,
        request: ApiRequest,
        attempt: u32,
        result: Rc<Object>,
        deleted: bool,
    },
    /// The watch cache disagreed with a client's resourceVersion: read the object from etcd and
    /// decide with that (GuaranteedUpdate's re-read), so a lagging cache does not cause false 409s.
    Refetch {
        reply: ReplyTo,
        request: ApiRequest,
    },
    Get {
        reply: ReplyTo,
    },
    List {
        reply: ReplyTo,
    },
    /// The etcd list that fills the watch cache at start and after a compaction.
    InitialList,
    /// A request proxied to an aggregated API's backend (metrics-server).
    Aggregated {
        reply: ReplyTo,
    },
    /// NamespaceLifecycle admission did not find the namespace of a create in the watch cache: it
    /// reads it from etcd before deciding (upstream's live lookup).
    AdmitCreate {
        reply: ReplyTo,
        object: Rc<Object>,
    },
    /// A system namespace the server creates at start; whatever etcd answers is fine.
    Bootstrap,
    /// An eviction's budget decrement; once written, the pod is deleted.
    EvictBudget {
        reply: ReplyTo,
        namespace: String,
        pod: String,
        attempt: u32,
    },
}

/// What an eviction comes to (`EvictionREST.Create`).
#[derive(Debug)]
enum EvictionStep {
    Reply(ApiError),
    /// Delete the pod without touching a budget.
    DeletePod,
    /// Write the decremented budget (guarded by its revision), then delete the pod.
    Decrement {
        budget: Rc<Object>,
        expected: Revision,
    },
}

/// What a request comes to, given the current object.
enum Mutation {
    Reply(ApiResult),
    Put { key: String, value: Rc<Object>, expected: Revision },
    Delete { key: String, expected: Revision, deleted: Rc<Object> },
}

/// One API server replica.
pub struct ApiServer {
    config: ApiServerConfig,
    /// The watch cache: every object by store key, as of `revision`.
    objects: BTreeMap<String, Rc<Object>>,
    history: VecDeque<CachedEvent>,
    /// Events up to here are not in `history`; a watch from before it gets 410.
    history_floor: Revision,
    revision: Revision,
    synced: bool,
    etcd_stream: Option<StreamId>,
    watchers: BTreeMap<StreamId, ClientWatch>,
    pending: BTreeMap<RequestId, Pending>,
    /// An injected watch-cache lag: until this time etcd's events are held back in
    /// `held_events` instead of being applied.
    lag_until_ns: Option<u64>,
    held_events: Vec<EtcdEvent>,
    /// Counters for reports.
    pub requests_served: u64,
    pub watches_gone: u64,
    /// The watch checker's ground truth: etcd events applied to the watch cache, and how many of
    /// them did not follow on from what the cache held for their key (the event's previous value
    /// was not the cached one: an event of that key was skipped) or came with a lower revision
    /// than one applied before.
    pub watch_cache_events: u64,
    pub watch_cache_gaps: u64,
}

impl ApiServer {
    pub fn new(config: ApiServerConfig) -> ApiServer {
        ApiServer {
            config,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_floor: 0,
            revision: 0,
            synced: false,
            etcd_stream: None,
            watchers: BTreeMap::new(),
            pending: BTreeMap::new(),
            lag_until_ns: None,
            held_events: Vec::new(),
            requests_served: 0,
            watches_gone: 0,
            watch_cache_events: 0,
            watch_cache_gaps: 0,
        }
    }

    /// The revision the watch cache has reached.
    pub fn cache_revision(&self) -> Revision {
        self.revision
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    fn start_initial_list(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        let id =
            ctx.request(self.config.etcd, Msg::Etcd(EtcdRequest::Range { prefix: "/registry/".into() }), ETCD_TIMEOUT);
        self.pending.insert(id, Pending::InitialList);
    }

    fn send_etcd(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, request: EtcdRequest, pending: Pending) {
        let id = ctx.request(self.config.etcd, Msg::Etcd(request), ETCD_TIMEOUT);
        self.pending.insert(id, pending);
    }

    // ----- requests -----

    fn handle_request(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, reply: ReplyTo, request: ApiRequest) {
        self.requests_served += 1;
        if !self.synced {
            let error = ApiError::new(ApiErrorReason::ServiceUnavailable, "the watch cache is not ready yet");
            ctx.respond(reply, Msg::ApiResult(Err(error)));
            return;
        }
        if let Err(error) = self.served(request.kind()) {
            ctx.respond(reply, Msg::ApiResult(Err(error)));
            return;
        }
        match request {
            ApiRequest::ListPodMetrics { namespace } => match self.config.metrics_api.get() {
                Some(&backend) => {
                    let id = ctx.request(backend, Msg::PodMetricsQuery { namespace }, AGGREGATED_API_TIMEOUT);
                    self.pending.insert(id, Pending::Aggregated { reply });
                }
                None => {
                    let error = ApiError::new(
                        ApiErrorReason::ServiceUnavailable,
                        "the server could not find the requested resource (get pods.metrics.k8s.io)",
                    );
                    ctx.respond(reply, Msg::ApiResult(Err(error)));
                }
            },
            ApiRequest::Get { key } => {
                self.send_etcd(ctx, EtcdRequest::Get { key: key.store_key() }, Pending::Get { reply });
            }
            ApiRequest::List { kind, namespace, from: ListFrom::Quorum } => {
                let prefix = store_prefix(kind, namespace.as_deref());
                self.send_etcd(ctx, EtcdRequest::Range { prefix }, Pending::List { reply });
            }
            ApiRequest::List { kind, namespace, from: ListFrom::Cache } => {
                let prefix = store_prefix(kind, namespace.as_deref());
                let items: Vec<Rc<Object>> = self
                    .objects
                    .range(prefix.clone()..)
                    .take_while(|(key, _)| key.starts_with(&prefix))
                    .map(|(_, o)| o.clone())
                    .collect();
                let result = Ok(ApiOk::List { items, resource_version: self.revision });
                ctx.respond(reply, Msg::ApiResult(result));
            }
            ApiRequest::Create { object } => match self.prepare_create(ctx, &object) {
                Ok(prepared) => {
                    let prepared = Rc::new(prepared);
                    let namespace = namespace_of(&prepared);
                    if namespace.is_empty() {
                        self.create(ctx, reply, prepared);
                        return;
                    }
                    let namespace_key = ObjectKey::new(Kind::Namespace, "", &namespace).store_key();
                    match self.objects.get(&namespace_key).cloned() {
                        Some(found) => self.admit_create(ctx, reply, prepared, Some(&found)),
                        // The system namespaces exist from the start (this server creates them
                        // as soon as its cache syncs).
                        None if SYSTEM_NAMESPACES.contains(&namespace.as_str()) => self.create(ctx, reply, prepared),
                        None => {
                            let pending = Pending::AdmitCreate { reply, object: prepared };
                            self.send_etcd(ctx, EtcdRequest::Get { key: namespace_key }, pending);
                        }
                    }
                }
                Err(error) => ctx.respond(reply, Msg::ApiResult(Err(error))),
            },
            ApiRequest::Evict { namespace, pod } => self.evict(ctx, reply, namespace, pod, None, 0),
            request => {
                let key = request_key(&request).store_key();
                let current = self.objects.get(&key).cloned();
                self.apply_mutation(ctx, reply, request, current, 0);
            }
        }
    }

    /// Whether the server serves `kind`: every built-in kind, and the registered custom kinds.
    fn served(&self, kind: Kind) -> Result<(), ApiError> {
        match kind.custom() {
            Some(custom) if !self.config.custom_kinds.contains(&custom) => Err(ApiError::new(
                ApiErrorReason::NotFound,
                format!("the server could not find the requested resource ({})", custom.resource()),
            )),
            _ => Ok(()),
        }
    }

    fn apply_mutation(
        &mut self,
        ctx: &mut Ctx<'_, Msg, Timer>,
        reply: ReplyTo,
        request: ApiRequest,
        current: Option<Rc<Object>>,
        attempt: u32,
    ) {
        if attempt == 0 {
            if let ApiRequest::Update { object } | ApiRequest::UpdateStatus { object } = &request {
                let requested = object.meta().resource_version.as_deref();
                let cached = current.as_ref().and_then(|current| current.meta().resource_version.as_deref());
                if requested.is_some() && requested != cached {
                    let key = ObjectKey::of(object).store_key();
                    self.send_etcd(ctx, EtcdRequest::Get { key }, Pending::Refetch { reply, request });
                    return;
                }
            }
        }
        let now_ns = ctx.now().as_nanos();
        match mutate(&request, current.as_ref(), now_ns) {
            Mutation::Reply(result) => ctx.respond(reply, Msg::ApiResult(result)),
            Mutation::Put { key, value, expected } => {
                let pending = Pending::Write { reply, request, attempt, result: value.clone(), deleted: false };
                self.send_etcd(ctx, EtcdRequest::Put { key, value, expected_mod_revision: expected }, pending);
            }
            Mutation::Delete { key, expected, deleted } => {
                let pending = Pending::Write { reply, request, attempt, result: deleted, deleted: true };
                self.send_etcd(ctx, EtcdRequest::Delete { key, expected_mod_revision: expected }, pending);
            }
        }
    }

    fn create(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, reply: ReplyTo, object: Rc<Object>) {
        let key = ObjectKey::of(&object).store_key();
        let current = self.objects.get(&key).cloned();
        self.apply_mutation(ctx, reply, ApiRequest::Create { object }, current, 0);
    }

    /// NamespaceLifecycle admission of a create: the namespace must exist and not be terminating.
    fn admit_create(
        &mut self,
        ctx: &mut Ctx<'_, Msg, Timer>,
        reply: ReplyTo,
        object: Rc<Object>,
        namespace: Option<&Rc<Object>>,
    ) {
        let name = namespace_of(&object);
        match namespace.map(|namespace| namespace.as_ref()) {
            Some(Object::Namespace(found)) if found.is_terminating() => {
                let error = ApiError::new(
                    ApiErrorReason::Forbidden,
                    format!("unable to create new content in namespace {name} because it is being terminated"),
                );
                ctx.respond(reply, Msg::ApiResult(Err(error)));
            }
            Some(_) => self.create(ctx, reply, object),
            None => {
                let error = ApiError::new(ApiErrorReason::NotFound, format!("namespaces \"{name}\" not found"));
                ctx.respond(reply, Msg::ApiResult(Err(error)));
            }
        }
    }

    /// Creates the system namespaces that etcd does not hold yet (kube-apiserver's
    /// `systemnamespaces` controller). Several replicas may race; the losers' compare fails.
    fn bootstrap_namespaces(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        for name in SYSTEM_NAMESPACES {
            let key = ObjectKey::new(Kind::Namespace, "", name).store_key();
            if self.objects.contains_key(&key) {
                continue;
            }
            let namespace = Namespace {
                metadata: crate::objects::ObjectMeta { name: name.to_string(), ..Default::default() },
                ..Namespace::default()
            };
            let Ok(prepared) = self.prepare_create(ctx, &Object::Namespace(namespace)) else { continue };
            let request = EtcdRequest::Put { key, value: Rc::new(prepared), expected_mod_revision: 0 };
            self.send_etcd(ctx, request, Pending::Bootstrap);
        }
    }

    /// The eviction subresource: delete the pod if the budget covering it allows a disruption,
    /// spending one (`pkg/registry/core/pod/storage/eviction.go`). The pod and the budgets come
    /// from the watch cache; the budget write is guarded by its revision, so a stale cache costs a
    /// retry with etcd's value, never a budget spent twice. `budget` is etcd's newer copy on a
    /// retry.
    fn evict(
        &mut self,
        ctx: &mut Ctx<'_, Msg, Timer>,
        reply: ReplyTo,
        namespace: String,
        pod: String,
        budget: Option<Rc<Object>>,
        attempt: u32,
    ) {
        let pod_key = ObjectKey::new(Kind::Pod, &namespace, &pod);
        let current = self.objects.get(&pod_key.store_key()).cloned();
        let budgets: Vec<Rc<Object>> = match budget {
            Some(budget) => vec![budget],
            None => {
                let prefix = store_prefix(Kind::PodDisruptionBudget, Some(&namespace));
                self.objects
                    .range(prefix.clone()..)
                    .take_while(|(key, _)| key.starts_with(&prefix))
                    .map(|(_, object)| object.clone())
                    .collect()
            }
        };
        let now_ns = ctx.now().as_nanos();
        let delete = |current: &Rc<Object>| ApiRequest::Delete {
            key: pod_key.clone(),
            uid: current.meta().uid.clone(),
            grace_period_seconds: None,
            propagation: None,
        };
        match eviction_step(current.as_deref(), &budgets, now_ns) {
            EvictionStep::Reply(error) => ctx.respond(reply, Msg::ApiResult(Err(error))),
            EvictionStep::DeletePod => {
                let current = current.expect("a pod to delete");
                self.apply_mutation(ctx, reply, delete(&current), Some(current), 0);
            }
            EvictionStep::Decrement { budget, expected } => {
                let key = ObjectKey::of(&budget).store_key();
                let pending = Pending::EvictBudget { reply, namespace, pod, attempt };
                self.send_etcd(ctx, EtcdRequest::Put { key, value: budget, expected_mod_revision: expected }, pending);
            }
        }
    }

    /// Validation, defaults, admission, and the fields the API server owns.
    fn prepare_create(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, object: &Object) -> Result<Object, ApiError> {
        let mut object = object.clone();
        let namespace = namespace_of(&object);
        {
            let meta = object.meta_mut();
            if meta.name.is_empty() {
                match meta.generate_name.clone() {
                    Some(prefix) => meta.name = format!("{prefix}{}", random_suffix(ctx)),
                    None => return Err(ApiError::new(ApiErrorReason::Invalid, "metadata.name: Required value")),
                }
            }
            if !namespace.is_empty() {
                meta.namespace = Some(namespace);
            }
            meta.uid = Some(random_uid(ctx));
            meta.resource_version = None;
            meta.creation_timestamp_ns = Some(ctx.now().as_nanos());
            meta.deletion_timestamp_ns = None;
            meta.generation = Some(1);
        }
        object.apply_defaults();
        match &mut object {
            Object::Pod(pod) => {
                add_default_tolerations(&mut pod.spec.tolerations);
                pod.status.phase.get_or_insert(PodPhase::Pending);
            }
            Object::Namespace(namespace) => {
                // The namespace registry's PrepareForCreate: phase Active, finalizer kubernetes.
                namespace.spec.finalizers.retain(|finalizer| finalizer != NAMESPACE_FINALIZER);
                namespace.spec.finalizers.push(NAMESPACE_FINALIZER.to_string());
                namespace.status.phase = Some(NAMESPACE_ACTIVE.to_string());
            }
            Object::Service(service) => {
                if service.spec.cluster_ip.is_none() {
                    let host = ctx.rng().below(65_534) + 1;
                    service.spec.cluster_ip = Some(format!("10.96.{}.{}", host / 256, host % 256));
                }
            }
            _ => {}
        }
        object.validate().map_err(|errors| {
            let text: Vec<String> = errors.iter().map(|error| error.to_string()).collect();
            ApiError::new(ApiErrorReason::Invalid, text.join("; "))
        })?;
        Ok(object)
    }

    fn handle_etcd_response(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: RequestId, response: Option<EtcdResponse>) {
        let Some(pending) = self.pending.remove(&id) else { return };
        let Some(response) = response else {
            // etcd did not answer in time: the client learns only that it timed out.
            match pending {
                Pending::InitialList => {
                    ctx.set_timer(Duration::from_secs(1), Timer::Tick("apiserver-etcd-rewatch"));
                }
                Pending::Aggregated { reply } => {
                    let error = ApiError::new(
                        ApiErrorReason::ServiceUnavailable,
                        "the server is currently unable to handle the request (get pods.metrics.k8s.io)",
                    );
                    ctx.respond(reply, Msg::ApiResult(Err(error)));
                }
                Pending::Bootstrap => {}
                Pending::AdmitCreate { reply, .. } => {
                    let error = ApiError::new(ApiErrorReason::Timeout, "etcd did not answer in time");
                    ctx.respond(reply, Msg::ApiResult(Err(error)));
                }
                Pending::Write { reply, .. }
                | Pending::EvictBudget { reply, .. }
                | Pending::Get { reply }
                | Pending::Refetch { reply, .. }
                | Pending::List { reply, .. } => {
                    let error = ApiError::new(ApiErrorReason::Timeout, "etcd did not answer in time");
                    ctx.respond(reply, Msg::ApiResult(Err(error)));
                }
            }
            return;
        };
        match (pending, response) {
            (Pending::InitialList, EtcdResponse::Values { kvs, revision }) => {
                self.objects = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
                self.history.clear();
                self.history_floor = revision;
                self.revision = revision;
                self.synced = true;
                // Client watches opened before the relist may have missed changes: end them, and
                // let them rewatch (and get 410 if they are now too old).
                for id in std::mem::take(&mut self.watchers).into_keys() {
                    ctx.close_stream(id);
                }
                self.watch_etcd(ctx);
                self.bootstrap_namespaces(ctx);
            }
            (Pending::Bootstrap, _) => {}
            (Pending::AdmitCreate { reply, object }, EtcdResponse::Value { kv, .. }) => {
                let namespace = kv.map(|kv| kv.value);
                self.admit_create(ctx, reply, object, namespace.as_ref());
            }
            (Pending::Write { reply, result, deleted, .. }, EtcdResponse::Written { revision }) => {
                let mut result = result;
                if !deleted {
                    Rc::make_mut(&mut result).meta_mut().resource_version = Some(revision.to_string());
                }
                let ok = if deleted { ApiOk::Deleted(result) } else { ApiOk::Object(result) };
                ctx.respond(reply, Msg::ApiResult(Ok(ok)));
            }
            (Pending::Write { reply, request, attempt, .. }, EtcdResponse::CompareFailed { current, .. }) => {
                if attempt + 1 >= MAX_UPDATE_ATTEMPTS {
                    let error = ApiError::new(ApiErrorReason::Conflict, "the object keeps changing; try again");
                    ctx.respond(reply, Msg::ApiResult(Err(error)));
                } else {
                    self.apply_mutation(ctx, reply, request, current.map(|kv| kv.value), attempt + 1);
                }
            }
            (Pending::EvictBudget { reply, namespace, pod, .. }, EtcdResponse::Written { .. }) => {
                // The budget is spent: delete the pod (preconditioned on the uid the decision saw).
                let key = ObjectKey::new(Kind::Pod, &namespace, &pod);
                let current = self.objects.get(&key.store_key()).cloned();
                let uid = current.as_ref().and_then(|current| current.meta().uid.clone());
                let request = ApiRequest::Delete { key, uid, grace_period_seconds: None, propagation: None };
                self.apply_mutation(ctx, reply, request, current, 0);
            }
            (Pending::EvictBudget { reply, namespace, pod, attempt }, EtcdResponse::CompareFailed { current, .. }) => {
                match current {
                    Some(kv) if attempt + 1 < MAX_UPDATE_ATTEMPTS => {
                        self.evict(ctx, reply, namespace, pod, Some(kv.value), attempt + 1);
                    }
                    Some(_) => {
                        let error =
                            ApiError::new(ApiErrorReason::Conflict, "the disruption budget keeps changing; try again");
                        ctx.respond(reply, Msg::ApiResult(Err(error)));
                    }
                    // The budget went away meanwhile: decide again without it.
                    None => self.evict(ctx, reply, namespace, pod, None, attempt + 1),
                }
            }
            (Pending::Refetch { reply, request }, EtcdResponse::Value { kv, .. }) => {
                self.apply_mutation(ctx, reply, request, kv.map(|kv| kv.value), 1);
            }
            (Pending::Get { reply }, EtcdResponse::Value { kv, .. }) => {
                let result = match kv {
                    Some(kv) => Ok(ApiOk::Object(kv.value)),
                    None => Err(ApiError::new(ApiErrorReason::NotFound, "not found")),
                };
                ctx.respond(reply, Msg::ApiResult(result));
            }
            (Pending::List { reply, .. }, EtcdResponse::Values { kvs, revision }) => {
                let items = kvs.into_iter().map(|kv| kv.value).collect();
                ctx.respond(reply, Msg::ApiResult(Ok(ApiOk::List { items, resource_version: revision })));
            }
            (pending, response) => {
                unreachable!("etcd answered {response:?} to {pending:?}")
            }
        }
    }

    // ----- the watch cache -----

    fn watch_etcd(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        let stream = ctx.open_stream(self.config.etcd);
        ctx.stream_send(stream, Msg::Etcd(EtcdRequest::Watch { after_revision: self.revision }));
        self.etcd_stream = Some(stream);
    }

    /// Starts (or extends) a lag of the watch cache.
    fn start_lag(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, duration: Duration) {
        let until_ns = ctx.now().as_nanos().saturating_add(duration.as_nanos() as u64);
        if self.lag_until_ns.is_none_or(|current| current < until_ns) {
            self.lag_until_ns = Some(until_ns);
            ctx.set_timer(duration, Timer::Tick("apiserver-lag-end"));
        }
    }

    /// Ends the lag if it is due (or `force`), applying everything held back in order.
    fn end_lag(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, force: bool) {
        let Some(until_ns) = self.lag_until_ns else { return };
        if !force && ctx.now().as_nanos() < until_ns {
            return;
        }
        self.lag_until_ns = None;
        let held = std::mem::take(&mut self.held_events);
        self.apply_etcd_events(ctx, held);
    }

    fn apply_etcd_events(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, events: Vec<EtcdEvent>) {
        if self.lag_until_ns.is_some() {
            self.held_events.extend(events);
            return;
        }
        for event in events {
            if event.revision <= self.revision {
                continue;
            }
            // Each event must follow on from the cached value of its key: its previous value is
            // the one the cache holds (both absent for a create).
            self.watch_cache_events += 1;
            let cached_revision = self.objects.get(&event.key).map(|object| resource_version_of(object));
            let previous_revision = event.prev.as_ref().map(|object| resource_version_of(object));
            if cached_revision != previous_revision {
                self.watch_cache_gaps += 1;
            }
            match &event.value {
                Some(value) => {
                    self.objects.insert(event.key.clone(), value.clone());
                }
                None => {
                    self.objects.remove(&event.key);
                }
            }
            self.revision = event.revision;
            let cached =
                CachedEvent { revision: event.revision, key: event.key, object: event.value, prev: event.prev };
            for (id, watch) in &self.watchers {
                if let Some(watch_event) = event_for(watch, &cached) {
                    ctx.stream_send(*id, Msg::WatchEvent(watch_event));
                }
            }
            self.history.push_back(cached);
            while self.history.len() > self.config.watch_cache_capacity {
                if let Some(dropped) = self.history.pop_front() {
                    self.history_floor = dropped.revision;
                }
            }
        }
    }

    /// The authorizer's decision ([`crate::rbac`]), with the Node authorizer's graph read from the
    /// watch cache's pods.
    fn authorize(&self, user: &str, request: &ApiRequest) -> Result<(), ApiError> {
        use crate::rbac::Verb;
        let (verb, key) = match request {
            ApiRequest::Get { key } => (Verb::Get, key.clone()),
            ApiRequest::List { kind, namespace, .. } => {
                (Verb::List, ObjectKey::new(*kind, namespace.as_deref().unwrap_or(""), ""))
            }
            ApiRequest::Create { object } => (Verb::Create, ObjectKey::of(object)),
            ApiRequest::Update { object } | ApiRequest::UpdateStatus { object } => {
                (Verb::Update, ObjectKey::of(object))
            }
            ApiRequest::Delete { key, .. } => (Verb::Delete, key.clone()),
            // Only Secrets are authorized; these touch none.
            ApiRequest::Bind { .. } | ApiRequest::Evict { .. } | ApiRequest::ListPodMetrics { .. } => return Ok(()),
        };
        crate::rbac::authorize(user, verb, key.kind, &key.namespace, &key.name, |node, namespace| {
            self.pods_of_node(node, namespace)
        })
    }

    fn pods_of_node(&self, node: &str, namespace: &str) -> Vec<&crate::objects::Pod> {
        let prefix = store_prefix(Kind::Pod, Some(namespace));
        self.objects
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .filter_map(|(_, object)| match object.as_ref() {
                Object::Pod(pod) if pod.spec.node_name.as_deref() == Some(node) => Some(pod),
                _ => None,
            })
            .collect()
    }

    fn start_client_watch(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: StreamId, request: WatchRequest) {
        let namespace = request.namespace.clone().unwrap_or_default();
        let allowed = crate::rbac::authorize(
            &request.user,
            crate::rbac::Verb::Watch,
            request.kind,
            &namespace,
            "",
            |node, ns| self.pods_of_node(node, ns),
        );
        if allowed.is_err() || self.served(request.kind).is_err() {
            // kube-apiserver answers the watch with 403 (or 404 for a resource it does not
            // serve); the stream ends at once.
            ctx.close_stream(id);
            return;
        }
        if !self.synced {
            ctx.close_stream(id);
            return;
        }
        let watch = ClientWatch { prefix: store_prefix(request.kind, request.namespace.as_deref()), request };
        let from = watch.request.resource_version;
        if from == 0 {
            // "Any" revision: the current state as additions, then changes.
            let current: Vec<Rc<Object>> = self
                .objects
                .range(watch.prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&watch.prefix))
                .map(|(_, object)| object.clone())
                .filter(|object| matches_filter(&watch.request, object))
                .collect();
            for object in current {
                ctx.stream_send(id, Msg::WatchEvent(WatchEvent::Added(object)));
            }
        } else if from < self.history_floor {
            self.watches_gone += 1;
            ctx.stream_send(id, Msg::WatchEvent(WatchEvent::Gone));
            ctx.close_stream(id);
            return;
        } else {
            let start = self.history.partition_point(|event| event.revision <= from);
            for cached in self.history.range(start..) {
                if let Some(event) = event_for(&watch, cached) {
                    ctx.stream_send(id, Msg::WatchEvent(event));
                }
            }
        }
        self.watchers.insert(id, watch);
    }
}

impl Component<Msg, Timer> for ApiServer {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Start => {
                self.start_initial_list(ctx);
                ctx.set_timer(BOOKMARK_INTERVAL, Timer::Tick("apiserver-bookmark"));
            }
            Input::Request { reply, msg: Msg::Api { user, request } } => {
                if let Err(error) = self.authorize(&user, &request) {
                    ctx.respond(reply, Msg::ApiResult(Err(error)));
                } else {
                    self.handle_request(ctx, reply, request);
                }
            }
            Input::Response { id, msg: Msg::PodMetricsAnswer(metrics) } => {
                if let Some(Pending::Aggregated { reply }) = self.pending.remove(&id) {
                    ctx.respond(reply, Msg::ApiResult(Ok(ApiOk::PodMetrics(metrics))));
                }
            }
            Input::Response { id, msg: Msg::EtcdResult(response) } => {
                self.handle_etcd_response(ctx, id, Some(response))
            }
            Input::RequestTimedOut { id } => self.handle_etcd_response(ctx, id, None),
            Input::StreamMessage { id, msg } => match msg {
                Msg::EtcdResult(EtcdResponse::Events { events }) if Some(id) == self.etcd_stream => {
                    self.apply_etcd_events(ctx, events)
                }
                Msg::EtcdResult(EtcdResponse::Compacted { .. }) if Some(id) == self.etcd_stream => {
                    self.etcd_stream = None;
                    // The relist replaces whatever was held back.
                    self.held_events.clear();
                    self.start_initial_list(ctx);
                }
                Msg::Watch(request) => self.start_client_watch(ctx, id, request),
                _ => {}
            },
            Input::StreamBroken { id } => {
                if Some(id) == self.etcd_stream {
                    // The cache goes on serving what it has (stale) until the watch is back.
                    self.etcd_stream = None;
                    ctx.set_timer(Duration::from_secs(1), Timer::Tick("apiserver-etcd-rewatch"));
                } else {
                    self.watchers.remove(&id);
                }
            }
            Input::Timer { timer: Timer::Tick("apiserver-etcd-rewatch"), .. } => {
                if self.etcd_stream.is_none() && !self.pending.values().any(|p| matches!(p, Pending::InitialList)) {
                    if self.synced {
                        self.watch_etcd(ctx);
                    } else {
                        self.start_initial_list(ctx);
                    }
                }
            }
            Input::Message { msg: Msg::Inject(InjectedFault::WatchCacheLag { duration }), .. } => {
                self.start_lag(ctx, duration)
            }
            Input::Message { msg: Msg::Inject(InjectedFault::Heal), .. } => self.end_lag(ctx, true),
            Input::Timer { timer: Timer::Tick("apiserver-lag-end"), .. } => self.end_lag(ctx, false),
            Input::Timer { timer: Timer::Tick("apiserver-bookmark"), .. } => {
                for id in self.watchers.keys() {
                    ctx.stream_send(*id, Msg::WatchEvent(WatchEvent::Bookmark(self.revision)));
                }
                ctx.set_timer(BOOKMARK_INTERVAL, Timer::Tick("apiserver-bookmark"));
            }
            _ => {}
        }
    }

    fn pending(&self) -> Vec<String> {
        if self.synced {
            Vec::new()
        } else {
            vec!["the watch cache has not synced with etcd".to_string()]
        }
    }
}

/// The key a request acts on.
fn request_key(request: &ApiRequest) -> ObjectKey {
    match request {
        ApiRequest::Create { object } | ApiRequest::Update { object } | ApiRequest::UpdateStatus { object } => {
            ObjectKey::of(object)
        }
        ApiRequest::Delete { key, .. } | ApiRequest::Get { key } => key.clone(),
        ApiRequest::Bind { namespace, pod, .. } | ApiRequest::Evict { namespace, pod } => {
            ObjectKey::new(Kind::Pod, namespace, pod)
        }
        ApiRequest::List { kind, .. } => ObjectKey::new(*kind, "", ""),
        ApiRequest::ListPodMetrics { namespace } => ObjectKey::new(Kind::Pod, namespace, ""),
    }
}

fn matches_filter(request: &WatchRequest, object: &Object) -> bool {
    match (&request.node_name, object) {
        (Some(node), Object::Pod(pod)) => pod.spec.node_name.as_deref() == Some(node.as_str()),
        _ => true,
    }
}

/// The event a client watch sees for a change, after its filter: an object entering the filter
/// is an addition and one leaving it a deletion, as kube-apiserver's watch cache reports them.
fn event_for(watch: &ClientWatch, cached: &CachedEvent) -> Option<WatchEvent> {
    if !cached.key.starts_with(&watch.prefix) {
        return None;
    }
    let now_matches = cached.object.as_ref().is_some_and(|object| matches_filter(&watch.request, object));
    let before_matched = cached.prev.as_ref().is_some_and(|object| matches_filter(&watch.request, object));
    match (before_matched, now_matches) {
        (false, true) => cached.object.clone().map(WatchEvent::Added),
        (true, true) => cached.object.clone().map(WatchEvent::Modified),
        (true, false) => {
            // A deletion reports the last state, stamped with the deletion's revision so that
            // the client's resourceVersion moves on.
            let mut last = cached.object.clone().or_else(|| cached.prev.clone())?;
            Rc::make_mut(&mut last).meta_mut().resource_version = Some(cached.revision.to_string());
            Some(WatchEvent::Deleted(last))
        }
        (false, false) => None,
    }
}

/// `generateName`'s suffix: five characters from Kubernetes' alphabet without vowels.
fn random_suffix(ctx: &mut Ctx<'_, Msg, Timer>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[ctx.rng().below(ALPHABET.len() as u64) as usize] as char).collect()
}

/// A uid in the usual 8-4-4-4-12 layout, drawn from the server's seeded stream.
fn random_uid(ctx: &mut Ctx<'_, Msg, Timer>) -> String {
    let high = ctx.rng().next_u64();
    let low = ctx.rng().next_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

fn add_default_tolerations(tolerations: &mut Vec<Toleration>) {
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerated = tolerations.iter().any(|toleration| {
            toleration.key.as_deref() == Some(key) && matches!(toleration.effect, None | Some(TaintEffect::NoExecute))
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some(TolerationOperator::Exists),
                value: None,
                effect: Some(TaintEffect::NoExecute),
                toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
            });
        }
    }
}

/// Copies `from`'s status into `into` (same kind); kinds without status are left alone.
fn copy_status(into: &mut Object, from: &Object) {
    match (into, from) {
        (Object::Pod(a), Object::Pod(b)) => a.status = b.status.clone(),
        (Object::ReplicaSet(a), Object::ReplicaSet(b)) => a.status = b.status.clone(),
        (Object::Deployment(a), Object::Deployment(b)) => a.status = b.status.clone(),
        (Object::Service(a), Object::Service(b)) => a.status = b.status.clone(),
        (Object::Node(a), Object::Node(b)) => a.status = b.status.clone(),
        (Object::Namespace(a), Object::Namespace(b)) => a.status = b.status.clone(),
        (Object::Job(a), Object::Job(b)) => a.status = b.status.clone(),
        (Object::PodDisruptionBudget(a), Object::PodDisruptionBudget(b)) => a.status = b.status.clone(),
        (Object::HorizontalPodAutoscaler(a), Object::HorizontalPodAutoscaler(b)) => a.status = b.status.clone(),
        (Object::Custom(a), Object::Custom(b)) => a.status = b.status.clone(),
        _ => {}
    }
}

/// Whether anything but metadata and status differs: a change that bumps `generation`.
fn spec_changed(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Pod(x), Object::Pod(y)) => x.spec != y.spec,
        (Object::ReplicaSet(x), Object::ReplicaSet(y)) => x.spec != y.spec,
        (Object::Deployment(x), Object::Deployment(y)) => x.spec != y.spec,
        (Object::Service(x), Object::Service(y)) => x.spec != y.spec,
        (Object::Node(x), Object::Node(y)) => x.spec != y.spec,
        (Object::Job(x), Object::Job(y)) => x.spec != y.spec,
        (Object::Lease(x), Object::Lease(y)) => x.spec != y.spec,
        // customResourceStrategy.PrepareForUpdate: generation follows the spec only.
        (Object::Custom(x), Object::Custom(y)) => x.spec != y.spec,
        (Object::EndpointSlice(x), Object::EndpointSlice(y)) => {
            x.endpoints != y.endpoints || x.ports != y.ports || x.address_type != y.address_type
        }
        _ => {
            // Kinds without a spec field: everything but metadata and status.
            let mut a = a.clone();
            let mut b = b.clone();
            copy_status(&mut a, &b);
            *a.meta_mut() = Default::default();
            *b.meta_mut() = Default::default();
            a != b
        }
    }
}

/// Computes what a request does to the current object (`None`: absent). Pure, so it can be run
/// again with etcd's value when the cached one was stale.
fn mutate(request: &ApiRequest, current: Option<&Rc<Object>>, now_ns: u64) -> Mutation {
    let not_found =
        |what: &str| Mutation::Reply(Err(ApiError::new(ApiErrorReason::NotFound, format!("{what} not found"))));
    let conflict = |text: String| Mutation::Reply(Err(ApiError::new(ApiErrorReason::Conflict, text)));
    match request {
        ApiRequest::Create { object } => {
            let key = ObjectKey::of(object);
            match current {
                Some(_) => Mutation::Reply(Err(ApiError::new(
                    ApiErrorReason::AlreadyExists,
                    format!("{} {:?} already exists", key.kind.as_str(), key.name),
                ))),
                None => Mutation::Put { key: key.store_key(), value: object.clone(), expected: 0 },
            }
        }
        ApiRequest::Update { object } | ApiRequest::UpdateStatus { object } => {
            let key = ObjectKey::of(object);
            let Some(current) = current else { return not_found(&key.to_string()) };
            let requested_rv = object.meta().resource_version.as_deref();
            if let (Object::Custom(custom), None) = (&**object, requested_rv) {
                // Custom resources do not allow unconditional updates (customResourceStrategy's
                // AllowUnconditionalUpdate is false); the generic registry's Store.Update then
                // answers 422 Invalid on metadata.resourceVersion, for the status subresource too.
                return Mutation::Reply(Err(ApiError::new(
                    ApiErrorReason::Invalid,
                    format!(
                        "{} {:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                        custom.kind.resource(),
                        key.name
                    ),
                )));
            }
            if requested_rv.is_some() && requested_rv != current.meta().resource_version.as_deref() {
                return conflict(format!(
                    "Operation cannot be fulfilled on {key}: the object has been modified; please apply your changes to the latest version and try again"
                ));
            }
            if object.meta().uid.is_some() && object.meta().uid != current.meta().uid {
                return conflict(format!("Precondition failed: UID in precondition does not match {key}"));
            }
            let mut updated: Object;
            if matches!(request, ApiRequest::UpdateStatus { .. }) {
                updated = (**current).clone();
                copy_status(&mut updated, object);
            } else {
                updated = (**object).clone();
                copy_status(&mut updated, current);
                updated.apply_defaults();
                let meta = updated.meta_mut();
                let old = current.meta();
                meta.uid = old.uid.clone();
                meta.creation_timestamp_ns = old.creation_timestamp_ns;
                meta.deletion_timestamp_ns = old.deletion_timestamp_ns;
                meta.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
                meta.namespace = old.namespace.clone();
                meta.generation = old.generation;
                if spec_changed(&updated, current) {
                    updated.meta_mut().generation = Some(old.generation.unwrap_or(0) + 1);
                }
                if let Err(errors) = updated.validate() {
                    let text: Vec<String> = errors.iter().map(|error| error.to_string()).collect();
                    return Mutation::Reply(Err(ApiError::new(ApiErrorReason::Invalid, text.join("; "))));
                }
            }
            updated.meta_mut().resource_version = current.meta().resource_version.clone();
            if updated == **current {
                return Mutation::Reply(Ok(ApiOk::Object(current.clone())));
            }
            let expected = resource_version_of(current);
            let namespace_finalized = match &updated {
                Object::Namespace(namespace) => namespace.spec.finalizers.is_empty(),
                _ => true,
            };
            if updated.meta().deletion_timestamp_ns.is_some()
                && updated.meta().finalizers.is_empty()
                && namespace_finalized
            {
                // The last finalizer is gone: the deletion completes.
                return Mutation::Delete { key: key.store_key(), expected, deleted: Rc::new(updated) };
            }
            Mutation::Put { key: key.store_key(), value: Rc::new(updated), expected }
        }
        ApiRequest::Delete { key, uid, grace_period_seconds, propagation } => {
            let Some(current) = current else { return not_found(&key.to_string()) };
            if uid.is_some() && uid.as_ref() != current.meta().uid.as_ref() {
                return conflict(format!("Precondition failed: UID in precondition does not match {key}"));
            }
            let mut updated = (**current).clone();
            let finalizer = match propagation {
                Some(Propagation::Foreground) => Some("foregroundDeletion"),
                Some(Propagation::Orphan) => Some("orphan"),
                _ => None,
            };
            if let Some(finalizer) = finalizer {
                if current.meta().deletion_timestamp_ns.is_none()
                    && !updated.meta().finalizers.iter().any(|existing| existing == finalizer)
                {
                    updated.meta_mut().finalizers.push(finalizer.to_string());
                }
            }
            let expected = resource_version_of(current);
            if let Object::Namespace(namespace) = &mut updated {
                if IMMORTAL_NAMESPACES.contains(&namespace.metadata.name.as_str()) {
                    return Mutation::Reply(Err(ApiError::new(
                        ApiErrorReason::Forbidden,
                        format!("namespace {:?} may not be deleted", namespace.metadata.name),
                    )));
                }
                // The namespace registry's Delete: with finalizers left, the namespace only turns
                // Terminating, and the namespace controller empties it.
                if !namespace.spec.finalizers.is_empty() {
                    namespace.metadata.deletion_timestamp_ns.get_or_insert(now_ns);
                    namespace.metadata.deletion_grace_period_seconds.get_or_insert(0);
                    namespace.status.phase = Some(NAMESPACE_TERMINATING.to_string());
                    if updated == **current {
                        return Mutation::Reply(Ok(ApiOk::Deleted(current.clone())));
                    }
                    return Mutation::Put { key: key.store_key(), value: Rc::new(updated), expected };
                }
            }
            // Pods bound to a node terminate gracefully: the kubelet stops them, then deletes them
            // for good with a zero grace period.
            if let Object::Pod(pod) = &updated {
                let grace = grace_period_seconds.or(pod.spec.termination_grace_period_seconds).unwrap_or(30).max(0);
                let active = !matches!(pod.status.phase, Some(PodPhase::Succeeded) | Some(PodPhase::Failed));
                if pod.spec.node_name.is_some() && grace > 0 && active {
                    let deadline_ns = now_ns.saturating_add(grace as u64 * 1_000_000_000);
                    let meta = updated.meta_mut();
                    match meta.deletion_timestamp_ns {
                        Some(existing) if existing <= deadline_ns => {
                            return Mutation::Reply(Ok(ApiOk::Deleted(current.clone())));
                        }
                        _ => {
                            meta.deletion_timestamp_ns = Some(deadline_ns);
                            meta.deletion_grace_period_seconds = Some(grace);
                        }
                    }
                    return Mutation::Put { key: key.store_key(), value: Rc::new(updated), expected };
                }
            }
            if !updated.meta().finalizers.is_empty() {
                if updated.meta().deletion_timestamp_ns.is_some() && updated == **current {
                    return Mutation::Reply(Ok(ApiOk::Deleted(current.clone())));
                }
                let meta = updated.meta_mut();
                meta.deletion_timestamp_ns.get_or_insert(now_ns);
                meta.deletion_grace_period_seconds.get_or_insert(0);
                return Mutation::Put { key: key.store_key(), value: Rc::new(updated), expected };
            }
            Mutation::Delete { key: key.store_key(), expected, deleted: current.clone() }
        }
        ApiRequest::Bind { namespace, pod, uid, node } => {
            let key = ObjectKey::new(Kind::Pod, namespace, pod);
            let Some(current) = current else { return not_found(&key.to_string()) };
            let Object::Pod(mut updated) = (**current).clone() else { return not_found(&key.to_string()) };
            if uid.is_some() && uid != &updated.metadata.uid {
                return conflict(format!("Precondition failed: UID in precondition does not match {key}"));
            }
            if let Some(existing) = &updated.spec.node_name {
                return conflict(format!("pod {pod} is already assigned to node \"{existing}\""));
            }
            if updated.metadata.deletion_timestamp_ns.is_some() {
                return conflict(format!("pod {pod} is being deleted, cannot be assigned to a host"));
            }
            updated.spec.node_name = Some(node.clone());
            set_condition(&mut updated.status.conditions, "PodScheduled", ConditionStatus::True, now_ns);
            let expected = resource_version_of(current);
            Mutation::Put { key: key.store_key(), value: Rc::new(Object::Pod(updated)), expected }
        }
        ApiRequest::Evict { .. } => unreachable!("evictions are decided by ApiServer::evict"),
        ApiRequest::Get { .. } | ApiRequest::List { .. } | ApiRequest::ListPodMetrics { .. } => {
            unreachable!("reads do not mutate")
        }
    }
}

/// `EvictionREST.Create`'s decision for `pod` given the budgets of its namespace, as of `now_ns`.
fn eviction_step(pod: Option<&Object>, budgets: &[Rc<Object>], now_ns: u64) -> EvictionStep {
    use crate::controllers::disruption::{budget_covers, set_disruption_allowed_condition, REASON_INSUFFICIENT_PODS};
    use crate::rules::pdb::{self as rules, EvictionVerdict};
    let Some(Object::Pod(pod)) = pod else {
        return EvictionStep::Reply(ApiError::new(ApiErrorReason::NotFound, "pods not found"));
    };
    let phase = crate::controllers::rules_phase(pod);
    if rules::can_ignore_pdb(phase, pod.metadata.is_terminating()) {
        return EvictionStep::DeletePod;
    }
    let covering: Vec<(&Rc<Object>, &crate::objects::PodDisruptionBudget)> = budgets
        .iter()
        .filter_map(|object| match object.as_ref() {
            Object::PodDisruptionBudget(pdb) if budget_covers(pdb, pod) => Some((object, pdb)),
            _ => None,
        })
        .collect();
    let (object, pdb) = match covering.as_slice() {
        [] => return EvictionStep::DeletePod,
        [one] => *one,
        _ => {
            return EvictionStep::Reply(ApiError::new(
                ApiErrorReason::InternalError,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ))
        }
    };
    // IfHealthyBudget: an unready pod does not count towards healthy, so evicting it spends nothing
    // when the budget is met without it.
    if !pod.is_ready() && rules::unready_pod_fits_budget(pdb.status.current_healthy, pdb.status.desired_healthy) {
        return EvictionStep::DeletePod;
    }
    let too_many = |message: String| EvictionStep::Reply(ApiError::new(ApiErrorReason::TooManyRequests, message));
    let verdict = rules::check_and_decrement(
        pdb.metadata.generation.unwrap_or(0),
        pdb.status.observed_generation.unwrap_or(0),
        pdb.status.disruptions_allowed,
        pdb.status.disrupted_pods.len(),
    );
    match verdict {
        EvictionVerdict::BudgetNotProcessed => too_many(format!(
            "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {} is still being processed by the server.",
            pdb.metadata.name
        )),
        EvictionVerdict::NoDisruptionAllowed => too_many(format!(
            "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {} needs {} healthy pods and has {} currently",
            pdb.metadata.name, pdb.status.desired_healthy, pdb.status.current_healthy
        )),
        EvictionVerdict::NegativeAllowed => EvictionStep::Reply(ApiError::new(
            ApiErrorReason::Forbidden,
            "pdb disruptions allowed is negative",
        )),
        EvictionVerdict::TooManyDisrupted => EvictionStep::Reply(ApiError::new(
            ApiErrorReason::Forbidden,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        )),
        EvictionVerdict::Decrement { disruptions_allowed } => {
            let mut updated = pdb.clone();
            updated.status.disruptions_allowed = disruptions_allowed;
            if disruptions_allowed == 0 {
                set_disruption_allowed_condition(&mut updated, REASON_INSUFFICIENT_PODS, now_ns);
            }
            // The controller must not count the pod as healthy until it sees it deleted.
            updated.status.disrupted_pods.insert(pod.metadata.name.clone(), now_ns);
            let expected = resource_version_of(object);
            updated.metadata.resource_version = None;
            EvictionStep::Decrement { budget: Rc::new(Object::PodDisruptionBudget(updated)), expected }
        }
    }
}

/// Sets a condition, moving lastTransitionTime only when the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, condition_type: &str, status: ConditionStatus, now_ns: u64) {
    match conditions.iter_mut().find(|condition| condition.condition_type == condition_type) {
        Some(condition) => {
            if condition.status != status {
                condition.status = status;
                condition.last_transition_time_ns = Some(now_ns);
            }
        }
        None => conditions.push(Condition {
            condition_type: condition_type.to_string(),
            status,
            last_transition_time_ns: Some(now_ns),
            ..Condition::default()
        }),
    }
}
