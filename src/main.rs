//! The `kubedst` command line: list the built-in scenarios, run a scenario for a seed.
//!
//! Exit codes (every command): 0 every invariant held, 1 an invariant was violated, 2 bad usage or
//! input (an unknown scenario, a bad file, a bad flag), 3 nondeterminism (the same seed gave two
//! different trace hashes).

mod commands;
mod mutants;
mod run;
mod scenario_source;
mod trace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Every invariant held.
pub const EXIT_HELD: u8 = 0;
/// An invariant was violated.
pub const EXIT_VIOLATED: u8 = 1;
/// Bad usage or input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// The same seed gave different runs.
pub const EXIT_NONDETERMINISM: u8 = 3;

/// Deterministic simulation testing for Kubernetes control planes.
///
/// A scenario (a cluster, Kubernetes manifests, a timeline of user actions, faults and the
/// invariants to hold) runs on one seeded virtual clock: the same seed is the same run, bit for
/// bit. Exit codes: 0 every invariant held, 1 an invariant was violated, 2 bad usage or input,
/// 3 nondeterminism.
#[derive(Parser, Debug)]
#[command(name = "kubedst", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lists the built-in scenarios, one line each: name and description.
    Scenarios,
    /// Runs a scenario for one seed and reports the verdict.
    Run(run::RunArgs),
    /// Runs a range of seeds in parallel (`--shard I/N`: the seeds s with s mod N == I) and
    /// groups the failures by signature, each with its replay command and repro file.
    Sweep(commands::SweepArgs),
    /// Merges the `--format json` summaries of sweep shards into the summary of the whole sweep.
    #[command(alias = "merge")]
    SweepMerge(commands::MergeArgs),
    /// Runs a repro file again; exit 3 if the trace hash differs from the recorded one.
    Replay(commands::ReplayArgs),
    /// Shrinks a repro's faults and actions to a minimal set that fails the same way.
    Shrink(commands::ShrinkArgs),
    /// Runs each seed twice and compares trace hashes; exit 3 on any difference.
    CheckDeterminism(commands::DeterminismArgs),
    /// Measures sweep throughput in seeds per second.
    Bench(commands::BenchArgs),
    /// Hunts each deliberate bug (mutant): sweeps its scenario until a seed fails, shrinks the
    /// failure, and reports seeds and wall time to it and the shrunk schedule's size.
    Mutants(mutants::MutantsArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and --version to stdout with success, and usage errors to stderr.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { EXIT_BAD_INPUT } else { EXIT_HELD });
        }
    };
    match cli.command {
        Command::Scenarios => {
            list_scenarios();
            ExitCode::from(EXIT_HELD)
        }
        Command::Run(args) => ExitCode::from(run::run(&args)),
        Command::Sweep(args) => exit(commands::sweep_command(&args)),
        Command::SweepMerge(args) => exit(commands::merge_command(&args)),
        Command::Replay(args) => exit(commands::replay_command(&args)),
        Command::Shrink(args) => exit(commands::shrink_command(&args)),
        Command::CheckDeterminism(args) => exit(commands::determinism_command(&args)),
        Command::Bench(args) => exit(commands::bench_command(&args)),
        Command::Mutants(args) => exit(mutants::mutants_command(&args)),
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_BAD_INPUT))
}

fn list_scenarios() {
    let names = kubedst_scenarios::builtin_names();
    let width = names.iter().map(|name| name.len()).max().unwrap_or(0);
    for name in names {
        match kubedst_scenarios::Scenario::builtin(name) {
            Ok(scenario) => println!("{name:width$}  {}", scenario.description()),
            Err(error) => println!("{name:width$}  (does not load: {error})"),
        }
    }
}
