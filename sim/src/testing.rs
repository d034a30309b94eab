//! Ping-pong components: the smallest workload that exercises the engine. Used by the engine's
//! tests, the fuzz target and the `pingpong` benchmark.

use crate::component::{Component, ComponentId, Ctx, Input, TraceDigest};
use crate::sim::{Sim, SimConfig};
use crate::time::Time;
use std::any::Any;
use std::time::Duration;

/// The ping-pong protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingMsg {
    Ping { round: u64 },
    Pong { round: u64 },
}

impl TraceDigest for PingMsg {
    fn trace_digest(&self) -> u64 {
        match *self {
            PingMsg::Ping { round } => round << 1,
            PingMsg::Pong { round } => (round << 1) | 1,
        }
    }
}

/// The host's only timer: resend the ping of `round` if no pong came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPing {
    pub round: u64,
}

impl TraceDigest for RetryPing {
    fn trace_digest(&self) -> u64 {
        self.round
    }
}

/// One ping-pong host: it does `round_trips` sequential round trips, each to a peer drawn from
/// its own stream, and answers every ping it gets.
#[derive(Debug)]
pub struct PingPongHost {
    /// Peers are the components `0..hosts` (the builder adds the hosts first, in order).
    pub hosts: u32,
    pub round_trips: u64,
    /// Resend a ping that got no pong after this long; `None` waits forever.
    pub retry_after: Option<Duration>,
    /// Round trips completed. Persisted: survives a crash.
    pub completed: u64,
    /// The round in progress and the peer it went to.
    pub waiting: Option<(u64, ComponentId)>,
    pub pongs_sent: u64,
    /// Pings sent, first tries and resends. With `pongs_sent`, the host's own count of its sends.
    pub pings_sent: u64,
}

impl PingPongHost {
    pub fn new(hosts: u32, round_trips: u64, retry_after: Option<Duration>) -> PingPongHost {
        PingPongHost { hosts, round_trips, retry_after, completed: 0, waiting: None, pongs_sent: 0, pings_sent: 0 }
    }

    fn ping_next(&mut self, ctx: &mut Ctx<'_, PingMsg, RetryPing>) {
        if self.completed >= self.round_trips || self.hosts < 2 {
            self.waiting = None;
            return;
        }
        let me = ctx.me().0;
        // A peer other than this host, uniformly.
        let mut peer = ctx.rng().below(u64::from(self.hosts) - 1) as u32;
        if peer >= me {
            peer += 1;
        }
        let round = self.completed;
        self.waiting = Some((round, ComponentId(peer)));
        self.pings_sent += 1;
        ctx.send(ComponentId(peer), PingMsg::Ping { round });
        if let Some(after) = self.retry_after {
            ctx.set_timer(after, RetryPing { round });
        }
    }
}

impl Component<PingMsg, RetryPing> for PingPongHost {
    fn handle(&mut self, ctx: &mut Ctx<'_, PingMsg, RetryPing>, input: Input<PingMsg, RetryPing>) {
        match input {
            Input::Start => self.ping_next(ctx),
            Input::Message { from, msg: PingMsg::Ping { round } } => {
                self.pongs_sent += 1;
                ctx.send(from, PingMsg::Pong { round });
            }
            // Duplicated or late pongs of earlier rounds are ignored.
            Input::Message { from, msg: PingMsg::Pong { round } } if self.waiting == Some((round, from)) => {
                self.completed += 1;
                self.ping_next(ctx);
            }
            Input::Timer { timer: RetryPing { round }, .. } => {
                if let Some((waiting_round, peer)) = self.waiting {
                    if waiting_round == round {
                        self.pings_sent += 1;
                        ctx.send(peer, PingMsg::Ping { round });
                        if let Some(after) = self.retry_after {
                            ctx.set_timer(after, RetryPing { round });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn crash(self: Box<Self>) -> Option<Box<dyn Any>> {
        Some(Box::new(self.completed))
    }

    fn pending(&self) -> Vec<String> {
        match self.waiting {
            Some((round, peer)) => vec![format!("waiting for the pong of round {round} from component {}", peer.0)],
            None => Vec::new(),
        }
    }
}

/// Builds a ping-pong simulation: `hosts` machines, one host on each, named `host-i` on `m-i`.
pub fn pingpong_sim(
    config: SimConfig,
    hosts: u32,
    round_trips: u64,
    retry_after: Option<Duration>,
) -> Sim<PingMsg, RetryPing> {
    let mut sim = Sim::new(config);
    for index in 0..hosts {
        let machine = sim.add_machine(&format!("m-{index}"));
        sim.add_component(machine, &format!("host-{index}"), move |durable| {
            let mut host = PingPongHost::new(hosts, round_trips, retry_after);
            if let Some(completed) = durable.and_then(|state| state.downcast::<u64>().ok()) {
                host.completed = *completed;
            }
            Box::new(host)
        });
    }
    sim
}

/// Total round trips completed by all hosts (ground truth).
pub fn completed_round_trips(sim: &Sim<PingMsg, RetryPing>) -> u64 {
    (0..sim.component_count() as u32)
        .filter_map(|index| sim.component::<PingPongHost>(ComponentId(index)))
        .map(|host| host.completed)
        .sum()
}

/// The time by which a healthy ping-pong run is surely over, for budgets in tests.
pub const PINGPONG_SETTLE: Time = Time::from_secs(3600);
