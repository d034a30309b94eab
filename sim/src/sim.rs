//! The engine: one event queue ordered by (time, sequence number), the machines and components,
//! and the code that carries out effects and faults.

use crate::component::{
    BuggifyConfig, Component, ComponentId, Ctx, Effect, IdCounters, Input, MachineId, Message, ReplyTo, RequestId,
    StreamId, TimerId, TraceDigest,
};
use crate::fault::{Fault, FaultKind, FaultSchedule, TimedFault};
use crate::hash::stable_hash_str;
use crate::network::{DropReason, LinkConfig, LinkStats, MessageTotals, Network, Route};
use crate::rng::{Ratio, SimRng};
use crate::time::{duration_nanos, Time};
use crate::trace::{RecordKind, Trace, TraceRecord, NO_COMPONENT};
use std::any::Any;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::time::Duration;

/// Settings of one run. Everything else is drawn from `seed`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Every link between two machines starts as this.
    pub link: LinkConfig,
    /// Messages between components of the same machine take this long; faults never touch them.
    pub loopback_latency: Duration,
    /// A run that processes more events than this fails with [`RunError`].
    pub max_events: u64,
    /// A run that reaches this virtual time without finishing fails with [`RunError`].
    pub max_time: Time,
    /// Whether [`Ctx::buggify`] can fire in this run.
    pub buggify: bool,
    pub buggify_fire_chance: Ratio,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            link: LinkConfig::default(),
            loopback_latency: Duration::from_micros(10),
            max_events: 100_000_000,
            max_time: Time::from_secs(7 * 24 * 3600),
            buggify: false,
            buggify_fire_chance: Ratio::new(1, 20),
        }
    }
}

/// Whether a machine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MachineStatus {
    Up,
    /// Crashed; a restart rebuilds its components from what they persisted.
    Down,
    /// Gone for good.
    Lost,
}

/// A machine's wall clock: `local = base_local + (true - base_true) * (1 + drift_ppm / 10^6)`.
/// Rebasing on every change keeps the clock continuous when the drift changes.
#[derive(Clone, Copy, Debug)]
struct Clock {
    base_true_ns: u64,
    base_local_ns: i128,
    drift_ppm: i64,
}

impl Clock {
    const IDENTITY: Clock = Clock { base_true_ns: 0, base_local_ns: 0, drift_ppm: 0 };

    fn local_ns(&self, true_ns: u64) -> i128 {
        let elapsed = i128::from(true_ns) - i128::from(self.base_true_ns);
        self.base_local_ns + elapsed + elapsed * i128::from(self.drift_ppm) / 1_000_000
    }

    #[inline]
    fn local(&self, true_ns: u64) -> Time {
        // The common case, a clock no fault has touched, skips the 128-bit arithmetic.
        if self.drift_ppm == 0 && self.base_local_ns == 0 && self.base_true_ns == 0 {
            return Time::from_nanos(true_ns);
        }
        Time::from_nanos(self.local_ns(true_ns).clamp(0, i128::from(u64::MAX)) as u64)
    }

    /// How much true time passes while this clock advances by `local_span_ns`.
    fn true_span_ns(&self, local_span_ns: u64) -> u64 {
        if self.drift_ppm == 0 {
            return local_span_ns;
        }
        // Rounded up, so that a timer never fires before the machine's own clock reaches it.
        let denominator = 1_000_000 + i128::from(self.drift_ppm);
        let scaled = (i128::from(local_span_ns) * 1_000_000 + denominator - 1) / denominator;
        scaled.clamp(0, i128::from(u64::MAX)) as u64
    }

    fn rebase(&mut self, true_ns: u64) {
        self.base_local_ns = self.local_ns(true_ns);
        self.base_true_ns = true_ns;
    }
}

struct MachineState<M, T> {
    name: String,
    status: MachineStatus,
    /// Inputs for this machine's components wait until then.
    paused_until: Time,
    /// Inputs held by a pause, in arrival order; released together when the pause ends, so a
    /// pause (even one extended while it lasts) never reorders a stream.
    held: std::collections::VecDeque<Event<M, T>>,
    clock: Clock,
    components: Vec<ComponentId>,
}

type Factory<M, T> = Box<dyn FnMut(Option<Box<dyn Any>>) -> Box<dyn Component<M, T>>>;

struct Slot<M, T> {
    name: String,
    machine: MachineId,
    component: Option<Box<dyn Component<M, T>>>,
    factory: Factory<M, T>,
    /// Bumped at every crash; timers of an earlier incarnation are void.
    incarnation: u32,
    /// What the component persisted at its last crash, until its restart.
    durable: Option<Box<dyn Any>>,
    rng: SimRng,
}

struct PendingRequest {
    caller: ComponentId,
    incarnation: u32,
}

struct StreamState {
    /// The opener, then the acceptor.
    ends: [ComponentId; 2],
    machines: [u32; 2],
    /// Arrival time of the last message in each direction (0: opener to acceptor), for FIFO order.
    last_arrival_ns: [u64; 2],
    open: bool,
    /// Whether the acceptor has been told of the stream; only then is it told of the break.
    accepted: bool,
    /// The end that closed the stream; nothing more may be sent on it.
    closing: Option<ComponentId>,
}

enum Payload<M> {
    Plain(M),
    Request(RequestId, M),
    Response(RequestId, M),
    StreamOpen(StreamId),
    Stream(StreamId, M),
    /// The closing end's FIN: it arrives after everything the closer sent, then the peer hears
    /// of the close.
    StreamClose(StreamId),
}

enum Heal {
    Restart(MachineId),
    Unblock(Vec<(u32, u32)>),
    RestoreLink((u32, u32), u64),
}

enum Event<M, T> {
    Start {
        component: ComponentId,
        incarnation: u32,
    },
    Deliver {
        from: ComponentId,
        to: ComponentId,
        from_machine: u32,
        payload: Payload<M>,
    },
    Timer {
        component: ComponentId,
        incarnation: u32,
        id: TimerId,
        timer: T,
    },
    RequestTimeout {
        id: RequestId,
        caller: ComponentId,
    },
    StreamBroken {
        id: StreamId,
        component: ComponentId,
        incarnation: u32,
    },
    Fault {
        index: usize,
    },
    Heal {
        heal: Heal,
        generation: u64,
    },
    /// A pause may have ended: release the machine's held inputs.
    Resume {
        machine: MachineId,
    },
}

