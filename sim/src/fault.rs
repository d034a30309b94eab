//! Fault schedules: serializable lists of timed faults, and the swarm generator that draws them
//! from a seed.
//!
//! Faults name machines, so a schedule reads the same in a repro file as in a test. Faults that
//! last have a duration and heal themselves; the engine also heals everything at the end of the
//! fault phase ([`crate::Sim::end_fault_phase`]).

use crate::network::LinkConfig;
use crate::rng::{Ratio, SimRng};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// One fault, acting on machines or the links between them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The machine stops: every component loses its volatile state and keeps only what it
    /// persisted. With `restart_after` it comes back by itself.
    Crash {
        machine: String,
        #[serde(default, with = "crate::serde_duration::option", skip_serializing_if = "Option::is_none")]
        restart_after: Option<Duration>,
    },
    /// A crashed machine boots again; its components are rebuilt from what they persisted.
    Restart { machine: String },
    /// The machine is gone for good, disk included.
    Lose { machine: String },
    /// The machine's processes stall (a GC pause, a frozen VM); inputs wait until it resumes.
    Pause {
        machine: String,
        #[serde(with = "crate::serde_duration")]
        duration: Duration,
    },
    /// The machine's wall clock jumps by `offset_ns` (positive: ahead of true time).
    ClockSkew { machine: String, offset_ns: i64 },
    /// The machine's clock runs fast (positive) or slow by `drift_ppm` parts per million.
    ClockDrift { machine: String, drift_ppm: i32 },
    /// Messages from `side_a` to `side_b` (and back, unless `one_way`) are lost for `duration`;
    /// streams across the cut break at once.
    Partition {
        side_a: Vec<String>,
        side_b: Vec<String>,
        #[serde(default)]
        one_way: bool,
        #[serde(with = "crate::serde_duration")]
        duration: Duration,
    },
    /// The machine is cut off from every other machine for `duration`.
    Isolate {
        machine: String,
        #[serde(with = "crate::serde_duration")]
        duration: Duration,
    },
    /// The link `from -> to` behaves as `link` for `duration`.
    DegradeLink {
        from: String,
        to: String,
        link: LinkConfig,
        #[serde(with = "crate::serde_duration")]
        duration: Duration,
    },
}

/// The kinds of fault, for accounting and for the swarm's choice of what to enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Crash,
    Restart,
    Lose,
    Pause,
    ClockSkew,
    ClockDrift,
    Partition,
    Isolate,
    DegradeLink,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::Lose,
        FaultKind::Pause,
        FaultKind::ClockSkew,
        FaultKind::ClockDrift,
        FaultKind::Partition,
        FaultKind::Isolate,
        FaultKind::DegradeLink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Lose => "lose",
            FaultKind::Pause => "pause",
            FaultKind::ClockSkew => "clock_skew",
            FaultKind::ClockDrift => "clock_drift",
            FaultKind::Partition => "partition",
            FaultKind::Isolate => "isolate",
            FaultKind::DegradeLink => "degrade_link",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Restart { .. } => FaultKind::Restart,
            Fault::Lose { .. } => FaultKind::Lose,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::ClockSkew { .. } => FaultKind::ClockSkew,
            Fault::ClockDrift { .. } => FaultKind::ClockDrift,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Isolate { .. } => FaultKind::Isolate,
            Fault::DegradeLink { .. } => FaultKind::DegradeLink,
        }
    }

    /// Every machine name the fault mentions, to check them against the cluster.
    pub fn machines(&self) -> Vec<&str> {
        match self {
            Fault::Crash { machine, .. }
            | Fault::Restart { machine }
            | Fault::Lose { machine }
            | Fault::Pause { machine, .. }
            | Fault::ClockSkew { machine, .. }
            | Fault::ClockDrift { machine, .. }
            | Fault::Isolate { machine, .. } => vec![machine.as_str()],
            Fault::Partition { side_a, side_b, .. } => side_a.iter().chain(side_b).map(String::as_str).collect(),
            Fault::DegradeLink { from, to, .. } => vec![from.as_str(), to.as_str()],
        }
    }

    /// How long the fault lasts, for faults that heal themselves.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Fault::Crash { restart_after, .. } => *restart_after,
            Fault::Pause { duration, .. }
            | Fault::Partition { duration, .. }
            | Fault::Isolate { duration, .. }
            | Fault::DegradeLink { duration, .. } => Some(*duration),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = crate::serde_duration::format;
        match self {
            Fault::Crash { machine, restart_after: Some(after) } => {
                write!(f, "crash {machine}, restart after {}", span(*after))
            }
            Fault::Crash { machine, restart_after: None } => write!(f, "crash {machine}"),
            Fault::Restart { machine } => write!(f, "restart {machine}"),
            Fault::Lose { machine } => write!(f, "lose {machine}"),
            Fault::Pause { machine, duration } => {
                write!(f, "pause {machine} for {}", span(*duration))
            }
            Fault::ClockSkew { machine, offset_ns } => {
                write!(f, "skew {machine}'s clock by {offset_ns}ns")
            }
            Fault::ClockDrift { machine, drift_ppm } => {
                write!(f, "drift {machine}'s clock by {drift_ppm}ppm")
            }
            Fault::Partition { side_a, side_b, one_way, duration } => write!(
                f,
                "partition [{}] {} [{}] for {}",
                side_a.join(","),
                if *one_way { "-/->" } else { "<-/->" },
                side_b.join(","),
                span(*duration)
            ),
            Fault::Isolate { machine, duration } => {
                write!(f, "isolate {machine} for {}", span(*duration))
            }
            Fault::DegradeLink { from, to, link, duration } => write!(
                f,
                "degrade {from}->{to} (loss {}, latency floor {}) for {}",
                link.loss,
                span(link.latency.floor),
                span(*duration)
            ),
        }
    }
}

