//! Bad input gives a clear message and exit code 2, never a panic: every file of
//! `tests/bad_inputs/` and a few bad command lines, run through the `kubedst` binary, with the
//! messages pinned by an insta snapshot.

use std::path::Path;
use std::process::Command;

fn kubedst(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kubedst"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the kubedst binary runs");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    (output.status.code(), stderr)
}

/// Runs one bad input; asserts exit code 2, no panic, and a message; returns the message.
fn bad(args: &[&str]) -> String {
    let (code, stderr) = kubedst(args);
    assert!(!stderr.contains("panicked"), "kubedst {args:?} panicked: {stderr}");
    assert_eq!(code, Some(2), "kubedst {args:?} exits with 2 (bad input); stderr: {stderr}");
    assert!(!stderr.trim().is_empty(), "kubedst {args:?} says what is wrong");
    stderr
}

#[test]
fn every_bad_scenario_file_names_its_position_and_exits_2() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let mut names: Vec<String> = std::fs::read_dir(&directory)
        .expect("tests/bad_inputs exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "the corpus has at least 20 bad inputs, found {}", names.len());
    let mut transcript = String::new();
    for name in &names {
        let path = format!("tests/bad_inputs/{name}");
        let message = bad(&["run", &path]);
        // Every problem inside a scenario file is located in some file, by line and column.
        let located = message.contains(&format!("{path}:")) || message.contains("tests/bad_inputs/support/");
        assert!(located, "{name}: the message names the file: {message}");
        transcript.push_str(&format!("$ kubedst run {path}\n{message}\n"));
    }
    insta::assert_snapshot!("bad_scenario_files", transcript);
}

#[test]
fn bad_command_lines_say_what_was_expected_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["run", "roling-update"],
        &["run", "node-crash"],
        &["run", "no-such-scenario-anywhere"],
        &["run", "tests/bad_inputs/support/does-not-exist.yaml"],
        &["run", "rolling-update", "--faults", "network_chaoss"],
        &["run", "rolling-update", "--faults", "tests/bad_inputs/support/bad-faults.yaml"],
        &["run", "rolling-update", "--faults", "tests/bad_inputs/support/faults-unknown-machine.yaml"],
        &["run", "rolling-update", "--seed", "minus-one"],
        &["run", "rolling-update", "--format", "xml"],
        &["run"],
        &["frobnicate"],
    ];
    let mut transcript = String::new();
    for args in cases {
        let message = bad(args);
        transcript.push_str(&format!("$ kubedst {}\n{message}\n", args.join(" ")));
    }
    insta::assert_snapshot!("bad_command_lines", transcript);
}

#[test]
fn an_unknown_scenario_name_suggests_the_closest_builtins() {
    let message = bad(&["run", "roling-update"]);
    assert!(
        message.contains("did you mean \"rolling-update\"") || message.contains("did you mean rolling-update"),
        "{message}"
    );
}

#[test]
fn a_bad_fault_entry_is_located_at_the_entry_not_at_the_section() {
    // The second entry (line 6) names an unknown machine; the `faults:` section starts on line 2.
    let message = bad(&["run", "tests/bad_inputs/fault-second-entry-unknown-machine.yaml"]);
    assert!(message.contains("fault-second-entry-unknown-machine.yaml:6:"), "{message}");
    let message = bad(&["run", "tests/bad_inputs/model-fault-after-phase.yaml"]);
    assert!(message.contains("model-fault-after-phase.yaml:7:"), "{message}");
    let message = bad(&["run", "rolling-update", "--faults", "tests/bad_inputs/support/faults-unknown-machine.yaml"]);
    assert!(message.contains("faults-unknown-machine.yaml:5:"), "{message}");
}
