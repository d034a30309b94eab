//! The Kubernetes object model: compact types of our own with the real apiVersion, kind and field
//! names, so that real manifests load into them.
//!
//! Code map:
//! - `meta`: ObjectMeta, owner references, conditions, IntOrString.
//! - `quantity`: CPU and memory quantities as integer millicores and bytes.
//! - `selector`: label selectors and their matching.
//! - `validation`: structured validation errors and the DNS/label name rules.
//! - `pod`, `workloads`, `networking`, `cluster`, `policy`: the kinds.
//!
//! Architecture Invariant: no HashMap or HashSet anywhere in the model (labels, annotations and
//! data are BTreeMaps), and no floating point: an object serializes, compares and hashes the same
//! on every run. Defaults (`apply_defaults`) and validation (`validate`) are plain functions that
//! the API server model calls; loading a manifest does not apply defaults.

pub mod cluster;
pub mod custom;
pub mod meta;
pub mod networking;
pub mod pod;
pub mod policy;
pub mod quantity;
pub mod selector;
pub mod validation;
pub mod workloads;

pub use cluster::{ConfigMap, Lease, Namespace, Node, Secret};
pub use custom::{CustomKind, CustomObject};
pub use meta::{Condition, ConditionStatus, IntOrPercent, IntOrString, ObjectMeta, OwnerReference, StringMap};
pub use networking::{EndpointSlice, Service};
pub use pod::{Pod, PodSpec, PodTemplateSpec};
pub use policy::{HorizontalPodAutoscaler, PodDisruptionBudget};
pub use quantity::{Bytes, Millicores, QuantityError};
pub use selector::{LabelSelector, LabelSelectorRequirement, SelectorOperator};
pub use validation::{FieldPath, NameRule, ValidationError, ValidationErrorKind};
pub use workloads::{Deployment, Job, ReplicaSet};

use serde::Serialize;
use std::fmt;

/// Declares `Kind` and `Object` from one table so that the two can never disagree.
macro_rules! kinds {
    ($($variant:ident => $api_version:literal, $name_rule:ident, $namespaced:literal;)+) => {
        /// The kinds the simulation models, in a fixed order, then users' custom kinds (ordered
        /// by apiVersion, kind and plural).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $api_version, "` `", stringify!($variant), "`.")]
                $variant,
            )+
            /// A user-defined kind (see [`custom`]).
            Custom(CustomKind),
        }

        impl Kind {
            /// Every built-in kind, in declaration order (custom kinds are the user's).
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            /// The `kind` field's value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => stringify!($variant),)+
                    Kind::Custom(custom) => custom.kind,
                }
            }

            /// The one `apiVersion` the simulation accepts for this kind (the current stable one).
            pub fn api_version(self) -> &'static str {
                match self {
                    $(Kind::$variant => $api_version,)+
                    Kind::Custom(custom) => custom.api_version,
                }
            }

            /// A number for trace hashes: a built-in kind's position in the table (what a cast
            /// of the field-less enum gave before custom kinds existed, so hashes stay as they
            /// were), and a fixed FNV-1a fold of apiVersion and kind for a custom kind.
            pub fn trace_code(self) -> u64 {
                #[allow(dead_code)]
                enum Code { $($variant,)+ }
                match self {
                    $(Kind::$variant => Code::$variant as u64,)+
                    Kind::Custom(custom) => {
                        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                        for byte in custom.api_version.bytes().chain([b'/']).chain(custom.kind.bytes()) {
                            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
                        }
                        hash
                    }
                }
            }

            /// Which DNS rule the kind's object names follow.
            pub fn name_rule(self) -> NameRule {
                match self {
                    $(Kind::$variant => NameRule::$name_rule,)+
                    Kind::Custom(_) => NameRule::Subdomain,
                }
            }

            /// Whether objects of the kind live in a namespace.
            pub fn is_namespaced(self) -> bool {
                match self {
                    $(Kind::$variant => $namespaced,)+
                    Kind::Custom(custom) => custom.namespaced,
                }
            }
        }

        /// An object of any simulated kind.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant($variant),
            )+
            /// An object of a user-defined kind.
            Custom(CustomObject),
        }

        impl Object {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)+
                    Object::Custom(object) => Kind::Custom(object.kind),
                }
            }

            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(object) => &object.metadata,)+
                    Object::Custom(object) => &object.metadata,
                }
            }

            /// The object's metadata, for the API server to set uid, resourceVersion and times.
            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$variant(object) => &mut object.metadata,)+
                    Object::Custom(object) => &mut object.metadata,
                }
            }

            /// Applies the API server's defaults for the object's kind.
            pub fn apply_defaults(&mut self) {
                match self {
                    $(Object::$variant(object) => object.apply_defaults(),)+
                    Object::Custom(object) => object.apply_defaults(),
                }
            }

            fn validate_kind(&self, errors: &mut Vec<ValidationError>) {
                match self {
                    $(Object::$variant(object) => object.validate(errors),)+
                    Object::Custom(object) => object.validate(errors),
                }
            }
        }

        impl From<CustomObject> for Object {
            fn from(object: CustomObject) -> Object {
                Object::Custom(object)
            }
        }

        $(
            impl From<$variant> for Object {
                fn from(object: $variant) -> Object {
                    Object::$variant(object)
                }
            }
        )+
    };
}