impl<M, T> Event<M, T> {
    /// The component that will handle the event, if any (a paused machine holds such events).
    fn target(&self) -> Option<ComponentId> {
        match self {
            Event::Start { component, .. } | Event::Timer { component, .. } | Event::StreamBroken { component, .. } => {
                Some(*component)
            }
            Event::Deliver { to, .. } => Some(*to),
            Event::RequestTimeout { caller, .. } => Some(*caller),
            Event::Fault { .. } | Event::Heal { .. } | Event::Resume { .. } => None,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Event::Start { .. } => "start",
            Event::Deliver { payload: Payload::Plain(_), .. } => "message",
            Event::Deliver { payload: Payload::Request(..), .. } => "request",
            Event::Deliver { payload: Payload::Response(..), .. } => "response",
            Event::Deliver { payload: Payload::StreamOpen(_), .. } => "stream open",
            Event::Deliver { payload: Payload::Stream(..), .. } => "stream message",
            Event::Deliver { payload: Payload::StreamClose(_), .. } => "stream close",
            Event::Timer { .. } => "timer",
            Event::RequestTimeout { .. } => "request timeout",
            Event::StreamBroken { .. } => "stream break",
            Event::Fault { .. } => "fault",
            Event::Heal { .. } => "heal",
            Event::Resume { .. } => "resume",
        }
    }
}

/// A queue entry. `key` packs (time, sequence) so one integer comparison orders the queue, and
/// ties in time are broken by the order in which events were scheduled.
struct Scheduled<M, T> {
    key: u128,
    event: Event<M, T>,
}

