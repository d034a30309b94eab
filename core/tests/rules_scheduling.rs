//! Scheduler filters, reasons, summary, scores, taints and tolerations.

use std::collections::BTreeMap;

use kubedst_core::rules::scheduling::*;

fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
    Taint { key: key.to_string(), value: value.to_string(), effect }
}

fn tol(
    key: &str,
    operator: TolerationOperator,
    value: &str,
    effect: Option<TaintEffect>,
    seconds: Option<i64>,
) -> Toleration {
    Toleration { key: key.to_string(), operator, value: value.to_string(), effect, toleration_seconds: seconds }
}

fn node(name: &str, cpu_millis: i64, memory_bytes: i64) -> NodeFitInfo {
    NodeFitInfo {
        name: name.to_string(),
        allocatable: Resources { cpu_millis, memory_bytes },
        allocatable_pods: 110,
        ..NodeFitInfo::default()
    }
}

fn pod(cpu_millis: i64, memory_bytes: i64) -> PodFitInfo {
    PodFitInfo { requests: Resources { cpu_millis, memory_bytes }, ..PodFitInfo::default() }
}

#[test]
fn toleration_matching_table() {
    use TaintEffect::*;
    use TolerationOperator::*;
    let t = taint("k", "v", NoSchedule);
    let cases = [
        (tol("k", Equal, "v", Some(NoSchedule), None), true),
        (tol("k", Equal, "other", Some(NoSchedule), None), false),
        (tol("k", Exists, "", Some(NoSchedule), None), true),
        (tol("k", Exists, "", None, None), true),
        (tol("", Exists, "", None, None), true), // tolerates everything
        (tol("", Exists, "", Some(NoExecute), None), false),
        (tol("other", Exists, "", None, None), false),
        (tol("k", Equal, "v", Some(PreferNoSchedule), None), false),
        (tol("k", Equal, "v", None, None), true),
    ];
    for (toleration, expected) in cases {
        assert_eq!(toleration_tolerates_taint(&toleration, &t), expected, "{toleration:?}");
    }
}

