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
use super::host::{self, AttemptSignal};
use super::values;
use crate::policy::classify::Observation;
use crate::policy::{hints, Headers};

pub async fn fetch(client: &Client, input: JsValue, init: JsValue) -> Result<JsValue, JsValue> {
    let request = JsFuture::from(values::read_request(&input, &init, &client.opts.js)).await?;
    let signal: Option<AbortSignal> = get(&request, "signal").dyn_into().ok();
    let idempotent = get(&request, "idempotent").is_truthy();
    let mut call = Call { client, names: Names::read(&request), request, signal: signal.clone() };
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
        timeout_ms: u64,
    ) -> Pin<Box<dyn Future<Output = AttemptResult> + '_>> {
        Box::pin(self.attempt_once(route, timeout_ms))
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
    async fn attempt_once(&mut self, route: usize, timeout_ms: u64) -> AttemptResult {
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
        let timer = host::Timer::new(timeout_ms, on_timeout.as_ref().unchecked_ref());
        let result = JsFuture::from(host::call_fetch(self.client.opts.transport.as_ref(), &url, &init)).await;
        drop((timer, on_timeout));
        let error = match result {
            // Duck-typed: another fetch implementation's Response is not `instanceof` this one's.
            Ok(v) => match status_of(&v) {
                Some(status) => {
                    let response: Response = v.unchecked_into();
                    let obs = observe(&response, status).await;
                    return Ok((obs, Held::Value(response.into())));
                }
                None => values::not_response(&v),
            },
            Err(e) => e,
        };
        let obs = if self.signal.as_ref().is_some_and(|s| s.aborted()) {
            Observation::Aborted
        } else if timed_out.get() {
            Observation::Timeout
        } else {
            Observation::NetworkError
        };
        Ok((obs, Held::Error { error, has_status: false }))
    }
}

/// The status of anything response-like; `None` for something that is not a response.
fn status_of(v: &JsValue) -> Option<u16> {
    let s = errors::get(v, "status").as_f64()?;
    (100.0..=599.0).contains(&s).then_some(s as u16)
}

/// What the classifier needs of a response: status, the hint headers, and for a 429 the body
/// (read from a clone, so the caller still gets it whole).
async fn observe(r: &Response, status: u16) -> Observation {
    let mut headers = Headers::new();
    let h = r.headers();
    if status < 400 {
        // A success is final whatever its headers say; only its rate-limit headers (for pacing)
        // are read, in one call.
        let flat = values::limit_headers(&h);
        if let Some(flat) = flat.dyn_ref::<js_sys::Array>() {
            for i in (0..flat.length()).step_by(2) {
                if let (Some(k), Some(v)) = (flat.get(i).as_string(), flat.get(i + 1).as_string()) {
                    headers.push(k, v);
                }
            }
        }
        return Observation::Response { status, headers, body: None };
    }
    for name in hints::HEADER_NAMES {
        if let Ok(Some(v)) = h.get(name) {
            headers.push(*name, v);
        }
    }
    let mut body = None;
    if status == 429 {
        if let Ok(Ok(text)) = r.clone().map(|c| c.text()) {
            body = JsFuture::from(text).await.ok().and_then(|t| t.as_string());
        }
    }
    Observation::Response { status, headers, body }
}
