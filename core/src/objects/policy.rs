//! PodDisruptionBudget (policy/v1) and HorizontalPodAutoscaler (autoscaling/v2).

use super::meta::{Condition, IntOrPercent, IntOrString, ObjectMeta};
use super::quantity::Millicores;
use super::selector::LabelSelector;
use super::validation::{validate_non_negative, FieldPath, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A PodDisruptionBudget: how many selected pods voluntary evictions may take down.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDisruptionBudget {
    /// Name and labels.
    pub metadata: ObjectMeta,
    /// The budget.
    pub spec: PodDisruptionBudgetSpec,
    /// What the disruption controller computed.
    pub status: PodDisruptionBudgetStatus,
}

/// The budget: exactly one of minAvailable and maxUnavailable.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDisruptionBudgetSpec {
    /// Pods that must stay available (count or percentage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods that may be unavailable (count or percentage, rounded up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// The pods it covers; an empty selector covers every pod of the namespace in policy/v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What the disruption controller computed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDisruptionBudgetStatus {
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Evictions allowed now; the Eviction API answers 429 at 0.
    pub disruptions_allowed: i32,
    /// Healthy covered pods.
    pub current_healthy: i32,
    /// Healthy pods required.
    pub desired_healthy: i32,
    /// Pods the owners want.
    pub expected_pods: i32,
    /// Pods the Eviction API has evicted that the controller has not yet seen deleted, by name,
    /// with the (virtual, ns) time of the eviction; they do not count as healthy meanwhile.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub disrupted_pods: BTreeMap<String, u64>,
    /// DisruptionAllowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn validate_budget_value(value: &IntOrString, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    match value.int_or_percent() {
        Ok(IntOrPercent::Int(count)) => validate_non_negative(i64::from(count), path, errors),
        Ok(IntOrPercent::Percent(percent)) if percent > 100 => {
            errors.push(ValidationError::invalid(path, format!("\"{percent}%\": must not be greater than 100%")));
        }
        Ok(IntOrPercent::Percent(_)) => {}
        Err(detail) => errors.push(ValidationError::invalid(path, detail)),
    }
}

impl PodDisruptionBudget {
    /// PodDisruptionBudgets have no defaults.
    pub fn apply_defaults(&mut self) {}

    /// Validates that exactly one of minAvailable and maxUnavailable is a count or percentage.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let spec_path = FieldPath::root().key("spec");
        match (&self.spec.min_available, &self.spec.max_unavailable) {
            (Some(_), Some(_)) => {
                errors.push(ValidationError::invalid(&spec_path, "minAvailable and maxUnavailable cannot be both set"))
            }
            (None, None) => {
                errors.push(ValidationError::required(&spec_path, "one of minAvailable or maxUnavailable is required"))
            }
            _ => {}
        }
        if let Some(value) = &self.spec.min_available {
            validate_budget_value(value, &spec_path.key("minAvailable"), errors);
        }
        if let Some(value) = &self.spec.max_unavailable {
            validate_budget_value(value, &spec_path.key("maxUnavailable"), errors);
        }
        if let Some(selector) = &self.spec.selector {
            selector.validate(&spec_path.key("selector"), errors);
        }
    }
}

/// A HorizontalPodAutoscaler (autoscaling/v2): scales a workload on CPU utilization.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HorizontalPodAutoscaler {
    /// Name and labels.
    pub metadata: ObjectMeta,
    /// Target, bounds, metrics, behaviour.
    pub spec: HorizontalPodAutoscalerSpec,
    /// What the autoscaler last did.
    pub status: HorizontalPodAutoscalerStatus,
}

/// The desired behaviour of an autoscaler.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HorizontalPodAutoscalerSpec {
    /// The workload it scales.
    pub scale_target_ref: CrossVersionObjectReference,
    /// Lower bound; defaults to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// Upper bound.
    pub max_replicas: i32,
    /// What it measures; only Resource metrics are simulated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Stabilization windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// The workload an autoscaler scales.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CrossVersionObjectReference {
    /// apiVersion of the target, such as apps/v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the target, such as Deployment.
    pub kind: String,
    /// Name of the target.
    pub name: String,
}

/// The source kinds of an autoscaler metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum MetricSourceType {
    /// A resource of the pods, such as CPU (the only one simulated).
    #[default]
    Resource,
    /// A resource of one container.
    ContainerResource,
    /// A per-pod custom metric.
    Pods,
    /// A metric of another object.
    Object,
    /// A metric from outside the cluster.
    External,
}

