//! Invariant checkers over ground truth: etcd's committed history and the components' real state.
//!
//! Each checker is one property, labelled always (safety) or eventually (liveness). A checker
//! consumes [`Change`]s, one per committed write in revision order ([`Checker::observe`]), and
//! may look at the components' state through a [`World`] ([`Checker::inspect`]): runtimes,
//! traffic logs, leader electors, watch caches and informers, read with `Sim::component`, never
//! through a controller's cache. [`HistoryFeed`] reads the changes from the etcd component's
//! store as a run goes. Every checker has a canary test (`core/tests/checkers*.rs`) that feeds it
//! a bad history or a doctored state and sees it fail, and counts its observations
//! ([`Checker::exercised`]) so that a green run cannot hide a promise nobody checked.
//!
//! Files: this one holds the history checkers (a pod binds once, node capacity, revisions grow);
//! `watch.rs` (watches see events in order without gaps), `leader.rs` (one leader per lease),
//! `rollout.rs` (rollout availability), `traffic.rs` (zero downtime), `faults.rs` (which
//! machines and pods a fault touched, and when: the attribution of losses) and `liveness.rs` (the
//! eventual promises, reported in words).

pub mod faults;
pub mod leader;
pub mod liveness;
pub mod rollout;
pub mod traffic;
pub mod watch;

pub use faults::{FaultLog, FAULT_ATTRIBUTION_BOUND};
pub use leader::OneLeaderPerLease;
pub use liveness::{unconverged, unmet_promises, Unmet};
pub use rollout::RolloutAvailability;
pub use traffic::ZeroDowntime;
pub use watch::WatchInOrder;

use crate::api::ObjectKey;
use crate::cluster::Cluster;
use crate::etcd::Etcd;
use crate::objects::{Kind, Object};
use crate::store::{Revision, WatchEvent};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// When a property must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    /// At every step (safety).
    Always,
    /// By the end of the liveness phase (liveness).
    Eventually,
}

/// When [`Checker::inspect`] must run so that no violation can slip between two looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cadence {
    /// Only the history matters: `inspect` is not needed.
    History,
    /// After every engine step that committed a write (the state it reads changes only with writes).
    Writes,
    /// After every engine step (the state it reads changes without writes, and may be lost in a crash).
    EveryStep,
}

/// One committed write, as the checkers see it.
#[derive(Clone, Debug)]
pub struct Change {
    pub revision: Revision,
    /// Virtual time of the check (engine time), in nanoseconds.
    pub at_ns: u64,
    pub key: ObjectKey,
    /// The object after the write; `None` for a delete.
    pub object: Option<Rc<Object>>,
    /// The object before the write; `None` for a create.
    pub previous: Option<Rc<Object>>,
}

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub at_ns: u64,
    pub revision: Revision,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated at revision {} ({} ns): {}", self.invariant, self.revision, self.at_ns, self.message)
    }
}

/// What a checker may look at besides the history: the cluster (its components' real state
/// through `Sim::component`) and the faults that struck it.
pub struct World<'a> {
    pub cluster: &'a Cluster,
    pub faults: &'a FaultLog,
    /// True (engine) time, in nanoseconds.
    pub now_ns: u64,
    /// etcd's current revision (0 while etcd is down).
    pub revision: Revision,
}

/// One property over the history of writes and the components' state.
pub trait Checker {
    fn name(&self) -> &'static str;
    fn label(&self) -> Label;
    /// Looks at one committed write.
    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        let _ = change;
        Vec::new()
    }
    /// Looks at the components' state, at the cadence [`Checker::cadence`] asks for.
    fn inspect(&mut self, world: &World<'_>) -> Vec<Violation> {
        let _ = world;
        Vec::new()
    }
    fn cadence(&self) -> Cadence {
        Cadence::History
    }
    /// How many observations this checker made that could have failed (writes or states it
    /// judged): zero means the property was never exercised.
    fn exercised(&self) -> u64;
}

/// Reads the etcd component's history from where it left off.
#[derive(Debug, Default)]
pub struct HistoryFeed {
    after: Revision,
}

impl HistoryFeed {
    /// The changes committed since the last call. If etcd compacted history the feed has not read
    /// yet, that is a harness error (checkers must run at least every compaction interval).
    pub fn next_changes(&mut self, etcd: &Etcd, at_ns: u64) -> Result<Vec<Change>, String> {
        let batch = etcd.store().events_since("/registry/", self.after, usize::MAX).map_err(|err| {
            format!("the checkers fell behind etcd's compaction ({err}); check more often than every 5 minutes")
        })?;
        self.after = batch.progress_revision;
        Ok(batch
            .events
            .into_iter()
            .filter_map(|event| {
                let (revision, key, object, previous) = match event {
                    WatchEvent::Put { kv, prev_kv } => {
                        (kv.mod_revision, kv.key, Some(kv.value), prev_kv.map(|p| p.value))
                    }
                    WatchEvent::Delete { key, revision, prev_kv } => (revision, key, None, Some(prev_kv.value)),
                };
                let sample = object.as_ref().or(previous.as_ref())?;
                let key_of = ObjectKey::of(sample);
                debug_assert_eq!(key_of.store_key(), key);
                Some(Change { revision, at_ns, key: key_of, object, previous })
            })
            .collect())
    }
}

