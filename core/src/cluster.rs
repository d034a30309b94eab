//! Builds a simulated cluster: machines and the components on them, wired together.
//!
//! Layout: `etcd-0` runs etcd; `control-plane-<i>` runs an API server, a controller manager and a
//! scheduler; `node-<i>` runs a kubelet and kube-proxy; `client` runs the user's kubectl.

use crate::api::{ApiOk, ApiRequest, ApiResult, InjectedFault, Msg, ObjectKey, Timer};
use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::controller::Reconciler;
use crate::etcd::Etcd;
use crate::host::ControllerHost;
use crate::kubectl::Kubectl;
use crate::leader::LeaderElectionConfig;
use crate::mutants::Mutants;
use crate::node::{Dns, KubeProxy, Kubelet, NodeConfig, Traffic};
use crate::objects::{CustomKind, Kind, Object};
use kubedst_sim::{ComponentId, MachineId, RunError, Sim, SimConfig, Time};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Builds the reconcilers of one controller-manager replica (again after each restart).
pub type ReconcilerFactory = Rc<dyn Fn() -> Vec<Box<dyn Reconciler>>>;

/// kube-controller-manager's controllers: ReplicaSet, Deployment, EndpointSlice, node lifecycle,
/// Job, garbage collector, disruption, namespace.
pub fn standard_controllers() -> ReconcilerFactory {
    standard_controllers_with(Mutants::NONE)
}

/// The standard controllers with `mutants` switched on (negative controls; see [`crate::mutants`]).
pub fn standard_controllers_with(mutants: Mutants) -> ReconcilerFactory {
    Rc::new(move || {
        vec![
            Box::new(crate::controllers::ReplicaSetController::new().with_mutants(mutants)) as Box<dyn Reconciler>,
            Box::new(crate::controllers::DeploymentController::new().with_mutants(mutants)),
            Box::new(crate::controllers::EndpointSliceController::new()),
            Box::new(crate::controllers::NodeLifecycleController::new()),
            Box::new(crate::controllers::JobController::new()),
            Box::new(crate::controllers::GarbageCollector::new()),
            Box::new(crate::controllers::PodGarbageCollector::new()),
            Box::new(crate::controllers::DisruptionController::new()),
            Box::new(crate::controllers::NamespaceController::new()),
        ]
    })
}

/// The standard controllers with the horizontal pod autoscaler added (what
/// [`ClusterConfig::autoscaling`] runs).
pub fn with_autoscaler(base: ReconcilerFactory) -> ReconcilerFactory {
    Rc::new(move || {
        let mut reconcilers = base();
        reconcilers.push(Box::new(crate::controllers::HorizontalPodAutoscalerController::new()));
        reconcilers
    })
}

/// `base` with its garbage collector told about `custom_kinds` (upstream's collector discovers
/// every served resource; here the cluster tells it).
pub fn with_custom_kinds_collected(base: ReconcilerFactory, custom_kinds: Vec<CustomKind>) -> ReconcilerFactory {
    Rc::new(move || {
        let mut reconcilers = base();
        for reconciler in &mut reconcilers {
            let any: &mut dyn std::any::Any = reconciler.as_mut();
            if let Some(collector) = any.downcast_mut::<crate::controllers::GarbageCollector>() {
                *collector = std::mem::take(collector).with_custom_kinds(&custom_kinds);
            }
        }
        reconcilers
    })
}

/// kube-scheduler.
pub fn standard_scheduler() -> ReconcilerFactory {
    Rc::new(|| vec![Box::new(crate::controllers::Scheduler::new()) as Box<dyn Reconciler>])
}

