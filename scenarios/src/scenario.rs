//! A loaded scenario: the file parsed and checked, its manifests loaded, ready to become a
//! [`RunSpec`] for any seed.
//!
//! Loading checks everything that can be checked without running: YAML syntax and types (by
//! serde-saphyr, with the line and column of the offending value), the manifests (by
//! [`kubedst_core::manifest::load_manifests`], with line numbers of the scenario file for inline
//! manifests), one action per timeline entry, node and Deployment names, machine names in an
//! explicit fault schedule, fault profile and invariant names. Every error names the file, line
//! and column and says what was expected.

use crate::expect::{Bound, Expectation, ExpectationChecker};
use crate::format::{
    ExpectSection, FaultsSection, ImageSection, NodeSection, ScenarioFile, ScheduleSection, TimelineEntry, Workload,
};
use crate::generators::ClusterShape;
use kubedst_core::api::{ObjectKey, Propagation};
use kubedst_core::checkers::{Checker, CheckerSet};
use kubedst_core::cloud::CloudProfile;
use kubedst_core::cluster::{standard_controllers, standard_scheduler, ClusterConfig, TrafficConfig};
use kubedst_core::harness::ModelFault;
use kubedst_core::harness::{Action, FaultPlan, Harness, RunReport, RunSpec, TimedAction, Verdict};
use kubedst_core::manifest::{load_manifests_with, ManifestError, ManifestWarning, SourceLocation};
use kubedst_core::node::NodeConfig;
use kubedst_core::objects::CustomKind;
use kubedst_core::objects::{Kind, Object};
use kubedst_core::runtime::{ImageBehavior, ImageBehaviors};
use kubedst_sim::FaultSchedule;
use serde_saphyr::{MessageFormatter, Spanned};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest scenario file accepted, in bytes (the manifest loader's bound).
pub const SCENARIO_SIZE_MAX_BYTES: usize = kubedst_core::manifest::MANIFEST_SIZE_MAX_BYTES;

/// Default length of the fault phase.
pub const DEFAULT_FAULT_PHASE: Duration = Duration::from_secs(120);
/// Default time the cluster has to converge after the heal.
pub const DEFAULT_LIVENESS_BOUND: Duration = Duration::from_secs(120);

/// The invariant name of the liveness promise checked after the heal.
pub const CONVERGES: &str = "converges";

/// Most nodes a scenario may have (the node index picks a pod IP range and is a `u8`).
pub const NODES_MAX: usize = 250;

/// Why a scenario did not load or cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    /// The file could not be read.
    Io { path: String, message: String },
    /// Something in the scenario file is wrong, at a position.
    Invalid { location: SourceLocation, message: String },
    /// A manifest (inline or a file) did not load; every problem found.
    Manifest(ManifestError),
    /// No built-in scenario has this name.
    UnknownBuiltin { name: String, suggestions: Vec<String> },
    /// A problem without a position (a `--faults` override that names unknown machines).
    Other(String),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Io { path, message } => write!(f, "{path}: {message}"),
            ScenarioError::Invalid { location, message } => write!(f, "{location}: {message}"),
            ScenarioError::Manifest(error) => write!(f, "{error}"),
            ScenarioError::UnknownBuiltin { name, suggestions } => {
                write!(f, "no built-in scenario is named {name:?} and no file has that path")?;
                if !suggestions.is_empty() {
                    write!(f, "; did you mean {}?", suggestions.join(" or "))?;
                }
                write!(f, " (`kubedst scenarios` lists them)")
            }
            ScenarioError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A scenario, loaded and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file label used in messages (a path, or `builtin/NAME.yaml`).
    pub file_name: String,
    /// The text as read.
    pub source: String,
    /// The parsed file.
    pub file: ScenarioFile,
    /// The workload's objects, created at time 0.
    pub workload: Vec<Object>,
    /// The text of each manifest file the workload names, by path as written.
    pub manifest_files: Vec<(String, String)>,
    /// Unsimulated manifest fields (warnings, not errors).
    pub warnings: Vec<ManifestWarning>,
    nodes: Vec<NodeConfig>,
    actions: Vec<TimedAction>,
    traffic: Vec<TrafficConfig>,
    invariants: Vec<String>,
    expectations: Vec<Expectation>,
    /// Whether metrics-server and the HPA controller run (explicit, or an HPA in the workload).
    autoscaling: bool,
    cloud: Option<CloudProfile>,
    /// Custom kinds the workload's manifests may use (library mode registers them).
    custom_kinds: Vec<CustomKind>,
}

/// A built-in scenario: its name and its embedded text.
struct Builtin {
    name: &'static str,
    text: &'static str,
}

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        &[$(Builtin { name: $name, text: include_str!(concat!("../builtin/", $name, ".yaml")) }),*]
    };
}

/// Every built-in scenario, in the order `kubedst scenarios` lists them.
const BUILTINS: &[Builtin] = builtins![
    "rolling-update",
    "rolling-update-network-chaos",
    "rolling-update-leader-failover",
    "bad-rollout-undo",
    "node-crash-eviction",
    "partitioned-node-returns",
    "watch-compaction-relist",
    "scale-storm",
    "job-node-crashes",
    "hpa-traffic-spike",
    "zone-outage",
    "leader-election-clock-skew",
];

/// The names of the built-in scenarios.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|builtin| builtin.name).collect()
}

/// Every invariant a scenario may name: the safety checkers and `converges`.
pub fn invariant_names() -> Vec<String> {
    let mut names: Vec<String> =
        kubedst_core::checkers::safety_checkers().iter().map(|checker| checker.name().to_string()).collect();
    names.push(CONVERGES.to_string());
    names
}

/// Fault profile names a scenario or `--faults` may give: `none` and every fault class.
pub fn profile_names() -> Vec<&'static str> {
    crate::profiles::names()
}

/// Levenshtein distance, for suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The candidates closest to `name`: within a third of its length (at least 2 edits), or those
/// that contain it, best first, at most three.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= limit || (name.len() >= 3 && candidate.contains(name)))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, candidate)| candidate.to_string()).collect()
}

fn location_of(file_name: &str, location: &serde_saphyr::Location) -> SourceLocation {
    SourceLocation {
        file: file_name.to_string(),
        line: usize::try_from(location.line().max(1)).unwrap_or(usize::MAX),
        column: usize::try_from(location.column().max(1)).unwrap_or(usize::MAX),
    }
}