/// A fault and when it strikes, as an offset from the start of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedFault {
    #[serde(with = "crate::serde_duration")]
    pub at: Duration,
    pub fault: Fault,
}

/// A whole fault schedule. Order in the list does not matter: the engine orders faults by time,
/// and faults at the same time by their position in the list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSchedule {
    #[serde(default)]
    pub faults: Vec<TimedFault>,
}

impl FaultSchedule {
    pub fn new(faults: Vec<TimedFault>) -> FaultSchedule {
        FaultSchedule { faults }
    }

    pub fn len(&self) -> usize {
        self.faults.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// When the last fault has healed (or struck, for faults without a duration).
    pub fn end(&self) -> Duration {
        self.faults.iter().map(|timed| timed.at + timed.fault.duration().unwrap_or_default()).max().unwrap_or_default()
    }
}

/// What the swarm generator may draw from: the machines, when faults may strike, how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmSpace {
    pub machines: Vec<String>,
    /// Faults strike in `window_start..window_end`.
    pub window_start: Duration,
    pub window_end: Duration,
    pub max_faults: u32,
    /// Kinds the swarm may enable (a workload that cannot survive losing a machine leaves out
    /// [`FaultKind::Lose`]).
    pub allowed: Vec<FaultKind>,
    /// The link the network uses when the swarm leaves it calm.
    pub base_link: LinkConfig,
}

/// Everything one seed drew: printed before a run so a failure report says what was tried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmDraw {
    pub seed: u64,
    pub enabled: Vec<FaultKind>,
    /// The network every link starts with: the base link plus the drawn chaos.
    pub link: LinkConfig,
    pub schedule: FaultSchedule,
}

impl fmt::Display for SwarmDraw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.enabled.iter().map(|kind| kind.as_str()).collect();
        writeln!(f, "swarm seed={} enabled=[{}]", self.seed, kinds.join(","))?;
        writeln!(
            f,
            "  link: latency floor={} jitter={} tail={} up to {}; loss={} duplicate={} reorder={} within {}",
            crate::serde_duration::format(self.link.latency.floor),
            crate::serde_duration::format(self.link.latency.jitter),
            self.link.latency.tail_chance,
            crate::serde_duration::format(self.link.latency.tail_max),
            self.link.loss,
            self.link.duplicate,
            self.link.reorder,
            crate::serde_duration::format(self.link.reorder_window),
        )?;
        for timed in &self.schedule.faults {
            writeln!(f, "  at {}: {}", crate::serde_duration::format(timed.at), timed.fault)?;
        }
        Ok(())
    }
}

