//! Desired-replica convergence under every fault class: after the faults heal, the Deployment
//! has exactly its replicas, ready, of the current template, and no other pods, within the
//! liveness bound. Each class's faults must really have fired over the suite's cases.
//! `PROPTEST_CASES=N` runs N cases per class instead of the default.

mod support;

use kubedst_scenarios::generators::FaultClass;

const DEFAULT_CASES: u32 = 6;

fn check(class: FaultClass) {
    support::check_suite(
        "chaos_convergence",
        class,
        &support::shape(),
        support::cases(DEFAULT_CASES),
        &support::converges,
    );
}

#[test]
fn converges_under_network_chaos() {
    check(FaultClass::NetworkChaos);
}

#[test]
fn converges_under_node_crashes() {
    check(FaultClass::NodeCrash);
}

#[test]
fn converges_under_node_loss() {
    check(FaultClass::NodeLoss);
}

#[test]
fn converges_under_node_partitions() {
    check(FaultClass::NodePartition);
}

#[test]
fn converges_under_control_plane_crashes() {
    check(FaultClass::ControlPlaneCrash);
}

#[test]
fn converges_under_clock_skew() {
    check(FaultClass::ClockSkew);
}

#[test]
fn converges_under_watch_cache_lag() {
    check(FaultClass::WatchCacheLag);
}

#[test]
fn converges_under_container_faults() {
    check(FaultClass::ContainerFaults);
}

#[test]
fn replay() {
    support::replay_from_env(&support::converges);
}
