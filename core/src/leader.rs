//! Leader election over a Lease, as client-go's `k8s.io/client-go/tools/leaderelection` does it
//! with a `LeaseLock` (`resourcelock/leaselock.go`), sans-IO.
//!
//! The elector is a state machine that its host drives: the host hands it the machine's clock,
//! the results of the API calls it asked for and the timers it set; the elector answers with
//! [`ElectorEffect`]s (requests to send, timers to set, and the `OnStartedLeading` /
//! `OnStoppedLeading` callbacks). It makes at most one API call at a time, as client-go's
//! `tryAcquireOrRenew` does (its calls are synchronous).
//!
//! The rules, from `leaderelection.go`:
//! - `acquire`: `tryAcquireOrRenew` at once, then every `RetryPeriod` with jitter factor 1.2
//!   (`wait.JitterUntil`) until it succeeds; then `OnStartedLeading`.
//! - `tryAcquireOrRenew`: a leader whose observed lease is still valid first tries the fast path, an
//!   Update of the Lease it last wrote (with that resourceVersion); otherwise (or if that fails) it
//!   Gets the Lease, Creates it if absent, and gives up if another holder's lease is still valid;
//!   else it Updates it with the resourceVersion it read (optimistic concurrency: a 409 means
//!   someone else won), with `leaseTransitions + 1` when the holder changes.
//! - Validity (`isLeaseValid`): `observedTime + leaseDurationSeconds > now`, where `observedTime`
//!   is when THIS elector last saw the record change (`setObservedRecord`), on its own clock. The
//!   holder's `renewTime` is never compared with the local clock, so clock offsets between
//!   machines do not matter.
//! - `renew`: a round starts at once and then `RetryPeriod` after each successful round
//!   (`wait.Until`); within a round `tryAcquireOrRenew` is polled every `RetryPeriod` until it
//!   succeeds or `RenewDeadline` (from the round's start) passes; then the elector stops leading.
//!
//! Durations are measured with timers, which the engine converts to true time when they are set:
//! like Go's monotonic clock, a step of the wall clock (`skew_clock`) does not move them, but a
//! clock that runs slow (`set_clock_drift`) makes them late. client-go assumes bounded drift
//! (`RenewDeadline < LeaseDuration` is its only margin, and the leaderelection package doc says so:
//! "relies on ... the clocks of the participants run at the same rate"); a drifting leader can
//! keep acting after another replica has taken the lease over.
//!
//! Simplified: the poll within a renew round is sliding (the next try starts `RetryPeriod` after
//! the previous one returned, not after it started); a request in flight when the renew deadline
//! passes is abandoned rather than cancelled; `ReleaseOnCancel` and the `electionChecker`
//! watchdog are not modelled.

use crate::api::{ApiError, ApiErrorReason, ApiOk, ApiRequest, ApiResult, ObjectKey};
use crate::objects::cluster::LeaseSpec;
use crate::objects::{Kind, Lease, Object, ObjectMeta};
use kubedst_sim::SimRng;
use std::rc::Rc;
use std::time::Duration;

/// kube-controller-manager's and kube-scheduler's `--leader-elect-lease-duration` default.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// `--leader-elect-renew-deadline` default.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// `--leader-elect-retry-period` default.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// `leaderelection.JitterFactor`: the acquire loop waits `RetryPeriod * (1 + rand * 1.2)`.
const JITTER_FACTOR_PERCENT: u64 = 120;

/// What to elect and how (client-go's `LeaderElectionConfig` with a `LeaseLock`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// The Lease's namespace (`kube-system` for the control plane).
    pub namespace: String,
    /// The Lease's name (`kube-controller-manager`, `kube-scheduler`).
    pub name: String,
    /// This candidate's `holderIdentity`.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// The control plane's defaults for the lease `kube-system/<name>`.
    pub fn new(name: &str, identity: &str) -> LeaderElectionConfig {
        LeaderElectionConfig {
            namespace: "kube-system".to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    pub fn lease_key(&self) -> ObjectKey {
        ObjectKey::new(Kind::Lease, &self.namespace, &self.name)
    }
}

/// What the elector asks its host to do.
#[derive(Clone, Debug)]
pub enum ElectorEffect {
    /// Send this API call and hand its result to [`LeaderElector::on_result`].
    Send(ApiRequest),
    /// Set a timer on the machine's clock; hand `token` to [`LeaderElector::on_timer`] when it fires.
    SetTimer { after: Duration, token: u64 },
    /// `OnStartedLeading`: the host may act from now on.
    StartedLeading,
    /// `OnStoppedLeading`: the host must stop acting at once.
    StoppedLeading,
}

/// Where the elector is in client-go's `Run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectorPhase {
    /// In `acquire`.
    Candidate,
    /// In `renew`, between `OnStartedLeading` and `OnStoppedLeading`.
    Leading,
    /// `renew` returned: `OnStoppedLeading` ran. The host restarts the elector (the process exits
    /// and is restarted upstream).
    Stopped,
}

