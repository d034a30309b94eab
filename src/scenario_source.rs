//! Where the sweep commands get a scenario from: a name or path on the command line, or the text
//! embedded in a repro file. Each gives the scenario's name, its text, and a way to build the
//! run of a seed (with an optional fault plan that replaces the one drawn from the seed).
//!
//! Besides the scenario format's built-ins and files, two stand-ins exist for the tests of these
//! commands (they are not listed by `kubedst scenarios`):
//! `standin-rollout-network-chaos`, a rolling update of 4 replicas on 3 nodes under degraded links
//! and isolated machines drawn from the seed; and `standin-node-loss`, which on half the seeds loses
//! every node for good (plus harmless pauses and a compaction on all seeds), so that those seeds
//! fail: the sweep, replay and shrink tests need
//! failures.

use kubedst_core::cluster::{ClusterConfig, TrafficConfig};
use kubedst_core::harness::{self, Action, FaultPlan, ModelFault, RunReport, RunSpec, TimedAction, TimedModelFault};
use kubedst_core::objects::Object;
use kubedst_scenarios::Scenario;
use kubedst_sim::{Fault, FaultSchedule, LatencyModel, LinkConfig, Ratio, SimRng, TimedFault};
use std::time::Duration;

/// A scenario ready to run: its name, its text (for repros) and the spec builder.
pub struct LoadedScenario {
    pub name: String,
    pub text: String,
    /// The manifest files the scenario names, path as written and text, so a repro holds them.
    pub manifest_files: Vec<(String, String)>,
    /// Deliberate bugs switched on in every run (`--mutant`, or a repro's `mutants`).
    pub mutants: kubedst_core::mutants::Mutants,
    kind: Kind,
}

enum Kind {
    Scenario(Box<Scenario>),
    /// An index into [`STANDINS`].
    Standin(usize),
}

/// The stand-ins: name and the text a repro embeds.
const STANDINS: [(&str, &str); 2] = [
    ("standin-rollout-network-chaos", "# kubedst stand-in scenario\nname: standin-rollout-network-chaos\n"),
    ("standin-node-loss", "# kubedst stand-in scenario\nname: standin-node-loss\n"),
];

fn of_scenario(name: &str, scenario: Scenario) -> LoadedScenario {
    LoadedScenario {
        name: name.to_string(),
        text: scenario.source.clone(),
        manifest_files: scenario.manifest_files.clone(),
        mutants: kubedst_core::mutants::Mutants::NONE,
        kind: Kind::Scenario(Box::new(scenario)),
    }
}

/// Loads a built-in by name or a scenario file by path (as `kubedst run` does).
pub fn load(argument: &str) -> Result<LoadedScenario, String> {
    if let Some(index) = STANDINS.iter().position(|(name, _)| *name == argument) {
        return Ok(LoadedScenario {
            name: argument.to_string(),
            text: STANDINS[index].1.to_string(),
            manifest_files: Vec::new(),
            mutants: kubedst_core::mutants::Mutants::NONE,
            kind: Kind::Standin(index),
        });
    }
    let scenario = resolve(argument).map_err(|error| error.to_string())?;
    Ok(of_scenario(argument, scenario))
}

/// A built-in scenario, a scenario written for mutants (`kubedst mutants`), or a file.
pub fn resolve(argument: &str) -> Result<Scenario, kubedst_scenarios::ScenarioError> {
    kubedst_scenarios::mutants::mutant_scenario(argument).unwrap_or_else(|| Scenario::resolve(argument))
}

/// The mutants of `--mutant NAME` flags; an unknown name is an error suggesting the closest.
pub fn parse_mutants(names: &[String]) -> Result<kubedst_core::mutants::Mutants, String> {
    use kubedst_core::mutants::{Mutant, Mutants};
    let mut mutants = Mutants::NONE;
    for name in names {
        let Some(mutant) = Mutant::from_name(name) else {
            let suggestions = kubedst_scenarios::scenario::closest(name, Mutant::names());
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", suggestions.join(" or "))
            };
            return Err(format!("unknown mutant {name:?}{hint}; mutants: {}", Mutant::names().join(", ")));
        };
        mutants = mutants.with(mutant);
    }
    Ok(mutants)
}

