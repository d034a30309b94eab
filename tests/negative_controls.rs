//! Negative controls: with a deliberately broken controller the suites fail, and proptest shrinks
//! the failing plan to at most three faults. A suite that cannot fail proves nothing.

mod support;

use kubedst_core::mutants::{Mutant, Mutants};
use kubedst_scenarios::generators::FaultClass;

fn assert_caught(mutant: Mutant, class: FaultClass, property: &support::Property) {
    let shape = support::shape().without_chaos_between_nodes();
    let failure = support::run_suite(class, &shape, support::cases(4), Mutants::only(mutant), property)
        .expect_err(&format!("the suite passed with mutant {mutant} on: it cannot catch that bug"));
    assert!(
        failure.plan.len() <= 3,
        "mutant {mutant}: the failure shrank only to {} faults:\n{}",
        failure.plan.len(),
        support::replay_hint("negative_controls", class, failure.seed, &failure.plan)
    );
    // The same case passes without the mutant: the failure is the mutant's, not the plan's.
    let clean = support::run(failure.seed, &failure.plan, Mutants::NONE);
    assert!(
        property(&clean).is_ok(),
        "mutant {mutant}: the shrunk case fails without the mutant too: {:?}\n{}",
        property(&clean),
        support::replay_hint("negative_controls", class, failure.seed, &failure.plan)
    );
    eprintln!(
        "mutant {mutant} caught: {}\n{}",
        failure.message,
        kubedst_scenarios::generators::describe(&failure.plan)
    );
}

#[test]
fn a_replicaset_controller_that_ignores_expectations_fails_the_safety_suite() {
    assert_caught(Mutant::ReplicaSetIgnoresExpectations, FaultClass::WatchCacheLag, &support::all_checkers_hold);
}

#[test]
fn a_deployment_controller_that_ignores_max_unavailable_fails_the_rollout_suite() {
    assert_caught(Mutant::DeploymentIgnoresMaxUnavailable, FaultClass::ControlPlaneCrash, &support::all_checkers_hold);
}

#[test]
fn mutant_names_round_trip_and_none_is_the_default() {
    for mutant in Mutant::ALL {
        assert_eq!(Mutant::from_name(mutant.name()), Some(mutant));
        assert!(Mutants::only(mutant).contains(mutant));
        assert!(!Mutants::NONE.contains(mutant));
    }
    assert!(kubedst_core::cluster::ClusterConfig::new(1).mutants.is_empty());
    let both = Mutants::only(Mutant::ALL[0]).with(Mutant::ALL[1]);
    assert_eq!(both.iter().collect::<Vec<_>>(), Mutant::ALL[..2].to_vec());
}
