//! Fault classes as generators: each class turns a seed (for sweeps), `arbitrary` bytes (for
//! fuzzing) or a proptest strategy (for property suites, with shrinking) into a typed
//! [`FaultPlan`] for one cluster.
//!
//! All three go through the same typed description, [`FaultDraw`]: a fault with its target as an
//! index into the cluster's machines and its times in milliseconds. A draw becomes a plan fault in
//! [`plan_from_draws`], which maps indices onto the [`ClusterShape`] and clamps times so that every
//! fault that lasts has healed before the fault phase ends (permanent node loss excepted: it is
//! the point of that class). The seed and byte versions draw each field from the same ranges the
//! proptest strategies use ([`Ranges`]), so the three produce the same space of schedules.
//!
//! Shrinking: a proptest plan is a `Vec<FaultDraw>` mapped to a plan, so proptest shrinks it by
//! dropping faults, then moving each toward the start of the window, shortening it and making it
//! milder (less loss, smaller skew), which is what "fewer, shorter, simpler" means here.
//!
//! Network chaos is expressed with the engine's `DegradeLink` faults on single links (one
//! direction each), so it is part of the engine's schedule, heals by itself and is counted by the
//! engine's accounting as `degrade_link`; the harness needs no link-chaos part of its own.
//!
//! Swarm composes the classes: a mask drawn with the plan (from the seed, the bytes, or proptest)
//! says which classes are enabled, and only their draws make it into the plan, as FoundationDB's
//! and TigerBeetle's swarm testing enable a different mix of faults per seed.

use kubedst_core::cluster::ClusterConfig;
use kubedst_core::harness::{FaultPlan, ModelFault, TimedModelFault};
use kubedst_sim::{Fault, FaultSchedule, LinkConfig, Ratio, SimRng, TimedFault};
use proptest::prelude::*;
use std::fmt;
use std::time::Duration;

/// A family of faults, each promising its own things (see the zero-downtime table in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, arbitrary::Arbitrary)]
pub enum FaultClass {
    /// Loss, duplication, reordering and latency tails on single links.
    NetworkChaos,
    /// Worker nodes crash and restart.
    NodeCrash,
    /// A worker node is gone for good.
    NodeLoss,
    /// A worker node is cut off from the control plane and etcd, then heals.
    NodePartition,
    /// A control-plane machine (API server, controller manager, scheduler) crashes and restarts;
    /// with `control_plane_replicas > 1` the others take over meanwhile.
    ControlPlaneCrash,
    /// Machines' clocks jump, or run fast or slow within client-go's assumption.
    ClockSkew,
    /// API servers' watch caches lag behind etcd; etcd compacts its history.
    WatchCacheLag,
    /// Containers crash; image pulls fail for a while.
    ContainerFaults,
    /// Every class above, with a mix enabled per plan.
    Swarm,
}

impl FaultClass {
    pub const ALL: [FaultClass; 9] = [
        FaultClass::NetworkChaos,
        FaultClass::NodeCrash,
        FaultClass::NodeLoss,
        FaultClass::NodePartition,
        FaultClass::ControlPlaneCrash,
        FaultClass::ClockSkew,
        FaultClass::WatchCacheLag,
        FaultClass::ContainerFaults,
        FaultClass::Swarm,
    ];