/// A scenario from its text and manifest files (as embedded in a repro). Manifest files are put
/// back next to the scenario in a private temporary directory, so relative paths resolve as they
/// did when the repro was written.
pub fn from_text(name: &str, text: &str, manifest_files: &[(String, String)]) -> Result<LoadedScenario, String> {
    if let Some(index) = STANDINS.iter().position(|(_, standin)| *standin == text) {
        return Ok(LoadedScenario {
            name: name.to_string(),
            text: text.to_string(),
            manifest_files: Vec::new(),
            mutants: kubedst_core::mutants::Mutants::NONE,
            kind: Kind::Standin(index),
        });
    }
    if manifest_files.is_empty() {
        let scenario = Scenario::parse(name, text).map_err(|error| format!("the repro's scenario: {error}"))?;
        return Ok(of_scenario(name, scenario));
    }
    let directory = std::env::temp_dir().join(format!("kubedst-repro-{}", std::process::id()));
    let write = |relative: &str, contents: &str| -> Result<(), String> {
        if std::path::Path::new(relative).is_absolute() || relative.split('/').any(|part| part == "..") {
            return Err(format!("the repro's manifest path {relative:?} leaves the scenario's directory"));
        }
        let path = directory.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("{}: {err}", parent.display()))?;
        }
        std::fs::write(&path, contents).map_err(|err| format!("{}: {err}", path.display()))
    };
    for (relative, contents) in manifest_files {
        write(relative, contents)?;
    }
    write("scenario.yaml", text)?;
    let loaded =
        Scenario::load(directory.join("scenario.yaml")).map_err(|error| format!("the repro's scenario: {error}"));
    let _ = std::fs::remove_dir_all(&directory);
    let mut loaded = of_scenario(name, loaded?);
    loaded.text = text.to_string();
    Ok(loaded)
}

impl LoadedScenario {
    /// The run of `seed`; `faults` replaces the plan drawn from the seed.
    pub fn spec(&self, seed: u64, faults: Option<&FaultPlan>) -> Result<RunSpec, String> {
        let mut spec = match &self.kind {
            Kind::Scenario(scenario) => {
                scenario.to_run_spec(seed, faults.cloned()).map_err(|error| error.to_string())?
            }
            Kind::Standin(index) => {
                let mut spec = if *index == 1 { node_loss_spec(seed)? } else { standin_spec(seed)? };
                if let Some(faults) = faults {
                    spec.faults = faults.clone();
                }
                spec
            }
        };
        kubedst_scenarios::mutants::with_mutants(&mut spec, self.mutants);
        Ok(spec)
    }

    /// Runs a spec of this scenario, held to the scenario's invariants.
    pub fn run(&self, spec: RunSpec) -> Result<RunReport, String> {
        match &self.kind {
            Kind::Scenario(scenario) => scenario.run_spec(spec, Vec::new()).map_err(|error| error.to_string()),
            Kind::Standin(_) => harness::run(spec),
        }
    }
}

fn standin_objects() -> Result<Vec<Object>, String> {
    Ok(kubedst_core::fixtures::web_objects(4))
}

