//! The pod garbage collector's orphan rule (`pkg/controller/podgc/gc_controller.go`,
//! `gcOrphaned`): pods bound to a node that no longer exists are deleted.
//!
//! As upstream: a node missing from the informer is quarantined for [`QUARANTINE`] (40 s), then
//! confirmed absent by a GET against the API server (the informer may lag); only then are its pods
//! deleted, with a zero grace period since no kubelet is left to stop them. Upstream first marks
//! such a pod Failed with a DisruptionTarget condition (`markFailedAndDeletePod`); the model goes
//! straight to the delete, which removes the pod the same way. The other PodGC rules
//! (terminated-pod threshold, unscheduled terminating pods) are not modelled.

use crate::api::{ApiErrorReason, ApiOk, ApiRequest, ObjectKey};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::{Kind, Object};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `quarantineTime`: how long a node must be missing before its pods count as orphaned.
pub const QUARANTINE: Duration = Duration::from_secs(40);
const QUARANTINE_NS: u64 = 40_000_000_000;

/// A missing node's verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// First seen missing at this time (the controller's clock).
    Since(u64),
    /// The GET is in flight.
    Verifying,
    /// The API server confirmed it does not exist.
    Confirmed,
}

/// PodGC's orphan collection.
#[derive(Debug, Default)]
pub struct PodGarbageCollector {
    missing: BTreeMap<String, Missing>,
    /// Pods deleted for their node's absence, for tests.
    pub orphans_deleted: u64,
    deleting: BTreeSet<ObjectKey>,
}

impl PodGarbageCollector {
    pub fn new() -> Self {
        Self::default()
    }
}

fn node_of(object: &Object) -> Option<&str> {
    match object {
        Object::Pod(pod) => pod.spec.node_name.as_deref(),
        _ => None,
    }
}

impl Reconciler for PodGarbageCollector {
    fn name(&self) -> &'static str {
        "pod-garbage-collector"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Pod, Kind::Node]
    }

    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        match event {
            CacheEvent::Added(object) | CacheEvent::Updated(_, object) if object.kind() == Kind::Pod => {
                match node_of(object) {
                    Some(node) if cache.get_by(Kind::Node, "", node).is_none() => vec![ObjectKey::of(object)],
                    _ => Vec::new(),
                }
            }
            CacheEvent::Added(object) if object.kind() == Kind::Node => {
                self.missing.remove(&object.meta().name);
                Vec::new()
            }
            CacheEvent::Deleted(object) if object.kind() == Kind::Node => {
                let name = &object.meta().name;
                cache
                    .list(Kind::Pod, None)
                    .into_iter()
                    .filter(|pod| node_of(pod) == Some(name.as_str()))
                    .map(|pod| ObjectKey::of(pod))
                    .collect()
            }
            CacheEvent::Deleted(object) if object.kind() == Kind::Pod => {
                self.deleting.remove(&ObjectKey::of(object));
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key) else { return Reconcile::done() };
        let Some(node) = node_of(object) else { return Reconcile::done() };
        if cache.get_by(Kind::Node, "", node).is_some() {
            self.missing.remove(node);
            return Reconcile::done();
        }
        let now_ns = ctx.now_ns;
        match *self.missing.entry(node.to_string()).or_insert(Missing::Since(now_ns)) {
            Missing::Since(since) if now_ns < since.saturating_add(QUARANTINE_NS) => {
                Reconcile::done().requeue_after(Duration::from_nanos(since + QUARANTINE_NS - now_ns))
            }
            Missing::Since(_) => {
                self.missing.insert(node.to_string(), Missing::Verifying);
                Reconcile::write(ApiRequest::Get { key: ObjectKey::new(Kind::Node, "", node) })
                    .requeue_after(Duration::from_millis(1))
            }
            Missing::Verifying => Reconcile::done().requeue_after(Duration::from_secs(1)),
            Missing::Confirmed => {
                if !self.deleting.insert(key.clone()) {
                    return Reconcile::done();
                }
                self.orphans_deleted += 1;
                Reconcile::write(ApiRequest::Delete {
                    key: key.clone(),
                    uid: object.meta().uid.clone(),
                    grace_period_seconds: Some(0),
                    propagation: None,
                })
            }
        }
    }

    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, crate::api::ApiError>) {
        match request {
            ApiRequest::Get { key: node_key } => {
                let verdict = match result {
                    Err(error) if error.reason == ApiErrorReason::NotFound => Some(Missing::Confirmed),
                    // The node exists after all (the informer lags): forget it.
                    Ok(_) => None,
                    // Could not tell: start the quarantine again.
                    Err(_) => Some(Missing::Since(0)),
                };
                match verdict {
                    Some(verdict) => {
                        self.missing.insert(node_key.name.clone(), verdict);
                    }
                    None => {
                        self.missing.remove(&node_key.name);
                    }
                }
            }
            ApiRequest::Delete { .. } if result.is_err() => {
                self.deleting.remove(key);
            }
            _ => {}
        }
    }
}
