//! Hunting mutants: for each deliberate bug of [`kubedst_core::mutants`], the scenario and fault
//! class that exercise it, a sweep over seeds until the first failure, and a shrink of that
//! failure. `kubedst mutants` prints the results; `tests/mutants.rs` holds them to a budget.
//!
//! A mutant counts as found when a seed of its scenario fails with the mutant on and passes with
//! it off (a seed that fails either way is skipped and listed: it says nothing of the mutant). The hunt then
//! shrinks the failing fault plan (and timeline) with [`crate::shrink`] and runs the shrunk case
//! once more without the mutant: it must pass, or the failure was not the mutant's.
//!
//! Three scenarios exist only for mutants ([`MUTANT_SCENARIOS`]): no built-in sets
//! `minReadySeconds`, fills its nodes, or drains a node, so without them the minReadySeconds,
//! resource-fit and taint mutants would have nothing to get wrong.

use crate::repro::apply_to_spec;
use crate::shrink::{shrink, Candidate};
use crate::sweep::primary_signature;
use crate::{Scenario, ScenarioError};
use kubedst_core::harness::{FaultPlan, RunReport, RunSpec, Verdict};
use kubedst_core::mutants::{Mutant, Mutants};
use serde::Serialize;
// Wall time is measured around runs for the report; nothing inside a run reads it.
#[allow(clippy::disallowed_types)]
use std::time::Instant;

/// Scenarios written for mutants: name and text. `kubedst run` finds them by name too.
pub const MUTANT_SCENARIOS: [(&str, &str); 3] = [
    ("mutant-min-ready-rollout", include_str!("../mutants/mutant-min-ready-rollout.yaml")),
    ("mutant-full-nodes-rollout", include_str!("../mutants/mutant-full-nodes-rollout.yaml")),
    ("mutant-drain-then-lose", include_str!("../mutants/mutant-drain-then-lose.yaml")),
];

/// A mutant scenario by name.
pub fn mutant_scenario(name: &str) -> Option<Result<Scenario, ScenarioError>> {
    MUTANT_SCENARIOS
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(name, text)| Scenario::parse(&format!("{name}.yaml"), text))
}

/// A built-in scenario or a mutant scenario by name.
pub fn scenario_named(name: &str) -> Result<Scenario, ScenarioError> {
    mutant_scenario(name).unwrap_or_else(|| Scenario::builtin(name))
}

/// Where a mutant is hunted: a scenario and the faults each seed draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub mutant: Mutant,
    /// A built-in scenario or one of [`MUTANT_SCENARIOS`].
    pub scenario: &'static str,
    /// A fault profile drawn from the seed (`none`, a fault class), `+class` for the scenario's
    /// own faults plus that class's, or `None` for the scenario's own faults.
    pub profile: Option<&'static str>,
}

/// 410s come from etcd's compactions in the scenario; control-plane crashes break the watches
/// so that informers rewatch from a compacted revision, which is when a relist matters.
const INFORMER_PROFILE: &str = "+control_plane_crash";

/// The table: for each mutant, the scenario and fault class that exercise the code it breaks.
pub fn target(mutant: Mutant) -> Target {
    let (scenario, profile) = match mutant {
        // Its own creates not yet seen: a lagging watch cache widens that window.
        Mutant::ReplicaSetIgnoresExpectations => ("rolling-update", Some("watch_cache_lag")),
        Mutant::DeploymentIgnoresMaxUnavailable => ("rolling-update", Some("none")),
        Mutant::DeploymentRoundsMaxUnavailableUp => ("rolling-update", Some("none")),
        Mutant::ReplicaSetCountsReadyAsAvailable => ("mutant-min-ready-rollout", Some("none")),
        Mutant::DeploymentCountsReadyAsAvailable => ("mutant-min-ready-rollout", Some("none")),
        Mutant::ReplicaSetMinReadyOffByOne => ("mutant-min-ready-rollout", Some("none")),
        Mutant::InformerSkipsRelistAfterGone => ("watch-compaction-relist", Some(INFORMER_PROFILE)),
        Mutant::SchedulerIgnoresTaints => ("mutant-drain-then-lose", None),
        Mutant::SchedulerIgnoresRequestedResources => ("mutant-full-nodes-rollout", Some("none")),
        Mutant::EndpointSliceKeepsNotReadyEndpoints => ("rolling-update", Some("none")),
        Mutant::KubeletReadyBeforeProbe => ("rolling-update", Some("none")),
        Mutant::JobCountsFailedAsSucceeded => ("job-node-crashes", Some("container_faults")),
    };
    Target { mutant, scenario, profile }
}