fn node_loss_spec(seed: u64) -> Result<RunSpec, String> {
    let mut cluster = ClusterConfig::standard(seed, 3);
    // A workload built for zero downtime: a readiness probe, and an app that drains for 5 s after
    // SIGTERM, so the proxies stop routing to a terminating pod before it exits.
    for node in &mut cluster.nodes {
        node.images.default.sigterm_exit_after_ns = 5_000_000_000;
    }
    cluster.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(200) }];
    let mut rng = SimRng::for_stream(seed, "standin-faults");
    let mut faults = Vec::new();
    for _ in 0..rng.range_inclusive(1, 3) {
        let machine = format!("node-{}", rng.below(3));
        let at = Duration::from_millis(rng.range_inclusive(2_000, 25_000));
        faults.push(TimedFault { at, fault: Fault::Pause { machine, duration: Duration::from_millis(800) } });
    }
    // Half the seeds lose every node for good: nothing can run the pods again.
    if rng.below(2) == 0 {
        for index in 0..3 {
            let at = Duration::from_millis(rng.range_inclusive(15_000, 20_000));
            faults.push(TimedFault { at, fault: Fault::Lose { machine: format!("node-{index}") } });
        }
    }
    let model = vec![TimedModelFault { at: Duration::from_secs(12), fault: ModelFault::CompactNow }];
    Ok(RunSpec {
        cluster,
        actions: vec![
            TimedAction { at: Duration::from_secs(1), action: Action::Apply(standin_objects()?) },
            TimedAction {
                at: Duration::from_secs(5),
                action: Action::Cordon { node: "node-2".into(), unschedulable: false },
            },
            // A rollout after the loss: its new pods have nowhere to run. (The old pods' Ready
            // status stays as the lost kubelets last wrote it, so without a rollout the run
            // would look converged.)
            TimedAction {
                at: Duration::from_secs(30),
                action: Action::SetImage {
                    namespace: "default".into(),
                    deployment: "web".into(),
                    container: "web".into(),
                    image: "web:v2".into(),
                },
            },
        ],
        faults: FaultPlan { engine: FaultSchedule::new(faults), model },
        // Long enough for the node lifecycle controller to mark the lost nodes' pods NotReady
        // (its 40 s grace period).
        fault_phase: Duration::from_secs(60),
        liveness_bound: Duration::from_secs(30),
    })
}

fn standin_spec(seed: u64) -> Result<RunSpec, String> {
    let mut cluster = ClusterConfig::standard(seed, 3);
    // A workload built for zero downtime: a readiness probe, and an app that drains for 5 s after
    // SIGTERM, so the proxies stop routing to a terminating pod before it exits.
    for node in &mut cluster.nodes {
        node.images.default.sigterm_exit_after_ns = 5_000_000_000;
    }
    cluster.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(200) }];
    let objects = standin_objects()?;
    let machines = ["control-plane-0", "etcd-0", "node-0", "node-1", "node-2"];
    let mut rng = SimRng::for_stream(seed, "standin-faults");
    let mut faults = Vec::new();
    for _ in 0..rng.range_inclusive(2, 6) {
        let at = Duration::from_millis(rng.range_inclusive(5_000, 50_000));
        let duration = Duration::from_millis(rng.range_inclusive(500, 8_000));
        let from = rng.pick(&machines).copied().unwrap_or("node-0").to_string();
        let to = rng.pick(&machines).copied().unwrap_or("node-1").to_string();
        let fault = if rng.below(3) == 0 || from == to {
            Fault::Isolate { machine: from, duration }
        } else {
            let link = LinkConfig {
                latency: LatencyModel::fixed(Duration::from_millis(20)),
                loss: Ratio::new(1, 5),
                ..LinkConfig::default()
            };
            Fault::DegradeLink { from, to, link, duration }
        };
        faults.push(TimedFault { at, fault });
    }
    Ok(RunSpec {
        cluster,
        actions: vec![
            TimedAction { at: Duration::from_secs(1), action: Action::Apply(objects) },
            TimedAction {
                at: Duration::from_secs(30),
                action: Action::SetImage {
                    namespace: "default".into(),
                    deployment: "web".into(),
                    container: "web".into(),
                    image: "web:v2".into(),
                },
            },
        ],
        faults: FaultPlan { engine: FaultSchedule::new(faults), model: Vec::new() },
        fault_phase: Duration::from_secs(60),
        liveness_bound: Duration::from_secs(120),
    })
}
