//! The HPA's replica calculator and rate rules against upstream's cases
//! (`replica_calculator_test.go`, `horizontal_test.go` behaviours), computed by hand here.

use kubedst_core::rules::hpa::*;

const S: u64 = 1_000_000_000;
/// The controller's clock in these cases: long after the pods started (past the 5 min CPU
/// initialization period).
const NOW: u64 = 3_600 * S;

fn running(name: &str) -> HpaPod {
    HpaPod {
        name: name.into(),
        deleted_or_failed: false,
        pending: false,
        ready: Some((true, 60 * S)),
        start_time_ns: Some(50 * S),
        cpu_request_millis: Some(100),
    }
}

fn pending(name: &str) -> HpaPod {
    HpaPod { pending: true, ready: Some((false, 0)), ..running(name) }
}

fn sample(value_millis: i64) -> Option<MetricSample> {
    Some(MetricSample { value_millis, timestamp_ns: NOW - S, window_ns: 15 * S })
}

fn replicas(current: i32, target: ResourceTarget, pods: &[(HpaPod, Option<MetricSample>)]) -> i32 {
    resource_replicas(current, target, pods, NOW).unwrap().replicas
}

const FIFTY: ResourceTarget = ResourceTarget::Utilization(50);

#[test]
fn every_pod_ready_with_metrics_uses_the_plain_ratio() {
    let pods: Vec<_> = (0..4).map(|i| (running(&format!("p{i}")), sample(80))).collect();
    // 80% of requests against 50%: ceil(1.6 * 4).
    let recommendation = resource_replicas(4, FIFTY, &pods, NOW).unwrap();
    assert_eq!(recommendation, ResourceRecommendation { replicas: 7, utilization: Some(80), average_value_millis: 80 });
    // 54% is within the 10% tolerance of 50%.
    let pods: Vec<_> = (0..4).map(|i| (running(&format!("p{i}")), sample(54))).collect();
    assert_eq!(replicas(4, FIFTY, &pods), 4);
    // averageValue 100m with 150m per pod: ceil(1.5 * 3).
    let pods: Vec<_> = (0..3).map(|i| (running(&format!("p{i}")), sample(150))).collect();
    assert_eq!(replicas(3, ResourceTarget::AverageValueMillis(100), &pods), 5);
}

#[test]
fn missing_metrics_count_as_full_use_on_scale_down_and_none_on_scale_up() {
    // Scale-down: three pods at 10%, one without metrics taken at 100% of its request:
    // (30 + 100) / 400 = 32%, ceil(0.64 * 4) = 3 (the three alone would give ceil(0.2 * 3) = 1).
    let mut pods: Vec<_> = (0..3).map(|i| (running(&format!("p{i}")), sample(10))).collect();
    pods.push((running("new"), None));
    assert_eq!(replicas(4, FIFTY, &pods), 3);
    // A target above 100% uses the target for the missing pod: (30 + 150) / 400 = 45% of 150%.
    assert_eq!(replicas(4, ResourceTarget::Utilization(150), &pods), 2);
    // Scale-up: three pods at 100%, one without metrics at 0: 300 / 400 = 75%, ceil(1.5 * 4) = 6.
    let mut pods: Vec<_> = (0..3).map(|i| (running(&format!("p{i}")), sample(100))).collect();
    pods.push((running("new"), None));
    assert_eq!(replicas(4, FIFTY, &pods), 6);
    // AverageValue: a missing pod counts at the target on a scale-down.
    let mut pods: Vec<_> = (0..3).map(|i| (running(&format!("p{i}")), sample(20))).collect();
    pods.push((running("new"), None));
    // (60 + 100) / 4 = 40 of 100: ceil(0.4 * 4) = 2.
    assert_eq!(replicas(4, ResourceTarget::AverageValueMillis(100), &pods), 2);
}

#[test]
fn unready_pods_count_as_idle_on_scale_up_and_are_ignored_on_scale_down() {
    // Two ready pods at 60%, two pending: alone 1.2 * 2 = 3 (a scale-down from 4); with the pending
    // pods at 0 the ratio falls to 0.6, a change of direction, so the current 4 stays.
    let mut pods: Vec<_> = (0..2).map(|i| (running(&format!("p{i}")), sample(60))).collect();
    pods.push((pending("q0"), None));
    pods.push((pending("q1"), None));
    assert_eq!(replicas(4, FIFTY, &pods), 4);
    // Two ready pods at 200%, two pending: with them at 0, 400 / 400 = 100% of 50%: ceil(2 * 4) = 8.
    let mut pods: Vec<_> = (0..2).map(|i| (running(&format!("p{i}")), sample(200))).collect();
    pods.push((pending("q0"), None));
    pods.push((pending("q1"), None));
    assert_eq!(replicas(4, FIFTY, &pods), 8);
    // Scale-down ignores the pending pods: ceil(0.2 * 2) = 1.
    let mut pods: Vec<_> = (0..2).map(|i| (running(&format!("p{i}")), sample(10))).collect();
    pods.push((pending("q0"), None));
    assert_eq!(replicas(4, FIFTY, &pods), 1);
    // Deleted pods are ignored entirely.
    let mut pods: Vec<_> = (0..2).map(|i| (running(&format!("p{i}")), sample(100))).collect();
    pods.push((HpaPod { deleted_or_failed: true, ..running("gone") }, sample(0)));
    assert_eq!(replicas(2, FIFTY, &pods), 4);
}

