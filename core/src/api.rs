//! The wire protocol of the simulated cluster: API requests and their results, watch events, the
//! API server's requests to etcd, and the pod network's requests. One message type ([`Msg`]) and
//! one timer type ([`Timer`]) serve every component, because the engine runs one simulation type.
//!
//! Objects travel as `Rc<Object>`: a message is cloned when the network duplicates it and an object
//! is shared by the store, the watch cache and every informer that holds it, so sharing beats
//! copying. A run is single-threaded, so `Rc` (not `Arc`) is enough.

use crate::objects::{Kind, Object};
use crate::store::Revision;
use kubedst_sim::{stable_hash_str, TraceDigest};
use std::fmt;
use std::rc::Rc;

/// Identifies an object: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey { kind, namespace: namespace.to_string(), name: name.to_string() }
    }

    /// The key of an object, with the namespace defaulted as the API server does.
    pub fn of(object: &Object) -> ObjectKey {
        let meta = object.meta();
        ObjectKey { kind: object.kind(), namespace: namespace_of(object), name: meta.name.clone() }
    }

    /// The store key: `/registry/<kind>/<namespace>/<name>`, as kube-apiserver lays out etcd.
    pub fn store_key(&self) -> String {
        format!("/registry/{}/{}/{}", self.kind.store_segment(), self.namespace, self.name)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.as_str(), self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind.as_str(), self.namespace, self.name)
        }
    }
}

/// The store prefix of every object of a kind (in one namespace, if given).
pub fn store_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("/registry/{}/{}/", kind.store_segment(), namespace),
        None => format!("/registry/{}/", kind.store_segment()),
    }
}

/// The namespace an object lives in: `default` when a namespaced object names none, empty for
/// cluster-scoped kinds.
pub fn namespace_of(object: &Object) -> String {
    if object.kind().is_namespaced() {
        object.meta().namespace.clone().unwrap_or_else(|| "default".to_string())
    } else {
        String::new()
    }
}

/// An object's resourceVersion as the store revision it encodes (0 if absent or not a number).
pub fn resource_version_of(object: &Object) -> Revision {
    object.meta().resource_version.as_deref().and_then(|rv| rv.parse().ok()).unwrap_or(0)
}

/// How a delete treats dependents (`propagationPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Where a list may be served from (`resourceVersion` of a list request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListFrom {
    /// `resourceVersion=""`: a quorum read from etcd.
    Quorum,
    /// `resourceVersion="0"`: whatever the API server's watch cache holds, possibly stale.
    Cache,
}

/// One API call.
#[derive(Clone, Debug)]
pub enum ApiRequest {
    Create {
        object: Rc<Object>,
    },
    /// A conditional update if the object carries a resourceVersion, else unconditional (allowed
    /// for the built-in kinds modelled here, as Kubernetes allows it for pods and workloads).
    Update {
        object: Rc<Object>,
    },
    /// The status subresource: only `status` is taken from the object; the spec stays.
    UpdateStatus {
        object: Rc<Object>,
    },
    Delete {
        key: ObjectKey,
        /// `preconditions.uid`: delete only this incarnation of the name.
        uid: Option<String>,
        grace_period_seconds: Option<i64>,
        propagation: Option<Propagation>,
    },
    Get {
        key: ObjectKey,
    },
    List {
        kind: Kind,
        namespace: Option<String>,
        from: ListFrom,
    },
    /// `pods/binding`: bind a pod to a node, once.
    Bind {
        namespace: String,
        pod: String,
        uid: Option<String>,
        node: String,
    },
    /// `pods/eviction`: delete a pod if its disruption budgets allow it (429 if not).
    Evict {
        namespace: String,
        pod: String,
    },
    /// `GET /apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods`: the PodMetrics of a namespace,
    /// which the API server proxies to the metrics API's backend (metrics-server).
    ListPodMetrics {
        namespace: String,
    },
}

