//! Deployment rules pinned to upstream behaviour (cases from `deployment_util_test.go`,
//! `sync_test.go` `TestScale`, `rolling_test.go`, and hand-worked rollouts).

use kubedst_core::rules::deployment::*;
use kubedst_core::rules::RulesError;

fn pct(v: i32) -> IntOrPercent {
    IntOrPercent::percent(v)
}

fn int(v: i32) -> IntOrPercent {
    IntOrPercent::Int(v)
}

fn rolling(surge: IntOrPercent, unavailable: IntOrPercent) -> DeploymentStrategy {
    DeploymentStrategy::RollingUpdate { max_surge: surge, max_unavailable: unavailable }
}

fn rs(name: &str, created_ns: u64, spec: i32, available: i32) -> RsInfo {
    RsInfo {
        name: name.to_string(),
        created_ns,
        spec_replicas: spec,
        available_replicas: available,
        desired_replicas_annotation: None,
        max_replicas_annotation: None,
    }
}

#[test]
fn resolve_fenceposts_table() {
    let cases: &[(IntOrPercent, IntOrPercent, i32, (i32, i32))] = &[
        (pct(25), pct(25), 10, (3, 2)),
        (int(0), int(0), 10, (0, 1)),
        (pct(30), int(0), 3, (1, 0)),
        (int(0), pct(30), 3, (0, 1)),
        (pct(0), pct(0), 10, (0, 1)),
        (pct(25), pct(25), 1, (1, 0)),
        (pct(25), pct(25), 4, (1, 1)),
        (pct(100), pct(100), 1, (1, 1)),
        (int(1), int(5), 3, (1, 5)),
        // The raw function knows nothing of replicas 0: percentages give (0, 0), hence (0, 1).
        (pct(25), pct(25), 0, (0, 1)),
    ];
    for (surge, unavailable, replicas, expected) in cases {
        assert_eq!(
            resolve_fenceposts(surge, unavailable, *replicas).unwrap(),
            *expected,
            "surge {surge:?} unavailable {unavailable:?} replicas {replicas}"
        );
    }
}

#[test]
fn resolve_fenceposts_rejects_bad_strings() {
    for bad in ["abc", "25", "%", "2.5%", ""] {
        let err = resolve_fenceposts(&IntOrPercent::String(bad.to_string()), &int(1), 10).unwrap_err();
        assert!(matches!(err, RulesError::InvalidIntOrPercent { .. }), "{bad}");
    }
}

#[test]
fn max_unavailable_caps_and_zero_replicas() {
    let cases: &[(DeploymentStrategy, i32, i32)] = &[
        (rolling(int(1), int(5)), 3, 3),
        (rolling(pct(25), pct(25)), 0, 0),
        (rolling(int(0), int(0)), 10, 1),
        (DeploymentStrategy::Recreate, 10, 0),
        (rolling(pct(25), pct(25)), 10, 2),
    ];
    for (strategy, replicas, expected) in cases {
        assert_eq!(max_unavailable(strategy, *replicas).unwrap(), *expected, "{strategy:?} {replicas}");
    }
    assert_eq!(max_surge(&rolling(pct(25), pct(25)), 10).unwrap(), 3);
    assert_eq!(max_surge(&DeploymentStrategy::Recreate, 10).unwrap(), 0);
}

#[test]
fn new_rs_new_replicas_table() {
    // (replicas, maxSurge, new spec, other specs, expected): NewRSNewReplicas cases.
    let cases: &[(i32, IntOrPercent, i32, &[i32], i32)] = &[
        (10, int(3), 0, &[10], 3),
        (10, int(3), 3, &[10], 3),
        (10, int(3), 3, &[5], 8),
        (10, int(3), 8, &[0], 10),
        (1, pct(25), 0, &[1], 1),
        (10, int(0), 0, &[10], 0),
        (10, int(20), 0, &[10], 10),
    ];
    for (replicas, surge, new_spec, others, expected) in cases {
        let mut rss = vec![rs("new", 10, *new_spec, 0)];
        rss.extend(others.iter().enumerate().map(|(i, &s)| rs(&format!("old{i}"), i as u64, s, s)));
        let strategy = rolling(surge.clone(), int(0));
        assert_eq!(
            new_rs_new_replicas(*replicas, &strategy, &rss, 0).unwrap(),
            *expected,
            "{surge:?} {new_spec} {others:?}"
        );
    }
    let rss = vec![rs("new", 1, 0, 0), rs("old", 0, 5, 5)];
    assert_eq!(new_rs_new_replicas(5, &DeploymentStrategy::Recreate, &rss, 0).unwrap(), 5);
    assert!(new_rs_new_replicas(5, &DeploymentStrategy::Recreate, &rss, 7).is_err());
}

