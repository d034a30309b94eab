//! Properties of the network model, over random link settings and fault schedules.

use kubedst_sim::testing::{pingpong_sim, PingMsg, PingPongHost, RetryPing};
use kubedst_sim::{
    ComponentId, Fault, FaultSchedule, LatencyModel, LinkConfig, Ratio, RecordKind, Sim, SimConfig, TimedFault,
};
use proptest::prelude::*;
use std::time::Duration;

const HOSTS: u32 = 4;

fn ratio(max_per_mille: u32) -> impl Strategy<Value = Ratio> {
    (0..=max_per_mille).prop_map(|num| Ratio::new(num, 1000))
}

fn link_strategy() -> impl Strategy<Value = LinkConfig> {
    (0u64..5_000, 0u64..5_000, ratio(300), 0u64..200_000, ratio(300), ratio(300), ratio(500), 0u64..50_000).prop_map(
        |(floor_us, jitter_us, tail_chance, tail_max_us, loss, duplicate, reorder, window_us)| LinkConfig {
            latency: LatencyModel {
                floor: Duration::from_micros(floor_us),
                jitter: Duration::from_micros(jitter_us),
                tail_chance,
                tail_max: Duration::from_micros(tail_max_us),
            },
            loss,
            duplicate,
            reorder,
            reorder_window: Duration::from_micros(window_us),
        },
    )
}

fn machine() -> impl Strategy<Value = String> {
    (0..HOSTS).prop_map(|index| format!("m-{index}"))
}

fn fault_strategy() -> impl Strategy<Value = TimedFault> {
    let fault = prop_oneof![
        (machine(), proptest::option::of(1u64..3_000))
            .prop_map(|(machine, after)| Fault::Crash { machine, restart_after: after.map(Duration::from_millis) }),
        machine().prop_map(|machine| Fault::Restart { machine }),
        (machine(), 1u64..3_000)
            .prop_map(|(machine, ms)| Fault::Pause { machine, duration: Duration::from_millis(ms) }),
        (machine(), 1u64..3_000)
            .prop_map(|(machine, ms)| Fault::Isolate { machine, duration: Duration::from_millis(ms) }),
        (machine(), machine(), any::<bool>(), 1u64..3_000).prop_map(|(a, b, one_way, ms)| {
            Fault::Partition { side_a: vec![a], side_b: vec![b], one_way, duration: Duration::from_millis(ms) }
        }),
        (machine(), machine(), link_strategy(), 1u64..3_000).prop_map(|(from, to, link, ms)| {
            Fault::DegradeLink { from, to, link, duration: Duration::from_millis(ms) }
        }),
        (machine(), -5_000i64..5_000).prop_map(|(machine, ms)| Fault::ClockSkew { machine, offset_ns: ms * 1_000_000 }),
        (machine(), -500_000i32..500_000).prop_map(|(machine, drift_ppm)| Fault::ClockDrift { machine, drift_ppm }),
    ];
    (0u64..5_000, fault).prop_map(|(at_ms, fault)| TimedFault { at: Duration::from_millis(at_ms), fault })
}

fn build(seed: u64, link: LinkConfig, schedule: &FaultSchedule) -> Sim<PingMsg, RetryPing> {
    let mut config = SimConfig::new(seed);
    config.link = link;
    let mut sim = pingpong_sim(config, HOSTS, 50, Some(Duration::from_millis(20)));
    sim.keep_trace_records();
    sim.install_faults(schedule).expect("the schedule names existing machines");
    sim
}

fn host_sends(sim: &Sim<PingMsg, RetryPing>) -> u64 {
    // Crashed hosts are gone from the ground truth, so this is only called with all hosts up.
    (0..HOSTS).map(|i| sim.component::<PingPongHost>(ComponentId(i)).map_or(0, |h| h.pings_sent + h.pongs_sent)).sum()
}