/// The run of `seed` of a scenario with a profile's plan (or the scenario's own faults) and
/// `mutants` switched on.
pub fn spec_of(scenario: &Scenario, profile: Option<&str>, seed: u64, mutants: Mutants) -> Result<RunSpec, String> {
    let faults = match profile {
        // `+class`: the scenario's own faults and the class's plan for the seed.
        Some(extra) if extra.starts_with('+') => {
            let mut plan = scenario.fault_plan(seed).map_err(|error| error.to_string())?;
            let drawn = scenario.profile_plan(&extra[1..], seed).map_err(|error| error.to_string())?;
            plan.engine.faults.extend(drawn.engine.faults);
            plan.engine.faults.sort_by_key(|timed| timed.at);
            plan.model.extend(drawn.model);
            plan.model.sort_by_key(|timed| timed.at);
            Some(plan)
        }
        Some(profile) => Some(scenario.profile_plan(profile, seed).map_err(|error| error.to_string())?),
        None => None,
    };
    let mut spec = scenario.to_run_spec(seed, faults).map_err(|error| error.to_string())?;
    with_mutants(&mut spec, mutants);
    Ok(spec)
}

/// Switches `mutants` on in a spec's cluster (nothing changes when the set is empty).
pub fn with_mutants(spec: &mut RunSpec, mutants: Mutants) {
    if !mutants.is_empty() {
        spec.cluster = spec.cluster.clone().with_mutants(mutants);
    }
}

/// What a hunt found.
#[derive(Clone, Debug, Serialize)]
pub struct Hunt {
    pub mutant: String,
    pub bug_class: String,
    pub scenario: String,
    /// The fault profile, or `scenario` for the scenario's own faults.
    pub faults: String,
    pub found: bool,
    /// Seeds run up to and including the first failing one (all of them if none failed).
    pub seeds_run: u64,
    pub first_failing_seed: Option<u64>,
    /// Seeds that failed with the mutant but also without it (skipped: not the mutant's doing).
    pub seeds_failing_without_mutant: Vec<u64>,
    /// Wall time from the first seed to the end of the first failing run.
    pub wall_ms_to_failure: Option<u64>,
    /// The first failure's signature (its first violation, details taken out).
    pub signature: Option<String>,
    /// Faults of the failing plan before and after shrinking.
    pub faults_before_shrink: Option<usize>,
    pub shrunk_faults: Option<usize>,
    pub shrink_runs: Option<usize>,
    /// Whether the shrunk case passes with the mutant off (the failure is the mutant's).
    pub passes_without_mutant: Option<bool>,
}

