//! The fault generators: stable per seed, valid for the cluster, healed by the end of the fault
//! phase, the same space from seeds, bytes and proptest, and shrinking toward simpler plans.

use kubedst_core::cluster::ClusterConfig;
use kubedst_core::harness::{FaultPlan, ModelFault};
use kubedst_scenarios::generators::{
    class_of, describe, draws_strategy, plan_from_bytes, plan_from_draws, plan_from_seed, plan_strategy, ClusterShape,
    FaultClass, FaultDraw,
};
use kubedst_sim::{Fault, StableHasher};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::time::Duration;

fn shape() -> ClusterShape {
    let mut config = ClusterConfig::standard(0, 4);
    config.control_plane_replicas = 2;
    ClusterShape::of(&config, Duration::from_secs(60))
        .with_window_start(Duration::from_secs(10))
        .with_images(&["web:v2"])
}

/// Every machine a plan names exists, every fault strikes inside the window, and every fault
/// that lasts has healed by the end of the fault phase (permanent loss and clock changes, which
/// the engine's heal undoes, excepted).
fn assert_valid(plan: &FaultPlan, shape: &ClusterShape) {
    let known: Vec<&str> = std::iter::once(shape.etcd.as_str())
        .chain(shape.control_plane.iter().map(String::as_str))
        .chain(shape.nodes.iter().map(String::as_str))
        .collect();
    let mut lost = Vec::new();
    for timed in &plan.engine.faults {
        assert!(timed.at >= shape.window_start && timed.at < shape.fault_phase, "{timed:?}");
        for machine in timed.fault.machines() {
            assert!(known.contains(&machine), "unknown machine {machine} in {timed:?}");
        }
        if let Some(duration) = timed.fault.duration() {
            assert!(timed.at + duration <= shape.fault_phase, "{timed:?} outlasts the fault phase");
        }
        match &timed.fault {
            Fault::Crash { restart_after, .. } => assert!(restart_after.is_some(), "{timed:?}"),
            Fault::Lose { machine } => {
                assert!(shape.nodes.contains(machine), "only worker nodes are lost: {timed:?}");
                if !lost.contains(machine) {
                    lost.push(machine.clone());
                }
            }
            Fault::DegradeLink { from, to, .. } => assert_ne!(from, to),
            _ => {}
        }
    }
    assert!(lost.len() <= shape.max_lost_nodes, "{lost:?}");
    for timed in &plan.model {
        assert!(timed.at >= shape.window_start && timed.at < shape.fault_phase, "{timed:?}");
        if let Some(duration) = timed.fault.duration() {
            assert!(timed.at + duration <= shape.fault_phase, "{timed:?} outlasts the fault phase");
        }
        match &timed.fault {
            ModelFault::WatchCacheLag { server, .. } => assert!(shape.control_plane.contains(server)),
            ModelFault::ContainerCrash { node, .. } => assert!(shape.nodes.contains(node)),
            ModelFault::PullFailure { image, .. } => assert!(shape.images.contains(image)),
            ModelFault::CompactNow => {}
        }
    }
}

fn plan_hash(plan: &FaultPlan) -> u64 {
    let mut hasher = StableHasher::new();
    hasher.write_str(&serde_json::to_string(plan).unwrap());
    hasher.finish()
}

#[test]
fn class_names_round_trip() {
    for class in FaultClass::ALL {
        assert_eq!(FaultClass::from_name(class.name()), Some(class));
    }
    assert_eq!(FaultClass::from_name("no_such_class"), None);
}

#[test]
fn the_same_seed_gives_the_same_plan_and_the_plans_are_pinned() {
    let shape = shape();
    let mut pinned = Vec::new();
    for class in FaultClass::ALL {
        let plan = plan_from_seed(class, &shape, 42);
        assert_eq!(plan, plan_from_seed(class, &shape, 42), "{class}");
        assert!(!plan.is_empty(), "{class}");
        assert_valid(&plan, &shape);
        pinned.push(format!("{class}: {:016x}\n{}", plan_hash(&plan), describe(&plan)));
    }
    insta::assert_snapshot!(pinned.join("\n"));
}

#[test]
fn seeded_plans_are_valid_and_draw_only_their_class() {
    let shape = shape();
    for class in FaultClass::ALL {
        let mut distinct = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let plan = plan_from_seed(class, &shape, seed);
            assert_valid(&plan, &shape);
            assert!(!plan.is_empty() && plan.len() <= shape.max_faults, "{class} {seed}: {plan:?}");
            distinct.insert(plan_hash(&plan));
            if class != FaultClass::Swarm {
                let kinds: Vec<String> = plan
                    .engine
                    .faults
                    .iter()
                    .map(|timed| timed.fault.kind().as_str().to_string())
                    .chain(plan.model.iter().map(|timed| timed.fault.kind_name().to_string()))
                    .collect();
                for kind in kinds {
                    assert!(class.fired_kinds().contains(&kind.as_str()), "{class} drew {kind}");
                }
            }
        }
        assert!(distinct.len() > 150, "{class}: only {} distinct plans in 200 seeds", distinct.len());
    }
}