impl<M, T> PartialEq for Scheduled<M, T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<M, T> Eq for Scheduled<M, T> {}
impl<M, T> PartialOrd for Scheduled<M, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M, T> Ord for Scheduled<M, T> {
    /// Reversed, so std's max-heap pops the earliest event.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Why a run stopped before it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    pub reason: BudgetExceeded,
    pub now: Time,
    pub events: u64,
    /// What was still to do, one line per kind of pending work.
    pub pending: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetExceeded {
    Events(u64),
    Time(Time),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            BudgetExceeded::Events(limit) => {
                write!(f, "ran {} events (the limit is {limit}) until {} without completing", self.events, self.now)?
            }
            BudgetExceeded::Time(limit) => {
                write!(f, "ran until {} (the limit is {limit}), {} events, without completing", self.now, self.events)?
            }
        }
        if self.pending.is_empty() {
            write!(f, "; nothing was pending")
        } else {
            write!(f, "; still pending:")?;
            for line in &self.pending {
                write!(f, "\n  {line}")?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for RunError {}

/// A fault schedule that does not fit the simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError(pub String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScheduleError {}

/// What happened in a run besides the components' own work: which faults fired, and what the
/// network did on each link. A green run with no fault fired has tested nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Accounting {
    pub faults_fired: BTreeMap<FaultKind, u64>,
    /// Faults that struck nothing (a crash of a machine already down, say).
    pub faults_skipped: BTreeMap<FaultKind, u64>,
    /// Per directed link `(from machine, to machine)`, only links where something happened.
    pub links: BTreeMap<(String, String), LinkStats>,
    pub messages: MessageTotals,
    pub requests_timed_out: u64,
    pub late_responses: u64,
    pub streams_broken: u64,
    pub buggify_fired: BTreeMap<String, u64>,
}

impl Accounting {
    pub fn fired(&self, kind: FaultKind) -> u64 {
        self.faults_fired.get(&kind).copied().unwrap_or(0)
    }

    pub fn total_faults_fired(&self) -> u64 {
        self.faults_fired.values().sum()
    }
}

/// One deterministic simulation.
pub struct Sim<M, T> {
    config: SimConfig,
    now: Time,
    next_seq: u64,
    queue: BinaryHeap<Scheduled<M, T>>,
    machines: Vec<MachineState<M, T>>,
    machine_ids: BTreeMap<String, MachineId>,
    slots: Vec<Slot<M, T>>,
    component_ids: BTreeMap<String, ComponentId>,
    network: Network,
    requests: BTreeMap<RequestId, PendingRequest>,
    streams: BTreeMap<StreamId, StreamState>,
    live_timers: BTreeSet<TimerId>,
    ids: IdCounters,
    outbox: Vec<Effect<M, T>>,
    trace: Trace,
    faults: Vec<TimedFault>,
    fault_phase_over: bool,
    heal_generation: u64,
    faults_fired: BTreeMap<FaultKind, u64>,
    faults_skipped: BTreeMap<FaultKind, u64>,
    requests_timed_out: u64,
    late_responses: u64,
    streams_broken: u64,
    buggify: BuggifyConfig,
    buggify_fired: BTreeMap<&'static str, u64>,
    events_processed: u64,
}

impl<M: Message, T: TraceDigest + fmt::Debug + 'static> Sim<M, T> {
    pub fn new(config: SimConfig) -> Self {
        let network = Network::new(
            config.link,
            duration_nanos(config.loopback_latency),
            SimRng::for_stream(config.seed, "network"),
        );
        let buggify =
            BuggifyConfig { enabled: config.buggify, seed: config.seed, fire_chance: config.buggify_fire_chance };
        Sim {
            config,
            now: Time::ZERO,
            next_seq: 0,
            queue: BinaryHeap::new(),
            machines: Vec::new(),
            machine_ids: BTreeMap::new(),
            slots: Vec::new(),
            component_ids: BTreeMap::new(),
            network,
            requests: BTreeMap::new(),
            streams: BTreeMap::new(),
            live_timers: BTreeSet::new(),
            ids: IdCounters::default(),
            outbox: Vec::new(),
            trace: Trace::new(),
            faults: Vec::new(),
            fault_phase_over: false,
            heal_generation: 0,
            faults_fired: BTreeMap::new(),
            faults_skipped: BTreeMap::new(),
            requests_timed_out: 0,
            late_responses: 0,
            streams_broken: 0,
            buggify,
            buggify_fired: BTreeMap::new(),
            events_processed: 0,
        }
    }

    // ----- building -----

    /// Adds a machine; names are unique.
    pub fn add_machine(&mut self, name: &str) -> MachineId {
        assert!(!self.machine_ids.contains_key(name), "machine {name:?} added twice");
        let id = MachineId(self.machines.len() as u32);
        self.machines.push(MachineState {
            name: name.to_string(),
            status: MachineStatus::Up,
            paused_until: Time::ZERO,
            held: std::collections::VecDeque::new(),
            clock: Clock::IDENTITY,
            components: Vec::new(),
        });
        self.machine_ids.insert(name.to_string(), id);
        id
    }

    /// Adds a component on `machine`. `factory` builds it, now and after every restart, from what
    /// it persisted at its last crash (`None` the first time). It receives [`Input::Start`] at once.
    pub fn add_component(
        &mut self,
        machine: MachineId,
        name: &str,
        factory: impl FnMut(Option<Box<dyn Any>>) -> Box<dyn Component<M, T>> + 'static,
    ) -> ComponentId {
        assert!(!self.component_ids.contains_key(name), "component {name:?} added twice");
        let id = ComponentId(self.slots.len() as u32);
        let mut factory: Factory<M, T> = Box::new(factory);
        let up = self.machines[machine.0 as usize].status == MachineStatus::Up;
        let component = if up { Some(factory(None)) } else { None };
        self.slots.push(Slot {
            name: name.to_string(),
            machine,
            component,
            factory,
            incarnation: 0,
            durable: None,
            rng: SimRng::for_stream(self.config.seed, &format!("component/{name}")),
        });
        self.component_ids.insert(name.to_string(), id);
        self.machines[machine.0 as usize].components.push(id);
        if up {
            self.schedule(self.now, Event::Start { component: id, incarnation: 0 });
        }
        id
    }

    /// Hands `msg` to component `to` from outside the simulated network (a test harness or a
    /// scenario's user action), at the current time, as if the component had sent it to itself.
    pub fn inject(&mut self, to: ComponentId, msg: M) {
        let machine = self.slots[to.0 as usize].machine;
        self.network.totals.sent += 1;
        self.network.totals.in_flight += 1;
        self.schedule(self.now, Event::Deliver { from: to, to, from_machine: machine.0, payload: Payload::Plain(msg) });
    }

    /// Schedules every fault of `schedule` (offsets from time zero). Unknown machine names and
    /// invalid link settings are errors, reported before anything runs.
    pub fn install_faults(&mut self, schedule: &FaultSchedule) -> Result<(), ScheduleError> {
        for (position, timed) in schedule.faults.iter().enumerate() {
            for name in timed.fault.machines() {
                if !self.machine_ids.contains_key(name) {
                    let known: Vec<&str> = self.machine_ids.keys().map(String::as_str).collect();
                    return Err(ScheduleError(format!(
                        "fault {position} ({}) names machine {name:?}, which is not in the cluster (machines: {})",
                        timed.fault,
                        known.join(", ")
                    )));
                }
            }
            match &timed.fault {
                Fault::DegradeLink { link, .. } => {
                    link.validate().map_err(|err| ScheduleError(format!("fault {position}: {err}")))?
                }
                Fault::ClockDrift { drift_ppm, .. } if *drift_ppm <= -1_000_000 => {
                    return Err(ScheduleError(format!(
                        "fault {position}: drift_ppm {drift_ppm} would stop or reverse the clock (expected > -1000000)"
                    )))
                }
                Fault::Partition { side_a, side_b, .. } if side_a.is_empty() || side_b.is_empty() => {
                    return Err(ScheduleError(format!("fault {position}: a partition needs machines on both sides")))
                }
                _ => {}
            }
        }
        for timed in &schedule.faults {
            let index = self.faults.len();
            self.faults.push(timed.clone());
            let at = Time::ZERO + timed.at;
            self.schedule(at.max(self.now), Event::Fault { index });
        }
        Ok(())
    }

    /// Keeps every trace record in memory (for tests and reports).
    pub fn keep_trace_records(&mut self) {
        self.trace.records.get_or_insert_with(Vec::new);
    }

    /// Writes every trace record as a JSON line to `sink`.
    pub fn write_trace_jsonl(&mut self, sink: Box<dyn std::io::Write>) {
        self.trace.jsonl = Some(sink);
    }

    // ----- inspection -----

    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// True (engine) time.
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// The hash of every step so far: equal for equal runs, on every platform.
    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }

    pub fn trace_records(&self) -> &[TraceRecord] {
        self.trace.records.as_deref().unwrap_or(&[])
    }