impl ApiRequest {
    pub fn verb(&self) -> &'static str {
        match self {
            ApiRequest::Create { .. } => "create",
            ApiRequest::Update { .. } => "update",
            ApiRequest::UpdateStatus { .. } => "update-status",
            ApiRequest::Delete { .. } => "delete",
            ApiRequest::Get { .. } => "get",
            ApiRequest::List { .. } => "list",
            ApiRequest::Bind { .. } => "bind",
            ApiRequest::Evict { .. } => "evict",
            ApiRequest::ListPodMetrics { .. } => "list-pod-metrics",
        }
    }

    /// The kind the request is about.
    pub fn kind(&self) -> Kind {
        match self {
            ApiRequest::Create { object } | ApiRequest::Update { object } | ApiRequest::UpdateStatus { object } => {
                object.kind()
            }
            ApiRequest::Delete { key, .. } | ApiRequest::Get { key } => key.kind,
            ApiRequest::List { kind, .. } => *kind,
            ApiRequest::Bind { .. } | ApiRequest::Evict { .. } | ApiRequest::ListPodMetrics { .. } => Kind::Pod,
        }
    }
}

/// A successful API call's result.
#[derive(Clone, Debug)]
pub enum ApiOk {
    Object(Rc<Object>),
    List {
        items: Vec<Rc<Object>>,
        resource_version: Revision,
    },
    /// A delete: the object as deleted, or as now terminating (graceful deletion, finalizers).
    Deleted(Rc<Object>),
    /// The PodMetrics of a namespace (metrics.k8s.io), as metrics-server answered them.
    PodMetrics(Rc<Vec<crate::metrics::PodMetrics>>),
}

/// The reasons of Kubernetes' `Status` errors that the model produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiErrorReason {
    NotFound,
    AlreadyExists,
    Conflict,
    Invalid,
    Forbidden,
    Gone,
    TooManyRequests,
    /// An error inside the server (HTTP 500), such as a pod covered by several budgets.
    InternalError,
    /// The API server could not reach etcd in time; the write may or may not have happened.
    Timeout,
    ServiceUnavailable,
}

impl ApiErrorReason {
    /// The HTTP status code Kubernetes answers with.
    pub fn code(self) -> u16 {
        match self {
            ApiErrorReason::NotFound => 404,
            ApiErrorReason::AlreadyExists | ApiErrorReason::Conflict => 409,
            ApiErrorReason::Invalid => 422,
            ApiErrorReason::Forbidden => 403,
            ApiErrorReason::Gone => 410,
            ApiErrorReason::TooManyRequests => 429,
            ApiErrorReason::InternalError => 500,
            ApiErrorReason::Timeout => 504,
            ApiErrorReason::ServiceUnavailable => 503,
        }
    }
}

/// A failed API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub reason: ApiErrorReason,
    pub message: String,
}

impl ApiError {
    pub fn new(reason: ApiErrorReason, message: impl Into<String>) -> ApiError {
        ApiError { reason, message: message.into() }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// 409 Conflict: the object changed since it was read (or a uid precondition failed). The
    /// write did not happen; read again (wait for the informer) and retry.
    pub fn is_conflict(&self) -> bool {
        self.reason == ApiErrorReason::Conflict
    }

    /// 504 Timeout: the write may or may not have happened. Never assume either; look again.
    pub fn is_outcome_unknown(&self) -> bool {
        self.reason == ApiErrorReason::Timeout
    }

    /// 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.reason == ApiErrorReason::NotFound
    }

    /// 409 AlreadyExists: a create found an object of that name (perhaps the caller's own
    /// earlier create whose answer was lost).
    pub fn is_already_exists(&self) -> bool {
        self.reason == ApiErrorReason::AlreadyExists
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.code(), self.reason, self.message)
    }
}

pub type ApiResult = Result<ApiOk, ApiError>;

/// What a client asks to watch. Sent as the first message on a stream to an API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    pub kind: Kind,
    pub namespace: Option<String>,
    /// `fieldSelector=spec.nodeName=<node>` (pods only): what a kubelet watches.
    pub node_name: Option<String>,
    /// Events after this revision are sent; an older one than the cache holds gets 410 Gone.
    pub resource_version: Revision,
    /// Who watches.
    pub user: Rc<str>,
}

/// One event on a watch stream.
#[derive(Clone, Debug)]
pub enum WatchEvent {
    Added(Rc<Object>),
    Modified(Rc<Object>),
    Deleted(Rc<Object>),
    /// Progress: everything up to this revision has been sent.
    Bookmark(Revision),
    /// 410 Gone: the requested revision is compacted; the client must relist. The stream closes.
    Gone,
}

