//! Library mode: test your own controller inside the simulation, from Rust.
//!
//! A [`Simulation`] is a scenario (a built-in name, a file, or text) plus what the user brings:
//! custom kinds, controllers (as factories), extra objects created at the start, and eventual
//! promises about their own objects. It is a recipe, not a run: every run builds its own cluster
//! from it (a cluster holds `Rc`s and is never shared), so one `Simulation` serves any number of
//! seeds, proptest cases or fuzzer inputs, and it is `Send + Sync` so that runs may go to other
//! threads (each run stays on one thread).
//!
//! A run is the harness's two-phase run ([`kubedst_core::harness`]), held to the scenario's
//! invariants plus the user's promises, exactly as `kubedst run` holds it: a seed means the same
//! run here and on the command line. A failing run becomes a [`Repro`] file, which
//! [`Simulation::replay`] runs again and compares by trace hash.
//!
//! ```no_run
//! use kubedst_scenarios::library::Simulation;
//! use kubedst_scenarios::generators::FaultClass;
//! # fn my_controllers() -> Vec<Box<dyn kubedst_core::controller::Reconciler>> { Vec::new() }
//! let simulation = Simulation::from_scenario("rolling-update", &[])
//!     .unwrap()
//!     .with_controller("my-operator", my_controllers)
//!     .unwrap();
//! let report = simulation.run_class(7, FaultClass::NodeCrash).unwrap();
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! ```

use crate::generators::{plan_from_bytes, plan_from_seed, ClusterShape, FaultClass};
use crate::repro::{apply_to_spec, Repro};
use crate::scenario::{Scenario, ScenarioError};
use kubedst_core::checkers::Checker;
use kubedst_core::cluster::ReconcilerFactory;
use kubedst_core::controller::Reconciler;
use kubedst_core::harness::{Action, EventualPromise, FaultPlan, RunReport, RunSpec, TimedAction, Verdict};
use kubedst_core::objects::{CustomKind, Object};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Builds a controller's reconcilers; called once per run and again whenever the controller's
/// process restarts inside a run (a crash of its machine, a lost lease).
pub type ControllerFactory = Arc<dyn Fn() -> Vec<Box<dyn Reconciler>> + Send + Sync>;

/// Builds a user's eventual promise for one run.
pub type PromiseFactory = Arc<dyn Fn() -> Box<dyn EventualPromise> + Send + Sync>;

/// Builds a user's always-checker (over the history of writes) for one run.
pub type CheckerFactory = Arc<dyn Fn() -> Box<dyn Checker> + Send + Sync>;

/// A scenario and the user's additions: the recipe of any number of runs.
#[derive(Clone)]
pub struct Simulation {
    scenario_name: String,
    /// The scenario as one self-contained text (manifests inlined), for repros.
    scenario_text: String,
    custom_kinds: Vec<CustomKind>,
    controllers: Vec<(String, ControllerFactory)>,
    promises: Vec<PromiseFactory>,
    checkers: Vec<CheckerFactory>,
    objects: Vec<Object>,
    images: Vec<String>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("scenario", &self.scenario_name)
            .field("custom_kinds", &self.custom_kinds)
            .field("controllers", &self.controllers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("promises", &self.promises.len())
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl Simulation {
    /// A built-in scenario's name or a scenario file's path, whose workload may hold objects of
    /// `custom_kinds`. Each kind is checked as a CRD would be.
    pub fn from_scenario(name_or_path: &str, custom_kinds: &[CustomKind]) -> Result<Simulation, ScenarioError> {
        check_kinds(custom_kinds)?;
        let scenario = Scenario::resolve_with(name_or_path, custom_kinds)?;
        Ok(Simulation::of(&scenario, custom_kinds))
    }

    /// A scenario given as text (`label` names it in messages).
    pub fn from_text(label: &str, text: &str, custom_kinds: &[CustomKind]) -> Result<Simulation, ScenarioError> {
        check_kinds(custom_kinds)?;
        let scenario = Scenario::parse_with(label, text, custom_kinds)?;
        Ok(Simulation::of(&scenario, custom_kinds))
    }

    fn of(scenario: &Scenario, custom_kinds: &[CustomKind]) -> Simulation {
        Simulation {
            scenario_name: scenario.name().to_string(),
            scenario_text: scenario.to_yaml(),
            custom_kinds: custom_kinds.to_vec(),
            controllers: Vec::new(),
            promises: Vec::new(),
            checkers: Vec::new(),
            objects: Vec::new(),
            images: Vec::new(),
        }
    }

    /// Adds a controller process named `name` (a DNS label): `factory` builds its reconcilers.
    /// It runs on every control-plane machine, leader-elected on the lease `kube-system/<name>`
    /// when the scenario has several.
    pub fn with_controller(
        mut self,
        name: &str,
        factory: impl Fn() -> Vec<Box<dyn Reconciler>> + Send + Sync + 'static,
    ) -> Result<Simulation, ScenarioError> {
        if !kubedst_core::objects::validation::is_dns1123_label(name) {
            return Err(ScenarioError::Other(format!("controller name {name:?} must be a DNS label")));
        }
        if self.controllers.iter().any(|(taken, _)| taken == name) {
            return Err(ScenarioError::Other(format!("controller name {name:?} is already taken")));
        }
        self.controllers.push((name.to_string(), Arc::new(factory)));
        Ok(self)
    }

    /// Adds an eventual promise (asked every second of the liveness phase).
    pub fn with_promise(mut self, factory: impl Fn() -> Box<dyn EventualPromise> + Send + Sync + 'static) -> Simulation {
        self.promises.push(Arc::new(factory));
        self
    }

    /// Adds an always-checker over the history of committed writes.
    pub fn with_checker(mut self, factory: impl Fn() -> Box<dyn Checker> + Send + Sync + 'static) -> Simulation {
        self.checkers.push(Arc::new(factory));
        self
    }

    /// Objects created at the start, after the scenario's workload (custom objects included).
    pub fn with_objects(mut self, objects: Vec<Object>) -> Simulation {
        self.objects.extend(objects);
        self
    }

    /// Images the user's controllers run, so that the container-fault class can fail their pulls.
    pub fn with_images(mut self, images: &[&str]) -> Simulation {
        self.images.extend(images.iter().map(|image| image.to_string()));
        self
    }

    /// The scenario, read again (cheap; a `Scenario` is per run).
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with(&self.scenario_name, &self.scenario_text, &self.custom_kinds)
    }

    /// What the fault generators draw over for `seed` (the scenario's machines and images plus
    /// the user's images).
    pub fn shape(&self, seed: u64) -> Result<ClusterShape, ScenarioError> {
        let scenario = self.scenario()?;
        let mut shape = scenario.cluster_shape(seed);
        for image in &self.images {
            if !shape.images.contains(image) {
                shape.images.push(image.clone());
            }
        }
        Ok(shape)
    }

    /// The run of `seed` with `faults` (None: the scenario's own faults for that seed), with the
    /// user's kinds, controllers and objects added.
    pub fn run_spec(&self, seed: u64, faults: Option<FaultPlan>) -> Result<RunSpec, ScenarioError> {
        let scenario = self.scenario()?;
        let mut spec = scenario.to_run_spec(seed, faults)?;
        self.add_to(&mut spec)?;
        Ok(spec)
    }

    fn add_to(&self, spec: &mut RunSpec) -> Result<(), ScenarioError> {
        let mut cluster = spec.cluster.clone();
        for kind in &self.custom_kinds {
            cluster = cluster.with_custom_kind(*kind).map_err(ScenarioError::Other)?;
        }
        for (name, factory) in &self.controllers {
            let factory = factory.clone();
            let local: ReconcilerFactory = Rc::new(move || factory());
            cluster = cluster.with_controller(name, local).map_err(ScenarioError::Other)?;
        }
        spec.cluster = cluster;
        if !self.objects.is_empty() {
            spec.actions.push(TimedAction { at: Duration::ZERO, action: Action::Apply(self.objects.clone()) });
            // Stable: the scenario's own workload at 0 s stays first.
            spec.actions.sort_by_key(|timed| timed.at);
        }
        Ok(())
    }

    /// Runs a spec built by [`Simulation::run_spec`] through both phases, holding the cluster to
    /// the scenario's invariants and the user's promises and checkers.
    pub fn run(&self, spec: RunSpec) -> Result<RunReport, ScenarioError> {
        let scenario = self.scenario()?;
        let checkers = self.checkers.iter().map(|factory| factory()).collect();
        let mut harness = scenario.harness(spec, checkers)?;
        for factory in &self.promises {
            harness.add_promise(factory());
        }
        harness.run_fault_phase();
        harness.heal();
        harness.run_liveness_phase();
        Ok(scenario.filter_report(harness.report()))
    }

    /// Runs `seed` with the scenario's own faults.
    pub fn run_seed(&self, seed: u64) -> Result<RunReport, ScenarioError> {
        self.run(self.run_spec(seed, None)?)
    }

    /// Runs `seed` with `faults` instead of the scenario's (a proptest case's plan).
    pub fn run_with_faults(&self, seed: u64, faults: FaultPlan) -> Result<RunReport, ScenarioError> {
        self.run(self.run_spec(seed, Some(faults))?)
    }

    /// Runs `seed` with the plan that fault class `class` draws from it.
    pub fn run_class(&self, seed: u64, class: FaultClass) -> Result<RunReport, ScenarioError> {
        let plan = plan_from_seed(class, &self.shape(seed)?, seed);
        self.run_with_faults(seed, plan)
    }

    /// The fuzzer's entry: the bytes choose a seed (first 8 bytes, little-endian, zeros when
    /// short), a fault class, and that class's faults. Returns the plan and the report; any byte
    /// string is a valid input (bytes that run out give the simplest values).
    pub fn run_from_bytes(&self, data: &[u8]) -> Result<(FaultPlan, RunReport), ScenarioError> {
        let mut seed_bytes = [0u8; 8];
        let head = data.len().min(8);
        seed_bytes[..head].copy_from_slice(&data[..head]);
        let seed = u64::from_le_bytes(seed_bytes);
        let mut bytes = arbitrary::Unstructured::new(&data[head..]);
        let class_index = bytes.choose_index(FaultClass::ALL.len()).unwrap_or(0);
        let class = FaultClass::ALL[class_index];
        let shape = self.shape(seed)?;
        let plan = plan_from_bytes(class, &shape, &mut bytes).unwrap_or_default();
        let report = self.run_with_faults(seed, plan.clone())?;
        Ok((plan, report))
    }

    /// The repro of a finished run with `faults`: the scenario's text (manifests inlined), the
    /// seed, the plan, what was found and the trace hash a replay must give.
    pub fn repro(&self, faults: FaultPlan, report: &RunReport) -> Repro {
        Repro::of_run(&self.scenario_name, &self.scenario_text, faults, None, report)
    }

    /// Writes [`Simulation::repro`] to `path` atomically.
    pub fn write_repro(&self, path: &Path, faults: FaultPlan, report: &RunReport) -> Result<(), String> {
        crate::repro::write_repro(path, &self.repro(faults, report))
    }

    /// Runs a repro again with this simulation's controllers, promises and objects (the repro
    /// holds the scenario and faults; the user's code is this simulation's). An error if the
    /// trace hash differs: then the run is not the one recorded (the controller's code changed,
    /// or something in it is not deterministic).
    pub fn replay(&self, repro: &Repro) -> Result<RunReport, String> {
        let scenario = Scenario::parse_with(&repro.scenario_name, &repro.scenario, &self.custom_kinds)
            .map_err(|error| format!("the repro's scenario: {error}"))?;
        let mut spec = scenario.to_run_spec(repro.seed, Some(repro.faults.clone())).map_err(|e| e.to_string())?;
        apply_to_spec(&mut spec, &repro.faults, repro.actions_kept.as_deref())?;
        self.add_to(&mut spec).map_err(|error| error.to_string())?;
        let report = self.run(spec).map_err(|error| error.to_string())?;
        if report.trace_hash != repro.expected_trace_hash {
            return Err(format!(
                "the replay gave trace hash {} but the repro recorded {}: not the same run",
                report.trace_hash, repro.expected_trace_hash
            ));
        }
        Ok(report)
    }

    /// Reads a repro file and replays it ([`Simulation::replay`]).
    pub fn replay_file(&self, path: &Path) -> Result<RunReport, String> {
        self.replay(&crate::repro::read_repro(path)?)
    }
}

fn check_kinds(custom_kinds: &[CustomKind]) -> Result<(), ScenarioError> {
    for kind in custom_kinds {
        kind.check().map_err(ScenarioError::Other)?;
    }
    Ok(())
}

/// A run's failures in a few lines, for a proptest or fuzz assertion message.
pub fn describe_failure(report: &RunReport) -> String {
    if report.verdict == Verdict::Pass {
        return format!("seed {} passed", report.seed);
    }
    let mut text = format!("seed {} failed (trace hash {}):", report.seed, report.trace_hash);
    for violation in report.violations.iter().take(8) {
        text.push_str(&format!("\n  {} at {} ns: {}", violation.invariant, violation.at_ns, violation.message));
    }
    text
}
