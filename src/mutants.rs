//! `kubedst mutants`: for each deliberate bug, the property sweep of the scenario and fault class
//! that exercise it, until the first failing seed; then that failure shrunk. The logic is in
//! `kubedst_scenarios::mutants`; this module parses flags, runs mutants in parallel and prints.

use crate::commands::{default_jobs, usage_error, Format, EXIT_PASS, EXIT_VIOLATION};
use clap::Args;
use kubedst_core::mutants::Mutant;
use kubedst_scenarios::mutants::{hunt, median_seeds, Hunt};
use kubedst_scenarios::sweep::run_parallel;

/// `kubedst mutants` flags.
#[derive(Args, Debug)]
#[command(after_help = "Exit codes: 0 every mutant was found, 1 some mutant was not found, 2 bad usage.\n\
Examples:\n  kubedst mutants\n  kubedst mutants --seeds 200 --format json\n  \
kubedst mutants --only scheduler_ignores_taints")]
pub struct MutantsArgs {
    /// Most seeds to run per mutant (seeds 0, 1, ...); the sweep stops at the first failure.
    #[arg(long, default_value_t = 200)]
    pub seeds: u64,
    /// Worker threads, one mutant each (default: every core). Each run stays single-threaded.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Most runs to spend shrinking each failure.
    #[arg(long, default_value_t = 200)]
    pub shrink_runs: usize,
    /// Hunt only these mutants (repeatable); default: all.
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Output format: a table, or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn mutants_command(args: &MutantsArgs) -> i32 {
    if args.seeds == 0 {
        return usage_error("--seeds must be at least 1");
    }
    let chosen: Vec<Mutant> = if args.only.is_empty() {
        Mutant::ALL.to_vec()
    } else {
        match crate::scenario_source::parse_mutants(&args.only) {
            Ok(set) => set.iter().collect(),
            Err(error) => return usage_error(&error),
        }
    };
    let indices: Vec<u64> = (0..chosen.len() as u64).collect();
    let results = run_parallel(
        &indices,
        default_jobs(args.jobs),
        |i| hunt(chosen[i as usize], args.seeds, args.shrink_runs),
        |_, _| {},
    );
    let mut hunts = Vec::new();
    for (mutant, result) in chosen.iter().zip(results) {
        match result {
            Ok(hunt) => hunts.push(hunt),
            Err(error) => return usage_error(&format!("mutant {mutant}: {error}")),
        }
    }
    let all_found = hunts.iter().all(|hunt| hunt.found);
    match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "seeds": args.seeds,
                "found": hunts.iter().filter(|hunt| hunt.found).count(),
                "mutants": hunts.len(),
                "median_seeds_to_failure": median_seeds(&hunts),
                "max_shrunk_faults": hunts.iter().filter_map(|hunt| hunt.shrunk_faults).max(),
                "hunts": hunts,
            });
            println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
        }
        Format::Text => print!("{}", render_table(&hunts, args.seeds)),
    }
    if all_found {
        EXIT_PASS
    } else {
        EXIT_VIOLATION
    }
}

/// The text table: one row per mutant, then the totals.
pub fn render_table(hunts: &[Hunt], seeds: u64) -> String {
    let mut text = String::new();
    let width = hunts.iter().map(|hunt| hunt.mutant.len()).max().unwrap_or(6).max(6);
    let scenario_width = hunts.iter().map(|hunt| hunt.scenario.len() + hunt.faults.len() + 3).max().unwrap_or(8);
    text.push_str(&format!(
        "{:width$}  {:scenario_width$}  {:>5}  {:>5}  {:>8}  {:>6}  {}\n",
        "mutant", "scenario (faults)", "found", "seeds", "wall ms", "shrunk", "first violation"
    ));
    for hunt in hunts {
        let dash = || "-".to_string();
        text.push_str(&format!(
            "{:width$}  {:scenario_width$}  {:>5}  {:>5}  {:>8}  {:>6}  {}\n",
            hunt.mutant,
            format!("{} ({})", hunt.scenario, hunt.faults),
            if hunt.found { "yes" } else { "NO" },
            hunt.seeds_run,
            hunt.wall_ms_to_failure.map_or_else(dash, |ms| ms.to_string()),
            match (hunt.shrunk_faults, hunt.passes_without_mutant) {
                (Some(faults), Some(false)) => format!("{faults}!"),
                (Some(faults), _) => faults.to_string(),
                _ => dash(),
            },
            hunt.signature.as_deref().unwrap_or("-"),
        ));
    }
    let found = hunts.iter().filter(|hunt| hunt.found).count();
    text.push_str(&format!(
        "{found}/{} mutants found within {seeds} seeds; median seeds to the first failure {}; largest shrunk schedule {} faults\n",
        hunts.len(),
        median_seeds(hunts).map_or_else(|| "-".to_string(), |seeds| seeds.to_string()),
        hunts.iter().filter_map(|hunt| hunt.shrunk_faults).max().map_or_else(|| "-".to_string(), |n| n.to_string()),
    ));
    if hunts.iter().any(|hunt| hunt.passes_without_mutant == Some(false)) {
        text.push_str("!: the shrunk case fails without the mutant too, so that failure is not the mutant's\n");
    }
    text
}
