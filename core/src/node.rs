//! The node's components: the kubelet (with the container runtime it drives), kube-proxy, the
//! cluster DNS, and a traffic source that calls Services and logs every outcome.
//!
//! Ground truth lives here: the runtime knows which containers really run and serve, and the
//! traffic log knows which requests really succeeded.

use crate::api::{ApiOk, ApiRequest, HttpOutcome, HttpRequest, InjectedFault, Msg, ObjectKey, Timer};
use crate::cache::Cache;
use crate::client::{ApiClient, Informer, InformerOutcome};
use crate::kubelet_logic::{PodIpPool, PodWorkers};
use crate::objects::cluster::{LeaseSpec, NodeResources, NodeSpec, NodeStatus, Taint};
use crate::objects::meta::ConditionStatus;
use crate::objects::{Bytes, Kind, Lease, Millicores, Node, Object, ObjectMeta, StringMap};
use crate::proxy::ProxyTable;
use crate::runtime::{ContainerRuntime, ImageBehaviors};
use kubedst_sim::{Component, ComponentId, Ctx, Input, ReplyTo, RequestId, TimerId};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Kubelets renew their node Lease this often (leaseDuration 40 s).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The kubelet reports node status this often when nothing changes (nodeStatusReportFrequency).
pub const NODE_STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// What a node is.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    /// The node's index, which picks its pod IP range.
    pub index: u8,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub max_pods: u64,
    pub labels: StringMap,
    pub taints: Vec<Taint>,
    pub images: ImageBehaviors,
    /// Deliberate bugs of the kubelet (negative controls; see [`crate::mutants`]); set by
    /// [`crate::cluster::Cluster::build`] from the cluster's mutants.
    pub mutants: crate::mutants::Mutants,
}

impl NodeConfig {
    pub fn new(name: &str, index: u8) -> NodeConfig {
        let mut labels = StringMap::new();
        labels.insert("kubernetes.io/hostname".to_string(), name.to_string());
        NodeConfig {
            name: name.to_string(),
            index,
            cpu_millicores: 4_000,
            memory_bytes: 16 << 30,
            max_pods: 110,
            labels,
            taints: Vec::new(),
            images: ImageBehaviors::default(),
            mutants: crate::mutants::Mutants::NONE,
        }
    }

    pub fn host_ip(&self) -> String {
        format!("192.168.{}.{}", self.index / 250, self.index % 250 + 1)
    }

    fn node_object(&self, now_ns: u64) -> Node {
        let resources = NodeResources {
            cpu: Some(Millicores(self.cpu_millicores)),
            memory: Some(Bytes(self.memory_bytes)),
            pods: Some(Bytes(self.max_pods)),
        };
        let mut status = NodeStatus { capacity: resources, allocatable: resources, ..NodeStatus::default() };
        crate::apiserver::set_condition(&mut status.conditions, "Ready", ConditionStatus::True, now_ns);
        if let Some(ready) = status.conditions.iter_mut().find(|c| c.condition_type == "Ready") {
            ready.reason = Some("KubeletReady".to_string());
            ready.last_heartbeat_time_ns = Some(now_ns);
        }
        Node {
            metadata: ObjectMeta { name: self.name.clone(), labels: self.labels.clone(), ..ObjectMeta::default() },
            spec: NodeSpec { taints: self.taints.clone(), ..NodeSpec::default() },
            status,
        }
    }
}

/// What an API call of the kubelet was for.
#[derive(Debug)]
enum KubeletCall {
    RegisterNode,
    RenewLease,
    CreateLease,
    NodeStatus,
    PodStatus,
    FinalDelete,
    GetConfigObject(ObjectKey),
}

/// Where the kubelet is with one Secret or ConfigMap its pods reference. The Node authorizer lets
/// a kubelet read only those, one by one, so the kubelet GETs each (as its secret and configmap
/// managers do) instead of watching every Secret and ConfigMap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConfigFetch {
    /// A GET is in flight; `first`: nothing is known of the object yet.
    InFlight { first: bool },
    /// The last GET failed (404, 403, timeout); fetch again from this time (ns).
    Missing { retry_at_ns: u64 },
    /// Held in the kubelet's cache.
    Present,
}