/// A write the API server asks etcd to make atomically.
#[derive(Clone, Debug)]
pub enum EtcdRequest {
    /// Put `value` at `key` if the key's mod revision is `expected_mod_revision` (0: absent).
    Put {
        key: String,
        value: Rc<Object>,
        expected_mod_revision: Revision,
    },
    /// Delete `key` if its mod revision is `expected_mod_revision`.
    Delete {
        key: String,
        expected_mod_revision: Revision,
    },
    Get {
        key: String,
    },
    Range {
        prefix: String,
    },
    /// Sent on a stream: stream every change after `after_revision`.
    Watch {
        after_revision: Revision,
    },
    /// `etcdctl compact`: an operator (the harness, as a fault) compacts history up to the current
    /// revision. Sent as a plain message; it has no answer.
    CompactNow,
}

/// One key's value with its revisions.
#[derive(Clone, Debug)]
pub struct EtcdKv {
    pub key: String,
    pub value: Rc<Object>,
    pub mod_revision: Revision,
}

/// etcd's answers.
#[derive(Clone, Debug)]
pub enum EtcdResponse {
    /// A write happened at `revision`.
    Written {
        revision: Revision,
    },
    /// The compare failed; `current` is what the key holds (None: absent).
    CompareFailed {
        current: Option<EtcdKv>,
        revision: Revision,
    },
    Value {
        kv: Option<EtcdKv>,
        revision: Revision,
    },
    Values {
        kvs: Vec<EtcdKv>,
        revision: Revision,
    },
    /// On a watch stream: the changes, in revision order. `value` is None for a delete.
    Events {
        events: Vec<EtcdEvent>,
    },
    /// On a watch stream: the start revision is compacted.
    Compacted {
        compact_revision: Revision,
    },
}

/// A change streamed from etcd to the API servers' watch caches.
#[derive(Clone, Debug)]
pub struct EtcdEvent {
    pub key: String,
    pub revision: Revision,
    /// The new value, or None for a delete.
    pub value: Option<Rc<Object>>,
    /// The value before the change (what a delete deleted).
    pub prev: Option<Rc<Object>>,
}

/// A request on the pod network: a client's call to a Service, forwarded by kube-proxy to a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Unique per traffic source, for the outcome log.
    pub id: u64,
    /// The Service (namespace/name) the client called.
    pub service: String,
    /// The pod IP kube-proxy chose; empty until the proxy has chosen.
    pub pod_ip: String,
}

/// How a request to a Service ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpOutcome {
    /// The pod served it.
    Ok,
    /// kube-proxy had no ready endpoint for the Service.
    NoEndpoints,
    /// The chosen pod did not run or was not serving (connection refused).
    Refused,
    /// No answer in time (a partition, a crashed node, a paused process).
    Timeout,
    /// The client could not resolve the Service's name.
    DnsFailure,
}

/// A model fault, delivered by the harness to the component it acts on (see
/// [`crate::harness::ModelFault`]). Components that it does not concern ignore it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectedFault {
    /// To an API server: hold etcd's events back from the watch cache for `duration`.
    WatchCacheLag { duration: std::time::Duration },
    /// To a kubelet: crash the `nth` running container (modulo their number) of its node.
    ContainerCrash { nth: u32 },
    /// To a kubelet: pulls of `image` that start within `duration` fail.
    PullFailure { image: String, duration: std::time::Duration },
    /// Every injected fault still in force on the component ends now (the harness's heal).
    Heal,
}

