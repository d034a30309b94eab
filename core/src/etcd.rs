//! The etcd component: the MVCC store on its own machine, serving the API servers' reads, guarded
//! writes and watch streams. It is the disk: its store survives a crash of its machine.
//!
//! One member, no Raft: the model's consensus is a single process. Compaction runs every five
//! minutes of its clock and keeps five minutes of history, as kube-apiserver asks of etcd.

use crate::api::{EtcdEvent, EtcdKv, EtcdRequest, EtcdResponse, Msg, Timer};
use crate::objects::Object;
use crate::store::{KeyValue, Revision, Store, StoreError, WatchEvent};
use kubedst_sim::{Component, Ctx, Input, StreamId};
use std::any::Any;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// How often etcd compacts, and how much history it keeps.
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Events per watch message at most, so a lagging watcher catches up in bounded steps.
const WATCH_BATCH_LIMIT: usize = 500;

/// The etcd process.
pub struct Etcd {
    store: Store<Rc<Object>>,
    /// Open watch streams and the last revision each has been sent.
    watchers: BTreeMap<StreamId, Revision>,
    pub history_retention: Duration,
}

impl Etcd {
    /// A fresh member, or one restarted from its persisted store.
    pub fn new(persisted: Option<Box<dyn Any>>) -> Etcd {
        let store = persisted.and_then(|state| state.downcast::<Store<Rc<Object>>>().ok()).map(|store| *store);
        Etcd { store: store.unwrap_or_default(), watchers: BTreeMap::new(), history_retention: COMPACTION_INTERVAL }
    }

    /// Ground truth: the store as it is.
    pub fn store(&self) -> &Store<Rc<Object>> {
        &self.store
    }

    fn kv(kv: &KeyValue<Rc<Object>>) -> EtcdKv {
        EtcdKv { key: kv.key.clone(), value: kv.value.clone(), mod_revision: kv.mod_revision }
    }

    /// The object as stored: its resourceVersion is the revision of this write.
    fn stamped(value: &Rc<Object>, revision: Revision) -> Rc<Object> {
        let mut value = value.clone();
        Rc::make_mut(&mut value).meta_mut().resource_version = Some(revision.to_string());
        value
    }

    fn execute(&mut self, request: EtcdRequest, now_ns: u64) -> EtcdResponse {
        let revision = self.store.current_revision();
        match request {
            EtcdRequest::Put { key, value, expected_mod_revision } => {
                let next = revision + 1;
                let result = if expected_mod_revision == 0 {
                    self.store.create(&key, Self::stamped(&value, next), None, now_ns).map(|_| ())
                } else {
                    self.store
                        .update(&key, Self::stamped(&value, next), Some(expected_mod_revision), None, now_ns)
                        .map(|_| ())
                };
                match result {
                    Ok(()) => EtcdResponse::Written { revision: self.store.current_revision() },
                    Err(_) => EtcdResponse::CompareFailed { current: self.store.get(&key).map(Self::kv), revision },
                }
            }
            EtcdRequest::Delete { key, expected_mod_revision } => {
                match self.store.delete(&key, Some(expected_mod_revision), now_ns) {
                    Ok(_) => EtcdResponse::Written { revision: self.store.current_revision() },
                    Err(_) => EtcdResponse::CompareFailed { current: self.store.get(&key).map(Self::kv), revision },
                }
            }
            EtcdRequest::Get { key } => EtcdResponse::Value { kv: self.store.get(&key).map(Self::kv), revision },
            EtcdRequest::Range { prefix } => {
                EtcdResponse::Values { kvs: self.store.list(&prefix).into_iter().map(Self::kv).collect(), revision }
            }
            EtcdRequest::Watch { .. } => unreachable!("watches arrive on streams"),
            EtcdRequest::CompactNow => unreachable!("compaction orders arrive as messages"),
        }
    }

    /// Sends each watcher what it has not seen yet.
    fn pump_watchers(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        let current = self.store.current_revision();
        let ids: Vec<StreamId> = self.watchers.iter().filter(|(_, sent)| **sent < current).map(|(id, _)| *id).collect();
        for id in ids {
            let sent = self.watchers[&id];
            match self.store.events_since("/", sent, WATCH_BATCH_LIMIT) {
                Ok(batch) => {
                    let events: Vec<EtcdEvent> = batch
                        .events
                        .into_iter()
                        .map(|event| match event {
                            WatchEvent::Put { kv, prev_kv } => EtcdEvent {
                                key: kv.key,
                                revision: kv.mod_revision,
                                value: Some(kv.value),
                                prev: prev_kv.map(|prev| prev.value),
                            },
                            WatchEvent::Delete { key, revision, prev_kv } => {
                                EtcdEvent { key, revision, value: None, prev: Some(prev_kv.value) }
                            }
                        })
                        .collect();
                    self.watchers.insert(id, batch.progress_revision);
                    if !events.is_empty() {
                        ctx.stream_send(id, Msg::EtcdResult(EtcdResponse::Events { events }));
                    }
                }
                Err(StoreError::Compacted { compact_revision }) => {
                    ctx.stream_send(id, Msg::EtcdResult(EtcdResponse::Compacted { compact_revision }));
                    ctx.close_stream(id);
                    self.watchers.remove(&id);
                }
                Err(other) => unreachable!("events_since fails only when compacted: {other}"),
            }
        }
    }
}

impl Component<Msg, Timer> for Etcd {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Start => {
                ctx.set_timer(COMPACTION_INTERVAL, Timer::Tick("etcd-compact"));
            }
            Input::Request { reply, msg: Msg::Etcd(request) } => {
                let response = self.execute(request, ctx.now().as_nanos());
                ctx.respond(reply, Msg::EtcdResult(response));
                self.pump_watchers(ctx);
            }
            Input::StreamMessage { id, msg: Msg::Etcd(EtcdRequest::Watch { after_revision }) } => {
                self.watchers.insert(id, after_revision);
                self.pump_watchers(ctx);
            }
            Input::Message { msg: Msg::Etcd(EtcdRequest::CompactNow), .. } => {
                let revision = self.store.current_revision();
                if revision > self.store.compacted_revision() {
                    self.store.compact(revision).expect("the current revision can always be compacted");
                }
                self.pump_watchers(ctx);
            }
            Input::StreamBroken { id } => {
                self.watchers.remove(&id);
            }
            Input::Timer { timer: Timer::Tick("etcd-compact"), .. } => {
                let retention_ns = kubedst_sim::time::duration_nanos(self.history_retention);
                self.store.compact_older_than(ctx.now().as_nanos(), retention_ns);
                ctx.set_timer(COMPACTION_INTERVAL, Timer::Tick("etcd-compact"));
                // A watcher that fell behind the compaction point learns it now.
                self.pump_watchers(ctx);
            }
            _ => {}
        }
    }

    fn crash(self: Box<Self>) -> Option<Box<dyn Any>> {
        Some(Box::new(self.store))
    }
}