/// Always: a pod is bound at most once and never moves. Once `spec.nodeName` is set on a pod
/// (one uid), no later write of that pod changes it.
#[derive(Debug, Default)]
pub struct PodBindsOnce {
    bound: BTreeMap<String, String>,
    /// Writes of bound pods judged.
    judged: u64,
}

impl Checker for PodBindsOnce {
    fn name(&self) -> &'static str {
        "pod-binds-once"
    }

    fn exercised(&self) -> u64 {
        self.judged
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        let Some(object) = &change.object else {
            if let Some(Object::Pod(pod)) = change.previous.as_deref() {
                if let Some(uid) = &pod.metadata.uid {
                    self.bound.remove(uid);
                }
            }
            return Vec::new();
        };
        let Object::Pod(pod) = &**object else { return Vec::new() };
        let (Some(uid), Some(node)) = (&pod.metadata.uid, pod.spec.node_name.as_ref().filter(|n| !n.is_empty())) else {
            if let (Some(uid), Some(first)) =
                (&pod.metadata.uid, pod.metadata.uid.as_ref().and_then(|u| self.bound.get(u)))
            {
                return vec![Violation {
                    invariant: self.name(),
                    at_ns: change.at_ns,
                    revision: change.revision,
                    message: format!("pod {} (uid {uid}) was bound to {first} and lost its node", change.key),
                }];
            }
            return Vec::new();
        };
        self.judged += 1;
        match self.bound.get(uid) {
            Some(first) if first != node => vec![Violation {
                invariant: self.name(),
                at_ns: change.at_ns,
                revision: change.revision,
                message: format!("pod {} (uid {uid}) moved from node {first} to node {node}", change.key),
            }],
            Some(_) => Vec::new(),
            None => {
                self.bound.insert(uid.clone(), node.clone());
                Vec::new()
            }
        }
    }
}

/// Always: no node's bound requests exceed its allocatable CPU, memory or pod count. Pods that
/// finished (Succeeded or Failed) no longer count, as the scheduler does not count them.
#[derive(Debug, Default)]
pub struct NodeCapacity {
    allocatable: BTreeMap<String, (u64, u64, u64)>,
    /// Pod uid -> (node, cpu millicores, memory bytes).
    pods: BTreeMap<String, (String, u64, u64)>,
    /// Node sums judged.
    judged: u64,
}

impl NodeCapacity {
    fn check_node(&mut self, node: &str, change: &Change) -> Vec<Violation> {
        let Some(&(cpu_allocatable, memory_allocatable, pods_allocatable)) = self.allocatable.get(node) else {
            return Vec::new();
        };
        self.judged += 1;
        let on_node: Vec<&(String, u64, u64)> = self.pods.values().filter(|(n, _, _)| n == node).collect();
        let cpu: u64 = on_node.iter().map(|(_, cpu, _)| cpu).sum();
        let memory: u64 = on_node.iter().map(|(_, _, memory)| memory).sum();
        let count = on_node.len() as u64;
        let mut over = Vec::new();
        if cpu > cpu_allocatable {
            over.push(format!("cpu {cpu}m > {cpu_allocatable}m"));
        }
        if memory > memory_allocatable {
            over.push(format!("memory {memory} > {memory_allocatable} bytes"));
        }
        if count > pods_allocatable {
            over.push(format!("pods {count} > {pods_allocatable}"));
        }
        if over.is_empty() {
            Vec::new()
        } else {
            vec![Violation {
                invariant: "node-capacity",
                at_ns: change.at_ns,
                revision: change.revision,
                message: format!("node {node} is overcommitted: {}", over.join(", ")),
            }]
        }
    }
}

