//! `retry(fn)`: the application-level form. Each attempt calls `fn({ attempt, signal, route })`;
//! a thrown error is sorted by its shape (`thrown` in `values.js`):
//!
//! | error                                                  | treated as                     |
//! |--------------------------------------------------------|--------------------------------|
//! | numeric `status` (OpenAI / Anthropic SDK errors)        | that HTTP status, with its `headers` (wait hints) and `error`/`code`/`type` (quota) |
//! | name containing `Timeout`                              | a timeout (idempotency rule)   |
//! | name containing `Connection`, a fetch `TypeError`, or a Node socket error code | a network error |
//! | anything else (a bug in `fn`)                          | rethrown at once, untouched    |

use alloc::boxed::Box;
use core::future::Future;
use core::pin::Pin;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortSignal;

use super::drive::{drive, AttemptResult, Attempts, Client, Held, Names};
use super::host::{self, AttemptSignal, Either, Local};
use super::values;
use crate::policy::classify::Observation;
use crate::policy::{hints, Headers};

/// The hint header names, as a JS array (made once).
static NAMES: Local<Array> = Local::new(|| hints::HEADER_NAMES.iter().map(|&n| JsValue::from_str(n)).collect());

pub async fn run(client: &Client, f: Function, signal: Option<AbortSignal>) -> Result<JsValue, JsValue> {
    let signal = signal.or_else(|| client.opts.signal.clone());
    let names = Names::read(&values::fn_routes(&client.opts.js));
    let mut call = FnCall { client, f, names, signal: signal.clone() };
    drive(client, &mut call, false, signal.as_ref()).await
}

struct FnCall<'c> {
    client: &'c Client,
    f: Function,
    names: Names,
    signal: Option<AbortSignal>,
}

impl FnCall<'_> {
    async fn attempt_once(&mut self, route: usize, attempt: u32, timeout_ms: u64) -> AttemptResult {
        let sig = AttemptSignal::new(self.signal.as_ref())?;
        let ctx = values::fn_context(&self.client.opts.js, route as u32, attempt, &sig.signal);
        let promise = match self.f.call1(&JsValue::UNDEFINED, &ctx) {
            Ok(v) => Promise::resolve(&v),
            Err(e) => Promise::reject(&e),
        };
        let timer = host::delay(timeout_ms);
        let aborted: Pin<Box<dyn Future<Output = ()>>> = match &self.signal {
            Some(s) => Box::pin(host::on_abort(s)),
            None => Box::pin(core::future::pending()),
        };
        let caller_aborted = || self.signal.as_ref().is_some_and(|s| s.aborted());
        match host::race(JsFuture::from(promise), host::race(timer, aborted)).await {
            Either::Left(Ok(v)) => Ok((ok(), Held::Value(v))),
            Either::Left(Err(e)) if caller_aborted() => {
                Ok((Observation::Aborted, Held::Error { error: e, has_status: false }))
            }
            Either::Left(Err(e)) => classify_error(e),
            Either::Right(Either::Left(())) => {
                let reason = host::timeout_error();
                sig.controller.abort_with_reason(&reason);
                Ok((Observation::Timeout, Held::Error { error: reason, has_status: false }))
            }
            Either::Right(Either::Right(())) => {
                let reason = self.signal.as_ref().map_or(JsValue::UNDEFINED, |s| s.reason());
                Ok((Observation::Aborted, Held::Error { error: reason, has_status: false }))
            }
        }
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
        timeout_ms: u64,
    ) -> Pin<Box<dyn Future<Output = AttemptResult> + '_>> {
        Box::pin(self.attempt_once(route, attempt, timeout_ms))
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
            let mut headers = Headers::new();
            let mut i = 2;
            while let (Some(k), Some(v)) = (shape.get(i).as_string(), shape.get(i + 1).as_string()) {
                headers.push(k, v);
                i += 2;
            }
            let obs = Observation::Response { status: kind as u16, headers, body: shape.get(1).as_string() };
            return Ok((obs, Held::Error { error: e, has_status: true }));
        }
        0 => Observation::Timeout,
        1 => Observation::NetworkError,
        _ => return Err(e),
    };
    Ok((obs, Held::Error { error: e, has_status: false }))
}
