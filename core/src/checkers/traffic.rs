//! Always: zero downtime. Every client request to a Service during a rollout of a Deployment
//! behind it succeeds, except the bounded, attributed losses that the zero-downtime table in the README allows:
//! a request routed to a pod whose machine crashed, was lost, paused, partitioned or isolated,
//! or whose container a model fault hit, within [`super::FAULT_ATTRIBUTION_BOUND`] of that fault's
//! start or end; or a request whose own client machine was so faulted. Every other fault class
//! (network chaos, control-plane partitions, crashes and failovers, clock skew, stale watch caches,
//! compaction) allows no failed request at all, because no fault of those classes is ever an
//! excuse here.
//!
//! Ground truth is each traffic source's log (`Traffic::log`, which survives the client's crashes).
//! The checker reads new records after every engine step, so it knows each record's true time
//! (the log's own times are the client machine's clock). Requests before the Service first
//! answered (warm-up) do not count.

use super::faults::Harm;
use super::rollout::RolloutTracker;
use super::{Cadence, Change, Checker, Label, Violation, World};
use crate::api::HttpOutcome;
use crate::node::Traffic;
use crate::objects::{Object, StringMap};
use std::collections::BTreeMap;

/// Failed requests reported one by one per traffic source; later ones are only counted.
const REPORTED_FAILURES_PER_SOURCE: u64 = 5;

/// One traffic source's progress through its log.
#[derive(Debug, Default, Clone)]
struct SourceState {
    /// Records judged so far.
    cursor: usize,
    /// Whether the Service has answered once.
    warmed_up: bool,
    /// Failures with no fault to blame.
    unexcused: u64,
}

/// The zero-downtime checker.
#[derive(Debug, Default)]
pub struct ZeroDowntime {
    tracker: RolloutTracker,
    /// Service `namespace/name` -> its selector.
    services: BTreeMap<String, StringMap>,
    /// Pod IP -> every (node, uid) that ever had it.
    pod_ips: BTreeMap<String, Vec<(String, String)>>,
    sources: Vec<SourceState>,
    /// Requests judged (sent during a rollout, after warm-up), and how many failed with an excuse.
    judged: u64,
    pub excused_failures: u64,
}

fn outcome_name(outcome: &HttpOutcome) -> &'static str {
    match outcome {
        HttpOutcome::Ok => "ok",
        HttpOutcome::NoEndpoints => "no endpoints",
        HttpOutcome::Refused => "connection refused",
        HttpOutcome::Timeout => "timeout",
        HttpOutcome::DnsFailure => "DNS failure",
    }
}

impl ZeroDowntime {
    /// The rollout of a Deployment behind `service` that overlaps `[from_ns, to_ns]`, if any.
    fn rollout_during(&self, service: &str, from_ns: u64, to_ns: u64) -> Option<String> {
        let selector = self.services.get(service)?;
        let namespace = service.split_once('/').map_or("default", |(namespace, _)| namespace);
        self.tracker.deployments.values().find_map(|deployment| {
            let behind = deployment.namespace == namespace
                && !selector.is_empty()
                && selector.iter().all(|(key, value)| deployment.template_labels.get(key) == Some(value));
            let overlaps =
                deployment.rollouts.iter().any(|(start, end)| *start <= to_ns && end.is_none_or(|end| from_ns <= end));
            (behind && overlaps).then(|| format!("{}/{}", deployment.namespace, deployment.name))
        })
    }
}

impl Checker for ZeroDowntime {
    fn name(&self) -> &'static str {
        "zero-downtime"
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

    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        self.tracker.observe(change);
        match (change.object.as_deref(), change.previous.as_deref()) {
            (Some(Object::Service(service)), _) => {
                let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
                self.services.insert(format!("{namespace}/{}", service.metadata.name), service.spec.selector.clone());
            }
            (None, Some(Object::Service(service))) => {
                let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
                self.services.remove(&format!("{namespace}/{}", service.metadata.name));
            }
            (Some(Object::Pod(pod)), _) => {
                if let (Some(ip), Some(node), Some(uid)) = (
                    pod.status.pod_ip.as_ref().filter(|ip| !ip.is_empty()),
                    pod.spec.node_name.as_ref(),
                    pod.metadata.uid.as_ref(),
                ) {
                    let holders = self.pod_ips.entry(ip.clone()).or_default();
                    if !holders.iter().any(|(_, known)| known == uid) {
                        holders.push((node.clone(), uid.clone()));
                    }
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn inspect(&mut self, world: &World<'_>) -> Vec<Violation> {
        let cluster = world.cluster;
        if self.sources.len() < cluster.traffic.len() {
            self.sources.resize(cluster.traffic.len(), SourceState::default());
        }
        let mut violations = Vec::new();
        for (index, &id) in cluster.traffic.iter().enumerate() {
            let Some(traffic) = cluster.sim.component::<Traffic>(id) else { continue };
            if traffic.log.len() <= self.sources[index].cursor {
                continue;
            }
            let client_machine = cluster.sim.machine_name(cluster.sim.machine_of(id)).to_string();
            let start = self.sources[index].cursor;
            self.sources[index].cursor = traffic.log.len();
            for record in &traffic.log[start..] {
                let source = &mut self.sources[index];
                if !source.warmed_up {
                    source.warmed_up = record.outcome == HttpOutcome::Ok;
                    continue;
                }
                // The record appeared in this step: its true end is now, its true start that
                // much earlier as the client's clock measured it.
                let done_ns = world.now_ns;
                let sent_ns = done_ns.saturating_sub(record.done_ns.saturating_sub(record.sent_ns));
                let Some(deployment) = self.rollout_during(&traffic.service, sent_ns, done_ns) else { continue };
                self.judged += 1;
                if record.outcome == HttpOutcome::Ok {
                    continue;
                }
                let holders = self.pod_ips.get(&record.pod_ip).map(Vec::as_slice).unwrap_or_default();
                let excuse = holders
                    .iter()
                    .find_map(|(node, uid)| world.faults.explain(node, Some(uid), Harm::Unreachable, sent_ns, done_ns))
                    .or_else(|| world.faults.explain(&client_machine, None, Harm::Unreachable, sent_ns, done_ns));
                if excuse.is_some() {
                    self.excused_failures += 1;
                    continue;
                }
                let source = &mut self.sources[index];
                source.unexcused += 1;
                if source.unexcused > REPORTED_FAILURES_PER_SOURCE {
                    continue;
                }
                let served_by = match holders.first() {
                    Some((node, _)) => format!(", pod {} on {node}", record.pod_ip),
                    None if !record.pod_ip.is_empty() => format!(", pod {}", record.pod_ip),
                    None => String::new(),
                };
                violations.push(Violation {
                    invariant: "zero-downtime",
                    at_ns: done_ns,
                    revision: world.revision,
                    message: format!(
                        "{}: request {} to {} failed ({}{served_by}) during the rollout of deployment {deployment}, and no fault of the machine or container that served it explains it{}",
                        cluster.sim.component_name(id),
                        record.id,
                        traffic.service,
                        outcome_name(&record.outcome),
                        if source.unexcused == REPORTED_FAILURES_PER_SOURCE { " (later failures of this source are counted, not listed)" } else { "" },
                    ),
                });
            }
        }
        violations
    }
}
