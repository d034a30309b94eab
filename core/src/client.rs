//! The client library, as client-go gives it to controllers: an API client with request timeouts
//! and failover between API server replicas, informers that list then watch (and relist on 410 Gone
//! or a broken stream) into a local [`Cache`], and a deduplicating, rate-limited work queue.
//!
//! These are parts of a component, not components: the owner routes its inputs to them.

use crate::api::{ApiOk, ApiRequest, ApiResult, ListFrom, Msg, ObjectKey, Timer, WatchEvent, WatchRequest};
use crate::cache::{Cache, CacheEvent};
use crate::objects::Kind;
use crate::store::Revision;
use kubedst_sim::{ComponentId, Ctx, RequestId, StreamId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

/// client-go's default request timeout is far longer; kubedst's components use a short one so a
/// partition shows up as timeouts within a test's horizon.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends API requests to one of several API server replicas, failing over after a timeout.
#[derive(Debug)]
pub struct ApiClient {
    servers: Vec<ComponentId>,
    current: usize,
    pub timeout: Duration,
    /// The identity requests carry (`system:anonymous` unless set).
    pub user: Rc<str>,
}

impl ApiClient {
    pub fn new(servers: Vec<ComponentId>) -> ApiClient {
        assert!(!servers.is_empty(), "an API client needs at least one API server");
        ApiClient { servers, current: 0, timeout: DEFAULT_REQUEST_TIMEOUT, user: Rc::from(crate::rbac::ANONYMOUS) }
    }

    /// The client with identity `user` (see [`crate::rbac`]).
    pub fn with_user(mut self, user: &str) -> ApiClient {
        self.user = Rc::from(user);
        self
    }

    /// The server requests go to now.
    pub fn server(&self) -> ComponentId {
        self.servers[self.current]
    }

    pub fn send(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, request: ApiRequest) -> RequestId {
        ctx.request(self.server(), Msg::Api { user: self.user.clone(), request }, self.timeout)
    }

    /// Sends `request` as `user` (kubectl's `--as`, impersonation).
    pub fn send_as(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, user: Rc<str>, request: ApiRequest) -> RequestId {
        ctx.request(self.server(), Msg::Api { user, request }, self.timeout)
    }

    /// A request timed out or the server is unavailable: the next request tries the next replica.
    pub fn fail_over(&mut self) {
        self.current = (self.current + 1) % self.servers.len();
    }
}

/// An informer's state, as kube-rs's watcher documents its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InformerState {
    /// Waiting for the list response.
    Listing { request: RequestId },
    /// Watching from `resource_version` on `stream`.
    Watching { stream: StreamId, resource_version: Revision },
    /// Waiting for the retry timer (after an error), then `relist` or rewatch.
    Backoff { relist: bool, resource_version: Revision },
}

/// Lists, then watches, one kind (optionally one namespace, or the pods of one node).
#[derive(Debug)]
pub struct Informer {
    pub index: usize,
    pub kind: Kind,
    pub namespace: Option<String>,
    pub node_name: Option<String>,
    pub state: InformerState,
    /// Whether the first list has completed (client-go's HasSynced).
    pub synced: bool,
    failures: u32,
    pub relists: u64,
    /// The watch checker's ground truth: object events received on watches, and how many came
    /// with a lower resourceVersion than an event before them on the same watch (out of order).
    pub watch_events: u64,
    pub watch_out_of_order: u64,
    /// Whether the current watch started from a revision (a watch from 0 first replays the current
    /// objects in key order, whose revisions are in no order).
    ordered_watch: bool,
    /// Deliberate bugs (negative controls; see [`crate::mutants`]); none by default.
    pub mutants: crate::mutants::Mutants,
}

/// What an input did to an informer.
pub enum InformerOutcome {
    /// The input was not this informer's.
    NotMine,
    /// Handled; these cache changes happened.
    Events(Vec<CacheEvent>),
}

impl Informer {
    pub fn new(index: usize, kind: Kind) -> Informer {
        Informer {
            index,
            kind,
            namespace: None,
            node_name: None,
            state: InformerState::Backoff { relist: true, resource_version: 0 },
            synced: false,
            failures: 0,
            relists: 0,
            watch_events: 0,
            watch_out_of_order: 0,
            ordered_watch: false,
            mutants: crate::mutants::Mutants::NONE,
        }
    }

    /// Starts (or restarts) with a list.
    pub fn start(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, client: &mut ApiClient) {
        self.relists += 1;
        let request = client
            .send(ctx, ApiRequest::List { kind: self.kind, namespace: self.namespace.clone(), from: ListFrom::Cache });
        self.state = InformerState::Listing { request };
    }

    fn watch(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, client: &ApiClient, resource_version: Revision) {
        let stream = ctx.open_stream(client.server());
        ctx.stream_send(
            stream,
            Msg::Watch(WatchRequest {
                kind: self.kind,
                namespace: self.namespace.clone(),
                node_name: self.node_name.clone(),
                resource_version,
                user: client.user.clone(),
            }),
        );
        self.state = InformerState::Watching { stream, resource_version };
        self.ordered_watch = resource_version != 0;
    }

    fn back_off(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, relist: bool, resource_version: Revision) {
        // client-go's reflector backs off from 800 ms up to 30 s; jitter comes from the seed.
        self.failures = (self.failures + 1).min(6);
        let base_ms = (800u64 << (self.failures - 1)).min(30_000);
        let jitter_ms = ctx.rng().below(base_ms / 4 + 1);
        ctx.set_timer(Duration::from_millis(base_ms + jitter_ms), Timer::InformerRetry { index: self.index });
        self.state = InformerState::Backoff { relist, resource_version };
    }