    /// The classes that Swarm composes (every class but itself).
    pub const BASIC: [FaultClass; 8] = [
        FaultClass::NetworkChaos,
        FaultClass::NodeCrash,
        FaultClass::NodeLoss,
        FaultClass::NodePartition,
        FaultClass::ControlPlaneCrash,
        FaultClass::ClockSkew,
        FaultClass::WatchCacheLag,
        FaultClass::ContainerFaults,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultClass::NetworkChaos => "network_chaos",
            FaultClass::NodeCrash => "node_crash",
            FaultClass::NodeLoss => "node_loss",
            FaultClass::NodePartition => "node_partition",
            FaultClass::ControlPlaneCrash => "control_plane_crash",
            FaultClass::ClockSkew => "clock_skew",
            FaultClass::WatchCacheLag => "watch_cache_lag",
            FaultClass::ContainerFaults => "container_faults",
            FaultClass::Swarm => "swarm",
        }
    }

    pub fn from_name(name: &str) -> Option<FaultClass> {
        FaultClass::ALL.into_iter().find(|class| class.name() == name)
    }

    /// The `RunReport::faults_fired` kinds that show this class's faults struck.
    pub fn fired_kinds(self) -> &'static [&'static str] {
        match self {
            FaultClass::NetworkChaos => &["degrade_link"],
            FaultClass::NodeCrash | FaultClass::ControlPlaneCrash => &["crash"],
            FaultClass::NodeLoss => &["lose"],
            FaultClass::NodePartition => &["partition"],
            FaultClass::ClockSkew => &["clock_skew", "clock_drift"],
            FaultClass::WatchCacheLag => &["watch_cache_lag", "compact_now"],
            FaultClass::ContainerFaults => &["container_crash", "pull_failure"],
            FaultClass::Swarm => &[
                "degrade_link",
                "crash",
                "lose",
                "partition",
                "clock_skew",
                "clock_drift",
                "watch_cache_lag",
                "compact_now",
                "container_crash",
                "pull_failure",
            ],
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the generators need to know of a cluster: machine names, the fault phase, the images
/// pull failures may name, and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterShape {
    /// Worker nodes (`node-<i>`).
    pub nodes: Vec<String>,
    /// Control-plane machines (`control-plane-<i>`), each with an API server, a controller
    /// manager and a scheduler.
    pub control_plane: Vec<String>,
    /// The etcd machine.
    pub etcd: String,
    /// When the fault phase ends: every fault that lasts heals by then.
    pub fault_phase: Duration,
    /// Faults strike at or after this time (so the workload can be set up first).
    pub window_start: Duration,
    /// Images pull failures may name (the workload's images); empty: the class draws none.
    pub images: Vec<String>,
    /// At most this many faults per plan (at least one).
    pub max_faults: usize,
    /// At most this many worker nodes are lost for good per plan.
    pub max_lost_nodes: usize,
    /// The link every link starts as; chaos is added on top of it.
    pub base_link: LinkConfig,
    /// Whether link chaos may strike links between two worker nodes: the pod network that
    /// Service traffic rides. Off, chaos between two nodes is moved to a control-plane link, for
    /// suites that hold the data path out of the fault (a lost request there is a lost request).
    pub chaos_between_nodes: bool,
    /// Machines whose clocks the clock-skew class may change: the control plane and the nodes by
    /// default (etcd's clock only drives its lease TTLs, which nothing in the model relies on
    /// across a skew).
    pub clock_machines: Vec<String>,
}

impl ClusterShape {
    /// The shape of the cluster `config` builds, with faults anywhere in the fault phase, up to
    /// 4 faults per plan, at most one node lost for good, and no images (see [`Self::with_images`]).
    pub fn of(config: &ClusterConfig, fault_phase: Duration) -> ClusterShape {
        ClusterShape {
            nodes: config.nodes.iter().map(|node| node.name.clone()).collect(),
            control_plane: (0..config.control_plane_replicas.max(1))
                .map(|index| format!("control-plane-{index}"))
                .collect(),
            etcd: "etcd-0".to_string(),
            fault_phase,
            window_start: Duration::ZERO,
            images: Vec::new(),
            max_faults: 4,
            max_lost_nodes: 1,
            base_link: config.sim.link,
            chaos_between_nodes: true,
            clock_machines: Vec::new(),
        }
        .with_default_clock_machines()
    }

    fn with_default_clock_machines(mut self) -> ClusterShape {
        self.clock_machines = self.control_plane.iter().chain(&self.nodes).cloned().collect();
        self
    }

    pub fn with_images(mut self, images: &[&str]) -> ClusterShape {
        self.images = images.iter().map(|image| image.to_string()).collect();
        self
    }

    pub fn with_window_start(mut self, window_start: Duration) -> ClusterShape {
        self.window_start = window_start;
        self
    }

    pub fn without_chaos_between_nodes(mut self) -> ClusterShape {
        self.chaos_between_nodes = false;
        self
    }

    pub fn with_max_faults(mut self, max_faults: usize) -> ClusterShape {
        self.max_faults = max_faults.max(1);
        self
    }

    /// Every machine faults may touch (etcd, the control plane, the nodes), for link chaos.
    fn machines(&self) -> Vec<&str> {
        std::iter::once(self.etcd.as_str())
            .chain(self.control_plane.iter().map(String::as_str))
            .chain(self.nodes.iter().map(String::as_str))
            .collect()
    }

    /// Skews only the control plane's clocks.
    pub fn with_clock_skew_on_control_plane_only(mut self) -> ClusterShape {
        self.clock_machines = self.control_plane.clone();
        self
    }

    fn clock_machines(&self) -> Vec<&str> {
        let machines: Vec<&str> = self.clock_machines.iter().map(String::as_str).collect();
        if machines.is_empty() {
            self.control_plane.iter().map(String::as_str).collect()
        } else {
            machines
        }
    }

    fn window_ms(&self) -> (u64, u64) {
        let start = self.window_start.as_millis() as u64;
        let end = (self.fault_phase.as_millis() as u64).max(start + 1);
        (start, end - 1)
    }
}

/// One fault as generated: targets are indices (taken modulo the machine list they index), times
/// are milliseconds from the start of the run, clamped into the window by [`plan_from_draws`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultDraw {
    /// `from -> to` (indices into etcd, control plane, nodes) degrades for `duration_ms`.
    LinkChaos {
        from: usize,
        to: usize,
        at_ms: u64,
        duration_ms: u64,
        loss_permille: u32,
        duplicate_permille: u32,
        reorder_permille: u32,
        reorder_window_ms: u64,
        tail_permille: u32,
        tail_max_ms: u64,
    },
    /// Worker `node` crashes and restarts after `down_ms`.
    NodeCrash { node: usize, at_ms: u64, down_ms: u64 },
    /// Worker `node` is lost for good.
    NodeLoss { node: usize, at_ms: u64 },
    /// Worker `node` is cut off from the control plane and etcd (`one_way`: only its messages
    /// to them are lost) for `duration_ms`.
    NodePartition { node: usize, at_ms: u64, duration_ms: u64, one_way: bool },
    /// Control-plane machine `machine` crashes and restarts after `down_ms`.
    ControlPlaneCrash { machine: usize, at_ms: u64, down_ms: u64 },
    /// `machine` (control plane, then nodes) jumps by `offset_ms`.
    ClockSkew { machine: usize, at_ms: u64, offset_ms: i64 },
    /// `machine` (control plane, then nodes) runs fast or slow by `drift_ppm`.
    ClockDrift { machine: usize, at_ms: u64, drift_ppm: i32 },
    /// The API server on control-plane machine `server` lags for `duration_ms`.
    WatchCacheLag { server: usize, at_ms: u64, duration_ms: u64 },
    /// etcd compacts its history.
    Compact { at_ms: u64 },
    /// The `nth` running container of worker `node` crashes.
    ContainerCrash { node: usize, nth: u32, at_ms: u64 },
    /// Pulls of `image` (an index into the shape's images) fail for `duration_ms`.
    PullFailure { image: usize, at_ms: u64, duration_ms: u64 },
}

