//! The trace: a compact record per step, folded into a stable 64-bit hash, optionally kept in
//! memory and optionally written as JSON Lines.

use crate::fault::FaultKind;
use crate::hash::StableHasher;
use crate::network::DropReason;
use crate::time::Time;
use serde::Serialize;

/// What a trace record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A component (re)started.
    Start,
    /// A plain message reached its component.
    Deliver,
    /// A request reached its server.
    Request,
    /// A response reached its caller.
    Response,
    /// A response came after its request had timed out, and was discarded.
    LateResponse,
    RequestTimeout,
    StreamOpen,
    StreamMessage,
    StreamBreak,
    Timer,
    Drop(DropReason),
    Duplicate,
    /// The reorder fault held a message back.
    Delay,
    Fault(FaultKind),
    /// A fault struck something it could not act on (crashing a machine that is down, say).
    FaultSkipped(FaultKind),
    /// A fault healed by itself, or the fault phase ended.
    Heal,
    Crash,
    Restart,
}

impl RecordKind {
    /// A small fixed code for the hash; the order of this list is part of the trace format.
    fn code(self) -> u64 {
        match self {
            RecordKind::Start => 1,
            RecordKind::Deliver => 2,
            RecordKind::Request => 3,
            RecordKind::Response => 4,
            RecordKind::LateResponse => 5,
            RecordKind::RequestTimeout => 6,
            RecordKind::StreamOpen => 7,
            RecordKind::StreamMessage => 8,
            RecordKind::StreamBreak => 9,
            RecordKind::Timer => 10,
            RecordKind::Drop(reason) => 16 + reason as u64,
            RecordKind::Duplicate => 24,
            RecordKind::Delay => 25,
            RecordKind::Fault(kind) => 32 + kind as u64,
            RecordKind::FaultSkipped(kind) => 64 + kind as u64,
            RecordKind::Heal => 96,
            RecordKind::Crash => 97,
            RecordKind::Restart => 98,
        }
    }

    pub fn name(self) -> String {
        match self {
            RecordKind::Drop(reason) => format!("drop_{}", reason.as_str()),
            RecordKind::Fault(kind) => format!("fault_{kind}"),
            RecordKind::FaultSkipped(kind) => format!("fault_skipped_{kind}"),
            other => serde_json::to_value(other).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        }
    }
}

/// "No component" in a record's component or peer field.
pub const NO_COMPONENT: u32 = u32::MAX;

/// One step of a run, in 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// True (engine) time of the step.
    pub time: Time,
    pub kind: RecordKind,
    /// The component acted on (the receiver of a message), or the machine index for machine faults.
    pub subject: u32,
    /// The other end (the sender of a message), if any.
    pub peer: u32,
    /// The message's or timer's digest, or a request or stream id.
    pub detail: u64,
}

/// Where the trace goes.
pub(crate) struct Trace {
    hasher: StableHasher,
    pub steps: u64,
    pub records: Option<Vec<TraceRecord>>,
    pub jsonl: Option<Box<dyn std::io::Write>>,
    pub jsonl_error: Option<std::io::Error>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace { hasher: StableHasher::new(), steps: 0, records: None, jsonl: None, jsonl_error: None }
    }

    #[inline]
    pub fn fold(&mut self, record: &TraceRecord) {
        self.steps += 1;
        self.hasher.write_u64(record.time.as_nanos());
        self.hasher.write_u64(record.kind.code() | (u64::from(record.subject) << 8) ^ (u64::from(record.peer) << 36));
        self.hasher.write_u64(record.detail);
        if let Some(records) = &mut self.records {
            records.push(*record);
        }
    }

    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }
}