/// A missing Secret or ConfigMap is fetched again this often (the pod workers' `backOffPeriod`
/// of 10 s).
pub const SECRET_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// The kubelet of one node, with the node's container runtime.
pub struct Kubelet {
    config: NodeConfig,
    client: ApiClient,
    informers: Vec<Informer>,
    cache: Cache,
    workers: PodWorkers,
    runtime: ContainerRuntime,
    calls: BTreeMap<RequestId, KubeletCall>,
    wake: Option<(TimerId, u64)>,
    registered: bool,
    /// The Secrets and ConfigMaps the node's pods reference.
    config_objects: BTreeMap<ObjectKey, ConfigFetch>,
    /// Counters for reports.
    pub pod_syncs: u64,
    pub requests_served: u64,
}

impl Kubelet {
    pub fn new(config: NodeConfig, api_servers: Vec<ComponentId>) -> Kubelet {
        let mut pods = Informer::new(0, Kind::Pod);
        pods.mutants = config.mutants;
        pods.node_name = Some(config.name.clone());
        // Secrets and ConfigMaps are fetched one by one (`ConfigFetch`): the Node authorizer lets a
        // kubelet read only those its pods reference.
        let informers = vec![pods];
        let mut workers = PodWorkers::new(&config.name, &config.host_ip(), PodIpPool::for_node_index(config.index));
        workers.mutants = config.mutants;
        let runtime = ContainerRuntime::new(config.images.clone());
        let user = crate::rbac::node_user(&config.name);
        Kubelet {
            config,
            client: ApiClient::new(api_servers).with_user(&user),
            informers,
            cache: Cache::new(),
            workers,
            runtime,
            calls: BTreeMap::new(),
            wake: None,
            registered: false,
            config_objects: BTreeMap::new(),
            pod_syncs: 0,
            requests_served: 0,
        }
    }

    /// Ground truth: the node's containers.
    pub fn runtime(&self) -> &ContainerRuntime {
        &self.runtime
    }

    pub fn node_name(&self) -> &str {
        &self.config.name
    }