#[test]
fn group_pods_follows_the_cpu_initialization_rules() {
    let metric = MetricSample { value_millis: 50, timestamp_ns: 100 * S, window_ns: 15 * S };
    let started = |ready: Option<(bool, u64)>| HpaPod { ready, start_time_ns: Some(0), ..running("p") };
    // Within the 5 min initialization period: ready, but the window began before it became ready.
    assert_eq!(group_pod(&started(Some((true, 90 * S))), Some(&metric), 100 * S), PodGroup::Unready);
    // Ready long enough for a whole window.
    assert_eq!(group_pod(&started(Some((true, 80 * S))), Some(&metric), 100 * S), PodGroup::Ready);
    // Not ready within the period.
    assert_eq!(group_pod(&started(Some((false, 80 * S))), Some(&metric), 100 * S), PodGroup::Unready);
    // After the period: unready and never ready (its transition within 30 s of start) is unready;
    // unready after having been ready counts.
    assert_eq!(group_pod(&started(Some((false, 10 * S))), Some(&metric), 400 * S), PodGroup::Unready);
    assert_eq!(group_pod(&started(Some((false, 200 * S))), Some(&metric), 400 * S), PodGroup::Ready);
    // No Ready condition or no start time: unready. No metric: missing. Pending first.
    assert_eq!(group_pod(&started(None), Some(&metric), 400 * S), PodGroup::Unready);
    assert_eq!(group_pod(&started(Some((true, 0))), None, 400 * S), PodGroup::Missing);
    assert_eq!(group_pod(&pending("q"), None, 400 * S), PodGroup::Unready);
}

#[test]
fn bad_inputs_are_errors() {
    let pods = vec![(HpaPod { cpu_request_millis: None, ..running("p") }, sample(10))];
    let error = resource_replicas(1, FIFTY, &pods, NOW).unwrap_err();
    assert!(error.to_string().contains("missing request for cpu"), "{error}");
    // AverageValue does not need requests.
    assert_eq!(replicas(1, ResourceTarget::AverageValueMillis(10), &pods), 1);
    assert!(resource_replicas(1, FIFTY, &[], NOW).unwrap_err().to_string().contains("no pods"));
    let unready = vec![(pending("q"), None)];
    assert!(resource_replicas(1, FIFTY, &unready, NOW).unwrap_err().to_string().contains("did not receive metrics"));
    assert!(resource_replicas(1, ResourceTarget::Utilization(0), &pods, NOW).is_err());
}

#[test]
fn default_scale_up_is_double_or_four_pods_per_fifteen_seconds() {
    let up = ScalingRules::default_scale_up();
    let down = ScalingRules::default_scale_down();
    assert_eq!(scale_up_limit(2, &[], &[], &up, NOW), 6); // +4 beats x2
    assert_eq!(scale_up_limit(10, &[], &[], &up, NOW), 20); // x2 beats +4
                                                            // A +4 within the last 15 s counts against the period: it started at 2.
    let recent = [ScaleEvent { time_ns: NOW - 10 * S, change: 4 }];
    assert_eq!(scale_up_limit(6, &recent, &[], &up, NOW), 6);
    // Exactly 15 s ago is outside the period (strictly after the cutoff counts).
    let old = [ScaleEvent { time_ns: NOW - 15 * S, change: 4 }];
    assert_eq!(scale_up_limit(6, &old, &[], &up, NOW), 12);
    // Scale-down may remove everything at once by default.
    assert_eq!(scale_down_limit(9, &[], &[], &down, NOW), 0);
    let one_per_minute = ScalingRules {
        select: SelectPolicy::Max,
        policies: vec![ScalingPolicy::Pods { value: 1, period_seconds: 60 }],
    };
    assert_eq!(scale_down_limit(9, &[], &[], &one_per_minute, NOW), 8);
    let removed = [ScaleEvent { time_ns: NOW - 30 * S, change: 1 }];
    assert_eq!(scale_down_limit(8, &[], &removed, &one_per_minute, NOW), 8);
    // Min picks the smallest change; Disabled allows none.
    let min = ScalingRules { select: SelectPolicy::Min, ..up.clone() };
    assert_eq!(scale_up_limit(2, &[], &[], &min, NOW), 4);
    let disabled = ScalingRules { select: SelectPolicy::Disabled, ..up.clone() };
    assert_eq!(scale_up_limit(2, &[], &[], &disabled, NOW), 2);
    // Percent rounds up on the way up and truncates on the way down.
    let half = ScalingRules {
        select: SelectPolicy::Max,
        policies: vec![ScalingPolicy::Percent { value: 50, period_seconds: 15 }],
    };
    assert_eq!(scale_up_limit(3, &[], &[], &half, NOW), 5); // ceil(4.5)
    assert_eq!(scale_down_limit(3, &[], &[], &half, NOW), 1); // int(1.5)
}

#[test]
fn rate_and_bounds_limit_the_stabilized_recommendation() {
    let (up, down) = (ScalingRules::default_scale_up(), ScalingRules::default_scale_down());
    assert_eq!(limit_by_rate(2, 20, 2, 10, &[], &[], &up, &down, NOW), (6, Some("ScaleUpLimit")));
    assert_eq!(limit_by_rate(8, 20, 2, 10, &[], &[], &up, &down, NOW), (10, Some("TooManyReplicas")));
    assert_eq!(limit_by_rate(8, 1, 2, 10, &[], &[], &up, &down, NOW), (2, Some("TooFewReplicas")));
    assert_eq!(limit_by_rate(8, 5, 2, 10, &[], &[], &up, &down, NOW), (5, None));
    assert_eq!(limit_by_rate(5, 5, 2, 10, &[], &[], &up, &down, NOW), (5, None));
    // Old events are dropped once outside the longest period.
    let mut events = vec![ScaleEvent { time_ns: 0, change: 3 }];
    record_scale_event(&mut events, &up, ScaleEvent { time_ns: 20 * S, change: 1 });
    assert_eq!(events, vec![ScaleEvent { time_ns: 20 * S, change: 1 }]);
}