/// Runs seeds `0..seeds` of the mutant's target until one fails, then shrinks it within
/// `shrink_budget` runs.
pub fn hunt(mutant: Mutant, seeds: u64, shrink_budget: usize) -> Result<Hunt, String> {
    let target = target(mutant);
    let scenario = scenario_named(target.scenario).map_err(|error| error.to_string())?;
    let run = |spec: RunSpec| -> Result<RunReport, String> {
        scenario.run_spec(spec, Vec::new()).map_err(|error| error.to_string())
    };
    let mut hunt = Hunt {
        mutant: mutant.name().to_string(),
        bug_class: mutant.bug_class().to_string(),
        scenario: target.scenario.to_string(),
        faults: target.profile.unwrap_or("scenario").to_string(),
        found: false,
        seeds_run: 0,
        first_failing_seed: None,
        seeds_failing_without_mutant: Vec::new(),
        wall_ms_to_failure: None,
        signature: None,
        faults_before_shrink: None,
        shrunk_faults: None,
        shrink_runs: None,
        passes_without_mutant: None,
    };
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    let started = Instant::now();
    let mut failure: Option<(u64, FaultPlan, RunReport)> = None;
    for seed in 0..seeds {
        hunt.seeds_run += 1;
        let spec = spec_of(&scenario, target.profile, seed, Mutants::only(mutant))?;
        let faults = spec.faults.clone();
        let report = run(spec)?;
        if report.verdict == Verdict::Fail {
            // A seed that fails without the mutant too says nothing about the mutant.
            let clean = run(spec_of(&scenario, target.profile, seed, Mutants::NONE)?)?;
            if clean.verdict == Verdict::Fail {
                hunt.seeds_failing_without_mutant.push(seed);
                continue;
            }
            failure = Some((seed, faults, report));
            break;
        }
    }
    let Some((seed, faults, report)) = failure else { return Ok(hunt) };
    hunt.wall_ms_to_failure = Some(started.elapsed().as_millis() as u64);
    hunt.found = true;
    hunt.first_failing_seed = Some(seed);
    let violations: Vec<_> = report.violations.iter().map(crate::repro::ReproViolation::from).collect();
    let Some(signature) = primary_signature(&violations) else { return Ok(hunt) };
    hunt.signature = Some(signature.clone());
    hunt.faults_before_shrink = Some(faults.len());
    let actions = scenario.to_run_spec(seed, Some(FaultPlan::default())).map_err(|e| e.to_string())?.actions.len();
    let start = Candidate { faults, actions_kept: (0..actions).collect() };
    // A smaller case counts only if it still fails with the mutant *and* passes without it:
    // shrinking must not drift to a case that fails for another reason (dropping the drain
    // before a node is lost, say).
    let mut run_candidate = |candidate: &Candidate| -> Result<RunReport, String> {
        let mut spec = spec_of(&scenario, target.profile, seed, Mutants::only(mutant))?;
        apply_to_spec(&mut spec, &candidate.faults, Some(&candidate.actions_kept))?;
        let mut report = run(spec)?;
        if report.verdict == Verdict::Fail {
            let mut clean = spec_of(&scenario, target.profile, seed, Mutants::NONE)?;
            apply_to_spec(&mut clean, &candidate.faults, Some(&candidate.actions_kept))?;
            if run(clean)?.verdict == Verdict::Fail {
                report.verdict = Verdict::Pass;
                report.violations.clear();
            }
        }
        Ok(report)
    };
    let shrunk = shrink(start, &signature, shrink_budget, &mut run_candidate)?;
    hunt.shrunk_faults = Some(shrunk.candidate.faults.len());
    hunt.shrink_runs = Some(shrunk.runs);
    let mut clean = spec_of(&scenario, target.profile, seed, Mutants::NONE)?;
    apply_to_spec(&mut clean, &shrunk.candidate.faults, Some(&shrunk.candidate.actions_kept))?;
    hunt.passes_without_mutant = Some(run(clean)?.verdict == Verdict::Pass);
    Ok(hunt)
}

/// The median of the seeds to first failure over the found mutants (the upper median).
pub fn median_seeds(hunts: &[Hunt]) -> Option<u64> {
    let mut seeds: Vec<u64> = hunts.iter().filter(|hunt| hunt.found).map(|hunt| hunt.seeds_run).collect();
    seeds.sort_unstable();
    seeds.get(seeds.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutant_has_a_target_that_loads() {
        for mutant in Mutant::ALL {
            let target = target(mutant);
            let scenario = scenario_named(target.scenario).unwrap_or_else(|error| panic!("{mutant}: {error}"));
            if let Some(profile) = target.profile {
                let class = profile.strip_prefix('+').unwrap_or(profile);
                assert!(scenario.profile_plan(class, 0).is_ok(), "{mutant}: profile {profile}");
                assert!(spec_of(&scenario, Some(profile), 0, Mutants::only(mutant)).is_ok(), "{mutant}");
            }
        }
    }

    #[test]
    fn the_median_is_over_found_mutants_only() {
        let hunt = |found: bool, seeds_run: u64| Hunt {
            mutant: "m".into(),
            bug_class: String::new(),
            scenario: String::new(),
            faults: String::new(),
            found,
            seeds_run,
            first_failing_seed: None,
            seeds_failing_without_mutant: Vec::new(),
            wall_ms_to_failure: None,
            signature: None,
            faults_before_shrink: None,
            shrunk_faults: None,
            shrink_runs: None,
            passes_without_mutant: None,
        };
        assert_eq!(median_seeds(&[hunt(true, 1), hunt(false, 200), hunt(true, 9), hunt(true, 3)]), Some(3));
        assert_eq!(median_seeds(&[hunt(false, 5)]), None);
    }
}
