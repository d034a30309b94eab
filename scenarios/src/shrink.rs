//! Shrinking a failing run: delta debugging over the fault plan and the timeline's actions.
//!
//! A change is kept only if the run still fails with the same signature (see
//! [`crate::sweep::signature`]): the bug is the same bug, not some other failure that a smaller
//! plan happens to cause. Passes, repeated until none changes anything or the run budget is spent:
//!
//! 1. engine faults, model faults and actions: drop halves, then quarters, ... then single
//!    entries (ddmin's complement step);
//! 2. durations: halve each lasting fault's duration (a partition, pause, degraded link,
//!    crash-with-restart) while the failure stays.

use crate::repro::ReproViolation;
use crate::sweep::all_signatures;
use kubedst_core::harness::{FaultPlan, RunReport, Verdict};
use kubedst_sim::Fault;
use std::time::Duration;

/// What a shrink step varies: the fault plan and which of the scenario's actions remain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub faults: FaultPlan,
    /// Indices into the scenario's timeline.
    pub actions_kept: Vec<usize>,
}

impl Candidate {
    /// Faults plus actions: the size shrinking reduces.
    pub fn size(&self) -> usize {
        self.faults.len() + self.actions_kept.len()
    }

    /// The sum of the lasting faults' durations.
    pub fn fault_time(&self) -> Duration {
        self.faults.engine.faults.iter().filter_map(|timed| timed.fault.duration()).sum()
    }
}

/// The result of a shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub candidate: Candidate,
    /// The report of the smallest failing run.
    pub report: RunReport,
    /// How many runs the shrink took (the first, confirming run included).
    pub runs: usize,
    /// The run budget ran out before a pass changed nothing.
    pub budget_exhausted: bool,
}

/// Durations are not halved below this: shorter faults stop meaning anything at the model's
/// time scale (request timeouts are seconds).
const SHORTEST_DURATION: Duration = Duration::from_millis(100);

struct Shrinker<'a> {
    run: &'a mut dyn FnMut(&Candidate) -> Result<RunReport, String>,
    target: String,
    runs: usize,
    max_runs: usize,
    best_report: RunReport,
}

impl Shrinker<'_> {
    /// Runs the candidate; true when it fails with the target signature among its violations.
    fn still_fails(&mut self, candidate: &Candidate) -> bool {
        if self.runs >= self.max_runs {
            return false;
        }
        self.runs += 1;
        let Ok(report) = (self.run)(candidate) else { return false };
        if report.verdict != Verdict::Fail {
            return false;
        }
        let violations: Vec<ReproViolation> = report.violations.iter().map(ReproViolation::from).collect();
        if all_signatures(&violations).contains(&self.target) {
            self.best_report = report;
            true
        } else {
            false
        }
    }

    /// Removes chunks of the list that `rebuild` puts into a candidate, while the run still fails.
    fn reduce<T: Clone>(
        &mut self,
        best: &mut Candidate,
        items: fn(&Candidate) -> Vec<T>,
        rebuild: fn(&mut Candidate, Vec<T>),
    ) -> bool {
        let mut changed = false;
        let mut list = items(best);
        let mut chunk = list.len().div_ceil(2).max(1);
        while !list.is_empty() {
            let mut start = 0;
            let mut removed = false;
            while start < list.len() {
                let end = (start + chunk).min(list.len());
                let mut fewer = list.clone();
                fewer.drain(start..end);
                let mut candidate = best.clone();
                rebuild(&mut candidate, fewer.clone());
                if self.still_fails(&candidate) {
                    *best = candidate;
                    list = fewer;
                    removed = true;
                    changed = true;
                } else {
                    start = end;
                }
            }
            if chunk == 1 && !removed {
                break;
            }
            if !removed || chunk > list.len() {
                chunk = (chunk / 2).max(1);
            }
            if self.runs >= self.max_runs {
                break;
            }
        }
        changed
    }

    fn shorten_durations(&mut self, best: &mut Candidate) -> bool {
        let mut changed = false;
        for index in 0..best.faults.engine.faults.len() {
            loop {
                let mut candidate = best.clone();
                let fault = &mut candidate.faults.engine.faults[index].fault;
                let Some(duration) = fault.duration() else { break };
                let half = duration / 2;
                if half < SHORTEST_DURATION {
                    break;
                }
                set_duration(fault, half);
                if self.still_fails(&candidate) {
                    *best = candidate;
                    changed = true;
                } else {
                    break;
                }
            }
        }
        changed
    }
}

fn set_duration(fault: &mut Fault, to: Duration) {
    match fault {
        Fault::Crash { restart_after: Some(after), .. } => *after = to,
        Fault::Pause { duration, .. }
        | Fault::Partition { duration, .. }
        | Fault::Isolate { duration, .. }
        | Fault::DegradeLink { duration, .. } => *duration = to,
        _ => {}
    }
}