/// One metric an autoscaler measures.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricSpec {
    /// The metric's source.
    #[serde(rename = "type")]
    pub metric_type: MetricSourceType,
    /// The resource, for type Resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
}

/// A resource metric, such as CPU at 70% average utilization.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceMetricSource {
    /// cpu or memory.
    pub name: String,
    /// The target value.
    pub target: MetricTarget,
}

/// The target of a metric.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricTarget {
    /// Utilization or AverageValue (Value is not allowed for Resource metrics).
    #[serde(rename = "type")]
    pub target_type: String,
    /// Percent of the pods' requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
    /// Average use per pod, as a CPU quantity (`500m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Millicores>,
}

/// Scaling behaviour: how cautiously to scale in each direction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HorizontalPodAutoscalerBehavior {
    /// Scaling up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<HpaScalingRules>,
    /// Scaling down; the window defaults to 300 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<HpaScalingRules>,
}

/// Scaling rules for one direction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HpaScalingRules {
    /// The autoscaler uses the most cautious recommendation of this window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    /// Max (default), Min or Disabled: which policy's limit applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<String>,
    /// How fast the replicas may change; defaulted per direction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<HpaScalingPolicy>,
}

/// One rate limit: at most `value` pods (type Pods) or percent (type Percent) per period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HpaScalingPolicy {
    /// Pods or Percent.
    #[serde(rename = "type")]
    pub policy_type: String,
    /// The amount of change allowed.
    pub value: i32,
    /// The period the change is counted over, 1 to 1800 s.
    pub period_seconds: i32,
}

impl HpaScalingPolicy {
    pub fn new(policy_type: &str, value: i32, period_seconds: i32) -> HpaScalingPolicy {
        HpaScalingPolicy { policy_type: policy_type.to_string(), value, period_seconds }
    }
}

/// A metric's current value in the status.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricStatus {
    /// Resource.
    #[serde(rename = "type")]
    pub metric_type: MetricSourceType,
    /// The resource's current value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricStatus>,
}

/// The current value of a resource metric.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceMetricStatus {
    /// cpu.
    pub name: String,
    /// The current value.
    pub current: MetricValueStatus,
}

/// A current metric value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricValueStatus {
    /// Percent of the requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
    /// Average use per pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Millicores>,
}

