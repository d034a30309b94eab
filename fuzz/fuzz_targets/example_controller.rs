//! The library-mode example (`examples/app-operator`): an App custom resource and its operator,
//! run under a seed, a fault class and that class's faults, all decoded from the fuzzer's bytes
//! by `Simulation::run_from_bytes`. Any safety violation is a finding; an unkept eventual promise
//! (the standard ones and the App's `app-ready`) is one only where the plan promises liveness:
//! no worker node lost for good, since upstream replaces a lost node's pods only after the 300 s
//! toleration, beyond the example's 90 s liveness bound.

#![no_main]

use kubedst_core::checkers::liveness::EVENTUAL_PROMISES;
use kubedst_sim::Fault;
use libfuzzer_sys::fuzz_target;

/// The App's own eventual promise (`AppsReady`).
const APP_PROMISE: &str = "app-ready";

fuzz_target!(|bytes: &[u8]| {
    let (plan, report) =
        kubedst_example_app_operator::simulation().run_from_bytes(bytes).expect("the example's scenario runs");
    let node_lost = plan.engine.faults.iter().any(|timed| matches!(timed.fault, Fault::Lose { .. }));
    let eventual = |name: &str| name == APP_PROMISE || EVENTUAL_PROMISES.contains(&name);
    let broken: Vec<String> = report
        .violations
        .iter()
        .filter(|violation| !(node_lost && eventual(&violation.invariant)))
        .map(|violation| format!("{} at {} ns: {}", violation.invariant, violation.at_ns, violation.message))
        .collect();
    assert!(
        broken.is_empty(),
        "seed {} (node lost: {node_lost}, trace hash {}):\n{}",
        report.seed,
        report.trace_hash,
        broken.join("\n")
    );
});
