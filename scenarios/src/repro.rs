//! Repro files: everything needed to run a failing seed again, in one JSON file.
//!
//! A repro is self-contained: it embeds the scenario's text (so the file still replays after the
//! scenario file changed or moved), the seed, the fault plan that was used (drawn from the seed or
//! cut down by `kubedst shrink`), which of the scenario's timeline actions remain, and what the run
//! found: the trace hash that a replay must reproduce and the violations.
//!
//! Files are written atomically: a temporary file in the same directory, fsync, rename, so a
//! reader (or a CI artifact upload) never sees half a repro.

use kubedst_core::harness::{FaultPlan, RunReport, RunSpec, Verdict, ViolationReport};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The version of the repro format; a reader refuses other versions rather than guess.
pub const REPRO_FORMAT: u32 = 1;

/// One failing (or passing) run, as a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repro {
    /// [`REPRO_FORMAT`].
    pub format: u32,
    /// The `kubedst` version that wrote the file.
    pub tool_version: String,
    /// The scenario's name (a built-in name or the file name), for messages and replay commands.
    pub scenario_name: String,
    /// The whole text of the scenario file.
    pub scenario: String,
    /// The manifest files the scenario names: path as written in the scenario, and text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifest_files: Vec<(String, String)>,
    pub seed: u64,
    /// The fault plan of the run, engine and model faults.
    pub faults: FaultPlan,
    /// Indices into the scenario's timeline of the actions that remain; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_kept: Option<Vec<usize>>,
    /// The deliberate bugs switched on (`kubedst run --mutant`), by name; absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutants: Vec<String>,
    /// The trace hash the run gave; a replay must give the same.
    pub expected_trace_hash: String,
    pub verdict: Verdict,
    pub violations: Vec<ReproViolation>,
}

/// A violation as a repro records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReproViolation {
    pub invariant: String,
    pub at_ns: u64,
    pub message: String,
}

impl From<&ViolationReport> for ReproViolation {
    fn from(violation: &ViolationReport) -> ReproViolation {
        ReproViolation {
            invariant: violation.invariant.clone(),
            at_ns: violation.at_ns,
            message: violation.message.clone(),
        }
    }
}

impl Repro {
    /// The repro of a finished run of `scenario_text` with this fault plan and these actions.
    pub fn of_run(
        scenario_name: &str,
        scenario_text: &str,
        faults: FaultPlan,
        actions_kept: Option<Vec<usize>>,
        report: &RunReport,
    ) -> Repro {
        Repro {
            format: REPRO_FORMAT,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario_name: scenario_name.to_string(),
            scenario: scenario_text.to_string(),
            manifest_files: Vec::new(),
            seed: report.seed,
            faults,
            actions_kept,
            mutants: Vec::new(),
            expected_trace_hash: report.trace_hash.clone(),
            verdict: report.verdict,
            violations: report.violations.iter().map(ReproViolation::from).collect(),
        }
    }
}

/// Puts the repro's fault plan and remaining actions into a spec built from its scenario and seed.
/// An action index the scenario does not have is an error (the repro belongs to another scenario).
pub fn apply_to_spec(spec: &mut RunSpec, faults: &FaultPlan, actions_kept: Option<&[usize]>) -> Result<(), String> {
    spec.faults = faults.clone();
    if let Some(kept) = actions_kept {
        let total = spec.actions.len();
        if let Some(bad) = kept.iter().find(|index| **index >= total) {
            return Err(format!("the repro keeps timeline action {bad}, but the scenario has only {total} actions"));
        }
        spec.actions = kept.iter().map(|index| spec.actions[*index].clone()).collect();
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, written, flushed
/// to disk, then renamed over `path` (and the directory synced, so the rename survives a crash).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| format!("{}: not a file path", path.display()))?;
    let temporary = directory.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        // A directory cannot be opened for syncing everywhere; the rename has happened either way.
        if let Ok(directory) = fs::File::open(&directory) {
            let _ = directory.sync_all();
        }
        Ok(())
    })();
    result.map_err(|err| {
        let _ = fs::remove_file(&temporary);
        format!("cannot write {}: {err}", path.display())
    })
}

