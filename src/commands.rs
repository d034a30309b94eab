//! The commands over many runs: `sweep`, `sweep-merge`, `replay`, `shrink`, `check-determinism`
//! and `bench`. Their logic lives in `kubedst_scenarios::{sweep, shrink, repro, determinism}`;
//! this module parses arguments, prints, and turns results into exit codes:
//! 0 all held, 1 an invariant was violated, 2 bad usage or input, 3 nondeterminism.

use crate::scenario_source::{self, LoadedScenario};
use clap::Args;
use kubedst_core::harness::{RunReport, Verdict};
use kubedst_scenarios::determinism::check_determinism;
use kubedst_scenarios::repro::{apply_to_spec, read_repro, write_atomically, write_repro, Repro};
use kubedst_scenarios::shrink::{shrink, Candidate};
use kubedst_scenarios::sweep::{self, merge, run_parallel, shard_seeds, SeedRange, SeedResult, Shard, SweepSummary};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
// Wall-clock time is read only for the `wall_ms` figures of commands, never inside a run.
#[allow(clippy::disallowed_types)]
use std::time::Instant;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_VIOLATION: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NONDETERMINISM: i32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs a range of seeds of one scenario in parallel and groups the failures.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// A built-in scenario's name or a scenario file.
    pub scenario: String,
    /// Seeds to run: `A..B` (B excluded) or `A..=B`.
    #[arg(long, value_parser = SeedRange::parse)]
    pub seeds: SeedRange,
    /// Worker threads (default: every core). Each run stays single-threaded.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run only shard I of N: the seeds s with s mod N == I. Merge shard outputs with `sweep-merge`.
    #[arg(long, value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Also write JUnit XML here (one testcase per seed).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Where repro files of failures go (one per failure group, for its first seed).
    #[arg(long, default_value = "kubedst-repros")]
    pub repro_dir: PathBuf,
    /// Output format: a text summary, or one JSON object that `sweep-merge` reads.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the summary to this file (atomically) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Switch on a deliberate bug (see `kubedst mutants`); repeatable.
    #[arg(long = "mutant", value_name = "NAME")]
    pub mutants: Vec<String>,
}

/// Merges the `--format json` outputs of sweep shards into one summary.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard summaries (JSON files written by `kubedst sweep --format json`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write JUnit XML of the merged sweep here (one testcase per seed).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Output format: a text summary or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the merged summary to this file (atomically) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs a repro file again and checks that it gives the recorded trace hash.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A repro file written by `kubedst run`, `sweep` or `shrink`.
    pub repro: PathBuf,
    /// Output format: text, or one JSON object like `kubedst run --format json`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Cuts a repro's faults and actions down to a minimal set that fails the same way.
#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// The repro file of a failing run.
    pub repro: PathBuf,
    /// Where the shrunk repro goes (default: REPRO with `.shrunk` before `.json`).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// At most this many runs.
    #[arg(long, default_value_t = 500)]
    pub max_runs: usize,
}

/// Runs each seed twice and compares the trace hashes.
#[derive(Args, Debug)]
pub struct DeterminismArgs {
    /// A built-in scenario's name or a scenario file.
    pub scenario: String,
    /// Seeds to check: `A..B` (B excluded) or `A..=B`.
    #[arg(long, value_parser = SeedRange::parse)]
    pub seeds: SeedRange,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Test-only: perturb every second run so the check has something to catch.
    #[arg(long, hide = true)]
    pub inject_nondeterminism: bool,
}

/// Measures sweep throughput in seeds per second.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A built-in scenario's name or a scenario file.
    pub scenario: String,
    /// Seeds of each sweep: `A..B` (B excluded) or `A..=B`.
    #[arg(long, value_parser = SeedRange::parse, default_value = "0..200")]
    pub seeds: SeedRange,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// How many times to sweep the range.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

