//! Pod availability and deletion ranking pinned to upstream (`IsPodAvailable`,
//! `ActivePodsWithRanks.Less`).

use kubedst_core::rules::pod::*;

const S: u64 = 1_000_000_000;

#[test]
fn is_pod_available_table() {
    // (ready, ready_since, min_ready_seconds, now, expected)
    let cases: &[(bool, Option<u64>, i32, u64, bool)] = &[
        (false, Some(0), 0, 100 * S, false),
        (true, None, 0, 100 * S, true),
        (true, Some(90 * S), 0, 90 * S, true),
        (true, None, 5, 100 * S, false),
        (true, Some(95 * S), 5, 100 * S, true), // ready for exactly minReadySeconds
        (true, Some(95 * S + 1), 5, 100 * S, false),
        (true, Some(10 * S), 5, 100 * S, true),
        (false, Some(10 * S), 5, 100 * S, false),
    ];
    for &(ready, since, min_ready, now, expected) in cases {
        assert_eq!(is_pod_available(ready, since, min_ready, now), expected, "{ready} {since:?} {min_ready} {now}");
    }
    assert_eq!(pod_available_at_ns(true, Some(95 * S), 5), Some(100 * S));
    assert_eq!(pod_available_at_ns(true, None, 5), None);
}

#[test]
fn deletion_cost_parsing() {
    let cases = [
        (None, 0),
        (Some("10"), 10),
        (Some("-5"), -5),
        (Some("0"), 0),
        (Some("+10"), 0),
        (Some("008"), 0),
        (Some(""), 0),
        (Some("abc"), 0),
        (Some("2147483648"), 0),
        (Some("-2147483648"), i32::MIN),
    ];
    for (annotation, expected) in cases {
        assert_eq!(parse_pod_deletion_cost(annotation), expected, "{annotation:?}");
    }
}

#[test]
fn ranks_count_related_active_pods_per_node() {
    let ranks = ranks_by_related_pods_on_same_node(&["n1", "n2", "", "n3"], &["n1", "n1", "n2", "", "n1"]);
    assert_eq!(ranks, vec![3, 1, 1, 0]);
}

fn base(uid: &str) -> PodRankInfo {
    PodRankInfo {
        uid: uid.to_string(),
        name: format!("pod-{uid}"),
        node_name: "node-1".to_string(),
        phase: PodPhase::Running,
        ready: true,
        ready_since_ns: Some(100 * S),
        deletion_cost: 0,
        related_pods_on_node: 1,
        max_container_restarts: 0,
        max_sidecar_restarts: 0,
        created_ns: Some(50 * S),
    }
}

const NOW: u64 = 1_000 * S;