/// Writes a repro file atomically, as pretty JSON.
pub fn write_repro(path: &Path, repro: &Repro) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(repro).map_err(|err| format!("cannot encode the repro: {err}"))?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Reads a repro file. A malformed file is an error naming `file:line:column` and what is wrong.
pub fn read_repro(path: &Path) -> Result<Repro, String> {
    let text = fs::read_to_string(path).map_err(|err| format!("cannot read repro {}: {err}", path.display()))?;
    parse_repro(&path.display().to_string(), &text)
}

/// Parses a repro's text; `file_label` names it in errors.
pub fn parse_repro(file_label: &str, text: &str) -> Result<Repro, String> {
    let repro: Repro = serde_json::from_str(text).map_err(|err| {
        // serde_json ends its message with " at line L column C"; the location goes in front.
        let message = err.to_string();
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_string(),
            None => message,
        };
        format!("{file_label}:{}:{}: not a valid repro file: {message}", err.line().max(1), err.column().max(1))
    })?;
    if repro.format != REPRO_FORMAT {
        return Err(format!(
            "{file_label}: repro format {} is not supported (this kubedst reads format {REPRO_FORMAT})",
            repro.format
        ));
    }
    Ok(repro)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubedst_core::harness::{ModelFault, TimedModelFault};
    use kubedst_sim::{Fault, FaultSchedule, TimedFault};
    use std::time::Duration;

    fn sample() -> Repro {
        Repro {
            format: REPRO_FORMAT,
            tool_version: "0.1.0".into(),
            scenario_name: "demo".into(),
            scenario: "name: demo\n".into(),
            manifest_files: vec![("web.yaml".into(), "kind: Service\n".into())],
            seed: 42,
            faults: FaultPlan {
                engine: FaultSchedule::new(vec![TimedFault {
                    at: Duration::from_secs(3),
                    fault: Fault::Pause { machine: "node-0".into(), duration: Duration::from_millis(1500) },
                }]),
                model: vec![TimedModelFault { at: Duration::from_secs(9), fault: ModelFault::CompactNow }],
            },
            actions_kept: Some(vec![0, 2]),
            mutants: vec!["scheduler_ignores_taints".into()],
            expected_trace_hash: "00ff00ff00ff00ff".into(),
            verdict: Verdict::Fail,
            violations: vec![ReproViolation { invariant: "converges".into(), at_ns: 7, message: "x".into() }],
        }
    }

    #[test]
    fn a_repro_survives_a_write_and_a_read() {
        let directory = std::env::temp_dir().join(format!("kubedst-repro-test-{}", std::process::id()));
        fs::create_dir_all(&directory).unwrap();
        let path = directory.join("demo.repro.json");
        write_repro(&path, &sample()).unwrap();
        assert_eq!(read_repro(&path).unwrap(), sample());
        let leftovers: Vec<_> = fs::read_dir(&directory).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind: {leftovers:?}");
        fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn a_malformed_repro_names_file_line_and_column() {
        let text = serde_json::to_string_pretty(&sample()).unwrap().replace("\"seed\": 42", "\"seed\": \"forty\"");
        let line = text.lines().position(|line| line.contains("forty")).unwrap() + 1;
        let error = parse_repro("bad.json", &text).unwrap_err();
        assert!(error.starts_with(&format!("bad.json:{line}:")), "{error}");
        assert!(error.contains("invalid type"), "{error}");
        let error = parse_repro("unknown.json", "{\"format\": 1, \"colour\": 3}").unwrap_err();
        assert!(error.starts_with("unknown.json:1:") && error.contains("unknown field `colour`"), "{error}");
    }

    #[test]
    fn another_format_version_is_refused() {
        let text = serde_json::to_string(&sample()).unwrap().replace("\"format\":1", "\"format\":9");
        let error = parse_repro("future.json", &text).unwrap_err();
        assert!(error.contains("repro format 9 is not supported"), "{error}");
    }
}