/// The API call in flight, and where in `tryAcquireOrRenew` it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// 1. The leader's optimistic Update of the record it last wrote.
    FastUpdate,
    /// 2. Get the record.
    Get,
    /// 2. Create it (it was absent).
    Create,
    /// 4. Update it with the resourceVersion just read.
    Update,
}

/// Counters for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElectorStats {
    /// `tryAcquireOrRenew` calls that returned true / false.
    pub attempts_succeeded: u64,
    pub attempts_failed: u64,
    /// Updates or creates that lost the optimistic-concurrency race (409).
    pub conflicts: u64,
    /// Times the elector started / stopped leading.
    pub started_leading: u64,
    pub stopped_leading: u64,
}

/// client-go's `LeaderElector` over a `LeaseLock`, sans-IO.
#[derive(Debug)]
pub struct LeaderElector {
    config: LeaderElectionConfig,
    phase: ElectorPhase,
    /// `LeaseLock.lease`: the Lease as the last Get, Create or Update returned it.
    lease: Option<Rc<Object>>,
    /// `observedRecord`: the record last seen (or written), and whether `observedTime +
    /// leaseDuration` is still ahead (a timer set at `observedTime` clears it).
    observed: Option<LeaseSpec>,
    observed_valid: bool,
    /// The call in flight, with the record `tryAcquireOrRenew` wants to write and its start time.
    step: Option<Step>,
    record: LeaseSpec,
    /// Live timer tokens: the next try, the renew round's deadline, the observed record's expiry.
    retry_timer: Option<u64>,
    deadline_timer: Option<u64>,
    expiry_timer: Option<u64>,
    next_token: u64,
    pub stats: ElectorStats,
}

impl LeaderElector {
    pub fn new(config: LeaderElectionConfig) -> LeaderElector {
        LeaderElector {
            config,
            phase: ElectorPhase::Candidate,
            lease: None,
            observed: None,
            observed_valid: false,
            step: None,
            record: LeaseSpec::default(),
            retry_timer: None,
            deadline_timer: None,
            expiry_timer: None,
            next_token: 0,
            stats: ElectorStats::default(),
        }
    }

    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    pub fn phase(&self) -> ElectorPhase {
        self.phase
    }

    /// Between `OnStartedLeading` and `OnStoppedLeading`: whether the host may act.
    pub fn is_leading(&self) -> bool {
        self.phase == ElectorPhase::Leading
    }

    /// client-go's `IsLeader`: the observed record names this candidate (true for a while before
    /// `OnStartedLeading`, e.g. after a restart that finds its own old record).
    pub fn observed_holder_is_me(&self) -> bool {
        self.observed.as_ref().and_then(|record| record.holder_identity.as_deref()) == Some(&self.config.identity)
    }

    /// The record last observed (`GetLeader` reads its holder).
    pub fn observed_record(&self) -> Option<&LeaseSpec> {
        self.observed.as_ref()
    }

    /// Whether an API call is outstanding (its result must come to [`LeaderElector::on_result`]).
    pub fn awaiting_result(&self) -> bool {
        self.step.is_some()
    }

    /// `Run`: starts `acquire` with an immediate try.
    pub fn start(&mut self, now_ns: u64) -> Vec<ElectorEffect> {
        let mut out = Vec::new();
        self.try_acquire_or_renew(now_ns, &mut out);
        out
    }

