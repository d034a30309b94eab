//! kubedst-scenarios: the scenario format, the built-in scenarios, fault profiles and generators.

pub mod generators;