/// What to build.
#[derive(Clone)]
pub struct ClusterConfig {
    pub sim: SimConfig,
    pub control_plane_replicas: u32,
    pub watch_cache_capacity: usize,
    /// Reconcilers of each controller-manager replica; empty: no controller manager.
    pub controllers: Option<ReconcilerFactory>,
    /// Reconcilers of each scheduler replica; empty: no scheduler.
    pub scheduler: Option<ReconcilerFactory>,
    /// Worker nodes, each with a kubelet and kube-proxy.
    pub nodes: Vec<NodeConfig>,
    /// Traffic sources: which Service (`namespace/name`) they call, from which node, how often.
    pub traffic: Vec<TrafficConfig>,
    /// The resource metrics pipeline and the HPA: a `metrics-server` machine and component
    /// (scraping every kubelet), registered as the API servers' metrics.k8s.io backend, and the
    /// HPA controller in every controller manager. Off by default.
    pub autoscaling: bool,
    /// A simulated cloud with this profile on machine `cloud-api`, holding an instance per node,
    /// and a `cloud-controller-manager` on `control-plane-0` (service and node lifecycle
    /// controllers). Off (None) by default.
    pub cloud: Option<crate::cloud::CloudProfile>,
    /// Deliberate bugs of the standard controllers (none by default); set with
    /// [`ClusterConfig::with_mutants`].
    pub mutants: Mutants,
    /// The custom kinds the API servers serve (the cluster's CustomResourceDefinitions); the
    /// garbage collector follows owners of these kinds too. Set with
    /// [`ClusterConfig::with_custom_kind`].
    pub custom_kinds: Vec<CustomKind>,
    /// Users' controllers, each in its own [`ControllerHost`] (one per control-plane replica,
    /// leader-elected when there are several). Set with [`ClusterConfig::with_controller`].
    pub user_controllers: Vec<UserController>,
}

/// A user's controller process: a name (its component, identity and lease) and the factory of
/// its reconcilers (called again whenever the process restarts).
#[derive(Clone)]
pub struct UserController {
    /// The component's name, such as `app-operator`; also its lease name under leader election.
    pub name: String,
    /// Builds the reconcilers.
    pub factory: ReconcilerFactory,
}

/// A traffic source.
#[derive(Clone, Debug)]
pub struct TrafficConfig {
    pub service: String,
    pub node: usize,
    pub interval: Duration,
}

impl ClusterConfig {
    pub fn new(seed: u64) -> ClusterConfig {
        ClusterConfig {
            sim: SimConfig::new(seed),
            control_plane_replicas: 1,
            watch_cache_capacity: 10_000,
            controllers: None,
            scheduler: None,
            nodes: Vec::new(),
            traffic: Vec::new(),
            autoscaling: false,
            cloud: None,
            mutants: Mutants::NONE,
            custom_kinds: Vec::new(),
            user_controllers: Vec::new(),
        }
    }

    /// Registers a custom kind (as applying its CustomResourceDefinition would). A kind that
    /// fails [`CustomKind::check`] is an error.
    pub fn with_custom_kind(mut self, kind: CustomKind) -> Result<ClusterConfig, String> {
        kind.check()?;
        if !self.custom_kinds.contains(&kind) {
            self.custom_kinds.push(kind);
        }
        Ok(self)
    }

    /// Adds a user's controller process named `name` running the reconcilers `factory` builds.
    /// A name that is empty, not a DNS label or already taken is an error.
    pub fn with_controller(mut self, name: &str, factory: ReconcilerFactory) -> Result<ClusterConfig, String> {
        if !crate::objects::validation::is_dns1123_label(name) {
            return Err(format!("controller name {name:?} must be a DNS label (lower case, digits, '-')"));
        }
        let taken = ["kube-controller-manager", "kube-scheduler", "cloud-controller-manager", "kubectl", "coredns"];
        if taken.contains(&name) || self.user_controllers.iter().any(|controller| controller.name == name) {
            return Err(format!("controller name {name:?} is already taken"));
        }
        self.user_controllers.push(UserController { name: name.to_string(), factory });
        Ok(self)
    }

    /// Switches `mutants` on: the controller manager then runs the standard controllers with
    /// them (replacing any other controller factory, since only the standard ones know mutants).
    pub fn with_mutants(mut self, mutants: Mutants) -> ClusterConfig {
        self.mutants = mutants;
        self.controllers = Some(standard_controllers_with(mutants));
        self
    }

    /// The usual test cluster: the standard controllers, the scheduler, and `nodes` default nodes
    /// named `node-0`, `node-1`, ...
    pub fn standard(seed: u64, nodes: u8) -> ClusterConfig {
        let mut config = ClusterConfig::new(seed);
        config.controllers = Some(standard_controllers());
        config.scheduler = Some(standard_scheduler());
        config.nodes = (0..nodes).map(|index| NodeConfig::new(&format!("node-{index}"), index)).collect();
        config
    }
}