pub fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.filter(|jobs| *jobs > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

pub fn usage_error(message: &str) -> i32 {
    eprintln!("error: {message}");
    EXIT_USAGE
}

/// One seed of a scenario, start to end.
fn run_seed(scenario: &LoadedScenario, seed: u64) -> Result<RunReport, String> {
    scenario.run(scenario.spec(seed, None)?)
}

/// The repro file of a scenario's seed in `directory`.
pub fn repro_path(directory: &Path, scenario: &str, seed: u64) -> PathBuf {
    let stem: String = Path::new(scenario)
        .file_stem()
        .map_or(scenario.to_string(), |stem| stem.to_string_lossy().to_string())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    directory.join(format!("{stem}-seed-{seed}.repro.json"))
}

/// Runs the seed again and writes its repro (with the fault plan drawn from the seed).
pub fn write_seed_repro(scenario: &LoadedScenario, seed: u64, path: &Path) -> Result<(), String> {
    let spec = scenario.spec(seed, None)?;
    let faults = spec.faults.clone();
    let report = scenario.run(spec)?;
    let mut repro = Repro::of_run(&scenario.name, &scenario.text, faults, None, &report);
    repro.manifest_files = scenario.manifest_files.clone();
    repro.mutants = scenario.mutants.names();
    write_repro(path, &repro)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Progress {
    enabled: bool,
    failed: AtomicU64,
    lock: Mutex<()>,
}

impl Progress {
    fn new() -> Progress {
        Progress { enabled: std::io::stderr().is_terminal(), failed: AtomicU64::new(0), lock: Mutex::new(()) }
    }

    fn draw(&self, done: usize, total: usize) {
        if !self.enabled {
            return;
        }
        let _guard = self.lock.lock();
        let width = 40;
        let filled = done * width / total.max(1);
        let mut stderr = std::io::stderr();
        let _ = write!(
            stderr,
            "\r[{}{}] {done}/{total} seeds, {} failed",
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.failed.load(Ordering::Relaxed)
        );
        if done == total {
            let _ = writeln!(stderr);
        }
        let _ = stderr.flush();
    }
}

pub fn sweep_command(args: &SweepArgs) -> i32 {
    let mut scenario = match scenario_source::load(&args.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return usage_error(&error),
    };
    scenario.mutants = match scenario_source::parse_mutants(&args.mutants) {
        Ok(mutants) => mutants,
        Err(error) => return usage_error(&error),
    };
    let seeds = shard_seeds(args.seeds, args.shard);
    let jobs = default_jobs(args.jobs);
    let progress = Progress::new();
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    let started = Instant::now();
    let results: Vec<SeedResult> = run_parallel(
        &seeds,
        jobs,
        |seed| {
            let result = SeedResult::of(seed, &run_seed(&scenario, seed));
            if result.outcome != sweep::Outcome::Pass {
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        },
        |done, total| progress.draw(done, total),
    );
    let wall_ms = started.elapsed().as_millis() as u64;
    // One repro per failure group (its first seed); the first seeds are known once all have run.
    let mut summary = SweepSummary::new(&args.scenario, args.seeds, args.shard, results, wall_ms, &|_| None);
    let mut write_errors = Vec::new();
    if !summary.groups.is_empty() {
        if let Err(err) = std::fs::create_dir_all(&args.repro_dir) {
            write_errors.push(format!("cannot create {}: {err}", args.repro_dir.display()));
        }
    }
    for group in &mut summary.groups {
        if summary.results.iter().any(|result| result.seed == group.seeds[0] && result.outcome == sweep::Outcome::Error)
        {
            continue;
        }
        let path = repro_path(&args.repro_dir, &args.scenario, group.seeds[0]);
        match write_seed_repro(&scenario, group.seeds[0], &path) {
            Ok(()) => group.repro = Some(path.display().to_string()),
            Err(error) => write_errors.push(error),
        }
    }
    finish_summary(&summary, args.format, args.output.as_deref(), args.junit.as_deref(), &write_errors)
}

fn finish_summary(
    summary: &SweepSummary,
    format: Format,
    output: Option<&Path>,
    junit: Option<&Path>,
    write_errors: &[String],
) -> i32 {
    let text = match format {
        Format::Text => summary.render_text(),
        Format::Json => match serde_json::to_string_pretty(summary) {
            Ok(json) => json + "\n",
            Err(err) => return usage_error(&format!("cannot encode the summary: {err}")),
        },
    };
    match output {
        None => print!("{text}"),
        Some(path) => {
            if let Err(error) = write_atomically(path, text.as_bytes()) {
                return usage_error(&error);
            }
        }
    }
    for error in write_errors {
        eprintln!("error: {error}");
    }
    if let Some(path) = junit {
        if let Err(error) = summary.write_junit(path) {
            return usage_error(&error);
        }
    }
    if !write_errors.is_empty() && summary.exit_code() == EXIT_PASS {
        return EXIT_USAGE;
    }
    summary.exit_code()
}

pub fn merge_command(args: &MergeArgs) -> i32 {
    let mut summaries = Vec::new();
    for file in &args.files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(err) => return usage_error(&format!("cannot read {}: {err}", file.display())),
        };
        match serde_json::from_str::<SweepSummary>(&text) {
            Ok(summary) => summaries.push(summary),
            Err(err) => {
                return usage_error(&format!(
                    "{}:{}:{}: not a sweep summary (`kubedst sweep --format json` output): {err}",
                    file.display(),
                    err.line(),
                    err.column()
                ))
            }
        }
    }
    match merge(&summaries) {
        Ok(summary) => finish_summary(&summary, args.format, args.output.as_deref(), args.junit.as_deref(), &[]),
        Err(error) => usage_error(&error),
    }
}

/// A repro's scenario and its run spec, with the repro's faults and actions.
fn repro_run(repro: &Repro) -> Result<RunReport, String> {
    let scenario = repro_scenario(repro)?;
    let mut spec = scenario.spec(repro.seed, Some(&repro.faults))?;
    apply_to_spec(&mut spec, &repro.faults, repro.actions_kept.as_deref())?;
    scenario.run(spec)
}

/// A repro's scenario with the repro's mutants switched on.
fn repro_scenario(repro: &Repro) -> Result<LoadedScenario, String> {
    let mut scenario = scenario_source::from_text(&repro.scenario_name, &repro.scenario, &repro.manifest_files)?;
    scenario.mutants =
        scenario_source::parse_mutants(&repro.mutants).map_err(|error| format!("the repro's {error}"))?;
    Ok(scenario)
}

fn print_report(report: &RunReport) {
    for violation in &report.violations {
        println!("  {} at {} ns: {}", violation.invariant, violation.at_ns, violation.message);
    }
    println!("trace hash {}, {} events, virtual time {} ns", report.trace_hash, report.events, report.virtual_time_ns);
}

pub fn replay_command(args: &ReplayArgs) -> i32 {
    let repro = match read_repro(&args.repro) {
        Ok(repro) => repro,
        Err(error) => return usage_error(&error),
    };
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    let started = Instant::now();
    let report = match repro_run(&repro) {
        Ok(report) => report,
        Err(error) => return usage_error(&format!("{}: {error}", args.repro.display())),
    };
    let wall_ms = started.elapsed().as_millis() as u64;
    let identical = report.trace_hash == repro.expected_trace_hash;
    match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "scenario": repro.scenario_name,
                "seed": report.seed,
                "verdict": report.verdict,
                "trace_hash": report.trace_hash,
                "expected_trace_hash": repro.expected_trace_hash,
                "identical": identical,
                "virtual_time_ns": report.virtual_time_ns,
                "events": report.events,
                "wall_ms": wall_ms,
                "violations": report.violations,
                "faults_fired": report.faults_fired,
                "pending": report.pending,
            });
            println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
        }
        Format::Text => {
            println!("replay {} seed {} ({} faults)", repro.scenario_name, repro.seed, repro.faults.len());
            print_report(&report);
            println!("verdict: {}", if report.verdict == Verdict::Pass { "pass" } else { "fail" });
        }
    }
    if !identical {
        eprintln!(
            "error: the trace hash differs: expected {}, got {} (the run is not the one recorded: \
             another kubedst version, or nondeterminism)",
            repro.expected_trace_hash, report.trace_hash
        );
        return EXIT_NONDETERMINISM;
    }
    if report.verdict == Verdict::Pass {
        EXIT_PASS
    } else {
        EXIT_VIOLATION
    }
}

