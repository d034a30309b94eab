//! What the checkers cost: a 3-node cluster rolls a 10-replica Deployment behind a Service with
//! traffic (one request per 100 ms) to a new image, under one node crash, through
//! `harness::Harness` once with the default checkers and once with none; prints the wall time of
//! each (the best of `--repeat` runs) and their ratio.
//!
//! `cargo run --release -p kubedst-core --example checker_cost -- [--repeat N] [--seed S]`

// Wall-clock time is measured around whole runs, outside the simulation.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use kubedst_core::checkers::CheckerSet;
use kubedst_core::cluster::{ClusterConfig, TrafficConfig};
use kubedst_core::harness::{Action, FaultPlan, Harness, RunSpec, TimedAction};
use kubedst_core::objects::Object;
use kubedst_sim::{Fault, FaultSchedule, TimedFault};
use std::time::{Duration, Instant};

fn spec(seed: u64) -> RunSpec {
    let mut cluster = ClusterConfig::standard(seed, 3);
    for node in &mut cluster.nodes {
        node.images.default.sigterm_exit_after_ns = 5_000_000_000;
    }
    cluster.traffic =
        vec![TrafficConfig { service: "default/web".into(), node: 0, interval: Duration::from_millis(100) }];
    let objects: Vec<Object> = kubedst_core::fixtures::web_objects(10);
    let set_image = Action::SetImage {
        namespace: "default".into(),
        deployment: "web".into(),
        container: "web".into(),
        image: "web:v2".into(),
    };
    let crash = TimedFault {
        at: Duration::from_secs(35),
        fault: Fault::Crash { machine: "node-2".into(), restart_after: Some(Duration::from_secs(10)) },
    };
    RunSpec {
        cluster,
        actions: vec![
            TimedAction { at: Duration::from_secs(1), action: Action::Apply(objects) },
            TimedAction { at: Duration::from_secs(30), action: set_image },
        ],
        faults: FaultPlan { engine: FaultSchedule::new(vec![crash]), model: Vec::new() },
        fault_phase: Duration::from_secs(120),
        liveness_bound: Duration::from_secs(300),
    }
}

/// One run; returns its wall time, events and verdict line.
fn run_once(seed: u64, with_checkers: bool) -> (Duration, String) {
    let started = Instant::now();
    let mut harness = Harness::new(spec(seed)).expect("a valid spec");
    if !with_checkers {
        harness.set_checkers(CheckerSet::new(Vec::new()));
    }
    harness.run_fault_phase();
    harness.heal();
    harness.run_liveness_phase();
    let report = harness.report();
    let wall = started.elapsed();
    let summary = format!(
        "verdict={:?} events={} violations={} exercised={:?}",
        report.verdict,
        report.events,
        report.violations.len(),
        report.exercised
    );
    (wall, summary)
}

fn main() {
    let mut repeat = 3;
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|value| value.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--repeat", Some(value)) => repeat = value.max(1),
            ("--seed", Some(value)) => seed = value,
            _ => {
                eprintln!("usage: checker_cost [--repeat N] [--seed S]");
                std::process::exit(2);
            }
        }
    }
    let mut best = [Duration::MAX, Duration::MAX];
    let mut summaries = [String::new(), String::new()];
    for _ in 0..repeat {
        for (index, with_checkers) in [false, true].into_iter().enumerate() {
            let (wall, summary) = run_once(seed, with_checkers);
            best[index] = best[index].min(wall);
            summaries[index] = summary;
        }
    }
    println!("without checkers: wall_ms={:.1} {}", best[0].as_secs_f64() * 1e3, summaries[0]);
    println!("with checkers:    wall_ms={:.1} {}", best[1].as_secs_f64() * 1e3, summaries[1]);
    println!("ratio={:.2}", best[1].as_secs_f64() / best[0].as_secs_f64());
}
