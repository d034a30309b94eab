//! The horizontal pod autoscaler (`pkg/controller/podautoscaler/horizontal.go`,
//! `reconcileAutoscaler`), for autoscaling/v2 HPAs whose target is a Deployment and whose metrics
//! are Resource cpu (averageUtilization or averageValue).
//!
//! Every HPA is synced every [`SYNC_PERIOD`] (15 s, `--horizontal-pod-autoscaler-sync-period`),
//! the first time 15 s after it appears: upstream's queue adds every key with a fixed 15 s delay
//! and drops a key that is already waiting, so events do not sync an HPA sooner. A sync takes two
//! reconciles here, because reads are data too: the first asks the API server for the
//! namespace's PodMetrics (metrics.k8s.io, proxied to metrics-server); when the answer (or its
//! failure) is in, the second computes the desired replicas from it and the informer cache (the
//! pods, the Deployment) and writes the Deployment's `spec.replicas` (upstream writes the scale
//! subresource, which changes the same field) and then the HPA's status.
//!
//! The arithmetic is in [`crate::rules::hpa`]: the replica calculator with unready and missing
//! pods, the stabilization windows, the rate policies and the min/max clamps.

use crate::api::{ApiError, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::metrics::PodMetrics;
use crate::objects::meta::ConditionStatus;
use crate::objects::pod::PodPhase;
use crate::objects::policy::{
    HorizontalPodAutoscalerStatus, HpaScalingRules, MetricSourceType, MetricStatus, MetricValueStatus,
    ResourceMetricStatus,
};
use crate::objects::{HorizontalPodAutoscaler, Kind, Millicores, Object, Pod};
use crate::rules::hpa::{
    limit_by_rate, record_scale_event, resource_replicas, HpaPod, MetricSample, ResourceTarget, ScaleEvent,
    ScalingPolicy, ScalingRules, SelectPolicy, Stabilizer,
};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// `--horizontal-pod-autoscaler-sync-period`.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
const SYNC_PERIOD_NS: u64 = 15_000_000_000;
/// How soon to look again after asking for metrics; the host re-runs the key as soon as the
/// answer is in anyway (a key with a call in flight is marked dirty, not dropped).
const METRICS_POLL: Duration = Duration::from_millis(1);

/// The metrics query of one sync.
#[derive(Clone, Debug, Default)]
enum Fetch {
    #[default]
    Idle,
    InFlight,
    Done(Result<Rc<Vec<PodMetrics>>, ApiError>),
}

/// What the controller remembers of one HPA (upstream keeps the same maps in memory: lost when
/// the controller manager restarts).
#[derive(Clone, Debug)]
struct HpaState {
    uid: Option<String>,
    next_sync_ns: u64,
    fetch: Fetch,
    stabilizer: Option<Stabilizer>,
    up_events: Vec<ScaleEvent>,
    down_events: Vec<ScaleEvent>,
    /// The direction of the last rescale written, until its result is in: a failed write is not
    /// a scale event (upstream records the event only after the scale update succeeds).
    rescale_in_flight: Option<bool>,
}

/// The HPA controller.
#[derive(Debug, Default)]
pub struct HorizontalPodAutoscalerController {
    hpas: BTreeMap<ObjectKey, HpaState>,
    /// Counters for tests and reports.
    pub syncs: u64,
    pub rescales: u64,
    pub metric_failures: u64,
}

impl HorizontalPodAutoscalerController {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The rules of one direction from the (defaulted) spec.
fn scaling_rules(rules: Option<&HpaScalingRules>, default: ScalingRules) -> ScalingRules {
    let Some(rules) = rules else { return default };
    let select = match rules.select_policy.as_deref() {
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        _ => SelectPolicy::Max,
    };
    let policies: Vec<ScalingPolicy> = rules
        .policies
        .iter()
        .map(|policy| match policy.policy_type.as_str() {
            "Pods" => ScalingPolicy::Pods { value: policy.value, period_seconds: policy.period_seconds },
            _ => ScalingPolicy::Percent { value: policy.value, period_seconds: policy.period_seconds },
        })
        .collect();
    if policies.is_empty() {
        ScalingRules { select, policies: default.policies }
    } else {
        ScalingRules { select, policies }
    }
}

fn window_ns(rules: Option<&HpaScalingRules>, default_seconds: u64) -> u64 {
    rules
        .and_then(|rules| rules.stabilization_window_seconds)
        .map_or(default_seconds, |seconds| u64::from(seconds.max(0).unsigned_abs()))
        * 1_000_000_000
}

/// The pod as the replica calculator sees it.
fn hpa_pod(pod: &Pod) -> HpaPod {
    let phase = pod.status.phase.unwrap_or_default();
    let ready = pod
        .status
        .ready_condition()
        .map(|condition| (condition.status == ConditionStatus::True, condition.last_transition_time_ns.unwrap_or(0)));
    let cpu_request_millis = pod
        .spec
        .containers
        .iter()
        .map(|container| container.resources.requests.cpu.map(|cpu| cpu.0 as i64))
        .sum::<Option<i64>>();
    HpaPod {
        name: pod.metadata.name.clone(),
        deleted_or_failed: pod.metadata.is_terminating() || phase == PodPhase::Failed,
        pending: phase == PodPhase::Pending,
        ready,
        start_time_ns: pod.status.start_time_ns,
        cpu_request_millis,
    }
}

fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    condition_type: &str,
    value: ConditionStatus,
    reason: &str,
    message: String,
    now_ns: u64,
) {
    crate::apiserver::set_condition(&mut status.conditions, condition_type, value, now_ns);
    if let Some(condition) = status.conditions.iter_mut().find(|c| c.condition_type == condition_type) {
        condition.reason = Some(reason.to_string());
        condition.message = Some(message);
    }
}

impl HorizontalPodAutoscalerController {
    /// `reconcileAutoscaler` with the metrics in hand.
    fn sync(
        &mut self,
        key: &ObjectKey,
        hpa: &HorizontalPodAutoscaler,
        metrics: Result<Rc<Vec<PodMetrics>>, ApiError>,
        cache: &Cache,
        now_ns: u64,
    ) -> Vec<ApiRequest> {
        self.syncs += 1;
        let mut writes = Vec::new();
        let mut status = hpa.status.clone();
        status.observed_generation = hpa.metadata.generation;
        let spec = &hpa.spec;
        let target_ref = &spec.scale_target_ref;
        let deployment = match cache.get_by(Kind::Deployment, &key.namespace, &target_ref.name).map(|o| &**o) {
            Some(Object::Deployment(deployment)) if target_ref.kind == "Deployment" => deployment,
            _ => {
                let message = format!(
                    "the HPA controller was unable to get the target's current scale: {} {} not found",
                    target_ref.kind, target_ref.name
                );
                set_condition(&mut status, "AbleToScale", ConditionStatus::False, "FailedGetScale", message, now_ns);
                return vec![status_write(hpa, status)];
            }
        };
        let current = deployment.spec.replicas.unwrap_or(1);
        let min_replicas = spec.min_replicas.unwrap_or(1);
        let max_replicas = spec.max_replicas;
        status.current_replicas = deployment.status.replicas;
        set_condition(
            &mut status,
            "AbleToScale",
            ConditionStatus::True,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
            now_ns,
        );
        let state = self.hpas.get_mut(key).expect("reconcile created the state");
        let behavior = spec.behavior.as_ref();
        let up_rules = scaling_rules(behavior.and_then(|b| b.scale_up.as_ref()), ScalingRules::default_scale_up());
        let down_rules =
            scaling_rules(behavior.and_then(|b| b.scale_down.as_ref()), ScalingRules::default_scale_down());
        let up_window_ns = window_ns(behavior.and_then(|b| b.scale_up.as_ref()), 0);
        let down_window_ns = window_ns(behavior.and_then(|b| b.scale_down.as_ref()), 300);

        let desired: i32;
        let mut limited = None;
        if current == 0 && min_replicas != 0 {
            desired = 0;
            set_condition(
                &mut status,
                "ScalingActive",
                ConditionStatus::False,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
                now_ns,
            );
        } else if current > max_replicas {
            desired = max_replicas;
        } else if current < min_replicas {
            desired = min_replicas;
        } else {
            // computeReplicasForMetrics: the largest proposal of the valid metrics.
            let pods: Vec<&Pod> = cache
                .list(Kind::Pod, Some(&key.namespace))
                .into_iter()
                .filter_map(|object| match &**object {
                    Object::Pod(pod) if deployment.spec.selector.matches(&pod.metadata.labels) => Some(pod),
                    _ => None,
                })
                .collect();
            let mut proposal: Option<i32> = None;
            let mut failure: Option<String> = None;
            let mut current_metrics = Vec::new();
            for metric in &spec.metrics {
                let outcome = (|| -> Result<(i32, MetricStatus), String> {
                    let resource = match (metric.metric_type, &metric.resource) {
                        (MetricSourceType::Resource, Some(resource)) if resource.name == "cpu" => resource,
                        _ => return Err("only Resource cpu metrics are simulated".to_string()),
                    };
                    let target = match (resource.target.average_utilization, resource.target.average_value) {
                        (Some(utilization), _) if resource.target.target_type != "AverageValue" => {
                            ResourceTarget::Utilization(utilization)
                        }
                        (_, Some(value)) => ResourceTarget::AverageValueMillis(value.0 as i64),
                        _ => return Err("invalid metric target".to_string()),
                    };
                    let metrics = metrics.as_ref().map_err(|error| {
                        format!("unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: {error}")
                    })?;
                    let by_name: BTreeMap<&str, &PodMetrics> = metrics.iter().map(|m| (m.name.as_str(), m)).collect();
                    let samples: Vec<(HpaPod, Option<MetricSample>)> = pods
                        .iter()
                        .map(|pod| {
                            let sample = by_name.get(pod.metadata.name.as_str()).map(|m| MetricSample {
                                value_millis: m.cpu_millicores as i64,
                                timestamp_ns: m.timestamp_ns,
                                window_ns: m.window_ns,
                            });
                            (hpa_pod(pod), sample)
                        })
                        .collect();
                    let recommendation =
                        resource_replicas(current, target, &samples, now_ns).map_err(|error| error.to_string())?;
                    let value = MetricValueStatus {
                        average_utilization: recommendation.utilization,
                        average_value: Some(Millicores(recommendation.average_value_millis.max(0) as u64)),
                    };
                    let status = MetricStatus {
                        metric_type: MetricSourceType::Resource,
                        resource: Some(ResourceMetricStatus { name: "cpu".into(), current: value }),
                    };
                    Ok((recommendation.replicas, status))
                })();
                match outcome {
                    Ok((replicas, metric_status)) => {
                        proposal = Some(proposal.map_or(replicas, |p| p.max(replicas)));
                        current_metrics.push(metric_status);
                    }
                    Err(message) => failure = Some(message),
                }
            }
            // Upstream: an error with no valid metric, or with a valid one proposing to scale
            // down, does not scale.
            match (proposal, failure) {
                (Some(proposal), failure) if failure.is_none() || proposal >= current => {
                    status.current_metrics = current_metrics;
                    set_condition(
                        &mut status,
                        "ScalingActive",
                        ConditionStatus::True,
                        "ValidMetricFound",
                        "the HPA was able to successfully calculate a replica count from cpu resource".into(),
                        now_ns,
                    );
                    // normalizeDesiredReplicasWithBehaviors.
                    let stabilizer = state.stabilizer.get_or_insert_with(|| {
                        let mut stabilizer = Stabilizer::new(up_window_ns, down_window_ns);
                        // maybeInitScaleDownStabilizationWindow: a fresh controller does not
                        // scale down for one window.
                        if down_window_ns > 0 {
                            stabilizer.stabilize(now_ns, current, current);
                        }
                        stabilizer
                    });
                    stabilizer.scale_up_window_ns = up_window_ns;
                    stabilizer.scale_down_window_ns = down_window_ns;
                    let stabilized = stabilizer.stabilize(now_ns, current, proposal);
                    let (bounded, reason) = limit_by_rate(
                        current,
                        stabilized,
                        min_replicas,
                        max_replicas,
                        &state.up_events,
                        &state.down_events,
                        &up_rules,
                        &down_rules,
                        now_ns,
                    );
                    desired = bounded;
                    limited = reason;
                }
                (_, failure) => {
                    self.metric_failures += 1;
                    let message = failure.unwrap_or_else(|| "no metrics".to_string());
                    set_condition(
                        &mut status,
                        "ScalingActive",
                        ConditionStatus::False,
                        "FailedGetResourceMetric",
                        message,
                        now_ns,
                    );
                    status.desired_replicas = current;
                    return vec![status_write(hpa, status)];
                }
            }
        }
        match limited {
            Some(reason) => set_condition(
                &mut status,
                "ScalingLimited",
                ConditionStatus::True,
                reason,
                format!("the desired replica count is limited ({reason})"),
                now_ns,
            ),
            None => set_condition(
                &mut status,
                "ScalingLimited",
                ConditionStatus::False,
                "DesiredWithinRange",
                "the desired count is within the acceptable range".into(),
                now_ns,
            ),
        }
        if desired != current {
            self.rescales += 1;
            let mut scaled = deployment.clone();
            scaled.spec.replicas = Some(desired);
            writes.push(ApiRequest::Update { object: Rc::new(Object::Deployment(scaled)) });
            let event = ScaleEvent { time_ns: now_ns, change: (desired - current).abs() };
            state.rescale_in_flight = Some(desired > current);
            if desired > current {
                record_scale_event(&mut state.up_events, &up_rules, event);
            } else {
                record_scale_event(&mut state.down_events, &down_rules, event);
            }
            status.last_scale_time_ns = Some(now_ns);
            set_condition(
                &mut status,
                "AbleToScale",
                ConditionStatus::True,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
                now_ns,
            );
        }
        status.desired_replicas = desired;
        writes.push(status_write(hpa, status));
        writes
    }
}

fn status_write(hpa: &HorizontalPodAutoscaler, status: HorizontalPodAutoscalerStatus) -> ApiRequest {
    let mut updated = hpa.clone();
    updated.status = status;
    ApiRequest::UpdateStatus { object: Rc::new(Object::HorizontalPodAutoscaler(updated)) }
}

impl Reconciler for HorizontalPodAutoscalerController {
    fn name(&self) -> &'static str {
        "horizontal-pod-autoscaler"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::HorizontalPodAutoscaler, Kind::Deployment, Kind::Pod]
    }

    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        match event {
            CacheEvent::Added(object) | CacheEvent::Updated(_, object)
                if object.kind() == Kind::HorizontalPodAutoscaler =>
            {
                vec![ObjectKey::of(object)]
            }
            CacheEvent::Deleted(object) if object.kind() == Kind::HorizontalPodAutoscaler => {
                self.hpas.remove(&ObjectKey::of(object));
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let now_ns = ctx.now_ns;
        let Some(Object::HorizontalPodAutoscaler(hpa)) = cache.get(key).map(|object| &**object) else {
            self.hpas.remove(key);
            return Reconcile::done();
        };
        let uid = hpa.metadata.uid.clone();
        let state = self.hpas.entry(key.clone()).or_insert_with(|| HpaState {
            uid: uid.clone(),
            next_sync_ns: now_ns.saturating_add(SYNC_PERIOD_NS),
            fetch: Fetch::Idle,
            stabilizer: None,
            up_events: Vec::new(),
            down_events: Vec::new(),
            rescale_in_flight: None,
        });
        if state.uid != uid {
            // A new HPA with the same name: nothing carries over.
            *state = HpaState {
                uid,
                next_sync_ns: now_ns.saturating_add(SYNC_PERIOD_NS),
                fetch: Fetch::Idle,
                stabilizer: None,
                up_events: Vec::new(),
                down_events: Vec::new(),
                rescale_in_flight: None,
            };
        }
        if now_ns < state.next_sync_ns {
            return Reconcile::done().requeue_after(Duration::from_nanos(state.next_sync_ns - now_ns));
        }
        match std::mem::take(&mut state.fetch) {
            Fetch::Idle => {
                state.fetch = Fetch::InFlight;
                let request = ApiRequest::ListPodMetrics { namespace: key.namespace.clone() };
                Reconcile::write(request).requeue_after(METRICS_POLL)
            }
            Fetch::InFlight => {
                state.fetch = Fetch::InFlight;
                Reconcile::done().requeue_after(SYNC_PERIOD)
            }
            Fetch::Done(metrics) => {
                state.next_sync_ns = now_ns.saturating_add(SYNC_PERIOD_NS);
                let hpa = hpa.clone();
                let writes = self.sync(key, &hpa, metrics, cache, now_ns);
                Reconcile { writes, ..Reconcile::default() }.requeue_after(SYNC_PERIOD)
            }
        }
    }

    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        let Some(state) = self.hpas.get_mut(key) else { return };
        if let ApiRequest::Update { object } = request {
            if object.kind() == Kind::Deployment {
                if let (Some(up), Err(_)) = (state.rescale_in_flight, result) {
                    let events = if up { &mut state.up_events } else { &mut state.down_events };
                    events.pop();
                    self.rescales -= 1;
                }
                state.rescale_in_flight = None;
            }
            return;
        }
        if !matches!(request, ApiRequest::ListPodMetrics { .. }) {
            return;
        }
        state.fetch = Fetch::Done(match result {
            Ok(ApiOk::PodMetrics(metrics)) => Ok(metrics.clone()),
            Ok(_) => Err(ApiError::new(crate::api::ApiErrorReason::Invalid, "unexpected answer to a metrics query")),
            Err(error) => Err(error.clone()),
        });
    }
}
