//! Pod (v1) and the pod template that workloads stamp pods from.

use super::meta::{Condition, IntOrString, ObjectMeta, StringMap};
use super::quantity::{Bytes, Millicores};
use super::validation::{
    is_iana_service_name, validate_labels, validate_non_negative, validate_port_number, FieldPath, ValidationError,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A Pod: containers the kubelet runs together on one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// Name, namespace, labels, owners.
    pub metadata: ObjectMeta,
    /// What should run.
    pub spec: PodSpec,
    /// What the kubelet last reported.
    pub status: PodStatus,
}

/// The pod template of a Deployment, ReplicaSet or Job: the metadata and spec of pods to create.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTemplateSpec {
    /// Labels (which the owner's selector must match) and annotations of created pods.
    pub metadata: ObjectMeta,
    /// The spec of created pods.
    pub spec: PodSpec,
}

/// When the kubelet restarts a pod's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Always restart (the default; the only value a Deployment or ReplicaSet accepts).
    #[default]
    Always,
    /// Restart after a failure only (Jobs).
    OnFailure,
    /// Never restart (Jobs).
    Never,
}

/// The desired state of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The containers, started together.
    pub containers: Vec<Container>,
    /// ConfigMap and Secret volumes (other volume types are not simulated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// The node must carry each of these labels.
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub node_selector: StringMap,
    /// The node the pod is bound to; set by the scheduler (or by hand, bypassing it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Taints this pod tolerates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Defaults to Always.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Time between SIGTERM and SIGKILL on deletion; defaults to 30.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Scheduling priority (resolved from a PriorityClass by admission in Kubernetes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// Unique within the pod; a DNS-1123 label.
    pub name: String,
    /// The image; a rollout is usually a change of it.
    pub image: String,
    /// Ports the container listens on; a Service's named targetPort refers to them by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// Requests drive scheduling; limits bound usage.
    pub resources: ResourceRequirements,
    /// Environment variables, possibly from ConfigMaps and Secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Whole ConfigMaps or Secrets as environment variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Where volumes appear in the container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Gates the pod's Ready condition, and so Service traffic and rollout progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Restarts the container when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
}

/// A port a container listens on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    /// An IANA service name, referred to by a Service's targetPort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port number in the container.
    pub container_port: i32,
    /// Defaults to TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// The transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP, the default.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

/// CPU and memory, the two resources the scheduler accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceList {
    /// CPU, in millicores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Millicores>,
    /// Memory, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
}

/// A container's resource requests and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceRequirements {
    /// What the scheduler reserves on the node.
    pub requests: ResourceList,
    /// The most the container may use.
    pub limits: ResourceList,
}

/// How a probe checks the container. The simulation does not open connections or run commands:
/// the container runtime decides the outcome, and the handler is kept so that traces and
/// scenario rules can tell the probes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeHandlerKind {
    /// `httpGet`.
    HttpGet,
    /// `tcpSocket`.
    TcpSocket,
    /// `exec`.
    Exec,
    /// `grpc`.
    Grpc,
}

/// A readiness or liveness probe.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    /// An HTTP GET handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// A TCP connect handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// A command handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// A gRPC health-check handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAction>,
    /// Delay after container start before the first probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    /// Interval between probes; defaults to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// A probe slower than this fails; defaults to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Consecutive successes to pass after failing; defaults to 1 (and must be 1 for liveness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Consecutive failures to fail; defaults to 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
}

impl Probe {
    /// Which handler the probe uses, if exactly one is set.
    pub fn handler_kind(&self) -> Option<ProbeHandlerKind> {
        let kinds: Vec<ProbeHandlerKind> = [
            self.http_get.as_ref().map(|_| ProbeHandlerKind::HttpGet),
            self.tcp_socket.as_ref().map(|_| ProbeHandlerKind::TcpSocket),
            self.exec.as_ref().map(|_| ProbeHandlerKind::Exec),
            self.grpc.as_ref().map(|_| ProbeHandlerKind::Grpc),
        ]
        .into_iter()
        .flatten()
        .collect();
        match kinds.as_slice() {
            [kind] => Some(*kind),
            _ => None,
        }
    }

    fn handler_count(&self) -> usize {
        usize::from(self.http_get.is_some())
            + usize::from(self.tcp_socket.is_some())
            + usize::from(self.exec.is_some())
            + usize::from(self.grpc.is_some())
    }

    /// Fills in the kubelet's probe defaults: period 10 s, timeout 1 s, thresholds 1 and 3.
    pub fn apply_defaults(&mut self) {
        self.period_seconds.get_or_insert(10);
        self.timeout_seconds.get_or_insert(1);
        self.success_threshold.get_or_insert(1);
        self.failure_threshold.get_or_insert(3);
    }

