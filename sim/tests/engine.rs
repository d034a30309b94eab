//! The engine's promises: determinism, faults with their documented effects, budgets, the trace.

use kubedst_sim::testing::{completed_round_trips, pingpong_sim, PingMsg, PingPongHost, RetryPing};
use kubedst_sim::{
    check_determinism, draw_swarm, Component, ComponentId, Ctx, Fault, FaultKind, FaultSchedule, Input, LinkConfig,
    MachineStatus, Ratio, RequestId, Sim, SimConfig, SwarmSpace, Time, TimedFault, TraceDigest,
};
use std::any::Any;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

fn swarm_space(hosts: u32) -> SwarmSpace {
    SwarmSpace {
        machines: (0..hosts).map(|i| format!("m-{i}")).collect(),
        window_start: Duration::ZERO,
        window_end: Duration::from_secs(5),
        max_faults: 6,
        allowed: FaultKind::ALL.to_vec(),
        base_link: LinkConfig::default(),
    }
}

/// A swarm run of ping-pong: faults and link chaos drawn from the seed, then healed.
fn swarm_run(seed: u64) -> u64 {
    let draw = draw_swarm(seed, &swarm_space(5));
    let mut config = SimConfig::new(seed);
    config.link = draw.link;
    let mut sim = pingpong_sim(config, 5, 40, Some(Duration::from_millis(50)));
    sim.install_faults(&draw.schedule).unwrap();
    sim.run_until(Time::from_secs(6)).unwrap();
    sim.end_fault_phase();
    sim.run_until(Time::from_secs(60)).unwrap();
    sim.trace_hash()
}

#[test]
fn the_same_seed_gives_the_same_hash_and_other_seeds_others() {
    let mut hashes = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let hash = check_determinism(seed, swarm_run).expect("deterministic");
        hashes.insert(hash);
    }
    assert_eq!(hashes.len(), 20, "twenty seeds, twenty different traces");
}

#[test]
fn a_swarm_draw_is_a_pure_function_of_the_seed_and_prints_every_parameter() {
    let space = swarm_space(3);
    assert_eq!(draw_swarm(9, &space), draw_swarm(9, &space));
    assert_ne!(draw_swarm(9, &space), draw_swarm(10, &space));
    let text = draw_swarm(9, &space).to_string();
    assert!(text.starts_with("swarm seed=9 enabled=["), "{text}");
    assert!(text.contains("loss="), "{text}");
    // Across seeds the swarm enables different mixes of fault kinds.
    let mixes: std::collections::BTreeSet<Vec<FaultKind>> =
        (0..50).map(|seed| draw_swarm(seed, &space).enabled).collect();
    assert!(mixes.len() > 20, "only {} different mixes", mixes.len());
}

/// The canary: a component whose choices depend on a std HashMap's per-process random order.
struct HashOrderHost {
    peers: u32,
}

impl Component<PingMsg, RetryPing> for HashOrderHost {
    #[allow(clippy::disallowed_types)] // The point of this component is to be nondeterministic.
    fn handle(&mut self, ctx: &mut Ctx<'_, PingMsg, RetryPing>, input: Input<PingMsg, RetryPing>) {
        if let Input::Start = input {
            let mut peers = std::collections::HashMap::new();
            for peer in 0..self.peers {
                if peer != ctx.me().0 {
                    peers.insert(peer, ());
                }
            }
            // Sends in hash-map order: the order of deliveries differs from one map to the next.
            for (&peer, _) in peers.iter() {
                ctx.send(ComponentId(peer), PingMsg::Ping { round: 0 });
            }
        }
    }
}

fn hash_order_run(seed: u64) -> u64 {
    let mut config = SimConfig::new(seed);
    config.link = LinkConfig::fixed(Duration::from_millis(1));
    let mut sim: Sim<PingMsg, RetryPing> = Sim::new(config);
    for i in 0..8 {
        let machine = sim.add_machine(&format!("m-{i}"));
        sim.add_component(machine, &format!("host-{i}"), |_| Box::new(HashOrderHost { peers: 8 }));
    }
    sim.run_until_quiescent().unwrap();
    sim.trace_hash()
}

#[test]
fn canary_a_nondeterministic_component_is_caught() {
    // Eight peers in a std HashMap: the chance that two maps iterate alike is below 1/1000 per
    // map, and the check compares one run against the next.
    let caught = (0..3).any(|seed| check_determinism(seed, hash_order_run).is_err());
    assert!(caught, "the determinism check did not notice hash-map ordering");
}

