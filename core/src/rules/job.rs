//! Job controller arithmetic (`pkg/controller/job/job_controller.go`, `backoff_utils.go`).

/// Delay after the first pod failure (`DefaultJobPodFailureBackOff`, 10 s).
pub const DEFAULT_POD_FAILURE_BACKOFF_NS: u64 = 10 * 1_000_000_000;
/// Cap of the pod-failure delay (`MaxJobPodFailureBackOff`, 10 minutes).
pub const MAX_POD_FAILURE_BACKOFF_NS: u64 = 600 * 1_000_000_000;
/// Most pods a Job sync creates or deletes (`MaxPodCreateDeletePerSync`).
pub const MAX_POD_CREATE_DELETE_PER_SYNC: i32 = 500;
/// backoffLimit when unset.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// The backoff before creating pods again after `failures_after_last_success` consecutive pod
/// failures (`getRemainingTimeForFailuresCount`): 0 for no failure, else 10 s doubled per further
/// failure, capped at 10 minutes (10, 20, 40, 80, 160, 320, 600, 600, ... s).
pub fn pod_failure_backoff_ns(failures_after_last_success: u32) -> u64 {
    if failures_after_last_success == 0 {
        return 0;
    }
    let mut backoff = DEFAULT_POD_FAILURE_BACKOFF_NS;
    for _ in 1..failures_after_last_success {
        backoff = backoff.saturating_mul(2);
        if backoff >= MAX_POD_FAILURE_BACKOFF_NS {
            return MAX_POD_FAILURE_BACKOFF_NS;
        }
    }
    backoff
}

/// `backoffRecord.getRemainingTime`: how long pod creation still waits at `now_ns` after the last
/// failure at `last_failure_ns`; 0 once the backoff has elapsed (upstream: `backoff < elapsed`
/// gives 0, so at exactly `elapsed == backoff` the remainder is 0 too).
pub fn pod_failure_backoff_remaining_ns(failures_after_last_success: u32, last_failure_ns: u64, now_ns: u64) -> u64 {
    let backoff = pod_failure_backoff_ns(failures_after_last_success);
    let elapsed = now_ns.saturating_sub(last_failure_ns);
    backoff.saturating_sub(elapsed)
}

/// What a Job sync does with its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPodAction {
    /// Nothing to do.
    None,
    /// Create this many pods (at most 500).
    Create(i32),
    /// Delete this many active pods (at most 500).
    Delete(i32),
}

/// The active pod count a Job wants (`manageJob`): without completions, `parallelism` until a pod
/// succeeded, then the current `active` (let them finish); with completions,
/// `completions - succeeded` clamped to `[0, parallelism]`. A suspended Job wants 0.
pub fn want_active(parallelism: i32, completions: Option<i32>, active: i32, succeeded: i32, suspended: bool) -> i32 {
    if suspended {
        return 0;
    }
    match completions {
        None => {
            if succeeded > 0 {
                active
            } else {
                parallelism
            }
        }
        Some(c) => (i64::from(c) - i64::from(succeeded)).clamp(0, i64::from(parallelism.max(0))) as i32,
    }
}

/// `manageJob`'s decision: delete `active - wantActive` when positive; else create
/// `wantActive - terminating - active` when positive (terminating pods count only with
/// podReplacementPolicy Failed: pass 0 otherwise); both capped at 500 per sync. Creation must also
/// wait for [`pod_failure_backoff_remaining_ns`] to reach 0.
pub fn job_pod_action(want_active: i32, active: i32, terminating_counted: i32) -> JobPodAction {
    let remove = i64::from(active) - i64::from(want_active);
    if remove > 0 {
        return JobPodAction::Delete(remove.min(i64::from(MAX_POD_CREATE_DELETE_PER_SYNC)) as i32);
    }
    let create = i64::from(want_active) - i64::from(terminating_counted) - i64::from(active);
    if create > 0 {
        return JobPodAction::Create(create.min(i64::from(MAX_POD_CREATE_DELETE_PER_SYNC)) as i32);
    }
    JobPodAction::None
}

/// `exceedsBackoffLimit` in `syncJob`: more failed pods than backoffLimit (`failed > limit`).
pub fn backoff_limit_exceeded(failed: i32, backoff_limit: i32) -> bool {
    failed > backoff_limit
}

/// `pastBackoffLimitOnFailure`: for restartPolicy OnFailure, the restarts of all containers (init
/// included) of Pending and Running pods summed; with backoffLimit 0 any restart exceeds it, else
/// `restarts >= limit`.
pub fn past_backoff_limit_on_failure(total_restarts_of_active_pods: i64, backoff_limit: i32) -> bool {
    if backoff_limit == 0 {
        total_restarts_of_active_pods > 0
    } else {
        total_restarts_of_active_pods >= i64::from(backoff_limit)
    }
}