    fn validate(&self, path: &FieldPath, is_liveness: bool, errors: &mut Vec<ValidationError>) {
        match self.handler_count() {
            0 => errors.push(ValidationError::required(
                path,
                "must specify a handler type (httpGet, tcpSocket, exec or grpc)",
            )),
            1 => {}
            _ => errors.push(ValidationError::forbidden(path, "may not specify more than one handler type")),
        }
        if let Some(http_get) = &self.http_get {
            validate_probe_port(&http_get.port, &path.key("httpGet").key("port"), errors);
        }
        if let Some(tcp_socket) = &self.tcp_socket {
            validate_probe_port(&tcp_socket.port, &path.key("tcpSocket").key("port"), errors);
        }
        let non_negative = [("initialDelaySeconds", self.initial_delay_seconds)];
        for (field, value) in non_negative {
            if let Some(value) = value {
                validate_non_negative(i64::from(value), &path.key(field), errors);
            }
        }
        let positive = [
            ("periodSeconds", self.period_seconds),
            ("timeoutSeconds", self.timeout_seconds),
            ("successThreshold", self.success_threshold),
            ("failureThreshold", self.failure_threshold),
        ];
        for (field, value) in positive {
            if let Some(value) = value.filter(|v| *v < 1) {
                errors.push(ValidationError::invalid(
                    &path.key(field),
                    format!("{value}: must be greater than or equal to 1"),
                ));
            }
        }
        if is_liveness && self.success_threshold.is_some_and(|v| v != 1) {
            errors.push(ValidationError::invalid(&path.key("successThreshold"), "must be 1 for a liveness probe"));
        }
    }
}

fn validate_probe_port(port: &IntOrString, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    match port {
        IntOrString::Int(number) => validate_port_number(*number, path, errors),
        IntOrString::String(name) if !is_iana_service_name(name) => errors
            .push(ValidationError::invalid(path, format!("{name:?}: must be a port number or an IANA service name"))),
        IntOrString::String(_) => {}
    }
}

/// An HTTP GET probe handler.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpGetAction {
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A port number or a named container port.
    pub port: IntOrString,
    /// HTTP or HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

/// A TCP connect probe handler.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpSocketAction {
    /// A port number or a named container port.
    pub port: IntOrString,
}

/// A command probe handler.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecAction {
    /// The command; exit status 0 means healthy.
    pub command: Vec<String>,
}

/// A gRPC health-check probe handler.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcAction {
    /// The port of the gRPC server.
    pub port: i32,
    /// The service name sent in the health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// An environment variable: a literal value or a reference to a ConfigMap or Secret key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// A literal value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A value read from a ConfigMap or Secret when the container starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from. A missing, non-optional reference keeps the
/// container from starting (CreateContainerConfigError), which the kubelet model reproduces.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    /// A key of a ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    /// A key of a Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
}

/// One key of a named ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeySelector {
    /// The ConfigMap or Secret, in the pod's namespace.
    pub name: String,
    /// The key within it.
    pub key: String,
    /// Whether the container may start without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A whole ConfigMap or Secret as environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    /// Prepended to every key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<NamedReference>,
    /// A Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<NamedReference>,
}

/// A reference by name to a ConfigMap or Secret in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamedReference {
    /// Its name.
    pub name: String,
    /// Whether the container may start without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A pod volume; only ConfigMap and Secret sources are simulated (a pod waits for them); any
/// other source is taken as always present.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    /// Referred to by volumeMounts.
    pub name: String,
    /// A ConfigMap's keys as files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<NamedReference>,
    /// A Secret's keys as files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
}

/// A Secret volume (its name field is `secretName`, unlike a ConfigMap volume's `name`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretVolumeSource {
    /// The Secret.
    pub secret_name: String,
    /// Whether the pod may start without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Where a volume appears in a container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// The path in the container.
    pub mount_path: String,
    /// Mounted read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// How a toleration's key and value match a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum TolerationOperator {
    /// Key and value must be equal (the default).
    #[default]
    Equal,
    /// The key must match, whatever the value; an empty key with Exists tolerates everything.
    Exists,
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods are not scheduled on the node.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods are evicted (after their tolerationSeconds).
    NoExecute,
}

/// A pod's tolerance of a node taint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Toleration {
    /// The taint key; empty with operator Exists matches every key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Equal by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// The taint value for Equal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The effect it tolerates; empty means every effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// For NoExecute: how long the pod stays after the taint appears; None means forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// The lifecycle phase of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers running yet.
    #[default]
    Pending,
    /// Bound and at least one container running.
    Running,
    /// All containers exited successfully and will not restart.
    Succeeded,
    /// All containers exited, at least one in failure, and will not restart.
    Failed,
    /// The node stopped reporting.
    Unknown,
}