    /// Flushes the JSON Lines sink and reports the first write error, if any.
    pub fn finish_trace(&mut self) -> std::io::Result<()> {
        if let Some(err) = self.trace.jsonl_error.take() {
            return Err(err);
        }
        match &mut self.trace.jsonl {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }

    pub fn component_id(&self, name: &str) -> Option<ComponentId> {
        self.component_ids.get(name).copied()
    }

    pub fn component_name(&self, id: ComponentId) -> &str {
        &self.slots[id.0 as usize].name
    }

    pub fn component_count(&self) -> usize {
        self.slots.len()
    }

    pub fn machine_id(&self, name: &str) -> Option<MachineId> {
        self.machine_ids.get(name).copied()
    }

    pub fn machine_name(&self, id: MachineId) -> &str {
        &self.machines[id.0 as usize].name
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    pub fn machine_of(&self, component: ComponentId) -> MachineId {
        self.slots[component.0 as usize].machine
    }

    pub fn machine_status(&self, machine: MachineId) -> MachineStatus {
        self.machines[machine.0 as usize].status
    }

    /// The machine's wall clock now.
    pub fn machine_clock(&self, machine: MachineId) -> Time {
        self.machines[machine.0 as usize].clock.local(self.now.as_nanos())
    }

    /// Whether a partition currently blocks messages from `from` to `to`.
    pub fn is_blocked(&self, from: MachineId, to: MachineId) -> bool {
        self.network.is_blocked(from.0, to.0)
    }

    /// The component's state, for checking invariants against ground truth; `None` while its
    /// machine is down or if it is of another type.
    pub fn component<C: Component<M, T>>(&self, id: ComponentId) -> Option<&C> {
        let component: &dyn Any = self.slots[id.0 as usize].component.as_deref()?;
        component.downcast_ref::<C>()
    }

    pub fn component_mut<C: Component<M, T>>(&mut self, id: ComponentId) -> Option<&mut C> {
        let component: &mut dyn Any = self.slots[id.0 as usize].component.as_deref_mut()?;
        component.downcast_mut::<C>()
    }

    /// Counters of faults and of the network, named by machine.
    pub fn accounting(&self) -> Accounting {
        let totals = self.network.totals;
        Accounting {
            faults_fired: self.faults_fired.clone(),
            faults_skipped: self.faults_skipped.clone(),
            links: self
                .network
                .link_stats
                .iter()
                .map(|(&(from, to), stats)| {
                    ((self.machines[from as usize].name.clone(), self.machines[to as usize].name.clone()), *stats)
                })
                .collect(),
            messages: totals,
            requests_timed_out: self.requests_timed_out,
            late_responses: self.late_responses,
            streams_broken: self.streams_broken,
            buggify_fired: self.buggify_fired.iter().map(|(site, count)| (site.to_string(), *count)).collect(),
        }
    }

    /// Messages scheduled for delivery, counted in the queue itself (an independent check of the
    /// accounting's `in_flight`).
    pub fn queued_deliveries(&self) -> u64 {
        let queued = self.queue.iter().filter(|entry| matches!(entry.event, Event::Deliver { .. })).count();
        let held: usize = self
            .machines
            .iter()
            .map(|machine| machine.held.iter().filter(|event| matches!(event, Event::Deliver { .. })).count())
            .sum();
        (queued + held) as u64
    }

    /// Pending work, in words: queued events grouped by kind and target, then what components say.
    pub fn pending(&self) -> Vec<String> {
        let mut groups: BTreeMap<(String, &'static str), (u64, Time)> = BTreeMap::new();
        for entry in self.queue.iter() {
            let target = match entry.event.target() {
                Some(id) => self.slots[id.0 as usize].name.clone(),
                None => "engine".to_string(),
            };
            let at = Time::from_nanos((entry.key >> 64) as u64);
            let group = groups.entry((target, entry.event.describe())).or_insert((0, at));
            group.0 += 1;
            group.1 = group.1.min(at);
        }
        for machine in &self.machines {
            if !machine.held.is_empty() {
                let key = (machine.name.clone(), "held by a pause");
                let group = groups.entry(key).or_insert((0, machine.paused_until));
                group.0 += machine.held.len() as u64;
            }
        }
        let mut lines: Vec<String> = groups
            .into_iter()
            .map(|((target, what), (count, first))| {
                format!("{count} {what} event(s) for {target}, the first at {first}")
            })
            .collect();
        for slot in &self.slots {
            if let Some(component) = &slot.component {
                lines.extend(component.pending().into_iter().map(|line| format!("{}: {line}", slot.name)));
            }
        }
        lines
    }

    // ----- running -----

    /// Processes the next event, if any; returns whether there was one.
    pub fn step(&mut self) -> bool {
        let Some(Scheduled { key, event }) = self.queue.pop() else {
            return false;
        };
        let at = Time::from_nanos((key >> 64) as u64);
        debug_assert!(at >= self.now, "time went backwards: {at} < {}", self.now);
        self.now = at;
        self.events_processed += 1;
        if let Some(target) = event.target() {
            let machine = &mut self.machines[self.slots[target.0 as usize].machine.0 as usize];
            if machine.status == MachineStatus::Up && (machine.paused_until > at || !machine.held.is_empty()) {
                // The process is stalled: the input waits, in arrival order, until it resumes.
                machine.held.push_back(event);
                return true;
            }
        }
        self.dispatch(event);
        debug_assert!(self.network.totals.balanced(), "message accounting broke: {:?}", self.network.totals);
        true
    }

    /// Runs every event up to and including `deadline`, then sets the clock to `deadline`.
    pub fn run_until(&mut self, deadline: Time) -> Result<(), RunError> {
        while let Some(next) = self.queue.peek() {
            if Time::from_nanos((next.key >> 64) as u64) > deadline {
                break;
            }
            self.check_budget()?;
            self.step();
        }
        self.now = self.now.max(deadline);
        Ok(())
    }

    /// Processes the next event if it is due at or before `deadline` and returns true; otherwise
    /// sets the clock to `deadline` and returns false. For harnesses that look at the world after
    /// every event without running past a point in time.
    pub fn step_until(&mut self, deadline: Time) -> Result<bool, RunError> {
        match self.queue.peek() {
            Some(next) if Time::from_nanos((next.key >> 64) as u64) <= deadline => {
                self.check_budget()?;
                self.step();
                Ok(true)
            }
            _ => {
                self.now = self.now.max(deadline);
                Ok(false)
            }
        }
    }

    /// Runs for `span` of virtual time from now.
    pub fn run_for(&mut self, span: Duration) -> Result<(), RunError> {
        self.run_until(self.now + span)
    }

    /// Runs until no event is left. Fails if the event or time budget runs out first, naming what
    /// was still pending.
    pub fn run_until_quiescent(&mut self) -> Result<(), RunError> {
        while !self.queue.is_empty() {
            self.check_budget()?;
            self.step();
        }
        Ok(())
    }

    /// Runs while `keep_going` holds (checked before each event) and events remain.
    pub fn run_while(&mut self, mut keep_going: impl FnMut(&Self) -> bool) -> Result<(), RunError> {
        while !self.queue.is_empty() && keep_going(self) {
            self.check_budget()?;
            self.step();
        }
        Ok(())
    }

    fn check_budget(&self) -> Result<(), RunError> {
        let reason = if self.events_processed >= self.config.max_events {
            BudgetExceeded::Events(self.config.max_events)
        } else if self.queue.peek().is_some_and(|next| (next.key >> 64) as u64 > self.config.max_time.as_nanos()) {
            BudgetExceeded::Time(self.config.max_time)
        } else {
            return Ok(());
        };
        Err(RunError { reason, now: self.now, events: self.events_processed, pending: self.pending() })
    }

    // ----- faults as verbs -----

    /// Crashes a machine: its components hand over what they persisted and vanish; their timers,
    /// outstanding requests and streams die with them. Returns false if the machine was not up.
    pub fn crash(&mut self, machine: MachineId) -> bool {
        if self.machines[machine.0 as usize].status != MachineStatus::Up {
            return false;
        }
        let state = &mut self.machines[machine.0 as usize];
        state.status = MachineStatus::Down;
        state.paused_until = Time::ZERO;
        let held = std::mem::take(&mut state.held);
        let components = state.components.clone();
        // Held inputs go back to the queue, where they meet a machine that is down (messages are
        // dropped and counted) or a newer incarnation (timers are void).
        for event in held {
            self.schedule(self.now, event);
        }
        for &id in &components {
            let slot = &mut self.slots[id.0 as usize];
            if let Some(component) = slot.component.take() {
                slot.durable = component.crash();
            }
            slot.incarnation += 1;
        }
        self.requests.retain(|_, pending| !components.contains(&pending.caller));
        let broken: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, stream)| stream.open && stream.machines.contains(&machine.0))
            .map(|(id, _)| *id)
            .collect();
        for id in broken {
            self.break_stream(id);
        }
        self.record(RecordKind::Crash, machine.0, NO_COMPONENT, 0, String::new);
        true
    }

    /// Boots a crashed machine: each component is rebuilt by its factory from what it persisted.
    pub fn restart(&mut self, machine: MachineId) -> bool {
        if self.machines[machine.0 as usize].status != MachineStatus::Down {
            return false;
        }
        self.machines[machine.0 as usize].status = MachineStatus::Up;
        for id in self.machines[machine.0 as usize].components.clone() {
            let slot = &mut self.slots[id.0 as usize];
            let durable = slot.durable.take();
            slot.component = Some((slot.factory)(durable));
            let incarnation = slot.incarnation;
            self.schedule(self.now, Event::Start { component: id, incarnation });
        }
        self.record(RecordKind::Restart, machine.0, NO_COMPONENT, 0, String::new);
        true
    }

    /// Loses a machine for good, persisted state included.
    pub fn lose(&mut self, machine: MachineId) -> bool {
        if self.machines[machine.0 as usize].status == MachineStatus::Lost {
            return false;
        }
        self.crash(machine);
        self.machines[machine.0 as usize].status = MachineStatus::Lost;
        for id in self.machines[machine.0 as usize].components.clone() {
            self.slots[id.0 as usize].durable = None;
        }
        true
    }

    /// Stalls a machine's processes for `span`; their inputs wait.
    pub fn pause(&mut self, machine: MachineId, span: Duration) -> bool {
        let state = &mut self.machines[machine.0 as usize];
        if state.status != MachineStatus::Up {
            return false;
        }
        state.paused_until = state.paused_until.max(self.now + span);
        let resume = state.paused_until;
        self.schedule(resume, Event::Resume { machine });
        true
    }

    /// Moves a machine's wall clock by `offset_ns`. A step back stops at the clock's zero (the
    /// run's epoch), from where the clock runs on: a clock held at zero would read the same
    /// instant over and over, which no real clock does (two Lease renewals with one renewTime
    /// look like a silent leader to its followers).
    pub fn skew_clock(&mut self, machine: MachineId, offset_ns: i64) {
        let clock = &mut self.machines[machine.0 as usize].clock;
        clock.rebase(self.now.as_nanos());
        clock.base_local_ns = (clock.base_local_ns + i128::from(offset_ns)).max(0);
    }

    /// Makes a machine's clock run fast or slow by `drift_ppm` parts per million from now on.
    pub fn set_clock_drift(&mut self, machine: MachineId, drift_ppm: i32) {
        assert!(drift_ppm > -1_000_000, "a drift of {drift_ppm} ppm would stop the clock");
        let clock = &mut self.machines[machine.0 as usize].clock;
        clock.rebase(self.now.as_nanos());
        clock.drift_ppm = i64::from(drift_ppm);
    }

    /// Blocks messages between the two sides (only `a -> b` if `one_way`) until
    /// [`Sim::repair`] or the end of the fault phase; streams across the cut break.
    pub fn partition(&mut self, side_a: &[MachineId], side_b: &[MachineId], one_way: bool) -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for &a in side_a {
            for &b in side_b {
                if a == b {
                    continue;
                }
                pairs.push((a.0, b.0));
                if !one_way {
                    pairs.push((b.0, a.0));
                }
            }
        }
        for &(from, to) in &pairs {
            self.network.block(from, to);
        }
        let broken: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, stream)| {
                stream.open
                    && (self.network.is_blocked(stream.machines[0], stream.machines[1])
                        || self.network.is_blocked(stream.machines[1], stream.machines[0]))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in broken {
            self.break_stream(id);
        }
        pairs
    }

