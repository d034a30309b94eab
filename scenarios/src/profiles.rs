//! Fault profiles: a name that stands for a family of fault plans, drawn from the seed.
//!
//! `none` is the empty plan. Every other profile is a fault class of [`crate::generators`]
//! (`network_chaos`, `node_crash`, ...), drawn with [`plan_from_seed`] for the scenario's cluster
//! shape, so each seed of a sweep tries other faults.

use crate::generators::{plan_from_seed, ClusterShape, FaultClass};
use kubedst_core::harness::FaultPlan;

/// The profile without faults.
pub const NONE: &str = "none";

/// Every profile name: `none`, then the fault classes.
pub fn names() -> Vec<&'static str> {
    std::iter::once(NONE).chain(FaultClass::ALL.iter().map(|class| class.name())).collect()
}

/// The plan a profile draws for a seed; `None` for an unknown profile.
pub fn plan(name: &str, shape: &ClusterShape, seed: u64) -> Option<FaultPlan> {
    if name == NONE {
        return Some(FaultPlan::default());
    }
    FaultClass::from_name(name).map(|class| plan_from_seed(class, shape, seed))
}
