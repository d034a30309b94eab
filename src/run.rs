//! `kubedst run SCENARIO`: one seed, both phases, the verdict in text or JSON.

use crate::trace::TraceSink;
use crate::{EXIT_BAD_INPUT, EXIT_HELD, EXIT_VIOLATED};
use clap::{Args, ValueEnum};
use kubedst_core::harness::{Action, FaultPlan, RunReport, TimedAction, Verdict};
use kubedst_core::objects::Object;
use kubedst_scenarios::{profile_names, Scenario, ScenarioError};
use kubedst_sim::serde_duration::format as span;
use std::path::{Path, PathBuf};
// The binary measures wall-clock time around a run (`wall_ms`); nothing inside the run reads it.
use std::time::Duration;
#[allow(clippy::disallowed_types)]
use std::time::Instant;

use kubedst_scenarios::repro::{write_repro, Repro};

/// How the result is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people: the drawn parameters, a short timeline, the verdict and a replay command.
    Text,
    /// One JSON object on one line.
    Json,
}

/// `kubedst run` flags.
#[derive(Args, Debug)]
#[command(after_help = "Exit codes: 0 every invariant held, 1 an invariant was violated, 2 bad usage or input.\n\
Examples:\n  kubedst run rolling-update\n  kubedst run node-crash-eviction --seed 7 --format json\n  \
kubedst run ./my-scenario.yaml --faults faults.yaml --trace run.jsonl")]
pub struct RunArgs {
    /// A built-in scenario name (see `kubedst scenarios`) or a path to a scenario YAML file.
    pub scenario: String,
    /// The seed: every random choice of the run (latencies, drawn faults) follows from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replaces the scenario's faults: a fault profile name (`none`, or a fault class such as
    /// `network_chaos`, drawn from the seed) or a fault plan file (`{engine: [...], model: [...]}`).
    #[arg(long, value_name = "PROFILE|FILE")]
    pub faults: Option<String>,
    /// Writes the run as JSON Lines: every committed store write, fault and scenario action.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Where a failing run writes its repro file (for `kubedst replay` and `kubedst shrink`).
    #[arg(long, value_name = "DIR", default_value = "kubedst-repros")]
    pub repro_dir: PathBuf,
    /// Switch on a deliberate bug by name (see `kubedst mutants`); repeatable. The repro file
    /// records it, so `replay` and `shrink` run with it too.
    #[arg(long = "mutant", value_name = "NAME")]
    pub mutants: Vec<String>,
}

/// Runs the command; returns the exit code.
pub fn run(args: &RunArgs) -> u8 {
    match run_checked(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_BAD_INPUT
        }
    }
}

fn run_checked(args: &RunArgs) -> Result<u8, String> {
    let scenario = crate::scenario_source::resolve(&args.scenario).map_err(|error| error.to_string())?;
    let mutants = crate::scenario_source::parse_mutants(&args.mutants)?;
    for warning in &scenario.warnings {
        eprintln!("{warning}");
    }
    let faults_override = match &args.faults {
        None => None,
        Some(choice) => Some(faults_of(&scenario, choice, args.seed).map_err(|error| error.to_string())?),
    };
    let mut spec = scenario.to_run_spec(args.seed, faults_override).map_err(|error| error.to_string())?;
    kubedst_scenarios::mutants::with_mutants(&mut spec, mutants);
    if args.format == OutputFormat::Text {
        print_plan(&scenario, args, &spec.actions, &spec.faults);
    }
    let sink = match &args.trace {
        Some(path) => Some(TraceSink::create(path, &spec.actions, &spec.faults)?),
        None => None,
    };
    let extra = sink.iter().map(TraceSink::checker).collect();
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    let started = Instant::now();
    let faults = spec.faults.clone();
    let report = scenario.run_spec(spec, extra).map_err(|error| error.to_string())?;
    let wall_ms = started.elapsed().as_millis();
    if let Some(sink) = sink {
        sink.finish().map_err(|error| format!("--trace: {error}"))?;
    }
    match args.format {
        OutputFormat::Json => println!("{}", json_report(&scenario, &report, wall_ms)),
        OutputFormat::Text => print_report(&scenario, args, &report, wall_ms),
    }
    if report.verdict == Verdict::Fail {
        // A failure is a bug report: it is written whole (temporary file and rename) or not at all.
        let mut repro = Repro::of_run(&args.scenario, &scenario.source, faults, None, &report);
        repro.manifest_files = scenario.manifest_files.clone();
        repro.mutants = mutants.names();
        let path = crate::commands::repro_path(&args.repro_dir, &args.scenario, args.seed);
        std::fs::create_dir_all(&args.repro_dir)
            .map_err(|error| format!("--repro-dir {}: {error}", args.repro_dir.display()))?;
        write_repro(&path, &repro)?;
        eprintln!("repro: {} (kubedst replay / kubedst shrink)", path.display());
    }
    Ok(if report.verdict == Verdict::Pass { EXIT_HELD } else { EXIT_VIOLATED })
}