    /// Lifts the blocks that [`Sim::partition`] returned.
    pub fn repair(&mut self, pairs: &[(u32, u32)]) {
        for &(from, to) in pairs {
            self.network.unblock(from, to);
        }
    }

    /// Cuts a machine off from all others; returns the blocked pairs for [`Sim::repair`].
    pub fn isolate(&mut self, machine: MachineId) -> Vec<(u32, u32)> {
        let others: Vec<MachineId> = (0..self.machines.len() as u32).map(MachineId).filter(|&m| m != machine).collect();
        self.partition(&[machine], &others, false)
    }

    /// Makes the link `from -> to` behave as `link` until the returned generation is restored.
    pub fn degrade_link(&mut self, from: MachineId, to: MachineId, link: LinkConfig) -> u64 {
        let generation = self.network.next_override_generation;
        self.network.next_override_generation += 1;
        self.network.overrides.insert((from.0, to.0), (link, generation));
        generation
    }

    /// Ends the fault phase: scheduled faults that have not struck are dropped, partitions and
    /// degraded links heal, crashed machines restart, and clocks are set right (as NTP would).
    /// Pauses already in progress run out as scheduled. Lost machines stay lost.
    pub fn end_fault_phase(&mut self) {
        self.fault_phase_over = true;
        self.heal_generation += 1;
        self.network.blocked.clear();
        self.network.overrides.clear();
        for index in 0..self.machines.len() {
            let machine = MachineId(index as u32);
            self.restart(machine);
            self.machines[index].clock = Clock::IDENTITY;
        }
        self.record(RecordKind::Heal, NO_COMPONENT, NO_COMPONENT, 0, || "end of fault phase".to_string());
    }

