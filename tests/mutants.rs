//! The mutant corpus: every deliberate bug is found by its scenario's sweep within a small budget,
//! the failure is the mutant's (the same case passes with it off), and it shrinks to at most
//! three faults. Plus the command line: `--mutant` by name, an unknown name refused with a
//! suggestion, and the mutant carried through a repro file into `replay`.

use kubedst_core::mutants::{Mutant, Mutants};
use kubedst_scenarios::mutants::{hunt, target, Hunt};
use kubedst_scenarios::sweep::run_parallel;
use std::path::Path;
use std::process::{Command, Output};

/// Seeds each mutant may take to be found.
const SEED_BUDGET: u64 = 20;
/// Runs each shrink may take.
const SHRINK_BUDGET: usize = 60;

fn kubedst(arguments: &[&str], directory: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubedst")).args(arguments).current_dir(directory).output().expect("kubedst runs")
}

/// Mutants no hunt finds today, each with why. `informer_skips_relist_after_gone` was caught only
/// through zero-downtime failures that also struck clean runs (no drain after SIGTERM, DNS
/// answering before its sync); with those fixed, its scenario no longer exposes it. It stays
/// listed so that `kubedst mutants` reports it as not found, and this test fails once it is found
/// (then it leaves this list).
const KNOWN_UNDETECTED: [Mutant; 1] = [Mutant::InformerSkipsRelistAfterGone];

#[test]
fn every_mutant_is_found_within_the_budget_and_shrinks_to_at_most_three_faults() {
    let mutants = Mutant::ALL;
    let indices: Vec<u64> = (0..mutants.len() as u64).collect();
    let hunts: Vec<Result<Hunt, String>> =
        run_parallel(&indices, 2, |index| hunt(mutants[index as usize], SEED_BUDGET, SHRINK_BUDGET), |_, _| {});
    let mut problems = Vec::new();
    for (mutant, result) in mutants.iter().zip(hunts) {
        let hunt = result.unwrap_or_else(|error| panic!("mutant {mutant}: the hunt could not run: {error}"));
        let where_ = format!("{} with faults {}", hunt.scenario, hunt.faults);
        if KNOWN_UNDETECTED.contains(mutant) {
            if hunt.found {
                problems.push(format!("{mutant}: found now ({where_}); take it off KNOWN_UNDETECTED"));
            }
            continue;
        }
        if !hunt.found {
            problems.push(format!("{mutant}: not found in {SEED_BUDGET} seeds of {where_}"));
            continue;
        }
        let shrunk = hunt.shrunk_faults.expect("a found mutant is shrunk");
        if shrunk > 3 {
            problems.push(format!("{mutant}: the failure shrank only to {shrunk} faults ({where_})"));
        }
        if hunt.passes_without_mutant != Some(true) {
            problems.push(format!("{mutant}: the shrunk case fails without the mutant too ({where_})"));
        }
        eprintln!(
            "{mutant}: found at seed {:?} after {} seeds, shrunk to {shrunk} faults: {}",
            hunt.first_failing_seed,
            hunt.seeds_run,
            hunt.signature.as_deref().unwrap_or("")
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn names_round_trip_and_every_mutant_is_off_by_default() {
    for mutant in Mutant::ALL {
        assert_eq!(Mutant::from_name(mutant.name()), Some(mutant));
        assert!(!Mutants::NONE.contains(mutant));
        assert!(!mutant.bug_class().is_empty());
    }
    let all = Mutant::ALL.iter().fold(Mutants::NONE, |set, mutant| set.with(*mutant));
    assert_eq!(Mutants::from_names(&all.names()), Ok(all));
    assert!(Mutants::from_names(&["no_such_bug"]).unwrap_err().contains("no_such_bug"));
    assert!(kubedst_core::cluster::ClusterConfig::new(1).mutants.is_empty());
    // Every mutant has its own bit.
    assert_eq!(all.iter().count(), Mutant::ALL.len());
}

#[test]
fn run_takes_mutants_by_name_refuses_unknown_ones_and_replay_reproduces_them() {
    let directory = std::env::temp_dir().join(format!("kubedst-mutants-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let unknown = kubedst(&["run", "rolling-update", "--mutant", "scheduler_ignores_taint"], &directory);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("did you mean scheduler_ignores_taints"), "{stderr}");

    let mutant = Mutant::DeploymentIgnoresMaxUnavailable;
    let scenario = target(mutant).scenario;
    let clean = kubedst(&["run", scenario, "--seed", "0", "--faults", "none"], &directory);
    assert_eq!(clean.status.code(), Some(0), "{}", String::from_utf8_lossy(&clean.stdout));
    let run = kubedst(&["run", scenario, "--seed", "0", "--faults", "none", "--mutant", mutant.name()], &directory);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("--mutant {}", mutant.name())), "the replay command names the mutant: {stdout}");
    let repro = directory.join("kubedst-repros").join(format!("{scenario}-seed-0.repro.json"));
    let text = std::fs::read_to_string(&repro).unwrap();
    assert!(text.contains(mutant.name()), "the repro records the mutant: {text}");
    let replay = kubedst(&["replay", repro.to_str().unwrap()], &directory);
    assert_eq!(replay.status.code(), Some(1), "replay fails again: {}", String::from_utf8_lossy(&replay.stderr));
    std::fs::remove_dir_all(&directory).unwrap();
}