/// The ranges every generator draws from. Lower ends are the simplest values, toward which
/// proptest shrinks.
pub struct Ranges;

impl Ranges {
    pub const LINK_DURATION_MS: (u64, u64) = (100, 20_000);
    pub const LOSS_PERMILLE: (u32, u32) = (0, 200);
    pub const DUPLICATE_PERMILLE: (u32, u32) = (0, 100);
    pub const REORDER_PERMILLE: (u32, u32) = (0, 200);
    pub const REORDER_WINDOW_MS: (u64, u64) = (1, 50);
    pub const TAIL_PERMILLE: (u32, u32) = (0, 100);
    pub const TAIL_MAX_MS: (u64, u64) = (1, 2_000);
    pub const NODE_DOWN_MS: (u64, u64) = (500, 30_000);
    pub const PARTITION_MS: (u64, u64) = (1_000, 60_000);
    pub const CONTROL_PLANE_DOWN_MS: (u64, u64) = (500, 30_000);
    /// Clock jumps of up to 30 s either way: leader election and node leases measure durations on
    /// their own clock, so a jump must not matter.
    pub const SKEW_MS: (i64, i64) = (-30_000, 30_000);
    /// Rates off by up to 10 %. client-go's leader election assumes that clocks of candidates run
    /// at nearly the same rate: a follower waits `leaseDuration` (15 s) on its clock while the
    /// leader gives up after `renewDeadline` (10 s) on its own, so rates may differ by less than
    /// that 1.5 ratio; 10 % keeps well inside it (the leader-election tests show -50 % breaking).
    pub const DRIFT_PPM: (i32, i32) = (-100_000, 100_000);
    pub const LAG_MS: (u64, u64) = (200, 20_000);
    pub const PULL_OUTAGE_MS: (u64, u64) = (1_000, 30_000);
    pub const CONTAINER_NTH: (u32, u32) = (0, 31);
}

/// A source of bounded integers: a seeded stream or fuzzer bytes.
trait Source {
    fn int(&mut self, low: u64, high: u64) -> arbitrary::Result<u64>;

    fn pair_u32(&mut self, (low, high): (u32, u32)) -> arbitrary::Result<u32> {
        Ok(self.int(u64::from(low), u64::from(high))? as u32)
    }

    fn pair_u64(&mut self, (low, high): (u64, u64)) -> arbitrary::Result<u64> {
        self.int(low, high)
    }