kinds! {
    Pod => "v1", Subdomain, true;
    ReplicaSet => "apps/v1", Subdomain, true;
    Deployment => "apps/v1", Subdomain, true;
    Service => "v1", Label, true;
    EndpointSlice => "discovery.k8s.io/v1", Subdomain, true;
    Node => "v1", Subdomain, false;
    Lease => "coordination.k8s.io/v1", Subdomain, true;
    Namespace => "v1", Label, false;
    ConfigMap => "v1", Subdomain, true;
    Secret => "v1", Subdomain, true;
    Job => "batch/v1", Subdomain, true;
    PodDisruptionBudget => "policy/v1", Subdomain, true;
    HorizontalPodAutoscaler => "autoscaling/v2", Subdomain, true;
}

impl Kind {
    /// The kind's segment of a store key: the kind's name for built-ins (`Pod`), and
    /// `group/plural` for custom kinds, as kube-apiserver lays out etcd for custom resources.
    pub fn store_segment(self) -> std::borrow::Cow<'static, str> {
        match self {
            Kind::Custom(custom) => std::borrow::Cow::Owned(format!("{}/{}", custom.group(), custom.plural)),
            kind => std::borrow::Cow::Borrowed(kind.as_str()),
        }
    }

    /// The custom kind, if this is one.
    pub fn custom(self) -> Option<CustomKind> {
        match self {
            Kind::Custom(custom) => Some(custom),
            _ => None,
        }
    }

    /// Finds the built-in kind named by a manifest's `kind`, whatever its apiVersion.
    pub fn from_kind_name(kind: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == kind)
    }

    /// Every supported kind as `apiVersion/Kind`, for error messages.
    pub fn supported_list() -> String {
        Kind::ALL.iter().map(|kind| format!("{} {}", kind.api_version(), kind.as_str())).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Pod {
    /// Validates the pod's spec.
    pub fn validate(&self, errors: &mut Vec<ValidationError>) {
        self.spec.validate(&FieldPath::root().key("spec"), errors);
    }
}

impl Namespace {
    /// Namespaces have no defaults.
    pub fn apply_defaults(&mut self) {}

    /// A namespace has nothing to validate beyond its name.
    pub fn validate(&self, _errors: &mut Vec<ValidationError>) {}
}

impl Object {
    /// The object's `apiVersion`.
    pub fn api_version(&self) -> &'static str {
        self.kind().api_version()
    }

    /// Validates the object: its name (a DNS-1123 subdomain or label, as the kind requires), its
    /// namespace, its labels, then the kind's own rules. Returns every problem found, in field
    /// order, or Ok when there are none.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let meta = self.meta();
        let meta_path = FieldPath::root().key("metadata");
        let name_path = meta_path.key("name");
        if meta.name.is_empty() {
            if meta.generate_name.as_deref().is_none_or(str::is_empty) {
                errors.push(ValidationError::required(&name_path, "name or generateName is required"));
            }
        } else {
            let (valid, rule) = match self.kind().name_rule() {
                NameRule::Subdomain => (
                    validation::is_dns1123_subdomain(&meta.name),
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (at most 253)",
                ),
                NameRule::Label => (
                    validation::is_dns1123_label(&meta.name),
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most 63)",
                ),
            };
            if !valid {
                errors.push(ValidationError::invalid(&name_path, format!("{:?}: {rule}", meta.name)));
            }
        }
        if let Some(namespace) = &meta.namespace {
            if !self.kind().is_namespaced() {
                errors.push(ValidationError::forbidden(
                    &meta_path.key("namespace"),
                    format!("{} is not namespaced", self.kind()),
                ));
            } else if !validation::is_dns1123_label(namespace) {
                errors.push(ValidationError::invalid(
                    &meta_path.key("namespace"),
                    format!("{namespace:?}: a namespace must be a DNS-1123 label"),
                ));
            }
        }
        validation::validate_labels(&meta.labels, &meta_path.key("labels"), &mut errors);
        self.validate_kind(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