/// A built cluster: the simulation and where each component is.
pub struct Cluster {
    pub sim: Sim<Msg, Timer>,
    pub etcd: ComponentId,
    pub etcd_machine: MachineId,
    pub api_servers: Vec<ComponentId>,
    pub control_plane_machines: Vec<MachineId>,
    pub controller_managers: Vec<ComponentId>,
    pub schedulers: Vec<ComponentId>,
    pub kubectl: ComponentId,
    pub node_machines: Vec<MachineId>,
    pub kubelets: Vec<ComponentId>,
    pub proxies: Vec<ComponentId>,
    pub dns: ComponentId,
    pub traffic: Vec<ComponentId>,
    /// metrics-server, when autoscaling is on.
    pub metrics_server: Option<ComponentId>,
    /// The cloud provider and the cloud controller manager, when a cloud is configured.
    pub cloud: Option<ComponentId>,
    pub cloud_controller_manager: Option<ComponentId>,
    /// Users' controller hosts: for each [`UserController`] in order, one per control-plane
    /// replica.
    pub user_controllers: Vec<ComponentId>,
    /// The custom kinds the API servers serve.
    pub custom_kinds: Vec<CustomKind>,
    /// Requests handed to kubectl so far.
    submitted: usize,
}

impl Cluster {
    pub fn build(config: ClusterConfig) -> Cluster {
        let mut sim: Sim<Msg, Timer> = Sim::new(config.sim.clone());
        let etcd_machine = sim.add_machine("etcd-0");
        let etcd = sim.add_component(etcd_machine, "etcd-0", |persisted| Box::new(Etcd::new(persisted)));
        let mut api_servers = Vec::new();
        let mut control_plane_machines = Vec::new();
        // The APIService for metrics.k8s.io, resolved once metrics-server exists.
        let metrics_api: Rc<std::cell::OnceCell<ComponentId>> = Rc::default();
        for index in 0..config.control_plane_replicas.max(1) {
            let machine = sim.add_machine(&format!("control-plane-{index}"));
            control_plane_machines.push(machine);
            let mut api_config = ApiServerConfig::new(etcd);
            api_config.watch_cache_capacity = config.watch_cache_capacity;
            api_config.metrics_api = metrics_api.clone();
            api_config.custom_kinds = Rc::new(config.custom_kinds.iter().copied().collect());
            api_servers.push(sim.add_component(machine, &format!("kube-apiserver-{index}"), move |_| {
                Box::new(ApiServer::new(api_config.clone()))
            }));
        }
        let mut controller_managers = Vec::new();
        let mut schedulers = Vec::new();
        // With several replicas, each controller manager and scheduler runs leader election
        // (`--leader-elect`, on by default upstream) on the lease `kube-system/<component>`, with
        // its component name as identity, so that only one of each acts.
        let elect = config.control_plane_replicas > 1;
        for (index, &machine) in control_plane_machines.iter().enumerate() {
            // Each replica prefers its local API server, as a kubeadm control plane is wired.
            let mut servers = api_servers.clone();
            servers.rotate_left(index);
            let controllers = match (&config.controllers, config.autoscaling) {
                (Some(factory), true) => Some(with_autoscaler(factory.clone())),
                (factory, _) => factory.clone(),
            };
            let controllers = match controllers {
                Some(factory) if !config.custom_kinds.is_empty() => {
                    Some(with_custom_kinds_collected(factory, config.custom_kinds.clone()))
                }
                other => other,
            };
            let replicas = [
                ("kube-controller-manager", controllers, &mut controller_managers),
                ("kube-scheduler", config.scheduler.clone(), &mut schedulers),
            ];
            for (lease, factory, ids) in replicas {
                let Some(factory) = factory else { continue };
                let servers = servers.clone();
                let identity = format!("{lease}-{index}");
                let election = elect.then(|| LeaderElectionConfig::new(lease, &identity));
                let user = format!("system:{lease}");
                ids.push(sim.add_component(machine, &identity, move |_| {
                    let host = ControllerHost::from_factory(servers.clone(), factory.clone()).with_user(&user);
                    Box::new(match election.clone() {
                        Some(election) => host.with_leader_election(election),
                        None => host,
                    })
                }));
            }
        }
        let dns = sim.add_component(control_plane_machines[0], "coredns", {
            let servers = api_servers.clone();
            move |_| Box::new(Dns::new(servers.clone()))
        });
        let mut node_machines = Vec::new();
        let mut kubelets = Vec::new();
        for node in &config.nodes {
            let machine = sim.add_machine(&node.name);
            node_machines.push(machine);
            let (node, servers) = (node.clone(), api_servers.clone());
            kubelets.push(sim.add_component(machine, &format!("kubelet/{}", node.name), move |_| {
                Box::new(Kubelet::new(node.clone(), servers.clone()))
            }));
        }
        let kubelet_by_node: Rc<BTreeMap<String, ComponentId>> =
            Rc::new(config.nodes.iter().map(|node| node.name.clone()).zip(kubelets.iter().copied()).collect());
        let mut proxies = Vec::new();
        for (node, &machine) in config.nodes.iter().zip(&node_machines) {
            let (servers, kubelet_by_node) = (api_servers.clone(), kubelet_by_node.clone());
            proxies.push(sim.add_component(machine, &format!("kube-proxy/{}", node.name), move |_| {
                Box::new(KubeProxy::new(servers.clone(), kubelet_by_node.clone()))
            }));
        }
        let mut traffic = Vec::new();
        for (index, source) in config.traffic.iter().enumerate() {
            let node = source.node.min(node_machines.len().saturating_sub(1));
            let (machine, proxy) = (node_machines[node], proxies[node]);
            let source = source.clone();
            traffic.push(sim.add_component(machine, &format!("traffic-{index}"), move |persisted| {
                let mut traffic = Traffic::new(&source.service, source.interval, dns, proxy);
                traffic.restore(persisted);
                Box::new(traffic)
            }));
        }
        let metrics_server = config.autoscaling.then(|| {
            let machine = sim.add_machine("metrics-server");
            let kubelets = kubelet_by_node.clone();
            let id = sim.add_component(machine, "metrics-server", move |_| {
                Box::new(crate::metrics::MetricsServer::new(kubelets.clone()))
            });
            metrics_api.set(id).expect("the metrics API is registered once");
            id
        });
        let (cloud, cloud_controller_manager) = match &config.cloud {
            Some(profile) => {
                let machine = sim.add_machine("cloud-api");
                let (profile, instances) =
                    (profile.clone(), config.nodes.iter().map(|node| node.name.clone()).collect::<Vec<_>>());
                let cloud = sim.add_component(machine, "cloud-api", move |persisted| {
                    Box::new(crate::cloud::CloudProvider::new(profile.clone(), &instances, persisted))
                });
                let factory: ReconcilerFactory = Rc::new(move || {
                    vec![
                        Box::new(crate::controllers::ServiceLoadBalancerController::new(cloud)) as Box<dyn Reconciler>,
                        Box::new(crate::controllers::CloudNodeLifecycleController::new(cloud)),
                    ]
                });
                let servers = api_servers.clone();
                let ccm = sim.add_component(control_plane_machines[0], "cloud-controller-manager", move |_| {
                    Box::new(ControllerHost::from_factory(servers.clone(), factory.clone()))
                });
                (Some(cloud), Some(ccm))
            }
            None => (None, None),
        };
        let client_machine = sim.add_machine("client");
        let servers = api_servers.clone();
        let kubectl = sim.add_component(client_machine, "kubectl", move |_| Box::new(Kubectl::new(servers.clone())));
        // Users' controllers come last, so that a cluster without them keeps every component id
        // (and trace hash) it had before they existed.
        let mut user_controllers = Vec::new();
        for controller in &config.user_controllers {
            for (index, &machine) in control_plane_machines.iter().enumerate() {
                let mut servers = api_servers.clone();
                servers.rotate_left(index);
                let identity = format!("{}-{index}", controller.name);
                let election = elect.then(|| LeaderElectionConfig::new(&controller.name, &identity));
                let factory = controller.factory.clone();
                let user = format!("system:serviceaccount:kube-system:{}", controller.name);
                user_controllers.push(sim.add_component(machine, &identity, move |_| {
                    let host = ControllerHost::from_factory(servers.clone(), factory.clone()).with_user(&user);
                    Box::new(match election.clone() {
                        Some(election) => host.with_leader_election(election),
                        None => host,
                    })
                }));
            }
        }
        Cluster {
            sim,
            etcd,
            etcd_machine,
            api_servers,
            control_plane_machines,
            controller_managers,
            schedulers,
            kubectl,
            node_machines,
            kubelets,
            proxies,
            dns,
            traffic,
            metrics_server,
            cloud,
            cloud_controller_manager,
            user_controllers,
            custom_kinds: config.custom_kinds.clone(),
            submitted: 0,
        }
    }