    /// A signed value in `low..=high` (`low <= 0 <= high`).
    fn signed(&mut self, low: i64, high: i64) -> arbitrary::Result<i64> {
        let offset = self.int(0, (high - low) as u64)?;
        Ok(low + offset as i64)
    }

    fn index(&mut self, len: usize) -> arbitrary::Result<usize> {
        Ok(self.int(0, len.saturating_sub(1) as u64)? as usize)
    }
}

impl Source for SimRng {
    fn int(&mut self, low: u64, high: u64) -> arbitrary::Result<u64> {
        Ok(self.range_inclusive(low, high))
    }
}

impl Source for arbitrary::Unstructured<'_> {
    fn int(&mut self, low: u64, high: u64) -> arbitrary::Result<u64> {
        self.int_in_range(low..=high)
    }
}

/// The kinds of draw a class makes, in a fixed order (a draw picks one by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DrawKind {
    LinkChaos,
    NodeCrash,
    NodeLoss,
    NodePartition,
    ControlPlaneCrash,
    ClockSkew,
    ClockDrift,
    WatchCacheLag,
    Compact,
    ContainerCrash,
    PullFailure,
}

fn kinds_of(class: FaultClass, shape: &ClusterShape) -> Vec<DrawKind> {
    let kinds = match class {
        FaultClass::NetworkChaos => vec![DrawKind::LinkChaos],
        FaultClass::NodeCrash => vec![DrawKind::NodeCrash],
        FaultClass::NodeLoss => vec![DrawKind::NodeLoss],
        FaultClass::NodePartition => vec![DrawKind::NodePartition],
        FaultClass::ControlPlaneCrash => vec![DrawKind::ControlPlaneCrash],
        FaultClass::ClockSkew => vec![DrawKind::ClockSkew, DrawKind::ClockDrift],
        FaultClass::WatchCacheLag => vec![DrawKind::WatchCacheLag, DrawKind::Compact],
        FaultClass::ContainerFaults => {
            if shape.images.is_empty() {
                vec![DrawKind::ContainerCrash]
            } else {
                vec![DrawKind::ContainerCrash, DrawKind::PullFailure]
            }
        }
        FaultClass::Swarm => FaultClass::BASIC.iter().flat_map(|class| kinds_of(*class, shape)).collect(),
    };
    // A cluster without nodes offers nothing to node faults.
    kinds
        .into_iter()
        .filter(|kind| {
            !shape.nodes.is_empty()
                || !matches!(
                    kind,
                    DrawKind::NodeCrash
                        | DrawKind::NodeLoss
                        | DrawKind::NodePartition
                        | DrawKind::ContainerCrash
                        | DrawKind::PullFailure
                )
        })
        .collect()
}

/// The class a draw belongs to (for Swarm's mask).
pub fn class_of(draw: &FaultDraw) -> FaultClass {
    match draw {
        FaultDraw::LinkChaos { .. } => FaultClass::NetworkChaos,
        FaultDraw::NodeCrash { .. } => FaultClass::NodeCrash,
        FaultDraw::NodeLoss { .. } => FaultClass::NodeLoss,
        FaultDraw::NodePartition { .. } => FaultClass::NodePartition,
        FaultDraw::ControlPlaneCrash { .. } => FaultClass::ControlPlaneCrash,
        FaultDraw::ClockSkew { .. } | FaultDraw::ClockDrift { .. } => FaultClass::ClockSkew,
        FaultDraw::WatchCacheLag { .. } | FaultDraw::Compact { .. } => FaultClass::WatchCacheLag,
        FaultDraw::ContainerCrash { .. } | FaultDraw::PullFailure { .. } => FaultClass::ContainerFaults,
    }
}

