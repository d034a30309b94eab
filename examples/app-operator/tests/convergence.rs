//! The App operator converges under every fault class, and a deliberately buggy operator is
//! caught: the property tests of the library-mode example.

use kubedst_core::harness::Verdict;
use kubedst_example_app_operator::{
    check_app_from_bytes, simulation, simulation_with, AppController, AppsReady, Bug, APP_KIND, OPERATOR,
};
use kubedst_scenarios::generators::{plan_from_seed, plan_strategy, FaultClass};
use kubedst_scenarios::library::{describe_failure, Simulation};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[test]
fn without_faults_the_app_becomes_ready_and_owns_its_objects() {
    let simulation = simulation();
    let report = simulation.run_seed(1).unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{}", describe_failure(&report));
    // The promise was asked (it held at some check, not vacuously: the App exists).
    assert!(report.exercised.get("app-ready").copied().unwrap_or(0) > 0, "{:?}", report.exercised);
    // Replaying the recorded run gives the same trace.
    let repro = simulation.repro(Default::default(), &report);
    let replayed = simulation.replay(&repro).unwrap();
    assert_eq!(replayed.trace_hash, report.trace_hash);
}

#[test]
fn the_promise_fails_when_the_app_never_becomes_ready() {
    // A canary for the promise itself: with no operator, nothing makes the App ready.
    let without_operator = Simulation::from_text("app-operator.yaml", kubedst_example_app_operator::SCENARIO, &[
        kubedst_example_app_operator::APP,
    ])
    .unwrap()
    .with_promise(|| Box::new(AppsReady));
    let report = without_operator.run_seed(2).unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    let unmet: Vec<&str> =
        report.violations.iter().filter(|v| v.invariant == "app-ready").map(|v| v.message.as_str()).collect();
    assert!(unmet.iter().any(|message| message.contains("no Deployment controlled by it")), "{unmet:?}");
    assert!(unmet.iter().any(|message| message.contains("status reports 0 of 4")), "{unmet:?}");
}

/// Cases per fault class: small, so that the file stays within seconds.
const CASES: u32 = 2;

fn converges_under(class: FaultClass) {
    let simulation = simulation();
    let shape = simulation.shape(0).unwrap();
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let result = runner.run(&(any::<u64>(), plan_strategy(class, &shape)), |(seed, plan)| {
        let report = simulation.run_with_faults(seed, plan).unwrap();
        prop_assert_eq!(report.verdict, Verdict::Pass, "{}", describe_failure(&report));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{class}: {failure}");
    }
}

#[test]
fn converges_under_network_chaos_node_crashes_and_partitions() {
    for class in [FaultClass::NetworkChaos, FaultClass::NodeCrash, FaultClass::NodePartition, FaultClass::NodeLoss] {
        converges_under(class);
    }
}

#[test]
fn converges_under_control_plane_crashes_clock_skew_and_stale_caches() {
    for class in [FaultClass::ControlPlaneCrash, FaultClass::ClockSkew, FaultClass::WatchCacheLag] {
        converges_under(class);
    }
}

#[test]
fn converges_under_container_faults_and_the_swarm() {
    for class in [FaultClass::ContainerFaults, FaultClass::Swarm] {
        converges_under(class);
    }
}

#[test]
fn the_unconditional_status_bug_is_caught() {
    // The negative control: the property must fail for an operator that writes its status
    // without a resourceVersion, which custom resources refuse.
    let buggy = simulation_with(|| AppController::with_bug(Bug::UnconditionalStatus)).unwrap();
    let shape = buggy.shape(0).unwrap();
    let mut caught = 0;
    for seed in 0..2u64 {
        let plan = plan_from_seed(FaultClass::NodeCrash, &shape, seed);
        let report = buggy.run_with_faults(seed, plan).unwrap();
        if report.violations.iter().any(|violation| violation.invariant == "app-ready") {
            caught += 1;
        }
    }
    assert_eq!(caught, 2, "the buggy operator must fail the promise on every seed");
}

#[test]
fn fuzz_inputs_of_any_shape_run() {
    for data in [&b""[..], &[0u8; 3][..], &[0xffu8; 64][..], b"kubedst app operator fuzz seed"] {
        check_app_from_bytes(data).unwrap();
    }
}

#[test]
fn the_operator_runs_in_its_own_host_and_the_simulation_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let simulation = simulation();
    assert_send_sync(&simulation);
    let report = std::thread::spawn(move || simulation.run_seed(3).unwrap()).join().unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{}", describe_failure(&report));
    let spec = crate::simulation().run_spec(3, None).unwrap();
    assert!(spec.cluster.user_controllers.iter().any(|controller| controller.name == OPERATOR));
    assert!(spec.cluster.custom_kinds.contains(&APP_KIND.custom().unwrap()));
}
