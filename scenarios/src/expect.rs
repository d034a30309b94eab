//! Timeline expectations: a scenario's statements of what the cluster looks like at a moment
//! (`expect:` entries), checked against etcd's ground truth when that moment comes.
//!
//! An expectation names a Deployment and bounds its `spec.replicas` (what `kubectl scale` and the
//! HorizontalPodAutoscaler set) or its `status.availableReplicas`. The checker looks at the first
//! engine step at or after the expectation's time; while etcd is down it keeps looking, since
//! ground truth is unreadable then. Loading refuses expectations after the fault phase ends,
//! since the liveness phase may stop as soon as the cluster converges.

use kubedst_core::api::ObjectKey;
use kubedst_core::checkers::{Cadence, Checker, Label, Violation, World};
use kubedst_core::objects::{Kind, Object};
use std::time::Duration;

/// The invariant name of timeline expectations in reports.
pub const EXPECTATIONS: &str = "expectations";

/// What must hold of one Deployment at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub at: Duration,
    pub namespace: String,
    pub deployment: String,
    pub bounds: Vec<Bound>,
}

impl Expectation {
    /// One line for a timeline listing: `expect deployment/web: spec.replicas at least 8`.
    pub fn describe(&self) -> String {
        let bounds: Vec<String> = self.bounds.iter().map(|bound| bound.describe()).collect();
        let namespace = if self.namespace == "default" { String::new() } else { format!(" -n {}", self.namespace) };
        format!("expect deployment/{}{namespace}: {}", self.deployment, bounds.join(", "))
    }
}

/// One bound on a Deployment's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    ReplicasExactly(i32),
    ReplicasAtLeast(i32),
    ReplicasAtMost(i32),
    AvailableAtLeast(i32),
}

impl Bound {
    fn describe(self) -> String {
        match self {
            Bound::ReplicasExactly(n) => format!("spec.replicas {n}"),
            Bound::ReplicasAtLeast(n) => format!("spec.replicas at least {n}"),
            Bound::ReplicasAtMost(n) => format!("spec.replicas at most {n}"),
            Bound::AvailableAtLeast(n) => format!("status.availableReplicas at least {n}"),
        }
    }

    /// The bound's failure against the Deployment's desired and available counts, in words.
    fn broken_by(self, replicas: i32, available: i32) -> Option<String> {
        let (holds, have) = match self {
            Bound::ReplicasExactly(n) => (replicas == n, replicas),
            Bound::ReplicasAtLeast(n) => (replicas >= n, replicas),
            Bound::ReplicasAtMost(n) => (replicas <= n, replicas),
            Bound::AvailableAtLeast(n) => (available >= n, available),
        };
        (!holds).then(|| format!("expected {}, found {have}", self.describe()))
    }
}

/// Checks a scenario's expectations, each once, at its moment.
pub struct ExpectationChecker {
    /// The expectations not yet checked, in time order.
    pending: Vec<Expectation>,
    checked: u64,
}

impl ExpectationChecker {
    pub fn new(mut expectations: Vec<Expectation>) -> ExpectationChecker {
        expectations.sort_by_key(|expectation| expectation.at);
        expectations.reverse();
        ExpectationChecker { pending: expectations, checked: 0 }
    }

    /// The expectations still waiting for their moment (or for etcd to come back).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

impl Checker for ExpectationChecker {
    fn name(&self) -> &'static str {
        EXPECTATIONS
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn cadence(&self) -> Cadence {
        Cadence::EveryStep
    }

    fn inspect(&mut self, world: &World<'_>) -> Vec<Violation> {
        let mut violations = Vec::new();
        // etcd down: nothing is known until it returns.
        if world.revision == 0 {
            return violations;
        }
        while let Some(next) = self.pending.last() {
            if u64::try_from(next.at.as_nanos()).unwrap_or(u64::MAX) > world.now_ns {
                break;
            }
            let expectation = self.pending.pop().expect("the last expectation exists");
            self.checked += 1;
            let key = ObjectKey::new(Kind::Deployment, &expectation.namespace, &expectation.deployment);
            let moment = kubedst_sim::serde_duration::format(expectation.at);
            let name = format!("{}/{}", expectation.namespace, expectation.deployment);
            let message = match world.cluster.stored(&key).as_deref() {
                Some(Object::Deployment(deployment)) => {
                    let replicas = deployment.spec.replicas.unwrap_or(1);
                    let available = deployment.status.available_replicas;
                    let broken: Vec<String> =
                        expectation.bounds.iter().filter_map(|bound| bound.broken_by(replicas, available)).collect();
                    (!broken.is_empty()).then(|| format!("at {moment}, deployment {name}: {}", broken.join("; ")))
                }
                _ => Some(format!("at {moment}, deployment {name} does not exist")),
            };
            if let Some(message) = message {
                violations.push(Violation {
                    invariant: EXPECTATIONS,
                    at_ns: world.now_ns,
                    revision: world.revision,
                    message,
                });
            }
        }
        violations
    }

    fn exercised(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_say_what_was_expected_and_what_was_found() {
        assert_eq!(
            Bound::ReplicasAtLeast(4).broken_by(2, 2),
            Some("expected spec.replicas at least 4, found 2".into())
        );
        assert_eq!(Bound::ReplicasAtLeast(4).broken_by(4, 0), None);
        assert_eq!(Bound::ReplicasAtMost(3).broken_by(4, 4), Some("expected spec.replicas at most 3, found 4".into()));
        assert_eq!(Bound::ReplicasExactly(2).broken_by(2, 1), None);
        assert_eq!(Bound::ReplicasExactly(2).broken_by(3, 1), Some("expected spec.replicas 2, found 3".into()));
        assert_eq!(
            Bound::AvailableAtLeast(5).broken_by(10, 4),
            Some("expected status.availableReplicas at least 5, found 4".into())
        );
    }
}