fn draw_one(kind: DrawKind, shape: &ClusterShape, source: &mut impl Source) -> arbitrary::Result<FaultDraw> {
    let (window_start, window_end) = shape.window_ms();
    let at_ms = source.int(window_start, window_end)?;
    Ok(match kind {
        DrawKind::LinkChaos => {
            let machines = shape.machines().len();
            FaultDraw::LinkChaos {
                from: source.index(machines)?,
                to: source.index(machines)?,
                at_ms,
                duration_ms: source.pair_u64(Ranges::LINK_DURATION_MS)?,
                loss_permille: source.pair_u32(Ranges::LOSS_PERMILLE)?,
                duplicate_permille: source.pair_u32(Ranges::DUPLICATE_PERMILLE)?,
                reorder_permille: source.pair_u32(Ranges::REORDER_PERMILLE)?,
                reorder_window_ms: source.pair_u64(Ranges::REORDER_WINDOW_MS)?,
                tail_permille: source.pair_u32(Ranges::TAIL_PERMILLE)?,
                tail_max_ms: source.pair_u64(Ranges::TAIL_MAX_MS)?,
            }
        }
        DrawKind::NodeCrash => FaultDraw::NodeCrash {
            node: source.index(shape.nodes.len())?,
            at_ms,
            down_ms: source.pair_u64(Ranges::NODE_DOWN_MS)?,
        },
        DrawKind::NodeLoss => FaultDraw::NodeLoss { node: source.index(shape.nodes.len())?, at_ms },
        DrawKind::NodePartition => FaultDraw::NodePartition {
            node: source.index(shape.nodes.len())?,
            at_ms,
            duration_ms: source.pair_u64(Ranges::PARTITION_MS)?,
            one_way: source.int(0, 1)? == 1,
        },
        DrawKind::ControlPlaneCrash => FaultDraw::ControlPlaneCrash {
            machine: source.index(shape.control_plane.len())?,
            at_ms,
            down_ms: source.pair_u64(Ranges::CONTROL_PLANE_DOWN_MS)?,
        },
        DrawKind::ClockSkew => FaultDraw::ClockSkew {
            machine: source.index(shape.clock_machines().len())?,
            at_ms,
            offset_ms: source.signed(Ranges::SKEW_MS.0, Ranges::SKEW_MS.1)?,
        },
        DrawKind::ClockDrift => FaultDraw::ClockDrift {
            machine: source.index(shape.clock_machines().len())?,
            at_ms,
            drift_ppm: source.signed(i64::from(Ranges::DRIFT_PPM.0), i64::from(Ranges::DRIFT_PPM.1))? as i32,
        },
        DrawKind::WatchCacheLag => FaultDraw::WatchCacheLag {
            server: source.index(shape.control_plane.len())?,
            at_ms,
            duration_ms: source.pair_u64(Ranges::LAG_MS)?,
        },
        DrawKind::Compact => FaultDraw::Compact { at_ms },
        DrawKind::ContainerCrash => FaultDraw::ContainerCrash {
            node: source.index(shape.nodes.len())?,
            nth: source.pair_u32(Ranges::CONTAINER_NTH)?,
            at_ms,
        },
        DrawKind::PullFailure => FaultDraw::PullFailure {
            image: source.index(shape.images.len())?,
            at_ms,
            duration_ms: source.pair_u64(Ranges::PULL_OUTAGE_MS)?,
        },
    })
}

/// Draws a whole plan's faults from a source: Swarm's mask of enabled classes first (at least
/// one), then a count, then each fault.
fn draws_from(class: FaultClass, shape: &ClusterShape, source: &mut impl Source) -> arbitrary::Result<Vec<FaultDraw>> {
    let mut kinds = kinds_of(class, shape);
    if class == FaultClass::Swarm {
        let mut enabled: Vec<FaultClass> = Vec::new();
        for basic in FaultClass::BASIC {
            if source.int(0, 1)? == 1 {
                enabled.push(basic);
            }
        }
        if enabled.is_empty() {
            enabled.push(FaultClass::BASIC[source.index(FaultClass::BASIC.len())?]);
        }
        kinds = enabled.iter().flat_map(|basic| kinds_of(*basic, shape)).collect();
    }
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let count = source.int(1, shape.max_faults.max(1) as u64)? as usize;
    let mut draws = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = kinds[source.index(kinds.len())?];
        draws.push(draw_one(kind, shape, source)?);
    }
    Ok(draws)
}

/// The plan of `class` for `seed`. Stable: the same seed gives the same plan on every platform
/// and in every version that keeps this module's draw order (a test pins one).
pub fn plan_from_seed(class: FaultClass, shape: &ClusterShape, seed: u64) -> FaultPlan {
    let mut rng = SimRng::for_stream(seed, &format!("fault-plan/{}", class.name()));
    let draws = draws_from(class, shape, &mut rng).expect("a seeded stream never runs out");
    plan_from_draws(shape, &draws)
}

/// The plan of `class` that fuzzer bytes describe (for cargo-fuzz targets). Bytes that run out
/// early give zeros, hence the simplest values, as `arbitrary` does.
pub fn plan_from_bytes(
    class: FaultClass,
    shape: &ClusterShape,
    bytes: &mut arbitrary::Unstructured,
) -> arbitrary::Result<FaultPlan> {
    let draws = draws_from(class, shape, bytes)?;
    Ok(plan_from_draws(shape, &draws))
}