/// `--faults`: a profile name, else a plan file.
fn faults_of(scenario: &Scenario, choice: &str, seed: u64) -> Result<FaultPlan, ScenarioError> {
    if profile_names().contains(&choice) {
        return scenario.profile_plan(choice, seed);
    }
    let path = Path::new(choice);
    if !path.exists() {
        let suggestions = kubedst_scenarios::scenario::closest(choice, profile_names());
        let hint = if suggestions.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", suggestions.join(" or "))
        };
        return Err(ScenarioError::Other(format!(
            "--faults {choice:?} is neither a fault profile{hint} nor a file; profiles: {}",
            profile_names().join(", ")
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| ScenarioError::Io { path: choice.to_string(), message: error.to_string() })?;
    scenario.parse_fault_plan(choice, &text)
}

/// A one-line description of an action, as kubectl would be typed.
pub fn describe_action(action: &Action) -> String {
    match action {
        Action::Apply(objects) => {
            let names: Vec<String> = objects.iter().map(describe_object).collect();
            format!("kubectl apply ({})", names.join(", "))
        }
        Action::SetImage { namespace, deployment, container, image } => {
            format!("kubectl -n {namespace} set image deployment/{deployment} {container}={image}")
        }
        Action::Scale { kind, namespace, name, replicas } => {
            format!("kubectl -n {namespace} scale {}/{name} --replicas={replicas}", kind.as_str().to_lowercase())
        }
        Action::RolloutUndo { namespace, deployment, to_revision } => match to_revision {
            Some(revision) => {
                format!("kubectl -n {namespace} rollout undo deployment/{deployment} --to-revision={revision}")
            }
            None => format!("kubectl -n {namespace} rollout undo deployment/{deployment}"),
        },
        Action::SetPaused { namespace, deployment, paused } => {
            let verb = if *paused { "pause" } else { "resume" };
            format!("kubectl -n {namespace} rollout {verb} deployment/{deployment}")
        }
        Action::Delete { key, propagation } => match propagation {
            Some(propagation) => format!("kubectl delete {key} --cascade={propagation:?}").to_lowercase(),
            None => format!("kubectl delete {key}"),
        },
        Action::Cordon { node, unschedulable } => {
            format!("kubectl {} {node}", if *unschedulable { "cordon" } else { "uncordon" })
        }
        Action::Drain { node } => format!("kubectl drain {node}"),
        Action::SetTraffic { source, interval } => match interval {
            Some(interval) => format!("traffic source {source}: one request per {}", span(*interval)),
            None => format!("traffic source {source}: stop"),
        },
    }
}

fn describe_object(object: &Object) -> String {
    let key = kubedst_core::api::ObjectKey::of(object);
    if key.namespace.is_empty() {
        format!("{}/{}", key.kind, key.name)
    } else {
        format!("{}/{}/{}", key.kind, key.namespace, key.name)
    }
}

fn seconds(at_ns: u64) -> String {
    format!("{}.{}s", at_ns / 1_000_000_000, at_ns % 1_000_000_000 / 100_000_000)
}

fn print_plan(scenario: &Scenario, args: &RunArgs, actions: &[TimedAction], faults: &FaultPlan) {
    println!("scenario {} ({})", scenario.name(), scenario.file_name);
    if !scenario.description().is_empty() {
        println!("  {}", scenario.description());
    }
    println!("seed {}", args.seed);
    if !args.mutants.is_empty() {
        println!("mutants (deliberate bugs): {}", args.mutants.join(", "));
    }
    let source = match (&args.faults, scenario.fault_profile()) {
        (Some(choice), _) => format!("--faults {choice}"),
        (None, Some(profile)) => format!("profile {profile}, drawn from the seed"),
        (None, None) if faults.is_empty() => "none".to_string(),
        (None, None) => "the scenario's schedule".to_string(),
    };
    println!("faults: {} ({source})", plural(faults.len(), "fault"));
    println!("invariants: {}", scenario.invariants().join(", "));
    println!(
        "fault phase {}, then heal; liveness bound {}",
        span(scenario.fault_phase()),
        span(scenario.liveness_bound())
    );
    println!("timeline:");
    let mut lines: Vec<(Duration, String)> =
        actions.iter().map(|timed| (timed.at, describe_action(&timed.action))).collect();
    lines.extend(faults.engine.faults.iter().map(|timed| (timed.at, format!("fault: {}", timed.fault))));
    lines.extend(faults.model.iter().map(|timed| (timed.at, format!("fault: {:?}", timed.fault).to_lowercase())));
    lines.extend(scenario.expectations().iter().map(|expectation| (expectation.at, expectation.describe())));
    lines.push((scenario.fault_phase(), "heal: the fault phase ends".to_string()));
    lines.sort_by_key(|(at, _)| *at);
    for (at, line) in lines {
        println!("  {:>8}  {line}", span(at));
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn print_report(scenario: &Scenario, args: &RunArgs, report: &RunReport, wall_ms: u128) {
    println!(
        "ran to {} virtual in {wall_ms} ms: {} events, trace hash {}",
        seconds(report.virtual_time_ns),
        report.events,
        report.trace_hash
    );
    if !report.faults_fired.is_empty() {
        let fired: Vec<String> = report.faults_fired.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
        println!("faults fired: {}", fired.join(", "));
    }
    if report.verdict == Verdict::Pass {
        println!("verdict: PASS (every invariant held: {})", scenario.invariants().join(", "));
        return;
    }
    println!("violations:");
    for violation in &report.violations {
        println!("  {:>8}  {}: {}", seconds(violation.at_ns), violation.invariant, violation.message);
    }
    println!("verdict: FAIL ({})", plural(report.violations.len(), "violation"));
    println!("replay: {}", replay_command(args));
}

/// The command that runs the same seed again.
pub fn replay_command(args: &RunArgs) -> String {
    let mut command = format!("kubedst run {} --seed {}", shell_word(&args.scenario), args.seed);
    if let Some(faults) = &args.faults {
        command.push_str(&format!(" --faults {}", shell_word(faults)));
    }
    for mutant in &args.mutants {
        command.push_str(&format!(" --mutant {}", shell_word(mutant)));
    }
    command
}

fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The `--format json` object.
pub fn json_report(scenario: &Scenario, report: &RunReport, wall_ms: u128) -> serde_json::Value {
    serde_json::json!({
        "scenario": scenario.name(),
        "seed": report.seed,
        "verdict": report.verdict,
        "trace_hash": report.trace_hash,
        "virtual_time_ns": report.virtual_time_ns,
        "events": report.events,
        "wall_ms": wall_ms,
        "violations": report.violations,
        "faults_fired": report.faults_fired,
        "pending": report.pending,
        "observed_writes": report.observed_writes,
    })
}