/// What the kubelet reports about a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// The phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodPhase>,
    /// PodScheduled, Initialized, ContainersReady, Ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One entry per container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// The node's address.
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The pod's address, which EndpointSlices publish.
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// Virtual time at which the kubelet accepted the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_ns: Option<u64>,
}

impl PodStatus {
    /// The Ready condition, whose lastTransitionTime decides availability under minReadySeconds.
    pub fn ready_condition(&self) -> Option<&Condition> {
        super::meta::find_condition(&self.conditions, "Ready")
    }
}

/// The state of one container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// Whether its readiness probe passes.
    pub ready: bool,
    /// How often it was restarted; ranks pods for deletion.
    pub restart_count: i32,
    /// Waiting, running or terminated.
    pub state: ContainerState,
    /// The image it runs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
}

/// Exactly one of waiting, running or terminated is set (or none, before the first report).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerState {
    /// Not running yet, or waiting to restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
    /// Running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<ContainerStateRunning>,
    /// Exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<ContainerStateTerminated>,
}

/// A waiting container and why (`ContainerCreating`, `CrashLoopBackOff`, `ImagePullBackOff`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStateWaiting {
    /// Why it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A running container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStateRunning {
    /// Virtual time at which it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ns: Option<u64>,
}

/// An exited container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStateTerminated {
    /// Its exit code; 0 is success.
    pub exit_code: i32,
    /// Why it exited (`Completed`, `Error`, `OOMKilled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Virtual time at which it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ns: Option<u64>,
}

impl PodSpec {
    /// Applies the API server's pod defaults: restartPolicy Always, grace period 30 s, probe
    /// defaults, protocol TCP on container ports.
    pub fn apply_defaults(&mut self) {
        self.restart_policy.get_or_insert(RestartPolicy::Always);
        self.termination_grace_period_seconds.get_or_insert(30);
        for container in &mut self.containers {
            for probe in [&mut container.readiness_probe, &mut container.liveness_probe].into_iter().flatten() {
                probe.apply_defaults();
            }
            for port in &mut container.ports {
                port.protocol.get_or_insert(Protocol::Tcp);
            }
        }
    }

