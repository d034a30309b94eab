//! The simulated network: per-link latency, loss, duplication and reordering; partitions; and the
//! per-link accounting of what the network did to messages.
//!
//! Links join machines, not components: every component on a machine shares its links. Messages
//! between components of one machine take the loopback path, which faults never touch.

use crate::rng::{Ratio, SimRng};
use crate::time::duration_nanos;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a message takes on a link: a floor, a uniform jitter on top, and a seeded tail that
/// sometimes adds a much longer delay (a retransmission, a congested switch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyModel {
    /// The least time any message takes.
    #[serde(with = "crate::serde_duration")]
    pub floor: Duration,
    /// A uniform extra delay in `0..=jitter` for every message.
    #[serde(with = "crate::serde_duration", default)]
    pub jitter: Duration,
    /// How often a message also takes a tail delay.
    #[serde(default = "zero_ratio")]
    pub tail_chance: Ratio,
    /// The tail delay is uniform in `0..=tail_max`.
    #[serde(with = "crate::serde_duration", default)]
    pub tail_max: Duration,
}

fn zero_ratio() -> Ratio {
    Ratio::ZERO
}

impl LatencyModel {
    /// Exactly `latency`, every time, drawing no randomness.
    pub const fn fixed(latency: Duration) -> LatencyModel {
        LatencyModel { floor: latency, jitter: Duration::ZERO, tail_chance: Ratio::ZERO, tail_max: Duration::ZERO }
    }

    /// Draws one latency in nanoseconds.
    #[inline(always)]
    pub fn sample_ns(&self, rng: &mut SimRng) -> u64 {
        let mut latency_ns = duration_nanos(self.floor);
        if !self.jitter.is_zero() {
            latency_ns = latency_ns.saturating_add(rng.range_inclusive(0, duration_nanos(self.jitter)));
        }
        if !self.tail_max.is_zero() && rng.chance(self.tail_chance) {
            latency_ns = latency_ns.saturating_add(rng.range_inclusive(0, duration_nanos(self.tail_max)));
        }
        latency_ns
    }
}

/// The behaviour of one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    pub latency: LatencyModel,
    /// Chance that a datagram or request is lost.
    #[serde(default = "zero_ratio")]
    pub loss: Ratio,
    /// Chance that a datagram is delivered twice (requests and streams never are: they ride a
    /// connection).
    #[serde(default = "zero_ratio")]
    pub duplicate: Ratio,
    /// Chance that a datagram or request is held back by up to `reorder_window`, so later messages
    /// can overtake it.
    #[serde(default = "zero_ratio")]
    pub reorder: Ratio,
    #[serde(with = "crate::serde_duration", default)]
    pub reorder_window: Duration,
}

impl LinkConfig {
    /// A perfect link with a fixed latency.
    pub const fn fixed(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency: LatencyModel::fixed(latency),
            loss: Ratio::ZERO,
            duplicate: Ratio::ZERO,
            reorder: Ratio::ZERO,
            reorder_window: Duration::ZERO,
        }
    }

    /// Checks ratios a user wrote in a file.
    pub fn validate(&self) -> Result<(), String> {
        for (name, ratio) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("latency.tail_chance", self.latency.tail_chance),
        ] {
            if !ratio.is_probability() {
                return Err(format!("{name} = {ratio} is not a probability (expected 0 <= num <= den, den > 0)"));
            }
        }
        Ok(())
    }
}

impl Default for LinkConfig {
    /// A data-centre link: 500 µs to 1.5 ms, no faults.
    fn default() -> Self {
        LinkConfig {
            latency: LatencyModel {
                floor: Duration::from_micros(500),
                jitter: Duration::from_millis(1),
                tail_chance: Ratio::ZERO,
                tail_max: Duration::ZERO,
            },
            ..LinkConfig::fixed(Duration::ZERO)
        }
    }
}

/// Why the network or the engine did not deliver a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The link's loss ratio.
    Loss,
    /// A partition blocked the message when it was sent or when it would have arrived.
    Partition,
    /// The destination machine was down, lost, or had no such component.
    DestinationDown,
    /// The stream it travelled on broke first.
    StreamBroken,
}

impl DropReason {
    pub const ALL: [DropReason; 4] =
        [DropReason::Loss, DropReason::Partition, DropReason::DestinationDown, DropReason::StreamBroken];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::Partition => "partition",
            DropReason::DestinationDown => "destination_down",
            DropReason::StreamBroken => "stream_broken",
        }
    }
}

