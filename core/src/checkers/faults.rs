//! Which machines and pods a fault touched, and when: what the rollout-availability and
//! zero-downtime checkers use to attribute a loss to its fault.
//!
//! The harness fills the log from the engine's fault schedule (each fault's machines and its
//! span), from the model faults it carries out (a container crash names its pod), and closes every
//! open span at the heal. A loss is attributed to a fault of the machine (or pod) it happened on
//! when it falls within [`FAULT_ATTRIBUTION_BOUND`] of the fault's start (the time Kubernetes needs
//! to notice it) or of its end (the time to recover from it), or while a short fault lasts.

use crate::controllers::nodelifecycle::{NODE_MONITOR_GRACE_PERIOD, NODE_MONITOR_PERIOD};
use kubedst_sim::{Fault, FaultSchedule};
use std::time::Duration;

/// How long after a fault starts (and after it ends) a loss on its machine or pod is still its
/// fault: the node lifecycle controller notices a silent node after its grace period (50 s)
/// plus one monitor period (5 s), and the EndpointSlice controller, the informers and the
/// kube-proxies need a few seconds more (10 s) to stop routing to its pods. The same span
/// covers the way back: a restarted kubelet re-syncs and reports its pods within it.
pub const FAULT_ATTRIBUTION_BOUND: Duration =
    Duration::from_secs(NODE_MONITOR_GRACE_PERIOD.as_secs() + NODE_MONITOR_PERIOD.as_secs() + 10);

/// What kind of harm a fault does to the pods of a machine it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Harm {
    /// The machine's processes stop answering (crash, loss, pause) or its peers cannot reach it
    /// (partition, isolation): requests to its pods fail and its pods become unavailable.
    Unreachable,
    /// The machine still answers, but its heartbeats may look late (clock skew or drift, a
    /// degraded link): its pods may be marked not ready, yet requests to them must succeed.
    Degraded,
}

/// One fault's span on one machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineFault {
    pub machine: String,
    pub harm: Harm,
    /// What happened, in words ("crash node-1, restart after 5s").
    pub what: String,
    pub start_ns: u64,
    /// `None` while it lasts.
    pub end_ns: Option<u64>,
    /// A lost machine never comes back, not even at the heal.
    pub permanent: bool,
}

/// A model fault that hit one pod's containers (or every pod of a node, with `uid: None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFault {
    pub node: String,
    pub uid: Option<String>,
    pub what: String,
    pub at_ns: u64,
}

/// Every fault of a run, by machine and pod.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    pub machines: Vec<MachineFault>,
    pub pods: Vec<PodFault>,
}

fn ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl FaultLog {
    /// The spans of an engine fault schedule's faults (a restart or a fault on no machine adds
    /// nothing). A fault that could not strike (a crash of a machine already down) is still
    /// listed: that only makes the attribution more lenient, never stricter.
    pub fn from_schedule(schedule: &FaultSchedule) -> FaultLog {
        let mut log = FaultLog::default();
        for timed in &schedule.faults {
            let start_ns = ns(timed.at);
            let end_ns = timed.fault.duration().map(|span| start_ns.saturating_add(ns(span)));
            let what = timed.fault.to_string();
            let (machines, harm, end_ns): (Vec<&str>, Harm, Option<u64>) = match &timed.fault {
                Fault::Restart { .. } => continue,
                Fault::Lose { machine } => (vec![machine.as_str()], Harm::Unreachable, None),
                Fault::ClockSkew { machine, .. } | Fault::ClockDrift { machine, .. } => {
                    (vec![machine.as_str()], Harm::Degraded, None)
                }
                Fault::DegradeLink { .. } => (timed.fault.machines(), Harm::Degraded, end_ns),
                Fault::Crash { .. } | Fault::Pause { .. } | Fault::Partition { .. } | Fault::Isolate { .. } => {
                    (timed.fault.machines(), Harm::Unreachable, end_ns)
                }
            };
            for machine in machines {
                log.machine_fault(machine, harm, &what, start_ns, end_ns);
                if let Some(recorded) = log.machines.last_mut() {
                    recorded.permanent = matches!(timed.fault, Fault::Lose { .. });
                }
            }
        }
        log
    }

    /// Records a fault of `machine` from `start_ns` to `end_ns` (`None`: until the heal or for good).
    pub fn machine_fault(&mut self, machine: &str, harm: Harm, what: &str, start_ns: u64, end_ns: Option<u64>) {
        self.machines.push(MachineFault {
            machine: machine.to_string(),
            harm,
            what: what.to_string(),
            start_ns,
            end_ns,
            permanent: false,
        });
    }

    /// Records a model fault that hit the containers of pod `uid` on `node` (every pod of the
    /// node if `uid` is `None`) at `at_ns`. The fault generators' model faults call this from
    /// the harness when they strike.
    pub fn pod_fault(&mut self, node: &str, uid: Option<&str>, what: &str, at_ns: u64) {
        self.pods.push(PodFault {
            node: node.to_string(),
            uid: uid.map(str::to_string),
            what: what.to_string(),
            at_ns,
        });
    }

    /// The heal at `at_ns` ends every open span, except that a lost machine stays lost.
    pub fn heal(&mut self, at_ns: u64) {
        for fault in self.machines.iter_mut().filter(|fault| !fault.permanent) {
            let end = fault.end_ns.unwrap_or(at_ns).min(at_ns).max(fault.start_ns);
            fault.end_ns = Some(end);
        }
    }

    /// The fault that explains a loss on `node` (of pod `uid`, if known) that happened between
    /// `from_ns` and `to_ns`, if any: a fault on the machine that does `harm` (any fault, for
    /// `Harm::Degraded`; only one that makes it unreachable, for `Harm::Unreachable`), or a pod fault,
    /// whose attribution span meets that interval. Returns the fault in words.
    pub fn explain(&self, node: &str, uid: Option<&str>, harm: Harm, from_ns: u64, to_ns: u64) -> Option<&str> {
        let bound = ns(FAULT_ATTRIBUTION_BOUND);
        let meets = |start: u64, end: u64| start <= to_ns && from_ns <= end;
        for fault in &self.machines {
            if fault.machine != node || fault.harm > harm {
                continue;
            }
            // Kubernetes has `bound` to notice the fault and `bound` to recover after it ends;
            // in between (a long fault) it must have routed around the machine.
            let noticing = meets(fault.start_ns, fault.start_ns.saturating_add(bound));
            let recovering = fault.end_ns.is_some_and(|end| meets(end, end.saturating_add(bound)));
            if noticing || recovering {
                return Some(&fault.what);
            }
        }
        self.pods
            .iter()
            .find(|fault| {
                fault.node == node
                    && (fault.uid.is_none() || fault.uid.as_deref() == uid)
                    && meets(fault.at_ns, fault.at_ns.saturating_add(bound))
            })
            .map(|fault| fault.what.as_str())
    }

    /// Whether the log holds no fault.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty() && self.pods.is_empty()
    }
}
