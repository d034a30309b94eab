//! What a simulated process sees: the [`Component`] trait, its [`Input`]s, and the [`Ctx`] through
//! which it returns its effects as data.
//!
//! A component is a sans-IO state machine. It never calls the network or the clock; it reads its
//! machine's clock from the context and pushes [`Effect`]s, which the engine carries out after the
//! handler returns.

use crate::hash::stable_hash_str;
use crate::rng::{Ratio, SimRng};
use crate::time::Time;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// A component's index in its simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId(pub u32);

/// A machine's index in its simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineId(pub u32);

/// One outstanding request, unique in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// One connection-like stream, unique in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

/// One timer, unique in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// What a server needs to answer a request: who asked, and which request it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyTo {
    pub from: ComponentId,
    pub id: RequestId,
}

/// A value that folds into the trace hash. Messages and timers implement it so that a change of
/// content, not only of timing, changes the hash.
pub trait TraceDigest {
    fn trace_digest(&self) -> u64;
}

macro_rules! digest_as_u64 {
    ($($ty:ty),*) => {$(
        impl TraceDigest for $ty {
            fn trace_digest(&self) -> u64 {
                *self as u64
            }
        }
    )*};
}
digest_as_u64!(u8, u16, u32, u64, usize, i8, i16, i32, i64, bool);

impl TraceDigest for () {
    fn trace_digest(&self) -> u64 {
        0
    }
}

impl TraceDigest for String {
    fn trace_digest(&self) -> u64 {
        stable_hash_str(self)
    }
}

impl TraceDigest for &'static str {
    fn trace_digest(&self) -> u64 {
        stable_hash_str(self)
    }
}

/// The message type of a simulation: cloneable (the network may duplicate it), printable (for
/// the JSON Lines trace) and digestible (for the trace hash).
pub trait Message: TraceDigest + Clone + Debug + 'static {}
impl<M: TraceDigest + Clone + Debug + 'static> Message for M {}

/// Everything a component can be handed. A closed set: there are no stringly-typed events.
#[derive(Debug)]
pub enum Input<M, T> {
    /// The component was created, or rebuilt after its machine restarted.
    Start,
    /// A plain message (a datagram: it may be lost, duplicated or reordered).
    Message { from: ComponentId, msg: M },
    /// A request to answer with [`Ctx::respond`].
    Request { reply: ReplyTo, msg: M },
    /// The answer to a request this component sent.
    Response { id: RequestId, msg: M },
    /// No answer came in time. The request may or may not have taken effect.
    RequestTimedOut { id: RequestId },
    /// A peer opened a stream to this component.
    StreamOpened { id: StreamId, from: ComponentId },
    /// The next message on a stream, in the order it was sent.
    StreamMessage { id: StreamId, msg: M },
    /// The stream broke (partition, crash, or the other end closed it); nothing more arrives on it.
    StreamBroken { id: StreamId },
    /// A timer this component set has fired.
    Timer { id: TimerId, timer: T },
}

/// What a component asks the engine to do. Effects are data: only the engine carries them out.
#[derive(Debug)]
pub enum Effect<M, T> {
    Send {
        to: ComponentId,
        msg: M,
    },
    Request {
        to: ComponentId,
        id: RequestId,
        msg: M,
        timeout: Duration,
    },
    Respond {
        reply: ReplyTo,
        msg: M,
    },
    OpenStream {
        to: ComponentId,
        id: StreamId,
    },
    StreamSend {
        id: StreamId,
        msg: M,
    },
    CloseStream {
        id: StreamId,
    },
    /// `after` is measured on the machine's clock, so a drifting clock fires early or late.
    SetTimer {
        id: TimerId,
        after: Duration,
        timer: T,
    },
    CancelTimer {
        id: TimerId,
    },
}