fn range_u64((low, high): (u64, u64)) -> std::ops::RangeInclusive<u64> {
    low..=high
}

fn range_u32((low, high): (u32, u32)) -> std::ops::RangeInclusive<u32> {
    low..=high
}

fn draw_strategy(kind: DrawKind, shape: &ClusterShape) -> BoxedStrategy<FaultDraw> {
    let (window_start, window_end) = shape.window_ms();
    let at = window_start..=window_end;
    let index = |len: usize| 0..len.max(1);
    match kind {
        DrawKind::LinkChaos => (
            index(shape.machines().len()),
            index(shape.machines().len()),
            at,
            range_u64(Ranges::LINK_DURATION_MS),
            range_u32(Ranges::LOSS_PERMILLE),
            range_u32(Ranges::DUPLICATE_PERMILLE),
            range_u32(Ranges::REORDER_PERMILLE),
            range_u64(Ranges::REORDER_WINDOW_MS),
            range_u32(Ranges::TAIL_PERMILLE),
            range_u64(Ranges::TAIL_MAX_MS),
        )
            .prop_map(
                |(
                    from,
                    to,
                    at_ms,
                    duration_ms,
                    loss_permille,
                    duplicate_permille,
                    reorder_permille,
                    reorder_window_ms,
                    tail_permille,
                    tail_max_ms,
                )| FaultDraw::LinkChaos {
                    from,
                    to,
                    at_ms,
                    duration_ms,
                    loss_permille,
                    duplicate_permille,
                    reorder_permille,
                    reorder_window_ms,
                    tail_permille,
                    tail_max_ms,
                },
            )
            .boxed(),
        DrawKind::NodeCrash => (index(shape.nodes.len()), at, range_u64(Ranges::NODE_DOWN_MS))
            .prop_map(|(node, at_ms, down_ms)| FaultDraw::NodeCrash { node, at_ms, down_ms })
            .boxed(),
        DrawKind::NodeLoss => {
            (index(shape.nodes.len()), at).prop_map(|(node, at_ms)| FaultDraw::NodeLoss { node, at_ms }).boxed()
        }
        DrawKind::NodePartition => (index(shape.nodes.len()), at, range_u64(Ranges::PARTITION_MS), any::<bool>())
            .prop_map(|(node, at_ms, duration_ms, one_way)| FaultDraw::NodePartition {
                node,
                at_ms,
                duration_ms,
                one_way,
            })
            .boxed(),
        DrawKind::ControlPlaneCrash => (index(shape.control_plane.len()), at, range_u64(Ranges::CONTROL_PLANE_DOWN_MS))
            .prop_map(|(machine, at_ms, down_ms)| FaultDraw::ControlPlaneCrash { machine, at_ms, down_ms })
            .boxed(),
        DrawKind::ClockSkew => (index(shape.clock_machines().len()), at, Ranges::SKEW_MS.0..=Ranges::SKEW_MS.1)
            .prop_map(|(machine, at_ms, offset_ms)| FaultDraw::ClockSkew { machine, at_ms, offset_ms })
            .boxed(),
        DrawKind::ClockDrift => (index(shape.clock_machines().len()), at, Ranges::DRIFT_PPM.0..=Ranges::DRIFT_PPM.1)
            .prop_map(|(machine, at_ms, drift_ppm)| FaultDraw::ClockDrift { machine, at_ms, drift_ppm })
            .boxed(),
        DrawKind::WatchCacheLag => (index(shape.control_plane.len()), at, range_u64(Ranges::LAG_MS))
            .prop_map(|(server, at_ms, duration_ms)| FaultDraw::WatchCacheLag { server, at_ms, duration_ms })
            .boxed(),
        DrawKind::Compact => at.prop_map(|at_ms| FaultDraw::Compact { at_ms }).boxed(),
        DrawKind::ContainerCrash => (index(shape.nodes.len()), range_u32(Ranges::CONTAINER_NTH), at)
            .prop_map(|(node, nth, at_ms)| FaultDraw::ContainerCrash { node, nth, at_ms })
            .boxed(),
        DrawKind::PullFailure => (index(shape.images.len()), at, range_u64(Ranges::PULL_OUTAGE_MS))
            .prop_map(|(image, at_ms, duration_ms)| FaultDraw::PullFailure { image, at_ms, duration_ms })
            .boxed(),
    }
}

