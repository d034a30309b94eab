//! Structured validation errors and the name rules of `k8s.io/apimachinery/pkg/util/validation`.
//!
//! Errors mirror `field.Error`: a field path in manifest notation (`spec.template.spec.containers[1].name`),
//! a kind (`Required`, `Invalid`, ...) and a detail. The path uses the manifest's own field names so
//! that the manifest loader can point at the offending line.

use super::meta::StringMap;
use std::fmt;

/// A path to a field, written as in a manifest: `spec.containers[0].image`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of the object itself.
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// The path of a field of a map or struct.
    pub fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(key.to_string())
        } else {
            FieldPath(format!("{}.{key}", self.0))
        }
    }

    /// The path of an element of a list.
    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is wrong with a field, as `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValidationErrorKind {
    /// A required field is missing or empty.
    Required,
    /// The value breaks a rule (format, range, consistency with another field).
    Invalid,
    /// The value repeats one that must be unique.
    Duplicate,
    /// The value is not one of the supported values.
    NotSupported,
    /// The field may not be set in this context.
    Forbidden,
}

impl fmt::Display for ValidationErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValidationErrorKind::Required => "Required value",
            ValidationErrorKind::Invalid => "Invalid value",
            ValidationErrorKind::Duplicate => "Duplicate value",
            ValidationErrorKind::NotSupported => "Unsupported value",
            ValidationErrorKind::Forbidden => "Forbidden",
        })
    }
}

/// One validation failure: which field, what kind of problem, and the details.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidationError {
    /// Manifest path of the field, such as `spec.replicas`.
    pub path: String,
    /// The class of problem.
    pub kind: ValidationErrorKind,
    /// What the rule is, and the offending value where there is one.
    pub detail: String,
}

impl ValidationError {
    fn new(path: &FieldPath, kind: ValidationErrorKind, detail: impl Into<String>) -> Self {
        ValidationError { path: path.as_str().to_string(), kind, detail: detail.into() }
    }

    /// A missing required field.
    pub fn required(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ValidationErrorKind::Required, detail)
    }

    /// A value that breaks a rule.
    pub fn invalid(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ValidationErrorKind::Invalid, detail)
    }

    /// A repeated value that must be unique.
    pub fn duplicate(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ValidationErrorKind::Duplicate, detail)
    }

    /// A value outside the supported set.
    pub fn not_supported(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ValidationErrorKind::NotSupported, detail)
    }

    /// A field that may not be set here.
    pub fn forbidden(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ValidationErrorKind::Forbidden, detail)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.kind, self.detail)
    }
}

impl std::error::Error for ValidationError {}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

/// A DNS-1123 label: at most 63 characters of `a-z`, `0-9` and `-`, starting and ending
/// alphanumeric. Namespaces, Services and container names must be labels.
pub fn is_dns1123_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| is_lower_alphanumeric(*b) || *b == b'-')
        && bytes.first().copied().is_some_and(is_lower_alphanumeric)
        && bytes.last().copied().is_some_and(is_lower_alphanumeric)
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels. Most object names
/// (Pods, Deployments, ConfigMaps, Nodes, ...) must be subdomains.
pub fn is_dns1123_subdomain(text: &str) -> bool {
    text.len() <= 253
        && !text.is_empty()
        && text.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty()
                && bytes.iter().all(|b| is_lower_alphanumeric(*b) || *b == b'-')
                && bytes.first().copied().is_some_and(is_lower_alphanumeric)
                && bytes.last().copied().is_some_and(is_lower_alphanumeric)
        })
}

/// An IANA service name, which a named port must be: at most 15 characters of `a-z`, `0-9` and
/// `-`, at least one letter, no leading, trailing or doubled `-`.
pub fn is_iana_service_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 15
        && bytes.iter().all(|b| is_lower_alphanumeric(*b) || *b == b'-')
        && bytes.iter().any(|b| b.is_ascii_lowercase())
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--")
}

/// The name part of a label key and a non-empty label value: at most 63 characters of
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A qualified name (a label or annotation key): `name` or `prefix/name` with a DNS subdomain prefix.
pub fn is_qualified_name(text: &str) -> bool {
    match text.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_label_name(name),
        None => is_label_name(text),
    }
}

/// A label value: empty, or a label name.
pub fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_label_name(text)
}

/// Reports a label key that is not a qualified name.
pub fn validate_label_key(key: &str, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    if !is_qualified_name(key) {
        errors.push(ValidationError::invalid(
            path,
            format!("{key:?}: a label key must be a qualified name such as \"app\" or \"example.com/app\" (at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric)"),
        ));
    }
}

/// Reports bad label keys and values.
pub fn validate_labels(labels: &StringMap, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    for (key, value) in labels {
        validate_label_key(key, &path.key(key), errors);
        if !is_label_value(value) {
            errors.push(ValidationError::invalid(
                &path.key(key),
                format!("{value:?}: a label value must be empty or at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric"),
            ));
        }
    }
}

/// Reports a port number outside 1..=65535.
pub fn validate_port_number(port: i32, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    if !(1..=65535).contains(&port) {
        errors.push(ValidationError::invalid(path, format!("{port}: must be between 1 and 65535, inclusive")));
    }
}

/// Reports a negative value of a field that counts something.
pub fn validate_non_negative(value: i64, path: &FieldPath, errors: &mut Vec<ValidationError>) {
    if value < 0 {
        errors.push(ValidationError::invalid(path, format!("{value}: must be greater than or equal to 0")));
    }
}

/// Which name rule an object kind follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (Namespace, Service).
    Label,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_follow_kubernetes_rules() {
        for good in ["web", "web-1", "a", "0abc", "a.b.c"] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in ["", "Web", "-web", "web-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_label(&"a".repeat(63)));
    }

    #[test]
    fn label_keys_values_and_port_names() {
        assert!(is_qualified_name("app"));
        assert!(is_qualified_name("topology.kubernetes.io/zone"));
        assert!(is_qualified_name("App_Name.v1"));
        assert!(!is_qualified_name("/app"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(is_label_value(""));
        assert!(!is_label_value("has space"));
        assert!(is_iana_service_name("http"));
        assert!(is_iana_service_name("http-alt"));
        assert!(!is_iana_service_name("8080"));
        assert!(!is_iana_service_name("http--alt"));
        assert!(!is_iana_service_name("a-very-long-port-name"));
    }

    #[test]
    fn field_paths_read_like_manifests() {
        let path = FieldPath::root().key("spec").key("containers").index(2).key("name");
        assert_eq!(path.as_str(), "spec.containers[2].name");
        let error = ValidationError::invalid(
            &FieldPath::root().key("spec").key("replicas"),
            "-1: must be greater than or equal to 0",
        );
        assert_eq!(error.to_string(), "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
    }
}
