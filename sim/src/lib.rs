//! kubedst-sim: the deterministic engine. Knows nothing of Kubernetes.
//!
//! Code map:
//! - [`time`]: virtual time ([`Time`], integer nanoseconds).
//! - [`rng`]: seeded named streams ([`SimRng`]) and integer probabilities ([`Ratio`]).
//! - [`hash`]: the fixed hash behind trace hashes ([`StableHasher`]).
//! - [`component`]: the sans-IO [`Component`] trait, its [`Input`]s, [`Effect`]s and [`Ctx`].
//! - [`network`]: links ([`LinkConfig`], [`LatencyModel`]), partitions and message accounting.
//! - [`fault`]: fault schedules ([`FaultSchedule`]) and the swarm generator ([`draw_swarm`]).
//! - [`sim`]: the engine ([`Sim`]): the event queue, machines, faults as verbs, run budgets.
//! - [`trace`]: trace records and the trace hash.
//! - [`testing`]: ping-pong components, used by the tests, the fuzz target and the benchmark.
//! - [`determinism`]: running a seed twice and comparing trace hashes.
//!
//! Architecture invariant: nothing here reads the OS clock, the OS's randomness, or iterates a
//! hash map; one run is single-threaded. Everything a run does follows from its seed.

pub mod component;
pub mod determinism;
pub mod fault;
pub mod hash;
pub mod network;
pub mod rng;
pub mod serde_duration;
pub mod sim;
pub mod testing;
pub mod time;
pub mod trace;

pub use component::{
    Component, ComponentId, Ctx, Effect, Input, MachineId, Message, ReplyTo, RequestId, StreamId, TimerId, TraceDigest,
};
pub use determinism::{check_determinism, Nondeterminism};
pub use fault::{draw_swarm, Fault, FaultKind, FaultSchedule, SwarmDraw, SwarmSpace, TimedFault};
pub use hash::{stable_hash_str, StableHasher};
pub use network::{DropReason, LatencyModel, LinkConfig, LinkStats, MessageTotals};
pub use rng::{Ratio, SimRng};
pub use sim::{Accounting, BudgetExceeded, MachineStatus, RunError, ScheduleError, Sim, SimConfig};
pub use time::Time;
pub use trace::{RecordKind, TraceRecord};