    /// Validates containers (at least one, unique DNS-1123 names, an image, ports, probes,
    /// requests not above limits), volumes, tolerations and the grace period.
    pub fn validate(&self, path: &FieldPath, errors: &mut Vec<ValidationError>) {
        let containers_path = path.key("containers");
        if self.containers.is_empty() {
            errors.push(ValidationError::required(&containers_path, "a pod needs at least one container"));
        }
        let mut container_names = BTreeSet::new();
        for (index, container) in self.containers.iter().enumerate() {
            let container_path = containers_path.index(index);
            let name_path = container_path.key("name");
            if container.name.is_empty() {
                errors.push(ValidationError::required(&name_path, "a container needs a name"));
            } else if !super::validation::is_dns1123_label(&container.name) {
                errors.push(ValidationError::invalid(
                    &name_path,
                    format!(
                        "{:?}: a container name must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63)",
                        container.name
                    ),
                ));
            } else if !container_names.insert(container.name.as_str()) {
                errors.push(ValidationError::duplicate(&name_path, format!("{:?}", container.name)));
            }
            if container.image.trim().is_empty() {
                errors.push(ValidationError::required(&container_path.key("image"), "a container needs an image"));
            }
            let mut port_names = BTreeSet::new();
            for (port_index, port) in container.ports.iter().enumerate() {
                let port_path = container_path.key("ports").index(port_index);
                validate_port_number(port.container_port, &port_path.key("containerPort"), errors);
                if let Some(name) = &port.name {
                    if !is_iana_service_name(name) {
                        errors.push(ValidationError::invalid(
                            &port_path.key("name"),
                            format!("{name:?}: must be an IANA service name"),
                        ));
                    } else if !port_names.insert(name.as_str()) {
                        errors.push(ValidationError::duplicate(&port_path.key("name"), format!("{name:?}")));
                    }
                }
            }
            let resources = &container.resources;
            let resources_path = container_path.key("resources");
            if let (Some(request), Some(limit)) = (resources.requests.cpu, resources.limits.cpu) {
                if request > limit {
                    errors.push(ValidationError::invalid(
                        &resources_path.key("requests").key("cpu"),
                        format!("{}m: must be less than or equal to the cpu limit of {}m", request.0, limit.0),
                    ));
                }
            }
            if let (Some(request), Some(limit)) = (resources.requests.memory, resources.limits.memory) {
                if request > limit {
                    errors.push(ValidationError::invalid(
                        &resources_path.key("requests").key("memory"),
                        format!("{}: must be less than or equal to the memory limit of {}", request.0, limit.0),
                    ));
                }
            }
            if let Some(probe) = &container.readiness_probe {
                probe.validate(&container_path.key("readinessProbe"), false, errors);
            }
            if let Some(probe) = &container.liveness_probe {
                probe.validate(&container_path.key("livenessProbe"), true, errors);
            }
            for (env_index, env) in container.env.iter().enumerate() {
                let env_path = container_path.key("env").index(env_index);
                if env.name.is_empty() {
                    errors
                        .push(ValidationError::required(&env_path.key("name"), "an environment variable needs a name"));
                }
                if let Some(source) = &env.value_from {
                    if env.value.is_some() {
                        errors.push(ValidationError::invalid(
                            &env_path.key("valueFrom"),
                            "may not be specified when `value` is not empty",
                        ));
                    }
                    let sources =
                        usize::from(source.config_map_key_ref.is_some()) + usize::from(source.secret_key_ref.is_some());
                    if sources != 1 {
                        errors.push(ValidationError::invalid(
                            &env_path.key("valueFrom"),
                            "must specify exactly one of configMapKeyRef or secretKeyRef",
                        ));
                    }
                }
            }
        }
        let mut volume_names = BTreeSet::new();
        for (index, volume) in self.volumes.iter().enumerate() {
            let volume_path = path.key("volumes").index(index);
            if !super::validation::is_dns1123_label(&volume.name) {
                errors.push(ValidationError::invalid(
                    &volume_path.key("name"),
                    format!("{:?}: a volume name must be a DNS-1123 label", volume.name),
                ));
            } else if !volume_names.insert(volume.name.as_str()) {
                errors.push(ValidationError::duplicate(&volume_path.key("name"), format!("{:?}", volume.name)));
            }
            // A volume with no simulated source is an emptyDir (the API's default when no source is
            // given) or a source the model does not simulate (persistentVolumeClaim, hostPath, ...),
            // which the manifest loader has already reported as a warning; either way it is always
            // there when the pod starts.
            if volume.config_map.is_some() && volume.secret.is_some() {
                errors.push(ValidationError::forbidden(
                    &volume_path.key("secret"),
                    "may not specify more than 1 volume type",
                ));
            }
        }
        for (index, container) in self.containers.iter().enumerate() {
            for (mount_index, mount) in container.volume_mounts.iter().enumerate() {
                if !volume_names.contains(mount.name.as_str()) {
                    errors.push(ValidationError::not_supported(
                        &containers_path.index(index).key("volumeMounts").index(mount_index).key("name"),
                        format!("{:?}: no volume of that name in spec.volumes", mount.name),
                    ));
                }
            }
        }
        for (index, toleration) in self.tolerations.iter().enumerate() {
            let toleration_path = path.key("tolerations").index(index);
            if toleration.operator == Some(TolerationOperator::Exists)
                && toleration.value.as_deref().is_some_and(|v| !v.is_empty())
            {
                errors.push(ValidationError::invalid(
                    &toleration_path.key("value"),
                    "must be empty when operator is Exists",
                ));
            }
            if toleration.toleration_seconds.is_some() && toleration.effect != Some(TaintEffect::NoExecute) {
                errors.push(ValidationError::invalid(
                    &toleration_path.key("effect"),
                    "must be NoExecute when tolerationSeconds is set",
                ));
            }
        }
        if let Some(seconds) = self.termination_grace_period_seconds {
            validate_non_negative(seconds, &path.key("terminationGracePeriodSeconds"), errors);
        }
    }
}

impl PodTemplateSpec {
    /// Applies pod defaults to the template.
    pub fn apply_defaults(&mut self) {
        self.spec.apply_defaults();
    }

    /// Validates the template's labels and spec.
    pub fn validate(&self, path: &FieldPath, errors: &mut Vec<ValidationError>) {
        validate_labels(&self.metadata.labels, &path.key("metadata").key("labels"), errors);
        self.spec.validate(&path.key("spec"), errors);
    }
}

impl Pod {
    /// Applies the API server's pod defaults.
    pub fn apply_defaults(&mut self) {
        self.spec.apply_defaults();
    }

    /// Whether the pod's Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.status.ready_condition().is_some_and(|condition| condition.is_true("Ready"))
    }

    /// The total CPU and memory the pod requests, which the scheduler reserves on its node.
    pub fn total_requests(&self) -> (Millicores, Bytes) {
        self.spec.containers.iter().fold((Millicores(0), Bytes(0)), |(cpu, memory), container| {
            let requests = container.resources.requests;
            (
                Millicores(cpu.0.saturating_add(requests.cpu.map_or(0, |v| v.0))),
                Bytes(memory.0.saturating_add(requests.memory.map_or(0, |v| v.0))),
            )
        })
    }
}