    fn apply_fault(&mut self, index: usize) {
        if self.fault_phase_over {
            return;
        }
        let fault = self.faults[index].fault.clone();
        let kind = fault.kind();
        let machine = |sim: &Self, name: &str| sim.machine_ids[name];
        let took_effect = match &fault {
            Fault::Crash { machine: name, restart_after } => {
                let id = machine(self, name);
                let crashed = self.crash(id);
                if let (true, Some(after)) = (crashed, restart_after) {
                    self.schedule_heal(*after, Heal::Restart(id));
                }
                crashed
            }
            Fault::Restart { machine: name } => self.restart(machine(self, name)),
            Fault::Lose { machine: name } => self.lose(machine(self, name)),
            Fault::Pause { machine: name, duration } => self.pause(machine(self, name), *duration),
            Fault::ClockSkew { machine: name, offset_ns } => {
                self.skew_clock(machine(self, name), *offset_ns);
                true
            }
            Fault::ClockDrift { machine: name, drift_ppm } => {
                self.set_clock_drift(machine(self, name), *drift_ppm);
                true
            }
            Fault::Partition { side_a, side_b, one_way, duration } => {
                let a: Vec<MachineId> = side_a.iter().map(|name| machine(self, name)).collect();
                let b: Vec<MachineId> = side_b.iter().map(|name| machine(self, name)).collect();
                let pairs = self.partition(&a, &b, *one_way);
                let any = !pairs.is_empty();
                self.schedule_heal(*duration, Heal::Unblock(pairs));
                any
            }
            Fault::Isolate { machine: name, duration } => {
                let pairs = self.isolate(machine(self, name));
                let any = !pairs.is_empty();
                self.schedule_heal(*duration, Heal::Unblock(pairs));
                any
            }
            Fault::DegradeLink { from, to, link, duration } => {
                let (from, to) = (machine(self, from), machine(self, to));
                if from == to {
                    false
                } else {
                    let generation = self.degrade_link(from, to, *link);
                    self.schedule_heal(*duration, Heal::RestoreLink((from.0, to.0), generation));
                    true
                }
            }
        };
        let (counter, record_kind) = if took_effect {
            (&mut self.faults_fired, RecordKind::Fault(kind))
        } else {
            (&mut self.faults_skipped, RecordKind::FaultSkipped(kind))
        };
        *counter.entry(kind).or_insert(0) += 1;
        let text = fault.to_string();
        self.record(record_kind, index as u32, NO_COMPONENT, stable_hash_str(&text), || text.clone());
    }

    fn schedule_heal(&mut self, after: Duration, heal: Heal) {
        let generation = self.heal_generation;
        self.schedule(self.now + after, Event::Heal { heal, generation });
    }

    fn apply_heal(&mut self, heal: Heal, generation: u64) {
        if generation != self.heal_generation {
            return;
        }
        match heal {
            Heal::Restart(machine) => {
                self.restart(machine);
            }
            Heal::Unblock(pairs) => self.repair(&pairs),
            Heal::RestoreLink(key, generation) => {
                if self.network.overrides.get(&key).is_some_and(|(_, current)| *current == generation) {
                    self.network.overrides.remove(&key);
                }
            }
        }
        self.record(RecordKind::Heal, NO_COMPONENT, NO_COMPONENT, 0, String::new);
    }

    // ----- internals -----

    #[inline]
    fn schedule(&mut self, at: Time, event: Event<M, T>) {
        let key = (u128::from(at.as_nanos()) << 64) | u128::from(self.next_seq);
        self.next_seq += 1;
        self.queue.push(Scheduled { key, event });
    }

    #[inline]
    fn record(&mut self, kind: RecordKind, subject: u32, peer: u32, detail: u64, text: impl FnOnce() -> String) {
        let record = TraceRecord { time: self.now, kind, subject, peer, detail };
        self.trace.fold(&record);
        if self.trace.jsonl.is_some() {
            self.write_jsonl(&record, text());
        }
    }

    #[cold]
    fn write_jsonl(&mut self, record: &TraceRecord, text: String) {
        let name = |index: u32| -> serde_json::Value {
            if index == NO_COMPONENT {
                serde_json::Value::Null
            } else {
                match record.kind {
                    RecordKind::Crash | RecordKind::Restart => {
                        serde_json::Value::String(self.machines[index as usize].name.clone())
                    }
                    RecordKind::Fault(_) | RecordKind::FaultSkipped(_) => serde_json::Value::from(index),
                    _ => serde_json::Value::String(self.slots[index as usize].name.clone()),
                }
            }
        };
        // Written by hand so the fields keep a reading order (time first) on every line.
        let line = format!(
            "{{\"t_ns\":{},\"kind\":\"{}\",\"subject\":{},\"peer\":{},\"detail\":{}}}",
            record.time.as_nanos(),
            record.kind.name(),
            name(record.subject),
            name(record.peer),
            serde_json::Value::String(text),
        );
        if let Some(sink) = &mut self.trace.jsonl {
            if let Err(err) = writeln!(sink, "{line}") {
                self.trace.jsonl_error.get_or_insert(err);
            }
        }
    }