/// One rollout sync as `rolloutRolling` does it: scale the new ReplicaSet up and stop if it
/// changed; otherwise scale old ones down.
fn sync(replicas: i32, strategy: &DeploymentStrategy, rss: &mut [RsInfo], new_index: usize) -> bool {
    if let Some(d) = reconcile_new_replica_set(replicas, strategy, rss, new_index).unwrap() {
        rss[d.index].spec_replicas = d.replicas;
        return true;
    }
    let decisions = reconcile_old_replica_sets(replicas, strategy, rss, new_index).unwrap();
    for d in &decisions {
        rss[d.index].spec_replicas = d.replicas;
    }
    !decisions.is_empty()
}

/// Runs syncs to quiescence; `new_pods_become_available` says whether new pods turn available
/// between syncs (old pods always are). Returns (old spec, new spec) after every changing sync.
fn rollout(replicas: i32, strategy: &DeploymentStrategy, new_pods_become_available: bool) -> Vec<(i32, i32)> {
    let mut rss = vec![rs("old", 0, replicas, replicas), rs("new", 1, 0, 0)];
    let mut steps = Vec::new();
    for _ in 0..100 {
        if !sync(replicas, strategy, &mut rss, 1) {
            break;
        }
        rss[0].available_replicas = rss[0].spec_replicas;
        if new_pods_become_available {
            rss[1].available_replicas = rss[1].spec_replicas;
        }
        steps.push((rss[0].spec_replicas, rss[1].spec_replicas));
    }
    steps
}

#[test]
fn rolling_update_10_replicas_25_25_all_available() {
    let steps = rollout(10, &rolling(pct(25), pct(25)), true);
    assert_eq!(steps, vec![(10, 3), (5, 3), (5, 8), (0, 8), (0, 10)]);
}

#[test]
fn rolling_update_10_replicas_25_25_none_available_stalls_at_min_available() {
    let steps = rollout(10, &rolling(pct(25), pct(25)), false);
    assert_eq!(steps, vec![(10, 3), (8, 3), (8, 5)]);
}