    /// `/stats/summary`: the cumulative CPU use of every pod the runtime holds that the kubelet
    /// knows by name (a pod whose API object it never saw is not reported, as cadvisor's pods
    /// without a pod UID label are not).
    pub fn stats_summary(&self, now_ns: u64) -> crate::metrics::NodeSummary {
        let mut pods = Vec::new();
        for object in self.cache.list(Kind::Pod, None) {
            let Object::Pod(pod) = &**object else { continue };
            let Some(uid) = pod.metadata.uid.as_deref() else { continue };
            let Some(usage) = self.runtime.cpu_usage_millicore_ns(uid, now_ns) else { continue };
            pods.push(crate::metrics::PodStats {
                namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string()),
                name: pod.metadata.name.clone(),
                uid: uid.to_string(),
                cpu_usage_millicore_ns: usage,
            });
        }
        crate::metrics::NodeSummary { node: self.config.name.clone(), time_ns: now_ns, pods }
    }

    /// The kubelet's informers (for the watch checker's counters).
    pub fn informers(&self) -> &[Informer] {
        &self.informers
    }

    fn call(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, request: ApiRequest, what: KubeletCall) {
        let id = self.client.send(ctx, request);
        self.calls.insert(id, what);
    }

    fn register(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        let node = self.config.node_object(ctx.now().as_nanos());
        self.call(ctx, ApiRequest::Create { object: Rc::new(Object::Node(node)) }, KubeletCall::RegisterNode);
    }

    fn renew_lease(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, create: bool) {
        let now_ns = ctx.now().as_nanos();
        let lease = Lease {
            metadata: ObjectMeta {
                name: self.config.name.clone(),
                namespace: Some("kube-node-lease".to_string()),
                ..ObjectMeta::default()
            },
            spec: LeaseSpec {
                holder_identity: Some(self.config.name.clone()),
                lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                renew_time_ns: Some(now_ns),
                ..LeaseSpec::default()
            },
        };
        let object = Rc::new(Object::Lease(lease));
        if create {
            self.call(ctx, ApiRequest::Create { object }, KubeletCall::CreateLease);
        } else {
            self.call(ctx, ApiRequest::Update { object }, KubeletCall::RenewLease);
        }
    }

    fn post_node_status(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        let node = self.config.node_object(ctx.now().as_nanos());
        self.call(ctx, ApiRequest::UpdateStatus { object: Rc::new(Object::Node(node)) }, KubeletCall::NodeStatus);
    }

    /// Runs the pod workers and carries out what they decide.
    fn sync_pods(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        if !self.informers[0].synced {
            return;
        }
        self.pod_syncs += 1;
        let now_ns = ctx.now().as_nanos();
        let mut desired: Vec<Rc<Object>> = self.cache.list(Kind::Pod, None).into_iter().cloned().collect();
        self.fetch_config_objects(ctx, &desired, now_ns);
        // A pod the kubelet has not started is held back while a Secret or ConfigMap it needs is
        // being read for the first time (upstream's managers block the sync until it is known).
        desired.retain(|object| {
            let Object::Pod(pod) = object.as_ref() else { return true };
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            if self.workers.has_worker(uid) || self.runtime.has_pod(uid) {
                return true;
            }
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            [Kind::Secret, Kind::ConfigMap].into_iter().all(|kind| {
                !crate::rbac::referenced(pod, kind).iter().any(|name| {
                    self.config_objects.get(&ObjectKey::new(kind, namespace, name))
                        == Some(&ConfigFetch::InFlight { first: true })
                })
            })
        });
        let actions = self.workers.sync(now_ns, &desired, &mut self.runtime, Some(&self.cache));
        for update in actions.status_updates {
            // Upstream patches the status; an update without resourceVersion is the closest here.
            let mut pod = update.pod;
            pod.metadata.resource_version = None;
            let object = Rc::new(Object::Pod(pod));
            self.call(ctx, ApiRequest::UpdateStatus { object }, KubeletCall::PodStatus);
        }
        for delete in actions.final_deletes {
            let request = ApiRequest::Delete {
                key: delete.key,
                uid: Some(delete.uid),
                grace_period_seconds: Some(0),
                propagation: None,
            };
            self.call(ctx, request, KubeletCall::FinalDelete);
        }
        if let Some(wake_ns) = actions.next_wakeup_ns {
            let current = self.wake.map(|(_, at)| at);
            if current != Some(wake_ns) {
                if let Some((timer, _)) = self.wake.take() {
                    ctx.cancel_timer(timer);
                }
                let after = Duration::from_nanos(wake_ns.saturating_sub(now_ns));
                let timer = ctx.set_timer(after, Timer::Tick("kubelet-sync"));
                self.wake = Some((timer, wake_ns));
            }
        }
    }
}

