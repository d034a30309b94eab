//! The scenario file format: the serde types of a scenario YAML file, one struct per section.
//!
//! Every struct denies unknown fields, so a typo is an error at its line and column rather than a
//! setting silently ignored. Durations are `kubedst_sim::serde_duration` strings (`500ms`, `30s`,
//! `5m`). Values that need checking beyond their type (node names, machine names in faults, one
//! action per timeline entry) are wrapped in [`Spanned`] so that [`crate::scenario`] can point at
//! them.

use kubedst_core::harness::TimedModelFault;
use kubedst_core::objects::cluster::Taint;
use kubedst_core::objects::{Bytes, Millicores};
use kubedst_sim::TimedFault;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// A short name (`rolling-update`), used in reports and replay commands.
    pub name: String,
    /// One line saying what the scenario shows.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub cluster: ClusterSection,
    /// The Kubernetes objects created at the start of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Spanned<Workload>>,
    /// Container behaviour by exact image name (`web:v2`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImageSection>,
    /// The behaviour of every image not listed in `images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_image: Option<ImageSection>,
    /// Traffic sources, each calling one Service from one node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<Spanned<TrafficSection>>,
    /// User actions at virtual times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Spanned<TimelineEntry>>,
    /// A fault profile name, or an explicit schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<Spanned<FaultsSection>>,
    /// The invariants to hold, by name; absent means all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invariants: Option<Vec<Spanned<String>>>,
    /// When the fault phase ends and everything heals (default 120s).
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub fault_phase: Option<Duration>,
    /// How long after the heal the cluster has to converge (default 120s).
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub liveness_bound: Option<Duration>,
}

/// The machines of the cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Worker nodes: named nodes, or groups with a `count`. Absent: three default nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<Spanned<NodeSection>>>,
    /// Control-plane machines, each with an API server, a controller manager and a scheduler
    /// (leader election among them when more than one). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<Spanned<u32>>,
    /// Events each API server's watch cache keeps (default 10000); a small cache makes watches
    /// fall behind and relist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_cache_capacity: Option<Spanned<usize>>,
    /// The resource metrics pipeline (metrics-server) and the HorizontalPodAutoscaler controller.
    /// Default: on when the workload or the timeline applies a HorizontalPodAutoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Spanned<bool>>,
    /// A simulated cloud (`fast-reliable` or `slow-flaky`) with a cloud controller manager, for
    /// LoadBalancer Services and cloud node lifecycle. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Spanned<String>>,
}

/// One node, or with `count` a group of identical nodes named `<name>-0`, `<name>-1`, ...
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name, or the group's name prefix (default `node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many nodes the group has; absent means one node named exactly `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Allocatable CPU (`4`, `3500m`; default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Millicores>,
    /// Allocatable memory (`16Gi`; default 16Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    /// Most pods the node runs (default 110).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Sets the label `topology.kubernetes.io/zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// The workload: an inline multi-document manifest string, or manifest files.
#[derive(Debug, Clone)]
pub enum Workload {
    Inline(String),
    Files(WorkloadFiles),
}

/// `workload: {manifests: [web.yaml, ...]}`: paths relative to the scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFiles {
    pub manifests: Vec<String>,
}

impl Serialize for Workload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Workload::Inline(text) => serializer.serialize_str(text),
            Workload::Files(files) => files.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Workload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WorkloadVisitor;
        impl<'de> Visitor<'de> for WorkloadVisitor {
            type Value = Workload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a multi-document manifest string (workload: |) or a mapping {manifests: [paths]}")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Workload, E> {
                Ok(Workload::Inline(text.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Workload, A::Error> {
                WorkloadFiles::deserialize(de::value::MapAccessDeserializer::new(map)).map(Workload::Files)
            }
        }
        deserializer.deserialize_any(WorkloadVisitor)
    }
}