#[test]
fn rolling_update_max_surge_zero_max_unavailable_one() {
    let steps = rollout(3, &rolling(int(0), int(1)), true);
    assert_eq!(steps, vec![(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]);
}

#[test]
fn cleanup_unhealthy_replicas_goes_oldest_first() {
    // Deployment 10, 25%/25% (surge 3, unavailable 2): two old sets with unavailable pods.
    let strategy = rolling(pct(25), pct(25));
    let rss = vec![rs("new", 30, 3, 3), rs("older", 10, 5, 3), rs("old", 20, 5, 4)];
    // allPods 13, minAvailable 8, new unavailable 0: maxScaledDown 5.
    // Cleanup: "older" by min(5, 2) = 2 -> 3; "old" by min(3, 1) = 1 -> 4.
    // Scale-down: available 3 + 3 + 4 = 10, 10 - 8 = 2: "older" 3 -> 1.
    let decisions = reconcile_old_replica_sets(10, &strategy, &rss, 0).unwrap();
    assert_eq!(
        decisions,
        vec![
            ScaleDecision { index: 1, replicas: 3 },
            ScaleDecision { index: 2, replicas: 4 },
            ScaleDecision { index: 1, replicas: 1 },
        ]
    );
}

#[test]
fn reconcile_old_does_nothing_when_new_pods_are_unavailable() {
    let strategy = rolling(pct(25), pct(25));
    let rss = vec![rs("new", 30, 5, 0), rs("old", 10, 8, 8)];
    assert!(reconcile_old_replica_sets(10, &strategy, &rss, 0).unwrap().is_empty());
}

struct ScaleCase {
    name: &'static str,
    replicas: i32,
    old_replicas: i32,
    strategy: DeploymentStrategy,
    old_strategy: DeploymentStrategy,
    /// (name, created, spec), the new one first if present.
    new_rs: Option<(&'static str, u64, i32)>,
    old_rss: Vec<(&'static str, u64, i32)>,
    /// Expected spec by name, in the order of `new_rs` then `old_rss`.
    expected: Vec<i32>,
}

fn surge_only(surge: i32) -> DeploymentStrategy {
    rolling(int(surge), int(0))
}

/// Cases of upstream's `TestScale` (`sync_test.go`), where each ReplicaSet's annotations come
/// from the old Deployment (desired = its replicas, max = replicas + maxSurge).
#[test]
fn proportional_scaling_upstream_cases() {
    let (older, old, new) = (1, 2, 3);
    let cases = vec![
        ScaleCase {
            name: "normal scaling event: 10 -> 12",
            replicas: 12,
            old_replicas: 10,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v1", new, 10)),
            old_rss: vec![],
            expected: vec![12],
        },
        ScaleCase {
            name: "proportional scaling: 5 -> 10",
            replicas: 10,
            old_replicas: 5,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v2", new, 2)),
            old_rss: vec![("foo-v1", old, 3)],
            expected: vec![4, 6],
        },
        ScaleCase {
            name: "proportional scaling: 5 -> 3",
            replicas: 3,
            old_replicas: 5,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v2", new, 2)),
            old_rss: vec![("foo-v1", old, 3)],
            expected: vec![1, 2],
        },
        ScaleCase {
            name: "proportional scaling: 9 -> 4",
            replicas: 4,
            old_replicas: 9,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v2", new, 8)),
            old_rss: vec![("foo-v1", old, 1)],
            expected: vec![4, 0],
        },
        ScaleCase {
            name: "proportional scaling: 7 -> 10",
            replicas: 10,
            old_replicas: 7,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v3", new, 2)),
            old_rss: vec![("foo-v2", old, 3), ("foo-v1", older, 2)],
            expected: vec![3, 4, 3],
        },
        ScaleCase {
            name: "proportional scaling: 13 -> 8",
            replicas: 8,
            old_replicas: 13,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v3", new, 2)),
            old_rss: vec![("foo-v2", old, 8), ("foo-v1", older, 3)],
            expected: vec![1, 5, 2],
        },
        ScaleCase {
            name: "leftover distribution: 3 -> 4",
            replicas: 4,
            old_replicas: 3,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v3", new, 1)),
            old_rss: vec![("foo-v2", old, 1), ("foo-v1", older, 1)],
            expected: vec![2, 1, 1],
        },
        ScaleCase {
            name: "leftover distribution: 3 -> 2",
            replicas: 2,
            old_replicas: 3,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v3", new, 1)),
            old_rss: vec![("foo-v2", old, 1), ("foo-v1", older, 1)],
            expected: vec![1, 1, 0],
        },
        ScaleCase {
            name: "proportional scaling (no new rs): 4 -> 5",
            replicas: 5,
            old_replicas: 4,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: None,
            old_rss: vec![("foo-v2", old, 2), ("foo-v1", older, 2)],
            expected: vec![3, 2],
        },
        ScaleCase {
            name: "proportional scaling: 6 -> 0",
            replicas: 0,
            old_replicas: 6,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v3", new, 3)),
            old_rss: vec![("foo-v2", old, 2), ("foo-v1", older, 1)],
            expected: vec![0, 0, 0],
        },
        ScaleCase {
            name: "proportional scaling: 0 -> 6",
            replicas: 6,
            old_replicas: 0,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: Some(("foo-v3", new, 0)),
            old_rss: vec![("foo-v2", old, 0), ("foo-v1", older, 0)],
            expected: vec![6, 0, 0],
        },
        ScaleCase {
            name: "deployment with surge pods",
            replicas: 20,
            old_replicas: 10,
            strategy: surge_only(2),
            old_strategy: surge_only(2),
            new_rs: Some(("foo-v2", new, 6)),
            old_rss: vec![("foo-v1", old, 6)],
            expected: vec![11, 11],
        },
        ScaleCase {
            name: "change both surge and size",
            replicas: 50,
            old_replicas: 10,
            strategy: surge_only(6),
            old_strategy: surge_only(3),
            new_rs: Some(("foo-v2", new, 5)),
            old_rss: vec![("foo-v1", old, 8)],
            expected: vec![22, 34],
        },
        ScaleCase {
            name: "change both size and template",
            replicas: 12,
            old_replicas: 10,
            strategy: surge_only(0),
            old_strategy: surge_only(0),
            new_rs: None,
            old_rss: vec![("foo-v2", new, 7), ("foo-v1", old, 3)],
            expected: vec![8, 4],
        },
    ];
    for case in cases {
        let old_max = case.old_replicas + max_surge(&case.old_strategy, case.old_replicas).unwrap();
        let mut rss: Vec<RsInfo> = Vec::new();
        for &(name, created, spec) in case.new_rs.iter().chain(case.old_rss.iter()) {
            let mut info = rs(name, created, spec, spec);
            info.desired_replicas_annotation = Some(case.old_replicas);
            info.max_replicas_annotation = Some(old_max);
            rss.push(info);
        }
        let new_index = case.new_rs.map(|_| 0);
        let decisions = proportional_scale(case.replicas, &case.strategy, case.old_replicas, &rss, new_index).unwrap();
        let mut sizes: Vec<i32> = rss.iter().map(|r| r.spec_replicas).collect();
        for d in decisions {
            sizes[d.index] = d.replicas;
        }
        assert_eq!(sizes, case.expected, "{}", case.name);
    }
}

#[test]
fn saturated_but_broken_new_replica_set_does_not_affect_old_pods() {
    let strategy = rolling(int(1), int(1));
    let mut new_rs = rs("foo-v2", 3, 2, 0);
    new_rs.desired_replicas_annotation = Some(2);
    new_rs.max_replicas_annotation = Some(3);
    let mut old_rs = rs("foo-v1", 2, 1, 1);
    old_rs.desired_replicas_annotation = Some(2);
    old_rs.max_replicas_annotation = Some(3);
    let rss = vec![new_rs, old_rs];
    let decisions = proportional_scale(2, &strategy, 2, &rss, Some(0)).unwrap();
    assert!(decisions.iter().all(|d| d.replicas == rss[d.index].spec_replicas), "{decisions:?}");
}

#[test]
fn saturated_new_replica_set_scales_old_ones_to_zero() {
    let strategy = rolling(int(1), int(1));
    let mut new_rs = rs("foo-v2", 3, 5, 5);
    new_rs.desired_replicas_annotation = Some(5);
    let rss = vec![new_rs, rs("foo-v1", 2, 1, 1), rs("foo-v0", 1, 0, 0)];
    assert_eq!(
        proportional_scale(5, &strategy, 6, &rss, Some(0)).unwrap(),
        vec![ScaleDecision { index: 1, replicas: 0 }]
    );
}

#[test]
fn replica_set_fraction_falls_back_to_status_replicas() {
    let strategy = surge_only(0);
    let info = rs("a", 0, 3, 3);
    // No annotation: before = status.replicas (6); round(3 * 12 / 6) - 3 = 3.
    assert_eq!(replica_set_fraction(&info, 12, &strategy, 6).unwrap(), 3);
    // Nothing to divide by: 0 rather than upstream's division by zero.
    assert_eq!(replica_set_fraction(&info, 12, &strategy, 0).unwrap(), 0);
    // Scaling to zero: the whole size.
    assert_eq!(replica_set_fraction(&info, 0, &strategy, 6).unwrap(), -3);
    // Rounds half away from zero: 1 * 3 / 2 = 1.5 -> 2.
    assert_eq!(replica_set_fraction(&rs("b", 0, 1, 1), 3, &strategy, 2).unwrap(), 1);
}

fn counts(replicas: i32, updated: i32, ready: i32, available: i32, observed: i64) -> DeploymentStatusCounts {
    DeploymentStatusCounts {
        replicas,
        updated_replicas: updated,
        ready_replicas: ready,
        available_replicas: available,
        observed_generation: observed,
    }
}

#[test]
fn deployment_complete_table() {
    let cases = [
        (counts(5, 5, 5, 5, 1), 1, true),
        (counts(5, 5, 5, 4, 1), 1, false),
        (counts(6, 5, 5, 5, 1), 1, false),
        (counts(5, 4, 5, 5, 1), 1, false),
        (counts(5, 5, 5, 5, 1), 2, false),
        (counts(5, 5, 5, 5, 3), 2, true),
    ];
    for (status, generation, expected) in cases {
        assert_eq!(deployment_complete(5, generation, &status), expected, "{status:?} gen {generation}");
    }
}

#[test]
fn deployment_progressing_table() {
    let old = counts(10, 3, 8, 8, 1);
    let cases = [
        (counts(10, 4, 8, 8, 1), true),  // more updated
        (counts(9, 3, 8, 8, 1), true),   // fewer old replicas
        (counts(10, 3, 9, 8, 1), true),  // more ready
        (counts(10, 3, 8, 9, 1), true),  // more available
        (counts(10, 3, 8, 8, 1), false), // no change
        (counts(11, 3, 7, 7, 1), false), // more old replicas, fewer ready
    ];
    for (new_status, expected) in cases {
        assert_eq!(deployment_progressing(&old, &new_status), expected, "{new_status:?}");
    }
}

#[test]
fn deployment_timed_out_table() {
    let s = 1_000_000_000u64;
    let cond = |reason: &str, at: u64| ProgressingCondition { reason: reason.to_string(), last_update_ns: at };
    let updated = cond("ReplicaSetUpdated", 100 * s);
    let cases: Vec<(Option<i32>, Option<ProgressingCondition>, u64, bool)> = vec![
        (Some(600), Some(updated.clone()), 700 * s, false), // exactly at the deadline: not yet
        (Some(600), Some(updated.clone()), 700 * s + 1, true),
        (Some(600), Some(updated.clone()), 300 * s, false),
        (None, Some(updated.clone()), 10_000 * s, false),
        (Some(i32::MAX), Some(updated.clone()), 10_000 * s, false),
        (Some(600), None, 10_000 * s, false),
        (Some(600), Some(cond(NEW_RS_AVAILABLE_REASON, 0)), 10_000 * s, false),
        (Some(600), Some(cond(TIMED_OUT_REASON, 9_999 * s)), 10_000 * s, true),
    ];
    for (deadline, condition, now, expected) in cases {
        assert_eq!(
            deployment_timed_out(deadline, condition.as_ref(), now),
            expected,
            "{deadline:?} {condition:?} {now}"
        );
    }
}

#[test]
fn revisions() {
    assert_eq!(max_revision([Some("1"), Some("3"), None, Some("x"), Some("2")]), 3);
    assert_eq!(max_revision([None, Some("")]), 0);
    assert_eq!(next_revision(3).unwrap(), 4);
    assert!(next_revision(i64::MAX).is_err());
    assert_eq!(parse_revision(Some("+7")).unwrap(), 7);
    assert!(parse_revision(None).is_err());
}

#[test]
fn fnv32a_and_pod_template_hash() {
    // Reference vectors of FNV-1a 32.
    assert_eq!(fnv32a(b""), 0x811c_9dc5);
    assert_eq!(fnv32a(b"a"), 0xe40c_292c);
    assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    // 2166136261 rendered digit by digit through the safe alphabet.
    assert_eq!(pod_template_hash(b"", None), "65bb57b6b5");
    let hash = pod_template_hash(b"template", None);
    assert!(hash.chars().all(|c| "456789bcdf".contains(c)), "{hash}");
    assert_ne!(pod_template_hash(b"template", Some(1)), hash);
    assert_eq!(pod_template_hash(b"template", Some(1)), pod_template_hash(b"template", Some(1)));
}

#[test]
fn extreme_inputs_return_errors_not_panics() {
    let huge = IntOrPercent::String(format!("{}%", i64::MIN));
    assert!(resolve_fenceposts(&huge, &int(0), i32::MAX).is_err());
    let strategy = rolling(int(i32::MAX), int(0));
    let rss = vec![rs("new", 1, i32::MAX, 0), rs("old", 0, i32::MAX, i32::MAX)];
    let _ = new_rs_new_replicas(i32::MAX, &strategy, &rss, 0);
    let _ = reconcile_old_replica_sets(i32::MAX, &strategy, &rss, 0);
    let _ = proportional_scale(i32::MAX, &strategy, 1, &rss, Some(0));
    let _ = proportional_scale(i32::MIN, &strategy, -1, &rss, None);
    let mut odd = rs("odd", 0, i32::MIN, i32::MAX);
    odd.max_replicas_annotation = Some(-1);
    let _ = replica_set_fraction(&odd, i32::MAX, &strategy, i32::MIN);
}
