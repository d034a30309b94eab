//! The user's client: what `kubectl` does for a scenario's actions. The harness hands it requests
//! with [`kubedst_sim::Sim::inject`]; it sends each to an API server (retrying while the server is
//! unavailable or unreachable, as `kubectl apply` in a retry loop would) and logs every result.
//! Node commands (`cordon`, `drain`, injected as [`Msg::Kubectl`]) run as [`Drain`] state
//! machines; their reports are in [`Kubectl::drains`].

use crate::api::{ApiErrorReason, ApiRequest, ApiResult, Msg, Timer};
use crate::client::ApiClient;
use crate::drain::{Drain, DrainAction, DrainCall, DrainReport};
use kubedst_sim::{Component, ComponentId, Ctx, Input, RequestId};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// How many times a request is sent before its failure is logged.
pub const KUBECTL_ATTEMPTS: u32 = 10;

/// One logged result.
#[derive(Clone, Debug)]
pub struct KubectlResult {
    /// The client's clock when the answer came.
    pub at_ns: u64,
    pub request: ApiRequest,
    pub result: ApiResult,
}

/// The scenario's user.
pub struct Kubectl {
    client: ApiClient,
    in_flight: BTreeMap<RequestId, (ApiRequest, u32)>,
    /// Requests waiting for a retry timer, by timer payload.
    retries: BTreeMap<u64, (ApiRequest, u32)>,
    /// The identity each request in flight or waiting is made as (`--as`).
    users: BTreeMap<RequestId, Rc<str>>,
    retry_users: BTreeMap<u64, Rc<str>>,
    next_retry: u64,
    pub log: Vec<KubectlResult>,
    drains: Vec<Drain>,
    /// Node-command calls in flight: which drain, which call.
    drain_calls: BTreeMap<RequestId, (usize, DrainCall)>,
    /// Node-command timers, by timer payload (shared with `retries`' numbering).
    drain_timers: BTreeMap<u64, (usize, DrainCall)>,
}

impl Kubectl {
    pub fn new(api_servers: Vec<ComponentId>) -> Kubectl {
        Kubectl {
            client: ApiClient::new(api_servers).with_user(crate::rbac::ADMIN),
            in_flight: BTreeMap::new(),
            retries: BTreeMap::new(),
            users: BTreeMap::new(),
            retry_users: BTreeMap::new(),
            next_retry: 0,
            log: Vec::new(),
            drains: Vec::new(),
            drain_calls: BTreeMap::new(),
            drain_timers: BTreeMap::new(),
        }
    }

    /// Whether every request handed over has been answered and every node command has finished.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.retries.is_empty() && self.drains.iter().all(Drain::is_finished)
    }

    /// The reports of the node commands, in the order they were given.
    pub fn drains(&self) -> Vec<&DrainReport> {
        self.drains.iter().map(|drain| &drain.report).collect()
    }

    fn run_drain(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, index: usize, actions: Vec<DrainAction>) {
        for action in actions {
            match action {
                DrainAction::Send { request, call } => {
                    let id = self.client.send(ctx, request);
                    self.drain_calls.insert(id, (index, call));
                }
                DrainAction::After { after, call } => {
                    let token = self.next_retry;
                    self.next_retry += 1;
                    self.drain_timers.insert(token, (index, call));
                    ctx.set_timer(after, Timer::User(token));
                }
            }
        }
    }

    fn drain_result(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: RequestId, result: ApiResult) -> bool {
        let Some((index, call)) = self.drain_calls.remove(&id) else { return false };
        if matches!(&result, Err(err) if matches!(err.reason, ApiErrorReason::ServiceUnavailable | ApiErrorReason::Timeout))
        {
            self.client.fail_over();
        }
        let actions = self.drains[index].on_result(call, &result, ctx.now().as_nanos());
        self.run_drain(ctx, index, actions);
        true
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, user: Rc<str>, request: ApiRequest, attempt: u32) {
        let id = self.client.send_as(ctx, user.clone(), request.clone());
        self.in_flight.insert(id, (request, attempt));
        self.users.insert(id, user);
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: RequestId, result: ApiResult) {
        let Some((request, attempt)) = self.in_flight.remove(&id) else { return };
        let user = self.users.remove(&id).unwrap_or_else(|| self.client.user.clone());
        let unavailable = matches!(&result, Err(err) if matches!(err.reason, ApiErrorReason::ServiceUnavailable | ApiErrorReason::Timeout));
        if unavailable && attempt + 1 < KUBECTL_ATTEMPTS {
            self.client.fail_over();
            let token = self.next_retry;
            self.next_retry += 1;
            self.retries.insert(token, (request, attempt + 1));
            self.retry_users.insert(token, user);
            ctx.set_timer(Duration::from_secs(1), Timer::User(token));
            return;
        }
        self.log.push(KubectlResult { at_ns: ctx.now().as_nanos(), request, result });
    }
}

impl Component<Msg, Timer> for Kubectl {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            // The harness's request, made as the user it names (the admin, or `--as` another).
            Input::Message { msg: Msg::Api { user, request }, .. } => self.send(ctx, user, request, 0),
            Input::Message { msg: Msg::Kubectl(command), .. } => {
                let (drain, actions) = Drain::start(command, ctx.now().as_nanos());
                self.drains.push(drain);
                self.run_drain(ctx, self.drains.len() - 1, actions);
            }
            Input::Response { id, msg: Msg::ApiResult(result) } => {
                if !self.drain_result(ctx, id, result.clone()) {
                    self.finish(ctx, id, result);
                }
            }
            Input::RequestTimedOut { id } => {
                let error = crate::api::ApiError::new(ApiErrorReason::Timeout, "the request timed out");
                if !self.drain_result(ctx, id, Err(error.clone())) {
                    self.finish(ctx, id, Err(error));
                }
            }
            Input::Timer { timer: Timer::User(token), .. } => {
                if let Some((request, attempt)) = self.retries.remove(&token) {
                    let user = self.retry_users.remove(&token).unwrap_or_else(|| self.client.user.clone());
                    self.send(ctx, user, request, attempt);
                } else if let Some((index, call)) = self.drain_timers.remove(&token) {
                    let actions = self.drains[index].on_timer(call, ctx.now().as_nanos());
                    self.run_drain(ctx, index, actions);
                }
            }
            _ => {}
        }
    }

    fn pending(&self) -> Vec<String> {
        self.in_flight
            .values()
            .chain(self.retries.values())
            .map(|(request, _)| format!("kubectl {} {}", request.verb(), request.kind().as_str()))
            .chain(
                self.drains
                    .iter()
                    .filter(|drain| !drain.is_finished())
                    .map(|drain| format!("kubectl {:?}", drain.report.command)),
            )
            .collect()
    }
}