impl Checker for NodeCapacity {
    fn name(&self) -> &'static str {
        "node-capacity"
    }

    fn exercised(&self) -> u64 {
        self.judged
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        match change.object.as_deref().or(change.previous.as_deref()) {
            Some(Object::Node(_)) => {
                match change.object.as_deref() {
                    Some(Object::Node(node)) => {
                        let allocatable = &node.status.allocatable;
                        self.allocatable.insert(
                            node.metadata.name.clone(),
                            (
                                allocatable.cpu.map_or(u64::MAX, |v| v.0),
                                allocatable.memory.map_or(u64::MAX, |v| v.0),
                                allocatable.pods.map_or(110, |v| v.0),
                            ),
                        );
                        return self.check_node(&node.metadata.name, change);
                    }
                    _ => {
                        self.allocatable.remove(&change.key.name);
                    }
                }
                Vec::new()
            }
            Some(Object::Pod(_)) => {
                let uid = change
                    .object
                    .as_ref()
                    .or(change.previous.as_ref())
                    .and_then(|object| object.meta().uid.clone())
                    .unwrap_or_default();
                self.pods.remove(&uid);
                let Some(Object::Pod(pod)) = change.object.as_deref() else { return Vec::new() };
                let finished = matches!(
                    pod.status.phase,
                    Some(crate::objects::pod::PodPhase::Succeeded) | Some(crate::objects::pod::PodPhase::Failed)
                );
                let Some(node) = pod.spec.node_name.clone().filter(|n| !n.is_empty() && !finished) else {
                    return Vec::new();
                };
                let (cpu, memory) = pod.total_requests();
                self.pods.insert(uid, (node.clone(), cpu.0, memory.0));
                self.check_node(&node, change)
            }
            _ => Vec::new(),
        }
    }
}

/// Always: store revisions only grow, and each object's resourceVersion is the revision of the
/// write that stored it.
#[derive(Debug, Default)]
pub struct RevisionsGrow {
    last: Revision,
    judged: u64,
}

impl Checker for RevisionsGrow {
    fn name(&self) -> &'static str {
        "revisions-grow"
    }

    fn exercised(&self) -> u64 {
        self.judged
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        let mut violations = Vec::new();
        self.judged += 1;
        // Writes of one transaction share a revision; across writes it must never go back.
        if change.revision < self.last {
            violations.push(Violation {
                invariant: self.name(),
                at_ns: change.at_ns,
                revision: change.revision,
                message: format!("revision {} came after revision {}", change.revision, self.last),
            });
        }
        self.last = self.last.max(change.revision);
        if let Some(object) = &change.object {
            let stored = crate::api::resource_version_of(object);
            if stored != change.revision {
                violations.push(Violation {
                    invariant: self.name(),
                    at_ns: change.at_ns,
                    revision: change.revision,
                    message: format!(
                        "{} was stored at revision {} with resourceVersion {stored}",
                        change.key, change.revision
                    ),
                });
            }
        }
        violations
    }
}

/// The standard safety checkers: every always-property.
pub fn safety_checkers() -> Vec<Box<dyn Checker>> {
    vec![
        Box::<PodBindsOnce>::default(),
        Box::<NodeCapacity>::default(),
        Box::<RevisionsGrow>::default(),
        Box::<WatchInOrder>::default(),
        Box::<OneLeaderPerLease>::default(),
        Box::<RolloutAvailability>::default(),
        Box::<ZeroDowntime>::default(),
    ]
}

/// Runs checkers over a feed and the components' state; collects every violation.
pub struct CheckerSet {
    pub checkers: Vec<Box<dyn Checker>>,
    feed: HistoryFeed,
    pub violations: Vec<Violation>,
    /// How many writes the checkers have looked at, by kind: a green run that saw no pod writes
    /// has checked nothing about pods.
    pub observed: BTreeMap<Kind, u64>,
}

impl CheckerSet {
    pub fn new(checkers: Vec<Box<dyn Checker>>) -> CheckerSet {
        CheckerSet { checkers, feed: HistoryFeed::default(), violations: Vec::new(), observed: BTreeMap::new() }
    }

    /// Feeds every write committed since the last call to every checker.
    pub fn check(&mut self, etcd: &Etcd, at_ns: u64) -> Result<(), String> {
        for change in self.feed.next_changes(etcd, at_ns)? {
            *self.observed.entry(change.key.kind).or_insert(0) += 1;
            for checker in &mut self.checkers {
                self.violations.extend(checker.observe(&change));
            }
        }
        Ok(())
    }

    /// Lets the checkers of `cadence` look at the components' state: the harness asks for
    /// `Cadence::Writes` after a step that committed a write (after [`CheckerSet::check`]), and
    /// for `Cadence::EveryStep` after every step.
    pub fn inspect(&mut self, world: &World<'_>, cadence: Cadence) {
        for checker in &mut self.checkers {
            if checker.cadence() == cadence {
                self.violations.extend(checker.inspect(world));
            }
        }
    }

    /// Whether any checker wants to look after every step (so the harness can skip the work).
    pub fn wants_every_step(&self) -> bool {
        self.checkers.iter().any(|checker| checker.cadence() == Cadence::EveryStep)
    }

    /// How many observations each checker made, by name: a green run with a zero here did not
    /// exercise that promise.
    pub fn exercised(&self) -> BTreeMap<&'static str, u64> {
        self.checkers.iter().map(|checker| (checker.name(), checker.exercised())).collect()
    }
}