/// The typed faults of `class`, before they become a plan: proptest shrinks this Vec (fewer
/// faults) and each draw's fields (earlier, shorter, milder). For Swarm it is the draws of the
/// enabled classes (a mask drawn alongside; at least one class stays enabled).
pub fn draws_strategy(class: FaultClass, shape: &ClusterShape) -> BoxedStrategy<Vec<FaultDraw>> {
    let max_faults = shape.max_faults.max(1);
    let kinds = kinds_of(class, shape);
    if kinds.is_empty() {
        return Just(Vec::new()).boxed();
    }
    let one = proptest::strategy::Union::new(kinds.iter().map(|kind| draw_strategy(*kind, shape))).boxed();
    if class != FaultClass::Swarm {
        return proptest::collection::vec(one, 1..=max_faults).boxed();
    }
    // Swarm: more candidate draws than a plan keeps, filtered by the mask of enabled classes.
    // Shrinking turns classes off (true shrinks to false) and drops draws.
    (proptest::collection::vec(any::<bool>(), FaultClass::BASIC.len()), proptest::collection::vec(one, 1..=max_faults))
        .prop_map(|(mask, draws)| {
            let enabled: Vec<FaultClass> =
                FaultClass::BASIC.iter().zip(&mask).filter(|(_, on)| **on).map(|(class, _)| *class).collect();
            let kept: Vec<FaultDraw> = draws.iter().filter(|draw| enabled.contains(&class_of(draw))).cloned().collect();
            // A mask that keeps nothing keeps the first draw's class, so a plan is never empty.
            if kept.is_empty() {
                let first = class_of(&draws[0]);
                draws.into_iter().filter(|draw| class_of(draw) == first).collect()
            } else {
                kept
            }
        })
        .boxed()
}

/// The proptest strategy of `class`'s plans on `shape`.
pub fn plan_strategy(class: FaultClass, shape: &ClusterShape) -> impl Strategy<Value = FaultPlan> {
    let shape_for_map = shape.clone();
    draws_strategy(class, shape).prop_map(move |draws| plan_from_draws(&shape_for_map, &draws))
}

