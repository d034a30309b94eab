//! Kubernetes' controller arithmetic and ranking rules as pure, deterministic functions.
//!
//! Each function mirrors one upstream rule (kubernetes/kubernetes, 1.32 or later) and its rustdoc
//! names the upstream file and function. The inputs are small structs defined here, not the object
//! model, so that controllers can adapt their objects to them.
//!
//! Architecture invariant: nothing in `rules` reads a clock, draws randomness or iterates a hash map.
//! Time is virtual integer nanoseconds passed in by the caller. Decisions use integer arithmetic
//! only; where upstream computes with `float64`, the function reproduces the float result exactly
//! with integers (see [`hpa`] and [`pod`]) and says so.
//!
//! Code map:
//! - [`deployment`]: maxSurge/maxUnavailable, new and old ReplicaSet sizes during a rollout,
//!   proportional scaling, progress predicates, revisions and the pod-template-hash.
//! - [`pod`]: pod availability and the deletion ranking of active pods.
//! - [`scheduling`]: filter plugins with upstream's reason strings, the "0/N nodes are available"
//!   summary, scores, taints and tolerations, NoExecute eviction delay.
//! - [`job`]: pod-failure backoff, how many pods to create or delete, backoffLimit.
//! - [`kubelet`]: container restart (CrashLoopBackOff) backoff.
//! - [`hpa`]: the replica calculator (tolerance, unready and missing pods, utilization and
//!   average value), stabilization windows, scale-up/down rate policies, min/max.
//! - [`pdb`]: expected pods, desired healthy, disruptions allowed.

pub mod deployment;
pub mod hpa;
pub mod job;
pub mod kubelet;
pub mod pdb;
pub mod pod;
pub mod scheduling;

mod float_emulation;

use std::fmt;

/// An error from a rule: an input that upstream would reject (a bad percentage string, a value out
/// of range). Rules never panic on user input; they return this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesError {
    /// An IntOrString that is neither an integer nor a string `"<int>%"`, as upstream's
    /// `intstr.GetScaledValueFromIntOrPercent` rejects it.
    InvalidIntOrPercent {
        /// The offending string.
        value: String,
    },
    /// A result that does not fit in the 32-bit field upstream stores it in.
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
    /// An argument outside its documented domain (for example a negative replica count).
    InvalidArgument {
        /// Which argument and why.
        reason: String,
    },
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RulesError::InvalidIntOrPercent { value } => {
                write!(f, "invalid value for IntOrString: {value:?} is not an integer or a percentage")
            }
            RulesError::Overflow { what } => write!(f, "{what} overflows a 32-bit integer"),
            RulesError::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
        }
    }
}

impl std::error::Error for RulesError {}

/// Narrows an `i64` to `i32`, reporting what overflowed.
pub(crate) fn to_i32(value: i64, what: &'static str) -> Result<i32, RulesError> {
    i32::try_from(value).map_err(|_| RulesError::Overflow { what })
}