    /// Changes traffic source `index`'s rate from now on: one request every `interval`, or none
    /// (`None`). The harness's way to make a load spike and end it.
    pub fn set_traffic_interval(&mut self, index: usize, interval: Option<Duration>) {
        let source = self.traffic[index];
        self.sim.inject(source, Msg::SetTrafficInterval { interval });
    }

    /// Terminates node `name`'s instance in the cloud: the cloud forgets it and its machine is
    /// lost for good, as a VM deleted from the cloud console stops. Returns false without a cloud
    /// or such a node.
    pub fn remove_cloud_instance(&mut self, name: &str) -> bool {
        let (Some(cloud), Some(machine)) = (self.cloud, self.sim.machine_id(name)) else { return false };
        self.sim.inject(cloud, Msg::Cloud(crate::cloud::CloudRequest::RemoveInstance { node: name.to_string() }));
        self.sim.lose(machine);
        true
    }

    /// Hands a request to the user's kubectl; it is sent at the current virtual time.
    pub fn submit(&mut self, request: ApiRequest) {
        self.submit_as(crate::rbac::ADMIN, request);
    }

    /// Hands a request to kubectl to make as `user` (`kubectl --as=<user>`).
    pub fn submit_as(&mut self, user: &str, request: ApiRequest) {
        self.submitted += 1;
        self.sim.inject(self.kubectl, Msg::Api { user: Rc::from(user), request });
    }