/// Turns typed draws into a plan on `shape`: indices wrap around their machine lists, times are
/// clamped into the window, and lasting faults are cut short so that they heal by the end of the
/// fault phase. At most `shape.max_lost_nodes` distinct nodes are lost; further losses of other
/// nodes are dropped (the workload must keep somewhere to run).
pub fn plan_from_draws(shape: &ClusterShape, draws: &[FaultDraw]) -> FaultPlan {
    let (window_start, window_end) = shape.window_ms();
    let phase_end_ms = shape.fault_phase.as_millis() as u64;
    let at = |at_ms: u64| at_ms.clamp(window_start, window_end);
    // What is left of the fault phase after `at_ms`, at least 1 ms.
    let lasting = |at_ms: u64, duration_ms: u64| {
        Duration::from_millis(duration_ms.min(phase_end_ms.saturating_sub(at_ms)).max(1))
    };
    let machines = shape.machines();
    let clock_machines = shape.clock_machines();
    let pick = |list: &[&str], index: usize| list[index % list.len()].to_string();
    let node = |index: usize| shape.nodes[index % shape.nodes.len()].clone();
    let control_plane = |index: usize| shape.control_plane[index % shape.control_plane.len()].clone();
    let mut engine = Vec::new();
    let mut model = Vec::new();
    let mut lost: Vec<String> = Vec::new();
    for draw in draws {
        match draw {
            FaultDraw::LinkChaos {
                from,
                to,
                at_ms,
                duration_ms,
                loss_permille,
                duplicate_permille,
                reorder_permille,
                reorder_window_ms,
                tail_permille,
                tail_max_ms,
            } => {
                let at_ms = at(*at_ms);
                let from_machine = pick(&machines, *from);
                let mut to_index = *to % machines.len();
                if machines[to_index] == from_machine {
                    to_index = (to_index + 1) % machines.len();
                }
                let is_node = |name: &str| shape.nodes.iter().any(|node| node == name);
                if !shape.chaos_between_nodes && is_node(&from_machine) && is_node(machines[to_index]) {
                    // Etcd is first, the control plane next: index 1.. are control-plane machines.
                    to_index = 1 + *to % shape.control_plane.len();
                }
                let mut link = shape.base_link;
                link.loss = Ratio::new((*loss_permille).min(1000), 1000);
                link.duplicate = Ratio::new((*duplicate_permille).min(1000), 1000);
                link.reorder = Ratio::new((*reorder_permille).min(1000), 1000);
                link.reorder_window = Duration::from_millis(*reorder_window_ms);
                link.latency.tail_chance = Ratio::new((*tail_permille).min(1000), 1000);
                link.latency.tail_max = Duration::from_millis(*tail_max_ms);
                engine.push(TimedFault {
                    at: Duration::from_millis(at_ms),
                    fault: Fault::DegradeLink {
                        from: from_machine,
                        to: machines[to_index].to_string(),
                        link,
                        duration: lasting(at_ms, *duration_ms),
                    },
                });
            }
            FaultDraw::NodeCrash { node: index, at_ms, down_ms } => {
                let at_ms = at(*at_ms);
                engine.push(TimedFault {
                    at: Duration::from_millis(at_ms),
                    fault: Fault::Crash { machine: node(*index), restart_after: Some(lasting(at_ms, *down_ms)) },
                });
            }
            FaultDraw::NodeLoss { node: index, at_ms } => {
                let machine = node(*index);
                if !lost.contains(&machine) {
                    if lost.len() >= shape.max_lost_nodes {
                        continue;
                    }
                    lost.push(machine.clone());
                }
                engine.push(TimedFault { at: Duration::from_millis(at(*at_ms)), fault: Fault::Lose { machine } });
            }
            FaultDraw::NodePartition { node: index, at_ms, duration_ms, one_way } => {
                let at_ms = at(*at_ms);
                let side_b: Vec<String> = shape.control_plane.iter().cloned().chain([shape.etcd.clone()]).collect();
                engine.push(TimedFault {
                    at: Duration::from_millis(at_ms),
                    fault: Fault::Partition {
                        side_a: vec![node(*index)],
                        side_b,
                        one_way: *one_way,
                        duration: lasting(at_ms, *duration_ms),
                    },
                });
            }
            FaultDraw::ControlPlaneCrash { machine, at_ms, down_ms } => {
                let at_ms = at(*at_ms);
                engine.push(TimedFault {
                    at: Duration::from_millis(at_ms),
                    fault: Fault::Crash {
                        machine: control_plane(*machine),
                        restart_after: Some(lasting(at_ms, *down_ms)),
                    },
                });
            }
            FaultDraw::ClockSkew { machine, at_ms, offset_ms } => {
                engine.push(TimedFault {
                    at: Duration::from_millis(at(*at_ms)),
                    fault: Fault::ClockSkew {
                        machine: pick(&clock_machines, *machine),
                        offset_ns: offset_ms.saturating_mul(1_000_000),
                    },
                });
            }
            FaultDraw::ClockDrift { machine, at_ms, drift_ppm } => {
                engine.push(TimedFault {
                    at: Duration::from_millis(at(*at_ms)),
                    fault: Fault::ClockDrift { machine: pick(&clock_machines, *machine), drift_ppm: *drift_ppm },
                });
            }
            FaultDraw::WatchCacheLag { server, at_ms, duration_ms } => {
                let at_ms = at(*at_ms);
                model.push(TimedModelFault {
                    at: Duration::from_millis(at_ms),
                    fault: ModelFault::WatchCacheLag {
                        server: control_plane(*server),
                        duration: lasting(at_ms, *duration_ms),
                    },
                });
            }
            FaultDraw::Compact { at_ms } => {
                model.push(TimedModelFault { at: Duration::from_millis(at(*at_ms)), fault: ModelFault::CompactNow });
            }
            FaultDraw::ContainerCrash { node: index, nth, at_ms } => {
                model.push(TimedModelFault {
                    at: Duration::from_millis(at(*at_ms)),
                    fault: ModelFault::ContainerCrash { node: node(*index), nth: *nth },
                });
            }
            FaultDraw::PullFailure { image, at_ms, duration_ms } => {
                if shape.images.is_empty() {
                    continue;
                }
                let at_ms = at(*at_ms);
                model.push(TimedModelFault {
                    at: Duration::from_millis(at_ms),
                    fault: ModelFault::PullFailure {
                        image: shape.images[image % shape.images.len()].clone(),
                        duration: lasting(at_ms, *duration_ms),
                    },
                });
            }
        }
    }
    engine.sort_by_key(|timed| timed.at);
    model.sort_by_key(|timed| timed.at);
    FaultPlan { engine: FaultSchedule::new(engine), model }
}

/// A plan in words, one fault a line, for failure messages.
pub fn describe(plan: &FaultPlan) -> String {
    let mut lines: Vec<(Duration, String)> = plan
        .engine
        .faults
        .iter()
        .map(|timed| (timed.at, timed.fault.to_string()))
        .chain(plan.model.iter().map(|timed| (timed.at, format!("{:?}", timed.fault))))
        .collect();
    lines.sort_by_key(|(at, _)| *at);
    lines
        .iter()
        .map(|(at, text)| format!("  at {}: {text}", kubedst_sim::serde_duration::format(*at)))
        .collect::<Vec<_>>()
        .join("\n")
}