#[test]
fn pingpong_trace_snapshot() {
    let mut config = SimConfig::new(42);
    config.link = LinkConfig::fixed(Duration::from_millis(1));
    let mut sim = pingpong_sim(config, 2, 2, None);
    let buffer = Rc::new(RefCell::new(Vec::new()));
    sim.write_trace_jsonl(Box::new(SharedBuffer(buffer.clone())));
    sim.run_until_quiescent().unwrap();
    sim.finish_trace().unwrap();
    let text = String::from_utf8(buffer.borrow().clone()).unwrap();
    insta::assert_snapshot!(format!("trace_hash={:016x}\n{text}", sim.trace_hash()));
    assert_eq!(completed_round_trips(&sim), 4);
    assert_eq!(sim.events_processed(), 2 + 8);
}

struct SharedBuffer(Rc<RefCell<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_run_over_budget_fails_loudly_with_what_was_pending() {
    let mut config = SimConfig::new(1);
    config.max_events = 100;
    // Two hosts, a partition that never heals during the run: retries go on forever.
    let mut sim = pingpong_sim(config, 2, 10, Some(Duration::from_millis(5)));
    let (a, b) = (sim.machine_id("m-0").unwrap(), sim.machine_id("m-1").unwrap());
    sim.partition(&[a], &[b], false);
    let err = sim.run_until_quiescent().unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("ran 100 events (the limit is 100)"), "{text}");
    assert!(text.contains("timer event(s) for host-0"), "{text}");
    assert!(text.contains("host-0: waiting for the pong of round 0 from component 1"), "{text}");

    let mut config = SimConfig::new(1);
    config.max_time = Time::from_secs(1);
    let mut sim = pingpong_sim(config, 2, 10, Some(Duration::from_millis(5)));
    sim.partition(&[a], &[b], false);
    let err = sim.run_until_quiescent().unwrap_err();
    assert!(err.to_string().starts_with("ran until 1.000000000s (the limit is 1.000000000s)"), "{err}");
}

#[test]
fn a_crashed_machine_comes_back_with_only_what_it_persisted() {
    let mut config = SimConfig::new(3);
    config.link = LinkConfig::fixed(Duration::from_millis(1));
    let mut sim = pingpong_sim(config, 3, 1_000, Some(Duration::from_millis(10)));
    sim.run_until(Time::from_millis(100)).unwrap();
    let host = ComponentId(0);
    let before = sim.component::<PingPongHost>(host).unwrap();
    let (completed, pongs) = (before.completed, before.pongs_sent);
    assert!(completed > 0 && pongs > 0);
    let machine = sim.machine_of(host);
    assert!(sim.crash(machine));
    assert!(!sim.crash(machine), "crashing a machine that is down does nothing");
    assert!(sim.component::<PingPongHost>(host).is_none(), "a crashed component is gone");
    sim.run_until(Time::from_millis(200)).unwrap();
    assert!(sim.restart(machine));
    let after = sim.component::<PingPongHost>(host).unwrap();
    assert_eq!(after.completed, completed, "the persisted count survived");
    assert_eq!(after.pongs_sent, 0, "volatile state was lost");
    sim.run_until(Time::from_millis(400)).unwrap();
    assert!(sim.component::<PingPongHost>(host).unwrap().completed > completed, "it works again");
    // Messages to the machine while it was down were dropped and counted as such.
    let dropped: u64 = sim.accounting().links.values().map(|link| link.dropped_destination_down).sum();
    assert!(dropped > 0);
    // Losing a machine loses its disk too.
    assert!(sim.lose(machine));
    assert!(!sim.restart(machine), "a lost machine never restarts");
    assert_eq!(sim.machine_status(machine), MachineStatus::Lost);
}