    /// Models the process exiting after `OnStoppedLeading` and starting again: every bit of state
    /// is dropped (counters and timer tokens excepted, so old timers stay void), then `acquire`
    /// begins.
    pub fn restart(&mut self, now_ns: u64) -> Vec<ElectorEffect> {
        let (stats, next_token) = (self.stats, self.next_token);
        *self = LeaderElector::new(self.config.clone());
        self.stats = stats;
        self.next_token = next_token;
        self.start(now_ns)
    }

    /// A timer the elector asked for fired. Unknown (stale) tokens are ignored.
    pub fn on_timer(&mut self, token: u64, now_ns: u64) -> Vec<ElectorEffect> {
        let mut out = Vec::new();
        if self.expiry_timer == Some(token) {
            self.expiry_timer = None;
            self.observed_valid = false;
        } else if self.deadline_timer == Some(token) {
            self.deadline_timer = None;
            if self.phase == ElectorPhase::Leading {
                // The renew round's context timed out: "failed to renew lease", OnStoppedLeading.
                self.phase = ElectorPhase::Stopped;
                self.step = None;
                self.retry_timer = None;
                self.stats.stopped_leading += 1;
                out.push(ElectorEffect::StoppedLeading);
            }
        } else if self.retry_timer == Some(token) {
            self.retry_timer = None;
            match self.phase {
                ElectorPhase::Candidate => self.try_acquire_or_renew(now_ns, &mut out),
                ElectorPhase::Leading => {
                    if self.deadline_timer.is_none() {
                        // A new renew round (wait.Until's next period).
                        self.deadline_timer = Some(self.timer(self.config.renew_deadline, &mut out));
                    }
                    self.try_acquire_or_renew(now_ns, &mut out);
                }
                ElectorPhase::Stopped => {}
            }
        }
        out
    }

    /// The result of the API call the elector asked for last.
    pub fn on_result(&mut self, result: &ApiResult, rng: &mut SimRng) -> Vec<ElectorEffect> {
        let mut out = Vec::new();
        let Some(step) = self.step.take() else { return out };
        match (step, result) {
            (Step::FastUpdate, Ok(ApiOk::Object(lease))) => {
                self.lease = Some(lease.clone());
                let record = self.record.clone();
                self.set_observed(record, &mut out);
                self.attempt_done(true, rng, &mut out);
            }
            (Step::FastUpdate, Err(error)) => {
                // "Failed to update lock optimistically, falling back to slow path".
                self.count_conflict(error);
                self.send(Step::Get, ApiRequest::Get { key: self.config.lease_key() }, &mut out);
            }
            (Step::Get, Ok(ApiOk::Object(lease))) => {
                self.lease = Some(lease.clone());
                let current = match &**lease {
                    Object::Lease(lease) => lease.spec.clone(),
                    _ => LeaseSpec::default(),
                };
                // 3. A changed record restarts the observed time.
                if self.observed.as_ref() != Some(&current) {
                    self.set_observed(current.clone(), &mut out);
                }
                let held = current.holder_identity.as_deref().is_some_and(|holder| !holder.is_empty());
                if held && self.observed_valid && !self.observed_holder_is_me() {
                    // "lock is held by %v and has not yet expired".
                    self.attempt_done(false, rng, &mut out);
                    return out;
                }
                // 4. Keep acquireTime and the transition count when renewing; count a takeover.
                if self.observed_holder_is_me() {
                    self.record.acquire_time_ns = current.acquire_time_ns;
                    self.record.lease_transitions = current.lease_transitions;
                } else {
                    self.record.lease_transitions = Some(current.lease_transitions.unwrap_or(0) + 1);
                }
                let request = ApiRequest::Update { object: self.lease_with(&self.record) };
                self.send(Step::Update, request, &mut out);
            }
            (Step::Get, Err(error)) if error.reason == ApiErrorReason::NotFound => {
                let request = ApiRequest::Create { object: self.lease_with(&self.record) };
                self.send(Step::Create, request, &mut out);
            }
            (Step::Create | Step::Update, Ok(ApiOk::Object(lease))) => {
                self.lease = Some(lease.clone());
                let record = self.record.clone();
                self.set_observed(record, &mut out);
                self.attempt_done(true, rng, &mut out);
            }
            (_, result) => {
                if let Err(error) = result {
                    self.count_conflict(error);
                }
                self.attempt_done(false, rng, &mut out);
            }
        }
        out
    }

