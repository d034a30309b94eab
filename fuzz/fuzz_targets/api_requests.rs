//! Sequences of API requests with arbitrary ConfigMaps (names, namespaces, labels, annotations,
//! data, `immutable`, `generateName`), sent one at a time through kubectl -> API server -> etcd,
//! checking the store's promises after each:
//!
//! - revisions strictly grow: every successful write carries a resourceVersion above every one
//!   seen before;
//! - no lost update: an update whose resourceVersion is not the stored one gets 409 Conflict and
//!   changes nothing; one with the stored version is never a conflict; a successful update stores
//!   exactly what was sent (based on the latest version, as the reply shows); etcd's ConfigMaps are
//!   at every step exactly the successful writes' results;
//! - get after put returns it (the same resourceVersion and data); NotFound only for what is gone;
//! - a watch from revision R, through the API server's watch cache, delivers exactly the writes
//!   after R in order, or 410 Gone only when R is older than the cache holds; etcd's own
//!   `watch_from(R)` replays exactly the history after R, or `Compacted` when R is compacted.
//!
//! Only kubectl writes ConfigMaps here (the cluster has no controllers), so the model is exact.

#![no_main]

use arbitrary::Arbitrary;
use kubedst_core::api::{
    resource_version_of, ApiErrorReason, ApiOk, ApiRequest, ListFrom, Msg, ObjectKey, Timer, WatchEvent, WatchRequest,
};
use kubedst_core::cluster::{Cluster, ClusterConfig};
use kubedst_core::etcd::Etcd;
use kubedst_core::objects::cluster::ConfigMap;
use kubedst_core::objects::{Kind, Object, ObjectMeta};
use kubedst_core::store::{Revision, StoreError};
use kubedst_sim::{Component, ComponentId, Ctx, Input, Time};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// A tiny watch cache, so that a watch from a few writes back may be told 410 Gone.
const WATCH_CACHE_CAPACITY: usize = 6;
const NAMESPACES: [&str; 3] = ["default", "kube-system", "missing"];
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Arbitrary, Debug, Clone)]
enum Text {
    Pool(u8),
    Raw(String),
}

impl Text {
    fn pick(&self, pool: &[&str]) -> String {
        match self {
            Text::Pool(index) => pool[usize::from(*index) % pool.len()].to_string(),
            Text::Raw(text) => text.chars().take(70).collect(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Content {
    labels: Vec<(Text, Text)>,
    annotations: Vec<(Text, Text)>,
    data: Vec<(Text, Text)>,
    immutable: Option<bool>,
}

impl Content {
    fn apply(&self, config_map: &mut ConfigMap) {
        let keys = ["app", "example.com/tier", "k"];
        let values = ["web", "", "v1"];
        let map = |pairs: &[(Text, Text)]| {
            pairs.iter().take(4).map(|(key, value)| (key.pick(&keys), value.pick(&values))).collect()
        };
        config_map.metadata.labels = map(&self.labels);
        config_map.metadata.annotations = map(&self.annotations);
        config_map.data = map(&self.data);
        config_map.immutable = self.immutable;
    }
}

/// Which resourceVersion an update or a delete precondition claims.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Version {
    /// None: unconditional.
    Absent,
    /// The one stored now.
    Current,
    /// An older (or made-up) one.
    Stale(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Create {
        namespace: Text,
        name: Text,
        generate_name: bool,
        content: Content,
    },
    Update {
        namespace: Text,
        name: Text,
        version: Version,
        content: Content,
    },
    Delete {
        namespace: Text,
        name: Text,
        with_uid: Option<bool>,
    },
    Get {
        namespace: Text,
        name: Text,
    },
    List {
        quorum: bool,
    },
    /// Opens a watch from the revision `back` operations ago (0: now).
    Watch {
        back: u8,
    },
    Compact,
    Wait {
        millis: u16,
    },
}

/// One successful write as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Write {
    key: String,
    deleted: bool,
    /// The reply's resourceVersion (a deletion's revision is not in its reply; only its place in
    /// the order is checked).
    revision: Option<Revision>,
    /// Index of the operation that made it.
    op: usize,
}

/// A client that opens one watch on an API server and records what arrives.
struct WatchProbe {
    server: ComponentId,
    events: Vec<(String, bool, Revision)>,
    gone: bool,
    broken: bool,
}

impl Component<Msg, Timer> for WatchProbe {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Message { msg: Msg::Watch(request), .. } => {
                let stream = ctx.open_stream(self.server);
                ctx.stream_send(stream, Msg::Watch(request));
            }
            Input::StreamMessage { msg: Msg::WatchEvent(event), .. } => {
                let (object, deleted) = match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => (object, false),
                    WatchEvent::Deleted(object) => (object, true),
                    WatchEvent::Bookmark(_) => return,
                    WatchEvent::Gone => {
                        self.gone = true;
                        return;
                    }
                };
                self.events.push((ObjectKey::of(&object).store_key(), deleted, resource_version_of(&object)));
            }
            Input::StreamBroken { .. } => self.broken = true,
            _ => {}
        }
    }
}