/// Draws the enabled fault kinds, their intensities and a schedule from the seed, as
/// FoundationDB's and TigerBeetle's swarm testing do: each seed tests a different mix, so rare
/// combinations get their turn instead of every run averaging every fault.
pub fn draw_swarm(seed: u64, space: &SwarmSpace) -> SwarmDraw {
    let mut rng = SimRng::for_stream(seed, "swarm");
    let mut enabled: Vec<FaultKind> = space.allowed.iter().copied().filter(|_| rng.chance(Ratio::new(1, 2))).collect();
    if enabled.is_empty() {
        if let Some(kind) = rng.pick(&space.allowed) {
            enabled.push(*kind);
        }
    }
    // Link chaos is part of the swarm only when link degradation is allowed at all.
    let mut link = space.base_link;
    if space.allowed.contains(&FaultKind::DegradeLink) && rng.chance(Ratio::new(1, 2)) {
        link.loss = Ratio::new(rng.below(51) as u32, 1000);
        link.duplicate = Ratio::new(rng.below(51) as u32, 1000);
        link.reorder = Ratio::new(rng.below(101) as u32, 1000);
        link.reorder_window = Duration::from_millis(rng.range_inclusive(1, 50));
        link.latency.tail_chance = Ratio::new(rng.below(51) as u32, 1000);
        link.latency.tail_max = Duration::from_millis(rng.range_inclusive(10, 500));
    }
    let mut faults = Vec::new();
    let window_ns = crate::time::duration_nanos(space.window_end.saturating_sub(space.window_start));
    let fault_count = if space.max_faults == 0 || enabled.is_empty() || space.machines.is_empty() {
        0
    } else {
        rng.range_inclusive(1, u64::from(space.max_faults))
    };
    for _ in 0..fault_count {
        let kind = *rng.pick(&enabled).expect("enabled is not empty");
        let at = space.window_start + Duration::from_nanos(rng.range_inclusive(0, window_ns));
        let machine = rng.pick(&space.machines).expect("machines is not empty").clone();
        let duration = Duration::from_millis(rng.range_inclusive(500, 30_000));
        let fault = match kind {
            FaultKind::Crash => Fault::Crash {
                machine,
                restart_after: rng
                    .chance(Ratio::new(3, 4))
                    .then(|| Duration::from_millis(rng.range_inclusive(100, 60_000))),
            },
            FaultKind::Restart => Fault::Restart { machine },
            FaultKind::Lose => Fault::Lose { machine },
            FaultKind::Pause => Fault::Pause { machine, duration },
            FaultKind::ClockSkew => {
                let magnitude_ns = rng.range_inclusive(1, 30_000) as i64 * 1_000_000;
                Fault::ClockSkew {
                    machine,
                    offset_ns: if rng.chance(Ratio::new(1, 2)) { magnitude_ns } else { -magnitude_ns },
                }
            }
            FaultKind::ClockDrift => {
                let magnitude_ppm = rng.range_inclusive(1, 100_000) as i32;
                Fault::ClockDrift {
                    machine,
                    drift_ppm: if rng.chance(Ratio::new(1, 2)) { magnitude_ppm } else { -magnitude_ppm },
                }
            }
            FaultKind::Partition => {
                let mut shuffled = space.machines.clone();
                rng.shuffle(&mut shuffled);
                let cut = rng.range_inclusive(1, shuffled.len().max(2) as u64 - 1) as usize;
                let side_b = shuffled.split_off(cut.min(shuffled.len()));
                Fault::Partition { side_a: shuffled, side_b, one_way: rng.chance(Ratio::new(1, 4)), duration }
            }
            FaultKind::Isolate => Fault::Isolate { machine, duration },
            FaultKind::DegradeLink => {
                let to = rng.pick(&space.machines).expect("machines is not empty").clone();
                let mut degraded = space.base_link;
                degraded.loss = Ratio::new(rng.range_inclusive(100, 900) as u32, 1000);
                degraded.latency.floor = Duration::from_millis(rng.range_inclusive(5, 2_000));
                Fault::DegradeLink { from: machine, to, link: degraded, duration }
            }
        };
        faults.push(TimedFault { at, fault });
    }
    faults.sort_by_key(|timed| timed.at);
    SwarmDraw { seed, enabled, link, schedule: FaultSchedule { faults } }
}