/// Shrinks `start`, which must fail with signature `target`, by running candidates through `run`
/// (at most `max_runs` runs). Errors if `start` itself does not fail that way.
pub fn shrink(
    start: Candidate,
    target: &str,
    max_runs: usize,
    run: &mut dyn FnMut(&Candidate) -> Result<RunReport, String>,
) -> Result<Shrunk, String> {
    let first = run(&start)?;
    let first_violations: Vec<ReproViolation> = first.violations.iter().map(ReproViolation::from).collect();
    if first.verdict != Verdict::Fail || !all_signatures(&first_violations).iter().any(|signature| signature == target)
    {
        let seen = all_signatures(&first_violations);
        return Err(format!(
            "the run does not fail with `{target}` (it {}), so there is nothing to shrink",
            if seen.is_empty() { "passes".to_string() } else { format!("fails with: {}", seen.join("; ")) }
        ));
    }
    let mut shrinker =
        Shrinker { run, target: target.to_string(), runs: 1, max_runs: max_runs.max(1), best_report: first };
    let mut best = start;
    loop {
        let mut changed = false;
        changed |= shrinker.reduce(
            &mut best,
            |candidate| candidate.faults.engine.faults.clone(),
            |candidate, faults| candidate.faults.engine.faults = faults,
        );
        changed |= shrinker.reduce(
            &mut best,
            |candidate| candidate.faults.model.clone(),
            |candidate, faults| candidate.faults.model = faults,
        );
        changed |= shrinker.reduce(
            &mut best,
            |candidate| candidate.actions_kept.clone(),
            |candidate, kept| candidate.actions_kept = kept,
        );
        changed |= shrinker.shorten_durations(&mut best);
        if !changed || shrinker.runs >= shrinker.max_runs {
            break;
        }
    }
    Ok(Shrunk {
        candidate: best,
        report: shrinker.best_report,
        runs: shrinker.runs,
        budget_exhausted: shrinker.runs >= shrinker.max_runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubedst_core::harness::{ModelFault, TimedModelFault, ViolationReport};
    use kubedst_sim::{FaultSchedule, TimedFault};
    use std::collections::BTreeMap;

    fn report(failed: bool) -> RunReport {
        RunReport {
            seed: 1,
            verdict: if failed { Verdict::Fail } else { Verdict::Pass },
            trace_hash: "0".into(),
            virtual_time_ns: 0,
            events: 0,
            violations: if failed {
                vec![ViolationReport { invariant: "bug".into(), at_ns: 0, message: "node node-3 broke".into() }]
            } else {
                vec![]
            },
            faults_fired: BTreeMap::new(),
            pending: vec![],
            observed_writes: BTreeMap::new(),
            exercised: BTreeMap::new(),
        }
    }

    fn pause(machine: &str, seconds: u64) -> TimedFault {
        TimedFault {
            at: Duration::from_secs(1),
            fault: Fault::Pause { machine: machine.into(), duration: Duration::from_secs(seconds) },
        }
    }

    /// A model of a bug: it shows when node-3 is paused for at least 2 s and action 4 remains.
    #[test]
    fn shrinking_keeps_exactly_what_the_failure_needs() {
        let start = Candidate {
            faults: FaultPlan {
                engine: FaultSchedule::new((0..8).map(|index| pause(&format!("node-{index}"), 40)).collect()),
                model: vec![TimedModelFault { at: Duration::from_secs(2), fault: ModelFault::CompactNow }; 3],
            },
            actions_kept: (0..7).collect(),
        };
        let mut fails = |candidate: &Candidate| {
            let needed = candidate.faults.engine.faults.iter().any(|timed| {
                timed.fault == Fault::Pause { machine: "node-3".into(), duration: timed.fault.duration().unwrap() }
                    && timed.fault.duration().unwrap() >= Duration::from_secs(2)
            }) && candidate.actions_kept.contains(&4);
            Ok(report(needed))
        };
        let shrunk = shrink(start, "bug: node <node> broke", 500, &mut fails).unwrap();
        assert_eq!(shrunk.candidate.faults.engine.faults.len(), 1);
        assert_eq!(shrunk.candidate.faults.engine.faults[0].fault.machines(), vec!["node-3"]);
        let duration = shrunk.candidate.faults.engine.faults[0].fault.duration().unwrap();
        assert!(duration >= Duration::from_secs(2) && duration < Duration::from_secs(4), "{duration:?}");
        assert!(shrunk.candidate.faults.model.is_empty());
        assert_eq!(shrunk.candidate.actions_kept, vec![4]);
        assert!(!shrunk.budget_exhausted);
        assert!(shrunk.runs > 10 && shrunk.runs < 200, "{}", shrunk.runs);
    }

    #[test]
    fn a_run_that_does_not_fail_the_same_way_is_not_shrunk() {
        let start = Candidate { faults: FaultPlan::default(), actions_kept: vec![0] };
        let error = shrink(start.clone(), "bug: node <node> broke", 10, &mut |_| Ok(report(false))).unwrap_err();
        assert!(error.contains("it passes"), "{error}");
        let error = shrink(start, "other: thing", 10, &mut |_| Ok(report(true))).unwrap_err();
        assert!(error.contains("fails with: bug: node <node> broke"), "{error}");
    }

    #[test]
    fn the_run_budget_is_respected() {
        // Every action is needed, so each removal fails and ddmin would try many subsets.
        let start = Candidate { faults: FaultPlan::default(), actions_kept: (0..16).collect() };
        let mut calls = 0;
        let shrunk = shrink(start, "bug: node <node> broke", 7, &mut |candidate| {
            calls += 1;
            Ok(report(candidate.actions_kept.len() == 16))
        })
        .unwrap();
        assert_eq!(calls, 7);
        assert_eq!(shrunk.runs, 7);
        assert!(shrunk.budget_exhausted);
    }
}