    fn count_conflict(&mut self, error: &ApiError) {
        if matches!(error.reason, ApiErrorReason::Conflict | ApiErrorReason::AlreadyExists) {
            self.stats.conflicts += 1;
        }
    }

    /// `tryAcquireOrRenew`, up to its first API call.
    fn try_acquire_or_renew(&mut self, now_ns: u64, out: &mut Vec<ElectorEffect>) {
        self.record = LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs() as i32),
            acquire_time_ns: Some(now_ns),
            renew_time_ns: Some(now_ns),
            lease_transitions: None,
        };
        // 1. The fast path: a leader whose lease is valid updates the record it last wrote.
        if self.observed_holder_is_me() && self.observed_valid && self.lease.is_some() {
            let observed = self.observed.as_ref().expect("a leader has observed its record");
            self.record.acquire_time_ns = observed.acquire_time_ns;
            self.record.lease_transitions = observed.lease_transitions;
            let request = ApiRequest::Update { object: self.lease_with(&self.record) };
            self.send(Step::FastUpdate, request, out);
            return;
        }
        self.send(Step::Get, ApiRequest::Get { key: self.config.lease_key() }, out);
    }

    /// `tryAcquireOrRenew` returned `succeeded`.
    fn attempt_done(&mut self, succeeded: bool, rng: &mut SimRng, out: &mut Vec<ElectorEffect>) {
        if succeeded {
            self.stats.attempts_succeeded += 1;
        } else {
            self.stats.attempts_failed += 1;
        }
        match (self.phase, succeeded) {
            (ElectorPhase::Candidate, true) => {
                self.phase = ElectorPhase::Leading;
                self.stats.started_leading += 1;
                out.push(ElectorEffect::StartedLeading);
                // renew: wait.Until runs its first round at once.
                self.deadline_timer = None;
                self.retry_timer = Some(self.timer(Duration::ZERO, out));
            }
            (ElectorPhase::Candidate, false) => {
                let jitter_ns = rng.below(self.config.retry_period.as_nanos() as u64 * JITTER_FACTOR_PERCENT / 100);
                let after = self.config.retry_period + Duration::from_nanos(jitter_ns);
                self.retry_timer = Some(self.timer(after, out));
            }
            (ElectorPhase::Leading, true) => {
                // The round succeeded: the next one starts a RetryPeriod later, with a new deadline.
                self.deadline_timer = None;
                self.retry_timer = Some(self.timer(self.config.retry_period, out));
            }
            (ElectorPhase::Leading, false) => {
                // Poll again within the round; the round's deadline timer keeps running.
                self.retry_timer = Some(self.timer(self.config.retry_period, out));
            }
            (ElectorPhase::Stopped, _) => {}
        }
    }

    /// `setObservedRecord`: the record and `observedTime = now`.
    fn set_observed(&mut self, record: LeaseSpec, out: &mut Vec<ElectorEffect>) {
        let seconds = record.lease_duration_seconds.filter(|seconds| *seconds > 0);
        let duration = seconds.map_or(self.config.lease_duration, |seconds| Duration::from_secs(seconds as u64));
        self.observed = Some(record);
        self.observed_valid = true;
        self.expiry_timer = Some(self.timer(duration, out));
    }

    /// The Lease to write: the one last read (its resourceVersion is the precondition), or a new
    /// one, with `record` as its spec.
    fn lease_with(&self, record: &LeaseSpec) -> Rc<Object> {
        let mut lease = match self.lease.as_deref() {
            Some(Object::Lease(lease)) => lease.clone(),
            _ => Lease {
                metadata: ObjectMeta {
                    name: self.config.name.clone(),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: LeaseSpec::default(),
            },
        };
        lease.spec = record.clone();
        Rc::new(Object::Lease(lease))
    }

    fn send(&mut self, step: Step, request: ApiRequest, out: &mut Vec<ElectorEffect>) {
        self.step = Some(step);
        out.push(ElectorEffect::Send(request));
    }

    fn timer(&mut self, after: Duration, out: &mut Vec<ElectorEffect>) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        out.push(ElectorEffect::SetTimer { after, token });
        token
    }
}
