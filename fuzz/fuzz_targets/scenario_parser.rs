//! Arbitrary bytes into the scenario parser, the fault-plan parser and the manifest loader: none
//! may panic, and every error they return must point into the text (file label, a line within
//! the text, a column from 1), since a user fixes a file by its position.
//!
//! A scenario that parses is also turned into its run spec and fault plan for a few seeds (a
//! `Result`, never a panic), and its `to_yaml` form must parse again: repro files embed it.

#![no_main]

use kubedst_core::manifest::{load_manifests, ManifestError, SourceLocation};
use kubedst_scenarios::scenario::{parse_fault_plan, Scenario, ScenarioError};
use libfuzzer_sys::fuzz_target;

const LABEL: &str = "fuzz.yaml";

/// Lines as YAML counts them: `\r\n`, a lone `\r` and `\n` each end a line (YAML 1.2, 5.4).
fn yaml_lines(text: &str) -> usize {
    let breaks = text.replace("\r\n", "\n").chars().filter(|c| *c == '\n' || *c == '\r').count();
    breaks + 1
}

/// The location names the file and a position inside `text` (a line past the last one is
/// allowed: the end of the file).
fn check_location(location: &SourceLocation, text: &str, what: &str) {
    let lines = yaml_lines(text);
    assert_eq!(location.file, LABEL, "{what}: the location names another file: {location}");
    assert!(
        location.line >= 1 && location.line <= lines + 1,
        "{what}: line {} outside the text's {lines} lines",
        location.line
    );
    assert!(location.column >= 1, "{what}: column {} is not 1-based", location.column);
}

fn check_manifest_error(error: &ManifestError, text: &str) {
    assert!(!error.diagnostics.is_empty(), "a manifest error without a diagnostic");
    for diagnostic in &error.diagnostics {
        check_location(&diagnostic.location, text, &diagnostic.to_string());
        assert!(!diagnostic.message.is_empty(), "a diagnostic without a message at {}", diagnostic.location);
    }
}

fn check_scenario_error(error: &ScenarioError, text: &str) {
    match error {
        ScenarioError::Invalid { location, message } => {
            check_location(location, text, message);
            assert!(!message.is_empty(), "an error without a message at {location}");
        }
        ScenarioError::Manifest(manifest) => check_manifest_error(manifest, text),
        // Parsing text reads no file, names no built-in, and the fuzzer's inputs stay far below
        // the size limit, the one positionless error of parsing.
        other => panic!("a parse error without a location: {other:?}"),
    }
}

fn check_scenario(scenario: &Scenario) {
    for seed in [0, 1, u64::MAX] {
        // Errors are fine (a schedule that names unknown machines); panics are not.
        let _ = scenario.to_run_spec(seed, None);
        let _ = scenario.fault_plan(seed);
    }
    let _ = scenario.cluster_shape(0);
    let yaml = scenario.to_yaml();
    if let Err(error) = Scenario::parse(LABEL, &yaml) {
        panic!("to_yaml of a parsed scenario does not parse again: {error}\n{yaml}");
    }
}

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    match Scenario::parse(LABEL, &text) {
        Ok(scenario) => check_scenario(&scenario),
        Err(error) => check_scenario_error(&error, &text),
    }
    if let Err(error) = parse_fault_plan(LABEL, &text) {
        check_scenario_error(&error, &text);
    }
    if let Err(error) = load_manifests(LABEL, &text) {
        check_manifest_error(&error, &text);
    }
});
