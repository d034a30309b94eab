//! `--trace FILE`: the run as JSON Lines, one line per committed store write, per planned fault and
//! per scenario action, in virtual-time order.
//!
//! Writes are read from etcd's committed history by an observer that the harness feeds like an
//! invariant checker, so the trace is ground truth. Faults and actions are written from the plan at
//! their times, before the first write at or after that time. The file is written to a temporary
//! file in the same directory and renamed into place at the end, so a partial trace never appears
//! under the requested name.

use crate::run::describe_action;
use kubedst_core::checkers::{Change, Checker, Label, Violation};
use kubedst_core::harness::{Action, FaultPlan, TimedAction};
use serde_json::json;
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The trace file being written.
pub struct TraceSink {
    shared: Rc<RefCell<TraceWriter>>,
}

struct TraceWriter {
    out: BufWriter<File>,
    temporary: PathBuf,
    destination: PathBuf,
    /// Planned actions and faults not yet written, in time order: (at_ns, line).
    planned: Vec<(u64, serde_json::Value)>,
    next_planned: usize,
    error: Option<std::io::Error>,
}

impl TraceWriter {
    fn line(&mut self, value: &serde_json::Value) {
        if self.error.is_some() {
            return;
        }
        let result = serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(error) = result {
            self.error = Some(error);
        }
    }

    /// Writes every planned line due at or before `at_ns`.
    fn planned_until(&mut self, at_ns: u64) {
        while let Some((at, value)) = self.planned.get(self.next_planned).cloned() {
            if at > at_ns {
                break;
            }
            self.next_planned += 1;
            self.line(&value);
        }
    }
}

impl TraceSink {
    /// Opens the temporary file next to `destination`.
    pub fn create(destination: &Path, actions: &[TimedAction], faults: &FaultPlan) -> Result<TraceSink, String> {
        let file_name = destination
            .file_name()
            .ok_or_else(|| format!("--trace {}: not a file path", destination.display()))?;
        let directory = destination.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temporary = directory.join(format!(".{}.{}.tmp", file_name.to_string_lossy(), std::process::id()));
        let file = File::create(&temporary).map_err(|error| format!("--trace {}: {error}", destination.display()))?;
        let nanos = |span: std::time::Duration| u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        let mut planned: Vec<(u64, serde_json::Value)> = Vec::new();
        for timed in actions {
            let mut line = json!({
                "type": "action",
                "at_ns": nanos(timed.at),
                "action": action_name(&timed.action),
                "command": describe_action(&timed.action),
            });
            if let Action::Apply(objects) = &timed.action {
                line["objects"] = serde_json::to_value(objects).unwrap_or_default();
            }
            planned.push((nanos(timed.at), line));
        }
        for timed in &faults.engine.faults {
            planned.push((
                nanos(timed.at),
                json!({"type": "fault", "at_ns": nanos(timed.at), "source": "engine", "fault": timed.fault}),
            ));
        }
        for timed in &faults.model {
            planned.push((
                nanos(timed.at),
                json!({"type": "fault", "at_ns": nanos(timed.at), "source": "model", "fault": timed.fault}),
            ));
        }
        // A stable sort keeps actions before faults at the same time, as the harness orders them.
        planned.sort_by_key(|(at, _)| *at);
        let writer = TraceWriter {
            out: BufWriter::new(file),
            temporary,
            destination: destination.to_path_buf(),
            planned,
            next_planned: 0,
            error: None,
        };
        Ok(TraceSink { shared: Rc::new(RefCell::new(writer)) })
    }

    /// The observer the harness feeds with every committed write.
    pub fn checker(&self) -> Box<dyn Checker> {
        Box::new(TraceObserver { shared: self.shared.clone() })
    }

    /// Writes what remains, flushes and renames the file into place.
    pub fn finish(self) -> Result<(), String> {
        let mut writer = self.shared.borrow_mut();
        writer.planned_until(u64::MAX);
        let flushed = writer.out.flush();
        let result = match (writer.error.take(), flushed) {
            (Some(error), _) | (None, Err(error)) => Err(error),
            (None, Ok(())) => std::fs::rename(&writer.temporary, &writer.destination),
        };
        result.map_err(|error| {
            let _ = std::fs::remove_file(&writer.temporary);
            format!("{}: {error}", writer.destination.display())
        })
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Apply(_) => "apply",
        Action::SetImage { .. } => "set_image",
        Action::Scale { .. } => "scale",
        Action::RolloutUndo { .. } => "rollout_undo",
        Action::SetPaused { paused: true, .. } => "pause",
        Action::SetPaused { paused: false, .. } => "resume",
        Action::Delete { .. } => "delete",
        Action::Cordon { unschedulable: true, .. } => "cordon",
        Action::Cordon { unschedulable: false, .. } => "uncordon",
        Action::Drain { .. } => "drain",
        Action::SetTraffic { .. } => "traffic",
    }
}

/// Sees every committed write (as a checker does) and writes it as a line; never reports a
/// violation.
struct TraceObserver {
    shared: Rc<RefCell<TraceWriter>>,
}

impl Checker for TraceObserver {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn label(&self) -> Label {
        Label::Always
    }

    fn observe(&mut self, change: &Change) -> Vec<Violation> {
        let mut writer = self.shared.borrow_mut();
        writer.planned_until(change.at_ns);
        let verb = match (&change.previous, &change.object) {
            (None, _) => "create",
            (Some(_), Some(_)) => "update",
            (Some(_), None) => "delete",
        };
        // A delete line carries the object as it was last stored.
        let object = change.object.as_ref().or(change.previous.as_ref());
        let line = json!({
            "type": "write",
            "at_ns": change.at_ns,
            "revision": change.revision,
            "verb": verb,
            "kind": change.key.kind.as_str(),
            "namespace": change.key.namespace,
            "name": change.key.name,
            "object": object.map(|object| serde_json::to_value(&**object).unwrap_or_default()),
        });
        writer.line(&line);
        Vec::new()
    }
}