fn invalid<T>(file_name: &str, spanned: &Spanned<T>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { location: location_of(file_name, &spanned.referenced), message: message.into() }
}

fn namespace(namespace: &Option<String>) -> String {
    namespace.clone().unwrap_or_else(|| "default".to_string())
}

impl Scenario {
    /// Reads and checks a scenario file; manifest paths are relative to its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let text = read_text(path)?;
        let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::parse_in(&label, &text, Some(&directory), &[])
    }

    /// [`Scenario::load`], with the workload's manifests allowed to hold objects of
    /// `custom_kinds` (library mode; see `kubedst_scenarios::library`).
    pub fn load_with(path: impl AsRef<Path>, custom_kinds: &[CustomKind]) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let text = read_text(path)?;
        let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::parse_in(&label, &text, Some(&directory), custom_kinds)
    }

    /// [`Scenario::parse`], with the workload allowed to hold objects of `custom_kinds`.
    pub fn parse_with(file_name: &str, text: &str, custom_kinds: &[CustomKind]) -> Result<Scenario, ScenarioError> {
        Scenario::parse_in(file_name, text, None, custom_kinds)
    }

    /// [`Scenario::resolve`] (a built-in name or a path), with `custom_kinds` registered for the
    /// workload's manifests.
    pub fn resolve_with(name_or_path: &str, custom_kinds: &[CustomKind]) -> Result<Scenario, ScenarioError> {
        if let Some(builtin) = BUILTINS.iter().find(|builtin| builtin.name == name_or_path) {
            return Scenario::parse_with(&format!("builtin/{}.yaml", builtin.name), builtin.text, custom_kinds);
        }
        let looks_like_path =
            name_or_path.contains('/') || name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml");
        if looks_like_path || Path::new(name_or_path).is_file() {
            return Scenario::load_with(name_or_path, custom_kinds);
        }
        Scenario::builtin(name_or_path)
    }

    /// The custom kinds registered when the scenario was read.
    pub fn custom_kinds(&self) -> &[CustomKind] {
        &self.custom_kinds
    }

    /// Parses and checks a scenario from text. `file_name` labels messages. A workload that names
    /// manifest files is an error here (there is no directory to read them from): use
    /// [`Scenario::load`].
    pub fn parse(file_name: &str, text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse_in(file_name, text, None, &[])
    }

    /// A built-in scenario by name; an unknown name suggests the closest.
    pub fn builtin(name: &str) -> Result<Scenario, ScenarioError> {
        match BUILTINS.iter().find(|builtin| builtin.name == name) {
            Some(builtin) => Scenario::parse(&format!("builtin/{}.yaml", builtin.name), builtin.text),
            None => Err(ScenarioError::UnknownBuiltin {
                name: name.to_string(),
                suggestions: closest(name, BUILTINS.iter().map(|builtin| builtin.name)),
            }),
        }
    }

    /// A built-in name, else a path to a file. A name that is neither is an unknown built-in
    /// (with suggestions), unless it looks like a path (has a `/` or ends in `.yaml`/`.yml`).
    pub fn resolve(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if BUILTINS.iter().any(|builtin| builtin.name == name_or_path) {
            return Scenario::builtin(name_or_path);
        }
        let looks_like_path =
            name_or_path.contains('/') || name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml");
        if looks_like_path || Path::new(name_or_path).is_file() {
            return Scenario::load(name_or_path);
        }
        Scenario::builtin(name_or_path)
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// The scenario's one-line description.
    pub fn description(&self) -> &str {
        &self.file.description
    }

    /// Virtual time at which the fault phase ends.
    pub fn fault_phase(&self) -> Duration {
        self.file.fault_phase.unwrap_or(DEFAULT_FAULT_PHASE)
    }

    /// Time the cluster has to converge after the heal.
    pub fn liveness_bound(&self) -> Duration {
        self.file.liveness_bound.unwrap_or(DEFAULT_LIVENESS_BOUND)
    }

    /// The invariants this scenario holds the cluster to.
    pub fn invariants(&self) -> &[String] {
        &self.invariants
    }

    /// The fault profile, if the scenario names one (`none` included).
    pub fn fault_profile(&self) -> Option<&str> {
        match self.file.faults.as_ref().map(|spanned| &spanned.value) {
            Some(FaultsSection::Profile(name)) => Some(name),
            _ => None,
        }
    }

    /// The scenario as one self-contained YAML text, for embedding in repro files: the source as
    /// written when it names no manifest files; otherwise the file re-serialized with the
    /// manifests inlined. [`Scenario::parse`] of this text gives the same runs.
    pub fn to_yaml(&self) -> String {
        if self.manifest_files.is_empty() {
            return self.source.clone();
        }
        let mut file = self.file.clone();
        let inline = self.manifest_files.iter().map(|(_, text)| text.trim_end().to_string()).collect::<Vec<_>>();
        if let Some(workload) = &mut file.workload {
            workload.value = Workload::Inline(inline.join("\n---\n") + "\n");
        }
        serde_saphyr::to_string(&file).unwrap_or_else(|_| self.source.clone())
    }

    /// The machine names of the cluster, as fault schedules name them.
    pub fn machine_names(&self) -> Vec<String> {
        let mut names = vec!["etcd-0".to_string()];
        names.extend((0..self.control_plane_replicas()).map(|index| format!("control-plane-{index}")));
        names.extend(self.nodes.iter().map(|node| node.name.clone()));
        names.push("client".to_string());
        if self.autoscaling {
            names.push("metrics-server".to_string());
        }
        if self.cloud.is_some() {
            names.push("cloud-api".to_string());
        }
        names
    }

    fn control_plane_replicas(&self) -> u32 {
        self.file.cluster.control_plane.as_ref().map_or(1, |replicas| replicas.value)
    }

    /// The cluster this scenario runs on, for a seed.
    pub fn cluster_config(&self, seed: u64) -> ClusterConfig {
        let mut config = ClusterConfig::new(seed);
        config.controllers = Some(standard_controllers());
        config.scheduler = Some(standard_scheduler());
        config.control_plane_replicas = self.control_plane_replicas();
        if let Some(capacity) = &self.file.cluster.watch_cache_capacity {
            config.watch_cache_capacity = capacity.value;
        }
        config.nodes = self.nodes.clone();
        config.traffic = self.traffic.clone();
        config.autoscaling = self.autoscaling;
        config.cloud = self.cloud.clone();
        config.custom_kinds = self.custom_kinds.clone();
        config
    }

    /// The timeline's expectations, in time order.
    pub fn expectations(&self) -> &[Expectation] {
        &self.expectations
    }

    /// The fault plan of a seed: the scenario's explicit schedule, or its profile drawn from the
    /// seed, or nothing.
    pub fn fault_plan(&self, seed: u64) -> Result<FaultPlan, ScenarioError> {
        match self.file.faults.as_ref().map(|spanned| &spanned.value) {
            None => Ok(FaultPlan::default()),
            Some(FaultsSection::Schedule(schedule)) => Ok(plan_of(schedule)),
            Some(FaultsSection::Profile(name)) => self.profile_plan(name, seed),
        }
    }

    /// The plan a fault profile draws for this scenario's cluster and a seed.
    pub fn profile_plan(&self, profile: &str, seed: u64) -> Result<FaultPlan, ScenarioError> {
        crate::profiles::plan(profile, &self.cluster_shape(seed), seed).ok_or_else(|| {
            let suggestions = closest(profile, profile_names());
            ScenarioError::Other(format!(
                "unknown fault profile {profile:?}{}; profiles: {}",
                suggest(&suggestions),
                profile_names().join(", ")
            ))
        })
    }

    /// What the fault generators draw over: this cluster's machines, the fault phase, the
    /// workload's images; faults strike after the first tenth of the fault phase, so that the
    /// workload is up before they do. Link chaos stays off the links between worker nodes: the
    /// model carries a request to a pod as one message, without TCP's retransmissions, so a loss
    /// there would be a lost request that a real network recovers (the README's zero-downtime
    /// table); an explicit schedule may still degrade those links.
    pub fn cluster_shape(&self, seed: u64) -> ClusterShape {
        let mut images: Vec<&str> = Vec::new();
        for object in &self.workload {
            let template = match object {
                Object::Deployment(deployment) => &deployment.spec.template,
                Object::ReplicaSet(set) => &set.spec.template,
                Object::Job(job) => &job.spec.template,
                _ => continue,
            };
            for container in &template.spec.containers {
                if !images.contains(&container.image.as_str()) {
                    images.push(&container.image);
                }
            }
        }
        ClusterShape::of(&self.cluster_config(seed), self.fault_phase())
            .with_images(&images)
            .with_window_start(self.fault_phase() / 10)
            .without_chaos_between_nodes()
    }

    /// Everything a run of this scenario needs for `seed`. `faults_override` replaces the
    /// scenario's own faults (a `--faults` file, a repro's schedule, a shrunk plan); its machine
    /// names are checked against the cluster.
    pub fn to_run_spec(&self, seed: u64, faults_override: Option<FaultPlan>) -> Result<RunSpec, ScenarioError> {
        let faults = match faults_override {
            Some(plan) => {
                self.check_plan_machines(&plan)?;
                plan
            }
            None => self.fault_plan(seed)?,
        };
        let mut actions = Vec::new();
        if !self.workload.is_empty() {
            actions.push(TimedAction { at: Duration::ZERO, action: Action::Apply(self.workload.clone()) });
        }
        actions.extend(self.actions.iter().cloned());
        Ok(RunSpec {
            cluster: self.cluster_config(seed),
            actions,
            faults,
            fault_phase: self.fault_phase(),
            liveness_bound: self.liveness_bound(),
        })
    }

    /// The timeline's user actions (the workload's creation at 0 s is not among them).
    pub fn actions(&self) -> &[TimedAction] {
        &self.actions
    }

    /// Builds the harness of a run, with only this scenario's invariants checked, plus `extra`
    /// checkers (observers such as a trace writer).
    pub fn harness(&self, spec: RunSpec, extra: Vec<Box<dyn Checker>>) -> Result<Harness, ScenarioError> {
        let mut harness = Harness::new(spec).map_err(ScenarioError::Other)?;
        let mut checkers: Vec<Box<dyn Checker>> = kubedst_core::checkers::safety_checkers()
            .into_iter()
            .filter(|checker| self.invariants.iter().any(|name| name == checker.name()))
            .collect();
        if !self.expectations.is_empty() {
            checkers.push(Box::new(ExpectationChecker::new(self.expectations.clone())));
        }
        checkers.extend(extra);
        harness.checkers = CheckerSet::new(checkers);
        Ok(harness)
    }

    /// Runs both phases of a spec built by [`Scenario::to_run_spec`] and reports, holding the
    /// cluster to this scenario's invariants only.
    pub fn run_spec(&self, spec: RunSpec, extra: Vec<Box<dyn Checker>>) -> Result<RunReport, ScenarioError> {
        let mut harness = self.harness(spec, extra)?;
        harness.run_fault_phase();
        harness.heal();
        harness.run_liveness_phase();
        Ok(self.filter_report(harness.report()))
    }

    /// Runs a seed: [`Scenario::to_run_spec`] then [`Scenario::run_spec`].
    pub fn run(&self, seed: u64, faults_override: Option<FaultPlan>) -> Result<RunReport, ScenarioError> {
        let spec = self.to_run_spec(seed, faults_override)?;
        self.run_spec(spec, Vec::new())
    }

    /// Drops the convergence violations when the scenario does not hold the cluster to
    /// `converges`, and sets the verdict from what remains.
    pub fn filter_report(&self, mut report: RunReport) -> RunReport {
        if !self.invariants.iter().any(|name| name == CONVERGES) {
            report.violations.retain(|violation| violation.invariant != CONVERGES);
        }
        report.verdict = if report.violations.is_empty() { Verdict::Pass } else { Verdict::Fail };
        report
    }

    /// Parses a fault plan file (`--faults FILE`) for this scenario: its machine names are
    /// checked here, so that an error names the entry's line and column in that file.
    pub fn parse_fault_plan(&self, file_name: &str, text: &str) -> Result<FaultPlan, ScenarioError> {
        let plan = parse_fault_plan(file_name, text)?;
        if let Some((entry, message)) = self.plan_machine_error(&plan) {
            return Err(match ScheduleSpans::of_plan_file(text).location(entry) {
                Some(location) => ScenarioError::Invalid { location: location_of(file_name, &location), message },
                None => ScenarioError::Other(format!("{file_name}: {message}")),
            });
        }
        Ok(plan)
    }

    fn check_plan_machines(&self, plan: &FaultPlan) -> Result<(), ScenarioError> {
        match self.plan_machine_error(plan) {
            Some((_, message)) => Err(ScenarioError::Other(message)),
            None => Ok(()),
        }
    }

    /// The first fault of `plan` that names a machine this scenario does not have: which entry,
    /// and what is wrong with it.
    fn plan_machine_error(&self, plan: &FaultPlan) -> Option<(FaultEntry, String)> {
        let machines = self.machine_names();
        let unknown = |machine: &str, what: &str, at: Duration| {
            if machines.iter().any(|known| known == machine) {
                return None;
            }
            let suggestions = closest(machine, machines.iter().map(String::as_str));
            Some(format!(
                "{what} at {} names machine {machine:?}, which scenario {} does not have{}; machines: {}",
                kubedst_sim::serde_duration::format(at),
                self.name(),
                suggest(&suggestions),
                machines.join(", ")
            ))
        };
        for (index, timed) in plan.engine.faults.iter().enumerate() {
            for machine in timed.fault.machines() {
                if let Some(message) = unknown(machine, "fault", timed.at) {
                    return Some((FaultEntry::Engine(index), message));
                }
            }
        }
        for (index, timed) in plan.model.iter().enumerate() {
            let machine = match &timed.fault {
                ModelFault::WatchCacheLag { server, .. } => server,
                ModelFault::ContainerCrash { node, .. } => node,
                ModelFault::CompactNow | ModelFault::PullFailure { .. } => continue,
            };
            if let Some(message) = unknown(machine, "model fault", timed.at) {
                return Some((FaultEntry::Model(index), message));
            }
        }
        None
    }

    fn parse_in(
        file_name: &str,
        text: &str,
        directory: Option<&Path>,
        custom_kinds: &[CustomKind],
    ) -> Result<Scenario, ScenarioError> {
        if text.len() > SCENARIO_SIZE_MAX_BYTES {
            return Err(ScenarioError::Other(format!(
                "{file_name}: file of {} bytes exceeds the limit of {SCENARIO_SIZE_MAX_BYTES}",
                text.len()
            )));
        }
        if text.trim().is_empty() {
            return Err(ScenarioError::Invalid {
                location: SourceLocation { file: file_name.to_string(), line: 1, column: 1 },
                message: "the scenario file is empty; it needs at least `name:` (see the README, Scenario files)"
                    .to_string(),
            });
        }
        let file: ScenarioFile = serde_saphyr::from_str(text).map_err(|error| syntax_error(file_name, text, &error))?;
        let mut scenario = Scenario {
            file_name: file_name.to_string(),
            source: text.to_string(),
            file,
            workload: Vec::new(),
            manifest_files: Vec::new(),
            warnings: Vec::new(),
            nodes: Vec::new(),
            actions: Vec::new(),
            traffic: Vec::new(),
            invariants: Vec::new(),
            expectations: Vec::new(),
            autoscaling: false,
            cloud: None,
            custom_kinds: custom_kinds.to_vec(),
        };
        scenario.check_header()?;
        scenario.build_nodes()?;
        scenario.load_workload(text, directory)?;
        scenario.build_traffic()?;
        scenario.build_actions(text)?;
        // Add-ons first: they bring machines (metrics-server, cloud-api) that faults may name.
        scenario.build_addons()?;
        scenario.check_faults()?;
        scenario.build_invariants()?;
        Ok(scenario)
    }

    fn check_header(&self) -> Result<(), ScenarioError> {
        let name = &self.file.name;
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            let line = self.source.lines().position(|line| line.starts_with("name:")).map_or(1, |index| index + 1);
            return Err(ScenarioError::Invalid {
                location: SourceLocation { file: self.file_name.clone(), line, column: 7 },
                message: format!(
                    "scenario name {name:?}: expected 1 to 63 lowercase letters, digits, '-' or '_' (it appears in \
                     replay commands)"
                ),
            });
        }
        if self.fault_phase() == Duration::ZERO && self.file.fault_phase.is_some() {
            return Err(self.at_key("fault_phase", "fault_phase must be longer than 0s"));
        }
        Ok(())
    }

    /// An error at the first line that starts with `key:` (for top-level fields without a span).
    fn at_key(&self, key: &str, message: &str) -> ScenarioError {
        let prefix = format!("{key}:");
        let line = self.source.lines().position(|line| line.starts_with(&prefix)).map_or(1, |index| index + 1);
        ScenarioError::Invalid {
            location: SourceLocation { file: self.file_name.clone(), line, column: 1 },
            message: message.to_string(),
        }
    }

    fn build_nodes(&mut self) -> Result<(), ScenarioError> {
        if let Some(replicas) = &self.file.cluster.control_plane {
            if !(1..=7).contains(&replicas.value) {
                return Err(invalid(
                    &self.file_name,
                    replicas,
                    format!("control_plane: expected 1 to 7 replicas, found {}", replicas.value),
                ));
            }
        }
        if let Some(capacity) = &self.file.cluster.watch_cache_capacity {
            if capacity.value == 0 {
                return Err(invalid(&self.file_name, capacity, "watch_cache_capacity: expected at least 1"));
            }
        }
        let default_nodes = [Spanned {
            value: NodeSection { count: Some(3), ..NodeSection::default() },
            referenced: serde_saphyr::Location::UNKNOWN,
            defined: serde_saphyr::Location::UNKNOWN,
        }];
        let sections = self.file.cluster.nodes.as_deref().unwrap_or(&default_nodes);
        let mut nodes: Vec<NodeConfig> = Vec::new();
        let mut names = BTreeSet::new();
        for section in sections {
            let spec = &section.value;
            let names_of_group: Vec<String> = match (spec.count, &spec.name) {
                (Some(0), _) => return Err(invalid(&self.file_name, section, "count: expected at least 1 node")),
                (Some(count), name) => {
                    let prefix = name.as_deref().unwrap_or("node");
                    (0..count).map(|index| format!("{prefix}-{index}")).collect()
                }
                (None, Some(name)) => vec![name.clone()],
                (None, None) => {
                    return Err(invalid(&self.file_name, section, "a node needs a `name`, or a group needs a `count`"))
                }
            };
            for name in names_of_group {
                if !is_dns_label(&name) {
                    return Err(invalid(
                        &self.file_name,
                        section,
                        format!("node name {name:?}: expected lowercase letters, digits and '-' (a DNS label)"),
                    ));
                }
                if ["etcd-0", "client"].contains(&name.as_str()) || name.starts_with("control-plane-") {
                    return Err(invalid(
                        &self.file_name,
                        section,
                        format!("node name {name:?} is taken by a control-plane machine"),
                    ));
                }
                if !names.insert(name.clone()) {
                    return Err(invalid(&self.file_name, section, format!("node {name:?} is defined twice")));
                }
                if nodes.len() >= NODES_MAX {
                    return Err(invalid(&self.file_name, section, format!("more than {NODES_MAX} nodes")));
                }
                let index = u8::try_from(nodes.len()).unwrap_or(u8::MAX);
                let mut node = NodeConfig::new(&name, index);
                if let Some(cpu) = spec.cpu {
                    node.cpu_millicores = cpu.0;
                }
                if let Some(memory) = spec.memory {
                    node.memory_bytes = memory.0;
                }
                if let Some(pods) = spec.pods {
                    node.max_pods = pods;
                }
                node.labels.extend(spec.labels.iter().map(|(key, value)| (key.clone(), value.clone())));
                if let Some(zone) = &spec.zone {
                    node.labels.insert("topology.kubernetes.io/zone".to_string(), zone.clone());
                }
                node.taints = spec.taints.clone();
                nodes.push(node);
            }
        }
        let images = self.image_behaviors();
        for node in &mut nodes {
            node.images = images.clone();
        }
        self.nodes = nodes;
        Ok(())
    }

    fn image_behaviors(&self) -> ImageBehaviors {
        let mut behaviors = ImageBehaviors {
            default: self.file.default_image.as_ref().map(behavior_of).unwrap_or_default(),
            ..ImageBehaviors::default()
        };
        for (image, section) in &self.file.images {
            behaviors.images.insert(image.clone(), behavior_of(section));
        }
        behaviors
    }

    fn load_workload(&mut self, text: &str, directory: Option<&Path>) -> Result<(), ScenarioError> {
        let Some(workload) = self.file.workload.clone() else { return Ok(()) };
        match &workload.value {
            Workload::Inline(manifest) => {
                let loaded = load_inline(&self.file_name, text, &workload.referenced, manifest, &self.custom_kinds)?;
                self.workload.extend(loaded.0);
                self.warnings.extend(loaded.1);
            }
            Workload::Files(files) => {
                let Some(directory) = directory else {
                    return Err(invalid(
                        &self.file_name,
                        &workload,
                        "workload.manifests names files, but this scenario was given as text with no directory; \
                         inline the manifests (workload: |)",
                    ));
                };
                if files.manifests.is_empty() {
                    return Err(invalid(&self.file_name, &workload, "workload.manifests: expected at least one path"));
                }
                for relative in &files.manifests {
                    let path: PathBuf = directory.join(relative);
                    let label = path.display().to_string();
                    let manifest = read_text(&path).map_err(|error| match error {
                        ScenarioError::Io { message, .. } => invalid(
                            &self.file_name,
                            &workload,
                            format!("workload manifest {relative:?} ({label}): {message}"),
                        ),
                        other => other,
                    })?;
                    let loaded =
                        load_manifests_with(&label, &manifest, &self.custom_kinds).map_err(ScenarioError::Manifest)?;
                    self.workload.extend(loaded.objects.into_iter().map(|loaded| loaded.object));
                    self.warnings.extend(loaded.warnings);
                    self.manifest_files.push((relative.clone(), manifest));
                }
            }
        }
        Ok(())
    }

    fn build_traffic(&mut self) -> Result<(), ScenarioError> {
        for source in &self.file.traffic {
            let section = &source.value;
            let node = match &section.from {
                None => 0,
                Some(name) => self.node_index(name).ok_or_else(|| {
                    invalid(&self.file_name, source, format!("traffic.from: {}", self.unknown_node(name)))
                })?,
            };
            if section.interval == Duration::ZERO {
                return Err(invalid(&self.file_name, source, "traffic.interval must be longer than 0s"));
            }
            let service = if section.service.contains('/') {
                section.service.clone()
            } else {
                format!("default/{}", section.service)
            };
            self.traffic.push(TrafficConfig { service, node, interval: section.interval });
        }
        Ok(())
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    fn unknown_node(&self, name: &str) -> String {
        let suggestions = closest(name, self.nodes.iter().map(|node| node.name.as_str()));
        format!(
            "no node is named {name:?}{}; nodes: {}",
            suggest(&suggestions),
            self.nodes.iter().map(|node| node.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    }

    fn build_actions(&mut self, text: &str) -> Result<(), ScenarioError> {
        let entries = self.file.timeline.clone();
        let mut last_at = Duration::ZERO;
        for entry in &entries {
            let action = self.action_of(text, entry)?;
            if entry.value.at < last_at {
                return Err(invalid(
                    &self.file_name,
                    entry,
                    format!(
                        "timeline entries must be in time order: {} comes after {}",
                        kubedst_sim::serde_duration::format(entry.value.at),
                        kubedst_sim::serde_duration::format(last_at)
                    ),
                ));
            }
            last_at = entry.value.at;
            match action {
                Entry::Action(action) => self.actions.push(TimedAction { at: entry.value.at, action }),
                Entry::Expect(expectation) => self.expectations.push(expectation),
            }
        }
        Ok(())
    }

    fn action_of(&mut self, text: &str, entry: &Spanned<TimelineEntry>) -> Result<Entry, ScenarioError> {
        let spec = &entry.value;
        if let Some(expect) = &spec.expect {
            if action_fields(spec).iter().any(|(_, present)| *present) {
                return Err(invalid(
                    &self.file_name,
                    entry,
                    "an `expect` entry holds no action; give the action its own entry",
                ));
            }
            return self.expectation_of(entry, expect).map(Entry::Expect);
        }
        self.plain_action_of(text, entry).map(Entry::Action)
    }

    fn expectation_of(
        &self,
        entry: &Spanned<TimelineEntry>,
        expect: &ExpectSection,
    ) -> Result<Expectation, ScenarioError> {
        let error = |message: String| invalid(&self.file_name, entry, message);
        let mut bounds = Vec::new();
        for (field, value, bound) in [
            ("replicas", expect.replicas, Bound::ReplicasExactly as fn(i32) -> Bound),
            ("replicas_at_least", expect.replicas_at_least, Bound::ReplicasAtLeast),
            ("replicas_at_most", expect.replicas_at_most, Bound::ReplicasAtMost),
            ("available_at_least", expect.available_at_least, Bound::AvailableAtLeast),
        ] {
            let Some(value) = value else { continue };
            if value < 0 {
                return Err(error(format!("expect.{field}: expected 0 or more, found {value}")));
            }
            bounds.push(bound(value));
        }
        if bounds.is_empty() {
            return Err(error(
                "expect: needs at least one of replicas, replicas_at_least, replicas_at_most, available_at_least"
                    .to_string(),
            ));
        }
        let phase = self.fault_phase();
        if entry.value.at > phase {
            return Err(error(format!(
                "expect at {} comes after the fault phase ends ({}); the liveness phase may stop as soon as the \
                 cluster converges, so expectations must fall within the fault phase",
                kubedst_sim::serde_duration::format(entry.value.at),
                kubedst_sim::serde_duration::format(phase)
            )));
        }
        Ok(Expectation {
            at: entry.value.at,
            namespace: namespace(&expect.namespace),
            deployment: expect.deployment.clone(),
            bounds,
        })
    }

    fn plain_action_of(&mut self, text: &str, entry: &Spanned<TimelineEntry>) -> Result<Action, ScenarioError> {
        let spec = &entry.value;
        let mut present = action_fields(spec).to_vec();
        present.push(("expect", false));
        let names: Vec<&str> = present.iter().filter(|(_, is)| *is).map(|(name, _)| *name).collect();
        let all: Vec<&str> = present.iter().map(|(name, _)| *name).collect();
        if names.len() != 1 {
            let found = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            return Err(invalid(
                &self.file_name,
                entry,
                format!("a timeline entry needs `at` and exactly one action ({}); found {found}", all.join(", ")),
            ));
        }
        let error = |message: String| invalid(&self.file_name, entry, message);
        if let Some(manifest) = &spec.apply {
            let (objects, warnings) =
                load_inline(&self.file_name, text, &manifest.referenced, &manifest.value, &self.custom_kinds)?;
            self.warnings.extend(warnings);
            if objects.is_empty() {
                return Err(error("apply: the manifest holds no objects".to_string()));
            }
            return Ok(Action::Apply(objects));
        }
        if let Some(set) = &spec.set_image {
            if set.image.trim().is_empty() {
                return Err(error("set_image.image: expected an image such as web:v2".to_string()));
            }
            return Ok(Action::SetImage {
                namespace: namespace(&set.namespace),
                deployment: set.deployment.clone(),
                container: set.container.clone(),
                image: set.image.clone(),
            });
        }
        if let Some(scale) = &spec.scale {
            let kind_name = scale.kind.as_deref().unwrap_or("Deployment");
            let kind = match kind_name {
                "Deployment" => Kind::Deployment,
                "ReplicaSet" => Kind::ReplicaSet,
                "Job" => Kind::Job,
                other => {
                    return Err(error(format!("scale.kind: expected Deployment, ReplicaSet or Job, found {other:?}")))
                }
            };
            if scale.replicas < 0 {
                return Err(error(format!("scale.replicas: expected 0 or more, found {}", scale.replicas)));
            }
            return Ok(Action::Scale {
                kind,
                namespace: namespace(&scale.namespace),
                name: scale.name.clone(),
                replicas: scale.replicas,
            });
        }
        if let Some(undo) = &spec.rollout_undo {
            return Ok(Action::RolloutUndo {
                namespace: namespace(&undo.namespace),
                deployment: undo.deployment.clone(),
                to_revision: undo.to_revision,
            });
        }
        for (target, paused) in [(&spec.pause, true), (&spec.resume, false)] {
            if let Some(target) = target {
                return Ok(Action::SetPaused {
                    namespace: namespace(&target.namespace),
                    deployment: target.deployment.clone(),
                    paused,
                });
            }
        }
        if let Some(delete) = &spec.delete {
            let kind = Kind::from_kind_name(&delete.kind).ok_or_else(|| {
                error(format!("delete.kind: unknown kind {:?}; supported kinds: {}", delete.kind, kind_names()))
            })?;
            let propagation = match delete.propagation.as_deref() {
                None => None,
                Some("background" | "Background") => Some(Propagation::Background),
                Some("foreground" | "Foreground") => Some(Propagation::Foreground),
                Some("orphan" | "Orphan") => Some(Propagation::Orphan),
                Some(other) => {
                    return Err(error(format!(
                        "delete.propagation: expected background, foreground or orphan, found {other:?}"
                    )))
                }
            };
            let namespace = if kind.is_namespaced() { namespace(&delete.namespace) } else { String::new() };
            return Ok(Action::Delete { key: ObjectKey::new(kind, &namespace, &delete.name), propagation });
        }
        for (node, verb) in [(&spec.cordon, "cordon"), (&spec.uncordon, "uncordon"), (&spec.drain, "drain")] {
            let Some(node) = node else { continue };
            if self.node_index(node).is_none() {
                return Err(error(format!("{verb}: {}", self.unknown_node(node))));
            }
            return Ok(match verb {
                "drain" => Action::Drain { node: node.clone() },
                _ => Action::Cordon { node: node.clone(), unschedulable: verb == "cordon" },
            });
        }
        if let Some(change) = &spec.traffic {
            if change.source >= self.traffic.len() {
                return Err(error(format!(
                    "traffic.source: source {} does not exist; the scenario has {} traffic source(s)",
                    change.source,
                    self.traffic.len()
                )));
            }
            if change.interval == Some(Duration::ZERO) {
                return Err(error("traffic.interval must be longer than 0s".to_string()));
            }
            return Ok(Action::SetTraffic { source: change.source, interval: change.interval });
        }
        unreachable!("exactly one action field is present")
    }

    fn check_faults(&self) -> Result<(), ScenarioError> {
        let Some(faults) = &self.file.faults else { return Ok(()) };
        match &faults.value {
            FaultsSection::Profile(name) => {
                if !profile_names().contains(&name.as_str()) {
                    let suggestions = closest(name, profile_names());
                    return Err(invalid(
                        &self.file_name,
                        faults,
                        format!(
                            "unknown fault profile {name:?}{}; profiles: {}",
                            suggest(&suggestions),
                            profile_names().join(", ")
                        ),
                    ));
                }
            }
            FaultsSection::Schedule(schedule) => {
                // An error names the entry at fault; the section's own position is the fallback.
                let spans = ScheduleSpans::of_scenario(&self.source);
                let at_entry = |entry: FaultEntry, message: String| match spans.location(entry) {
                    Some(location) => {
                        ScenarioError::Invalid { location: location_of(&self.file_name, &location), message }
                    }
                    None => invalid(&self.file_name, faults, message),
                };
                if let Some((entry, message)) = self.plan_machine_error(&plan_of(schedule)) {
                    return Err(at_entry(entry, message));
                }
                let phase = self.fault_phase();
                let engine =
                    schedule.engine.iter().map(|timed| timed.at).enumerate().map(|(i, at)| (FaultEntry::Engine(i), at));
                let model =
                    schedule.model.iter().map(|timed| timed.at).enumerate().map(|(i, at)| (FaultEntry::Model(i), at));
                for (entry, at) in engine.chain(model) {
                    if at >= phase {
                        let what = if matches!(entry, FaultEntry::Engine(_)) { "fault" } else { "model fault" };
                        return Err(at_entry(
                            entry,
                            format!(
                                "{what} at {} strikes after the fault phase ends ({}); faults must strike before",
                                kubedst_sim::serde_duration::format(at),
                                kubedst_sim::serde_duration::format(phase)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Autoscaling (explicit, or on when an HPA is applied) and the cloud profile.
    fn build_addons(&mut self) -> Result<(), ScenarioError> {
        let applies_hpa = self.workload.iter().chain(self.actions.iter().flat_map(|timed| match &timed.action {
            Action::Apply(objects) => objects.as_slice(),
            _ => &[],
        }));
        let applies_hpa = applies_hpa.into_iter().any(|object| object.kind() == Kind::HorizontalPodAutoscaler);
        self.autoscaling = self.file.cluster.autoscaling.as_ref().map_or(applies_hpa, |explicit| explicit.value);
        if let Some(name) = &self.file.cluster.cloud {
            let profile = CloudProfile::by_name(&name.value).map_err(|_| {
                invalid(
                    &self.file_name,
                    name,
                    format!(
                        "cluster.cloud: unknown cloud profile {:?}; profiles: fast-reliable, slow-flaky",
                        name.value
                    ),
                )
            })?;
            self.cloud = Some(profile);
        }
        Ok(())
    }

    fn build_invariants(&mut self) -> Result<(), ScenarioError> {
        let known = invariant_names();
        self.invariants = match &self.file.invariants {
            None => known.clone(),
            Some(names) => {
                let mut chosen = Vec::new();
                for name in names {
                    if !known.contains(&name.value) {
                        let suggestions = closest(&name.value, known.iter().map(String::as_str));
                        return Err(invalid(
                            &self.file_name,
                            name,
                            format!(
                                "unknown invariant {:?}{}; invariants: {}",
                                name.value,
                                suggest(&suggestions),
                                known.join(", ")
                            ),
                        ));
                    }
                    chosen.push(name.value.clone());
                }
                chosen
            }
        };
        // Expectations are the scenario's own statements: checked whenever the timeline has them.
        if !self.expectations.is_empty() {
            self.invariants.push(crate::expect::EXPECTATIONS.to_string());
        }
        Ok(())
    }
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(" or "))
    }
}

fn kind_names() -> String {
    Kind::ALL.iter().map(|kind| kind.as_str()).collect::<Vec<_>>().join(", ")
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Each action field of a timeline entry, by name, and whether the entry sets it.
fn action_fields(spec: &TimelineEntry) -> [(&'static str, bool); 11] {
    [
        ("apply", spec.apply.is_some()),
        ("set_image", spec.set_image.is_some()),
        ("scale", spec.scale.is_some()),
        ("rollout_undo", spec.rollout_undo.is_some()),
        ("pause", spec.pause.is_some()),
        ("resume", spec.resume.is_some()),
        ("delete", spec.delete.is_some()),
        ("cordon", spec.cordon.is_some()),
        ("uncordon", spec.uncordon.is_some()),
        ("drain", spec.drain.is_some()),
        ("traffic", spec.traffic.is_some()),
    ]
}

/// A timeline entry: a user action, or an expectation.
enum Entry {
    Action(Action),
    Expect(Expectation),
}

/// One entry of an explicit fault schedule: the index in its list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultEntry {
    Engine(usize),
    Model(usize),
}

/// Where each entry of an explicit fault schedule starts in its file. [`ScheduleSection`] holds
/// plain values (repro files embed it as JSON too), so the positions come from a second, lenient
/// read of the same text that keeps only spans; it finds nothing when the text holds no schedule.
#[derive(Default)]
struct ScheduleSpans {
    engine: Vec<serde_saphyr::Location>,
    model: Vec<serde_saphyr::Location>,
}

#[derive(serde::Deserialize)]
struct ScheduleSpansFile {
    #[serde(default)]
    engine: Vec<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    model: Vec<Spanned<serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct ScenarioSpansFile {
    faults: Option<ScheduleSpansFile>,
}

impl ScheduleSpans {
    fn of_file(file: ScheduleSpansFile) -> ScheduleSpans {
        ScheduleSpans {
            engine: file.engine.iter().map(|entry| entry.referenced).collect(),
            model: file.model.iter().map(|entry| entry.referenced).collect(),
        }
    }

    /// The spans of a scenario file's `faults:` schedule.
    fn of_scenario(text: &str) -> ScheduleSpans {
        match serde_saphyr::from_str::<ScenarioSpansFile>(text) {
            Ok(ScenarioSpansFile { faults: Some(file) }) => ScheduleSpans::of_file(file),
            _ => ScheduleSpans::default(),
        }
    }

    /// The spans of a fault plan file (`--faults FILE`).
    fn of_plan_file(text: &str) -> ScheduleSpans {
        serde_saphyr::from_str::<ScheduleSpansFile>(text).map(ScheduleSpans::of_file).unwrap_or_default()
    }

    fn location(&self, entry: FaultEntry) -> Option<serde_saphyr::Location> {
        let location = match entry {
            FaultEntry::Engine(index) => self.engine.get(index),
            FaultEntry::Model(index) => self.model.get(index),
        }?;
        (location.line() > 0).then_some(*location)
    }
}

/// The engine and model faults of an explicit schedule.
pub fn plan_of(schedule: &ScheduleSection) -> FaultPlan {
    FaultPlan { engine: FaultSchedule::new(schedule.engine.clone()), model: schedule.model.clone() }
}

/// Parses a fault plan file (`--faults FILE`): the same `{engine: [...], model: [...]}` mapping
/// as a scenario's explicit `faults:`.
pub fn parse_fault_plan(file_name: &str, text: &str) -> Result<FaultPlan, ScenarioError> {
    if text.len() > SCENARIO_SIZE_MAX_BYTES {
        return Err(ScenarioError::Other(format!("{file_name}: file too large")));
    }
    let schedule: ScheduleSection =
        serde_saphyr::from_str(text).map_err(|error| syntax_error(file_name, text, &error))?;
    Ok(plan_of(&schedule))
}

fn behavior_of(section: &ImageSection) -> ImageBehavior {
    let nanos = |span: Duration| u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    let mut behavior = ImageBehavior::default();
    if let Some(span) = section.pull_time {
        behavior.pull_time_ns = nanos(span);
    }
    if let Some(span) = section.start_latency {
        behavior.start_latency_ns = nanos(span);
    }
    if let Some(span) = section.time_to_ready {
        behavior.time_to_ready_ns = nanos(span);
    }
    behavior.crash_after_ns = section.crash_after.map(nanos);
    if let Some(code) = section.exit_code {
        behavior.exit_code = code;
    }
    behavior.hang_after_ns = section.hang_after.map(nanos);
    behavior.pull_fails = section.pull_fails;
    behavior.never_ready = section.never_ready;
    if let Some(span) = section.sigterm_exit_after {
        behavior.sigterm_exit_after_ns = nanos(span);
    }
    if let Some(cost) = section.cpu_millicores_per_request {
        behavior.cpu_millicores_per_request = cost;
    }
    behavior
}

fn read_text(path: &Path) -> Result<String, ScenarioError> {
    let label = path.display().to_string();
    let metadata = std::fs::metadata(path)
        .map_err(|error| ScenarioError::Io { path: label.clone(), message: error.to_string() })?;
    if metadata.is_dir() {
        return Err(ScenarioError::Io { path: label, message: "is a directory, not a scenario file".to_string() });
    }
    if metadata.len() > SCENARIO_SIZE_MAX_BYTES as u64 {
        return Err(ScenarioError::Io {
            path: label,
            message: format!("file of {} bytes exceeds the limit of {SCENARIO_SIZE_MAX_BYTES}", metadata.len()),
        });
    }
    let bytes =
        std::fs::read(path).map_err(|error| ScenarioError::Io { path: label.clone(), message: error.to_string() })?;
    String::from_utf8(bytes)
        .map_err(|error| ScenarioError::Io { path: label, message: format!("not UTF-8 text: {error}") })
}

/// A serde-saphyr error as a positioned scenario error.
fn syntax_error(file_name: &str, text: &str, error: &serde_saphyr::Error) -> ScenarioError {
    let message = serde_saphyr::DefaultMessageFormatter.format_message(error).replace('\n', " ");
    let location = error
        .location()
        .filter(|location| location.line() > 0)
        .map(|location| location_of(file_name, &location))
        .unwrap_or_else(|| SourceLocation {
            file: file_name.to_string(),
            line: text.lines().count().max(1),
            column: 1,
        });
    ScenarioError::Invalid { location, message }
}

/// Loads an inline manifest string of the scenario file so that its errors and warnings name the
/// scenario file's own lines and columns. For a literal block scalar (`workload: |`), line `k` of
/// the string is line `first + k` of the file, indented by the block's indentation; other string
/// styles keep the line of the value.
fn load_inline(
    file_name: &str,
    text: &str,
    at: &serde_saphyr::Location,
    manifest: &str,
    custom_kinds: &[CustomKind],
) -> Result<(Vec<Object>, Vec<ManifestWarning>), ScenarioError> {
    let value_line = usize::try_from(at.line().max(1)).unwrap_or(1);
    let value_column = usize::try_from(at.column().max(1)).unwrap_or(1);
    let lines: Vec<&str> = text.lines().collect();
    let indicator = lines
        .get(value_line - 1)
        .and_then(|line| line.get(value_column.saturating_sub(1)..))
        .map(str::trim_start)
        .and_then(|rest| rest.chars().next());
    let (first_line, indent) = match indicator {
        Some('|') | Some('>') => {
            // The content starts on the next line; its indentation is that of its first non-blank
            // line.
            let indent = lines
                .iter()
                .skip(value_line)
                .find(|line| !line.trim().is_empty())
                .map_or(0, |line| line.len() - line.trim_start().len());
            (value_line + 1, indent)
        }
        _ => (value_line, value_column.saturating_sub(1)),
    };
    let mut padded = "\n".repeat(first_line.saturating_sub(1));
    padded.push_str(manifest);
    let shift = |location: &mut SourceLocation| {
        if location.line >= first_line {
            location.column += indent;
        }
    };
    match load_manifests_with(file_name, &padded, custom_kinds) {
        Ok(loaded) => {
            let mut warnings = loaded.warnings;
            for warning in &mut warnings {
                shift(&mut warning.location);
            }
            Ok((loaded.objects.into_iter().map(|loaded| loaded.object).collect(), warnings))
        }
        Err(mut error) => {
            for diagnostic in &mut error.diagnostics {
                shift(&mut diagnostic.location);
            }
            Err(ScenarioError::Manifest(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("rolling-update", "rolling-update"), 0);
        assert_eq!(edit_distance("roling-update", "rolling-update"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_suggests_near_names_only() {
        let names = builtin_names();
        assert_eq!(closest("rolling-updat", names.iter().copied()).first().map(String::as_str), Some("rolling-update"));
        assert!(closest("zzzzzzzzzzzz", names.iter().copied()).is_empty());
    }
}
