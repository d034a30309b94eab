//! The resource metrics pipeline: kubelet summaries, metrics-server, and the PodMetrics the HPA
//! reads (metrics.k8s.io).
//!
//! Design, following upstream's pipeline (kubelet `/stats/summary` (or `/metrics/resource`) ->
//! metrics-server -> kube-apiserver's aggregation layer -> the HPA's metrics client):
//!
//! - **Load**: every request a pod serves is charged to it by the container runtime at its image's
//!   `cpu_millicores_per_request` (millicore-seconds per request), and a running container adds its
//!   `cpu_millicores_idle` continuously ([`crate::runtime::ContainerRuntime::cpu_usage_millicore_ns`]).
//!   The result is a cumulative counter per pod, as the pod cgroup's CPU accounting is.
//! - **Kubelet**: answers [`Msg::StatsSummaryRequest`] with a [`NodeSummary`]: each running pod's
//!   cumulative CPU use, stamped with the kubelet machine's clock.
//! - **metrics-server** ([`MetricsServer`], on its own machine): every [`METRIC_RESOLUTION`] (15 s)
//!   it requests every kubelet's summary over the simulated network (timeout
//!   [`SCRAPE_TIMEOUT`]); when every answer is in or timed out, the cycle's batch replaces what it
//!   stored, as upstream's `storage.Store(batch)` does: a pod keeps its previous point only if it
//!   is in the new batch with a later timestamp and the counter did not reset; pods of nodes that
//!   failed to answer drop out until their node answers again. A pod's usage is the rate between
//!   its last two points, `(usage2 - usage1) / (t2 - t1)` in millicores, with `window = t2 - t1`
//!   and `timestamp = t2`; a pod seen once has no metrics yet (as upstream).
//! - **Aggregated API**: the HPA sends [`crate::api::ApiRequest::ListPodMetrics`] to an API server,
//!   which proxies it to metrics-server ([`Msg::PodMetricsQuery`]) and answers with
//!   [`crate::api::ApiOk::PodMetrics`], or 503 when the backend does not answer in time. Faults on
//!   any of these links (kubelet, metrics-server, API server, controller manager) reach the HPA as
//!   missing metrics or failed queries.
//!
//! Simplifications: usage is per pod, not per container (the HPA's Resource metric sums
//! containers anyway); memory is not modelled; all of a namespace's PodMetrics are returned and
//! the HPA matches them to its selected pods by name (upstream filters by label selector first,
//! which gives the same result because metrics of unselected pods are ignored).

use crate::api::{Msg, Timer};
use kubedst_sim::{Component, ComponentId, Ctx, Input, RequestId};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// metrics-server's `--metric-resolution` as the upstream manifests set it.
pub const METRIC_RESOLUTION: Duration = Duration::from_secs(15);
/// How long one scrape of a kubelet may take (below the resolution, so cycles do not overlap).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// One pod's cumulative CPU use in a kubelet summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodStats {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Cumulative CPU use, millicore-nanoseconds.
    pub cpu_usage_millicore_ns: u64,
}

/// A kubelet's `/stats/summary`: its pods' counters at one instant of its clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    pub node: String,
    /// The kubelet machine's clock when it took the counters.
    pub time_ns: u64,
    pub pods: Vec<PodStats>,
}

/// A pod's PodMetrics (metrics.k8s.io/v1beta1), reduced to CPU of the whole pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMetrics {
    pub namespace: String,
    pub name: String,
    /// End of the window the usage was measured over (the kubelet's clock).
    pub timestamp_ns: u64,
    /// Length of that window.
    pub window_ns: u64,
    /// Average CPU use over the window, in millicores.
    pub cpu_millicores: u64,
}

/// One stored point of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Point {
    uid: String,
    time_ns: u64,
    usage_millicore_ns: u64,
}

/// metrics-server's storage: the last two points of each pod of the last batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsStore {
    /// (namespace, name) -> (previous point, last point).
    pods: BTreeMap<(String, String), (Option<Point>, Point)>,
}

impl MetricsStore {
    /// Replaces the stored batch with `batch` (every summary of one scrape cycle): a pod keeps its
    /// previous point when the new one is later and the same pod incarnation's counter did not
    /// go down; pods absent from the batch are forgotten.
    pub fn store(&mut self, batch: &[Rc<NodeSummary>]) {
        let mut next = BTreeMap::new();
        for summary in batch {
            for pod in &summary.pods {
                let key = (pod.namespace.clone(), pod.name.clone());
                let point = Point {
                    uid: pod.uid.clone(),
                    time_ns: summary.time_ns,
                    usage_millicore_ns: pod.cpu_usage_millicore_ns,
                };
                let previous = self.pods.get(&key).and_then(|(previous, last)| {
                    let same_pod = last.uid == point.uid;
                    if !same_pod {
                        None
                    } else if point.time_ns > last.time_ns && point.usage_millicore_ns >= last.usage_millicore_ns {
                        Some(last.clone())
                    } else {
                        // The same point again (or an older one): keep the previous one, if older.
                        previous
                            .clone()
                            .filter(|p| p.time_ns < point.time_ns && p.usage_millicore_ns <= point.usage_millicore_ns)
                    }
                });
                next.insert(key, (previous, point));
            }
        }
        self.pods = next;
    }