impl Kubelet {
    /// GETs the Secrets and ConfigMaps the node's pods reference that it does not hold (again
    /// every [`SECRET_RETRY_INTERVAL`] while one is missing), and forgets those no pod references.
    fn fetch_config_objects(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, pods: &[Rc<Object>], now_ns: u64) {
        let mut referenced = std::collections::BTreeSet::new();
        for object in pods {
            let Object::Pod(pod) = object.as_ref() else { continue };
            if pod.spec.node_name.as_deref() != Some(self.config.name.as_str()) {
                continue;
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
            for kind in [Kind::Secret, Kind::ConfigMap] {
                for name in crate::rbac::referenced(pod, kind) {
                    referenced.insert(ObjectKey::new(kind, &namespace, &name));
                }
            }
        }
        let unreferenced: Vec<ObjectKey> =
            self.config_objects.keys().filter(|key| !referenced.contains(*key)).cloned().collect();
        for key in unreferenced {
            self.config_objects.remove(&key);
            self.cache.remove(&key);
        }
        for key in referenced {
            let first = match self.config_objects.get(&key) {
                None => true,
                Some(ConfigFetch::Missing { retry_at_ns }) if *retry_at_ns <= now_ns => false,
                Some(_) => continue,
            };
            self.config_objects.insert(key.clone(), ConfigFetch::InFlight { first });
            self.call(ctx, ApiRequest::Get { key: key.clone() }, KubeletCall::GetConfigObject(key));
        }
    }

    /// A Secret or ConfigMap GET ended.
    fn config_object_fetched(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, key: ObjectKey, object: Option<Rc<Object>>) {
        if !self.config_objects.contains_key(&key) {
            return;
        }
        match object {
            Some(object) => {
                self.cache.upsert(object);
                self.config_objects.insert(key, ConfigFetch::Present);
            }
            None => {
                let retry_at_ns = ctx.now().as_nanos().saturating_add(SECRET_RETRY_INTERVAL.as_nanos() as u64);
                self.config_objects.insert(key, ConfigFetch::Missing { retry_at_ns });
                ctx.set_timer(SECRET_RETRY_INTERVAL, Timer::Tick("kubelet-secret-retry"));
            }
        }
        self.sync_pods(ctx);
    }
}

impl Component<Msg, Timer> for Kubelet {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match &input {
            Input::Start => {
                self.register(ctx);
                for informer in &mut self.informers {
                    informer.start(ctx, &mut self.client);
                }
                ctx.set_timer(LEASE_RENEW_INTERVAL, Timer::Tick("kubelet-lease"));
                ctx.set_timer(NODE_STATUS_REPORT_INTERVAL, Timer::Tick("kubelet-node-status"));
                return;
            }
            Input::Message { msg: Msg::Inject(fault), .. } => {
                let now_ns = ctx.now().as_nanos();
                match fault {
                    InjectedFault::ContainerCrash { nth } => {
                        let running = self.runtime.running_containers(now_ns);
                        if !running.is_empty() {
                            let (uid, name) = &running[*nth as usize % running.len()];
                            self.runtime.crash_container(uid, name, now_ns);
                        }
                    }
                    InjectedFault::PullFailure { image, duration } => {
                        self.runtime.fail_pulls(image, now_ns.saturating_add(duration.as_nanos() as u64));
                    }
                    InjectedFault::Heal => self.runtime.clear_pull_failures(),
                    InjectedFault::WatchCacheLag { .. } => {}
                }
                // The pod workers notice a change of the runtime only when they sync.
                self.sync_pods(ctx);
                return;
            }
            Input::Request { reply, msg: Msg::Http(request) } => {
                // The pod network: this node answers for its pods' IPs.
                self.requests_served += 1;
                let serving = self.runtime.serve(&request.pod_ip, ctx.now().as_nanos());
                let outcome = if serving { HttpOutcome::Ok } else { HttpOutcome::Refused };
                let msg = Msg::HttpResult { id: request.id, outcome, pod_ip: request.pod_ip.clone() };
                ctx.respond(*reply, msg);
                return;
            }
            Input::Request { reply, msg: Msg::StatsSummaryRequest } => {
                let summary = self.stats_summary(ctx.now().as_nanos());
                ctx.respond(*reply, Msg::StatsSummary(Rc::new(summary)));
                return;
            }
            _ => {}
        }
        for informer in &mut self.informers {
            if let InformerOutcome::Events(events) = informer.handle(ctx, &mut self.client, &mut self.cache, &input) {
                // A list completes with the first sync; after that, only changes call for one.
                if !events.is_empty() || self.pod_syncs == 0 {
                    self.sync_pods(ctx);
                }
                return;
            }
        }
        match input {
            Input::Timer { id, timer: Timer::Tick("kubelet-sync") } => {
                if self.wake.is_some_and(|(timer, _)| timer == id) {
                    self.wake = None;
                }
                self.sync_pods(ctx);
            }
            Input::Timer { timer: Timer::Tick("kubelet-register"), .. } => self.register(ctx),
            Input::Timer { timer: Timer::Tick("kubelet-secret-retry"), .. } => self.sync_pods(ctx),
            Input::Timer { timer: Timer::Tick("kubelet-lease"), .. } => {
                self.renew_lease(ctx, false);
                ctx.set_timer(LEASE_RENEW_INTERVAL, Timer::Tick("kubelet-lease"));
            }
            Input::Timer { timer: Timer::Tick("kubelet-node-status"), .. } => {
                self.post_node_status(ctx);
                ctx.set_timer(NODE_STATUS_REPORT_INTERVAL, Timer::Tick("kubelet-node-status"));
            }
            Input::Response { id, msg: Msg::ApiResult(result) } => {
                let Some(call) = self.calls.remove(&id) else { return };
                match (call, result) {
                    (KubeletCall::GetConfigObject(key), result) => {
                        let object = match result {
                            Ok(ApiOk::Object(object)) => Some(object),
                            _ => None,
                        };
                        self.config_object_fetched(ctx, key, object);
                    }
                    (KubeletCall::RegisterNode, Ok(_)) => {
                        self.registered = true;
                        self.renew_lease(ctx, true);
                        self.post_node_status(ctx);
                    }
                    (KubeletCall::RegisterNode, Err(error)) => {
                        if error.reason == crate::api::ApiErrorReason::AlreadyExists {
                            // Registered before a restart: the node exists; refresh its status.
                            self.registered = true;
                            self.renew_lease(ctx, true);
                            self.post_node_status(ctx);
                        } else {
                            self.client.fail_over();
                            ctx.set_timer(Duration::from_secs(1), Timer::Tick("kubelet-register"));
                        }
                    }
                    (KubeletCall::RenewLease, Err(error)) if error.reason == crate::api::ApiErrorReason::NotFound => {
                        self.renew_lease(ctx, true);
                    }
                    (KubeletCall::PodStatus | KubeletCall::FinalDelete, Ok(ApiOk::Object(_) | ApiOk::Deleted(_))) => {}
                    _ => {}
                }
            }
            Input::RequestTimedOut { id } => {
                if let Some(call) = self.calls.remove(&id) {
                    self.client.fail_over();
                    match call {
                        KubeletCall::RegisterNode => {
                            ctx.set_timer(Duration::from_secs(1), Timer::Tick("kubelet-register"));
                        }
                        KubeletCall::GetConfigObject(key) => self.config_object_fetched(ctx, key, None),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn pending(&self) -> Vec<String> {
        if self.registered {
            Vec::new()
        } else {
            vec![format!("node {} is not registered", self.config.name)]
        }
    }
}

/// kube-proxy: Services and EndpointSlices into a routing table; it forwards its node's client
/// requests to the chosen pod's node.
pub struct KubeProxy {
    client: ApiClient,
    informers: Vec<Informer>,
    cache: Cache,
    table: ProxyTable,
    /// Node name -> that node's kubelet, which answers for the node's pod IPs.
    kubelets: Rc<BTreeMap<String, ComponentId>>,
    forwarded: BTreeMap<RequestId, (ReplyTo, HttpRequest)>,
    pub request_timeout: Duration,
}

impl KubeProxy {
    pub fn new(api_servers: Vec<ComponentId>, kubelets: Rc<BTreeMap<String, ComponentId>>) -> KubeProxy {
        KubeProxy {
            client: ApiClient::new(api_servers).with_user(crate::rbac::KUBE_PROXY),
            informers: vec![Informer::new(0, Kind::Service), Informer::new(1, Kind::EndpointSlice)],
            cache: Cache::new(),
            table: ProxyTable::new(),
            kubelets,
            forwarded: BTreeMap::new(),
            request_timeout: Duration::from_secs(1),
        }
    }

    /// Ground truth of what this proxy would route to.
    pub fn table(&self) -> &ProxyTable {
        &self.table
    }

    /// The proxy's informers (for the watch checker's counters).
    pub fn informers(&self) -> &[Informer] {
        &self.informers
    }

    fn route(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, reply: ReplyTo, mut request: HttpRequest) {
        let Some((pod_ip, node)) = self.table.route_with_node(&request.service, ctx.rng()) else {
            let msg = Msg::HttpResult { id: request.id, outcome: HttpOutcome::NoEndpoints, pod_ip: String::new() };
            ctx.respond(reply, msg);
            return;
        };
        let Some(kubelet) = node.and_then(|node| self.kubelets.get(&node).copied()) else {
            let msg = Msg::HttpResult { id: request.id, outcome: HttpOutcome::Refused, pod_ip };
            ctx.respond(reply, msg);
            return;
        };
        request.pod_ip = pod_ip;
        let id = ctx.request(kubelet, Msg::Http(request.clone()), self.request_timeout);
        self.forwarded.insert(id, (reply, request));
    }
}

impl Component<Msg, Timer> for KubeProxy {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        if let Input::Start = input {
            for informer in &mut self.informers {
                informer.start(ctx, &mut self.client);
            }
            return;
        }
        for informer in &mut self.informers {
            if let InformerOutcome::Events(events) = informer.handle(ctx, &mut self.client, &mut self.cache, &input) {
                for event in events {
                    match event {
                        crate::cache::CacheEvent::Added(object) | crate::cache::CacheEvent::Updated(_, object) => {
                            self.table.upsert_shared(&object)
                        }
                        crate::cache::CacheEvent::Deleted(object) => self.table.remove(&object),
                    }
                }
                return;
            }
        }
        match input {
            Input::Request { reply, msg: Msg::Http(request) } => self.route(ctx, reply, request),
            Input::Response { id, msg: Msg::HttpResult { id: request_id, outcome, pod_ip } } => {
                if let Some((reply, _)) = self.forwarded.remove(&id) {
                    ctx.respond(reply, Msg::HttpResult { id: request_id, outcome, pod_ip });
                }
            }
            Input::RequestTimedOut { id } => {
                if let Some((reply, request)) = self.forwarded.remove(&id) {
                    let msg = Msg::HttpResult { id: request.id, outcome: HttpOutcome::Timeout, pod_ip: request.pod_ip };
                    ctx.respond(reply, msg);
                }
            }
            _ => {}
        }
    }
}

/// The cluster DNS: Service names to ClusterIPs, from a Service informer.
pub struct Dns {
    client: ApiClient,
    informer: Informer,
    cache: Cache,
}

impl Dns {
    pub fn new(api_servers: Vec<ComponentId>) -> Dns {
        Dns {
            client: ApiClient::new(api_servers).with_user(crate::rbac::COREDNS),
            informer: Informer::new(0, Kind::Service),
            cache: Cache::new(),
        }
    }

    /// The DNS server's informer (for the watch checker's counters).
    pub fn informers(&self) -> &[Informer] {
        std::slice::from_ref(&self.informer)
    }
}

impl Component<Msg, Timer> for Dns {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        if let Input::Start = input {
            self.informer.start(ctx, &mut self.client);
            return;
        }
        if let InformerOutcome::Events(_) = self.informer.handle(ctx, &mut self.client, &mut self.cache, &input) {
            return;
        }
        if let Input::Request { reply, msg: Msg::DnsQuery { service } } = input {
            // CoreDNS delays serving until its informers have synced: an empty cache would answer
            // NXDOMAIN for every Service. The unanswered query times out and the client keeps its
            // last answer, as clients of a cluster's replicated CoreDNS see no outage when one
            // replica restarts.
            if !self.informer.synced {
                return;
            }
            let (namespace, name) = service.split_once('/').unwrap_or(("default", service.as_str()));
            let cluster_ip = match self.cache.get(&ObjectKey::new(Kind::Service, namespace, name)).map(|o| &**o) {
                Some(Object::Service(svc)) => svc.spec.cluster_ip.clone(),
                _ => None,
            };
            ctx.respond(reply, Msg::DnsAnswer { service, cluster_ip });
        }
    }
}

/// One request's record in the traffic log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: u64,
    /// True time is not visible to components; these are the traffic machine's clock readings.
    pub sent_ns: u64,
    pub done_ns: u64,
    pub outcome: HttpOutcome,
    pub pod_ip: String,
}

/// Calls one Service at a fixed rate through its node's kube-proxy, and logs every outcome.
pub struct Traffic {
    pub service: String,
    pub interval: Duration,
    dns: ComponentId,
    proxy: ComponentId,
    /// Resolved ClusterIP, refreshed every 30 s (a DNS TTL).
    resolved: Option<(String, u64)>,
    next_id: u64,
    in_flight: BTreeMap<RequestId, (u64, u64)>,
    dns_query: Option<RequestId>,
    pub log: Vec<RequestRecord>,
    pub enabled: bool,
    /// The pending NextRequest timer, so a new interval takes effect at once.
    next_timer: Option<TimerId>,
}

impl Traffic {
    pub fn new(service: &str, interval: Duration, dns: ComponentId, proxy: ComponentId) -> Traffic {
        Traffic {
            service: service.to_string(),
            interval,
            dns,
            proxy,
            resolved: None,
            next_id: 0,
            in_flight: BTreeMap::new(),
            dns_query: None,
            log: Vec::new(),
            enabled: true,
            next_timer: None,
        }
    }

