//! The user's client: what `kubectl` does for a scenario's actions. The harness hands it requests
//! with [`kubedst_sim::Sim::inject`]; it sends each to an API server (retrying while the server is
//! unavailable or unreachable, as `kubectl apply` in a retry loop would) and logs every result.

use crate::api::{ApiErrorReason, ApiRequest, ApiResult, Msg, Timer};
use crate::client::ApiClient;
use kubedst_sim::{Component, ComponentId, Ctx, Input, RequestId};
use std::collections::BTreeMap;
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
    next_retry: u64,
    pub log: Vec<KubectlResult>,
}

impl Kubectl {
    pub fn new(api_servers: Vec<ComponentId>) -> Kubectl {
        Kubectl {
            client: ApiClient::new(api_servers),
            in_flight: BTreeMap::new(),
            retries: BTreeMap::new(),
            next_retry: 0,
            log: Vec::new(),
        }
    }

    /// Whether every request handed over has been answered.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.retries.is_empty()
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, request: ApiRequest, attempt: u32) {
        let id = self.client.send(ctx, request.clone());
        self.in_flight.insert(id, (request, attempt));
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, id: RequestId, result: ApiResult) {
        let Some((request, attempt)) = self.in_flight.remove(&id) else { return };
        let unavailable = matches!(&result, Err(err) if matches!(err.reason, ApiErrorReason::ServiceUnavailable | ApiErrorReason::Timeout));
        if unavailable && attempt + 1 < KUBECTL_ATTEMPTS {
            self.client.fail_over();
            let token = self.next_retry;
            self.next_retry += 1;
            self.retries.insert(token, (request, attempt + 1));
            ctx.set_timer(Duration::from_secs(1), Timer::User(token));
            return;
        }
        self.log.push(KubectlResult { at_ns: ctx.now().as_nanos(), request, result });
    }
}

impl Component<Msg, Timer> for Kubectl {
    fn handle(&mut self, ctx: &mut Ctx<'_, Msg, Timer>, input: Input<Msg, Timer>) {
        match input {
            Input::Message { msg: Msg::Api(request), .. } => self.send(ctx, request, 0),
            Input::Response { id, msg: Msg::ApiResult(result) } => self.finish(ctx, id, result),
            Input::RequestTimedOut { id } => {
                let error = crate::api::ApiError::new(ApiErrorReason::Timeout, "the request timed out");
                self.finish(ctx, id, Err(error));
            }
            Input::Timer { timer: Timer::User(token), .. } => {
                if let Some((request, attempt)) = self.retries.remove(&token) {
                    self.send(ctx, request, attempt);
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
            .collect()
    }
}