    /// The PodMetrics of every pod of `namespace` with two points.
    pub fn pod_metrics(&self, namespace: &str) -> Vec<PodMetrics> {
        self.pods
            .iter()
            .filter(|((pod_namespace, _), _)| pod_namespace == namespace)
            .filter_map(|((namespace, name), (previous, last))| {
                let previous = previous.as_ref()?;
                let window_ns = last.time_ns.checked_sub(previous.time_ns).filter(|w| *w > 0)?;
                let used = last.usage_millicore_ns.checked_sub(previous.usage_millicore_ns)?;
                Some(PodMetrics {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    timestamp_ns: last.time_ns,
                    window_ns,
                    cpu_millicores: used / window_ns,
                })
            })
            .collect()
    }

    /// How many pods have a stored point.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

/// One scrape cycle in progress.
#[derive(Debug, Default)]
struct ScrapeCycle {
    outstanding: BTreeMap<RequestId, String>,
    batch: Vec<Rc<NodeSummary>>,
}

/// metrics-server: scrapes every kubelet and serves PodMetrics.
pub struct MetricsServer {
    /// Node name -> its kubelet (upstream lists Nodes and dials their addresses).
    kubelets: Rc<BTreeMap<String, ComponentId>>,
    store: MetricsStore,
    cycle: Option<ScrapeCycle>,
    /// Counters for reports and tests.
    pub scrapes_ok: u64,
    pub scrapes_failed: u64,
    pub cycles: u64,
    pub queries: u64,
}

impl MetricsServer {
    pub fn new(kubelets: Rc<BTreeMap<String, ComponentId>>) -> MetricsServer {
        MetricsServer {
            kubelets,
            store: MetricsStore::default(),
            cycle: None,
            scrapes_ok: 0,
            scrapes_failed: 0,
            cycles: 0,
            queries: 0,
        }
    }

    /// What metrics-server would answer now for `namespace`.
    pub fn store(&self) -> &MetricsStore {
        &self.store
    }

    fn start_cycle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>) {
        // A cycle still waiting when the next is due is cut short: what came in is stored.
        self.finish_cycle();
        let mut cycle = ScrapeCycle::default();
        for (node, kubelet) in self.kubelets.iter() {
            let id = ctx.request(*kubelet, Msg::StatsSummaryRequest, SCRAPE_TIMEOUT);
            cycle.outstanding.insert(id, node.clone());
        }
        self.cycle = Some(cycle);
        if self.cycle.as_ref().is_some_and(|cycle| cycle.outstanding.is_empty()) {
            self.finish_cycle();
        }
    }

    fn finish_cycle(&mut self) {
        if let Some(cycle) = self.cycle.take() {
            self.cycles += 1;
            self.scrapes_failed += cycle.outstanding.len() as u64;
            self.store.store(&cycle.batch);
        }
    }

    fn scrape_done(&mut self, id: RequestId, summary: Option<Rc<NodeSummary>>) {
        let Some(cycle) = self.cycle.as_mut() else { return };
        if cycle.outstanding.remove(&id).is_none() {
            return;
        }
        match summary {
            Some(summary) => {
                self.scrapes_ok += 1;
                cycle.batch.push(summary);
            }
            None => self.scrapes_failed += 1,
        }
        if cycle.outstanding.is_empty() {
            self.finish_cycle();
        }
    }
}

impl Component<Msg, Timer> for MetricsServer {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Start => {
                self.start_cycle(ctx);
                ctx.set_timer(METRIC_RESOLUTION, Timer::Tick("metrics-scrape"));
            }
            Input::Timer { timer: Timer::Tick("metrics-scrape"), .. } => {
                self.start_cycle(ctx);
                ctx.set_timer(METRIC_RESOLUTION, Timer::Tick("metrics-scrape"));
            }
            Input::Response { id, msg: Msg::StatsSummary(summary) } => self.scrape_done(id, Some(summary)),
            Input::RequestTimedOut { id } => self.scrape_done(id, None),
            Input::Request { reply, msg: Msg::PodMetricsQuery { namespace } } => {
                self.queries += 1;
                ctx.respond(reply, Msg::PodMetricsAnswer(Rc::new(self.store.pod_metrics(&namespace))));
            }
            _ => {}
        }
    }
}
