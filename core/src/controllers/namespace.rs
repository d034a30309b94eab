//! The namespace controller (`pkg/controller/namespace`, `namespaced_resources_deleter.go`
//! `Delete` and `deleteAllContent`), 1.32+: a namespace being deleted (phase Terminating, the
//! `kubernetes` finalizer in spec.finalizers) is emptied, then finalized, and the API server
//! removes it.
//!
//! Like upstream, the controller does not trust an informer to know what is left: each round lists
//! every namespaced kind in the namespace from etcd (quorum `List`s, issued as the reconcile's
//! requests and answered through `on_write_result`), deletes what it found (Background
//! propagation, preconditioned on the uid), and looks again. Only a round in which every list came
//! back empty removes the finalizer (a conditional update standing in for the `finalize`
//! subresource), after which the API server deletes the namespace.
//!
//! Simplifications: no NamespaceDeletion* conditions and no per-resource discovery (the kinds are
//! the model's namespaced kinds); a round with pods left waits for their grace period
//! (upstream's estimate), any other leftover round waits [`REMAINING_POLL`].

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::api::{ApiError, ApiOk, ApiRequest, ListFrom, ObjectKey, Propagation};
use crate::cache::{Cache, CacheEvent};
use crate::controller::{Reconcile, ReconcileContext, Reconciler};
use crate::objects::cluster::NAMESPACE_FINALIZER;
use crate::objects::{Kind, Object};

/// How soon a round that found content (but no pods) looks again.
pub const REMAINING_POLL: Duration = Duration::from_secs(1);
/// How soon a round whose lists are in flight is revisited (the host holds it until they return).
const LIST_POLL: Duration = Duration::from_millis(10);

/// One round of listing a namespace's content.
#[derive(Clone, Debug, Default)]
struct Round {
    /// Kinds whose list has not come back yet.
    waiting: BTreeSet<Kind>,
    /// What the lists found: key -> (uid, already being deleted, seconds of grace left).
    found: BTreeMap<ObjectKey, (Option<String>, bool, Option<u64>)>,
    failed: bool,
}

/// `NamespaceController`.
#[derive(Clone, Debug, Default)]
pub struct NamespaceController {
    rounds: BTreeMap<String, Round>,
    /// Deletes sent, for tests and reports.
    pub deletes: u64,
}

impl NamespaceController {
    pub fn new() -> NamespaceController {
        NamespaceController::default()
    }

    fn namespaced_kinds() -> impl Iterator<Item = Kind> {
        Kind::ALL.iter().copied().filter(|kind| kind.is_namespaced())
    }
}

impl Reconciler for NamespaceController {
    fn name(&self) -> &'static str {
        "namespace"
    }

    fn watches(&self) -> Vec<Kind> {
        vec![Kind::Namespace]
    }

    fn on_event(&mut self, event: &CacheEvent, _cache: &Cache) -> Vec<ObjectKey> {
        match event.object().as_ref() {
            Object::Namespace(namespace) if namespace.is_terminating() => vec![ObjectKey::of(event.object())],
            Object::Namespace(namespace) => {
                self.rounds.remove(&namespace.metadata.name);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&mut self, key: &ObjectKey, cache: &Cache, _ctx: &mut ReconcileContext<'_>) -> Reconcile {
        let Some(Object::Namespace(namespace)) = cache.get(key).map(|object| object.as_ref()) else {
            self.rounds.remove(&key.name);
            return Reconcile::done();
        };
        if !namespace.is_terminating() || !namespace.spec.finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
            self.rounds.remove(&key.name);
            return Reconcile::done();
        }
        let name = namespace.metadata.name.clone();
        match self.rounds.get(&name) {
            None => {
                let mut round = Round::default();
                let mut writes = Vec::new();
                for kind in Self::namespaced_kinds() {
                    round.waiting.insert(kind);
                    writes.push(ApiRequest::List { kind, namespace: Some(name.clone()), from: ListFrom::Quorum });
                }
                self.rounds.insert(name, round);
                Reconcile { writes, requeue_after: Some(LIST_POLL), ..Reconcile::default() }
            }
            Some(round) if !round.waiting.is_empty() => Reconcile::done().requeue_after(LIST_POLL),
            Some(_) => {
                let round = self.rounds.remove(&name).expect("matched above");
                if round.failed {
                    return Reconcile::done().requeue_after(REMAINING_POLL);
                }
                if round.found.is_empty() {
                    // `finalizeNamespace`: the namespace is empty; the API server deletes it once
                    // no finalizer is left.
                    let mut finalized = namespace.clone();
                    finalized.spec.finalizers.retain(|finalizer| finalizer != NAMESPACE_FINALIZER);
                    return Reconcile::write(ApiRequest::Update { object: Rc::new(Object::Namespace(finalized)) });
                }
                let mut writes = Vec::new();
                let mut pods_grace_seconds: Option<u64> = None;
                for (object_key, (uid, terminating, grace_left)) in &round.found {
                    if object_key.kind == Kind::Pod {
                        let grace = grace_left.unwrap_or(0).max(1);
                        pods_grace_seconds = Some(pods_grace_seconds.map_or(grace, |g| g.max(grace)));
                    }
                    if !terminating {
                        self.deletes += 1;
                        writes.push(ApiRequest::Delete {
                            key: object_key.clone(),
                            uid: uid.clone(),
                            grace_period_seconds: None,
                            propagation: Some(Propagation::Background),
                        });
                    }
                }
                let wait = pods_grace_seconds.map_or(REMAINING_POLL, Duration::from_secs);
                Reconcile { writes, requeue_after: Some(wait), ..Reconcile::default() }
            }
        }
    }

    fn on_write_result(&mut self, key: &ObjectKey, request: &ApiRequest, result: &Result<ApiOk, ApiError>) {
        let ApiRequest::List { kind, .. } = request else { return };
        let Some(round) = self.rounds.get_mut(&key.name) else { return };
        if !round.waiting.remove(kind) {
            return;
        }
        match result {
            Ok(ApiOk::List { items, .. }) => {
                for item in items {
                    let meta = item.meta();
                    // Seconds of grace a terminating pod has left, from its deletion deadline and
                    // grace period (an upper bound; the deadline's clock is the server's).
                    let grace_left = match item.as_ref() {
                        Object::Pod(pod) => {
                            pod.metadata.deletion_grace_period_seconds.map(|grace| u64::try_from(grace).unwrap_or(0))
                        }
                        _ => None,
                    };
                    round.found.insert(ObjectKey::of(item), (meta.uid.clone(), meta.is_terminating(), grace_left));
                }
            }
            _ => round.failed = true,
        }
    }
}
