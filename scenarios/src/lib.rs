//! kubedst-scenarios: the scenario format, the built-in scenarios, fault profiles and generators,
//! and what the `kubedst` command does with many runs: repro files, sweeps over seeds, shrinking
//! a failing run and checking that a seed always gives the same run.
//!
//! [`Scenario`] is the entry point: [`Scenario::load`] a file, [`Scenario::parse`] text or take a
//! [`Scenario::builtin`], then [`Scenario::to_run_spec`] for a seed and run it with
//! [`Scenario::run_spec`] (which holds the cluster to the scenario's invariants) or
//! `kubedst_core::harness::run`.

pub mod determinism;
pub mod format;
pub mod generators;
pub mod library;
pub mod profiles;
pub mod repro;
pub mod scenario;
pub mod shrink;
pub mod sweep;

pub use scenario::{builtin_names, invariant_names, parse_fault_plan, profile_names, Scenario, ScenarioError};
