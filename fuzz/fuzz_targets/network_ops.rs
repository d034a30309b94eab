//! Applies an arbitrary sequence of network and fault operations to ping-pong hosts and checks
//! message conservation after every one: each message sent is delivered, dropped or in flight.

#![no_main]

use arbitrary::Arbitrary;
use kubedst_sim::testing::pingpong_sim;
use kubedst_sim::{LatencyModel, LinkConfig, MachineId, Ratio, SimConfig, Time};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Op {
    Run { millis: u16 },
    Crash { machine: u8 },
    Restart { machine: u8 },
    Lose { machine: u8 },
    Pause { machine: u8, millis: u16 },
    Partition { a: u8, b: u8, one_way: bool },
    RepairLast,
    Isolate { machine: u8 },
    Degrade { from: u8, to: u8, loss_per_mille: u16, floor_millis: u8 },
    Skew { machine: u8, offset_millis: i16 },
    Drift { machine: u8, drift_ppm: i32 },
    EndFaultPhase,
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    hosts: u8,
    loss_per_mille: u16,
    duplicate_per_mille: u16,
    reorder_per_mille: u16,
    jitter_micros: u16,
    ops: Vec<Op>,
}

fn per_mille(value: u16) -> Ratio {
    Ratio::new(u32::from(value % 1001), 1000)
}

fuzz_target!(|input: Input| {
    let hosts = 2 + u32::from(input.hosts % 5);
    let mut config = SimConfig::new(input.seed);
    config.link = LinkConfig {
        latency: LatencyModel {
            floor: Duration::from_micros(100),
            jitter: Duration::from_micros(u64::from(input.jitter_micros)),
            tail_chance: Ratio::ZERO,
            tail_max: Duration::ZERO,
        },
        loss: per_mille(input.loss_per_mille),
        duplicate: per_mille(input.duplicate_per_mille),
        reorder: per_mille(input.reorder_per_mille),
        reorder_window: Duration::from_millis(5),
    };
    config.max_events = 200_000;
    let mut sim = pingpong_sim(config, hosts, 20, Some(Duration::from_millis(3)));
    let machine = |index: u8| MachineId(u32::from(index) % hosts);
    let mut partitions = Vec::new();
    for op in input.ops.iter().take(64) {
        match *op {
            Op::Run { millis } => {
                let deadline = sim.now() + Duration::from_millis(u64::from(millis % 2_000));
                if sim.run_until(deadline).is_err() {
                    return; // The event budget ran out; conservation was checked on every step.
                }
            }
            Op::Crash { machine: m } => {
                sim.crash(machine(m));
            }
            Op::Restart { machine: m } => {
                sim.restart(machine(m));
            }
            Op::Lose { machine: m } => {
                sim.lose(machine(m));
            }
            Op::Pause { machine: m, millis } => {
                sim.pause(machine(m), Duration::from_millis(u64::from(millis % 1_000)));
            }
            Op::Partition { a, b, one_way } => partitions.push(sim.partition(&[machine(a)], &[machine(b)], one_way)),
            Op::RepairLast => {
                if let Some(pairs) = partitions.pop() {
                    sim.repair(&pairs);
                }
            }
            Op::Isolate { machine: m } => partitions.push(sim.isolate(machine(m))),
            Op::Degrade { from, to, loss_per_mille, floor_millis } => {
                let mut link = LinkConfig::fixed(Duration::from_millis(u64::from(floor_millis)));
                link.loss = per_mille(loss_per_mille);
                sim.degrade_link(machine(from), machine(to), link);
            }
            Op::Skew { machine: m, offset_millis } => sim.skew_clock(machine(m), i64::from(offset_millis) * 1_000_000),
            Op::Drift { machine: m, drift_ppm } => {
                sim.set_clock_drift(machine(m), drift_ppm.clamp(-999_999, 1_000_000))
            }
            Op::EndFaultPhase => {
                partitions.clear();
                sim.end_fault_phase();
            }
        }
        let totals = sim.accounting().messages;
        assert!(totals.balanced(), "messages not conserved: {totals:?}");
        assert_eq!(totals.in_flight, sim.queued_deliveries(), "in-flight count disagrees with the queue");
    }
    let _ = sim.run_until(Time::from_secs(3_600).min(sim.now() + Duration::from_secs(5)));
    let totals = sim.accounting().messages;
    assert!(totals.balanced(), "messages not conserved: {totals:?}");
});
