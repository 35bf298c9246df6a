//! `retryFetch(input, init)`: the request is read once by `values.js` (`readRequest`), which
//! also builds what each route sends (`routeRequest`: a fallback's URL, headers and model, and
//! credentials dropped on the way to another origin); this drives the attempts.

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Response};

use super::drive::{drive, AttemptResult, Attempts, Client, Held, Names};
use super::errors::{self, get};
use super::host::{self, AttemptSignal, Either};
use super::values;
use crate::policy::classify::Observation;
use crate::policy::stream::{State, Watch};
use crate::policy::{hints, Headers};

pub async fn fetch(client: &Client, input: JsValue, init: JsValue) -> Result<JsValue, JsValue> {
    let request = JsFuture::from(values::read_request(&input, &init, &client.opts.js)).await?;
    let signal: Option<AbortSignal> = get(&request, "signal").dyn_into().ok();
    let idempotent = get(&request, "idempotent").is_truthy();
    let mut call = Call { client, names: Names::read(request.clone(), client)?, request, signal: signal.clone() };
    drive(client, &mut call, idempotent, signal.as_ref()).await
}

struct Call<'c> {
    client: &'c Client,
    /// What `readRequest` made of the caller's arguments (opaque here).
    request: JsValue,
    names: Names,
    signal: Option<AbortSignal>,
}

impl Attempts for Call<'_> {
    fn names(&self) -> &Names {
        &self.names
    }

    fn attempt(
        &mut self,
        route: usize,
        _attempt: u32,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
    ) -> Pin<Box<dyn Future<Output = AttemptResult> + '_>> {
        Box::pin(self.attempt_once(route, timeout_ms, deadline_ms))
    }

    fn release(&mut self, held: Held) {
        // Only a real Response's stream: a custom transport may hand back look-alikes.
        if let Held::Value(v) = held {
            if let Some(body) = v.dyn_into::<Response>().ok().and_then(|r| r.body()) {
                if !body.locked() {
                    host::ignore_rejection(&body.cancel());
                }
            }
        }
    }
}