#[test]
fn filter_reasons_match_scheduler_messages() {
    let mut small = node("small", 1000, 1 << 30);
    small.add_pod(&pod(800, 0));
    assert_eq!(filter_node(&pod(500, 0), &small), vec!["Insufficient cpu"]);
    assert_eq!(filter_node(&pod(500, 2 << 30), &small), vec!["Insufficient cpu", "Insufficient memory"]);
    // A pod without requests fits even on a full node.
    assert!(filter_node(&pod(0, 0), &small).is_empty());

    let mut full = node("full", 1000, 1 << 30);
    full.allocatable_pods = 1;
    full.add_pod(&pod(0, 0));
    assert_eq!(filter_node(&pod(0, 0), &full), vec!["Too many pods"]);

    let mut labeled = node("labeled", 1000, 1 << 30);
    labeled.labels.insert("disk".to_string(), "ssd".to_string());
    let mut selective = pod(100, 0);
    selective.node_selector = BTreeMap::from([("disk".to_string(), "hdd".to_string())]);
    assert_eq!(filter_node(&selective, &labeled), vec!["node(s) didn't match Pod's node affinity/selector"]);
    selective.node_selector = BTreeMap::from([("disk".to_string(), "ssd".to_string())]);
    assert!(filter_node(&selective, &labeled).is_empty());

    let mut tainted = node("tainted", 1000, 1 << 30);
    tainted.taints =
        vec![taint("soft", "x", TaintEffect::PreferNoSchedule), taint("dedicated", "gpu", TaintEffect::NoSchedule)];
    assert_eq!(filter_node(&pod(100, 0), &tainted), vec!["node(s) had untolerated taint {dedicated: gpu}"]);

    let mut not_ready = node("not-ready", 1000, 1 << 30);
    not_ready.taints = vec![taint(TAINT_NODE_NOT_READY, "", TaintEffect::NoExecute)];
    assert_eq!(
        filter_node(&pod(100, 0), &not_ready),
        vec!["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    );
    let mut tolerant = pod(100, 0);
    tolerant.tolerations =
        vec![tol(TAINT_NODE_NOT_READY, TolerationOperator::Exists, "", Some(TaintEffect::NoExecute), Some(300))];
    assert!(filter_node(&tolerant, &not_ready).is_empty());

    let mut cordoned = node("cordoned", 1000, 1 << 30);
    cordoned.unschedulable = true;
    assert_eq!(filter_node(&pod(100, 0), &cordoned), vec!["node(s) were unschedulable"]);
    let mut daemon = pod(100, 0);
    daemon.tolerations =
        vec![tol(TAINT_NODE_UNSCHEDULABLE, TolerationOperator::Exists, "", Some(TaintEffect::NoSchedule), None)];
    assert!(filter_node(&daemon, &cordoned).is_empty());

    // The first failing plugin wins: a cordoned, full node reports only unschedulable.
    cordoned.add_pod(&pod(1000, 0));
    assert_eq!(filter_node(&pod(100, 0), &cordoned), vec!["node(s) were unschedulable"]);
}

#[test]
fn unschedulable_summary_format() {
    let reasons = vec![
        vec!["Insufficient cpu".to_string()],
        vec!["node(s) were unschedulable".to_string()],
        vec!["Insufficient cpu".to_string()],
    ];
    assert_eq!(
        summarize_unschedulable(3, &reasons),
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    );
    // Sorted as strings, as Go's sort.Strings does: "10 ..." before "2 ...".
    let mut many = vec![vec!["Insufficient memory".to_string()]; 10];
    many.push(vec!["Insufficient cpu".to_string(), "Insufficient memory".to_string()]);
    many.push(vec!["Insufficient cpu".to_string()]);
    assert_eq!(
        summarize_unschedulable(12, &many),
        "0/12 nodes are available: 11 Insufficient memory, 2 Insufficient cpu."
    );
    assert_eq!(summarize_unschedulable(0, &[]), "0/0 nodes are available.");
}

#[test]
fn least_allocated_scores() {
    assert_eq!(least_requested_score(0, 1000), 100);
    assert_eq!(least_requested_score(250, 1000), 75);
    assert_eq!(least_requested_score(333, 1000), 66);
    assert_eq!(least_requested_score(1001, 1000), 0);
    assert_eq!(least_requested_score(0, 0), 0);
    // Upstream's example: node 4000m / 10000 bytes; pod 3000m / 5000: cpu 25, memory 50 -> 37.
    let n = node("n", 4000, 10_000);
    assert_eq!(least_allocated_score(&pod(3000, 5000), &n), 37);
    // A pod without requests counts as 100m and 200 MiB.
    let big = node("big", 1000, 1 << 30);
    assert_eq!(least_allocated_score(&pod(0, 0), &big), (90 + 80) / 2);
}

#[test]
fn spread_scores_prefer_emptier_nodes() {
    assert_eq!(spread_scores(&[0, 1, 2, 4]), vec![100, 75, 50, 0]);
    assert_eq!(spread_scores(&[0, 0]), vec![100, 100]);
    assert_eq!(spread_scores(&[3, 1]), vec![0, 66]);
    assert_eq!(
        count_intolerable_prefer_no_schedule(
            &[taint("a", "", TaintEffect::PreferNoSchedule), taint("b", "", TaintEffect::NoSchedule)],
            &[]
        ),
        1
    );
}

/// (tolerations, node taints, min toleration seconds, verdict)
type NoExecuteCase = (Vec<Toleration>, Vec<Taint>, Option<i64>, NoExecuteVerdict);

#[test]
fn no_execute_toleration_time() {
    use TaintEffect::*;
    use TolerationOperator::*;
    let unreachable = taint(TAINT_NODE_UNREACHABLE, "", NoExecute);
    let not_ready = taint(TAINT_NODE_NOT_READY, "", NoExecute);
    let default_tolerations = vec![
        tol(TAINT_NODE_NOT_READY, Exists, "", Some(NoExecute), Some(300)),
        tol(TAINT_NODE_UNREACHABLE, Exists, "", Some(NoExecute), Some(300)),
    ];
    let cases: Vec<NoExecuteCase> = vec![
        (default_tolerations.clone(), vec![], None, NoExecuteVerdict::Stay),
        (default_tolerations.clone(), vec![taint("x", "", NoSchedule)], None, NoExecuteVerdict::Stay),
        (default_tolerations.clone(), vec![unreachable.clone()], Some(300), NoExecuteVerdict::EvictAfterSeconds(300)),
        (vec![], vec![unreachable.clone()], Some(0), NoExecuteVerdict::EvictNow),
        (
            default_tolerations.clone(),
            vec![unreachable.clone(), taint("other", "", NoExecute)],
            Some(0),
            NoExecuteVerdict::EvictNow,
        ),
        (
            vec![tol(TAINT_NODE_NOT_READY, Exists, "", None, Some(60)), tol("", Exists, "", None, None)],
            vec![unreachable.clone(), not_ready.clone()],
            Some(60),
            NoExecuteVerdict::EvictAfterSeconds(60),
        ),
        (vec![tol("", Exists, "", None, None)], vec![unreachable.clone()], None, NoExecuteVerdict::Stay),
        (
            vec![tol(TAINT_NODE_UNREACHABLE, Exists, "", None, Some(-5))],
            vec![unreachable.clone()],
            Some(0),
            NoExecuteVerdict::EvictNow,
        ),
        // Only the first matching toleration of a taint counts: the forever one listed first wins.
        (
            vec![tol("", Exists, "", None, None), tol(TAINT_NODE_UNREACHABLE, Exists, "", None, Some(10))],
            vec![unreachable.clone()],
            None,
            NoExecuteVerdict::Stay,
        ),
    ];
    for (tolerations, taints, seconds, verdict) in cases {
        assert_eq!(min_toleration_seconds(&tolerations, &taints), seconds, "{tolerations:?} {taints:?}");
        assert_eq!(no_execute_verdict(&tolerations, &taints), verdict, "{tolerations:?} {taints:?}");
    }
}