    /// Restores the log handed back at a crash.
    pub fn restore(&mut self, persisted: Option<Box<dyn std::any::Any>>) {
        if let Some(log) = persisted.and_then(|state| state.downcast::<Vec<RequestRecord>>().ok()) {
            self.log = *log;
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        let now_ns = ctx.now().as_nanos();
        let id = self.next_id;
        self.next_id += 1;
        let fresh = self.resolved.as_ref().is_some_and(|(_, at)| now_ns.saturating_sub(*at) < 30_000_000_000);
        if !fresh && self.dns_query.is_none() {
            self.dns_query =
                Some(ctx.request(self.dns, Msg::DnsQuery { service: self.service.clone() }, Duration::from_secs(1)));
        }
        if self.resolved.is_none() {
            self.log.push(RequestRecord {
                id,
                sent_ns: now_ns,
                done_ns: now_ns,
                outcome: HttpOutcome::DnsFailure,
                pod_ip: String::new(),
            });
            return;
        }
        let request = HttpRequest { id, service: self.service.clone(), pod_ip: String::new() };
        let call = ctx.request(self.proxy, Msg::Http(request), Duration::from_secs(2));
        self.in_flight.insert(call, (id, now_ns));
    }
}

impl Component<Msg, Timer> for Traffic {
    /// The log stands for the client's own external record of what it saw; it outlives a crash of
    /// the machine the client runs on, so no outcome is lost from the ground truth.
    fn crash(self: Box<Self>) -> Option<Box<dyn std::any::Any>> {
        Some(Box::new(self.log))
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Start => {
                self.next_timer = Some(ctx.set_timer(self.interval, Timer::NextRequest));
            }
            Input::Timer { timer: Timer::NextRequest, .. } => {
                if self.enabled {
                    self.send(ctx);
                }
                self.next_timer = Some(ctx.set_timer(self.interval, Timer::NextRequest));
            }
            Input::Message { msg: Msg::SetTrafficInterval { interval }, .. } => {
                // The harness changes the load (a spike, or its end): the next request follows
                // the new interval from now; None stops the source.
                match interval {
                    Some(interval) if !interval.is_zero() => {
                        self.enabled = true;
                        self.interval = interval;
                    }
                    _ => self.enabled = false,
                }
                if let Some(timer) = self.next_timer.take() {
                    ctx.cancel_timer(timer);
                }
                self.next_timer = Some(ctx.set_timer(self.interval, Timer::NextRequest));
            }
            Input::Response { id, msg: Msg::DnsAnswer { cluster_ip, .. } } if Some(id) == self.dns_query => {
                self.dns_query = None;
                self.resolved = cluster_ip.map(|ip| (ip, ctx.now().as_nanos()));
            }
            Input::RequestTimedOut { id } if Some(id) == self.dns_query => {
                self.dns_query = None;
            }
            Input::Response { id, msg: Msg::HttpResult { outcome, pod_ip, .. } } => {
                if let Some((request_id, sent_ns)) = self.in_flight.remove(&id) {
                    let done_ns = ctx.now().as_nanos();
                    self.log.push(RequestRecord { id: request_id, sent_ns, done_ns, outcome, pod_ip });
                }
            }
            Input::RequestTimedOut { id } => {
                if let Some((request_id, sent_ns)) = self.in_flight.remove(&id) {
                    let done_ns = ctx.now().as_nanos();
                    self.log.push(RequestRecord {
                        id: request_id,
                        sent_ns,
                        done_ns,
                        outcome: HttpOutcome::Timeout,
                        pod_ip: String::new(),
                    });
                }
            }
            _ => {}
        }
    }
}