/// What the autoscaler last did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HorizontalPodAutoscalerStatus {
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas the target had.
    pub current_replicas: i32,
    /// Replicas it asked for.
    pub desired_replicas: i32,
    /// Virtual time of its last scaling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scale_time_ns: Option<u64>,
    /// The metrics' last values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub current_metrics: Vec<MetricStatus>,
    /// AbleToScale, ScalingActive, ScalingLimited.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl HorizontalPodAutoscaler {
    /// Applies autoscaling/v2 defaults (`SetDefaults_HorizontalPodAutoscaler`,
    /// `GenerateHPAScaleUpRules`, `GenerateHPAScaleDownRules`): minReplicas 1; with no metrics, CPU
    /// at 80% utilization; scale up with no window, at most +100% or +4 pods per 15 s (the larger);
    /// scale down with a 300 s window, at most -100% per 15 s; selectPolicy Max.
    pub fn apply_defaults(&mut self) {
        self.spec.min_replicas.get_or_insert(1);
        if self.spec.metrics.is_empty() {
            self.spec.metrics.push(MetricSpec {
                metric_type: MetricSourceType::Resource,
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        target_type: "Utilization".to_string(),
                        average_utilization: Some(80),
                        average_value: None,
                    },
                }),
            });
        }
        let behavior = self.spec.behavior.get_or_insert_with(Default::default);
        let down = behavior.scale_down.get_or_insert_with(Default::default);
        down.stabilization_window_seconds.get_or_insert(300);
        down.select_policy.get_or_insert_with(|| "Max".to_string());
        if down.policies.is_empty() {
            down.policies.push(HpaScalingPolicy::new("Percent", 100, 15));
        }
        let up = behavior.scale_up.get_or_insert_with(Default::default);
        up.stabilization_window_seconds.get_or_insert(0);
        up.select_policy.get_or_insert_with(|| "Max".to_string());
        if up.policies.is_empty() {
            up.policies.push(HpaScalingPolicy::new("Percent", 100, 15));
            up.policies.push(HpaScalingPolicy::new("Pods", 4, 15));
        }
    }

    /// Validates the bounds, the target and the metrics.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let spec_path = FieldPath::root().key("spec");
        let spec = &self.spec;
        if spec.scale_target_ref.kind.is_empty() {
            errors.push(ValidationError::required(
                &spec_path.key("scaleTargetRef").key("kind"),
                "the kind of the workload to scale",
            ));
        }
        if spec.scale_target_ref.name.is_empty() {
            errors.push(ValidationError::required(
                &spec_path.key("scaleTargetRef").key("name"),
                "the name of the workload to scale",
            ));
        }
        let min_replicas = spec.min_replicas.unwrap_or(1);
        if min_replicas < 1 {
            errors.push(ValidationError::invalid(
                &spec_path.key("minReplicas"),
                format!("{min_replicas}: must be greater than or equal to 1"),
            ));
        }
        if spec.max_replicas < min_replicas.max(1) {
            errors.push(ValidationError::invalid(
                &spec_path.key("maxReplicas"),
                format!(
                    "{}: must be greater than or equal to minReplicas ({min_replicas}) and at least 1",
                    spec.max_replicas
                ),
            ));
        }
        for (index, metric) in spec.metrics.iter().enumerate() {
            let metric_path = spec_path.key("metrics").index(index);
            if metric.metric_type == MetricSourceType::Resource {
                match &metric.resource {
                    None => errors.push(ValidationError::required(
                        &metric_path.key("resource"),
                        "must populate resource when type is Resource",
                    )),
                    Some(resource) => {
                        let target_path = metric_path.key("resource").key("target");
                        if let Some(utilization) = resource.target.average_utilization.filter(|u| *u < 1) {
                            errors.push(ValidationError::invalid(
                                &target_path.key("averageUtilization"),
                                format!("{utilization}: must be greater than 0"),
                            ));
                        }
                        match resource.target.target_type.as_str() {
                            "Utilization" if resource.target.average_utilization.is_none() => {
                                errors.push(ValidationError::required(
                                    &target_path.key("averageUtilization"),
                                    "must populate averageUtilization when type is Utilization",
                                ))
                            }
                            "AverageValue" if resource.target.average_value.is_none_or(|v| v.0 == 0) => {
                                errors.push(ValidationError::required(
                                    &target_path.key("averageValue"),
                                    "must populate a positive averageValue when type is AverageValue",
                                ))
                            }
                            "Utilization" | "AverageValue" => {}
                            other => errors.push(ValidationError::invalid(
                                &target_path.key("type"),
                                format!("{other:?}: must be Utilization or AverageValue for a Resource metric"),
                            )),
                        }
                    }
                }
            }
        }
        if let Some(behavior) = &spec.behavior {
            for (field, rules) in [("scaleUp", &behavior.scale_up), ("scaleDown", &behavior.scale_down)] {
                let rules_path = spec_path.key("behavior").key(field);
                if let Some(window) = rules.as_ref().and_then(|r| r.stabilization_window_seconds) {
                    if !(0..=3600).contains(&window) {
                        errors.push(ValidationError::invalid(
                            &rules_path.key("stabilizationWindowSeconds"),
                            format!("{window}: must be between 0 and 3600"),
                        ));
                    }
                }
                let Some(rules) = rules else { continue };
                if let Some(select) = rules.select_policy.as_deref().filter(|s| !["Max", "Min", "Disabled"].contains(s))
                {
                    errors.push(ValidationError::invalid(
                        &rules_path.key("selectPolicy"),
                        format!("{select:?}: must be Max, Min or Disabled"),
                    ));
                }
                for (index, policy) in rules.policies.iter().enumerate() {
                    let policy_path = rules_path.key("policies").index(index);
                    if policy.policy_type != "Pods" && policy.policy_type != "Percent" {
                        errors.push(ValidationError::invalid(
                            &policy_path.key("type"),
                            format!("{:?}: must be Pods or Percent", policy.policy_type),
                        ));
                    }
                    if policy.value <= 0 {
                        errors.push(ValidationError::invalid(
                            &policy_path.key("value"),
                            format!("{}: must be greater than zero", policy.value),
                        ));
                    }
                    if !(1..=1800).contains(&policy.period_seconds) {
                        errors.push(ValidationError::invalid(
                            &policy_path.key("periodSeconds"),
                            format!("{}: must be between 1 and 1800", policy.period_seconds),
                        ));
                    }
                }
            }
        }
    }
}