/// How one image behaves; every field is optional and defaults to
/// [`kubedst_core::runtime::ImageBehavior::default`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    /// How long pulling the image takes (once per node).
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub pull_time: Option<Duration>,
    /// From "create and start" to the process running.
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub start_latency: Option<Duration>,
    /// From the process running to the app serving (passing readiness).
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub time_to_ready: Option<Duration>,
    /// The process exits on its own after running this long.
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub crash_after: Option<Duration>,
    /// The exit code when `crash_after` fires (default 1; 0 means the work completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The process deadlocks after running this long: running, but not serving.
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub hang_after: Option<Duration>,
    /// Every pull fails (ErrImagePull, ImagePullBackOff).
    #[serde(default, skip_serializing_if = "is_false")]
    pub pull_fails: bool,
    /// Runs but never serves nor passes readiness.
    #[serde(default, skip_serializing_if = "is_false")]
    pub never_ready: bool,
    /// How long the app takes to exit after SIGTERM.
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub sigterm_exit_after: Option<Duration>,
    /// CPU each served request costs, for the HPA's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millicores_per_request: Option<u64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A traffic source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSection {
    /// The Service called: `name` (namespace `default`) or `namespace/name`.
    pub service: String,
    /// The node the requests leave from (default: the first node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// One request per interval.
    #[serde(with = "kubedst_sim::serde_duration")]
    pub interval: Duration,
}

/// One timed user action: `at` and exactly one action field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    #[serde(with = "kubedst_sim::serde_duration")]
    pub at: Duration,
    /// `kubectl apply` of an inline multi-document manifest string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<Spanned<String>>,
    #[serde(default, alias = "set-image", skip_serializing_if = "Option::is_none")]
    pub set_image: Option<SetImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    #[serde(default, alias = "rollout-undo", skip_serializing_if = "Option::is_none")]
    pub rollout_undo: Option<RolloutUndo>,
    /// `kubectl rollout pause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<DeploymentRef>,
    /// `kubectl rollout resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<DeploymentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Delete>,
    /// A node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncordon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficChange>,
    /// Not an action: what must hold at `at`, checked against etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectSection>,
}

/// What a Deployment must look like at the entry's moment; at least one bound.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSection {
    pub deployment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `spec.replicas` exactly (what `kubectl scale` and the HPA set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_at_least: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_at_most: Option<i32>,
    /// `status.availableReplicas` at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at_least: Option<i32>,
}

/// `kubectl set image deployment/NAME CONTAINER=IMAGE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetImage {
    pub deployment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub container: String,
    pub image: String,
}

/// `kubectl scale KIND/NAME --replicas=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Deployment (default), ReplicaSet or Job (whose parallelism changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub replicas: i32,
}

/// `kubectl rollout undo deployment/NAME [--to-revision=N]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutUndo {
    pub deployment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<i64>,
}

/// A Deployment by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRef {
    pub deployment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `kubectl delete KIND/NAME [--cascade=background|foreground|orphan]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    /// A Kubernetes kind as in manifests (`Deployment`).
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `background`, `foreground` or `orphan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
}

/// A traffic source sends at a new interval, or stops.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficChange {
    /// The index of the source in the scenario's `traffic` list (default 0).
    #[serde(default)]
    pub source: usize,
    /// The new interval; absent means the source stops.
    #[serde(default, with = "kubedst_sim::serde_duration::option", skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// `faults: PROFILE` or `faults: {engine: [...], model: [...]}`.
#[derive(Debug, Clone)]
pub enum FaultsSection {
    /// A fault profile (a fault class name, or `none`), drawn from the seed.
    Profile(String),
    Schedule(ScheduleSection),
}

/// An explicit fault schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Engine faults: `{at: 10s, fault: {kind: crash, machine: node-1, restart_after: 30s}}`.
    #[serde(default)]
    pub engine: Vec<TimedFault>,
    /// Model faults: `{at: 20s, fault: {kind: compact_now}}`.
    #[serde(default)]
    pub model: Vec<TimedModelFault>,
}

impl Serialize for FaultsSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FaultsSection::Profile(name) => serializer.serialize_str(name),
            FaultsSection::Schedule(schedule) => schedule.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for FaultsSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FaultsVisitor;
        impl<'de> Visitor<'de> for FaultsVisitor {
            type Value = FaultsSection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fault profile name or a schedule {engine: [...], model: [...]}")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FaultsSection, E> {
                Ok(FaultsSection::Profile(text.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FaultsSection, A::Error> {
                ScheduleSection::deserialize(de::value::MapAccessDeserializer::new(map)).map(FaultsSection::Schedule)
            }
        }
        deserializer.deserialize_any(FaultsVisitor)
    }
}