/// What the network did on one directed link, for the fault accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub dropped_destination_down: u64,
    pub dropped_stream_broken: u64,
    pub duplicated: u64,
    /// Messages held back by the reorder fault.
    pub delayed: u64,
}

impl LinkStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_partition + self.dropped_destination_down + self.dropped_stream_broken
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        match reason {
            DropReason::Loss => self.dropped_loss += 1,
            DropReason::Partition => self.dropped_partition += 1,
            DropReason::DestinationDown => self.dropped_destination_down += 1,
            DropReason::StreamBroken => self.dropped_stream_broken += 1,
        }
    }
}

/// Totals over all links: every message sent (and every duplicate made) is delivered, dropped, or
/// still in flight, so `sent + duplicated == delivered + dropped + in_flight` at every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTotals {
    pub sent: u64,
    pub duplicated: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub in_flight: u64,
}

impl MessageTotals {
    /// The conservation law; the engine checks it with `debug_assert!` on every step.
    pub fn balanced(&self) -> bool {
        self.sent + self.duplicated == self.delivered + self.dropped + self.in_flight
    }
}

/// What the network does with one datagram.
pub(crate) enum Route {
    Lost,
    Deliver {
        latency_ns: u64,
        /// Held back by the reorder fault.
        delayed: bool,
        /// A second copy arrives after this long.
        duplicate_latency_ns: Option<u64>,
    },
}

/// Directed machine pair, by machine index.
pub(crate) type LinkKey = (u32, u32);

/// The network's mutable state: link overrides, partitions and accounting.
#[derive(Debug)]
pub(crate) struct Network {
    pub default_link: LinkConfig,
    pub loopback_latency_ns: u64,
    /// Degraded links; a generation tells a stale restore from a current one.
    pub overrides: BTreeMap<LinkKey, (LinkConfig, u64)>,
    /// How many active partitions block each directed pair.
    pub blocked: BTreeMap<LinkKey, u32>,
    pub link_stats: BTreeMap<LinkKey, LinkStats>,
    pub totals: MessageTotals,
    pub rng: SimRng,
    pub next_override_generation: u64,
}

impl Network {
    pub fn new(default_link: LinkConfig, loopback_latency_ns: u64, rng: SimRng) -> Network {
        Network {
            default_link,
            loopback_latency_ns,
            overrides: BTreeMap::new(),
            blocked: BTreeMap::new(),
            link_stats: BTreeMap::new(),
            totals: MessageTotals::default(),
            rng,
            next_override_generation: 0,
        }
    }

    #[inline]
    pub fn is_blocked(&self, from: u32, to: u32) -> bool {
        !self.blocked.is_empty() && from != to && self.blocked.contains_key(&(from, to))
    }

    #[inline]
    pub fn link(&self, from: u32, to: u32) -> &LinkConfig {
        if self.overrides.is_empty() {
            &self.default_link
        } else {
            self.overrides.get(&(from, to)).map(|(config, _)| config).unwrap_or(&self.default_link)
        }
    }

    /// Decides the fate of one datagram on the link `src -> dst` (not loopback, not blocked).
    #[inline]
    pub fn route(&mut self, src: u32, dst: u32, may_duplicate: bool) -> Route {
        let link = if self.overrides.is_empty() {
            &self.default_link
        } else {
            self.overrides.get(&(src, dst)).map(|(config, _)| config).unwrap_or(&self.default_link)
        };
        let rng = &mut self.rng;
        if rng.chance(link.loss) {
            return Route::Lost;
        }
        let mut latency_ns = link.latency.sample_ns(rng);
        let mut delayed = false;
        if !link.reorder.is_zero() && rng.chance(link.reorder) {
            latency_ns = latency_ns.saturating_add(rng.range_inclusive(0, duration_nanos(link.reorder_window)));
            delayed = true;
        }
        let duplicate_latency_ns = (may_duplicate && !link.duplicate.is_zero() && rng.chance(link.duplicate))
            .then(|| link.latency.sample_ns(rng));
        Route::Deliver { latency_ns, delayed, duplicate_latency_ns }
    }

    pub fn block(&mut self, from: u32, to: u32) {
        if from != to {
            *self.blocked.entry((from, to)).or_insert(0) += 1;
        }
    }

    pub fn unblock(&mut self, from: u32, to: u32) {
        if let Some(count) = self.blocked.get_mut(&(from, to)) {
            *count -= 1;
            if *count == 0 {
                self.blocked.remove(&(from, to));
            }
        }
    }

    pub fn count_drop(&mut self, from: u32, to: u32, reason: DropReason) {
        self.link_stats.entry((from, to)).or_default().count_drop(reason);
        self.totals.dropped += 1;
    }
}
