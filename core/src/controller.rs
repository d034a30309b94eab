//! The controller API: what a reconciler implements to run inside the simulation.
//!
//! A reconciler is sans-IO, like everything in a run. The host component (a controller manager, a
//! scheduler, or a user's own, see [`crate::host::ControllerHost`]) runs one informer for each
//! kind the reconcilers [`Reconciler::watches`] (built-in kinds and registered custom kinds,
//! [`crate::objects::Kind::Custom`]), keeps their objects in a [`Cache`], feeds every change to
//! [`Reconciler::on_event`] (which names the keys to work on), and calls
//! [`Reconciler::reconcile`] for each key from a deduplicating, rate-limited work queue. The
//! reconciler returns its decision as data ([`Reconcile`]): the API writes to make and when to
//! look at the key again.
//!
//! The failure modes are the real ones, and a reconciler must survive each:
//! - **Stale reads.** The cache is the informer's view, fed by a watch from one API server's
//!   watch cache, which may lag etcd (a slow apiserver, a partition, a failover to another
//!   replica). A reconcile may see an object older than the one stored, or miss one just created.
//! - **409 Conflict.** A write carries the cached `resourceVersion`; if the stored object moved
//!   on, the write fails with [`ApiError::is_conflict`] and nothing is written. Custom resources
//!   refuse writes without a `resourceVersion` outright (422).
//! - **Unknown outcome.** A write may time out ([`ApiError::is_outcome_unknown`]): it may or may
//!   not have happened. A create retried after a timeout may meet `AlreadyExists`.
//! - **Restarts.** The host's machine may crash, or its lease be lost: the reconcilers are built
//!   again from their factory, with empty memory, and see every cached object as added.
//!
//! The host reports each write's result to [`Reconciler::on_write_result`]. After a failed write
//! (anything but 404 and AlreadyExists) the host requeues the key with per-key exponential
//! backoff (5 ms doubling, as client-go's rate-limited queue), as controller-runtime does when a
//! reconcile returns an error; a later reconcile starts again from the cache.
//!
//! # Example
//!
//! A tiny reconciler that labels every ConfigMap `seen=true`, run in a user controller host:
//!
//! ```
//! use kubedst_core::api::{ApiRequest, ObjectKey};
//! use kubedst_core::cache::{Cache, CacheEvent};
//! use kubedst_core::cluster::{Cluster, ClusterConfig, ReconcilerFactory};
//! use kubedst_core::controller::{Reconcile, ReconcileContext, Reconciler};
//! use kubedst_core::objects::{ConfigMap, Kind, Object, ObjectMeta};
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! struct Labeler;
//!
//! impl Reconciler for Labeler {
//!     fn name(&self) -> &'static str {
//!         "labeler"
//!     }
//!     fn watches(&self) -> Vec<Kind> {
//!         vec![Kind::ConfigMap]
//!     }
//!     fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
//!         vec![ObjectKey::of(event.object())]
//!     }
//!     fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
//!         let Some(object) = cache.get(key) else { return Reconcile::done() };
//!         if object.meta().labels.get("seen").is_some() {
//!             return Reconcile::done();
//!         }
//!         // A conditional update: the cached resourceVersion stays on the object, so a stale
//!         // cache costs a 409 and a retry, never a lost update.
//!         let mut labeled = (**object).clone();
//!         labeled.meta_mut().labels.insert("seen".into(), "true".into());
//!         Reconcile::write(ApiRequest::Update { object: Rc::new(labeled) })
//!     }
//! }
//!
//! let factory: ReconcilerFactory = Rc::new(|| vec![Box::new(Labeler) as Box<dyn Reconciler>]);
//! let config = ClusterConfig::new(7).with_controller("labeler", factory).unwrap();
//! let mut cluster = Cluster::build(config);
//! let meta = ObjectMeta { name: "settings".into(), namespace: Some("default".into()), ..Default::default() };
//! cluster.create(Object::ConfigMap(ConfigMap { metadata: meta, ..Default::default() }));
//! cluster.sim.run_for(Duration::from_secs(5)).unwrap();
//! let stored = cluster.stored(&ObjectKey::new(Kind::ConfigMap, "default", "settings")).unwrap();
//! assert_eq!(stored.meta().labels.get("seen").map(String::as_str), Some("true"));
//! ```
//!
//! To run a reconciler under a scenario and its fault classes, with the invariants, repro files
//! and replay of the command line, see `kubedst_scenarios::library`.

#![warn(missing_docs)]

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
    /// The component called.
    pub to: ComponentId,
    /// The request.
    pub msg: Msg,
    /// How long to wait for the answer before reporting a timeout (`None` to
    /// [`Reconciler::on_call_result`]).
    pub timeout: Duration,
}

impl Reconcile {
    /// Nothing to do (until the next event of the key).
    pub fn done() -> Reconcile {
        Reconcile::default()
    }

    /// One API write.
    pub fn write(request: ApiRequest) -> Reconcile {
        Reconcile { writes: vec![request], ..Reconcile::default() }
    }

    /// Several API writes, sent at once.
    pub fn writes(requests: Vec<ApiRequest>) -> Reconcile {
        Reconcile { writes: requests, ..Reconcile::default() }
    }

    /// Nothing to write now; look again after `after` (controller-runtime's
    /// `Result{RequeueAfter}`).
    pub fn requeue(after: Duration) -> Reconcile {
        Reconcile::done().requeue_after(after)
    }

    /// One external call.
    pub fn call(call: ExternalCall) -> Reconcile {
        Reconcile { calls: vec![call], ..Reconcile::default() }
    }

    /// Also look again after `after`; of several requeues the earliest wins, as a delaying queue
    /// keeps a key once, for the earliest time asked.
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

/// A controller's logic. `Any` lets tests and harness code find a reconciler of a given type in
/// its host ([`crate::host::ControllerHost::reconciler_of`]).
pub trait Reconciler: std::any::Any {
    /// A short name for traces and reports (`replicaset`, `deployment`, `scheduler`, ...).
    fn name(&self) -> &'static str;

    /// The kinds whose objects the reconciler reads from the cache: the host runs one informer
    /// (list, then watch; relist after 410 Gone) per kind. Custom kinds must be registered with
    /// the cluster ([`crate::cluster::ClusterConfig::with_custom_kind`]).
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