/// Each case: (name, pod that must go first, pod that must go second).
#[test]
fn deletion_ranking_pairwise() {
    let first_second: Vec<(&str, PodRankInfo, PodRankInfo)> = vec![
        ("unassigned before assigned", PodRankInfo { node_name: String::new(), ..base("b") }, base("a")),
        (
            "pending before unknown",
            PodRankInfo { phase: PodPhase::Pending, ..base("b") },
            PodRankInfo { phase: PodPhase::Unknown, ..base("a") },
        ),
        ("unknown before running", PodRankInfo { phase: PodPhase::Unknown, ..base("b") }, base("a")),
        ("not ready before ready", PodRankInfo { ready: false, ..base("b") }, base("a")),
        ("lower deletion cost first", PodRankInfo { deletion_cost: -1, ..base("b") }, base("a")),
        (
            "deletion cost beats doubled-up",
            PodRankInfo { deletion_cost: 1, related_pods_on_node: 5, ..base("b") },
            PodRankInfo { deletion_cost: 2, ..base("a") },
        ),
        ("more related pods on the node first", PodRankInfo { related_pods_on_node: 3, ..base("b") }, base("a")),
        (
            "ready for less time first (other log2 bucket)",
            PodRankInfo { ready_since_ns: Some(NOW - S), ..base("b") },
            PodRankInfo { ready_since_ns: Some(NOW - 3 * S / 2), ..base("a") },
        ),
        ("zero ready time first", PodRankInfo { ready_since_ns: None, ..base("b") }, base("a")),
        ("more restarts first", PodRankInfo { max_container_restarts: 3, ..base("b") }, base("a")),
        ("sidecar restarts break a restart tie", PodRankInfo { max_sidecar_restarts: 1, ..base("b") }, base("a")),
        (
            "newer first (other log2 bucket)",
            PodRankInfo { created_ns: Some(NOW - S), ..base("b") },
            PodRankInfo { created_ns: Some(NOW - 3 * S), ..base("a") },
        ),
        ("zero creation time first", PodRankInfo { created_ns: None, ..base("b") }, base("a")),
        // Same log2 bucket of ready time (1.1 s and 1.5 s both floor to 2^30 ns): upstream decides by
        // uid and returns, so the restarts of "b" do not count.
        (
            "same ready bucket: uid decides, restarts ignored",
            PodRankInfo { ready_since_ns: Some(NOW - 11 * S / 10), ..base("a") },
            PodRankInfo { ready_since_ns: Some(NOW - 3 * S / 2), max_container_restarts: 9, ..base("b") },
        ),
        // 4 s and 3 s both floor to 2^31 ns: the older "a" goes first by uid.
        (
            "same creation bucket: uid decides",
            PodRankInfo { created_ns: Some(NOW - 4 * S), ..base("a") },
            PodRankInfo { created_ns: Some(NOW - 3 * S), ..base("b") },
        ),
    ];
    for (name, first, second) in first_second {
        assert!(deletion_less(&first, &second, NOW), "{name}: first should go first");
        assert!(!deletion_less(&second, &first, NOW), "{name}: second should not go first");
        let order = rank_pods_for_deletion(&[second.clone(), first.clone()], NOW);
        assert_eq!(order, vec![1, 0], "{name}");
    }
}

#[test]
fn ready_time_only_compared_when_both_ready() {
    let a = PodRankInfo { ready: false, ready_since_ns: None, ..base("a") };
    let b = PodRankInfo { ready: false, ready_since_ns: Some(NOW - S), ..base("b") };
    // Not both ready: falls through to restarts and creation; equal, so neither goes first.
    assert!(!deletion_less(&a, &b, NOW) && !deletion_less(&b, &a, NOW));
    // Our ranking then breaks the tie by uid.
    assert_eq!(rank_pods_for_deletion(&[b, a], NOW), vec![1, 0]);
}

#[test]
fn full_ranking_example() {
    let pods = vec![
        base("ready-old"), // 0
        PodRankInfo { node_name: String::new(), phase: PodPhase::Pending, ready: false, ..base("unassigned") }, // 1
        PodRankInfo { ready: false, ..base("not-ready") }, // 2
        PodRankInfo { related_pods_on_node: 2, ..base("doubled") }, // 3
        PodRankInfo { phase: PodPhase::Pending, ready: false, ..base("pending") }, // 4
        PodRankInfo { deletion_cost: 100, ..base("precious") }, // 5
    ];
    assert_eq!(rank_pods_for_deletion(&pods, NOW), vec![1, 4, 2, 3, 0, 5]);
}

#[test]
fn ranking_is_deterministic_and_total_on_cycles() {
    // A cycle through the uid shortcut: a < c (uid, same bucket), c < b (uid), b < a (restarts).
    let a = PodRankInfo { uid: "a".into(), ready_since_ns: Some(NOW - 3 * S / 2), ..base("a") };
    let b =
        PodRankInfo { uid: "c".into(), ready_since_ns: Some(NOW - 3 * S / 2), max_container_restarts: 1, ..base("c") };
    let c = PodRankInfo { uid: "b".into(), ready_since_ns: Some(NOW - 11 * S / 10), ..base("b") };
    let pods = vec![a, b, c];
    let first = rank_pods_for_deletion(&pods, NOW);
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2]);
    let reversed: Vec<PodRankInfo> = pods.iter().rev().cloned().collect();
    let second: Vec<usize> = rank_pods_for_deletion(&reversed, NOW).into_iter().map(|i| 2 - i).collect();
    assert_eq!(first, second, "order must not depend on input order");
}
