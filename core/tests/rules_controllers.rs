//! Job, kubelet, HPA and PDB rules pinned to upstream behaviour.

use kubedst_core::rules::deployment::IntOrPercent;
use kubedst_core::rules::hpa::*;
use kubedst_core::rules::job::*;
use kubedst_core::rules::kubelet::*;
use kubedst_core::rules::pdb::*;
use proptest::prelude::*;

const S: u64 = 1_000_000_000;

#[test]
fn job_pod_failure_backoff_sequence() {
    let seconds: Vec<u64> = (0..=9).map(|n| pod_failure_backoff_ns(n) / S).collect();
    assert_eq!(seconds, vec![0, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    assert_eq!(pod_failure_backoff_ns(u32::MAX), 600 * S);
    assert_eq!(pod_failure_backoff_remaining_ns(2, 100 * S, 105 * S), 15 * S);
    assert_eq!(pod_failure_backoff_remaining_ns(2, 100 * S, 120 * S), 0);
    assert_eq!(pod_failure_backoff_remaining_ns(0, 100 * S, 100 * S), 0);
}

#[test]
fn job_want_active_and_action() {
    // (parallelism, completions, active, succeeded, suspended, want)
    let cases = [
        (3, None, 0, 0, false, 3),
        (3, None, 2, 1, false, 2), // a success: let the running ones finish
        (3, Some(5), 0, 0, false, 3),
        (3, Some(5), 3, 4, false, 1),
        (3, Some(5), 0, 5, false, 0),
        (3, Some(5), 0, 7, false, 0),
        (3, Some(5), 3, 0, true, 0),
    ];
    for (parallelism, completions, active, succeeded, suspended, want) in cases {
        assert_eq!(
            want_active(parallelism, completions, active, succeeded, suspended),
            want,
            "{parallelism} {completions:?} {active} {succeeded}"
        );
    }
    assert_eq!(job_pod_action(3, 1, 0), JobPodAction::Create(2));
    assert_eq!(job_pod_action(3, 1, 1), JobPodAction::Create(1));
    assert_eq!(job_pod_action(1, 3, 0), JobPodAction::Delete(2));
    assert_eq!(job_pod_action(3, 3, 0), JobPodAction::None);
    assert_eq!(job_pod_action(10_000, 0, 0), JobPodAction::Create(500));
    assert!(!backoff_limit_exceeded(6, 6));
    assert!(backoff_limit_exceeded(7, 6));
    assert!(past_backoff_limit_on_failure(1, 0));
    assert!(!past_backoff_limit_on_failure(5, 6));
    assert!(past_backoff_limit_on_failure(6, 6));
}

#[test]
fn crash_loop_backoff_sequence_and_reset() {
    let mut backoff = CrashLoopBackOff::new();
    let mut t = 0;
    let mut delays = Vec::new();
    for _ in 0..7 {
        t += S;
        delays.push(backoff.next(t, t) / S);
    }
    assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    // Exactly 600 s after the last update is not yet "stable": keeps the cap.
    assert_eq!(backoff.next(t + 600 * S, t + 600 * S) / S, 300);
    // More than 600 s: reset to 10 s.
    let last = t + 600 * S;
    assert_eq!(backoff.next(last + 600 * S + 1, last + 600 * S + 1) / S, 10);
}

#[test]
fn crash_loop_backoff_on_sync() {
    let mut backoff = CrashLoopBackOff::new();
    // First exit: restart at once, delay becomes 10 s.
    assert_eq!(backoff.on_sync_after_exit(100 * S, 100 * S), None);
    assert_eq!(backoff.backoff_ns(), Some(10 * S));
    // Second exit at 105 s: wait until 115 s.
    assert_eq!(backoff.on_sync_after_exit(105 * S, 106 * S), Some(115 * S));
    assert_eq!(backoff.on_sync_after_exit(105 * S, 115 * S), None);
    assert_eq!(backoff.backoff_ns(), Some(20 * S));
}

#[test]
fn hpa_tolerance_and_formula() {
    // (current replicas, ready pods, utilization, target, expected)
    let cases = [
        (10, 10, 109, 100, 10), // ratio 1.09: within tolerance
        (10, 10, 111, 100, 12), // 1.11: ceil(11.1)
        (10, 10, 110, 100, 10), // exactly 1.1: within (1.33+ isWithin)
        (10, 10, 90, 100, 10),  // exactly 0.9: within
        (10, 10, 89, 100, 9),   // ceil(8.9)
        (3, 3, 200, 100, 6),
        (4, 4, 0, 50, 0),
        (5, 4, 150, 100, 6), // uses ready pods: ceil(1.5 * 4)
    ];
    for (current, ready, utilization, target, expected) in cases {
        assert_eq!(
            replicas_for_utilization(current, ready, utilization, target).unwrap(),
            expected,
            "{utilization}/{target}"
        );
    }
    assert!(replicas_for_utilization(1, 1, 50, 0).is_err());
    assert_eq!(clamp_replicas(12, 2, 10), 10);
    assert_eq!(clamp_replicas(1, 2, 10), 2);
    assert_eq!(clamp_replicas(5, 8, 3), 3); // min above max: no panic
}

proptest! {
    /// The integer emulation equals upstream's float64 computation bit for bit.
    #[test]
    fn hpa_matches_float64(ready in 0i32..2000, utilization in 0i32..100_000, target in 1i32..1000) {
        let ratio = f64::from(utilization) / f64::from(target);
        // Upstream's `isWithin`: (1.0 - 0.1) <= ratio && ratio <= (1.0 + 0.1).
        let expected = if ((1.0 - 0.1)..=(1.0 + 0.1)).contains(&ratio) {
            7
        } else {
            (ratio * f64::from(ready)).ceil() as i32
        };
        prop_assert_eq!(replicas_for_utilization(7, ready, utilization, target).unwrap(), expected);
    }
}

#[test]
fn hpa_scale_down_stabilization() {
    let mut stabilizer = Stabilizer::default();
    // (time s, current, desired, expected)
    let steps = [
        (0, 5, 10, 10),  // scale up at once
        (60, 10, 6, 10), // the 10 of t=0 is within 300 s
        (120, 10, 4, 10),
        (300, 10, 4, 6), // t=0 is not after the cutoff (0): highest left is 6
        (361, 6, 4, 4),  // t=60 dropped too
        (400, 4, 9, 9),  // up: no window
    ];
    for (t, current, desired, expected) in steps {
        assert_eq!(stabilizer.stabilize(t * S, current, desired), expected, "t={t}");
    }
    assert!(stabilizer.records().len() <= 5, "old records are overwritten");
}

#[test]
fn pdb_numbers_table() {
    let pct = IntOrPercent::percent;
    let int = IntOrPercent::Int;
    // (spec, expected scale, matching pods, healthy, (expected, desired, allowed))
    let cases = [
        (PdbSpec { min_available: Some(pct(50)), max_unavailable: None }, 5, 5, 5, (5, 3, 2)),
        (PdbSpec { min_available: Some(int(2)), max_unavailable: None }, 10, 4, 4, (4, 2, 2)),
        (PdbSpec { min_available: None, max_unavailable: Some(pct(30)) }, 10, 10, 10, (10, 7, 3)),
        (PdbSpec { min_available: None, max_unavailable: Some(pct(25)) }, 3, 3, 3, (3, 2, 1)),
        (PdbSpec { min_available: None, max_unavailable: Some(int(1)) }, 3, 3, 2, (3, 2, 0)),
        (PdbSpec { min_available: None, max_unavailable: Some(int(5)) }, 3, 3, 3, (3, 0, 3)),
        (PdbSpec { min_available: Some(int(1)), max_unavailable: None }, 0, 0, 0, (0, 1, 0)),
        (PdbSpec { min_available: Some(pct(100)), max_unavailable: None }, 0, 0, 3, (0, 0, 0)),
        (PdbSpec { min_available: None, max_unavailable: None }, 3, 3, 3, (0, 0, 0)),
    ];
    for (spec, scale, pods, healthy, (expected, desired, allowed)) in cases {
        let numbers = pdb_numbers(&spec, scale, pods, healthy).unwrap();
        assert_eq!(
            numbers,
            PdbNumbers { expected_pods: expected, desired_healthy: desired, disruptions_allowed: allowed },
            "{spec:?}"
        );
    }
    let bad = PdbSpec { min_available: Some(IntOrPercent::String("half".into())), max_unavailable: None };
    assert!(pdb_numbers(&bad, 3, 3, 3).is_err());
}

#[test]
fn pdb_disrupted_pods_and_healthy_counts() {
    const S: u64 = 1_000_000_000;
    let pod = |name: &str, terminating: bool, ready: bool| PdbPod { name: name.into(), terminating, ready };
    let pods = [pod("a", false, true), pod("b", false, true), pod("c", true, true), pod("d", false, false)];
    // a evicted 10 s ago (kept), b evicted 130 s ago (expired), c terminating (dropped), x gone.
    let disrupted: std::collections::BTreeMap<String, u64> =
        [("a", 190 * S), ("b", 70 * S), ("c", 195 * S), ("x", 199 * S)]
            .iter()
            .map(|(n, t)| (n.to_string(), *t))
            .collect();
    let (kept, recheck) = build_disrupted_pod_map(&pods, &disrupted, 200 * S);
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(recheck, Some(190 * S + DELETION_TIMEOUT_NS));
    // Healthy: b (expired disruption, ready); not a (disrupted), c (terminating), d (not ready).
    assert_eq!(count_healthy_pods(&pods, &kept, 200 * S), 1);
    assert_eq!(count_healthy_pods(&pods, &Default::default(), 200 * S), 2);
}

#[test]
fn pdb_eviction_verdicts() {
    assert_eq!(check_and_decrement(2, 1, 3, 0), EvictionVerdict::BudgetNotProcessed);
    assert_eq!(check_and_decrement(1, 1, -1, 0), EvictionVerdict::NegativeAllowed);
    assert_eq!(check_and_decrement(1, 1, 1, MAX_DISRUPTED_POD_SIZE + 1), EvictionVerdict::TooManyDisrupted);
    assert_eq!(check_and_decrement(1, 1, 0, 0), EvictionVerdict::NoDisruptionAllowed);
    assert_eq!(check_and_decrement(1, 1, 2, 5), EvictionVerdict::Decrement { disruptions_allowed: 1 });
    use kubedst_core::rules::pod::PodPhase;
    assert!(can_ignore_pdb(PodPhase::Pending, false));
    assert!(can_ignore_pdb(PodPhase::Succeeded, false));
    assert!(can_ignore_pdb(PodPhase::Running, true));
    assert!(!can_ignore_pdb(PodPhase::Running, false));
    assert!(unready_pod_fits_budget(3, 3));
    assert!(!unready_pod_fits_budget(2, 3));
    assert!(!unready_pod_fits_budget(0, 0));
}
