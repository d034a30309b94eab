//! Deliberately broken controllers, for negative controls: with a mutant on, the property suites
//! must fail, which proves that they can (TigerBeetle's canaries, mutation testing's mutants).
//!
//! Each mutant is one guarded branch at the point where a real class of controller bug would
//! live: a stale read, wrong rounding, a missed 410, an off-by-one, and so on. Its
//! doc comment names the class. `kubedst mutants` runs each against the scenario and fault class
//! that exercise it (`kubedst_scenarios::mutants`) and reports how fast the sweep finds it.
//!
//! Off by default and free when off: a [`Mutants`] set is a `Copy` bit set that a component
//! tests with one branch at the point it would misbehave. A mutant is switched on for a cluster
//! with [`crate::cluster::ClusterConfig::with_mutants`], which hands the set to the standard
//! controllers, the scheduler, the controller hosts' and kubelets' informers, and the kubelets
//! as they are built. New mutants take the next bit and a line in [`Mutant::ALL`].

use std::fmt;

/// One deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutant {
    /// Stale read (acting on a lagging cache): the ReplicaSet controller treats its expectations
    /// as always satisfied, so it acts on an informer cache that has not seen its own creates
    /// yet and makes too many pods.
    ReplicaSetIgnoresExpectations,
    /// A rollout that forgets its budget: the Deployment controller scales old ReplicaSets down
    /// as if `maxUnavailable` were 100 %, so a rollout takes every old pod away before new ones
    /// are ready.
    DeploymentIgnoresMaxUnavailable,
    /// Wrong rounding: the Deployment controller resolves a percentage `maxUnavailable` rounding
    /// up (as upstream rounds `maxSurge`) instead of down, so 25 % of 6 replicas lets 2 pods go
    /// instead of 1.
    DeploymentRoundsMaxUnavailableUp,
    /// Counting ready instead of available pods: the ReplicaSet controller reports every Ready
    /// pod as available, ignoring `minReadySeconds`, so the Deployment controller scales old pods
    /// down before the new ones have been ready long enough.
    ReplicaSetCountsReadyAsAvailable,
    /// Counting ready instead of available pods, in the Deployment controller: it sizes the
    /// old ReplicaSets' scale-down by their ready pods (`readyReplicas`) instead of
    /// `availableReplicas`, so `minReadySeconds` no longer holds old pods back.
    DeploymentCountsReadyAsAvailable,
    /// An off-by-one at the `minReadySeconds` boundary: the ReplicaSet controller counts a pod
    /// available one second early (it compares against `minReadySeconds - 1`, the classic
    /// `>` for `>=` in whole seconds), and asks to look again at that earlier time.
    ReplicaSetMinReadyOffByOne,
    /// Not relisting after 410 Gone: an informer whose watch revision was compacted keeps its old
    /// cache and watches again from "now" instead of relisting, so every change in the gap (a
    /// pod deleted, a status written) is missed for good.
    InformerSkipsRelistAfterGone,
    /// The scheduler ignores taints: NoSchedule and NoExecute taints filter no node, so pods
    /// land on unreachable, not-ready or cordoned nodes.
    SchedulerIgnoresTaints,
    /// Over-committing allocatable: the scheduler's resource fit ignores the requests of pods
    /// already on the node, so a node takes more pods than its allocatable CPU and memory hold.
    SchedulerIgnoresRequestedResources,
    /// Not-ready endpoints kept ready: the EndpointSlice controller marks every endpoint ready
    /// (as if the Service published not-ready addresses), so kube-proxy routes to pods that fail
    /// their readiness probe or have not passed it yet.
    EndpointSliceKeepsNotReadyEndpoints,
    /// A missed transient state: the kubelet reports a container Ready as soon as it runs,
    /// skipping the not-ready window before its readiness probe first passes, so traffic reaches
    /// apps that are still starting.
    KubeletReadyBeforeProbe,
    /// The Job controller counts a failed pod as succeeded, so a Job completes with fewer real
    /// successes than `completions`.
    JobCountsFailedAsSucceeded,
}

