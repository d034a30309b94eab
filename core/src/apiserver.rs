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

use crate::api::{
    namespace_of, resource_version_of, store_prefix, ApiError, ApiErrorReason, ApiOk, ApiRequest, ApiResult, EtcdEvent,
    EtcdRequest, EtcdResponse, ListFrom, Msg, ObjectKey, Propagation, Timer, WatchEvent, WatchRequest,
};
use crate::objects::meta::ConditionStatus;
use crate::objects::pod::{PodPhase, TaintEffect, Toleration, TolerationOperator};
use crate::objects::{Condition, Kind, Object};
use crate::store::Revision;
use kubedst_sim::{Component, ComponentId, Ctx, Input, ReplyTo, RequestId, StreamId};
use std::collections::{BTreeMap, VecDeque};
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
}

impl ApiServerConfig {
    pub fn new(etcd: ComponentId) -> ApiServerConfig {
        ApiServerConfig { etcd, watch_cache_capacity: 10_000 }
    }
}

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
        match request {
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
                    let key = ObjectKey::of(&prepared).store_key();
                    let current = self.objects.get(&key).cloned();
                    let request = ApiRequest::Create { object: Rc::new(prepared) };
                    self.apply_mutation(ctx, reply, request, current, 0);
                }
                Err(error) => ctx.respond(reply, Msg::ApiResult(Err(error))),
            },
            request => {
                let key = request_key(&request).store_key();
                let current = self.objects.get(&key).cloned();
                self.apply_mutation(ctx, reply, request, current, 0);
            }
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
                Pending::Write { reply, .. }
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

    fn apply_etcd_events(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, events: Vec<EtcdEvent>) {
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

    fn start_client_watch(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: StreamId, request: WatchRequest) {
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
            Input::Request { reply, msg: Msg::Api(request) } => self.handle_request(ctx, reply, request),
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
            if updated.meta().deletion_timestamp_ns.is_some() && updated.meta().finalizers.is_empty() {
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
        ApiRequest::Evict { namespace, pod } => {
            // Disruption budgets are checked by the eviction subresource; without a budget an
            // eviction is a graceful delete.
            let delete = ApiRequest::Delete {
                key: ObjectKey::new(Kind::Pod, namespace, pod),
                uid: None,
                grace_period_seconds: None,
                propagation: None,
            };
            mutate(&delete, current, now_ns)
        }
        ApiRequest::Get { .. } | ApiRequest::List { .. } => unreachable!("reads do not mutate"),
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
