//! Every checker (the harness's default set plus the suite's ReplicaSet-overshoot checker) under
//! all fault classes together: swarm plans, a different mix of classes per case.

mod support;

use kubedst_scenarios::generators::FaultClass;

const DEFAULT_CASES: u32 = 16;

#[test]
fn every_checker_holds_under_swarm_faults() {
    support::check_suite(
        "chaos_safety",
        FaultClass::Swarm,
        &support::shape(),
        support::cases(DEFAULT_CASES),
        &support::all_checkers_hold,
    );
}

#[test]
fn replay() {
    support::replay_from_env(&support::all_checkers_hold);
}