impl Mutant {
    pub const ALL: [Mutant; 12] = [
        Mutant::ReplicaSetIgnoresExpectations,
        Mutant::DeploymentIgnoresMaxUnavailable,
        Mutant::DeploymentRoundsMaxUnavailableUp,
        Mutant::ReplicaSetCountsReadyAsAvailable,
        Mutant::DeploymentCountsReadyAsAvailable,
        Mutant::ReplicaSetMinReadyOffByOne,
        Mutant::InformerSkipsRelistAfterGone,
        Mutant::SchedulerIgnoresTaints,
        Mutant::SchedulerIgnoresRequestedResources,
        Mutant::EndpointSliceKeepsNotReadyEndpoints,
        Mutant::KubeletReadyBeforeProbe,
        Mutant::JobCountsFailedAsSucceeded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutant::ReplicaSetIgnoresExpectations => "replicaset_ignores_expectations",
            Mutant::DeploymentIgnoresMaxUnavailable => "deployment_ignores_max_unavailable",
            Mutant::DeploymentRoundsMaxUnavailableUp => "deployment_rounds_max_unavailable_up",
            Mutant::ReplicaSetCountsReadyAsAvailable => "replicaset_counts_ready_as_available",
            Mutant::DeploymentCountsReadyAsAvailable => "deployment_counts_ready_as_available",
            Mutant::ReplicaSetMinReadyOffByOne => "replicaset_min_ready_off_by_one",
            Mutant::InformerSkipsRelistAfterGone => "informer_skips_relist_after_gone",
            Mutant::SchedulerIgnoresTaints => "scheduler_ignores_taints",
            Mutant::SchedulerIgnoresRequestedResources => "scheduler_ignores_requested_resources",
            Mutant::EndpointSliceKeepsNotReadyEndpoints => "endpointslice_keeps_not_ready_endpoints",
            Mutant::KubeletReadyBeforeProbe => "kubelet_ready_before_probe",
            Mutant::JobCountsFailedAsSucceeded => "job_counts_failed_as_succeeded",
        }
    }

    /// The bug class, in a few words, for reports.
    pub fn bug_class(self) -> &'static str {
        match self {
            Mutant::ReplicaSetIgnoresExpectations => "stale read: acting on a lagging cache",
            Mutant::DeploymentIgnoresMaxUnavailable => "rollout budget ignored",
            Mutant::DeploymentRoundsMaxUnavailableUp => "wrong rounding of maxUnavailable",
            Mutant::ReplicaSetCountsReadyAsAvailable => "ready counted as available (minReadySeconds ignored)",
            Mutant::DeploymentCountsReadyAsAvailable => "ready counted as available (Deployment controller)",
            Mutant::ReplicaSetMinReadyOffByOne => "off-by-one at the minReadySeconds boundary",
            Mutant::InformerSkipsRelistAfterGone => "no relist after 410 Gone",
            Mutant::SchedulerIgnoresTaints => "scheduler ignores taints",
            Mutant::SchedulerIgnoresRequestedResources => "scheduler over-commits allocatable",
            Mutant::EndpointSliceKeepsNotReadyEndpoints => "not-ready endpoints kept ready",
            Mutant::KubeletReadyBeforeProbe => "missed transient state: Ready before the probe passes",
            Mutant::JobCountsFailedAsSucceeded => "failed pods counted as succeeded",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|mutant| mutant.name() == name)
    }

    /// Every mutant's name, in declaration order.
    pub fn names() -> Vec<&'static str> {
        Mutant::ALL.iter().map(|mutant| mutant.name()).collect()
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

    /// The names of the mutants switched on, in declaration order (what a repro file records).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|mutant| mutant.name().to_string()).collect()
    }

    /// The set of these names; an unknown name is an error naming it.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Mutants, String> {
        names.iter().try_fold(Mutants::NONE, |set, name| {
            Mutant::from_name(name.as_ref())
                .map(|mutant| set.with(mutant))
                .ok_or_else(|| format!("unknown mutant {:?}", name.as_ref()))
        })
    }
}
