//! `retry(fn)`: the application-level form. Each attempt calls `fn({ attempt, signal, route })`;
//! a thrown error is sorted by its shape (`thrown` in `run.js`):
//!
//! | error                                                  | treated as                     |
//! |--------------------------------------------------------|--------------------------------|
//! | numeric `status` (OpenAI / Anthropic SDK errors)        | that HTTP status, with its `headers` (wait hints) and `error`/`code`/`type` (quota) |
//! | name containing `Timeout`                              | a timeout (idempotency rule)   |
//! | name containing `Connection`, a fetch `TypeError`, or a Node socket error code | a network error |
//! | no status, but an `error` body (an SDK's in-stream error event) | what the body stands for (`policy::stream`) |
//! | anything else (a bug in `fn`)                          | rethrown at once, untouched    |
//!
//! When `fn` returns a stream (an async iterable, such as an SDK's stream object), its items are
//! read up to the first content item, as `retryFetch` reads an event stream: an error before it is
//! a failed attempt, and the caller gets one stream that yields every item once.

use alloc::boxed::Box;
use core::future::Future;
use core::pin::Pin;

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::drive::{drive, AttemptResult, Attempts, Client, Held, Names};
use super::host::{self, AttemptSignal, Either, Local};
use super::values;
use crate::policy::classify::Observation;
use crate::policy::stream::{self, State, Verdict};
use crate::policy::{hints, Headers};

/// The hint header names, as a JS array (made once).
pub(super) static NAMES: Local<Array> = Local::new(|| {
    let names = Array::new();
    for n in hints::HEADER_NAMES {
        values::push(&names, &JsValue::from_str(n));
    }
    names
});

/// `opts`: a `createRetry` call's second argument (its signal and per-call options), checked
/// with `f` by `run.js` (`fnCall`).
pub async fn run(client: &Client, f: JsValue, opts: JsValue) -> Result<JsValue, JsValue> {
    let names = Names::read(values::fn_call(&f, &client.opts.js, &opts)?, client)?;
    let signal = names.has_signal.then(|| values::signal_of(&names.js)).or_else(|| client.opts.signal.clone());
    let mut call = FnCall { client, f: f.unchecked_into(), names, signal: signal.clone() };
    drive(client, &mut call, false, signal.as_ref()).await
}

struct FnCall<'c> {
    client: &'c Client,
    f: Function,
    names: Names,
    signal: Option<AbortSignal>,
}