    fn dispatch(&mut self, event: Event<M, T>) {
        match event {
            Event::Deliver { from, to, from_machine, payload } => self.deliver(from, to, from_machine, payload),
            Event::Timer { component, incarnation, id, timer } => {
                let live = self.live_timers.remove(&id);
                if live && self.slots[component.0 as usize].incarnation == incarnation {
                    let digest = timer.trace_digest();
                    self.record(RecordKind::Timer, component.0, NO_COMPONENT, digest, || format!("{timer:?}"));
                    self.invoke(component, Input::Timer { id, timer });
                }
            }
            Event::Start { component, incarnation } => {
                if self.slots[component.0 as usize].incarnation == incarnation {
                    self.record(RecordKind::Start, component.0, NO_COMPONENT, u64::from(incarnation), String::new);
                    self.invoke(component, Input::Start);
                }
            }
            Event::RequestTimeout { id, caller } => {
                if let Some(pending) = self.requests.remove(&id) {
                    debug_assert_eq!(pending.caller, caller);
                    self.requests_timed_out += 1;
                    if self.slots[caller.0 as usize].incarnation == pending.incarnation {
                        self.record(RecordKind::RequestTimeout, caller.0, NO_COMPONENT, id.0, String::new);
                        self.invoke(caller, Input::RequestTimedOut { id });
                    }
                }
            }
            Event::StreamBroken { id, component, incarnation } => {
                if self.slots[component.0 as usize].incarnation == incarnation {
                    self.record(RecordKind::StreamBreak, component.0, NO_COMPONENT, id.0, String::new);
                    self.invoke(component, Input::StreamBroken { id });
                }
            }
            Event::Fault { index } => self.apply_fault(index),
            Event::Heal { heal, generation } => self.apply_heal(heal, generation),
            Event::Resume { machine } => {
                let state = &mut self.machines[machine.0 as usize];
                if state.paused_until <= self.now {
                    let held = std::mem::take(&mut state.held);
                    for event in held {
                        self.schedule(self.now, event);
                    }
                }
            }
        }
    }

