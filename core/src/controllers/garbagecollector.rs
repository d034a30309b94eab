//! The garbage collector (`pkg/controller/garbagecollector`: `garbagecollector.go`,
//! `graph_builder.go`, `operations.go`), 1.32+.
//!
//! It keeps a graph of owners and dependents by ownerReference uid, built from the informers'
//! events, and does the three things upstream's `attemptToDeleteItem`,
//! `processDeletingDependentsItem` and `orphanDependents` do:
//!
//! - Background: a dependent whose every owner is gone is deleted (preconditioned on its uid, with
//!   propagation Background).
//! - Foreground: an owner being deleted with the `foregroundDeletion` finalizer has its dependents
//!   deleted; once no dependent with `blockOwnerDeletion` remains, the finalizer is removed (a
//!   conditional update) and the API server completes the deletion.
//! - Orphan: an owner being deleted with the `orphan` finalizer has its ownerReferences removed
//!   from its dependents (conditional updates), then the finalizer is removed.
//!
//! Absence of an owner is verified as upstream does (`isDangling`): an owner missing from the
//! cache may only be missing from a stale cache (a relist served from a lagging watch cache, an
//! owner created an instant ago), so the collector first reads it with an `ApiRequest::Get`, which
//! the API server serves from etcd (a quorum read). Only a 404, or an object of that name with
//! another uid, marks the owner uid absent; uids are never reused, so the mark is permanent. The
//! reconcile that asked for the read looks again after [`VERIFY_POLL`].
//!
//! Simplifications (documented, deliberate):
//! - A dependent with some owners present and some absent is left alone (upstream patches away the
//!   references to the absent owners).
//! - Foreground deletion deletes every dependent of the owner at once, with propagation Foreground
//!   for dependents that have dependents of their own and Background for leaves (such as pods,
//!   whose graceful termination the kubelet must finish). Upstream deletes the blocking dependents
//!   first and lets the others dangle; the end state is the same.
//! - Owners that are not watched (such as Nodes) are verified with a Get like any other owner.
//! - Owner kinds this simulation does not know are treated as present: nothing is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::api::{namespace_of, ApiError, ApiErrorReason, ApiOk, ApiRequest, ObjectKey, Propagation};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::{CustomKind, Kind, Object, OwnerReference};

/// The finalizer of foreground deletion (`metav1.FinalizerDeleteDependents`).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of orphaning deletion (`metav1.FinalizerOrphanDependents`).
pub const ORPHAN_FINALIZER: &str = "orphan";
/// How soon a reconcile looks again after asking the API server whether an owner exists.
pub const VERIFY_POLL: Duration = Duration::from_millis(200);
/// How soon a reconcile that issued writes looks again, in case a write failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The kinds that carry ownerReferences in this simulation.
const WATCHED: [Kind; 6] =
    [Kind::ReplicaSet, Kind::Pod, Kind::Deployment, Kind::Service, Kind::EndpointSlice, Kind::Job];

/// `GarbageCollector`: deletes dependents whose owners are gone and carries out foreground and
/// orphaning deletions (see the module documentation for how absence is verified).
#[derive(Clone, Debug, Default)]
pub struct GarbageCollector {
    /// uid -> key of every object in the cache (the graph's nodes).
    nodes: BTreeMap<String, ObjectKey>,
    /// owner uid -> keys of the objects that name it in an ownerReference.
    dependents: BTreeMap<String, BTreeSet<ObjectKey>>,
    /// Owner uids confirmed gone by a read from etcd.
    absent: BTreeSet<String>,
    /// Owner reads in flight: owner key -> the owner uids the read is to verify.
    verifying: BTreeMap<ObjectKey, BTreeSet<String>>,
    /// Custom kinds the cluster serves: watched like the built-in kinds, and resolvable as
    /// owners (upstream's collector discovers every served resource the same way).
    custom_kinds: Vec<CustomKind>,
}

impl GarbageCollector {
    pub fn new() -> GarbageCollector {
        GarbageCollector::default()
    }

    /// Also collects objects of `custom_kinds` and follows ownerReferences to them.
    pub fn with_custom_kinds(mut self, custom_kinds: &[CustomKind]) -> GarbageCollector {
        self.custom_kinds = custom_kinds.to_vec();
        self
    }