/// Every message of the Kubernetes model.
#[derive(Clone, Debug)]
pub enum Msg {
    /// An API call and who makes it (what kube-apiserver authenticates from the client's
    /// certificate or token).
    Api {
        user: Rc<str>,
        request: ApiRequest,
    },
    /// A model fault from the harness.
    Inject(InjectedFault),
    ApiResult(ApiResult),
    Watch(WatchRequest),
    WatchEvent(WatchEvent),
    Etcd(EtcdRequest),
    EtcdResult(EtcdResponse),
    Http(HttpRequest),
    HttpResult {
        id: u64,
        outcome: HttpOutcome,
        pod_ip: String,
    },
    /// DNS: resolve `namespace/name` of a Service; the answer is its ClusterIP, if any.
    DnsQuery {
        service: String,
    },
    DnsAnswer {
        service: String,
        cluster_ip: Option<String>,
    },
    /// metrics-server asks a kubelet for its summary (`GET /stats/summary`).
    StatsSummaryRequest,
    /// The kubelet's summary: cumulative CPU use of each of its pods.
    StatsSummary(Rc<crate::metrics::NodeSummary>),
    /// The API server asks metrics-server for a namespace's PodMetrics (the aggregated API).
    PodMetricsQuery {
        namespace: String,
    },
    /// metrics-server's answer.
    PodMetricsAnswer(Rc<Vec<crate::metrics::PodMetrics>>),
    /// A harness command to a traffic source: send one request every `interval`, or stop (None).
    SetTrafficInterval {
        interval: Option<std::time::Duration>,
    },
    /// A call of the cloud provider's API.
    Cloud(crate::cloud::CloudRequest),
    /// The cloud provider's answer.
    CloudResult(crate::cloud::CloudResponse),
    /// A user's node command for kubectl (`cordon`, `uncordon`, `drain`), injected by the harness.
    Kubectl(crate::drain::NodeCommand),
}

fn object_digest(object: &Object) -> u64 {
    let meta = object.meta();
    stable_hash_str(&meta.name) ^ resource_version_of(object).rotate_left(17) ^ object.kind().trace_code() << 56
}