    fn filter_matches(&self, object: &crate::objects::Object) -> bool {
        if let Some(node) = &self.node_name {
            if let crate::objects::Object::Pod(pod) = object {
                return pod.spec.node_name.as_deref() == Some(node.as_str());
            }
        }
        true
    }

    /// Offers an input to the informer.
    pub fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Msg, Timer>,
        client: &mut ApiClient,
        cache: &mut Cache,
        input: &kubedst_sim::Input<Msg, Timer>,
    ) -> InformerOutcome {
        use kubedst_sim::Input;
        match (input, &self.state) {
            (Input::Response { id, msg: Msg::ApiResult(result) }, InformerState::Listing { request })
                if id == request =>
            {
                match result {
                    Ok(ApiOk::List { items, resource_version }) => {
                        let items: Vec<_> =
                            items.iter().filter(|object| self.filter_matches(object)).cloned().collect();
                        let events = cache.replace(self.kind, items);
                        self.synced = true;
                        self.failures = 0;
                        self.watch(ctx, client, *resource_version);
                        InformerOutcome::Events(events)
                    }
                    _ => {
                        client.fail_over();
                        self.back_off(ctx, true, 0);
                        InformerOutcome::Events(Vec::new())
                    }
                }
            }
            (Input::RequestTimedOut { id }, InformerState::Listing { request }) if id == request => {
                client.fail_over();
                self.back_off(ctx, true, 0);
                InformerOutcome::Events(Vec::new())
            }
            (Input::StreamMessage { id, msg: Msg::WatchEvent(event) }, InformerState::Watching { stream, .. })
                if id == stream =>
            {
                let stream = *stream;
                self.failures = 0;
                let mut events = Vec::new();
                let new_revision = match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        events.extend(cache.upsert(object.clone()));
                        crate::api::resource_version_of(object)
                    }
                    WatchEvent::Deleted(object) => {
                        events.extend(cache.remove(&ObjectKey::of(object)));
                        crate::api::resource_version_of(object)
                    }
                    WatchEvent::Bookmark(revision) => *revision,
                    WatchEvent::Gone => {
                        // 410: the revision is compacted. Relist at once, as the reflector does.
                        ctx.close_stream(stream);
                        if self.mutants.contains(crate::mutants::Mutant::InformerSkipsRelistAfterGone) {
                            self.watch(ctx, client, 0);
                            return InformerOutcome::Events(events);
                        }
                        self.start(ctx, client);
                        return InformerOutcome::Events(events);
                    }
                };
                let object_event = !matches!(event, WatchEvent::Bookmark(_));
                if let InformerState::Watching { resource_version, .. } = &mut self.state {
                    if object_event {
                        self.watch_events += 1;
                    }
                    // A bookmark from a lagging watch cache may trail the watch's start revision
                    // (the model does not make such a watch wait); object events never may.
                    if object_event && self.ordered_watch && new_revision < *resource_version {
                        self.watch_out_of_order += 1;
                    }
                    *resource_version = (*resource_version).max(new_revision);
                }
                InformerOutcome::Events(events)
            }
            (Input::StreamBroken { id }, InformerState::Watching { stream, resource_version }) if id == stream => {
                // The reflector rewatches from the last revision it saw (and relists on 410).
                let resource_version = *resource_version;
                client.fail_over();
                self.back_off(ctx, false, resource_version);
                InformerOutcome::Events(Vec::new())
            }
            (
                Input::Timer { timer: Timer::InformerRetry { index }, .. },
                InformerState::Backoff { relist, resource_version },
            ) if *index == self.index => {
                if *relist {
                    self.start(ctx, client);
                } else {
                    let resource_version = *resource_version;
                    self.watch(ctx, client, resource_version);
                }
                InformerOutcome::Events(Vec::new())
            }
            _ => InformerOutcome::NotMine,
        }
    }
}

/// A deduplicating work queue with per-item exponential backoff, as client-go's rate-limited queue
/// (5 ms doubling to 1000 s per item; the overall token bucket is not modelled).
#[derive(Debug, Default)]
pub struct WorkQueue {
    queue: VecDeque<ObjectKey>,
    queued: BTreeSet<ObjectKey>,
    failures: BTreeMap<ObjectKey, u32>,
}

impl WorkQueue {
    pub fn add(&mut self, key: ObjectKey) {
        if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    pub fn pop(&mut self) -> Option<ObjectKey> {
        let key = self.queue.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The delay before retrying `key` after another failure.
    pub fn backoff(&mut self, key: &ObjectKey) -> Duration {
        let failures = self.failures.entry(key.clone()).or_insert(0);
        let delay_ms = 5u64.saturating_mul(1u64 << (*failures).min(20)).min(1_000_000);
        *failures += 1;
        Duration::from_millis(delay_ms)
    }

    /// `key` succeeded: its backoff starts over.
    pub fn forget(&mut self, key: &ObjectKey) {
        self.failures.remove(key);
    }
}

/// Whether an API result is a failure that the caller cannot see the outcome of.
pub fn outcome_unknown(result: &ApiResult) -> bool {
    matches!(result, Err(err) if err.reason == crate::api::ApiErrorReason::Timeout)
}
