//! Tests of the `kubedst` binary as a user runs it: help, the scenario list, a run in text and
//! JSON, the trace file, exit codes.

use std::process::Command;

fn kubedst(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubedst"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the kubedst binary runs")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

#[test]
fn the_bare_binary_prints_help_naming_its_commands() {
    let output = kubedst(&[]);
    // clap prints usage to stderr and exits 2 when a command is required and missing.
    assert_eq!(output.status.code(), Some(2));
    let help = String::from_utf8(output.stderr).unwrap();
    for command in ["scenarios", "run"] {
        assert!(help.contains(command), "help names {command}: {help}");
    }
}

#[test]
fn version_and_help_succeed() {
    let output = kubedst(&["--version"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output).trim(), format!("kubedst {}", env!("CARGO_PKG_VERSION")));
    let output = kubedst(&["run", "--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    for flag in ["--seed", "--faults", "--trace", "--format", "Exit codes"] {
        assert!(help.contains(flag), "run --help mentions {flag}: {help}");
    }
}

#[test]
fn scenarios_lists_every_builtin_with_its_description() {
    let output = kubedst(&["scenarios"]);
    assert!(output.status.success());
    let text = stdout(&output);
    let names = kubedst_scenarios::builtin_names();
    assert_eq!(text.lines().count(), names.len(), "one line per built-in: {text}");
    for (line, name) in text.lines().zip(&names) {
        let description = kubedst_scenarios::Scenario::builtin(name).unwrap().description().to_string();
        assert!(line.starts_with(name) && line.ends_with(&description), "{line:?} is {name} and its description");
    }
}

#[test]
fn run_prints_the_plan_and_the_verdict_and_json_has_the_report_fields() {
    let output = kubedst(&["run", "rolling-update", "--seed", "3"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("seed 3"), "{text}");
    assert!(text.contains("set image deployment/web web=web:v2"), "{text}");
    assert!(text.trim_end().lines().last().unwrap().starts_with("verdict: PASS"), "{text}");

    let output = kubedst(&["run", "rolling-update", "--seed", "3", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("one JSON object");
    assert_eq!(json["scenario"], "rolling-update");
    assert_eq!(json["seed"], 3);
    assert_eq!(json["verdict"], "pass");
    for field in ["trace_hash", "virtual_time_ns", "events", "wall_ms", "violations", "faults_fired", "pending"] {
        assert!(!json[field].is_null(), "json has {field}: {json}");
    }
    // The same seed is the same run: the text output's trace hash is the JSON's.
    let hash = json["trace_hash"].as_str().unwrap();
    assert!(text.contains(&format!("trace hash {hash}")), "{text}");
}

#[test]
fn a_violated_invariant_exits_1_and_prints_the_replay_command() {
    // The bad rollout is never undone here, so the Deployment cannot converge on web:v2.
    let directory = std::env::temp_dir().join(format!("kubedst-binary-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let scenario = kubedst_scenarios::Scenario::builtin("bad-rollout-undo").unwrap().source;
    let stuck = scenario
        .replace("name: bad-rollout-undo", "name: stuck-rollout")
        .replace("  - at: 60s\n    rollout_undo: {deployment: web}\n", "")
        .replace("liveness_bound: 60s", "liveness_bound: 10s");
    assert_ne!(stuck, scenario);
    let path = directory.join("stuck.yaml");
    std::fs::write(&path, stuck).unwrap();
    let repros = directory.join("repros");
    let output = kubedst(&["run", path.to_str().unwrap(), "--seed", "2", "--repro-dir", repros.to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("converges: deployment default/web"), "{text}");
    assert!(text.contains(&format!("replay: kubedst run {} --seed 2", path.display())), "{text}");
    // The failure left a repro file, and replaying it gives the same failing run (exit 1, not 3).
    let repro = repros.join("stuck-seed-2.repro.json");
    assert!(repro.is_file(), "{}", String::from_utf8_lossy(&output.stderr));
    let replay = kubedst(&["replay", repro.to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(1), "{}{}", stdout(&replay), String::from_utf8_lossy(&replay.stderr));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn the_trace_has_a_line_per_write_fault_and_action_and_appears_whole() {
    let directory = std::env::temp_dir().join(format!("kubedst-trace-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("run.jsonl");
    let output = kubedst(&["run", "watch-compaction-relist", "--trace", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let count = |kind: &str| lines.iter().filter(|line| line["type"] == kind).count();
    let writes: u64 = report["observed_writes"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(count("write") as u64, writes, "one line per committed write");
    assert_eq!(count("fault"), 5, "the scenario's five compactions");
    assert_eq!(count("action"), 3, "the workload, the image change, the scale");
    let times: Vec<u64> = lines.iter().map(|line| line["at_ns"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "lines are in time order");
    let first_write = lines.iter().find(|line| line["type"] == "write").unwrap();
    assert_eq!(first_write["verb"], "create");
    assert!(first_write["object"]["metadata"]["name"].is_string(), "{first_write}");
    // Nothing but the trace is left in the directory: the temporary file was renamed.
    assert_eq!(std::fs::read_dir(&directory).unwrap().count(), 1);
    std::fs::remove_dir_all(&directory).unwrap();
}
