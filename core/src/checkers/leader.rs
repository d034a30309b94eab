//! Always: at most one replica per lease acts as leader at any instant.
//!
//! Ground truth is each `ControllerHost` replica's own belief ([`ControllerHost::is_leader`]):
//! a replica that believes it leads runs its reconcilers and writes. The checker groups the
//! replicas that run leader election (controller managers, schedulers and cloud controller
//! managers) by lease and reads them after every engine step (a belief
//! changes only when a replica handles an input, and every handled input is one step).

use super::{Cadence, Checker, Label, Violation, World};
use crate::host::ControllerHost;
use std::collections::{BTreeMap, BTreeSet};

/// The leader checker.
#[derive(Debug, Default)]
pub struct OneLeaderPerLease {
    /// Leases with more than one leader at the last look (reported once per overlap).
    overlapping: BTreeSet<String>,
    /// Instants at which a lease with candidates was judged.
    judged: u64,
}

impl Checker for OneLeaderPerLease {
    fn name(&self) -> &'static str {
        "one-leader-per-lease"
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn cadence(&self) -> Cadence {
        Cadence::EveryStep
    }

    fn exercised(&self) -> u64 {
        self.judged
    }

    fn inspect(&mut self, world: &World<'_>) -> Vec<Violation> {
        let cluster = world.cluster;
        let replicas = cluster.controller_managers.len() + cluster.schedulers.len();
        if replicas <= 2 && cluster.cloud_controller_managers.len() <= 1 {
            // One replica of each (no leader election): nothing can overlap. Still one judgement
            // per step, so that the report shows the property was looked at.
            self.judged += 1;
            return Vec::new();
        }
        // Lease (namespace, name) -> the replicas that believe they hold it. Borrowed keys: this
        // runs after every step.
        let mut leaders: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        let replicas =
            cluster.controller_managers.iter().chain(&cluster.schedulers).chain(&cluster.cloud_controller_managers);
        for &id in replicas {
            let Some(host) = cluster.sim.component::<ControllerHost>(id) else { continue };
            let Some(elector) = host.elector() else { continue };
            let config = elector.config();
            let holders = leaders.entry((config.namespace.as_str(), config.name.as_str())).or_default();
            if host.is_leader() {
                holders.push(cluster.sim.component_name(id));
            }
        }
        let mut violations = Vec::new();
        for ((namespace, name), holders) in &leaders {
            self.judged += 1;
            if holders.len() <= 1 && self.overlapping.is_empty() {
                continue;
            }
            let lease = format!("{namespace}/{name}");
            if holders.len() > 1 {
                if self.overlapping.insert(lease.clone()) {
                    violations.push(Violation {
                        invariant: self.name(),
                        at_ns: world.now_ns,
                        revision: world.revision,
                        message: format!("lease {lease} has {} acting leaders: {}", holders.len(), holders.join(", ")),
                    });
                }
            } else {
                self.overlapping.remove(&lease);
            }
        }
        violations
    }
}