#[test]
fn a_paused_machine_handles_its_inputs_late_and_in_order() {
    let mut config = SimConfig::new(4);
    config.link = LinkConfig::fixed(Duration::from_millis(1));
    let mut sim = pingpong_sim(config, 2, 1_000_000, None);
    sim.keep_trace_records();
    sim.run_until(Time::from_millis(10)).unwrap();
    let machine = sim.machine_id("m-1").unwrap();
    assert!(sim.pause(machine, Duration::from_millis(500)));
    sim.run_until(Time::from_millis(400)).unwrap();
    let during = completed_round_trips(&sim);
    sim.run_until(Time::from_millis(520)).unwrap();
    let after = completed_round_trips(&sim);
    sim.run_until(Time::from_millis(600)).unwrap();
    assert!(after >= during, "{after} {during}");
    assert!(completed_round_trips(&sim) > after + 10, "it resumed");
    // Nothing was delivered to the paused host between 10 ms and 510 ms.
    let host_1 = sim.component_id("host-1").unwrap().0;
    assert!(!sim.trace_records().iter().any(|r| r.subject == host_1
        && r.kind == kubedst_sim::RecordKind::Deliver
        && r.time > Time::from_millis(11)
        && r.time < Time::from_millis(510)));
}

/// Reports its clock readings; answers requests after a delay of its own choosing.
struct ClockReader {
    readings: Vec<Time>,
}

impl Component<u64, u64> for ClockReader {
    fn handle(&mut self, ctx: &mut Ctx<'_, u64, u64>, input: Input<u64, u64>) {
        match input {
            Input::Start => {
                ctx.set_timer(Duration::from_secs(10), 0);
            }
            Input::Timer { .. } => {
                self.readings.push(ctx.now());
                ctx.set_timer(Duration::from_secs(10), 0);
            }
            _ => {}
        }
    }
}

#[test]
fn clocks_skew_and_drift_per_machine() {
    let mut sim: Sim<u64, u64> = Sim::new(SimConfig::new(5));
    let fast = sim.add_machine("fast");
    let skewed = sim.add_machine("skewed");
    let fast_reader = sim.add_component(fast, "fast-reader", |_| Box::new(ClockReader { readings: vec![] }));
    let skewed_reader = sim.add_component(skewed, "skewed-reader", |_| Box::new(ClockReader { readings: vec![] }));
    sim.set_clock_drift(fast, 100_000); // 10% fast: its 10 s timers fire every 9.09 s of true time.
    sim.run_until(Time::from_secs(25)).unwrap();
    sim.skew_clock(skewed, -5_000_000_000);
    sim.run_until(Time::from_secs(35)).unwrap();
    let fast_readings = &sim.component::<ClockReader>(fast_reader).unwrap().readings;
    // Its clock reads 10 s, 20 s, 30 s when its timers fire; true time is then 9.09, 18.18, 27.27 s.
    assert_eq!(fast_readings[..3], [Time::from_secs(10), Time::from_secs(20), Time::from_secs(30)]);
    assert_eq!(sim.machine_clock(fast), Time::from_millis(38_500));
    let skewed_readings = &sim.component::<ClockReader>(skewed_reader).unwrap().readings;
    // A skew moves the wall clock but not the timers, which measure elapsed time.
    assert_eq!(skewed_readings[..], [Time::from_secs(10), Time::from_secs(20), Time::from_secs(25)]);
}

#[derive(Default)]
struct Server {
    applied: u64,
}

impl Component<u64, u64> for Server {
    fn handle(&mut self, ctx: &mut Ctx<'_, u64, u64>, input: Input<u64, u64>) {
        if let Input::Request { reply, msg } = input {
            self.applied += msg;
            ctx.respond(reply, self.applied);
        }
    }
}

#[derive(Default)]
struct Client {
    server: Option<ComponentId>,
    answers: Vec<u64>,
    timed_out: Vec<RequestId>,
}

impl Component<u64, u64> for Client {
    fn handle(&mut self, ctx: &mut Ctx<'_, u64, u64>, input: Input<u64, u64>) {
        match input {
            Input::Start => {
                ctx.request(self.server.unwrap(), 5, Duration::from_millis(50));
            }
            Input::Response { msg, .. } => self.answers.push(msg),
            Input::RequestTimedOut { id } => self.timed_out.push(id),
            _ => {}
        }
    }
}

