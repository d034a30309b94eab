//! kubedst-scenarios: the scenario format, the built-in scenarios, fault profiles and generators,
//! and what the `kubedst` command does with many runs: repro files, sweeps over seeds, shrinking
//! a failing run and checking that a seed always gives the same run.

pub mod determinism;
pub mod repro;
pub mod shrink;
pub mod sweep;
