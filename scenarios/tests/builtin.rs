//! Every built-in scenario loads, and passes with its default seed.

use kubedst_core::harness::Verdict;
use kubedst_scenarios::{builtin_names, Scenario};

/// The seed `kubedst run` uses when none is given.
const DEFAULT_SEED: u64 = 1;

#[test]
fn every_builtin_loads_and_passes_with_the_default_seed() {
    let mut failures = Vec::new();
    for name in builtin_names() {
        let scenario = Scenario::builtin(name).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(scenario.name(), name, "the file's name matches its built-in name");
        assert!(!scenario.description().is_empty(), "{name} has a description");
        let report = scenario.run(DEFAULT_SEED, None).unwrap_or_else(|error| panic!("{name}: {error}"));
        eprintln!(
            "{name}: {:?} virtual {}s events {} faults {:?} violations {:?}",
            report.verdict,
            report.virtual_time_ns / 1_000_000_000,
            report.events,
            report.faults_fired,
            report.violations
        );
        assert!(report.observed_writes.get("Pod").copied().unwrap_or(0) > 0 || name == "none", "{name} wrote pods");
        if report.verdict != Verdict::Pass {
            failures.push(format!("{name}: {:?}", report.violations));
        }
    }
    assert!(failures.is_empty(), "built-ins failed: {failures:#?}");
}
