//! The sweep commands as a user runs them: `sweep` (shards, merge, JUnit, repro files), `replay`,
//! `shrink`, `check-determinism`, and their exit codes (0 held, 1 violated, 2 bad input,
//! 3 nondeterminism). `standin-node-loss` loses every node on about half the seeds, so a small
//! range has both passing and failing seeds.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCENARIO: &str = "standin-node-loss";

fn kubedst(arguments: &[&str], directory: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubedst")).args(arguments).current_dir(directory).output().expect("kubedst runs")
}

fn scratch(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("kubedst-cli-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The summary without wall-clock time, which is the one field that may differ between runs.
fn without_wall_time(mut summary: Value) -> Value {
    summary.as_object_mut().unwrap().remove("wall_ms");
    summary
}

#[test]
fn shards_merge_into_the_unsharded_sweep_and_failures_group_by_signature() {
    let directory = scratch("shards");
    let whole = kubedst(
        &["sweep", SCENARIO, "--seeds", "0..9", "--jobs", "2", "--format", "json", "--junit", "junit.xml"],
        &directory,
    );
    assert_eq!(whole.status.code(), Some(1), "some seeds lose every node: {}", stderr(&whole));
    let summary: Value = serde_json::from_str(&stdout(&whole)).unwrap();
    let failed = summary["failed"].as_u64().unwrap();
    assert!(failed > 0 && summary["passed"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["runs"], 9);
    // One bug (every node lost) is one group, whatever the seed.
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{summary}");
    assert_eq!(groups[0]["seeds"].as_array().unwrap().len() as u64, failed);
    let first = groups[0]["seeds"][0].as_u64().unwrap();
    assert_eq!(groups[0]["replay"], format!("kubedst run {SCENARIO} --seed {first}"));
    let repro = groups[0]["repro"].as_str().unwrap();
    assert!(directory.join(repro).is_file(), "{repro}");

    let junit = std::fs::read_to_string(directory.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 9);
    assert_eq!(junit.matches("<failure ").count() as u64, failed);

    let mut shard_files = Vec::new();
    for index in 0..3 {
        let file = format!("shard-{index}.json");
        let shard = format!("{index}/3");
        let output = kubedst(
            &["sweep", SCENARIO, "--seeds", "0..9", "--shard", &shard, "--format", "json", "--output", &file],
            &directory,
        );
        assert!(matches!(output.status.code(), Some(0 | 1)), "{}", stderr(&output));
        let part: Value = serde_json::from_str(&std::fs::read_to_string(directory.join(&file)).unwrap()).unwrap();
        assert_eq!(part["runs"], 3, "shard {shard} runs the seeds s with s mod 3 == {index}");
        assert!(part["results"].as_array().unwrap().iter().all(|result| result["seed"].as_u64().unwrap() % 3 == index));
        shard_files.push(file);
    }
    let mut arguments = vec!["sweep-merge", "--format", "json"];
    arguments.extend(shard_files.iter().map(String::as_str));
    let merged = kubedst(&arguments, &directory);
    assert_eq!(merged.status.code(), whole.status.code());
    let merged: Value = serde_json::from_str(&stdout(&merged)).unwrap();
    assert_eq!(without_wall_time(merged), without_wall_time(summary));

    let twice = kubedst(&["merge", &shard_files[0], &shard_files[0]], &directory);
    assert_eq!(twice.status.code(), Some(2));
    assert!(stderr(&twice).contains("appears in more than one summary"), "{}", stderr(&twice));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn a_repro_replays_identically_shrinks_and_a_changed_hash_is_nondeterminism() {
    let directory = scratch("repro");
    let sweep =
        kubedst(&["sweep", SCENARIO, "--seeds", "0..4", "--format", "json", "--repro-dir", "repros"], &directory);
    assert_eq!(sweep.status.code(), Some(1), "{}", stderr(&sweep));
    let summary: Value = serde_json::from_str(&stdout(&sweep)).unwrap();
    let repro = summary["groups"][0]["repro"].as_str().unwrap().to_string();
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(directory.join(&repro)).unwrap()).unwrap();
    let seed = recorded["seed"].as_u64().unwrap();
    let seed_result = summary["results"].as_array().unwrap().iter().find(|r| r["seed"] == seed).unwrap();
    assert_eq!(recorded["expected_trace_hash"], seed_result["trace_hash"]);
    assert!(recorded["scenario"].as_str().unwrap().contains(SCENARIO), "the scenario is embedded");

    let replay = kubedst(&["replay", &repro, "--format", "json"], &directory);
    assert_eq!(replay.status.code(), Some(1), "{}", stderr(&replay));
    let replayed: Value = serde_json::from_str(&stdout(&replay)).unwrap();
    assert_eq!(replayed["trace_hash"], recorded["expected_trace_hash"]);
    assert_eq!(replayed["identical"], true);
    assert_eq!(replayed["violations"].as_array().unwrap().len(), recorded["violations"].as_array().unwrap().len());

    // A repro whose expected hash is not what the run gives is reported as nondeterminism.
    let mut tampered = recorded.clone();
    tampered["expected_trace_hash"] = Value::from("0123456789abcdef");
    std::fs::write(directory.join("tampered.json"), serde_json::to_string_pretty(&tampered).unwrap()).unwrap();
    let replay = kubedst(&["replay", "tampered.json"], &directory);
    assert_eq!(replay.status.code(), Some(3));
    let expected_message = format!(
        "the trace hash differs: expected 0123456789abcdef, got {}",
        recorded["expected_trace_hash"].as_str().unwrap()
    );
    assert!(stderr(&replay).contains(&expected_message), "{}", stderr(&replay));

    let shrink = kubedst(&["shrink", &repro, "-o", "small.json", "--max-runs", "60"], &directory);
    assert_eq!(shrink.status.code(), Some(1), "{}{}", stdout(&shrink), stderr(&shrink));
    assert!(stdout(&shrink).contains("before: ") && stdout(&shrink).contains(" runs"), "{}", stdout(&shrink));
    let small: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("small.json")).unwrap()).unwrap();
    let size = |repro: &Value| {
        repro["faults"]["engine"]["faults"].as_array().map_or(0, Vec::len)
            + repro["faults"]["model"].as_array().map_or(0, Vec::len)
    };
    assert!(size(&small) < size(&recorded), "shrinking drops the pauses and the compaction: {small}");
    assert!(size(&small) >= 1, "a run without a loss passes");
    let replay = kubedst(&["replay", "small.json"], &directory);
    assert_eq!(replay.status.code(), Some(1), "the shrunk repro still fails, identically: {}", stderr(&replay));
    assert!(stdout(&replay).contains("converges"), "{}", stdout(&replay));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn check_determinism_passes_and_catches_injected_nondeterminism() {
    let directory = scratch("determinism");
    let clean = kubedst(&["check-determinism", SCENARIO, "--seeds", "0..3"], &directory);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("deterministic: 3 seeds"), "{}", stdout(&clean));
    let broken = kubedst(
        &["check-determinism", SCENARIO, "--seeds", "5..7", "--inject-nondeterminism", "--jobs", "1"],
        &directory,
    );
    assert_eq!(broken.status.code(), Some(3));
    let text = stdout(&broken);
    assert!(text.contains("NONDETERMINISTIC seed 5: first run "), "{text}");
    assert!(text.contains("NONDETERMINISTIC seed 6: first run "), "{text}");
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let directory = scratch("bad");
    for (arguments, expected) in [
        (vec!["sweep", SCENARIO, "--seeds", "9..3"], "the range is empty"),
        (vec!["sweep", SCENARIO, "--seeds", "0..3", "--shard", "4/4"], "expected a shard as I/N"),
        (vec!["sweep", "no-such-scenario", "--seeds", "0..3"], "no-such-scenario"),
        (vec!["replay", "missing.json"], "cannot read repro missing.json"),
    ] {
        let output = kubedst(&arguments, &directory);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{arguments:?}: {}", stderr(&output));
    }
    std::fs::write(directory.join("broken.json"), "{\n  \"format\": 1,\n  \"seed\": true\n}\n").unwrap();
    let output = kubedst(&["replay", "broken.json"], &directory);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("broken.json:3:"), "file:line:column: {}", stderr(&output));
    std::fs::remove_dir_all(&directory).unwrap();
}
