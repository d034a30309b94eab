//! The controller API: what a reconciler implements to run inside the simulation.
//!
//! A reconciler is sans-IO, like everything in a run. The host component (a controller manager, a
//! scheduler, or a user's own) runs informers for the kinds the reconciler [`Reconciler::watches`],
//! keeps their objects in a [`Cache`], feeds every change to [`Reconciler::on_event`] (which names
//! the keys to work on), and calls [`Reconciler::reconcile`] for each key from a deduplicating,
//! rate-limited work queue. The reconciler returns its decision as data: the API writes to make and
//! when to look again. The host sends the writes and reports each result back through
//! [`Reconciler::on_write_result`], with the real failure modes: 409 conflicts, timeouts whose
//! outcome is unknown, and reads from a cache that may be stale.

use crate::api::{ApiError, ApiOk, ApiRequest, Msg, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::objects::Kind;
use kubedst_sim::{ComponentId, SimRng};
use std::time::Duration;

/// What one reconcile decided.
#[derive(Clone, Debug, Default)]
pub struct Reconcile {
    /// API calls to make, in order (they are sent at once; they may complete in any order).
    pub writes: Vec<ApiRequest>,
    /// Look at this key again after this long (for example when a pod becomes available after
    /// minReadySeconds, or to retry after an error).
    pub requeue_after: Option<Duration>,
    /// Calls to components outside the Kubernetes API (a cloud provider's API), answered through
    /// [`Reconciler::on_call_result`]. Like writes, they keep the key "processing" until they end.
    pub calls: Vec<ExternalCall>,
}

/// A request to a component that is not an API server, such as the cloud provider.
#[derive(Clone, Debug)]
pub struct ExternalCall {
    pub to: ComponentId,
    pub msg: Msg,
    pub timeout: Duration,
}

impl Reconcile {
    pub fn done() -> Reconcile {
        Reconcile::default()
    }

    pub fn write(request: ApiRequest) -> Reconcile {
        Reconcile { writes: vec![request], ..Reconcile::default() }
    }

    /// One external call.
    pub fn call(call: ExternalCall) -> Reconcile {
        Reconcile { calls: vec![call], ..Reconcile::default() }
    }

    pub fn requeue_after(mut self, after: Duration) -> Reconcile {
        self.requeue_after = Some(match self.requeue_after {
            Some(existing) => existing.min(after),
            None => after,
        });
        self
    }
}

/// What a reconcile may read besides the cache.
pub struct ReconcileContext<'a> {
    /// The host machine's wall clock, in nanoseconds (it may be skewed).
    pub now_ns: u64,
    /// The host's seeded stream (for tie-breaks such as the scheduler's).
    pub rng: &'a mut SimRng,
}

/// A controller's logic.
pub trait Reconciler: std::any::Any {
    /// A short name for traces and reports (`replicaset`, `deployment`, `scheduler`, ...).
    fn name(&self) -> &'static str;

    /// The kinds whose objects the reconciler reads from the cache.
    fn watches(&self) -> Vec<Kind>;

    /// An object of a watched kind changed: which keys to reconcile. Expectations are lowered here.
    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey>;

    /// Brings one key towards its desired state.
    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile;

    /// A write that `reconcile(key)` asked for has finished. A timeout arrives as an error with
    /// reason `Timeout`: the write may or may not have happened.
    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        let _ = (key, request, result);
    }

    /// An external call that `reconcile(key)` asked for has ended: its answer, or `None` when it
    /// timed out (the call may or may not have taken effect).
    fn on_call_result(&mut self, key: &ObjectKey, call: &ExternalCall, answer: Option<&Msg>) {
        let _ = (key, call, answer);
    }

    /// Keys to reconcile on every periodic resync (by default every object of the primary kind is
    /// revisited through `on_event` replays; most reconcilers need nothing here).
    fn resync(&mut self, cache: &Cache) -> Vec<ObjectKey> {
        let _ = cache;
        Vec::new()
    }
}
