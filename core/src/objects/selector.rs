//! Label selectors (`matchLabels` and `matchExpressions`), as `metav1.LabelSelector`.

use super::meta::StringMap;
use super::validation::{FieldPath, ValidationError};
use serde::{Deserialize, Serialize};

/// Selects objects by their labels: every `matchLabels` pair and every expression must hold.
///
/// An empty selector (no labels and no expressions) matches everything, as in Kubernetes; a
/// missing selector (`None` where a kind has an optional one) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    /// Each key must be present with exactly this value.
    #[serde(skip_serializing_if = "StringMap::is_empty")]
    pub match_labels: StringMap,
    /// Each requirement must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One requirement of a selector, such as `tier In (frontend, web)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// How the label's value is compared with `values`.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn`; must be empty for `Exists` and `DoesNotExist`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The operators of a label selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    #[default]
    In,
    /// The label is absent, or present with a value not in `values`.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelectorRequirement {
    /// Whether a label set satisfies this requirement (`NotIn` holds when the key is absent).
    pub fn matches(&self, labels: &StringMap) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

impl LabelSelector {
    /// A selector with only `matchLabels`.
    pub fn from_labels(labels: StringMap) -> Self {
        LabelSelector { match_labels: labels, match_expressions: Vec::new() }
    }

    /// Whether the selector has neither labels nor expressions (and so selects everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether a label set satisfies every `matchLabels` pair and every expression.
    pub fn matches(&self, labels: &StringMap) -> bool {
        self.match_labels.iter().all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|requirement| requirement.matches(labels))
    }

    /// Checks the selector's own shape: keys are qualified names, values are label values,
    /// `In`/`NotIn` have values and `Exists`/`DoesNotExist` have none.
    pub fn validate(&self, path: &FieldPath, errors: &mut Vec<ValidationError>) {
        let labels_path = path.key("matchLabels");
        super::validation::validate_labels(&self.match_labels, &labels_path, errors);
        for (index, requirement) in self.match_expressions.iter().enumerate() {
            let requirement_path = path.key("matchExpressions").index(index);
            super::validation::validate_label_key(&requirement.key, &requirement_path.key("key"), errors);
            let values_path = requirement_path.key("values");
            match requirement.operator {
                SelectorOperator::In | SelectorOperator::NotIn => {
                    if requirement.values.is_empty() {
                        errors.push(ValidationError::required(
                            &values_path,
                            "must be specified when operator is In or NotIn",
                        ));
                    }
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist => {
                    if !requirement.values.is_empty() {
                        errors.push(ValidationError::forbidden(
                            &values_path,
                            "may not be specified when operator is Exists or DoesNotExist",
                        ));
                    }
                }
            }
        }
    }
}

/// Whether a plain `key: value` selector (a Service's `spec.selector`) selects a label set.
/// Unlike a LabelSelector, an empty map here selects nothing: a Service without a selector
/// has its endpoints managed by hand.
pub fn map_selector_matches(selector: &StringMap, labels: &StringMap) -> bool {
    !selector.is_empty() && selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> StringMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn requirement(key: &str, operator: SelectorOperator, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement { key: key.into(), operator, values: values.iter().map(|v| v.to_string()).collect() }
    }

    #[test]
    fn match_labels_require_every_pair() {
        let selector = LabelSelector::from_labels(labels(&[("app", "web"), ("tier", "front")]));
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "back")])));
    }

    #[test]
    fn each_operator_behaves_as_kubernetes() {
        let web = labels(&[("app", "web"), ("env", "prod")]);
        let bare = labels(&[]);
        let cases = [
            (requirement("env", SelectorOperator::In, &["prod", "staging"]), true, false),
            (requirement("env", SelectorOperator::In, &["dev"]), false, false),
            (requirement("env", SelectorOperator::NotIn, &["dev"]), true, true),
            (requirement("env", SelectorOperator::NotIn, &["prod"]), false, true),
            (requirement("env", SelectorOperator::Exists, &[]), true, false),
            (requirement("env", SelectorOperator::DoesNotExist, &[]), false, true),
        ];
        for (requirement, on_web, on_bare) in cases {
            assert_eq!(requirement.matches(&web), on_web, "{requirement:?} on {web:?}");
            assert_eq!(requirement.matches(&bare), on_bare, "{requirement:?} on no labels");
        }
    }

    #[test]
    fn labels_and_expressions_combine_with_and() {
        let selector = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![requirement("track", SelectorOperator::NotIn, &["canary"])],
        };
        assert!(selector.matches(&labels(&[("app", "web"), ("track", "stable")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("track", "canary")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn empty_label_selector_matches_all_but_empty_map_selector_matches_none() {
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
        assert!(!map_selector_matches(&StringMap::new(), &labels(&[("a", "b")])));
        assert!(map_selector_matches(&labels(&[("a", "b")]), &labels(&[("a", "b"), ("c", "d")])));
    }

    #[test]
    fn selector_shape_is_validated() {
        let selector = LabelSelector {
            match_labels: StringMap::new(),
            match_expressions: vec![
                requirement("env", SelectorOperator::In, &[]),
                requirement("env", SelectorOperator::Exists, &["x"]),
                requirement("bad key!", SelectorOperator::Exists, &[]),
            ],
        };
        let mut errors = Vec::new();
        selector.validate(&FieldPath::root().key("selector"), &mut errors);
        let paths: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "selector.matchExpressions[0].values",
                "selector.matchExpressions[1].values",
                "selector.matchExpressions[2].key"
            ]
        );
    }
}
