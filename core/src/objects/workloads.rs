//! Workloads: Deployment and ReplicaSet (apps/v1) and Job (batch/v1).

use super::meta::{Condition, IntOrPercent, IntOrString, ObjectMeta};
use super::pod::{PodTemplateSpec, RestartPolicy};
use super::selector::LabelSelector;
use super::validation::{validate_non_negative, FieldPath, ValidationError};
use serde::{Deserialize, Serialize};

/// A Deployment: declarative rollouts over ReplicaSets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Deployment {
    /// Name, labels, revision annotations.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: DeploymentSpec,
    /// What the Deployment controller observed.
    pub status: DeploymentStatus,
}

/// The desired state of a Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentSpec {
    /// Desired pods; defaults to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Must match the template's labels; immutable in apps/v1.
    pub selector: LabelSelector,
    /// The pods to run.
    pub template: PodTemplateSpec,
    /// How old pods are replaced; defaults to RollingUpdate 25%/25%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// A pod counts as available only after being Ready this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Old ReplicaSets kept for rollback; defaults to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// A rollout without progress for this long is reported as failed; defaults to 600.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// A paused Deployment does not roll out template changes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// RollingUpdate or Recreate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum DeploymentStrategyType {
    /// Replace pods gradually within maxSurge and maxUnavailable.
    #[default]
    RollingUpdate,
    /// Delete all old pods before creating new ones.
    Recreate,
}

/// How a Deployment replaces pods.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentStrategy {
    /// The strategy type.
    #[serde(rename = "type")]
    pub strategy_type: DeploymentStrategyType,
    /// Bounds of a rolling update; only with type RollingUpdate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// The bounds of a rolling update, each a count or a percentage of replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdateDeployment {
    /// Pods allowed above replicas (percentages round up); defaults to 25%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods allowed below replicas (percentages round down); defaults to 25%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// What the Deployment controller observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentStatus {
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of all its ReplicaSets.
    pub replicas: i32,
    /// Pods of the current template.
    pub updated_replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// Pods ready for at least minReadySeconds.
    pub available_replicas: i32,
    /// Pods still needed for full availability.
    pub unavailable_replicas: i32,
    /// Available and Progressing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A ReplicaSet: keeps a number of pods matching its selector running.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSet {
    /// Name, owner (usually a Deployment), annotations.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: ReplicaSetSpec,
    /// What the ReplicaSet controller observed.
    pub status: ReplicaSetStatus,
}

/// The desired state of a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSetSpec {
    /// Desired pods; defaults to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Must match the template's labels.
    pub selector: LabelSelector,
    /// The pods to run.
    pub template: PodTemplateSpec,
    /// A pod counts as available only after being Ready this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
}

/// What the ReplicaSet controller observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSetStatus {
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods it owns.
    pub replicas: i32,
    /// Pods whose labels match the template's.
    pub fully_labeled_replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// Pods ready for at least minReadySeconds.
    pub available_replicas: i32,
    /// ReplicaFailure, when creations fail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Job: runs pods until a number of them succeed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    /// Name and labels.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: JobSpec,
    /// What the Job controller observed.
    pub status: JobStatus,
}

/// The desired state of a Job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobSpec {
    /// Successful pods needed; defaults to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// Pods running at once; defaults to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// Failed pods tolerated before the Job fails; defaults to 6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Normally generated by the API server; when given, it must match the template's labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pods to run; restartPolicy must be OnFailure or Never.
    pub template: PodTemplateSpec,
}

/// What the Job controller observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobStatus {
    /// Running pods.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Complete or Failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Virtual time at which the Job started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_ns: Option<u64>,
    /// Virtual time at which it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time_ns: Option<u64>,
}

/// Reports a selector that is empty or does not select the template's labels: such an owner
/// would never see the pods it creates, and create them forever.
fn validate_selector_matches_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    spec_path: &FieldPath,
    errors: &mut Vec<ValidationError>,
) {
    let selector_path = spec_path.key("selector");
    selector.validate(&selector_path, errors);
    if selector.is_empty() {
        errors.push(ValidationError::required(&selector_path, "a selector is required and may not be empty"));
    } else if !selector.matches(&template.metadata.labels) {
        errors.push(ValidationError::invalid(
            &spec_path.key("template").key("metadata").key("labels"),
            "`selector` does not match template `labels`",
        ));
    }
}

fn validate_optional_non_negative(value: Option<i32>, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    if let Some(value) = value {
        validate_non_negative(i64::from(value), path, errors);
    }
}

/// Controllers that keep pods running (Deployments, ReplicaSets) accept only restartPolicy Always.
fn validate_restart_policy_always(
    template: &PodTemplateSpec,
    spec_path: &FieldPath,
    errors: &mut Vec<ValidationError>,
) {
    if let Some(policy) = template.spec.restart_policy.filter(|p| *p != RestartPolicy::Always) {
        errors.push(ValidationError::not_supported(
            &spec_path.key("template").key("spec").key("restartPolicy"),
            format!("{policy:?}: supported values: \"Always\""),
        ));
    }
}

/// Reads maxSurge or maxUnavailable for validation: a count or a percentage, never negative.
fn validate_int_or_percent(
    value: &IntOrString,
    path: &FieldPath,
    errors: &mut Vec<ValidationError>,
) -> Option<IntOrPercent> {
    match value.int_or_percent() {
        Ok(IntOrPercent::Int(count)) if count < 0 => {
            errors.push(ValidationError::invalid(path, format!("{count}: must be greater than or equal to 0")));
            None
        }
        Ok(IntOrPercent::Percent(percent)) if percent > 100 => {
            errors.push(ValidationError::invalid(path, format!("\"{percent}%\": must not be greater than 100%")));
            None
        }
        Ok(parsed) => Some(parsed),
        Err(detail) => {
            errors.push(ValidationError::invalid(path, detail));
            None
        }
    }
}

