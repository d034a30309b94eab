//! Custom resources: objects of kinds that a user defines, as a CustomResourceDefinition makes the
//! real API server serve them.
//!
//! A [`CustomKind`] names the kind (its `apiVersion` `group/version`, its `kind`, its plural
//! resource name and whether it is namespaced). Its fields are `&'static str` so that the kind is
//! `Copy` like every built-in [`super::Kind`]: a user declares it once as a constant.
//!
//! A [`CustomObject`] carries the usual metadata (names, labels, ownerReferences, finalizers, so
//! the garbage collector treats it like any other owner or dependent) and a free-form JSON `spec`
//! and `status`. The API server applies Kubernetes' rules for custom resources
//! (`apiextensions-apiserver`'s `customResourceStrategy`): no defaults beyond metadata,
//! `generation` bumps only when the spec changes, a status write changes only the status (the
//! status subresource), and an update without `metadata.resourceVersion` is rejected
//! (`AllowUnconditionalUpdate` is false: 422 "must be specified for an update").
//!
//! Architecture Invariant: no floating point in the model. A JSON number that is not an integer
//! in a custom object is a validation error; use an integer (milli-units) or a string.

use super::meta::ObjectMeta;
use super::validation::{FieldPath, ValidationError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// A user-defined kind: what a CustomResourceDefinition declares.
///
/// ```
/// use kubedst_core::objects::CustomKind;
/// const APP: CustomKind = CustomKind::namespaced("example.kubedst.dev/v1", "App", "apps");
/// assert_eq!(APP.group(), "example.kubedst.dev");
/// assert_eq!(APP.version(), "v1");
/// assert!(APP.check().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomKind {
    /// `group/version`, such as `example.kubedst.dev/v1`.
    pub api_version: &'static str,
    /// The `kind` field's value, such as `App`.
    pub kind: &'static str,
    /// The plural resource name, such as `apps` (the CRD's `spec.names.plural`).
    pub plural: &'static str,
    /// Whether objects of the kind live in a namespace (the CRD's `spec.scope`).
    pub namespaced: bool,
}

impl CustomKind {
    /// A namespaced kind.
    pub const fn namespaced(api_version: &'static str, kind: &'static str, plural: &'static str) -> CustomKind {
        CustomKind { api_version, kind, plural, namespaced: true }
    }

    /// A cluster-scoped kind.
    pub const fn cluster_scoped(api_version: &'static str, kind: &'static str, plural: &'static str) -> CustomKind {
        CustomKind { api_version, kind, plural, namespaced: false }
    }

    /// The API group (`example.kubedst.dev`).
    pub fn group(&self) -> &'static str {
        self.api_version.split_once('/').map_or("", |(group, _)| group)
    }

    /// The version (`v1`).
    pub fn version(&self) -> &'static str {
        self.api_version.split_once('/').map_or(self.api_version, |(_, version)| version)
    }

    /// The resource as Kubernetes names it in messages: `plural.group` (`apps.example.kubedst.dev`).
    pub fn resource(&self) -> String {
        format!("{}.{}", self.plural, self.group())
    }

    /// Checks the kind as the CRD's validation would: a group that is a DNS subdomain with at
    /// least one dot (so that it can never be a built-in group), a version, a kind that starts
    /// with an upper-case letter and a lower-case plural that is a DNS label.
    pub fn check(&self) -> Result<(), String> {
        let Some((group, version)) = self.api_version.split_once('/') else {
            return Err(format!("custom kind {}: apiVersion {:?} must be group/version", self.kind, self.api_version));
        };
        if !group.contains('.') || !super::validation::is_dns1123_subdomain(group) {
            return Err(format!(
                "custom kind {}: group {group:?} must be a lower-case DNS subdomain with at least one dot \
                 (such as example.com)",
                self.kind
            ));
        }
        if !super::validation::is_dns1123_label(version) {
            return Err(format!("custom kind {}: version {version:?} must be a DNS label (such as v1)", self.kind));
        }
        let starts_upper = self.kind.chars().next().is_some_and(|first| first.is_ascii_uppercase());
        if !starts_upper || !self.kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("custom kind {:?}: a kind is CamelCase letters and digits", self.kind));
        }
        if super::Kind::from_kind_name(self.kind).is_some() {
            return Err(format!("custom kind {}: the name is a built-in kind's", self.kind));
        }
        if !super::validation::is_dns1123_label(self.plural) {
            return Err(format!("custom kind {}: plural {:?} must be a lower-case DNS label", self.kind, self.plural));
        }
        Ok(())
    }
}

