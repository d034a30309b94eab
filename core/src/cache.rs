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
///
/// The maps nest (namespace, then name; label key, then value) so that lookups borrow the caller's
/// `&str` instead of building owned tuple keys: lookups are the hottest path of every informer
/// user. Iteration order is the same as a map keyed by the tuple.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    objects: BTreeMap<Kind, BTreeMap<String, BTreeMap<String, Rc<Object>>>>,
    /// kind of dependent -> controller uid -> dependents' (namespace, name).
    by_controller: BTreeMap<Kind, BTreeMap<String, BTreeSet<(String, String)>>>,
    /// kind -> namespace -> label key -> label value -> names: selectors look up candidates here
    /// instead of scanning every object of the namespace.
    by_label: BTreeMap<Kind, BTreeMap<String, LabelIndex>>,
}

/// Label key -> label value -> names of one kind in one namespace.
type LabelIndex = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The map under `key`, inserted empty if missing; the key is copied only on insertion.
fn slot<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The object at `key`, as last seen (possibly stale).
    pub fn get(&self, key: &ObjectKey) -> Option<&Rc<Object>> {
        self.get_by(key.kind, &key.namespace, &key.name)
    }

    /// The object of `kind` named `namespace/name` (namespace `""` for cluster-scoped kinds).
    pub fn get_by(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Rc<Object>> {
        self.objects.get(&kind)?.get(namespace)?.get(name)
    }

    /// Every object of `kind` (in `namespace`, if given), ordered by namespace and name.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<&Rc<Object>> {
        self.iter(kind, namespace).collect()
    }

    /// [`Cache::list`] without collecting.
    pub fn iter<'a>(&'a self, kind: Kind, namespace: Option<&str>) -> impl Iterator<Item = &'a Rc<Object>> + 'a {
        let by_namespace = self.objects.get(&kind);
        let selected: Vec<&'a BTreeMap<String, Rc<Object>>> = match (by_namespace, namespace) {
            (None, _) => Vec::new(),
            (Some(by_namespace), None) => by_namespace.values().collect(),
            (Some(by_namespace), Some(namespace)) => by_namespace.get(namespace).into_iter().collect(),
        };
        selected.into_iter().flat_map(BTreeMap::values)
    }

    /// How many objects of `kind` the cache holds.
    pub fn len(&self, kind: Kind) -> usize {
        self.objects.get(&kind).map_or(0, |by_namespace| by_namespace.values().map(BTreeMap::len).sum())
    }

    /// Whether the cache holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.objects.values().all(|by_namespace| by_namespace.values().all(BTreeMap::is_empty))
    }

    /// Objects of `kind` whose controlling owner has `owner_uid`.
    pub fn controlled_by(&self, kind: Kind, owner_uid: &str) -> Vec<&Rc<Object>> {
        let Some(names) = self.by_controller.get(&kind).and_then(|by_uid| by_uid.get(owner_uid)) else {
            return Vec::new();
        };
        names.iter().filter_map(|(namespace, name)| self.get_by(kind, namespace, name)).collect()
    }

    /// Objects of `kind` in `namespace` that carry the label `key=value`, ordered by name.
    pub fn with_label(&self, kind: Kind, namespace: &str, key: &str, value: &str) -> Vec<&Rc<Object>> {
        let names = self
            .by_label
            .get(&kind)
            .and_then(|by_namespace| by_namespace.get(namespace))
            .and_then(|by_key| by_key.get(key))
            .and_then(|by_value| by_value.get(value));
        let Some(names) = names else { return Vec::new() };
        let Some(objects) = self.objects.get(&kind).and_then(|by_namespace| by_namespace.get(namespace)) else {
            return Vec::new();
        };
        names.iter().filter_map(|name| objects.get(name.as_str())).collect()
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
        let by_name = slot(self.objects.entry(key.kind).or_default(), &key.namespace);
        let previous = match by_name.get_mut(key.name.as_str()) {
            Some(existing) => Some(std::mem::replace(existing, object.clone())),
            None => {
                by_name.insert(key.name.clone(), object.clone());
                None
            }
        };
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
        let by_namespace = self.objects.get_mut(&key.kind)?;
        let by_name = by_namespace.get_mut(key.namespace.as_str())?;
        let removed = by_name.remove(key.name.as_str())?;
        if by_name.is_empty() {
            by_namespace.remove(key.namespace.as_str());
        }
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
            .map(|by_namespace| {
                by_namespace
                    .iter()
                    .flat_map(|(namespace, by_name)| by_name.keys().map(move |name| (namespace, name)))
                    .filter(|(namespace, name)| !fresh.contains(&((*namespace).clone(), (*name).clone())))
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
        let by_key = slot(self.by_label.entry(key.kind).or_default(), &key.namespace);
        for (label, value) in &object.meta().labels {
            slot(slot(by_key, label), value).insert(key.name.clone());
        }
        if let Some(owner) = object.meta().controller_ref() {
            slot(self.by_controller.entry(key.kind).or_default(), &owner.uid)
                .insert((key.namespace.clone(), key.name.clone()));
        }
    }

    fn unindex(&mut self, key: &ObjectKey, object: &Object) {
        if let Some(by_namespace) = self.by_label.get_mut(&key.kind) {
            if let Some(by_key) = by_namespace.get_mut(key.namespace.as_str()) {
                for (label, value) in &object.meta().labels {
                    let Some(by_value) = by_key.get_mut(label.as_str()) else { continue };
                    if let Some(names) = by_value.get_mut(value.as_str()) {
                        names.remove(key.name.as_str());
                        if names.is_empty() {
                            by_value.remove(value.as_str());
                        }
                    }
                    if by_value.is_empty() {
                        by_key.remove(label.as_str());
                    }
                }
                if by_key.is_empty() {
                    by_namespace.remove(key.namespace.as_str());
                }
            }
        }
        if let Some(owner) = object.meta().controller_ref() {
            if let Some(by_uid) = self.by_controller.get_mut(&key.kind) {
                if let Some(names) = by_uid.get_mut(owner.uid.as_str()) {
                    names.remove(&(key.namespace.clone(), key.name.clone()));
                    if names.is_empty() {
                        by_uid.remove(owner.uid.as_str());
                    }
                }
            }
        }
    }
}
