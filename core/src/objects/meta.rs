//! Metadata and small value types shared by every kind: ObjectMeta, owner references, conditions,
//! IntOrString.
//!
//! Timestamps are virtual: the simulation's clock counts nanoseconds from the start of a run, so
//! every time field is an `Option<u64>` whose name ends in `_ns` (serialized as `...Ns`). A
//! wall-clock RFC 3339 time in a manifest (`creationTimestamp: "2024-01-01T00:00:00Z"`) means
//! nothing on that clock; the manifest loader reports it as an unsimulated field and ignores it
//! (a `null` time, as `kubectl create --dry-run -o yaml` writes, is ignored silently).

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Labels or annotations: a BTreeMap so that iteration, serialization and hashing are ordered.
pub type StringMap = BTreeMap<String, String>;

/// The metadata every object carries (`metadata:` in a manifest).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// Unique within the namespace and kind; empty when `generate_name` is used.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Prefix from which the API server generates a name when `name` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace of a namespaced object; `None` means the default namespace (or cluster-scoped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Assigned by the API server; the garbage collector follows owners by uid, never by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Opaque to clients: compared for equality only (optimistic concurrency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Incremented by the API server on every change of the spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Virtual time of creation, in nanoseconds since the start of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp_ns: Option<u64>,
    /// Virtual time after which a graceful deletion becomes a forced one; set means terminating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp_ns: Option<u64>,
    /// Grace period granted by the delete request that set `deletion_timestamp_ns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Labels select objects (Services select pods, Deployments own ReplicaSets by selector).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: StringMap,
    /// Annotations carry controller bookkeeping such as `deployment.kubernetes.io/revision`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: StringMap,
    /// Owners of this object, for garbage collection and for controllers adopting their objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Deletion waits until every finalizer is removed (`foregroundDeletion`, `orphan`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

impl ObjectMeta {
    /// The reference that a controlling owner (a Deployment, a ReplicaSet, a Job) sets on what it creates.
    pub fn controller_ref(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().find(|owner| owner.controller == Some(true))
    }

    /// Whether the object is being deleted (graceful deletion or pending finalizers).
    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp_ns.is_some()
    }
}

/// A link from a dependent to its owner; the garbage collector deletes dependents of a deleted uid.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OwnerReference {
    /// apiVersion of the owner, such as `apps/v1`.
    pub api_version: String,
    /// Kind of the owner, such as `ReplicaSet`.
    pub kind: String,
    /// Name of the owner, for humans: the uid is what identifies it.
    pub name: String,
    /// The owner's uid: a recreated owner with the same name is a different owner.
    pub uid: String,
    /// At most one owner is the controller: the one that manages this object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// In foreground deletion, the owner waits for dependents that set this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// `True`, `False` or `Unknown`, as every Kubernetes condition's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Nobody knows: for example the kubelet stopped reporting.
    #[default]
    Unknown,
}

/// A status condition (`Ready`, `Available`, `Progressing`, `Complete`, `MemoryPressure`, ...).
///
/// One struct serves every kind: the kinds differ only in which time fields they fill in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// The condition's name, such as `Ready` (kept as text: each kind has its own set).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason, such as `ProgressDeadlineExceeded` or `NewReplicaSetAvailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Virtual time at which `status` last changed (pod availability counts from here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time_ns: Option<u64>,
    /// Virtual time of the last update (a Deployment's progress deadline counts from here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time_ns: Option<u64>,
    /// Virtual time of the last heartbeat (Node conditions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time_ns: Option<u64>,
}

impl Condition {
    /// Whether this condition has the given type and status `True`.
    pub fn is_true(&self, condition_type: &str) -> bool {
        self.condition_type == condition_type && self.status == ConditionStatus::True
    }
}

/// Finds a condition by type in a status's condition list.
pub fn find_condition<'a>(conditions: &'a [Condition], condition_type: &str) -> Option<&'a Condition> {
    conditions.iter().find(|condition| condition.condition_type == condition_type)
}

/// An integer or a string, as Kubernetes' `intstr.IntOrString`: `maxSurge: 1` or `maxSurge: "25%"`,
/// `targetPort: 8080` or `targetPort: http`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntOrString {
    /// A plain integer.
    Int(i32),
    /// A string: a percentage such as "25%" or a name such as a named container port.
    String(String),
}

/// What an IntOrString means when used as a count or a share: an absolute number or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(i32),
    /// A percentage of some total (the caller decides the total and the rounding).
    Percent(i32),
}

impl IntOrString {
    /// Interprets the value as a count or a percentage, as `intstr.GetScaledValueFromIntOrPercent`
    /// reads it: an integer, or a string of digits followed by `%`. Anything else is an error that
    /// names the value. The rounding rules belong to the caller (surge rounds up, unavailable down).
    pub fn int_or_percent(&self) -> Result<IntOrPercent, String> {
        match self {
            IntOrString::Int(value) => Ok(IntOrPercent::Int(*value)),
            IntOrString::String(text) => {
                let digits = text
                    .strip_suffix('%')
                    .ok_or_else(|| format!("{text:?} must be an integer or a percentage such as \"25%\""))?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{text:?} must be an integer or a percentage such as \"25%\""));
                }
                digits
                    .parse::<i32>()
                    .map(IntOrPercent::Percent)
                    .map_err(|_| format!("{text:?} is too large a percentage"))
            }
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(value) => write!(f, "{value}"),
            IntOrString::String(text) => f.write_str(text),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(value) => serializer.serialize_i32(*value),
            IntOrString::String(text) => serializer.serialize_str(text),
        }
    }
}

struct IntOrStringVisitor;

impl Visitor<'_> for IntOrStringVisitor {
    type Value = IntOrString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string such as \"25%\"")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<IntOrString, E> {
        i32::try_from(value)
            .map(IntOrString::Int)
            .map_err(|_| E::custom(format!("integer {value} out of range for a 32-bit IntOrString")))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<IntOrString, E> {
        i32::try_from(value)
            .map(IntOrString::Int)
            .map_err(|_| E::custom(format!("integer {value} out of range for a 32-bit IntOrString")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::String(text.to_string()))
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntOrStringVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_string_reads_counts_and_percentages() {
        assert_eq!(IntOrString::Int(3).int_or_percent(), Ok(IntOrPercent::Int(3)));
        assert_eq!(IntOrString::String("25%".into()).int_or_percent(), Ok(IntOrPercent::Percent(25)));
        assert_eq!(IntOrString::String("0%".into()).int_or_percent(), Ok(IntOrPercent::Percent(0)));
        for bad in ["25", "%", "-5%", "2.5%", "abc", "99999999999%"] {
            assert!(IntOrString::String(bad.into()).int_or_percent().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn controller_ref_is_the_owner_marked_controller() {
        let meta = ObjectMeta {
            owner_references: vec![
                OwnerReference { name: "other".into(), ..OwnerReference::default() },
                OwnerReference { name: "web-5d4f".into(), controller: Some(true), ..OwnerReference::default() },
            ],
            ..ObjectMeta::default()
        };
        assert_eq!(meta.controller_ref().map(|o| o.name.as_str()), Some("web-5d4f"));
    }
}