/// The machine of a host component: the builder puts host `i` on machine `i`.
fn machine_of(component: u32) -> u32 {
    component
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every message sent is delivered, dropped, or still in flight, at every instant; the counts
    /// agree with the trace and with what the components themselves sent.
    #[test]
    fn messages_are_conserved(
        seed in any::<u64>(),
        link in link_strategy(),
        faults in proptest::collection::vec(fault_strategy(), 0..6),
        stop_ms in 1u64..8_000,
    ) {
        let schedule = FaultSchedule::new(faults);
        let mut sim = build(seed, link, &schedule);
        sim.run_until(kubedst_sim::Time::from_millis(stop_ms)).unwrap();
        let totals = sim.accounting().messages;
        prop_assert!(totals.balanced(), "{totals:?}");
        prop_assert_eq!(totals.in_flight, sim.queued_deliveries());
        let records = sim.trace_records();
        let delivered = records.iter().filter(|r| matches!(r.kind,
            RecordKind::Deliver | RecordKind::Request | RecordKind::Response | RecordKind::LateResponse
            | RecordKind::StreamOpen | RecordKind::StreamMessage)).count() as u64;
        let dropped = records.iter().filter(|r| matches!(r.kind, RecordKind::Drop(_))).count() as u64;
        let duplicated = records.iter().filter(|r| r.kind == RecordKind::Duplicate).count() as u64;
        prop_assert_eq!(totals.delivered, delivered);
        prop_assert_eq!(totals.dropped, dropped);
        prop_assert_eq!(totals.duplicated, duplicated);
        let per_link_dropped: u64 = sim.accounting().links.values().map(|l| l.dropped()).sum();
        prop_assert_eq!(per_link_dropped, dropped);
        // Crashes rebuild hosts and reset their send counters, so compare with the components'
        // own counts only when no host ever crashed.
        if !schedule.faults.iter().any(|f| matches!(f.fault, Fault::Crash { .. })) {
            prop_assert_eq!(totals.sent, host_sends(&sim));
        }
    }

    /// No message is delivered across a partition while it is in force.
    #[test]
    fn nothing_crosses_an_active_partition(
        seed in any::<u64>(),
        link in link_strategy(),
        faults in proptest::collection::vec(fault_strategy(), 1..6),
    ) {
        let schedule = FaultSchedule::new(faults);
        let mut sim = build(seed, link, &schedule);
        sim.run_until(kubedst_sim::Time::from_millis(10_000)).unwrap();
        // Blocked intervals (open at both ends, so same-instant ordering does not matter).
        let mut blocked: Vec<(u32, u32, u64, u64)> = Vec::new();
        for timed in &schedule.faults {
            let start = timed.at.as_nanos() as u64;
            let index = |name: &str| name[2..].parse::<u32>().unwrap();
            match &timed.fault {
                Fault::Partition { side_a, side_b, one_way, duration } => {
                    let end = start + duration.as_nanos() as u64;
                    for a in side_a { for b in side_b {
                        if a == b { continue; }
                        blocked.push((index(a), index(b), start, end));
                        if !one_way { blocked.push((index(b), index(a), start, end)); }
                    }}
                }
                Fault::Isolate { machine, duration } => {
                    let end = start + duration.as_nanos() as u64;
                    for other in 0..HOSTS {
                        if other != index(machine) {
                            blocked.push((index(machine), other, start, end));
                            blocked.push((other, index(machine), start, end));
                        }
                    }
                }
                _ => {}
            }
        }
        for record in sim.trace_records() {
            if !matches!(record.kind, RecordKind::Deliver | RecordKind::LateResponse) { continue; }
            let (from, to, t) = (machine_of(record.peer), machine_of(record.subject), record.time.as_nanos());
            for &(a, b, start, end) in &blocked {
                prop_assert!(!(a == from && b == to && start < t && t < end),
                    "message {from}->{to} delivered at {t} inside partition [{start}, {end}]");
            }
        }
    }

    /// Time never goes backwards, whatever the faults.
    #[test]
    fn time_never_goes_backwards(
        seed in any::<u64>(),
        link in link_strategy(),
        faults in proptest::collection::vec(fault_strategy(), 0..6),
    ) {
        let mut sim = build(seed, link, &FaultSchedule::new(faults));
        let mut last = sim.now();
        for _ in 0..20_000 {
            if !sim.step() { break; }
            prop_assert!(sim.now() >= last);
            last = sim.now();
        }
        let records = sim.trace_records();
        prop_assert!(records.windows(2).all(|pair| pair[0].time <= pair[1].time));
    }
}