impl TraceDigest for Msg {
    fn trace_digest(&self) -> u64 {
        match self {
            Msg::Api { request, .. } => {
                let base = stable_hash_str(request.verb());
                match request {
                    ApiRequest::Create { object }
                    | ApiRequest::Update { object }
                    | ApiRequest::UpdateStatus { object } => base ^ object_digest(object),
                    ApiRequest::Delete { key, .. } | ApiRequest::Get { key } => base ^ stable_hash_str(&key.name),
                    ApiRequest::List { kind, .. } => base ^ kind.trace_code(),
                    ApiRequest::Bind { pod, node, .. } => base ^ stable_hash_str(pod) ^ stable_hash_str(node) << 1,
                    ApiRequest::Evict { pod, .. } => base ^ stable_hash_str(pod),
                    ApiRequest::ListPodMetrics { namespace } => base ^ stable_hash_str(namespace),
                }
            }
            Msg::ApiResult(Ok(ApiOk::Object(object))) | Msg::ApiResult(Ok(ApiOk::Deleted(object))) => {
                1 ^ object_digest(object)
            }
            Msg::ApiResult(Ok(ApiOk::List { items, resource_version })) => {
                2 ^ items.len() as u64 ^ resource_version << 8
            }
            Msg::ApiResult(Ok(ApiOk::PodMetrics(metrics))) => 25 ^ (metrics.len() as u64) << 8,
            Msg::ApiResult(Err(err)) => 3 ^ u64::from(err.code()) << 8,
            Msg::Watch(request) => 4 ^ request.resource_version << 8 ^ request.kind.trace_code(),
            Msg::WatchEvent(WatchEvent::Added(object)) => 5 ^ object_digest(object),
            Msg::WatchEvent(WatchEvent::Modified(object)) => 6 ^ object_digest(object),
            Msg::WatchEvent(WatchEvent::Deleted(object)) => 7 ^ object_digest(object),
            Msg::WatchEvent(WatchEvent::Bookmark(revision)) => 8 ^ revision << 8,
            Msg::WatchEvent(WatchEvent::Gone) => 9,
            Msg::Etcd(EtcdRequest::Put { key, expected_mod_revision, .. }) => {
                10 ^ stable_hash_str(key) ^ expected_mod_revision << 8
            }
            Msg::Etcd(EtcdRequest::Delete { key, expected_mod_revision }) => {
                11 ^ stable_hash_str(key) ^ expected_mod_revision << 8
            }
            Msg::Etcd(EtcdRequest::Get { key }) => 12 ^ stable_hash_str(key),
            Msg::Etcd(EtcdRequest::Range { prefix }) => 13 ^ stable_hash_str(prefix),
            Msg::Etcd(EtcdRequest::Watch { after_revision }) => 14 ^ after_revision << 8,
            Msg::Etcd(EtcdRequest::CompactNow) => 15,
            Msg::EtcdResult(EtcdResponse::Written { revision }) => 15 ^ revision << 8,
            Msg::EtcdResult(EtcdResponse::CompareFailed { revision, .. }) => 16 ^ revision << 8,
            Msg::EtcdResult(EtcdResponse::Value { revision, .. }) => 17 ^ revision << 8,
            Msg::EtcdResult(EtcdResponse::Values { kvs, revision }) => 18 ^ revision << 8 ^ (kvs.len() as u64) << 40,
            Msg::EtcdResult(EtcdResponse::Events { events }) => {
                19 ^ events.last().map_or(0, |event| event.revision) << 8 ^ (events.len() as u64) << 40
            }
            Msg::EtcdResult(EtcdResponse::Compacted { compact_revision }) => 20 ^ compact_revision << 8,
            Msg::Http(request) => 21 ^ request.id << 8 ^ stable_hash_str(&request.pod_ip),
            Msg::HttpResult { id, outcome, .. } => 22 ^ id << 8 ^ (*outcome as u64) << 4,
            Msg::DnsQuery { service } => 23 ^ stable_hash_str(service),
            Msg::DnsAnswer { service, cluster_ip } => {
                24 ^ stable_hash_str(service) ^ cluster_ip.as_deref().map_or(0, stable_hash_str).rotate_left(3)
            }
            Msg::StatsSummaryRequest => 26,
            Msg::StatsSummary(summary) => 27 ^ stable_hash_str(&summary.node) ^ (summary.pods.len() as u64) << 8,
            Msg::PodMetricsQuery { namespace } => 28 ^ stable_hash_str(namespace),
            Msg::PodMetricsAnswer(metrics) => 29 ^ (metrics.len() as u64) << 8,
            Msg::SetTrafficInterval { interval } => 30 ^ interval.map_or(0, kubedst_sim::time::duration_nanos) << 8,
            Msg::Cloud(request) => 31 ^ request.trace_digest() << 8,
            Msg::CloudResult(response) => 32 ^ response.trace_digest() << 8,
            Msg::Kubectl(crate::drain::NodeCommand::Cordon { node, unschedulable }) => {
                33 ^ stable_hash_str(node) ^ u64::from(*unschedulable) << 8
            }
            Msg::Kubectl(crate::drain::NodeCommand::Drain { node, .. }) => 34 ^ stable_hash_str(node),
            Msg::Inject(InjectedFault::WatchCacheLag { duration }) => 35 ^ (duration.as_millis() as u64) << 8,
            Msg::Inject(InjectedFault::ContainerCrash { nth }) => 36 ^ u64::from(*nth) << 8,
            Msg::Inject(InjectedFault::PullFailure { image, duration }) => {
                37 ^ stable_hash_str(image) ^ (duration.as_millis() as u64) << 8
            }
            Msg::Inject(InjectedFault::Heal) => 38,
        }
    }
}

/// Every timer of the Kubernetes model: a closed set, so a trace names what fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A component's periodic work (heartbeats, resyncs, status posts, compaction).
    Tick(&'static str),
    /// Relist or rewatch informer `index` after a backoff.
    InformerRetry { index: usize },
    /// A work item of reconciler `controller` is due again (a requeue or the queue's backoff).
    Requeue { controller: usize, key: ObjectKey },
    /// The kubelet's per-pod work: probe, start, restart, kill after the grace period.
    PodWork { uid: String, what: &'static str },
    /// The traffic source's next request.
    NextRequest,
    /// Anything a user-written component needs; the number is its own.
    User(u64),
}

impl TraceDigest for Timer {
    fn trace_digest(&self) -> u64 {
        match self {
            Timer::Tick(name) => 1 ^ stable_hash_str(name) << 4,
            Timer::InformerRetry { index } => 2 ^ (*index as u64) << 4,
            Timer::Requeue { controller, key } => 3 ^ (stable_hash_str(&key.to_string()) ^ *controller as u64) << 4,
            Timer::PodWork { uid, what } => 4 ^ (stable_hash_str(uid) ^ stable_hash_str(what).rotate_left(7)) << 4,
            Timer::NextRequest => 5,
            Timer::User(value) => 6 ^ value << 4,
        }
    }
}