    /// `kubectl cordon <node>` (or `uncordon` with `unschedulable` false); the report is in
    /// [`Cluster::drains`].
    pub fn cordon(&mut self, node: &str, unschedulable: bool) {
        let command = crate::drain::NodeCommand::Cordon { node: node.to_string(), unschedulable };
        self.sim.inject(self.kubectl, Msg::Kubectl(command));
    }

    /// `kubectl drain <node> --ignore-daemonsets --timeout=<timeout>`: cordon, then evict every pod
    /// through the Eviction API; the report is in [`Cluster::drains`].
    pub fn drain(&mut self, node: &str, timeout: Duration) {
        let command = crate::drain::NodeCommand::Drain { node: node.to_string(), timeout, force: false };
        self.sim.inject(self.kubectl, Msg::Kubectl(command));
    }

    /// The reports of kubectl's node commands, in order.
    pub fn drains(&self) -> Vec<crate::drain::DrainReport> {
        self.sim
            .component::<Kubectl>(self.kubectl)
            .map(|kubectl| kubectl.drains().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `kubectl create` of an object.
    pub fn create(&mut self, object: Object) {
        self.submit(ApiRequest::Create { object: Rc::new(object) });
    }

    /// `etcdctl compact` at etcd's current revision (a model fault). False if etcd is down.
    pub fn compact_now(&mut self) -> bool {
        if self.sim.component::<Etcd>(self.etcd).is_none() {
            return false;
        }
        self.sim.inject(self.etcd, Msg::Etcd(crate::api::EtcdRequest::CompactNow));
        true
    }

    /// The watch cache of the API server on machine `server` lags for `duration` (a model fault).
    /// False if there is no such machine or its API server is down.
    pub fn lag_watch_cache(&mut self, server: &str, duration: Duration) -> bool {
        let Some(index) =
            self.control_plane_machines.iter().position(|&machine| self.sim.machine_name(machine) == server)
        else {
            return false;
        };
        let id = self.api_servers[index];
        if self.sim.component::<ApiServer>(id).is_none() {
            return false;
        }
        self.sim.inject(id, Msg::Inject(InjectedFault::WatchCacheLag { duration }));
        true
    }

    /// One running container on `node` crashes (a model fault). False if the node is unknown or
    /// down, or runs no container.
    pub fn crash_container(&mut self, node: &str, nth: u32) -> bool {
        let Some(index) = self.node_machines.iter().position(|&machine| self.sim.machine_name(machine) == node) else {
            return false;
        };
        let id = self.kubelets[index];
        let now_ns = self.sim.now().as_nanos();
        let Some(kubelet) = self.sim.component::<Kubelet>(id) else { return false };
        if kubelet.runtime().running_containers(now_ns).is_empty() {
            return false;
        }
        self.sim.inject(id, Msg::Inject(InjectedFault::ContainerCrash { nth }));
        true
    }

    /// Pulls of `image` fail on every node for `duration` (a model fault). False if no kubelet
    /// is up to hear of it.
    pub fn fail_pulls(&mut self, image: &str, duration: Duration) -> bool {
        let mut struck = false;
        for &id in &self.kubelets {
            if self.sim.component::<Kubelet>(id).is_some() {
                self.sim.inject(id, Msg::Inject(InjectedFault::PullFailure { image: image.to_string(), duration }));
                struck = true;
            }
        }
        struck
    }

    /// Ends every model fault still in force (watch-cache lags, pull failures): the harness's
    /// heal. Only components that are up hear it; a crash ended theirs already.
    pub fn heal_model_faults(&mut self) {
        let servers = self.api_servers.iter().copied().filter(|&id| self.sim.component::<ApiServer>(id).is_some());
        let kubelets = self.kubelets.iter().copied().filter(|&id| self.sim.component::<Kubelet>(id).is_some());
        let targets: Vec<ComponentId> = servers.chain(kubelets).collect();
        for id in targets {
            self.sim.inject(id, Msg::Inject(InjectedFault::Heal));
        }
    }

    /// Traffic source `source` now sends one request per `interval`, or stops (`None`). A source
    /// the cluster does not have is ignored (scenario validation names it first).
    pub fn set_traffic(&mut self, source: usize, interval: Option<Duration>) {
        if source < self.traffic.len() {
            self.set_traffic_interval(source, interval);
        }
    }

    /// The results kubectl has logged, in order.
    pub fn kubectl_log(&self) -> &[crate::kubectl::KubectlResult] {
        &self.sim.component::<Kubectl>(self.kubectl).expect("kubectl runs on a machine no fault touches").log
    }

    /// The result of the last request kubectl finished.
    pub fn last_result(&self) -> Option<&ApiResult> {
        self.kubectl_log().last().map(|entry| &entry.result)
    }

    /// Runs until kubectl has an answer for everything submitted (or `limit`).
    pub fn run_until_answered(&mut self, limit: Time) -> Result<(), RunError> {
        let (kubectl, submitted) = (self.kubectl, self.submitted);
        self.sim.run_while(|sim| {
            sim.now() < limit && sim.component::<Kubectl>(kubectl).is_some_and(|kubectl| kubectl.log.len() < submitted)
        })
    }

    /// Ground truth: the object as etcd holds it now.
    pub fn stored(&self, key: &ObjectKey) -> Option<Rc<Object>> {
        let etcd = self.sim.component::<Etcd>(self.etcd)?;
        etcd.store().get(&key.store_key()).map(|kv| kv.value.clone())
    }

    /// Every kind the cluster serves: the built-in kinds, then the custom kinds.
    pub fn served_kinds(&self) -> Vec<Kind> {
        Kind::ALL.iter().copied().chain(self.custom_kinds.iter().map(|custom| Kind::Custom(*custom))).collect()
    }

    /// The user controller host named `name` on control-plane replica `replica`.
    pub fn user_controller(&self, name: &str, replica: usize) -> Option<&ControllerHost> {
        let identity = format!("{name}-{replica}");
        self.user_controllers
            .iter()
            .find(|&&id| self.sim.component_name(id) == identity)
            .and_then(|&id| self.sim.component::<ControllerHost>(id))
    }

    /// Ground truth: every object of `kind` in etcd.
    pub fn stored_all(&self, kind: Kind) -> Vec<Rc<Object>> {
        let Some(etcd) = self.sim.component::<Etcd>(self.etcd) else { return Vec::new() };
        etcd.store().list(&crate::api::store_prefix(kind, None)).into_iter().map(|kv| kv.value.clone()).collect()
    }
}

/// The object of a successful result, for tests.
pub fn ok_object(result: &ApiResult) -> Option<&Rc<Object>> {
    match result {
        Ok(ApiOk::Object(object)) | Ok(ApiOk::Deleted(object)) => Some(object),
        _ => None,
    }
}
