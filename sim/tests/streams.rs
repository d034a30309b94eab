//! FIFO streams: in order, without gaps, and a break that both ends see.

use kubedst_sim::{
    Component, ComponentId, Ctx, Fault, FaultSchedule, Input, LatencyModel, LinkConfig, Ratio, Sim, SimConfig,
    StreamId, TimedFault, TraceDigest,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
struct Seq(u64);

impl TraceDigest for Seq {
    fn trace_digest(&self) -> u64 {
        self.0
    }
}

#[derive(Clone, Copy, Debug)]
enum Tick {
    Send,
}

impl TraceDigest for Tick {
    fn trace_digest(&self) -> u64 {
        0
    }
}

/// Opens a stream to the server and sends 0, 1, 2, ... on it; reopens after a break.
#[derive(Default)]
struct Producer {
    server: u32,
    stream: Option<StreamId>,
    next: u64,
    breaks_seen: Vec<StreamId>,
    opened: Vec<StreamId>,
}

impl Component<Seq, Tick> for Producer {
    fn handle(&mut self, ctx: &mut Ctx<'_, Seq, Tick>, input: Input<Seq, Tick>) {
        match input {
            Input::Start => {
                ctx.set_timer(Duration::from_millis(1), Tick::Send);
            }
            Input::Timer { .. } => {
                let stream = match self.stream {
                    Some(stream) => stream,
                    None => {
                        let stream = ctx.open_stream(ComponentId(self.server));
                        self.opened.push(stream);
                        self.next = 0;
                        self.stream = Some(stream);
                        stream
                    }
                };
                // Several messages per tick, so jitter would reorder them without FIFO order.
                for _ in 0..3 {
                    ctx.stream_send(stream, Seq(self.next));
                    self.next += 1;
                }
                ctx.set_timer(Duration::from_millis(1), Tick::Send);
            }
            Input::StreamBroken { id } => {
                self.breaks_seen.push(id);
                if self.stream == Some(id) {
                    self.stream = None;
                }
            }
            _ => {}
        }
    }
}

/// Records what arrives on each stream.
#[derive(Default)]
struct Consumer {
    received: BTreeMap<StreamId, Vec<u64>>,
    breaks_seen: Vec<StreamId>,
}

impl Component<Seq, Tick> for Consumer {
    fn handle(&mut self, _ctx: &mut Ctx<'_, Seq, Tick>, input: Input<Seq, Tick>) {
        match input {
            Input::StreamOpened { id, .. } => {
                self.received.entry(id).or_default();
            }
            Input::StreamMessage { id, msg } => self.received.entry(id).or_default().push(msg.0),
            Input::StreamBroken { id } => self.breaks_seen.push(id),
            _ => {}
        }
    }
}

fn jittery_link() -> LinkConfig {
    LinkConfig {
        latency: LatencyModel {
            floor: Duration::from_micros(100),
            jitter: Duration::from_millis(5),
            tail_chance: Ratio::new(1, 10),
            tail_max: Duration::from_millis(50),
        },
        loss: Ratio::new(1, 10),
        duplicate: Ratio::new(1, 10),
        reorder: Ratio::new(1, 10),
        reorder_window: Duration::from_millis(20),
    }
}

fn build(seed: u64, schedule: &FaultSchedule) -> Sim<Seq, Tick> {
    let mut config = SimConfig::new(seed);
    config.link = jittery_link();
    let mut sim = Sim::new(config);
    let client = sim.add_machine("client");
    let server = sim.add_machine("server");
    sim.add_component(client, "producer", |_| Box::new(Producer { server: 1, ..Producer::default() }));
    sim.add_component(server, "consumer", |_| Box::new(Consumer::default()));
    sim.install_faults(schedule).unwrap();
    sim
}

fn fault() -> impl Strategy<Value = TimedFault> {
    let side = prop_oneof![Just("client".to_string()), Just("server".to_string())];
    let fault = prop_oneof![
        (side.clone(), 1u64..500)
            .prop_map(|(machine, ms)| Fault::Isolate { machine, duration: Duration::from_millis(ms) }),
        any::<bool>().prop_map(|one_way| Fault::Partition {
            side_a: vec!["client".into()],
            side_b: vec!["server".into()],
            one_way,
            duration: Duration::from_millis(200)
        }),
        (1u64..500)
            .prop_map(|ms| Fault::Crash { machine: "server".into(), restart_after: Some(Duration::from_millis(ms)) }),
        (1u64..300).prop_map(|ms| Fault::Pause { machine: "server".into(), duration: Duration::from_millis(ms) }),
    ];
    (0u64..2_000, fault).prop_map(|(at, fault)| TimedFault { at: Duration::from_millis(at), fault })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Each stream delivers exactly a prefix 0, 1, 2, ... of what was sent on it: no loss, no
    /// duplicate, no reordering, although the link below loses, duplicates and reorders datagrams.
    /// A stream that breaks is reported to every end that is still alive.
    #[test]
    fn streams_are_fifo_and_report_breaks(seed in any::<u64>(), faults in proptest::collection::vec(fault(), 0..5)) {
        let schedule = FaultSchedule::new(faults);
        let mut sim = build(seed, &schedule);
        sim.run_until(kubedst_sim::Time::from_secs(3)).unwrap();
        let producer = sim.component::<Producer>(ComponentId(0)).unwrap();
        let consumer_up = sim.component::<Consumer>(ComponentId(1)).is_some();
        if let Some(consumer) = sim.component::<Consumer>(ComponentId(1)) {
            for (stream, seqs) in &consumer.received {
                let expected: Vec<u64> = (0..seqs.len() as u64).collect();
                prop_assert_eq!(seqs, &expected, "stream {:?} out of order or with gaps", stream);
            }
        }
        // Every stream but the current one broke, and the producer heard of each break.
        let broken: Vec<StreamId> = producer.opened.iter().copied().filter(|s| Some(*s) != producer.stream).collect();
        for stream in &broken {
            prop_assert!(producer.breaks_seen.contains(stream), "producer never heard that {:?} broke", stream);
        }
        // A partition or isolation breaks the stream in force at both ends; the consumer (which never
        // crashed in such a schedule) hears of it too.
        let only_cuts = schedule.faults.iter().all(|f| matches!(f.fault, Fault::Partition { .. } | Fault::Isolate { .. }));
        if only_cuts && consumer_up {
            let consumer = sim.component::<Consumer>(ComponentId(1)).unwrap();
            for stream in &broken {
                if consumer.received.contains_key(stream) {
                    prop_assert!(consumer.breaks_seen.contains(stream), "consumer never heard that {:?} broke", stream);
                }
            }
        }
        prop_assert_eq!(producer.breaks_seen.len(), broken.len(), "a break was reported twice or for a live stream");
    }
}

#[test]
fn a_partition_breaks_the_stream_visibly_to_both_ends() {
    let schedule = FaultSchedule::new(vec![TimedFault {
        at: Duration::from_millis(100),
        fault: Fault::Partition {
            side_a: vec!["client".into()],
            side_b: vec!["server".into()],
            one_way: true,
            duration: Duration::from_millis(50),
        },
    }]);
    let mut sim = build(1, &schedule);
    sim.run_until(kubedst_sim::Time::from_millis(400)).unwrap();
    let producer = sim.component::<Producer>(ComponentId(0)).unwrap();
    let consumer = sim.component::<Consumer>(ComponentId(1)).unwrap();
    // The producer retries every millisecond; each stream opened during the partition breaks at once.
    let (first, last) = (producer.opened[0], *producer.opened.last().unwrap());
    assert!(producer.opened.len() > 2, "reopened {} times", producer.opened.len());
    assert_eq!(producer.breaks_seen.len(), producer.opened.len() - 1);
    assert_eq!(producer.stream, Some(last), "the last stream is still open");
    assert_eq!(consumer.breaks_seen, vec![first], "the consumer saw only the stream that had reached it break");
    assert!(consumer.received[&first].len() > 10);
    assert!(consumer.received[&last].len() > 10, "the new stream works after the heal");
    assert_eq!(sim.accounting().streams_broken, producer.opened.len() as u64 - 1);
    assert_eq!(sim.accounting().fired(kubedst_sim::FaultKind::Partition), 1);
}

/// Sends three messages and closes the stream in the same step.
struct SendThenClose {
    server: u32,
}

impl Component<Seq, Tick> for SendThenClose {
    fn handle(&mut self, ctx: &mut Ctx<'_, Seq, Tick>, input: Input<Seq, Tick>) {
        if let Input::Start = input {
            let stream = ctx.open_stream(ComponentId(self.server));
            for seq in 0..3 {
                ctx.stream_send(stream, Seq(seq));
            }
            ctx.close_stream(stream);
            // Sending after the close is refused (counted as a drop on a broken stream).
            ctx.stream_send(stream, Seq(99));
        }
    }
}

#[test]
fn a_close_arrives_after_what_was_sent_before_it() {
    let mut config = SimConfig::new(11);
    config.link = jittery_link();
    let mut sim: Sim<Seq, Tick> = Sim::new(config);
    let client = sim.add_machine("client");
    let server = sim.add_machine("server");
    sim.add_component(client, "closer", |_| Box::new(SendThenClose { server: 1 }));
    sim.add_component(server, "consumer", |_| Box::new(Consumer::default()));
    sim.run_until_quiescent().unwrap();
    let consumer = sim.component::<Consumer>(ComponentId(1)).unwrap();
    let stream = StreamId(0);
    assert_eq!(consumer.received[&stream], vec![0, 1, 2]);
    assert_eq!(consumer.breaks_seen, vec![stream], "the peer hears of the close after the data");
    assert_eq!(sim.accounting().links.values().map(|l| l.dropped_stream_broken).sum::<u64>(), 1);
}
