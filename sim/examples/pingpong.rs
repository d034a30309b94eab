//! The engine benchmark: N hosts doing sequential ping-pong round trips over a fixed 1 ms link.
//!
//! `cargo run --release -p kubedst-sim --example pingpong -- --hosts N --deliveries D --seed S [--baseline]`
//!
//! Prints `hosts=N deliveries=D wall_s=... deliveries_per_s=... trace_hash=...`. With `--baseline`
//! it also runs a minimal hand-written loop (a BinaryHeap of (time, seq), ChaCha8Rng, fixed latency,
//! small enum messages) on the same workload in the same process and prints its figures and the
//! ratio, so the engine's overhead is measured against a floor on the same machine.

// Wall-clock time is measured around whole runs, outside the simulation.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use kubedst_sim::testing::{pingpong_sim, PingPongHost};
use kubedst_sim::{ComponentId, LinkConfig, SimConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    hosts: u32,
    deliveries: u64,
    seed: u64,
    baseline: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { hosts: 2, deliveries: 1_000_000, seed: 0, baseline: false };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| words.next().ok_or(format!("{name} needs a value"));
        match word.as_str() {
            "--hosts" => args.hosts = value("--hosts")?.parse().map_err(|e| format!("--hosts: {e}"))?,
            "--deliveries" => {
                args.deliveries = value("--deliveries")?.parse().map_err(|e| format!("--deliveries: {e}"))?
            }
            "--seed" => args.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--baseline" => args.baseline = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.hosts < 2 {
        return Err("--hosts must be at least 2".into());
    }
    if args.deliveries == 0 || !args.deliveries.is_multiple_of(2 * u64::from(args.hosts)) {
        return Err(format!("--deliveries must be a positive multiple of 2 x hosts = {}", 2 * args.hosts));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("pingpong: {err}\nusage: pingpong --hosts N --deliveries D --seed S [--baseline]");
            return ExitCode::from(2);
        }
    };
    let round_trips = args.deliveries / (2 * u64::from(args.hosts));

    let mut config = SimConfig::new(args.seed);
    config.link = LinkConfig::fixed(Duration::from_millis(1));
    config.max_events = u64::MAX;
    let started = Instant::now();
    let mut sim = pingpong_sim(config, args.hosts, round_trips, None);
    sim.run_until_quiescent().expect("a fault-free ping-pong run always finishes");
    let wall = started.elapsed();
    let delivered = sim.accounting().messages.delivered;
    assert_eq!(delivered, args.deliveries, "the engine delivered a different number of messages");
    let completed: u64 =
        (0..args.hosts).map(|i| sim.component::<PingPongHost>(ComponentId(i)).unwrap().completed).sum();
    assert_eq!(completed, round_trips * u64::from(args.hosts));
    let engine_rate = args.deliveries as f64 / wall.as_secs_f64();
    println!(
        "hosts={} deliveries={} wall_s={:.3} deliveries_per_s={:.0} trace_hash={:016x}",
        args.hosts,
        args.deliveries,
        wall.as_secs_f64(),
        engine_rate,
        sim.trace_hash()
    );

    if args.baseline {
        let started = Instant::now();
        let baseline_delivered = baseline(args.hosts, round_trips, args.seed);
        let wall = started.elapsed();
        assert_eq!(baseline_delivered, args.deliveries);
        let baseline_rate = args.deliveries as f64 / wall.as_secs_f64();
        println!(
            "baseline hosts={} deliveries={} wall_s={:.3} deliveries_per_s={:.0} engine_slowdown={:.2}x",
            args.hosts,
            args.deliveries,
            wall.as_secs_f64(),
            baseline_rate,
            baseline_rate / engine_rate
        );
    }
    ExitCode::SUCCESS
}

#[derive(Clone, Copy)]
enum Msg {
    Ping,
    Pong,
}

/// A baseline event: (time, sequence, from host, to host, message code).
type BaselineEvent = Reverse<(u64, u64, u32, u32, u8)>;

/// The floor: the same workload with nothing but a heap, a ChaCha8 stream per host, and counters.
fn baseline(hosts: u32, round_trips: u64, seed: u64) -> u64 {
    let mut queue: BinaryHeap<BaselineEvent> = BinaryHeap::new();
    let mut rngs: Vec<ChaCha8Rng> =
        (0..hosts).map(|i| ChaCha8Rng::seed_from_u64(seed ^ (u64::from(i) << 32))).collect();
    let mut completed = vec![0u64; hosts as usize];
    let mut seq = 0u64;
    let latency_ns = 1_000_000u64;
    let encode = |msg: Msg| match msg {
        Msg::Ping => 0u8,
        Msg::Pong => 1u8,
    };
    let pick_peer = |rng: &mut ChaCha8Rng, me: u32| {
        let mut peer = (rng.next_u64() % u64::from(hosts - 1)) as u32;
        if peer >= me {
            peer += 1;
        }
        peer
    };
    for me in 0..hosts {
        let peer = pick_peer(&mut rngs[me as usize], me);
        queue.push(Reverse((latency_ns, seq, peer, me, encode(Msg::Ping))));
        seq += 1;
    }
    let mut delivered = 0u64;
    while let Some(Reverse((now, _, to, from, msg))) = queue.pop() {
        delivered += 1;
        if msg == encode(Msg::Ping) {
            queue.push(Reverse((now + latency_ns, seq, from, to, encode(Msg::Pong))));
            seq += 1;
        } else {
            completed[to as usize] += 1;
            if completed[to as usize] < round_trips {
                let peer = pick_peer(&mut rngs[to as usize], to);
                queue.push(Reverse((now + latency_ns, seq, peer, to, encode(Msg::Ping))));
                seq += 1;
            }
        }
    }
    delivered
}
