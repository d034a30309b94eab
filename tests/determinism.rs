//! Determinism: a sample of swarm plans, each run twice from scratch, gives the same trace hash,
//! event count, virtual time, faults fired and violations.

mod support;

use kubedst_core::mutants::Mutants;
use kubedst_scenarios::generators::{plan_from_seed, FaultClass};

#[test]
fn swarm_runs_repeat_bit_for_bit() {
    let shape = support::shape();
    let samples = support::cases(4) as u64;
    let mut fired = std::collections::BTreeMap::new();
    let mut hashes = std::collections::BTreeSet::new();
    for seed in 0..samples {
        let plan = plan_from_seed(FaultClass::Swarm, &shape, seed);
        let first = support::run(seed, &plan, Mutants::NONE);
        let second = support::run(seed, &plan, Mutants::NONE);
        let hint = support::replay_hint("determinism", FaultClass::Swarm, seed, &plan);
        assert_eq!(first.report.trace_hash, second.report.trace_hash, "{hint}");
        assert_eq!(first.report.events, second.report.events, "{hint}");
        assert_eq!(first.report.virtual_time_ns, second.report.virtual_time_ns, "{hint}");
        assert_eq!(first.report.faults_fired, second.report.faults_fired, "{hint}");
        assert_eq!(first.report.violations, second.report.violations, "{hint}");
        assert_eq!(first.traffic, second.traffic, "{hint}");
        support::add_fired(&mut fired, &first.report);
        hashes.insert(first.report.trace_hash.clone());
    }
    // Different seeds and plans are different runs (a hash that ignores its input would pass
    // the comparisons above).
    assert_eq!(hashes.len() as u64, samples, "{hashes:?}");
    assert!(fired.values().sum::<u64>() > 0, "no fault fired in the sample: {fired:?}");
}
