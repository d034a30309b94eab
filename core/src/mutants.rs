//! Deliberately broken controllers, for negative controls: with a mutant on, the property suites
//! must fail, which proves that they can (TigerBeetle's canaries, mutation testing's mutants).
//!
//! Off by default and free when off: a [`Mutants`] set is a `Copy` bit set that a controller
//! tests with one branch at the point it would misbehave. A mutant is switched on for a cluster
//! with [`crate::cluster::ClusterConfig::with_mutants`], which hands the set to the standard
//! controllers as they are built. New mutants take the next bit and a line in [`Mutant::ALL`].

use std::fmt;

/// One deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutant {
    /// The ReplicaSet controller treats its expectations as always satisfied, so it acts on an
    /// informer cache that has not seen its own creates yet and makes too many pods.
    ReplicaSetIgnoresExpectations,
    /// The Deployment controller scales old ReplicaSets down as if `maxUnavailable` were 100 %,
    /// so a rollout takes every old pod away before new ones are ready.
    DeploymentIgnoresMaxUnavailable,
}

impl Mutant {
    pub const ALL: [Mutant; 2] = [Mutant::ReplicaSetIgnoresExpectations, Mutant::DeploymentIgnoresMaxUnavailable];

    pub fn name(self) -> &'static str {
        match self {
            Mutant::ReplicaSetIgnoresExpectations => "replicaset_ignores_expectations",
            Mutant::DeploymentIgnoresMaxUnavailable => "deployment_ignores_max_unavailable",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|mutant| mutant.name() == name)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The mutants switched on: none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mutants {
    bits: u64,
}

impl Mutants {
    pub const NONE: Mutants = Mutants { bits: 0 };

    pub fn only(mutant: Mutant) -> Mutants {
        Mutants { bits: mutant.bit() }
    }

    pub fn with(self, mutant: Mutant) -> Mutants {
        Mutants { bits: self.bits | mutant.bit() }
    }

    #[inline]
    pub fn contains(self, mutant: Mutant) -> bool {
        self.bits & mutant.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The mutants switched on, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Mutant> {
        Mutant::ALL.into_iter().filter(move |mutant| self.contains(*mutant))
    }
}
