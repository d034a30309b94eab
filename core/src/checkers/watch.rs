//! Always: every watch sees events in order and without gaps.
//!
//! Two places see a watch's events, and each counts what it could not accept (cheap counters in
//! the components, read here): the API servers' watch caches, which follow etcd's watch and check
//! that each event follows on from the cached value of its key (a skipped event of that key shows
//! as a mismatch), and every informer (controller managers, schedulers, kubelets, kube-proxies,
//! DNS), which checks that the object events of one watch come in resourceVersion order. A counter
//! that grows is a violation. The counters live in volatile state, so the checker reads them after
//! every engine step: a component cannot count a violation and crash before it is seen.

use super::{Cadence, Checker, Label, Violation, World};
use crate::apiserver::ApiServer;
use crate::client::Informer;
use crate::host::ControllerHost;
use crate::node::{Dns, KubeProxy, Kubelet};
use kubedst_sim::ComponentId;
use std::collections::BTreeMap;

/// The watch checker: per component, the counters last read.
#[derive(Debug, Default)]
pub struct WatchInOrder {
    /// Component -> (events seen, violations counted) at the last look.
    last: BTreeMap<ComponentId, (u64, u64)>,
    /// Watch events judged (watch-cache events and informer object events).
    judged: u64,
}

fn informer_counters(informers: &[Informer]) -> (u64, u64) {
    informers
        .iter()
        .fold((0, 0), |(events, bad), informer| (events + informer.watch_events, bad + informer.watch_out_of_order))
}

impl WatchInOrder {
    fn counters(world: &World<'_>, id: ComponentId) -> Option<(u64, u64, &'static str)> {
        let sim = &world.cluster.sim;
        if let Some(server) = sim.component::<ApiServer>(id) {
            return Some((
                server.watch_cache_events,
                server.watch_cache_gaps,
                "watch-cache event that skipped one of its key",
            ));
        }
        let informers = if let Some(host) = sim.component::<ControllerHost>(id) {
            host.informers()
        } else if let Some(kubelet) = sim.component::<Kubelet>(id) {
            kubelet.informers()
        } else if let Some(proxy) = sim.component::<KubeProxy>(id) {
            proxy.informers()
        } else if let Some(dns) = sim.component::<Dns>(id) {
            dns.informers()
        } else {
            return None;
        };
        let (events, bad) = informer_counters(informers);
        Some((events, bad, "informer watch event out of resourceVersion order"))
    }
}

impl Checker for WatchInOrder {
    fn name(&self) -> &'static str {
        "watch-in-order"
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
        let watchers = cluster
            .api_servers
            .iter()
            .chain(&cluster.controller_managers)
            .chain(&cluster.schedulers)
            .chain(&cluster.kubelets)
            .chain(&cluster.proxies)
            .chain(std::iter::once(&cluster.dns));
        let mut violations = Vec::new();
        for &id in watchers {
            let Some((events, bad, what)) = WatchInOrder::counters(world, id) else {
                // Down: it restarts with fresh counters.
                self.last.remove(&id);
                continue;
            };
            let (seen_events, seen_bad) = self.last.get(&id).copied().unwrap_or((0, 0));
            // Counters below the last look belong to a restarted component.
            let (seen_events, seen_bad) =
                if events < seen_events || bad < seen_bad { (0, 0) } else { (seen_events, seen_bad) };
            self.judged += events - seen_events;
            if bad > seen_bad {
                violations.push(Violation {
                    invariant: self.name(),
                    at_ns: world.now_ns,
                    revision: world.revision,
                    message: format!(
                        "{}: {} {what}{}",
                        cluster.sim.component_name(id),
                        bad - seen_bad,
                        if bad - seen_bad == 1 { "" } else { "s" }
                    ),
                });
            }
            self.last.insert(id, (events, bad));
        }
        violations
    }
}