#[test]
fn a_timed_out_request_may_still_have_taken_effect() {
    let mut config = SimConfig::new(6);
    config.link = LinkConfig::fixed(Duration::from_millis(40)); // 80 ms round trip, 50 ms timeout.
    let mut sim: Sim<u64, u64> = Sim::new(config);
    let (a, b) = (sim.add_machine("a"), sim.add_machine("b"));
    let server = sim.add_component(b, "server", |_| Box::<Server>::default());
    let client =
        sim.add_component(a, "client", move |_| Box::new(Client { server: Some(server), ..Client::default() }));
    sim.run_until_quiescent().unwrap();
    let client_state = sim.component::<Client>(client).unwrap();
    assert_eq!(client_state.answers, Vec::<u64>::new());
    assert_eq!(client_state.timed_out.len(), 1, "the caller only learns that it timed out");
    assert_eq!(sim.component::<Server>(server).unwrap().applied, 5, "the write took effect nevertheless");
    let accounting = sim.accounting();
    assert_eq!((accounting.requests_timed_out, accounting.late_responses), (1, 1));
}

/// Takes a buggify path whenever the site fires.
struct Buggy {
    fired: u64,
}

impl Component<u64, u64> for Buggy {
    fn handle(&mut self, ctx: &mut Ctx<'_, u64, u64>, input: Input<u64, u64>) {
        if let Input::Start | Input::Timer { .. } = input {
            for site in ["slow-path", "early-timeout", "spurious-retry", "drop-cache"] {
                if ctx.buggify(site) {
                    self.fired += 1;
                }
            }
            ctx.set_timer(Duration::from_millis(1), 0);
        }
    }
}

#[test]
fn buggify_fires_only_when_enabled_and_only_at_active_sites() {
    let run = |seed: u64, enabled: bool| {
        let mut config = SimConfig::new(seed);
        config.buggify = enabled;
        let mut sim: Sim<u64, u64> = Sim::new(config);
        let machine = sim.add_machine("m");
        let id = sim.add_component(machine, "buggy", |_| Box::new(Buggy { fired: 0 }));
        sim.run_until(Time::from_secs(1)).unwrap();
        (sim.component::<Buggy>(id).unwrap().fired, sim.accounting().buggify_fired)
    };
    for seed in 0..10 {
        assert_eq!(run(seed, false).0, 0);
    }
    let active_counts: Vec<usize> = (0..40).map(|seed| run(seed, true).1.len()).collect();
    assert!(active_counts.iter().any(|&n| n > 0), "buggify never fired");
    assert!(active_counts.iter().all(|&n| n < 4) || active_counts.iter().any(|&n| n < 4));
    // About one site in four is active per run: over 40 runs of 4 sites, far fewer than 160.
    let total: usize = active_counts.iter().sum();
    assert!((10..80).contains(&total), "{total} active sites over 40 runs");
}

#[test]
fn fault_schedules_round_trip_through_json_and_name_bad_machines() {
    let schedule = FaultSchedule::new(vec![
        TimedFault {
            at: Duration::from_secs(1),
            fault: Fault::Crash { machine: "m-0".into(), restart_after: Some(Duration::from_millis(500)) },
        },
        TimedFault {
            at: Duration::from_millis(1500),
            fault: Fault::Partition {
                side_a: vec!["m-0".into()],
                side_b: vec!["m-1".into()],
                one_way: true,
                duration: Duration::from_secs(2),
            },
        },
    ]);
    let text = serde_json::to_string(&schedule).unwrap();
    assert_eq!(
        text,
        r#"{"faults":[{"at":"1s","fault":{"kind":"crash","machine":"m-0","restart_after":"500ms"}},{"at":"1500ms","fault":{"kind":"partition","side_a":["m-0"],"side_b":["m-1"],"one_way":true,"duration":"2s"}}]}"#
    );
    assert_eq!(serde_json::from_str::<FaultSchedule>(&text).unwrap(), schedule);
    assert_eq!(schedule.end(), Duration::from_millis(3500));

    let mut sim = pingpong_sim(SimConfig::new(1), 2, 1, None);
    let bad = FaultSchedule::new(vec![TimedFault { at: Duration::ZERO, fault: Fault::Lose { machine: "m-9".into() } }]);
    let err = sim.install_faults(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fault 0 (lose m-9) names machine \"m-9\", which is not in the cluster (machines: m-0, m-1)"
    );
    let degraded = LinkConfig { loss: Ratio { num: 3, den: 2 }, ..LinkConfig::default() };
    let bad = FaultSchedule::new(vec![TimedFault {
        at: Duration::ZERO,
        fault: Fault::DegradeLink {
            from: "m-0".into(),
            to: "m-1".into(),
            link: degraded,
            duration: Duration::from_secs(1),
        },
    }]);
    assert!(sim.install_faults(&bad).unwrap_err().to_string().contains("loss = 3/2 is not a probability"));
}

