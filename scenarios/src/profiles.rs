//! Fault profiles: a name that stands for a family of fault plans, drawn from the seed.
//!
//! `none` is the empty plan. Every other profile is a fault class of
//! [`crate::generators`], drawn with `plan_from_seed` for the scenario's cluster shape.

use kubedst_core::cluster::ClusterConfig;
use kubedst_core::harness::FaultPlan;
use std::time::Duration;

/// The profile without faults.
pub const NONE: &str = "none";

/// Every profile name.
pub fn names() -> Vec<&'static str> {
    vec![NONE]
}

/// The plan a profile draws for a seed; `None` for an unknown profile.
pub fn plan(name: &str, _cluster: &ClusterConfig, _fault_phase: Duration, _seed: u64) -> Option<FaultPlan> {
    match name {
        NONE => Some(FaultPlan::default()),
        _ => None,
    }
}