    #[inline]
    fn deliver(&mut self, from: ComponentId, to: ComponentId, from_machine: u32, payload: Payload<M>) {
        self.network.totals.in_flight -= 1;
        let to_machine = self.slots[to.0 as usize].machine.0;
        let reason = if self.machines[to_machine as usize].status != MachineStatus::Up {
            Some(DropReason::DestinationDown)
        } else if self.network.is_blocked(from_machine, to_machine) {
            Some(DropReason::Partition)
        } else {
            match &payload {
                Payload::StreamOpen(id) | Payload::Stream(id, _) | Payload::StreamClose(id)
                    if !self.streams.get(id).is_some_and(|s| s.open) =>
                {
                    Some(DropReason::StreamBroken)
                }
                _ => None,
            }
        };
        if let Some(reason) = reason {
            self.network.count_drop(from_machine, to_machine, reason);
            let detail = match &payload {
                Payload::Plain(msg)
                | Payload::Request(_, msg)
                | Payload::Response(_, msg)
                | Payload::Stream(_, msg) => msg.trace_digest(),
                Payload::StreamOpen(id) | Payload::StreamClose(id) => id.0,
            };
            self.record(RecordKind::Drop(reason), to.0, from.0, detail, String::new);
            if let Payload::StreamOpen(id) | Payload::Stream(id, _) | Payload::StreamClose(id) = payload {
                self.break_stream(id);
            }
            return;
        }
        self.network.totals.delivered += 1;
        match payload {
            Payload::Plain(msg) => {
                let digest = msg.trace_digest();
                self.record(RecordKind::Deliver, to.0, from.0, digest, || format!("{msg:?}"));
                self.invoke(to, Input::Message { from, msg });
            }
            Payload::Request(id, msg) => {
                let digest = msg.trace_digest();
                self.record(RecordKind::Request, to.0, from.0, digest, || format!("{msg:?}"));
                self.invoke(to, Input::Request { reply: ReplyTo { from, id }, msg });
            }
            Payload::Response(id, msg) => {
                let digest = msg.trace_digest();
                let current = self.requests.get(&id).is_some_and(|pending| {
                    pending.caller == to && pending.incarnation == self.slots[to.0 as usize].incarnation
                });
                if current {
                    self.requests.remove(&id);
                    self.record(RecordKind::Response, to.0, from.0, digest, || format!("{msg:?}"));
                    self.invoke(to, Input::Response { id, msg });
                } else {
                    self.late_responses += 1;
                    self.record(RecordKind::LateResponse, to.0, from.0, digest, || format!("{msg:?}"));
                }
            }
            Payload::StreamOpen(id) => {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.accepted = true;
                }
                self.record(RecordKind::StreamOpen, to.0, from.0, id.0, String::new);
                self.invoke(to, Input::StreamOpened { id, from });
            }
            Payload::StreamClose(id) => {
                self.break_stream(id);
            }
            Payload::Stream(id, msg) => {
                let digest = msg.trace_digest();
                self.record(RecordKind::StreamMessage, to.0, from.0, digest, || format!("{msg:?}"));
                self.invoke(to, Input::StreamMessage { id, msg });
            }
        }
    }

    /// Runs a component's handler, then carries out its effects.
    #[inline]
    fn invoke(&mut self, id: ComponentId, input: Input<M, T>) {
        let mut out = std::mem::take(&mut self.outbox);
        let slot = &mut self.slots[id.0 as usize];
        let Some(component) = slot.component.as_mut() else {
            self.outbox = out;
            return;
        };
        let machine = slot.machine;
        let now_local = self.machines[machine.0 as usize].clock.local(self.now.as_nanos());
        let mut ctx = Ctx {
            now_local,
            me: id,
            machine,
            rng: &mut slot.rng,
            out: &mut out,
            ids: &mut self.ids,
            buggify: self.buggify,
            buggify_fired: &mut self.buggify_fired,
        };
        component.handle(&mut ctx, input);
        for effect in out.drain(..) {
            self.apply_effect(id, machine, effect);
        }
        self.outbox = out;
    }

    #[inline]
    fn apply_effect(&mut self, me: ComponentId, machine: MachineId, effect: Effect<M, T>) {
        match effect {
            Effect::Send { to, msg } => self.send_datagram(me, machine, to, Payload::Plain(msg), true),
            Effect::Request { to, id, msg, timeout } => {
                let incarnation = self.slots[me.0 as usize].incarnation;
                self.requests.insert(id, PendingRequest { caller: me, incarnation });
                let span_ns = self.machines[machine.0 as usize].clock.true_span_ns(duration_nanos(timeout));
                self.schedule(self.now.add_nanos(span_ns), Event::RequestTimeout { id, caller: me });
                self.send_datagram(me, machine, to, Payload::Request(id, msg), false);
            }
            Effect::Respond { reply, msg } => {
                self.send_datagram(me, machine, reply.from, Payload::Response(reply.id, msg), false)
            }
            Effect::OpenStream { to, id } => {
                let to_machine = self.slots[to.0 as usize].machine.0;
                self.streams.insert(
                    id,
                    StreamState {
                        ends: [me, to],
                        machines: [machine.0, to_machine],
                        last_arrival_ns: [0; 2],
                        open: true,
                        accepted: false,
                        closing: None,
                    },
                );
                if self.network.is_blocked(machine.0, to_machine) || self.network.is_blocked(to_machine, machine.0) {
                    self.break_stream(id);
                }
                self.send_on_stream(me, id, Payload::StreamOpen(id));
            }
            Effect::StreamSend { id, msg } => self.send_on_stream(me, id, Payload::Stream(id, msg)),
            Effect::CloseStream { id } => {
                if self
                    .streams
                    .get(&id)
                    .is_some_and(|stream| stream.open && stream.closing.is_none() && stream.ends.contains(&me))
                {
                    self.send_on_stream(me, id, Payload::StreamClose(id));
                    if let Some(stream) = self.streams.get_mut(&id) {
                        stream.closing = Some(me);
                    }
                }
            }
            Effect::SetTimer { id, after, timer } => {
                let span_ns = self.machines[machine.0 as usize].clock.true_span_ns(duration_nanos(after));
                let incarnation = self.slots[me.0 as usize].incarnation;
                self.live_timers.insert(id);
                self.schedule(self.now.add_nanos(span_ns), Event::Timer { component: me, incarnation, id, timer });
            }
            Effect::CancelTimer { id } => {
                self.live_timers.remove(&id);
            }
        }
    }

    /// Sends a message outside any stream: it may be lost, delayed, reordered, and (if
    /// `may_duplicate`) duplicated.
    #[inline]
    fn send_datagram(
        &mut self,
        from: ComponentId,
        from_machine: MachineId,
        to: ComponentId,
        payload: Payload<M>,
        may_duplicate: bool,
    ) {
        let net = &mut self.network;
        net.totals.sent += 1;
        let (src, dst) = (from_machine.0, self.slots[to.0 as usize].machine.0);
        if src == dst {
            let at = self.now.add_nanos(net.loopback_latency_ns);
            net.totals.in_flight += 1;
            self.schedule(at, Event::Deliver { from, to, from_machine: src, payload });
            return;
        }
        if net.is_blocked(src, dst) {
            net.count_drop(src, dst, DropReason::Partition);
            self.record(RecordKind::Drop(DropReason::Partition), to.0, from.0, 0, String::new);
            return;
        }
        let (latency_ns, delayed, duplicate_latency_ns) = match net.route(src, dst, may_duplicate) {
            Route::Lost => {
                net.count_drop(src, dst, DropReason::Loss);
                self.record(RecordKind::Drop(DropReason::Loss), to.0, from.0, 0, String::new);
                return;
            }
            Route::Deliver { latency_ns, delayed, duplicate_latency_ns } => (latency_ns, delayed, duplicate_latency_ns),
        };
        if delayed {
            net.link_stats.entry((src, dst)).or_default().delayed += 1;
            self.record(RecordKind::Delay, to.0, from.0, latency_ns, String::new);
        }
        if let (Some(copy_latency_ns), Payload::Plain(msg)) = (duplicate_latency_ns, &payload) {
            let copy = msg.clone();
            let net = &mut self.network;
            net.totals.duplicated += 1;
            net.totals.in_flight += 1;
            net.link_stats.entry((src, dst)).or_default().duplicated += 1;
            self.record(RecordKind::Duplicate, to.0, from.0, copy_latency_ns, String::new);
            let at = self.now.add_nanos(copy_latency_ns);
            self.schedule(at, Event::Deliver { from, to, from_machine: src, payload: Payload::Plain(copy) });
        }
        self.network.totals.in_flight += 1;
        self.schedule(self.now.add_nanos(latency_ns), Event::Deliver { from, to, from_machine: src, payload });
    }

    /// Sends on a stream: never lost or duplicated, always in order; dropped if the stream broke.
    fn send_on_stream(&mut self, me: ComponentId, id: StreamId, payload: Payload<M>) {
        self.network.totals.sent += 1;
        let Some(stream) = self.streams.get_mut(&id) else {
            panic!("component {} sent on stream {id:?}, which was never opened", self.slots[me.0 as usize].name);
        };
        let direction = if stream.ends[0] == me { 0 } else { 1 };
        let (src, dst) = (stream.machines[direction], stream.machines[1 - direction]);
        let to = stream.ends[1 - direction];
        let closed_by_other = stream.closing.is_some();
        if !stream.open || closed_by_other {
            self.network.count_drop(src, dst, DropReason::StreamBroken);
            self.record(RecordKind::Drop(DropReason::StreamBroken), to.0, me.0, id.0, String::new);
            return;
        }
        let latency_ns = if src == dst {
            self.network.loopback_latency_ns
        } else {
            let link = *self.network.link(src, dst);
            link.latency.sample_ns(&mut self.network.rng)
        };
        let stream = self.streams.get_mut(&id).expect("checked above");
        let arrival_ns = (self.now.as_nanos().saturating_add(latency_ns)).max(stream.last_arrival_ns[direction]);
        stream.last_arrival_ns[direction] = arrival_ns;
        self.network.totals.in_flight += 1;
        self.schedule(Time::from_nanos(arrival_ns), Event::Deliver { from: me, to, from_machine: src, payload });
    }

    /// Marks a stream broken and tells each live end, once.
    fn break_stream(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if !stream.open {
            return;
        }
        stream.open = false;
        let ends = if stream.accepted { &stream.ends[..] } else { &stream.ends[..1] };
        // The end that closed the stream does not hear of its own close.
        let ends: Vec<ComponentId> = ends.iter().copied().filter(|end| Some(*end) != stream.closing).collect();
        self.streams_broken += 1;
        for end in ends {
            let slot = &self.slots[end.0 as usize];
            if slot.component.is_some() {
                let incarnation = slot.incarnation;
                self.schedule(self.now, Event::StreamBroken { id, component: end, incarnation });
            }
        }
        // The broken stream stays in the table (a few words) so that late sends on it by an end that
        // has not yet heard of the break are counted as drops on the right link.
    }
}