pub fn shrink_command(args: &ShrinkArgs) -> i32 {
    let repro = match read_repro(&args.repro) {
        Ok(repro) => repro,
        Err(error) => return usage_error(&error),
    };
    let Some(target) = sweep::primary_signature(&repro.violations) else {
        return usage_error(&format!(
            "{}: the repro records no violation, so there is nothing to shrink",
            args.repro.display()
        ));
    };
    let scenario = match repro_scenario(&repro) {
        Ok(scenario) => scenario,
        Err(error) => return usage_error(&error),
    };
    let total_actions = match scenario.spec(repro.seed, None) {
        Ok(spec) => spec.actions.len(),
        Err(error) => return usage_error(&error),
    };
    let start = Candidate {
        faults: repro.faults.clone(),
        actions_kept: repro.actions_kept.clone().unwrap_or_else(|| (0..total_actions).collect()),
    };
    let before = start.clone();
    let mut run_candidate = |candidate: &Candidate| -> Result<RunReport, String> {
        let mut spec = scenario.spec(repro.seed, None)?;
        apply_to_spec(&mut spec, &candidate.faults, Some(&candidate.actions_kept))?;
        scenario.run(spec)
    };
    let shrunk = match shrink(start, &target, args.max_runs, &mut run_candidate) {
        Ok(shrunk) => shrunk,
        Err(error) => return usage_error(&format!("{}: {error}", args.repro.display())),
    };
    let after = &shrunk.candidate;
    let actions_kept = (after.actions_kept.len() != total_actions).then(|| after.actions_kept.clone());
    let output = args.output.clone().unwrap_or_else(|| {
        let text = args.repro.display().to_string();
        PathBuf::from(match text.strip_suffix(".json") {
            Some(stem) => format!("{stem}.shrunk.json"),
            None => format!("{text}.shrunk"),
        })
    });
    let mut shrunk_repro =
        Repro::of_run(&repro.scenario_name, &repro.scenario, after.faults.clone(), actions_kept, &shrunk.report);
    shrunk_repro.manifest_files = repro.manifest_files.clone();
    shrunk_repro.mutants = repro.mutants.clone();
    if let Err(error) = write_repro(&output, &shrunk_repro) {
        return usage_error(&error);
    }
    println!("shrink {} seed {}: failing with `{target}`", repro.scenario_name, repro.seed);
    println!(
        "before: {} engine faults, {} model faults, {} actions, {} ms of lasting faults",
        before.faults.engine.len(),
        before.faults.model.len(),
        before.actions_kept.len(),
        before.fault_time().as_millis()
    );
    println!(
        "after:  {} engine faults, {} model faults, {} actions, {} ms of lasting faults",
        after.faults.engine.len(),
        after.faults.model.len(),
        after.actions_kept.len(),
        after.fault_time().as_millis()
    );
    for timed in &after.faults.engine.faults {
        println!("  at {} ms: {}", timed.at.as_millis(), timed.fault);
    }
    println!(
        "{} runs{}; wrote {}",
        shrunk.runs,
        if shrunk.budget_exhausted { " (budget reached: the result may shrink further)" } else { "" },
        output.display()
    );
    println!("replay: kubedst replay {}", output.display());
    EXIT_VIOLATION
}

