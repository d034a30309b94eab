//! The informers' local cache: every object of the watched kinds as a client last saw it, in
//! deterministic maps, with an index of objects by their controlling owner's uid.
//!
//! This is a component's view, which may be stale. Invariant checkers never read it; they read
//! ground truth (the store, the runtimes).

use crate::api::ObjectKey;
use crate::objects::{Kind, Object};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// A change the cache applied, as informers report it to event handlers.
#[derive(Clone, Debug)]
pub enum CacheEvent {
    Added(Rc<Object>),
    /// Old and new.
    Updated(Rc<Object>, Rc<Object>),
    Deleted(Rc<Object>),
}

impl CacheEvent {
    /// The object as it is now (or was, when deleted).
    pub fn object(&self) -> &Rc<Object> {
        match self {
            CacheEvent::Added(object) | CacheEvent::Updated(_, object) | CacheEvent::Deleted(object) => object,
        }
    }
}

/// Objects by kind, namespace and name.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    objects: BTreeMap<Kind, BTreeMap<(String, String), Rc<Object>>>,
    /// (kind of dependent, controller uid) -> dependents' (namespace, name).
    by_controller: BTreeMap<(Kind, String), BTreeSet<(String, String)>>,
    /// (kind, namespace, label key, label value) -> names: selectors look up candidates here
    /// instead of scanning every object of the namespace.
    by_label: BTreeMap<(Kind, String, String, String), BTreeSet<String>>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The object at `key`, as last seen (possibly stale).
    pub fn get(&self, key: &ObjectKey) -> Option<&Rc<Object>> {
        self.objects.get(&key.kind)?.get(&(key.namespace.clone(), key.name.clone()))
    }

    /// The object of `kind` named `namespace/name` (namespace `""` for cluster-scoped kinds).
    pub fn get_by(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Rc<Object>> {
        self.objects.get(&kind)?.get(&(namespace.to_string(), name.to_string()))
    }

    /// Every object of `kind` (in `namespace`, if given), ordered by namespace and name.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<&Rc<Object>> {
        let Some(objects) = self.objects.get(&kind) else { return Vec::new() };
        match namespace {
            None => objects.values().collect(),
            Some(namespace) => objects
                .range((namespace.to_string(), String::new())..)
                .take_while(|((ns, _), _)| ns == namespace)
                .map(|(_, object)| object)
                .collect(),
        }
    }

    /// How many objects of `kind` the cache holds.
    pub fn len(&self, kind: Kind) -> usize {
        self.objects.get(&kind).map_or(0, BTreeMap::len)
    }

    /// Whether the cache holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.objects.values().all(BTreeMap::is_empty)
    }

    /// Objects of `kind` whose controlling owner has `owner_uid`.
    pub fn controlled_by(&self, kind: Kind, owner_uid: &str) -> Vec<&Rc<Object>> {
        let Some(names) = self.by_controller.get(&(kind, owner_uid.to_string())) else { return Vec::new() };
        names.iter().filter_map(|(namespace, name)| self.get_by(kind, namespace, name)).collect()
    }

    /// Objects of `kind` in `namespace` that carry the label `key=value`, ordered by name.
    pub fn with_label(&self, kind: Kind, namespace: &str, key: &str, value: &str) -> Vec<&Rc<Object>> {
        let index_key = (kind, namespace.to_string(), key.to_string(), value.to_string());
        let Some(names) = self.by_label.get(&index_key) else { return Vec::new() };
        names.iter().filter_map(|name| self.get_by(kind, namespace, name)).collect()
    }

    /// Objects of `kind` in `namespace` whose labels match every pair of `selector` (a Service's
    /// selector); an empty selector matches nothing, as a Service without selector selects nothing.
    pub fn matching_labels(
        &self,
        kind: Kind,
        namespace: &str,
        selector: &crate::objects::StringMap,
    ) -> Vec<&Rc<Object>> {
        let Some((key, value)) = selector.iter().next() else { return Vec::new() };
        self.with_label(kind, namespace, key, value)
            .into_iter()
            .filter(|object| crate::objects::selector::map_selector_matches(selector, &object.meta().labels))
            .collect()
    }

    /// Inserts or replaces an object; returns the event (None if it is the same revision).
    pub fn upsert(&mut self, object: Rc<Object>) -> Option<CacheEvent> {
        let key = ObjectKey::of(&object);
        let slot = (key.namespace.clone(), key.name.clone());
        let previous = self.objects.entry(key.kind).or_default().insert(slot.clone(), object.clone());
        if let Some(previous) = &previous {
            if previous.meta().resource_version == object.meta().resource_version
                && previous.meta().resource_version.is_some()
            {
                return None;
            }
            // Status updates leave labels and owners alone: the indexes stay as they are.
            let same_index = previous.meta().labels == object.meta().labels
                && previous.meta().controller_ref().map(|owner| &owner.uid)
                    == object.meta().controller_ref().map(|owner| &owner.uid);
            if same_index {
                return Some(CacheEvent::Updated(previous.clone(), object));
            }
            self.unindex(&key, previous);
        }
        self.index(&key, &object);
        Some(match previous {
            Some(previous) => CacheEvent::Updated(previous, object),
            None => CacheEvent::Added(object),
        })
    }

    /// Removes an object; returns the event if it was there.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<CacheEvent> {
        let removed = self.objects.get_mut(&key.kind)?.remove(&(key.namespace.clone(), key.name.clone()))?;
        self.unindex(key, &removed);
        Some(CacheEvent::Deleted(removed))
    }

    /// Replaces every object of `kind` with `items` (a relist); returns the differences as events,
    /// so handlers see deletions that happened while the watch was down.
    pub fn replace(&mut self, kind: Kind, items: Vec<Rc<Object>>) -> Vec<CacheEvent> {
        let mut events = Vec::new();
        let fresh: BTreeSet<(String, String)> =
            items.iter().map(|object| (crate::api::namespace_of(object), object.meta().name.clone())).collect();
        let stale: Vec<ObjectKey> = self
            .objects
            .get(&kind)
            .map(|objects| {
                objects
                    .keys()
                    .filter(|slot| !fresh.contains(*slot))
                    .map(|(namespace, name)| ObjectKey::new(kind, namespace, name))
                    .collect()
            })
            .unwrap_or_default();
        for key in stale {
            events.extend(self.remove(&key));
        }
        for object in items {
            events.extend(self.upsert(object));
        }
        events
    }

    fn index(&mut self, key: &ObjectKey, object: &Object) {
        for (label, value) in &object.meta().labels {
            self.by_label
                .entry((key.kind, key.namespace.clone(), label.clone(), value.clone()))
                .or_default()
                .insert(key.name.clone());
        }
        if let Some(owner) = object.meta().controller_ref() {
            self.by_controller
                .entry((key.kind, owner.uid.clone()))
                .or_default()
                .insert((key.namespace.clone(), key.name.clone()));
        }
    }

    fn unindex(&mut self, key: &ObjectKey, object: &Object) {
        for (label, value) in &object.meta().labels {
            let index_key = (key.kind, key.namespace.clone(), label.clone(), value.clone());
            if let Some(names) = self.by_label.get_mut(&index_key) {
                names.remove(&key.name);
                if names.is_empty() {
                    self.by_label.remove(&index_key);
                }
            }
        }
        if let Some(owner) = object.meta().controller_ref() {
            let index_key = (key.kind, owner.uid.clone());
            if let Some(names) = self.by_controller.get_mut(&index_key) {
                names.remove(&(key.namespace.clone(), key.name.clone()));
                if names.is_empty() {
                    self.by_controller.remove(&index_key);
                }
            }
        }
    }
}