#[test]
fn swarm_enables_a_different_mix_per_seed() {
    let shape = shape();
    let mut mixes = std::collections::BTreeSet::new();
    for seed in 0..100 {
        let plan = plan_from_seed(FaultClass::Swarm, &shape, seed);
        let mut kinds: Vec<&str> = plan
            .engine
            .faults
            .iter()
            .map(|timed| timed.fault.kind().as_str())
            .chain(plan.model.iter().map(|timed| timed.fault.kind_name()))
            .collect();
        kinds.sort();
        kinds.dedup();
        mixes.insert(kinds.join(","));
    }
    assert!(mixes.len() > 20, "{mixes:?}");
}

#[test]
fn bytes_give_valid_plans_and_empty_bytes_the_simplest() {
    let shape = shape();
    let mut rng = kubedst_sim::SimRng::for_stream(9, "bytes");
    for class in FaultClass::ALL {
        for _ in 0..100 {
            let bytes: Vec<u8> = (0..256).map(|_| rng.below(256) as u8).collect();
            let mut unstructured = arbitrary::Unstructured::new(&bytes);
            let plan = plan_from_bytes(class, &shape, &mut unstructured).unwrap();
            assert_valid(&plan, &shape);
            assert!(plan.len() <= shape.max_faults);
        }
        // Bytes that run out give the least of every range: one fault at the window's start.
        let plan = plan_from_bytes(class, &shape, &mut arbitrary::Unstructured::new(&[])).unwrap();
        assert_eq!(plan.len(), 1, "{class}: {plan:?}");
        let at = plan.engine.faults.first().map(|timed| timed.at).or(plan.model.first().map(|timed| timed.at));
        assert_eq!(at, Some(shape.window_start), "{class}");
    }
}

#[test]
fn strategies_give_valid_plans() {
    let shape = shape();
    let mut runner = TestRunner::deterministic();
    for class in FaultClass::ALL {
        let strategy = plan_strategy(class, &shape);
        for _ in 0..100 {
            let plan = strategy.new_tree(&mut runner).unwrap().current();
            assert_valid(&plan, &shape);
            assert!(!plan.is_empty() && plan.len() <= shape.max_faults, "{class}: {plan:?}");
        }
    }
}

/// Shrinking a plan as if every plan failed ends at one fault, at the window's start, as short
/// and as mild as the ranges allow.
#[test]
fn shrinking_goes_to_fewer_shorter_simpler_faults() {
    let shape = shape();
    let mut runner = TestRunner::deterministic();
    for class in [FaultClass::NetworkChaos, FaultClass::NodeCrash, FaultClass::WatchCacheLag, FaultClass::Swarm] {
        let mut tree = draws_strategy(class, &shape).new_tree(&mut runner).unwrap();
        while tree.simplify() {}
        let draws = tree.current();
        assert_eq!(draws.len(), 1, "{class}: {draws:?}");
        let plan = plan_from_draws(&shape, &draws);
        assert_valid(&plan, &shape);
        match &draws[0] {
            FaultDraw::LinkChaos { at_ms, duration_ms, loss_permille, tail_permille, .. } => {
                assert_eq!((*at_ms, *duration_ms, *loss_permille, *tail_permille), (10_000, 100, 0, 0))
            }
            FaultDraw::NodeCrash { at_ms, down_ms, node } => assert_eq!((*at_ms, *down_ms, *node), (10_000, 500, 0)),
            FaultDraw::WatchCacheLag { at_ms, duration_ms, .. } => assert_eq!((*at_ms, *duration_ms), (10_000, 200)),
            FaultDraw::Compact { at_ms } => assert_eq!(*at_ms, 10_000),
            other => assert!(class == FaultClass::Swarm, "{class}: {other:?}"),
        }
        if class != FaultClass::Swarm {
            assert!(class == class_of(&draws[0]) || class == FaultClass::Swarm);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any typed draws, even with indices past the lists and times past the window, map to a
    /// valid plan.
    #[test]
    fn any_draws_map_to_a_valid_plan(draws in draws_strategy(FaultClass::Swarm, &shape()), offset in 0u64..1_000_000) {
        let shape = shape();
        let shifted: Vec<FaultDraw> = draws
            .into_iter()
            .map(|draw| match draw {
                FaultDraw::NodeCrash { node, at_ms, down_ms } => FaultDraw::NodeCrash { node: node + 97, at_ms: at_ms + offset, down_ms },
                other => other,
            })
            .collect();
        assert_valid(&plan_from_draws(&shape, &shifted), &shape);
    }
}