struct Probe {
    id: ComponentId,
    /// The operation index the watch starts after: it must see the writes of operations from here.
    from_op: usize,
    from_revision: Revision,
    /// The API server's cache revision when the watch was opened.
    cache_revision: Revision,
}

struct Run {
    cluster: Cluster,
    /// Key -> the object as the last successful write left it.
    model: BTreeMap<String, Rc<Object>>,
    writes: Vec<Write>,
    /// etcd's revision before each operation.
    revision_before: Vec<Revision>,
    highest_seen: Revision,
    probes: Vec<Probe>,
    /// etcd's revision once the API server had listed: watches from before may get 410.
    first_revision: Revision,
}

fn etcd_revision(cluster: &Cluster) -> Revision {
    cluster.sim.component::<Etcd>(cluster.etcd).expect("etcd runs").store().current_revision()
}

fn config_maps(cluster: &Cluster) -> BTreeMap<String, Revision> {
    let etcd = cluster.sim.component::<Etcd>(cluster.etcd).expect("etcd runs");
    etcd.store()
        .list(&kubedst_core::api::store_prefix(Kind::ConfigMap, None))
        .into_iter()
        .map(|kv| (kv.key.clone(), resource_version_of(&kv.value)))
        .collect()
}

fn same_content(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::ConfigMap(a), Object::ConfigMap(b)) => {
            a.data == b.data
                && a.metadata.labels == b.metadata.labels
                && a.metadata.annotations == b.metadata.annotations
        }
        _ => false,
    }
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut config = ClusterConfig::new(seed);
        config.watch_cache_capacity = WATCH_CACHE_CAPACITY;
        let mut cluster = Cluster::build(config);
        cluster.sim.run_until(Time::from_secs(2)).expect("the empty cluster starts");
        let model = {
            let etcd = cluster.sim.component::<Etcd>(cluster.etcd).expect("etcd runs");
            etcd.store()
                .list(&kubedst_core::api::store_prefix(Kind::ConfigMap, None))
                .into_iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect()
        };
        let first_revision = etcd_revision(&cluster);
        Run {
            cluster,
            model,
            writes: Vec::new(),
            revision_before: Vec::new(),
            highest_seen: first_revision,
            probes: Vec::new(),
            first_revision,
        }
    }

    fn call(&mut self, request: ApiRequest) -> Result<ApiOk, kubedst_core::api::ApiError> {
        self.cluster.submit(request);
        let limit = self.cluster.sim.now() + Duration::from_secs(60);
        self.cluster.run_until_answered(limit).expect("the cluster runs");
        self.cluster.last_result().expect("kubectl answered").clone()
    }

    fn record_write(&mut self, key: String, object: &Rc<Object>, deleted: bool, op: usize) {
        let revision = (!deleted).then(|| resource_version_of(object));
        if let Some(revision) = revision {
            assert!(
                revision > self.highest_seen,
                "write of {key} at revision {revision}, not above {} seen before",
                self.highest_seen
            );
            self.highest_seen = revision;
            self.model.insert(key.clone(), object.clone());
        } else {
            self.model.remove(&key);
            self.highest_seen = self.highest_seen.max(etcd_revision(&self.cluster));
        }
        self.writes.push(Write { key, deleted, revision, op });
    }

    fn key(namespace: &Text, name: &Text) -> ObjectKey {
        ObjectKey::new(Kind::ConfigMap, &namespace.pick(&NAMESPACES), &name.pick(&NAMES))
    }

    fn apply(&mut self, index: usize, op: &Op) {
        self.revision_before.push(etcd_revision(&self.cluster));
        match op {
            Op::Create { namespace, name, generate_name, content } => {
                let key = Run::key(namespace, name);
                let mut config_map = ConfigMap {
                    metadata: ObjectMeta { namespace: Some(key.namespace.clone()), ..ObjectMeta::default() },
                    ..ConfigMap::default()
                };
                if *generate_name {
                    config_map.metadata.generate_name = Some(format!("{}-", key.name));
                } else {
                    config_map.metadata.name = key.name.clone();
                }
                content.apply(&mut config_map);
                let existed = self.model.contains_key(&key.store_key());
                match self.call(ApiRequest::Create { object: Rc::new(Object::ConfigMap(config_map.clone())) }) {
                    Ok(ApiOk::Object(created)) => {
                        let created_key = ObjectKey::of(&created).store_key();
                        assert!(
                            !self.model.contains_key(&created_key),
                            "create of {created_key}, which exists, succeeded"
                        );
                        assert!(same_content(&created, &Object::ConfigMap(config_map)), "create stored other content");
                        self.record_write(created_key, &created, false, index);
                    }
                    Ok(other) => panic!("create answered {other:?}"),
                    Err(error) if error.reason == ApiErrorReason::AlreadyExists => {
                        assert!(
                            existed && !generate_name,
                            "AlreadyExists for {}, which does not exist",
                            key.store_key()
                        );
                    }
                    Err(error) => {
                        assert!(!existed || error.reason != ApiErrorReason::Conflict, "create: {error:?}");
                    }
                }
            }
            Op::Update { namespace, name, version, content } => {
                let key = Run::key(namespace, name);
                let stored = self.model.get(&key.store_key()).cloned();
                let mut object = match &stored {
                    Some(object) => (**object).clone(),
                    None => Object::ConfigMap(ConfigMap {
                        metadata: ObjectMeta {
                            name: key.name.clone(),
                            namespace: Some(key.namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        ..ConfigMap::default()
                    }),
                };
                let Object::ConfigMap(config_map) = &mut object else { unreachable!("the model holds ConfigMaps") };
                content.apply(config_map);
                let current = stored.as_ref().map(|object| resource_version_of(object));
                let claimed = match version {
                    Version::Absent => None,
                    Version::Current => Some(current.unwrap_or(1)),
                    Version::Stale(back) => Some(current.unwrap_or(1).saturating_sub(1 + u64::from(*back)).max(1)),
                };
                let stale = matches!((claimed, current), (Some(claimed), Some(current)) if claimed != current);
                config_map.metadata.resource_version = claimed.map(|revision| revision.to_string());
                let sent = object.clone();
                match self.call(ApiRequest::Update { object: Rc::new(object) }) {
                    Ok(ApiOk::Object(updated)) => {
                        assert!(
                            !stale,
                            "update of {} from stale version {claimed:?} (stored {current:?}) succeeded: a lost update",
                            key.store_key()
                        );
                        assert!(stored.is_some(), "update of {}, which does not exist, succeeded", key.store_key());
                        assert!(same_content(&updated, &sent), "the update stored other content than sent");
                        let unchanged = stored
                            .as_ref()
                            .is_some_and(|stored| resource_version_of(stored) == resource_version_of(&updated));
                        if unchanged {
                            // An update that changes nothing writes nothing and answers the stored
                            // object, as upstream's GuaranteedUpdate does.
                            let stored = stored.as_ref().expect("checked above");
                            assert_eq!(**stored, *updated, "an update kept the resourceVersion but changed the object");
                            assert_eq!(
                                etcd_revision(&self.cluster),
                                self.revision_before[index],
                                "a no-op update wrote"
                            );
                        } else {
                            self.record_write(key.store_key(), &updated, false, index);
                        }
                    }
                    Ok(other) => panic!("update answered {other:?}"),
                    Err(error) => {
                        if stale {
                            assert_eq!(
                                error.reason,
                                ApiErrorReason::Conflict,
                                "stale update of {}: {error:?}",
                                key.store_key()
                            );
                        } else if stored.is_some() {
                            assert_ne!(
                                error.reason,
                                ApiErrorReason::Conflict,
                                "update from the current version: {error:?}"
                            );
                        }
                    }
                }
            }
            Op::Delete { namespace, name, with_uid } => {
                let key = Run::key(namespace, name);
                let stored = self.model.get(&key.store_key()).cloned();
                let uid = match with_uid {
                    None => None,
                    Some(true) => stored.as_ref().and_then(|object| object.meta().uid.clone()),
                    Some(false) => Some("00000000-0000-0000-0000-000000000000".to_string()),
                };
                let wrong_uid = with_uid == &Some(false);
                match self.call(ApiRequest::Delete {
                    key: key.clone(),
                    uid,
                    grace_period_seconds: None,
                    propagation: None,
                }) {
                    Ok(ApiOk::Deleted(deleted)) => {
                        assert!(stored.is_some(), "delete of {}, which does not exist, succeeded", key.store_key());
                        assert!(!wrong_uid, "delete with another uid's precondition succeeded");
                        self.record_write(key.store_key(), &deleted, true, index);
                    }
                    Ok(other) => panic!("delete answered {other:?}"),
                    Err(error) => {
                        if stored.is_some() && !wrong_uid {
                            panic!("delete of {} failed: {error:?}", key.store_key());
                        }
                    }
                }
            }
            Op::Get { namespace, name } => {
                let key = Run::key(namespace, name);
                let stored = self.model.get(&key.store_key()).cloned();
                match (self.call(ApiRequest::Get { key: key.clone() }), stored) {
                    (Ok(ApiOk::Object(got)), Some(stored)) => {
                        assert_eq!(
                            resource_version_of(&got),
                            resource_version_of(&stored),
                            "get of {}",
                            key.store_key()
                        );
                        assert!(same_content(&got, &stored), "get of {} returned other content", key.store_key());
                    }
                    (Ok(got), None) => panic!("get of {} (gone) returned {got:?}", key.store_key()),
                    (Err(error), None) => assert_eq!(error.reason, ApiErrorReason::NotFound, "get: {error:?}"),
                    (result, Some(_)) => panic!("get of {} (stored) answered {result:?}", key.store_key()),
                }
            }
            Op::List { quorum } => {
                let from = if *quorum { ListFrom::Quorum } else { ListFrom::Cache };
                match self.call(ApiRequest::List { kind: Kind::ConfigMap, namespace: None, from }) {
                    Ok(ApiOk::List { items, .. }) => {
                        let listed: BTreeMap<String, Revision> = items
                            .iter()
                            .map(|object| (ObjectKey::of(object).store_key(), resource_version_of(object)))
                            .collect();
                        if *quorum {
                            let model: BTreeMap<String, Revision> = self
                                .model
                                .iter()
                                .map(|(key, object)| (key.clone(), resource_version_of(object)))
                                .collect();
                            assert_eq!(listed, model, "a quorum list disagrees with the writes");
                        }
                    }
                    Ok(other) => panic!("list answered {other:?}"),
                    Err(error) => assert!(!*quorum, "quorum list failed: {error:?}"),
                }
            }
            Op::Watch { back } => {
                let from_op = index.saturating_sub(usize::from(*back));
                let from_revision = self.revision_before[from_op];
                let server = self.cluster.api_servers[0];
                let cache_revision = self
                    .cluster
                    .sim
                    .component::<kubedst_core::apiserver::ApiServer>(server)
                    .expect("the API server runs")
                    .cache_revision();
                let machine = self.cluster.control_plane_machines[0];
                let name = format!("watch-probe-{index}");
                let id = self.cluster.sim.add_component(machine, &name, move |_| {
                    Box::new(WatchProbe { server, events: Vec::new(), gone: false, broken: false })
                });
                let request = WatchRequest {
                    kind: Kind::ConfigMap,
                    namespace: None,
                    node_name: None,
                    resource_version: from_revision,
                    user: Rc::from(kubedst_core::rbac::ADMIN),
                };
                self.cluster.sim.inject(id, Msg::Watch(request));
                self.probes.push(Probe { id, from_op, from_revision, cache_revision });
            }
            Op::Compact => {
                self.cluster.compact_now();
            }
            Op::Wait { millis } => {
                let until = self.cluster.sim.now() + Duration::from_millis(u64::from(*millis % 5_000));
                self.cluster.sim.run_until(until).expect("the cluster runs");
            }
        }
        let stored = config_maps(&self.cluster);
        let model: BTreeMap<String, Revision> =
            self.model.iter().map(|(key, object)| (key.clone(), resource_version_of(object))).collect();
        assert_eq!(stored, model, "etcd's ConfigMaps are not the successful writes' results after {op:?}");
    }

    /// The writes a watch from `from_op` must deliver, as (key, deleted, revision if known).
    fn expected(&self, from_op: usize) -> Vec<(String, bool, Option<Revision>)> {
        self.writes
            .iter()
            .filter(|write| write.op >= from_op)
            .map(|write| (write.key.clone(), write.deleted, write.revision))
            .collect()
    }

    fn check_watches(&mut self) {
        let until = self.cluster.sim.now() + Duration::from_secs(5);
        self.cluster.sim.run_until(until).expect("the cluster runs");
        for probe in &self.probes {
            let watch = self.cluster.sim.component::<WatchProbe>(probe.id).expect("the probe runs");
            let expected = self.expected(probe.from_op);
            if watch.gone {
                let behind = probe.cache_revision.saturating_sub(probe.from_revision);
                assert!(
                    probe.from_revision < self.first_revision || behind >= WATCH_CACHE_CAPACITY as u64,
                    "410 Gone for a watch from {} only {behind} revisions behind the cache",
                    probe.from_revision
                );
                continue;
            }
            assert!(!watch.broken, "a watch stream broke with no fault");
            let got: Vec<(String, bool, Option<Revision>)> = watch
                .events
                .iter()
                .zip(&expected)
                .map(|((key, deleted, revision), (_, _, known))| (key.clone(), *deleted, known.map(|_| *revision)))
                .collect();
            assert_eq!(got.len(), watch.events.len().min(expected.len()));
            assert_eq!(
                watch.events.len(),
                expected.len(),
                "a watch from {} delivered {:?}, the writes after it were {expected:?}",
                probe.from_revision,
                watch.events
            );
            assert_eq!(got, expected, "a watch from {} replayed another history", probe.from_revision);
            assert!(
                watch.events.windows(2).all(|pair| pair[0].2 < pair[1].2),
                "watch revisions do not grow: {:?}",
                watch.events
            );
        }
        // etcd's own history, from every revision an operation started at.
        let etcd = self.cluster.sim.component::<Etcd>(self.cluster.etcd).expect("etcd runs");
        let prefix = kubedst_core::api::store_prefix(Kind::ConfigMap, None);
        for (op, revision) in self.revision_before.iter().enumerate() {
            match etcd.store().watch_from(&prefix, revision + 1) {
                Ok(events) => {
                    let got: Vec<(String, bool, Option<Revision>)> = events
                        .iter()
                        .map(|event| {
                            let deleted = matches!(event, kubedst_core::store::WatchEvent::Delete { .. });
                            (event.key().to_string(), deleted, (!deleted).then(|| event.revision()))
                        })
                        .collect();
                    assert_eq!(got, self.expected(op), "etcd's watch from {} replayed another history", revision + 1);
                }
                Err(StoreError::Compacted { .. }) => assert!(
                    revision + 1 < etcd.store().compacted_revision(),
                    "etcd said Compacted for {} above the compaction point {}",
                    revision + 1,
                    etcd.store().compacted_revision()
                ),
                Err(error) => panic!("etcd's watch from {}: {error:?}", revision + 1),
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Requests {
    seed: u64,
    ops: Vec<Op>,
}

fuzz_target!(|input: Requests| {
    let mut run = Run::new(input.seed);
    for (index, op) in input.ops.iter().take(40).enumerate() {
        run.apply(index, op);
    }
    run.check_watches();
});