    /// The keys of the objects that name `owner_uid` as an owner, as the graph holds them.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<ObjectKey> {
        self.dependents.get(owner_uid).map(|keys| keys.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether a read from etcd confirmed that no owner with this uid exists.
    pub fn is_confirmed_absent(&self, owner_uid: &str) -> bool {
        self.absent.contains(owner_uid)
    }

    fn unlink(&mut self, key: &ObjectKey, object: &Object) {
        let meta = object.meta();
        for reference in &meta.owner_references {
            if let Some(keys) = self.dependents.get_mut(&reference.uid) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(&reference.uid);
                }
            }
        }
        if let Some(uid) = &meta.uid {
            if self.nodes.get(uid) == Some(key) {
                self.nodes.remove(uid);
            }
        }
    }

    fn link(&mut self, key: &ObjectKey, object: &Object) {
        let meta = object.meta();
        for reference in &meta.owner_references {
            self.dependents.entry(reference.uid.clone()).or_default().insert(key.clone());
        }
        if let Some(uid) = &meta.uid {
            self.nodes.insert(uid.clone(), key.clone());
        }
    }

    /// The owners of `object` that are in the cache and are being deleted by the collector.
    fn deleting_owners(&self, object: &Object, cache: &Cache, out: &mut Vec<ObjectKey>) {
        for reference in &object.meta().owner_references {
            let Some(owner_key) = self.nodes.get(&reference.uid) else { continue };
            if cache.get(owner_key).is_some_and(|owner| has_gc_finalizer(owner)) {
                out.push(owner_key.clone());
            }
        }
    }

    /// `attemptToDeleteItem` for an object that is not itself being deleted by the collector.
    fn attempt_to_delete(&mut self, key: &ObjectKey, object: &Object) -> Reconcile {
        let meta = object.meta();
        if meta.owner_references.is_empty() || meta.is_terminating() {
            return Reconcile::done();
        }
        let mut reads = Vec::new();
        for reference in &meta.owner_references {
            if self.nodes.contains_key(&reference.uid) {
                // A solid owner (or one being deleted, whose own reconcile handles us).
                return Reconcile::done();
            }
            if self.absent.contains(&reference.uid) {
                continue;
            }
            let Some(owner_key) = owner_key_of(reference, &key.namespace, &self.custom_kinds) else {
                return Reconcile::done();
            };
            let pending = self.verifying.entry(owner_key.clone()).or_default();
            if pending.is_empty() {
                reads.push(ApiRequest::Get { key: owner_key });
            }
            pending.insert(reference.uid.clone());
        }
        if !reads.is_empty() || self.verifying_any(&meta.owner_references) {
            return Reconcile { writes: reads, ..Reconcile::default() }.requeue_after(VERIFY_POLL);
        }
        // Every owner is confirmed gone: the dependent is garbage.
        Reconcile::write(ApiRequest::Delete {
            key: key.clone(),
            uid: meta.uid.clone(),
            grace_period_seconds: None,
            propagation: Some(Propagation::Background),
        })
        .requeue_after(RETRY_AFTER)
    }

    /// Some owner is not yet confirmed gone.
    fn verifying_any(&self, references: &[OwnerReference]) -> bool {
        references.iter().any(|reference| !self.absent.contains(&reference.uid))
    }

    /// `processDeletingDependentsItem`: delete the dependents, then release the owner.
    fn foreground(&self, object: &Object, cache: &Cache) -> Reconcile {
        let uid = object.meta().uid.clone().unwrap_or_default();
        let mut writes = Vec::new();
        let mut blocking = 0usize;
        for dependent_key in self.dependents_of(&uid) {
            let Some(dependent) = cache.get(&dependent_key) else { continue };
            let dmeta = dependent.meta();
            let blocks = dmeta
                .owner_references
                .iter()
                .any(|reference| reference.uid == uid && reference.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if dmeta.is_terminating() {
                continue;
            }
            let has_dependents = dmeta.uid.as_ref().is_some_and(|duid| self.dependents.contains_key(duid));
            writes.push(ApiRequest::Delete {
                key: dependent_key,
                uid: dmeta.uid.clone(),
                grace_period_seconds: None,
                propagation: Some(if has_dependents { Propagation::Foreground } else { Propagation::Background }),
            });
        }
        if blocking == 0 {
            writes.push(without_finalizer(object, FOREGROUND_FINALIZER));
        }
        Reconcile { writes, ..Reconcile::default() }.requeue_after(RETRY_AFTER)
    }

    /// `orphanDependents`: remove the references to the owner, then release the owner.
    fn orphan(&self, object: &Object, cache: &Cache) -> Reconcile {
        let uid = object.meta().uid.clone().unwrap_or_default();
        let mut writes = Vec::new();
        for dependent_key in self.dependents_of(&uid) {
            let Some(dependent) = cache.get(&dependent_key) else { continue };
            let mut updated = (**dependent).clone();
            updated.meta_mut().owner_references.retain(|reference| reference.uid != uid);
            writes.push(ApiRequest::Update { object: Rc::new(updated) });
        }
        if writes.is_empty() {
            writes.push(without_finalizer(object, ORPHAN_FINALIZER));
        }
        Reconcile { writes, ..Reconcile::default() }.requeue_after(RETRY_AFTER)
    }
}