fn is_zero(value: Option<IntOrPercent>) -> bool {
    matches!(value, Some(IntOrPercent::Int(0) | IntOrPercent::Percent(0)))
}

impl Deployment {
    /// Applies apps/v1 defaults: replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
    /// progressDeadlineSeconds 600, and pod defaults in the template.
    pub fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        spec.min_ready_seconds.get_or_insert(0);
        let strategy = spec.strategy.get_or_insert_with(DeploymentStrategy::default);
        if strategy.strategy_type == DeploymentStrategyType::RollingUpdate {
            let rolling = strategy.rolling_update.get_or_insert_with(RollingUpdateDeployment::default);
            rolling.max_surge.get_or_insert_with(|| IntOrString::String("25%".into()));
            rolling.max_unavailable.get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        spec.template.apply_defaults();
    }

    /// Validates the spec: counts not negative, selector matches template, strategy bounds.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let spec_path = FieldPath::root().key("spec");
        let spec = &self.spec;
        validate_optional_non_negative(spec.replicas, &spec_path.key("replicas"), errors);
        validate_optional_non_negative(spec.min_ready_seconds, &spec_path.key("minReadySeconds"), errors);
        validate_optional_non_negative(spec.revision_history_limit, &spec_path.key("revisionHistoryLimit"), errors);
        validate_optional_non_negative(
            spec.progress_deadline_seconds,
            &spec_path.key("progressDeadlineSeconds"),
            errors,
        );
        if let (Some(deadline), Some(min_ready)) = (spec.progress_deadline_seconds, spec.min_ready_seconds) {
            if deadline <= min_ready {
                errors.push(ValidationError::invalid(
                    &spec_path.key("progressDeadlineSeconds"),
                    format!("{deadline}: must be greater than minReadySeconds"),
                ));
            }
        }
        validate_selector_matches_template(&spec.selector, &spec.template, &spec_path, errors);
        validate_restart_policy_always(&spec.template, &spec_path, errors);
        spec.template.validate(&spec_path.key("template"), errors);
        if let Some(strategy) = &spec.strategy {
            let strategy_path = spec_path.key("strategy");
            match (strategy.strategy_type, &strategy.rolling_update) {
                (DeploymentStrategyType::Recreate, Some(_)) => errors.push(ValidationError::forbidden(
                    &strategy_path.key("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                )),
                (DeploymentStrategyType::RollingUpdate, Some(rolling)) => {
                    let rolling_path = strategy_path.key("rollingUpdate");
                    let surge = rolling
                        .max_surge
                        .as_ref()
                        .and_then(|v| validate_int_or_percent(v, &rolling_path.key("maxSurge"), errors));
                    let unavailable = rolling
                        .max_unavailable
                        .as_ref()
                        .and_then(|v| validate_int_or_percent(v, &rolling_path.key("maxUnavailable"), errors));
                    if is_zero(surge) && is_zero(unavailable) {
                        errors.push(ValidationError::invalid(
                            &rolling_path.key("maxUnavailable"),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

impl ReplicaSet {
    /// Applies apps/v1 defaults: replicas 1 and pod defaults in the template.
    pub fn apply_defaults(&mut self) {
        self.spec.replicas.get_or_insert(1);
        self.spec.min_ready_seconds.get_or_insert(0);
        self.spec.template.apply_defaults();
    }

    /// Validates the spec: replicas not negative, selector matches template.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let spec_path = FieldPath::root().key("spec");
        validate_optional_non_negative(self.spec.replicas, &spec_path.key("replicas"), errors);
        validate_optional_non_negative(self.spec.min_ready_seconds, &spec_path.key("minReadySeconds"), errors);
        validate_selector_matches_template(&self.spec.selector, &self.spec.template, &spec_path, errors);
        validate_restart_policy_always(&self.spec.template, &spec_path, errors);
        self.spec.template.validate(&spec_path.key("template"), errors);
    }
}

impl Job {
    /// Applies batch/v1 defaults: completions 1, parallelism 1, backoffLimit 6, pod defaults.
    /// A Job's pods do not default to restartPolicy Always (validation requires it to be set).
    pub fn apply_defaults(&mut self) {
        self.spec.completions.get_or_insert(1);
        self.spec.parallelism.get_or_insert(1);
        self.spec.backoff_limit.get_or_insert(6);
        let restart_policy = self.spec.template.spec.restart_policy;
        self.spec.template.apply_defaults();
        self.spec.template.spec.restart_policy = restart_policy;
    }

    /// Validates the spec: counts not negative, restartPolicy OnFailure or Never, a given
    /// selector matches the template.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        let spec_path = FieldPath::root().key("spec");
        validate_optional_non_negative(self.spec.completions, &spec_path.key("completions"), errors);
        validate_optional_non_negative(self.spec.parallelism, &spec_path.key("parallelism"), errors);
        validate_optional_non_negative(self.spec.backoff_limit, &spec_path.key("backoffLimit"), errors);
        if let Some(selector) = &self.spec.selector {
            validate_selector_matches_template(selector, &self.spec.template, &spec_path, errors);
        }
        let policy_path = spec_path.key("template").key("spec").key("restartPolicy");
        match self.spec.template.spec.restart_policy {
            None => errors
                .push(ValidationError::required(&policy_path, "a Job's pods need restartPolicy OnFailure or Never")),
            Some(RestartPolicy::Always) => errors.push(ValidationError::not_supported(
                &policy_path,
                "\"Always\": supported values: \"OnFailure\", \"Never\"",
            )),
            Some(_) => {}
        }
        self.spec.template.validate(&spec_path.key("template"), errors);
    }
}