impl FnCall<'_> {
    async fn attempt_once(
        &mut self,
        route: usize,
        attempt: u32,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
    ) -> AttemptResult {
        let sig = AttemptSignal::new(self.signal.as_ref());
        let promise = values::call_fn(&self.f, &self.names.js, route as u32, attempt, &sig.signal);
        let timer: Pin<Box<dyn Future<Output = ()>>> = match timeout_ms {
            Some(ms) => Box::pin(host::delay(ms)),
            None => Box::pin(core::future::pending()),
        };
        // The attempt's timer bounds `fn` until it returns; a stream it returned is then read to
        // its first content item under `firstTokenTimeoutMs` and the deadline (`peek`).
        let returned =
            host::race(host::settled(&promise), host::race(timer, host::aborted(self.signal.as_ref()))).await;
        match returned {
            Either::Left(Ok(v)) => {
                let iter = values::async_iterator(&v);
                if iter.is_undefined() {
                    return Ok((ok(), Held::Value(v)));
                }
                self.peek(v, iter, &sig, deadline_ms).await
            }
            Either::Left(Err(e)) => self.thrown(e),
            Either::Right(which) => Ok(self.stopped(which, &sig)),
        }
    }

    /// A rejection: the caller's abort, or an error sorted by its shape.
    fn thrown(&self, e: JsValue) -> AttemptResult {
        if self.signal.as_ref().is_some_and(values::is_aborted) {
            return Ok((Observation::Aborted, Held::Error { error: e, has_status: false }));
        }
        classify_error(e)
    }

    /// The attempt's timer fired (`Left`) or the caller aborted (`Right`, with its reason).
    fn stopped(&self, which: Either<(), JsValue>, sig: &AttemptSignal) -> (Observation, Held) {
        match which {
            Either::Left(()) => {
                let reason = values::timeout_error();
                sig.controller.abort_with_reason(&reason);
                (Observation::Timeout, Held::Error { error: reason, has_status: false })
            }
            Either::Right(reason) => (Observation::Aborted, Held::Error { error: reason, has_status: false }),
        }
    }

    /// `fn` returned a stream (an async iterable): its items are read up to the first content
    /// item, as `fetch` reads an event stream (`policy::stream`); an error before it is a failed
    /// attempt. The caller gets the object, whose iteration yields every item once.
    async fn peek(&self, orig: JsValue, iter: JsValue, sig: &AttemptSignal, deadline_ms: u64) -> AttemptResult {
        let stall = host::first_token(self.names.cfg(self.client).first_token_timeout_ms, deadline_ms);
        let mut stop = host::race(stall, host::aborted(self.signal.as_ref()));
        let held = Array::new();
        let state = loop {
            let next = host::settled(&values::next_item(&iter));
            let item = match host::race(next, &mut stop).await {
                Either::Left(Ok(item)) => Array::from(&item),
                Either::Left(Err(e)) => return self.thrown(e),
                Either::Right(stop) => {
                    // Given up: its request is aborted too (the attempt's signal, which fn handed
                    // its SDK), since closing an iteration whose `next` is pending waits for it.
                    values::close_iterator(&iter);
                    return Ok(match stop {
                        Either::Left(deadline) => {
                            sig.controller.abort_with_reason(&values::timeout_error());
                            super::fetch::stalled(deadline)
                        }
                        Either::Right(reason) => self.stopped(Either::Right(reason), sig),
                    });
                }
            };
            if item.get(0).is_truthy() {
                // Ended before any content (or with none at all): broken.
                break State::Failed { status: 502, body: None };
            }
            values::push(&held, &item.get(1));
            let e = values::item_event(&item.get(1));
            let name = e.get(0).as_string().unwrap_or_default().into_bytes();
            let data = e.get(1).as_string().unwrap_or_default().into_bytes();
            match stream::verdict(&stream::Event { name, data }) {
                Verdict::Preamble => {}
                Verdict::Content => break State::Commit,
                Verdict::Failed { status, body } => break State::Failed { status, body },
            }
        };
        let idle = self.names.cfg(self.client).idle_timeout_ms.map(|ms| ms as f64);
        let held = Held::Value(values::resumed_items(&orig, &held, &iter, idle, &sig.controller));
        Ok(match state {
            State::Failed { status, body } => {
                (Observation::StreamFailed { status, headers: Headers::new(), body }, held)
            }
            _ => (Observation::Committed { headers: Headers::new() }, held),
        })
    }
}

impl Attempts for FnCall<'_> {
    fn names(&self) -> &Names {
        &self.names
    }

    fn attempt(
        &mut self,
        route: usize,
        attempt: u32,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
        _limits: bool,
    ) -> Pin<Box<dyn Future<Output = AttemptResult> + '_>> {
        Box::pin(self.attempt_once(route, attempt, timeout_ms, deadline_ms))
    }

    fn release(&mut self, held: Held) {
        // A stream object given up on before its first content item: its request is closed.
        if let Held::Value(v) = held {
            values::release_items(&v);
        }
    }
}

fn ok() -> Observation {
    Observation::Response { status: 200, headers: Headers::new(), body: None }
}

/// Sorts a thrown error by its shape (see the module docs); `Err` rethrows it.
fn classify_error(e: JsValue) -> Result<(Observation, Held), JsValue> {
    let shape = NAMES.with(|names| values::thrown(&e, names));
    let kind = shape.get(0).as_f64().filter(|k| k.is_finite()).unwrap_or(-1.0) as i32;
    let obs = match kind {
        100..=599 => {
            let headers = shape.get(2).as_string().map(Headers::from_lines).unwrap_or_default();
            let obs = Observation::Response { status: kind as u16, headers, body: shape.get(1).as_string() };
            return Ok((obs, Held::Error { error: e, has_status: true }));
        }
        0 => Observation::Timeout,
        1 => Observation::NetworkError,
        // An SDK's error for an in-band stream error event: its body says what it stands for.
        -2 => {
            let data = shape.get(1).as_string().unwrap_or_default().into_bytes();
            match stream::verdict(&stream::Event { name: b"error".to_vec(), data }) {
                Verdict::Failed { status, body } => {
                    let obs = Observation::StreamFailed { status, headers: Headers::new(), body };
                    return Ok((obs, Held::Error { error: e, has_status: true }));
                }
                _ => return Err(e),
            }
        }
        _ => return Err(e),
    };
    Ok((obs, Held::Error { error: e, has_status: false }))
}