/// The key of the owner a reference names, in the dependent's namespace (None: unknown kind).
/// A custom owner is matched by apiVersion and kind.
fn owner_key_of(reference: &OwnerReference, namespace: &str, custom_kinds: &[CustomKind]) -> Option<ObjectKey> {
    let custom = custom_kinds
        .iter()
        .find(|custom| custom.kind == reference.kind && custom.api_version == reference.api_version)
        .map(|custom| Kind::Custom(*custom));
    let kind = custom.or_else(|| Kind::from_kind_name(&reference.kind))?;
    let namespace = if kind.is_namespaced() { namespace } else { "" };
    Some(ObjectKey::new(kind, namespace, &reference.name))
}

fn has_finalizer(object: &Object, finalizer: &str) -> bool {
    object.meta().finalizers.iter().any(|existing| existing == finalizer)
}

/// Being deleted, with a finalizer the collector owns.
fn has_gc_finalizer(object: &Object) -> bool {
    object.meta().is_terminating()
        && (has_finalizer(object, FOREGROUND_FINALIZER) || has_finalizer(object, ORPHAN_FINALIZER))
}

/// A conditional update (the cached resourceVersion) that removes one finalizer.
fn without_finalizer(object: &Object, finalizer: &str) -> ApiRequest {
    let mut updated = object.clone();
    updated.meta_mut().finalizers.retain(|existing| existing != finalizer);
    ApiRequest::Update { object: Rc::new(updated) }
}

impl Reconciler for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbagecollector"
    }

    fn watches(&self) -> Vec<Kind> {
        WATCHED.iter().copied().chain(self.custom_kinds.iter().map(|custom| Kind::Custom(*custom))).collect()
    }

    fn on_event(&mut self, event: &CacheEvent, cache: &Cache) -> Vec<ObjectKey> {
        let object = event.object();
        let key = ObjectKey { kind: object.kind(), namespace: namespace_of(object), name: object.meta().name.clone() };
        let mut keys = Vec::new();
        match event {
            CacheEvent::Added(new) => {
                self.link(&key, new);
            }
            CacheEvent::Updated(old, new) => {
                self.unlink(&key, old);
                self.link(&key, new);
                self.deleting_owners(old, cache, &mut keys);
            }
            CacheEvent::Deleted(old) => {
                self.unlink(&key, old);
                self.deleting_owners(old, cache, &mut keys);
                // Its dependents may now dangle.
                if let Some(uid) = &old.meta().uid {
                    keys.extend(self.dependents_of(uid));
                }
            }
        }
        if !matches!(event, CacheEvent::Deleted(_))
            && (!object.meta().owner_references.is_empty() || has_gc_finalizer(object))
        {
            keys.push(key);
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(object) = cache.get(key).cloned() else { return Reconcile::done() };
        if object.meta().is_terminating() {
            if has_finalizer(&object, ORPHAN_FINALIZER) {
                return self.orphan(&object, cache);
            }
            if has_finalizer(&object, FOREGROUND_FINALIZER) {
                return self.foreground(&object, cache);
            }
            return Reconcile::done();
        }
        self.attempt_to_delete(key, &object)
    }

    fn on_write_result(&mut self, _key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        let ApiRequest::Get { key: owner_key } = request else { return };
        let Some(uids) = self.verifying.remove(owner_key) else { return };
        match result {
            Ok(ApiOk::Object(found)) => {
                let found_uid = found.meta().uid.as_deref();
                self.absent.extend(uids.into_iter().filter(|uid| Some(uid.as_str()) != found_uid));
            }
            Err(error) if error.reason == ApiErrorReason::NotFound => self.absent.extend(uids),
            // A timeout or an unavailable server proves nothing: the next reconcile asks again.
            _ => {}
        }
    }
}
