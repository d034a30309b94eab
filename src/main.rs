//! The `kubedst` command line.

mod commands;
mod scenario_source;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "kubedst", version, about = "Deterministic simulation testing for Kubernetes control planes")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a range of seeds in parallel; failures grouped by signature. Exit 0 all held, 1 a violation.
    Sweep(commands::SweepArgs),
    /// Merge the `--format json` summaries of sweep shards into the summary of the whole sweep.
    #[command(alias = "merge")]
    SweepMerge(commands::MergeArgs),
    /// Run a repro file again; exit 3 if the trace hash differs from the recorded one.
    Replay(commands::ReplayArgs),
    /// Shrink a repro's faults and actions to a minimal set that fails the same way.
    Shrink(commands::ShrinkArgs),
    /// Run each seed twice and compare trace hashes; exit 3 on any difference.
    CheckDeterminism(commands::DeterminismArgs),
    /// Measure sweep throughput (seeds per second).
    Bench(commands::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => {
            println!("kubedst {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some(Command::Sweep(args)) => commands::sweep_command(&args),
        Some(Command::SweepMerge(args)) => commands::merge_command(&args),
        Some(Command::Replay(args)) => commands::replay_command(&args),
        Some(Command::Shrink(args)) => commands::shrink_command(&args),
        Some(Command::CheckDeterminism(args)) => commands::determinism_command(&args),
        Some(Command::Bench(args)) => commands::bench_command(&args),
    };
    std::process::exit(code);
}