/// How many runs the injected nondeterminism has perturbed (test-only).
static INJECTED_RUNS: AtomicU64 = AtomicU64::new(0);

pub fn determinism_command(args: &DeterminismArgs) -> i32 {
    let scenario = match scenario_source::load(&args.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return usage_error(&error),
    };
    let seeds = shard_seeds(args.seeds, None);
    let report = check_determinism(&seeds, default_jobs(args.jobs), |seed| {
        let mut spec = scenario.spec(seed, None)?;
        if args.inject_nondeterminism {
            // Something outside the seed changes the run: a process-wide counter shifts the first
            // action by a nanosecond per run, as a leaked static or clock read would.
            let shift = INJECTED_RUNS.fetch_add(1, Ordering::Relaxed);
            if let Some(first) = spec.actions.first_mut() {
                first.at += std::time::Duration::from_nanos(shift);
            }
        }
        scenario.run(spec)
    });
    print!("{}", report.render_text());
    report.exit_code()
}

pub fn bench_command(args: &BenchArgs) -> i32 {
    let scenario = match scenario_source::load(&args.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return usage_error(&error),
    };
    let seeds = shard_seeds(args.seeds, None);
    let jobs = default_jobs(args.jobs);
    let mut rates = Vec::new();
    for round in 1..=args.repeat.max(1) {
        #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
        let started = Instant::now();
        let results = run_parallel(&seeds, jobs, |seed| SeedResult::of(seed, &run_seed(&scenario, seed)), |_, _| {});
        let seconds = started.elapsed().as_secs_f64();
        let failed = results.iter().filter(|result| result.outcome != sweep::Outcome::Pass).count();
        let events: u64 = results.iter().map(|result| result.events).sum();
        let rate = seeds.len() as f64 / seconds;
        rates.push(rate);
        println!(
            "round {round}: {} seeds in {seconds:.2} s on {jobs} threads: {rate:.1} seeds/s ({:.1} per thread), \
             {failed} failed, {:.0} events/seed",
            seeds.len(),
            rate / jobs as f64,
            events as f64 / seeds.len() as f64
        );
    }
    let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let high = rates.iter().copied().fold(0.0, f64::max);
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}: median {median:.1} seeds/s ({:.1} per thread), range {low:.1}..{high:.1} over {} rounds",
        scenario.name,
        median / jobs as f64,
        rates.len()
    );
    EXIT_PASS
}