/// A simulated process.
///
/// `M` is the simulation's message type, `T` its timer type (a closed enum of the component's
/// timers, in a model of any size).
pub trait Component<M, T>: Any {
    /// Handles one input. Effects go through `ctx`.
    fn handle(&mut self, ctx: &mut Ctx<'_, M, T>, input: Input<M, T>);

    /// The machine crashed: hand back what this component had persisted, if anything. The
    /// component's factory receives it when the machine restarts; everything else is lost.
    fn crash(self: Box<Self>) -> Option<Box<dyn Any>> {
        None
    }

    /// Work this component has not finished, in words, for reports of runs that did not converge.
    fn pending(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Counters that hand out unique ids; shared by all components of a run.
#[derive(Debug, Default)]
pub(crate) struct IdCounters {
    pub next_request: u64,
    pub next_stream: u64,
    pub next_timer: u64,
}

/// The run's buggify settings: which sites are active is a pure function of the seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuggifyConfig {
    pub enabled: bool,
    pub seed: u64,
    /// How often an active site fires.
    pub fire_chance: Ratio,
}

impl BuggifyConfig {
    /// Like FoundationDB's BUGGIFY, a site is active in one run of four, so that every run
    /// exercises a different subset of rare paths.
    pub fn site_active(&self, site: &str) -> bool {
        self.enabled && crate::hash::fmix64(self.seed ^ stable_hash_str(site)).is_multiple_of(4)
    }
}

/// A handler's view of the world: its machine's clock, its random stream, and the outbox.
pub struct Ctx<'a, M, T> {
    pub(crate) now_local: Time,
    pub(crate) me: ComponentId,
    pub(crate) machine: MachineId,
    pub(crate) rng: &'a mut SimRng,
    pub(crate) out: &'a mut Vec<Effect<M, T>>,
    pub(crate) ids: &'a mut IdCounters,
    pub(crate) buggify: BuggifyConfig,
    pub(crate) buggify_fired: &'a mut BTreeMap<&'static str, u64>,
}

impl<M, T> Ctx<'_, M, T> {
    /// The machine's wall clock: true time plus this machine's skew and drift.
    #[inline]
    pub fn now(&self) -> Time {
        self.now_local
    }

    pub fn me(&self) -> ComponentId {
        self.me
    }

    pub fn machine(&self) -> MachineId {
        self.machine
    }

    /// This component's own random stream (derived from the seed and the component's name).
    #[inline]
    pub fn rng(&mut self) -> &mut SimRng {
        self.rng
    }

    #[inline]
    pub fn send(&mut self, to: ComponentId, msg: M) {
        self.out.push(Effect::Send { to, msg });
    }

    /// Sends a request; either a [`Input::Response`] or a [`Input::RequestTimedOut`] follows.
    pub fn request(&mut self, to: ComponentId, msg: M, timeout: Duration) -> RequestId {
        let id = RequestId(self.ids.next_request);
        self.ids.next_request += 1;
        self.out.push(Effect::Request { to, id, msg, timeout });
        id
    }

    pub fn respond(&mut self, reply: ReplyTo, msg: M) {
        self.out.push(Effect::Respond { reply, msg });
    }

    /// Opens a FIFO stream to `to`; the peer gets [`Input::StreamOpened`]. Messages may be sent at
    /// once: they arrive after the open, in order.
    pub fn open_stream(&mut self, to: ComponentId) -> StreamId {
        let id = StreamId(self.ids.next_stream);
        self.ids.next_stream += 1;
        self.out.push(Effect::OpenStream { to, id });
        id
    }

    pub fn stream_send(&mut self, id: StreamId, msg: M) {
        self.out.push(Effect::StreamSend { id, msg });
    }

    /// Closes a stream; the other end sees [`Input::StreamBroken`].
    pub fn close_stream(&mut self, id: StreamId) {
        self.out.push(Effect::CloseStream { id });
    }

    /// Sets a timer `after` this machine's clock advances by that much.
    pub fn set_timer(&mut self, after: Duration, timer: T) -> TimerId {
        let id = TimerId(self.ids.next_timer);
        self.ids.next_timer += 1;
        self.out.push(Effect::SetTimer { id, after, timer });
        id
    }

    pub fn cancel_timer(&mut self, id: TimerId) {
        self.out.push(Effect::CancelTimer { id });
    }

    /// True, rarely, at a site that is active in this run: a hook for components to take rare
    /// paths on purpose (a slow path, an early timeout, a spurious retry).
    pub fn buggify(&mut self, site: &'static str) -> bool {
        if !self.buggify.site_active(site) || !self.rng.chance(self.buggify.fire_chance) {
            return false;
        }
        *self.buggify_fired.entry(site).or_insert(0) += 1;
        true
    }
}