impl fmt::Display for CustomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)
    }
}

/// An object of a custom kind: metadata as usual, a free-form spec and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomObject {
    /// Which kind (its apiVersion and kind are written from it).
    pub kind: CustomKind,
    /// Names, labels, ownerReferences, finalizers, resourceVersion.
    pub metadata: ObjectMeta,
    /// The desired state (a JSON object, or null when absent).
    pub spec: Value,
    /// The observed state, written through the status subresource (null when absent).
    pub status: Value,
}

impl CustomObject {
    /// A new object of `kind` named `name` in `namespace` (ignored for cluster-scoped kinds).
    pub fn new(kind: CustomKind, namespace: &str, name: &str, spec: Value) -> CustomObject {
        let metadata = ObjectMeta {
            name: name.to_string(),
            namespace: kind.namespaced.then(|| namespace.to_string()),
            ..ObjectMeta::default()
        };
        CustomObject { kind, metadata, spec, status: Value::Null }
    }

    /// The spec read as a typed struct (`serde_json::from_value`).
    pub fn spec_as<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.spec.clone()).map_err(|error| format!("{} spec: {error}", self.kind))
    }

    /// The status read as a typed struct; a missing status reads as `T::default()`.
    pub fn status_as<T: DeserializeOwned + Default>(&self) -> Result<T, String> {
        if self.status.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(self.status.clone()).map_err(|error| format!("{} status: {error}", self.kind))
    }

    /// Replaces the status with a typed value.
    pub fn set_status<T: Serialize>(&mut self, status: &T) -> Result<(), String> {
        self.status = serde_json::to_value(status).map_err(|error| format!("{} status: {error}", self.kind))?;
        Ok(())
    }

    /// Replaces the spec with a typed value.
    pub fn set_spec<T: Serialize>(&mut self, spec: &T) -> Result<(), String> {
        self.spec = serde_json::to_value(spec).map_err(|error| format!("{} spec: {error}", self.kind))?;
        Ok(())
    }

    /// Custom resources get no defaults (structural-schema defaults are not modelled).
    pub fn apply_defaults(&mut self) {}

    /// Spec and status must be JSON objects (or absent) and hold no floating-point numbers.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        for (field, value) in [("spec", &self.spec), ("status", &self.status)] {
            let path = FieldPath::root().key(field);
            if !(value.is_null() || value.is_object()) {
                errors.push(ValidationError::invalid(&path, format!("must be an object, found {}", json_type(value))));
                continue;
            }
            reject_floats(value, &path, errors);
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn reject_floats(value: &Value, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    match value {
        Value::Number(number) if !(number.is_i64() || number.is_u64()) => errors.push(ValidationError::invalid(
            path,
            format!("{number}: the simulation keeps no floating-point numbers; use an integer or a string"),
        )),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                reject_floats(item, &path.index(index), errors);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                reject_floats(item, &path.key(key), errors);
            }
        }
        _ => {}
    }
}

impl Serialize for CustomObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("apiVersion", self.kind.api_version)?;
        map.serialize_entry("kind", self.kind.kind)?;
        map.serialize_entry("metadata", &self.metadata)?;
        if !self.spec.is_null() {
            map.serialize_entry("spec", &self.spec)?;
        }
        if !self.status.is_null() {
            map.serialize_entry("status", &self.status)?;
        }
        map.end()
    }
}

/// The body of a custom object in a manifest (apiVersion and kind are read before).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CustomObjectBody {
    pub metadata: ObjectMeta,
    pub spec: Value,
    pub status: Value,
}