#[test]
fn scheduled_faults_fire_heal_and_are_accounted() {
    let mut config = SimConfig::new(8);
    config.link = LinkConfig::fixed(Duration::from_millis(1));
    let mut sim = pingpong_sim(config, 3, 100_000, Some(Duration::from_millis(10)));
    let schedule = FaultSchedule::new(vec![
        TimedFault {
            at: Duration::from_millis(100),
            fault: Fault::Crash { machine: "m-0".into(), restart_after: Some(Duration::from_millis(100)) },
        },
        TimedFault {
            at: Duration::from_millis(150),
            fault: Fault::Crash { machine: "m-0".into(), restart_after: None },
        },
        TimedFault {
            at: Duration::from_millis(300),
            fault: Fault::Isolate { machine: "m-1".into(), duration: Duration::from_millis(100) },
        },
        TimedFault {
            at: Duration::from_millis(500),
            fault: Fault::Crash { machine: "m-2".into(), restart_after: None },
        },
    ]);
    sim.install_faults(&schedule).unwrap();
    sim.run_until(Time::from_millis(250)).unwrap();
    assert_eq!(sim.machine_status(sim.machine_id("m-0").unwrap()), MachineStatus::Up, "restarted by itself");
    sim.run_until(Time::from_millis(350)).unwrap();
    let (m0, m1) = (sim.machine_id("m-0").unwrap(), sim.machine_id("m-1").unwrap());
    assert!(sim.is_blocked(m0, m1) && sim.is_blocked(m1, m0));
    sim.run_until(Time::from_millis(450)).unwrap();
    assert!(!sim.is_blocked(m0, m1), "the isolation healed");
    sim.run_until(Time::from_millis(600)).unwrap();
    sim.end_fault_phase();
    assert_eq!(
        sim.machine_status(sim.machine_id("m-2").unwrap()),
        MachineStatus::Up,
        "the end of the fault phase restarts machines"
    );
    let accounting = sim.accounting();
    assert_eq!(accounting.fired(FaultKind::Crash), 2);
    assert_eq!(accounting.faults_skipped.get(&FaultKind::Crash), Some(&1), "crashing m-0 while down struck nothing");
    assert_eq!(accounting.fired(FaultKind::Isolate), 1);
    assert!(accounting.links.values().any(|link| link.dropped_partition > 0));
}

#[test]
fn components_are_rebuilt_by_their_factory_from_a_typed_durable_value() {
    struct Durable {
        writes: Vec<u64>,
    }
    impl Component<u64, u64> for Durable {
        fn handle(&mut self, _ctx: &mut Ctx<'_, u64, u64>, input: Input<u64, u64>) {
            if let Input::Start = input {
                self.writes.push(self.writes.len() as u64);
            }
        }
        fn crash(self: Box<Self>) -> Option<Box<dyn Any>> {
            Some(Box::new(self.writes))
        }
    }
    impl TraceDigest for Durable {
        fn trace_digest(&self) -> u64 {
            0
        }
    }
    let mut sim: Sim<u64, u64> = Sim::new(SimConfig::new(1));
    let machine = sim.add_machine("disk");
    let id = sim.add_component(machine, "durable", |durable| {
        let writes = durable.and_then(|d| d.downcast::<Vec<u64>>().ok()).map(|b| *b).unwrap_or_default();
        Box::new(Durable { writes })
    });
    for _ in 0..3 {
        sim.run_until(sim.now() + Duration::from_millis(1)).unwrap();
        sim.crash(machine);
        sim.restart(machine);
    }
    sim.run_until(sim.now() + Duration::from_millis(1)).unwrap();
    assert_eq!(sim.component::<Durable>(id).unwrap().writes, vec![0, 1, 2, 3]);
}

#[test]
fn a_step_back_past_zero_stops_at_zero_and_the_clock_runs_on() {
    let mut sim: Sim<u64, u64> = Sim::new(SimConfig::new(5));
    let machine = sim.add_machine("early");
    sim.run_until(Time::from_secs(6)).unwrap();
    sim.skew_clock(machine, -30_000_000_000);
    assert_eq!(sim.machine_clock(machine), Time::ZERO);
    sim.run_until(Time::from_secs(8)).unwrap();
    // Not held at zero: it has advanced by the 2 s that passed since the step.
    assert_eq!(sim.machine_clock(machine), Time::from_secs(2));
}
