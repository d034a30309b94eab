//! `kubedst check-determinism`: every seed run twice, trace hashes compared.
//!
//! Both runs of a seed happen on the same worker thread, one after the other, with fresh clusters;
//! a difference means something outside the seed leaked into the run (an OS clock, a hash map's
//! order, a static that outlived the first run).

use crate::sweep::run_parallel;
use kubedst_core::harness::RunReport;

/// A seed whose two runs differed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashMismatch {
    pub seed: u64,
    pub first: String,
    pub second: String,
}

/// What a determinism check found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeterminismReport {
    pub seeds_checked: usize,
    pub mismatches: Vec<HashMismatch>,
    /// Seeds whose runs could not be set up, with the reason.
    pub errors: Vec<(u64, String)>,
}

impl DeterminismReport {
    /// 0 every seed gave one hash, 2 a run could not be set up, 3 nondeterminism.
    pub fn exit_code(&self) -> i32 {
        if !self.mismatches.is_empty() {
            3
        } else if !self.errors.is_empty() {
            2
        } else {
            0
        }
    }

    pub fn render_text(&self) -> String {
        let mut lines: Vec<String> = self
            .mismatches
            .iter()
            .map(|mismatch| {
                format!(
                    "NONDETERMINISTIC seed {}: first run {}, second run {}",
                    mismatch.seed, mismatch.first, mismatch.second
                )
            })
            .collect();
        lines.extend(self.errors.iter().map(|(seed, error)| format!("error seed {seed}: {error}")));
        lines.push(if self.mismatches.is_empty() {
            format!("deterministic: {} seeds, each run twice with the same trace hash", self.seeds_checked)
        } else {
            format!("nondeterminism: {} of {} seeds gave two trace hashes", self.mismatches.len(), self.seeds_checked)
        });
        lines.join("\n") + "\n"
    }
}

/// Runs each seed twice on `jobs` threads and compares the trace hashes.
pub fn check_determinism<F>(seeds: &[u64], jobs: usize, run_one: F) -> DeterminismReport
where
    F: Fn(u64) -> Result<RunReport, String> + Sync,
{
    let pairs = run_parallel(seeds, jobs, |seed| (seed, run_one(seed), run_one(seed)), |_, _| {});
    let mut report = DeterminismReport { seeds_checked: seeds.len(), ..DeterminismReport::default() };
    for (seed, first, second) in pairs {
        match (first, second) {
            (Ok(first), Ok(second)) => {
                if first.trace_hash != second.trace_hash {
                    report.mismatches.push(HashMismatch { seed, first: first.trace_hash, second: second.trace_hash });
                }
            }
            (Err(error), _) | (_, Err(error)) => report.errors.push((seed, error)),
        }
    }
    report
}
