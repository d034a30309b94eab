//! Kubelet container restart backoff (CrashLoopBackOff): `pkg/kubelet/kuberuntime/
//! kuberuntime_manager.go` `doBackOff` over client-go `util/flowcontrol/backoff.go` `Backoff`,
//! created with 10 s initial and 300 s maximum (`MaxContainerBackOff`).

/// First restart delay.
pub const INITIAL_BACKOFF_NS: u64 = 10 * 1_000_000_000;
/// Restart delay cap.
pub const MAX_BACKOFF_NS: u64 = 300 * 1_000_000_000;

/// One container's restart backoff entry (`flowcontrol.Backoff` for one key). Upstream adds no
/// jitter for the kubelet (jitter factor 0), so this is exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashLoopBackOff {
    /// The current delay and the time of its last update, `None` before the first exit.
    entry: Option<(u64, u64)>,
}

impl CrashLoopBackOff {
    /// No exit seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current delay, if any.
    pub fn backoff_ns(&self) -> Option<u64> {
        self.entry.map(|(backoff, _)| backoff)
    }

    /// `hasExpired`: more than twice the maximum (600 s, "10 minutes of clean running") since the
    /// last update; the entry then restarts from 10 s.
    fn expired(&self, event_ns: u64) -> bool {
        match self.entry {
            None => true,
            Some((_, last_update)) => event_ns.saturating_sub(last_update) > 2 * MAX_BACKOFF_NS,
        }
    }

    /// `Backoff.Next(id, eventTime)`: 10 s for a new or expired entry, else double, capped at 300 s:
    /// 10, 20, 40, 80, 160, 300, 300, ... Records `now_ns` as the last update; returns the delay.
    pub fn next(&mut self, event_ns: u64, now_ns: u64) -> u64 {
        let backoff = match self.entry {
            Some((backoff, _)) if !self.expired(event_ns) => backoff.saturating_mul(2).min(MAX_BACKOFF_NS),
            _ => INITIAL_BACKOFF_NS,
        };
        self.entry = Some((backoff, now_ns));
        backoff
    }

    /// `Backoff.IsInBackOffSince(id, eventTime)`: the container that finished at `finished_ns` may
    /// not restart yet at `now_ns` (`now - finished < backoff`, unless the entry expired).
    pub fn is_in_backoff_since(&self, finished_ns: u64, now_ns: u64) -> bool {
        match self.entry {
            None => false,
            Some((backoff, _)) => !self.expired(finished_ns) && now_ns.saturating_sub(finished_ns) < backoff,
        }
    }

    /// `doBackOff` at a sync after the container finished at `finished_ns`: `Some(restart_at_ns)`
    /// while in backoff (the pod shows CrashLoopBackOff); otherwise `None` and the entry advances
    /// with [`Self::next`], and the container is restarted now. So the first exit restarts at once
    /// and sets 10 s; the next exit waits 10 s from its finish, then sets 20 s; and so on.
    pub fn on_sync_after_exit(&mut self, finished_ns: u64, now_ns: u64) -> Option<u64> {
        if self.is_in_backoff_since(finished_ns, now_ns) {
            return self.entry.map(|(backoff, _)| finished_ns.saturating_add(backoff));
        }
        self.next(finished_ns, now_ns);
        None
    }
}