impl Call<'_> {
    async fn attempt_once(&mut self, route: usize, timeout_ms: Option<u64>, deadline_ms: u64) -> AttemptResult {
        let prepared = values::route_request(&self.request, route as u32)?;
        let (url, init) = (prepared.get(0), prepared.get(1));
        let sig = AttemptSignal::new(self.signal.as_ref())?;
        // The call's own copy; attempts are sequential, so the signal is set in place.
        errors::set(&init, "signal", &sig.signal);
        let timed_out = Rc::new(Cell::new(false));
        let on_timeout = {
            let (flag, ctrl) = (timed_out.clone(), sig.controller.clone());
            Closure::<dyn FnMut()>::new(move || {
                flag.set(true);
                ctrl.abort_with_reason(&host::timeout_error());
            })
        };
        let timer = timeout_ms.map(|ms| host::Timer::new(ms, on_timeout.as_ref().unchecked_ref()));
        let result = JsFuture::from(host::call_fetch(self.client.opts.transport.as_ref(), &url, &init)).await;
        let error = match result {
            // Duck-typed: another fetch implementation's Response is not `instanceof` this one's.
            Ok(v) => match status_of(&v) {
                // A success is final whatever its headers say: only its rate-limit headers (for
                // pacing) are read, in the same call that finds an event stream's body reader.
                Some(status @ ..400) => {
                    let seen = values::success(&v);
                    let response: Response = v.unchecked_into();
                    if seen.is_undefined() || js_sys::Array::is_array(&seen) {
                        drop((timer, on_timeout));
                        let headers = flat_headers(&seen);
                        return Ok((
                            Observation::Response { status, headers, body: None },
                            Held::Value(response.into()),
                        ));
                    }
                    // A 2xx event stream is read up to its commit point, under the attempt's timer.
                    let watched = self.watch(response, seen, &timed_out, deadline_ms, route).await;
                    drop((timer, on_timeout));
                    return Ok(watched);
                }
                Some(status) => {
                    drop((timer, on_timeout));
                    let response: Response = v.unchecked_into();
                    return Ok((observe(&response, status).await, Held::Value(response.into())));
                }
                None => values::not_response(&v),
            },
            Err(e) => e,
        };
        Ok((self.failure(&timed_out), Held::Error { error, has_status: false }))
    }

    /// What a transport failure was: the caller's abort, the attempt's timeout, or the network.
    fn failure(&self, timed_out: &Cell<bool>) -> Observation {
        if self.signal.as_ref().is_some_and(|s| s.aborted()) {
            Observation::Aborted
        } else if timed_out.get() {
            Observation::Timeout
        } else {
            Observation::NetworkError
        }
    }

    /// Reads an event stream until it commits (its first content event), fails in-band, stalls
    /// past `firstTokenTimeoutMs`, or breaks (see `policy::stream`). The chunks read are held:
    /// the Response the caller may get starts with them.
    async fn watch(
        &self,
        response: Response,
        reader: JsValue,
        timed_out: &Cell<bool>,
        deadline_ms: u64,
        route: usize,
    ) -> (Observation, Held) {
        let cfg = self.names.cfg(self.client);
        let mut stall = host::first_token(cfg.first_token_timeout_ms, deadline_ms);
        let held = js_sys::Array::new();
        let mut watch = Watch::default();
        let state = loop {
            let chunk = match host::race(JsFuture::from(values::next_chunk(&reader)), &mut stall).await {
                Either::Right(deadline) => {
                    values::cancel_reader(&reader);
                    return stalled(deadline);
                }
                Either::Left(Err(error)) => return (self.failure(timed_out), Held::Error { error, has_status: false }),
                Either::Left(Ok(chunk)) => chunk,
            };
            let state = if chunk.is_undefined() {
                watch.ended()
            } else {
                held.push(&chunk);
                watch.feed(&js_sys::Uint8Array::new(&chunk).to_vec())
            };
            if state != State::Pending {
                break state;
            }
        };
        let idle = cfg.idle_timeout_ms.map(|ms| ms as f64);
        let (opts, names) = (&self.client.opts.js, &self.names.js);
        let held = Held::Value(values::resumed(&response, &held, &reader, idle, opts, names, route as u32));
        match state {
            State::Failed { status, body } => {
                (Observation::StreamFailed { status, headers: hint_headers(&response), body }, held)
            }
            // A success: only the rate-limit headers (for pacing) matter.
            _ => (Observation::Committed { headers: flat_headers(&values::limit_headers(&response.headers())) }, held),
        }
    }
}

/// A stream that showed no content in time: past `firstTokenTimeoutMs` a failed attempt, past
/// the deadline the end of the call.
pub fn stalled(deadline: bool) -> (Observation, Held) {
    if deadline {
        (Observation::Timeout, Held::Error { error: host::timeout_error(), has_status: false })
    } else {
        (Observation::Stalled, Held::Nothing)
    }
}

/// Headers handed over flat by `values.js` (`[name, value, …]`; anything else: none).
fn flat_headers(flat: &JsValue) -> Headers {
    let mut headers = Headers::new();
    if let Some(flat) = flat.dyn_ref::<js_sys::Array>() {
        for i in (0..flat.length()).step_by(2) {
            if let (Some(k), Some(v)) = (flat.get(i).as_string(), flat.get(i + 1).as_string()) {
                headers.push(k, v);
            }
        }
    }
    headers
}

/// A response's wait-hint and rate-limit headers.
fn hint_headers(r: &Response) -> Headers {
    let mut headers = Headers::new();
    let h = r.headers();
    for name in hints::HEADER_NAMES {
        if let Ok(Some(v)) = h.get(name) {
            headers.push(*name, v);
        }
    }
    headers
}

/// The status of anything response-like; `None` for something that is not a response.
fn status_of(v: &JsValue) -> Option<u16> {
    let s = errors::get(v, "status").as_f64()?;
    (100.0..=599.0).contains(&s).then_some(s as u16)
}

/// What the classifier needs of a failed response (400 and up): the hint headers, and for a
/// 429 the body (read from a clone, so the caller still gets it whole).
async fn observe(r: &Response, status: u16) -> Observation {
    let headers = hint_headers(r);
    let mut body = None;
    if status == 429 {
        if let Ok(Ok(text)) = r.clone().map(|c| c.text()) {
            body = JsFuture::from(text).await.ok().and_then(|t| t.as_string());
        }
    }
    Observation::Response { status, headers, body }
}
